/* The prober on a real loop against a local HTTP server (tests/core/httpc_test_server.h), a
 * refused port and commands: statuses, messages, refresh and get replies, observers, deadlines
 * that do not hold back other probes, and a clean close. Redis and PostgreSQL probes are driven
 * against real servers by tests/blackbox/test_probes.py. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "actors/prober.h"
#include "core/log.h"
#include "core/reaper.h"
#include "tests/core/httpc_test_server.h"

typedef struct {
    uv_loop_t loop;
    cv_runtime_t *rt;
    cv_actor_t *me;
    prober_t *p;
    srv_t srv;
    uv_timer_t stop;
    msg_health_list_t *refreshed; /* kept (stolen) for the assertions */
    char *get_error;
    int changes;
    health_status_t hang_previous;
    uint64_t checks_at_reply;
    bool closed;
} fx_t;

static void on_prober_closed(void *ud)
{
    ((fx_t *)ud)->closed = true;
}

static void on_stop(uv_timer_t *t)
{
    fx_t *f = t->data;
    prober_close(f->p, on_prober_closed, f);
    srv_stop(&f->srv);
    cv_actor_destroy(f->me);
    cv_runtime_close(f->rt);
    reaper_stop(); /* started by the exec probes */
    uv_close((uv_handle_t *)&f->stop, NULL);
}

static void handle(cv_actor_t *self, cv_msg_t *msg)
{
    fx_t *f = cv_actor_state(self);
    if (msg->type == MSG_HEALTH) {
        msg_health_t *h = (msg_health_t *)msg;
        f->changes++;
        if (strcmp(h->h.probe, "hang") == 0)
            f->hang_previous = h->previous;
        return;
    }
    assert_int_equal(msg->type, MSG_HEALTH_LIST);
    msg_health_list_t *l = (msg_health_list_t *)msg;
    if (l->corr == 1) {
        f->get_error = l->error;
        l->error = NULL;
        return;
    }
    /* steal the message's contents into a fresh one for the assertions */
    f->refreshed = msg_health_list_new(l->corr, l->items, l->count, l->error);
    f->checks_at_reply = prober_checks(f->p);
    uv_timer_start(&f->stop, on_stop, 0, 0);
}

static const health_result_t *item(const msg_health_list_t *l, const char *name)
{
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i].probe, name) == 0)
            return &l->items[i];
    fail_msg("no probe %s in the reply", name);
    return NULL;
}

static void refresh_reports_every_status_while_a_hanging_probe_holds_back_no_other(void **state)
{
    fx_t f = {0};
    assert_int_equal(uv_loop_init(&f.loop), 0);
    assert_int_equal(srv_start(&f.loop, &f.srv), 0);
    int err = 0;
    f.rt = cv_runtime_create(&f.loop, &err);
    f.me = cv_actor_create(f.rt, "test", handle, &f);
    uv_timer_init(&f.loop, &f.stop);
    f.stop.data = &f;

    char *yaml = cv_sprintf(
        "probes:\n"
        "  - {name: ok, type: http, url: 'http://127.0.0.1:%d/ok', interval: 1h,"
        " body_contains: hello}\n"
        "  - {name: slow, type: http, url: 'http://127.0.0.1:%d/slow?ms=150', interval: 1h,"
        " degraded_after: 50ms}\n"
        "  - {name: hang, type: http, url: 'http://127.0.0.1:%d/hang', interval: 1h,"
        " timeout: 400ms}\n"
        "  - {name: status, type: http, url: 'http://127.0.0.1:%d/500', interval: 1h}\n"
        "  - {name: tick, type: tcp, address: '127.0.0.1:%d', interval: 40ms}\n"
        "  - {name: refused, type: tcp, address: '127.0.0.1:1', interval: 1h}\n"
        "  - {name: fails, type: exec, command: 'echo broken >&2; exit 2', interval: 1h}\n"
        "  - {name: twice, type: exec, command: 'exit 1', interval: 1h, fail_after: 2}\n"
        "jobs: []\n",
        f.srv.port, f.srv.port, f.srv.port, f.srv.port, f.srv.port);
    cfg_t *cfg = NULL;
    cfg_errors_t errs = {0};
    assert_int_equal(cfgcheck_load_string(yaml, strlen(yaml), "t.yaml", &cfg, &errs), 0);
    free(yaml);
    cfgref_t *ref = cfgref_new(cfg);
    prober_opts_t o = {.cfg = ref};
    f.p = prober_create(f.rt, &o);
    cfgref_put(ref); /* the prober holds its own reference */
    assert_int_equal(prober_add_observer(f.p, f.me), 0);
    prober_start(f.p);
    cv_actor_post(prober_actor(f.p), &msg_health_query_new(MSG_HEALTH_GET, "nope", f.me, 1)->hdr);
    cv_actor_post(prober_actor(f.p), &msg_health_query_new(MSG_HEALTH_REFRESH, NULL, f.me, 2)->hdr);
    uv_run(&f.loop, UV_RUN_DEFAULT);

    assert_true(f.closed);
    assert_int_equal(uv_loop_close(&f.loop), 0);
    assert_string_equal(f.get_error, "no probe named 'nope'");
    msg_health_list_t *l = f.refreshed;
    assert_non_null(l);
    assert_int_equal(l->count, 8);
    assert_int_equal(item(l, "ok")->status, HEALTH_HEALTHY);
    assert_string_equal(item(l, "ok")->message, "HTTP 200");
    assert_int_equal(item(l, "slow")->status, HEALTH_DEGRADED);
    assert_string_equal(item(l, "slow")->message, "HTTP 200 (slower than 50ms)");
    assert_true(item(l, "slow")->latency_ms >= 150);
    assert_int_equal(item(l, "hang")->status, HEALTH_UNHEALTHY);
    assert_string_equal(item(l, "hang")->message, "timed out after 400ms");
    assert_true(item(l, "hang")->latency_ms >= 400);
    assert_true(item(l, "hang")->since > 0);
    assert_int_equal(item(l, "status")->status, HEALTH_UNHEALTHY);
    assert_string_equal(item(l, "status")->message, "HTTP 500 (expected 2xx)");
    assert_int_equal(item(l, "refused")->status, HEALTH_UNHEALTHY);
    assert_non_null(strstr(item(l, "refused")->message, "connection refused"));
    assert_int_equal(item(l, "fails")->status, HEALTH_UNHEALTHY);
    assert_string_equal(item(l, "fails")->message, "exit 2: broken");
    /* one failure of two allowed: not unhealthy yet */
    assert_int_equal(item(l, "twice")->status, HEALTH_UNKNOWN);
    assert_int_equal(item(l, "twice")->consecutive_failures, 1);
    assert_int_equal(item(l, "tick")->status, HEALTH_HEALTHY);
    /* tick (every 40ms) kept its schedule while hang waited 400ms: 7 one-shot checks + >= 5 */
    assert_true(f.checks_at_reply >= 12);
    assert_int_equal(f.changes, 7); /* every probe but "twice" left unknown, once */
    assert_int_equal(f.hang_previous, HEALTH_UNKNOWN);
    l->hdr.dispose(&l->hdr);
    free(f.get_error);
}

static void health_names_and_messages_copy_deeply(void **state)
{
    health_result_t a = {
        .probe = cv_strdup("db"), .message = cv_strdup("down"), .status = HEALTH_UNHEALTHY};
    msg_health_t *m = msg_health_new(&a, HEALTH_HEALTHY);
    health_result_clear(&a);
    assert_string_equal(m->h.probe, "db");
    assert_string_equal(m->h.message, "down");
    assert_string_equal(health_status_name(m->h.status), "unhealthy");
    assert_string_equal(health_status_name(m->previous), "healthy");
    m->hdr.dispose(&m->hdr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refresh_reports_every_status_while_a_hanging_probe_holds_back_no_other),
        cmocka_unit_test(health_names_and_messages_copy_deeply),
    };
    cv_log_setup(CV_LOG_ERROR, false);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
