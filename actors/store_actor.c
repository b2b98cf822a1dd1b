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
    case MSG_STORE_CALL: {
        msg_store_call_t *c = (msg_store_call_t *)msg;
        c->fn(sa->st, c->ud);
        break;
    }
    default:
        cv_warn("store", "unexpected message type %d", msg->type);
    }
}

static void post_state(cv_actor_t *to, const store_state_t *st)
{
    msg_store_state_t *m =
        msg_store_state_new((int)st->health, st->spooled, st->spool_bytes, st->dropped);
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
