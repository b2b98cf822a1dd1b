#include "actors/store_actor.h"
#include "core/log.h"
#include "proto/msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SUBSCRIBERS 8

struct store_actor {
    cv_actor_t *actor;
    store_t *st;
    cv_actor_t *subs[MAX_SUBSCRIBERS];
    size_t nsubs;
    cv_actor_t *state_subs[MAX_SUBSCRIBERS]; /* MSG_STORE_STATE */
    size_t nstate_subs;
    size_t pending;
    bool destroyed;
};

/* One write in flight: what to forward once it is committed. */
typedef struct {
    store_actor_t *sa;
    run_t *run;
    run_ev_kind_t kind;
} write_t;

static void forward(store_actor_t *sa, const write_t *w)
{
    for (size_t i = 0; i < sa->nsubs; i++) {
        msg_run_event_t *e = msg_run_event_share(w->kind, w->run);
        cv_actor_post(sa->subs[i], &e->hdr);
    }
}

/* The executor's "finished" line, written once the final record is durable (the executor logs
 * only the start: see log_event in executor.c), component "exec" as the start line. A record
 * that could not be written is still told, as not recorded, at error level. */
static void log_finished(const run_t *r, int status)
{
    cv_log_level_t lvl = status != 0                ? CV_LOG_ERROR
                         : r->status == RUN_SUCCESS ? CV_LOG_INFO
                                                    : CV_LOG_WARN;
    cv_log(lvl, "exec",
           "run %lld job=%s status=%s exit=%d signal=%d duration=%lldms items=%lld/%lld%s%s%s%s",
           (long long)r->id, r->job, run_status_name(r->status), r->exit_code, r->signal,
           (long long)r->duration_ms, (long long)r->items_processed, (long long)r->items_failed,
           r->error ? " error=" : "", r->error ? r->error : "",
           status != 0 ? " NOT RECORDED: " : "", status != 0 ? strerror(-status) : "");
}

static void write_done(write_t *w, int status)
{
    store_actor_t *sa = w->sa;
    if (status != 0)
        cv_error("store", "run %lld of job '%s' (%s) could not be recorded: %s",
                 (long long)w->run->id, w->run->job, run_status_name(w->run->status),
                 strerror(-status));
    else
        cv_debug("store", "run %lld %s recorded", (long long)w->run->id,
                 run_status_name(w->run->status));
    if (w->kind == RUN_EV_FINISHED)
        log_finished(w->run, status);
    if (!sa->destroyed && w->kind == RUN_EV_FINISHED)
        forward(sa, w);
    sa->pending--;
    run_free(w->run);
    free(w);
    if (sa->destroyed && sa->pending == 0)
        free(sa);
}

static void on_inserted(void *ud, int status, int64_t id)
{
    write_done(ud, status);
}

static void on_updated(void *ud, int status)
{
    write_done(ud, status);
}

static void persist(store_actor_t *sa, msg_run_event_t *e)
{
    if (e->kind == RUN_EV_PROGRESS && !e->insert)
        return; /* progress is live-only; the final record carries the last values */
    write_t *w = cv_malloc(sizeof(*w));
    w->sa = sa;
    w->kind = e->kind;
    w->run = e->run;
    e->run = NULL; /* taken */
    sa->pending++;
    if (e->insert)
        store_insert_run(sa->st, w->run, on_inserted, w);
    else
        store_update_run(sa->st, w->run, on_updated, w);
}

/* A claim in flight: who to answer, and what the check across instances found so far. */
typedef struct {
    store_actor_t *sa;
    cv_actor_t *reply_to;
    uint64_t corr;
    int64_t live_since; /* 0: no check */
    char *self;         /* the claiming instance */
    int status;
    int64_t id;
    run_t **active; /* the job's RUNNING/QUEUED runs (check) */
    size_t nactive;
    const store_instance_t *inst; /* the instances (check), valid in on_claim_instances only */
    size_t ninst;
    int waiting; /* callbacks still to come: the claim, and with the check the two reads */
} claim_t;

static void claim_done(claim_t *c)
{
    store_actor_t *sa = c->sa;
    if (c->status == 0)
        cv_debug("store", "run %lld QUEUED recorded", (long long)c->id);
    else if (c->status == -EAGAIN)
        cv_debug("store", "a run could not be claimed: the database is unreachable");
    else if (c->status != -EEXIST)
        cv_error("store", "a run could not be claimed: %s", strerror(-c->status));
    if (!sa->destroyed) {
        msg_claim_reply_t *r = msg_claim_reply_new(c->corr, c->status, c->id);
        for (size_t i = 0; c->status == 0 && i < c->nactive; i++) {
            const run_t *o = c->active[i];
            bool live = false;
            for (size_t k = 0; o->instance && k < c->ninst && !live; k++)
                live = strcmp(c->inst[k].id, o->instance) == 0 &&
                       c->inst[k].last_seen >= c->live_since;
            if (!live || strcmp(o->instance, c->self) == 0 || r->nothers == MSG_CLAIM_MAX_OTHERS)
                continue;
            r->other_run[r->nothers] = o->id;
            r->other_instance[r->nothers++] = cv_strdup(o->instance);
        }
        cv_actor_post(c->reply_to, &r->hdr);
    }
    for (size_t i = 0; i < c->nactive; i++)
        run_free(c->active[i]);
    free(c->active);
    free(c->self);
    free(c);
    if (--sa->pending == 0 && sa->destroyed)
        free(sa);
}

/* The three callbacks may come in any order (a degraded store fails reads at once while the
 * claim waits): the last one answers. */
static void claim_step(claim_t *c)
{
    if (--c->waiting == 0)
        claim_done(c);
}

static void on_claimed(void *ud, int status, int64_t id)
{
    claim_t *c = ud;
    c->status = status;
    c->id = id;
    claim_step(c);
}

static void on_claim_active(void *ud, int status, store_run_page_t *page)
{
    claim_t *c = ud;
    if (status == 0 && page != NULL) { /* else: as if none were active elsewhere */
        c->active = cv_calloc(page->count ? page->count : 1, sizeof(*c->active));
        for (size_t i = 0; i < page->count; i++) {
            c->active[c->nactive++] = page->runs[i];
            page->runs[i] = NULL; /* taken */
        }
    }
    claim_step(c);
}

static void on_claim_instances(void *ud, int status, const store_instance_t *inst, size_t count)
{
    claim_t *c = ud;
    if (status == 0 && c->waiting == 1) { /* the list lives during this call only */
        c->inst = inst;
        c->ninst = count;
    }
    claim_step(c); /* when the list came before the claim's answer, the claim failed anyway */
}

/* With live_since the insert, the job's active runs and the instances go out together (one
 * batch, in this order), so the check costs no extra round trip. */
static void claim(store_actor_t *sa, const msg_claim_t *m)
{
    claim_t *c = cv_calloc(1, sizeof(*c));
    c->sa = sa;
    c->reply_to = m->reply_to;
    c->corr = m->corr;
    c->live_since = m->live_since;
    c->self = cv_strdup(m->run->instance ? m->run->instance : "");
    sa->pending++;
    c->waiting = c->live_since ? 3 : 1;
    store_claim_run(sa->st, m->run, on_claimed, c);
    if (c->live_since == 0)
        return;
    store_run_filter_t f = {
        .job = m->run->job, .status_mask = (1u << RUN_RUNNING) | (1u << RUN_QUEUED), .limit = 50};
    store_query_runs(sa->st, &f, on_claim_active, c);
    store_list_instances(sa->st, on_claim_instances, c);
}

static void on_side_write(void *ud, int status)
{
    store_actor_t *sa = ud;
    if (status != 0 && status != -ENOENT) /* deleting an override that is not there is fine */
        cv_error("store", "an override or audit record could not be written: %s",
                 strerror(-status));
    if (--sa->pending == 0 && sa->destroyed)
        free(sa);
}

static void on_audit_written(void *ud, int status, int64_t id)
{
    on_side_write(ud, status);
}

static void write_audit(store_actor_t *sa, const msg_audit_t *m)
{
    store_audit_t a = {.actor = m->actor,
                       .action = m->action,
                       .job = m->job,
                       .run_id = m->run_id,
                       .before = m->before,
                       .after = m->after};
    sa->pending++;
    cv_debug("store", "audit %s by %s recorded", m->action, m->actor);
    store_audit_append(sa->st, &a, on_audit_written, sa);
}

static void write_override(store_actor_t *sa, const msg_override_t *m)
{
    sa->pending++;
    if (m->value == NULL) {
        store_override_delete(sa->st, m->job, m->field, on_side_write, sa);
        return;
    }
    store_override_t o = {.job = m->job, .field = m->field, .value = m->value, .updated_by = m->by};
    store_override_set(sa->st, &o, on_side_write, sa);
}

/* ---- typed requests ---- */

static char *dup_opt(const char *s)
{
    return s ? cv_strdup(s) : NULL;
}

/* "ping", "get_run", ... (for logs). */
static const char *store_op_name(store_op_t op)
{
    static const char *const names[] = {
        [STORE_OP_PING] = "ping",
        [STORE_OP_GET_RUN] = "get_run",
        [STORE_OP_QUERY_RUNS] = "query_runs",
        [STORE_OP_JOB_STATS] = "job_stats",
        [STORE_OP_SUMMARY] = "summary",
        [STORE_OP_OVERRIDE_LIST] = "override_list",
        [STORE_OP_AUDIT_LIST] = "audit_list",
        [STORE_OP_NOTE_PUT] = "note_put",
        [STORE_OP_NOTE_LIST] = "note_list",
        [STORE_OP_LIST_INSTANCES] = "list_instances",
        [STORE_OP_NOTIFY] = "notify",
        [STORE_OP_HEARTBEAT] = "heartbeat",
        [STORE_OP_ABANDON_DEAD] = "abandon_dead",
        [STORE_OP_ABANDON_STALE] = "abandon_stale",
        [STORE_OP_RETENTION] = "retention",
        [STORE_OP_INSERT_RUN] = "insert_run",
        [STORE_OP_UPDATE_RUN] = "update_run",
        [STORE_OP_OVERRIDE_SET] = "override_set",
        [STORE_OP_OVERRIDE_DELETE] = "override_delete",
        [STORE_OP_AUDIT_APPEND] = "audit_append",
        [STORE_OP_RUNNING_AND_INSTANCES] = "running_and_instances",
    };
    return (size_t)op < CV_ARRAY_SIZE(names) && names[op] ? names[op] : "unknown";
}

static void reply_dispose(cv_msg_t *m)
{
    msg_store_reply_t *r = (msg_store_reply_t *)m;
    run_free(r->run);
    store_run_page_free(&r->page);
    store_job_stats_free(r->stats, r->nstats);
    store_overrides_free(r->overrides, r->noverrides);
    store_audit_page_free(&r->audit);
    store_notes_free(r->notes, r->nnotes);
    store_instances_free(r->instances, r->ninstances);
    free(r);
}

msg_store_reply_t *store_reply_new(store_op_t op, uint64_t corr, int status)
{
    msg_store_reply_t *r = cv_msg_new(sizeof(*r), MSG_STORE_REPLY);
    r->hdr.dispose = reply_dispose;
    r->op = op;
    r->corr = corr;
    r->status = status;
    return r;
}

static void req_args_free(store_req_args_t *a)
{
    free(a->job);
    free(a->field);
    free(a->cursor);
    free(a->reason);
    free(a->channel);
    free(a->payload);
    free((char *)a->filter.job);
    free((char *)a->filter.trigger);
    free((char *)a->filter.cursor);
    for (size_t i = 0; i < a->njobs; i++)
        free(a->jobs[i]);
    free(a->jobs);
    run_free(a->run);
    free(a->note.instance);
    free(a->note.notifier);
    free(a->note.event);
    free(a->note.subject);
    free(a->note.last_error);
    free(a->instance.id);
    free(a->instance.hostname);
    free(a->instance.version);
    free(a->override.job);
    free(a->override.field);
    free(a->override.value);
    free(a->override.updated_by);
    free(a->audit.actor);
    free(a->audit.action);
    free(a->audit.job);
    free(a->audit.before);
    free(a->audit.after);
}

/* Whoever asked still exists (a request without a token: its requester outlives it). */
static bool requester_alive(cv_live_t *live)
{
    return live == NULL || cv_live_alive(live);
}

/* Unhandled (the store actor was destroyed first): answered -ESHUTDOWN. */
static void req_dispose(cv_msg_t *m)
{
    msg_store_req_t *q = (msg_store_req_t *)m;
    if (!q->handled && q->reply_to != NULL && requester_alive(q->live)) {
        msg_store_reply_t *r = store_reply_new(q->op, q->corr, -ESHUTDOWN);
        cv_actor_post(q->reply_to, &r->hdr);
    }
    if (q->live)
        cv_live_unref(q->live);
    if (q->cancel)
        cv_live_unref(q->cancel);
    req_args_free(&q->a);
    free(q);
}

msg_store_req_t *store_req_new(store_op_t op, cv_actor_t *reply_to, uint64_t corr, cv_live_t *live,
                               cv_live_t *cancel)
{
    msg_store_req_t *q = cv_msg_new(sizeof(*q), MSG_STORE_REQ);
    q->hdr.dispose = req_dispose;
    q->op = op;
    q->reply_to = reply_to;
    q->corr = corr;
    q->live = live ? cv_live_ref(live) : NULL;
    q->cancel = cancel ? cv_live_ref(cancel) : NULL;
    return q;
}

/* One typed request in flight: who to answer, and the reply being filled. */
typedef struct {
    store_actor_t *sa;
    cv_actor_t *reply_to;
    cv_live_t *live;
    msg_store_reply_t *r;
    int waiting; /* store callbacks still to come */
} op_t;

static void op_done(op_t *o)
{
    store_actor_t *sa = o->sa;
    msg_store_reply_t *r = o->r;
    if (o->reply_to == NULL && r->status != 0 && r->status != -ENOTSUP)
        cv_warn("store", "%s failed: %s", store_op_name(r->op), strerror(-r->status));
    if (o->reply_to != NULL && requester_alive(o->live))
        cv_actor_post(o->reply_to, &r->hdr);
    else
        r->hdr.dispose(&r->hdr);
    if (o->live)
        cv_live_unref(o->live);
    free(o);
    if (--sa->pending == 0 && sa->destroyed)
        free(sa);
}

static void op_step(op_t *o, int status)
{
    if (status != 0 && o->r->status == 0)
        o->r->status = status;
    if (--o->waiting == 0)
        op_done(o);
}

static void on_op_status(void *ud, int status)
{
    op_step(ud, status);
}

static void on_op_value(void *ud, int status, int64_t v)
{
    op_t *o = ud;
    o->r->value = v;
    op_step(o, status);
}

static void on_op_run(void *ud, int status, run_t *run, bool *taken)
{
    op_t *o = ud;
    if (status == 0 && run != NULL) {
        o->r->run = run;
        *taken = true;
    }
    op_step(o, status);
}

static void on_op_page(void *ud, int status, store_run_page_t *page)
{
    op_t *o = ud;
    if (status == 0 && page != NULL) {
        o->r->page = *page; /* taken whole: the store frees what is left, nothing */
        page->runs = NULL;
        page->count = 0;
        page->next_cursor = NULL;
    }
    /* RUNNING_AND_INSTANCES: the instances' answer decides; without the page none run */
    op_step(o, o->r->op == STORE_OP_RUNNING_AND_INSTANCES ? 0 : status);
}

static void on_op_stats(void *ud, int status, store_job_stats_t *stats, size_t count)
{
    op_t *o = ud;
    if (status == 0 && count > 0) {
        o->r->stats = cv_calloc(count, sizeof(*o->r->stats));
        for (size_t i = 0; i < count; i++) {
            o->r->stats[i] = stats[i];
            o->r->stats[i].job = cv_strdup(stats[i].job);
            stats[i].last = NULL; /* taken */
        }
        o->r->nstats = count;
    }
    op_step(o, status);
}

static void on_op_summary(void *ud, int status, const store_summary_t *s)
{
    op_t *o = ud;
    if (status == 0 && s != NULL)
        o->r->summary = *s;
    op_step(o, status);
}

static void on_op_overrides(void *ud, int status, const store_override_t *ov, size_t count)
{
    op_t *o = ud;
    if (status == 0 && count > 0) {
        o->r->overrides = cv_calloc(count, sizeof(*ov));
        for (size_t i = 0; i < count; i++)
            o->r->overrides[i] = (store_override_t){.job = dup_opt(ov[i].job),
                                                    .field = dup_opt(ov[i].field),
                                                    .value = dup_opt(ov[i].value),
                                                    .updated_at = ov[i].updated_at,
                                                    .updated_by = dup_opt(ov[i].updated_by)};
        o->r->noverrides = count;
    }
    op_step(o, status);
}

static void on_op_audit(void *ud, int status, const store_audit_page_t *p)
{
    op_t *o = ud;
    if (status == 0 && p != NULL) {
        store_audit_page_t *d = &o->r->audit;
        d->entries = cv_calloc(p->count ? p->count : 1, sizeof(*d->entries));
        for (size_t i = 0; i < p->count; i++) {
            const store_audit_t *e = &p->entries[i];
            d->entries[i] = (store_audit_t){.id = e->id,
                                            .at = e->at,
                                            .actor = dup_opt(e->actor),
                                            .action = dup_opt(e->action),
                                            .job = dup_opt(e->job),
                                            .run_id = e->run_id,
                                            .before = dup_opt(e->before),
                                            .after = dup_opt(e->after)};
        }
        d->count = p->count;
        d->next_cursor = dup_opt(p->next_cursor);
    }
    op_step(o, status);
}

static void on_op_notes(void *ud, int status, const store_note_t *n, size_t count)
{
    op_t *o = ud;
    if (status == 0 && count > 0) {
        o->r->notes = cv_calloc(count, sizeof(*n));
        for (size_t i = 0; i < count; i++) {
            store_note_t *d = &o->r->notes[i];
            *d = n[i];
            d->instance = dup_opt(n[i].instance);
            d->notifier = dup_opt(n[i].notifier);
            d->event = dup_opt(n[i].event);
            d->subject = dup_opt(n[i].subject);
            d->last_error = dup_opt(n[i].last_error);
        }
        o->r->nnotes = count;
    }
    op_step(o, status);
}

static void on_op_instances(void *ud, int status, const store_instance_t *in, size_t count)
{
    op_t *o = ud;
    if (status == 0 && count > 0) {
        o->r->instances = cv_calloc(count, sizeof(*in));
        for (size_t i = 0; i < count; i++) {
            store_instance_t *d = &o->r->instances[i];
            *d = in[i];
            d->id = dup_opt(in[i].id);
            d->hostname = dup_opt(in[i].hostname);
            d->version = dup_opt(in[i].version);
        }
        o->r->ninstances = count;
    }
    op_step(o, status);
}

static void request(store_actor_t *sa, msg_store_req_t *q)
{
    q->handled = true;
    if (!requester_alive(q->live))
        return; /* its requester is gone: nothing to do, no one to answer */
    if (q->cancel != NULL && !cv_live_alive(q->cancel)) {
        if (q->reply_to != NULL) {
            msg_store_reply_t *r = store_reply_new(q->op, q->corr, -ECANCELED);
            cv_actor_post(q->reply_to, &r->hdr);
        }
        return;
    }
    op_t *o = cv_calloc(1, sizeof(*o));
    o->sa = sa;
    o->reply_to = q->reply_to;
    o->live = q->live ? cv_live_ref(q->live) : NULL;
    o->r = store_reply_new(q->op, q->corr, 0);
    o->waiting = 1;
    sa->pending++;
    store_t *st = sa->st;
    store_req_args_t *a = &q->a;
    switch (q->op) {
    case STORE_OP_PING:
        store_ping(st, on_op_status, o);
        break;
    case STORE_OP_GET_RUN:
        store_get_run(st, a->id, on_op_run, o);
        break;
    case STORE_OP_QUERY_RUNS:
        store_query_runs(st, &a->filter, on_op_page, o);
        break;
    case STORE_OP_JOB_STATS:
        store_job_stats(st, (const char *const *)a->jobs, a->njobs, a->limit, on_op_stats, o);
        break;
    case STORE_OP_SUMMARY:
        store_summary(st, a->since, on_op_summary, o);
        break;
    case STORE_OP_OVERRIDE_LIST:
        store_override_list(st, a->job, on_op_overrides, o);
        break;
    case STORE_OP_AUDIT_LIST:
        store_audit_list(st, a->job, a->limit, a->cursor, on_op_audit, o);
        break;
    case STORE_OP_NOTE_PUT:
        store_note_put(st, &a->note, on_op_status, o);
        break;
    case STORE_OP_NOTE_LIST:
        store_note_list(st, a->limit, on_op_notes, o);
        break;
    case STORE_OP_LIST_INSTANCES:
        store_list_instances(st, on_op_instances, o);
        break;
    case STORE_OP_NOTIFY:
        if (store_is_shared(st))
            store_notify(st, a->channel, a->payload, on_op_status, o);
        else /* nobody else listens on this database */
            op_step(o, -ENOTSUP);
        break;
    case STORE_OP_HEARTBEAT:
        store_heartbeat(st, &a->instance, on_op_status, o);
        break;
    case STORE_OP_ABANDON_DEAD:
        store_abandon_dead(st, a->since, on_op_value, o);
        break;
    case STORE_OP_ABANDON_STALE:
        store_abandon_stale(st, a->instance.id, a->reason, on_op_value, o);
        break;
    case STORE_OP_RETENTION:
        store_retention(st, a->days, a->max_runs, on_op_value, o);
        break;
    case STORE_OP_INSERT_RUN:
        store_insert_run(st, a->run, on_op_value, o);
        break;
    case STORE_OP_UPDATE_RUN:
        store_update_run(st, a->run, on_op_status, o);
        break;
    case STORE_OP_OVERRIDE_SET:
        store_override_set(st, &a->override, on_op_status, o);
        break;
    case STORE_OP_OVERRIDE_DELETE:
        store_override_delete(st, a->job, a->field, on_op_status, o);
        break;
    case STORE_OP_AUDIT_APPEND:
        store_audit_append(st, &a->audit, on_op_value, o);
        break;
    case STORE_OP_RUNNING_AND_INSTANCES: {
        store_run_filter_t f = {.status_mask = 1u << RUN_RUNNING, .limit = STORE_PAGE_MAX};
        o->waiting = 2; /* one batch: the page, then the instances */
        store_query_runs(st, &f, on_op_page, o);
        store_list_instances(st, on_op_instances, o);
        break;
    }
    default:
        cv_warn("store", "unknown store request %d", (int)q->op);
        o->r->status = -EINVAL;
        o->waiting = 0;
        op_done(o);
    }
}

static void handle(cv_actor_t *self, cv_msg_t *msg)
{
    store_actor_t *sa = cv_actor_state(self);
    switch (msg->type) {
    case MSG_RUN_EVENT:
        persist(sa, (msg_run_event_t *)msg);
        break;
    case MSG_AUDIT:
        write_audit(sa, (msg_audit_t *)msg);
        break;
    case MSG_OVERRIDE:
        write_override(sa, (msg_override_t *)msg);
        break;
    case MSG_CLAIM:
        claim(sa, (msg_claim_t *)msg);
        break;
    case MSG_STORE_REQ:
        request(sa, (msg_store_req_t *)msg);
        break;
    default:
        cv_warn("store", "unexpected message type %d", msg->type);
    }
}

static void post_state(cv_actor_t *to, const store_state_t *st)
{
    msg_store_state_t *m =
        msg_store_state_new((int)st->health, st->spooled, st->spool_bytes, st->dropped);
    m->queued = st->queued;
    m->queue_refused = st->queue_refused;
    cv_actor_post(to, &m->hdr);
}

static void on_state(void *ud, const store_state_t *st)
{
    store_actor_t *sa = ud;
    for (size_t i = 0; i < sa->nstate_subs; i++)
        post_state(sa->state_subs[i], st);
}

store_actor_t *store_actor_create(cv_runtime_t *rt, store_t *st)
{
    store_actor_t *sa = cv_calloc(1, sizeof(*sa));
    sa->st = st;
    sa->actor = cv_actor_create(rt, "store", handle, sa);
    store_watch_state(st, on_state, sa); /* -ENOTSUP without a spool: always up */
    return sa;
}

void store_actor_watch_state(store_actor_t *sa, cv_actor_t *listener)
{
    if (sa->nstate_subs >= MAX_SUBSCRIBERS)
        return;
    sa->state_subs[sa->nstate_subs++] = listener;
    store_state_t st;
    store_get_state(sa->st, &st);
    post_state(listener, &st);
}

void store_actor_destroy(store_actor_t *sa)
{
    store_watch_state(sa->st, NULL, NULL);
    cv_actor_destroy(sa->actor);
    sa->destroyed = true;
    /* Writes in flight still complete (store_close runs them); the last one frees us. */
    if (sa->pending == 0)
        free(sa);
}

cv_actor_t *store_actor_actor(store_actor_t *sa)
{
    return sa->actor;
}

void store_actor_subscribe(store_actor_t *sa, cv_actor_t *listener)
{
    if (sa->nsubs < MAX_SUBSCRIBERS)
        sa->subs[sa->nsubs++] = listener;
}

size_t store_actor_pending(const store_actor_t *sa)
{
    return sa->pending;
}
