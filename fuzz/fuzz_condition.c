/*
 * libFuzzer target: the condition language. The input is split at the first
 * NUL byte: before it, a condition; after it, a glob pattern and a subject
 * separated by another NUL. Parsed conditions are evaluated with a few
 * variables set; the glob matcher must terminate quickly on any pattern.
 */
#include "vulcan/workflow.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const struct vk_cond_var vars[] = {
    {"BRANCH", "main"}, {"TAG", "v1.2.3"}, {"TRIGGER", "push"}, {"EMPTY", ""}};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    const char *nul = memchr(s, '\0', size);
    size_t clen = nul ? (size_t)(nul - s) : size;
    struct vk_pool pool;
    struct vk_cond *c = NULL;
    struct vk_err err;
    vk_pool_init(&pool, 0);
    vk_err_clear(&err);
    int rc = vk_cond_parse(s, clen, &pool, &c, &err);
    if (rc == 0) {
        struct vk_cond_vars v = {vars, sizeof(vars) / sizeof(vars[0])};
        bool r;
        if (!c || vk_cond_eval(c, vk_cond_lookup_kv, &v, &r) != 0)
            __builtin_trap();
    } else if (err.col == 0 || err.col > clen + 1) {
        __builtin_trap(); /* errors always point inside (or just past) the text */
    }
    vk_pool_release(&pool);
    if (nul) {
        size_t rest = size - clen - 1;
        char *buf = malloc(rest + 1);
        if (!buf)
            return 0;
        memcpy(buf, nul + 1, rest);
        buf[rest] = '\0';
        const char *subject = buf + strlen(buf);
        if ((size_t)(subject - buf) < rest)
            subject++;
        (void)vk_glob_match(buf, subject);
        free(buf);
    }
    return 0;
}
