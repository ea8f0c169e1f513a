/*
 * libFuzzer target for the KDL parser and writer. For every input: parse it
 * (from an exact-size copy, so reads past the end are caught); when it parses,
 * write the canonical form, parse that again and write it again: both writes
 * must be equal (the round-trip property), and the canonical form must always
 * parse. abort() on any mismatch. See docs/fuzzing.md.
 */
#include "vulcan/kdl.h"
#include "vulcan/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vk_kdl_doc *doc = NULL, *doc2 = NULL;
    struct vk_err err;
    struct vk_buf out1 = VK_BUF_INIT(64u * 1024 * 1024);
    struct vk_buf out2 = VK_BUF_INIT(64u * 1024 * 1024);
    char *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    int rc = vk_kdl_parse(copy, size, &doc, &err);
    free(copy);
    if (rc != 0) {
        if (rc != VK_EPARSE && rc != VK_ENOMEM)
            abort();
        if (err.line == 0 || err.col == 0 || err.msg[0] == '\0')
            abort();
        return 0;
    }
    if (vk_kdl_write(doc, &out1) != 0)
        abort();
    /* Exact-size copy of the output for the second parse too. */
    copy = malloc(out1.len ? out1.len : 1);
    if (!copy)
        abort();
    if (out1.len)
        memcpy(copy, out1.data, out1.len);
    rc = vk_kdl_parse(copy, out1.len, &doc2, &err);
    free(copy);
    if (rc != 0) {
        fprintf(stderr, "canonical output does not parse: %u:%u: %s\n--- output:\n%s\n", err.line,
                err.col, err.msg, out1.data);
        abort();
    }
    if (vk_kdl_write(doc2, &out2) != 0)
        abort();
    if (out1.len != out2.len || (out1.len && memcmp(out1.data, out2.data, out1.len) != 0)) {
        fprintf(stderr, "round trip mismatch\n--- first:\n%s\n--- second:\n%s\n", out1.data,
                out2.data);
        abort();
    }
    vk_buf_release(&out1);
    vk_buf_release(&out2);
    vk_kdl_doc_free(doc);
    vk_kdl_doc_free(doc2);
    return 0;
}
