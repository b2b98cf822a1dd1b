/* `cronvisor run`: the daemon, or one job in the foreground with --once. */
#include "core/cfgcheck.h"
#include "core/cli.h"
#include "core/daemon.h"
#include "core/log.h"
#include "core/util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char run_usage[] =
    "usage: cronvisor run [-c FILE] [--once JOB] [--log-format human|json] [--log-level LEVEL]\n"
    "\n"
    "Runs the supervisor: schedules the jobs of the configuration, runs them, records every run,\n"
    "and serves the API and the dashboard. SIGHUP reloads the configuration; SIGTERM or SIGINT\n"
    "stop it gracefully (a second SIGINT kills running jobs at once).\n"
    "\n"
    "  -c, --config FILE      configuration (default: $CRONVISOR_CONFIG, else ./cronvisor.yaml)\n"
    "      --once JOB         run JOB once in the foreground, print its output and result, and\n"
    "                         exit with its status (0 success, the job's exit code, 128+signal,\n"
    "                         124 timed out, 130 cancelled, 75 skipped, 1 partial or other)\n"
    "      --log-format FMT   human (default) or json (one JSON object per line)\n"
    "      --log-level LEVEL  debug, info (default), warn or error\n"
    "\n"
    "Exit status: 0, 78 for an invalid configuration, 1 when the store cannot be opened.\n";

int cli_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"once", required_argument, NULL, 'o'},
        {"log-format", required_argument, NULL, 'F'},
        {"log-level", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    daemon_opts_t opts = {0};
    cv_log_level_t level = CV_LOG_INFO;
    bool json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            opts.config_path = optarg;
            break;
        case 'o':
            opts.once_job = optarg;
            break;
        case 'F':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "human") != 0) {
                fprintf(stderr, "cronvisor run: --log-format: '%s' is not human or json\n", optarg);
                return CV_EXIT_USAGE;
            }
            json = strcmp(optarg, "json") == 0;
            break;
        case 'L':
            if (cv_log_level_parse(optarg, &level) != 0) {
                fprintf(stderr,
                        "cronvisor run: --log-level: '%s' is not debug, info, warn or "
                        "error\n",
                        optarg);
                return CV_EXIT_USAGE;
            }
            break;
        case 'h':
            fputs(run_usage, stdout);
            return 0;
        default:
            fputs(run_usage, stderr);
            return CV_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "cronvisor run: unexpected argument '%s'\n", argv[optind]);
        return CV_EXIT_USAGE;
    }
    opts.config_path = cli_config_path(opts.config_path);
    cv_log_setup(level, json);

    cfg_t *cfg = NULL;
    cfg_errors_t errs = {0};
    if (cfgcheck_load(opts.config_path, &cfg, &errs) != 0) {
        for (size_t i = 0; i < errs.count; i++) {
            char *line = cfg_error_format(&errs.items[i]);
            cv_error("config", "%s", line);
            free(line);
        }
        cv_error("config", "%s: %zu error(s); not starting", opts.config_path, errs.count);
        cfg_errors_free(&errs);
        return CV_EXIT_CONFIG;
    }
    cfg_errors_free(&errs);
    if (opts.once_job && cfg_find_job(cfg, opts.once_job) == NULL) {
        fprintf(stderr, "cronvisor run: --once: no job named '%s' in %s\n", opts.once_job,
                opts.config_path);
        cfg_free(cfg);
        return CV_EXIT_USAGE;
    }
    return daemon_main(&opts, cfg);
}
