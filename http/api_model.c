/* The http actor's read model: jobs (config + overrides + next fire + stats + live counts),
 * active runs with their output, probe states; and the events published from it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/tz.h"
#include "http/api_int.h"

const double api__hist_bounds[API_HIST_BUCKETS] = {0.1, 0.5, 1,   5,    10,   30,
                                                   60,  300, 900, 1800, 3600, 21600};

/* ---- jobs ---- */

static api__job_t *job_get(api_t *a, const char *name)
{
    api__job_t *j = cv_strmap_get(&a->by_name, name);
    if (j == NULL) {
        j = cv_calloc(1, sizeof(*j));
        j->name = cv_strdup(name);
        cv_strmap_put(&a->by_name, name, j);
        a->all = cv_realloc(a->all, (a->nall + 1) * sizeof(*a->all));
        a->all[a->nall++] = j;
    }
    return j;
}

api__job_t *api__job_find(api_t *a, const char *name)
{
    api__job_t *j = name ? cv_strmap_get(&a->by_name, name) : NULL;
    return j && j->cfg ? j : NULL;
}

/* Marks derived data (the cached GET /api/jobs pages) stale. */
static void model_changed(api_t *a)
{
    for (size_t i = 0; i < a->jobs_cache_max; i++) {
        free(a->jobs_cache[i].key);
        api_shared_body_unref(a->jobs_cache[i].body);
        a->jobs_cache[i] = (api__jobs_page_t){0};
    }
    a->njobs_cache = a->jobs_cache_next = a->jobs_cache_bytes = 0;
}

static int by_name(const void *x, const void *y)
{
    return strcmp((*(api__job_t *const *)x)->name, (*(api__job_t *const *)y)->name);
}

api__job_t **api__jobs_sorted(api_t *a)
{
    if (a->jobs_sorted == NULL) {
        a->jobs_sorted = cv_calloc(a->njobs + 1, sizeof(*a->jobs_sorted));
        memcpy(a->jobs_sorted, a->jobs, a->njobs * sizeof(*a->jobs));
        qsort(a->jobs_sorted, a->njobs, sizeof(*a->jobs_sorted), by_name);
    }
    return a->jobs_sorted;
}

/* Recomputes j's effective job from its configuration and the known overrides. */
static void job_effective(api_t *a, api__job_t *j)
{
    if (j->cfg) {
        effjob_compute_list(&j->eff, j->cfg, &a->overrides, "http");
        /* parsed now rather than while a page's JSON is built: the expression is kept, and kept
         * memory allocated among a page's temporary tree would pin its pages after it is freed */
        effjob_next_fire(&j->eff, cv_now_ms() / 1000);
    } else
        effjob_clear(&j->eff);
}

void api__model_config(api_t *a, cfgref_t *cfg)
{
    for (size_t i = 0; i < a->nall; i++)
        a->all[i]->cfg = NULL;
    free(a->jobs);
    free(a->jobs_sorted);
    a->jobs_sorted = NULL;
    a->jobs = cv_calloc(cfg->cfg->n_jobs + 1, sizeof(*a->jobs));
    a->njobs = 0;
    for (unsigned i = 0; i < cfg->cfg->n_jobs; i++) {
        api__job_t *j = job_get(a, cfg->cfg->jobs[i].name);
        j->cfg = &cfg->cfg->jobs[i];
        a->jobs[a->njobs++] = j;
    }
    for (size_t i = 0; i < a->nall; i++)
        job_effective(a, a->all[i]);
    cfgref_t *old = a->cfg;
    a->cfg = cfgref_get(cfg);
    if (old)
        cfgref_put(old);
    model_changed(a); /* empties the cache before it is resized */
    int pages = cfg->cfg->server.jobs_cache_pages;
    a->jobs_cache_max = pages > 0 ? (size_t)pages : API_JOBS_CACHE;
    a->jobs_cache_bytes_max = cfg->cfg->server.jobs_cache_bytes > 0
                                  ? (size_t)cfg->cfg->server.jobs_cache_bytes
                                  : API_JOBS_CACHE_BYTES;
    a->jobs_cache = cv_realloc(a->jobs_cache, a->jobs_cache_max * sizeof(*a->jobs_cache));
    memset(a->jobs_cache, 0, a->jobs_cache_max * sizeof(*a->jobs_cache));
    cv_trim(); /* the previous model's memory */
}

bool api__model_override(api_t *a, const char *job, const char *field, const char *value,
                         const char *by)
{
    bool known = false;
    for (size_t i = 0; i < CV_ARRAY_SIZE(effjob_fields); i++)
        known = known || strcmp(field, effjob_fields[i]) == 0;
    api__job_t *j = cv_strmap_get(&a->by_name, job);
    if (j && known && strcmp(field, "enabled") == 0) /* auto_disable_after disables as "system" */
        j->auto_disabled = value && strcmp(value, "false") == 0 && by && strcmp(by, "system") == 0;
    if (!known || !effjob_overrides_set(&a->overrides, job, field, value))
        return false;
    if (j)
        job_effective(a, j);
    model_changed(a);
    return true;
}

/* True when an event is worth building: the hub exists and a client listens. Otherwise the hub
 * notes the skipped event, so that a client resuming from before it resyncs. */
static bool hub_wants(api_t *a)
{
    if (a->hub == NULL || a->closed)
        return false;
    if (ws_hub_listening(a->hub))
        return true;
    ws_hub_skip(a->hub);
    return false;
}

static void publish_json(api_t *a, json_t *ev)
{
    char *text = json_dumps(ev, JSON_COMPACT);
    ws_hub_publish(a->hub, text, strlen(text));
    free(text);
    json_decref(ev);
}

static bool jobs_have(api__job_t *const *jobs, size_t n, const api__job_t *j)
{
    for (size_t i = 0; i < n; i++)
        if (jobs[i] == j)
            return true;
    return false;
}

void api__model_reloaded(api_t *a, api__job_t *const *old, size_t nold, const char *summary)
{
    /* Entries outlive reloads (one per name), so the same name is the same pointer. */
    int64_t now = cv_now_ms() / 1000;
    for (size_t i = 0; i < a->njobs; i++)
        if (!jobs_have(old, nold, a->jobs[i]) && hub_wants(a))
            publish_json(a, json_pack("{s:s,s:o}", "type", "job.added", "job",
                                      api__job_json(a, a->jobs[i], now)));
    for (size_t i = 0; i < nold; i++)
        if (old[i]->cfg == NULL && hub_wants(a))
            publish_json(a, json_pack("{s:s,s:s}", "type", "job.removed", "job", old[i]->name));
    if (hub_wants(a))
        publish_json(a, json_pack("{s:s,s:s}", "type", "config.reloaded", "summary",
                                  summary ? summary : "no changes"));
}

void api__model_instance_beat(api_t *a, const msg_instance_beat_t *b)
{
    if (!hub_wants(a))
        return;
    json_t *ev = json_pack("{s:s,s:{s:o,s:o,s:b}}", "type", "instance.heartbeat", "instance", "id",
                           api__jstr(b->id), "last_seen", api__jtime(b->last_seen), "self",
                           strcmp(b->id, a->instance) == 0);
    char *text = json_dumps(ev, JSON_COMPACT);
    ws_hub_publish(a->hub, text, strlen(text));
    free(text);
    json_decref(ev);
}

bool api__job_enabled(const api__job_t *j)
{
    return j->cfg ? j->eff.enabled : false;
}

const char *api__job_schedule(const api__job_t *j)
{
    return j->cfg ? j->eff.schedule : "manual";
}

const char *api__job_timezone(const api__job_t *j)
{
    return j->cfg ? j->eff.timezone : "UTC";
}

int64_t api__job_next(api_t *a, api__job_t *j, int64_t now)
{
    return j->cfg ? effjob_next_fire(&j->eff, now) : INT64_MAX;
}

void api__publish_job(api_t *a, api__job_t *j)
{
    model_changed(a);
    if (j->cfg == NULL || !hub_wants(a))
        return;
    json_t *ev = json_pack("{s:s,s:o}", "type", "job.updated", "job",
                           api__job_json(a, j, cv_now_ms() / 1000));
    char *text = json_dumps(ev, JSON_COMPACT);
    ws_hub_publish(a->hub, text, strlen(text));
    free(text);
    json_decref(ev);
}

/* ---- statistics ---- */

typedef struct stats_call {
    api_t *a;
    char **jobs;
    size_t njobs;
    bool publish; /* a refresh after runs ended: job.updated for each job (api->stats_busy) */
} stats_call_t;

static void stats_flush(api_t *a);

/* Statistics are re-read as runs end while someone watches live (a WebSocket client); otherwise
 * only when read (api__stats_fresh): a headless daemon spends no store time on them. */
static bool stats_eager(const api_t *a)
{
    return a->hub != NULL && !a->closed && ws_hub_listening(a->hub);
}

/* Calls again the handlers of the requests whose refresh is back. */
static void stats_wake(api_t *a)
{
    cv_list_t *n = a->stats_waiters.next;
    while (n != &a->stats_waiters) {
        api__stats_waiter_t *w = cv_container_of(n, api__stats_waiter_t, link);
        n = n->next;
        if (w->gen > a->stats_gen_done)
            continue;
        cv_list_remove(&w->link);
        a->stats_waking = true;
        w->handler(w->req, a); /* replies, which also frees a request whose client left */
        a->stats_waking = false;
        free(w);
    }
}

bool api__stats_fresh(api_t *a, api_req_t *req, api_handler_fn handler)
{
    if (a->stats_waking || (a->nstats_dirty == 0 && !a->stats_busy))
        return true;
    api__stats_waiter_t *w = cv_calloc(1, sizeof(*w));
    w->req = req;
    w->handler = handler;
    /* the jobs dirty now go in the next call; with none, the call in flight is the one */
    w->gen = a->nstats_dirty > 0 ? a->stats_gen + 1 : a->stats_gen;
    cv_list_insert_tail(&a->stats_waiters, &w->link);
    api_req_defer(req);
    stats_flush(a);
    return false;
}

void api__stats_waiters_abort(api_t *a)
{
    while (!cv_list_empty(&a->stats_waiters)) {
        api__stats_waiter_t *w = cv_container_of(a->stats_waiters.next, api__stats_waiter_t, link);
        cv_list_remove(&w->link);
        api_reply_error(w->req, 503, "shutting_down", "the daemon is shutting down");
        free(w);
    }
}

static void stats_call_free(stats_call_t *c)
{
    api_t *a = c->a;
    if (c->publish) {
        a->stats_busy = false;
        a->stats_gen_done++;
    }
    for (size_t i = 0; i < c->njobs; i++)
        free(c->jobs[i]);
    free(c->jobs);
    free(c);
    a->pending--;
    if (a->closed && a->pending == 0 && a->srv == NULL)
        api__free(a);
}

static void last_free(api__last_t *l)
{
    if (l != NULL)
        free(l->error);
    free(l);
}

/* j's latest run is now r (its fields copied). */
static void last_set(api__job_t *j, const run_t *r)
{
    if (j->last == NULL)
        j->last = cv_calloc(1, sizeof(*j->last));
    free(j->last->error);
    *j->last = (api__last_t){.id = r->id,
                             .started_at = r->started_at,
                             .finished_at = r->finished_at,
                             .duration_ms = r->duration_ms,
                             .items_processed = r->items_processed,
                             .items_failed = r->items_failed,
                             .status = r->status,
                             .error = r->error ? cv_strdup(r->error) : NULL};
}

static void stats_apply(api_t *a, store_job_stats_t *st)
{
    api__job_t *j = cv_strmap_get(&a->by_name, st->job);
    if (j == NULL)
        return;
    store_job_stats_t keep = *st;
    keep.job = NULL;
    keep.last = NULL;
    j->stats = keep;
    if (st->last && (j->last == NULL || st->last->id >= j->last->id))
        last_set(j, st->last);
}

static void on_stats(api_t *a_, void *ud, msg_store_reply_t *r)
{
    stats_call_t *c = ud;
    api_t *a = c->a;
    int status = r->status;
    store_job_stats_t *stats = r->stats;
    size_t count = r->nstats;
    if (status == -ESHUTDOWN || status == -ECANCELED)
        ;                       /* closing */
    else if (status == -EAGAIN) /* the database is unreachable (the store says so itself) */
        cv_debug("http", "job statistics not refreshed: the store is degraded");
    else if (status != 0)
        cv_warn("http", "job statistics could not be read: %s", strerror(-status));
    for (size_t i = 0; status == 0 && !a->closed && i < count; i++)
        stats_apply(a, &stats[i]);
    if (!a->closed && status == 0) {
        model_changed(a);
        for (size_t i = 0; c->publish && i < count; i++) {
            api__job_t *j = api__job_find(a, stats[i].job);
            if (j)
                api__publish_job(a, j);
        }
    }
    bool more = c->publish && !a->closed;
    stats_call_free(c);
    if (more) {
        stats_wake(a);
        if (!cv_list_empty(&a->stats_waiters) || stats_eager(a))
            stats_flush(a);
    }
}

/* One JOB_STATS request for c's jobs. */
static void stats_send(api_t *a, stats_call_t *c)
{
    msg_store_req_t *q = store_req_new(STORE_OP_JOB_STATS, NULL, 0, NULL, NULL);
    q->a.jobs = cv_calloc(c->njobs, sizeof(char *));
    for (size_t i = 0; i < c->njobs; i++)
        q->a.jobs[i] = cv_strdup(c->jobs[i]);
    q->a.njobs = c->njobs;
    q->a.limit = API_STATS_WINDOW;
    api__store_call(a, NULL, q, on_stats, c);
}

/* Sends the jobs waiting for a refresh in one store call, unless one is in flight (its end sends
 * the next). A burst of ends costs a few calls, not one per run. */
static void stats_flush(api_t *a)
{
    if (a->stats_busy || a->nstats_dirty == 0 || a->closed)
        return;
    stats_call_t *c = cv_calloc(1, sizeof(*c));
    c->a = a;
    c->jobs = a->stats_dirty;
    c->njobs = a->nstats_dirty;
    c->publish = true;
    a->stats_dirty = NULL;
    a->nstats_dirty = a->stats_dirty_cap = 0;
    for (size_t i = 0; i < c->njobs; i++) {
        api__job_t *j = cv_strmap_get(&a->by_name, c->jobs[i]);
        if (j)
            j->stats_dirty = false;
    }
    a->stats_busy = true;
    a->stats_gen++;
    a->pending++;
    stats_send(a, c);
}

/* One store call for every configured job, or (only_new) those never asked for. */
static void stats_ask(api_t *a, bool only_new)
{
    stats_call_t *c = cv_calloc(1, sizeof(*c));
    c->a = a;
    c->jobs = cv_calloc(a->njobs, sizeof(*c->jobs));
    for (size_t i = 0; i < a->njobs; i++) {
        api__job_t *j = a->jobs[i];
        if (!only_new || !j->stats_asked)
            c->jobs[c->njobs++] = cv_strdup(j->name);
        j->stats_asked = true;
    }
    if (c->njobs == 0) {
        free(c->jobs);
        free(c);
        return;
    }
    a->pending++;
    stats_send(a, c);
}

/* Reads the statistics of one job (NULL: every job) from the store into the model. */
static void api__model_refresh_stats(api_t *a, const char *job)
{
    if (a->njobs == 0 || a->closed)
        return;
    if (job) {
        api__job_t *j = cv_strmap_get(&a->by_name, job);
        if (j == NULL || j->stats_dirty)
            return;
        j->stats_dirty = true;
        if (a->nstats_dirty == a->stats_dirty_cap) {
            a->stats_dirty_cap = a->stats_dirty_cap ? 2 * a->stats_dirty_cap : 16;
            a->stats_dirty = cv_realloc(a->stats_dirty, a->stats_dirty_cap * sizeof(char *));
        }
        a->stats_dirty[a->nstats_dirty++] = cv_strdup(job);
        if (stats_eager(a))
            stats_flush(a);
        return;
    }
    stats_ask(a, false);
}

void api__model_refresh_new_stats(api_t *a)
{
    if (a->njobs > 0 && !a->closed)
        stats_ask(a, true);
}

/* ---- run events ---- */

bool api__run_remote(const api_t *a, const run_t *r)
{
    return r->instance != NULL && strcmp(r->instance, a->instance) != 0;
}

api__active_t *api__active_find(api_t *a, int64_t id)
{
    return cv_idmap_get(&a->active_by_id, id);
}

static void active_free(api_t *a, api__active_t *ar)
{
    cv_idmap_remove(&a->active_by_id, ar->run->id);
    cv_list_remove(&ar->link);
    run_free(ar->run);
    a->live_log_bytes -= ar->log.len;
    cv_buf_free(&ar->log);
    free(ar);
}

/* Adds (sign 1) or removes (-1) an active run's part in its job's live counts. */
static void tally(api_t *a, api__job_t *j, const run_t *r, int sign)
{
    bool own = !api__run_remote(a, r);
    a->running += sign * (r->status == RUN_RUNNING);
    a->queued += sign * (r->status == RUN_QUEUED);
    j->running += sign * (r->status == RUN_RUNNING);
    j->queued += sign * (r->status == RUN_QUEUED);
    j->own_running += sign * (own && r->status == RUN_RUNNING);
    j->own_queued += sign * (own && r->status == RUN_QUEUED);
}

const api__job_ctr_t *api__job_ctr(const api__job_t *j)
{
    static const api__job_ctr_t none;
    return j->ctr ? j->ctr : &none;
}

static api__job_ctr_t *ctr_mut(api__job_t *j)
{
    if (j->ctr == NULL)
        j->ctr = cv_calloc(1, sizeof(*j->ctr));
    return j->ctr;
}

static void count_finished(api__job_t *j, const run_t *r)
{
    api__job_ctr_t *c = ctr_mut(j);
    c->by_status[r->status]++;
    if (r->trigger != NULL && strcmp(r->trigger, "ping:missed") == 0)
        c->ping_missed++;
    else if (r->trigger != NULL && strcmp(r->trigger, "ping") == 0)
        c->pings++;
    c->items_processed += (uint64_t)(r->items_processed > 0 ? r->items_processed : 0);
    c->items_failed += (uint64_t)(r->items_failed > 0 ? r->items_failed : 0);
    if (r->status == RUN_SUCCESS)
        c->last_success_ms = r->finished_at;
    if (r->started_at == 0)
        return;
    double secs = (double)r->duration_ms / 1000.0;
    for (int b = 0; b < API_HIST_BUCKETS; b++)
        if (secs <= api__hist_bounds[b])
            c->hist[b]++;
    c->dur_sum += secs;
    c->dur_count++;
}

static void track(api_t *a, api__job_t *j, const msg_run_event_t *e)
{
    api__active_t *ar = api__active_find(a, e->run->id);
    if (ar)
        tally(a, j, ar->run, -1);
    if (e->kind == RUN_EV_FINISHED) {
        if (ar)
            active_free(a, ar);
        if (!e->remote) /* /metrics counts this instance's runs */
            count_finished(j, e->run);
    } else if (ar == NULL) {
        ar = cv_calloc(1, sizeof(*ar));
        ar->run = run_ref(e->run);
        cv_list_insert_tail(&a->active, &ar->link);
        cv_idmap_put(&a->active_by_id, ar->run->id, ar);
    } else {
        run_free(ar->run);
        ar->run = run_ref(e->run);
    }
    if (e->kind != RUN_EV_FINISHED)
        tally(a, j, ar->run, 1);
    if (e->kind == RUN_EV_STARTED && !e->remote)
        ctr_mut(j)->last_start_ms = e->run->started_at;
    /* a SKIPPED firing never ran: the job keeps showing its last real outcome */
    if (e->kind != RUN_EV_PROGRESS && e->kind != RUN_EV_QUEUED && e->run->status != RUN_SKIPPED &&
        (j->last == NULL || e->run->id >= j->last->id))
        last_set(j, e->run);
}

/* {"running": n, "queued": n}: the runs active now, over every job (run events carry it). */
static json_t *active_json(const api_t *a)
{
    return json_pack("{s:I,s:I}", "running", (json_int_t)a->running, "queued",
                     (json_int_t)a->queued);
}

/* A run event; but for progress, with its job as it stands after the event (live counts, last
 * run, next fire, statistics so far), so that a page showing the job needs no request. */
static void publish_run(api_t *a, api__job_t *j, const msg_run_event_t *e)
{
    if (!hub_wants(a))
        return;
    json_t *ev = json_pack("{s:s,s:o}", "type", run_ev_kind_name(e->kind), "run",
                           api__run_json(e->run, false));
    if (e->kind != RUN_EV_PROGRESS && j->cfg != NULL)
        json_object_set_new(ev, "job", api__job_json(a, j, cv_now_ms() / 1000));
    if (e->kind != RUN_EV_PROGRESS)
        json_object_set_new(ev, "active", active_json(a));
    char *text = json_dumps(ev, JSON_COMPACT);
    ws_hub_publish(a->hub, text, strlen(text));
    free(text);
    json_decref(ev);
}

void api__model_event(api_t *a, msg_run_event_t *e)
{
    api__job_t *j = job_get(a, e->run->job);
    track(a, j, e);
    publish_run(a, j, e);
    if (e->kind == RUN_EV_FINISHED)
        api__model_refresh_stats(a, j->name);
    if (e->kind != RUN_EV_PROGRESS)
        model_changed(a);
}

/* ---- resync after missed events (shared store) ---- */

typedef struct resync_call {
    api_t *a;
    int64_t id;
} resync_call_t;

static void resync_done(resync_call_t *c)
{
    api_t *a = c->a;
    free(c);
    a->pending--;
    if (a->closed && a->pending == 0 && a->srv == NULL)
        api__free(a);
}

/* A remote run still active in the model: its end was missed when the store says it is over. */
static void on_resync_run(api_t *a_, void *ud, msg_store_reply_t *r)
{
    resync_call_t *c = ud;
    api_t *a = c->a;
    int status = r->status;
    run_t *run = r->run;
    api__active_t *ar = a->closed ? NULL : api__active_find(a, c->id);
    if (ar && (status == -ENOENT || (status == 0 && run_status_final(run->status)))) {
        msg_run_event_t *e = msg_run_event_new(RUN_EV_FINISHED, status == 0 ? run : ar->run);
        e->remote = true;
        if (status != 0) { /* deleted meanwhile: forget it as it was last seen */
            e->run->status = RUN_ABANDONED;
        }
        api__model_event(a, e);
        e->hdr.dispose(&e->hdr);
    }
    resync_done(c);
}

void api__model_resync(api_t *a)
{
    for (cv_list_t *n = a->active.next; !a->closed && n != &a->active; n = n->next) {
        const run_t *r = cv_container_of(n, api__active_t, link)->run;
        if (!api__run_remote(a, r))
            continue;
        resync_call_t *c = cv_calloc(1, sizeof(*c));
        c->a = a;
        c->id = r->id;
        a->pending++;
        msg_store_req_t *q = store_req_new(STORE_OP_GET_RUN, NULL, 0, NULL, NULL);
        q->a.id = r->id;
        api__store_call(a, NULL, q, on_resync_run, c);
    }
    api__model_refresh_stats(a, NULL);
}

/* One line of a batch: into the run's live log and to the run's subscribers. */
static void model_output_line(api_t *a, api__active_t *ar, const msg_run_output_t *o, size_t i)
{
    const char *line = msg_run_output_text(o, i);
    size_t len = o->lines[i].len;
    if (ar)
        ar->lines++;
    if (ar && !ar->log_truncated) {
        if ((int64_t)(ar->log.len + len + 1) > a->cfg->cfg->limits.live_log) {
            ar->log_truncated = true;
            a->live_log_truncated++;
        } else {
            cv_buf_append(&ar->log, line, len);
            cv_buf_append(&ar->log, "\n", 1);
            a->live_log_bytes += len + 1;
        }
    }
    if (a->hub == NULL || a->closed)
        return;
    char topic[40];
    snprintf(topic, sizeof(topic), "run:%lld", (long long)o->run_id);
    json_t *ev = json_pack("{s:s,s:I,s:s,s:o,s:o}", "type", "output", "run_id",
                           (json_int_t)o->run_id, "stream", o->lines[i].stream, "ts",
                           api__jtime(o->lines[i].at_ms), "line", api__jstr(line));
    if (ar != NULL) /* line n of the run is the n-th line of GET /api/runs/{id}/log */
        json_object_set_new(ev, "line_no", json_integer((json_int_t)ar->lines));
    char *text = json_dumps(ev, JSON_COMPACT);
    ws_hub_publish_topic(a->hub, topic, text, strlen(text));
    free(text);
    json_decref(ev);
}

void api__model_output(api_t *a, const msg_run_output_t *o)
{
    a->output_live_dropped += o->dropped;
    api__active_t *ar = api__active_find(a, o->run_id);
    for (size_t i = 0; i < o->n; i++)
        model_output_line(a, ar, o, i);
}

/* ---- probes ---- */

void api__model_health(api_t *a, const msg_health_t *m)
{
    const health_result_t *h = &m->h;
    api__probe_t *p = NULL;
    for (size_t i = 0; i < a->nprobes && p == NULL; i++)
        if (strcmp(a->probes[i].name, h->probe) == 0)
            p = &a->probes[i];
    if (p == NULL) {
        a->probes = cv_realloc(a->probes, (a->nprobes + 1) * sizeof(*a->probes));
        p = &a->probes[a->nprobes++];
        memset(p, 0, sizeof(*p));
        p->name = cv_strdup(h->probe);
    }
    const char *status = health_status_name(h->status);
    bool changed = p->status == NULL || strcmp(p->status, status) != 0;
    free(p->status);
    free(p->error);
    p->status = cv_strdup(status);
    p->error = h->message && h->status != HEALTH_HEALTHY ? cv_strdup(h->message) : NULL;
    p->latency_ms = h->latency_ms;
    p->checked_at = h->checked_at;
    if (!changed || !hub_wants(a))
        return;
    json_t *ev = api__health_json(h);
    json_t *wrap = json_pack("{s:s,s:o}", "type", "health.changed", "probe", ev);
    char *text = json_dumps(wrap, JSON_COMPACT);
    ws_hub_publish(a->hub, text, strlen(text));
    free(text);
    json_decref(wrap);
}

/* {"state": "up"|"degraded"|"replaying", "spooled": N, "spool_bytes": N, "dropped": N} */
static json_t *api__store_json(const api_t *a)
{
    return json_pack("{s:s,s:I,s:I,s:I}", "state",
                     store_health_name((store_health_t)a->store_health), "spooled",
                     (json_int_t)a->store_spooled, "spool_bytes", (json_int_t)a->store_spool_bytes,
                     "dropped", (json_int_t)a->store_dropped);
}

void api__store_state(api_t *a, const msg_store_state_t *m)
{
    bool changed = a->store_health != m->health || a->store_spooled != m->spooled ||
                   a->store_dropped != m->dropped;
    a->store_health = m->health;
    a->store_spooled = m->spooled;
    a->store_spool_bytes = m->spool_bytes;
    a->store_dropped = m->dropped;
    a->store_queued = m->queued;
    a->store_queue_refused = m->queue_refused;
    if (!changed || a->hub == NULL || a->closed)
        return;
    json_t *wrap = json_pack("{s:s,s:o}", "type", "store.changed", "store", api__store_json(a));
    char *text = json_dumps(wrap, JSON_COMPACT);
    ws_hub_publish(a->hub, text, strlen(text));
    free(text);
    json_decref(wrap);
}

json_t *api__health_json(const health_result_t *h)
{
    return json_pack("{s:s,s:s,s:s,s:I,s:o,s:o,s:o,s:i}", "name", h->probe, "type",
                     h->type ? h->type : "unknown", "status", health_status_name(h->status),
                     "latency_ms", (json_int_t)h->latency_ms, "checked_at",
                     api__jtime(h->checked_at), "since", api__jtime(h->since), "message",
                     h->message ? api__jstr(h->message) : json_null(), "consecutive_failures",
                     h->consecutive_failures);
}

/* ---- freeing ---- */

static void job_free(void *v)
{
    api__job_t *j = v;
    free(j->name);
    effjob_clear(&j->eff);
    last_free(j->last);
    free(j->ctr);
    free(j);
}

void api__model_free(api_t *a)
{
    for (size_t i = 0; i < a->nstats_dirty; i++)
        free(a->stats_dirty[i]);
    free(a->stats_dirty);
    a->stats_dirty = NULL;
    a->nstats_dirty = a->stats_dirty_cap = 0;
    cv_strmap_free(&a->by_name, job_free);
    effjob_overrides_clear(&a->overrides);
    free(a->all);
    free(a->jobs);
    free(a->jobs_sorted);
    a->all = a->jobs = a->jobs_sorted = NULL;
    a->nall = a->njobs = 0;
    while (!cv_list_empty(&a->active))
        active_free(a, cv_container_of(a->active.next, api__active_t, link));
    cv_idmap_free(&a->active_by_id);
    for (size_t i = 0; i < a->nprobes; i++) {
        free(a->probes[i].name);
        free(a->probes[i].status);
        free(a->probes[i].error);
    }
    free(a->probes);
    a->probes = NULL;
    a->nprobes = 0;
    model_changed(a);
    free(a->jobs_cache);
    a->jobs_cache = NULL;
    a->jobs_cache_max = 0;
}
