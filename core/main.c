/* cronvisor: the command line. Each subcommand lives in core/cli_*.c. */
#include "core/cli.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: cronvisor <command> [options]\n"
    "\n"
    "commands:\n"
    "  run    [-c FILE] [--once JOB]   run the supervisor daemon (or one job in the foreground)\n"
    "  next   [--count N] [--from RFC3339] [--tz ZONE] [--local] [--job NAME] EXPR\n"
    "                                  print the next fire instants of a schedule\n"
    "  check  [-c FILE]                validate a config or crontab and show each job's next run\n"
    "\n"
    "operator commands (a client of a running daemon's API; --url URL, $CRONVISOR_TOKEN, --json):\n"
    "  jobs                            list the jobs\n"
    "  runs   [--job J] [--status S] [--since DURATION|RFC3339] [--limit N]\n"
    "                                  list runs, newest first\n"
    "  trigger [--wait] JOB            run a job now (--wait: exit with the run's status)\n"
    "  logs   [-f] RUN                 print a run's output (-f: follow it live)\n"
    "  cancel RUN                      cancel a queued or running run\n"
    "  enable JOB                      enable a job (a runtime override)\n"
    "  disable JOB                     disable a job (a runtime override)\n"
    "\n"
    "  cronvisor <command> --help      options of a command\n"
    "  cronvisor --version\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return CV_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("cronvisor %s\n", CV_VERSION);
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "next") == 0)
        return cli_next(argc - 1, argv + 1);
    if (strcmp(cmd, "check") == 0)
        return cli_check(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0)
        return cli_run(argc - 1, argv + 1);
    if (cli_client_is_command(cmd))
        return cli_client(argc - 1, argv + 1);
    fprintf(stderr, "cronvisor: unknown command '%s'\n\n%s", cmd, usage);
    return CV_EXIT_USAGE;
}
