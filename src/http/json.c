/* JSON text for replies and requests, without json_dumps()'s hole on out of memory. */
#include "http_int.h"

#include <stdlib.h>

/*
 * Accepts any value, NULL included. Measured first, then written into a buffer of that
 * size: writing into memory cannot fail, so the only errors left are jansson's own (out of
 * memory, a string that is not UTF-8), and it reports those. json_dumps() writes through a
 * growing buffer and ignores a failed write of an object key.
 */
char *vk_http_json_text(const json_t *v, size_t flags, size_t *len)
{
    size_t n = v ? json_dumpb(v, NULL, 0, flags) : 0;
    char *text = n ? malloc(n + 1) : NULL;
    if (!text)
        return NULL;
    if (json_dumpb(v, text, n, flags) != n) {
        free(text);
        return NULL;
    }
    text[n] = '\0';
    if (len)
        *len = n;
    return text;
}

json_t *vk_http_json_checked(json_t *v, int failed)
{
    if (!failed)
        return v;
    json_decref(v);
    return NULL;
}
