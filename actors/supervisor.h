/* The supervisor: the root actor of the daemon (OTP sense). daemon_main (core/daemon.h) runs it.
 *
 * It opens and migrates the store, creates the store actor, and runs the rest of the start-up
 * chain as store requests (mark the runs a dead daemon left RUNNING or QUEUED as ABANDONED: on a
 * shared store this instance's own, then a first heartbeat, then those of instances that stopped
 * heart-beating; seed run ids; read the runtime overrides and the last cron firings), then
 * starts its other children in this order, each one's subscribers before it:
 *
 *   store actor -> http actor (api) -> executor -> scheduler -> notifier -> prober
 *               -> cluster actor (shared store only)
 *
 * wires them from one table (subscriptions[] in supervisor.c: publisher, kind, subscriber) and
 * posts every one the configuration (MSG_EXEC_CONFIG; the scheduler gets MSG_SCHED_JOBS). It
 * restarts nothing: a child that cannot start stops the daemon with exit status 1.
 *
 * Reload (SIGHUP, or MSG_RELOAD from POST /api/reload): the file is loaded and checked again
 * (cfgcheck_load); an invalid one is refused with its errors and the running one kept. Otherwise
 * the difference (cfgdiff) is applied: the API tokens at once, the overrides re-read, and the new
 * snapshot posted to every child in one step with the summary; an audit record "config.reload"
 * (actor "system" or "api:<token>", after = the summary) goes to the store actor.
 *
 * Shutdown (SIGTERM/SIGINT, or the end of a --once run): stop firing (scheduler) and relaying
 * (cluster), stop the running jobs (executor: SIGTERM to their groups, SIGKILL after
 * shutdown_grace, each run's real end recorded), then close prober, notifier, executor, store
 * actor, http actor and last the store; a second SIGINT kills at once. --once: store actor and
 * executor only (and the cluster actor's heartbeats on a shared store). */
#ifndef CV_ACTORS_SUPERVISOR_H
#define CV_ACTORS_SUPERVISOR_H

#include "core/daemon.h"

#endif
