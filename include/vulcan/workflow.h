/*
 * workflow — load a Vulcan workflow (KDL 2.0, DESIGN §2) into a validated,
 * import-expanded chain model; the condition language; trigger filters.
 *
 * vk_workflow_load_file() / vk_workflow_load_buffer() parse the KDL text, check
 * every rule of the workflow language, expand `fragment { from "…" }` imports
 * (local files and http(s) URLs, through a replaceable fetcher) and return a
 * struct vk_workflow: name, version, default machine, env, triggers and a tree
 * of fragments (inline scripts and sequential/parallel groups) with sequence
 * numbers, resolved machines, compiled conditions and the file/line/column
 * every element came from. The first error stops the load (one error is
 * reported, never a list) and is described by struct vk_wf_error, which holds
 * the kind, the position and the rendered diagnostic with the source line and
 * a caret.
 *
 * Invariants of a loaded workflow: every inline fragment has a non-empty `run`
 * and a non-NULL resolved `machine`; every group has at least one child;
 * siblings carry sequence numbers 0, 1, 2…; imported fragments carry the
 * `source_url` of the file they came from.
 *
 * Memory: a workflow owns one arena (struct vk_pool); every string, fragment,
 * trigger and compiled condition lives there and is released at once by
 * vk_workflow_free(). Nothing in the model points into the input buffer.
 *
 * Thread-safety: loading uses no shared state (the default fetcher uses
 * libcurl easy handles, one per fetch). A loaded workflow is immutable and
 * may be read (matched, evaluated, walked, rendered) from several threads.
 *
 * See docs/workflow.md for the language and docs/parse-json.md for the JSON form.
 */
#ifndef VULCAN_WORKFLOW_H
#define VULCAN_WORKFLOW_H

#include "vulcan/cron.h"
#include "vulcan/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* ---------------------------------------------------------------- Limits */

#define VK_WF_VERSION "0.1"                /**< the only `version` understood */
#define VK_WF_MAX_IMPORT_SIZE (1u << 20)   /**< default cap of one imported document */
#define VK_WF_IMPORT_TIMEOUT_MS 10000      /**< default time limit of one URL fetch */
#define VK_WF_MAX_REDIRECTS 3              /**< default (and maximum) HTTP redirects */
#define VK_WF_MAX_IMPORT_DEPTH 16          /**< default nesting depth of imports */
#define VK_WF_MAX_FRAGMENTS 100000         /**< default cap of fragments + groups in one chain */
#define VK_WF_MAX_IMPORTS 256              /**< default cap of imports (fetches) in one load */
#define VK_WF_MAX_RETRIES 10               /**< `retry N` accepts 0..10 */
#define VK_WF_MAX_COND_LEN 4096            /**< longest condition text, bytes */
#define VK_WF_MAX_COND_DEPTH 64            /**< deepest nesting of ( ) and ! in a condition */
#define VK_WF_MAX_MATRIX 256               /**< most copies one `matrix` makes */
#define VK_WF_MAX_MATRIX_BYTES (16u << 20) /**< most text all matrix copies of a load hold */
#define VK_WF_MAX_NEEDS 256                /**< most names one `needs` lists */
#define VK_WF_MAX_NEEDS_EDGES 100000       /**< most `needs` edges in one chain */

/* ---------------------------------------------------------------- Errors */

/** What went wrong while loading a workflow. */
enum vk_wf_errkind {
    VK_WF_ERR_NONE = 0,
    VK_WF_ERR_SYNTAX,        /**< the text is not valid KDL */
    VK_WF_ERR_MISSING,       /**< a required node or value is absent */
    VK_WF_ERR_UNKNOWN_NODE,  /**< a node this place does not allow */
    VK_WF_ERR_INVALID_VALUE, /**< wrong type, range or form of a value; stray argument */
    VK_WF_ERR_DUPLICATE,     /**< a single-valued child given twice */
    VK_WF_ERR_INVALID_URL,   /**< an import location that cannot be used */
    VK_WF_ERR_FETCH,         /**< an import could not be read or downloaded (or was refused) */
    VK_WF_ERR_CYCLE,         /**< an import cycle; the message names the whole cycle */
    VK_WF_ERR_EXCLUSIVE,     /**< `run` and `from` together (or `from` with run-only fields) */
    VK_WF_ERR_NO_MACHINE,    /**< `chain` has no default `machine` */
    VK_WF_ERR_CONDITION,     /**< a condition that does not parse */
    VK_WF_ERR_TRIGGER,       /**< an unknown trigger, a bad filter, cron or timezone */
    VK_WF_ERR_LIMIT,         /**< too many fragments, imports nested too deep, ... */
    VK_WF_ERR_IO,            /**< the top-level file could not be read */
    VK_WF_ERR_NOMEM          /**< out of memory */
};

/**
 * The error of a failed load. `file` is the file the error is in (the import,
 * when it is inside an imported document), `line`/`col` are 1-based (0 when the
 * error has no position, e.g. an unreadable file), `col` counts code points.
 * `rendered` is the compiler-style diagnostic from vk_diag_render() (with the
 * source line and caret), owned by the struct; release with vk_wf_error_release().
 */
struct vk_wf_error {
    enum vk_wf_errkind kind;
    int code; /**< the VK_E* code the load returned */
    uint32_t line;
    uint32_t col;
    char file[512];
    char msg[1024];
    char *rendered; /**< "FILE:L:C: error: MSG\n  L | source\n    |   ^\n"; NULL if none */
};

/** Set `e` to "no error". */
void vk_wf_error_init(struct vk_wf_error *e);
/** Free `e->rendered` and reset `e`. Accepts NULL. */
void vk_wf_error_release(struct vk_wf_error *e);
/** A short static name for a kind ("invalid syntax", "circular import", ...). */
const char *vk_wf_errkind_name(enum vk_wf_errkind kind);

/* ---------------------------------------------------------------- Conditions */

/**
 * A compiled condition (an AST). Grammar, lowest precedence first:
 *
 *     or   := and ( "||" and )*
 *     and  := cmp ( "&&" cmp )*
 *     cmp  := unary ( ( "==" | "!=" | "=~" ) unary )?
 *     unary:= "!" unary | "(" or ")" | $NAME | ${NAME} | 'text' | "text"
 *
 * Operands of ==, != and =~ must be strings ($VAR or a literal); a string used
 * where a boolean is needed is true when non-empty. `=~` matches the left side
 * against the glob on the right (vk_glob_match()). `!` binds tighter than a
 * comparison, so `!$A == 'x'` is an error: write `!($A == 'x')`.
 */
enum vk_cond_op {
    VK_COND_LIT,   /**< string literal: `str` */
    VK_COND_VAR,   /**< variable: `str` is its name */
    VK_COND_EQ,    /**< l == r */
    VK_COND_NE,    /**< l != r */
    VK_COND_MATCH, /**< l =~ r (glob) */
    VK_COND_AND,
    VK_COND_OR,
    VK_COND_NOT /**< !l */
};

struct vk_cond {
    enum vk_cond_op op;
    const char *str; /**< LIT: the decoded text; VAR: the name (without '$') */
    size_t len;      /**< length of `str` */
    struct vk_cond *l, *r;
    uint32_t offset; /**< byte offset of this node in the condition text */
};

/**
 * Look up variable `name`. Returns borrowed (valid during the evaluation) value,
 * or NULL when unset (which the evaluator treats as the empty string).
 */
typedef const char *vk_cond_lookup_fn(void *ctx, const char *name);

/** A variable for vk_cond_lookup_kv(). */
struct vk_cond_var {
    const char *name;
    const char *value;
};

/** Context for vk_cond_lookup_kv(): an array of variables; the last duplicate wins. */
struct vk_cond_vars {
    const struct vk_cond_var *vars;
    size_t n;
};

/** A vk_cond_lookup_fn over a struct vk_cond_vars (pass it as `ctx`). */
const char *vk_cond_lookup_kv(void *ctx, const char *name);

/**
 * Compile the condition `src`/`len` (need not be NUL-terminated; borrows it).
 * Nodes and strings are allocated from `pool` (borrows it; the result lives as
 * long as the pool). On error `err` gets VK_EPARSE with err->col set to the
 * 1-based code-point column inside `src` and err->line 1, and a message such as
 * "expected a value after '&&'". Returns 0, VK_EPARSE, VK_ETOOBIG or VK_ENOMEM.
 */
int vk_cond_parse(const char *src, size_t len, struct vk_pool *pool, struct vk_cond **out,
                  struct vk_err *err) VK_MUST_CHECK;

/**
 * Evaluate `c` with variables from `lookup(ctx, name)`; stores the verdict in
 * *result. Returns 0 (or VK_EINVAL for a malformed tree, which vk_cond_parse
 * never produces).
 */
int vk_cond_eval(const struct vk_cond *c, vk_cond_lookup_fn *lookup, void *ctx,
                 bool *result) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Triggers */

enum vk_wf_trigger_type {
    VK_WF_TRIG_PUSH,
    VK_WF_TRIG_PULL_REQUEST,
    VK_WF_TRIG_TAG,
    VK_WF_TRIG_SCHEDULE,
    VK_WF_TRIG_MANUAL,
    VK_WF_TRIG_CHAIN /**< `chain workflow="build" status="completed"`: another chain ended */
};

/** A list of strings (patterns, PR action types, choices). */
struct vk_wf_strlist {
    const char **items;
    size_t n;
};

/** Source position of a model element. `file` is the workflow or imported file name. */
struct vk_wf_pos {
    const char *file;
    uint32_t line;
    uint32_t col;
};

/** An input of a `manual` trigger. */
struct vk_wf_input {
    const char *name;
    const char *description;   /**< NULL when absent */
    const char *default_value; /**< NULL when absent */
    struct vk_wf_strlist choices;
    bool required;
    struct vk_wf_pos pos;
};

/**
 * One trigger declaration. Which fields are used depends on `type`:
 * push and pull_request: branches, branches_ignore, paths, paths_ignore;
 * pull_request also `types` (when empty: opened, synchronize, reopened);
 * tag: tags (`patterns`), tags_ignore (`ignore`);
 * schedule: cron (NULL in the simple form: any schedule fires it) and timezone
 * (NULL: UTC); manual: inputs. An empty list means "no filter".
 * Patterns may start with '!' to exclude what earlier patterns included
 * (the last matching pattern decides, as in GitHub Actions).
 */
struct vk_wf_trigger {
    enum vk_wf_trigger_type type;
    struct vk_wf_strlist branches, branches_ignore;
    struct vk_wf_strlist paths, paths_ignore;
    struct vk_wf_strlist types;
    struct vk_wf_strlist tags, tags_ignore;
    const char *cron;
    const char *timezone;
    struct vk_wf_input *inputs;
    size_t ninputs;
    const char *follow_workflow; /**< chain: the name of the workflow whose chains it follows */
    const char *follow_status;   /**< chain: "completed" (default), "failed" or "finished" */
    struct vk_wf_pos pos;
};

/**
 * An event offered to vk_workflow_triggered().
 * - `branch`: push: the pushed branch; pull_request: the PR's base (target)
 *   branch. A leading "refs/heads/" is ignored.
 * - `tag`: tag events: the tag name ("refs/tags/" is ignored).
 * - `paths`/`npaths`: the changed files. paths == NULL means "not known"
 *   (then path filters pass); a non-NULL list with npaths 0 means nothing
 *   changed (then a `paths` filter fails).
 * - `action`: pull_request: opened, synchronize, reopened, closed, ...
 * - `cron`: schedule: the cron expression that fired (NULL: any).
 */
struct vk_wf_event {
    enum vk_wf_trigger_type type;
    const char *branch;
    const char *tag;
    const char *const *paths;
    size_t npaths;
    const char *action;
    const char *cron;
    const char *workflow; /**< chain: the ended chain's workflow name */
    const char *status;   /**< chain: how it ended, "completed" or "failed" */
};

/** Does `ev` match the single trigger `t` (GitHub Actions rules; see docs/workflow.md)? */
bool vk_wf_trigger_matches(const struct vk_wf_trigger *t, const struct vk_wf_event *ev);

/**
 * Like vk_wf_trigger_matches(), and when `t` does not match, why, in `why` (`cap`
 * bytes, NUL-terminated, "" when it matches), naming the filter that decided:
 * "push: branch 'feature/x' is not in branches (main, releases/x)",
 * "pull_request: action 'closed' is not in types (…)", "push: every changed path
 * (2) matches paths-ignore (docs/x)", "tag: 'v1-rc1' matches ignore (v*-rc*)".
 */
bool vk_wf_trigger_explain(const struct vk_wf_trigger *t, const struct vk_wf_event *ev, char *why,
                           size_t cap);

/** The name of a trigger type ("push", "pull_request", "tag", "schedule", "manual"). */
const char *vk_wf_trigger_type_name(enum vk_wf_trigger_type type);

/* ---------------------------------------------------------------- Model */

enum vk_wf_frag_type {
    VK_WF_INLINE, /**< runs a script */
    VK_WF_GROUP   /**< holds children: sequential, or concurrent when is_parallel */
};

/** `checkout { submodules … }`: which submodules the worker checks out. */
enum vk_wf_submodules {
    VK_WF_SUBMODULES_NONE,     /**< absent or #false: none */
    VK_WF_SUBMODULES_ON,       /**< #true: the superproject's own, not theirs */
    VK_WF_SUBMODULES_RECURSIVE /**< "recursive": theirs too (bounded by the worker) */
};

/** `when`: whether a node runs after a failure. */
enum vk_wf_when {
    VK_WF_WHEN_SUCCESS = 0, /**< "success" (the default): only while nothing has failed */
    VK_WF_WHEN_FAILURE,     /**< "failure": only once something has failed */
    VK_WF_WHEN_ALWAYS       /**< "always": either way */
};

/** An environment variable. */
struct vk_wf_kv {
    const char *key;
    const char *value;
    struct vk_wf_pos pos;
};

/** A secret a fragment uses (`secrets "NAME"` or `secret-file "NAME"`, DESIGN §8). */
struct vk_wf_secret {
    const char *name; /**< [A-Z_][A-Z0-9_]* */
    bool file;        /**< `secret-file`: a 0600 file whose path is in the variable */
    struct vk_wf_pos pos;
};

#define VK_WF_MAX_SECRETS 100 /**< secrets one fragment may use */

#define VK_WF_MAX_CONCURRENCY_GROUP 200 /**< longest concurrency group, bytes, once filled in */

/**
 * `concurrency group="deploy-{branch}" cancel-in-progress=#true` of a chain or of an
 * inline fragment (docs/workflow.md, "Concurrency groups"). `group` is the text as
 * written with `{matrix.KEY}` filled in (matrix copies); `{branch}`, `{repo}` and
 * `{workflow}` stay and are filled in when a chain is made (vk_wf_concurrency_expand()).
 */
struct vk_wf_concurrency {
    const char *group;
    bool cancel_in_progress; /**< a newer chain of the group cancels the older ones */
    struct vk_wf_pos pos;
};

/**
 * A node of the chain tree. Inline fragments have `run`; groups have
 * `children` (an array of `nchildren` structs). A `parallel` block is a group
 * with is_parallel; an import (`fragment { from … }`) is a sequential group
 * whose children are the imported file's top-level nodes.
 */
struct vk_wf_fragment {
    enum vk_wf_frag_type type;
    bool is_parallel;
    uint32_t sequence;               /**< 0, 1, 2… among siblings */
    const char *name;                /**< NULL when not named */
    const char *run;                 /**< inline only */
    const char *machine;             /**< resolved: own, else nearest group's, else the chain's */
    const char *condition_src;       /**< NULL when unconditional */
    const struct vk_cond *condition; /**< compiled `condition_src` */
    const char *import_from;         /**< import groups: the `from` text as written */
    const char *source_url;   /**< the imported document it came from; NULL in the top file */
    int64_t timeout_ms;       /**< 0: the worker's default */
    int64_t queue_timeout_ms; /**< `queue-timeout`; 0: the workflow's, else the server's */
    int retries;              /**< 0..VK_WF_MAX_RETRIES */
    bool network;            /**< resolved `network`: own, else nearest group's, else the chain's */
    uint32_t checkout_depth; /**< resolved `checkout { depth N }` like `network`; 0 = all */
    bool checkout_head;      /**< resolved `checkout { ref "head" }`: a pull request builds
                              *   its head, not the merge into its base */
    enum vk_wf_submodules checkout_submodules; /**< resolved `checkout { submodules … }` */
    bool checkout_lfs;                         /**< resolved `checkout { lfs #true }` */
    bool checkout_none; /**< resolved `checkout #false`: no checkout at all (the other
                         *   checkout fields are then at their defaults) */
    struct vk_wf_kv *env;
    size_t nenv;
    struct vk_wf_secret *secrets; /**< resolved: the chain's and the fragment's own (its own
                                   *   win for a name in both), in order of first use */
    size_t nsecrets;
    bool is_matrix;       /**< a `parallel` group of one copy per `matrix` combination */
    int max_parallel;     /**< parallel groups: `max-parallel N`, most children running at
                           *   once (the next starts when one ends); 0: no limit */
    bool no_fail_fast;    /**< groups: `fail-fast #false`: a failure inside does not stop the
                           *   group's other children; the group fails when it closes */
    enum vk_wf_when when; /**< `when` (docs/workflow.md, "Failure policies") */
    bool allow_failure;   /**< `allow-failure #true`: its failure fails nothing above it */
    /** A matrix copy: its combination (axes in order, then `include` variables); each
     *  inline fragment of the copy also has them in `env` as MATRIX_<KEY>. */
    struct vk_wf_kv *matrix;
    size_t nmatrix;
    /** `needs "a" "b"`: the names as written, where each was written, and the nodes they
     *  name (resolved when the chain has loaded; docs/workflow.md, "Needs"). */
    const char **needs;
    struct vk_wf_pos *needs_pos;
    struct vk_wf_fragment **needs_frag;
    size_t nneeds;
    uint32_t index; /**< position in the pre-order of vk_workflow_walk() (root excluded) */
    const struct vk_wf_concurrency *concurrency; /**< inline only: `concurrency`; NULL: none */
    struct vk_wf_fragment *children;
    size_t nchildren;
    struct vk_wf_fragment *parent; /**< NULL for the root (the chain) */
    struct vk_wf_pos pos;
};

struct vk_workflow {
    const char *file;        /**< the name the workflow was loaded under */
    const char *name;        /**< `name`, else the file name without directory and extension */
    const char *version;     /**< "0.1" */
    const char *machine;     /**< chain.machine: the default worker group */
    bool network;            /**< chain.network: sandboxed scripts share the host network */
    uint32_t checkout_depth; /**< chain.checkout.depth, 0 = full history */
    bool checkout_head;      /**< chain.checkout.ref "head" */
    enum vk_wf_submodules checkout_submodules; /**< chain.checkout.submodules */
    bool checkout_lfs;                         /**< chain.checkout.lfs */
    bool checkout_none;                        /**< chain `checkout #false` */
    struct vk_wf_kv *env;                      /**< chain.env */
    size_t nenv;
    struct vk_wf_secret *secrets; /**< chain.secrets and chain.secret-file */
    size_t nsecrets;
    int64_t queue_timeout_ms; /**< top-level `queue-timeout`; 0: the server's default */
    const struct vk_wf_concurrency *concurrency; /**< chain.concurrency; NULL: none */
    struct vk_wf_trigger *triggers;
    size_t ntriggers;
    /**
     * The root group (type GROUP, sequential, named "chain", machine = the
     * default): its children are the chain's top-level fragments.
     */
    struct vk_wf_fragment root;
    struct vk_pool pool;
};

/* ---------------------------------------------------------------- Loading */

/** What vk_wf_fetch_fn is asked to read. */
struct vk_wf_fetch_req {
    const char *location; /**< a local path, or an http(s):// URL */
    bool is_url;
    size_t max_size; /**< more bytes than this: fail with VK_ETOOBIG */
    long timeout_ms; /**< URL fetches: overall time limit */
    int max_redirects;
    bool allow_http; /**< plain http:// allowed (else https only, redirects too) */
};

/**
 * Read one import into `out` (an empty buffer whose max is req->max_size).
 * Return 0, or a VK code with a message in `err`: VK_EPERM (imports refused),
 * VK_ETOOBIG, VK_ETIMEDOUT, VK_ENOTFOUND, VK_EIO.
 */
typedef int vk_wf_fetch_fn(void *ctx, const struct vk_wf_fetch_req *req, struct vk_buf *out,
                           struct vk_err *err);

/** The default fetcher: local files (regular files only) and http(s) with libcurl. */
int vk_wf_fetch_default(void *ctx, const struct vk_wf_fetch_req *req, struct vk_buf *out,
                        struct vk_err *err);

/**
 * Says whether an import download may connect to `sa` (`len` bytes): NULL when it may,
 * else why not (static text). Asked for every connection libcurl opens, after each DNS
 * lookup and each redirect, so a rebound name or a redirect cannot reach an address the
 * check refuses.
 */
typedef const char *vk_wf_addr_check_fn(void *ctx, const struct sockaddr *sa, size_t len);

/**
 * Download the URL import `req` as the default fetcher does, and with `check` (may be
 * NULL) asked before every connection; no proxy from the environment is used when
 * `check` is set. A refused address answers VK_EPERM with the check's reason.
 */
int vk_wf_fetch_url_checked(const struct vk_wf_fetch_req *req, vk_wf_addr_check_fn *check,
                            void *check_ctx, struct vk_buf *out, struct vk_err *err);

/** A fetcher that refuses every import with VK_EPERM ("imports are not allowed"). */
int vk_wf_fetch_refuse(void *ctx, const struct vk_wf_fetch_req *req, struct vk_buf *out,
                       struct vk_err *err);

/** Load options. Zero-initialise and set what you need; 0 / NULL means the default. */
struct vk_wf_options {
    /** Directory for the top-level document's relative imports (default: its own
     * directory; for buffers without a file name, the current directory). Imported
     * files always resolve against their own location. */
    const char *base_path;
    vk_wf_fetch_fn *fetch; /**< default vk_wf_fetch_default */
    void *fetch_ctx;
    size_t max_import_size; /**< default VK_WF_MAX_IMPORT_SIZE */
    long import_timeout_ms; /**< default VK_WF_IMPORT_TIMEOUT_MS */
    int max_redirects;      /**< default (and maximum) VK_WF_MAX_REDIRECTS; -1: none */
    bool allow_http;        /**< allow plain http:// imports */
    int max_import_depth;   /**< default VK_WF_MAX_IMPORT_DEPTH */
    size_t max_fragments;   /**< default VK_WF_MAX_FRAGMENTS */
    size_t max_imports;     /**< default VK_WF_MAX_IMPORTS */
};

/**
 * Load the workflow file at `path` (read with a VK_MAX_FILE cap); `opts` may be
 * NULL. On success *out is a new workflow owned by the caller (free with
 * vk_workflow_free()). On failure *out is NULL and `error` (may be NULL; must
 * be initialised) describes the first error. Returns 0, VK_EPARSE (any
 * language error), VK_ECYCLE, VK_EIO (unreadable file, failed fetch), VK_EPERM
 * (refused import), VK_ETOOBIG, VK_ETIMEDOUT or VK_ENOMEM.
 */
int vk_workflow_load_file(const char *path, const struct vk_wf_options *opts,
                          struct vk_workflow **out, struct vk_wf_error *error) VK_MUST_CHECK;

/**
 * Like vk_workflow_load_file() for `len` bytes at `src` (borrows it; need not
 * be NUL-terminated). `file_name` (may be NULL: "<input>") names it in errors,
 * gives the default workflow name and, unless opts->base_path is set, the
 * directory of relative imports.
 */
int vk_workflow_load_buffer(const char *src, size_t len, const char *file_name,
                            const struct vk_wf_options *opts, struct vk_workflow **out,
                            struct vk_wf_error *error) VK_MUST_CHECK;

/** Free a workflow and everything in it. Accepts NULL. */
void vk_workflow_free(struct vk_workflow *wf);

/* ---------------------------------------------------------------- Operations */

/** Number of fragments in the tree (inline and groups, not counting the root). */
size_t vk_workflow_count_fragments(const struct vk_workflow *wf);

/**
 * Called for each fragment in pre-order (parents before children, siblings in
 * sequence order). `depth` is 0 for the chain's top-level fragments. Return 0
 * to go on; any other value stops the walk and is returned by the walk.
 */
typedef int vk_wf_visit_fn(void *ctx, const struct vk_wf_fragment *f, unsigned depth);

/** Walk every fragment but the root in pre-order. Returns 0 or the visitor's stop value. */
int vk_workflow_walk(const struct vk_workflow *wf, vk_wf_visit_fn *visit, void *ctx);

/**
 * Does the event start this workflow? True when any trigger matches
 * (vk_wf_trigger_matches()).
 */
bool vk_workflow_triggered(const struct vk_workflow *wf, const struct vk_wf_event *ev);

/**
 * Like vk_workflow_triggered(), and when nothing matches, why, in `why` (`cap` bytes):
 * the explanation of each trigger of the event's type ("; "-separated), or, when the
 * workflow has none, "no push trigger (the workflow triggers on pull_request, manual)".
 */
bool vk_workflow_triggered_why(const struct vk_workflow *wf, const struct vk_wf_event *ev,
                               char *why, size_t cap);

/**
 * Append the JSON form of `wf` (docs/parse-json.md; 2-space indent, keys in a
 * fixed order, final newline) to `out`. Returns 0, VK_ENOMEM or VK_ETOOBIG.
 */
int vk_workflow_to_json(const struct vk_workflow *wf, struct vk_buf *out) VK_MUST_CHECK;

/**
 * Fill in the placeholders of a concurrency group `group` (as loaded: only `{branch}`,
 * `{repo}` and `{workflow}` are left) into `out` (`cap` bytes): `branch` (the chain's
 * branch, NULL: ""), `repo` (the repository's name, NULL: ""), `workflow` (the
 * workflow's name). Returns 0, or VK_ETOOBIG when the result is longer than
 * VK_WF_MAX_CONCURRENCY_GROUP or `cap` - 1 bytes (then `out` holds "").
 */
int vk_wf_concurrency_expand(const char *group, const char *branch, const char *repo,
                             const char *workflow, char *out, size_t cap) VK_MUST_CHECK;

/** Append the readable tree shown by `vulcan parse` to `out`. Returns 0 or a vk_buf error. */
int vk_workflow_to_text(const struct vk_workflow *wf, struct vk_buf *out) VK_MUST_CHECK;

#endif /* VULCAN_WORKFLOW_H */
