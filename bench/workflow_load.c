/*
 * Benchmark: load a generated workflow of 10,000 fragments (1,000 parallel
 * groups, each with 4 fragments and a nested parallel group of 4 more;
 * multi-line run scripts, conditions on groups and on every third fragment)
 * from memory several times. Prints the document size, the load time per run,
 * fragments per second, the model's arena size and the peak RSS.
 * Usage: workflow_load [runs] (default 5)
 */
#include "vulcan/workflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#define UNITS 1000

static int gen(struct vk_buf *b)
{
    int rc = vk_buf_adds(b, "version \"0.1\"\nname \"bench\"\n"
                            "triggers { push { branches \"main\" \"releases/**\" }; manual }\n"
                            "chain {\n    machine \"default\"\n    env { A \"1\"; B \"2\" }\n");
    for (int u = 0; rc == 0 && u < UNITS; u++) {
        rc = vk_buf_addf(b,
                         "    parallel {\n        name \"unit-%d\"\n"
                         "        condition \"$BRANCH == 'main' || $BRANCH =~ 'releases/**'\"\n",
                         u);
        for (int f = 0; rc == 0 && f < 4; f++) {
            rc = vk_buf_addf(b,
                             "        fragment {\n            name \"u%d-f%d\"\n"
                             "            run \"\"\"\n                echo step %d of %d\n"
                             "                make -j4 target-%d\n                ./check.sh\n"
                             "                \"\"\"\n",
                             u, f, f, u, f);
            if (rc == 0 && f % 3 == 0)
                rc = vk_buf_adds(b, "            condition \"!($TRIGGER == 'tag') && $A != ''\"\n"
                                    "            timeout \"10m\"\n            retry 1\n");
            if (rc == 0)
                rc = vk_buf_adds(b, "        }\n");
        }
        if (rc == 0)
            rc = vk_buf_adds(b, "        parallel {\n            machine \"small\"\n");
        for (int f = 0; rc == 0 && f < 4; f++)
            rc = vk_buf_addf(b, "            fragment { run \"test %d.%d\"; env { N \"%d\" } }\n",
                             u, f, f);
        if (rc == 0)
            rc = vk_buf_adds(b, "        }\n    }\n");
    }
    if (rc == 0)
        rc = vk_buf_adds(b, "}\n");
    return rc;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    if (runs < 1)
        runs = 1;
    struct vk_buf doc = VK_BUF_INIT(VK_MAX_FILE);
    if (gen(&doc) != 0) {
        fputs("cannot generate the workflow\n", stderr);
        return 1;
    }
    printf("workflow_load: document %zu bytes\n", doc.len);
    double best = 1e30, total = 0;
    size_t frags = 0, arena = 0;
    for (int r = 0; r < runs; r++) {
        struct vk_workflow *wf = NULL;
        struct vk_wf_error e;
        vk_wf_error_init(&e);
        int64_t t0 = vk_time_mono_ns();
        int rc = vk_workflow_load_buffer(doc.data, doc.len, "bench.kdl", NULL, &wf, &e);
        double s = (double)(vk_time_mono_ns() - t0) / 1e9;
        if (rc != 0) {
            fprintf(stderr, "%s", e.rendered ? e.rendered : e.msg);
            vk_wf_error_release(&e);
            return 1;
        }
        frags = vk_workflow_count_fragments(wf);
        arena = wf->pool.total;
        vk_workflow_free(wf);
        total += s;
        if (s < best)
            best = s;
        printf("  run %d: %zu fragments in %.1f ms\n", r + 1, frags, s * 1e3);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("workflow_load: %zu fragments, best %.1f ms, mean %.1f ms, %.0f fragments/s (best), "
           "model arena %.1f MiB, peak RSS %.1f MiB\n",
           frags, best * 1e3, total / runs * 1e3, (double)frags / best, (double)arena / 1048576.0,
           (double)ru.ru_maxrss / 1024.0);
    vk_buf_release(&doc);
    return 0;
}
