/* The SQLite backend of the store (see store.h for the contract of every operation).
 *
 * One worker thread owns the sqlite3 handle. Requests made during one loop pass are collected on
 * the loop thread and appended, once per pass (a uv_prepare hook, before the loop polls), to a
 * mutex-protected queue; the request itself is the queue node. The worker takes everything queued
 * when it wakes, runs the batch with all its writes in one transaction (group commit), commits, and
 * hands the finished requests back through one uv_async_t; the loop delivers them in order. Writes
 * alone wait until 5 ms after the previous batch began (STORE_SQLITE_GROUP_NS), so that a stream
 * of runs pays one fsync per window rather than per pass; anything else is served at once. */
#ifndef CV_STORAGE_STORE_SQLITE_H
#define CV_STORAGE_STORE_SQLITE_H

#include "storage/store.h"

/** Opens (creating it and its parent directory when missing) the SQLite database at cfg->dsn
 * ("path", "sqlite:path", or a "file:" URI), sets WAL mode and the configured synchronous level,
 * and starts the worker thread. Returns 0 and *out, or a negative errno with the reason logged;
 * nothing is left allocated on failure. */
int store_sqlite_open(uv_loop_t *loop, const store_config_t *cfg, store_t **out);

#endif
