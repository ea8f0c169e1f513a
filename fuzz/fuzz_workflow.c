/*
 * libFuzzer target: the workflow loader on an arbitrary buffer. Imports are
 * refused by vk_wf_fetch_refuse (no file or network access). A loaded
 * workflow is also walked, matched against an event, its conditions evaluated
 * and rendered to JSON and text, so those paths see fuzzed models too.
 */
#include "vulcan/workflow.h"

#include <stdint.h>
#include <string.h>

static const char *lookup(void *ctx, const char *name)
{
    (void)ctx;
    return name[0] == 'B' ? "main" : NULL;
}

static int visit(void *ctx, const struct vk_wf_fragment *f, unsigned depth)
{
    size_t *n = ctx;
    bool r;
    (*n)++;
    if (f->condition && vk_cond_eval(f->condition, lookup, NULL, &r) != 0)
        __builtin_trap();
    if (f->type == VK_WF_INLINE && (!f->run || !f->machine))
        __builtin_trap();
    (void)depth;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vk_wf_options o;
    memset(&o, 0, sizeof(o));
    o.fetch = vk_wf_fetch_refuse;
    o.max_fragments = 5000;
    struct vk_workflow *wf = NULL;
    struct vk_wf_error e;
    vk_wf_error_init(&e);
    int rc = vk_workflow_load_buffer((const char *)data, size, "fuzz.kdl", &o, &wf, &e);
    if (rc == 0) {
        size_t n = 0;
        if (vk_workflow_walk(wf, visit, &n) != 0 || n != vk_workflow_count_fragments(wf))
            __builtin_trap();
        const char *paths[] = {"src/a.c", "docs/x.md"};
        struct vk_wf_event ev = {.type = VK_WF_TRIG_PUSH,
                                 .branch = "main",
                                 .tag = "v1",
                                 .paths = paths,
                                 .npaths = 2,
                                 .action = "opened",
                                 .workflow = "build",
                                 .status = "completed"};
        for (int t = 0; t <= VK_WF_TRIG_CHAIN; t++) {
            ev.type = (enum vk_wf_trigger_type)t;
            (void)vk_workflow_triggered(wf, &ev);
        }
        struct vk_buf b = VK_BUF_INIT(VK_MAX_BODY * 4);
        if (vk_workflow_to_json(wf, &b) == 0)
            vk_buf_reset(&b);
        if (vk_workflow_to_text(wf, &b) != 0)
            vk_buf_reset(&b);
        vk_buf_release(&b);
    } else if (e.kind == VK_WF_ERR_NONE || e.code != rc) {
        __builtin_trap();
    }
    vk_workflow_free(wf);
    vk_wf_error_release(&e);
    return 0;
}
