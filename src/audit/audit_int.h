/* audit internals: shared between chain.c, key.c and recorder.c. */
#ifndef VULCAN_AUDIT_INT_H
#define VULCAN_AUDIT_INT_H

#include "vulcan/audit.h"

#include <stdlib.h>

#define VK_AUDIT_MAX_LINE (64 * 1024) /* one line of an export */

/* 0 when `cp` is signed by a key of `keys`; VK_ENOTFOUND: no key of that id; VK_EPERM: the
 * signature does not verify (or is not base64). */
int vk__audit_check_signature(const struct vk_audit_keyring *keys,
                              const struct vk_store_audit_checkpoint *cp);

/* The live copy (sink.c): NULL *out when neither a file nor a syslog URL is given. */
struct vk__audit_sink;
int vk__audit_sink_new(const char *file, const char *syslog_url, size_t queue,
                       struct vk__audit_sink **out, struct vk_err *err);
/* Queue a stored record (copied); never blocks; dropped and counted when the queue is full. */
void vk__audit_sink_push(struct vk__audit_sink *s, const struct vk_store_audit_rec *rec);
void vk__audit_sink_stats(struct vk__audit_sink *s, uint64_t *sent, uint64_t *dropped,
                          uint64_t *failed);
/* Deliver what is queued, then stop. Accepts NULL. */
void vk__audit_sink_free(struct vk__audit_sink *s);

#endif
