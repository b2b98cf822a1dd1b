/* The actor runtime: ordering, posting from handlers and threads, and a clean close. */
#include "core/actor.h"

#include <pthread.h>
#include <stdlib.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

enum { MSG_NUM = 1, MSG_FORWARD = 2 };

typedef struct {
    cv_msg_t hdr;
    int value;
} num_msg_t;

typedef struct {
    int seen[20000];
    int count;
    cv_actor_t *forward_to;
} sink_t;

static void sink_handle(cv_actor_t *self, cv_msg_t *msg)
{
    sink_t *s = cv_actor_state(self);
    num_msg_t *n = (num_msg_t *)msg;
    if (msg->type == MSG_FORWARD && s->forward_to) {
        num_msg_t *f = cv_msg_new(sizeof(*f), MSG_NUM);
        f->value = n->value * 10;
        cv_actor_post(s->forward_to, &f->hdr);
    }
    s->seen[s->count++] = n->value;
}

static void post_num(cv_actor_t *a, int type, int value)
{
    num_msg_t *m = cv_msg_new(sizeof(*m), type);
    m->value = value;
    cv_actor_post(a, &m->hdr);
}

static void messages_arrive_in_the_order_they_were_posted(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    int err = 0;
    cv_runtime_t *rt = cv_runtime_create(&loop, &err);
    assert_non_null(rt);
    static sink_t sink;
    sink.count = 0;
    cv_actor_t *a = cv_actor_create(rt, "sink", sink_handle, &sink);
    for (int i = 0; i < 100; i++)
        post_num(a, MSG_NUM, i);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(sink.count, 100);
    for (int i = 0; i < 100; i++)
        assert_int_equal(sink.seen[i], i);
    cv_actor_destroy(a);
    cv_runtime_close(rt);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void a_message_posted_by_a_handler_runs_in_the_same_loop_pass(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    int err = 0;
    cv_runtime_t *rt = cv_runtime_create(&loop, &err);
    static sink_t first, second;
    first.count = second.count = 0;
    cv_actor_t *b = cv_actor_create(rt, "second", sink_handle, &second);
    first.forward_to = b;
    cv_actor_t *a = cv_actor_create(rt, "first", sink_handle, &first);
    post_num(a, MSG_FORWARD, 7);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(first.count, 1);
    assert_int_equal(second.count, 1);
    assert_int_equal(second.seen[0], 70);
    assert_int_equal(cv_runtime_dispatched(rt), 2);
    cv_actor_destroy(a);
    cv_actor_destroy(b);
    cv_runtime_close(rt);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

typedef struct {
    cv_actor_t *target;
    int base;
} poster_arg_t;

static void *poster_thread(void *p)
{
    poster_arg_t *arg = p;
    for (int i = 0; i < 5000; i++) {
        num_msg_t *m = cv_msg_new(sizeof(*m), MSG_NUM);
        m->value = arg->base + i;
        cv_actor_post_threadsafe(arg->target, &m->hdr);
    }
    return NULL;
}

static void posts_from_two_threads_all_arrive_each_in_its_own_order(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    int err = 0;
    cv_runtime_t *rt = cv_runtime_create(&loop, &err);
    static sink_t sink;
    sink.count = 0;
    cv_actor_t *a = cv_actor_create(rt, "sink", sink_handle, &sink);

    pthread_t t1, t2;
    poster_arg_t a1 = {a, 0}, a2 = {a, 100000};
    pthread_create(&t1, NULL, poster_thread, &a1);
    pthread_create(&t2, NULL, poster_thread, &a2);
    /* The async handle keeps the loop alive: each pass blocks until a batch is posted. */
    while (sink.count < 10000)
        uv_run(&loop, UV_RUN_ONCE);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);

    int last_low = -1, last_high = 99999;
    for (int i = 0; i < sink.count; i++) {
        int v = sink.seen[i];
        if (v < 100000) {
            assert_true(v > last_low);
            last_low = v;
        } else {
            assert_true(v > last_high);
            last_high = v;
        }
    }
    assert_int_equal(last_low, 4999);
    assert_int_equal(last_high, 104999);
    cv_actor_destroy(a);
    cv_runtime_close(rt);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static int disposed;
static void counting_dispose(cv_msg_t *m)
{
    disposed++;
    free(m);
}

static void destroying_an_actor_disposes_its_queued_messages_unhandled(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    int err = 0;
    cv_runtime_t *rt = cv_runtime_create(&loop, &err);
    static sink_t sink;
    sink.count = 0;
    cv_actor_t *a = cv_actor_create(rt, "sink", sink_handle, &sink);
    disposed = 0;
    for (int i = 0; i < 3; i++) {
        num_msg_t *m = cv_msg_new(sizeof(*m), MSG_NUM);
        m->hdr.dispose = counting_dispose;
        cv_actor_post(a, &m->hdr);
    }
    cv_actor_destroy(a);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(sink.count, 0);
    assert_int_equal(disposed, 3);
    cv_runtime_close(rt);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void a_live_token_outlives_its_owner_until_the_last_request_lets_go(void **state)
{
    cv_live_t *owner = cv_live_new();
    cv_live_t *req1 = cv_live_ref(owner), *req2 = cv_live_ref(owner);
    assert_ptr_equal(req1, owner);
    cv_live_unref(req1); /* a reply while the owner lives */
    assert_true(cv_live_alive(req2));
    cv_live_end(owner);                /* the owner closes with one request in flight */
    assert_false(cv_live_alive(req2)); /* ASan: still readable */
    cv_live_unref(req2);               /* the late reply frees it (LSan: nothing leaks) */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(messages_arrive_in_the_order_they_were_posted),
        cmocka_unit_test(a_message_posted_by_a_handler_runs_in_the_same_loop_pass),
        cmocka_unit_test(posts_from_two_threads_all_arrive_each_in_its_own_order),
        cmocka_unit_test(destroying_an_actor_disposes_its_queued_messages_unhandled),
        cmocka_unit_test(a_live_token_outlives_its_owner_until_the_last_request_lets_go),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
