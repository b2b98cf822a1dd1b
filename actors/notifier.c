/* The notifier: which events go to which webhook, run.slow timers, and delivery with retries.
 * See actors/notifier.h. */
#include "actors/notifier.h"
#include "actors/store_actor.h"
#include "core/cfgdiff.h"
#include "core/httpc.h"
#include "core/log.h"
#include "core/strmap.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* private: the statistics read for a run, the history read at start (both to itself) */
enum { MSG_NOTIFIER_STATS = MSG_PRIVATE_NOTIFIER, MSG_NOTIFIER_LOADED };
MSG_PRIVATE_CHECK(MSG_PRIVATE_NOTIFIER, MSG_NOTIFIER_LOADED);

typedef struct stat_entry {
    char *job;
    int64_t consecutive_failures;
    int64_t p95_ms;
    int64_t samples;
} stat_entry_t;

typedef struct {
    cv_msg_t hdr;
    int64_t run_id; /* 0: the start-up read of every job */
    stat_entry_t *entries;
    size_t count;
} msg_stats_t;

/* A run being watched for run.slow. */
typedef struct active {
    cv_list_t link;
    struct notifier *n;
    run_t *run;
    uv_timer_t timer;
    bool timer_on;
    int64_t *threshold; /* per notifier, 0: not wanted or already sent */
} active_t;

typedef struct delivery {
    cv_list_t link;
    struct notifier *n;
    const cfg_notify_t *cfg;
    cfgref_t *ref; /* the snapshot cfg points into: a reload does not free it under a delivery */
    bool removed;  /* its notifier was removed or changed by a reload: no further attempt */
    uint64_t id;
    char *event, *subject, *body;
    int attempts;
    uv_timer_t timer;
    bool waiting; /* the backoff timer is running */
    httpc_xfer_t *xfer;
} delivery_t;

struct notifier {
    cv_actor_t *actor;
    uv_loop_t *loop;
    cfgref_t *cfg;
    cv_actor_t *store;
    char *instance;
    httpc_t *http;
    notifier_opts_t o;
    cv_live_t *live;     /* ended at close: store answers in flight then post nothing */
    cv_strmap_t failing; /* job -> (void *)1 failing, (void *)2 not failing */
    cv_list_t active, deliveries;
    notify_record_t *ring;
    size_t ring_next; /* total records ever pushed */
    uint64_t next_id, delivered, failed;
    size_t timers; /* active_t timers not yet closed */
    bool loaded;   /* the history was read from the store: records are written there */
    bool closing, http_closed;
    void (*close_cb)(void *ud);
    void *close_ud;
};

static void maybe_free(notifier_t *n)
{
    if (!n->closing || !n->http_closed || n->timers > 0)
        return;
    void (*cb)(void *) = n->close_cb;
    void *ud = n->close_ud;
    for (size_t i = 0; i < n->o.ring_size; i++)
        notify_record_clear(&n->ring[i]);
    free(n->ring);
    cv_strmap_free(&n->failing, NULL);
    cfgref_put(n->cfg);
    free(n->instance);
    free(n);
    if (cb)
        cb(ud);
}

/* ---- the record ring ---- */

static notify_record_t *record_of(notifier_t *n, uint64_t id)
{
    if (id == 0 || id + n->o.ring_size < n->next_id + 1)
        return NULL; /* overwritten */
    notify_record_t *r = &n->ring[(id - 1) % n->o.ring_size];
    return r->id == id ? r : NULL;
}

static uint64_t record_push(notifier_t *n, const cfg_notify_t *c, const char *event,
                            const char *subject, int64_t run_id)
{
    uint64_t id = ++n->next_id;
    notify_record_t *r = &n->ring[(id - 1) % n->o.ring_size];
    notify_record_clear(r);
    r->id = id;
    r->notifier = cv_strdup(c->name);
    r->event = cv_strdup(event);
    r->subject = cv_strdup(subject ? subject : "");
    r->run_id = run_id;
    r->created_at = cv_now_ms();
    r->pending = true;
    return id;
}

/* ---- the history in the store (migration 7) ----
 * Each record is written when it is made and when its delivery ends, under (instance, id); the
 * store keeps the newest ring_size. At start the notifier reads them back into its ring and
 * numbers on from the newest: ids and history survive a restart (the history is the database's:
 * with several daemons on one PostgreSQL database each reads back the newest rows, whoever wrote
 * them, and two daemons running at once may number alike). Records made before
 * that read returns are renumbered after the ones read, then written. A write that fails (the
 * PostgreSQL store does not spool them during an outage) is logged; the ring still has it. */

static char *dup_opt(const char *s)
{
    return s ? cv_strdup(s) : NULL;
}

static void persist(notifier_t *n, const notify_record_t *r)
{
    if (n->store == NULL || !n->loaded || r == NULL)
        return;
    /* no reply: a write that fails is logged by the store actor */
    msg_store_req_t *c = store_req_new(STORE_OP_NOTE_PUT, NULL, 0, NULL, NULL);
    c->a.note = (store_note_t){.id = (int64_t)r->id,
                               .instance = cv_strdup(n->instance),
                               .notifier = dup_opt(r->notifier),
                               .event = dup_opt(r->event),
                               .subject = dup_opt(r->subject),
                               .run_id = r->run_id,
                               .created_at = r->created_at,
                               .finished_at = r->finished_at,
                               .attempts = r->attempts,
                               .pending = r->pending,
                               .delivered = r->delivered,
                               .http_status = r->http_status,
                               .last_error = dup_opt(r->last_error),
                               .keep = (int64_t)n->o.ring_size};
    cv_actor_post(n->store, &c->hdr);
}

/* ---- delivery ---- */

/* "scheme://host:port" of a URL, without path or query (caller frees). */
static char *origin_of(const char *url)
{
    char *red = httpc_redact_url(url);
    char *sep = strstr(red, "://");
    char *slash = sep ? strchr(sep + 3, '/') : NULL;
    if (slash)
        *slash = '\0';
    char *at = sep ? strchr(sep + 3, '@') : NULL; /* userinfo is "***" already; drop it */
    char *out = at ? cv_sprintf("%.*s%s", (int)(sep + 3 - red), red, at + 1) : cv_strdup(red);
    free(red);
    return out;
}

/* Every notifier of the process (loop thread only): deliveries not yet ended, and those refused
 * because limits.notify_pending were (a webhook that does not answer, failing runs at a high
 * rate: each would hold a connection and its body for its attempts' time). */
static notifier_stats_t stats;

void notifier_stats_get(notifier_stats_t *out)
{
    *out = stats;
}

static void delivery_free(delivery_t *d)
{
    free(d->event);
    free(d->subject);
    free(d->body);
    cfgref_put(d->ref);
    free(d);
}

static void on_delivery_timer_closed(uv_handle_t *h)
{
    delivery_free(h->data);
}

static void finish_delivery(delivery_t *d, bool ok, long status, const char *why)
{
    notifier_t *n = d->n;
    notify_record_t *r = record_of(n, d->id);
    if (r) {
        r->pending = false;
        r->delivered = ok;
        r->finished_at = cv_now_ms();
        r->attempts = d->attempts;
        r->http_status = status;
        persist(n, r);
    }
    char *origin = origin_of(d->cfg->url);
    if (ok) {
        n->delivered++;
        cv_info("notify", "notify %s: %s %s delivered (attempt %d, HTTP %ld) to %s/...",
                d->cfg->name, d->event, d->subject, d->attempts, status, origin);
    } else {
        n->failed++;
        cv_error("notify", "notify %s: %s %s failed after %d attempt(s): %s (%s/...)", d->cfg->name,
                 d->event, d->subject, d->attempts, why, origin);
    }
    free(origin);
    cv_list_remove(&d->link);
    stats.pending--;
    d->n = NULL; /* the notifier does not wait for this handle */
    uv_close((uv_handle_t *)&d->timer, on_delivery_timer_closed);
}

static void attempt(delivery_t *d);

static void on_backoff(uv_timer_t *t)
{
    delivery_t *d = t->data;
    d->waiting = false;
    attempt(d);
}

static void on_sent(httpc_xfer_t *x, const httpc_result_t *res, void *ud)
{
    delivery_t *d = ud;
    notifier_t *n = d->n;
    d->xfer = NULL;
    bool ok = res->error == HTTPC_OK && res->status >= 200 && res->status < 300;
    char why[300];
    if (res->error != HTTPC_OK)
        snprintf(why, sizeof(why), "%s", res->message ? res->message : "request failed");
    else
        snprintf(why, sizeof(why), "HTTP %ld", res->status);
    notify_record_t *r = record_of(n, d->id);
    if (r) {
        r->attempts = d->attempts;
        r->http_status = res->status;
        free(r->last_error);
        r->last_error = ok ? NULL : cv_secret_redact(why);
    }
    if (ok || d->attempts >= n->o.attempts || n->closing || d->removed ||
        res->error == HTTPC_ERR_CANCELLED) {
        finish_delivery(d, ok, res->status, why);
        return;
    }
    int64_t delay = n->o.backoff_ms;
    for (int i = 1; i < d->attempts; i++)
        delay *= 2;
    cv_warn("notify", "notify %s: %s %s attempt %d failed: %s; retry in %lldms", d->cfg->name,
            d->event, d->subject, d->attempts, why, (long long)delay);
    d->waiting = true;
    uv_timer_start(&d->timer, on_backoff, (uint64_t)delay, 0);
}

static void attempt(delivery_t *d)
{
    notifier_t *n = d->n;
    static const httpc_header_t hdrs[] = {{"Content-Type", "application/json"},
                                          {"User-Agent", "cronvisor/" CV_VERSION}};
    httpc_req_t req = {.method = "POST",
                       .url = d->cfg->url,
                       .headers = hdrs,
                       .n_headers = CV_ARRAY_SIZE(hdrs),
                       .body = d->body,
                       .body_len = strlen(d->body),
                       .timeout_ms = (uint32_t)n->o.timeout_ms,
                       .connect_timeout_ms = (uint32_t)n->o.timeout_ms,
                       .max_body = HTTPC_BODY_NONE};
    d->attempts++;
    char err[256] = "";
    int rc = httpc_req_validate(&req, err, sizeof(err));
    if (rc == 0)
        rc = httpc_request(n->http, &req, on_sent, d, &d->xfer);
    if (rc != 0)
        finish_delivery(d, false, 0, rc == -EINVAL ? err : "the HTTP client is closing");
}

/* The notification c would send, refused: limits.notify_pending deliveries are pending. Recorded
 * (history, log) as failed after 0 attempts. */
static void refuse(notifier_t *n, const cfg_notify_t *c, const char *event, const char *subject,
                   int64_t run_id, int max)
{
    char *why =
        cv_sprintf("not attempted: %d deliveries were pending (limits.notify_pending)", max);
    notify_record_t *r = record_of(n, record_push(n, c, event, subject, run_id));
    if (r) {
        r->pending = false;
        r->finished_at = r->created_at;
        r->last_error = cv_strdup(why);
        persist(n, r);
    }
    stats.dropped++;
    n->failed++;
    cv_error("notify", "notify %s: %s %s failed after 0 attempt(s): %s", c->name, event,
             subject ? subject : "", why);
    free(why);
}

static void deliver(notifier_t *n, const cfg_notify_t *c, const char *event, const char *subject,
                    int64_t run_id, const char *body)
{
    int max = n->cfg->cfg->limits.notify_pending;
    if (stats.pending >= (uint64_t)max) {
        refuse(n, c, event, subject, run_id, max);
        return;
    }
    delivery_t *d = cv_calloc(1, sizeof(*d));
    d->n = n;
    d->cfg = c;
    d->ref = cfgref_get(n->cfg);
    d->event = cv_strdup(event);
    d->subject = cv_strdup(subject ? subject : "");
    d->body = cv_strdup(body);
    d->id = record_push(n, c, event, subject, run_id);
    persist(n, record_of(n, d->id));
    uv_timer_init(n->loop, &d->timer);
    d->timer.data = d;
    cv_list_insert_tail(&n->deliveries, &d->link);
    stats.pending++;
    attempt(d);
}

/* ---- events ---- */

static unsigned event_bit(const char *event)
{
    static const struct {
        const char *name;
        unsigned bit;
    } t[] = {{"run.failed", CFG_EV_RUN_FAILED},
             {"run.recovered", CFG_EV_RUN_RECOVERED},
             {"run.timed_out", CFG_EV_RUN_TIMED_OUT},
             {"run.slow", CFG_EV_RUN_SLOW},
             {"job.auto_disabled", CFG_EV_JOB_AUTO_DISABLED},
             {"probe.unhealthy", CFG_EV_PROBE_UNHEALTHY},
             {"probe.recovered", CFG_EV_PROBE_RECOVERED}};
    for (size_t i = 0; i < CV_ARRAY_SIZE(t); i++)
        if (strcmp(t[i].name, event) == 0)
            return t[i].bit;
    return 0;
}

static bool wants(const cfg_notify_t *c, const char *event, const char *job)
{
    if (!(c->events & event_bit(event)))
        return false;
    if (job == NULL || c->n_jobs == 0)
        return true;
    for (unsigned i = 0; i < c->n_jobs; i++)
        if (strcmp(c->jobs[i], job) == 0)
            return true;
    return false;
}

/* An instant as the API writes it (RFC 3339, UTC, milliseconds), null when unknown. */
static json_t *time_json(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    char buf[40];
    cv_format_utc_ms(ms, buf, sizeof(buf));
    return json_string(buf);
}

/* The run of a notification. "attempts" is how many attempts its firing took (this run is the
 * last of them); "attempt" stays for the consumers that read it. */
static json_t *run_json(const run_t *r)
{
    char *err = r->error ? cv_secret_redact(r->error) : NULL;
    json_t *j =
        json_pack("{s:I,s:s,s:s,s:s?,s:i,s:i,s:i,s:i,s:I,s:o,s:o,s:s?}", "id", (json_int_t)r->id,
                  "job", r->job, "status", run_status_name(r->status), "trigger", r->trigger,
                  "attempt", r->attempt, "attempts", r->attempt, "exit_code", r->exit_code,
                  "signal", r->signal, "duration_ms", (json_int_t)r->duration_ms, "started_at",
                  time_json(r->started_at), "finished_at", time_json(r->finished_at), "error", err);
    free(err);
    return j;
}

/* Sends event to every notifier that wants it. run or probe (or neither) describe it. */
static void emit(notifier_t *n, const char *event, const char *job, const run_t *run,
                 const msg_health_t *probe, const char *text)
{
    const cfg_t *cfg = n->cfg->cfg;
    char at[40];
    cv_format_utc_ms(cv_now_ms(), at, sizeof(at));
    char *safe = cv_secret_redact(text);
    for (unsigned i = 0; i < cfg->n_notify; i++) {
        const cfg_notify_t *c = &cfg->notify[i];
        if (!wants(c, event, probe ? NULL : job))
            continue;
        json_t *doc;
        if (c->format == CFG_NOTIFY_SLACK) {
            doc = json_pack("{s:s}", "text", safe);
        } else {
            doc = json_pack("{s:s,s:s,s:s,s:s,s:s}", "event", event, "at", at, "instance",
                            n->instance, "notifier", c->name, "text", safe);
            if (job)
                json_object_set_new(doc, "job", json_string(job));
            if (run)
                json_object_set_new(doc, "run", run_json(run));
            if (probe)
                json_object_set_new(doc, "probe",
                                    json_pack("{s:s,s:s,s:s,s:s,s:s?,s:I}", "name", probe->h.probe,
                                              "type", probe->h.type ? probe->h.type : "", "status",
                                              health_status_name(probe->h.status), "previous",
                                              health_status_name(probe->previous), "message",
                                              probe->h.message, "latency_ms",
                                              (json_int_t)probe->h.latency_ms));
        }
        char *body = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        deliver(n, c, event, probe ? probe->h.probe : job, run ? run->id : 0, body);
        free(body);
    }
    free(safe);
}

static bool job_failing(notifier_t *n, const char *job)
{
    return cv_strmap_get(&n->failing, job) == (void *)1;
}

static void set_failing(notifier_t *n, const char *job, bool failing)
{
    cv_strmap_put(&n->failing, job, failing ? (void *)1 : (void *)2);
}

static void on_finished(notifier_t *n, const run_t *r);

/* Whether a failed run is followed by a retry of its firing (the executor retries while the
 * attempt is within retries.max): failures are told once per firing, after its last attempt. */
static bool will_retry(const notifier_t *n, const run_t *r)
{
    const cfg_job_t *job = cfg_find_job(n->cfg->cfg, r->job);
    return job != NULL && r->attempt <= job->retries.max;
}

/* " after 3 attempts", or "" for a firing of one attempt (caller frees). */
static char *attempts_text(const run_t *r)
{
    return r->attempt > 1 ? cv_sprintf(" after %d attempts", r->attempt) : cv_strdup("");
}

static void run_finished(notifier_t *n, const run_t *r)
{
    bool failed = r->status == RUN_FAILED || r->status == RUN_TIMED_OUT;
    if (failed && will_retry(n, r))
        return;
    char *text = NULL;
    char *tries = attempts_text(r);
    switch (r->status) {
    case RUN_FAILED:
        text =
            cv_sprintf("Job %s failed%s (run %lld, exit %d%s%s)", r->job, tries, (long long)r->id,
                       r->exit_code, r->error ? ": " : "", r->error ? r->error : "");
        emit(n, "run.failed", r->job, r, NULL, text);
        set_failing(n, r->job, true);
        break;
    case RUN_TIMED_OUT:
        text = cv_sprintf("Job %s timed out after %lldms%s (run %lld)", r->job,
                          (long long)r->duration_ms, tries, (long long)r->id);
        emit(n, "run.timed_out", r->job, r, NULL, text);
        set_failing(n, r->job, true);
        break;
    case RUN_SUCCESS:
    case RUN_PARTIAL:
        if (job_failing(n, r->job)) {
            text = cv_sprintf("Job %s recovered: run %lld %s%s", r->job, (long long)r->id,
                              run_status_name(r->status), tries);
            emit(n, "run.recovered", r->job, r, NULL, text);
        }
        set_failing(n, r->job, false);
        break;
    default:
        break;
    }
    free(tries);
    free(text);
}

static void on_health(notifier_t *n, const msg_health_t *m)
{
    const health_result_t *h = &m->h;
    char *text = NULL;
    if (h->status == HEALTH_UNHEALTHY && m->previous != HEALTH_UNHEALTHY) {
        text = cv_sprintf("Probe %s is unhealthy: %s", h->probe, h->message ? h->message : "");
        emit(n, "probe.unhealthy", NULL, NULL, m, text);
    } else if (m->previous == HEALTH_UNHEALTHY &&
               (h->status == HEALTH_HEALTHY || h->status == HEALTH_DEGRADED)) {
        text = cv_sprintf("Probe %s recovered (%s): %s", h->probe, health_status_name(h->status),
                          h->message ? h->message : "");
        emit(n, "probe.recovered", NULL, NULL, m, text);
    }
    free(text);
}

static void on_audit(notifier_t *n, const msg_audit_t *a)
{
    if (a->action == NULL || strcmp(a->action, "job.auto_disabled") != 0 || a->job == NULL)
        return;
    char *text = cv_sprintf("Job %s was disabled after repeated failures (run %lld)", a->job,
                            (long long)a->run_id);
    emit(n, "job.auto_disabled", a->job, NULL, NULL, text);
    free(text);
}

/* ---- store statistics ---- */

static void stats_msg_dispose(cv_msg_t *m)
{
    msg_stats_t *s = (msg_stats_t *)m;
    for (size_t i = 0; i < s->count; i++)
        free(s->entries[i].job);
    free(s->entries);
    free(s);
}

static void on_stats_msg(notifier_t *n, const msg_stats_t *m);
static void on_loaded(notifier_t *n, msg_notify_list_t *l);

/* The statistics read for a run's end (corr: its id) or at start (0), as the notifier reads
 * them. */
static void on_stats(notifier_t *n, msg_store_reply_t *r)
{
    if (r->status != 0)
        return;
    msg_stats_t *m = cv_msg_new(sizeof(*m), MSG_NOTIFIER_STATS);
    m->hdr.dispose = stats_msg_dispose;
    m->run_id = (int64_t)r->corr;
    m->entries = cv_calloc(r->nstats ? r->nstats : 1, sizeof(*m->entries));
    for (size_t i = 0; i < r->nstats; i++) {
        const store_job_stats_t *st = &r->stats[i];
        m->entries[i] = (stat_entry_t){cv_strdup(st->job ? st->job : ""), st->consecutive_failures,
                                       st->p95_duration_ms, st->duration_samples};
    }
    m->count = r->nstats;
    on_stats_msg(n, m);
    m->hdr.dispose(&m->hdr);
}

static void ask_stats(notifier_t *n, int64_t run_id, const char *const *jobs, size_t njobs)
{
    if (n->store == NULL || njobs == 0)
        return;
    msg_store_req_t *q =
        store_req_new(STORE_OP_JOB_STATS, n->actor, (uint64_t)run_id, n->live, NULL);
    q->a.jobs = cv_calloc(njobs, sizeof(char *));
    for (size_t i = 0; i < njobs; i++)
        q->a.jobs[i] = cv_strdup(jobs[i]);
    q->a.njobs = njobs;
    q->a.limit = 20;
    cv_actor_post(n->store, &q->hdr);
}

/* ---- reading the history back ---- */

static void on_notes(notifier_t *n, msg_store_reply_t *r)
{
    size_t count = r->nnotes;
    if (r->status < 0) {
        cv_warn("notify",
                "the notification history could not be read: %s; numbering "
                "starts afresh",
                strerror(-r->status));
        count = 0;
    }
    notify_record_t *items = cv_calloc(count ? count : 1, sizeof(*items));
    for (size_t i = 0; i < count; i++) {
        const store_note_t *s = &r->notes[i];
        bool cut = s->pending; /* its daemon stopped before the delivery ended */
        items[i] = (notify_record_t){
            .id = (uint64_t)s->id,
            .notifier = dup_opt(s->notifier),
            .event = dup_opt(s->event),
            .subject = dup_opt(s->subject),
            .run_id = s->run_id,
            .created_at = s->created_at,
            .finished_at = s->finished_at,
            .attempts = s->attempts,
            .pending = false,
            .delivered = s->delivered,
            .http_status = s->http_status,
            .last_error = cut ? cv_strdup("the daemon stopped before the delivery ended")
                              : dup_opt(s->last_error)};
    }
    msg_notify_list_t *m = msg_notify_list_new(0, items, count);
    m->hdr.type = MSG_NOTIFIER_LOADED;
    on_loaded(n, m);
    m->hdr.dispose(&m->hdr);
}

static void load_history(notifier_t *n)
{
    if (n->store == NULL) {
        n->loaded = true;
        return;
    }
    msg_store_req_t *q = store_req_new(STORE_OP_NOTE_LIST, n->actor, 0, n->live, NULL);
    q->a.limit = (int)n->o.ring_size;
    cv_actor_post(n->store, &q->hdr);
}

/* Moves a record into the ring under id (taking its strings). */
static void ring_take(notifier_t *n, notify_record_t *r, uint64_t id)
{
    notify_record_t *slot = &n->ring[(id - 1) % n->o.ring_size];
    notify_record_clear(slot);
    *slot = *r;
    slot->id = id;
    memset(r, 0, sizeof(*r));
}

/* The history read back (newest first): it goes first, the records made meanwhile after it. */
static void on_loaded(notifier_t *n, msg_notify_list_t *l)
{
    if (n->loaded)
        return;
    uint64_t base = l->count ? l->items[0].id : 0, made = n->next_id;
    notify_record_t *meanwhile = n->ring;
    n->ring = cv_calloc(n->o.ring_size, sizeof(*n->ring));
    for (size_t i = l->count; i-- > 0;)
        ring_take(n, &l->items[i], l->items[i].id);
    for (uint64_t id = made > n->o.ring_size ? made - n->o.ring_size + 1 : 1; id <= made; id++) {
        notify_record_t *r = &meanwhile[(id - 1) % n->o.ring_size];
        if (r->id == id)
            ring_take(n, r, base + id);
    }
    for (size_t i = 0; i < n->o.ring_size; i++)
        notify_record_clear(&meanwhile[i]);
    free(meanwhile);
    for (cv_list_t *x = n->deliveries.next; x != &n->deliveries; x = x->next)
        cv_container_of(x, delivery_t, link)->id += base;
    n->next_id = base + made;
    n->loaded = true;
    for (uint64_t id = base + 1; id <= n->next_id; id++)
        persist(n, record_of(n, id));
    cv_debug("notify", "notification history: %zu read back, numbering goes on from %llu", l->count,
             (unsigned long long)base);
}

/* ---- run.slow ---- */

static active_t *find_active(notifier_t *n, int64_t run_id)
{
    for (cv_list_t *l = n->active.next; l != &n->active; l = l->next) {
        active_t *a = cv_container_of(l, active_t, link);
        if (a->run->id == run_id)
            return a;
    }
    return NULL;
}

static void active_free(active_t *a)
{
    run_free(a->run);
    free(a->threshold);
    free(a);
}

static void on_active_closed(uv_handle_t *h)
{
    active_t *a = h->data;
    notifier_t *n = a->n;
    active_free(a);
    n->timers--;
    maybe_free(n);
}

static void active_drop(notifier_t *n, active_t *a)
{
    cv_list_remove(&a->link);
    if (a->timer_on)
        uv_close((uv_handle_t *)&a->timer, on_active_closed);
    else
        active_free(a);
}

static void arm_slow(active_t *a);

static void on_slow(uv_timer_t *t)
{
    active_t *a = t->data;
    notifier_t *n = a->n;
    const cfg_t *cfg = n->cfg->cfg;
    int64_t elapsed = cv_now_ms() - a->run->started_at;
    for (unsigned i = 0; i < cfg->n_notify; i++) {
        if (a->threshold[i] == 0 || a->threshold[i] > elapsed)
            continue;
        char *text = cv_sprintf("Job %s is running slow: %llds so far (run %lld, threshold %lldms)",
                                a->run->job, (long long)(elapsed / 1000), (long long)a->run->id,
                                (long long)a->threshold[i]);
        a->run->duration_ms = elapsed;
        /* only this notifier: emit filters by event, so send directly */
        const cfg_notify_t *c = &cfg->notify[i];
        json_t *doc =
            c->format == CFG_NOTIFY_SLACK
                ? json_pack("{s:s}", "text", text)
                : json_pack("{s:s,s:s,s:s,s:s,s:o,s:I}", "event", "run.slow", "instance",
                            n->instance, "notifier", c->name, "job", a->run->job, "run",
                            run_json(a->run), "threshold_ms", (json_int_t)a->threshold[i]);
        char *body = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        deliver(n, c, "run.slow", a->run->job, a->run->id, body);
        free(body);
        free(text);
        a->threshold[i] = 0;
    }
    arm_slow(a);
}

static void arm_slow(active_t *a)
{
    const cfg_t *cfg = a->n->cfg->cfg;
    int64_t next = 0;
    for (unsigned i = 0; i < cfg->n_notify; i++)
        if (a->threshold[i] && (next == 0 || a->threshold[i] < next))
            next = a->threshold[i];
    if (next == 0)
        return;
    if (!a->timer_on) {
        uv_timer_init(a->n->loop, &a->timer);
        a->n->timers++;
        a->timer.data = a;
        a->timer_on = true;
    }
    int64_t wait = next - (cv_now_ms() - a->run->started_at);
    uv_timer_start(&a->timer, on_slow, (uint64_t)(wait > 0 ? wait : 0), 0);
}

static void on_started(notifier_t *n, const run_t *r)
{
    const cfg_t *cfg = n->cfg->cfg;
    bool any = false;
    for (unsigned i = 0; i < cfg->n_notify && !any; i++)
        any = wants(&cfg->notify[i], "run.slow", r->job);
    if (!any || find_active(n, r->id))
        return;
    active_t *a = cv_calloc(1, sizeof(*a));
    a->n = n;
    a->run = run_dup(r);
    a->threshold = cv_calloc(cfg->n_notify + 1, sizeof(int64_t));
    cv_list_insert_tail(&n->active, &a->link);
    const char *job = r->job;
    ask_stats(n, r->id, &job, 1);
}

static void on_stats_msg(notifier_t *n, const msg_stats_t *m)
{
    if (m->run_id == 0) {
        for (size_t i = 0; i < m->count; i++)
            if (cv_strmap_get(&n->failing, m->entries[i].job) == NULL)
                set_failing(n, m->entries[i].job, m->entries[i].consecutive_failures > 0);
        return;
    }
    active_t *a = find_active(n, m->run_id);
    if (a == NULL || m->count != 1 || m->entries[0].samples < n->o.min_slow_samples ||
        m->entries[0].p95_ms <= 0)
        return;
    const cfg_t *cfg = n->cfg->cfg;
    for (unsigned i = 0; i < cfg->n_notify; i++)
        if (wants(&cfg->notify[i], "run.slow", a->run->job))
            a->threshold[i] = (int64_t)((double)m->entries[0].p95_ms * cfg->notify[i].slow_factor);
    arm_slow(a);
}

static void on_finished(notifier_t *n, const run_t *r)
{
    active_t *a = find_active(n, r->id);
    if (a)
        active_drop(n, a);
    run_finished(n, r);
}

/* ---- the actor ---- */

static void on_query(notifier_t *n, const msg_notify_query_t *q)
{
    if (q->reply_to == NULL)
        return;
    size_t kept = n->next_id < n->o.ring_size ? n->next_id : n->o.ring_size;
    size_t want = q->limit && q->limit < kept ? q->limit : kept;
    notify_record_t *items = cv_calloc(want ? want : 1, sizeof(*items));
    size_t count = 0;
    for (size_t i = 0; i < want; i++) {
        const notify_record_t *r = record_of(n, n->next_id - i);
        if (r) /* a history read back may have gaps */
            notify_record_copy(&items[count++], r);
    }
    cv_actor_post(q->reply_to, &msg_notify_list_new(q->corr, items, count)->hdr);
}

/* ---- a new configuration ----
 * Notifiers are matched by name. A delivery holds a reference to the snapshot its notifier
 * came from, so a reload never frees the URL under it: a delivery of a notifier removed or
 * changed ends now when it waits for a retry, and after its attempt in flight otherwise (no
 * retry). Runs watched for run.slow keep the thresholds of the notifiers still there unchanged.
 * limits.notification_history resizes the ring, keeping the newest records. */

static const cfg_notify_t *notify_find(const cfg_t *cfg, const char *name)
{
    for (unsigned i = 0; i < cfg->n_notify; i++)
        if (strcmp(cfg->notify[i].name, name) == 0)
            return &cfg->notify[i];
    return NULL;
}

static void ring_resize(notifier_t *n, size_t size)
{
    if (size == 0)
        size = 200;
    if (size == n->o.ring_size)
        return;
    notify_record_t *ring = cv_calloc(size, sizeof(*ring));
    for (size_t i = 0; i < n->o.ring_size; i++) {
        notify_record_t *r = &n->ring[i];
        if (r->id != 0 && r->id + size >= n->next_id + 1)
            ring[(r->id - 1) % size] = *r; /* moves its strings */
        else
            notify_record_clear(r);
    }
    free(n->ring);
    n->ring = ring;
    n->o.ring_size = size;
}

static void on_config(notifier_t *n, msg_exec_config_t *m)
{
    const cfg_t *old = n->cfg->cfg, *cfg = m->cfg->cfg;
    for (unsigned i = 0; i < cfg->n_notify; i++)
        cv_secret_register(cfg->notify[i].url);
    for (cv_list_t *l = n->deliveries.next, *next; l != &n->deliveries; l = next) {
        next = l->next;
        delivery_t *d = cv_container_of(l, delivery_t, link);
        const cfg_notify_t *now = notify_find(cfg, d->cfg->name);
        if (now != NULL && cfgdiff_notify_eq(now, d->cfg))
            continue;
        d->removed = true;
        if (d->waiting) {
            uv_timer_stop(&d->timer);
            d->waiting = false;
            finish_delivery(d, false, 0, "the notifier was removed or changed by a reload");
        }
    }
    for (cv_list_t *l = n->active.next; l != &n->active; l = l->next) {
        active_t *a = cv_container_of(l, active_t, link);
        int64_t *th = cv_calloc(cfg->n_notify + 1, sizeof(int64_t));
        for (unsigned i = 0; i < cfg->n_notify; i++) {
            const cfg_notify_t *was = notify_find(old, cfg->notify[i].name);
            if (was != NULL && cfgdiff_notify_eq(was, &cfg->notify[i]))
                th[i] = a->threshold[was - old->notify];
        }
        free(a->threshold);
        a->threshold = th;
    }
    cfgref_put(n->cfg);
    n->cfg = cfgref_get(m->cfg);
    ring_resize(n, (size_t)cfg->limits.notification_history);
    for (cv_list_t *l = n->active.next; l != &n->active; l = l->next) {
        active_t *a = cv_container_of(l, active_t, link);
        if (a->timer_on)
            uv_timer_stop(&a->timer);
        arm_slow(a);
    }
}

static void handle(cv_actor_t *self, cv_msg_t *msg)
{
    notifier_t *n = cv_actor_state(self);
    switch (msg->type) {
    case MSG_EXEC_CONFIG:
        on_config(n, (msg_exec_config_t *)msg);
        break;
    case MSG_RUN_EVENT: {
        const msg_run_event_t *e = (const msg_run_event_t *)msg;
        if (e->kind == RUN_EV_STARTED)
            on_started(n, e->run);
        else if (e->kind == RUN_EV_FINISHED)
            on_finished(n, e->run);
        break;
    }
    case MSG_HEALTH:
        on_health(n, (const msg_health_t *)msg);
        break;
    case MSG_AUDIT:
        on_audit(n, (const msg_audit_t *)msg);
        break;
    case MSG_NOTIFY_GET:
        on_query(n, (const msg_notify_query_t *)msg);
        break;
    case MSG_STORE_REPLY: {
        msg_store_reply_t *r = (msg_store_reply_t *)msg;
        if (r->op == STORE_OP_JOB_STATS)
            on_stats(n, r);
        else if (r->op == STORE_OP_NOTE_LIST)
            on_notes(n, r);
        break;
    }
    default:
        break; /* output lines and the like: not ours */
    }
}

notifier_t *notifier_create(cv_runtime_t *rt, const notifier_opts_t *o)
{
    notifier_t *n = cv_calloc(1, sizeof(*n));
    n->o = *o;
    n->o.attempts = o->attempts > 0 ? o->attempts : 3;
    n->o.backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : 1000;
    n->o.timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 10000;
    n->o.ring_size = o->ring_size > 0 ? o->ring_size : 200;
    n->o.min_slow_samples = o->min_slow_samples > 0 ? o->min_slow_samples : 5;
    n->loop = cv_runtime_loop(rt);
    n->cfg = cfgref_get(o->cfg);
    n->store = o->store;
    n->instance = cv_strdup(o->instance ? o->instance : "local");
    n->http = httpc_create(n->loop);
    n->live = cv_live_new();
    n->ring = cv_calloc(n->o.ring_size, sizeof(*n->ring));
    cv_list_init(&n->active);
    cv_list_init(&n->deliveries);
    for (unsigned i = 0; i < n->cfg->cfg->n_notify; i++)
        cv_secret_register(n->cfg->cfg->notify[i].url);
    n->actor = cv_actor_create(rt, "notifier", handle, n);
    return n;
}

cv_actor_t *notifier_actor(notifier_t *n)
{
    return n->actor;
}

void notifier_start(notifier_t *n)
{
    const cfg_t *cfg = n->cfg->cfg;
    /* Whether a job is failing matters only to a rule that announces its recovery. */
    const char **jobs = cv_calloc(cfg->n_jobs + 1, sizeof(char *));
    size_t njobs = 0;
    for (unsigned i = 0; i < cfg->n_jobs; i++) {
        bool any = false;
        for (unsigned k = 0; k < cfg->n_notify && !any; k++)
            any = wants(&cfg->notify[k], "run.recovered", cfg->jobs[i].name);
        if (any)
            jobs[njobs++] = cfg->jobs[i].name;
    }
    ask_stats(n, 0, jobs, njobs);
    free(jobs);
    load_history(n);
}

uint64_t notifier_delivered(const notifier_t *n)
{
    return n->delivered;
}

uint64_t notifier_failed(const notifier_t *n)
{
    return n->failed;
}

static void on_http_closed(void *ud)
{
    notifier_t *n = ud;
    n->http_closed = true;
    maybe_free(n);
}

void notifier_close(notifier_t *n, void (*cb)(void *ud), void *ud)
{
    n->closing = true;
    n->close_cb = cb;
    n->close_ud = ud;
    cv_actor_destroy(n->actor);
    cv_live_end(n->live);
    /* deliveries waiting for a retry end now; those in flight end through httpc's cancel */
    for (cv_list_t *l = n->deliveries.next, *next; l != &n->deliveries; l = next) {
        next = l->next;
        delivery_t *d = cv_container_of(l, delivery_t, link);
        if (d->waiting) {
            uv_timer_stop(&d->timer);
            finish_delivery(d, false, 0, "the daemon is stopping");
        }
    }
    while (!cv_list_empty(&n->active))
        active_drop(n, cv_container_of(n->active.next, active_t, link));
    httpc_close(n->http, on_http_closed, n);
}
