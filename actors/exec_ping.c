/* Monitored jobs (`ping:`): jobs run elsewhere that report in by POST /ping/{job}. The executor
 * owns their runs as it owns every other: a ping (MSG_PING from the API, key already checked)
 * records a run; a scheduled instant (MSG_FIRE from the scheduler) arms a check at instant +
 * grace instead of starting anything, and a check that finds no ping records a FAILED run
 * "no ping received" (the notifier hears of it like any failed run).
 *
 * With a shared store (several daemons on one PostgreSQL database) a ping may reach any instance,
 * so the runs are kept in the store, not in memory: a /start inserts a RUNNING run (the database
 * assigns its id); a success or /fail ends the job's open RUNNING ping run found in the store
 * (whoever started it), or records a run of no duration; the pings of one job are handled one
 * after the other (each waits for the store's answer to the one before). A check that finds no
 * ping of this instance asks the store for the job's newest ping run (MSG_STORE_REQ
 * STORE_OP_QUERY_RUNS), and a missed instant is claimed like a firing (MSG_CLAIM of the
 * "ping:missed" run, firing_claims): one instance records it and notifies. A ping run's instance
 * is the one that recorded its latest change. */
#include "actors/exec_int.h"
#include "actors/store_actor.h"
#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The checks waiting per job are at most limits.ping_checks (a per-second schedule with a grace
 * of 15 minutes needs 900): beyond it a firing's check is not armed (logged, counted). The pings
 * accepted but not yet done (the shared store's queue below) are bounded by the API, which counts
 * the MSG_PING it posts until their MSG_PING_DONE (limits.ping_queue, 429 beyond). */
/* A ping this much ahead of a scheduled instant still counts for it (clocks of other hosts). */
#define PING_EARLY_MAX_MS 60000
/* Shared store: the open ping runs of a job read at most (more than one is left by a race). */
#define PING_OPEN_READ 8

/* One scheduled instant of a monitored job waiting for its grace to pass. */
typedef struct ping_wait {
    cv_list_t link; /* in executor.ping_waits */
    uv_timer_t timer;
    executor_t *ex;
    char *job;
    int64_t instant_ms;
    int64_t grace_ms;
    /* shared store: the store request in flight (0: none, the timer is armed), and the
     * "ping:missed" run being claimed (NULL while the store is asked whether a ping came) */
    uint64_t corr;
    struct exec__run *missed;
} ping_wait_t;

/* Shared store: one ping being recorded (corr != 0: its store request in flight) or waiting for
 * the one before it of the same job. */
typedef struct ping_op {
    cv_list_t link; /* in executor.ping_ops, in arrival order */
    msg_ping_t *ping;
    struct exec__run *xr; /* /start: the run being inserted */
    uint64_t corr;
} ping_op_t;

static executor_ping_stats_t stats;

void executor_ping_stats_get(executor_ping_stats_t *out)
{
    *out = stats;
}

/* The ping is recorded or given up: its sender is told (it bounds the pings not yet done). */
static void ping_done(const msg_ping_t *p)
{
    if (p->reply_to != NULL)
        cv_actor_post(p->reply_to, cv_msg_new(sizeof(cv_msg_t), MSG_PING_DONE));
}

static exec__run_t *ping_run_new(executor_t *ex, const cfg_job_t *job, exec__job_t *js,
                                 const char *trigger, int64_t at_ms)
{
    char host[256] = "unknown";
    exec__run_t *xr = cv_calloc(1, sizeof(*xr));
    cv_list_init(&xr->link);
    xr->ex = ex;
    xr->job = job;
    xr->cfg = cfgref_get(ex->cfg);
    xr->js = js;
    run_t *r = xr->run = run_new(job->name, trigger);
    r->id = ex->shared ? 0 : ex->next_id++;
    r->scheduled_for = r->queued_at = r->started_at = at_ms;
    r->attempt = 1;
    r->instance = cv_strdup(ex->instance);
    if (gethostname(host, sizeof(host) - 1) != 0)
        snprintf(host, sizeof(host), "unknown");
    r->host = cv_strdup(host);
    return xr;
}

static void ping_run_free(exec__run_t *xr)
{
    run_free(xr->run);
    cfgref_put(xr->cfg);
    free(xr);
}

/* Ends xr with status st (and why, may be NULL) at at_ms: published (inserted unless its start
 * was), then freed. */
static void ping_run_end(exec__run_t *xr, run_status_t st, const char *why, int64_t at_ms)
{
    run_t *r = xr->run;
    r->status = st;
    r->finished_at = at_ms;
    r->duration_ms = r->started_at > 0 && at_ms > r->started_at ? at_ms - r->started_at : 0;
    free(r->error);
    r->error = why ? cv_strdup(why) : NULL;
    if (st == RUN_SUCCESS || st == RUN_PARTIAL)
        xr->js->consecutive_failures = 0;
    else
        xr->js->consecutive_failures++;
    cv_debug("exec", "ping run %lld of job %s (%s) ends %s", (long long)r->id, r->job, r->trigger,
             run_status_name(st));
    exec__publish(xr, RUN_EV_FINISHED, !xr->persisted);
    ping_run_free(xr);
}

static void ping_fill(run_t *r, const msg_ping_t *p)
{
    if (p->body != NULL) {
        free(r->output_tail);
        r->output_tail = cv_strndup(p->body, p->body_len);
        r->output_bytes = (int64_t)p->body_len;
    }
    if (p->items_processed >= 0)
        r->items_processed = p->items_processed;
    if (p->items_failed >= 0)
        r->items_failed = p->items_failed;
}

/* ---- shared store: the pings of a job recorded through the store, one after the other ---- */

/* Tells the observers (the API's hub) of a run the store already holds. */
static void tell_observers(exec__run_t *xr, run_ev_kind_t kind)
{
    executor_t *ex = xr->ex;
    run_t *snap = run_dup(xr->run);
    for (size_t i = 0; i < ex->nobservers; i++) {
        msg_run_event_t *e = msg_run_event_share(kind, snap);
        cv_actor_post(ex->observers[i], &e->hdr);
    }
    run_unref(snap);
}

/* A run read from the store (taken), to be ended by this instance: the instance and host become
 * this one's, so that every instance's API hears of its end (each relays the others' changes). */
static exec__run_t *ping_run_adopt(executor_t *ex, const cfg_job_t *job, exec__job_t *js, run_t *r)
{
    exec__run_t *xr = ping_run_new(ex, job, js, "ping", r->started_at);
    free(r->instance);
    free(r->host);
    r->instance = xr->run->instance;
    r->host = xr->run->host;
    xr->run->instance = xr->run->host = NULL;
    run_free(xr->run);
    xr->run = r;
    xr->persisted = true;
    return xr;
}

static msg_store_req_t *ping_query(executor_t *ex, const char *job, uint32_t status_mask, int limit,
                                   uint64_t corr)
{
    msg_store_req_t *q = store_req_new(STORE_OP_QUERY_RUNS, ex->actor, corr, NULL, NULL);
    q->a.filter.job = cv_strdup(job);
    q->a.filter.trigger = cv_strdup("ping");
    q->a.filter.status_mask = status_mask;
    q->a.filter.limit = limit;
    ex->ping_inflight++;
    return q;
}

/* Reads the job's open ping runs (step 1 of every ping). */
static void op_start(executor_t *ex, ping_op_t *op)
{
    op->corr = ++ex->ping_corr;
    msg_store_req_t *q = ping_query(ex, op->ping->job, 1u << RUN_RUNNING, PING_OPEN_READ, op->corr);
    cv_actor_post(ex->store, &q->hdr);
}

/* The ping is recorded (or given up): the next one of its job goes on. */
static void op_finish(executor_t *ex, ping_op_t *op)
{
    cv_list_remove(&op->link);
    ex->nping_ops--;
    ping_done(op->ping);
    for (cv_list_t *n = ex->ping_ops.next; n != &ex->ping_ops; n = n->next) {
        ping_op_t *next = cv_container_of(n, ping_op_t, link);
        if (strcmp(next->ping->job, op->ping->job) == 0) {
            op_start(ex, next);
            break;
        }
    }
    op->ping->hdr.dispose(&op->ping->hdr);
    free(op);
    exec__shutdown_check(ex);
}

static void ping_enqueue(executor_t *ex, const msg_ping_t *p)
{
    bool busy = false;
    for (cv_list_t *n = ex->ping_ops.next; n != &ex->ping_ops && !busy; n = n->next)
        busy = strcmp(cv_container_of(n, ping_op_t, link)->ping->job, p->job) == 0;
    ping_op_t *op = cv_calloc(1, sizeof(*op));
    op->ping = msg_ping_new(p->job, p->kind, p->at_ms, p->body, p->body_len);
    op->ping->items_processed = p->items_processed;
    op->ping->items_failed = p->items_failed;
    op->ping->reply_to = p->reply_to;
    cv_list_insert_tail(&ex->ping_ops, &op->link);
    ex->nping_ops++;
    if (!busy)
        op_start(ex, op);
}

/* The job's open ping runs (newest first) are in r->page: the ping ends them or starts one. */
static void op_open_read(executor_t *ex, ping_op_t *op, msg_store_reply_t *r)
{
    const msg_ping_t *p = op->ping;
    const cfg_job_t *job = ex->cfg ? cfg_find_job(ex->cfg->cfg, p->job) : NULL;
    if (job == NULL || job->action != CFG_ACTION_PING) {
        cv_warn("exec", "ping for '%s' ignored: not a monitored job (any more)", p->job);
        op_finish(ex, op);
        return;
    }
    if (r->status != 0)
        cv_warn("exec",
                "job %s: its open ping runs could not be read from the store (%s): the ping is "
                "recorded as if none were open",
                job->name, strerror(-r->status));
    exec__job_t *js = exec__job_state(ex, job->name);
    size_t n = r->status == 0 ? r->page.count : 0;
    if (p->kind == PING_START) {
        for (size_t i = 0; i < n; i++) {
            exec__run_t *old = ping_run_adopt(ex, job, js, r->page.runs[i]);
            r->page.runs[i] = NULL; /* taken */
            ping_run_end(old, RUN_FAILED, "started again before it reported its end", p->at_ms);
        }
        exec__run_t *xr = ping_run_new(ex, job, js, "ping", p->at_ms);
        xr->run->status = RUN_RUNNING;
        ping_fill(xr->run, p);
        op->xr = xr;
        op->corr = ++ex->ping_corr;
        msg_store_req_t *q = store_req_new(STORE_OP_INSERT_RUN, ex->actor, op->corr, NULL, NULL);
        q->a.run = run_dup(xr->run);
        ex->ping_inflight++;
        cv_actor_post(ex->store, &q->hdr);
        return;
    }
    exec__run_t *xr = NULL;
    if (n > 0) {
        xr = ping_run_adopt(ex, job, js, r->page.runs[0]);
        r->page.runs[0] = NULL;
    } else {
        xr = ping_run_new(ex, job, js, "ping", p->at_ms);
    }
    ping_fill(xr->run, p);
    run_status_t st = p->kind == PING_FAIL        ? RUN_FAILED
                      : xr->run->items_failed > 0 ? RUN_PARTIAL
                                                  : RUN_SUCCESS;
    ping_run_end(xr, st, p->kind == PING_FAIL ? "the job reported a failure (ping /fail)" : NULL,
                 p->at_ms);
    op_finish(ex, op);
}

/* The RUNNING run of a /start is in the store (its id in r->value): shown running. */
static void op_inserted(executor_t *ex, ping_op_t *op, msg_store_reply_t *r)
{
    exec__run_t *xr = op->xr;
    op->xr = NULL;
    if (r->status == 0 && r->value > 0) {
        xr->run->id = r->value;
        cv_info("exec", "ping run %lld of job %s started (ping /start)", (long long)xr->run->id,
                xr->run->job);
        tell_observers(xr, RUN_EV_STARTED);
    } else if (r->status == 0) {
        cv_info("exec", "ping run of job %s started (ping /start); the store records it later",
                xr->run->job);
    } else {
        cv_error("exec", "ping run of job %s (ping /start) could not be recorded: %s", xr->run->job,
                 strerror(-r->status));
    }
    ping_run_free(xr);
    op_finish(ex, op);
}

/* Records p on a private store (every instance's pings reach this one). */
static void ping_local(executor_t *ex, const cfg_job_t *job, exec__job_t *js, const msg_ping_t *p)
{
    exec__run_t *open = js->ping_open;
    js->ping_open = NULL;
    if (open != NULL)
        cv_list_remove(&open->link);
    if (p->kind == PING_START) {
        if (open != NULL)
            ping_run_end(open, RUN_FAILED, "started again before it reported its end", p->at_ms);
        exec__run_t *xr = ping_run_new(ex, job, js, "ping", p->at_ms);
        xr->run->status = RUN_RUNNING;
        ping_fill(xr->run, p);
        cv_info("exec", "ping run %lld of job %s started (ping /start)", (long long)xr->run->id,
                job->name);
        exec__publish(xr, RUN_EV_STARTED, true);
        xr->persisted = true;
        js->ping_open = xr;
        cv_list_insert_tail(&ex->ping_open, &xr->link);
        return;
    }
    exec__run_t *xr = open ? open : ping_run_new(ex, job, js, "ping", p->at_ms);
    ping_fill(xr->run, p);
    run_status_t st = p->kind == PING_FAIL        ? RUN_FAILED
                      : xr->run->items_failed > 0 ? RUN_PARTIAL
                                                  : RUN_SUCCESS;
    ping_run_end(xr, st, p->kind == PING_FAIL ? "the job reported a failure (ping /fail)" : NULL,
                 p->at_ms);
}

void exec__ping(executor_t *ex, const msg_ping_t *p)
{
    const cfg_job_t *job = ex->cfg ? cfg_find_job(ex->cfg->cfg, p->job) : NULL;
    if (ex->shutting) {
        ping_done(p);
        return;
    }
    if (job == NULL || job->action != CFG_ACTION_PING) {
        cv_warn("exec", "ping for '%s' ignored: not a monitored job (any more)", p->job);
        ping_done(p);
        return;
    }
    exec__job_t *js = exec__job_state(ex, job->name);
    js->last_ping_ms = p->at_ms;
    if (ex->shared) {        /* its run may have been started on another instance: ask the store */
        ping_enqueue(ex, p); /* done once recorded */
        return;
    }
    ping_local(ex, job, js, p);
    ping_done(p);
}

static void wait_closed(uv_handle_t *h)
{
    ping_wait_t *w = h->data;
    free(w->job);
    free(w);
}

static void wait_release(ping_wait_t *w)
{
    exec__job_t *js = cv_strmap_get(&w->ex->jobs, w->job);
    if (js != NULL)
        js->ping_waits--;
    cv_list_remove(&w->link);
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, wait_closed);
}

/* The FAILED "no ping received" run of w's instant, not yet recorded. */
static exec__run_t *missed_run_new(executor_t *ex, const cfg_job_t *job, const ping_wait_t *w)
{
    exec__run_t *xr =
        ping_run_new(ex, job, exec__job_state(ex, job->name), "ping:missed", w->instant_ms);
    xr->run->started_at = 0; /* nothing started that the daemon knows of */
    xr->run->queued_at = cv_now_ms();
    return xr;
}

static void missed_run_end(exec__run_t *xr, const ping_wait_t *w)
{
    char *why = cv_sprintf("no ping received (due by %lld ms after the scheduled instant)",
                           (long long)w->grace_ms);
    cv_warn("exec", "job %s: no ping received for its instant %lld (grace %lld ms)", xr->run->job,
            (long long)w->instant_ms, (long long)w->grace_ms);
    ping_run_end(xr, RUN_FAILED, why, cv_now_ms());
    free(why);
}

/* The earliest ping that counts for w's instant. */
static int64_t wait_since(const ping_wait_t *w)
{
    return w->instant_ms - (w->grace_ms < PING_EARLY_MAX_MS ? w->grace_ms : PING_EARLY_MAX_MS);
}

/* The monitored job of w, when its instant still needs a ping: configured, enabled, running. */
static const cfg_job_t *wait_job(const ping_wait_t *w)
{
    executor_t *ex = w->ex;
    const cfg_job_t *job = ex->cfg ? cfg_find_job(ex->cfg->cfg, w->job) : NULL;
    if (job == NULL || job->action != CFG_ACTION_PING || ex->shutting || !exec__enabled(ex, job))
        return NULL;
    return job;
}

static void grace_passed(uv_timer_t *t)
{
    ping_wait_t *w = t->data;
    executor_t *ex = w->ex;
    const cfg_job_t *job = wait_job(w);
    exec__job_t *js = cv_strmap_get(&ex->jobs, w->job);
    bool pinged = js != NULL && (js->last_ping_ms >= wait_since(w) || js->ping_open);
    if (job != NULL && !pinged && ex->shared) {
        /* the ping may have reached another instance: ask the store for the job's newest ping
         * runs (a ping ends or records the newest) */
        w->corr = ++ex->ping_corr;
        msg_store_req_t *q = ping_query(ex, w->job, 0, 2, w->corr);
        cv_actor_post(ex->store, &q->hdr);
        return;
    }
    if (job != NULL && !pinged)
        missed_run_end(missed_run_new(ex, job, w), w);
    wait_release(w);
}

/* Shared store: the job's newest ping runs are in r->page. Without one at or after the instant
 * (or still open), the missed instant is claimed: the instance whose claim wins records it. */
static void wait_store_read(executor_t *ex, ping_wait_t *w, msg_store_reply_t *r)
{
    const cfg_job_t *job = wait_job(w);
    exec__job_t *js = cv_strmap_get(&ex->jobs, w->job);
    int64_t since = wait_since(w);
    bool pinged = js != NULL && js->last_ping_ms >= since;
    if (job != NULL && r->status != 0)
        cv_warn("exec",
                "job %s: the store could not tell whether the instant %lld was pinged (%s): "
                "deciding on the pings this instance received",
                job->name, (long long)w->instant_ms, strerror(-r->status));
    for (size_t i = 0; r->status == 0 && i < r->page.count && !pinged; i++) {
        const run_t *p = r->page.runs[i];
        pinged = p->status == RUN_RUNNING || p->started_at >= since || p->finished_at >= since;
    }
    if (job == NULL || pinged) {
        wait_release(w);
        return;
    }
    w->missed = missed_run_new(ex, job, w);
    w->missed->run->status = RUN_QUEUED;
    w->corr = ++ex->claim_corr; /* answered as MSG_CLAIM_REPLY, numbered with the firings' */
    msg_claim_t *m = msg_claim_new(w->missed->run, ex->actor, w->corr);
    ex->ping_inflight++;
    cv_actor_post(ex->store, &m->hdr);
}

bool exec__ping_claim_reply(executor_t *ex, const msg_claim_reply_t *m)
{
    ping_wait_t *w = NULL;
    for (cv_list_t *n = ex->ping_waits.next; n != &ex->ping_waits && w == NULL; n = n->next) {
        ping_wait_t *k = cv_container_of(n, ping_wait_t, link);
        if (k->missed != NULL && k->corr == m->corr)
            w = k;
    }
    if (w == NULL)
        return false;
    ex->ping_inflight--;
    exec__run_t *xr = w->missed;
    w->missed = NULL;
    if (m->status == 0) {
        xr->run->id = m->run_id;
        xr->persisted = true;
        missed_run_end(xr, w);
    } else if (m->status == -EEXIST) {
        cv_info("exec", "job %s: its missed instant %lld was recorded by another instance", w->job,
                (long long)w->instant_ms);
        ping_run_free(xr);
    } else if (m->status == -EAGAIN) {
        /* the database is unreachable: recorded unclaimed (the spool writes it back later), as
         * every instance that received no ping then does */
        xr->run->id = ex->next_provisional--;
        missed_run_end(xr, w);
    } else {
        cv_error("exec", "job %s: its missed instant %lld could not be recorded: %s", w->job,
                 (long long)w->instant_ms, strerror(-m->status));
        ping_run_free(xr);
    }
    wait_release(w);
    exec__shutdown_check(ex);
    return true;
}

void exec__ping_store_reply(executor_t *ex, msg_store_reply_t *r)
{
    for (cv_list_t *n = ex->ping_ops.next; n != &ex->ping_ops; n = n->next) {
        ping_op_t *op = cv_container_of(n, ping_op_t, link);
        if (op->corr != r->corr)
            continue;
        ex->ping_inflight--;
        if (op->xr != NULL)
            op_inserted(ex, op, r);
        else
            op_open_read(ex, op, r);
        return;
    }
    for (cv_list_t *n = ex->ping_waits.next; n != &ex->ping_waits; n = n->next) {
        ping_wait_t *w = cv_container_of(n, ping_wait_t, link);
        if (w->missed != NULL || w->corr != r->corr)
            continue;
        ex->ping_inflight--;
        wait_store_read(ex, w, r);
        exec__shutdown_check(ex);
        return;
    }
}

void exec__ping_fire(executor_t *ex, const cfg_job_t *job, const msg_fire_t *f)
{
    exec__job_t *js = exec__job_state(ex, job->name);
    int max = ex->cfg->cfg->limits.ping_checks;
    if (js->ping_waits >= max) {
        stats.checks_dropped++;
        cv_warn("exec",
                "job %s: %d ping checks already wait (limits.ping_checks); the instant %lld is "
                "not checked",
                job->name, js->ping_waits, (long long)f->scheduled_for);
        return;
    }
    ping_wait_t *w = cv_calloc(1, sizeof(*w));
    w->ex = ex;
    w->job = cv_strdup(job->name);
    w->instant_ms = f->scheduled_for > 0 ? f->scheduled_for : cv_now_ms();
    w->grace_ms = job->ping.grace_ms;
    int64_t delay = w->instant_ms + w->grace_ms - cv_now_ms();
    uv_timer_init(cv_runtime_loop(cv_actor_runtime(ex->actor)), &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, grace_passed, (uint64_t)(delay > 0 ? delay : 0), 0);
    cv_list_insert_tail(&ex->ping_waits, &w->link);
    js->ping_waits++;
}

void exec__ping_shutdown(executor_t *ex)
{
    /* the checks whose store request is in flight end with its answer (ping_inflight) */
    for (cv_list_t *n = ex->ping_waits.next, *next; n != &ex->ping_waits; n = next) {
        next = n->next;
        ping_wait_t *w = cv_container_of(n, ping_wait_t, link);
        if (w->corr == 0)
            wait_release(w);
    }
    while (!cv_list_empty(&ex->ping_open)) {
        exec__run_t *xr = cv_container_of(ex->ping_open.next, exec__run_t, link);
        cv_list_remove(&xr->link);
        xr->js->ping_open = NULL;
        ping_run_end(xr, RUN_CANCELLED,
                     "cancelled: the daemon stopped before the job reported its end", cv_now_ms());
    }
}
