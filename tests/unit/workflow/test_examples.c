/*
 * Every workflow under examples/ parses, and its JSON (rendered by the same
 * vk_workflow_to_json() that `vulcan parse --json` uses) equals the golden file
 * tests/unit/workflow/data/golden/<name>.json byte for byte.
 * VK_UPDATE_GOLDEN=1 rewrites the golden files instead (then review the diff).
 */
#include "vk_test.h"
#include "vulcan/workflow.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const examples[] = {"simple",  "parallel",     "conditional",
                                       "imports", "triggers",     "hello",
                                       "matrix",  "ci-c-library", "concurrency"};

static void test_examples_golden(void **state)
{
    (void)state;
    const char *src_dir = getenv("VK_SOURCE_DIR");
    assert_non_null(src_dir);
    assert_int_equal(chdir(src_dir), 0);
    bool update = getenv("VK_UPDATE_GOLDEN") != NULL;
    for (size_t i = 0; i < VK_ARRAY_LEN(examples); i++) {
        char path[256], golden[256];
        snprintf(path, sizeof(path), "examples/%s.kdl", examples[i]);
        snprintf(golden, sizeof(golden), "tests/unit/workflow/data/golden/%s.json", examples[i]);
        struct vk_workflow *wf = NULL;
        struct vk_wf_error e;
        vk_wf_error_init(&e);
        if (vk_workflow_load_file(path, NULL, &wf, &e) != 0)
            fail_msg("%s", e.rendered);
        struct vk_buf json = VK_BUF_INIT(VK_MAX_FILE);
        assert_int_equal(vk_workflow_to_json(wf, &json), 0);
        if (update) {
            FILE *f = fopen(golden, "w");
            assert_non_null(f);
            fwrite(json.data, 1, json.len, f);
            fclose(f);
        } else {
            struct vk_buf want = VK_BUF_INIT(VK_MAX_FILE);
            assert_int_equal(vk_buf_read_file(&want, golden, NULL), 0);
            if (want.len != json.len || memcmp(want.data, json.data, json.len) != 0)
                fail_msg("%s: JSON differs from %s:\n%s", path, golden, json.data);
            vk_buf_release(&want);
        }
        /* the readable tree renders too, and names every fragment's file */
        struct vk_buf text = VK_BUF_INIT(VK_MAX_FILE);
        assert_int_equal(vk_workflow_to_text(wf, &text), 0);
        assert_non_null(strstr(text.data, path));
        vk_buf_release(&text);
        vk_buf_release(&json);
        vk_workflow_free(wf);
    }
}

/* Every .kdl directly under examples/ is listed above (so a new example gets a golden file). */
static void test_examples_listed(void **state)
{
    (void)state;
    const char *src_dir = getenv("VK_SOURCE_DIR");
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/examples", src_dir);
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    for (struct dirent *de = readdir(d); de; de = readdir(d)) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 4, ".kdl") != 0)
            continue;
        bool found = false;
        for (size_t i = 0; i < VK_ARRAY_LEN(examples); i++)
            found |= strlen(examples[i]) == l - 4 && strncmp(examples[i], de->d_name, l - 4) == 0;
        if (!found)
            fail_msg("examples/%s has no golden test", de->d_name);
        n++;
    }
    closedir(d);
    assert_int_equal(n, VK_ARRAY_LEN(examples));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_examples_golden),
        cmocka_unit_test(test_examples_listed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
