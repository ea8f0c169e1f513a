/*
 * vulcan secret-provider: the two shipped secret providers (age, pass), which the server
 * runs as `--secret-provider NAME=/path/to/vulcan secret-provider age ...`, and `test`,
 * which runs a configured provider once through the server's runner, for set-up and
 * for tests (docs/secrets.md "Providers").
 */
#include "cli/cli.h"
#include "vulcan/secret_provider.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: vulcan secret-provider age --dir DIR --identity FILE [--age PATH] [--timeout D]\n"
    "       vulcan secret-provider pass [--store DIR] [--gnupghome DIR] [--pass PATH]\n"
    "                                   [--timeout D]\n"
    "       vulcan secret-provider test --secret-provider NAME=PATH [ARG...] [--timeout D]\n"
    "                                   [--org O] [--repository R] [--ref REF]\n"
    "                                   [--environment E] [--name NAME] [--show] NAME KEY\n"
    "\n"
    "age and pass are secret providers: they read one JSON request on stdin and print\n"
    "{\"value\": \"...\"} on stdout (docs/secrets.md \"Providers\"). Configure them on the\n"
    "server with an absolute path, e.g.\n"
    "  --secret-provider 'age=/usr/bin/vulcan secret-provider age --dir /etc/vulcan/age\n"
    "                     --identity /etc/vulcan/age.key'\n"
    "\n"
    "  age   the request's key names a file under --dir (relative, no '..'), decrypted\n"
    "        with 'age --decrypt --identity FILE' (FILE mode 0600); one trailing newline\n"
    "        is dropped.\n"
    "  pass  the request's key is a pass name; the value is the first line of\n"
    "        'pass show'. --store sets PASSWORD_STORE_DIR, --gnupghome GNUPGHOME.\n"
    "  test  run provider NAME (configured with --secret-provider, repeatable) for KEY as\n"
    "        the server would; print the value's size, or with --show the value itself.\n"
    "  --timeout D   how long age or pass (or, with test, the provider) may take\n"
    "                (default 10s)\n"
    "Exit status 1: no value (the reason on stderr); 2: bad usage.\n";

/* The request a provider gets on stdin, bounded like the runner's. */
#define MAX_REQUEST (64u * 1024u)

static int read_request(struct vk_buf *b)
{
    char tmp[4096];
    for (;;) {
        ssize_t n = read(0, tmp, sizeof(tmp));
        if (n == 0)
            return 0;
        if (n < 0) {
            fputs("vulcan secret-provider: cannot read the request on stdin\n", stderr);
            return 1;
        }
        if (vk_buf_add(b, tmp, (size_t)n) < 0) {
            fprintf(stderr, "vulcan secret-provider: the request is larger than %u bytes\n",
                    MAX_REQUEST);
            return 1;
        }
    }
}

/* {"value": ...} on stdout; the value's copies are wiped. */
static int print_value(struct vk_secret_value *v)
{
    json_t *o = json_pack("{s:s%}", "value", v->data, v->len);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    int rc = 0;
    if (!s) {
        fputs("vulcan secret-provider: the value is not UTF-8 text or memory ran out\n", stderr);
        rc = 1;
    } else {
        size_t n = strlen(s);
        if (fwrite(s, 1, n, stdout) != n || fputc('\n', stdout) == EOF || fflush(stdout) != 0)
            rc = 1;
        explicit_bzero(s, n);
        free(s);
    }
    vk_secret_value_release(v);
    return rc;
}

static int parse_timeout(const char *text, int64_t *ms)
{
    struct vk_secret_providers p;
    vk_secret_providers_init(&p);
    struct vk_err err;
    vk_err_clear(&err);
    if (text && vk_secret_providers_set_timeout(&p, text, &err) < 0) {
        fprintf(stderr, "vulcan secret-provider: %s\n", err.msg);
        return 2;
    }
    *ms = p.timeout_ms;
    return 0;
}

static int cmd_shipped(const char *which, int argc, char **argv)
{
    const char *dir = NULL, *identity = NULL, *age = NULL, *store = NULL, *gnupghome = NULL,
               *pass = NULL, *timeout = NULL;
    bool is_age = strcmp(which, "age") == 0;
    struct vk__cli_opt age_opts[] = {
        {"dir", 0, VK_CLI_STR, &dir, NULL, false, 0, 0},
        {"identity", 0, VK_CLI_STR, &identity, NULL, false, 0, 0},
        {"age", 0, VK_CLI_STR, &age, NULL, false, 0, 0},
        {"timeout", 0, VK_CLI_STR, &timeout, NULL, false, 0, 0},
    };
    struct vk__cli_opt pass_opts[] = {
        {"store", 0, VK_CLI_STR, &store, NULL, false, 0, 0},
        {"gnupghome", 0, VK_CLI_STR, &gnupghome, NULL, false, 0, 0},
        {"pass", 0, VK_CLI_STR, &pass, NULL, false, 0, 0},
        {"timeout", 0, VK_CLI_STR, &timeout, NULL, false, 0, 0},
    };
    const char *pos[1];
    int npos = 0;
    char cmdname[40];
    snprintf(cmdname, sizeof(cmdname), "secret-provider %s", which);
    int rc = is_age ? vk__cli_opts_parse(cmdname, argc, argv, age_opts, VK_ARRAY_LEN(age_opts), pos,
                                         &npos, 0)
                    : vk__cli_opts_parse(cmdname, argc, argv, pass_opts, VK_ARRAY_LEN(pass_opts),
                                         pos, &npos, 0);
    if (rc)
        return rc;
    if (is_age && (!dir || !identity)) {
        fputs("vulcan secret-provider age: --dir and --identity are required\n", stderr);
        return 2;
    }
    int64_t timeout_ms = 0;
    rc = parse_timeout(timeout, &timeout_ms);
    if (rc)
        return rc;
    struct vk_buf req = VK_BUF_INIT(MAX_REQUEST);
    rc = read_request(&req);
    if (rc) {
        vk_buf_release(&req);
        return rc;
    }
    struct vk_secret_value v = {NULL, 0};
    struct vk_err err;
    vk_err_clear(&err);
    if (is_age) {
        struct vk_secret_age_opts o = {
            .dir = dir, .identity = identity, .age = age, .timeout_ms = timeout_ms};
        rc = vk_secret_provider_age(&o, req.data, req.len, &v, &err);
    } else {
        struct vk_secret_pass_opts o = {
            .store = store, .gnupghome = gnupghome, .pass = pass, .timeout_ms = timeout_ms};
        rc = vk_secret_provider_pass(&o, req.data, req.len, &v, &err);
    }
    vk_buf_release(&req);
    if (rc < 0) {
        fprintf(stderr, "vulcan secret-provider %s: %s\n", which, err.msg);
        return 1;
    }
    return print_value(&v);
}

static int cmd_test(int argc, char **argv)
{
    struct vk__cli_list specs = {.n = 0};
    const char *timeout = NULL, *org = "test", *repo = "test/test", *ref = "refs/heads/main",
               *environment = NULL, *name = "TEST_SECRET";
    bool show = false;
    struct vk__cli_opt opts[] = {
        {"secret-provider", 0, VK_CLI_LIST, &specs, NULL, false, 0, 0},
        {"timeout", 0, VK_CLI_STR, &timeout, NULL, false, 0, 0},
        {"org", 0, VK_CLI_STR, &org, NULL, false, 0, 0},
        {"repository", 0, VK_CLI_STR, &repo, NULL, false, 0, 0},
        {"ref", 0, VK_CLI_STR, &ref, NULL, false, 0, 0},
        {"environment", 0, VK_CLI_STR, &environment, NULL, false, 0, 0},
        {"name", 0, VK_CLI_STR, &name, NULL, false, 0, 0},
        {"show", 0, VK_CLI_FLAG, &show, NULL, false, 0, 0},
    };
    const char *pos[2];
    int npos = 0;
    int rc = vk__cli_opts_parse("secret-provider test", argc, argv, opts, VK_ARRAY_LEN(opts), pos,
                                &npos, 2);
    struct vk_secret_providers p;
    vk_secret_providers_init(&p);
    struct vk_err err;
    vk_err_clear(&err);
    if (rc)
        goto out;
    rc = 2;
    if (npos != 2) {
        fputs("vulcan secret-provider test: needs NAME and KEY; see --help\n", stderr);
        goto out;
    }
    for (size_t i = 0; i < specs.n; i++) {
        if (vk_secret_providers_add(&p, specs.items[i], &err) < 0) {
            fprintf(stderr, "vulcan secret-provider test: --secret-provider: %s\n", err.msg);
            goto out;
        }
    }
    if (timeout && vk_secret_providers_set_timeout(&p, timeout, &err) < 0) {
        fprintf(stderr, "vulcan secret-provider test: --timeout: %s\n", err.msg);
        goto out;
    }
    /* The claims of a job token, as far as they follow from the options. */
    json_t *claims = json_pack("{s:s, s:s, s:s}", "org", org, "repository", repo, "ref", ref);
    struct vk_secret_request req = {.org = org,
                                    .repository = repo,
                                    .name = name,
                                    .ref = ref,
                                    .environment = environment,
                                    .key = pos[1],
                                    .claims = claims};
    struct vk_secret_value v = {NULL, 0};
    int64_t t0 = vk_time_mono_ns();
    int r = claims ? vk_secret_providers_resolve(&p, pos[0], &req, &v, &err)
                   : vk_err_set(&err, VK_EINVAL, "--org, --repository and --ref must be UTF-8");
    json_decref(claims);
    long long ms = (long long)((vk_time_mono_ns() - t0) / 1000000);
    if (r < 0) {
        fprintf(stderr, "vulcan secret-provider test: %s (after %lld ms)\n", err.msg, ms);
        rc = 1;
        goto out;
    }
    if (show) {
        rc = fwrite(v.data, 1, v.len, stdout) == v.len && fputc('\n', stdout) != EOF ? 0 : 1;
    } else {
        printf("secret provider '%s' gave a value of %zu bytes in %lld ms\n", pos[0], v.len, ms);
        rc = 0;
    }
    vk_secret_value_release(&v);
out:
    vk_secret_providers_release(&p);
    vk__cli_opts_release(opts, VK_ARRAY_LEN(opts));
    return rc;
}

int vk__cli_secret_provider(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (vk__cli_wants_help(argc, argv)) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(argv[1], "age") == 0 || strcmp(argv[1], "pass") == 0)
        return cmd_shipped(argv[1], argc - 1, argv + 1);
    if (strcmp(argv[1], "test") == 0)
        return cmd_test(argc - 1, argv + 1);
    fprintf(stderr, "vulcan secret-provider: unknown provider '%s' (age, pass or test)\n", argv[1]);
    return 2;
}
