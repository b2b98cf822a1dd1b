/* The prober on a real loop against a local HTTP server (tests/core/httpc_test_server.h), a
 * refused port and commands: statuses, messages, refresh and get replies, observers, deadlines
 * that do not hold back other probes, and a clean close. The store probe runs against a fake
 * store whose ping answers land exactly where each case puts them relative to the deadline and
 * to the prober's close (both orders, and both in one loop pass). Redis and PostgreSQL probes are
 * driven against real servers by tests/blackbox/test_probes.py. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "actors/prober.h"
#include "actors/store_actor.h"
#include "core/log.h"
#include "core/reaper.h"
#include "storage/store.h"
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

/* ---- the store probe against a fake store that answers when told ---- */

typedef enum {
    /* after the poll of the pass the ping was asked in, once the deadline is due: the deadline
     * fires in the next pass's timer phase, before the prober reads the answer's message */
    ANSWER_THEN_DEADLINE_SAME_PASS,
    /* from a timer due with the deadline and started after it: same timer phase, deadline first */
    DEADLINE_THEN_ANSWER_SAME_PASS,
    /* only once the timed-out result was observed, a pass or more later */
    DEADLINE_THEN_ANSWER_LATER,
    /* from a 0 ms timer, and the prober is closed right after, before it reads the answer's
     * message */
    ANSWER_THEN_CLOSE,
    /* never before the prober is closed; answered after the close */
    CLOSE_THEN_ANSWER,
} answer_order_t;

typedef struct {
    struct store base; /* first: the store_t the store actor pings */
    uv_loop_t loop;
    cv_runtime_t *rt;
    store_actor_t *sa; /* the real store actor, over the fake store */
    cv_actor_t *store, *me;
    prober_t *p;
    answer_order_t order;
    int64_t timeout_ms;
    uv_check_t after_poll;
    uv_timer_t answer_timer, stop;
    store_status_cb cb; /* the ping waiting for its answer */
    void *ud;
    uint64_t asked_at; /* loop time when the ping was asked (= the deadline's start) */
    int pings;
    int results; /* MSG_HEALTH received */
    health_status_t first_status, last_status;
    char *first_message, *last_message;
    bool prober_closed, stopping;
} sfx_t;

static void store_stop(sfx_t *f);

static void answer(sfx_t *f, int status)
{
    store_status_cb cb = f->cb;
    f->cb = NULL;
    if (cb)
        cb(f->ud, status);
}

static void on_store_prober_closed(void *ud)
{
    ((sfx_t *)ud)->prober_closed = true;
}

static void on_after_poll(uv_check_t *h)
{
    sfx_t *f = h->data;
    uv_check_stop(h);
    /* the poll waited for the deadline's timer; make sure, on the loop's own clock, that it is
     * due (no sleep: at most a few ms of a busy wait) */
    while (uv_now(&f->loop) < f->asked_at + (uint64_t)f->timeout_ms)
        uv_update_time(&f->loop);
    answer(f, 0);
}

static void on_stop_timer(uv_timer_t *t);

static void on_answer_timer(uv_timer_t *t)
{
    sfx_t *f = t->data;
    answer(f, 0);
    if (f->order == ANSWER_THEN_CLOSE && f->pings == 1)
        store_stop(f);
}

static void fake_ping(store_t *st, store_status_cb cb, void *ud)
{
    sfx_t *f = (sfx_t *)st;
    assert_null(f->cb);
    f->cb = cb;
    f->ud = ud;
    f->asked_at = uv_now(&f->loop);
    f->pings++;
    if (f->pings > 1 || f->order == ANSWER_THEN_CLOSE)
        uv_timer_start(&f->answer_timer, on_answer_timer, 0, 0); /* next pass, long before */
    else if (f->order == ANSWER_THEN_DEADLINE_SAME_PASS)
        uv_check_start(&f->after_poll, on_after_poll);
    else if (f->order == DEADLINE_THEN_ANSWER_SAME_PASS)
        uv_timer_start(&f->answer_timer, on_answer_timer, (uint64_t)f->timeout_ms, 0);
    else if (f->order == CLOSE_THEN_ANSWER)
        uv_timer_start(&f->stop, on_stop_timer, 0, 0);
    /* DEADLINE_THEN_ANSWER_LATER: answered by the test actor once the timeout was observed */
}

static const store_ops_t fake_ops = {.name = "fake", .ping = fake_ping};

static void on_stop_timer(uv_timer_t *t)
{
    store_stop(t->data);
}

static void store_stop(sfx_t *f)
{
    if (f->stopping)
        return;
    f->stopping = true;
    prober_close(f->p, on_store_prober_closed, f);
    if (f->order == CLOSE_THEN_ANSWER)
        answer(f, 0); /* the prober is gone: its answer must go nowhere */
    store_actor_destroy(f->sa);
    cv_actor_destroy(f->me);
    cv_runtime_close(f->rt);
    uv_close((uv_handle_t *)&f->after_poll, NULL);
    uv_close((uv_handle_t *)&f->answer_timer, NULL);
    uv_close((uv_handle_t *)&f->stop, NULL);
}

static void test_store_handle(cv_actor_t *self, cv_msg_t *msg)
{
    sfx_t *f = cv_actor_state(self);
    if (msg->type == MSG_HEALTH_LIST) { /* the refresh after the first result */
        msg_health_list_t *l = (msg_health_list_t *)msg;
        assert_int_equal(l->count, 1);
        f->last_status = l->items[0].status;
        f->last_message = cv_strdup(l->items[0].message);
        uv_timer_start(&f->stop, on_stop_timer, 0, 0);
        return;
    }
    assert_int_equal(msg->type, MSG_HEALTH);
    msg_health_t *h = (msg_health_t *)msg;
    if (++f->results > 1)
        return;
    f->first_status = h->h.status;
    f->first_message = cv_strdup(h->h.message);
    if (f->order == DEADLINE_THEN_ANSWER_LATER)
        answer(f, 0); /* the late answer to the check that timed out */
    /* a second check must work as usual, whatever came late */
    cv_actor_post(prober_actor(f->p),
                  &msg_health_query_new(MSG_HEALTH_REFRESH, "store", f->me, 7)->hdr);
}

/* Runs one store check whose answer lands where `order` says; returns the fixture for the
 * assertions (the loop is closed). */
static void run_store_race(sfx_t *f, answer_order_t order, int64_t timeout_ms)
{
    f->order = order;
    f->timeout_ms = timeout_ms;
    f->base.ops = &fake_ops;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->base.loop = &f->loop;
    int err = 0;
    f->rt = cv_runtime_create(&f->loop, &err);
    f->sa = store_actor_create(f->rt, &f->base);
    f->store = store_actor_actor(f->sa);
    f->me = cv_actor_create(f->rt, "test", test_store_handle, f);
    uv_check_init(&f->loop, &f->after_poll);
    uv_timer_init(&f->loop, &f->answer_timer);
    uv_timer_init(&f->loop, &f->stop);
    f->after_poll.data = f->answer_timer.data = f->stop.data = f;
    cfg_t *cfg = NULL;
    cfg_errors_t errs = {0};
    assert_int_equal(cfgcheck_load_string("jobs: []\n", 9, "t.yaml", &cfg, &errs), 0);
    cfgref_t *ref = cfgref_new(cfg);
    prober_opts_t o = {.cfg = ref,
                       .store = f->store,
                       .store_interval_ms = 3600000,
                       .store_timeout_ms = timeout_ms};
    f->p = prober_create(f->rt, &o);
    cfgref_put(ref);
    assert_int_equal(prober_add_observer(f->p, f->me), 0);
    prober_start(f->p);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->prober_closed);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void sfx_free(sfx_t *f)
{
    free(f->first_message);
    free(f->last_message);
}

static void a_store_answer_just_before_its_deadline_in_one_pass_touches_no_freed_check(void **s)
{
    sfx_t f = {0};
    run_store_race(&f, ANSWER_THEN_DEADLINE_SAME_PASS, 300);
    /* the deadline fired before the prober read the answer: it counts as a timeout (ASan: no
     * write into the freed ping) and the next check is answered as usual */
    assert_int_equal(f.first_status, HEALTH_UNHEALTHY);
    assert_string_equal(f.first_message, "timed out after 300ms");
    assert_int_equal(f.pings, 2);
    assert_int_equal(f.last_status, HEALTH_HEALTHY);
    assert_string_equal(f.last_message, "store answered");
    sfx_free(&f);
}

static void a_store_answer_just_after_its_deadline_in_one_pass_is_ignored(void **s)
{
    sfx_t f = {0};
    run_store_race(&f, DEADLINE_THEN_ANSWER_SAME_PASS, 300);
    assert_int_equal(f.first_status, HEALTH_UNHEALTHY);
    assert_string_equal(f.first_message, "timed out after 300ms");
    assert_int_equal(f.pings, 2);
    assert_int_equal(f.last_status, HEALTH_HEALTHY);
    sfx_free(&f);
}

static void a_store_answer_passes_after_its_deadline_is_ignored(void **s)
{
    sfx_t f = {0};
    run_store_race(&f, DEADLINE_THEN_ANSWER_LATER, 300);
    assert_int_equal(f.first_status, HEALTH_UNHEALTHY);
    assert_string_equal(f.first_message, "timed out after 300ms");
    assert_int_equal(f.pings, 2);
    assert_int_equal(f.last_status, HEALTH_HEALTHY);
    assert_string_equal(f.last_message, "store answered");
    sfx_free(&f);
}

static void closing_the_prober_after_a_store_answer_it_has_not_read_touches_nothing_freed(void **s)
{
    sfx_t f = {0};
    run_store_race(&f, ANSWER_THEN_CLOSE, 3600000);
    assert_int_equal(f.pings, 1);
    assert_int_equal(f.results, 0); /* the answer's message went with the prober's mailbox */
}

static void a_store_answer_after_the_prober_closed_goes_nowhere(void **s)
{
    sfx_t f = {0};
    run_store_race(&f, CLOSE_THEN_ANSWER, 3600000);
    assert_int_equal(f.pings, 1);
    assert_int_equal(f.results, 0);
}

/* ---- a passive store probe (SQLite): its status follows the store's state ---- */

typedef struct {
    struct store base; /* first: the store_t the store actor pings */
    uv_loop_t loop;
    cv_runtime_t *rt;
    store_actor_t *sa;
    cv_actor_t *me;
    prober_t *p;
    uv_timer_t answer_timer, window, stop;
    store_status_cb cb;
    void *ud;
    int pings, results, pings_after_window;
    health_status_t status[3], refreshed;
    char *message[3];
    bool closed;
} pfx_t;

static void passive_answer(uv_timer_t *t)
{
    pfx_t *f = t->data;
    store_status_cb cb = f->cb;
    f->cb = NULL;
    cb(f->ud, 0);
}

static void passive_ping(store_t *st, store_status_cb cb, void *ud)
{
    pfx_t *f = (pfx_t *)st;
    f->cb = cb;
    f->ud = ud;
    f->pings++;
    uv_timer_start(&f->answer_timer, passive_answer, 0, 0);
}

static const store_ops_t passive_ops = {.name = "fake", .ping = passive_ping};

static void passive_closed(void *ud)
{
    ((pfx_t *)ud)->closed = true;
}

static void passive_stop(uv_timer_t *t)
{
    pfx_t *f = t->data;
    prober_close(f->p, passive_closed, f);
    store_actor_destroy(f->sa);
    cv_actor_destroy(f->me);
    cv_runtime_close(f->rt);
    uv_close((uv_handle_t *)&f->answer_timer, NULL);
    uv_close((uv_handle_t *)&f->window, NULL);
    uv_close((uv_handle_t *)&f->stop, NULL);
}

static void passive_window_over(uv_timer_t *t)
{
    pfx_t *f = t->data;
    f->pings_after_window = f->pings;
    cv_actor_post(prober_actor(f->p),
                  &msg_health_query_new(MSG_HEALTH_REFRESH, "store", f->me, 9)->hdr);
}

static void passive_handle(cv_actor_t *self, cv_msg_t *msg)
{
    pfx_t *f = cv_actor_state(self);
    if (msg->type == MSG_HEALTH_LIST) { /* a refresh still pings */
        f->refreshed = ((msg_health_list_t *)msg)->items[0].status;
        uv_timer_start(&f->stop, passive_stop, 0, 0);
        return;
    }
    assert_int_equal(msg->type, MSG_HEALTH);
    msg_health_t *h = (msg_health_t *)msg;
    int i = f->results++;
    assert_true(i < 3);
    f->status[i] = h->h.status;
    f->message[i] = cv_strdup(h->h.message);
    cv_actor_t *prober = prober_actor(f->p);
    if (i == 0) /* the first check at start; then the store fails its writes */
        cv_actor_post(prober, &msg_store_state_new(STORE_DEGRADED, 1, 0, 0)->hdr);
    else if (i == 1) /* and writes again */
        cv_actor_post(prober, &msg_store_state_new(STORE_UP, 0, 0, 0)->hdr);
    else /* 25 intervals of 20 ms: no ping */
        uv_timer_start(&f->window, passive_window_over, 500, 0);
}

static void a_passive_store_probe_follows_the_store_state_and_does_not_poll(void **s)
{
    (void)s;
    pfx_t f = {0};
    f.base.ops = &passive_ops;
    assert_int_equal(uv_loop_init(&f.loop), 0);
    f.base.loop = &f.loop;
    int err = 0;
    f.rt = cv_runtime_create(&f.loop, &err);
    f.sa = store_actor_create(f.rt, &f.base);
    f.me = cv_actor_create(f.rt, "test", passive_handle, &f);
    uv_timer_init(&f.loop, &f.answer_timer);
    uv_timer_init(&f.loop, &f.window);
    uv_timer_init(&f.loop, &f.stop);
    f.answer_timer.data = f.window.data = f.stop.data = &f;
    cfg_t *cfg = NULL;
    cfg_errors_t errs = {0};
    assert_int_equal(cfgcheck_load_string("jobs: []\n", 9, "t.yaml", &cfg, &errs), 0);
    cfgref_t *ref = cfgref_new(cfg);
    prober_opts_t o = {.cfg = ref,
                       .store = store_actor_actor(f.sa),
                       .store_interval_ms = 20,
                       .store_timeout_ms = 5000,
                       .store_passive = true};
    f.p = prober_create(f.rt, &o);
    cfgref_put(ref);
    assert_int_equal(prober_add_observer(f.p, f.me), 0);
    prober_start(f.p);
    uv_timer_start(&f.stop, passive_stop, 20000, 0); /* a watchdog: the steps below restart it */
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_true(f.closed);
    assert_int_equal(uv_loop_close(&f.loop), 0);
    assert_int_equal(f.results, 3);
    assert_int_equal(f.status[0], HEALTH_HEALTHY);
    assert_string_equal(f.message[0], "store answered");
    assert_int_equal(f.status[1], HEALTH_UNHEALTHY);
    assert_string_equal(f.message[1], "the database is failing writes (the store is degraded)");
    assert_int_equal(f.status[2], HEALTH_HEALTHY);
    assert_string_equal(f.message[2], "store writes succeed");
    assert_int_equal(f.pings_after_window, 1); /* an active probe would have pinged ~25 times */
    assert_int_equal(f.pings, 2);
    assert_int_equal(f.refreshed, HEALTH_HEALTHY);
    for (int i = 0; i < 3; i++)
        free(f.message[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refresh_reports_every_status_while_a_hanging_probe_holds_back_no_other),
        cmocka_unit_test(health_names_and_messages_copy_deeply),
        cmocka_unit_test(
            a_store_answer_just_before_its_deadline_in_one_pass_touches_no_freed_check),
        cmocka_unit_test(a_store_answer_just_after_its_deadline_in_one_pass_is_ignored),
        cmocka_unit_test(a_store_answer_passes_after_its_deadline_is_ignored),
        cmocka_unit_test(
            closing_the_prober_after_a_store_answer_it_has_not_read_touches_nothing_freed),
        cmocka_unit_test(a_store_answer_after_the_prober_closed_goes_nowhere),
        cmocka_unit_test(a_passive_store_probe_follows_the_store_state_and_does_not_poll),
    };
    cv_log_setup(CV_LOG_ERROR, false);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
