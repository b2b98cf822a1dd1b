/* The scheduler core with an injected clock: what fires, when, and never twice. */
#include "actors/sched_core.h"
#include "core/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

typedef struct {
    char job[64][32];
    int64_t at[64];
    int64_t missed[64];
    int n;
} fired_t;

static void record(void *ud, const char *job, int64_t scheduled_for, int64_t missed)
{
    fired_t *f = ud;
    snprintf(f->job[f->n], sizeof(f->job[0]), "%s", job);
    f->at[f->n] = scheduled_for;
    f->missed[f->n] = missed;
    f->n++;
}

static int64_t utc(const char *s)
{
    int64_t t;
    assert_int_equal(cv_parse_rfc3339(s, &t), 0);
    return t;
}

static void put(sched_core_t *s, const char *name, const char *expr, const char *tz, int64_t now)
{
    char err[256];
    sched_job_spec_t spec = {.name = name, .schedule = expr, .timezone = tz, .enabled = true};
    assert_int_equal(sched_core_put(s, &spec, name, now, err, sizeof(err)), 0);
}

static void the_deadline_is_the_earliest_next_instant_of_any_job(void **state)
{
    int64_t now = utc("2026-01-01T00:00:30Z");
    sched_core_t *s = sched_core_create();
    put(s, "hourly", "0 * * * *", NULL, now);
    put(s, "minutely", "* * * * *", NULL, now);
    assert_int_equal(sched_core_deadline(s), utc("2026-01-01T00:01:00Z"));
    assert_int_equal(sched_core_next_of(s, "hourly"), utc("2026-01-01T01:00:00Z"));
    sched_core_free(s);
}

static void due_jobs_fire_once_each_in_instant_order(void **state)
{
    int64_t now = utc("2026-01-01T00:00:00Z");
    sched_core_t *s = sched_core_create();
    put(s, "b", "*/2 * * * * *", NULL, now);
    put(s, "a", "* * * * * *", NULL, now);
    fired_t f = {0};
    assert_int_equal(sched_core_run_due(s, now + 1, record, &f), 1);
    assert_string_equal(f.job[0], "a");
    assert_int_equal(f.at[0], now + 1);
    assert_int_equal(sched_core_run_due(s, now + 2, record, &f), 2);
    assert_int_equal(f.at[1], now + 2);
    assert_int_equal(f.at[2], now + 2);
    assert_int_equal(sched_core_deadline(s), now + 3);
    sched_core_free(s);
}

static void a_forward_clock_jump_fires_each_job_once_and_counts_what_it_folded(void **state)
{
    int64_t now = utc("2026-01-01T00:00:00Z");
    sched_core_t *s = sched_core_create();
    put(s, "every-minute", "* * * * *", NULL, now);
    fired_t f = {0};
    /* The clock jumps three hours ahead: one firing for the first missed instant, 179 folded. */
    assert_int_equal(sched_core_run_due(s, now + 3 * 3600 + 5, record, &f), 1);
    assert_int_equal(f.at[0], now + 60);
    assert_int_equal(f.missed[0], 179);
    assert_int_equal(sched_core_deadline(s), now + 3 * 3600 + 60);
    sched_core_free(s);
}

static void a_loop_busy_for_seconds_fires_every_instant_it_owed_late(void **state)
{
    int64_t now = utc("2026-01-01T00:00:00Z");
    sched_core_t *s = sched_core_create();
    put(s, "every-second", "* * * * * *", NULL, now);
    fired_t f = {0};
    /* The loop was busy (a job's output flood) and wakes 5 s late: 5 firings, none skipped. */
    assert_int_equal(sched_core_run_due(s, now + 5, record, &f), 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(f.at[i], now + 1 + i);
        assert_int_equal(f.missed[i], 0);
    }
    assert_int_equal(sched_core_deadline(s), now + 6);
    /* Past SCHED_LATE_MAX it is a clock jump: one firing, the rest folded. */
    assert_int_equal(sched_core_run_due(s, now + 6 + SCHED_LATE_MAX + 10, record, &f), 1);
    assert_int_equal(f.missed[5], SCHED_LATE_MAX + 10);
    sched_core_free(s);
}

static void a_backward_clock_jump_never_fires_an_instant_twice(void **state)
{
    int64_t now = utc("2026-01-01T00:00:00Z");
    sched_core_t *s = sched_core_create();
    put(s, "m", "* * * * *", NULL, now);
    fired_t f = {0};
    assert_int_equal(sched_core_run_due(s, now + 60, record, &f), 1);
    /* The clock goes back an hour; re-enabling (or any recompute) must not return to the past. */
    assert_int_equal(sched_core_set_enabled(s, "m", false, now - 3600), 0);
    assert_int_equal(sched_core_set_enabled(s, "m", true, now - 3600), 0);
    assert_int_equal(sched_core_next_of(s, "m"), now + 120);
    assert_int_equal(sched_core_run_due(s, now - 3600 + 120, record, &f), 0);
    sched_core_free(s);
}

static void disabled_manual_and_reboot_jobs_are_not_on_the_clock(void **state)
{
    int64_t now = utc("2026-01-01T00:00:00Z");
    sched_core_t *s = sched_core_create();
    char err[256];
    sched_job_spec_t off = {.name = "off", .schedule = "* * * * *", .enabled = false};
    assert_int_equal(sched_core_put(s, &off, "off", now, err, sizeof(err)), 0);
    put(s, "manual-only", "manual", NULL, now);
    put(s, "boot", "@reboot", NULL, now);
    assert_int_equal(sched_core_deadline(s), SCHED_NEVER);
    fired_t f = {0};
    assert_int_equal(sched_core_fire_reboot(s, now, record, &f), 1);
    assert_string_equal(f.job[0], "boot");
    assert_int_equal(sched_core_run_due(s, now + 86400, record, &f), 0);
    sched_core_free(s);
}

static void an_invalid_new_definition_keeps_the_old_one(void **state)
{
    int64_t now = utc("2026-01-01T00:00:00Z");
    sched_core_t *s = sched_core_create();
    put(s, "j", "0 * * * *", NULL, now);
    char err[256];
    sched_core_begin_sync(s);
    sched_job_spec_t bad = {.name = "j", .schedule = "0 25 * * *", .enabled = true};
    assert_int_equal(sched_core_put(s, &bad, "j", now, err, sizeof(err)), -22);
    assert_non_null(strstr(err, "hour"));
    assert_int_equal(sched_core_end_sync(s), 0);
    assert_int_equal(sched_core_next_of(s, "j"), utc("2026-01-01T01:00:00Z"));
    sched_core_free(s);
}

static void a_sync_removes_the_jobs_it_does_not_name_and_keeps_unchanged_instants(void **state)
{
    int64_t now = utc("2026-01-01T00:00:00Z");
    sched_core_t *s = sched_core_create();
    put(s, "keep", "0 * * * *", NULL, now);
    put(s, "drop", "* * * * *", NULL, now);
    sched_core_begin_sync(s);
    put(s, "keep", "0 * * * *", NULL, now + 7200); /* unchanged: keeps 01:00 */
    put(s, "new", "30 * * * *", NULL, now);
    assert_int_equal(sched_core_end_sync(s), 1);
    assert_int_equal(sched_core_count(s), 2);
    assert_int_equal(sched_core_next_of(s, "drop"), -2);
    assert_int_equal(sched_core_next_of(s, "keep"), utc("2026-01-01T01:00:00Z"));
    assert_int_equal(sched_core_deadline(s), utc("2026-01-01T00:30:00Z"));
    sched_core_free(s);
}

static void ten_thousand_jobs_keep_the_heap_ordered(void **state)
{
    int64_t now = utc("2026-01-01T00:00:00Z");
    sched_core_t *s = sched_core_create();
    char name[32], expr[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(name, sizeof(name), "job-%d", i);
        snprintf(expr, sizeof(expr), "%d %d * * *", i % 60, (i / 60) % 24);
        put(s, name, expr, "Europe/Stockholm", now);
    }
    assert_int_equal(sched_core_count(s), 10000);
    /* 1,440 distinct instants a day, about seven jobs each: drain day one instant by instant. */
    int64_t prev = 0;
    size_t total = 0;
    while (total < 10000) {
        fired_t f = {0};
        int64_t t = sched_core_deadline(s);
        assert_true(t > prev);
        prev = t;
        total += sched_core_run_due(s, t, record, &f);
        for (int i = 0; i < f.n; i++)
            assert_int_equal(f.at[i], t);
    }
    /* Each job fired once within one day (a job due exactly at `now` waits a whole day). */
    assert_true(prev <= now + 86400);
    assert_true(sched_core_deadline(s) > now + 86400);
    sched_core_free(s);
}

static void put_catch_up(sched_core_t *s, const char *name, const char *expr, int64_t catch_up,
                         int64_t last_run, int64_t now)
{
    char err[256];
    sched_job_spec_t spec = {.name = name,
                             .schedule = expr,
                             .enabled = true,
                             .catch_up = catch_up,
                             .last_run = last_run};
    assert_int_equal(sched_core_put(s, &spec, name, now, err, sizeof(err)), 0);
}

static void catch_up_fires_the_latest_missed_instant_once_when_young_enough(void **state)
{
    int64_t now = utc("2026-01-01T10:20:00Z");
    sched_core_t *s = sched_core_create();
    put_catch_up(s, "quarter", "*/15 * * * *", 3600, utc("2026-01-01T09:45:00Z"), now);
    put_catch_up(s, "off", "*/15 * * * *", 0, 0, now);
    fired_t f = {0};
    assert_int_equal(sched_core_catch_up(s, now, record, &f), 1);
    assert_string_equal(f.job[0], "quarter");
    assert_int_equal(f.at[0], utc("2026-01-01T10:15:00Z"));
    /* A second start-up pass finds nothing more to catch up. */
    assert_int_equal(sched_core_catch_up(s, now, record, &f), 0);
    sched_core_free(s);
}

static void catch_up_ignores_a_miss_older_than_the_deadline(void **state)
{
    int64_t now = utc("2026-01-01T10:20:00Z");
    sched_core_t *s = sched_core_create();
    put_catch_up(s, "daily", "0 2 * * *", 3600, 0, now); /* missed at 02:00, 8 h ago */
    fired_t f = {0};
    assert_int_equal(sched_core_catch_up(s, now, record, &f), 0);
    sched_core_free(s);
}

static void catch_up_never_repeats_an_instant_already_recorded(void **state)
{
    int64_t now = utc("2026-01-01T10:20:00Z");
    sched_core_t *s = sched_core_create();
    put_catch_up(s, "quarter", "*/15 * * * *", 3600, utc("2026-01-01T10:15:00Z"), now);
    fired_t f = {0};
    assert_int_equal(sched_core_catch_up(s, now, record, &f), 0);
    assert_int_equal(sched_core_next_of(s, "quarter"), utc("2026-01-01T10:30:00Z"));
    sched_core_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_deadline_is_the_earliest_next_instant_of_any_job),
        cmocka_unit_test(due_jobs_fire_once_each_in_instant_order),
        cmocka_unit_test(a_forward_clock_jump_fires_each_job_once_and_counts_what_it_folded),
        cmocka_unit_test(a_loop_busy_for_seconds_fires_every_instant_it_owed_late),
        cmocka_unit_test(a_backward_clock_jump_never_fires_an_instant_twice),
        cmocka_unit_test(disabled_manual_and_reboot_jobs_are_not_on_the_clock),
        cmocka_unit_test(an_invalid_new_definition_keeps_the_old_one),
        cmocka_unit_test(a_sync_removes_the_jobs_it_does_not_name_and_keeps_unchanged_instants),
        cmocka_unit_test(ten_thousand_jobs_keep_the_heap_ordered),
        cmocka_unit_test(catch_up_fires_the_latest_missed_instant_once_when_young_enough),
        cmocka_unit_test(catch_up_ignores_a_miss_older_than_the_deadline),
        cmocka_unit_test(catch_up_never_repeats_an_instant_already_recorded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
