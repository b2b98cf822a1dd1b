/* The notifier actor through its messages (MSG_RUN_EVENT, MSG_HEALTH, MSG_AUDIT, MSG_NOTIFY_GET)
 * on a real runtime and loop, delivering to webhooks on a loopback HTTP server in the test
 * (tests/core/httpc_test_server.h: /ok answers 200, /500 answers 500). No store (the history
 * and statistics are the store actor's business). The retry backoff runs on the loop's timers
 * (a few ms here): nothing sleeps, each step runs the loop until the deliveries it expects are
 * done, with a deadline. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "actors/notifier.h"
#include "tests/core/httpc_test_server.h"

#define MAX_REQ     32
#define DEADLINE_MS 10000

typedef struct {
    char path[64];
    char body[1024];
} req_t;

typedef struct {
    uv_loop_t loop;
    uv_timer_t deadline;
    bool expired, closed;
    srv_t srv;
    cv_runtime_t *rt;
    cv_actor_t *me;
    notifier_t *n;
    req_t req[MAX_REQ];
    size_t nreq;
    msg_notify_list_t *list; /* the last MSG_NOTIFY_LIST, kept */
} fx_t;

static void on_request(srv_t *srv, const char *method, const char *path, const char *body,
                       size_t len)
{
    fx_t *f = srv->ud;
    assert_string_equal(method, "POST");
    assert_true(f->nreq < MAX_REQ);
    req_t *r = &f->req[f->nreq++];
    snprintf(r->path, sizeof(r->path), "%s", path);
    snprintf(r->body, sizeof(r->body), "%.*s", (int)len, body);
}

static void me_handle(cv_actor_t *self, cv_msg_t *msg)
{
    fx_t *f = cv_actor_state(self);
    assert_int_equal(msg->type, MSG_NOTIFY_LIST);
    msg_notify_list_t *l = (msg_notify_list_t *)msg;
    if (f->list)
        f->list->hdr.dispose(&f->list->hdr);
    f->list = msg_notify_list_new(l->corr, l->items, l->count); /* steals the items */
    l->items = NULL;
    l->count = 0;
}

static void on_deadline(uv_timer_t *t)
{
    ((fx_t *)t->data)->expired = true;
}

static void run_until(fx_t *f, bool (*cond)(fx_t *, const void *), const void *arg,
                      const char *what)
{
    f->expired = false;
    uv_timer_start(&f->deadline, on_deadline, DEADLINE_MS, 0);
    while (!cond(f, arg) && !f->expired)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_timer_stop(&f->deadline);
    if (!cond(f, arg))
        fail_msg("timed out waiting for %s", what);
}

typedef struct {
    uint64_t delivered, failed;
} counts_t;

static bool ended(fx_t *f, const void *arg)
{
    const counts_t *c = arg;
    return notifier_delivered(f->n) >= c->delivered && notifier_failed(f->n) >= c->failed;
}

/* Waits until `delivered` and `failed` notifications ended (in total since the start). */
static void wait_ended(fx_t *f, uint64_t delivered, uint64_t failed)
{
    counts_t c = {delivered, failed};
    run_until(f, ended, &c, "deliveries");
    assert_int_equal(notifier_delivered(f->n), delivered);
    assert_int_equal(notifier_failed(f->n), failed);
}

static bool listed(fx_t *f, const void *corr)
{
    return f->list && f->list->corr == *(const uint64_t *)corr;
}

/* Asks the notifier for its records (newest first) and waits for the answer. */
static const msg_notify_list_t *get_list(fx_t *f, uint64_t corr)
{
    msg_notify_query_t *q = cv_msg_new(sizeof(*q), MSG_NOTIFY_GET);
    q->reply_to = f->me;
    q->corr = corr;
    cv_actor_post(notifier_actor(f->n), &q->hdr);
    run_until(f, listed, &corr, "MSG_NOTIFY_LIST");
    return f->list;
}

static void setup(fx_t *f, const char *notify_yaml)
{
    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->deadline);
    f->deadline.data = f;
    assert_int_equal(srv_start(&f->loop, &f->srv), 0);
    f->srv.on_request = on_request;
    f->srv.ud = f;
    int err = 0;
    f->rt = cv_runtime_create(&f->loop, &err);
    f->me = cv_actor_create(f->rt, "test", me_handle, f);

    char *yaml = cv_sprintf(notify_yaml, f->srv.port, f->srv.port, f->srv.port);
    cfg_t *cfg = NULL;
    cfg_errors_t errs = {0};
    assert_int_equal(cfgcheck_load_string(yaml, strlen(yaml), "t.yaml", &cfg, &errs), 0);
    free(yaml);
    cfgref_t *ref = cfgref_new(cfg);
    notifier_opts_t o = {.cfg = ref, .instance = "t", .attempts = 3, .backoff_ms = 5};
    f->n = notifier_create(f->rt, &o);
    cfgref_put(ref);
    notifier_start(f->n);
}

static void on_closed(void *ud)
{
    ((fx_t *)ud)->closed = true;
}

static void teardown(fx_t *f)
{
    notifier_close(f->n, on_closed, f);
    srv_stop(&f->srv);
    cv_actor_destroy(f->me);
    cv_runtime_close(f->rt);
    uv_close((uv_handle_t *)&f->deadline, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->closed);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    if (f->list)
        f->list->hdr.dispose(&f->list->hdr);
}

static void finished(fx_t *f, int64_t id, const char *job, run_status_t st, int attempt)
{
    run_t *r = run_new(job, attempt > 1 ? "retry" : "cron");
    r->id = id;
    r->status = st;
    r->attempt = attempt;
    r->exit_code = st == RUN_FAILED ? 3 : 0;
    r->started_at = cv_now_ms();
    r->finished_at = r->started_at + 5;
    cv_actor_post(notifier_actor(f->n), &msg_run_event_new(RUN_EV_FINISHED, r)->hdr);
    run_free(r);
}

static size_t count_path(const fx_t *f, const char *path)
{
    size_t n = 0;
    for (size_t i = 0; i < f->nreq; i++)
        n += strcmp(f->req[i].path, path) == 0;
    return n;
}

static const req_t *last_to(const fx_t *f, const char *path)
{
    for (size_t i = f->nreq; i-- > 0;)
        if (strcmp(f->req[i].path, path) == 0)
            return &f->req[i];
    fail_msg("no request to %s", path);
    return NULL;
}

#define RUN_CFG                                                                                    \
    "notify:\n"                                                                                    \
    "  - {name: hook, url: 'http://127.0.0.1:%d/ok', events: [run.failed, run.recovered],"         \
    " jobs: [flaky]}\n"                                                                            \
    "  - {name: broken, url: 'http://127.0.0.1:%d/500', events: [run.failed]}\n"                   \
    "  - {name: chat, url: 'http://127.0.0.1:%d/ok?slack', format: slack,"                         \
    " events: [run.timed_out]}\n"                                                                  \
    "jobs:\n"                                                                                      \
    "  - {name: flaky, schedule: manual, command: 'exit 3', retries: {max: 1}}\n"                  \
    "  - {name: other, schedule: manual, command: 'true'}\n"

static void a_failed_firing_is_delivered_once_retried_on_errors_and_listed(void **state)
{
    (void)state;
    fx_t f;
    setup(&f, RUN_CFG);
    /* the first attempt failed but its firing is retried: nothing yet */
    finished(&f, 7, "flaky", RUN_FAILED, 1);
    const msg_notify_list_t *l = get_list(&f, 1);
    assert_int_equal(l->count, 0);
    assert_int_equal(f.nreq, 0);

    /* the last attempt failed: run.failed to hook (200) and broken (500, three attempts) */
    finished(&f, 8, "flaky", RUN_FAILED, 2);
    wait_ended(&f, 1, 1);
    assert_int_equal(count_path(&f, "/ok"), 1);
    assert_int_equal(count_path(&f, "/500"), 3);
    const char *body = last_to(&f, "/ok")->body;
    assert_non_null(strstr(body, "\"event\":\"run.failed\""));
    assert_non_null(strstr(body, "\"notifier\":\"hook\""));
    assert_non_null(strstr(body, "\"instance\":\"t\""));
    assert_non_null(strstr(body, "Job flaky failed after 2 attempts (run 8, exit 3)"));
    assert_non_null(strstr(body, "\"id\":8"));

    l = get_list(&f, 2); /* newest first */
    assert_int_equal(l->count, 2);
    assert_string_equal(l->items[0].notifier, "broken");
    assert_false(l->items[0].pending);
    assert_false(l->items[0].delivered);
    assert_int_equal(l->items[0].attempts, 3);
    assert_int_equal(l->items[0].http_status, 500);
    assert_string_equal(l->items[0].last_error, "HTTP 500");
    assert_string_equal(l->items[1].notifier, "hook");
    assert_string_equal(l->items[1].event, "run.failed");
    assert_string_equal(l->items[1].subject, "flaky");
    assert_int_equal(l->items[1].run_id, 8);
    assert_true(l->items[1].delivered);
    assert_int_equal(l->items[1].attempts, 1);
    assert_int_equal(l->items[1].http_status, 200);
    assert_null(l->items[1].last_error);

    /* a job outside hook's `jobs` filter reaches broken only */
    finished(&f, 9, "other", RUN_FAILED, 1);
    wait_ended(&f, 1, 2);
    assert_int_equal(count_path(&f, "/ok"), 1);

    /* recovery of the failing job: run.recovered, once */
    finished(&f, 10, "flaky", RUN_SUCCESS, 1);
    wait_ended(&f, 2, 2);
    body = last_to(&f, "/ok")->body;
    assert_non_null(strstr(body, "\"event\":\"run.recovered\""));
    assert_non_null(strstr(body, "Job flaky recovered: run 10 SUCCESS"));
    finished(&f, 11, "flaky", RUN_SUCCESS, 1);
    l = get_list(&f, 3);
    assert_int_equal(l->count, 4); /* nothing new for the second success */

    /* slack format: only a text */
    finished(&f, 12, "other", RUN_TIMED_OUT, 1);
    wait_ended(&f, 3, 2);
    body = last_to(&f, "/ok?slack")->body;
    assert_non_null(strstr(body, "{\"text\":\"Job other timed out after"));
    assert_null(strstr(body, "\"event\""));

    /* a limit keeps the newest */
    l = get_list(&f, 4);
    assert_int_equal(l->count, 5);
    msg_notify_query_t *q = cv_msg_new(sizeof(*q), MSG_NOTIFY_GET);
    q->reply_to = f.me;
    q->corr = 5;
    q->limit = 1;
    cv_actor_post(notifier_actor(f.n), &q->hdr);
    uint64_t corr = 5;
    run_until(&f, listed, &corr, "MSG_NOTIFY_LIST");
    assert_int_equal(f.list->count, 1);
    assert_string_equal(f.list->items[0].event, "run.timed_out");
    teardown(&f);
}

#define PROBE_CFG                                                                                  \
    "notify:\n"                                                                                    \
    "  - {name: ops, url: 'http://127.0.0.1:%d/ok', events: [probe.unhealthy, probe.recovered]}\n" \
    "  - {name: jobs-only, url: 'http://127.0.0.1:%d/ok?jobs', events: [run.failed]}\n"            \
    "  - {name: none, url: 'http://127.0.0.1:%d/ok?none', events: [job.auto_disabled]}\n"          \
    "jobs: []\n"

static void health(fx_t *f, const char *probe, health_status_t st, health_status_t previous,
                   const char *message)
{
    health_result_t h = {.probe = (char *)probe,
                         .type = "tcp",
                         .status = st,
                         .latency_ms = 3,
                         .message = (char *)message};
    cv_actor_post(notifier_actor(f->n), &msg_health_new(&h, previous)->hdr);
}

static void probe_changes_are_told_when_they_become_and_stop_being_unhealthy(void **state)
{
    (void)state;
    fx_t f;
    setup(&f, PROBE_CFG);
    health(&f, "db", HEALTH_HEALTHY, HEALTH_UNKNOWN, "ok"); /* not news */
    health(&f, "db", HEALTH_UNHEALTHY, HEALTH_HEALTHY, "connection refused");
    wait_ended(&f, 1, 0);
    const char *body = last_to(&f, "/ok")->body;
    assert_non_null(strstr(body, "\"event\":\"probe.unhealthy\""));
    assert_non_null(strstr(body, "Probe db is unhealthy: connection refused"));
    assert_non_null(strstr(body, "\"previous\":\"healthy\""));

    health(&f, "db", HEALTH_UNHEALTHY, HEALTH_UNHEALTHY, "still refused"); /* no change */
    health(&f, "db", HEALTH_DEGRADED, HEALTH_UNHEALTHY, "slow");
    wait_ended(&f, 2, 0);
    body = last_to(&f, "/ok")->body;
    assert_non_null(strstr(body, "\"event\":\"probe.recovered\""));
    assert_non_null(strstr(body, "Probe db recovered (degraded): slow"));

    const msg_notify_list_t *l = get_list(&f, 1);
    assert_int_equal(l->count, 2);
    assert_string_equal(l->items[0].event, "probe.recovered");
    assert_string_equal(l->items[0].subject, "db");
    assert_int_equal(l->items[0].run_id, 0);
    assert_string_equal(l->items[1].event, "probe.unhealthy");
    assert_int_equal(count_path(&f, "/ok?jobs") + count_path(&f, "/ok?none"), 0);

    /* the executor's audit copy of an auto-disable */
    cv_actor_post(notifier_actor(f.n),
                  &msg_audit_new("system", "job.auto_disabled", "nightly", 42, "{}", "{}")->hdr);
    wait_ended(&f, 3, 0);
    body = last_to(&f, "/ok?none")->body;
    assert_non_null(strstr(body, "\"event\":\"job.auto_disabled\""));
    assert_non_null(strstr(body, "Job nightly was disabled after repeated failures (run 42)"));
    teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_failed_firing_is_delivered_once_retried_on_errors_and_listed),
        cmocka_unit_test(probe_changes_are_told_when_they_become_and_stop_being_unhealthy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
