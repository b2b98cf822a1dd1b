/* Monitored jobs (`ping:`): jobs run elsewhere that report in by POST /ping/{job}. The executor
 * owns their runs as it owns every other: a ping (MSG_PING from the API, key already checked)
 * records a run; a scheduled instant (MSG_FIRE from the scheduler) arms a check at instant +
 * grace instead of starting anything, and a check that finds no ping records a FAILED run
 * "no ping received" (the notifier hears of it like any failed run). */
#include "actors/exec_int.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Checks waiting per job at most: a per-second schedule with a grace of 15 minutes. Beyond it a
 * firing's check is not armed (logged). */
#define PING_WAITS_MAX 1000
/* A ping this much ahead of a scheduled instant still counts for it (clocks of other hosts). */
#define PING_EARLY_MAX_MS 60000

/* One scheduled instant of a monitored job waiting for its grace to pass. */
typedef struct ping_wait {
    cv_list_t link; /* in executor.ping_waits */
    uv_timer_t timer;
    executor_t *ex;
    char *job;
    int64_t instant_ms;
    int64_t grace_ms;
} ping_wait_t;

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

void exec__ping(executor_t *ex, const msg_ping_t *p)
{
    const cfg_job_t *job = ex->cfg ? cfg_find_job(ex->cfg->cfg, p->job) : NULL;
    if (ex->shutting)
        return;
    if (job == NULL || job->action != CFG_ACTION_PING) {
        cv_warn("exec", "ping for '%s' ignored: not a monitored job (any more)", p->job);
        return;
    }
    exec__job_t *js = exec__job_state(ex, job->name);
    js->last_ping_ms = p->at_ms;
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
        /* A shared store assigns ids on insert, through a claim the executor waits for: there
         * the run is recorded once, at its end (with its start time), and not shown running. */
        if (!ex->shared) {
            exec__publish(xr, RUN_EV_STARTED, true);
            xr->persisted = true;
        }
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

static void grace_passed(uv_timer_t *t)
{
    ping_wait_t *w = t->data;
    executor_t *ex = w->ex;
    const cfg_job_t *job = ex->cfg ? cfg_find_job(ex->cfg->cfg, w->job) : NULL;
    exec__job_t *js = cv_strmap_get(&ex->jobs, w->job);
    int64_t early = w->grace_ms < PING_EARLY_MAX_MS ? w->grace_ms : PING_EARLY_MAX_MS;
    bool pinged = js != NULL && (js->last_ping_ms >= w->instant_ms - early || js->ping_open);
    if (job != NULL && job->action == CFG_ACTION_PING && !pinged && !ex->shutting &&
        exec__enabled(ex, job)) {
        int64_t now = cv_now_ms();
        char *why = cv_sprintf("no ping received (due by %lld ms after the scheduled instant)",
                               (long long)w->grace_ms);
        cv_warn("exec", "job %s: no ping received for its instant %lld (grace %lld ms)", job->name,
                (long long)w->instant_ms, (long long)w->grace_ms);
        exec__run_t *xr =
            ping_run_new(ex, job, exec__job_state(ex, job->name), "ping:missed", w->instant_ms);
        xr->run->started_at = 0; /* nothing started that the daemon knows of */
        xr->run->queued_at = now;
        ping_run_end(xr, RUN_FAILED, why, now);
        free(why);
    }
    wait_release(w);
}

void exec__ping_fire(executor_t *ex, const cfg_job_t *job, const msg_fire_t *f)
{
    exec__job_t *js = exec__job_state(ex, job->name);
    if (js->ping_waits >= PING_WAITS_MAX) {
        cv_warn("exec", "job %s: %d ping checks already wait; the instant %lld is not checked",
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
    while (!cv_list_empty(&ex->ping_waits))
        wait_release(cv_container_of(ex->ping_waits.next, ping_wait_t, link));
    while (!cv_list_empty(&ex->ping_open)) {
        exec__run_t *xr = cv_container_of(ex->ping_open.next, exec__run_t, link);
        cv_list_remove(&xr->link);
        xr->js->ping_open = NULL;
        ping_run_end(xr, RUN_CANCELLED,
                     "cancelled: the daemon stopped before the job reported its end", cv_now_ms());
    }
}
