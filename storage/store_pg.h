/* The PostgreSQL backend of the store (see store.h for the contract of every operation).
 *
 * One libpq connection in non-blocking pipeline mode, driven by a uv_poll on the loop thread (no
 * worker thread). Requests made during one loop pass are sent together, just before the loop
 * polls, as one pipeline ending with one sync: the batch runs in one implicit transaction (group
 * commit) and its callbacks are delivered in order once the sync's result arrived. When a batch
 * fails on an SQL error, its requests are sent again one per transaction, so only the request
 * at fault fails.
 *
 * Connecting is asynchronous too: a host name is resolved with uv_getaddrinfo and passed to libpq
 * as hostaddr, the connect has its own timer (connect_timeout from the DSN, default 10 s). A
 * connection lost after it once worked is re-established with backoff (0.1 s doubling to 5 s);
 * requests made meanwhile wait, up to cfg->pending_max (storage.pending_max, default
 * STORE_PG_QUEUE_MAX), and are sent once it is back (a request in a batch whose outcome was not
 * seen is sent again). Beyond that bound a write the outage spool takes turns the store degraded
 * at once (what waits goes to the spool, in order, then the write); any other request fails at
 * once with -EAGAIN, ahead of the ones that wait, counted in store_state_t.queue_refused. Until the
 * first connection succeeds, a failed connect fails the waiting requests (-EACCES wrong
 * credentials, -ETIMEDOUT, -EIO otherwise), so a daemon with a wrong DSN stops at start-up with a
 * clear message.
 *
 * The DSN's password is registered with cv_secret_register and never logged; messages name the
 * database as host:port/dbname. */
#ifndef CV_STORAGE_STORE_PG_H
#define CV_STORAGE_STORE_PG_H

#include "storage/store.h"

/** Requests that may wait for a lost connection to come back, by default (storage.pending_max). */
#define STORE_PG_QUEUE_MAX 10000

/** True when dsn names a PostgreSQL database: a postgres:// or postgresql:// URI, or a libpq
 * conninfo string ("host=... dbname=..."). */
bool store_pg_dsn_matches(const char *dsn);

/** Parses cfg->dsn and starts connecting in the background (the first request waits for it).
 * Returns 0 and *out, or -EINVAL with the reason logged when the DSN cannot be parsed; nothing
 * is left allocated on failure. cfg->sync NORMAL sets synchronous_commit=off on the connection. */
int store_pg_open(uv_loop_t *loop, const store_config_t *cfg, store_t **out);

#endif
