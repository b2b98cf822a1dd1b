/* The HTTP actor (http/api.h) through its messages, on a real runtime and loop, over a real SQLite
 * store in a temporary directory (the API reads statistics and pings through the store actor):
 * MSG_RUN_EVENT and MSG_HEALTH reach a WebSocket client as events, MSG_EXEC_CONFIG changes
 * GET /api/jobs, MSG_STORE_STATE changes /readyz. The client is tests/http/tclient.h; its reads
 * run the loop until the frame or response arrives, with a watchdog. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <unistd.h>

#include "actors/store_actor.h"
#include "core/log.h"
#include "http/api.h"
#include "proto/msg.h"
#include "tclient.h"

#define TOKEN "viewer-token-0123456789"

#define CONFIG_HEAD                                                                                \
    "server:\n"                                                                                    \
    "  listen: \"127.0.0.1:0\"\n"                                                                  \
    "auth:\n"                                                                                      \
    "  tokens:\n"                                                                                  \
    "    - {name: alice, role: viewer, token: " TOKEN "}\n"

typedef struct {
    uv_loop_t loop;
    char dir[64];
    cv_runtime_t *rt;
    store_t *st;
    store_actor_t *sa;
    api_t *api;
    int port;
    int migrated;
    bool api_closed, store_closed;
} fx_t;

/* A string member of a JSON object, "(missing)" when absent (never NULL: safe to compare). */
static const char *s_of(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "(missing)";
}

static void on_migrated(void *ud, int status, int64_t n)
{
    (void)n;
    *(int *)ud = status == 0 ? 1 : -1;
}

static bool migrated(void *arg)
{
    return ((fx_t *)arg)->migrated != 0;
}

static cfgref_t *load(const char *yaml)
{
    cfg_t *cfg = NULL;
    cfg_errors_t errs = {0};
    if (cfgcheck_load_string(yaml, strlen(yaml), "t.yaml", &cfg, &errs) != 0)
        fail_msg("config refused");
    return cfgref_new(cfg);
}

static void start(fx_t *f, const char *yaml)
{
    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    snprintf(f->dir, sizeof(f->dir), "/tmp/cv-api-actor-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    int err = 0;
    f->rt = cv_runtime_create(&f->loop, &err);
    assert_non_null(f->rt);
    char *dsn = cv_sprintf("%s/t.db", f->dir);
    store_config_t sc = {.dsn = dsn, .instance = "t", .sync = STORE_SYNC_NORMAL};
    assert_int_equal(store_open(&f->loop, &sc, &f->st), 0);
    free(dsn);
    store_migrate(f->st, on_migrated, &f->migrated);
    assert_true(tc_wait_for(&f->loop, migrated, f));
    assert_int_equal(f->migrated, 1);
    f->sa = store_actor_create(f->rt, f->st);

    cfgref_t *ref = load(yaml);
    api_opts_t ao = {.cfg = ref, .store = store_actor_actor(f->sa), .instance = "t"};
    char *msg = NULL;
    f->api = api_create(f->rt, &ao, &msg);
    if (f->api == NULL)
        fail_msg("api_create: %s", msg ? msg : "?");
    cfgref_put(ref);
    f->port = api_port(f->api);
}

static void on_store_closed(void *ud, int status)
{
    (void)status;
    ((fx_t *)ud)->store_closed = true;
}

static void on_api_closed(void *ud)
{
    fx_t *f = ud;
    f->api_closed = true;
    store_close(f->st, on_store_closed, f);
}

static bool all_closed(void *arg)
{
    fx_t *f = arg;
    return f->api_closed && f->store_closed;
}

static void stop(fx_t *f)
{
    store_actor_destroy(f->sa);
    api_close(f->api, on_api_closed, f);
    assert_true(tc_wait_for(&f->loop, all_closed, f));
    cv_runtime_close(f->rt);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    static const char *const names[] = {"t.db", "t.db-wal", "t.db-shm", "t.db-journal"};
    for (size_t i = 0; i < CV_ARRAY_SIZE(names); i++) {
        char *path = cv_sprintf("%s/%s", f->dir, names[i]);
        unlink(path);
        free(path);
    }
    rmdir(f->dir);
}

static void post(fx_t *f, void *m)
{
    cv_actor_post(api_actor(f->api), m);
}

/* GET path with the viewer token; returns the status, the body parsed into *json (or NULL). */
static int get(fx_t *f, const char *path, json_t **json)
{
    tc_resp_t r = {0};
    int rc =
        tc_request(&f->loop, f->port, "GET", path, "Authorization: Bearer " TOKEN "\r\n", NULL, &r);
    assert_int_equal(rc, 0);
    *json = json_loadb(r.body.data, r.body.len, 0, NULL);
    int status = r.status;
    tc_resp_free(&r);
    return status;
}

/* The job names GET /api/jobs lists, comma-separated, in its order (caller frees). */
static char *job_names(fx_t *f)
{
    json_t *j = NULL;
    assert_int_equal(get(f, "/api/jobs", &j), 200);
    json_t *arr = json_object_get(j, "jobs");
    assert_true(json_is_array(arr));
    cv_buf_t b = {0};
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        cv_buf_printf(&b, "%s%s", i ? "," : "", s_of(v, "name"));
    }
    json_decref(j);
    char *out = cv_strndup(b.data ? b.data : "", b.len);
    cv_buf_free(&b);
    return out;
}

static void connect_ws(fx_t *f, tc_conn_t *c)
{
    tc_resp_t r = {0};
    assert_int_equal(tc_ws_connect(c, &f->loop, f->port, "/api/events", NULL, 0, &r), 101);
    tc_resp_free(&r);
    tc_ws_send_text(c, "{\"type\":\"auth\",\"token\":\"" TOKEN "\"}");
    json_t *j = tc_ws_read_json(c);
    assert_non_null(j);
    assert_string_equal(s_of(j, "type"), "authenticated");
    json_decref(j);
}

/* The next event of the given type (events of other types are skipped); fails if none comes. */
static json_t *next_event(tc_conn_t *c, const char *type)
{
    for (;;) {
        json_t *j = tc_ws_read_json(c);
        if (j == NULL)
            fail_msg("no %s event", type);
        if (strcmp(s_of(j, "type"), type) == 0)
            return j;
        json_decref(j);
    }
}

#define JOBS_AB                                                                                    \
    "jobs:\n"                                                                                      \
    "  - {name: alpha, schedule: manual, command: 'true'}\n"                                       \
    "  - {name: beta, schedule: '*/5 * * * *', command: 'true'}\n"

static void run_events_and_health_changes_reach_websocket_clients(void **state)
{
    (void)state;
    fx_t f;
    start(&f, CONFIG_HEAD JOBS_AB);
    tc_conn_t c;
    connect_ws(&f, &c);

    run_t *r = run_new("alpha", "api:alice");
    r->id = 41;
    r->status = RUN_RUNNING;
    r->attempt = 1;
    r->started_at = cv_now_ms();
    post(&f, msg_run_event_new(RUN_EV_STARTED, r));
    json_t *j = next_event(&c, "run.started");
    json_t *run = json_object_get(j, "run");
    assert_int_equal(json_integer_value(json_object_get(run, "id")), 41);
    assert_string_equal(s_of(run, "job"), "alpha");
    assert_string_equal(s_of(run, "status"), "RUNNING");
    json_decref(j);

    /* the read model follows: alpha is running */
    json_t *job = NULL;
    assert_int_equal(get(&f, "/api/jobs/alpha", &job), 200);
    assert_int_equal(json_integer_value(json_object_get(job, "running")), 1);
    json_decref(job);

    r->status = RUN_SUCCESS;
    r->exit_code = 0;
    r->finished_at = r->started_at + 7;
    r->duration_ms = 7;
    post(&f, msg_run_event_new(RUN_EV_FINISHED, r));
    run_free(r);
    j = next_event(&c, "run.finished");
    run = json_object_get(j, "run");
    assert_int_equal(json_integer_value(json_object_get(run, "id")), 41);
    assert_string_equal(s_of(run, "status"), "SUCCESS");
    json_decref(j);
    assert_int_equal(get(&f, "/api/jobs/alpha", &job), 200);
    assert_int_equal(json_integer_value(json_object_get(job, "running")), 0);
    json_decref(job);

    health_result_t h = {.probe = "db",
                         .type = "tcp",
                         .status = HEALTH_UNHEALTHY,
                         .latency_ms = 12,
                         .message = "connection refused",
                         .checked_at = cv_now_ms()};
    post(&f, msg_health_new(&h, HEALTH_HEALTHY));
    j = next_event(&c, "health.changed");
    json_t *p = json_object_get(j, "probe");
    assert_string_equal(s_of(p, "name"), "db");
    assert_string_equal(s_of(p, "status"), "unhealthy");
    assert_string_equal(s_of(p, "message"), "connection refused");
    json_decref(j);

    tc_close(&c);
    stop(&f);
}

static void a_new_configuration_changes_the_jobs_listed(void **state)
{
    (void)state;
    fx_t f;
    start(&f, CONFIG_HEAD JOBS_AB);
    char *names = job_names(&f);
    assert_string_equal(names, "alpha,beta");
    free(names);

    cfgref_t *ref = load(CONFIG_HEAD "jobs:\n"
                                     "  - {name: beta, schedule: manual, command: 'true'}\n"
                                     "  - {name: gamma, schedule: manual, command: 'true'}\n");
    post(&f, msg_exec_config_new(ref));
    cfgref_put(ref);
    /* the request below is read by the loop after the message was handled (posted first) */
    names = job_names(&f);
    assert_string_equal(names, "beta,gamma");
    free(names);
    json_t *j = NULL;
    assert_int_equal(get(&f, "/api/jobs/alpha", &j), 404);
    json_decref(j);
    assert_int_equal(get(&f, "/api/jobs/beta", &j), 200);
    assert_string_equal(s_of(j, "schedule"), "manual");
    json_decref(j);
    stop(&f);
}

static void the_store_state_decides_readyz(void **state)
{
    (void)state;
    fx_t f;
    start(&f, CONFIG_HEAD JOBS_AB);
    json_t *j = NULL;
    assert_int_equal(get(&f, "/readyz", &j), 200); /* the store answers its ping */
    json_decref(j);

    tc_conn_t c;
    connect_ws(&f, &c);
    post(&f, msg_store_state_new(1 /* STORE_DEGRADED */, 5, 1024, 0));
    j = next_event(&c, "store.changed");
    assert_string_equal(s_of(json_object_get(j, "store"), "state"), "degraded");
    json_decref(j);
    assert_int_equal(get(&f, "/readyz", &j), 503);
    assert_string_equal(s_of(j, "store"), "degraded");
    assert_int_equal(json_integer_value(json_object_get(j, "spooled")), 5);
    json_decref(j);

    post(&f, msg_store_state_new(2 /* STORE_REPLAYING */, 3, 512, 0));
    json_decref(next_event(&c, "store.changed"));
    assert_int_equal(get(&f, "/readyz", &j), 503);
    assert_string_equal(s_of(j, "store"), "replaying");
    json_decref(j);

    post(&f, msg_store_state_new(0 /* STORE_UP */, 0, 0, 0));
    json_decref(next_event(&c, "store.changed"));
    assert_int_equal(get(&f, "/readyz", &j), 200);
    json_decref(j);
    tc_close(&c);
    stop(&f);
}

int main(void)
{
    cv_log_setup(CV_LOG_WARN, false);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(run_events_and_health_changes_reach_websocket_clients),
        cmocka_unit_test(a_new_configuration_changes_the_jobs_listed),
        cmocka_unit_test(the_store_state_decides_readyz),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
