/*
 * vulcan run FILE: run a workflow locally from start to end with the same
 * parser, orchestrator, API and workers as a server (an in-memory SQLite
 * store, a server on a free loopback port, one local worker process per
 * machine group), printing each fragment's output live and a summary.
 */
#include "cli/cli.h"
#include "vulcan/api.h"
#include "vulcan/orchestrator.h"
#include "vulcan/store.h"
#include "vulcan/telemetry.h"
#include "vulcan/workflow.h"

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: vulcan run FILE [--env K=V]... [--branch B] [--trigger T] [--base-path DIR]\n"
    "                       [--sandbox auto|bwrap|none] [--concurrency N] [--log-level L]\n"
    "                       [--commit REF] [-v]\n"
    "\n"
    "Run a workflow locally from start to end, with the same parser, scheduler and\n"
    "executor as a server: an in-memory store, a server on a free loopback port and\n"
    "one local worker per machine group. Each fragment's output is printed live with\n"
    "its name as prefix, then a summary.\n"
    "\n"
    "Inside a git work tree, fragments run against a snapshot of the work tree as it\n"
    "is (tracked and untracked non-ignored files, uncommitted changes included);\n"
    "with --commit REF, against a clean checkout of that commit. Outside a work tree\n"
    "a notice says so and fragments start in an empty directory.\n"
    "Exit status: 0 when the chain completed,\n"
    "1 when it failed or was cancelled, 2 on bad usage.\n"
    "\n"
    "  --env K=V          a variable for conditions and scripts (repeatable)\n"
    "  --branch B         $BRANCH for conditions and scripts (default: the current git\n"
    "                     branch, else main)\n"
    "  --trigger T        $TRIGGER (default manual)\n"
    "  --base-path DIR    resolve relative imports against DIR\n"
    "  --sandbox MODE     auto (bubblewrap when it works), bwrap or none (default auto)\n"
    "  --concurrency N    fragments each machine group runs at once (default 4)\n"
    "  --log-level LEVEL  level of the server's and workers' records (default warn;\n"
    "                     info with -v)\n"
    "  -v, --verbose      show those records on stderr; without -v they go to a file,\n"
    "                     named when the run fails (the output is the fragments' own)\n"
    "  --commit REF       run against a clean checkout of commit REF of the current\n"
    "                     repository instead of the work tree\n";

/* Between polls: wait a little; the first SIGINT/SIGTERM cancels the chain, the
 * second stops following. */
struct run_tick {
    sigset_t set;
    struct vk_orch *orch;
    const char *chain_id;
    bool cancelled;
};

static int run_tick(void *ctx)
{
    struct run_tick *t = ctx;
    struct timespec ts = {0, 100 * 1000000};
    int sig = sigtimedwait(&t->set, NULL, &ts);
    if (sig != SIGINT && sig != SIGTERM)
        return 0;
    if (t->cancelled)
        return VK_EAGAIN;
    fputs("\nvulcan run: cancelling the chain (again to stop waiting)\n", stderr);
    struct vk_err err;
    t->cancelled = true;
    return vk_orch_cancel(t->orch, t->chain_id, &err) < 0 ? VK_EAGAIN : 0;
}

/* Every machine group the workflow names. */
struct groups {
    const char *names[16];
    size_t n;
};

static int collect_group(void *ctx, const struct vk_wf_fragment *f, unsigned depth)
{
    struct groups *g = ctx;
    if (f->type != VK_WF_INLINE || !f->machine)
        return 0;
    for (size_t i = 0; i < g->n; i++) {
        if (strcmp(g->names[i], f->machine) == 0)
            return 0;
    }
    if (g->n == VK_ARRAY_LEN(g->names))
        return 1;
    g->names[g->n++] = f->machine;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void current_branch(char *out, size_t cap)
{
    snprintf(out, cap, "main");
    FILE *p = popen("git rev-parse --abbrev-ref HEAD 2>/dev/null", "r");
    if (!p)
        return;
    char line[256];
    if (fgets(line, sizeof(line), p)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] && strcmp(line, "HEAD") != 0)
            snprintf(out, cap, "%s", line);
    }
    pclose(p);
}

/*
 * Put the code to run into a bare snapshot repository `snap` and write the commit to
 * run into `sha`: the work tree as it is (through a temporary index, so the user's
 * index and refs are untouched), or the commit `ref` (`ref` and `snap` are passed through
 * the environment, never through the shell's parser). Returns 0, 1 when the current directory is
 * not in a git work tree, -1 on failure (git's message is on stderr).
 */
static int snapshot(const char *snap, const char *ref, char *sha, size_t cap)
{
    if (system("git rev-parse --is-inside-work-tree >/dev/null 2>&1") != 0)
        return 1;
    if ((ref && setenv("VULCAN_RUN_REF", ref, 1) != 0) || setenv("VULCAN_RUN_SNAP", snap, 1) != 0)
        return -1;
    static const char script[] =
        "set -e; snap=\"$VULCAN_RUN_SNAP\"; git init -q --bare \"$snap\"; "
        "if [ -n \"${VULCAN_RUN_REF:-}\" ]; then "
        "c=$(git rev-parse --verify --quiet \"$VULCAN_RUN_REF^{commit}\") || "
        "{ echo \"vulcan run: no commit '$VULCAN_RUN_REF'\" >&2; exit 1; }; "
        "else idx=\"$snap/vulcan-index\"; src=$(git rev-parse --path-format=absolute "
        "--git-path index); if [ -f \"$src\" ]; then cp \"$src\" \"$idx\"; fi; "
        "export GIT_INDEX_FILE=\"$idx\"; git add -A -- ':/'; tree=$(git write-tree); "
        "c=$(git -c user.name=vulcan -c user.email=vulcan@localhost commit-tree "
        "-m 'vulcan run: work tree snapshot' \"$tree\"); unset GIT_INDEX_FILE; fi; "
        "git push -q \"$snap\" \"$c:refs/heads/main\" >&2; echo \"$c\"";
    FILE *p = popen(script, "r");
    if (!p)
        return -1;
    char line[128] = ""; /* a SHA-1 or SHA-256 object name */
    bool got = fgets(line, sizeof(line), p) != NULL;
    int st = pclose(p);
    unsetenv("VULCAN_RUN_REF");
    unsetenv("VULCAN_RUN_SNAP");
    line[strcspn(line, "\n")] = '\0';
    size_t n = strlen(line);
    if (!got || st != 0 || n < 40 || n >= cap)
        return -1;
    memcpy(sha, line, n + 1);
    return 0;
}

/* A mkstemps/mkdtemp template "$TMPDIR/vulcan-run-XXXXXX<suffix>" (/tmp without TMPDIR). */
static void tmp_name(char *out, size_t cap, const char *suffix)
{
    const char *t = getenv("TMPDIR");
    if (!t || !*t || strlen(t) > cap / 2)
        t = "/tmp";
    snprintf(out, cap, "%s/vulcan-run-XXXXXX%s", t, suffix);
}

int vk__cli_run(int argc, char **argv)
{
    if (vk__cli_wants_help(argc, argv)) {
        fputs(usage_text, stdout);
        return 0;
    }
    const char *branch = NULL, *trigger = "manual", *base_path = NULL, *sandbox = "auto",
               *log_level = NULL, *commit = NULL;
    long long concurrency = 4;
    bool verbose = false;
    struct vk__cli_list envs = {.n = 0};
    struct vk__cli_opt opts[] = {
        {"env", 'e', VK_CLI_LIST, &envs, NULL, false, 0, 0},
        {"branch", 0, VK_CLI_STR, &branch, NULL, false, 0, 0},
        {"trigger", 0, VK_CLI_STR, &trigger, NULL, false, 0, 0},
        {"base-path", 0, VK_CLI_STR, &base_path, NULL, false, 0, 0},
        {"sandbox", 0, VK_CLI_STR, &sandbox, "VULCAN_SANDBOX", false, 0, 0},
        {"concurrency", 'j', VK_CLI_INT, &concurrency, NULL, false, 1, 64},
        {"log-level", 0, VK_CLI_STR, &log_level, "VULCAN_LOG_LEVEL", false, 0, 0},
        {"commit", 0, VK_CLI_STR, &commit, NULL, false, 0, 0},
        {"verbose", 'v', VK_CLI_FLAG, &verbose, NULL, false, 0, 0},
    };
    const char *pos[1];
    int npos = 0;
    int rc = vk__cli_opts_parse("run", argc, argv, opts, VK_ARRAY_LEN(opts), pos, &npos, 1);
    if (rc)
        return rc;
    if (npos != 1) {
        fputs("vulcan run: one workflow FILE is needed; see 'vulcan run --help'\n", stderr);
        vk__cli_opts_release(opts, VK_ARRAY_LEN(opts));
        return 2;
    }
    if (!log_level)
        log_level = verbose ? "info" : "warn";
    enum vk_log_level lv;
    if (vk_log_level_parse(log_level, &lv) != 0) {
        fprintf(stderr, "vulcan run: unknown log level '%s'\n", log_level);
        vk__cli_opts_release(opts, VK_ARRAY_LEN(opts));
        return 2;
    }
    vk_log_configure(lv, VK_LOG_TEXT, 2);

    struct vk_cond_var vars[32];
    size_t nvars = 0;
    for (size_t i = 0; i < envs.n; i++) {
        char *eq = strchr(envs.items[i], '=');
        if (!eq || eq == envs.items[i] || nvars == VK_ARRAY_LEN(vars)) {
            fprintf(stderr, "vulcan run: --env needs KEY=VALUE, not '%s'\n", envs.items[i]);
            vk__cli_opts_release(opts, VK_ARRAY_LEN(opts));
            return 2;
        }
        *eq = '\0';
        vars[nvars].name = envs.items[i];
        vars[nvars].value = eq + 1;
        nvars++;
    }
    char branch_buf[256];
    if (!branch) {
        current_branch(branch_buf, sizeof(branch_buf));
        branch = branch_buf;
    }

    int status = 1;
    struct vk_workflow *wf = NULL;
    struct vk_store *store = NULL;
    struct vk_orch *orch = NULL;
    struct vk_api *api = NULL;
    /* Server and worker records go to a log file unless --verbose: the terminal shows
     * the fragments' output only. The file is kept (and named) when the run fails. */
    char log_path[4096];
    tmp_name(log_path, sizeof(log_path), ".log");
    int log_fd = -1;
    if (!verbose) {
        log_fd = mkstemps(log_path, 4);
        if (log_fd < 0) {
            fprintf(stderr, "vulcan run: cannot create a log file: %s\n", strerror(errno));
            vk__cli_opts_release(opts, VK_ARRAY_LEN(opts));
            return 1;
        }
        vk_log_configure(lv, VK_LOG_TEXT, log_fd);
    }
    struct vk__cli_local local;
    vk__cli_local_init(&local, log_fd);
    bool color = isatty(1) && !getenv("NO_COLOR");
    char work[1024];
    tmp_name(work, sizeof(work), "");
    bool have_work = false;
    struct vk_buf src = VK_BUF_INIT(VK_MAX_FILE);
    struct vk_err err;
    vk_err_clear(&err);

    struct vk_wf_options wo = {.base_path = base_path};
    struct vk_wf_error we;
    vk_wf_error_init(&we);
    if (vk_buf_read_file(&src, pos[0], &err) < 0) {
        fprintf(stderr, "vulcan run: %s\n", err.msg);
        goto out;
    }
    if (vk_workflow_load_buffer(src.data, src.len, pos[0], &wo, &wf, &we) != 0) {
        fputs(we.rendered ? we.rendered : we.msg, stderr);
        vk_wf_error_release(&we);
        goto out;
    }
    struct groups groups = {.n = 0};
    if (vk_workflow_walk(wf, collect_group, &groups) != 0) {
        fputs("vulcan run: the workflow names more than 16 machine groups\n", stderr);
        goto out;
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    if (vk_store_open("sqlite::memory:", &store, &err) < 0 ||
        vk_orch_new(store, NULL, &orch, &err) < 0) {
        fprintf(stderr, "vulcan run: %s\n", err.msg);
        goto out;
    }
    struct vk_api_opts ao = {.listen = "127.0.0.1:0", .store = store, .orch = orch};
    if (vk_api_new(&ao, &api, &err) < 0) {
        fprintf(stderr, "vulcan run: %s\n", err.msg);
        goto out;
    }
    vk_orch_set_ready_hook(orch, vk_api_wake, api);
    if (vk_orch_start(orch, &err) < 0 || vk_api_start(api, &err) < 0) {
        fprintf(stderr, "vulcan run: %s\n", err.msg);
        goto out;
    }
    if (!mkdtemp(work)) {
        fprintf(stderr, "vulcan run: cannot create a work directory: %s\n", strerror(errno));
        goto out;
    }
    have_work = true;
    char snap[4096], sha[72];
    snprintf(snap, sizeof(snap), "%s/source.git", work);
    int sn = snapshot(snap, commit, sha, sizeof(sha));
    if (sn < 0) {
        fputs("vulcan run: cannot take a snapshot of the git work tree\n", stderr);
        goto out;
    }
    if (sn == 1 && commit) {
        fputs("vulcan run: --commit needs a git work tree; none here\n", stderr);
        goto out;
    }
    if (sn == 1)
        fputs("vulcan run: not inside a git work tree; fragments start in an empty "
              "directory\n",
              stderr);
    char url[64], conc[16];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", vk_api_port(api));
    snprintf(conc, sizeof(conc), "%lld", concurrency);
    const char *extra[] = {"--sandbox", sandbox,        "--concurrency", conc, "--log-level",
                           log_level,   "--log-format", "text",          NULL, NULL,
                           NULL};
    /* The default pids/memory/cpu limits need cgroups, which an unprivileged user cannot
     * make here: a developer's own run then goes without them, and says so. */
    if (geteuid() != 0) {
        extra[8] = "--cgroups";
        extra[9] = "never";
        fputs("vulcan run: not root: fragments run without cgroup limits (pids, memory, cpu)\n",
              stderr);
    }
    /* One worker per machine group, so routing is the same as on a real fleet. */
    for (size_t g = 0; g < groups.n; g++) {
        char root[4096];
        snprintf(root, sizeof(root), "%s/%zu", work, g);
        if (mkdir(root, 0700) != 0 ||
            vk__cli_local_add(&local, 1, url, &groups.names[g], 1, root, extra, &err) < 0) {
            fprintf(stderr, "vulcan run: cannot start a worker: %s\n", err.msg);
            goto out;
        }
    }

    char chain_id[VK_UUID_LEN];
    struct vk_orch_context ctx = {.source_file = pos[0],
                                  .repository_url = sn == 0 ? snap : NULL,
                                  .commit_sha = sn == 0 ? sha : NULL,
                                  .branch = branch,
                                  .trigger = trigger,
                                  .env = vars,
                                  .nenv = nvars};
    if (vk_orch_submit(orch, wf, src.data, &ctx, chain_id, NULL, &err) < 0) {
        fprintf(stderr, "vulcan run: %s\n", err.msg);
        goto out;
    }
    struct vk_http_client_opts co = {.base_url = url};
    struct vk_http_client *cl = NULL;
    if (vk_http_client_new(&co, &cl, &err) < 0) {
        fprintf(stderr, "vulcan run: %s\n", err.msg);
        goto out;
    }
    struct run_tick tick = {.set = set, .orch = orch, .chain_id = chain_id};
    json_t *final = NULL;
    if (vk__cli_follow(cl, chain_id, color, run_tick, &tick, &final, &err) < 0)
        fprintf(stderr, "vulcan run: %s\n", err.msg);
    if (final) {
        vk__cli_print_summary(final, 0);
        const char *st = json_string_value(json_object_get(final, "status"));
        status = st && strcmp(st, "completed") == 0 ? 0 : 1;
        json_decref(final);
    }
    vk_http_client_free(cl);
out:
    vk__cli_local_stop(&local, 5000);
    if (api)
        vk_api_stop(api);
    vk_api_free(api);
    vk_orch_free(orch);
    vk_store_close(store);
    vk_workflow_free(wf);
    vk_buf_release(&src);
    if (have_work)
        nftw(work, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (log_fd >= 0) {
        vk_log_configure(VK_LOG_WARN, VK_LOG_TEXT, 2);
        struct stat st;
        bool empty = fstat(log_fd, &st) == 0 && st.st_size == 0;
        close(log_fd);
        if (status == 0 || empty)
            unlink(log_path);
        else
            fprintf(stderr, "vulcan run: server and worker records are in %s\n", log_path);
    }
    vk__cli_opts_release(opts, VK_ARRAY_LEN(opts));
    return status;
}
