/* The daemon: wires the actors together on one loop and drives start-up, reload and shutdown.
 *
 * Start-up: open the store, migrate, mark runs a dead daemon left RUNNING or QUEUED as ABANDONED,
 * seed run ids, read runtime overrides, then create the executor and the scheduler and hand them
 * the configuration. SIGHUP reloads the configuration (an invalid one is refused, its errors
 * logged, the old one kept). SIGTERM/SIGINT stop firing, stop running jobs (SIGTERM to their
 * groups, SIGKILL after shutdown_grace), record each run's real end, flush the store and exit 0;
 * a second SIGINT kills at once. */
#ifndef CV_CORE_DAEMON_H
#define CV_CORE_DAEMON_H

#include "core/cfgcheck.h"

typedef struct daemon_opts {
    const char *config_path;
    const char *once_job; /* run this job once in the foreground and exit with its status */
} daemon_opts_t;

/** Runs the daemon with an already validated configuration (ownership of cfg passes to the
 * daemon). Returns the process exit status. */
int daemon_main(const daemon_opts_t *opts, cfg_t *cfg);

#endif
