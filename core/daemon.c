#include "core/daemon.h"
#include "actors/executor.h"
#include "actors/notifier.h"
#include "actors/prober.h"
#include "actors/scheduler.h"
#include "actors/store_actor.h"
#include "core/cfgdiff.h"
#include "core/httpc.h"
#include "core/log.h"
#include "core/reaper.h"
#include "http/api.h"
#include "proto/msg.h"
#include "storage/schema.h"
#include "storage/store.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RETENTION_INTERVAL_MS (3600 * 1000)

typedef struct daemon {
    uv_loop_t loop;
    daemon_opts_t opts;
    cfgref_t *cfg;
    char *instance;
    cv_runtime_t *rt;
    cv_actor_t *self;
    store_t *store;
    store_actor_t *sa;
    executor_t *ex;
    scheduler_t *sched;
    prober_t *prober;
    notifier_t *notifier;
    api_t *api;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t retention;
    bool signals_on, retention_on;
    uv_timer_t heartbeat; /* shared store: this instance's heartbeat and the dead-instance sweep */
    bool heartbeat_on, heartbeat_busy;
    int64_t started_at;
    int64_t beat_every, last_beat, beating_since; /* ms */
    store_override_t *overrides;
    size_t n_overrides;
    char *reload_summary; /* what the reload in progress changes (cfgdiff_summary) */
    bool reload_partial;  /* ... and some of it waits for a restart */
    int64_t first_run_id;
    int64_t *last_run; /* per config job: last cron firing recorded (s), for catch-up */
    int pending_queries;
    int exit_code;
    int stopping; /* 0 running, 1 stopping jobs, 2 closing */
    int64_t once_run_id;
} daemon_t;

static void begin_close(daemon_t *d);

static void cancel_msg_dispose(cv_msg_t *m)
{
    free(((msg_cancel_t *)m)->by);
    free(m);
}

static void on_orphan(void *data, pid_t pid, int status)
{
    cv_debug("daemon", "reaped orphan pid %d", (int)pid);
}

/* ---- configuration for the actors ---- */

/* The override of (job, field) as a JSON value, or NULL. */
static json_t *override_of(const daemon_t *d, const char *job, const char *field)
{
    for (size_t i = 0; i < d->n_overrides; i++) {
        const store_override_t *o = &d->overrides[i];
        if (strcmp(o->job, job) == 0 && strcmp(o->field, field) == 0)
            return json_loads(o->value, JSON_DECODE_ANY, NULL);
    }
    return NULL;
}

static msg_sched_jobs_t *sched_jobs(const daemon_t *d, bool first)
{
    const cfg_t *cfg = d->cfg->cfg;
    msg_sched_jobs_t *m = msg_sched_jobs_new(first);
    for (unsigned i = 0; i < cfg->n_jobs; i++) {
        const cfg_job_t *j = &cfg->jobs[i];
        sched_job_spec_t spec = {.name = j->name,
                                 .schedule = j->schedule,
                                 .timezone = j->timezone,
                                 .enabled = j->enabled,
                                 .catch_up = j->catch_up_ms / 1000,
                                 .last_run = first && d->last_run ? d->last_run[i] : 0};
        json_t *en = override_of(d, j->name, "enabled");
        json_t *sc = override_of(d, j->name, "schedule");
        json_t *tz = override_of(d, j->name, "timezone");
        if (json_is_boolean(en))
            spec.enabled = json_is_true(en);
        if (json_is_string(sc) && !j->locked)
            spec.schedule = json_string_value(sc);
        if (json_is_string(tz) && !j->locked)
            spec.timezone = json_string_value(tz);
        msg_sched_jobs_add(m, &spec);
        json_decref(en);
        json_decref(sc);
        json_decref(tz);
    }
    return m;
}

static void configure_actors(daemon_t *d, bool first)
{
    msg_exec_config_t *c = msg_exec_config_new(d->cfg);
    cv_actor_post(executor_actor(d->ex), &c->hdr);
    if (d->sched)
        cv_actor_post(scheduler_actor(d->sched), &sched_jobs(d, first)->hdr);
    if (d->api) {
        c = msg_exec_config_new(d->cfg);
        if (!first) /* the API announces a reload to the dashboard (config.reloaded) */
            c->summary = cv_strdup(d->reload_summary ? d->reload_summary : "no changes");
        cv_actor_post(api_actor(d->api), &c->hdr);
    }
}

/* ---- signals ---- */

static void shutdown_jobs(daemon_t *d, bool immediate)
{
    msg_shutdown_t *s = cv_msg_new(sizeof(*s), MSG_SHUTDOWN);
    s->reply_to = d->self;
    s->grace_ms = d->cfg->cfg->defaults.shutdown_grace_ms;
    s->immediate = immediate;
    cv_actor_post(executor_actor(d->ex), &s->hdr);
}

static void request_stop(daemon_t *d, const char *why)
{
    if (d->stopping) {
        cv_warn("daemon", "%s again: killing running jobs now", why);
        if (d->stopping == 1)
            shutdown_jobs(d, true);
        return;
    }
    cv_info("daemon", "%s: shutting down (grace %lldms)", why,
            (long long)d->cfg->cfg->defaults.shutdown_grace_ms);
    d->stopping = 1;
    if (d->sched) {
        msg_shutdown_t *s = cv_msg_new(sizeof(*s), MSG_SHUTDOWN);
        cv_actor_post(scheduler_actor(d->sched), &s->hdr);
    }
    if (d->ex)
        shutdown_jobs(d, false);
    else
        begin_close(d);
}

static void keep_overrides(daemon_t *d, const store_override_t *ov, size_t count)
{
    store_overrides_free(d->overrides, d->n_overrides);
    d->overrides = cv_calloc(count ? count : 1, sizeof(*ov));
    for (size_t i = 0; i < count; i++) {
        d->overrides[i].job = cv_strdup(ov[i].job);
        d->overrides[i].field = cv_strdup(ov[i].field);
        d->overrides[i].value = cv_strdup(ov[i].value);
    }
    d->n_overrides = count;
}

static void on_reload_overrides(void *ud, int status, const store_override_t *ov, size_t count)
{
    daemon_t *d = ud;
    if (d->stopping)
        return;
    if (status == 0)
        keep_overrides(d, ov, count);
    else
        cv_warn("daemon", "reload: runtime overrides could not be read (%s); using the known ones",
                strerror(-status));
    configure_actors(d, false);
    cv_log(d->reload_partial ? CV_LOG_WARN : CV_LOG_INFO, "daemon",
           "configuration reloaded from %s: %s", d->opts.config_path,
           d->reload_summary ? d->reload_summary : "no changes");
    free(d->reload_summary);
    d->reload_summary = NULL;
}

static void restart_heartbeat(daemon_t *d);

/* Applies at once what the actors do not get by message: the API tokens (refused with the whole
 * reload when they cannot apply) and the heartbeat cadence. Returns 0 or a negative errno. */
static int apply_now(daemon_t *d, const cfg_t *cfg, const cfgdiff_t *diff)
{
    char *err = NULL;
    if (d->api && (diff->tokens.added || diff->tokens.removed || diff->tokens.changed) &&
        api_reload_auth(d->api, cfg, &err) != 0) {
        cv_error("daemon", "reload refused: %s; keeping the running configuration",
                 err ? err : "the API tokens cannot be applied");
        free(err);
        return -EINVAL;
    }
    return 0;
}

static void reload(daemon_t *d)
{
    cfg_t *cfg = NULL;
    cfg_errors_t errs = {0};
    if (cfgcheck_load(d->opts.config_path, &cfg, &errs) != 0) {
        for (size_t i = 0; i < errs.count; i++) {
            char *line = cfg_error_format(&errs.items[i]);
            cv_error("config", "%s", line);
            free(line);
        }
        cv_error("daemon", "reload refused: %zu error(s) in %s; keeping the running configuration",
                 errs.count, d->opts.config_path);
        cfg_errors_free(&errs);
        return;
    }
    cfg_errors_free(&errs);
    cfgdiff_t diff;
    cfgdiff_compare(d->cfg->cfg, cfg, &diff);
    if (apply_now(d, cfg, &diff) != 0) {
        cfgdiff_free(&diff);
        cfg_free(cfg);
        return;
    }
    free(d->reload_summary);
    d->reload_summary = cfgdiff_summary(&diff);
    d->reload_partial = diff.not_applied != NULL;
    cfgdiff_free(&diff);
    cfgref_put(d->cfg);
    d->cfg = cfgref_new(cfg);
    restart_heartbeat(d);
    /* Overrides changed at run time (API, auto-disable) are in the store: read them again. */
    store_override_list(d->store, NULL, on_reload_overrides, d);
}

static void on_signal(uv_signal_t *h, int signum)
{
    daemon_t *d = h->data;
    if (signum == SIGHUP)
        reload(d);
    else
        request_stop(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void start_signals(daemon_t *d)
{
    uv_signal_t *hs[] = {&d->sig_term, &d->sig_int, &d->sig_hup};
    int sigs[] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&d->loop, hs[i]);
        hs[i]->data = d;
        uv_signal_start(hs[i], on_signal, sigs[i]);
    }
    d->signals_on = true;
}

/* ---- retention ---- */

static void on_retention_done(void *ud, int status, int64_t count)
{
    if (status == 0 && count > 0)
        cv_info("store", "retention: %lld old run(s) deleted", (long long)count);
}

static void on_retention_timer(uv_timer_t *t)
{
    daemon_t *d = t->data;
    const cfg_retention_t *r = &d->cfg->cfg->retention;
    if (d->stopping == 0 && (r->days > 0 || r->max_runs_per_job > 0))
        store_retention(d->store, r->days, r->max_runs_per_job, on_retention_done, d);
}

/* ---- heartbeats (shared store) ---- */

static void heartbeat_send(daemon_t *d, store_status_cb cb);

static void on_dead_swept(void *ud, int status, int64_t count)
{
    daemon_t *d = ud;
    d->heartbeat_busy = false;
    if (status == 0 && count > 0)
        cv_warn("store", "%lld run(s) of instances that stopped heart-beating marked ABANDONED",
                (long long)count);
}

/* Sweeps only after beating without a gap for a whole timeout: after an outage of the
 * database every live instance gets that long to beat again before anyone judges it dead. */
static void on_heartbeat_sent(void *ud, int status)
{
    daemon_t *d = ud;
    int64_t now = cv_now_ms(), timeout = d->cfg->cfg->cluster.heartbeat_timeout_ms;
    if (status == 0 && (d->beating_since == 0 || now - d->last_beat > 2 * d->beat_every))
        d->beating_since = now;
    if (status == 0)
        d->last_beat = now;
    if (status != 0 || d->stopping || d->opts.once_job || now - d->beating_since < timeout) {
        d->heartbeat_busy = false;
        return;
    }
    store_abandon_dead(d->store, cv_now_ms() - d->cfg->cfg->cluster.heartbeat_timeout_ms,
                       on_dead_swept, d);
}

static void on_heartbeat_timer(uv_timer_t *t)
{
    daemon_t *d = t->data;
    if (d->stopping == 0 && !d->heartbeat_busy) {
        d->heartbeat_busy = true;
        heartbeat_send(d, on_heartbeat_sent);
    }
}

static void heartbeat_send(daemon_t *d, store_status_cb cb)
{
    char host[256] = "localhost";
    gethostname(host, sizeof(host) - 1);
    store_instance_t in = {.id = d->instance,
                           .hostname = host,
                           .pid = getpid(),
                           .started_at = d->started_at,
                           .version = CV_VERSION};
    store_heartbeat(d->store, &in, cb, d);
}

static int64_t beat_interval(const daemon_t *d)
{
    int64_t every = d->cfg->cfg->cluster.heartbeat_timeout_ms / 6;
    return every < 200 ? 200 : every > 5000 ? 5000 : every;
}

/* A reload may change the timeout: beat at the new cadence (a shorter timeout with the old
 * cadence would have the others judge this instance dead). */
static void restart_heartbeat(daemon_t *d)
{
    if (!d->heartbeat_on || beat_interval(d) == d->beat_every)
        return;
    d->beat_every = beat_interval(d);
    uv_timer_start(&d->heartbeat, on_heartbeat_timer, (uint64_t)d->beat_every,
                   (uint64_t)d->beat_every);
}

/* Beats every sixth of the timeout (between 0.2 s and 5 s), each beat followed by a sweep. */
static void start_heartbeat(daemon_t *d)
{
    if (!store_is_shared(d->store))
        return;
    int64_t every = beat_interval(d);
    d->beat_every = every;
    d->last_beat = d->beating_since = cv_now_ms(); /* the first heartbeat was sent at start */
    uv_timer_init(&d->loop, &d->heartbeat);
    d->heartbeat.data = d;
    d->heartbeat_on = true;
    uv_timer_start(&d->heartbeat, on_heartbeat_timer, (uint64_t)every, (uint64_t)every);
}

/* ---- override changes made by other instances (shared store) ---- */

/* The value of (job, field) in ov[0..n), or NULL. */
static const char *override_in(const store_override_t *ov, size_t n, const char *job,
                               const char *field)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ov[i].job, job) == 0 && strcmp(ov[i].field, field) == 0)
            return ov[i].value;
    return NULL;
}

/* Tells the http actor's read model of every override that differs from the known ones (it
 * ignores those it already has: the changes made through this instance's own API). */
static void overrides_to_api(daemon_t *d, const store_override_t *ov, size_t count)
{
    static const char *const fields[] = {"enabled", "schedule", "timezone"};
    const cfg_t *cfg = d->cfg->cfg;
    for (unsigned i = 0; d->api && i < cfg->n_jobs; i++) {
        for (size_t f = 0; f < CV_ARRAY_SIZE(fields); f++) {
            const char *job = cfg->jobs[i].name;
            const char *was = override_in(d->overrides, d->n_overrides, job, fields[f]);
            const char *now = override_in(ov, count, job, fields[f]);
            if (was == now || (was && now && strcmp(was, now) == 0))
                continue;
            msg_override_t *o = msg_override_new(job, fields[f], now, "another instance");
            cv_actor_post(api_actor(d->api), &o->hdr);
        }
    }
}

static void on_overrides_reread(void *ud, int status, const store_override_t *ov, size_t count)
{
    daemon_t *d = ud;
    if (status != 0 || d->stopping || d->sched == NULL)
        return;
    overrides_to_api(d, ov, count);
    keep_overrides(d, ov, count);
    cv_actor_post(scheduler_actor(d->sched), &sched_jobs(d, false)->hdr);
}

static void on_override_notify(void *ud, const char *job)
{
    daemon_t *d = ud;
    if (d->stopping)
        return;
    cv_info("daemon", "runtime overrides changed%s%s: re-reading them", job ? " for job " : "",
            job ? job : " while the database was unreachable");
    store_override_list(d->store, NULL, on_overrides_reread, d);
}

static void start_override_watch(daemon_t *d)
{
    if (store_is_shared(d->store))
        store_watch_overrides(d->store, on_override_notify, d);
}

/* ---- the runs and heartbeats of other instances, cancel requests (shared store) ---- */

typedef struct {
    daemon_t *d;
    run_status_t announced; /* the status the notification carried */
} remote_run_t;

/* A notification may be read after the run moved on: a run announced RUNNING that is already
 * over is still shown starting (as it was) before the notification of its end. */
static void on_remote_run(void *ud, int status, run_t *run, bool *taken)
{
    remote_run_t *q = ud;
    daemon_t *d = q->d;
    run_status_t was = q->announced;
    free(q);
    if (status != 0 || d->stopping || d->api == NULL)
        return;
    msg_run_event_t *e = NULL;
    if (was == RUN_RUNNING && run->status != RUN_QUEUED) {
        e = msg_run_event_new(RUN_EV_STARTED, run);
        if (run_status_final(run->status)) {
            e->run->status = RUN_RUNNING;
            e->run->finished_at = e->run->duration_ms = 0;
            e->run->exit_code = -1;
            e->run->signal = 0;
            free(e->run->error);
            e->run->error = NULL;
        }
    } else if (run_status_final(was) && run_status_final(run->status)) {
        e = msg_run_event_new(RUN_EV_FINISHED, run);
    }
    if (e == NULL)
        return;
    e->remote = true;
    cv_actor_post(api_actor(d->api), &e->hdr);
}

/* payload "<id> <status> <instance>": the runs of the others only (this daemon's own events
 * reach its API directly). QUEUED is not announced on: a claimed run is QUEUED for a moment. */
static void remote_run_changed(daemon_t *d, const char *payload)
{
    char status[16];
    long long id;
    int off = 0;
    if (sscanf(payload, "%lld %15s %n", &id, status, &off) != 2 || off == 0)
        return;
    run_status_t st;
    if (strcmp(payload + off, d->instance) == 0 || run_status_parse(status, &st) != 0 ||
        st == RUN_QUEUED)
        return;
    remote_run_t *q = cv_malloc(sizeof(*q));
    q->d = d;
    q->announced = st;
    store_get_run(d->store, id, on_remote_run, q);
}

/* payload {"run": id, "instance": owner, "by": who}: cancels the run when it is this one's. */
static void cancel_requested(daemon_t *d, const char *payload)
{
    json_t *o = json_loads(payload, 0, NULL);
    json_int_t id = json_integer_value(json_object_get(o, "run"));
    const char *owner = json_string_value(json_object_get(o, "instance"));
    const char *by = json_string_value(json_object_get(o, "by"));
    if (id > 0 && (owner == NULL || strcmp(owner, d->instance) == 0) && d->ex) {
        cv_info("daemon", "run %lld: cancel asked by %s", (long long)id, by ? by : "?");
        msg_cancel_t *m = cv_msg_new(sizeof(*m), MSG_CANCEL);
        m->hdr.dispose = cancel_msg_dispose;
        m->run_id = id;
        m->by = cv_strdup(by ? by : "another instance");
        cv_actor_post(executor_actor(d->ex), &m->hdr);
    }
    json_decref(o);
}

static void on_store_event(void *ud, const char *channel, const char *payload)
{
    daemon_t *d = ud;
    if (d->stopping || d->api == NULL)
        return;
    if (channel == NULL) { /* reconnected: what was missed meanwhile */
        cv_info("daemon", "listening to the other instances again: resyncing the API's view");
        msg_instance_beat_t *b = msg_instance_beat_new(NULL, 0);
        cv_actor_post(api_actor(d->api), &b->hdr);
        return;
    }
    if (payload == NULL)
        return;
    if (strcmp(channel, STORE_CHANNEL_RUNS) == 0) {
        remote_run_changed(d, payload);
    } else if (strcmp(channel, STORE_CHANNEL_CANCEL) == 0) {
        cancel_requested(d, payload);
    } else if (strcmp(channel, STORE_CHANNEL_INSTANCES) == 0) {
        char *end = NULL;
        long long seen = strtoll(payload, &end, 10);
        if (end && *end == ' ') {
            msg_instance_beat_t *b = msg_instance_beat_new(end + 1, seen);
            cv_actor_post(api_actor(d->api), &b->hdr);
        }
    }
}

static void start_event_watch(daemon_t *d)
{
    if (store_is_shared(d->store) && d->api)
        store_watch_events(d->store, on_store_event, d);
}

/* ---- --once ---- */

static int once_exit_code(const run_t *r)
{
    switch (r->status) {
    case RUN_SUCCESS:
        return 0;
    case RUN_TIMED_OUT:
        return 124;
    case RUN_CANCELLED:
        return 130;
    case RUN_SKIPPED:
        return 75;
    case RUN_FAILED:
        if (r->signal)
            return 128 + r->signal;
        return r->exit_code > 0 ? r->exit_code : 1;
    default:
        return 1;
    }
}

static void once_finished(daemon_t *d, const run_t *r)
{
    const cfg_job_t *job = cfg_find_job(d->cfg->cfg, r->job);
    if (r->id != d->once_run_id && r->retry_of != d->once_run_id)
        return;
    bool will_retry = (r->status == RUN_FAILED || r->status == RUN_TIMED_OUT) && job &&
                      r->attempt <= job->retries.max;
    printf("%s run=%lld job=%s attempt=%d duration=%lldms exit=%d items=%lld/%lld%s%s\n",
           run_status_name(r->status), (long long)r->id, r->job, r->attempt,
           (long long)r->duration_ms, r->exit_code, (long long)r->items_processed,
           (long long)r->items_failed, r->error ? " error=" : "", r->error ? r->error : "");
    fflush(stdout);
    if (will_retry)
        return;
    d->exit_code = once_exit_code(r);
    request_stop(d, "--once run finished");
}

static void once_replied(daemon_t *d, const msg_fire_reply_t *r)
{
    if (r->outcome == FIRE_ACCEPTED || r->outcome == FIRE_SKIPPED) {
        d->once_run_id = r->run_id;
        if (r->outcome == FIRE_ACCEPTED)
            return;
    }
    fprintf(stderr, "cronvisor: job '%s' not run: %s\n", d->opts.once_job,
            r->reason ? r->reason : "refused");
    d->exit_code = r->outcome == FIRE_SKIPPED ? 75 : 2;
    request_stop(d, "--once refused");
}

/* ---- the daemon's own mailbox ---- */

static void handle(cv_actor_t *self, cv_msg_t *msg)
{
    daemon_t *d = cv_actor_state(self);
    switch (msg->type) {
    case MSG_SHUTDOWN_DONE:
        begin_close(d);
        break;
    case MSG_FIRE_REPLY:
        once_replied(d, (msg_fire_reply_t *)msg);
        break;
    case MSG_RUN_EVENT: {
        msg_run_event_t *e = (msg_run_event_t *)msg;
        if (e->kind == RUN_EV_FINISHED && d->opts.once_job)
            once_finished(d, e->run);
        break;
    }
    case MSG_RUN_OUTPUT: {
        msg_run_output_t *o = (msg_run_output_t *)msg;
        for (size_t i = 0; i < o->n; i++) {
            FILE *f = strcmp(o->lines[i].stream, "stderr") == 0 ? stderr : stdout;
            fprintf(f, "%s\n", msg_run_output_text(o, i));
        }
        break;
    }
    default:
        break;
    }
}

/* ---- start-up chain: open, migrate, abandon, seed ids, overrides, actors ---- */

static void fatal(daemon_t *d, const char *what, int status)
{
    cv_error("daemon", "%s: %s", what, strerror(-status));
    d->exit_code = 1;
    begin_close(d);
}

/* ---- health probes and notifications ---- */

/* The notifier hears durable FINISHED runs from the store, live STARTED runs and auto-disables
 * from the executor, and probe changes from the prober (started after it). */
static void start_notifier(daemon_t *d)
{
    notifier_opts_t no = {.cfg = d->cfg,
                          .store = store_actor_actor(d->sa),
                          .instance = d->instance,
                          .ring_size = (size_t)d->cfg->cfg->limits.notification_history};
    d->notifier = notifier_create(d->rt, &no);
    store_actor_subscribe(d->sa, notifier_actor(d->notifier));
    executor_add_observer(d->ex, notifier_actor(d->notifier), false);
    notifier_start(d->notifier);
}

/* The prober tells the executor (requires:) and the notifier of every status change. The API
 * adds its hub with prober_add_observer(d->prober, ...). */
static void start_prober(daemon_t *d)
{
    prober_opts_t po = {.cfg = d->cfg, .store = store_actor_actor(d->sa)};
    d->prober = prober_create(d->rt, &po);
    prober_add_observer(d->prober, executor_actor(d->ex));
    if (d->notifier)
        prober_add_observer(d->prober, notifier_actor(d->notifier));
    if (d->api)
        prober_add_observer(d->prober, api_actor(d->api));
    prober_start(d->prober);
}

static void stop_prober_and_notifier(daemon_t *d)
{
    if (d->prober)
        prober_close(d->prober, NULL, NULL);
    if (d->notifier)
        notifier_close(d->notifier, NULL, NULL);
    d->prober = NULL;
    d->notifier = NULL;
}

/* The http actor (REST API, WebSocket events, /metrics): before the executor, whose hub it is. */
static int start_http(daemon_t *d)
{
    char *err = NULL;
    api_opts_t ao = {.cfg = d->cfg,
                     .store = store_actor_actor(d->sa),
                     .overrides = d->overrides,
                     .n_overrides = d->n_overrides,
                     .instance = d->instance};
    d->api = api_create(d->rt, &ao, &err);
    if (d->api == NULL) {
        cv_error("daemon", "%s", err ? err : "the API server could not start");
        free(err);
        d->exit_code = 1;
        begin_close(d);
        return -1;
    }
    store_actor_subscribe(d->sa, api_actor(d->api));
    store_actor_watch_state(d->sa, api_actor(d->api));
    return 0;
}

static void start_actors(daemon_t *d)
{
    d->sa = store_actor_create(d->rt, d->store);
    if (!d->opts.once_job && start_http(d) != 0)
        return;
    cv_actor_t *hub = d->opts.once_job ? d->self : api_actor(d->api);
    executor_opts_t eo = {.store = store_actor_actor(d->sa),
                          .hub = hub,
                          .instance = d->instance,
                          .first_run_id = d->first_run_id,
                          .shared_store = store_is_shared(d->store),
                          .output_lossless = d->opts.once_job != NULL};
    if (!d->opts.once_job) {
        int err = 0;
        /* The scheduler needs the executor and the executor the scheduler: create the
         * executor first, then tell it where the scheduler is. */
        d->ex = executor_create(d->rt, &eo);
        d->sched = scheduler_create(d->rt, executor_actor(d->ex), &err);
        if (d->sched == NULL) {
            fatal(d, "cannot create the scheduler's timer", err);
            return;
        }
        executor_set_scheduler(d->ex, scheduler_actor(d->sched));
        api_set_peers(d->api, executor_actor(d->ex), scheduler_actor(d->sched));
        start_notifier(d);
        start_prober(d);
        api_set_health_peers(d->api, prober_actor(d->prober), notifier_actor(d->notifier));
    } else {
        d->ex = executor_create(d->rt, &eo);
        store_actor_subscribe(d->sa, d->self);
    }
    configure_actors(d, true);
    start_signals(d);
    start_heartbeat(d);
    if (d->opts.once_job) {
        msg_fire_t *f = msg_fire_new(d->opts.once_job, "once", cv_now_ms());
        f->reply_to = d->self;
        cv_actor_post(executor_actor(d->ex), &f->hdr);
        return;
    }
    start_override_watch(d);
    start_event_watch(d);
    uv_timer_init(&d->loop, &d->retention);
    d->retention.data = d;
    d->retention_on = true;
    uv_timer_start(&d->retention, on_retention_timer, 0, RETENTION_INTERVAL_MS);
    cv_info("daemon", "cronvisor %s running: instance %s, %u job(s), store %s", CV_VERSION,
            d->instance, d->cfg->cfg->n_jobs,
            d->cfg->cfg->storage.postgres ? "postgres" : d->cfg->cfg->storage.sqlite.path);
}

typedef struct {
    daemon_t *d;
    unsigned job;
} last_run_query_t;

static void on_last_runs(void *ud, int status, store_run_page_t *page)
{
    last_run_query_t *q = ud;
    daemon_t *d = q->d;
    for (size_t i = 0; status == 0 && i < page->count; i++) {
        const run_t *r = page->runs[i];
        bool clock = strcmp(r->trigger, "cron") == 0 || strcmp(r->trigger, "catch_up") == 0;
        if (clock && r->scheduled_for / 1000 > d->last_run[q->job])
            d->last_run[q->job] = r->scheduled_for / 1000;
    }
    free(q);
    if (--d->pending_queries == 0)
        start_actors(d);
}

/* Catch-up needs each such job's last recorded firing; the other jobs need nothing. */
static void query_last_runs(daemon_t *d)
{
    const cfg_t *cfg = d->cfg->cfg;
    d->last_run = cv_calloc(cfg->n_jobs ? cfg->n_jobs : 1, sizeof(int64_t));
    d->pending_queries = 1;
    for (unsigned i = 0; i < cfg->n_jobs && !d->opts.once_job; i++) {
        if (cfg->jobs[i].catch_up_ms <= 0)
            continue;
        last_run_query_t *q = cv_malloc(sizeof(*q));
        q->d = d;
        q->job = i;
        store_run_filter_t f = {.job = cfg->jobs[i].name, .limit = 20};
        d->pending_queries++;
        store_query_runs(d->store, &f, on_last_runs, q);
    }
    if (--d->pending_queries == 0)
        start_actors(d);
}

static void on_overrides(void *ud, int status, const store_override_t *ov, size_t count)
{
    daemon_t *d = ud;
    if (status == -EAGAIN) {
        cv_warn("daemon", "runtime overrides cannot be read while the database is unreachable: "
                          "jobs start with their configured settings until it is back");
        query_last_runs(d);
        return;
    }
    if (status != 0) {
        fatal(d, "reading runtime overrides", status);
        return;
    }
    keep_overrides(d, ov, count);
    query_last_runs(d);
}

static void on_newest_run(void *ud, int status, store_run_page_t *page)
{
    daemon_t *d = ud;
    if (status == -EAGAIN && store_is_shared(d->store)) { /* unreachable; ids come from it */
        d->first_run_id = 1;
        store_override_list(d->store, NULL, on_overrides, d);
        return;
    }
    if (status != 0) {
        fatal(d, "reading the run history", status);
        return;
    }
    d->first_run_id = page->count ? page->runs[0]->id + 1 : 1;
    store_override_list(d->store, NULL, on_overrides, d);
}

static void on_abandoned(void *ud, int status, int64_t count)
{
    daemon_t *d = ud;
    if (status != 0) {
        fatal(d, "marking stale runs", status);
        return;
    }
    if (count > 0)
        cv_warn("store", "%lld run(s) left RUNNING or QUEUED by a previous daemon marked ABANDONED",
                (long long)count);
    store_run_filter_t f = {.limit = 1};
    store_query_runs(d->store, &f, on_newest_run, d);
}

/* Shared store, at start: this instance's own leftovers (same configured id), then a first
 * heartbeat, then the runs of instances that stopped heart-beating; never another live
 * instance's runs. */
static void on_first_heartbeat(void *ud, int status)
{
    daemon_t *d = ud;
    if (status == -EAGAIN) { /* the database is unreachable: the store spools */
        cv_warn("daemon", "starting while the database is unreachable: run records are spooled "
                          "until it is back");
        on_abandoned(d, 0, 0);
        return;
    }
    if (status != 0) {
        fatal(d, "recording this instance's heartbeat", status);
        return;
    }
    store_abandon_dead(d->store, cv_now_ms() - d->cfg->cfg->cluster.heartbeat_timeout_ms,
                       on_abandoned, d);
}

static void on_own_abandoned(void *ud, int status, int64_t count)
{
    daemon_t *d = ud;
    if (status != 0) {
        fatal(d, "marking stale runs", status);
        return;
    }
    if (count > 0)
        cv_warn("store",
                "%lld run(s) left by a previous daemon with instance id %s marked ABANDONED",
                (long long)count, d->instance);
    heartbeat_send(d, on_first_heartbeat);
}

static void abandon_shared(daemon_t *d)
{
    store_abandon_stale(d->store, d->instance,
                        "the daemon that ran it stopped without recording its end",
                        on_own_abandoned, d);
}

static void on_migrated(void *ud, int status, int64_t applied)
{
    daemon_t *d = ud;
    if (status != 0) {
        fatal(d, "migrating the store", status);
        return;
    }
    if (applied > 0)
        cv_info("store", "%lld migration(s) applied", (long long)applied);
    if (d->opts.once_job && store_is_shared(d->store)) {
        heartbeat_send(d, on_first_heartbeat); /* so that the others do not abandon its run */
        return;
    }
    if (d->opts.once_job) {
        on_abandoned(d, 0, 0); /* a daemon may be running on this store: leave its runs alone */
        return;
    }
    if (store_is_shared(d->store)) {
        abandon_shared(d);
        return;
    }
    store_abandon_stale(d->store, NULL, "the daemon that ran it stopped without recording its end",
                        on_abandoned, d);
}

/* ---- closing ---- */

static void on_handle_closed(uv_handle_t *h)
{
}

static void on_sched_closed(void *ud)
{
}

static void on_store_closed(void *ud, int status)
{
    daemon_t *d = ud;
    if (d->signals_on) {
        uv_close((uv_handle_t *)&d->sig_term, on_handle_closed);
        uv_close((uv_handle_t *)&d->sig_int, on_handle_closed);
        uv_close((uv_handle_t *)&d->sig_hup, on_handle_closed);
    }
    cv_actor_destroy(d->self);
    d->self = NULL;
    cv_runtime_close(d->rt);
    reaper_stop();
    cv_info("daemon", "stopped");
}

static void close_store(void *ud)
{
    daemon_t *d = ud;
    if (d->store)
        store_close(d->store, on_store_closed, d);
    else
        on_store_closed(d, 0);
}

static void begin_close(daemon_t *d)
{
    if (d->stopping == 2)
        return;
    d->stopping = 2;
    if (d->retention_on)
        uv_close((uv_handle_t *)&d->retention, on_handle_closed);
    if (d->heartbeat_on)
        uv_close((uv_handle_t *)&d->heartbeat, on_handle_closed);
    if (d->sched)
        scheduler_close(d->sched, on_sched_closed, d);
    stop_prober_and_notifier(d);
    if (d->ex)
        executor_destroy(d->ex);
    if (d->sa)
        store_actor_destroy(d->sa);
    d->sched = NULL;
    d->ex = NULL;
    d->sa = NULL;
    if (d->api) {
        api_t *api = d->api;
        d->api = NULL;
        api_close(api, close_store, d); /* the API goes before the store */
    } else {
        close_store(d);
    }
}

static char *make_instance_id(const cfg_t *cfg)
{
    if (cfg->instance)
        return cv_strdup(cfg->instance);
    char host[256] = "localhost";
    gethostname(host, sizeof(host) - 1);
    return cv_sprintf("%s-%d", host, (int)getpid());
}

int daemon_main(const daemon_opts_t *opts, cfg_t *cfg)
{
    daemon_t *d = cv_calloc(1, sizeof(*d));
    d->opts = *opts;
    d->cfg = cfgref_new(cfg);
    d->instance = make_instance_id(cfg);
    d->started_at = cv_now_ms();
    signal(SIGPIPE, SIG_IGN);
    httpc_global_init(); /* before any thread (the SQLite worker) starts */
    uv_loop_init(&d->loop);
    int rc = reaper_start(&d->loop);
    if (rc == 0 && getpid() != 1)
        rc = reaper_set_subreaper(true);
    if (rc != 0)
        cv_warn("daemon", "orphan reaping is limited: %s", strerror(-rc));
    reaper_set_orphan_cb(on_orphan, d);
    d->rt = cv_runtime_create(&d->loop, &rc);
    d->self = cv_actor_create(d->rt, "daemon", handle, d);

    store_config_t sc = {
        .dsn = cfg->storage.postgres ? cfg->storage.postgres : cfg->storage.sqlite.path,
        .instance = d->instance,
        .pending_max = (size_t)(cfg->storage.pending_max > 0 ? cfg->storage.pending_max : 0),
    };
    /* The outage spool (PostgreSQL: writes while the database is unreachable; SQLite: writes
     * held after a storage failure), one per configured instance id (an unconfigured id changes
     * with every start, the spool must not) */
    char *spool = NULL;
    if (cfg->storage.spool_dir) {
        const char *kind = cfg->storage.postgres ? "pg" : "sqlite";
        spool = cfg->instance
                    ? cv_sprintf("%s/%s-spool-%s.log", cfg->storage.spool_dir, kind, cfg->instance)
                    : cv_sprintf("%s/%s-spool.log", cfg->storage.spool_dir, kind);
        sc.spool_path = spool;
        sc.spool_max = (uint64_t)cfg->storage.spool_max;
    }
    rc = store_open(&d->loop, &sc, &d->store);
    free(spool);
    if (rc != 0) {
        cv_error("daemon", "cannot open the store: %s", strerror(-rc));
        d->exit_code = 1;
        d->store = NULL;
        begin_close(d);
    } else {
        store_migrate(d->store, on_migrated, d);
    }
    uv_run(&d->loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&d->loop);
    if (rc != 0)
        cv_warn("daemon", "the loop closed with handles left: %s", uv_strerror(rc));
    int code = d->exit_code;
    cfgref_put(d->cfg);
    store_overrides_free(d->overrides, d->n_overrides);
    free(d->reload_summary);
    free(d->last_run);
    free(d->instance);
    free(d);
    return code;
}
