/* The subcommands of the `cronvisor` command line. Each takes the arguments after its name
 * (argv[0] is the subcommand) and returns the process exit status. */
#ifndef CV_CORE_CLI_H
#define CV_CORE_CLI_H

#define CV_EXIT_USAGE  2  /* bad arguments or a bad expression */
#define CV_EXIT_CONFIG 78 /* EX_CONFIG: the configuration is invalid */

int cli_next(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_run(int argc, char **argv);

/** The config path to use: the given one, else $CRONVISOR_CONFIG, else "cronvisor.yaml". */
const char *cli_config_path(const char *given);

#endif
