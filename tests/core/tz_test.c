/* Time zones read from TZif files: offsets, gaps and overlaps, the POSIX footer, name checks. */
#include "core/tz.h"
#include "core/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int64_t utc(const char *s)
{
    int64_t t = 0;
    assert_int_equal(cv_parse_rfc3339(s, &t), 0);
    return t;
}

static const tz_zone_t *zone(const char *name)
{
    char err[256] = "";
    const tz_zone_t *z = tz_load(name, err, sizeof(err));
    if (!z)
        fail_msg("%s", err);
    return z;
}

static void stockholm_is_one_hour_ahead_in_winter_and_two_in_summer(void **state)
{
    const tz_zone_t *z = zone("Europe/Stockholm");
    assert_string_equal(tz_zone_name(z), "Europe/Stockholm");
    assert_int_equal(tz_offset_at(z, utc("2026-01-15T12:00:00Z")), 3600);
    assert_int_equal(tz_offset_at(z, utc("2026-07-15T12:00:00Z")), 7200);
    /* The change itself: 2026-03-29 01:00 UTC and 2026-10-25 01:00 UTC. */
    assert_int_equal(tz_offset_at(z, utc("2026-03-29T00:59:59Z")), 3600);
    assert_int_equal(tz_offset_at(z, utc("2026-03-29T01:00:00Z")), 7200);
    assert_int_equal(tz_offset_at(z, utc("2026-10-25T00:59:59Z")), 7200);
    assert_int_equal(tz_offset_at(z, utc("2026-10-25T01:00:00Z")), 3600);
}

static void new_york_is_five_hours_behind_in_winter_and_four_in_summer(void **state)
{
    const tz_zone_t *z = zone("America/New_York");
    assert_int_equal(tz_offset_at(z, utc("2026-01-15T12:00:00Z")), -5 * 3600);
    assert_int_equal(tz_offset_at(z, utc("2026-07-15T12:00:00Z")), -4 * 3600);
    assert_int_equal(tz_offset_at(z, utc("2026-03-08T06:59:59Z")), -5 * 3600);
    assert_int_equal(tz_offset_at(z, utc("2026-03-08T07:00:00Z")), -4 * 3600);
}

static void lord_howe_moves_its_clock_by_thirty_minutes(void **state)
{
    const tz_zone_t *z = zone("Australia/Lord_Howe");
    assert_int_equal(tz_offset_at(z, utc("2026-07-01T00:00:00Z")), 10 * 3600 + 1800);
    assert_int_equal(tz_offset_at(z, utc("2026-12-01T00:00:00Z")), 11 * 3600);
    /* DST starts on the first Sunday of October at 02:00 local (+10:30): 2026-10-03 15:30 UTC. */
    assert_int_equal(tz_offset_at(z, utc("2026-10-03T15:29:59Z")), 10 * 3600 + 1800);
    assert_int_equal(tz_offset_at(z, utc("2026-10-03T15:30:00Z")), 11 * 3600);
}

static void kolkata_is_five_and_a_half_hours_ahead_all_year(void **state)
{
    const tz_zone_t *z = zone("Asia/Kolkata");
    assert_int_equal(tz_offset_at(z, utc("2026-01-15T12:00:00Z")), 5 * 3600 + 1800);
    assert_int_equal(tz_offset_at(z, utc("2026-07-15T12:00:00Z")), 5 * 3600 + 1800);
    assert_int_equal(tz_next_transition(z, utc("2026-01-01T00:00:00Z")), INT64_MAX);
}

static void chatham_uses_quarter_hour_offsets(void **state)
{
    const tz_zone_t *z = zone("Pacific/Chatham");
    assert_int_equal(tz_offset_at(z, utc("2026-07-01T00:00:00Z")), 12 * 3600 + 2700);
    assert_int_equal(tz_offset_at(z, utc("2026-01-01T00:00:00Z")), 13 * 3600 + 2700);
}

static void far_future_instants_follow_the_footer_rule(void **state)
{
    const tz_zone_t *z = zone("Europe/Stockholm");
    /* Last Sunday of March 2100 is the 28th; of October the 31st. */
    assert_int_equal(tz_offset_at(z, utc("2100-03-28T00:59:59Z")), 3600);
    assert_int_equal(tz_offset_at(z, utc("2100-03-28T01:00:00Z")), 7200);
    assert_int_equal(tz_offset_at(z, utc("2100-10-31T00:59:59Z")), 7200);
    assert_int_equal(tz_offset_at(z, utc("2100-10-31T01:00:00Z")), 3600);
    assert_int_equal(tz_next_transition(z, utc("2100-01-01T00:00:00Z")),
                     utc("2100-03-28T01:00:00Z"));
    const tz_zone_t *lh = zone("Australia/Lord_Howe");
    /* 2100: DST ends on the first Sunday of April (4th) at 02:00 DST = 15:00 UTC the day before. */
    assert_int_equal(tz_offset_at(lh, utc("2100-04-03T14:59:59Z")), 11 * 3600);
    assert_int_equal(tz_offset_at(lh, utc("2100-04-03T15:00:00Z")), 10 * 3600 + 1800);
}

static void next_transition_skips_to_the_next_change_of_offset(void **state)
{
    const tz_zone_t *z = zone("Europe/Stockholm");
    int64_t t = tz_next_transition(z, utc("2026-01-01T00:00:00Z"));
    assert_int_equal(t, utc("2026-03-29T01:00:00Z"));
    assert_int_equal(tz_next_transition(z, t), utc("2026-10-25T01:00:00Z"));
    assert_int_equal(tz_next_transition(tz_utc(), 0), INT64_MAX);
}

static void a_wall_clock_time_that_exists_once_maps_to_one_instant(void **state)
{
    tz_local_t r;
    assert_int_equal(tz_local_to_utc(zone("Europe/Stockholm"), utc("2026-06-01T12:00:00Z"), &r), 0);
    assert_int_equal(r.kind, TZ_LOCAL_ONCE);
    assert_int_equal(r.first, utc("2026-06-01T10:00:00Z"));
    assert_int_equal(r.second, r.first);
}

static void a_wall_clock_time_in_a_spring_gap_reports_the_gap(void **state)
{
    tz_local_t r;
    assert_int_equal(tz_local_to_utc(zone("Europe/Stockholm"), utc("2026-03-29T02:30:00Z"), &r), 0);
    assert_int_equal(r.kind, TZ_LOCAL_GAP);
    assert_int_equal(r.gap_len, 3600);
    assert_int_equal(r.transition, utc("2026-03-29T01:00:00Z"));
    assert_int_equal(r.first, utc("2026-03-29T01:30:00Z")); /* 03:30 CEST */
    /* Lord Howe skips 02:00-02:30: 02:15 moves to 02:45 (+11). */
    assert_int_equal(tz_local_to_utc(zone("Australia/Lord_Howe"), utc("2026-10-04T02:15:00Z"), &r),
                     0);
    assert_int_equal(r.kind, TZ_LOCAL_GAP);
    assert_int_equal(r.gap_len, 1800);
    assert_int_equal(r.first, utc("2026-10-03T15:45:00Z"));
}

static void a_wall_clock_time_in_an_autumn_overlap_maps_to_two_instants(void **state)
{
    tz_local_t r;
    assert_int_equal(tz_local_to_utc(zone("Europe/Stockholm"), utc("2026-10-25T02:30:00Z"), &r), 0);
    assert_int_equal(r.kind, TZ_LOCAL_TWICE);
    assert_int_equal(r.first, utc("2026-10-25T00:30:00Z"));
    assert_int_equal(r.second, utc("2026-10-25T01:30:00Z"));
    assert_int_equal(r.transition, utc("2026-10-25T01:00:00Z"));
    assert_int_equal(tz_local_to_utc(zone("America/New_York"), utc("2026-11-01T01:59:59Z"), &r), 0);
    assert_int_equal(r.kind, TZ_LOCAL_TWICE);
    assert_int_equal(r.second - r.first, 3600);
}

static void unknown_zone_is_an_error_that_names_it(void **state)
{
    char err[256];
    assert_null(tz_load("Europe/Stokholm", err, sizeof(err)));
    assert_string_equal(err,
                        "unknown time zone 'Europe/Stokholm' (did you mean Europe/Stockholm?)");
    assert_null(tz_load("Nowhere/Special_Place_Xyz", err, sizeof(err)));
    assert_non_null(strstr(err, "unknown time zone 'Nowhere/Special_Place_Xyz'"));
    assert_null(tz_load("Europe", err, sizeof(err))); /* a directory, not a zone */
    assert_non_null(strstr(err, "unknown time zone 'Europe'"));
}

static void names_that_leave_the_database_are_rejected(void **state)
{
    const char *bad[] = {"../../etc/passwd",
                         "/etc/passwd",
                         "Europe/../../etc/passwd",
                         "Europe//Stockholm",
                         "Europe/./Stockholm",
                         "Europe/Stock holm",
                         "",
                         ".."};
    char err[256];
    for (size_t i = 0; i < CV_ARRAY_SIZE(bad); i++) {
        err[0] = '\0';
        assert_null(tz_load(bad[i], err, sizeof(err)));
        assert_non_null(strstr(err, "invalid time zone name"));
    }
}

static void utc_loads_without_a_database_and_tzdir_is_honoured(void **state)
{
    tz_cache_clear();
    setenv("TZDIR", "/nonexistent-tz-dir", 1);
    char err[256];
    const tz_zone_t *z = tz_load("UTC", err, sizeof(err));
    assert_non_null(z);
    assert_int_equal(tz_offset_at(z, utc("2026-07-01T00:00:00Z")), 0);
    assert_non_null(tz_load("Etc/UTC", err, sizeof(err)));
    assert_null(tz_load("Europe/Stockholm", err, sizeof(err)));
    unsetenv("TZDIR");
    tz_cache_clear();
    assert_non_null(tz_load("Europe/Stockholm", err, sizeof(err)));
}

static void a_zone_is_loaded_once_and_shared(void **state)
{
    assert_ptr_equal(zone("Asia/Kolkata"), zone("Asia/Kolkata"));
}

/* Writes bytes to dir/name. */
static void write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char *path = cv_sprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    free(path);
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* A v2 TZif with no transitions, one type (+1 h) and the given footer: a "slim" file. */
static size_t slim_tzif(unsigned char *buf, const char *footer)
{
    size_t n = 0;
    for (int part = 0; part < 2; part++) {
        memset(buf + n, 0, 44);
        memcpy(buf + n, "TZif2", 5);
        put32(buf + n + 20 + 16, 1); /* typecnt */
        put32(buf + n + 20 + 20, 4); /* charcnt */
        n += 44;
        put32(buf + n, 3600);
        buf[n + 4] = 0, buf[n + 5] = 0;
        memcpy(buf + n + 6, "CET", 4);
        n += 10;
    }
    n += (size_t)sprintf((char *)buf + n, "\n%s\n", footer);
    return n;
}

static void slim_files_rely_on_the_footer_alone(void **state)
{
    char dir[] = "/tmp/tz_test_XXXXXX";
    assert_non_null(mkdtemp(dir));
    unsigned char buf[256];
    write_file(dir, "Slim", buf, slim_tzif(buf, "CET-1CEST,M3.5.0,M10.5.0/3"));
    write_file(dir, "Odd", buf, slim_tzif(buf, "<+0330>-3:30<+05>-5,J60/-1,300/26"));
    write_file(dir, "Junk", "not a tz file at all, sorry", 27);
    write_file(dir, "BadFooter", buf, slim_tzif(buf, "CET-1CEST,M13.5.0,M10.5.0/3"));
    tz_cache_clear();
    setenv("TZDIR", dir, 1);
    char err[256];
    const tz_zone_t *z = zone("Slim");
    assert_int_equal(tz_offset_at(z, utc("2026-01-15T12:00:00Z")), 3600);
    assert_int_equal(tz_offset_at(z, utc("2026-03-29T01:00:00Z")), 7200);
    assert_int_equal(tz_offset_at(z, utc("2026-10-25T00:59:59Z")), 7200);
    assert_int_equal(tz_offset_at(z, utc("2026-10-25T01:00:00Z")), 3600);
    /* J60 is March 1 (Feb 29 never counted), at 23:00 the day before in standard time (+3:30);
     * zero-based day 300 is Oct 28 in 2026, at 26:00 = Oct 29 02:00 in DST (+5). */
    const tz_zone_t *o = zone("Odd");
    assert_int_equal(tz_offset_at(o, utc("2026-02-28T19:29:59Z")), 3 * 3600 + 1800);
    assert_int_equal(tz_offset_at(o, utc("2026-02-28T19:30:00Z")), 5 * 3600);
    assert_int_equal(tz_offset_at(o, utc("2026-10-28T20:59:59Z")), 5 * 3600);
    assert_int_equal(tz_offset_at(o, utc("2026-10-28T21:00:00Z")), 3 * 3600 + 1800);
    assert_null(tz_load("Junk", err, sizeof(err)));
    assert_string_equal(err, "time zone 'Junk': not a TZif file");
    assert_null(tz_load("BadFooter", err, sizeof(err)));
    assert_non_null(strstr(err, "footer"));
    unsetenv("TZDIR");
    tz_cache_clear();
    const char *names[] = {"Slim", "Odd", "Junk", "BadFooter"};
    for (size_t i = 0; i < CV_ARRAY_SIZE(names); i++) {
        char *p = cv_sprintf("%s/%s", dir, names[i]);
        unlink(p);
        free(p);
    }
    rmdir(dir);
}

static void version_one_files_are_read_from_their_32_bit_data(void **state)
{
    FILE *f = fopen("/usr/share/zoneinfo/Europe/Stockholm", "rb");
    assert_non_null(f);
    unsigned char buf[8192];
    size_t len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    buf[4] = 0; /* pretend version 1: the 64-bit part and footer must be ignored */
    char dir[] = "/tmp/tz_test_XXXXXX";
    assert_non_null(mkdtemp(dir));
    write_file(dir, "V1", buf, len);
    tz_cache_clear();
    setenv("TZDIR", dir, 1);
    const tz_zone_t *z = zone("V1");
    assert_int_equal(tz_offset_at(z, utc("2026-01-15T12:00:00Z")), 3600);
    assert_int_equal(tz_offset_at(z, utc("2026-07-15T12:00:00Z")), 7200);
    unsetenv("TZDIR");
    tz_cache_clear();
    char *p = cv_sprintf("%s/V1", dir);
    unlink(p);
    free(p);
    rmdir(dir);
}

/* The glibc reference, used only here: localtime_r with TZ set. */
static long glibc_offset(const char *name, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    (void)name;
    return tm.tm_gmtoff;
}

static void offsets_agree_with_glibc_across_zones_and_years(void **state)
{
    const char *zones[] = {"Europe/Stockholm", "America/New_York",  "Australia/Lord_Howe",
                           "Asia/Kolkata",     "Pacific/Chatham",   "America/Sao_Paulo",
                           "Europe/Dublin",    "Africa/Casablanca", "America/Godthab",
                           "Pacific/Apia",     "Asia/Tehran",       "America/Santiago"};
    uint64_t seed = 42;
    int compared = 0;
    for (size_t i = 0; i < CV_ARRAY_SIZE(zones); i++) {
        const tz_zone_t *z = zone(zones[i]);
        char *tzenv = cv_sprintf(":%s", zones[i]);
        setenv("TZ", tzenv, 1);
        tzset();
        for (int k = 0; k < 3000; k++) {
            seed = seed * 6364136223846793005u + 1442695040888963407u;
            /* 1950 .. 2150 */
            int64_t t = utc("1950-01-01T00:00:00Z") + (int64_t)((seed >> 16) % (200ull * 31556952));
            long want = glibc_offset(zones[i], t);
            if (tz_offset_at(z, t) != want)
                fail_msg("%s at %lld: ours %d, glibc %ld", zones[i], (long long)t,
                         tz_offset_at(z, t), want);
            compared++;
        }
        free(tzenv);
    }
    unsetenv("TZ");
    tzset();
    assert_true(compared == 3000 * (int)CV_ARRAY_SIZE(zones));
}

static int teardown(void **state)
{
    tz_cache_clear();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stockholm_is_one_hour_ahead_in_winter_and_two_in_summer),
        cmocka_unit_test(new_york_is_five_hours_behind_in_winter_and_four_in_summer),
        cmocka_unit_test(lord_howe_moves_its_clock_by_thirty_minutes),
        cmocka_unit_test(kolkata_is_five_and_a_half_hours_ahead_all_year),
        cmocka_unit_test(chatham_uses_quarter_hour_offsets),
        cmocka_unit_test(far_future_instants_follow_the_footer_rule),
        cmocka_unit_test(next_transition_skips_to_the_next_change_of_offset),
        cmocka_unit_test(a_wall_clock_time_that_exists_once_maps_to_one_instant),
        cmocka_unit_test(a_wall_clock_time_in_a_spring_gap_reports_the_gap),
        cmocka_unit_test(a_wall_clock_time_in_an_autumn_overlap_maps_to_two_instants),
        cmocka_unit_test(unknown_zone_is_an_error_that_names_it),
        cmocka_unit_test(names_that_leave_the_database_are_rejected),
        cmocka_unit_test(utc_loads_without_a_database_and_tzdir_is_honoured),
        cmocka_unit_test(a_zone_is_loaded_once_and_shared),
        cmocka_unit_test(slim_files_rely_on_the_footer_alone),
        cmocka_unit_test(version_one_files_are_read_from_their_32_bit_data),
        cmocka_unit_test(offsets_agree_with_glibc_across_zones_and_years),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
