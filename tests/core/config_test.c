/* Configuration loading: YAML and crontab, expansion, defaults and every error with its
 * position. The environment is a fake table: the tests never read or change the real one. */
#include "core/config.h"
#include "core/log.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const char *fake_vars[][2] = {
    {"HOST", "db.internal"},
    {"EMPTY", ""},
    {"TOK", "tok-from-env-123"},
    {"PGPASS", "pg-pass-xyz"},
    {"HOOK", "https://hooks.example/abc123"},
    {"API_KEY", "key-value-987"},
    {"PLAIN", "plain-value-555"},
    {"MINUTE", "15"},
    {"WAIT", "5 minutes"},
};

static const char *fake_getenv(void *ud, const char *name)
{
    (void)ud;
    for (size_t i = 0; i < sizeof(fake_vars) / sizeof(fake_vars[0]); i++)
        if (strcmp(fake_vars[i][0], name) == 0)
            return fake_vars[i][1];
    return NULL;
}

/* Rejects any schedule containing "61" at the column where it is; accepts the rest. */
static int fake_check_schedule(void *ud, const char *schedule, const char *tz, const char *job,
                               char *msg, size_t msglen, int *column)
{
    (void)ud, (void)tz, (void)job;
    const char *bad = strstr(schedule, "61");
    if (bad == NULL)
        return 0;
    snprintf(msg, msglen, "minute 61 is out of range (0-59)");
    *column = (int)(bad - schedule) + 1;
    return -EINVAL;
}

static int fake_check_timezone(void *ud, const char *tz, char *msg, size_t msglen)
{
    (void)ud;
    if (strcmp(tz, "UTC") == 0 || strcmp(tz, "Europe/Copenhagen") == 0)
        return 0;
    snprintf(msg, msglen, "not in the tz database");
    return -ENOENT;
}

static cfg_load_opts_t test_opts = {
    .getenv = fake_getenv,
    .check_schedule = fake_check_schedule,
    .check_timezone = fake_check_timezone,
};

static cfg_t *load_ok_as(const char *text, const char *name)
{
    cfg_t *cfg = NULL;
    cfg_errors_t errs = {0};
    int rc = cfg_load_string(text, strlen(text), name, &test_opts, &cfg, &errs);
    if (rc != 0) {
        cv_buf_t b = {0};
        cfg_errors_format(&errs, &b);
        print_error("unexpected errors:\n%s", b.data ? b.data : "(none)");
        cv_buf_free(&b);
    }
    assert_int_equal(rc, 0);
    assert_non_null(cfg);
    cfg_errors_free(&errs);
    return cfg;
}

static cfg_t *load_ok(const char *yaml)
{
    return load_ok_as(yaml, "test.yaml");
}

/* Loads text that must fail; returns every error formatted, one per line; *count if asked. */
static char *load_errors_as(const char *text, const char *name, size_t *count)
{
    cfg_t *cfg = (cfg_t *)1;
    cfg_errors_t errs = {0};
    int rc = cfg_load_string(text, strlen(text), name, &test_opts, &cfg, &errs);
    assert_int_equal(rc, -EINVAL);
    assert_null(cfg);
    assert_true(errs.count > 0);
    if (count)
        *count = errs.count;
    cv_buf_t b = {0};
    cfg_errors_format(&errs, &b);
    cfg_errors_free(&errs);
    return b.data;
}

static char *load_errors(const char *yaml)
{
    return load_errors_as(yaml, "test.yaml", NULL);
}

static void assert_has(const char *text, const char *needle)
{
    if (strstr(text, needle) == NULL) {
        print_error("expected to find:\n  %s\nin:\n%s", needle, text);
        fail();
    }
}

static void expect_error(const char *yaml, const char *needle)
{
    char *errs = load_errors(yaml);
    assert_has(errs, needle);
    free(errs);
}

#define JOB_HEAD "jobs:\n  - name: a\n    schedule: \"* * * * *\"\n"

/* ---- defaults and valid files ---- */

static void an_empty_file_gets_every_default(void **state)
{
    (void)state;
    cfg_t *cfg = load_ok("");
    assert_string_equal(cfg->server.listen, "127.0.0.1:8080");
    assert_string_equal(cfg->storage.sqlite.path, "./data/cronvisor.db");
    assert_null(cfg->storage.postgres);
    assert_string_equal(cfg->defaults.timezone, "UTC");
    assert_int_equal(cfg->defaults.timeout_ms, 0);
    assert_int_equal(cfg->defaults.kill_grace_ms, 10000);
    assert_int_equal(cfg->defaults.concurrency, CFG_CONC_FORBID);
    assert_int_equal(cfg->defaults.retries.max, 0);
    assert_int_equal(cfg->defaults.retries.backoff_ms, 1000);
    assert_int_equal(cfg->defaults.retries.backoff_max_ms, 30000);
    assert_int_equal(cfg->defaults.shutdown_grace_ms, 30000);
    assert_int_equal(cfg->defaults.max_output, 1048576);
    assert_int_equal(cfg->limits.max_concurrent, 0);
    assert_int_equal(cfg->limits.output_read_budget, 64 * 1024);
    assert_int_equal(cfg->limits.live_output_lines, 256);
    assert_int_equal(cfg->retention.days, 90);
    assert_int_equal(cfg->retention.max_runs_per_job, 0);
    assert_int_equal(cfg->n_jobs, 0);
    assert_false(cfg->from_crontab);
    cfg_free(cfg);
}

static void a_minimal_job_gets_the_default_values(void **state)
{
    (void)state;
    cfg_t *cfg = load_ok(JOB_HEAD "    command: echo hi\n");
    assert_int_equal(cfg->n_jobs, 1);
    const cfg_job_t *j = &cfg->jobs[0];
    assert_true(j->enabled);
    assert_false(j->locked);
    assert_false(j->manual);
    assert_int_equal(j->action, CFG_ACTION_SHELL);
    assert_string_equal(j->shell, "echo hi");
    assert_string_equal(j->timezone, "UTC");
    assert_int_equal(j->timeout_ms, 0);
    assert_int_equal(j->kill_grace_ms, 10000);
    assert_int_equal(j->concurrency, CFG_CONC_FORBID);
    assert_int_equal(j->retries.max, 0);
    assert_int_equal(j->retries.backoff_ms, 1000);
    assert_int_equal(j->max_output, 1048576);
    assert_int_equal(j->catch_up_ms, 0);
    assert_int_equal(j->auto_disable_after, 0);
    assert_int_equal(j->pos.line, 2);
    assert_int_equal(j->pos.column, 5);
    assert_string_equal(j->pos.file, "test.yaml");
    assert_int_equal(j->schedule_pos.line, 3);
    assert_int_equal(j->schedule_pos.column, 16);
    cfg_free(cfg);
}

static void jobs_inherit_the_defaults_section_unless_they_override_it(void **state)
{
    (void)state;
    cfg_t *cfg = load_ok("defaults:\n  timezone: Europe/Copenhagen\n  timeout: 5m\n"
                         "  concurrency: allow\n  retries: {max: 2, backoff: 3s}\n"
                         "  max_output: 64KiB\n"
                         "jobs:\n"
                         "  - {name: a, schedule: '@daily', command: x}\n"
                         "  - {name: b, schedule: '@daily', command: x, timeout: none,\n"
                         "     concurrency: replace, retries: {max: 0}, timezone: UTC}\n");
    const cfg_job_t *a = cfg_find_job(cfg, "a"), *b = cfg_find_job(cfg, "b");
    assert_string_equal(a->timezone, "Europe/Copenhagen");
    assert_int_equal(a->timeout_ms, 300000);
    assert_int_equal(a->concurrency, CFG_CONC_ALLOW);
    assert_int_equal(a->retries.max, 2);
    assert_int_equal(a->retries.backoff_ms, 3000);
    assert_int_equal(a->retries.backoff_max_ms, 30000);
    assert_int_equal(a->max_output, 65536);
    assert_string_equal(b->timezone, "UTC");
    assert_int_equal(b->timeout_ms, 0);
    assert_int_equal(b->concurrency, CFG_CONC_REPLACE);
    assert_int_equal(b->retries.max, 0);
    assert_int_equal(b->retries.backoff_ms, 3000);
    cfg_free(cfg);
}

static const char full_file[] =
    "server:\n  listen: 0.0.0.0:9090\n  tls: {cert: /c.pem, key: /k.pem}\n"
    "storage:\n  postgres: postgres://app:${PGPASS}@${HOST}/cron\n"
    "defaults: {shutdown_grace: 1m, kill_grace: 3s}\n"
    "limits: {max_concurrent: 4}\n"
    "retention: {days: 7, max_runs_per_job: 100}\n"
    "instance: node-1\n"
    "auth:\n  tokens:\n"
    "    - {name: ci, role: operator, token: '${TOK}'}\n"
    "    - name: root\n      role: admin\n"
    "      sha256: 1734D503F6AA6A047C36D113CBAD769F719C93784B469B771C4C3E7C63ADBEFD\n"
    "links:\n  - {title: Docs, url: 'https://docs'}\n"
    "probes:\n"
    "  - name: web\n    type: http\n    url: https://example.com/health\n"
    "    headers: {Authorization: 'Bearer ${API_KEY}'}\n    expect_status: [200, 301]\n"
    "    body_contains: ok\n    tls_verify: false\n    interval: 10s\n    fail_after: 3\n"
    "  - {name: db, type: postgres, conninfo: 'host=${HOST} password=${PGPASS}'}\n"
    "  - {name: cache, type: redis, url: 'redis://${HOST}:6379'}\n"
    "  - {name: port, type: tcp, address: 'localhost:22'}\n"
    "  - {name: check, type: exec, command: [test, -d, /]}\n"
    "jobs:\n"
    "  - name: call\n    title: Call\n    description: Calls.\n    schedule: '*/5 * * * *'\n"
    "    schedule_human: every five minutes\n    timeout: 90s\n"
    "    http:\n      method: post\n      url: https://example.com/hook\n"
    "      headers: {X-Token: '${TOK}'}\n      body: '{}'\n      expect_status: 202\n"
    "    requires: [web, db]\n    tags: [a, b]\n    catch_up: 1h30m\n"
    "    auto_disable_after: 5\n    locked: true\n    enabled: false\n"
    "  - name: argv\n    schedule: '0 0 1 * *'\n    command: [/bin/echo, one, two]\n"
    "    workdir: /tmp\n    env: {API_KEY: '${API_KEY}', MODE: '${PLAIN}'}\n"
    "notify:\n"
    "  - {name: hook, url: '${HOOK}', format: slack, events: [run.failed, run.slow],\n"
    "     jobs: [call], slow_factor: 1.5}\n"
    "  - {name: all, url: 'https://h/x'}\n";

static void a_full_file_fills_every_field(void **state)
{
    (void)state;
    cfg_t *cfg = load_ok(full_file);
    assert_string_equal(cfg->server.listen, "0.0.0.0:9090");
    assert_string_equal(cfg->server.tls.key, "/k.pem");
    assert_string_equal(cfg->storage.postgres, "postgres://app:pg-pass-xyz@db.internal/cron");
    assert_null(cfg->storage.sqlite.path);
    assert_int_equal(cfg->defaults.shutdown_grace_ms, 60000);
    assert_int_equal(cfg->limits.max_concurrent, 4);
    assert_int_equal(cfg->retention.days, 7);
    assert_int_equal(cfg->retention.max_runs_per_job, 100);
    assert_string_equal(cfg->instance, "node-1");
    assert_int_equal(cfg->auth.n_tokens, 2);
    assert_int_equal(cfg->auth.tokens[0].role, CFG_ROLE_OPERATOR);
    assert_string_equal(cfg->auth.tokens[0].token, "tok-from-env-123");
    assert_int_equal(cfg->auth.tokens[1].role, CFG_ROLE_ADMIN);
    assert_string_equal(cfg->auth.tokens[1].sha256,
                        "1734d503f6aa6a047c36d113cbad769f719c93784b469b771c4c3e7c63adbefd");
    assert_int_equal(cfg->n_links, 1);
    assert_int_equal(cfg->n_probes, 5);
    const cfg_probe_t *web = &cfg->probes[0];
    assert_int_equal(web->type, CFG_PROBE_HTTP);
    assert_string_equal(web->method, "GET");
    assert_int_equal(web->n_headers, 1);
    assert_string_equal(web->headers[0].value, "Bearer key-value-987");
    assert_int_equal(web->n_expect_status, 2);
    assert_int_equal(web->expect_status[1], 301);
    assert_false(web->tls_verify);
    assert_int_equal(web->interval_ms, 10000);
    assert_int_equal(web->timeout_ms, 5000);
    assert_int_equal(web->degraded_after_ms, 1000);
    assert_int_equal(web->fail_after, 3);
    assert_int_equal(cfg->probes[1].fail_after, 1);
    assert_true(cfg->probes[1].tls_verify);
    assert_string_equal(cfg->probes[3].address, "localhost:22");
    assert_int_equal(cfg->probes[4].argc, 3);
    assert_string_equal(cfg->probes[4].argv[2], "/");
    assert_null(cfg->probes[4].argv[3]);

    const cfg_job_t *call = cfg_find_job(cfg, "call");
    assert_int_equal(call->action, CFG_ACTION_HTTP);
    assert_string_equal(call->http.method, "POST");
    assert_string_equal(call->http.body, "{}");
    assert_int_equal(call->http.n_expect_status, 1);
    assert_int_equal(call->http.expect_status[0], 202);
    assert_int_equal(call->http.timeout_ms, 90000);
    assert_int_equal(call->n_requires, 2);
    assert_string_equal(call->tags[1], "b");
    assert_int_equal(call->catch_up_ms, 5400000);
    assert_int_equal(call->auto_disable_after, 5);
    assert_true(call->locked);
    assert_false(call->enabled);
    assert_int_equal(call->kill_grace_ms, 3000);
    assert_string_equal(call->schedule_human, "every five minutes");
    const cfg_job_t *argv = cfg_find_job(cfg, "argv");
    assert_int_equal(argv->action, CFG_ACTION_ARGV);
    assert_int_equal(argv->argc, 3);
    assert_string_equal(argv->argv[0], "/bin/echo");
    assert_string_equal(argv->workdir, "/tmp");
    assert_int_equal(argv->n_env, 2);
    assert_string_equal(argv->env[1].value, "plain-value-555");

    assert_int_equal(cfg->notify[0].format, CFG_NOTIFY_SLACK);
    assert_int_equal(cfg->notify[0].events, CFG_EV_RUN_FAILED | CFG_EV_RUN_SLOW);
    assert_int_equal(cfg->notify[0].n_jobs, 1);
    assert_true(cfg->notify[0].slow_factor == 1.5);
    assert_int_equal(cfg->notify[1].format, CFG_NOTIFY_JSON);
    assert_int_equal(cfg->notify[1].events, CFG_EV_DEFAULT);
    assert_true(cfg->notify[1].slow_factor == 2.0);
    cfg_free(cfg);
}

static bool in_block(const cfg_t *cfg, const void *p)
{
    return (const char *)p >= cfg->job_text && (const char *)p < cfg->job_text + cfg->job_text_len;
}

static void a_loaded_configuration_keeps_its_jobs_text_and_arrays_in_one_block(void **state)
{
    (void)state;
    cfg_t *cfg = load_ok(full_file);
    assert_non_null(cfg->job_text);
    const cfg_job_t *call = cfg_find_job(cfg, "call"), *argv = cfg_find_job(cfg, "argv");
    const void *in[] = {call->name,    call->http.method,  call->http.body, call->tags,
                        call->tags[1], call->requires,     argv->argv,      argv->argv[0],
                        argv->env,     argv->env[1].value, argv->workdir,   call->schedule_human};
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
        if (!in_block(cfg, in[i]))
            fail_msg("pointer %zu is outside the block", i);
    assert_string_equal(argv->env[1].value, "plain-value-555");
    assert_ptr_equal(cfg_find_job(cfg, "call"), call); /* the name map was built again */
    cfg_free(cfg);                                     /* one block: nothing left behind (ASan) */
}

static void finds_jobs_by_name(void **state)
{
    (void)state;
    cfg_t *cfg = load_ok(JOB_HEAD "    command: x\n");
    assert_non_null(cfg_find_job(cfg, "a"));
    assert_null(cfg_find_job(cfg, "b"));
    assert_null(cfg_find_job(NULL, "a"));
    cfg_free(cfg);
}

static void manual_schedule_marks_the_job_manual_without_asking_the_cron_engine(void **state)
{
    (void)state;
    cfg_t *cfg = load_ok("jobs:\n  - {name: imp, schedule: manual, command: x}\n");
    assert_true(cfg->jobs[0].manual);
    cfg_free(cfg);
}

/* ---- expansion ---- */

static void expands_variables_with_defaults_and_dollar_escapes(void **state)
{
    (void)state;
    cfg_t *cfg = load_ok("jobs:\n  - name: a\n    schedule: '${MINUTE} * * * *'\n"
                         "    title: 'at ${HOST}, ${UNSET:-fallback}, ${EMPTY:-was empty}'\n"
                         "    description: 'cost $$5 and $HOME stays, ${UNSET}|${EMPTY:-}|'\n"
                         "    command: echo $${HOME}\n");
    const cfg_job_t *j = &cfg->jobs[0];
    assert_string_equal(j->schedule, "15 * * * *");
    assert_string_equal(j->title, "at db.internal, fallback, was empty");
    assert_string_equal(j->description, "cost $5 and $HOME stays, ||");
    assert_string_equal(j->shell, "echo ${HOME}");
    cfg_free(cfg);
}

static void a_required_variable_that_is_unset_is_an_error_at_its_position(void **state)
{
    (void)state;
    expect_error(JOB_HEAD "    command: run ${DB_URL:?set DB_URL to the database}\n",
                 "test.yaml:4:18: job 'a': environment variable DB_URL is not set: set DB_URL "
                 "to the database");
    expect_error(JOB_HEAD "    command: ${EMPTY:?}\n",
                 "test.yaml:4:14: job 'a': environment variable EMPTY is not set");
}

static void a_malformed_reference_is_an_error(void **state)
{
    (void)state;
    expect_error(JOB_HEAD "    command: echo ${OOPS\n", "4:19: job 'a': unterminated '${'");
    expect_error(JOB_HEAD "    command: echo ${1X}\n", "invalid variable reference '${1X}'");
}

static void secrets_from_expansions_are_registered_and_plain_values_are_not(void **state)
{
    (void)state;
    cv_secret_clear();
    cfg_t *cfg = load_ok(full_file);
    const char *line =
        "tok-from-env-123 pg-pass-xyz https://hooks.example/abc123 key-value-987 plain-value-555";
    char *r = cv_secret_redact(line);
    assert_string_equal(r, "*** *** *** *** plain-value-555");
    free(r);
    r = cv_secret_redact("postgres://app:pg-pass-xyz@db.internal/cron");
    assert_string_equal(r, "***");
    free(r);
    cfg_free(cfg);
    cv_secret_clear();
}

static void errors_never_show_a_registered_secret(void **state)
{
    (void)state;
    cv_secret_clear();
    char *errs = load_errors("storage: {postgres: '${PGPASS}'}\n"
                             "defaults: {timeout: '${PGPASS}'}\n");
    assert_has(errs, "timeout: '***' is not a duration");
    assert_null(strstr(errs, "pg-pass-xyz"));
    free(errs);
    cv_secret_clear();
}

/* ---- durations and sizes ---- */

static void parses_durations_in_every_unit(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(cfg_parse_duration("90s", &ms), 0);
    assert_int_equal(ms, 90000);
    assert_int_equal(cfg_parse_duration("5m", &ms), 0);
    assert_int_equal(ms, 300000);
    assert_int_equal(cfg_parse_duration("1h30m", &ms), 0);
    assert_int_equal(ms, 5400000);
    assert_int_equal(cfg_parse_duration("250ms", &ms), 0);
    assert_int_equal(ms, 250);
    assert_int_equal(cfg_parse_duration("2d", &ms), 0);
    assert_int_equal(ms, 172800000);
    assert_int_equal(cfg_parse_duration("1m30s500ms", &ms), 0);
    assert_int_equal(ms, 90500);
    assert_int_equal(cfg_parse_duration("none", &ms), 0);
    assert_int_equal(ms, 0);
    const char *bad[] = {"",
                         "5",
                         "5 minutes",
                         "m",
                         "1h-",
                         "1x",
                         "99999999999999999999s",
                         "9223372036854775807d",
                         "1.5s",
                         "-1s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(cfg_parse_duration(bad[i], &ms), -EINVAL);
}

static void parses_sizes_in_binary_and_decimal_units(void **state)
{
    (void)state;
    int64_t n;
    assert_int_equal(cfg_parse_size("64KiB", &n), 0);
    assert_int_equal(n, 65536);
    assert_int_equal(cfg_parse_size("10MB", &n), 0);
    assert_int_equal(n, 10000000);
    assert_int_equal(cfg_parse_size("1GiB", &n), 0);
    assert_int_equal(n, 1073741824);
    assert_int_equal(cfg_parse_size("4096", &n), 0);
    assert_int_equal(n, 4096);
    const char *bad[] = {"", "KiB", "10 parsecs", "1.5MB", "99999999999GiB", "-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(cfg_parse_size(bad[i], &n), -EINVAL);
}

static void a_bad_duration_names_the_key_and_the_accepted_forms(void **state)
{
    (void)state;
    expect_error(JOB_HEAD "    command: x\n    timeout: '5 minutes'\n",
                 "test.yaml:5:15: job 'a': timeout: '5 minutes' is not a duration (use e.g. "
                 "90s, 5m, 1h30m)");
    expect_error(JOB_HEAD "    command: x\n    timeout: ${WAIT}\n",
                 "timeout: '5 minutes' is not a duration");
    expect_error(JOB_HEAD "    command: x\n    max_output: lots\n",
                 "max_output: 'lots' is not a size");
}

/* ---- errors ---- */

static void an_unknown_key_suggests_the_nearest_known_one(void **state)
{
    (void)state;
    expect_error(JOB_HEAD "    command: x\n    timzone: UTC\n",
                 "test.yaml:5:5: job 'a': unknown key 'timzone' — did you mean 'timezone'?");
    expect_error("defautls: {}\n", "test.yaml:1:1: unknown key 'defautls' — did you mean "
                                   "'defaults'?");
    char *errs = load_errors("zzzzzzzz: 1\n");
    assert_has(errs, "unknown key 'zzzzzzzz'\n");
    free(errs);
}

static void reports_every_error_not_just_the_first(void **state)
{
    (void)state;
    size_t n = 0;
    char *errs = load_errors_as("jobs:\n"
                                "  - name: a\n    schedule: '* * * * *'\n    command: x\n"
                                "    enabled: maybe\n"
                                "  - name: B!\n    schedule: '* * * * *'\n    command: x\n"
                                "  - name: c\n    command: x\n    timeout: soon\n"
                                "  - name: a\n    schedule: '* * * * *'\n    command: x\n",
                                "test.yaml", &n);
    assert_int_equal(n, 5);
    assert_has(errs, "test.yaml:5:14: job 'a': enabled: expected true or false, got 'maybe'");
    assert_has(errs, "test.yaml:6:11: invalid job name 'B!'");
    assert_has(errs, "test.yaml:9:5: job 'c': missing required key 'schedule'");
    assert_has(errs, "test.yaml:11:14: job 'c': timeout: 'soon' is not a duration");
    assert_has(errs, "test.yaml:12:11: job 'a': duplicate job name (first defined at line 2)");
    /* in source order */
    assert_true(strstr(errs, ":5:14:") < strstr(errs, ":6:11:"));
    assert_true(strstr(errs, ":11:14:") < strstr(errs, ":12:11:"));
    free(errs);
}

static void rejects_names_outside_lower_case_letters_digits_dash_and_underscore(void **state)
{
    (void)state;
    expect_error("jobs:\n  - {name: Daily Job, schedule: '@daily', command: x}\n",
                 "invalid job name 'Daily Job' (use lower-case letters, digits, '-' and '_')");
    cfg_t *cfg = load_ok("jobs:\n  - {name: daily_job-2, schedule: '@daily', command: x}\n");
    cfg_free(cfg);
}

static void a_job_needs_exactly_one_of_command_and_http(void **state)
{
    (void)state;
    expect_error(JOB_HEAD "    command: x\n    http: {url: 'http://x'}\n",
                 "test.yaml:5:11: job 'a': set either command or http, not both");
    expect_error(JOB_HEAD, "test.yaml:2:5: job 'a': needs a command or an http call");
    expect_error(JOB_HEAD "    http: {method: GET}\n", "missing required key 'url'");
    expect_error(JOB_HEAD "    http: {url: 'http://x', method: FETCH}\n",
                 "unknown HTTP method 'FETCH'");
}

static void wrong_types_say_what_was_expected_and_what_was_found(void **state)
{
    (void)state;
    expect_error(JOB_HEAD "    command: x\n    enabled: yes please\n",
                 "test.yaml:5:14: job 'a': enabled: expected true or false, got 'yes please'");
    expect_error(JOB_HEAD "    command: x\n    auto_disable_after: three\n",
                 "auto_disable_after: expected a whole number (0 or more), got 'three'");
    expect_error(JOB_HEAD "    command: {run: x}\n",
                 "command: expected a string or a list of strings");
    expect_error(JOB_HEAD "    command: x\n    tags: urgent\n",
                 "tags: expected a list, got a scalar");
    expect_error(JOB_HEAD "    command: x\n    env: [A, B]\n",
                 "env: expected a mapping of names to values, got a list");
    expect_error("jobs: {name: a}\n", "test.yaml:1:7: jobs: expected a list, got a mapping");
    expect_error("- a\n- b\n", "test.yaml:1:1: expected a mapping of keys to values, got a list");
    expect_error(JOB_HEAD "    command: x\n    name: b\n", "duplicate key 'name'");
}

static void an_unknown_concurrency_lists_the_allowed_values(void **state)
{
    (void)state;
    expect_error(JOB_HEAD "    command: x\n    concurrency: queue\n",
                 "test.yaml:5:18: job 'a': unknown concurrency value 'queue' (allowed: forbid, "
                 "allow, replace)");
}

/* ---- WebSocket bounds under server: (issue 13) ---- */

static void websocket_bounds_have_defaults_and_are_read(void **state)
{
    (void)state;
    cfg_t *cfg = load_ok(JOB_HEAD "    command: x\n");
    assert_int_equal(cfg->server.ws_max_queued_bytes, 1024 * 1024);
    assert_int_equal(cfg->server.ws_max_message_bytes, 4096);
    assert_int_equal(cfg->server.ws_max_clients, 1000);
    assert_int_equal(cfg->server.ws_max_topics, 16);
    cfg_free(cfg);
    cfg = load_ok("server:\n  ws_max_queued_bytes: 256KiB\n  ws_max_message_bytes: 1KiB\n"
                  "  ws_max_clients: 5000\n  ws_max_topics: 4\n" JOB_HEAD "    command: x\n");
    assert_int_equal(cfg->server.ws_max_queued_bytes, 256 * 1024);
    assert_int_equal(cfg->server.ws_max_message_bytes, 1024);
    assert_int_equal(cfg->server.ws_max_clients, 5000);
    assert_int_equal(cfg->server.ws_max_topics, 4);
    cfg_free(cfg);
}

static void http_bounds_have_defaults_and_are_read(void **state)
{
    (void)state;
    cfg_t *cfg = load_ok(JOB_HEAD "    command: x\n");
    assert_int_equal(cfg->server.max_body, 64 * 1024);
    assert_int_equal(cfg->server.request_timeout_ms, 10000);
    cfg_free(cfg);
    cfg = load_ok("server:\n  max_body: 1MiB\n  request_timeout: 2s\n" JOB_HEAD "    command: x\n");
    assert_int_equal(cfg->server.max_body, 1024 * 1024);
    assert_int_equal(cfg->server.request_timeout_ms, 2000);
    cfg_free(cfg);
    cfg = load_ok(JOB_HEAD "    command: x\n");
    assert_int_equal(cfg->limits.max_queued, 10000);
    assert_int_equal(cfg->limits.notification_history, 200);
    assert_int_equal(cfg->auth.rate_per_second, 5);
    assert_int_equal(cfg->auth.rate_burst, 20);
    cfg_free(cfg);
    expect_error("limits:\n  max_queued: -1\n", "max_queued: expected a whole number (0 or more)");
    expect_error("auth:\n  rate_burst: -2\n", "rate_burst: expected a whole number (0 or more)");
    expect_error("server:\n  max_body: 100B\n", "max_body must be 1KiB to 64MiB");
    expect_error("server:\n  request_timeout: 2h\n", "request_timeout must be 100ms to 1h");
}

static void bad_websocket_bounds_are_refused(void **state)
{
    (void)state;
    expect_error("server:\n  ws_max_queued_bytes: lots\n", "'lots' is not a size");
    expect_error("server:\n  ws_max_queued_bytes: 1KiB\n",
                 "ws_max_queued_bytes must be at least 4KiB");
    expect_error("server:\n  ws_max_message_bytes: 64MiB\n",
                 "ws_max_message_bytes must be 256B to 16MiB");
    expect_error("server:\n  ws_max_clients: -3\n", "ws_max_clients: expected a whole number");
}

/* ---- output flood limits (issue 13) ---- */

static void output_limits_are_read_with_sizes(void **state)
{
    (void)state;
    cfg_t *cfg = load_ok("limits:\n  output_read_budget: 16KiB\n  live_output_lines: 50\n"
                         "jobs:\n  - {name: a, schedule: '@daily', command: x}\n");
    assert_int_equal(cfg->limits.output_read_budget, 16 * 1024);
    assert_int_equal(cfg->limits.live_output_lines, 50);
    cfg_free(cfg);
}

static void a_bad_output_read_budget_is_refused(void **state)
{
    (void)state;
    char *errs = load_errors("limits:\n  output_read_budget: lots\n");
    assert_has(errs, "output_read_budget");
    free(errs);
}

/* ---- the PostgreSQL outage spool and on_store_outage (issue 7) ---- */

static void outage_keys_have_safe_defaults(void **state)
{
    (void)state;
    cfg_t *cfg = load_ok(JOB_HEAD "    command: x\n");
    assert_string_equal(cfg->storage.spool_dir, "./data");
    assert_int_equal(cfg->storage.spool_max, 64 * 1024 * 1024);
    assert_int_equal(cfg->storage.pending_max, 10000);
    assert_int_equal(cfg->defaults.on_store_outage, CFG_OUTAGE_SKIP);
    assert_int_equal(cfg->jobs[0].on_store_outage, CFG_OUTAGE_SKIP);
    cfg_free(cfg);
}

static void outage_keys_are_read_and_jobs_inherit_the_default(void **state)
{
    (void)state;
    cfg_t *cfg = load_ok("storage:\n  postgres: postgres://db/x\n  spool_dir: /var/lib/cv\n"
                         "  spool_max: 2MiB\n"
                         "defaults:\n  on_store_outage: run\n"
                         "jobs:\n"
                         "  - {name: a, schedule: '@daily', command: x}\n"
                         "  - {name: b, schedule: '@daily', command: x, on_store_outage: skip}\n");
    assert_string_equal(cfg->storage.spool_dir, "/var/lib/cv");
    assert_int_equal(cfg->storage.spool_max, 2 * 1024 * 1024);
    assert_int_equal(cfg->jobs[0].on_store_outage, CFG_OUTAGE_RUN);
    assert_int_equal(cfg->jobs[1].on_store_outage, CFG_OUTAGE_SKIP);
    cfg_free(cfg);
}

static void bad_outage_values_say_where_and_what_is_allowed(void **state)
{
    (void)state;
    expect_error(JOB_HEAD "    command: x\n    on_store_outage: retry\n",
                 "test.yaml:5:22: job 'a': unknown on_store_outage value 'retry' (allowed: skip, "
                 "run)");
    expect_error("storage:\n  postgres: postgres://db/x\n  spool_max: plenty\n",
                 "test.yaml:3:14: spool_max: 'plenty' is not a size (use e.g. 64KiB");
    expect_error("defaults:\n  on_store_outage: 1\n", "test.yaml:2:20: ");
    expect_error("storage:\n  spool_dri: x\n", "spool_dir");
}

/* storage.pending_max (issue 13): the SQLite writes held while the database refuses them. */
static void pending_max_is_read_and_cannot_be_negative(void **state)
{
    (void)state;
    cfg_t *cfg = load_ok("storage:\n  sqlite: {path: x.db}\n  pending_max: 50\n" JOB_HEAD
                         "    command: x\n");
    assert_int_equal(cfg->storage.pending_max, 50);
    cfg_free(cfg);
    expect_error("storage:\n  pending_max: -1\n",
                 "test.yaml:2:16: pending_max: expected a whole number");
}

static void requires_must_name_a_configured_probe(void **state)
{
    (void)state;
    expect_error("probes:\n  - {name: database, type: tcp, address: 'db:5432'}\n" JOB_HEAD
                 "    command: x\n    requires: [database, databse]\n",
                 "test.yaml:7:26: job 'a': requires unknown probe 'databse' — did you mean "
                 "'database'?");
}

static void tokens_need_a_name_a_role_and_exactly_one_secret(void **state)
{
    (void)state;
    expect_error("auth:\n  tokens:\n    - {role: admin, token: abcdefgh}\n",
                 "test.yaml:3:7: missing required key 'name'");
    expect_error("auth:\n  tokens:\n    - {name: x, token: abcdefgh}\n",
                 "test.yaml:3:7: missing required key 'role'");
    expect_error("auth:\n  tokens:\n    - {name: x, role: root, token: abcdefgh}\n",
                 "unknown role value 'root' (allowed: viewer, operator, admin)");
    expect_error("auth:\n  tokens:\n    - {name: x, role: admin, token: abcdefgh, sha256: "
                 "1734d503f6aa6a047c36d113cbad769f719c93784b469b771c4c3e7c63adbefd}\n",
                 "test.yaml:3:7: token 'x': set either token or sha256, not both");
    expect_error("auth:\n  tokens:\n    - {name: x, role: admin}\n",
                 "token 'x': needs token or sha256");
    expect_error("auth:\n  tokens:\n    - {name: x, role: admin, sha256: abc}\n",
                 "token 'x': sha256 must be 64 hex digits");
    expect_error("auth:\n  tokens:\n    - {name: x, role: admin, token: '${UNSET}'}\n",
                 "token 'x': token is empty");
}

static void probes_need_the_fields_of_their_type(void **state)
{
    (void)state;
    expect_error("probes:\n  - {name: p, type: tcp}\n",
                 "test.yaml:2:5: probe 'p': type tcp needs 'address (host:port)'");
    expect_error("probes:\n  - {name: p, type: exec}\n", "probe 'p': type exec needs 'command'");
    expect_error("probes:\n  - {name: p, type: smtp}\n",
                 "unknown type value 'smtp' (allowed: http, postgres, redis, tcp, exec)");
    expect_error("probes:\n  - {name: p, type: tcp, address: db}\n", "is not host:port");
}

static void notifiers_accept_only_known_events_and_jobs(void **state)
{
    (void)state;
    expect_error("notify:\n  - {name: n, url: 'http://h', events: [run.failed, run.exploded]}\n",
                 "test.yaml:2:53: events: unknown value 'run.exploded' (allowed: run.failed,");
    expect_error("notify:\n  - {name: n, url: 'http://h', jobs: [nope]}\n",
                 "notify 'n': unknown job 'nope' in jobs");
    expect_error("notify:\n  - {name: n, url: 'http://h', format: xml}\n",
                 "unknown format value 'xml' (allowed: json, slack)");
}

static void choosing_both_storage_backends_is_an_error(void **state)
{
    (void)state;
    expect_error("storage:\n  sqlite: {path: x.db}\n  postgres: 'host=x'\n",
                 "test.yaml:3:14: storage: choose sqlite or postgres, not both");
}

static void yaml_syntax_errors_carry_their_position(void **state)
{
    (void)state;
    expect_error("jobs:\n  - name: a\n   schedule: x\n", "test.yaml:3:");
    expect_error("jobs:\n  - name: a\n   schedule: x\n", "YAML syntax error");
    expect_error("jobs: [a, b\n", "test.yaml:2:1: YAML syntax error");
}

static void schedule_errors_point_inside_the_schedule_value(void **state)
{
    (void)state;
    expect_error("jobs:\n  - name: a\n    schedule: \"0 61 * * *\"\n    command: x\n",
                 "test.yaml:3:18: job 'a': invalid schedule '0 61 * * *': minute 61 is out of "
                 "range (0-59)");
    expect_error("jobs:\n  - name: a\n    schedule: 0 0 61 * *\n    command: x\n",
                 "test.yaml:3:19: job 'a':");
}

static void unknown_time_zones_are_reported_where_they_are_written(void **state)
{
    (void)state;
    expect_error(JOB_HEAD "    command: x\n    timezone: Mars/Olympus\n",
                 "test.yaml:5:15: job 'a': unknown time zone 'Mars/Olympus': not in the tz "
                 "database");
    expect_error("defaults: {timezone: Europe/Cph}\n",
                 "test.yaml:1:22: unknown time zone 'Europe/Cph'");
}

static void an_unreadable_file_is_an_error_with_its_name(void **state)
{
    (void)state;
    cfg_t *cfg = (cfg_t *)1;
    cfg_errors_t errs = {0};
    assert_int_equal(cfg_load("/nonexistent/cv.yaml", &test_opts, &cfg, &errs), -ENOENT);
    assert_null(cfg);
    assert_int_equal(errs.count, 1);
    char *s = cfg_error_format(&errs.items[0]);
    assert_string_equal(s, "/nonexistent/cv.yaml: cannot read the configuration: No such file "
                           "or directory");
    free(s);
    cfg_errors_free(&errs);
}

static void an_alias_bomb_is_refused_quickly(void **state)
{
    (void)state;
    cv_buf_t b = {0};
    cv_buf_appends(&b, "a0: &a0 {name: x, schedule: y, command: z}\n");
    for (int i = 1; i < 30; i++)
        cv_buf_printf(&b, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d]\n", i, i, i - 1, i - 1, i - 1, i - 1);
    cv_buf_appends(&b, "jobs: *a29\n");
    char *errs = load_errors(b.data);
    assert_has(errs, "unknown key 'a0'");
    free(errs);
    cv_buf_free(&b);
}

/* ---- crontab ---- */

static void reads_a_crontab_with_env_names_seconds_and_macros(void **state)
{
    (void)state;
    cfg_t *cfg = load_ok_as("# a comment\n"
                            "MAILTO=\"\"\n"
                            "GREETING = 'hi there'\n"
                            "\n"
                            "# name: hello\n"
                            "*/5 * * * * echo $GREETING   \n"
                            "CRON_TZ=Europe/Copenhagen\n"
                            "*/10 * * * * * echo tick\n"
                            "@every 90s  date\n"
                            "# name: weekly\n"
                            "0 8 * * MON-FRI,sun /bin/true\n"
                            "@daily echo '@daily' 1 2 3\n",
                            "jobs.cron");
    assert_true(cfg->from_crontab);
    assert_int_equal(cfg->n_jobs, 5);
    const cfg_job_t *j = cfg_find_job(cfg, "hello");
    assert_non_null(j);
    assert_string_equal(j->schedule, "*/5 * * * *");
    assert_string_equal(j->shell, "echo $GREETING");
    assert_string_equal(j->timezone, "UTC");
    assert_int_equal(j->n_env, 2);
    assert_string_equal(j->env[0].value, "");
    assert_string_equal(j->env[1].key, "GREETING");
    assert_string_equal(j->env[1].value, "hi there");
    assert_int_equal(j->pos.line, 6);
    assert_int_equal(j->kill_grace_ms, 10000);
    j = cfg_find_job(cfg, "line-8");
    assert_non_null(j);
    assert_string_equal(j->schedule, "*/10 * * * * *");
    assert_string_equal(j->shell, "echo tick");
    assert_string_equal(j->timezone, "Europe/Copenhagen");
    assert_int_equal(j->n_env, 3);
    j = cfg_find_job(cfg, "line-9");
    assert_string_equal(j->schedule, "@every 90s");
    assert_string_equal(j->shell, "date");
    assert_string_equal(cfg_find_job(cfg, "weekly")->schedule, "0 8 * * MON-FRI,sun");
    assert_string_equal(cfg_find_job(cfg, "line-12")->shell, "echo '@daily' 1 2 3");
    cfg_free(cfg);
}

static void a_name_comment_applies_only_to_the_line_right_below_it(void **state)
{
    (void)state;
    cfg_t *cfg = load_ok_as("# name: first\n\n* * * * * a\n", "crontab");
    assert_non_null(cfg_find_job(cfg, "line-3"));
    cfg_free(cfg);
}

static void crontab_errors_carry_line_and_job(void **state)
{
    (void)state;
    size_t n = 0;
    char *errs = load_errors_as("* * * * * ok\n"
                                "  * * * bad\n"
                                "# name: y\n"
                                "1 2 3 4 5 6 7 echo year\n"
                                "# name: Bad Name\n"
                                "* * * * * x\n"
                                "# name: s\n"
                                "0 61 * * * echo\n"
                                "# name: z\n"
                                "@hourly\n",
                                "crontab", &n);
    assert_int_equal(n, 5);
    assert_has(errs, "crontab:2:3: job 'line-2': expected a schedule (5 fields");
    assert_has(errs, "crontab:4:1: job 'y': a year field is not supported");
    assert_has(errs, "crontab:6:1: invalid job name 'Bad Name'");
    assert_has(errs, "crontab:8:3: job 's': invalid schedule '0 61 * * *'");
    assert_has(errs, "crontab:10:1: job 'z': missing command after the schedule");
    free(errs);
}

static void the_format_follows_the_extension_then_the_content(void **state)
{
    (void)state;
    cfg_t *cfg = load_ok_as("* * * * * echo hi\n", "whatever.conf");
    assert_true(cfg->from_crontab);
    cfg_free(cfg);
    cfg = load_ok_as("# comment\njobs: []\n", "whatever.conf");
    assert_false(cfg->from_crontab);
    cfg_free(cfg);
    char *errs = load_errors_as("* * * * * echo hi\n", "forced.yml", NULL);
    assert_has(errs, "forced.yml:1:");
    free(errs);
    cfg_load_opts_t o = test_opts;
    o.format = CFG_FORMAT_CRONTAB;
    cfg_errors_t e = {0};
    const char *text = "A=b\n";
    assert_int_equal(cfg_load_string(text, strlen(text), "x.yaml", &o, &cfg, &e), 0);
    assert_true(cfg->from_crontab);
    cfg_free(cfg);
    cfg_errors_free(&e);
}

static void escaped_control_characters_survive_the_load(void **state)
{
    (void)state;
    cfg_t *cfg = load_ok("jobs:\n  - name: a\n    schedule: '@daily'\n"
                         "    title: \"t\\x01\\x7f\\u0085\\u0086\\u2028\\uFEFF\\\"\\\\é\"\n"
                         "    command: x\n");
    assert_string_equal(cfg->jobs[0].title,
                        "t\x01\x7f\xc2\x85\xc2\x86\xe2\x80\xa8\xef\xbb\xbf\"\\\xc3\xa9");
    cfg_free(cfg);
}

static void a_nul_byte_is_an_error_with_its_position(void **state)
{
    (void)state;
    cfg_t *cfg;
    cfg_errors_t e = {0};
    assert_int_equal(cfg_load_string("a: 1\nbc\0d", 9, "n.yaml", &test_opts, &cfg, &e), -EINVAL);
    char *s = cfg_error_format(&e.items[0]);
    assert_string_equal(s, "n.yaml:2:3: the file contains a NUL byte");
    free(s);
    cfg_errors_free(&e);
}

/* ---- the examples ---- */

static char *example_path(const char *name)
{
    const char *dir = getenv("CV_SOURCE_DIR");
    return cv_sprintf("%s/examples/%s", dir ? dir : ".", name);
}

static void the_example_yaml_file_loads(void **state)
{
    (void)state;
    char *path = example_path("cronvisor.yaml");
    cfg_t *cfg = NULL;
    cfg_errors_t errs = {0};
    int rc = cfg_load(path, &test_opts, &cfg, &errs);
    if (rc != 0) {
        cv_buf_t b = {0};
        cfg_errors_format(&errs, &b);
        print_error("%s", b.data ? b.data : "");
        cv_buf_free(&b);
    }
    assert_int_equal(rc, 0);
    const cfg_job_t *w = cfg_find_job(cfg, "cache-warmup");
    assert_non_null(w);
    assert_int_equal(w->action, CFG_ACTION_HTTP);
    assert_string_equal(w->http.headers[0].value, "Bearer dev-secret");
    assert_string_equal(cfg_find_job(cfg, "daily-maintenance")->timezone, "Europe/Copenhagen");
    assert_true(cfg_find_job(cfg, "manual-import")->manual);
    assert_string_equal(cfg_find_job(cfg, "tick")->schedule, "*/10 * * * * *");
    assert_true(cfg->n_jobs >= 8);
    assert_true(cfg->n_probes >= 2);
    cfg_free(cfg);
    cfg_errors_free(&errs);
    free(path);
}

static void the_example_crontab_loads(void **state)
{
    (void)state;
    char *path = example_path("crontab");
    cfg_t *cfg = NULL;
    cfg_errors_t errs = {0};
    assert_int_equal(cfg_load(path, &test_opts, &cfg, &errs), 0);
    assert_true(cfg->from_crontab);
    assert_non_null(cfg_find_job(cfg, "heartbeat"));
    assert_string_equal(cfg_find_job(cfg, "every-90s")->schedule, "@every 90s");
    cfg_free(cfg);
    cfg_errors_free(&errs);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_empty_file_gets_every_default),
        cmocka_unit_test(a_minimal_job_gets_the_default_values),
        cmocka_unit_test(jobs_inherit_the_defaults_section_unless_they_override_it),
        cmocka_unit_test(a_full_file_fills_every_field),
        cmocka_unit_test(finds_jobs_by_name),
        cmocka_unit_test(a_loaded_configuration_keeps_its_jobs_text_and_arrays_in_one_block),
        cmocka_unit_test(manual_schedule_marks_the_job_manual_without_asking_the_cron_engine),
        cmocka_unit_test(expands_variables_with_defaults_and_dollar_escapes),
        cmocka_unit_test(a_required_variable_that_is_unset_is_an_error_at_its_position),
        cmocka_unit_test(a_malformed_reference_is_an_error),
        cmocka_unit_test(secrets_from_expansions_are_registered_and_plain_values_are_not),
        cmocka_unit_test(errors_never_show_a_registered_secret),
        cmocka_unit_test(parses_durations_in_every_unit),
        cmocka_unit_test(parses_sizes_in_binary_and_decimal_units),
        cmocka_unit_test(a_bad_duration_names_the_key_and_the_accepted_forms),
        cmocka_unit_test(an_unknown_key_suggests_the_nearest_known_one),
        cmocka_unit_test(reports_every_error_not_just_the_first),
        cmocka_unit_test(rejects_names_outside_lower_case_letters_digits_dash_and_underscore),
        cmocka_unit_test(a_job_needs_exactly_one_of_command_and_http),
        cmocka_unit_test(wrong_types_say_what_was_expected_and_what_was_found),
        cmocka_unit_test(an_unknown_concurrency_lists_the_allowed_values),
        cmocka_unit_test(requires_must_name_a_configured_probe),
        cmocka_unit_test(output_limits_are_read_with_sizes),
        cmocka_unit_test(a_bad_output_read_budget_is_refused),
        cmocka_unit_test(outage_keys_have_safe_defaults),
        cmocka_unit_test(outage_keys_are_read_and_jobs_inherit_the_default),
        cmocka_unit_test(bad_outage_values_say_where_and_what_is_allowed),
        cmocka_unit_test(pending_max_is_read_and_cannot_be_negative),
        cmocka_unit_test(tokens_need_a_name_a_role_and_exactly_one_secret),
        cmocka_unit_test(probes_need_the_fields_of_their_type),
        cmocka_unit_test(notifiers_accept_only_known_events_and_jobs),
        cmocka_unit_test(choosing_both_storage_backends_is_an_error),
        cmocka_unit_test(yaml_syntax_errors_carry_their_position),
        cmocka_unit_test(schedule_errors_point_inside_the_schedule_value),
        cmocka_unit_test(unknown_time_zones_are_reported_where_they_are_written),
        cmocka_unit_test(an_unreadable_file_is_an_error_with_its_name),
        cmocka_unit_test(an_alias_bomb_is_refused_quickly),
        cmocka_unit_test(reads_a_crontab_with_env_names_seconds_and_macros),
        cmocka_unit_test(a_name_comment_applies_only_to_the_line_right_below_it),
        cmocka_unit_test(crontab_errors_carry_line_and_job),
        cmocka_unit_test(the_format_follows_the_extension_then_the_content),
        cmocka_unit_test(escaped_control_characters_survive_the_load),
        cmocka_unit_test(a_nul_byte_is_an_error_with_its_position),
        cmocka_unit_test(websocket_bounds_have_defaults_and_are_read),
        cmocka_unit_test(bad_websocket_bounds_are_refused),
        cmocka_unit_test(http_bounds_have_defaults_and_are_read),
        cmocka_unit_test(the_example_yaml_file_loads),
        cmocka_unit_test(the_example_crontab_loads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
