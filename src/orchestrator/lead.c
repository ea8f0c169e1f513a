/*
 * Leadership of the singletons (DESIGN §13, docs/operations/high-availability.md): the
 * reaper and the cron scheduler each run in one replica at a time, the one holding the
 * lease of its name in the store. A thread renews the leases this process may hold every
 * ttl / 4 and takes a lease whose holder stopped renewing it (a replica killed with -9 is
 * replaced within ttl + ttl / 4). A renewal that fails (the store unreachable) gives the
 * singleton up at once; a clean stop releases the leases so the next replica takes them
 * at its next renewal. The same thread renews the replica's own liveness lease
 * (vk_orch_replica()), by which other replicas know whether work it claimed is orphaned.
 */
#include "orch_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_TTL_MS 3000

static const char *const names[VK_ORCH_SINGLETONS] = {"reaper", "cron"};

const char *vk_orch_singleton_name(enum vk_orch_singleton s)
{
    return (unsigned)s < VK_ORCH_SINGLETONS ? names[s] : "?";
}

const char *vk_orch_holder(const struct vk_orch *o)
{
    return o->holder;
}

const char *vk_orch_replica(const struct vk_orch *o)
{
    return o->opts.leases ? o->holder : NULL;
}

bool vk_orch_leads(struct vk_orch *o, enum vk_orch_singleton s)
{
    if ((unsigned)s >= VK_ORCH_SINGLETONS)
        return false;
    if (!o->opts.leases)
        return true;
    return atomic_load(&o->leads[s]);
}

int vk__orch_lead_init(struct vk_orch *o, struct vk_err *err)
{
    if (o->opts.lease_ttl_ms <= 0)
        o->opts.lease_ttl_ms = DEFAULT_TTL_MS;
    for (unsigned i = 0; i < VK_ORCH_SINGLETONS; i++)
        atomic_init(&o->leads[i], false);
    char host[64] = "host", rnd[VK_UUID_LEN];
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "host");
    host[sizeof(host) - 1] = '\0';
    if (vk_uuid_v4(rnd) < 0)
        return vk_err_set(err, VK_EIO, "the random generator failed");
    snprintf(o->holder, sizeof(o->holder), "%s:%ld:%.8s", host, (long)getpid(), rnd);
    if (!o->opts.metrics)
        return 0;
    return vk_metrics_counter(o->opts.metrics, "vulcan_leader_changes_total",
                              "Singletons (reaper, cron) this replica took the lead of.",
                              "singleton", &o->leader_changes, err);
}

/* Renew this replica's liveness lease (nobody else ever holds it). */
static void replica_round(struct vk_orch *o)
{
    char name[sizeof(o->holder) + sizeof(VK_STORE_REPLICA_LEASE)];
    snprintf(name, sizeof(name), VK_STORE_REPLICA_LEASE "%s", o->holder);
    bool held = false;
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_store_lease_hold(o->store, name, o->holder, o->opts.lease_ttl_ms, vk_time_now_ms(),
                            &held, NULL, &err) < 0)
        vk_log_write(VK_LOG_WARN, "orchestrator", "cannot renew the replica's lease", "error",
                     err.msg, NULL);
}

/* One round: this replica's liveness lease, then hold, renew or lose each lease this
 * process may hold. */
static void lead_round(struct vk_orch *o)
{
    replica_round(o);
    for (unsigned i = 0; i < VK_ORCH_SINGLETONS; i++) {
        if (!(o->opts.singletons & (1u << i)))
            continue;
        bool held = false, taken = false;
        struct vk_err err;
        vk_err_clear(&err);
        int rc = vk_store_lease_hold(o->store, names[i], o->holder, o->opts.lease_ttl_ms,
                                     vk_time_now_ms(), &held, &taken, &err);
        bool was = atomic_load(&o->leads[i]);
        if (rc < 0) {
            held = false; /* not sure we hold it: act as if not */
            vk_log_write(VK_LOG_WARN, "orchestrator", "cannot renew a lease", "singleton", names[i],
                         "error", err.msg, NULL);
        }
        atomic_store(&o->leads[i], held);
        if (held && !was) {
            vk_log_write(VK_LOG_INFO, "orchestrator", "leading a singleton", "singleton", names[i],
                         "holder", o->holder, NULL);
            if (o->leader_changes)
                vk_metrics_counter_inc(vk_metrics_counter_with(o->leader_changes, names[i]));
        } else if (!held && was) {
            vk_log_write(VK_LOG_WARN, "orchestrator", "no longer leading a singleton", "singleton",
                         names[i], NULL);
        }
    }
}

static void *lead_main(void *arg)
{
    struct vk_orch *o = arg;
    int64_t every = o->opts.lease_ttl_ms / 4;
    pthread_mutex_lock(&o->lock);
    while (!atomic_load(&o->stopping)) {
        pthread_mutex_unlock(&o->lock);
        lead_round(o);
        pthread_mutex_lock(&o->lock);
        struct timespec ts = vk_time_deadline(every);
        while (!atomic_load(&o->stopping) &&
               pthread_cond_timedwait(&o->cond, &o->lock, &ts) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&o->lock);
    return NULL;
}

int vk__orch_lead_start(struct vk_orch *o, struct vk_err *err)
{
    if (!o->opts.leases)
        return 0;
    /* the liveness leases of replicas gone for an hour: one row per process started */
    struct vk_err perr;
    vk_err_clear(&perr);
    if (vk_store_lease_prune(o->store, VK_STORE_REPLICA_LEASE, vk_time_now_ms() - 3600 * 1000LL,
                             &perr) < 0)
        vk_log_write(VK_LOG_WARN, "orchestrator", "cannot prune old replica leases", "error",
                     perr.msg, NULL);
    lead_round(o); /* a lone replica leads from its first moment */
    if (pthread_create(&o->leaser, NULL, lead_main, o) != 0)
        return vk_err_set(err, VK_EIO, "cannot start the lease thread");
    o->leaser_on = true;
    return 0;
}

void vk__orch_lead_stop(struct vk_orch *o)
{
    if (!o->leaser_on)
        return;
    pthread_join(o->leaser, NULL); /* `stopping` is set: it ends its wait */
    o->leaser_on = false;
    for (unsigned i = 0; i < VK_ORCH_SINGLETONS; i++) {
        if (!atomic_load(&o->leads[i]))
            continue;
        atomic_store(&o->leads[i], false);
        struct vk_err err;
        vk_err_clear(&err);
        if (vk_store_lease_release(o->store, names[i], o->holder, &err) < 0)
            vk_log_write(VK_LOG_WARN, "orchestrator", "cannot give a lease up", "singleton",
                         names[i], "error", err.msg, NULL);
    }
}
