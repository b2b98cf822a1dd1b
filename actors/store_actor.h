/* The store actor: the only owner of the store_t (storage/store.h). It persists every run event
 * the executor sends (group-committed by the backend) and, once a finished run is durably
 * recorded, forwards that event to its subscribers (the WebSocket hub, the notifier, the
 * executor's --once waiter). Other actors read through MSG_STORE_CALL. */
#ifndef CV_ACTORS_STORE_ACTOR_H
#define CV_ACTORS_STORE_ACTOR_H

#include "core/actor.h"
#include "storage/store.h"

typedef struct store_actor store_actor_t;

/** Wraps an open, migrated store. The actor does not close the store (the daemon does, after
 * store_actor_destroy, so every queued write is flushed by store_close). */
store_actor_t *store_actor_create(cv_runtime_t *rt, store_t *st);
void store_actor_destroy(store_actor_t *sa);
cv_actor_t *store_actor_actor(store_actor_t *sa);
/** Adds an actor that receives a copy of every MSG_RUN_EVENT(FINISHED) once it is durable. */
void store_actor_subscribe(store_actor_t *sa, cv_actor_t *listener);
/** Adds an actor that receives MSG_STORE_STATE now and whenever the store's state changes. */
void store_actor_watch_state(store_actor_t *sa, cv_actor_t *listener);
/** Writes still waiting for their commit. */
size_t store_actor_pending(const store_actor_t *sa);

#endif
