/*
 * Benchmark of the trigger library's hot paths: webhook verify + parse of a
 * GitHub push, repository URL comparison, cron next-fire in a DST zone.
 * Usage: triggers [FIXTURE_DIR] (default tests/fixtures).
 */
#include "vulcan/triggers.h"

#include <stdio.h>
#include <string.h>

static double per_op_us(int64_t ns, long n)
{
    return (double)ns / 1000.0 / (double)n;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/fixtures";
    char path[1024];
    snprintf(path, sizeof(path), "%s/github/push.json", dir);
    struct vk_buf body = VK_BUF_INIT(VK_TRIGGERS_MAX_BODY);
    struct vk_err err = {0};
    if (vk_buf_read_file(&body, path, &err) != 0) {
        fprintf(stderr, "%s: %s\n", path, err.msg);
        return 1;
    }
    char sig[128];
    if (vk_triggers_hook_sign(VK_TRIGGERS_GITHUB, body.data, body.len, "secret", sig,
                              sizeof(sig)) != 0)
        return 1;
    struct vk_triggers_header h[3] = {
        {"X-GitHub-Event", "push"}, {"X-GitHub-Delivery", "d"}, {"X-Hub-Signature-256", sig}};
    struct vk_triggers_headers set = {h, 3};

    long n = 20000;
    int64_t t0 = vk_time_mono_ns();
    for (long i = 0; i < n; i++) {
        struct vk_triggers_event *ev = NULL;
        if (vk_triggers_hook_verify(VK_TRIGGERS_GITHUB, vk_triggers_header_kv, &set, body.data,
                                    body.len, "secret", &err) != 0 ||
            vk_triggers_hook_parse(VK_TRIGGERS_GITHUB, vk_triggers_header_kv, &set, body.data,
                                   body.len, &ev, &err) != 0)
            return 1;
        vk_triggers_event_free(ev);
    }
    int64_t t1 = vk_time_mono_ns();
    printf("webhook verify+parse (github push, %zu bytes): %.2f us/op\n", body.len,
           per_op_us(t1 - t0, n));

    n = 200000;
    t0 = vk_time_mono_ns();
    long same = 0;
    for (long i = 0; i < n; i++)
        same += vk_triggers_url_same("git@github.com:Octo-Org/Hello-Vulcan.git",
                                     "https://github.com/octo-org/hello-vulcan");
    t1 = vk_time_mono_ns();
    printf("vk_triggers_url_same: %.3f us/op (%ld same)\n", per_op_us(t1 - t0, n), same);

    struct vk_tz *tz = NULL;
    struct vk_cron c;
    if (vk_cron_tz_load("Europe/Amsterdam", &tz, &err) != 0 ||
        vk_cron_parse("*/15 9-17 * * 1-5", &c, &err) != 0)
        return 1;
    n = 100000;
    int64_t t = 1767225600000LL; /* 2026-01-01 */
    t0 = vk_time_mono_ns();
    for (long i = 0; i < n; i++)
        if (vk_cron_next(&c, tz, t, &t) != 0)
            return 1;
    t1 = vk_time_mono_ns();
    char end[VK_TIME_LEN];
    vk_time_format(t, end);
    printf("vk_cron_next (*/15 9-17 * * 1-5, Europe/Amsterdam): %.3f us/op (reached %s)\n",
           per_op_us(t1 - t0, n), end);
    if (vk_cron_parse("0 0 29 2 *", &c, &err) != 0)
        return 1;
    n = 10000;
    t0 = vk_time_mono_ns();
    for (long i = 0; i < n; i++) {
        int64_t next;
        if (vk_cron_next(&c, tz, 1767225600000LL, &next) != 0)
            return 1;
    }
    t1 = vk_time_mono_ns();
    printf("vk_cron_next (0 0 29 2 *, sparse): %.3f us/op\n", per_op_us(t1 - t0, n));
    vk_cron_tz_free(tz);
    vk_buf_release(&body);
    return 0;
}
