/*
 * The secret provider runner against hostile providers (shell scripts written to a
 * temporary directory): garbage, hangs, floods, values one byte too long, a value then
 * exit 1, stdout closed early, a child that keeps stdout open, a provider killed by a
 * signal. Each must fail with a clear error and no value; the good ones must get exactly
 * the request of the protocol, a minimal environment and no descriptor of ours.
 */
#include "vk_test.h"
#include "vulcan/secret_provider.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/vk-provider-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    return vk_test_sh_status("rm -rf '%s'", dir);
}

/* A provider `name` whose body is `body` (after #!/bin/sh), added to `p`. */
static void provider(struct vk_secret_providers *p, const char *name, const char *body)
{
    char path[512], spec[600];
    snprintf(path, sizeof(path), "%s/%s.sh", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "#!/bin/sh\n%s\n", body);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, 0755), 0);
    snprintf(spec, sizeof(spec), "%s=%s", name, path);
    struct vk_err err;
    vk_err_clear(&err);
    assert_int_equal(vk_secret_providers_add(p, spec, &err), 0);
}

static const struct vk_secret_request plain_req = {.org = "acme",
                                                   .repository = "acme/web",
                                                   .name = "NPM_TOKEN",
                                                   .ref = "refs/heads/main",
                                                   .environment = NULL,
                                                   .key = "ci/npm",
                                                   .claims = NULL};

/* Run `name` from `p`; returns the code, the message in err, the value in v. */
static int run(struct vk_secret_providers *p, const char *name, struct vk_secret_value *v,
               struct vk_err *err)
{
    vk_err_clear(err);
    return vk_secret_providers_resolve(p, name, &plain_req, v, err);
}

static int64_t now_ms(void)
{
    return vk_time_mono_ns() / 1000000;
}

/* The process `pid` is gone or a zombie (killed, waiting for init to reap it). */
static bool dead(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
}

static pid_t read_pid(const char *file)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int pid = 0;
    assert_int_equal(fscanf(f, "%d", &pid), 1);
    fclose(f);
    return (pid_t)pid;
}

static void assert_failed(int rc, int code, const struct vk_secret_value *v,
                          const struct vk_err *err, const char *words)
{
    if (rc != code)
        fail_msg("expected %d, got %d: %s", code, rc, err->msg);
    assert_null(v->data);
    assert_int_equal(v->len, 0);
    if (words && !strstr(err->msg, words))
        fail_msg("'%s' not in the message: %s", words, err->msg);
    assert_non_null(strstr(err->msg, "secret provider '"));
}

static void test_config(void **state)
{
    struct vk_secret_providers p;
    vk_secret_providers_init(&p);
    struct vk_err err;
    assert_int_equal(p.timeout_ms, VK_SECRET_PROVIDER_DEFAULT_TIMEOUT_MS);
    vk_err_clear(&err);
    assert_int_equal(vk_secret_providers_add(&p, "age=/bin/echo  a\tb c", &err), 0);
    const struct vk_secret_provider *a = vk_secret_providers_find(&p, "age");
    assert_non_null(a);
    assert_string_equal(a->argv[0], "/bin/echo");
    assert_string_equal(a->argv[1], "a");
    assert_string_equal(a->argv[2], "b");
    assert_string_equal(a->argv[3], "c");
    assert_null(a->argv[4]);
    assert_null(vk_secret_providers_find(&p, "pass"));
    static const struct {
        const char *spec;
        int code;
        const char *words;
    } bad[] = {
        {"age", VK_EINVAL, "NAME=PATH"},
        {"=/bin/true", VK_EINVAL, "name"},
        {"Age=/bin/true", VK_EINVAL, "[a-z0-9_-]"},
        {"-x=/bin/true", VK_EINVAL, "name"},
        {"a b=/bin/true", VK_EINVAL, "name"},
        {"averyveryveryveryveryverylongname1=/bin/true", VK_EINVAL, "name"},
        {"x=", VK_EINVAL, "no PATH"},
        {"x=   ", VK_EINVAL, "no PATH"},
        {"x=true", VK_EINVAL, "absolute"},
        {"x=./true", VK_EINVAL, "absolute"},
        {"x=/nonexistent/provider", VK_EINVAL, "No such file"},
        {"x=/etc/passwd", VK_EINVAL, "executable"},
        {"x=/tmp", VK_EINVAL, "executable"},
        {"age=/bin/true", VK_EINVAL, "twice"},
        {"x=/bin/true 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17", VK_ETOOBIG, "arguments"},
    };
    for (size_t i = 0; i < VK_ARRAY_LEN(bad); i++) {
        vk_err_clear(&err);
        int rc = vk_secret_providers_add(&p, bad[i].spec, &err);
        if (rc != bad[i].code || !strstr(err.msg, bad[i].words))
            fail_msg("'%s': %d %s", bad[i].spec, rc, err.msg);
    }
    assert_int_equal(p.n, 1);
    char big[5000];
    memset(big, 'a', sizeof(big));
    memcpy(big, "x=/bin/true ", 12);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(vk_secret_providers_add(&p, big, &err), VK_ETOOBIG);
    assert_int_equal(
        vk_secret_providers_add(&p, "x=/bin/true 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16", &err), 0);
    assert_int_equal(vk_secret_providers_set_timeout(&p, "250ms", &err), 0);
    assert_int_equal(p.timeout_ms, 250);
    const char *bad_t[] = {"", "10", "50ms", "6m", "forever", "-1s"};
    for (size_t i = 0; i < VK_ARRAY_LEN(bad_t); i++) {
        if (strcmp(bad_t[i], "10") == 0) {
            assert_int_equal(vk_secret_providers_set_timeout(&p, bad_t[i], &err), 0);
            assert_int_equal(p.timeout_ms, 10000);
            continue;
        }
        assert_int_equal(vk_secret_providers_set_timeout(&p, bad_t[i], &err), VK_EINVAL);
    }
    struct vk_secret_value v = {NULL, 0};
    assert_int_equal(run(&p, "nope", &v, &err), VK_ENOTFOUND);
    assert_non_null(strstr(err.msg, "not configured"));
    for (int i = 0; p.n < VK_SECRET_PROVIDERS_MAX; i++) {
        char spec[64];
        snprintf(spec, sizeof(spec), "p%d=/bin/true", i);
        assert_int_equal(vk_secret_providers_add(&p, spec, &err), 0);
    }
    assert_int_equal(p.n, VK_SECRET_PROVIDERS_MAX);
    assert_int_equal(vk_secret_providers_add(&p, "last=/bin/true", &err), VK_ETOOBIG);
    vk_secret_providers_release(&p);
    assert_int_equal(p.n, 0);
}

/* The request of DESIGN §8 on stdin, a minimal environment, no descriptor but 0-2, "/". */
static void test_good_provider(void **state)
{
    struct vk_secret_providers p;
    vk_secret_providers_init(&p);
    char body[2048];
    snprintf(body, sizeof(body),
             "cat > %s/req.json\n"
             "env > %s/env.txt\n"
             "ls /proc/self/fd > %s/fds.txt\n"
             "pwd > %s/pwd.txt\n"
             "printf '{\"value\": \"npm_s3cr3t\\\\n2nd\", \"extra\": 1}'",
             dir, dir, dir, dir);
    provider(&p, "good", body);
    setenv("VK_TEST_CANARY", "must-not-reach-the-provider", 1);
    int leak = open("/dev/null", O_RDONLY); /* no O_CLOEXEC: a careless library's */
    assert_true(leak > 2);
    json_t *claims = json_pack("{s:s, s:i}", "sub", "repo:acme/web:ref:refs/heads/main", "n", 3);
    struct vk_secret_request req = plain_req;
    req.claims = claims;
    req.environment = "production";
    struct vk_secret_value v = {NULL, 0};
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_secret_providers_resolve(&p, "good", &req, &v, &err);
    if (rc)
        fail_msg("%s", err.msg);
    close(leak);
    unsetenv("VK_TEST_CANARY");
    assert_int_equal(v.len, 14);
    assert_memory_equal(v.data, "npm_s3cr3t\n2nd", 15);

    char path[512];
    snprintf(path, sizeof(path), "%s/req.json", dir);
    json_error_t je;
    json_t *got = json_load_file(path, 0, &je);
    assert_non_null(got);
    assert_string_equal(json_string_value(json_object_get(got, "org")), "acme");
    assert_string_equal(json_string_value(json_object_get(got, "repository")), "acme/web");
    assert_string_equal(json_string_value(json_object_get(got, "name")), "NPM_TOKEN");
    assert_string_equal(json_string_value(json_object_get(got, "ref")), "refs/heads/main");
    assert_string_equal(json_string_value(json_object_get(got, "environment")), "production");
    assert_string_equal(json_string_value(json_object_get(got, "key")), "ci/npm");
    assert_true(json_equal(json_object_get(got, "claims"), claims));
    assert_int_equal(json_object_size(got), 7);
    json_decref(got);
    json_decref(claims);

    struct vk_buf b = VK_BUF_INIT(VK_MAX_SMALL);
    snprintf(path, sizeof(path), "%s/env.txt", dir);
    assert_int_equal(vk_buf_read_file(&b, path, &err), 0);
    assert_null(strstr(b.data, "VK_TEST_CANARY"));
    assert_null(strstr(b.data, "VK_SOURCE_DIR")); /* set by ctest for this process */
    assert_non_null(strstr(b.data, "PATH=/usr/local/bin:/usr/bin:/bin\n"));
    assert_non_null(strstr(b.data, "LC_ALL=C\n"));
    vk_buf_release(&b);
    snprintf(path, sizeof(path), "%s/fds.txt", dir);
    assert_int_equal(vk_buf_read_file(&b, path, &err), 0);
    /* ls's 0-2 and the directory it reads (3): the non-CLOEXEC `leak` did not get through */
    assert_string_equal(b.data, "0\n1\n2\n3\n");
    vk_buf_release(&b);
    snprintf(path, sizeof(path), "%s/pwd.txt", dir);
    assert_int_equal(vk_buf_read_file(&b, path, &err), 0);
    assert_string_equal(b.data, "/\n");
    vk_buf_release(&b);
    vk_secret_value_release(&v);
    assert_null(v.data);
    vk_secret_providers_release(&p);
}

static void test_garbage(void **state)
{
    struct vk_secret_providers p;
    vk_secret_providers_init(&p);
    provider(&p, "raw", "echo hunter2-the-raw-value");
    provider(&p, "trailing", "printf '{\"value\":\"abcdefgh\"} hunter2'");
    provider(&p, "array", "printf '[\"hunter2-value\"]'");
    provider(&p, "missing", "printf '{\"val\":\"hunter2-value\"}'");
    provider(&p, "number", "printf '{\"value\":123456789}'");
    provider(&p, "null", "printf '{\"value\":null}'");
    provider(&p, "short", "printf '{\"value\":\"abcde\"}'");
    provider(&p, "nul", "printf '{\"value\":\"abc\\\\u0000defgh\"}'");
    provider(&p, "dup", "printf '{\"value\":\"abcdefgh\",\"value\":\"ijklmnop\"}'");
    provider(&p, "empty", "exit 0");
    provider(&p, "binary", "printf '{\"value\":\"\\377\\376hunter2\"}'");
    static const struct {
        const char *name;
        int code;
        const char *words;
    } cases[] = {
        {"raw", VK_EPARSE, "no valid JSON"},    {"trailing", VK_EPARSE, "no valid JSON"},
        {"array", VK_EPARSE, "not an object"},  {"missing", VK_EPARSE, "without \"value\""},
        {"number", VK_EPARSE, "not a string"},  {"null", VK_EPARSE, "not a string"},
        {"short", VK_EINVAL, "shorter than 6"}, {"nul", VK_EPARSE, "no valid JSON"},
        {"dup", VK_EPARSE, "no valid JSON"},    {"empty", VK_EPARSE, "printed nothing"},
        {"binary", VK_EPARSE, "no valid JSON"},
    };
    for (size_t i = 0; i < VK_ARRAY_LEN(cases); i++) {
        struct vk_secret_value v = {NULL, 0};
        struct vk_err err;
        int rc = run(&p, cases[i].name, &v, &err);
        if (rc != cases[i].code || !strstr(err.msg, cases[i].words))
            fail_msg("%s: %d %s", cases[i].name, rc, err.msg);
        assert_null(v.data);
        /* jansson's own message quotes the input: ours must not */
        assert_null(strstr(err.msg, "hunter2"));
    }
    vk_secret_providers_release(&p);
}

static void test_hang(void **state)
{
    struct vk_secret_providers p;
    vk_secret_providers_init(&p);
    char body[512];
    snprintf(body, sizeof(body),
             "echo 'working on it' >&2\nsleep 60 &\necho $! > %s/hang.pid\nwait", dir);
    provider(&p, "hang", body);
    provider(&p, "silent", "exec >&- 2>&-\nsleep 60");
    assert_int_equal(vk_secret_providers_set_timeout(&p, "300ms", NULL), 0);
    struct vk_secret_value v = {NULL, 0};
    struct vk_err err;
    int64_t t0 = now_ms();
    int rc = run(&p, "hang", &v, &err);
    int64_t took = now_ms() - t0;
    assert_failed(rc, VK_ETIMEDOUT, &v, &err, "timed out after 300 ms");
    assert_non_null(strstr(err.msg, ": working on it"));
    assert_true(took >= 300);
    assert_true(took < 300 + 2000 * VK_TEST_SLOWDOWN);
    /* the whole group went: the sleep the script started too */
    pid_t child = read_pid("hang.pid");
    for (int i = 0; i < 100 && !dead(child); i++)
        usleep(10000);
    assert_true(dead(child));
    /* an endless stderr is read and dropped, and the deadline still holds */
    provider(&p, "babble", "yes 'a line of complaint' >&2");
    t0 = now_ms();
    rc = run(&p, "babble", &v, &err);
    assert_failed(rc, VK_ETIMEDOUT, &v, &err, ": a line of complaint");
    assert_true(now_ms() - t0 < 300 + 2000 * VK_TEST_SLOWDOWN);
    /* stdout and stderr closed at once, the process still running: the deadline holds */
    t0 = now_ms();
    rc = run(&p, "silent", &v, &err);
    assert_failed(rc, VK_ETIMEDOUT, &v, &err, "timed out");
    assert_true(now_ms() - t0 < 300 + 2000 * VK_TEST_SLOWDOWN);
    vk_secret_providers_release(&p);
}

static void test_too_long(void **state)
{
    struct vk_secret_providers p;
    vk_secret_providers_init(&p);
    /* 64 KiB + 1 and exactly 64 KiB, in clear and with every byte escaped as \u0061 */
    provider(&p, "over",
             "printf '{\"value\":\"'; head -c 65537 /dev/zero | tr '\\0' a; printf '\"}'");
    provider(&p, "max",
             "printf '{\"value\":\"'; head -c 65536 /dev/zero | tr '\\0' a; printf '\"}'");
    provider(&p, "escaped",
             "printf '{\"value\":\"'; head -c 65536 /dev/zero | sed 's/\\x0/\\\\u0061/g'; "
             "printf '\"}'");
    provider(&p, "flood", "yes '{\"value\":\"aaaaaaaaaaaaaaaaaaaaa\"}'");
    struct vk_secret_value v = {NULL, 0};
    struct vk_err err;
    assert_failed(run(&p, "over", &v, &err), VK_ETOOBIG, &v, &err, "longer than 65536");
    int rc = run(&p, "max", &v, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_int_equal(v.len, 65536);
    assert_int_equal(v.data[65535], 'a');
    vk_secret_value_release(&v);
    rc = run(&p, "escaped", &v, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_int_equal(v.len, 65536);
    vk_secret_value_release(&v);
    int64_t t0 = now_ms();
    assert_failed(run(&p, "flood", &v, &err), VK_ETOOBIG, &v, &err, "more than");
    assert_true(now_ms() - t0 < 2000 * VK_TEST_SLOWDOWN);
    vk_secret_providers_release(&p);
}

static void test_exit_status(void **state)
{
    struct vk_secret_providers p;
    vk_secret_providers_init(&p);
    provider(&p, "fail",
             "printf '{\"value\":\"a-good-looking-value\"}'\n"
             "printf '\\n\\n  vault: \\033[31mpermission denied\\033[0m\\r\\n2nd line\\n' >&2\n"
             "exit 1");
    provider(&p, "signal", "printf '{\"value\":\"a-good-looking-value\"}'; kill -9 $$");
    provider(&p, "noisy", "head -c 1000000 /dev/urandom >&2; exit 3");
    struct vk_secret_value v = {NULL, 0};
    struct vk_err err;
    assert_failed(run(&p, "fail", &v, &err), VK_EINVAL, &v, &err, "exit status 1");
    /* the first line of stderr, control bytes replaced */
    assert_non_null(strstr(err.msg, ": vault: ?[31mpermission denied?[0m"));
    assert_null(strstr(err.msg, "2nd line"));
    assert_null(strstr(err.msg, "a-good-looking-value"));
    assert_failed(run(&p, "signal", &v, &err), VK_EINVAL, &v, &err, "killed by SIGKILL");
    assert_failed(run(&p, "noisy", &v, &err), VK_EINVAL, &v, &err, "exit status 3");
    for (const char *c = err.msg; *c; c++)
        assert_true((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f);
    assert_true(strlen(err.msg) < 200);
    vk_secret_providers_release(&p);
}

static void test_stdout_games(void **state)
{
    struct vk_secret_providers p;
    vk_secret_providers_init(&p);
    char body[512];
    /* half a value, stdout closed, then a normal exit */
    provider(&p, "early", "printf '{\"value\":\"abcdefgh'; exec >&-; sleep 0.2; exit 0");
    /* a whole value, then a child keeps stdout open after the provider exited */
    snprintf(body, sizeof(body),
             "printf '{\"value\":\"abcdefgh\"}'\n(sleep 60; echo more) &\necho $! > %s/kid.pid\n"
             "exit 0",
             dir);
    provider(&p, "daemon", body);
    /* never reads its stdin, which is larger than a pipe's buffer */
    provider(&p, "deaf", "exec <&-; printf '{\"value\":\"abcdefgh\"}'");
    struct vk_secret_value v = {NULL, 0};
    struct vk_err err;
    assert_failed(run(&p, "early", &v, &err), VK_EPARSE, &v, &err, "no valid JSON");
    int64_t t0 = now_ms();
    assert_failed(run(&p, "daemon", &v, &err), VK_ECONFLICT, &v, &err, "kept its output open");
    assert_true(now_ms() - t0 < 5000 * VK_TEST_SLOWDOWN);
    pid_t kid = read_pid("kid.pid");
    for (int i = 0; i < 100 && !dead(kid); i++)
        usleep(10000);
    assert_true(dead(kid));

    json_t *claims = json_object();
    char pad[1000];
    memset(pad, 'x', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    for (int i = 0; i < 60; i++) {
        char k[16];
        snprintf(k, sizeof(k), "c%d", i);
        json_object_set_new(claims, k, json_string(pad));
    }
    struct vk_secret_request req = plain_req;
    req.claims = claims;
    for (int i = 0; i < 5; i++) {
        vk_err_clear(&err);
        int rc = vk_secret_providers_resolve(&p, "deaf", &req, &v, &err);
        if (rc)
            fail_msg("%s", err.msg);
        vk_secret_value_release(&v);
    }
    /* the request's own bound */
    json_object_set_new(claims, "big", json_string(pad));
    for (int i = 0; i < 10; i++) {
        char k[16];
        snprintf(k, sizeof(k), "d%d", i);
        json_object_set_new(claims, k, json_string(pad));
    }
    assert_failed(vk_secret_providers_resolve(&p, "deaf", &req, &v, &err), VK_ETOOBIG, &v, &err,
                  "request larger");
    json_decref(claims);
    vk_secret_providers_release(&p);
}

static void test_bad_request(void **state)
{
    struct vk_secret_providers p;
    vk_secret_providers_init(&p);
    provider(&p, "ok", "printf '{\"value\":\"abcdefgh\"}'");
    struct vk_secret_value v = {NULL, 0};
    struct vk_err err;
    json_t *arr = json_array();
    struct vk_secret_request req = plain_req;
    req.claims = arr;
    assert_failed(vk_secret_providers_resolve(&p, "ok", &req, &v, &err), VK_EINVAL, &v, &err,
                  "must be an object");
    json_decref(arr);
    req = plain_req;
    req.key = "\xff\xfe";
    assert_failed(vk_secret_providers_resolve(&p, "ok", &req, &v, &err), VK_EINVAL, &v, &err,
                  "not UTF-8");
    /* the executable vanished after start */
    char path[512];
    snprintf(path, sizeof(path), "%s/ok.sh", dir);
    assert_int_equal(unlink(path), 0);
    assert_failed(run(&p, "ok", &v, &err), VK_EIO, &v, &err, "cannot run");
    vk_secret_providers_release(&p);
}

struct par {
    struct vk_secret_providers *p;
    int fails;
};

static void *par_run(void *arg)
{
    struct par *a = arg;
    for (int i = 0; i < 10; i++) {
        struct vk_secret_value v = {NULL, 0};
        struct vk_err err;
        if (run(a->p, "cat", &v, &err) != 0 || v.len != 8 || memcmp(v.data, "abcdefgh", 8) != 0)
            a->fails++;
        vk_secret_value_release(&v);
    }
    return NULL;
}

/* Runs from several threads at once (the API's claim threads) do not mix up. */
static void test_threads(void **state)
{
    struct vk_secret_providers p;
    vk_secret_providers_init(&p);
    provider(&p, "cat", "cat >/dev/null; printf '{\"value\":\"abcdefgh\"}'");
    pthread_t t[4];
    struct par a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (struct par){&p, 0};
        assert_int_equal(pthread_create(&t[i], NULL, par_run, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(a[i].fails, 0);
    }
    vk_secret_providers_release(&p);
}

int main(void)
{
    /* what a server does: a provider that exits early must not kill us with SIGPIPE */
    signal(SIGPIPE, SIG_DFL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),       cmocka_unit_test(test_good_provider),
        cmocka_unit_test(test_garbage),      cmocka_unit_test(test_hang),
        cmocka_unit_test(test_too_long),     cmocka_unit_test(test_exit_status),
        cmocka_unit_test(test_stdout_games), cmocka_unit_test(test_bad_request),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
