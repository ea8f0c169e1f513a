/*
 * exec_int.h — private to the executor (src/worker/exec*.c).
 *
 * Pieces: an output sink applying the cap (exec_sink.c), a child runner that
 * starts (clone + exec), sets up the child and pumps its output while enforcing timeout and
 * cancel (exec_proc.c), per-attempt cgroups (exec_cgroup.c), bubblewrap argv
 * (exec_sandbox.c), checkout through the git module (exec_git.c), workspace files and
 * safe recursive removal (exec_fs.c).
 */
#ifndef VULCAN_WORKER_EXEC_INT_H
#define VULCAN_WORKER_EXEC_INT_H

#include "vulcan/executor.h"
#include "vulcan/mask.h"
#include "vulcan/util.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

/* ---------------------------------------------------------------- Sink */

/** The attempt's output stream: applies the cap, counts bytes, masks (when `mask`). */
struct vk__exec_sink {
    vk_exec_output_fn cb;
    void *ctx;
    struct vk_mask *mask; /**< borrowed from the spec; NULL: no masking */
    bool mask_failed;     /**< a chunk was dropped because the masker ran out of memory */
    uint64_t cap;
    uint64_t total;   /**< bytes written through vk__exec_sink_write (delivered + dropped) */
    uint64_t dropped; /**< bytes over the cap */
};

/** Deliver `len` bytes of attempt output, counting them against the cap. */
void vk__exec_sink_write(struct vk__exec_sink *s, const char *data, size_t len);
/** Like vk__exec_sink_write, but each line starts with `prefix`; *bol tracks line starts. */
void vk__exec_sink_write_prefixed(struct vk__exec_sink *s, const char *prefix, bool *bol,
                                  const char *data, size_t len);
/** An executor notice: delivered even past the cap, not counted. printf-style. */
void vk__exec_sink_notice(struct vk__exec_sink *s, const char *fmt, ...) VK_PRINTF(2, 3);
/** End of the stream: emit what the masker holds back. */
void vk__exec_sink_finish(struct vk__exec_sink *s);

/* ---------------------------------------------------------------- Strings */

/** A NULL-terminated vector of borrowed strings (argv, envp). */
struct vk__exec_strv {
    char **v;
    size_t n;
    size_t cap;
};

void vk__exec_strv_release(struct vk__exec_strv *sv);
/**
 * Append `s` (borrowed: must outlive the vector; a literal or pool string).
 * A NULL `s` (a failed pool allocation) gives VK_ENOMEM. Returns 0 or VK_ENOMEM.
 */
int vk__exec_strv_push(struct vk__exec_strv *sv, char *s) VK_MUST_CHECK;
/** Append a formatted string allocated from `pool`. Returns 0 or VK_ENOMEM. */
int vk__exec_strv_pushf(struct vk__exec_strv *sv, struct vk_pool *pool, const char *fmt,
                        ...) VK_MUST_CHECK VK_PRINTF(3, 4);
/** A formatted string in `pool`, or NULL when out of memory. */
char *vk__exec_pool_printf(struct vk_pool *pool, const char *fmt, ...) VK_PRINTF(2, 3);

/* ---------------------------------------------------------------- Cgroups */

enum { VK__CG_MEMORY = 0, VK__CG_PIDS = 1, VK__CG_CPU = 2, VK__CG_N = 3 };

/** The limits written into a cgroup (0 = none). */
struct vk__exec_cg_limits {
    unsigned long long memory, pids, cpu; /**< bytes, tasks, millicores */
};

/** One attempt's cgroup(s), or a slot's, reused attempt after attempt. v2 uses dir[0] only. */
struct vk__exec_cg {
    enum vk_exec_cgroup_mode mode;
    char *dir[VK__CG_N];
    int procs_fd[VK__CG_N];           /**< cgroup.procs opened for writing; the child writes "0" */
    struct vk__exec_cg_limits limits; /**< what is written now */
    unsigned long long oom_base;      /**< OOM kills before this attempt (a reused cgroup) */
    unsigned long long pids_base;     /**< refused forks before this attempt */
};

/** Detect the cgroup mode and prepare parents; fills env->cgroup_mode/cgroup_why. */
void vk__exec_cg_detect(struct vk_exec_env *env, const char *parent_name);
/** Remove the parents (only when empty); free their names. */
void vk__exec_cg_env_release(struct vk_exec_env *env);
/**
 * Create the per-attempt cgroup `name` with the spec's limits. Returns 0, or a
 * VK code with a reason in `why` (for the one-line notice) when unavailable.
 */
int vk__exec_cg_create(const struct vk_exec_env *env, const char *name,
                       const struct vk_exec_spec *spec, struct vk__exec_cg *cg, char *why,
                       size_t whylen);
/** Send `sig` to every process in the cgroup except `except` (0 = none). */
void vk__exec_cg_signal(const struct vk__exec_cg *cg, int sig, pid_t except);
/** SIGKILL everything in the cgroup until it is empty (bounded wait). */
void vk__exec_cg_kill_all(const struct vk__exec_cg *cg);
/** True when the memory controller recorded an OOM kill. */
bool vk__exec_cg_oom(const struct vk__exec_cg *cg);
/** How many forks the pids limit refused (pids.events "max"); 0 when unknown. */
unsigned long long vk__exec_cg_pids_refused(const struct vk__exec_cg *cg);
/** A worker slot's state kept between attempts (struct vk_exec_slot in executor.h). */
struct vk_exec_slot {
    struct vk__exec_cg cg; /**< valid when `made` */
    bool made;
    unsigned seq;     /**< cgroups made so far (part of the name) */
    int netns_fd;     /**< the slot's empty network namespace (loopback only), or -1 */
    bool netns_tried; /**< made once: a failure is not retried every attempt */
};

/**
 * The slot's network namespace for sandboxed attempts without the network: made at the
 * first call (a namespace with only `lo`, up, as bubblewrap's --unshare-net makes one) and
 * kept, so that an attempt joins it instead of bubblewrap making and tearing down one per
 * attempt (about 3 ms of wall time each). Only for a worker that may make one itself
 * (CAP_SYS_ADMIN: root); -1 otherwise, and bubblewrap unshares the network as before.
 */
int vk__exec_slot_netns(struct vk_exec_slot *slot);

/**
 * Make the (empty) cgroup `cg`, made by vk__exec_cg_create for an earlier attempt, ready
 * for one with `spec`'s limits: the limits that differ are written again. Returns 0, or a
 * VK code (with `why` when writing failed) when it cannot serve: destroy it and create one.
 */
int vk__exec_cg_reuse(struct vk__exec_cg *cg, const struct vk_exec_spec *spec, char *why,
                      size_t whylen) VK_MUST_CHECK;
/** A slot's cgroup still charged with more memory than this is not reused. */
#define VK__EXEC_CG_REUSE_MAX_CHARGE (8ull << 20)
/**
 * End an attempt in a cgroup that stays for the next: kill every process in it, wait until
 * it is empty and take its OOM and refused-fork counters as the next attempt's zero.
 * Returns 0, or VK_EAGAIN when something is still in it or more than
 * VK__EXEC_CG_REUSE_MAX_CHARGE of memory is charged to it (destroy it then).
 */
int vk__exec_cg_empty(struct vk__exec_cg *cg) VK_MUST_CHECK;
/** Kill what is left, remove the directories, close the fds. Accepts an empty cg. */
void vk__exec_cg_destroy(struct vk__exec_cg *cg);

/* ---------------------------------------------------------------- Child runner */

/** Describes one child process. Everything is prepared before the clone. */
struct vk__exec_child {
    const char *path;             /**< absolute path for execve */
    char *const *argv;            /**< NULL-terminated */
    char *const *envp;            /**< NULL-terminated */
    const char *cwd;              /**< NULL: inherit */
    const struct vk__exec_cg *cg; /**< NULL: no cgroup */
    bool rlimits;                 /**< apply core/nofile/as/fsize below */
    rlim_t nofile, as, fsize;     /**< 0 = leave */
    int64_t timeout_ms;           /**< 0 = none */
    int64_t grace_ms;
    bool term_spare_leader;        /**< on SIGTERM spare the direct child (bubblewrap) */
    struct vk_exec_cancel *cancel; /**< may be NULL */
    struct vk__exec_sink *sink;    /**< output destination, or NULL with capture */
    const char *line_prefix;       /**< non-NULL: prefix every output line */
    int pass_fd;                   /**< > 2: left open (same number) across execve; else none */
    int netns_fd;                  /**< > 2: the child joins this network namespace (setns)
                                    *   before execve; else it keeps the worker's */
    struct vk_buf *capture;        /**< non-NULL: collect output here instead */
};

struct vk__exec_outcome {
    int exit_code; /**< 0..255, or -1 */
    int signal;
    bool timed_out;
    bool cancelled;
};

/**
 * Start `c` (clone(CLONE_VM|CLONE_VFORK) + execve), pump its output until it and its
 * process group are gone.
 * Returns 0 (see *o) or a VK code when the child could not be started.
 */
int vk__exec_child_run(const struct vk__exec_child *c, struct vk__exec_outcome *o,
                       struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Sandbox */

/**
 * Append the bubblewrap prefix (bwrap path and options, up to and including
 * "--") for running in `ws` with the script directory `script_dir` (NULL when
 * the script is passed inline with -c) and, when non-NULL, the mirrors
 * `mirrors` (the repository's and its submodules' the workspace borrows
 * objects from) read-only. The script's environment goes as `--args ENV_FD`: the file
 * made by vk__exec_bwrap_env_fd, never on the command line that every local user can read
 * in ps (issue 14 item 11). `out_dir` (NULL: none), inside script_dir, is bound
 * writable: the directory of $VULCAN_OUTPUT.
 */
int vk__exec_bwrap_argv(const struct vk_exec_env *env, struct vk__exec_strv *argv,
                        struct vk_pool *pool, const char *ws, const char *script_dir,
                        const char *out_dir, const struct vk__exec_strv *mirrors,
                        bool allow_network, int env_fd) VK_MUST_CHECK;
/**
 * A memory file (memfd, close-on-exec) holding the NUL-separated bubblewrap arguments
 * "--clearenv" and "--setenv NAME VALUE" for each of `envv`, at offset 0, into *fd (the
 * caller closes it). Returns 0, VK_EIO or VK_ENOMEM.
 */
int vk__exec_bwrap_env_fd(const struct vk__exec_strv *envv, int *fd,
                          struct vk_err *err) VK_MUST_CHECK;
/**
 * Write the sandbox's /etc/passwd and /etc/group (root, the worker's uid and gid as
 * "vulcan", nobody) into env->run_dir, replacing older ones. Returns 0 or a VK code.
 */
int vk__exec_sandbox_files(const struct vk_exec_env *env, struct vk_err *err) VK_MUST_CHECK;
/** Probe bubblewrap once; sets env->bwrap_ok / bwrap_why. */
void vk__exec_bwrap_probe(struct vk_exec_env *env);

/* ---------------------------------------------------------------- Git */

/**
 * Check out the spec's repository into `ws` through the mirror cache (with its
 * submodules and LFS files when the spec asks). Appends to `mirrors` (an
 * initialised vector) the paths of the mirrors the workspace borrows objects
 * from: the repository's first, then its submodules'. On success *sha_out is
 * the full id of the commit checked out. Strings are allocated from `pool`.
 * Returns 0 or VK_EINVAL / VK_EIO / VK_ENOTFOUND / VK_EPERM (a refused
 * submodule) / VK_ETOOBIG / VK_ETIMEDOUT / VK_EAGAIN (cancelled).
 */
int vk__exec_checkout(const struct vk_exec_env *env, const struct vk_exec_spec *spec,
                      const char *ws, struct vk_pool *pool, struct vk__exec_sink *sink,
                      struct vk_exec_cancel *cancel, struct vk__exec_strv *mirrors,
                      const char **sha_out, struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Files */

/** mkdir -p with `mode`. Returns 0 or a VK code. */
int vk__exec_mkdir_p(const char *path, mode_t mode, struct vk_err *err) VK_MUST_CHECK;
/**
 * Remove `path` and everything below it without following symlinks and
 * without crossing into other file systems. ENOENT is success.
 */
int vk__exec_rmtree(const char *path, struct vk_err *err);
/** Remove everything below the directory `path` (as vk__exec_rmtree), keeping `path`. */
int vk__exec_empty_dir(const char *path, struct vk_err *err);
/** Create `path` (O_EXCL, mode 0644) holding `len` bytes of `data`. */
int vk__exec_write_file(const char *path, const char *data, size_t len,
                        struct vk_err *err) VK_MUST_CHECK;
/** Sleep `ms` milliseconds (restarting on EINTR). */
void vk__exec_sleep_ms(int64_t ms);
/** Find `name` as an executable: `pref` if executable, else each PATH dir. Returns owned or NULL.
 */
char *vk__exec_which(const char *pref, const char *name);

#endif /* VULCAN_WORKER_EXEC_INT_H */
