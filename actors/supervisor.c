/* The supervisor: the root actor (OTP sense) that replaces the old core/daemon.c. It owns the
 * configuration and drives start-up, reload and shutdown; see actors/supervisor.h. */
#include "actors/supervisor.h"
#include "actors/cluster.h"
#include "actors/executor.h"
#include "actors/notifier.h"
#include "actors/prober.h"
#include "actors/scheduler.h"
#include "actors/store_actor.h"
#include "core/cfgdiff.h"
#include "core/daemon.h"
#include "core/effjob.h"
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

#define RETENTION_INTERVAL_MS       (3600 * 1000)
#define DEFAULT_MAX_PENDING_RELOADS 8 /* server.max_pending_reloads when 0 */

typedef struct daemon {
    uv_loop_t loop;
    daemon_opts_t opts;
    cfgref_t *cfg;
    char *instance;
    cv_runtime_t *rt;
    cv_actor_t *self;
    store_t *store;
    cv_list_t reloads; /* reload_t waiting for their store request */
    size_t nreloads;   /* on reloads; at most server.max_pending_reloads */
    uint64_t store_corr;
    /* the children, in start order (stopped in the reverse order) */
    store_actor_t *sa;
    api_t *api;
    executor_t *ex;
    scheduler_t *sched;
    notifier_t *notifier;
    prober_t *prober;
    cluster_t *cluster; /* shared store only */
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t retention;
    bool signals_on, retention_on;
    int64_t started_at;
    store_override_t *overrides;
    size_t n_overrides;
    /* the same as (job, field, value) triples, for core/effjob.h */
    effjob_overrides_t ov;
    int64_t first_run_id;
    int64_t *last_run; /* per config job: last cron firing recorded (s), for catch-up */
    int pending_queries;
    int exit_code;
    int stopping; /* 0 running, 1 stopping jobs, 2 closing */
    int64_t once_run_id;
} daemon_t;

static void begin_close(daemon_t *d);

static void on_orphan(void *data, pid_t pid, int status)
{
    cv_debug("daemon", "reaped orphan pid %d", (int)pid);
}

/* ---- who subscribes to whom ---- */

typedef enum {
    A_NONE,
    A_SUPERVISOR,
    A_STORE,
    A_API,
    A_EXECUTOR,
    A_SCHEDULER,
    A_NOTIFIER,
    A_PROBER,
    A_CLUSTER,
} child_t;

typedef enum {
    SUB_RUNS,        /* store actor: durable FINISHED runs (store_actor_subscribe) */
    SUB_STORE_STATE, /* store actor: MSG_STORE_STATE (store_actor_watch_state) */
    SUB_RUN_EVENTS,  /* executor: MSG_RUN_EVENT, MSG_AUDIT, no output (executor_add_observer) */
    SUB_HUB,         /* executor: its hub, every event and output line (executor_opts_t.hub) */
    SUB_HEALTH,      /* prober: MSG_HEALTH on every status change (prober_add_observer) */
    SUB_CLUSTER,     /* cluster: remote runs, instance beats, cancels, override changes */
} sub_kind_t;

typedef struct {
    child_t publisher;
    sub_kind_t kind;
    child_t subscriber;
} subscription_t;

/* Every subscription of the tree, read at a glance. Rows whose ends do not exist in this mode
 * (no API in --once mode, no cluster actor without a shared store) are skipped. */
static const subscription_t subscriptions[] = {
    /* publisher   kind              subscriber */
    {A_STORE, SUB_RUNS, A_API},
    {A_STORE, SUB_STORE_STATE, A_API},
    {A_STORE, SUB_STORE_STATE, A_PROBER}, /* SQLite: the store probe follows it */
    {A_STORE, SUB_RUNS, A_NOTIFIER},
    {A_STORE, SUB_RUNS, A_SUPERVISOR},   /* --once only: the run's end */
    {A_EXECUTOR, SUB_HUB, A_API},        /* set at creation */
    {A_EXECUTOR, SUB_HUB, A_SUPERVISOR}, /* --once only, set at creation: output lines */
    {A_EXECUTOR, SUB_RUN_EVENTS, A_NOTIFIER},
    {A_PROBER, SUB_HEALTH, A_EXECUTOR},
    {A_PROBER, SUB_HEALTH, A_NOTIFIER},
    {A_PROBER, SUB_HEALTH, A_API},
    {A_CLUSTER, SUB_CLUSTER, A_API},        /* set at creation */
    {A_CLUSTER, SUB_CLUSTER, A_EXECUTOR},   /* set at creation: cancels */
    {A_CLUSTER, SUB_CLUSTER, A_SUPERVISOR}, /* set at creation: override changes */
};

static cv_actor_t *child_actor(daemon_t *d, child_t c)
{
    switch (c) {
    case A_SUPERVISOR:
        return d->self;
    case A_STORE:
        return d->sa ? store_actor_actor(d->sa) : NULL;
    case A_API:
        return d->api ? api_actor(d->api) : NULL;
    case A_EXECUTOR:
        return d->ex ? executor_actor(d->ex) : NULL;
    case A_SCHEDULER:
        return d->sched ? scheduler_actor(d->sched) : NULL;
    case A_NOTIFIER:
        return d->notifier ? notifier_actor(d->notifier) : NULL;
    case A_PROBER:
        return d->prober ? prober_actor(d->prober) : NULL;
    case A_CLUSTER:
        return d->cluster ? cluster_actor(d->cluster) : NULL;
    default:
        return NULL;
    }
}

/* The subscriber of a row, or NULL when the row does not apply in this mode. */
static cv_actor_t *row_subscriber(daemon_t *d, const subscription_t *s)
{
    bool once = d->opts.once_job != NULL;
    if (s->subscriber == A_SUPERVISOR && s->publisher != A_CLUSTER && !once)
        return NULL;
    if (child_actor(d, s->publisher) == NULL)
        return NULL;
    return child_actor(d, s->subscriber);
}

/* The hub given to the executor at its creation (the table's SUB_HUB row that applies). */
static cv_actor_t *executor_hub(daemon_t *d)
{
    for (size_t i = 0; i < CV_ARRAY_SIZE(subscriptions); i++) {
        const subscription_t *s = &subscriptions[i];
        if (s->kind != SUB_HUB)
            continue;
        bool once = d->opts.once_job != NULL;
        if ((s->subscriber == A_SUPERVISOR) == once)
            return child_actor(d, s->subscriber);
    }
    return NULL;
}

/* Makes the subscriptions of the table whose publisher is pub (called when pub has just been
 * created, its subscribers before it). */
static void wire(daemon_t *d, child_t pub)
{
    for (size_t i = 0; i < CV_ARRAY_SIZE(subscriptions); i++) {
        const subscription_t *s = &subscriptions[i];
        cv_actor_t *sub = s->publisher == pub ? row_subscriber(d, s) : NULL;
        if (sub == NULL)
            continue;
        switch (s->kind) {
        case SUB_RUNS:
            store_actor_subscribe(d->sa, sub);
            break;
        case SUB_STORE_STATE:
            store_actor_watch_state(d->sa, sub);
            break;
        case SUB_RUN_EVENTS:
            executor_add_observer(d->ex, sub, false);
            break;
        case SUB_HEALTH:
            prober_add_observer(d->prober, sub);
            break;
        case SUB_HUB:
        case SUB_CLUSTER:
            break; /* given at creation */
        }
    }
}

/* ---- configuration for the actors ---- */

static msg_sched_jobs_t *sched_jobs(const daemon_t *d, bool first)
{
    const cfg_t *cfg = d->cfg->cfg;
    msg_sched_jobs_t *m = scheduler_jobs_msg_new(first);
    for (unsigned i = 0; i < cfg->n_jobs; i++) {
        const cfg_job_t *j = &cfg->jobs[i];
        effjob_t e = {0};
        effjob_compute_list(&e, j, &d->ov, "daemon");
        sched_job_spec_t spec = {.name = j->name,
                                 .schedule = e.schedule,
                                 .timezone = e.timezone,
                                 .enabled = e.enabled,
                                 .catch_up = j->catch_up_ms / 1000,
                                 .last_run = first && d->last_run ? d->last_run[i] : 0};
        scheduler_jobs_msg_add(m, &spec);
        effjob_clear(&e);
    }
    return m;
}

/* The executor's copy of the overrides: every overridable field of every job, set or cleared. */
static void overrides_to_executor(const daemon_t *d)
{
    const cfg_t *cfg = d->cfg->cfg;
    for (unsigned i = 0; d->ex && i < cfg->n_jobs; i++) {
        for (size_t f = 0; f < CV_ARRAY_SIZE(effjob_fields); f++) {
            const char *v = effjob_overrides_get(&d->ov, cfg->jobs[i].name, effjob_fields[f]);
            msg_override_t *o = msg_override_new(cfg->jobs[i].name, effjob_fields[f], v, NULL);
            cv_actor_post(executor_actor(d->ex), &o->hdr);
        }
    }
}

/* The actors that get each configuration snapshot (MSG_EXEC_CONFIG), and whether they get the
 * first one (the others were created with it). The scheduler gets its jobs with their overrides
 * instead (msg_sched_jobs_t). */
static const struct {
    child_t child;
    bool at_start;
} config_receivers[] = {
    {A_EXECUTOR, true}, {A_API, true}, {A_CLUSTER, true}, {A_PROBER, false}, {A_NOTIFIER, false},
};

/* Posts the snapshot to every actor in one step; summary: what the reload changed (NULL at
 * start). */
static void configure_actors(daemon_t *d, bool first, const char *summary)
{
    for (size_t i = 0; i < CV_ARRAY_SIZE(config_receivers); i++) {
        cv_actor_t *a = child_actor(d, config_receivers[i].child);
        if (a == NULL || (first && !config_receivers[i].at_start))
            continue;
        msg_exec_config_t *c = msg_exec_config_new(d->cfg);
        c->summary = summary ? cv_strdup(summary) : NULL;
        cv_actor_post(a, &c->hdr);
    }
    overrides_to_executor(d);
    if (d->sched)
        cv_actor_post(scheduler_actor(d->sched), &sched_jobs(d, first)->hdr);
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

/* Stops firing (scheduler), relaying (cluster), then running jobs (executor, which replies
 * MSG_SHUTDOWN_DONE); begin_close() closes the rest in order. */
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
    if (d->api) { /* /readyz answers 503 from now on */
        msg_shutdown_t *s = cv_msg_new(sizeof(*s), MSG_SHUTDOWN);
        cv_actor_post(api_actor(d->api), &s->hdr);
    }
    if (d->sched) {
        msg_shutdown_t *s = cv_msg_new(sizeof(*s), MSG_SHUTDOWN);
        cv_actor_post(scheduler_actor(d->sched), &s->hdr);
    }
    if (d->cluster) {
        msg_shutdown_t *s = cv_msg_new(sizeof(*s), MSG_SHUTDOWN);
        cv_actor_post(cluster_actor(d->cluster), &s->hdr);
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
        d->overrides[i].updated_by = ov[i].updated_by ? cv_strdup(ov[i].updated_by) : NULL;
    }
    d->n_overrides = count;
    effjob_overrides_clear(&d->ov);
    for (size_t i = 0; i < count; i++)
        effjob_overrides_set(&d->ov, ov[i].job, ov[i].field, ov[i].value);
}

/* ---- the supervisor's store requests (typed messages to the store actor) ----
 * Their replies come back as MSG_STORE_REPLY (store_replied): OVERRIDE_LIST with corr 0 is the
 * re-read after another instance's change, with a reload's corr the re-read of that reload;
 * RETENTION the periodic clean-up. */

static void on_reload_overrides(void *ud, int status, const store_override_t *ov, size_t count);
static void on_overrides_reread(void *ud, int status, const store_override_t *ov, size_t count);
static void on_retention_done(void *ud, int status, int64_t count);

typedef struct reload reload_t;

/* The start-up reads and sweeps are store requests too (the store actor is created right
 * after the migration); their replies are told apart by these corr values. */
enum {
    SC_STARTUP = 1ull << 62,
    SC_OWN_ABANDONED,
    SC_FIRST_HEARTBEAT,
    SC_ABANDONED,
    SC_NEWEST_RUN,
    SC_OVERRIDES,
    SC_LAST_RUNS, /* + the job's index */
};
static void on_own_abandoned(void *ud, int status, int64_t count);
static void on_first_heartbeat(void *ud, int status);
static void on_abandoned(void *ud, int status, int64_t count);
static void on_newest_run(void *ud, int status, const store_run_page_t *page);
static void on_overrides(void *ud, int status, const store_override_t *ov, size_t count);
static void on_last_runs(daemon_t *d, unsigned job, int status, const store_run_page_t *page);
/* Puts r on the list of reloads waiting for the store; returns the corr of its request. */
static uint64_t reload_track(daemon_t *d, reload_t *r);

static void post_store(daemon_t *d, msg_store_req_t *q)
{
    cv_actor_post(store_actor_actor(d->sa), &q->hdr);
}

/* After a reload: the overrides changed at run time (API, auto-disable) are in the store. */
static void store_reread_overrides_for_reload(daemon_t *d, reload_t *r)
{
    if (d->sa == NULL) {
        on_reload_overrides(r, -ESHUTDOWN, NULL, 0);
        return;
    }
    post_store(d, store_req_new(STORE_OP_OVERRIDE_LIST, d->self, reload_track(d, r), NULL, NULL));
}

/* Another instance changed an override (cluster actor). */
static void store_reread_overrides_for_cluster(daemon_t *d)
{
    if (d->sa != NULL)
        post_store(d, store_req_new(STORE_OP_OVERRIDE_LIST, d->self, 0, NULL, NULL));
}

static void store_apply_retention(daemon_t *d, const cfg_retention_t *r)
{
    if (d->sa == NULL)
        return;
    msg_store_req_t *q = store_req_new(STORE_OP_RETENTION, d->self, 0, NULL, NULL);
    q->a.days = r->days;
    q->a.max_runs = r->max_runs_per_job;
    post_store(d, q);
}

/* The reload's audit record, through the store actor like the API's. */
static void audit_reload(daemon_t *d, const char *by, const char *summary)
{
    if (d->sa == NULL)
        return;
    json_t *after = json_string(summary ? summary : "no changes");
    char *text = json_dumps(after, JSON_ENCODE_ANY);
    json_decref(after);
    msg_audit_t *a = msg_audit_new(by, "config.reload", NULL, 0, NULL, text);
    free(text);
    cv_actor_post(store_actor_actor(d->sa), &a->hdr);
}

/* ---- reload (SIGHUP, POST /api/reload) ---- */

struct reload {
    cv_list_t link; /* in d->reloads while its store request is out */
    uint64_t store_corr;
    daemon_t *d;
    char *by;      /* "system" (SIGHUP) or "api:<token>" */
    char *summary; /* what it changes (cfgdiff_summary) */
    cv_actor_t *reply_to;
    uint64_t corr;
};

static void reload_reply(daemon_t *d, cv_actor_t *to, uint64_t corr, reload_outcome_t outcome,
                         const char *changed, json_t *errors)
{
    if (to == NULL || d->api == NULL) { /* SIGHUP, or the API is closing (it answered 503) */
        json_decref(errors);
        return;
    }
    char *text = errors ? json_dumps(errors, JSON_COMPACT) : NULL;
    msg_reload_reply_t *r = msg_reload_reply_new(corr, outcome, changed, text);
    free(text);
    json_decref(errors);
    cv_actor_post(to, &r->hdr);
}

static void on_reload_overrides(void *ud, int status, const store_override_t *ov, size_t count)
{
    reload_t *r = ud;
    daemon_t *d = r->d;
    if (!d->stopping) {
        if (status == 0)
            keep_overrides(d, ov, count);
        else
            cv_warn("daemon",
                    "reload: runtime overrides could not be read (%s); using the known ones",
                    strerror(-status));
        configure_actors(d, false, r->summary ? r->summary : "no changes");
        cv_log(CV_LOG_INFO, "daemon", "configuration reloaded from %s: %s", d->opts.config_path,
               r->summary ? r->summary : "no changes");
        audit_reload(d, r->by, r->summary);
    }
    reload_reply(d, r->reply_to, r->corr, d->stopping ? RELOAD_REFUSED : RELOAD_APPLIED,
                 r->summary ? r->summary : "no changes", NULL);
    free(r->by);
    free(r->summary);
    free(r);
}

/* Applies at once what the actors do not get by message: the API tokens, their rate and ticket
 * bounds and auth.proxy (refused with the whole reload when they cannot apply). Returns 0 or a
 * negative errno. */
static int apply_now(daemon_t *d, const cfg_t *cfg, const cfgdiff_t *diff, char **why)
{
    char *err = NULL;
    const cfg_server_t *was = &d->cfg->cfg->server;
    bool rates = cfg->auth.rate_per_second != d->cfg->cfg->auth.rate_per_second ||
                 cfg->auth.rate_burst != d->cfg->cfg->auth.rate_burst ||
                 cfg->server.ws_max_tickets != was->ws_max_tickets ||
                 cfg->server.ws_max_tickets_per_caller != was->ws_max_tickets_per_caller;
    if (d->api &&
        (diff->tokens.added || diff->tokens.removed || diff->tokens.changed || rates ||
         diff->proxy) &&
        api_reload_auth(d->api, cfg, &err) != 0) {
        *why = cv_strdup(err ? err : "the API tokens cannot be applied");
        cv_error("daemon", "reload refused: %s; keeping the running configuration", *why);
        free(err);
        return -EINVAL;
    }
    return 0;
}

/* The errors of a refused load, each with its location, as a JSON array. */
static json_t *errors_json(const cfg_errors_t *errs)
{
    json_t *a = json_array();
    for (size_t i = 0; i < errs->count; i++) {
        const cfg_error_t *e = &errs->items[i];
        json_t *o = json_pack("{s:s?, s:i, s:i, s:s?, s:s?}", "file", e->file, "line", e->line,
                              "column", e->column, "job", e->job, "message", e->message);
        char *line = cfg_error_format(e);
        json_object_set_new(o, "text", json_string(line));
        free(line);
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *one_error(const char *message)
{
    return json_pack("[{s:s}]", "message", message);
}

/* Reads the configuration file again and applies it (by: who asked; reply_to: the API's
 * actor, or NULL for SIGHUP). An invalid configuration is refused, the running one kept. */
static void reload(daemon_t *d, const char *by, cv_actor_t *reply_to, uint64_t corr)
{
    cfg_t *cfg = NULL;
    cfg_errors_t errs = {0};
    if (d->stopping) {
        reload_reply(d, reply_to, corr, RELOAD_REFUSED, NULL, one_error("shutting down"));
        return;
    }
    size_t max = d->cfg->cfg->server.max_pending_reloads > 0
                     ? (size_t)d->cfg->cfg->server.max_pending_reloads
                     : DEFAULT_MAX_PENDING_RELOADS;
    if (d->nreloads >= max) {
        char *why = cv_sprintf("%zu reloads are already waiting to apply "
                               "(server.max_pending_reloads); try again once they are answered",
                               d->nreloads);
        cv_warn("daemon", "reload by %s refused: %s", by, why);
        reload_reply(d, reply_to, corr, RELOAD_BUSY, NULL, one_error(why));
        free(why);
        return;
    }
    if (cfgcheck_load(d->opts.config_path, &cfg, &errs) != 0) {
        for (size_t i = 0; i < errs.count; i++) {
            char *line = cfg_error_format(&errs.items[i]);
            cv_error("config", "%s", line);
            free(line);
        }
        cv_error("daemon", "reload refused: %zu error(s) in %s; keeping the running configuration",
                 errs.count, d->opts.config_path);
        reload_reply(d, reply_to, corr, RELOAD_INVALID, NULL, errors_json(&errs));
        cfg_errors_free(&errs);
        return;
    }
    cfg_errors_free(&errs);
    cfgdiff_t diff;
    cfgdiff_compare(d->cfg->cfg, cfg, &diff);
    if (diff.restart_only) {
        char *why = cv_sprintf("%s cannot change without a restart", diff.restart_only);
        cv_error("daemon", "reload refused: %s; keeping the running configuration", why);
        reload_reply(d, reply_to, corr, RELOAD_RESTART_NEEDED, NULL, one_error(why));
        free(why);
        cfgdiff_free(&diff);
        cfg_free(cfg);
        return;
    }
    char *why = NULL;
    if (apply_now(d, cfg, &diff, &why) != 0) {
        reload_reply(d, reply_to, corr, RELOAD_INVALID, NULL, one_error(why));
        free(why);
        cfgdiff_free(&diff);
        cfg_free(cfg);
        return;
    }
    reload_t *r = cv_calloc(1, sizeof(*r));
    r->d = d;
    r->by = cv_strdup(by);
    r->summary = cfgdiff_summary(&diff);
    r->reply_to = reply_to;
    r->corr = corr;
    cfgdiff_free(&diff);
    cfgref_put(d->cfg);
    d->cfg = cfgref_new(cfg);
    store_reread_overrides_for_reload(d, r);
}

static void on_signal(uv_signal_t *h, int signum)
{
    daemon_t *d = h->data;
    if (signum == SIGHUP)
        reload(d, "system", NULL, 0);
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
        store_apply_retention(d, r);
}

/* ---- override changes made by other instances (from the cluster actor) ---- */

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
    const char *const *fields = effjob_fields;
    const cfg_t *cfg = d->cfg->cfg;
    for (unsigned i = 0; d->api && i < cfg->n_jobs; i++) {
        for (size_t f = 0; f < CV_ARRAY_SIZE(effjob_fields); f++) {
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
    overrides_to_executor(d);
    cv_actor_post(scheduler_actor(d->sched), &sched_jobs(d, false)->hdr);
}

static void overrides_changed_elsewhere(daemon_t *d, const char *job)
{
    if (d->stopping)
        return;
    cv_info("daemon", "runtime overrides changed%s%s: re-reading them", job ? " for job " : "",
            job ? job : " unseen (before listening, or while the database was unreachable)");
    store_reread_overrides_for_cluster(d);
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

/* ---- the supervisor's own mailbox ---- */

static uint64_t reload_track(daemon_t *d, reload_t *r)
{
    r->store_corr = ++d->store_corr;
    cv_list_insert_tail(&d->reloads, &r->link);
    d->nreloads++;
    cv_debug("daemon", "reload by %s waits for the stored overrides (%zu waiting)", r->by,
             d->nreloads);
    return r->store_corr;
}

static void startup_replied(daemon_t *d, const msg_store_reply_t *m)
{
    switch (m->corr) {
    case SC_OWN_ABANDONED:
        on_own_abandoned(d, m->status, m->value);
        break;
    case SC_FIRST_HEARTBEAT:
        on_first_heartbeat(d, m->status);
        break;
    case SC_ABANDONED:
        on_abandoned(d, m->status, m->value);
        break;
    case SC_NEWEST_RUN:
        on_newest_run(d, m->status, &m->page);
        break;
    case SC_OVERRIDES:
        on_overrides(d, m->status, m->overrides, m->noverrides);
        break;
    default:
        if (m->corr >= SC_LAST_RUNS && m->corr - SC_LAST_RUNS < d->cfg->cfg->n_jobs)
            on_last_runs(d, (unsigned)(m->corr - SC_LAST_RUNS), m->status, &m->page);
    }
}

static void store_replied(daemon_t *d, const msg_store_reply_t *m)
{
    if (m->corr > SC_STARTUP) {
        startup_replied(d, m);
        return;
    }
    if (m->op == STORE_OP_RETENTION) {
        on_retention_done(d, m->status, m->value);
        return;
    }
    if (m->op != STORE_OP_OVERRIDE_LIST)
        return;
    if (m->corr == 0) {
        on_overrides_reread(d, m->status, m->overrides, m->noverrides);
        return;
    }
    for (cv_list_t *n = d->reloads.next; n != &d->reloads; n = n->next) {
        reload_t *r = cv_container_of(n, reload_t, link);
        if (r->store_corr == m->corr) {
            cv_list_remove(&r->link);
            d->nreloads--;
            on_reload_overrides(r, m->status, m->overrides, m->noverrides);
            return;
        }
    }
}

static void handle(cv_actor_t *self, cv_msg_t *msg)
{
    daemon_t *d = cv_actor_state(self);
    switch (msg->type) {
    case MSG_SHUTDOWN_DONE:
        begin_close(d);
        break;
    case MSG_RELOAD: {
        msg_reload_t *r = (msg_reload_t *)msg;
        reload(d, r->by ? r->by : "api", r->reply_to, r->corr);
        break;
    }
    case MSG_STORE_REPLY:
        store_replied(d, (const msg_store_reply_t *)msg);
        break;
    case MSG_CLUSTER_OVERRIDES:
        overrides_changed_elsewhere(d, ((msg_cluster_overrides_t *)msg)->job);
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

/* ---- the children, started in order ---- */

/* The notifier hears durable FINISHED runs from the store, live STARTED runs and auto-disables
 * from the executor, and probe changes from the prober (see the subscription table). */
static void create_notifier(daemon_t *d)
{
    notifier_opts_t no = {.cfg = d->cfg,
                          .store = store_actor_actor(d->sa),
                          .instance = d->instance,
                          .ring_size = (size_t)d->cfg->cfg->limits.notification_history};
    d->notifier = notifier_create(d->rt, &no);
}

static void create_prober(daemon_t *d)
{
    /* SQLite: the store's health follows its writes (MSG_STORE_STATE), no periodic ping;
     * PostgreSQL keeps the ping, which finds an unreachable server between writes. */
    prober_opts_t po = {.cfg = d->cfg,
                        .store = store_actor_actor(d->sa),
                        .store_passive = !store_is_shared(d->store)};
    d->prober = prober_create(d->rt, &po);
}

/* The http actor (REST API, WebSocket events, /metrics): before the executor, whose hub it is. */
static int start_http(daemon_t *d)
{
    char *err = NULL;
    api_opts_t ao = {.cfg = d->cfg,
                     .store = store_actor_actor(d->sa),
                     .supervisor = d->self,
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
    return 0;
}

/* Shared store only: heartbeats, the dead-instance sweep, the relay of the others' changes. */
static void start_cluster(daemon_t *d)
{
    if (!store_is_shared(d->store))
        return;
    cluster_opts_t co = {.store = d->store,
                         .store_actor = store_actor_actor(d->sa),
                         .cfg = d->cfg,
                         .instance = d->instance,
                         .started_at = d->started_at,
                         .once = d->opts.once_job != NULL,
                         .supervisor = d->self,
                         .api = child_actor(d, A_API),
                         .executor = child_actor(d, A_EXECUTOR)};
    d->cluster = cluster_create(d->rt, &co);
}

/* Start order: store actor, http actor, executor, scheduler, notifier, prober (each one's
 * subscribers exist before it publishes), then the cluster actor; then every one gets the
 * configuration. --once: store actor and executor only (and the cluster actor's heartbeats). */
static void start_actors(daemon_t *d)
{
    if (!d->opts.once_job && start_http(d) != 0)
        return;
    executor_opts_t eo = {.store = store_actor_actor(d->sa),
                          .hub = executor_hub(d),
                          .instance = d->instance,
                          .first_run_id = d->first_run_id,
                          .shared_store = store_is_shared(d->store),
                          .output_lossless = d->opts.once_job != NULL};
    d->ex = executor_create(d->rt, &eo);
    if (!d->opts.once_job) {
        int err = 0;
        /* The scheduler needs the executor and the executor the scheduler: create the
         * executor first, then tell it where the scheduler is. */
        d->sched = scheduler_create(d->rt, executor_actor(d->ex), &err);
        if (d->sched == NULL) {
            fatal(d, "cannot create the scheduler's timer", err);
            return;
        }
        executor_set_scheduler(d->ex, scheduler_actor(d->sched));
        api_set_peers(d->api, executor_actor(d->ex), scheduler_actor(d->sched));
        create_notifier(d);
        create_prober(d);
        api_set_health_peers(d->api, prober_actor(d->prober), notifier_actor(d->notifier));
    }
    wire(d, A_STORE);
    wire(d, A_EXECUTOR);
    wire(d, A_PROBER);
    if (d->notifier)
        notifier_start(d->notifier);
    if (d->prober)
        prober_start(d->prober);
    start_cluster(d);
    configure_actors(d, true, NULL);
    start_signals(d);
    if (d->opts.once_job) {
        msg_fire_t *f = msg_fire_new(d->opts.once_job, "once", cv_now_ms());
        f->reply_to = d->self;
        cv_actor_post(executor_actor(d->ex), &f->hdr);
        return;
    }
    uv_timer_init(&d->loop, &d->retention);
    d->retention.data = d;
    d->retention_on = true;
    uv_timer_start(&d->retention, on_retention_timer, 0, RETENTION_INTERVAL_MS);
    cv_info("daemon", "cronvisor %s running: instance %s, %u job(s), store %s", CV_VERSION,
            d->instance, d->cfg->cfg->n_jobs,
            d->cfg->cfg->storage.postgres ? "postgres" : d->cfg->cfg->storage.sqlite.path);
}

static void startup_req(daemon_t *d, msg_store_req_t *q)
{
    cv_actor_post(store_actor_actor(d->sa), &q->hdr);
}

static void on_last_runs(daemon_t *d, unsigned job, int status, const store_run_page_t *page)
{
    for (size_t i = 0; status == 0 && i < page->count; i++) {
        const run_t *r = page->runs[i];
        bool clock = strcmp(r->trigger, "cron") == 0 || strcmp(r->trigger, "catch_up") == 0;
        if (clock && r->scheduled_for / 1000 > d->last_run[job])
            d->last_run[job] = r->scheduled_for / 1000;
    }
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
        msg_store_req_t *q =
            store_req_new(STORE_OP_QUERY_RUNS, d->self, SC_LAST_RUNS + i, NULL, NULL);
        q->a.filter = (store_run_filter_t){.job = cv_strdup(cfg->jobs[i].name), .limit = 20};
        d->pending_queries++;
        startup_req(d, q);
    }
    if (--d->pending_queries == 0)
        start_actors(d);
}

static void read_overrides(daemon_t *d)
{
    startup_req(d, store_req_new(STORE_OP_OVERRIDE_LIST, d->self, SC_OVERRIDES, NULL, NULL));
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

static void on_newest_run(void *ud, int status, const store_run_page_t *page)
{
    daemon_t *d = ud;
    if (status == -EAGAIN && store_is_shared(d->store)) { /* unreachable; ids come from it */
        d->first_run_id = 1;
        read_overrides(d);
        return;
    }
    if (status != 0) {
        fatal(d, "reading the run history", status);
        return;
    }
    d->first_run_id = page->count ? page->runs[0]->id + 1 : 1;
    read_overrides(d);
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
    msg_store_req_t *q = store_req_new(STORE_OP_QUERY_RUNS, d->self, SC_NEWEST_RUN, NULL, NULL);
    q->a.filter.limit = 1;
    startup_req(d, q);
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
    msg_store_req_t *q = store_req_new(STORE_OP_ABANDON_DEAD, d->self, SC_ABANDONED, NULL, NULL);
    q->a.since = cv_now_ms() - d->cfg->cfg->cluster.heartbeat_timeout_ms;
    startup_req(d, q);
}

static void heartbeat_once(daemon_t *d)
{
    char host[256] = "localhost";
    gethostname(host, sizeof(host) - 1);
    msg_store_req_t *q = store_req_new(STORE_OP_HEARTBEAT, d->self, SC_FIRST_HEARTBEAT, NULL, NULL);
    q->a.instance = (store_instance_t){.id = cv_strdup(d->instance),
                                       .hostname = cv_strdup(host),
                                       .pid = getpid(),
                                       .started_at = d->started_at,
                                       .version = cv_strdup(CV_VERSION)};
    startup_req(d, q);
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
    heartbeat_once(d);
}

/* instance NULL: every instance's (SQLite: this daemon alone) */
static void abandon_stale(daemon_t *d, const char *instance, uint64_t corr)
{
    msg_store_req_t *q = store_req_new(STORE_OP_ABANDON_STALE, d->self, corr, NULL, NULL);
    q->a.instance.id = instance ? cv_strdup(instance) : NULL;
    q->a.reason = cv_strdup("the daemon that ran it stopped without recording its end");
    startup_req(d, q);
}

static void abandon_shared(daemon_t *d)
{
    abandon_stale(d, d->instance, SC_OWN_ABANDONED);
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
    d->sa = store_actor_create(d->rt, d->store); /* from here on every access is a request */
    if (d->opts.once_job && store_is_shared(d->store)) {
        heartbeat_once(d); /* so that the others do not abandon its run */
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
    abandon_stale(d, NULL, SC_ABANDONED);
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
    cluster_destroy(d->cluster);
    d->cluster = NULL;
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
    if (d->cluster)
        cluster_stop(d->cluster); /* destroyed once the store (which may call it) is closed */
    if (d->sched)
        scheduler_close(d->sched, on_sched_closed, d);
    if (d->prober)
        prober_close(d->prober, NULL, NULL);
    if (d->notifier)
        notifier_close(d->notifier, NULL, NULL);
    d->prober = NULL;
    d->notifier = NULL;
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
    cv_list_init(&d->reloads);
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
    effjob_overrides_clear(&d->ov);
    free(d->last_run);
    free(d->instance);
    free(d);
    return code;
}
