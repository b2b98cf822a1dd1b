/* The actor runtime: every actor (supervisor, store, http, executor, scheduler, notifier, prober,
 * cluster) owns its state and receives typed messages through a mailbox. Messages are dispatched on
 * the libuv loop thread, one at a time, in the order they were posted.
 *
 * Posting from the loop thread appends to an in-memory queue and costs no system call: the runtime
 * drains the queue from a uv_idle handle that it starts when the queue becomes non-empty (an idle
 * handle makes the next poll non-blocking, so queued messages run in the same loop pass).
 * Posting from another thread goes through a mutex-protected queue and one uv_async_send, which
 * libuv coalesces: a batch of posts wakes the loop once. (No actor posts from another thread
 * today: the SQLite worker hands its results to the loop through its own uv_async.) */
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
cv_runtime_t *cv_actor_runtime(const cv_actor_t *a);

/** Posts a message from the loop thread. Takes ownership of `m`. Never fails. */
void cv_actor_post(cv_actor_t *a, cv_msg_t *m);
/** Posts a message from any other thread. Takes ownership of `m`. Never fails. */
void cv_actor_post_threadsafe(cv_actor_t *a, cv_msg_t *m);

/** Allocates a zeroed message of `size` bytes with its type set. */
void *cv_msg_new(size_t size, int type);

/* ---- replies, deadlines and owners that go away ----
 *
 * The rule for every asynchronous request (a store call, an HTTP transfer, a child process, a
 * name lookup) that may race with a deadline, a cancel or the requester's close:
 *
 * 1. The request's own state (what its callback gets as `ud`) belongs to the request path: it
 *    is freed by the reply path only, after the one callback the API guarantees, or, for APIs
 *    that guarantee no callback after a cancel (proc_release, probe__resolve_cancel), by the
 *    canceller right after that cancel. Never by both, never while the other may still run.
 * 2. The requester never keeps a pointer into that state past the moment the reply may have
 *    freed it. A reply that comes back by message (a store call answered to an actor) frees its
 *    state before the requester reads the message: a deadline or a close that fires in between
 *    must find nothing of it. The requester matches replies to what it still waits for by a
 *    generation (a sequence number or correlation id) and drops stale ones.
 * 3. Whether the requester still exists is asked of a cv_live_t token, which outlives both: the
 *    requester holds one reference and ends it when it closes; each request in flight holds
 *    another. A reply posts to the requester only while the token is alive. (A requester may
 *    instead outlive its requests: count them and free itself after the last, as the store
 *    actor and the http actor do.)
 * 4. Timers are stopped (uv_timer_stop) or closed before what they refer to is freed, and
 *    nothing is freed from inside its own callback (memory behind a handle goes in close_cb). */

/** A liveness token: lets a reply know whether its requester still exists. */
typedef struct cv_live cv_live_t;

/** A new live token with one reference (the requester's). Aborts on out-of-memory. */
cv_live_t *cv_live_new(void);
/** Takes one more reference (for a request in flight); returns l. */
cv_live_t *cv_live_ref(cv_live_t *l);
/** Drops one reference; the token is freed with the last. */
void cv_live_unref(cv_live_t *l);
/** The requester is gone: marks the token dead and drops the requester's reference. */
void cv_live_end(cv_live_t *l);
/** True until cv_live_end was called. */
bool cv_live_alive(const cv_live_t *l);

#endif
