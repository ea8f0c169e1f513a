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

#endif
