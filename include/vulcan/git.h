/*
 * git — the one Git module of server and worker: validators for everything
 * that reaches a git command line, a per-repository bare mirror cache with its
 * lock, reads of trees and files at a commit, and checkouts into workspaces.
 *
 *   <cache_dir>/<sha256(url) hex>.git    bare mirror (git clone --mirror)
 *   <cache_dir>/<sha256(url) hex>.lock   flock()ed while the mirror is cloned or
 *                                        fetched (threads and processes)
 *
 * The server's trigger service reads workflow files out of mirrors; a worker
 * checks commits out of its own mirrors into workspaces (`git clone --shared`,
 * objects borrowed through alternates, so the mirror's objects are never
 * pruned: gc.auto is off for every mirror command). Both go through the same
 * validators, the same mirror-and-lock scheme and the same process runner.
 *
 * A clone goes to a temporary name and is renamed into place, so a half-made
 * mirror is never used. A mirror is fetched only when a wanted commit is
 * missing or when a branch head is asked for. Reads do not check for the
 * commit first: they run, and only when git cannot find it is the mirror
 * synced and the read done again.
 *
 * git runs through posix_spawn() with an argv array (URLs, refs and paths are
 * hostile: each is validated here, and "--" or --end-of-options ends the
 * options; never a shell), in its own process group with a deadline (the group
 * is killed when it runs out, or when the caller's cancel callback says so),
 * stdin from /dev/null, output capped, and a minimal environment:
 * GIT_TERMINAL_PROMPT=0, ssh in batch mode, only the file, git, http, https
 * and ssh transports, no system gitconfig, LC_ALL=C, no LFS smudge. docs/architecture.md says
 * why the git command is used rather than libgit2.
 *
 * Thread-safety: no global state. A mirror handle is used by one thread at a
 * time; different handles on the same cache directory may be used from any
 * number of threads and processes at once (clones and fetches are serialised
 * with flock(); reads need no lock).
 */
#ifndef VULCAN_GIT_H
#define VULCAN_GIT_H

#include "vulcan/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* ---------------------------------------------------------------- Limits */

#define VK_GIT_MAX_URL 2048  /**< a repository URL */
#define VK_GIT_MAX_REF 1024  /**< a branch name */
#define VK_GIT_MAX_PATH 4096 /**< a path inside a repository */
#define VK_GIT_DEFAULT_GLOB ".vulcan/*.kdl"
#define VK_GIT_DEFAULT_TIMEOUT_MS (5 * 60 * 1000)
#define VK_GIT_MAX_BLOB (1u << 20)     /**< default cap of vk_git_read_file() */
#define VK_GIT_MAX_LIST (16u << 20)    /**< cap of a file listing's bytes */
#define VK_GIT_MAX_FILES 100000        /**< cap of names in one listing */
#define VK_GIT_MAX_READ (64u << 20)    /**< cap of the bytes vk_git_read_files() returns */
#define VK_GIT_SHA_LEN 65              /**< a full object name: 40 or 64 hex digits + NUL */
#define VK_GIT_MAX_MESSAGE (64u << 10) /**< bytes of a commit object read (its message is cut) */
#define VK_GIT_MAX_SUBMODULE_DEPTH 8   /**< levels of nested submodules checked out */
#define VK_GIT_MAX_SUBMODULES 64       /**< submodules checked out in one checkout, all levels */

/* ---------------------------------------------------------------- Validation */

/** True for a full object name: 40 or 64 hex digits. */
bool vk_git_valid_sha(const char *s);

/** True for a possibly abbreviated object name: 4 to 64 hex digits. */
bool vk_git_valid_short_sha(const char *s);

/**
 * True for a branch name `git check-ref-format --branch` accepts and that
 * cannot be read as an option or a revision expression: at most
 * VK_GIT_MAX_REF bytes, no control characters, space or any of ~^:?*[\,
 * not "@", not starting with '-', '/' or '.', no "..", "@{", "//" or "/.",
 * not ending with '/', '.' or ".lock", no ".lock/" component.
 */
bool vk_git_valid_branch(const char *s);

/**
 * True for a repository URL git may be given: at most VK_GIT_MAX_URL bytes,
 * printable without spaces, not starting with '-', not git's "<transport>::<address>"
 * form (which runs remote helpers such as ext::) and without "::" anywhere but inside
 * the brackets of an IPv6 host.
 * Which schemes and hosts are allowed is the caller's policy.
 */
bool vk_git_valid_url(const char *s);

/**
 * True for a relative path inside a repository: at most VK_GIT_MAX_PATH bytes,
 * no control characters, not absolute, no empty, "." or ".." segment.
 */
bool vk_git_valid_path(const char *s);

/**
 * True for the path of a submodule (as a `.gitmodules` file gives it): a
 * vk_git_valid_path() that does not start with '-' and has no ".git" segment
 * (in any case, also with trailing dots or spaces), so it stays inside the
 * work tree and outside its repository.
 */
bool vk_git_valid_submodule_path(const char *s);

/**
 * Resolve the submodule URL `raw` of a `.gitmodules` file against the URL of
 * its superproject `super_url` (a relative "./x" or "../x" is resolved as git
 * does, one path segment per "../", never above the host) and apply the
 * submodule policy: vk_git_valid_url(), no "<transport>::" (ext::, fd::), no
 * '-' at the start of the URL or of its host, only https, http, ssh, git and
 * scp-like "host:path" URLs, and file:// or a local path only when the
 * superproject is itself local (file:// or an absolute path). Writes the
 * resolved URL to `out` (`cap` bytes). Returns 0, or VK_EPERM (refused) /
 * VK_ETOOBIG with the reason in *err (the URL not included).
 */
int vk_git_submodule_url(const char *super_url, const char *raw, char *out, size_t cap,
                         struct vk_err *err) VK_MUST_CHECK;

/**
 * Write `url` to `out` (`cap` bytes, NUL-terminated, truncated) with the user
 * information of a network URL ("https://TOKEN@host/…") replaced by "***",
 * for logs and messages.
 */
void vk_git_redact_url(const char *url, char *out, size_t cap);

/* ---------------------------------------------------------------- URL policy */

/*
 * Which repository URLs a server may fetch (docs/security.md, "Repository URLs").
 * Schemes: https and ssh by default; http and git:// only when the operator lists them;
 * file:// and local paths only with --allow-file-repos. Refused in any case: "<x>::"
 * remote helpers (ext::, fd::), URLs or hosts starting with '-', hosts with characters a
 * host name cannot have. A network host is resolved, and EVERY address it resolves to
 * must be publicly routable: loopback (127/8, ::1), link-local (169.254/16 with the
 * metadata address 169.254.169.254, fe80::/10), private (10/8, 172.16/12, 192.168/16,
 * fc00::/7), shared 100.64/10, unspecified (0/8, ::), multicast (224/4, ff00::/8) and
 * reserved ranges are refused, also inside IPv4-mapped, NAT64 and 6to4 IPv6 addresses,
 * unless the address lies in one of the operator's ranges (--allow-repo-hosts).
 * "localhost" and "*.localhost" are loopback without asking a resolver (RFC 6761).
 *
 * A policy is configuration: filled once at start-up, then read-only and shared by any
 * number of threads.
 */
#define VK_GIT_SCHEME_HTTPS 1u
#define VK_GIT_SCHEME_SSH 2u /**< ssh://, git+ssh:// and scp-like "host:path" */
#define VK_GIT_SCHEME_HTTP 4u
#define VK_GIT_SCHEME_GIT 8u   /**< git:// (unauthenticated, unencrypted) */
#define VK_GIT_SCHEME_FILE 16u /**< file:// and local paths */
#define VK_GIT_SCHEMES_DEFAULT (VK_GIT_SCHEME_HTTPS | VK_GIT_SCHEME_SSH)
#define VK_GIT_MAX_RANGES 64 /**< operator address ranges */

/** An address range: `bits` leading bits of `addr` (4 or 16 bytes, network order). */
struct vk_git_cidr {
    int family; /**< AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned bits;
};

struct vk_git_url_policy {
    unsigned schemes; /**< VK_GIT_SCHEME_* bits; 0 means VK_GIT_SCHEMES_DEFAULT */
    struct vk_git_cidr ranges[VK_GIT_MAX_RANGES]; /**< allowed although not public */
    size_t nranges;
};

/** What a checked URL names: its scheme bit, host (no brackets, "" when local), port,
 * and the checked address to connect to ("" when local or not resolved). */
struct vk_git_url_target {
    unsigned scheme;
    char host[256];
    unsigned port;
    char addr[46];
};

/** The default policy: https and ssh, no ranges. */
void vk_git_url_policy_init(struct vk_git_url_policy *p);

/** Replace the allowed schemes by the comma-separated list `csv` (https, ssh, http, git,
 * file). Returns 0 or VK_EINVAL (unknown name, empty list). */
int vk_git_url_policy_schemes(struct vk_git_url_policy *p, const char *csv,
                              struct vk_err *err) VK_MUST_CHECK;

/** Add the comma-separated ranges of `csv` ("10.0.0.0/8,fd00::/8,192.0.2.7"; an address
 * without a length is one host). Returns 0, VK_EINVAL, VK_ETOOBIG. */
int vk_git_url_policy_ranges(struct vk_git_url_policy *p, const char *csv,
                             struct vk_err *err) VK_MUST_CHECK;

/** Why the address `sa` (AF_INET or AF_INET6) is refused ("loopback", "link-local"...;
 * static text), or NULL when it may be connected to. */
const char *vk_git_addr_refused(const struct vk_git_url_policy *p, const struct sockaddr *sa);

/**
 * The checks that need no resolver (for an HTTP thread): the URL's form and scheme, and a
 * literal address or a localhost name in the host. Fills *t. Returns 0 or VK_EPERM with a
 * reason in *err (fixed text: neither the URL nor anything fetched).
 */
int vk_git_url_check_static(const struct vk_git_url_policy *p, const char *url,
                            struct vk_git_url_target *t, struct vk_err *err) VK_MUST_CHECK;

/**
 * vk_git_url_check_static(), then for a network host: resolve it (getaddrinfo, which may
 * block: never on an HTTP thread) and refuse it unless every address is allowed; the
 * first one goes to t->addr, for the fetch to be pinned to it (no second lookup that a
 * DNS rebind could answer differently). Returns 0, VK_EPERM, VK_EIO (does not resolve).
 */
int vk_git_url_check(const struct vk_git_url_policy *p, const char *url,
                     struct vk_git_url_target *t, struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Types */

/** Polled at least every 100 ms while git runs or a lock is awaited: true stops it. */
typedef bool (*vk_git_cancel_fn)(void *ctx);

/** Receives what git prints on stderr (progress, complaints) as it arrives. */
typedef void (*vk_git_output_fn)(void *ctx, const char *data, size_t len);

/** Options of a mirror handle. Zero-initialise; 0 / NULL means the default. */
struct vk_git_opts {
    const char *git_path;       /**< default "/usr/bin/git", else "git" found in PATH */
    const char *home;           /**< HOME of git (ssh keys, credentials); default $HOME */
    int64_t timeout_ms;         /**< per git command and per lock wait (default 5 min) */
    size_t max_blob;            /**< default VK_GIT_MAX_BLOB */
    vk_git_cancel_fn cancel;    /**< may be NULL; then VK_EAGAIN ends what was running */
    void *cancel_ctx;           /**< passed to cancel */
    vk_git_output_fn on_stderr; /**< may be NULL: git's stderr is only kept for messages */
    void *on_stderr_ctx;        /**< passed to on_stderr */
    const char *path;           /**< PATH of git (where it finds git-lfs); default
                                 *   "/usr/local/bin:/usr/bin:/bin" */
    /** Borrowed; NULL: no URL policy (local tools). Set: the URL must pass
     * vk_git_url_check_static() at open and vk_git_url_check() before every clone and
     * fetch; only its schemes in GIT_ALLOW_PROTOCOL, no redirects, no proxy, http(s)
     * pinned to the checked address. */
    const struct vk_git_url_policy *policy;
};

/**
 * Told of each submodule as it has been checked out: `path` relative to the top work
 * tree, `url` redacted, `mirror` the directory of the mirror its objects are borrowed
 * from (to be readable wherever the work tree is used). All borrowed for the call.
 * Returns 0, or a VK code that stops the checkout.
 */
typedef int (*vk_git_submodule_fn)(void *ctx, const char *name, const char *path, const char *url,
                                   const char *sha, const char *mirror);

/** Counters of one mirror handle, for tests and metrics. */
struct vk_git_stats {
    unsigned clones;   /**< `git clone --mirror` run */
    unsigned fetches;  /**< `git fetch` run */
    unsigned commands; /**< git processes started */
};

/** A handle on the bare mirror of one repository in one cache directory. */
struct vk_git_mirror;

/** A list of file names; `items` live in `pool`. */
struct vk_git_paths {
    const char **items;
    size_t n;
    struct vk_pool pool;
};

/** A file read by vk_git_read_files(); `path` and `data` (NUL-terminated) live in the list's
 * pool. */
struct vk_git_file {
    const char *path;
    const char *data;
    size_t len;
};

/** What a commit says of itself; strings NULL when absent. */
struct vk_git_commit {
    const char *author;       /**< "Name <email>" */
    const char *author_name;  /**< "Name" */
    const char *author_email; /**< "email" */
    const char *message;      /**< the whole message (cut at VK_GIT_MAX_MESSAGE bytes) */
    const char *subject;      /**< its first line */
};

/** Files with their contents, and the commit they were read at; all lives in `pool`. */
struct vk_git_files {
    struct vk_git_file *items;
    size_t n;
    size_t bytes; /**< sum of the files' lengths */
    struct vk_git_commit commit;
    struct vk_pool pool;
};

/* ---------------------------------------------------------------- Lifecycle */

void vk_git_paths_init(struct vk_git_paths *p);
/** Free the contents (not the struct). Accepts NULL. */
void vk_git_paths_release(struct vk_git_paths *p);
void vk_git_files_init(struct vk_git_files *f);
/** Free the contents (not the struct). Accepts NULL. */
void vk_git_files_release(struct vk_git_files *f);

/**
 * Open a handle for `url` (borrowed; vk_git_valid_url()) cached under
 * `cache_dir` (created 0700 if missing). Nothing is cloned yet. `opts` may be
 * NULL (copied, but the callbacks' contexts are borrowed for the handle's
 * life). On success *out is returned owned (vk_git_mirror_free()).
 * With opts->policy, the URL must pass vk_git_url_check_static() (VK_EPERM).
 * Returns 0, VK_EINVAL (unusable URL or directory), VK_EPERM, VK_ENOTFOUND (no git),
 * VK_EIO, VK_ENOMEM.
 */
int vk_git_mirror_open(const char *cache_dir, const char *url, const struct vk_git_opts *opts,
                       struct vk_git_mirror **out, struct vk_err *err) VK_MUST_CHECK;

/** Free a handle (the mirror stays on disk). Accepts NULL. */
void vk_git_mirror_free(struct vk_git_mirror *m);

/** The mirror's directory. Returns borrowed (valid until vk_git_mirror_free()). */
const char *vk_git_mirror_path(const struct vk_git_mirror *m);

/** The URL policy the handle was opened with (borrowed; NULL: none). */
const struct vk_git_url_policy *vk_git_mirror_policy(const struct vk_git_mirror *m);

/** The handle's counters. */
struct vk_git_stats vk_git_mirror_stats(const struct vk_git_mirror *m);

/* ---------------------------------------------------------------- Mirror upkeep */

/**
 * Make sure the mirror exists and holds commit `sha` (a full name; NULL: just
 * exists and is fresh — fetch it always): clone it when absent, fetch when the
 * commit is missing, and as a last resort fetch the commit by name (servers
 * that allow unreachable commits). Returns 0, VK_EINVAL (bad sha), VK_ENOTFOUND
 * (commit not in the repository even after a fetch), VK_ETIMEDOUT, VK_EAGAIN
 * (cancelled), VK_EIO.
 */
int vk_git_mirror_sync(struct vk_git_mirror *m, const char *sha, struct vk_err *err) VK_MUST_CHECK;

/**
 * Fetch, then resolve `branch` (a short name; validated) to its head commit
 * into `out`. Returns 0, VK_EINVAL, VK_ENOTFOUND (no such branch),
 * VK_ETIMEDOUT, VK_EAGAIN, VK_EIO.
 */
int vk_git_resolve_branch(struct vk_git_mirror *m, const char *branch, char out[VK_GIT_SHA_LEN],
                          struct vk_err *err) VK_MUST_CHECK;

/** Like vk_git_resolve_branch() for the repository's default branch (its HEAD). */
int vk_git_resolve_head(struct vk_git_mirror *m, char out[VK_GIT_SHA_LEN],
                        struct vk_err *err) VK_MUST_CHECK;

/**
 * Expand a (possibly abbreviated, vk_git_valid_short_sha()) commit name to the
 * full one, syncing once when it is not known yet. Returns 0, VK_EINVAL,
 * VK_ENOTFOUND (unknown or ambiguous), VK_ETIMEDOUT, VK_EAGAIN, VK_EIO.
 */
int vk_git_resolve_commit(struct vk_git_mirror *m, const char *sha, char out[VK_GIT_SHA_LEN],
                          struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Reads */

/**
 * The files at commit `sha` (full hex name) whose path matches `glob` (NULL:
 * VK_GIT_DEFAULT_GLOB; vk_glob_match(): `*` does not cross '/'), sorted.
 * Appends to `out` (initialised). Syncs the mirror when it lacks the commit.
 * Returns 0, VK_EINVAL, VK_ENOTFOUND, VK_ETOOBIG, VK_ETIMEDOUT, VK_EIO.
 */
int vk_git_list_files(struct vk_git_mirror *m, const char *sha, const char *glob,
                      struct vk_git_paths *out, struct vk_err *err) VK_MUST_CHECK;

/**
 * Read the file `path` at commit `sha` into `out` (appending), refusing files
 * larger than opts.max_blob. Returns 0, VK_EINVAL, VK_ENOTFOUND (no such
 * file), VK_ETOOBIG, VK_ETIMEDOUT, VK_EIO.
 */
int vk_git_read_file(struct vk_git_mirror *m, const char *sha, const char *path, struct vk_buf *out,
                     struct vk_err *err) VK_MUST_CHECK;

/**
 * List and read in one go: the commit's author and message (out->commit), and the
 * files at commit `sha` (full hex name) whose path
 * matches `glob` (as vk_git_list_files()), sorted by path, each with its bytes
 * (at most opts.max_blob each, VK_GIT_MAX_READ in all). ONE `git cat-file
 * --batch` process reads the commit, the trees under the glob's fixed directory
 * (only as deep as the glob can match) and the matching blobs; the mirror is
 * cloned or fetched only when it lacks the commit. Submodules and paths
 * vk_git_read_file() refuses are left out. `out` (initialised, empty) is filled
 * only on success. Returns 0, VK_EINVAL, VK_ENOTFOUND (no such commit, even
 * after a fetch), VK_ETOOBIG, VK_ETIMEDOUT, VK_EIO, VK_ENOMEM.
 */
int vk_git_read_files(struct vk_git_mirror *m, const char *sha, const char *glob,
                      struct vk_git_files *out, struct vk_err *err) VK_MUST_CHECK;

/**
 * The paths changed between commits `before` and `after` (`git diff
 * --name-only`, renames as delete + add), sorted. When `before` is NULL or all
 * zeros (a new branch), the files changed by `after` itself (against its first
 * parent; every file for a root commit). Appends to `out` (initialised).
 * Returns 0, VK_EINVAL, VK_ENOTFOUND, VK_ETOOBIG, VK_ETIMEDOUT, VK_EIO.
 */
int vk_git_changed_paths(struct vk_git_mirror *m, const char *before, const char *after,
                         struct vk_git_paths *out, struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Checkout */

/**
 * Check commit `sha` (a full name the mirror holds: vk_git_resolve_*() first)
 * out into the existing, empty directory `workspace`: `git clone --shared
 * --no-checkout` of the mirror (no object is copied), then a detached checkout.
 * Needs no lock. Returns 0, VK_EINVAL, VK_ETIMEDOUT, VK_EAGAIN, VK_EIO.
 */
int vk_git_checkout(struct vk_git_mirror *m, const char *sha, const char *workspace,
                    struct vk_err *err) VK_MUST_CHECK;

/**
 * Like vk_git_checkout() with only the last `depth` (>= 1) commits of history:
 * `git init`, `git fetch --depth DEPTH file://MIRROR SHA` (the objects are
 * copied; the mirror keeps its full history) and a detached checkout of it.
 * Returns 0, VK_EINVAL, VK_ETIMEDOUT, VK_EAGAIN, VK_EIO.
 */
int vk_git_checkout_shallow(struct vk_git_mirror *m, const char *sha, const char *workspace,
                            uint32_t depth, struct vk_err *err) VK_MUST_CHECK;

/**
 * In a workspace checked out at the base commit (vk_git_checkout()), merge commit `head`
 * (a full name the mirror holds) into it as GitHub builds a pull request: `git merge
 * --no-ff` with a fixed committer ("Vulcan CI"), so the merge commit's name depends only
 * on the two commits and the time. Its name goes to `out`. A conflict leaves the
 * workspace at the base and answers VK_ECONFLICT with the conflicting paths' count.
 * Returns 0, VK_EINVAL, VK_ECONFLICT, VK_ETIMEDOUT, VK_EAGAIN, VK_EIO.
 */
int vk_git_merge_into(struct vk_git_mirror *m, const char *workspace, const char *head,
                      char out[VK_GIT_SHA_LEN], struct vk_err *err) VK_MUST_CHECK;

/**
 * In `workspace` (a work tree checked out by the functions above, of the
 * repository at `super_url`), check out the submodules its HEAD's
 * `.gitmodules` lists, each at the commit its gitlink in HEAD records, each
 * through its own mirror in the cache directory of `m` (same options) and
 * with vk_git_checkout() into the submodule's path; `recursive`: theirs too,
 * at most VK_GIT_MAX_SUBMODULE_DEPTH levels, VK_GIT_MAX_SUBMODULES in all.
 * `.gitmodules` entries without a gitlink are left out. Every URL and path is
 * checked first (vk_git_submodule_url(), vk_git_valid_submodule_path(), no
 * symbolic link on the way); a refusal names the submodule. `cb` (may be
 * NULL) is told of each submodule checked out. Returns 0, VK_EPERM (a
 * refused URL or path), VK_ETOOBIG (too many or too deep), VK_EINVAL,
 * VK_ENOTFOUND (the recorded commit is not in the submodule's repository),
 * VK_ETIMEDOUT, VK_EAGAIN, VK_EIO.
 */
int vk_git_checkout_submodules(struct vk_git_mirror *m, const char *super_url,
                               const char *workspace, bool recursive, vk_git_submodule_fn cb,
                               void *cb_ctx, struct vk_err *err) VK_MUST_CHECK;

/**
 * Replace the Git LFS pointers of `workspace` (checked out from mirror `m`)
 * with their files: under the mirror's lock `git lfs fetch origin` of the
 * `ncommits` full commit names in `commits` into the mirror (so the mirror
 * caches LFS objects as it caches commits), then in the workspace `git lfs
 * install --local`, `git lfs fetch` of HEAD from the mirror and `git lfs
 * checkout`. Returns 0, VK_ENOTFOUND (git-lfs is not installed: `git lfs
 * version` fails), VK_EINVAL, VK_ETIMEDOUT, VK_EAGAIN, VK_EIO.
 */
int vk_git_lfs_checkout(struct vk_git_mirror *m, const char *workspace, const char *const *commits,
                        size_t ncommits, struct vk_err *err) VK_MUST_CHECK;

#endif /* VULCAN_GIT_H */
