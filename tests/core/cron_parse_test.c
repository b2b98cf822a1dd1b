/* Parsing cron expressions: the grammar, error messages with columns, never-firing expressions,
 * kinds, and H hash spread. */
#include "core/cron.h"
#include "core/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int64_t utc(const char *s)
{
    int64_t t = 0;
    assert_int_equal(cv_parse_rfc3339(s, &t), 0);
    return t;
}

static cron_expr_t *parse_ok(const char *text, const char *seed)
{
    cron_expr_t *e = NULL;
    cron_error_t err;
    if (cron_parse(text, seed, &e, &err) != 0)
        fail_msg("'%s' was rejected: %s", text, err.message);
    return e;
}

/* The next instant after `after` in UTC, as RFC 3339. */
static const char *next_utc(const char *text, const char *after)
{
    static char buf[40];
    cron_expr_t *e = parse_ok(text, "job");
    int64_t t = 0;
    assert_int_equal(cron_next(e, NULL, utc(after), &t), 0);
    cron_free(e);
    cv_format_utc(t, buf, sizeof(buf));
    return buf;
}

static void expect_error(const char *text, const char *message, const char *field, int column)
{
    cron_expr_t *e = (cron_expr_t *)1;
    cron_error_t err;
    assert_int_equal(cron_parse(text, "job", &e, &err), -EINVAL);
    assert_null(e);
    if (strcmp(err.message, message) != 0)
        fail_msg("'%s': got \"%s\", want \"%s\"", text, err.message, message);
    assert_string_equal(err.field, field);
    assert_int_equal(err.column, column);
}

static void five_and_six_field_expressions_are_accepted(void **state)
{
    cron_expr_t *e = parse_ok("  */5 * * * *  ", NULL);
    assert_int_equal(cron_kind(e), CRON_KIND_CRON);
    assert_false(cron_has_seconds(e));
    cron_free(e);
    e = parse_ok("30 */5 * * * *", NULL);
    assert_true(cron_has_seconds(e));
    cron_free(e);
    assert_string_equal(next_utc("30 */5 * * * *", "2026-01-01T00:00:00Z"), "2026-01-01T00:00:30Z");
}

static void names_of_months_and_days_are_case_insensitive(void **state)
{
    assert_string_equal(next_utc("0 0 1 jul *", "2026-01-01T00:00:00Z"), "2026-07-01T00:00:00Z");
    assert_string_equal(next_utc("0 0 * * Mon", "2026-01-01T00:00:00Z"), "2026-01-05T00:00:00Z");
    assert_string_equal(next_utc("0 0 * JAN-MAR sat", "2026-03-28T00:00:00Z"),
                        "2027-01-02T00:00:00Z");
}

static void lists_ranges_and_steps_select_the_right_values(void **state)
{
    assert_string_equal(next_utc("5,10-12 * * * *", "2026-01-01T00:10:00Z"),
                        "2026-01-01T00:11:00Z");
    assert_string_equal(next_utc("0 9-17/4 * * *", "2026-01-01T13:00:00Z"), "2026-01-01T17:00:00Z");
    assert_string_equal(next_utc("0 9-17/4 * * *", "2026-01-01T17:00:00Z"), "2026-01-02T09:00:00Z");
    /* a/n runs from a to the end of the field */
    assert_string_equal(next_utc("50/4 * * * *", "2026-01-01T00:54:00Z"), "2026-01-01T00:58:00Z");
    assert_string_equal(next_utc("50/4 * * * *", "2026-01-01T00:58:00Z"), "2026-01-01T01:50:00Z");
    assert_string_equal(next_utc("*/25 * * * *", "2026-01-01T00:50:00Z"), "2026-01-01T01:00:00Z");
}

static void sunday_is_both_zero_and_seven_and_ranges_may_end_on_it(void **state)
{
    /* 2026-01-04 is a Sunday */
    assert_string_equal(next_utc("0 0 * * 7", "2026-01-01T00:00:00Z"), "2026-01-04T00:00:00Z");
    assert_string_equal(next_utc("0 0 * * 0", "2026-01-01T00:00:00Z"), "2026-01-04T00:00:00Z");
    assert_string_equal(next_utc("0 0 * * FRI-SUN", "2026-01-03T00:00:00Z"),
                        "2026-01-04T00:00:00Z");
    assert_string_equal(next_utc("0 0 * * 5-7", "2026-01-04T00:00:00Z"), "2026-01-09T00:00:00Z");
}

static void question_mark_means_any_day(void **state)
{
    assert_string_equal(next_utc("0 0 ? * MON", "2026-01-01T00:00:00Z"), "2026-01-05T00:00:00Z");
    assert_string_equal(next_utc("0 0 13 * ?", "2026-01-01T00:00:00Z"), "2026-01-13T00:00:00Z");
}

static void macros_expand_to_their_schedules(void **state)
{
    assert_string_equal(next_utc("@yearly", "2026-03-01T00:00:00Z"), "2027-01-01T00:00:00Z");
    assert_string_equal(next_utc("@annually", "2026-03-01T00:00:00Z"), "2027-01-01T00:00:00Z");
    assert_string_equal(next_utc("@monthly", "2026-03-01T00:00:00Z"), "2026-04-01T00:00:00Z");
    assert_string_equal(next_utc("@weekly", "2026-01-01T00:00:00Z"), "2026-01-04T00:00:00Z");
    assert_string_equal(next_utc("@daily", "2026-01-01T00:00:00Z"), "2026-01-02T00:00:00Z");
    assert_string_equal(next_utc("@MIDNIGHT", "2026-01-01T10:00:00Z"), "2026-01-02T00:00:00Z");
    assert_string_equal(next_utc("@hourly", "2026-01-01T10:00:00Z"), "2026-01-01T11:00:00Z");
}

static void every_fires_on_multiples_of_its_duration_since_the_epoch(void **state)
{
    cron_expr_t *e = parse_ok("@every 1h30m", NULL);
    assert_int_equal(cron_kind(e), CRON_KIND_EVERY);
    assert_false(cron_has_seconds(e));
    int64_t t;
    assert_int_equal(cron_next(e, NULL, 0, &t), 0);
    assert_int_equal(t, 5400);
    assert_int_equal(cron_next(e, NULL, 5399, &t), 0);
    assert_int_equal(t, 5400);
    assert_int_equal(cron_next(e, NULL, 5400, &t), 0);
    assert_int_equal(t, 10800);
    cron_free(e);
    e = parse_ok("@every 90s", NULL);
    assert_true(cron_has_seconds(e));
    assert_int_equal(cron_next(e, NULL, 100, &t), 0);
    assert_int_equal(t, 180);
    cron_free(e);
    assert_string_equal(next_utc("@every 2d", "2026-01-01T05:00:00Z"), "2026-01-03T00:00:00Z");
}

static void reboot_and_manual_never_fire_on_the_clock(void **state)
{
    int64_t t;
    cron_expr_t *e = parse_ok("@reboot", NULL);
    assert_int_equal(cron_kind(e), CRON_KIND_REBOOT);
    assert_int_equal(cron_next(e, NULL, 0, &t), -ENOENT);
    cron_free(e);
    e = parse_ok("Manual", NULL);
    assert_int_equal(cron_kind(e), CRON_KIND_MANUAL);
    assert_int_equal(cron_next(e, NULL, 0, &t), -ENOENT);
    cron_free(e);
}

static void out_of_range_values_name_the_field_and_column(void **state)
{
    expect_error("0 0 32 * *", "day-of-month: 32 is out of range 1-31 (column 5)", "day-of-month",
                 5);
    expect_error("30 2 1,15,32 * *", "day-of-month: 32 is out of range 1-31 (column 11)",
                 "day-of-month", 11);
    expect_error("60 * * * *", "minute: 60 is out of range 0-59 (column 1)", "minute", 1);
    expect_error("* 24 * * *", "hour: 24 is out of range 0-23 (column 3)", "hour", 3);
    expect_error("* * * 0 *", "month: 0 is out of range 1-12 (column 7)", "month", 7);
    expect_error("* * * * 8", "day-of-week: 8 is out of range 0-7 (column 9)", "day-of-week", 9);
    expect_error("61 * * * * *", "second: 61 is out of range 0-59 (column 1)", "second", 1);
    expect_error("0 0 99999999999 * *", "day-of-month: 99999999999 is out of range 1-31 (column 5)",
                 "day-of-month", 5);
}

static void syntax_errors_point_at_the_offending_character(void **state)
{
    expect_error("* * * FOO *", "month: 'FOO' is not a month name (JAN-DEC) (column 7)", "month",
                 7);
    expect_error("* * * * MOM", "day-of-week: 'MOM' is not a day name (SUN-SAT) (column 9)",
                 "day-of-week", 9);
    expect_error("0 0 * * sunday", "day-of-week: 'sunday' is not a day name (SUN-SAT) (column 9)",
                 "day-of-week", 9);
    expect_error("0 0 W * *",
                 "day-of-month: 'W' needs a day before it, as in 15W (weekday nearest the 15th) "
                 "(column 5)",
                 "day-of-month", 5);
    expect_error("5-1 * * * *",
                 "minute: range 5-1 is reversed (write it from low to high) (column 1)", "minute",
                 1);
    expect_error("*/0 * * * *", "minute: step 0 is out of range 1-60 (column 3)", "minute", 3);
    expect_error("*/ * * * *", "minute: expected a step number after '/' (column 3)", "minute", 3);
    expect_error("1,,2 * * * *", "minute: empty list element (column 3)", "minute", 3);
    expect_error("1, * * * *", "minute: empty list element (column 3)", "minute", 3);
    expect_error("1x * * * *", "minute: unexpected 'x' (column 2)", "minute", 2);
    expect_error("1- * * * *", "minute: expected a number after '-' (column 3)", "minute", 3);
    expect_error("* ? * * *",
                 "hour: '?' is only allowed in day-of-month and day-of-week (column 3)", "hour", 3);
    expect_error("* * * * L",
                 "day-of-week: 'L' in day-of-week needs a day before it, as in 5L (last Friday) "
                 "(column 9)",
                 "day-of-week", 9);
    expect_error("* * * * 5#6",
                 "day-of-week: '#' needs a week number 1-5 after it, as in FRI#2 (column 11)",
                 "day-of-week", 11);
    expect_error("* * L-31 * *", "day-of-month: L-n needs n in 0-30 (column 7)", "day-of-month", 7);
    expect_error("* * 5W-7 * *", "day-of-month: unexpected '-' (column 7)", "day-of-month", 7);
    expect_error("H(5-1) * * * *", "minute: range 5-1 is reversed (column 3)", "minute", 3);
    expect_error("H(0-5)/10 * * * *", "minute: step 10 is out of range 1-6 (column 8)", "minute",
                 8);
    expect_error("H(0-5 * * * *", "minute: expected ')' to close H(a-b) (column 6)", "minute", 6);
}

static void wrong_field_counts_and_empty_text_are_rejected(void **state)
{
    expect_error("* * * *",
                 "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds "
                 "first, found 4",
                 "", 0);
    expect_error("* * * * * * *",
                 "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds "
                 "first, found 7 (column 13)",
                 "", 13);
    expect_error("   ", "the expression is empty", "", 0);
    expect_error("manual now", "manual takes no fields (column 8)", "", 8);
}

static void macro_errors_explain_what_was_expected(void **state)
{
    expect_error("@daly", "macro: unknown macro '@daly' (did you mean @daily?) (column 1)", "macro",
                 1);
    expect_error("@daily 5", "macro: @daily takes no fields (column 8)", "macro", 8);
    expect_error("@every", "@every: needs one duration, as in @every 90s (column 1)", "@every", 1);
    expect_error("@every 1x", "@every: '1x' is not a duration like 90s, 5m, 1h30m or 2d (column 8)",
                 "@every", 8);
    expect_error("@every 0s", "@every: the duration must be positive (column 8)", "@every", 8);
    expect_error("@every 1h1h", "@every: unit 'h' appears twice (column 11)", "@every", 11);
    expect_error("@every 1h 2m", "@every: takes one duration, found more (column 11)", "@every",
                 11);
}

static void expressions_that_never_fire_are_rejected_with_a_reason(void **state)
{
    expect_error("0 0 30 2 *", "never fires: day-of-month 30 does not occur in February (column 5)",
                 "day-of-month", 5);
    expect_error("0 0 31 4,6 *",
                 "never fires: day-of-month 31 does not occur in April or June (column 5)",
                 "day-of-month", 5);
    expect_error("0 0 31 2,4,9 *",
                 "never fires: day-of-month 31 does not occur in February, April or September "
                 "(column 5)",
                 "day-of-month", 5);
    /* day 1 with AND semantics (day-of-month starts with '*') and the 5th Friday */
    expect_error("0 0 */31 * 5#5",
                 "never fires: no day matches day-of-month, month and day-of-week together "
                 "(column 5)",
                 "day-of-month", 5);
    expect_error("0 0 30W 2 *",
                 "never fires: no day matches day-of-month, month and day-of-week together "
                 "(column 5)",
                 "day-of-month", 5);
    cron_free(parse_ok("0 0 29 2 *", NULL));
    cron_free(parse_ok("0 0 30 2 MON", NULL)); /* Vixie OR: every Monday in February */
}

static void hash_picks_a_stable_value_per_job_name(void **state)
{
    int64_t a, b, after = utc("2026-01-01T00:00:00Z");
    cron_expr_t *e1 = parse_ok("H H * * *", "backup-db");
    cron_expr_t *e2 = parse_ok("H H * * *", "backup-db");
    assert_int_equal(cron_next(e1, NULL, after, &a), 0);
    assert_int_equal(cron_next(e2, NULL, after, &b), 0);
    assert_int_equal(a, b);
    cron_free(e1);
    cron_free(e2);
    e1 = parse_ok("H * * * *", NULL);
    e2 = parse_ok("H * * * *", NULL);
    assert_int_equal(cron_next(e1, NULL, after, &a), 0);
    assert_int_equal(cron_next(e2, NULL, after, &b), 0);
    assert_int_equal(a, b);
    cron_free(e1);
    cron_free(e2);
}

static void hash_spreads_a_hundred_jobs_over_the_hour(void **state)
{
    int used[60] = {0}, distinct = 0, max_same = 0;
    for (int i = 0; i < 100; i++) {
        char name[32];
        snprintf(name, sizeof(name), "job-%d", i);
        cron_expr_t *e = parse_ok("H * * * *", name);
        int64_t t;
        assert_int_equal(cron_next(e, NULL, utc("2026-01-01T00:00:00Z") - 1, &t), 0);
        int minute = (int)(t % 3600 / 60);
        distinct += used[minute]++ == 0;
        max_same = used[minute] > max_same ? used[minute] : max_same;
        cron_free(e);
    }
    assert_true(distinct >= 35);
    assert_true(max_same <= 8);
}

static void hash_ranges_and_steps_stay_inside_their_bounds(void **state)
{
    for (int i = 0; i < 50; i++) {
        char name[32];
        snprintf(name, sizeof(name), "n%d", i);
        cron_expr_t *e = parse_ok("H(10-14) H(2-3) * * *", name);
        int64_t t;
        assert_int_equal(cron_next(e, NULL, utc("2026-01-01T00:00:00Z"), &t), 0);
        int minute = (int)(t % 3600 / 60), hour = (int)(t % 86400 / 3600);
        assert_true(minute >= 10 && minute <= 14);
        assert_true(hour >= 2 && hour <= 3);
        cron_free(e);
        /* H/15: four firings an hour, 15 minutes apart, at a hashed offset */
        e = parse_ok("H/15 * * * *", name);
        int64_t t1, t2;
        assert_int_equal(cron_next(e, NULL, utc("2026-01-01T00:00:00Z") - 1, &t1), 0);
        assert_int_equal(cron_next(e, NULL, t1, &t2), 0);
        assert_true(t1 % 3600 / 60 < 15);
        assert_int_equal(t2 - t1, 15 * 60);
        cron_free(e);
        /* H(0-29)/10: three firings in the first half hour, 10 minutes apart */
        e = parse_ok("H(0-29)/10 * * * *", name);
        int64_t t3;
        assert_int_equal(cron_next(e, NULL, utc("2026-01-01T00:00:00Z") - 1, &t1), 0);
        assert_int_equal(cron_next(e, NULL, t1, &t2), 0);
        assert_int_equal(cron_next(e, NULL, t2, &t3), 0);
        assert_true(t1 % 3600 / 60 < 10);
        assert_int_equal(t2 - t1, 600);
        assert_int_equal(t3 - t2, 600);
        assert_int_equal(cron_next(e, NULL, t3, &t), 0);
        assert_int_equal(t - t1, 3600);
        cron_free(e);
        /* H in day-of-month stays in 1-28 so that it fires every month */
        e = parse_ok("0 0 H 2 *", name);
        assert_int_equal(cron_next(e, NULL, utc("2026-01-01T00:00:00Z"), &t), 0);
        assert_true(t < utc("2026-03-01T00:00:00Z"));
        cron_free(e);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(five_and_six_field_expressions_are_accepted),
        cmocka_unit_test(names_of_months_and_days_are_case_insensitive),
        cmocka_unit_test(lists_ranges_and_steps_select_the_right_values),
        cmocka_unit_test(sunday_is_both_zero_and_seven_and_ranges_may_end_on_it),
        cmocka_unit_test(question_mark_means_any_day),
        cmocka_unit_test(macros_expand_to_their_schedules),
        cmocka_unit_test(every_fires_on_multiples_of_its_duration_since_the_epoch),
        cmocka_unit_test(reboot_and_manual_never_fire_on_the_clock),
        cmocka_unit_test(out_of_range_values_name_the_field_and_column),
        cmocka_unit_test(syntax_errors_point_at_the_offending_character),
        cmocka_unit_test(wrong_field_counts_and_empty_text_are_rejected),
        cmocka_unit_test(macro_errors_explain_what_was_expected),
        cmocka_unit_test(expressions_that_never_fire_are_rejected_with_a_reason),
        cmocka_unit_test(hash_picks_a_stable_value_per_job_name),
        cmocka_unit_test(hash_spreads_a_hundred_jobs_over_the_hour),
        cmocka_unit_test(hash_ranges_and_steps_stay_inside_their_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
