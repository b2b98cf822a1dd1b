/* The scheduler actor through its messages (MSG_SCHED_JOBS, MSG_JOB_ENABLE, MSG_JOB_SCHEDULE,
 * MSG_SHUTDOWN) on a real runtime and loop, with a fake clock (scheduler_set_clock): the test
 * moves "now" and checks which MSG_FIRE reach the executor (a probe actor here), with which
 * trigger and instant. Nothing sleeps: a step runs the loop until the fire it expects arrived
 * (with a deadline), or until the mailboxes are quiet when nothing may fire. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <cmocka.h>

#include "actors/scheduler.h"
#include "proto/msg.h"

#define MAX_FIRES   32
#define DEADLINE_MS 10000

/* 2023-11-14 22:13:20 UTC */
#define T0 INT64_C(1700000000)

typedef struct {
    char job[32], trigger[32];
    int64_t scheduled_for; /* ms */
} fired_t;

typedef struct {
    uv_loop_t loop;
    uv_timer_t deadline;
    bool expired, closed;
    cv_runtime_t *rt;
    cv_actor_t *ex; /* stands in for the executor */
    scheduler_t *s;
    scheduler_clock_t clock;
    int64_t now; /* the fake clock, Unix s */
    fired_t fires[MAX_FIRES];
    size_t nfires;
} fx_t;

static int64_t fake_now(void *ud)
{
    return ((fx_t *)ud)->now;
}

static void ex_handle(cv_actor_t *self, cv_msg_t *msg)
{
    fx_t *f = cv_actor_state(self);
    assert_int_equal(msg->type, MSG_FIRE);
    msg_fire_t *m = (msg_fire_t *)msg;
    assert_true(f->nfires < MAX_FIRES);
    fired_t *x = &f->fires[f->nfires++];
    snprintf(x->job, sizeof(x->job), "%s", m->job);
    snprintf(x->trigger, sizeof(x->trigger), "%s", m->trigger);
    x->scheduled_for = m->scheduled_for;
    assert_null(m->reply_to);
    assert_int_equal(m->attempt <= 1, 1);
}

static void on_deadline(uv_timer_t *t)
{
    ((fx_t *)t->data)->expired = true;
}

/* Runs the loop until n fires arrived; fails after DEADLINE_MS. */
static void wait_fires(fx_t *f, size_t n)
{
    f->expired = false;
    uv_timer_start(&f->deadline, on_deadline, DEADLINE_MS, 0);
    while (f->nfires < n && !f->expired)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_timer_stop(&f->deadline);
    if (f->nfires < n)
        fail_msg("timed out waiting for fire %zu (got %zu)", n, f->nfires);
}

/* Runs the loop without blocking until no message was dispatched for a few passes. */
static void drain(fx_t *f)
{
    int quiet = 0;
    while (quiet < 3) {
        uint64_t before = cv_runtime_dispatched(f->rt);
        uv_run(&f->loop, UV_RUN_NOWAIT);
        quiet = cv_runtime_dispatched(f->rt) == before ? quiet + 1 : 0;
    }
}

static void move_to(fx_t *f, int64_t now)
{
    f->now = now;
    scheduler_clock_moved(f->s);
}

static void post(fx_t *f, void *m)
{
    cv_actor_post(scheduler_actor(f->s), m);
}

static void setup(fx_t *f)
{
    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->deadline);
    f->deadline.data = f;
    int err = 0;
    f->rt = cv_runtime_create(&f->loop, &err);
    assert_non_null(f->rt);
    f->ex = cv_actor_create(f->rt, "executor", ex_handle, f);
    f->s = scheduler_create(f->rt, f->ex, &err);
    assert_non_null(f->s);
    f->now = T0;
    f->clock = (scheduler_clock_t){.now = fake_now, .ud = f};
    scheduler_set_clock(f->s, &f->clock);
}

static void on_closed(void *ud)
{
    ((fx_t *)ud)->closed = true;
}

static void teardown(fx_t *f)
{
    scheduler_close(f->s, on_closed, f);
    cv_actor_destroy(f->ex);
    cv_runtime_close(f->rt);
    uv_close((uv_handle_t *)&f->deadline, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->closed);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void add(msg_sched_jobs_t *m, const char *name, const char *schedule, bool enabled,
                int64_t catch_up, int64_t last_run)
{
    sched_job_spec_t spec = {.name = name,
                             .schedule = schedule,
                             .enabled = enabled,
                             .catch_up = catch_up,
                             .last_run = last_run};
    scheduler_jobs_msg_add(m, &spec);
}

static void assert_fire(const fx_t *f, size_t i, const char *job, const char *trigger, int64_t at)
{
    assert_true(i < f->nfires);
    assert_string_equal(f->fires[i].job, job);
    assert_string_equal(f->fires[i].trigger, trigger);
    assert_int_equal(f->fires[i].scheduled_for, at * 1000);
}

static void jobs_fire_at_their_instants_and_a_clock_jump_fires_once(void **state)
{
    (void)state;
    fx_t f;
    setup(&f);
    msg_sched_jobs_t *m = scheduler_jobs_msg_new(true);
    add(m, "five", "*/5 * * * *", true, 0, 0);
    add(m, "off", "* * * * *", false, 0, 0);
    add(m, "byhand", "manual", true, 0, 0);
    add(m, "boot", "@reboot", true, 0, 0);
    post(&f, m);
    wait_fires(&f, 1); /* the first load fires @reboot at once */
    assert_fire(&f, 0, "boot", "reboot", T0);
    assert_int_equal(scheduler_next_of(f.s, "five"), T0 + 100); /* 22:15:00 */
    assert_int_equal(scheduler_next_of(f.s, "off"), SCHED_NEVER);
    assert_int_equal(scheduler_next_of(f.s, "byhand"), SCHED_NEVER);
    assert_int_equal(scheduler_next_of(f.s, "boot"), SCHED_NEVER);

    move_to(&f, T0 + 99); /* one second early: nothing */
    drain(&f);
    assert_int_equal(f.nfires, 1);

    move_to(&f, T0 + 100);
    wait_fires(&f, 2);
    assert_fire(&f, 1, "five", "cron", T0 + 100);
    assert_int_equal(scheduler_next_of(f.s, "five"), T0 + 400);
    drain(&f);
    assert_int_equal(f.nfires, 2); /* once, and the disabled job never */

    /* a reload (not the first load) fires no @reboot again and keeps the next instant */
    m = scheduler_jobs_msg_new(false);
    add(m, "five", "*/5 * * * *", true, 0, 0);
    add(m, "boot", "@reboot", true, 0, 0);
    post(&f, m);
    drain(&f);
    assert_int_equal(f.nfires, 2);
    assert_int_equal(scheduler_next_of(f.s, "five"), T0 + 400);
    assert_int_equal(scheduler_next_of(f.s, "off"), -ENOENT); /* removed */

    /* the clock jumps an hour forward: the missed instants fold into one firing */
    move_to(&f, T0 + 3710); /* 23:15:10 */
    wait_fires(&f, 3);
    drain(&f);
    assert_int_equal(f.nfires, 3);
    assert_string_equal(f.fires[2].job, "five");
    assert_string_equal(f.fires[2].trigger, "cron");
    assert_int_equal(scheduler_next_of(f.s, "five"), T0 + 4000); /* 23:20:00 */
    teardown(&f);
}

static void
enable_and_schedule_changes_move_the_next_instant_and_shutdown_stops_firing(void **state)
{
    (void)state;
    fx_t f;
    setup(&f);
    msg_sched_jobs_t *m = scheduler_jobs_msg_new(false);
    add(m, "five", "*/5 * * * *", true, 0, 0);
    add(m, "ten", "*/10 * * * *", false, 0, 0);
    post(&f, m);
    drain(&f);
    assert_int_equal(scheduler_next_of(f.s, "ten"), SCHED_NEVER);

    post(&f, msg_job_enable_new("ten", true));
    post(&f, msg_job_schedule_new("five", "0 * * * *", "UTC", true));
    drain(&f);
    assert_int_equal(scheduler_next_of(f.s, "ten"), T0 + 400);   /* 22:20:00 */
    assert_int_equal(scheduler_next_of(f.s, "five"), T0 + 2800); /* 23:00:00 */

    move_to(&f, T0 + 100); /* 22:15, an old instant of "five": no longer one */
    drain(&f);
    assert_int_equal(f.nfires, 0);

    move_to(&f, T0 + 400);
    wait_fires(&f, 1);
    assert_fire(&f, 0, "ten", "cron", T0 + 400);

    /* a schedule in another time zone: 0 * * * * in Asia/Kolkata (+05:30) is :30 in UTC */
    post(&f, msg_job_schedule_new("five", "0 * * * *", "Asia/Kolkata", true));
    drain(&f);
    assert_int_equal(scheduler_next_of(f.s, "five"), T0 + 1000); /* 22:30:00 UTC */

    post(&f, msg_job_enable_new("ten", false));
    drain(&f);
    assert_int_equal(scheduler_next_of(f.s, "ten"), SCHED_NEVER);
    move_to(&f, T0 + 1000);
    wait_fires(&f, 2);
    assert_fire(&f, 1, "five", "cron", T0 + 1000);
    drain(&f);
    assert_int_equal(f.nfires, 2); /* not "ten", disabled at 22:20 */

    /* shutdown: nothing fires any more */
    assert_int_equal(scheduler_next_of(f.s, "five"), T0 + 4600);
    post(&f, cv_msg_new(sizeof(msg_shutdown_t), MSG_SHUTDOWN));
    drain(&f);
    move_to(&f, T0 + 86400);
    drain(&f);
    assert_int_equal(f.nfires, 2);
    assert_int_equal(scheduler_next_of(f.s, "five"), -ENOENT);
    teardown(&f);
}

static void the_first_load_catches_up_a_missed_instant_once(void **state)
{
    (void)state;
    fx_t f;
    setup(&f);
    msg_sched_jobs_t *m = scheduler_jobs_msg_new(true);
    /* missed 22:10:00, within its 10 minutes of catch-up: fired once */
    add(m, "missed", "*/5 * * * *", true, 600, T0 - 1000);
    /* 22:10:00 already ran */
    add(m, "ran", "*/5 * * * *", true, 600, T0 - 200);
    /* no catch-up */
    add(m, "plain", "*/5 * * * *", true, 0, T0 - 1000);
    /* catch-up shorter than the gap since the missed instant (200 s) */
    add(m, "short", "*/5 * * * *", true, 100, T0 - 1000);
    /* disabled jobs catch nothing up */
    add(m, "off", "*/5 * * * *", false, 600, T0 - 1000);
    post(&f, m);
    wait_fires(&f, 1);
    drain(&f);
    assert_int_equal(f.nfires, 1);
    assert_fire(&f, 0, "missed", "catch_up", T0 - 200);

    /* a later load catches nothing up */
    m = scheduler_jobs_msg_new(false);
    add(m, "missed", "*/5 * * * *", true, 600, T0 - 1000);
    add(m, "plain", "*/5 * * * *", true, 0, T0 - 1000);
    post(&f, m);
    drain(&f);
    assert_int_equal(f.nfires, 1);
    teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(jobs_fire_at_their_instants_and_a_clock_jump_fires_once),
        cmocka_unit_test(
            enable_and_schedule_changes_move_the_next_instant_and_shutdown_stops_firing),
        cmocka_unit_test(the_first_load_catches_up_a_missed_instant_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
