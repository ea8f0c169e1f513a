/*
 * executor — run ONE fragment attempt on a worker: workspace, checkout,
 * environment, sandbox, limits and output capture.
 *
 * The worker agent (register, heartbeat, long-poll, upload) sits on top of this
 * module and calls vk_exec_run() once per claimed fragment attempt, on the
 * thread that owns the attempt's concurrency slot. One attempt goes:
 *
 *   1. a fresh, empty workspace `<work_dir>/<fragment_id>-<attempt>` (an old
 *      one of the same name is removed first); the calling thread's emptied
 *      workspace of its previous attempt is renamed into place when it is
 *      still clean, else a new directory is made;
 *   2. when the spec names a repository: `git` updates a per-worker bare mirror
 *      `<work_dir>/mirrors/<sha256(url)>.git` (clone once, fetch only when the
 *      commit is missing or a branch head is asked for) and checks the commit
 *      out into the workspace with `git clone --shared` (objects borrowed from
 *      the mirror through alternates, so a second checkout copies no objects);
 *   3. the script runs as `/bin/bash -e -o pipefail -c SCRIPT` when /bin/bash
 *      exists, else `/bin/sh -e -c SCRIPT`; with the AUTO shell (default) a
 *      plain script (vk_exec_script_is_plain()) runs under `/bin/sh -e`. Scripts
 *      of VK_EXEC_INLINE_SCRIPT_MAX bytes or more are written to a private file
 *      `<work_dir>/run/<name>/script` (outside the workspace) and run from it.
 *      New session/process group, cwd = workspace, stdin = /dev/null,
 *      stdout+stderr on ONE pipe;
 *   4. output is handed to the caller's callback as it arrives, up to a cap, through
 *      the spec's masker when it has one (secret values become "***");
 *   5. timeout / cancel: SIGTERM to the process group (and the cgroup), SIGKILL
 *      after a grace period; at the end every process left in the group or the
 *      cgroup is killed, even on success;
 *   6. the private dir is removed; the workspace is emptied and kept as the
 *      thread's spare for its next attempt (removed when not clean, and with
 *      the env), unless keep_workspace.
 *
 * Environment of the script: ONLY the injected KEY=VALUE pairs plus PATH (a
 * default unless injected) and HOME (the workspace unless injected). Nothing of
 * the worker's own environment leaks in.
 *
 * Sandbox (bubblewrap): read-only system directories (/usr, /bin, /sbin, /lib*,
 * /etc, /opt), a fresh /dev and /proc, private /tmp and /var/tmp, the workspace
 * read-write at the same path, every namespace unshared (no network unless
 * allowed), all capabilities dropped, `--die-with-parent`. The rest of the host
 * (/root, /home, the other workspaces, the mirrors) is not visible.
 *
 * Limits: rlimits in the child (core 0, nofile, optional address space and
 * file size) and cgroup memory/pids/cpu limits when the host allows (cgroup v2,
 * or v1 hierarchies as on hosts that mount only those). By default (cgroups
 * AUTO) an attempt gets a cgroup only when it has a limit; ALWAYS gives every
 * attempt one, so that processes leaving the process group are killed too.
 * When cgroups are not writable and a limit was asked for, one notice line
 * says so and the run goes on without them.
 *
 * Lines the executor writes itself into the output stream start with
 * "[vulcan] " (checkout progress, git output, notices, the truncation notice).
 *
 * Thread-safety: a struct vk_exec_env is set up once per worker with
 * vk_exec_env_init() and is then shared read-only by any number of threads
 * calling vk_exec_run() at once (concurrent use of the same mirror is
 * serialised with flock(), which also works across worker processes sharing a
 * work_dir). vk_exec_cancel_request() may be called from any thread. The module
 * installs no signal handlers and changes no process-wide signal state; it
 * starts children with clone(CLONE_VM | CLONE_VFORK) (no fork handlers run),
 * so the caller must not rely on pthread_atfork tricks either.
 */
#ifndef VULCAN_EXECUTOR_H
#define VULCAN_EXECUTOR_H

#include "vulcan/mask.h"
#include "vulcan/util.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- Types */

/** Sandbox choice. DEFAULT (0) in a spec means "the env's default". */
enum vk_exec_sandbox {
    VK_EXEC_SANDBOX_DEFAULT = 0,
    VK_EXEC_SANDBOX_AUTO,  /**< bubblewrap when the start-up probe worked, else none */
    VK_EXEC_SANDBOX_BWRAP, /**< bubblewrap, or fail the attempt when it is unavailable */
    VK_EXEC_SANDBOX_NONE   /**< run directly on the host (trusted hosts only) */
};

/** Which cgroup interface the host offers (detected once). */
enum vk_exec_cgroup_mode {
    VK_EXEC_CGROUP_NONE = 0, /**< no writable cgroup hierarchy: limits unavailable */
    VK_EXEC_CGROUP_V1,       /**< /sys/fs/cgroup is a tmpfs with memory/pids/cpu mounts */
    VK_EXEC_CGROUP_V2        /**< /sys/fs/cgroup is cgroup2fs */
};

/**
 * When an attempt gets its own cgroup. A cgroup applies memory/pids/cpu
 * limits and lets the executor kill processes that left the attempt's process
 * group (setsid); creating one costs a few mkdir/rmdir and a slow cgroup.procs
 * write on every attempt (docs/executor.md, "Limits").
 */
enum vk_exec_cgroups {
    VK_EXEC_CGROUPS_AUTO = 0, /**< only for attempts with a memory, pids or cpu limit (default) */
    VK_EXEC_CGROUPS_ALWAYS,   /**< every attempt, also without limits (when the host allows) */
    VK_EXEC_CGROUPS_NEVER     /**< never (limits are then unavailable: one notice line) */
};

/** Which shell runs the scripts. */
enum vk_exec_shell {
    VK_EXEC_SHELL_AUTO = 0, /**< /bin/sh -e for plain scripts (see vk_exec_script_is_plain()),
                                 else bash -e -o pipefail (sh -e without bash) (default) */
    VK_EXEC_SHELL_BASH,     /**< always /bin/bash -e -o pipefail (sh -e when bash is missing) */
    VK_EXEC_SHELL_SH        /**< always /bin/sh -e (no pipefail with dash) */
};

/** Caps and defaults. */
#define VK_EXEC_DEFAULT_OUTPUT_CAP (16u * 1024u * 1024u)
#define VK_EXEC_DEFAULT_KILL_GRACE_MS 5000
#define VK_EXEC_DEFAULT_CHECKOUT_TIMEOUT_MS (10 * 60 * 1000)
#define VK_EXEC_DEFAULT_NOFILE 4096
#define VK_EXEC_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define VK_EXEC_MAX_ID 128               /**< fragment_id length */
#define VK_EXEC_MAX_SCRIPT (1u << 20)    /**< script size */
#define VK_EXEC_MAX_ENV 4096             /**< number of injected variables */
#define VK_EXEC_MAX_ENV_KEY 256          /**< bytes in a key */
#define VK_EXEC_MAX_ENV_VALUE (1u << 17) /**< bytes in a value (the kernel's per-string limit) */
#define VK_EXEC_MAX_ENV_TOTAL (1u << 20) /**< bytes of the whole environment */
#define VK_EXEC_MAX_URL 4096
#define VK_EXEC_MAX_REF 255
/** Scripts shorter than this are passed to the shell with -c (no script file). */
#define VK_EXEC_INLINE_SCRIPT_MAX (100u * 1024u)
/** Scripts longer than this are never considered plain (they run under bash). */
#define VK_EXEC_PLAIN_SCRIPT_MAX 4096u

/**
 * Per-worker configuration, read by vk_exec_env_init(). Zero means "default"
 * for every numeric field. Borrowed only during vk_exec_env_init().
 */
struct vk_exec_config {
    const char *work_dir;         /**< required: root of workspaces and mirrors */
    enum vk_exec_sandbox sandbox; /**< default for specs (DEFAULT = AUTO) */
    const char *bwrap_path;       /**< NULL: "/usr/bin/bwrap" then PATH lookup */
    const char *git_path;         /**< NULL: "/usr/bin/git" then PATH lookup */
    const char *cgroup_parent;    /**< NULL: see docs/executor.md */
    bool no_cgroups;              /**< do not use cgroups even when available (= NEVER) */
    enum vk_exec_cgroups cgroups; /**< when to make per-attempt cgroups (default AUTO) */
    enum vk_exec_shell shell;     /**< which shell runs scripts (default AUTO) */
    int64_t checkout_timeout_ms;  /**< per git command (default 10 min) */
    const char *const *bind_ro;   /**< `nbind_ro` absolute host paths bound read-only into the
                                       sandbox at the same path (`--sandbox-ro`), borrowed */
    size_t nbind_ro;              /**< at most VK_EXEC_MAX_BINDS */
    const char *const *bind_rw;   /**< the same, writable (`--sandbox-rw`) */
    size_t nbind_rw;              /**< at most VK_EXEC_MAX_BINDS */
};

#define VK_EXEC_MAX_BINDS 32 /**< extra sandbox paths of each kind */

/**
 * Per-worker state computed once: paths, detected cgroup mode, bubblewrap
 * availability. Treat as read-only after vk_exec_env_init() except through the
 * functions here. Owned by the caller (embed it or put it on the stack).
 */
struct vk_exec_env {
    char *work_dir;     /**< absolute, owned */
    char *mirror_dir;   /**< <work_dir>/mirrors, owned */
    char *run_dir;      /**< <work_dir>/run (files of scripts too big for -c), owned */
    char *bwrap_path;   /**< owned; NULL when bubblewrap was not found */
    char *git_path;     /**< owned; NULL when git was not found */
    char *git_home;     /**< HOME for git (the worker's, for ssh keys/credentials), owned */
    char *git_lfs_path; /**< git-lfs (`checkout { lfs #true }`), owned; NULL when not found */
    char *shell;        /**< the full shell: "/bin/bash" or "/bin/sh", owned */
    bool shell_is_bash;
    enum vk_exec_shell shell_mode; /**< AUTO: plain scripts run under /bin/sh instead */
    enum vk_exec_cgroups cgroups;  /**< the cgroup policy (NEVER also when no_cgroups) */
    bool bwrap_ok;                 /**< the start-up probe of bubblewrap succeeded */
    char bwrap_why[160];           /**< why bubblewrap is unavailable (empty when bwrap_ok) */
    enum vk_exec_sandbox default_sandbox;
    enum vk_exec_cgroup_mode cgroup_mode;
    char cgroup_why[160];  /**< why cgroups are unavailable (empty when usable) */
    char *cg_v2_parent;    /**< v2: parent directory of the per-attempt cgroups, owned */
    char *cg_v1_parent[3]; /**< v1: parents in the memory, pids, cpu hierarchies, owned */
    int64_t checkout_timeout_ms;
    char **bind_ro; /**< resolved (realpath) read-only extra binds, owned */
    size_t nbind_ro;
    char **bind_rw; /**< resolved writable extra binds, owned */
    size_t nbind_rw;
};

/** Which submodules a checkout brings (`checkout { submodules … }`). */
enum vk_exec_submodules {
    VK_EXEC_SUBMODULES_NONE,     /**< none (the default) */
    VK_EXEC_SUBMODULES_ON,       /**< those of the superproject's commit */
    VK_EXEC_SUBMODULES_RECURSIVE /**< theirs too, VK_GIT_MAX_SUBMODULE_DEPTH levels deep */
};

/**
 * A secret file of an attempt (`secret-file` in a workflow, DESIGN §8): written 0600 as
 * `<work_dir>/run/<fragment>-<attempt>/secrets/<name>`, outside the workspace (read-only
 * inside the sandbox), its path in the environment variable `name`, and removed when the
 * attempt ends however it ends; a worker that died mid-attempt removes it at its next start.
 */
struct vk_exec_file {
    const char *name; /**< [A-Z_][A-Z0-9_]*, at most 128 bytes */
    const char *data; /**< borrowed */
    size_t len;
};

#define VK_EXEC_MAX_FILES 100 /**< secret files of one attempt */

/**
 * What to run. Every pointer is borrowed for the duration of vk_exec_run().
 * Zero means "default" / "none" for every numeric field.
 */
struct vk_exec_spec {
    const char *fragment_id; /**< required: [A-Za-z0-9._-], not starting with '.', <= 128 */
    uint32_t attempt;        /**< attempt number (part of the workspace name) */
    const char *script;      /**< required: the fragment's run script (<= 1 MiB, no NUL) */
    const char *const *env;  /**< `nenv` "KEY=VALUE" strings; later duplicates win */
    size_t nenv;
    const char *repository_url; /**< NULL/"": no checkout */
    const char *commit_sha;     /**< hex, 4..64 chars; NULL/"": the branch head */
    const char *branch;         /**< used when commit_sha is empty; NULL: the default HEAD */
    uint32_t checkout_depth;    /**< history fetched into the workspace, 0 = all (shared) */
    const char *merge_into;     /**< a pull request: the base branch `commit_sha` is merged
                                 *   into before the script (NULL: check out the commit) */
    enum vk_exec_submodules checkout_submodules; /**< after the checkout, the submodules
                                                  *   (each through its own mirror) */
    bool checkout_lfs;            /**< after the checkout, `git lfs` fetches and checks out
                                   *   the LFS files (needs git-lfs on the worker) */
    bool no_checkout;             /**< `checkout #false`: no git at all, even with a
                                   *   repository_url; VULCAN_CHECKOUT_SHA is "" */
    int64_t timeout_ms;           /**< wall-clock limit of the script, 0 = none */
    int64_t kill_grace_ms;        /**< SIGTERM → SIGKILL delay, 0 = 5000 */
    uint64_t output_cap;          /**< bytes delivered at most, 0 = 16 MiB */
    enum vk_exec_sandbox sandbox; /**< DEFAULT = the env's default */
    bool allow_network;           /**< sandbox only: share the host network */
    uint64_t memory_limit_bytes;  /**< cgroup memory limit, 0 = none */
    uint32_t pids_limit;          /**< cgroup pids limit, 0 = none */
    uint32_t cpu_millis;          /**< cgroup CPU quota in millicores (1000 = one CPU), 0 = none */
    uint64_t as_limit_bytes;      /**< RLIMIT_AS, 0 = none */
    uint64_t fsize_limit_bytes;   /**< RLIMIT_FSIZE, 0 = none */
    uint32_t nofile_limit;        /**< RLIMIT_NOFILE, 0 = 4096 (never above the hard limit) */
    bool keep_workspace;          /**< leave the workspace in place afterwards */
    struct vk_mask *mask;         /**< borrowed: every output byte (checkout, script, notices)
                                   *   goes through it before the callback; NULL: none */
    const struct vk_exec_file *files; /**< `nfiles` secret files (see struct vk_exec_file) */
    size_t nfiles;
    bool outputs; /**< give the script $VULCAN_OUTPUT, an empty file in the attempt's run
                   *   directory (outside the workspace, writable in the sandbox), and
                   *   read it back into the result afterwards */
    struct vk_exec_slot *slot; /**< borrowed: the slot's cgroup is reused (emptied, its limits
                                *   and counters reset) instead of one made per attempt;
                                *   NULL: a cgroup per attempt */
};

/**
 * What one worker slot keeps from attempt to attempt: its cgroup, made at the first attempt
 * that needs one, emptied (every process killed) at the end of each attempt and reused by
 * the next. One attempt at a time. Returns NULL when out of memory.
 */
struct vk_exec_slot *vk_exec_slot_new(void);
/** Kill what is left in the slot's cgroup, remove it, free `slot`. Accepts NULL. */
void vk_exec_slot_free(struct vk_exec_slot *slot);

/**
 * Output callback: `len` (> 0) bytes at `data` (borrowed, valid during the
 * call; not NUL-terminated) from the attempt's output stream, in order. Called
 * on the thread running vk_exec_run(), promptly as output arrives (no line
 * buffering). Must not block for long: the child's pipe is not read meanwhile.
 */
typedef void (*vk_exec_output_fn)(void *ctx, const char *data, size_t len);

/** A cancel request shared between vk_exec_run() and another thread. */
struct vk_exec_cancel {
    atomic_bool requested;
};

/** The steps of an attempt, in order (vk_exec_result.stage_ns: when each ended). */
enum vk_exec_stage {
    VK_EXEC_STAGE_START,     /**< vk_exec_run() began */
    VK_EXEC_STAGE_WORKSPACE, /**< workspace, environment and secret files made */
    VK_EXEC_STAGE_SETUP,     /**< checkout, cgroup, command line (bubblewrap's): spawn next */
    VK_EXEC_STAGE_EXITED,    /**< the script (and bubblewrap) started, ran and are gone */
    VK_EXEC_STAGE_CLEANED,   /**< the cgroup emptied, the workspace dropped: the end */
    VK_EXEC_STAGE_N
};

/** The outcome of one attempt. */
struct vk_exec_result {
    int exit_code;           /**< the script's exit status 0..255, or -1 (signal, not run, error) */
    int signal;              /**< the signal that ended the script, 0 when it exited */
    bool timed_out;          /**< killed because timeout_ms elapsed */
    bool cancelled;          /**< killed because of vk_exec_cancel_request() */
    bool oom_killed;         /**< the cgroup reported an out-of-memory kill */
    bool truncated;          /**< output exceeded the cap; see output_dropped */
    bool sandboxed;          /**< ran inside bubblewrap */
    bool cgroup_used;        /**< ran inside a per-attempt cgroup */
    bool plain_shell;        /**< ran under /bin/sh because the script is plain (shell AUTO) */
    uint64_t output_bytes;   /**< bytes the attempt produced (checkout + script), incl. dropped */
    uint64_t output_dropped; /**< bytes not delivered because of the cap */
    int64_t duration_ms;     /**< the whole attempt, workspace to clean-up */
    int64_t checkout_ms;     /**< time spent in git (0 without a repository) */
    char workspace[512];     /**< the workspace path (useful with keep_workspace) */
    char error[256];         /**< executor failure ("" when the script ran); see vk_exec_run() */
    /** spec.outputs: what the script left in $VULCAN_OUTPUT (owned, NUL-terminated; NULL when
     *  empty or unreadable), or outputs_over when it held more than VK_OUTPUTS_MAX_BYTES.
     *  Free with vk_exec_result_release(). */
    char *outputs;
    size_t outputs_len;
    bool outputs_over;
    char outputs_why[160];             /**< why the file could not be read ("" when it could) */
    int64_t stage_ns[VK_EXEC_STAGE_N]; /**< CLOCK_REALTIME ns at the end of each stage
                                        *   (enum vk_exec_stage), 0: not reached */
};

/** Free what a result owns (its outputs). Accepts NULL. */
void vk_exec_result_release(struct vk_exec_result *r);

/* ---------------------------------------------------------------- Lifecycle */

/**
 * Set up `env` for the work root `cfg->work_dir` (created 0700 if missing):
 * resolves git and bubblewrap, probes bubblewrap once (`bwrap ... true`),
 * detects the cgroup mode (statfs of /sys/fs/cgroup) and checks that the
 * cgroup parents are writable. Failures of the optional parts are recorded in
 * env->bwrap_why / env->cgroup_why, not returned.
 * Returns 0, or VK_EINVAL (no work_dir) / VK_EIO / VK_ENOMEM with *err set.
 * On failure `env` needs no release.
 */
int vk_exec_env_init(struct vk_exec_env *env, const struct vk_exec_config *cfg,
                     struct vk_err *err) VK_MUST_CHECK;

/**
 * Free what `env` owns, remove the (empty) cgroup parents it created and this
 * process's spare workspaces in the work root. Call it when no vk_exec_run()
 * is running on any env of this process with the same work_dir. Accepts NULL.
 */
void vk_exec_env_release(struct vk_exec_env *env);

/** Reset a cancel request to "not requested". */
void vk_exec_cancel_init(struct vk_exec_cancel *c);

/* ---------------------------------------------------------------- Operations */

/**
 * Run one fragment attempt described by `spec`, blocking until it is over and
 * cleaned up. Output goes to `cb(ctx, ...)` (cb may be NULL to discard).
 * `cancel` (may be NULL) is polled at least every 100 ms, also during checkout.
 *
 * *out is always filled. The return value says whether the executor did its
 * job: 0 means the script ran and *out says how it ended (success is
 * vk_exec_result_ok()); a negative VK code means the attempt could not be run
 * as asked (invalid spec: VK_EINVAL / VK_ETOOBIG; checkout failed: VK_EIO or
 * VK_ENOTFOUND for an unknown commit; bubblewrap required but unavailable:
 * VK_EPERM; cancelled during checkout: VK_EAGAIN; ...) and then out->exit_code
 * is -1 and out->error holds the same message as *err, ready to be reported as
 * the fragment's error. The message is also written to the output stream.
 */
int vk_exec_run(const struct vk_exec_env *env, const struct vk_exec_spec *spec,
                vk_exec_output_fn cb, void *ctx, struct vk_exec_cancel *cancel,
                struct vk_exec_result *out, struct vk_err *err) VK_MUST_CHECK;

/** Ask a running vk_exec_run() to stop (from any thread). Async-signal-safe. */
void vk_exec_cancel_request(struct vk_exec_cancel *c);

/** True when the attempt succeeded: the script exited 0, no executor error. */
bool vk_exec_result_ok(const struct vk_exec_result *r);

/**
 * True when `script` is "plain": it runs the same under `/bin/sh -e` (dash) as
 * under `bash -e -o pipefail`, so the AUTO shell may use the cheaper sh. Plain
 * means: at most VK_EXEC_PLAIN_SCRIPT_MAX bytes of simple commands made of
 * literal words only (letters, digits, space, tab, newline and `_ . / : = , + @ % -`:
 * no quoting, expansion, globbing, pipe, list, redirection, comment or
 * substitution), none of which is a shell keyword or a builtin that differs
 * between the shells (echo, printf, read, test, set, source, ., time, …), and
 * an injected environment without BASH*, SHELLOPTS, IFS or ENV. `env` holds
 * `nenv` "KEY=VALUE" strings (may be NULL when nenv is 0).
 */
bool vk_exec_script_is_plain(const char *script, const char *const *env, size_t nenv);

/** Parse "auto" / "always" / "never". Returns 0 or VK_EINVAL. */
int vk_exec_cgroups_parse(const char *s, enum vk_exec_cgroups *out) VK_MUST_CHECK;
/** Parse "auto" / "bash" / "sh". Returns 0 or VK_EINVAL. */
int vk_exec_shell_parse(const char *s, enum vk_exec_shell *out) VK_MUST_CHECK;

/** A short name for a sandbox mode ("auto", "bwrap", "none", "default"). */
const char *vk_exec_sandbox_name(enum vk_exec_sandbox mode);

/** Parse "auto" / "bwrap" / "none". Returns 0 or VK_EINVAL. */
int vk_exec_sandbox_parse(const char *s, enum vk_exec_sandbox *out) VK_MUST_CHECK;

#endif /* VULCAN_EXECUTOR_H */
