/* The reaper: the one place that waits for child processes.
 *
 * One SIGCHLD watcher (a uv_signal_t) for the whole daemon. On every SIGCHLD it loops
 * wait4(-1, WNOHANG) until nothing is left to reap, and hands each reaped pid to the owner that
 * registered it (reaper_watch) together with its wait status and resource usage. A pid nobody
 * registered is an orphan (a grandchild re-parented to us because we are PID 1 or a subreaper):
 * it is reaped, counted and reported to the optional orphan callback, so no zombie is left.
 *
 * Because it waits for any child, nothing else in the process may wait for children: the daemon
 * does not use uv_spawn (actors/proc.c spawns with clone and registers here). The reaper
 * is bound to one loop at a time and is not thread-safe: call everything from the loop's thread.
 *
 * The watcher keeps the loop alive only while some pid is registered, so an idle loop can still
 * end; a registered child keeps uv_run running until it is reaped. */
#ifndef CV_CORE_REAPER_H
#define CV_CORE_REAPER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "core/util.h"

/** Resource usage of a reaped child (its own plus that of the descendants it waited for). */
typedef struct reaper_usage {
    int64_t max_rss_kb;
    int64_t cpu_user_ms;
    int64_t cpu_sys_ms;
} reaper_usage_t;

typedef struct reaper_watch reaper_watch_t;
/** Called once, from the loop, after pid was reaped; status is the raw wait status (use
 * WIFEXITED...). The watch is already unregistered: the callback may reuse or free it. */
typedef void (*reaper_exit_cb)(reaper_watch_t *w, pid_t pid, int status,
                               const reaper_usage_t *usage);
typedef void (*reaper_orphan_cb)(void *data, pid_t pid, int status);

/** A registration, embedded by its owner (no allocation). Fields are private. */
struct reaper_watch {
    cv_list_t link;
    pid_t pid;
    reaper_exit_cb cb;
    void *data; /* for the owner */
};

/** Starts the SIGCHLD watcher on loop and reaps any zombie already present. Idempotent on the
 * same loop. Returns 0, -EBUSY when started on another loop (or still closing), or a libuv
 * error code. */
int reaper_start(uv_loop_t *loop);
/** Stops the watcher (its handle is closed asynchronously: run the loop once more before
 * uv_loop_close). Registrations are kept; their children are reaped after the next start.
 * Does nothing when not started. */
void reaper_stop(void);

/** Registers w (caller-owned, must stay valid until its callback) for pid.
 * Must be called in the same loop callback that created the child, before control returns to the
 * loop, so that the child's SIGCHLD is handled after the registration. Returns 0, -EINVAL for a
 * pid <= 0, or -ENOTCONN when the reaper is not started. */
int reaper_watch(reaper_watch_t *w, pid_t pid, reaper_exit_cb cb);

/** Reaps every child that has exited now (what a SIGCHLD does). Useful after a burst of exits
 * or in tests. Returns the number of children reaped. */
unsigned reaper_poll(void);

/** Makes this process a child subreaper (prctl PR_SET_CHILD_SUBREAPER) or stops being one:
 * orphaned descendants are then re-parented to us instead of to PID 1, and reaped here.
 * Returns 0 or -errno. */
int reaper_set_subreaper(bool on);
/** Orphans reaped since the process started. */
uint64_t reaper_orphans_reaped(void);
/** Sets a callback told of every orphan reaped (NULL to remove). */
void reaper_set_orphan_cb(reaper_orphan_cb cb, void *data);

#endif
