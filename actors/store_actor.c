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
        msg_run_event_t *e = msg_run_event_new(w->kind, w->run);
        cv_actor_post(sa->subs[i], &e->hdr);
    }
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

/* A claim in flight: who to answer. */
typedef struct {
    store_actor_t *sa;
    cv_actor_t *reply_to;
    uint64_t corr;
} claim_t;

static void on_claimed(void *ud, int status, int64_t id)
{
    claim_t *c = ud;
    store_actor_t *sa = c->sa;
    if (status == 0)
        cv_debug("store", "run %lld QUEUED recorded", (long long)id);
    else if (status == -EAGAIN)
        cv_debug("store", "a run could not be claimed: the database is unreachable");
    else if (status != -EEXIST)
        cv_error("store", "a run could not be claimed: %s", strerror(-status));
    if (!sa->destroyed) {
        msg_claim_reply_t *r = msg_claim_reply_new(c->corr, status, id);
        cv_actor_post(c->reply_to, &r->hdr);
    }
    free(c);
    if (--sa->pending == 0 && sa->destroyed)
        free(sa);
}

static void claim(store_actor_t *sa, const msg_claim_t *m)
{
    claim_t *c = cv_malloc(sizeof(*c));
    c->sa = sa;
    c->reply_to = m->reply_to;
    c->corr = m->corr;
    sa->pending++;
    store_claim_run(sa->st, m->run, on_claimed, c);
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
