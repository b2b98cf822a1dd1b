/* The executor's policies and lifecycle: what happens to a MSG_FIRE, from the concurrency policy
 * and the global queue to retries, auto-disable and shutdown. How a run is carried out lives in
 * exec_spawn.c (processes) and exec_http.c (HTTP calls). */
#include "actors/exec_int.h"
#include "core/log.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct retry {
    cv_list_t link;
    uv_timer_t timer;
    executor_t *ex;
    msg_fire_t *fire;
    bool was_enabled; /* the job was enabled when the retry was set: disabling it drops the retry */
} retry_t;

static void maybe_shutdown_done(executor_t *ex);
static void drop_disabled_retries(executor_t *ex);

exec__job_t *exec__job_state(executor_t *ex, const char *name)
{
    exec__job_t *js = cv_strmap_get(&ex->jobs, name);
    if (js == NULL) {
        js = cv_calloc(1, sizeof(*js));
        cv_strmap_put(&ex->jobs, name, js);
    }
    return js;
}

static void reply(const msg_fire_t *f, fire_outcome_t outcome, int64_t id, run_status_t st,
                  const char *reason)
{
    if (f->reply_to == NULL)
        return;
    msg_fire_reply_t *r = msg_fire_reply_new(f->corr, outcome, id, st, reason);
    cv_actor_post(f->reply_to, &r->hdr);
}

void exec__publish(exec__run_t *xr, run_ev_kind_t kind, bool insert)
{
    executor_t *ex = xr->ex;
    /* xr->run is the executor's to change: every receiver shares one immutable snapshot */
    run_t *snap = run_dup(xr->run);
    if (kind != RUN_EV_PROGRESS) {
        msg_run_event_t *e = msg_run_event_share(kind, snap);
        e->insert = insert;
        cv_actor_post(ex->store, &e->hdr);
    }
    for (size_t i = 0; i < ex->nobservers && kind != RUN_EV_FINISHED; i++) {
        msg_run_event_t *e = msg_run_event_share(kind, snap);
        cv_actor_post(ex->observers[i], &e->hdr);
    }
    run_unref(snap);
}

static bool wants_output(const executor_t *ex)
{
    for (size_t i = 0; i < ex->nobservers; i++)
        if (ex->observer_output[i])
            return true;
    return false;
}

void exec__output(exec__run_t *xr, int64_t at_ms, const char *stream, const char *text, size_t len)
{
    executor_t *ex = xr->ex;
    if (!wants_output(ex))
        return;
    if (xr->batch == NULL)
        xr->batch = msg_run_output_new(xr->run->id);
    size_t max = (size_t)xr->cfg->cfg->limits.live_output_lines;
    if (!ex->output_lossless && max > 0 && xr->batch->n >= max) {
        xr->live_dropped++;
        return;
    }
    msg_run_output_add(xr->batch, at_ms, stream, text, len);
}

void exec__output_flush(exec__run_t *xr)
{
    executor_t *ex = xr->ex;
    msg_run_output_t *b = xr->batch;
    if (b == NULL)
        return;
    xr->batch = NULL;
    if (xr->live_dropped > 0) {
        char *note = cv_sprintf("[... %llu lines not shown live (limits.live_output_lines) ...]",
                                (unsigned long long)xr->live_dropped);
        msg_run_output_add(b, cv_now_ms(), "system", note, strlen(note));
        free(note);
        b->dropped = xr->live_dropped;
        xr->live_dropped = 0;
    }
    b->run_id = xr->run->id;
    size_t last = ex->nobservers;
    while (last > 0 && !ex->observer_output[last - 1])
        last--;
    for (size_t i = 0; i < last; i++)
        if (ex->observer_output[i])
            cv_actor_post(ex->observers[i], i + 1 == last ? &b->hdr : &msg_run_output_copy(b)->hdr);
    if (last == 0)
        b->hdr.dispose(&b->hdr);
}

/* The machine a run runs on (run_t.host): gethostname, read once. The instance id names the
 * daemon (it changes with the pid); the host names the machine, which a person looks for. */
static const char *hostname(void)
{
    static char host[256];
    if (host[0] == '\0' && (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0'))
        snprintf(host, sizeof(host), "unknown");
    return host;
}

static exec__run_t *xrun_new(executor_t *ex, const msg_fire_t *f, const cfg_job_t *job)
{
    exec__run_t *xr = cv_calloc(1, sizeof(*xr));
    cv_list_init(&xr->link);
    xr->ex = ex;
    xr->job = job;
    xr->cfg = cfgref_get(ex->cfg);
    xr->js = exec__job_state(ex, job->name);
    xr->run = run_new(job->name, f->trigger);
    xr->run->id = ex->shared ? 0 : ex->next_id++; /* shared: the database assigns it */
    xr->run->scheduled_for = f->scheduled_for;
    xr->run->attempt = f->attempt > 0 ? f->attempt : 1;
    xr->run->retry_of = f->retry_of;
    xr->run->instance = cv_strdup(ex->instance);
    xr->run->host = cv_strdup(hostname());
    xr->run->queued_at = cv_now_ms();
    return xr;
}

static void xrun_release(exec__run_t *xr)
{
    if (xr->batch)
        xr->batch->hdr.dispose(&xr->batch->hdr);
    run_free(xr->run);
    cfgref_put(xr->cfg);
    free(xr->cancel_reason);
    free(xr->other_instance);
    free(xr);
}

/* The start of a run (QUEUED, RUNNING). Its end is logged by the store actor once the record is
 * durable (store_actor.c), like the run.finished event: a line never claims an outcome that a
 * crash could still lose. */
static void log_event(const exec__run_t *xr)
{
    const run_t *r = xr->run;
    if (!run_status_final(r->status))
        cv_info("exec", "run %lld job=%s trigger=%s attempt=%d status=%s", (long long)r->id, r->job,
                r->trigger, r->attempt, run_status_name(r->status));
}

int64_t exec__not_before_ns(const exec__run_t *xr)
{
    const run_t *r = xr->run;
    return r->attempt == 1 && strcmp(r->trigger, "cron") == 0 ? r->scheduled_for * 1000000 : 0;
}

static void start(exec__run_t *xr)
{
    executor_t *ex = xr->ex;
    cv_list_insert_tail(&ex->active, &xr->link);
    ex->nactive++;
    ex->started++;
    xr->run->status = RUN_RUNNING;
    xr->run->started_at = cv_now_ms();
    int64_t not_before_ms = exec__not_before_ns(xr) / 1000000;
    if (xr->run->started_at < not_before_ms) /* prepared ahead: the child starts on the instant */
        xr->run->started_at = not_before_ms;
    log_event(xr);
    exec__publish(xr, RUN_EV_STARTED, !xr->persisted);
    xr->persisted = true;
    if (xr->job->action == CFG_ACTION_HTTP)
        exec__http(xr);
    else
        exec__spawn(xr);
}

/* Records a run that never ran (SKIPPED, or CANCELLED while queued). */
static void finish_unstarted(exec__run_t *xr, run_status_t st, const char *why)
{
    xr->run->status = st;
    xr->run->finished_at = cv_now_ms();
    free(xr->run->error);
    xr->run->error = cv_strdup(why);
    log_event(xr);
    exec__publish(xr, RUN_EV_FINISHED, !xr->persisted);
    xrun_release(xr);
}

static void start_queued(executor_t *ex)
{
    int max = ex->cfg->cfg->limits.max_concurrent;
    while (!ex->shutting && !cv_list_empty(&ex->queue) && (max <= 0 || (int)ex->nactive < max)) {
        exec__run_t *xr = cv_container_of(ex->queue.next, exec__run_t, link);
        cv_list_remove(&xr->link);
        ex->nqueued--;
        start(xr);
    }
}

static void stop_job_runs(executor_t *ex, const char *job, const char *reason)
{
    for (cv_list_t *n = ex->queue.next, *next; n != &ex->queue; n = next) {
        next = n->next;
        exec__run_t *xr = cv_container_of(n, exec__run_t, link);
        if (strcmp(xr->run->job, job) == 0) {
            cv_list_remove(n);
            ex->nqueued--;
            xr->js->active--;
            finish_unstarted(xr, RUN_CANCELLED, reason);
        }
    }
    for (cv_list_t *n = ex->active.next; n != &ex->active; n = n->next) {
        exec__run_t *xr = cv_container_of(n, exec__run_t, link);
        if (strcmp(xr->run->job, job) == 0)
            exec__stop(xr, xr->job->kill_grace_ms, reason);
    }
}

/* The reason a job may not start because of its `requires:`, or NULL (caller frees). */
static char *requires_blocked(const executor_t *ex, const cfg_job_t *job)
{
    for (unsigned i = 0; i < job->n_requires; i++) {
        const exec__health_t *h = cv_strmap_get(&ex->health, job->requires[i]);
        if (h && h->status == HEALTH_UNHEALTHY)
            return cv_sprintf("required probe '%s' is unhealthy: %s", job->requires[i],
                              h -> message ? h -> message : "no detail");
    }
    return NULL;
}

static void on_health(executor_t *ex, msg_health_t *m)
{
    exec__health_t *h = cv_strmap_get(&ex->health, m->h.probe);
    if (h == NULL) {
        h = cv_calloc(1, sizeof(*h));
        cv_strmap_put(&ex->health, m->h.probe, h);
    }
    h->status = m->h.status;
    free(h->message);
    h->message = m->h.message; /* stolen */
    m->h.message = NULL;
}

static void health_free(void *v)
{
    exec__health_t *h = v;
    free(h->message);
    free(h);
}

bool exec__enabled(const executor_t *ex, const cfg_job_t *job)
{
    effjob_t e = {0};
    effjob_compute_list(&e, job, &ex->overrides, NULL); /* the daemon and the API warn */
    bool enabled = e.enabled;
    effjob_clear(&e);
    return enabled;
}

/* A firing the daemon made by itself (not a person's, not a retry of a started firing): the
 * scheduler's, or a chain's (another job's run ended). */
static bool fired_by_schedule(const msg_fire_t *f)
{
    return strcmp(f->trigger, "cron") == 0 || strcmp(f->trigger, "catch_up") == 0 ||
           strcmp(f->trigger, "reboot") == 0 || strncmp(f->trigger, "chain:", 6) == 0;
}

static void on_override(executor_t *ex, const msg_override_t *o)
{
    if (o->job && o->field)
        effjob_overrides_set(&ex->overrides, o->job, o->field, o->value);
    drop_disabled_retries(ex);
}

static void on_fire(executor_t *ex, msg_fire_t *f)
{
    if (ex->shutting) {
        reply(f, FIRE_SHUTTING, 0, RUN_SKIPPED, "the daemon is shutting down");
        return;
    }
    const cfg_job_t *job = ex->cfg ? cfg_find_job(ex->cfg->cfg, f->job) : NULL;
    if (job == NULL) {
        cv_warn("exec", "fire for unknown job '%s' ignored", f->job);
        reply(f, FIRE_UNKNOWN, 0, RUN_SKIPPED, "no such job");
        return;
    }
    if (fired_by_schedule(f) && !exec__enabled(ex, job)) {
        /* disabled after the scheduler fired it (or on another instance, not yet heard of there) */
        cv_info("exec", "%s firing of job %s not run: the job is disabled", f->trigger, job->name);
        return;
    }
    if (job->action == CFG_ACTION_PING) { /* run elsewhere: wait for its ping (exec_ping.c) */
        if (fired_by_schedule(f))
            exec__ping_fire(ex, job, f);
        reply(f, FIRE_SKIPPED, 0, RUN_SKIPPED, "the job runs elsewhere and reports by ping");
        return;
    }
    exec__run_t *xr = xrun_new(ex, f, job);
    if (ex->shared)
        exec__claim(xr, f); /* exec_claim.c: insert first, then exec__admit */
    else
        exec__admit(xr, f);
}

/* Answers a firing that will not run and records it with its reason. Takes xr. A refused
 * request of a person (a fire with a reply_to, i.e. "Run now") is not a run: it is answered
 * (409, audited by the API) and forgotten, unless its row already exists (claimed on a shared
 * store), which then ends SKIPPED like a cron firing. */
static void refuse(exec__run_t *xr, const msg_fire_t *f, fire_outcome_t outcome, run_status_t st,
                   const char *why)
{
    executor_t *ex = xr->ex;
    bool requested = f->reply_to != NULL && !xr->persisted;
    reply(f, outcome, requested ? 0 : xr->run->id, st, why);
    if (requested) {
        cv_info("exec", "request to run %s refused: %s", xr->run->job, why);
        xrun_release(xr);
    } else {
        finish_unstarted(xr, st, why);
    }
    maybe_shutdown_done(ex);
}

void exec__skip_unclaimed(exec__run_t *xr, const msg_fire_t *f, const char *why)
{
    refuse(xr, f, FIRE_SKIPPED, RUN_SKIPPED, why);
}

void exec__admit(exec__run_t *xr, const msg_fire_t *f)
{
    executor_t *ex = xr->ex;
    const cfg_job_t *job = xr->job;
    if (ex->shutting) { /* claimed while the daemon began to stop */
        reply(f, FIRE_SHUTTING, xr->run->id, RUN_CANCELLED, "the daemon is shutting down");
        finish_unstarted(xr, RUN_CANCELLED, "cancelled: the daemon is shutting down");
        maybe_shutdown_done(ex);
        return;
    }
    char *blocked = requires_blocked(ex, job);
    if (blocked) {
        refuse(xr, f, FIRE_SKIPPED, RUN_SKIPPED, blocked);
        free(blocked);
        return;
    }
    if (xr->nothers > 0 && job->concurrency == CFG_CONC_FORBID) {
        char *why = cv_sprintf("skipped: run %lld of '%s' is still active on instance %s"
                               " (concurrency: forbid)",
                               (long long)xr->other_run[0], job->name, xr->other_instance);
        refuse(xr, f, FIRE_SKIPPED, RUN_SKIPPED, why);
        free(why);
        return;
    }
    int max = ex->cfg->cfg->limits.max_concurrent;
    int qmax = ex->cfg->cfg->limits.max_queued;
    if (max > 0 && (int)ex->nactive >= max && qmax > 0 && (int)ex->nqueued >= qmax) {
        char *why = cv_sprintf("skipped: %d runs already wait for a slot (limits.max_queued)",
                               (int)ex->nqueued);
        refuse(xr, f, FIRE_SKIPPED, RUN_SKIPPED, why);
        free(why);
        return;
    }
    if (xr->nothers > 0 && job->concurrency == CFG_CONC_REPLACE)
        exec__cancel_elsewhere(xr);
    if (xr->js->active > 0 && job->concurrency == CFG_CONC_FORBID) {
        char *why =
            cv_sprintf("skipped: a run of '%s' is still active (concurrency: forbid)", job->name);
        refuse(xr, f, FIRE_SKIPPED, RUN_SKIPPED, why);
        free(why);
        return;
    }
    if (xr->js->active > 0 && job->concurrency == CFG_CONC_REPLACE) {
        char *why = cv_sprintf("replaced by run %lld", (long long)xr->run->id);
        stop_job_runs(ex, job->name, why);
        free(why);
    }
    xr->js->active++;
    if (max > 0 && (int)ex->nactive >= max) {
        xr->run->status = RUN_QUEUED;
        cv_list_insert_tail(&ex->queue, &xr->link);
        ex->nqueued++;
        log_event(xr);
        exec__publish(xr, RUN_EV_QUEUED, !xr->persisted);
        xr->persisted = true;
        reply(f, FIRE_ACCEPTED, xr->run->id, RUN_QUEUED, NULL);
        return;
    }
    reply(f, FIRE_ACCEPTED, xr->run->id, RUN_RUNNING, NULL);
    start(xr);
}

static void retry_closed(uv_handle_t *h)
{
    retry_t *rt = h->data;
    if (rt->fire)
        rt->fire->hdr.dispose(&rt->fire->hdr);
    free(rt);
}

static void retry_due(uv_timer_t *t)
{
    retry_t *rt = t->data;
    cv_list_remove(&rt->link);
    cv_actor_post(rt->ex->actor, &rt->fire->hdr);
    rt->fire = NULL;
    uv_close((uv_handle_t *)&rt->timer, retry_closed);
}

static void schedule_retry(executor_t *ex, const exec__run_t *xr)
{
    const cfg_retries_t *rp = &xr->job->retries;
    int64_t delay = rp->backoff_ms;
    for (int i = 1; i < xr->run->attempt && delay < rp->backoff_max_ms; i++)
        delay *= 2;
    if (rp->backoff_max_ms > 0 && delay > rp->backoff_max_ms)
        delay = rp->backoff_max_ms;
    retry_t *rt = cv_calloc(1, sizeof(*rt));
    rt->ex = ex;
    rt->fire = msg_fire_new(xr->run->job, "retry", xr->run->scheduled_for);
    rt->fire->attempt = xr->run->attempt + 1;
    rt->fire->retry_of = xr->run->retry_of ? xr->run->retry_of : xr->run->id;
    rt->was_enabled = exec__enabled(ex, xr->job);
    uv_timer_init(cv_runtime_loop(cv_actor_runtime(ex->actor)), &rt->timer);
    rt->timer.data = rt;
    uv_timer_start(&rt->timer, retry_due, (uint64_t)delay, 0);
    cv_list_insert_tail(&ex->retries, &rt->link);
    cv_info("exec", "job %s: attempt %d failed; retry in %lldms", xr->run->job, xr->run->attempt,
            (long long)delay);
}

/* Drops the pending retries of the jobs that were enabled when their retry was set and are now
 * disabled (an override, an auto-disable, a reload) or gone (a reload): a disabled job does not
 * run again by itself. The retry that will not run is logged and recorded as a SKIPPED attempt
 * with its reason, so the run history says why the failed run was not retried. A person's run of
 * a job already disabled keeps its retries (was_enabled is false). */
static void drop_disabled_retries(executor_t *ex)
{
    for (cv_list_t *n = ex->retries.next, *next; n != &ex->retries; n = next) {
        next = n->next;
        retry_t *rt = cv_container_of(n, retry_t, link);
        const msg_fire_t *f = rt->fire;
        const cfg_job_t *job = ex->cfg ? cfg_find_job(ex->cfg->cfg, f->job) : NULL;
        if (job != NULL && (!rt->was_enabled || exec__enabled(ex, job)))
            continue;
        const char *why = job ? "retry dropped: the job was disabled while the retry waited"
                              : "retry dropped: the job was removed while the retry waited";
        cv_warn("exec", "job %s: attempt %d (retry of run %lld) will not run: %s", f->job,
                f->attempt, (long long)f->retry_of, why);
        cv_list_remove(&rt->link);
        uv_timer_stop(&rt->timer);
        if (job != NULL && !ex->shutting)
            finish_unstarted(xrun_new(ex, f, job), RUN_SKIPPED, why);
        uv_close((uv_handle_t *)&rt->timer, retry_closed);
    }
}

static void auto_disable(executor_t *ex, const exec__run_t *xr)
{
    const char *job = xr->run->job;
    cv_warn("exec", "job %s: disabled after %d consecutive failures (auto_disable_after)", job,
            xr->js->consecutive_failures);
    if (ex->scheduler) {
        msg_job_enable_t *m = msg_job_enable_new(job, false);
        cv_actor_post(ex->scheduler, &m->hdr);
    }
    effjob_overrides_set(&ex->overrides, job, "enabled", "false");
    msg_override_t *o = msg_override_new(job, "enabled", "false", "system");
    cv_actor_post(ex->store, &o->hdr);
    for (size_t i = 0; i < ex->nobservers; i++) { /* the API's view of the job */
        msg_override_t *copy = msg_override_new(job, "enabled", "false", "system");
        cv_actor_post(ex->observers[i], &copy->hdr);
    }
    char *after =
        cv_sprintf("{\"enabled\":false,\"consecutive_failures\":%d}", xr->js->consecutive_failures);
    msg_audit_t *a =
        msg_audit_new("system", "job.auto_disabled", job, xr->run->id, "{\"enabled\":true}", after);
    free(after);
    for (size_t i = 0; i < ex->nobservers; i++)
        cv_actor_post(ex->observers[i], &msg_audit_dup(a)->hdr);
    cv_actor_post(ex->store, &a->hdr);
}

static void maybe_shutdown_done(executor_t *ex)
{
    if (!ex->shutting || ex->nactive || ex->nqueued || ex->nclaiming || ex->ping_inflight ||
        ex->shutdown_reply == NULL)
        return;
    cv_msg_t *done = cv_msg_new(sizeof(cv_msg_t), MSG_SHUTDOWN_DONE);
    cv_actor_post(ex->shutdown_reply, done);
    ex->shutdown_reply = NULL;
}

void exec__shutdown_check(executor_t *ex)
{
    maybe_shutdown_done(ex);
}

void exec__drop(exec__run_t *xr)
{
    executor_t *ex = xr->ex;
    xrun_release(xr);
    maybe_shutdown_done(ex);
}

/* Whether a final status triggers a job's chain list k (0 on_success, 1 on_failure, 2
 * on_complete). PARTIAL is neither a success nor a failure: only on_complete follows it. */
static bool chain_follows(run_status_t st, int k)
{
    if (k == 0)
        return st == RUN_SUCCESS;
    if (k == 1)
        return st == RUN_FAILED || st == RUN_TIMED_OUT;
    return true;
}

/* The final outcome of a run that started (after its last attempt): its job's chains are fired
 * as "chain:<run id>", through MSG_FIRE like a person's "Run now". The lists are the current
 * configuration's (a reload may have changed them, or removed the job). */
static void fire_chains(executor_t *ex, const run_t *r)
{
    const cfg_job_t *job = ex->cfg ? cfg_find_job(ex->cfg->cfg, r->job) : NULL;
    if (job == NULL)
        return;
    char *const *v[3] = {job->on_success, job->on_failure, job->on_complete};
    const unsigned nv[3] = {job->n_on_success, job->n_on_failure, job->n_on_complete};
    static const char *const keys[3] = {"on_success", "on_failure", "on_complete"};
    char trigger[32];
    snprintf(trigger, sizeof(trigger), "chain:%lld", (long long)r->id);
    for (int k = 0; k < 3; k++) {
        if (!chain_follows(r->status, k))
            continue;
        for (unsigned i = 0; i < nv[k]; i++) {
            bool dup = false; /* named in two lists that both follow: fired once */
            for (int p = 0; p < k && !dup; p++)
                for (unsigned q = 0; q < nv[p] && !dup; q++)
                    dup = chain_follows(r->status, p) && strcmp(v[p][q], v[k][i]) == 0;
            for (unsigned q = 0; q < i && !dup; q++)
                dup = strcmp(v[k][q], v[k][i]) == 0;
            if (dup)
                continue;
            if (ex->shutting) {
                cv_info("exec",
                        "run %lld job=%s: %s chain to %s not fired: the daemon is "
                        "shutting down",
                        (long long)r->id, r->job, keys[k], v[k][i]);
                continue;
            }
            cv_info("exec", "run %lld job=%s ended %s: %s fires %s", (long long)r->id, r->job,
                    run_status_name(r->status), keys[k], v[k][i]);
            msg_fire_t *f = msg_fire_new(v[k][i], trigger, cv_now_ms());
            cv_actor_post(ex->actor, &f->hdr);
        }
    }
}

void exec__finished(exec__run_t *xr)
{
    executor_t *ex = xr->ex;
    run_t *r = xr->run;
    cv_list_remove(&xr->link);
    ex->nactive--;
    xr->js->active--;
    if (r->finished_at == 0)
        r->finished_at = cv_now_ms();
    /* auto_disable_after counts failed firings: a firing fails when its last attempt does */
    bool failed = r->status == RUN_FAILED || r->status == RUN_TIMED_OUT;
    bool retry = failed && !ex->shutting && r->attempt <= xr->job->retries.max;
    if (r->status == RUN_SUCCESS || r->status == RUN_PARTIAL)
        xr->js->consecutive_failures = 0;
    else if (failed && !retry)
        xr->js->consecutive_failures++;
    log_event(xr);
    exec__publish(xr, RUN_EV_FINISHED, false);

    int limit = xr->job->auto_disable_after;
    if (retry)
        schedule_retry(ex, xr);
    else if (failed && limit > 0 && xr->js->consecutive_failures >= limit) {
        if (exec__enabled(ex, xr->job))
            auto_disable(ex, xr);
        else /* a person ran it while disabled: nothing to disable, no job.auto_disabled */
            cv_info("exec", "job %s: %d consecutive failures; the job is already disabled", r->job,
                    xr->js->consecutive_failures);
        xr->js->consecutive_failures = 0; /* re-enabled, the job starts the count afresh */
    }
    if (!retry)
        fire_chains(ex, r);
    xrun_release(xr);
    start_queued(ex);
    maybe_shutdown_done(ex);
}

static void on_cancel(executor_t *ex, msg_cancel_t *c)
{
    char *why = cv_sprintf("cancelled by %s", c->by ? c->by : "an operator");
    cv_list_t *lists[2] = {&ex->queue, &ex->active};
    for (int l = 0; l < 2; l++) {
        for (cv_list_t *n = lists[l]->next; n != lists[l]; n = n->next) {
            exec__run_t *xr = cv_container_of(n, exec__run_t, link);
            if (xr->run->id != c->run_id)
                continue;
            if (l == 0) {
                cv_list_remove(n);
                ex->nqueued--;
                xr->js->active--;
                finish_unstarted(xr, RUN_CANCELLED, why);
                maybe_shutdown_done(ex);
            } else {
                exec__stop(xr, xr->job->kill_grace_ms, why);
            }
            free(why);
            return;
        }
    }
    cv_info("exec", "cancel of run %lld: not active", (long long)c->run_id);
    free(why);
}

static void on_shutdown(executor_t *ex, msg_shutdown_t *s)
{
    bool again = ex->shutting;
    ex->shutting = true;
    ex->shutdown_reply = s->reply_to;
    while (!cv_list_empty(&ex->retries)) {
        retry_t *rt = cv_container_of(ex->retries.next, retry_t, link);
        cv_list_remove(&rt->link);
        uv_timer_stop(&rt->timer);
        uv_close((uv_handle_t *)&rt->timer, retry_closed);
    }
    while (!cv_list_empty(&ex->queue)) {
        exec__run_t *xr = cv_container_of(ex->queue.next, exec__run_t, link);
        cv_list_remove(&xr->link);
        ex->nqueued--;
        xr->js->active--;
        finish_unstarted(xr, RUN_CANCELLED, "cancelled: the daemon is shutting down");
    }
    exec__ping_shutdown(ex);
    int64_t grace = s->immediate ? 0 : s->grace_ms;
    if (ex->nactive)
        cv_info("exec", "%s %zu running job(s)%s", s->immediate ? "killing" : "stopping",
                ex->nactive, again || s->immediate ? "" : " (SIGTERM, then SIGKILL after grace)");
    for (cv_list_t *n = ex->active.next; n != &ex->active; n = n->next)
        exec__stop(cv_container_of(n, exec__run_t, link), grace,
                   "cancelled: the daemon is shutting down");
    maybe_shutdown_done(ex);
}

static void on_config(executor_t *ex, msg_exec_config_t *c)
{
    if (ex->cfg)
        cfgref_put(ex->cfg);
    ex->cfg = cfgref_get(c->cfg);
    drop_disabled_retries(ex); /* a job disabled or removed by the reload */
    start_queued(ex);          /* the limit may have grown */
}

static void handle(cv_actor_t *self, cv_msg_t *msg)
{
    executor_t *ex = cv_actor_state(self);
    switch (msg->type) {
    case MSG_EXEC_CONFIG:
        on_config(ex, (msg_exec_config_t *)msg);
        break;
    case MSG_FIRE:
        on_fire(ex, (msg_fire_t *)msg);
        break;
    case MSG_OVERRIDE:
        on_override(ex, (msg_override_t *)msg);
        break;
    case MSG_CANCEL:
        on_cancel(ex, (msg_cancel_t *)msg);
        break;
    case MSG_SHUTDOWN:
        on_shutdown(ex, (msg_shutdown_t *)msg);
        break;
    case MSG_HEALTH:
        on_health(ex, (msg_health_t *)msg);
        break;
    case MSG_CLAIM_REPLY:
        if (!exec__ping_claim_reply(ex, (msg_claim_reply_t *)msg))
            exec__claim_reply(ex, (msg_claim_reply_t *)msg);
        break;
    case MSG_STORE_REPLY:
        exec__ping_store_reply(ex, (msg_store_reply_t *)msg);
        break;
    case MSG_PING:
        exec__ping(ex, (msg_ping_t *)msg);
        break;
    default:
        cv_warn("exec", "unexpected message type %d", msg->type);
    }
}

executor_t *executor_create(cv_runtime_t *rt, const executor_opts_t *opts)
{
    executor_t *ex = cv_calloc(1, sizeof(*ex));
    ex->store = opts->store;
    ex->output_lossless = opts->output_lossless;
    if (opts->hub)
        executor_add_observer(ex, opts->hub, true);
    ex->scheduler = opts->scheduler;
    ex->instance = cv_strdup(opts->instance ? opts->instance : "local");
    ex->next_id = opts->first_run_id > 0 ? opts->first_run_id : 1;
    cv_list_init(&ex->active);
    cv_list_init(&ex->queue);
    cv_list_init(&ex->retries);
    cv_list_init(&ex->ping_waits);
    cv_list_init(&ex->ping_open);
    cv_list_init(&ex->ping_ops);
    cv_list_init(&ex->claims);
    ex->shared = opts->shared_store;
    ex->next_provisional = -1;
    ex->actor = cv_actor_create(rt, "executor", handle, ex);
    return ex;
}

cv_actor_t *executor_actor(executor_t *ex)
{
    return ex->actor;
}

int executor_add_observer(executor_t *ex, cv_actor_t *observer, bool with_output)
{
    if (ex->nobservers >= EXECUTOR_MAX_OBSERVERS)
        return -ENOSPC;
    ex->observer_output[ex->nobservers] = with_output;
    ex->observers[ex->nobservers++] = observer;
    return 0;
}

void executor_set_scheduler(executor_t *ex, cv_actor_t *scheduler)
{
    ex->scheduler = scheduler;
}

void executor_destroy(executor_t *ex)
{
    cv_actor_destroy(ex->actor);
    exec__claims_free(ex);
    cv_strmap_free(&ex->jobs, free);
    effjob_overrides_clear(&ex->overrides);
    cv_strmap_free(&ex->health, health_free);
    if (ex->cfg)
        cfgref_put(ex->cfg);
    free(ex->instance);
    if (ex->http)
        httpc_close(ex->http, NULL, NULL);
    free(ex);
}

uint64_t executor_started(const executor_t *ex)
{
    return ex->started;
}

size_t executor_active(const executor_t *ex)
{
    return ex->nactive;
}

size_t executor_queued(const executor_t *ex)
{
    return ex->nqueued;
}
