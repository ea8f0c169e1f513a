/*
 * libFuzzer target: `vulcan audit verify FILE`, the reader of an audit export (JSON lines
 * of records and checkpoints, hostile: it may come from anywhere). Every line is parsed,
 * every record's hash recomputed and every checkpoint's signature checked against a
 * keyring made once at start; nothing may crash, leak or run long, and the report's counts
 * must add up.
 */
#include "vulcan/audit.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct vk_audit_keyring *ring;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char dir[] = "/tmp/vk-fuzz-audit-XXXXXX";
    if (!mkdtemp(dir))
        abort();
    char key[64], pub[64];
    snprintf(key, sizeof(key), "%s/audit.key", dir);
    snprintf(pub, sizeof(pub), "%s/audit.key.pub", dir);
    struct vk_audit_key *k = NULL;
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_audit_key_load(key, true, pub, &k, &err) != 0 ||
        vk_audit_keyring_load(pub, &ring, &err) != 0)
        abort();
    vk_audit_key_free(k);
    unlink(key);
    unlink(pub);
    rmdir(dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f)
        return 0;
    struct vk_audit_report rep;
    memset(&rep, 0, sizeof(rep));
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_audit_verify_jsonl(f, ring, &rep, &err) == 0 && rep.orgs > rep.records + rep.checkpoints)
        __builtin_trap();
    fclose(f);
    return 0;
}
