/* The subcommands of the `cronvisor` command line. Each takes the arguments after its name
 * (argv[0] is the subcommand) and returns the process exit status. */
#ifndef CV_CORE_CLI_H
#define CV_CORE_CLI_H

#include <stdbool.h>

#define CV_EXIT_USAGE  2  /* bad arguments or a bad expression */
#define CV_EXIT_CONFIG 78 /* EX_CONFIG: the configuration is invalid */

int cli_next(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_run(int argc, char **argv);
/** The operator commands (core/cli_client.c): jobs, runs, trigger, logs, cancel, enable,
 * disable. argv[0] must be one of them (cli_client_is_command). */
int cli_client(int argc, char **argv);
bool cli_client_is_command(const char *name);

/** The config path to use: the given one, else $CRONVISOR_CONFIG, else "cronvisor.yaml". */
const char *cli_config_path(const char *given);

#endif
