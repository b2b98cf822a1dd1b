/* Daylight saving time: fixed hours move out of gaps and fire once in overlaps; `*` hours keep
 * their cadence in real time; no two firings share an instant. Checked by hand in Stockholm,
 * New York, Lord Howe (30-minute shifts) and Kolkata, and against a brute-force oracle built on
 * glibc's localtime_r around every 2026 transition of several zones. */
#include "core/cron.h"
#include "core/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t utc(const char *s)
{
    int64_t t = 0;
    assert_int_equal(cv_parse_rfc3339(s, &t), 0);
    return t;
}

static const tz_zone_t *zone(const char *name)
{
    char err[256];
    const tz_zone_t *z = tz_load(name, err, sizeof(err));
    if (!z)
        fail_msg("%s", err);
    return z;
}

/* Checks the instants after `after` (RFC 3339, may carry an offset) in zone `tz`; want are RFC
 * 3339 instants with offsets, NULL-terminated. */
static void expect_sequence(const char *tz, const char *text, const char *after,
                            const char *const *want)
{
    cron_expr_t *e = NULL;
    cron_error_t err;
    if (cron_parse(text, "job", &e, &err) != 0)
        fail_msg("'%s': %s", text, err.message);
    int64_t t = utc(after);
    for (int i = 0; want[i]; i++) {
        assert_int_equal(cron_next(e, zone(tz), t, &t), 0);
        if (t != utc(want[i])) {
            char got[40];
            cv_format_utc(t, got, sizeof(got));
            fail_msg("%s '%s' firing %d: got %s, want %s", tz, text, i, got, want[i]);
        }
    }
    cron_free(e);
}

#define SEQ(tz, text, after, ...)                                                                  \
    expect_sequence(tz, text, after, (const char *const[]){__VA_ARGS__, NULL})

static void fires_once_shifted_forward_by_the_gap_when_a_fixed_time_is_skipped(void **state)
{
    /* 2026-03-29: Stockholm jumps from 02:00 CET to 03:00 CEST */
    SEQ("Europe/Stockholm", "30 2 * * *", "2026-03-28T00:00:00+01:00", "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00");
    SEQ("Europe/Stockholm", "0 2 * * *", "2026-03-28T12:00:00+01:00", "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:00:00+02:00");
}

static void fires_once_at_first_occurrence_when_clock_falls_back(void **state)
{
    /* 2026-10-25: Stockholm goes back from 03:00 CEST to 02:00 CET */
    SEQ("Europe/Stockholm", "30 2 * * *", "2026-10-24T12:00:00+02:00", "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00");
    /* asked from inside the repeated hour, after the first 02:30: the next day */
    SEQ("Europe/Stockholm", "30 2 * * *", "2026-10-25T02:10:00+01:00", "2026-10-26T02:30:00+01:00");
}

static void a_shifted_time_and_a_real_one_at_the_same_instant_fire_once(void **state)
{
    SEQ("Europe/Stockholm", "30 2,3 * * *", "2026-03-29T00:00:00+01:00",
        "2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00");
    /* 02:00 -> 03:00 and 02:45 -> 03:45 coincide with the real 03:00 and 03:45 */
    SEQ("Europe/Stockholm", "0,45 2,3 * * *", "2026-03-29T00:00:00+01:00",
        "2026-03-29T03:00:00+02:00", "2026-03-29T03:45:00+02:00", "2026-03-30T02:00:00+02:00");
}

static void a_shifted_time_is_found_when_asked_after_the_gap(void **state)
{
    /* 02:45 does not exist; it fires at 03:45 CEST, which is still ahead at 03:10 CEST */
    SEQ("Europe/Stockholm", "45 2 * * *", "2026-03-29T03:10:00+02:00", "2026-03-29T03:45:00+02:00",
        "2026-03-30T02:45:00+02:00");
    /* a real 03:20 comes before the shifted 02:45 (03:45) and 02:20 (03:20) fires once */
    SEQ("Europe/Stockholm", "20,45 2,3 * * *", "2026-03-29T03:10:00+02:00",
        "2026-03-29T03:20:00+02:00", "2026-03-29T03:45:00+02:00", "2026-03-30T02:20:00+02:00");
}

static void every_thirty_minutes_stays_every_thirty_minutes_in_real_time(void **state)
{
    SEQ("Europe/Stockholm", "*/30 * * * *", "2026-03-29T01:00:00+01:00",
        "2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00");
    SEQ("Europe/Stockholm", "*/30 * * * *", "2026-10-25T01:45:00+02:00",
        "2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-25T02:00:00+01:00",
        "2026-10-25T02:30:00+01:00", "2026-10-25T03:00:00+01:00");
    SEQ("America/New_York", "*/30 * * * *", "2026-11-01T00:45:00-04:00",
        "2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T01:00:00-05:00",
        "2026-11-01T01:30:00-05:00", "2026-11-01T02:00:00-05:00");
}

static void every_two_hours_fires_both_occurrences_of_the_repeated_hour(void **state)
{
    SEQ("Europe/Stockholm", "0 */2 * * *", "2026-10-25T00:30:00+02:00", "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00", "2026-10-25T04:00:00+01:00");
}

static void nothing_is_invented_for_the_skipped_hour(void **state)
{
    SEQ("Europe/Stockholm", "15 * * * *", "2026-03-29T01:30:00+01:00", "2026-03-29T03:15:00+02:00");
    SEQ("Europe/Stockholm", "0 */2 * * *", "2026-03-29T00:30:00+01:00",
        "2026-03-29T04:00:00+02:00");
    SEQ("America/New_York", "30 * * * *", "2026-03-08T01:45:00-05:00", "2026-03-08T03:30:00-04:00");
}

static void new_york_follows_the_same_rules(void **state)
{
    SEQ("America/New_York", "30 2 * * *", "2026-03-07T12:00:00-05:00", "2026-03-08T03:30:00-04:00",
        "2026-03-09T02:30:00-04:00");
    SEQ("America/New_York", "30 1 * * *", "2026-10-31T12:00:00-04:00", "2026-11-01T01:30:00-04:00",
        "2026-11-02T01:30:00-05:00");
}

static void lord_howe_moves_skipped_times_by_its_thirty_minute_gap(void **state)
{
    /* 2026-10-04 02:00 (+10:30) becomes 02:30 (+11) */
    SEQ("Australia/Lord_Howe", "15 2 * * *", "2026-10-03T12:00:00+10:30",
        "2026-10-04T02:45:00+11:00", "2026-10-05T02:15:00+11:00");
    SEQ("Australia/Lord_Howe", "*/15 * * * *", "2026-10-04T01:40:00+10:30",
        "2026-10-04T01:45:00+10:30", "2026-10-04T02:30:00+11:00", "2026-10-04T02:45:00+11:00");
    /* 2026-04-05 02:00 (+11) goes back to 01:30 (+10:30): 01:30-02:00 happens twice */
    SEQ("Australia/Lord_Howe", "45 1 * * *", "2026-04-04T12:00:00+11:00",
        "2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30");
    SEQ("Australia/Lord_Howe", "*/30 * * * *", "2026-04-05T01:10:00+11:00",
        "2026-04-05T01:30:00+11:00", "2026-04-05T01:30:00+10:30", "2026-04-05T02:00:00+10:30");
}

static void kolkata_fires_every_day_exactly_one_day_apart(void **state)
{
    cron_expr_t *e = NULL;
    assert_int_equal(cron_parse("30 2 * * *", NULL, &e, NULL), 0);
    int64_t t = utc("2026-01-01T00:00:00+05:30"), prev = 0;
    for (int i = 0; i < 400; i++) {
        assert_int_equal(cron_next(e, zone("Asia/Kolkata"), t, &t), 0);
        assert_int_equal(t % 86400, 21 * 3600); /* 02:30 IST is 21:00 UTC */
        if (prev)
            assert_int_equal(t - prev, 86400);
        prev = t;
    }
    cron_free(e);
}

static void seconds_follow_the_same_rules(void **state)
{
    SEQ("Europe/Stockholm", "10 30 2 * * *", "2026-03-29T00:00:00+01:00",
        "2026-03-29T03:30:10+02:00");
    SEQ("Europe/Stockholm", "*/20 * * * * *", "2026-03-29T01:59:30+01:00",
        "2026-03-29T01:59:40+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:00:20+02:00");
}

/* ---- brute-force oracle -------------------------------------------------------------------- */

/* Parses the subset "*", "*\/n", "a", "a-b", "a-b/n" and lists of them into a bit mask. */
static uint64_t oracle_field(const char *s, int lo, int hi)
{
    uint64_t bits = 0;
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", s);
    for (char *save = NULL, *part = strtok_r(buf, ",", &save); part;
         part = strtok_r(NULL, ",", &save)) {
        int a = lo, b = hi, step = 1;
        char *slash = strchr(part, '/');
        if (slash)
            step = atoi(slash + 1);
        if (part[0] != '*') {
            a = b = atoi(part);
            char *dash = strchr(part, '-');
            if (dash)
                b = atoi(dash + 1);
        }
        for (int v = a; v <= b; v += step)
            bits |= UINT64_C(1) << v;
    }
    return bits;
}

/* glibc's view of the local time at t (TZ must be set). */
static int64_t glibc_local(int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    return t + tm.tm_gmtoff;
}

static bool wall_matches(int64_t w, uint64_t mins, uint64_t hours)
{
    int64_t s = ((w % 86400) + 86400) % 86400;
    return (mins >> (s / 60 % 60) & 1) && (hours >> (s / 3600) & 1);
}

/* Where a fixed-hour wall time fires, by scanning real time minute by minute. */
static int64_t oracle_fixed_instant(int64_t w)
{
    int64_t last_before = 0;
    for (int64_t t = w - 27 * 3600; t <= w + 27 * 3600; t += 60) {
        int64_t l = glibc_local(t);
        if (l == w)
            return t;
        if (l < w)
            last_before = t;
    }
    return w - (glibc_local(last_before) - last_before);
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Every firing of "m h * * *" in (from, to] (from minute-aligned), sorted and unique. Returns the
 * count. */
static size_t oracle(const char *m, const char *h, int64_t from, int64_t to, int64_t *out,
                     size_t cap)
{
    uint64_t mins = oracle_field(m, 0, 59), hours = oracle_field(h, 0, 23);
    size_t n = 0;
    if (h[0] == '*') {
        for (int64_t t = from + 60; t <= to; t += 60)
            if (wall_matches(glibc_local(t), mins, hours) && n < cap)
                out[n++] = t;
        return n;
    }
    for (int64_t w = from - 86400; w <= to + 86400; w += 60) {
        if (!wall_matches(w, mins, hours))
            continue;
        int64_t t = oracle_fixed_instant(w);
        if (t > from && t <= to && n < cap)
            out[n++] = t;
    }
    qsort(out, n, sizeof(*out), cmp64);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || out[u - 1] != out[i])
            out[u++] = out[i];
    return u;
}

static void check_against_oracle(const char *zone_name, const char *m, const char *h,
                                 int64_t around)
{
    int64_t from = around - 2 * 86400, to = around + 2 * 86400;
    static int64_t want[8192];
    char *text = cv_sprintf("%s %s * * *", m, h);
    size_t n = oracle(m, h, from, to, want, CV_ARRAY_SIZE(want));
    assert_true(n > 0 && n < CV_ARRAY_SIZE(want));
    cron_expr_t *e = NULL;
    assert_int_equal(cron_parse(text, NULL, &e, NULL), 0);
    int64_t t = from;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(cron_next(e, zone(zone_name), t, &t), 0);
        if (t != want[i])
            fail_msg("%s '%s' firing %zu: got %lld, oracle %lld", zone_name, text, i, (long long)t,
                     (long long)want[i]);
    }
    assert_int_equal(cron_next(e, zone(zone_name), t, &t), 0);
    assert_true(t > to);
    cron_free(e);
    free(text);
}

static void matches_a_brute_force_oracle_around_every_2026_transition(void **state)
{
    const char *zones[] = {"Europe/Stockholm", "America/New_York", "Australia/Lord_Howe",
                           "Pacific/Chatham",  "Asia/Kolkata",     "America/Santiago"};
    const char *exprs[][2] = {{"30", "2"},    {"0,45", "2,3"}, {"15", "2"},   {"*/15", "1-3"},
                              {"45", "1"},    {"59", "1,2"},   {"*/30", "*"}, {"0", "*/2"},
                              {"15,45", "*"}, {"0", "*"},      {"5", "*/3"},  {"*/20", "0-4"}};
    for (size_t i = 0; i < CV_ARRAY_SIZE(zones); i++) {
        char *tzenv = cv_sprintf(":%s", zones[i]);
        setenv("TZ", tzenv, 1);
        tzset();
        const tz_zone_t *z = zone(zones[i]);
        int64_t t = utc("2026-01-01T00:00:00Z");
        int transitions = 0;
        while ((t = tz_next_transition(z, t)) < utc("2027-01-01T00:00:00Z")) {
            transitions++;
            for (size_t k = 0; k < CV_ARRAY_SIZE(exprs); k++)
                check_against_oracle(zones[i], exprs[k][0], exprs[k][1], t);
        }
        if (strcmp(zones[i], "Asia/Kolkata") == 0) {
            assert_int_equal(transitions, 0);
            for (size_t k = 0; k < CV_ARRAY_SIZE(exprs); k++)
                check_against_oracle(zones[i], exprs[k][0], exprs[k][1],
                                     utc("2026-06-01T00:00:00Z"));
        } else {
            assert_int_equal(transitions, 2);
        }
        free(tzenv);
    }
    unsetenv("TZ");
    tzset();
}

static void firings_strictly_increase_for_a_decade_in_every_zone(void **state)
{
    const char *zones[] = {"Europe/Stockholm", "America/New_York", "Australia/Lord_Howe",
                           "Asia/Kolkata",     "Pacific/Chatham",  "UTC"};
    const char *exprs[] = {"30 2 * * *", "*/30 * * * *", "0 */2 * * *", "0,30 1-3 * * *",
                           "0 0 L * *",  "15 2 * * 0#1", "*/7 2 * * 0", "H H(1-3) * * *"};
    for (size_t i = 0; i < CV_ARRAY_SIZE(zones); i++)
        for (size_t k = 0; k < CV_ARRAY_SIZE(exprs); k++) {
            cron_expr_t *e = NULL;
            assert_int_equal(cron_parse(exprs[k], "seed", &e, NULL), 0);
            int64_t t = utc("2026-01-01T00:00:00Z"), next;
            while (t < utc("2036-01-01T00:00:00Z")) {
                assert_int_equal(cron_next(e, zone(zones[i]), t, &next), 0);
                assert_true(next > t);
                t = next;
            }
            cron_free(e);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fires_once_shifted_forward_by_the_gap_when_a_fixed_time_is_skipped),
        cmocka_unit_test(fires_once_at_first_occurrence_when_clock_falls_back),
        cmocka_unit_test(a_shifted_time_and_a_real_one_at_the_same_instant_fire_once),
        cmocka_unit_test(a_shifted_time_is_found_when_asked_after_the_gap),
        cmocka_unit_test(every_thirty_minutes_stays_every_thirty_minutes_in_real_time),
        cmocka_unit_test(every_two_hours_fires_both_occurrences_of_the_repeated_hour),
        cmocka_unit_test(nothing_is_invented_for_the_skipped_hour),
        cmocka_unit_test(new_york_follows_the_same_rules),
        cmocka_unit_test(lord_howe_moves_skipped_times_by_its_thirty_minute_gap),
        cmocka_unit_test(kolkata_fires_every_day_exactly_one_day_apart),
        cmocka_unit_test(seconds_follow_the_same_rules),
        cmocka_unit_test(matches_a_brute_force_oracle_around_every_2026_transition),
        cmocka_unit_test(firings_strictly_increase_for_a_decade_in_every_zone),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tz_cache_clear();
    return rc;
}
