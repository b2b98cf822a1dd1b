/* The executor actor through its messages, on a real runtime and loop with real child processes:
 * two probe actors stand in for the store (every run event) and the hub (the live ones), and the
 * test itself receives the fire replies and MSG_SHUTDOWN_DONE. Nothing sleeps: each step runs the
 * loop until the message it expects has arrived, with a deadline. Long-running children are
 * `exec sleep 1000`, which the test cancels, times out or shuts down. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "actors/executor.h"
#include "actors/store_actor.h"
#include "core/cfgcheck.h"
#include "core/reaper.h"
#include "proto/msg.h"

#define MAX_EV      64
#define DEADLINE_MS 10000

typedef struct {
    run_ev_kind_t kind;
    bool insert;
    int64_t id, retry_of;
    run_status_t status;
    int attempt, exit_code, signal;
    char job[32], trigger[32], error[160];
} ev_t;

typedef struct {
    uint64_t corr;
    fire_outcome_t outcome;
    int64_t run_id;
    run_status_t status;
    char reason[160];
} reply_t;

typedef struct {
    uv_loop_t loop;
    uv_timer_t deadline;
    bool expired;
    cv_runtime_t *rt;
    cv_actor_t *store, *hub, *me, *sched;
    executor_t *ex;
    ev_t ev[MAX_EV]; /* what the store received, in order */
    size_t nev;
    ev_t hub_ev[MAX_EV]; /* what the hub received */
    size_t nhub;
    reply_t rep[MAX_EV];
    size_t nrep;
    int ready;             /* output lines "ready" seen by the hub */
    char override[96];     /* the last MSG_OVERRIDE to the store: "job field=value" */
    char audit[96];        /* the last MSG_AUDIT to the store: "action job run" */
    char hub_override[96]; /* the same, as the hub (an observer) got them */
    char hub_audit[96];
    char disabled[32]; /* the job the scheduler was told to disable */
    int shutdown_done;
    uint64_t shutdown_done_at; /* loop time */
    /* shared store stand-in (setup_shared): the runs it holds, in id order (ids from 100), and
     * how it answers a claim */
    bool shared;
    run_t *held[MAX_EV];
    size_t nheld;
    int claim_status;
    int nqueries, ninserts, nclaims;
} fx_t;

static void copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

static void record(ev_t *e, const msg_run_event_t *m)
{
    const run_t *r = m->run;
    e->kind = m->kind;
    e->insert = m->insert;
    e->id = r->id;
    e->retry_of = r->retry_of;
    e->status = r->status;
    e->attempt = r->attempt;
    e->exit_code = r->exit_code;
    e->signal = r->signal;
    copy_str(e->job, sizeof(e->job), r->job);
    copy_str(e->trigger, sizeof(e->trigger), r->trigger);
    copy_str(e->error, sizeof(e->error), r->error);
}

/* Overrides and audits, as text, into o and a. */
static void record_other(cv_msg_t *msg, char *o, char *a, size_t size)
{
    if (msg->type == MSG_OVERRIDE) {
        msg_override_t *m = (msg_override_t *)msg;
        snprintf(o, size, "%s %s=%s", m->job, m->field, m->value ? m->value : "(null)");
    } else if (msg->type == MSG_AUDIT) {
        msg_audit_t *m = (msg_audit_t *)msg;
        snprintf(a, size, "%s %s %lld", m->action, m->job, (long long)m->run_id);
    }
}

/* The shared store stand-in: answers the runs queries (job, trigger, status mask, limit; newest
 * first), inserts and claims, and applies the run events to what it holds. */
static void fake_query(fx_t *f, const msg_store_req_t *q)
{
    const store_run_filter_t *flt = &q->a.filter;
    msg_store_reply_t *r = store_reply_new(q->op, q->corr, 0);
    r->page.runs = cv_calloc(MAX_EV, sizeof(run_t *));
    for (size_t i = f->nheld; i-- > 0 && (int)r->page.count < flt->limit;) {
        const run_t *h = f->held[i];
        if (strcmp(h->job, flt->job) == 0 && strcmp(h->trigger, flt->trigger) == 0 &&
            (flt->status_mask == 0 || (flt->status_mask & (1u << h->status))))
            r->page.runs[r->page.count++] = run_dup(h);
    }
    f->nqueries++;
    cv_actor_post(q->reply_to, &r->hdr);
}

static int64_t fake_hold(fx_t *f, const run_t *run)
{
    assert_true(f->nheld < MAX_EV);
    run_t *h = run_dup(run);
    h->id = 100 + (int64_t)f->nheld;
    f->held[f->nheld++] = h;
    return h->id;
}

static bool fake_store(fx_t *f, cv_msg_t *msg)
{
    if (msg->type == MSG_STORE_REQ) {
        msg_store_req_t *q = (msg_store_req_t *)msg;
        if (q->op == STORE_OP_QUERY_RUNS) {
            fake_query(f, q);
        } else {
            assert_int_equal(q->op, STORE_OP_INSERT_RUN);
            msg_store_reply_t *r = store_reply_new(q->op, q->corr, 0);
            r->value = fake_hold(f, q->a.run);
            f->ninserts++;
            cv_actor_post(q->reply_to, &r->hdr);
        }
        return true;
    }
    if (msg->type == MSG_CLAIM) {
        msg_claim_t *c = (msg_claim_t *)msg;
        int64_t id = f->claim_status == 0 ? fake_hold(f, c->run) : 0;
        f->nclaims++;
        cv_actor_post(c->reply_to, &msg_claim_reply_new(c->corr, f->claim_status, id)->hdr);
        return true;
    }
    if (msg->type == MSG_RUN_EVENT) {
        const run_t *run = ((msg_run_event_t *)msg)->run;
        for (size_t i = 0; i < f->nheld; i++)
            if (f->held[i]->id == run->id) {
                run_free(f->held[i]);
                f->held[i] = run_dup(run);
                return false;
            }
        fake_hold(f, run);
    }
    return false;
}

static void store_handle(cv_actor_t *self, cv_msg_t *msg)
{
    fx_t *f = cv_actor_state(self);
    if (f->shared && fake_store(f, msg))
        return;
    record_other(msg, f->override, f->audit, sizeof(f->override));
    if (msg->type != MSG_RUN_EVENT)
        return;
    assert_true(f->nev < MAX_EV);
    record(&f->ev[f->nev++], (msg_run_event_t *)msg);
}

static void hub_handle(cv_actor_t *self, cv_msg_t *msg)
{
    fx_t *f = cv_actor_state(self);
    if (msg->type == MSG_RUN_OUTPUT) {
        msg_run_output_t *o = (msg_run_output_t *)msg;
        for (size_t i = 0; i < o->n; i++)
            f->ready += strcmp(msg_run_output_text(o, i), "ready") == 0;
        return;
    }
    record_other(msg, f->hub_override, f->hub_audit, sizeof(f->hub_override));
    if (msg->type != MSG_RUN_EVENT)
        return;
    assert_true(f->nhub < MAX_EV);
    record(&f->hub_ev[f->nhub++], (msg_run_event_t *)msg);
}

static void me_handle(cv_actor_t *self, cv_msg_t *msg)
{
    fx_t *f = cv_actor_state(self);
    if (msg->type == MSG_SHUTDOWN_DONE) {
        f->shutdown_done++;
        f->shutdown_done_at = uv_now(&f->loop);
        return;
    }
    assert_int_equal(msg->type, MSG_FIRE_REPLY);
    msg_fire_reply_t *r = (msg_fire_reply_t *)msg;
    assert_true(f->nrep < MAX_EV);
    reply_t *x = &f->rep[f->nrep++];
    x->corr = r->corr;
    x->outcome = r->outcome;
    x->run_id = r->run_id;
    x->status = r->status;
    copy_str(x->reason, sizeof(x->reason), r->reason);
}

static void sched_handle(cv_actor_t *self, cv_msg_t *msg)
{
    fx_t *f = cv_actor_state(self);
    assert_int_equal(msg->type, MSG_JOB_ENABLE);
    msg_job_enable_t *e = (msg_job_enable_t *)msg;
    assert_false(e->enabled);
    snprintf(f->disabled, sizeof(f->disabled), "%s", e->job);
}

static void on_deadline(uv_timer_t *t)
{
    ((fx_t *)t->data)->expired = true;
}

/* Runs the loop until cond(f, arg) holds; fails the test after DEADLINE_MS. */
static void run_until(fx_t *f, bool (*cond)(fx_t *, const void *), const void *arg,
                      const char *what)
{
    f->expired = false;
    uv_timer_start(&f->deadline, on_deadline, DEADLINE_MS, 0);
    while (!cond(f, arg) && !f->expired)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_timer_stop(&f->deadline);
    if (!cond(f, arg))
        fail_msg("timed out waiting for %s", what);
}

/* Runs the loop for ms milliseconds (to see that something does NOT happen). */
static void run_for(fx_t *f, uint64_t ms)
{
    f->expired = false;
    uv_timer_start(&f->deadline, on_deadline, ms, 0);
    while (!f->expired)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static bool n_events(fx_t *f, const void *n)
{
    return f->nev >= *(const size_t *)n;
}

static bool n_replies(fx_t *f, const void *n)
{
    return f->nrep >= *(const size_t *)n;
}

static bool is_ready(fx_t *f, const void *unused)
{
    (void)unused;
    return f->ready > 0;
}

static bool audited(fx_t *f, const void *unused)
{
    (void)unused;
    return f->audit[0] != '\0';
}

static bool shut_down(fx_t *f, const void *unused)
{
    (void)unused;
    return f->shutdown_done > 0;
}

static void wait_events(fx_t *f, size_t n)
{
    run_until(f, n_events, &n, "run events");
}

static void wait_replies(fx_t *f, size_t n)
{
    run_until(f, n_replies, &n, "fire replies");
}

/* The first store event of a run of `kind`, or fails. */
static const ev_t *find(const fx_t *f, int64_t id, run_ev_kind_t kind)
{
    for (size_t i = 0; i < f->nev; i++)
        if (f->ev[i].id == id && f->ev[i].kind == kind)
            return &f->ev[i];
    fail_msg("no %s event of run %lld", run_ev_kind_name(kind), (long long)id);
    return NULL;
}

static cfgref_t *load(const char *yaml)
{
    cfg_t *cfg = NULL;
    cfg_errors_t errs = {0};
    int rc = cfgcheck_load_string(yaml, strlen(yaml), "t.yaml", &cfg, &errs);
    if (rc != 0)
        fail_msg("config refused (%d)", rc);
    return cfgref_new(cfg);
}

static void configure(fx_t *f, const char *yaml)
{
    cfgref_t *ref = load(yaml);
    cv_actor_post(executor_actor(f->ex), &msg_exec_config_new(ref)->hdr);
    cfgref_put(ref); /* the message holds its own reference */
}

static void setup_with(fx_t *f, const char *yaml, bool shared)
{
    memset(f, 0, sizeof(*f));
    f->shared = shared;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->deadline);
    f->deadline.data = f;
    int err = 0;
    f->rt = cv_runtime_create(&f->loop, &err);
    assert_non_null(f->rt);
    f->store = cv_actor_create(f->rt, "store", store_handle, f);
    f->hub = cv_actor_create(f->rt, "hub", hub_handle, f);
    f->me = cv_actor_create(f->rt, "test", me_handle, f);
    f->sched = cv_actor_create(f->rt, "scheduler", sched_handle, f);
    executor_opts_t o = {.store = f->store,
                         .hub = f->hub,
                         .scheduler = f->sched,
                         .instance = "t",
                         .first_run_id = 10,
                         .shared_store = shared};
    f->ex = executor_create(f->rt, &o);
    configure(f, yaml);
}

static void setup(fx_t *f, const char *yaml)
{
    setup_with(f, yaml, false);
}

static void fire(fx_t *f, const char *job, uint64_t corr)
{
    msg_fire_t *m = msg_fire_new(job, "api:test", cv_now_ms());
    if (corr) {
        m->reply_to = f->me;
        m->corr = corr;
    }
    cv_actor_post(executor_actor(f->ex), &m->hdr);
}

static void cancel(fx_t *f, int64_t id)
{
    msg_cancel_t *c = msg_cancel_new(id, "test");
    cv_actor_post(executor_actor(f->ex), &c->hdr);
}

static void shutdown_ex(fx_t *f, int64_t grace_ms)
{
    msg_shutdown_t *s = cv_msg_new(sizeof(*s), MSG_SHUTDOWN);
    s->reply_to = f->me;
    s->grace_ms = grace_ms;
    cv_actor_post(executor_actor(f->ex), &s->hdr);
}

/* Shuts the executor down (if the test has not) and closes everything; the loop must close. */
static void teardown(fx_t *f)
{
    if (f->shutdown_done == 0) {
        shutdown_ex(f, 0);
        run_until(f, shut_down, NULL, "MSG_SHUTDOWN_DONE");
    }
    assert_int_equal(executor_active(f->ex), 0);
    assert_int_equal(executor_queued(f->ex), 0);
    executor_destroy(f->ex);
    cv_actor_destroy(f->store);
    cv_actor_destroy(f->hub);
    cv_actor_destroy(f->me);
    cv_actor_destroy(f->sched);
    cv_runtime_close(f->rt);
    for (size_t i = 0; i < f->nheld; i++)
        run_free(f->held[i]);
    reaper_stop();
    uv_close((uv_handle_t *)&f->deadline, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

#define HEADER "defaults:\n  kill_grace: 100ms\n"

static void unknown_jobs_are_answered_and_runs_report_started_then_finished(void **state)
{
    (void)state;
    fx_t f;
    setup(&f, HEADER "jobs:\n"
                     "  - {name: ok, schedule: manual, command: 'true'}\n"
                     "  - {name: bad, schedule: manual, command: 'echo nope >&2; exit 3'}\n");
    fire(&f, "nope", 1);
    wait_replies(&f, 1);
    assert_int_equal(f.rep[0].corr, 1);
    assert_int_equal(f.rep[0].outcome, FIRE_UNKNOWN);
    assert_string_equal(f.rep[0].reason, "no such job");
    assert_int_equal(f.nev, 0); /* not a run */

    fire(&f, "ok", 2);
    wait_events(&f, 2);
    assert_int_equal(f.rep[1].corr, 2);
    assert_int_equal(f.rep[1].outcome, FIRE_ACCEPTED);
    assert_int_equal(f.rep[1].run_id, 10); /* first_run_id */
    assert_int_equal(f.rep[1].status, RUN_RUNNING);
    assert_int_equal(f.ev[0].kind, RUN_EV_STARTED);
    assert_true(f.ev[0].insert); /* the store has not seen it yet */
    assert_int_equal(f.ev[0].id, 10);
    assert_int_equal(f.ev[0].status, RUN_RUNNING);
    assert_string_equal(f.ev[0].trigger, "api:test");
    assert_int_equal(f.ev[1].kind, RUN_EV_FINISHED);
    assert_false(f.ev[1].insert);
    assert_int_equal(f.ev[1].status, RUN_SUCCESS);
    assert_int_equal(f.ev[1].exit_code, 0);
    /* the hub sees the live events, not the end (it learns that from the store) */
    assert_int_equal(f.nhub, 1);
    assert_int_equal(f.hub_ev[0].kind, RUN_EV_STARTED);

    fire(&f, "bad", 0); /* no reply asked */
    wait_events(&f, 4);
    assert_int_equal(f.ev[2].kind, RUN_EV_STARTED);
    assert_int_equal(f.ev[3].id, 11);
    assert_int_equal(f.ev[3].status, RUN_FAILED);
    assert_int_equal(f.ev[3].exit_code, 3);
    assert_int_equal(f.nrep, 2);
    assert_int_equal(executor_started(f.ex), 2);
    teardown(&f);
}

static void
forbid_refuses_a_request_and_records_a_skipped_firing_then_cancel_ends_the_run(void **state)
{
    (void)state;
    fx_t f;
    setup(&f, HEADER "jobs:\n"
                     "  - {name: hang, schedule: manual, concurrency: forbid,"
                     " command: 'exec sleep 1000'}\n");
    fire(&f, "hang", 1);
    wait_events(&f, 1); /* STARTED */
    assert_int_equal(f.rep[0].outcome, FIRE_ACCEPTED);
    int64_t id = f.rep[0].run_id;

    fire(&f, "hang", 2); /* a person's "Run now": answered and forgotten */
    wait_replies(&f, 2);
    assert_int_equal(f.rep[1].outcome, FIRE_SKIPPED);
    assert_int_equal(f.rep[1].run_id, 0);
    assert_string_equal(f.rep[1].reason,
                        "skipped: a run of 'hang' is still active (concurrency: forbid)");

    fire(&f, "hang", 0); /* a firing: recorded SKIPPED */
    wait_events(&f, 2);
    assert_int_equal(f.ev[1].kind, RUN_EV_FINISHED);
    assert_true(f.ev[1].insert);
    assert_int_equal(f.ev[1].status, RUN_SKIPPED);
    assert_true(f.ev[1].id != id);
    assert_string_equal(f.ev[1].error,
                        "skipped: a run of 'hang' is still active (concurrency: forbid)");
    assert_int_equal(executor_active(f.ex), 1);

    cancel(&f, id);
    wait_events(&f, 3);
    assert_int_equal(f.ev[2].id, id);
    assert_int_equal(f.ev[2].kind, RUN_EV_FINISHED);
    assert_int_equal(f.ev[2].status, RUN_CANCELLED);
    assert_string_equal(f.ev[2].error, "cancelled by test");
    assert_int_equal(f.ev[2].signal, 15); /* SIGTERM was enough */
    assert_int_equal(executor_active(f.ex), 0);

    /* the job may run again */
    fire(&f, "hang", 3);
    wait_replies(&f, 3);
    assert_int_equal(f.rep[2].outcome, FIRE_ACCEPTED);
    teardown(&f);
}

static void max_concurrent_queues_in_order_and_a_larger_limit_starts_the_queue(void **state)
{
    (void)state;
    fx_t f;
    setup(&f, HEADER "limits: {max_concurrent: 1}\n"
                     "jobs:\n"
                     "  - {name: a, schedule: manual, command: 'exec sleep 1000'}\n"
                     "  - {name: b, schedule: manual, command: 'exec sleep 1000'}\n"
                     "  - {name: c, schedule: manual, command: 'exec sleep 1000'}\n"
                     "  - {name: d, schedule: manual, command: 'exec sleep 1000'}\n");
    fire(&f, "a", 1);
    fire(&f, "b", 2);
    fire(&f, "c", 3);
    fire(&f, "d", 4);
    wait_replies(&f, 4);
    assert_int_equal(f.rep[0].status, RUN_RUNNING);
    for (int i = 1; i < 4; i++) {
        assert_int_equal(f.rep[i].outcome, FIRE_ACCEPTED);
        assert_int_equal(f.rep[i].status, RUN_QUEUED);
    }
    assert_int_equal(executor_active(f.ex), 1);
    assert_int_equal(executor_queued(f.ex), 3);
    int64_t a = f.rep[0].run_id, b = f.rep[1].run_id, c = f.rep[2].run_id, d = f.rep[3].run_id;
    wait_events(&f, 4);
    assert_int_equal(f.ev[0].kind, RUN_EV_STARTED);
    assert_int_equal(f.ev[0].id, a);
    for (int i = 1; i < 4; i++) {
        assert_int_equal(f.ev[i].kind, RUN_EV_QUEUED);
        assert_true(f.ev[i].insert);
        assert_int_equal(f.ev[i].status, RUN_QUEUED);
    }
    assert_int_equal(f.hub_ev[1].kind, RUN_EV_QUEUED); /* the hub sees the queue too */

    /* cancelling a queued run ends it without ever starting it */
    cancel(&f, c);
    wait_events(&f, 5);
    assert_int_equal(f.ev[4].id, c);
    assert_int_equal(f.ev[4].kind, RUN_EV_FINISHED);
    assert_false(f.ev[4].insert); /* the store has it from QUEUED */
    assert_int_equal(f.ev[4].status, RUN_CANCELLED);
    assert_int_equal(executor_queued(f.ex), 2);

    /* the end of a frees the slot for b, the first in the queue (not d) */
    cancel(&f, a);
    wait_events(&f, 7);
    assert_int_equal(f.ev[5].id, a);
    assert_int_equal(f.ev[5].status, RUN_CANCELLED);
    assert_int_equal(f.ev[6].id, b);
    assert_int_equal(f.ev[6].kind, RUN_EV_STARTED);
    assert_false(f.ev[6].insert);
    assert_int_equal(executor_queued(f.ex), 1);

    /* a new configuration with room for two starts d at once */
    configure(&f, HEADER "limits: {max_concurrent: 2}\n"
                         "jobs:\n"
                         "  - {name: b, schedule: manual, command: 'exec sleep 1000'}\n"
                         "  - {name: d, schedule: manual, command: 'exec sleep 1000'}\n");
    wait_events(&f, 8);
    assert_int_equal(f.ev[7].id, d);
    assert_int_equal(f.ev[7].kind, RUN_EV_STARTED);
    assert_int_equal(executor_active(f.ex), 2);
    assert_int_equal(executor_queued(f.ex), 0);
    /* and a job it no longer has is unknown */
    fire(&f, "a", 5);
    wait_replies(&f, 5);
    assert_int_equal(f.rep[4].outcome, FIRE_UNKNOWN);
    teardown(&f);
}

static void a_run_past_its_timeout_is_killed_and_timed_out(void **state)
{
    (void)state;
    fx_t f;
    setup(&f, HEADER "jobs:\n"
                     "  - {name: slow, schedule: manual, timeout: 150ms,"
                     " command: 'exec sleep 1000'}\n");
    uint64_t t0 = uv_now(&f.loop);
    fire(&f, "slow", 0);
    wait_events(&f, 2);
    assert_int_equal(f.ev[0].kind, RUN_EV_STARTED);
    assert_int_equal(f.ev[1].kind, RUN_EV_FINISHED);
    assert_int_equal(f.ev[1].status, RUN_TIMED_OUT);
    uv_update_time(&f.loop);
    assert_true(uv_now(&f.loop) - t0 >= 150);
    teardown(&f);
}

static void a_failing_run_is_retried_with_its_attempt_numbers_and_no_more(void **state)
{
    (void)state;
    fx_t f;
    setup(&f, HEADER "jobs:\n"
                     "  - {name: flaky, schedule: manual, command: 'exit 1',"
                     " retries: {max: 2, backoff: 10ms, backoff_max: 20ms}}\n");
    fire(&f, "flaky", 0);
    wait_events(&f, 6); /* three attempts, STARTED and FINISHED each */
    int64_t first = f.ev[0].id;
    for (int i = 0; i < 3; i++) {
        const ev_t *s = &f.ev[2 * i], *e = &f.ev[2 * i + 1];
        assert_int_equal(s->kind, RUN_EV_STARTED);
        assert_int_equal(e->kind, RUN_EV_FINISHED);
        assert_int_equal(s->id, e->id);
        assert_int_equal(e->attempt, i + 1);
        assert_int_equal(e->status, RUN_FAILED);
        assert_string_equal(e->trigger, i == 0 ? "api:test" : "retry");
        assert_int_equal(e->retry_of, i == 0 ? 0 : first);
    }
    run_for(&f, 150); /* several times the longest backoff: no fourth attempt */
    assert_int_equal(f.nev, 6);
    teardown(&f);
}

static void shutdown_cancels_the_queue_kills_after_the_grace_and_refuses_new_fires(void **state)
{
    (void)state;
    fx_t f;
    /* the child ignores SIGTERM (ignored dispositions survive exec): only the SIGKILL after the
     * grace ends it */
    setup(&f, HEADER "limits: {max_concurrent: 1}\n"
                     "jobs:\n"
                     "  - {name: stubborn, schedule: manual, concurrency: allow,"
                     " command: 'trap \"\" TERM; echo ready; exec sleep 1000'}\n");
    fire(&f, "stubborn", 1);
    fire(&f, "stubborn", 2);
    wait_events(&f, 2); /* STARTED, QUEUED */
    int64_t running = f.rep[0].run_id, queued = f.rep[1].run_id;
    assert_int_equal(f.ev[1].kind, RUN_EV_QUEUED);
    run_until(&f, is_ready, NULL, "the child's trap"); /* SIGTERM before it would kill it */

    uint64_t t0 = uv_now(&f.loop);
    shutdown_ex(&f, 200);
    wait_events(&f, 3);
    assert_int_equal(f.ev[2].id, queued);
    assert_int_equal(f.ev[2].status, RUN_CANCELLED);
    assert_string_equal(f.ev[2].error, "cancelled: the daemon is shutting down");
    assert_int_equal(f.shutdown_done, 0); /* one run is still running */

    fire(&f, "stubborn", 3);
    wait_replies(&f, 3);
    assert_int_equal(f.rep[2].outcome, FIRE_SHUTTING);

    run_until(&f, shut_down, NULL, "MSG_SHUTDOWN_DONE");
    assert_true(f.shutdown_done_at - t0 >= 200); /* not before the grace */
    const ev_t *e = find(&f, running, RUN_EV_FINISHED);
    assert_int_equal(e->status, RUN_CANCELLED);
    assert_int_equal(e->signal, 9);
    assert_int_equal(f.shutdown_done, 1);
    teardown(&f);
}

static void health(fx_t *f, const char *probe, health_status_t st, const char *message)
{
    health_result_t h = {
        .probe = (char *)probe, .type = "tcp", .status = st, .message = (char *)message};
    cv_actor_post(executor_actor(f->ex), &msg_health_new(&h, HEALTH_UNKNOWN)->hdr);
}

static void an_unhealthy_requirement_skips_and_repeated_failures_disable_the_job(void **state)
{
    (void)state;
    fx_t f;
    setup(&f, HEADER "probes:\n"
                     "  - {name: db, type: tcp, address: '127.0.0.1:1', interval: 1h}\n"
                     "jobs:\n"
                     "  - {name: needy, schedule: manual, command: 'true', requires: [db]}\n"
                     "  - {name: doomed, schedule: manual, command: 'exit 1',"
                     " auto_disable_after: 2}\n");
    health(&f, "db", HEALTH_UNHEALTHY, "connection refused");
    fire(&f, "needy", 0);
    wait_events(&f, 1);
    assert_int_equal(f.ev[0].kind, RUN_EV_FINISHED);
    assert_int_equal(f.ev[0].status, RUN_SKIPPED);
    assert_string_equal(f.ev[0].error, "required probe 'db' is unhealthy: connection refused");
    health(&f, "db", HEALTH_HEALTHY, "ok"); /* the probe recovered: the job runs */
    fire(&f, "needy", 0);
    wait_events(&f, 3);
    assert_int_equal(f.ev[1].kind, RUN_EV_STARTED);
    assert_int_equal(f.ev[2].status, RUN_SUCCESS);

    fire(&f, "doomed", 0);
    wait_events(&f, 5);
    assert_int_equal(f.ev[4].status, RUN_FAILED);
    assert_string_equal(f.disabled, ""); /* one failure of two */
    assert_string_equal(f.override, "");
    fire(&f, "doomed", 0);
    wait_events(&f, 7);
    int64_t last = f.ev[6].id;
    assert_int_equal(f.ev[6].status, RUN_FAILED);
    run_until(&f, audited, NULL, "the auto-disable audit"); /* the last message it posts */
    assert_string_equal(f.disabled, "doomed");
    assert_string_equal(f.override, "doomed enabled=false");
    assert_string_equal(f.hub_override, "doomed enabled=false");
    char want[96];
    snprintf(want, sizeof(want), "job.auto_disabled doomed %lld", (long long)last);
    assert_string_equal(f.audit, want);
    assert_string_equal(f.hub_audit, want);
    teardown(&f);
}

/* ---- monitored jobs on a shared store (exec_ping.c) ---- */

#define PING_JOBS                                                                                  \
    HEADER "jobs:\n"                                                                               \
           "  - {name: pj, schedule: '0 0 1 1 *', ping: {key: k}}\n"                               \
           "  - {name: mj, schedule: '0 0 1 1 *', ping: {key: k, grace: 1s}}\n"

static void ping(fx_t *f, const char *job, ping_kind_t kind, int64_t at, const char *body)
{
    msg_ping_t *p = msg_ping_new(job, kind, at, body, body ? strlen(body) : 0);
    cv_actor_post(executor_actor(f->ex), &p->hdr);
}

static bool n_inserts_3(fx_t *f, const void *unused)
{
    (void)unused;
    return f->ninserts >= 3;
}

static void a_start_and_its_end_back_to_back_make_one_run_found_in_the_store(void **state)
{
    (void)state;
    fx_t f;
    setup_with(&f, PING_JOBS, true);
    int64_t now = cv_now_ms();
    /* the end comes before the store answered for the start: it waits, then finds the run */
    ping(&f, "pj", PING_START, now - 100, NULL);
    ping(&f, "pj", PING_SUCCESS, now, "ok");
    wait_events(&f, 1);
    assert_int_equal(f.ninserts, 1);
    assert_int_equal(f.nheld, 1);
    assert_int_equal(f.ev[0].kind, RUN_EV_FINISHED);
    assert_false(f.ev[0].insert); /* the RUNNING row, updated */
    assert_int_equal(f.ev[0].id, 100);
    const run_t *r = f.held[0];
    assert_int_equal(r->status, RUN_SUCCESS);
    assert_int_equal(r->started_at, now - 100);
    assert_int_equal(r->duration_ms, 100);
    assert_string_equal(r->output_tail, "ok");
    assert_string_equal(r->instance, "t");
    /* the hub was shown it running, under the store's id */
    assert_int_equal(f.nhub, 1);
    assert_int_equal(f.hub_ev[0].kind, RUN_EV_STARTED);
    assert_int_equal(f.hub_ev[0].id, 100);

    /* a run started elsewhere (another instance's row) is ended here, and a second /start ends
     * the open one as FAILED */
    run_t *other = run_new("pj", "ping");
    other->status = RUN_RUNNING;
    other->started_at = now - 50;
    other->instance = cv_strdup("elsewhere");
    fake_hold(&f, other);
    run_free(other);
    ping(&f, "pj", PING_FAIL, now, "disk full");
    wait_events(&f, 2);
    assert_int_equal(f.ev[1].id, 101);
    assert_int_equal(f.held[1]->status, RUN_FAILED);
    assert_int_equal(f.held[1]->duration_ms, 50);
    assert_string_equal(f.held[1]->instance, "t"); /* its end is this instance's change */
    ping(&f, "pj", PING_START, now, NULL);
    ping(&f, "pj", PING_START, now + 10, NULL);
    wait_events(&f, 3);
    run_until(&f, n_inserts_3, NULL, "the second start's insert");
    assert_int_equal(f.ev[2].id, 102);
    assert_int_equal(f.ev[2].status, RUN_FAILED);
    assert_string_equal(f.ev[2].error, "started again before it reported its end");
    assert_int_equal(f.held[3]->status, RUN_RUNNING);
    teardown(&f);
}

static bool n_claims(fx_t *f, const void *n)
{
    return f->nclaims >= *(const int *)n;
}

static void fire_instant(fx_t *f, const char *job, int64_t at)
{
    cv_actor_post(executor_actor(f->ex), &msg_fire_new(job, "cron", at)->hdr);
}

static void a_missed_instant_is_asked_of_the_store_and_claimed(void **state)
{
    (void)state;
    fx_t f;
    setup_with(&f, PING_JOBS, true);
    int64_t now = cv_now_ms();
    /* pinged on another instance after the instant: no claim */
    run_t *seen = run_new("mj", "ping");
    seen->status = RUN_SUCCESS;
    seen->started_at = seen->finished_at = now - 500;
    seen->instance = cv_strdup("elsewhere");
    fake_hold(&f, seen);
    run_free(seen);
    fire_instant(&f, "mj", now - 1000); /* its grace (1 s) is over: checked at once */
    int one = 1;
    /* not pinged: claimed, and recorded by this instance as it won */
    fire_instant(&f, "mj", now + 1000);
    run_until(&f, n_claims, &one, "the claim of the missed instant");
    wait_events(&f, 1);
    assert_int_equal(f.nqueries, 2);
    assert_int_equal(f.nclaims, 1);
    assert_int_equal(f.ev[0].kind, RUN_EV_FINISHED);
    assert_false(f.ev[0].insert); /* the claim inserted it */
    assert_int_equal(f.ev[0].id, 101);
    assert_int_equal(f.ev[0].status, RUN_FAILED);
    assert_string_equal(f.ev[0].trigger, "ping:missed");
    assert_non_null(strstr(f.ev[0].error, "no ping received"));
    assert_int_equal(f.held[1]->scheduled_for, now + 1000);

    /* another instance won the claim: nothing recorded here */
    f.claim_status = -EEXIST;
    fire_instant(&f, "mj", now + 1500);
    int two = 2;
    run_until(&f, n_claims, &two, "the second claim");
    shutdown_ex(&f, 0);
    run_until(&f, shut_down, NULL, "MSG_SHUTDOWN_DONE");
    assert_int_equal(f.nev, 1);
    teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unknown_jobs_are_answered_and_runs_report_started_then_finished),
        cmocka_unit_test(
            forbid_refuses_a_request_and_records_a_skipped_firing_then_cancel_ends_the_run),
        cmocka_unit_test(max_concurrent_queues_in_order_and_a_larger_limit_starts_the_queue),
        cmocka_unit_test(a_run_past_its_timeout_is_killed_and_timed_out),
        cmocka_unit_test(a_failing_run_is_retried_with_its_attempt_numbers_and_no_more),
        cmocka_unit_test(shutdown_cancels_the_queue_kills_after_the_grace_and_refuses_new_fires),
        cmocka_unit_test(an_unhealthy_requirement_skips_and_repeated_failures_disable_the_job),
        cmocka_unit_test(a_start_and_its_end_back_to_back_make_one_run_found_in_the_store),
        cmocka_unit_test(a_missed_instant_is_asked_of_the_store_and_claimed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
