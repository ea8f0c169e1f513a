/*
 * auth roles and scopes (include/vulcan/auth.h).
 */
#include "vulcan/auth.h"

#include <stdio.h>
#include <string.h>

static const char *const ROLES[] = {"none", "reader", "developer", "maintainer", "admin"};

const char *vk_auth_role_name(enum vk_auth_role role)
{
    return (unsigned)role < VK_ARRAY_LEN(ROLES) ? ROLES[role] : "none";
}

int vk_auth_role_parse(const char *name, enum vk_auth_role *out, struct vk_err *err)
{
    for (size_t i = 1; name && i < VK_ARRAY_LEN(ROLES); i++) {
        if (strcmp(name, ROLES[i]) == 0) {
            *out = (enum vk_auth_role)i;
            return 0;
        }
    }
    return vk_err_set(err, VK_EINVAL,
                      "unknown role '%.40s' (the roles are reader, developer, maintainer, admin)",
                      name ? name : "");
}

static const struct {
    const char *name;
    unsigned bit;
} SCOPES[] = {{"read", VK_SCOPE_READ}, {"write", VK_SCOPE_WRITE}, {"admin", VK_SCOPE_ADMIN}};

int vk_auth_scopes_parse(const char *text, unsigned *out, struct vk_err *err)
{
    unsigned bits = 0;
    const char *p = text ? text : "";
    for (;;) {
        while (*p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ')
            e++;
        size_t n = (size_t)(e - p);
        bool found = false;
        for (size_t i = 0; i < VK_ARRAY_LEN(SCOPES); i++) {
            if (n == strlen(SCOPES[i].name) && memcmp(p, SCOPES[i].name, n) == 0) {
                bits |= SCOPES[i].bit;
                found = true;
            }
        }
        if (!found && n == 0)
            return vk_err_set(err, VK_EINVAL,
                              "a scope list is empty or has an empty name "
                              "(the scopes are read, write, admin)");
        if (!found)
            return vk_err_set(err, VK_EINVAL,
                              "unknown scope '%.*s' (the scopes are read, write, admin)",
                              (int)(n > 40 ? 40 : n), p);
        while (*e == ' ')
            e++;
        if (*e == '\0')
            break;
        if (*e != ',')
            return vk_err_set(err, VK_EINVAL, "scopes are separated by commas");
        p = e + 1;
    }
    *out = bits;
    return 0;
}

void vk_auth_scopes_format(unsigned scopes, char out[VK_AUTH_SCOPES_MAX])
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < VK_ARRAY_LEN(SCOPES); i++) {
        if (!(scopes & SCOPES[i].bit))
            continue;
        o +=
            (size_t)snprintf(out + o, VK_AUTH_SCOPES_MAX - o, "%s%s", o ? "," : "", SCOPES[i].name);
    }
}

enum vk_auth_role vk_auth_scopes_cap(unsigned scopes)
{
    if (scopes & VK_SCOPE_ADMIN)
        return VK_ROLE_ADMIN;
    if (scopes & VK_SCOPE_WRITE)
        return VK_ROLE_MAINTAINER;
    if (scopes & VK_SCOPE_READ)
        return VK_ROLE_READER;
    return VK_ROLE_NONE;
}
