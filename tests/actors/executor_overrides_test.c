/* The executor runs the effective job (core/effjob.h): the runtime overrides it is told of
 * (MSG_OVERRIDE, as the API and the daemon send them) decide whether a cron firing runs and
 * whether a failing job is auto-disabled. Driven through its messages, a sink standing in for the
 * store actor; every test ends with a closed loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "actors/executor.h"
#include "core/cfgcheck.h"
#include "core/reaper.h"
#include "core/util.h"
#include "proto/msg.h"

#define JOBS                                                                                       \
    "jobs:\n"                                                                                      \
    "  - name: ok\n    schedule: '* * * * *'\n    command: 'true'\n"                               \
    "  - name: broken\n    schedule: manual\n    auto_disable_after: 1\n    command: 'exit 1'\n"   \
    "  - name: flaky\n    schedule: manual\n    command: 'exit 1'\n"                               \
    "    retries: {max: 1, backoff: 1s}\n"

#define MAX_SEEN 64

/* What the store actor was sent. */
typedef struct seen {
    int type;
    run_ev_kind_t kind;
    run_status_t status;
    int attempt;
    char *trigger, *what; /* run trigger; override "job field value" or audit action */
} seen_t;

typedef struct sink {
    seen_t seen[MAX_SEEN];
    int n, finished;
    bool shutdown_done;
} sink_t;

typedef struct ctx {
    uv_loop_t loop;
    cv_runtime_t *rt;
    cv_actor_t *store;
    executor_t *ex;
    cfgref_t *cfg;
    sink_t sink;
} ctx_t;

static void sink_handle(cv_actor_t *self, cv_msg_t *msg)
{
    sink_t *s = cv_actor_state(self);
    if (msg->type == MSG_SHUTDOWN_DONE) {
        s->shutdown_done = true;
        return;
    }
    assert_true(s->n < MAX_SEEN);
    seen_t *e = &s->seen[s->n++];
    e->type = msg->type;
    if (msg->type == MSG_RUN_EVENT) {
        const msg_run_event_t *r = (const msg_run_event_t *)msg;
        e->kind = r->kind;
        e->status = r->run->status;
        e->attempt = r->run->attempt;
        e->trigger = cv_strdup(r->run->trigger);
        s->finished += r->kind == RUN_EV_FINISHED;
    } else if (msg->type == MSG_OVERRIDE) {
        const msg_override_t *o = (const msg_override_t *)msg;
        e->what = cv_sprintf("%s %s %s", o->job, o->field, o->value ? o->value : "-");
    } else if (msg->type == MSG_AUDIT) {
        e->what = cv_strdup(((const msg_audit_t *)msg)->action);
    }
}

static int setup(void **state)
{
    ctx_t *c = cv_calloc(1, sizeof(*c));
    assert_int_equal(uv_loop_init(&c->loop), 0);
    assert_int_equal(reaper_start(&c->loop), 0);
    int err = 0;
    c->rt = cv_runtime_create(&c->loop, &err);
    assert_non_null(c->rt);
    c->store = cv_actor_create(c->rt, "store", sink_handle, &c->sink);
    executor_opts_t o = {.store = c->store, .instance = "test", .first_run_id = 1};
    c->ex = executor_create(c->rt, &o);
    cfg_t *cfg = NULL;
    cfg_errors_t errs = {0};
    assert_int_equal(cfg_load_string(JOBS, strlen(JOBS), "t.yaml", NULL, &cfg, &errs), 0);
    cfg_errors_free(&errs);
    c->cfg = cfgref_new(cfg);
    cv_actor_post(executor_actor(c->ex), &msg_exec_config_new(c->cfg)->hdr);
    *state = c;
    return 0;
}

/* Runs the loop until pred(c) holds (at most ~10 s). */
static void run_until(ctx_t *c, bool (*pred)(const ctx_t *c))
{
    uint64_t deadline = uv_now(&c->loop) + 10000;
    while (!pred(c)) {
        assert_true(uv_now(&c->loop) < deadline);
        uv_run(&c->loop, UV_RUN_NOWAIT);
        uv_sleep(1);
        uv_update_time(&c->loop);
    }
}

static bool shut(const ctx_t *c)
{
    return c->sink.shutdown_done;
}

static int teardown(void **state)
{
    ctx_t *c = *state;
    msg_shutdown_t *s = cv_msg_new(sizeof(*s), MSG_SHUTDOWN);
    s->reply_to = c->store;
    cv_actor_post(executor_actor(c->ex), &s->hdr);
    run_until(c, shut);
    executor_destroy(c->ex);
    cv_actor_destroy(c->store);
    cv_runtime_close(c->rt);
    reaper_stop();
    uv_run(&c->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&c->loop), 0);
    cfgref_put(c->cfg);
    for (int i = 0; i < c->sink.n; i++) {
        free(c->sink.seen[i].trigger);
        free(c->sink.seen[i].what);
    }
    free(c);
    return 0;
}

static void post_override(ctx_t *c, const char *job, const char *field, const char *value)
{
    cv_actor_post(executor_actor(c->ex), &msg_override_new(job, field, value, "api:test")->hdr);
}

static void fire(ctx_t *c, const char *job, const char *trigger)
{
    cv_actor_post(executor_actor(c->ex), &msg_fire_new(job, trigger, cv_now_ms())->hdr);
}

static bool one_finished(const ctx_t *c)
{
    return c->sink.finished >= 1;
}

static bool two_finished(const ctx_t *c)
{
    return c->sink.finished >= 2;
}

static int count_of(const ctx_t *c, int type, const char *what)
{
    int n = 0;
    for (int i = 0; i < c->sink.n; i++)
        if (c->sink.seen[i].type == type &&
            (what == NULL || strcmp(c->sink.seen[i].what, what) == 0))
            n++;
    return n;
}

static int runs_with_trigger(const ctx_t *c, const char *trigger)
{
    int n = 0;
    for (int i = 0; i < c->sink.n; i++)
        if (c->sink.seen[i].type == MSG_RUN_EVENT && c->sink.seen[i].kind == RUN_EV_FINISHED &&
            strcmp(c->sink.seen[i].trigger, trigger) == 0)
            n++;
    return n;
}

/* Run events of any kind (queued, started, finished) of runs fired with trigger: a firing the
 * executor ran tells the store before any later firing does. */
static int events_with_trigger(const ctx_t *c, const char *trigger)
{
    int n = 0;
    for (int i = 0; i < c->sink.n; i++)
        if (c->sink.seen[i].type == MSG_RUN_EVENT && strcmp(c->sink.seen[i].trigger, trigger) == 0)
            n++;
    return n;
}

static void a_cron_firing_of_a_job_disabled_by_override_is_not_run_but_a_persons_is(void **state)
{
    ctx_t *c = *state;
    post_override(c, "ok", "enabled", "false");
    fire(c, "ok", "cron");
    fire(c, "ok", "api:ops");
    run_until(c, one_finished);
    assert_int_equal(events_with_trigger(c, "cron"), 0);
    assert_int_equal(runs_with_trigger(c, "api:ops"), 1);
}

static void a_cron_firing_runs_again_once_the_override_is_removed(void **state)
{
    ctx_t *c = *state;
    post_override(c, "ok", "enabled", "false");
    post_override(c, "ok", "enabled", NULL);
    fire(c, "ok", "cron");
    run_until(c, one_finished);
    assert_int_equal(runs_with_trigger(c, "cron"), 1);
}

static void a_failing_job_is_auto_disabled_once_and_then_its_cron_firings_are_not_run(void **state)
{
    ctx_t *c = *state;
    fire(c, "broken", "api:ops");
    run_until(c, one_finished);
    assert_int_equal(count_of(c, MSG_OVERRIDE, "broken enabled false"), 1);
    assert_int_equal(count_of(c, MSG_AUDIT, "job.auto_disabled"), 1);
    fire(c, "broken", "cron");    /* the executor knows of its own auto-disable */
    fire(c, "broken", "api:ops"); /* a person may still run it: no second auto-disable */
    run_until(c, two_finished);
    assert_int_equal(events_with_trigger(c, "cron"), 0);
    assert_int_equal(count_of(c, MSG_OVERRIDE, NULL), 1);
    assert_int_equal(count_of(c, MSG_AUDIT, NULL), 1);
}

/* Runs the loop for ms milliseconds (to see that nothing more happens). */
static void run_for(ctx_t *c, uint64_t ms)
{
    uint64_t end = uv_now(&c->loop) + ms;
    while (uv_now(&c->loop) < end) {
        uv_run(&c->loop, UV_RUN_NOWAIT);
        uv_sleep(1);
        uv_update_time(&c->loop);
    }
}

/* The second finished run event, i.e. what became of the retry of the first run. */
static const seen_t *second_finished(const ctx_t *c)
{
    int n = 0;
    for (int i = 0; i < c->sink.n; i++)
        if (c->sink.seen[i].type == MSG_RUN_EVENT && c->sink.seen[i].kind == RUN_EV_FINISHED &&
            ++n == 2)
            return &c->sink.seen[i];
    return NULL;
}

static int retries_started(const ctx_t *c)
{
    int n = 0;
    for (int i = 0; i < c->sink.n; i++)
        if (c->sink.seen[i].type == MSG_RUN_EVENT && c->sink.seen[i].kind == RUN_EV_STARTED &&
            strcmp(c->sink.seen[i].trigger, "retry") == 0)
            n++;
    return n;
}

/* flaky fails; while its retry waits (1 s backoff) the job is disabled: the retry is recorded
 * SKIPPED with its reason at once and never started, even after its backoff. */
static void assert_retry_dropped(ctx_t *c)
{
    run_until(c, two_finished);
    const seen_t *e = second_finished(c);
    assert_string_equal(e->trigger, "retry");
    assert_int_equal(e->attempt, 2);
    assert_int_equal(e->status, RUN_SKIPPED);
    run_for(c, 1500); /* past the backoff: the dropped retry's timer is gone */
    assert_int_equal(retries_started(c), 0);
    assert_int_equal(c->sink.finished, 2);
}

static void a_retry_waiting_when_the_job_is_disabled_by_override_is_dropped(void **state)
{
    ctx_t *c = *state;
    fire(c, "flaky", "api:ops");
    run_until(c, one_finished);
    post_override(c, "flaky", "enabled", "false");
    assert_retry_dropped(c);
}

static void a_retry_waiting_when_a_reload_disables_the_job_is_dropped(void **state)
{
    ctx_t *c = *state;
    fire(c, "flaky", "api:ops");
    run_until(c, one_finished);
    static const char reloaded[] = "jobs:\n"
                                   "  - name: flaky\n    schedule: manual\n    enabled: false\n"
                                   "    command: 'exit 1'\n    retries: {max: 1, backoff: 1s}\n";
    cfg_t *cfg = NULL;
    cfg_errors_t errs = {0};
    assert_int_equal(cfg_load_string(reloaded, strlen(reloaded), "t.yaml", NULL, &cfg, &errs), 0);
    cfg_errors_free(&errs);
    cfgref_t *ref = cfgref_new(cfg);
    cv_actor_post(executor_actor(c->ex), &msg_exec_config_new(ref)->hdr);
    cfgref_put(ref);
    assert_retry_dropped(c);
}

/* A person's run of a job that was already disabled keeps its retries. */
static void a_persons_run_of_a_disabled_job_is_still_retried(void **state)
{
    ctx_t *c = *state;
    post_override(c, "flaky", "enabled", "false");
    fire(c, "flaky", "api:ops");
    run_until(c, two_finished);
    const seen_t *e = second_finished(c);
    assert_string_equal(e->trigger, "retry");
    assert_int_equal(e->status, RUN_FAILED);
    assert_int_equal(retries_started(c), 1);
}

static void a_job_disabled_by_override_is_not_auto_disabled_again(void **state)
{
    ctx_t *c = *state;
    post_override(c, "broken", "enabled", "false");
    fire(c, "broken", "api:ops");
    run_until(c, one_finished);
    assert_int_equal(count_of(c, MSG_OVERRIDE, NULL), 0);
    assert_int_equal(count_of(c, MSG_AUDIT, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            a_cron_firing_of_a_job_disabled_by_override_is_not_run_but_a_persons_is, setup,
            teardown),
        cmocka_unit_test_setup_teardown(a_cron_firing_runs_again_once_the_override_is_removed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_failing_job_is_auto_disabled_once_and_then_its_cron_firings_are_not_run, setup,
            teardown),
        cmocka_unit_test_setup_teardown(a_job_disabled_by_override_is_not_auto_disabled_again,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_retry_waiting_when_the_job_is_disabled_by_override_is_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(a_retry_waiting_when_a_reload_disables_the_job_is_dropped,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_persons_run_of_a_disabled_job_is_still_retried, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
