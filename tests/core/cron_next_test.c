/* Next fire instants in UTC: special days (L, W, #), Vixie OR, seconds, year boundaries, leap
 * years, the year-9999 limit and the cost of rare expressions. */
#include "core/cron.h"
#include "core/cron_internal.h"
#include "core/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int64_t utc(const char *s)
{
    int64_t t = 0;
    assert_int_equal(cv_parse_rfc3339(s, &t), 0);
    return t;
}

static cron_expr_t *parse_ok(const char *text)
{
    cron_expr_t *e = NULL;
    cron_error_t err;
    if (cron_parse(text, "job", &e, &err) != 0)
        fail_msg("'%s' was rejected: %s", text, err.message);
    return e;
}

/* Checks that the instants after `after` are exactly `want` (NULL-terminated), in UTC. */
static void expect_sequence(const char *text, const char *after, const char *const *want)
{
    cron_expr_t *e = parse_ok(text);
    int64_t t = utc(after);
    for (int i = 0; want[i]; i++) {
        assert_int_equal(cron_next(e, NULL, t, &t), 0);
        char got[40];
        cv_format_utc(t, got, sizeof(got));
        if (strcmp(got, want[i]) != 0)
            fail_msg("'%s' firing %d: got %s, want %s", text, i, got, want[i]);
    }
    cron_free(e);
}

#define SEQ(text, after, ...) expect_sequence(text, after, (const char *const[]){__VA_ARGS__, NULL})

static void expressions_with_the_same_day_fields_share_one_table_that_outlives_each(void **state)
{
    cron_expr_t *hourly = parse_ok("0 * * * *");
    cron_expr_t *nightly = parse_ok("30 2 * * *");
    cron_expr_t *monthly = parse_ok("0 0 1 * *");
    assert_ptr_equal(hourly->days, nightly->days);
    assert_ptr_not_equal(hourly->days, monthly->days);
    cron_free(hourly); /* the shared table stays for the other */
    int64_t t = utc("2026-01-01T12:00:00Z");
    assert_int_equal(cron_next(nightly, NULL, t, &t), 0);
    assert_int_equal(t, utc("2026-01-02T02:30:00Z"));
    cron_expr_t *again = parse_ok("15 * * * *");
    assert_ptr_equal(again->days, nightly->days);
    cron_free(nightly);
    cron_free(again);
    assert_int_equal(cron_next(monthly, NULL, t, &t), 0);
    assert_int_equal(t, utc("2026-02-01T00:00:00Z"));
    cron_free(monthly);
}

static void the_next_instant_is_strictly_after_the_given_one(void **state)
{
    SEQ("* * * * *", "2026-01-01T12:00:00Z", "2026-01-01T12:01:00Z", "2026-01-01T12:02:00Z");
    SEQ("* * * * *", "2026-01-01T12:00:30Z", "2026-01-01T12:01:00Z");
    SEQ("0 12 * * *", "2026-01-01T12:00:00Z", "2026-01-02T12:00:00Z");
}

static void seconds_field_fires_within_the_minute(void **state)
{
    SEQ("*/20 * * * * *", "2026-01-01T00:00:00Z", "2026-01-01T00:00:20Z", "2026-01-01T00:00:40Z",
        "2026-01-01T00:01:00Z");
    SEQ("30 0 0 * * *", "2026-01-01T00:00:30Z", "2026-01-02T00:00:30Z");
    SEQ("59 59 23 31 12 *", "2026-06-01T00:00:00Z", "2026-12-31T23:59:59Z", "2027-12-31T23:59:59Z");
}

static void last_day_of_month_follows_month_lengths(void **state)
{
    SEQ("0 0 L * *", "2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z",
        "2026-04-30T00:00:00Z");
    SEQ("0 0 L 2 *", "2027-03-01T00:00:00Z", "2028-02-29T00:00:00Z");
    SEQ("0 0 L-3 * *", "2026-02-01T00:00:00Z", "2026-02-25T00:00:00Z", "2026-03-28T00:00:00Z");
}

static void w_picks_the_nearest_weekday_without_leaving_the_month(void **state)
{
    /* 2026-08-15 is a Saturday: Friday the 14th. 2026-08-01 is a Saturday: Monday the 3rd.
     * 2026-05-31 is a Sunday: Friday the 29th. */
    SEQ("0 0 15W 8 *", "2026-01-01T00:00:00Z", "2026-08-14T00:00:00Z");
    SEQ("0 0 1W 8 *", "2026-01-01T00:00:00Z", "2026-08-03T00:00:00Z");
    SEQ("0 0 31W 5 *", "2026-01-01T00:00:00Z", "2026-05-29T00:00:00Z");
    SEQ("0 0 LW 5 *", "2026-01-01T00:00:00Z", "2026-05-29T00:00:00Z");
    /* 2026-01-31 is a Saturday: the last weekday is Friday the 30th */
    SEQ("0 0 LW * *", "2026-01-01T00:00:00Z", "2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z");
}

static void hash_and_l_in_day_of_week_pick_weeks_of_the_month(void **state)
{
    /* second Monday; last Friday */
    SEQ("0 0 * * 1#2", "2026-01-01T00:00:00Z", "2026-01-12T00:00:00Z", "2026-02-09T00:00:00Z");
    SEQ("0 0 * * MON#2", "2026-01-01T00:00:00Z", "2026-01-12T00:00:00Z");
    SEQ("0 0 * * 5L", "2026-01-01T00:00:00Z", "2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z");
    SEQ("0 0 * * FRIL", "2026-01-01T00:00:00Z", "2026-01-30T00:00:00Z");
    SEQ("0 0 * * 0#5", "2026-01-01T00:00:00Z", "2026-03-29T00:00:00Z", "2026-05-31T00:00:00Z");
    SEQ("0 0 ? * 7#1", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z");
}

static void a_day_matching_either_day_field_fires_when_both_are_restricted(void **state)
{
    /* the 13th or any Friday (2026-01-02 is a Friday) */
    SEQ("0 0 13 * FRI", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z",
        "2026-01-13T00:00:00Z", "2026-01-16T00:00:00Z");
    /* Feb 29 or any Monday in February */
    SEQ("0 0 29 2 MON", "2026-01-01T00:00:00Z", "2026-02-02T00:00:00Z");
    SEQ("0 0 29 2 MON", "2028-02-28T00:00:00Z", "2028-02-29T00:00:00Z");
}

static void a_day_field_starting_with_a_star_makes_both_required(void **state)
{
    /* odd days that are Mondays: 2026-01-05 and 01-19 are Mondays on odd days */
    SEQ("0 0 */2 * MON", "2026-01-01T00:00:00Z", "2026-01-05T00:00:00Z", "2026-01-19T00:00:00Z",
        "2026-02-09T00:00:00Z");
    /* the first Sunday of the month */
    SEQ("0 0 1-7 * */7", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z", "2026-02-01T00:00:00Z");
}

static void year_boundaries_are_crossed(void **state)
{
    SEQ("0 0 1 1 *", "2026-12-31T23:59:59Z", "2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z");
    SEQ("*/15 * * * *", "2026-12-31T23:50:00Z", "2027-01-01T00:00:00Z");
    SEQ("0 0 * * SUN", "2026-12-28T00:00:00Z", "2027-01-03T00:00:00Z");
}

static void february_29_fires_only_in_leap_years(void **state)
{
    SEQ("0 0 29 2 *", "2026-01-01T00:00:00Z", "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z");
    /* 2100 is not a leap year, 2400 is */
    SEQ("0 0 29 2 *", "2097-01-01T00:00:00Z", "2104-02-29T00:00:00Z");
    SEQ("0 0 29 2 *", "2397-01-01T00:00:00Z", "2400-02-29T00:00:00Z");
    /* Feb 29 falling on a Sunday (AND: the day-of-week field starts with '*') */
    SEQ("0 0 29 2 */7", "2026-01-01T00:00:00Z", "2032-02-29T00:00:00Z", "2060-02-29T00:00:00Z");
}

static void nothing_fires_after_the_year_9999(void **state)
{
    cron_expr_t *e = parse_ok("0 0 29 2 *");
    int64_t t;
    assert_int_equal(cron_next(e, NULL, utc("9996-02-29T00:00:00Z") - 1, &t), 0);
    assert_int_equal(cron_next(e, NULL, t, &t), -ERANGE);
    assert_int_equal(cron_next(e, NULL, INT64_MAX, &t), -ERANGE);
    assert_int_equal(cron_next(e, NULL, INT64_MIN, &t), -ERANGE);
    cron_free(e);
}

static void a_null_zone_means_utc(void **state)
{
    cron_expr_t *e = parse_ok("0 3 * * *");
    int64_t a, b;
    assert_int_equal(cron_next(e, NULL, utc("2026-05-01T00:00:00Z"), &a), 0);
    assert_int_equal(cron_next(e, tz_utc(), utc("2026-05-01T00:00:00Z"), &b), 0);
    assert_int_equal(a, b);
    assert_int_equal(a, utc("2026-05-01T03:00:00Z"));
    cron_free(e);
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void rare_expressions_cost_far_less_than_a_millisecond(void **state)
{
    const char *exprs[] = {"0 0 29 2 */7",   "0 0 29 2 MON",     "0 0 L 2 5L",
                           "0 0 */29 2 */7", "59 59 23 31 12 *", "0 0 1 1 *"};
    char err[200];
    const tz_zone_t *z = tz_load("Australia/Lord_Howe", err, sizeof(err));
    assert_non_null(z);
    for (size_t i = 0; i < CV_ARRAY_SIZE(exprs); i++) {
        cron_expr_t *e = parse_ok(exprs[i]);
        int64_t t = utc("2026-01-01T00:00:00Z");
        double start = cpu_seconds();
        int n = 0;
        while (n < 200 && cron_next(e, z, t, &t) == 0)
            n++;
        double per = (cpu_seconds() - start) / n;
        if (per > 200e-6)
            fail_msg("'%s': %.1f us per instant", exprs[i], per * 1e6);
        cron_free(e);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_next_instant_is_strictly_after_the_given_one),
        cmocka_unit_test(seconds_field_fires_within_the_minute),
        cmocka_unit_test(last_day_of_month_follows_month_lengths),
        cmocka_unit_test(w_picks_the_nearest_weekday_without_leaving_the_month),
        cmocka_unit_test(hash_and_l_in_day_of_week_pick_weeks_of_the_month),
        cmocka_unit_test(a_day_matching_either_day_field_fires_when_both_are_restricted),
        cmocka_unit_test(a_day_field_starting_with_a_star_makes_both_required),
        cmocka_unit_test(year_boundaries_are_crossed),
        cmocka_unit_test(february_29_fires_only_in_leap_years),
        cmocka_unit_test(nothing_fires_after_the_year_9999),
        cmocka_unit_test(a_null_zone_means_utc),
        cmocka_unit_test(rare_expressions_cost_far_less_than_a_millisecond),
        cmocka_unit_test(expressions_with_the_same_day_fields_share_one_table_that_outlives_each),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tz_cache_clear();
    return rc;
}
