/*
 * vulcan worker --server URL --group NAME [...]
 * Run a worker agent that pulls fragments from a Vulcan server and runs them
 * (docs/worker.md). SIGTERM/SIGINT stop it gracefully; a second one ends the
 * grace period at once.
 */
#include "cli/cli.h"
#include "vulcan/auth.h"
#include "vulcan/telemetry.h"
#include "vulcan/worker.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: vulcan worker --server URL --group NAME [--group NAME2 ...] [options]\n"
    "\n"
    "Run a worker that registers with a Vulcan server, asks for fragments of its\n"
    "machine groups and runs them (see docs/worker.md).\n"
    "\n"
    "  --server URL        server base URL ($VULCAN_SERVER, default http://127.0.0.1:8080)\n"
    "  --registration-token-file PATH  the vk_reg_ token a server with --require-auth\n"
    "                      asks for (also $VULCAN_REGISTRATION_TOKEN, or\n"
    "                      --registration-token TOKEN, which other users can see in ps\n"
    "                      until the worker has read it); made by\n"
    "                      'vulcan admin create-registration-token'\n"
    "  --ca-cert FILE      PEM certificates of the CA that signed an https:// server's\n"
    "                      certificate ($VULCAN_CA_CERT; default: the system's CAs)\n"
    "  --group NAME        machine group served; repeat for several\n"
    "                      ($VULCAN_WORKER_GROUPS, a comma-separated list)\n"
    "  --concurrency N     fragments run at once ($VULCAN_WORKER_CONCURRENCY, default 1)\n"
    "  --work-dir DIR      workspaces and git mirrors ($VULCAN_WORK_DIR, default ./vulcan-work)\n"
    "  --sandbox MODE      auto | bwrap | none (default auto: bubblewrap when it works)\n"
    "  --sandbox-ro PATH   bind the host PATH read-only into the sandbox at the same\n"
    "                      path (tools such as /opt/toolchains); repeat for several\n"
    "  --sandbox-rw PATH   the same, writable (a shared cache); repeat for several\n"
    "  --name NAME         worker name shown by the server (default HOSTNAME-PID)\n"
    "  --grace SECONDS     on SIGTERM, how long running fragments may go on before they\n"
    "                      are cancelled and handed back (default 60)\n"
    "  --wait SECONDS      long-poll wait asked of the server (default 30)\n"
    "  --timeout SECONDS   script timeout when the fragment has none (default 3600)\n"
    "  --output-cap BYTES  output kept per fragment attempt (default 16777216)\n"
    "  --memory BYTES      cgroup memory limit per fragment attempt, with an optional\n"
    "                      K, M or G suffix, or none (default: half the RAM, at most 4G)\n"
    "  --pids N            cgroup process limit per fragment attempt, or none\n"
    "                      (default 4096: a fork bomb stops there)\n"
    "  --cpus MILLICORES   cgroup CPU quota per fragment attempt, 1000 = one CPU, or none\n"
    "                      (default: every online CPU)\n"
    "  --cgroups MODE      auto | always | never: a cgroup per fragment only when a limit\n"
    "                      is set (auto, default), for every fragment so that processes\n"
    "                      leaving the process group are killed too (always), or never\n"
    "                      (no limits at all: the explicit opt-out). With auto or always\n"
    "                      and no writable cgroup the worker refuses to start\n"
    "  --shell MODE        auto | bash | sh: /bin/sh for plain scripts, else bash -e -o\n"
    "                      pipefail (auto, default), always bash, or always sh\n"
    "  --keep-workspace    do not remove workspaces after a run (debugging)\n"
    "  --no-network        fail fragments that ask for the network (`network #true`)\n"
    "                      instead of running them\n"
    "  --log-level L       debug | info | warn | error ($VULCAN_LOG_LEVEL, default info)\n"
    "  --log-format F      json | text (default json)\n"
    "  --otlp-endpoint URL send spans (execute and its steps) over OTLP/HTTP\n"
    "                      ($VULCAN_OTLP_ENDPOINT, e.g. http://collector:4318)\n"
    "  --metrics-listen ADDR:PORT  serve this worker's GET /metrics (Prometheus format)\n"
    "\n"
    "SIGTERM or SIGINT: stop asking for work, let running fragments finish within\n"
    "the grace period, hand the others back to the server, deregister, exit 0.\n"
    "A second signal ends the grace period at once.\n"
    "Exit status 1 when the server refuses the worker's credentials (registration token\n"
    "missing, wrong, used up or not for these groups; the worker revoked).\n";

/* Process-wide: the worker the signal handler stops (one per process). */
static struct {
    struct vk_worker *volatile worker;
} sig_state;

static void on_stop_signal(int sig)
{
    (void)sig;
    struct vk_worker *w = sig_state.worker;
    if (w)
        vk_worker_stop(w);
}

/* Seconds as a plain number ("0.5", "60") or a duration ("1m30s"). */
static int parse_seconds_ms(const char *s, int64_t *ms)
{
    char *end = NULL;
    errno = 0;
    double d = strtod(s, &end);
    if (end != s && *end == '\0' && errno == 0 && isfinite(d) && d >= 0 && d < 1e9) {
        *ms = (int64_t)(d * 1000.0 + 0.5);
        return 0;
    }
    return vk_time_duration_parse(s, strlen(s), ms);
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0 || v > max || s[0] == '-')
        return VK_EINVAL;
    *out = v;
    return 0;
}

struct worker_args {
    struct vk_worker_opts o;
    bool memory_set, pids_set, cpus_set; /* given on the command line (a number or none) */
    const char *groups[VK_WORKER_MAX_GROUPS];
    const char *bind_ro[VK_EXEC_MAX_BINDS], *bind_rw[VK_EXEC_MAX_BINDS];
    char *env_groups; /* owned copy of $VULCAN_WORKER_GROUPS, split in place */
    char *reg_token;  /* owned; wiped and freed by args_release */
    enum vk_log_level level;
    enum vk_log_format format;
};

/*
 * A limit: "none" or 0 (no limit), or a number, with `sized` an optional K/M/G/T suffix
 * (powers of 1024). Returns 0 or VK_EINVAL (overflow, junk).
 */
static int parse_limit(const char *s, bool sized, uint64_t max, uint64_t *out)
{
    if (strcmp(s, "none") == 0) {
        *out = 0;
        return 0;
    }
    char num[32];
    size_t len = strlen(s);
    if (len == 0 || len >= sizeof num)
        return VK_EINVAL;
    memcpy(num, s, len + 1);
    static const char suffixes[] = "KMGT";
    unsigned shift = 0;
    const char *sf = sized && len > 1 ? strchr(suffixes, num[len - 1] & ~0x20) : NULL;
    if (sf && *sf) {
        shift = 10u * (unsigned)(sf - suffixes + 1);
        num[--len] = '\0';
    }
    uint64_t v;
    if (parse_u64(num, max >> shift, &v) != 0)
        return VK_EINVAL;
    *out = v << shift;
    return 0;
}

/* The default limits (docs/security.md): pids 4096, memory half the RAM up to 4 GiB, every
 * online CPU. --cgroups never drops them; an explicit limit with it is a usage error. */
static int apply_default_limits(struct worker_args *a)
{
    if (a->o.cgroups == VK_EXEC_CGROUPS_NEVER) {
        if ((a->memory_set && a->o.memory_limit_bytes) || (a->pids_set && a->o.pids_limit) ||
            (a->cpus_set && a->o.cpu_millis)) {
            fputs("vulcan worker: --memory, --pids and --cpus need cgroups; drop them or "
                  "--cgroups never\n",
                  stderr);
            return 2;
        }
        return 0;
    }
    if (!a->pids_set)
        a->o.pids_limit = 4096;
    if (!a->memory_set) {
        long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
        uint64_t half = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize / 2 : 0;
        uint64_t cap = UINT64_C(4) << 30;
        a->o.memory_limit_bytes = half && half < cap ? half : cap;
    }
    if (!a->cpus_set) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        a->o.cpu_millis = (uint32_t)(n > 0 && n < 4000000 ? n : 1) * 1000u;
    }
    return 0;
}

static int bad(const char *what, const char *val)
{
    fprintf(stderr, "vulcan worker: invalid %s '%s'; see 'vulcan worker --help'\n", what, val);
    return 2;
}

static int add_group(struct worker_args *a, const char *g)
{
    if (!*g)
        return 0;
    if (a->o.ngroups == VK_WORKER_MAX_GROUPS) {
        fprintf(stderr, "vulcan worker: too many groups (at most %d)\n", VK_WORKER_MAX_GROUPS);
        return 2;
    }
    a->groups[a->o.ngroups++] = g;
    return 0;
}

static void args_release(struct worker_args *a)
{
    vk_mem_free(a->env_groups);
    if (a->reg_token) {
        vk_auth_wipe(a->reg_token, strlen(a->reg_token));
        vk_mem_free(a->reg_token);
    }
    a->env_groups = a->reg_token = NULL;
}

/* Keep a copy of the registration token `v` and wipe `v` in place (argv, environment), so
 * that ps and /proc/PID/environ no longer show it. */
static void take_token(struct worker_args *a, char *v)
{
    if (a->reg_token) {
        vk_auth_wipe(a->reg_token, strlen(a->reg_token));
        vk_mem_free(a->reg_token);
    }
    size_t n = strlen(v);
    while (n && (v[n - 1] == '\n' || v[n - 1] == '\r' || v[n - 1] == ' '))
        n--;
    a->reg_token = vk_mem_xalloc(n + 1);
    memcpy(a->reg_token, v, n);
    a->reg_token[n] = '\0';
    memset(v, 'x', strlen(v));
}

static int token_file(struct worker_args *a, const char *path)
{
    struct vk_buf b = VK_BUF_INIT(4096);
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_buf_read_file(&b, path, &err) < 0) {
        fprintf(stderr, "vulcan worker: cannot read the registration token file '%s': %s\n", path,
                err.msg);
        vk_buf_release(&b);
        return 2;
    }
    take_token(a, b.data ? b.data : (char[]){""});
    vk_auth_wipe(b.data, b.len);
    vk_buf_release(&b);
    return 0;
}

static int apply_env(struct worker_args *a)
{
    char *tok = getenv("VULCAN_REGISTRATION_TOKEN");
    if (tok && *tok) {
        take_token(a, tok);
        unsetenv("VULCAN_REGISTRATION_TOKEN"); /* scripts never inherit it */
    }
    const char *v = getenv("VULCAN_SERVER");
    if (v && *v)
        a->o.server_url = v;
    v = getenv("VULCAN_CA_CERT");
    if (v && *v)
        a->o.ca_file = v;
    v = getenv("VULCAN_WORK_DIR");
    if (v && *v)
        a->o.work_dir = v;
    v = getenv("VULCAN_WORKER_CONCURRENCY");
    uint64_t n;
    if (v && *v) {
        if (parse_u64(v, VK_WORKER_MAX_CONCURRENCY, &n) != 0 || n == 0)
            return bad("VULCAN_WORKER_CONCURRENCY", v);
        a->o.concurrency = (unsigned)n;
    }
    v = getenv("VULCAN_LOG_LEVEL");
    if (v && *v && vk_log_level_parse(v, &a->level) != 0)
        return bad("VULCAN_LOG_LEVEL", v);
    v = getenv("VULCAN_OTLP_ENDPOINT");
    if (v && *v)
        a->o.otlp_endpoint = v;
    return 0;
}

/* Groups from the environment, used only when no --group was given. */
static int env_groups(struct worker_args *a)
{
    const char *v = getenv("VULCAN_WORKER_GROUPS");
    if (!v || !*v)
        return 0;
    a->env_groups = vk_mem_xstrdup(v);
    char *save = NULL;
    for (char *t = strtok_r(a->env_groups, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        char *e = t + strlen(t);
        while (e > t && e[-1] == ' ')
            *--e = '\0';
        int rc = add_group(a, t);
        if (rc)
            return rc;
    }
    return 0;
}

/* One option with its value; returns 0, or the exit status for bad usage. */
static int option(struct worker_args *a, const char *opt, const char *val)
{
    uint64_t n;
    int64_t ms;
    if (strcmp(opt, "--server") == 0) {
        a->o.server_url = val;
    } else if (strcmp(opt, "--ca-cert") == 0) {
        a->o.ca_file = val;
    } else if (strcmp(opt, "--group") == 0) {
        if (!*val)
            return bad("group", val);
        return add_group(a, val);
    } else if (strcmp(opt, "--concurrency") == 0) {
        if (parse_u64(val, VK_WORKER_MAX_CONCURRENCY, &n) != 0 || n == 0)
            return bad("concurrency", val);
        a->o.concurrency = (unsigned)n;
    } else if (strcmp(opt, "--work-dir") == 0) {
        a->o.work_dir = val;
    } else if (strcmp(opt, "--sandbox") == 0) {
        if (vk_exec_sandbox_parse(val, &a->o.sandbox) != 0)
            return bad("sandbox mode", val);
    } else if (strcmp(opt, "--sandbox-ro") == 0 || strcmp(opt, "--sandbox-rw") == 0) {
        bool ro = opt[11] == 'o';
        size_t *nb = ro ? &a->o.nbind_ro : &a->o.nbind_rw;
        if (val[0] != '/' || *nb >= VK_EXEC_MAX_BINDS)
            return bad(ro ? "--sandbox-ro path (absolute, at most 32)"
                          : "--sandbox-rw path (absolute, at most 32)",
                       val);
        (ro ? a->bind_ro : a->bind_rw)[(*nb)++] = val;
        a->o.bind_ro = a->bind_ro;
        a->o.bind_rw = a->bind_rw;
    } else if (strcmp(opt, "--name") == 0) {
        a->o.name = val;
    } else if (strcmp(opt, "--grace") == 0) {
        if (parse_seconds_ms(val, &ms) != 0)
            return bad("grace period", val);
        a->o.grace_ms = ms == 0 ? VK_WORKER_NO_GRACE : ms;
    } else if (strcmp(opt, "--wait") == 0) {
        if (parse_u64(val, VK_WORKER_MAX_WAIT_S, &n) != 0 || n == 0)
            return bad("wait", val);
        a->o.wait_s = (unsigned)n;
    } else if (strcmp(opt, "--timeout") == 0) {
        if (parse_seconds_ms(val, &ms) != 0 || ms <= 0)
            return bad("timeout", val);
        a->o.default_timeout_ms = ms;
    } else if (strcmp(opt, "--output-cap") == 0) {
        if (parse_u64(val, UINT64_C(1) << 32, &n) != 0 || n == 0)
            return bad("output cap", val);
        a->o.output_cap = n;
    } else if (strcmp(opt, "--memory") == 0) {
        if (parse_limit(val, true, UINT64_MAX, &n) != 0)
            return bad("memory limit", val);
        a->o.memory_limit_bytes = n;
        a->memory_set = true;
    } else if (strcmp(opt, "--pids") == 0) {
        if (parse_limit(val, false, UINT32_MAX, &n) != 0)
            return bad("pids limit", val);
        a->o.pids_limit = (uint32_t)n;
        a->pids_set = true;
    } else if (strcmp(opt, "--cpus") == 0) {
        if (parse_limit(val, false, UINT32_MAX, &n) != 0)
            return bad("cpu quota", val);
        a->o.cpu_millis = (uint32_t)n;
        a->cpus_set = true;
    } else if (strcmp(opt, "--cgroups") == 0) {
        if (vk_exec_cgroups_parse(val, &a->o.cgroups) != 0)
            return bad("cgroups mode", val);
    } else if (strcmp(opt, "--shell") == 0) {
        if (vk_exec_shell_parse(val, &a->o.shell) != 0)
            return bad("shell", val);
    } else if (strcmp(opt, "--log-level") == 0) {
        if (vk_log_level_parse(val, &a->level) != 0)
            return bad("log level", val);
    } else if (strcmp(opt, "--log-format") == 0) {
        if (vk_log_format_parse(val, &a->format) != 0)
            return bad("log format", val);
    } else if (strcmp(opt, "--otlp-endpoint") == 0) {
        a->o.otlp_endpoint = val;
    } else if (strcmp(opt, "--metrics-listen") == 0) {
        a->o.metrics_listen = val;
    } else if (strcmp(opt, "--registration-token") == 0) {
        take_token(a, (char *)val); /* argv memory: ps shows the x's from now on */
    } else if (strcmp(opt, "--registration-token-file") == 0) {
        return token_file(a, val);
    } else {
        fprintf(stderr, "vulcan worker: unknown option '%s'; see 'vulcan worker --help'\n", opt);
        return 2;
    }
    return 0;
}

static int parse_args(struct worker_args *a, int argc, char **argv)
{
    int rc = apply_env(a);
    if (rc)
        return rc;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--keep-workspace") == 0) {
            a->o.keep_workspace = true;
            continue;
        }
        if (strcmp(arg, "--no-network") == 0) {
            a->o.no_network = true;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, "vulcan worker: unexpected argument '%s'\n", arg);
            return 2;
        }
        char opt[64];
        const char *val;
        const char *eq = strchr(arg, '=');
        if (eq) {
            size_t n = (size_t)(eq - arg);
            if (n >= sizeof(opt))
                return bad("option", arg);
            memcpy(opt, arg, n);
            opt[n] = '\0';
            val = eq + 1;
        } else {
            snprintf(opt, sizeof(opt), "%s", arg);
            if (i + 1 >= argc) {
                fprintf(stderr, "vulcan worker: %s needs a value\n", arg);
                return 2;
            }
            val = argv[++i];
        }
        rc = option(a, opt, val);
        if (rc)
            return rc;
    }
    if (a->o.ngroups == 0) {
        rc = env_groups(a);
        if (rc)
            return rc;
    }
    if (a->o.ngroups == 0) {
        fputs("vulcan worker: no machine group; use --group NAME or $VULCAN_WORKER_GROUPS\n",
              stderr);
        return 2;
    }
    a->o.groups = a->groups;
    return apply_default_limits(a);
}

int vk__cli_worker(int argc, char **argv)
{
    if (vk__cli_wants_help(argc, argv)) {
        fputs(usage_text, stdout);
        return 0;
    }
    struct worker_args a;
    memset(&a, 0, sizeof(a));
    a.level = VK_LOG_INFO;
    a.format = VK_LOG_JSON;
    int status = parse_args(&a, argc, argv);
    if (status) {
        args_release(&a);
        return status;
    }
    vk_log_configure(a.level, a.format, -1);
    a.o.registration_token = a.reg_token;

    struct vk_worker *w = NULL;
    struct vk_err err;
    vk_err_clear(&err);
    int nrc = vk_worker_new(&a.o, &w, &err);
    if (a.reg_token) { /* the worker has its own copy */
        vk_auth_wipe(a.reg_token, strlen(a.reg_token));
        vk_mem_free(a.reg_token);
        a.reg_token = NULL;
    }
    if (nrc != 0) {
        fprintf(stderr, "vulcan worker: %s\n", err.msg);
        args_release(&a);
        return err.code == VK_EINVAL ? 2 : 1;
    }
    sig_state.worker = w;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    status = 0;
    if (vk_worker_run(w, &err) != 0) {
        fprintf(stderr, "vulcan worker: %s\n", err.msg);
        status = 1;
    }
    signal(SIGTERM, SIG_IGN); /* the worker is about to be freed */
    signal(SIGINT, SIG_IGN);
    sig_state.worker = NULL;
    vk_worker_free(w);
    args_release(&a);
    return status;
}
