/* The actor runtime: every actor (scheduler, executor, store, prober, notifier, http) owns its
 * state and receives typed messages through a mailbox. Messages are dispatched on the libuv loop
 * thread, one at a time, in the order they were posted.
 *
 * Posting from the loop thread appends to an in-memory queue and costs no system call: the runtime
 * drains the queue from a uv_idle handle that it starts when the queue becomes non-empty (an idle
 * handle makes the next poll non-blocking, so queued messages run in the same loop pass).
 * Posting from another thread (the SQLite worker) goes through a mutex-protected queue and one
 * uv_async_send, which libuv coalesces: a batch of posts wakes the loop once. */
#ifndef CV_CORE_ACTOR_H
#define CV_CORE_ACTOR_H

#include "core/util.h"

#include <uv.h>

typedef struct cv_runtime cv_runtime_t;
typedef struct cv_actor cv_actor_t;

/** The header every message starts with. The runtime fills `target` and `link`; the sender sets
 * `type` (a value from proto/msg.h) and `dispose`. */
typedef struct cv_msg {
    cv_list_t link;
    cv_actor_t *target;
    int type;
    /** Releases the message after its handler returned; NULL means free(). A handler that wants
     * to keep a field steals it (sets it to NULL) so dispose does not free it. */
    void (*dispose)(struct cv_msg *m);
} cv_msg_t;

/** An actor's message handler. It runs on the loop thread; it must not free `self`. */
typedef void (*cv_actor_handler_t)(cv_actor_t *self, cv_msg_t *msg);

/** Creates the runtime on a loop. Aborts on out-of-memory; returns NULL if libuv refuses the
 * handles (with *err set to the libuv error). */
cv_runtime_t *cv_runtime_create(uv_loop_t *loop, int *err);
/** Closes the runtime's handles; messages still queued are disposed without being handled.
 * The runtime is freed once the handles are closed (after the next loop pass). Actors must be
 * destroyed before. */
void cv_runtime_close(cv_runtime_t *rt);
uv_loop_t *cv_runtime_loop(cv_runtime_t *rt);
/** Number of messages dispatched so far (for tests and metrics). */
uint64_t cv_runtime_dispatched(const cv_runtime_t *rt);

/** Creates an actor named `name` (static string) with a handler and an opaque state pointer. */
cv_actor_t *cv_actor_create(cv_runtime_t *rt, const char *name, cv_actor_handler_t handler,
                            void *state);
/** Destroys an actor: messages still queued for it are disposed unhandled. Must not be called
 * from the actor's own handler. */
void cv_actor_destroy(cv_actor_t *a);
void *cv_actor_state(const cv_actor_t *a);
const char *cv_actor_name(const cv_actor_t *a);
cv_runtime_t *cv_actor_runtime(const cv_actor_t *a);

/** Posts a message from the loop thread. Takes ownership of `m`. Never fails. */
void cv_actor_post(cv_actor_t *a, cv_msg_t *m);
/** Posts a message from any other thread. Takes ownership of `m`. Never fails. */
void cv_actor_post_threadsafe(cv_actor_t *a, cv_msg_t *m);

/** Allocates a zeroed message of `size` bytes with its type set. */
void *cv_msg_new(size_t size, int type);

#endif
