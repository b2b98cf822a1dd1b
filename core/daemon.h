/* The daemon's entry point, called by `cronvisor run` (core/cli_run.c). It is implemented by the
 * supervisor, the root actor (actors/supervisor.c, described in actors/supervisor.h): core/
 * includes nothing from actors/, http/ or storage/. */
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
