/* The effective job: each overridable field applied, locked jobs keeping their schedule and zone,
 * invalid overrides ignored with a warning, the override list, and the next fire. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/effjob.h"
#include "core/log.h"

#define JOBS                                                                                       \
    "jobs:\n"                                                                                      \
    "  - name: nightly\n    schedule: '0 3 * * *'\n    timezone: Europe/Berlin\n"                  \
    "    command: 'true'\n"                                                                        \
    "  - name: frozen\n    schedule: '0 4 * * *'\n    locked: true\n    command: 'true'\n"         \
    "  - name: off\n    schedule: '*/5 * * * *'\n    enabled: false\n    command: 'true'\n"

static int setup(void **state)
{
    cfg_t *cfg = NULL;
    cfg_errors_t errs = {0};
    assert_int_equal(cfg_load_string(JOBS, strlen(JOBS), "t.yaml", NULL, &cfg, &errs), 0);
    cfg_errors_free(&errs);
    *state = cfg;
    return 0;
}

static int teardown(void **state)
{
    cfg_free(*state);
    return 0;
}

static const cfg_job_t *job(void **state, const char *name)
{
    const cfg_job_t *j = cfg_find_job(*state, name);
    assert_non_null(j);
    return j;
}

/* Computes the effective job with stderr captured; returns what was logged (caller frees). */
static char *compute(effjob_t *e, const cfg_job_t *j, const effjob_override_t *ov, size_t n,
                     const char *source)
{
    fflush(stderr);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(2);
    assert_true(dup2(fileno(tmp), 2) >= 0);
    effjob_compute(e, j, ov, n, source);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fseek(tmp, 0, SEEK_END);
    long len = ftell(tmp);
    rewind(tmp);
    char *text = calloc(1, (size_t)len + 1);
    assert_int_equal(fread(text, 1, (size_t)len, tmp), (size_t)len);
    fclose(tmp);
    return text;
}

#define OV(job, field, value)                                                                      \
    {                                                                                              \
        (char *)(job), (char *)(field), (char *)(value)                                            \
    }

static void without_overrides_the_job_is_its_configuration(void **state)
{
    effjob_t e = {0};
    effjob_compute(&e, job(state, "nightly"), NULL, 0, "test");
    assert_true(e.enabled);
    assert_string_equal(e.schedule, "0 3 * * *");
    assert_string_equal(e.timezone, "Europe/Berlin");
    assert_int_equal(e.overridden, 0);
    assert_int_equal(e.ignored, 0);
    effjob_clear(&e);
    effjob_compute(&e, job(state, "off"), NULL, 0, "test");
    assert_false(e.enabled);
    assert_string_equal(e.timezone, "UTC");
    effjob_clear(&e);
}

static void an_enabled_override_switches_the_job_either_way(void **state)
{
    effjob_override_t ov[] = {OV("nightly", "enabled", "false"), OV("off", "enabled", "true")};
    effjob_t e = {0};
    effjob_compute(&e, job(state, "nightly"), ov, 2, "test");
    assert_false(e.enabled);
    assert_int_equal(e.overridden, EFFJOB_ENABLED);
    effjob_compute(&e, job(state, "off"), ov, 2, "test");
    assert_true(e.enabled);
    assert_int_equal(e.overridden, EFFJOB_ENABLED);
    effjob_clear(&e);
}

static void schedule_and_timezone_overrides_replace_the_configured_ones(void **state)
{
    effjob_override_t ov[] = {OV("nightly", "schedule", "\"*/10 * * * *\""),
                              OV("nightly", "timezone", "\"America/New_York\""),
                              OV("other", "schedule", "\"@hourly\"")};
    effjob_t e = {0};
    effjob_compute(&e, job(state, "nightly"), ov, 3, "test");
    assert_string_equal(e.schedule, "*/10 * * * *");
    assert_string_equal(e.timezone, "America/New_York");
    assert_true(e.enabled);
    assert_int_equal(e.overridden, EFFJOB_SCHEDULE | EFFJOB_TIMEZONE);
    effjob_clear(&e);
}

static void a_locked_job_keeps_its_schedule_and_zone_but_not_its_enabled(void **state)
{
    effjob_override_t ov[] = {OV("frozen", "schedule", "\"* * * * *\""),
                              OV("frozen", "timezone", "\"Asia/Tokyo\""),
                              OV("frozen", "enabled", "false")};
    effjob_t e = {0};
    char *log = compute(&e, job(state, "frozen"), ov, 3, "test");
    assert_string_equal(e.schedule, "0 4 * * *");
    assert_string_equal(e.timezone, "UTC");
    assert_false(e.enabled); /* auto_disable_after disables locked jobs too */
    assert_int_equal(e.overridden, EFFJOB_ENABLED);
    assert_int_equal(e.ignored, 0);
    assert_string_equal(log, "");
    free(log);
    effjob_clear(&e);
}

static void invalid_overrides_are_ignored_with_a_warning(void **state)
{
    effjob_override_t ov[] = {OV("nightly", "enabled", "\"no\""),
                              OV("nightly", "schedule", "{not json"),
                              OV("nightly", "timezone", "42"), OV("nightly", "color", "\"red\"")};
    effjob_t e = {0};
    char *log = compute(&e, job(state, "nightly"), ov, 4, "test");
    assert_true(e.enabled);
    assert_string_equal(e.schedule, "0 3 * * *");
    assert_string_equal(e.timezone, "Europe/Berlin");
    assert_int_equal(e.overridden, 0);
    assert_int_equal(e.ignored, EFFJOB_ENABLED | EFFJOB_SCHEDULE | EFFJOB_TIMEZONE);
    assert_non_null(strstr(log, "job nightly: the runtime override of enabled (\"no\") is not a "
                                "JSON boolean: ignored"));
    assert_non_null(strstr(log, "override of schedule ({not json) is not a JSON string"));
    assert_non_null(strstr(log, "override of timezone (42) is not a JSON string"));
    assert_null(strstr(log, "color"));
    free(log);
    log = compute(&e, job(state, "nightly"), ov, 4, NULL); /* a caller that does not warn */
    assert_string_equal(log, "");
    assert_int_equal(e.ignored, EFFJOB_ENABLED | EFFJOB_SCHEDULE | EFFJOB_TIMEZONE);
    free(log);
    effjob_clear(&e);
}

static void the_override_list_keeps_one_value_per_job_and_field(void **state)
{
    (void)state;
    effjob_overrides_t l = {0};
    assert_true(effjob_overrides_set(&l, "a", "enabled", "false"));
    assert_false(effjob_overrides_set(&l, "a", "enabled", "false"));
    assert_true(effjob_overrides_set(&l, "a", "enabled", "true"));
    assert_true(effjob_overrides_set(&l, "b", "enabled", "false"));
    assert_int_equal(l.n, 2);
    assert_string_equal(effjob_overrides_get(&l, "a", "enabled"), "true");
    assert_null(effjob_overrides_get(&l, "a", "schedule"));
    assert_true(effjob_overrides_set(&l, "a", "enabled", NULL));
    assert_false(effjob_overrides_set(&l, "a", "enabled", NULL));
    assert_null(effjob_overrides_get(&l, "a", "enabled"));
    assert_string_equal(effjob_overrides_get(&l, "b", "enabled"), "false");
    assert_int_equal(l.n, 1);
    effjob_overrides_clear(&l);
    assert_int_equal(l.n, 0);
}

static void the_next_fire_follows_the_effective_schedule_and_zone(void **state)
{
    const int64_t now = 1767225600; /* 2026-01-01T00:00:00Z */
    effjob_t e = {0};
    effjob_compute(&e, job(state, "nightly"), NULL, 0, "test");
    assert_int_equal(effjob_next_fire(&e, now), now + 2 * 3600); /* 03:00 Berlin = 02:00Z */
    effjob_override_t ov[] = {OV("nightly", "timezone", "\"UTC\"")};
    effjob_compute(&e, job(state, "nightly"), ov, 1, "test");
    assert_int_equal(effjob_next_fire(&e, now), now + 3 * 3600);
    effjob_override_t off[] = {OV("nightly", "enabled", "false")};
    effjob_compute(&e, job(state, "nightly"), off, 1, "test");
    assert_true(effjob_next_fire(&e, now) == INT64_MAX);
    effjob_override_t manual[] = {OV("nightly", "schedule", "\"manual\"")};
    effjob_compute(&e, job(state, "nightly"), manual, 1, "test");
    assert_true(effjob_next_fire(&e, now) == INT64_MAX);
    effjob_clear(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(without_overrides_the_job_is_its_configuration, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(an_enabled_override_switches_the_job_either_way, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(schedule_and_timezone_overrides_replace_the_configured_ones,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_locked_job_keeps_its_schedule_and_zone_but_not_its_enabled, setup, teardown),
        cmocka_unit_test_setup_teardown(invalid_overrides_are_ignored_with_a_warning, setup,
                                        teardown),
        cmocka_unit_test(the_override_list_keeps_one_value_per_job_and_field),
        cmocka_unit_test_setup_teardown(the_next_fire_follows_the_effective_schedule_and_zone,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
