#include "core/actor.h"

#include <pthread.h>
#include <stdlib.h>

struct cv_runtime {
    uv_loop_t *loop;
    uv_idle_t idle;   /* running while `queue` is non-empty */
    uv_async_t async; /* wakes the loop for posts from other threads */
    cv_list_t queue;  /* messages posted on the loop thread, in order */
    pthread_mutex_t lock;
    cv_list_t inbox; /* messages posted from other threads, under `lock` */
    uint64_t dispatched;
    int closing_handles;
};

struct cv_actor {
    cv_runtime_t *rt;
    const char *name;
    cv_actor_handler_t handler;
    void *state;
};

void *cv_msg_new(size_t size, int type)
{
    cv_msg_t *m = cv_calloc(1, size);
    cv_list_init(&m->link);
    m->type = type;
    return m;
}

static void msg_dispose(cv_msg_t *m)
{
    if (m->dispose)
        m->dispose(m);
    else
        free(m);
}

static void drain(cv_runtime_t *rt)
{
    /* Messages posted by handlers during this drain are appended to the same queue and run in
     * this pass too: the queue is FIFO, so order across actors is the order of posting. */
    while (!cv_list_empty(&rt->queue)) {
        cv_list_t *n = rt->queue.next;
        cv_list_remove(n);
        cv_msg_t *m = cv_container_of(n, cv_msg_t, link);
        cv_actor_t *a = m->target;
        a->handler(a, m);
        rt->dispatched++;
        msg_dispose(m);
    }
    uv_idle_stop(&rt->idle);
}

static void on_idle(uv_idle_t *h)
{
    drain(h->data);
}

static void move_inbox(cv_runtime_t *rt)
{
    pthread_mutex_lock(&rt->lock);
    while (!cv_list_empty(&rt->inbox)) {
        cv_list_t *n = rt->inbox.next;
        cv_list_remove(n);
        cv_list_insert_tail(&rt->queue, n);
    }
    pthread_mutex_unlock(&rt->lock);
}

static void on_async(uv_async_t *h)
{
    cv_runtime_t *rt = h->data;
    move_inbox(rt);
    drain(rt);
}

cv_runtime_t *cv_runtime_create(uv_loop_t *loop, int *err)
{
    cv_runtime_t *rt = cv_calloc(1, sizeof(*rt));
    rt->loop = loop;
    cv_list_init(&rt->queue);
    cv_list_init(&rt->inbox);
    pthread_mutex_init(&rt->lock, NULL);
    int rc = uv_idle_init(loop, &rt->idle);
    if (rc == 0)
        rc = uv_async_init(loop, &rt->async, on_async);
    if (rc != 0) {
        *err = rc;
        pthread_mutex_destroy(&rt->lock);
        free(rt);
        return NULL;
    }
    rt->idle.data = rt;
    rt->async.data = rt;
    return rt;
}

static void dispose_list(cv_list_t *l)
{
    while (!cv_list_empty(l)) {
        cv_list_t *n = l->next;
        cv_list_remove(n);
        msg_dispose(cv_container_of(n, cv_msg_t, link));
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    cv_runtime_t *rt = h->data;
    if (--rt->closing_handles > 0)
        return;
    move_inbox(rt);
    dispose_list(&rt->queue);
    pthread_mutex_destroy(&rt->lock);
    free(rt);
}

void cv_runtime_close(cv_runtime_t *rt)
{
    rt->closing_handles = 2;
    uv_close((uv_handle_t *)&rt->idle, on_handle_closed);
    uv_close((uv_handle_t *)&rt->async, on_handle_closed);
}

uv_loop_t *cv_runtime_loop(cv_runtime_t *rt)
{
    return rt->loop;
}

uint64_t cv_runtime_dispatched(const cv_runtime_t *rt)
{
    return rt->dispatched;
}

cv_actor_t *cv_actor_create(cv_runtime_t *rt, const char *name, cv_actor_handler_t handler,
                            void *state)
{
    cv_actor_t *a = cv_calloc(1, sizeof(*a));
    a->rt = rt;
    a->name = name;
    a->handler = handler;
    a->state = state;
    return a;
}

static void drop_for(cv_list_t *l, cv_actor_t *a)
{
    for (cv_list_t *n = l->next, *next; n != l; n = next) {
        next = n->next;
        cv_msg_t *m = cv_container_of(n, cv_msg_t, link);
        if (m->target == a) {
            cv_list_remove(n);
            msg_dispose(m);
        }
    }
}

void cv_actor_destroy(cv_actor_t *a)
{
    if (a == NULL)
        return;
    drop_for(&a->rt->queue, a);
    pthread_mutex_lock(&a->rt->lock);
    drop_for(&a->rt->inbox, a);
    pthread_mutex_unlock(&a->rt->lock);
    free(a);
}

void *cv_actor_state(const cv_actor_t *a)
{
    return a->state;
}

cv_runtime_t *cv_actor_runtime(const cv_actor_t *a)
{
    return a->rt;
}

void cv_actor_post(cv_actor_t *a, cv_msg_t *m)
{
    cv_runtime_t *rt = a->rt;
    m->target = a;
    if (cv_list_empty(&rt->queue))
        uv_idle_start(&rt->idle, on_idle);
    cv_list_insert_tail(&rt->queue, &m->link);
}

void cv_actor_post_threadsafe(cv_actor_t *a, cv_msg_t *m)
{
    cv_runtime_t *rt = a->rt;
    m->target = a;
    pthread_mutex_lock(&rt->lock);
    cv_list_insert_tail(&rt->inbox, &m->link);
    pthread_mutex_unlock(&rt->lock);
    uv_async_send(&rt->async);
}

/* ---- liveness tokens ---- */

struct cv_live {
    bool alive;
    unsigned refs;
};

cv_live_t *cv_live_new(void)
{
    cv_live_t *l = cv_calloc(1, sizeof(*l));
    l->alive = true;
    l->refs = 1;
    return l;
}

cv_live_t *cv_live_ref(cv_live_t *l)
{
    l->refs++;
    return l;
}

void cv_live_unref(cv_live_t *l)
{
    if (--l->refs == 0)
        free(l);
}

void cv_live_end(cv_live_t *l)
{
    l->alive = false;
    cv_live_unref(l);
}

bool cv_live_alive(const cv_live_t *l)
{
    return l->alive;
}
