/* `cronvisor check`: validate a configuration and show what it would schedule. */
#include "core/cfgcheck.h"
#include "core/cli.h"
#include "core/cron.h"
#include "core/tz.h"
#include "core/util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char check_usage[] =
    "usage: cronvisor check [-c FILE]\n"
    "\n"
    "Validates a YAML configuration or a crontab. On success prints each job with its schedule\n"
    "and next fire time; on failure prints every error as file:line:column and exits 78.\n"
    "\n"
    "  -c, --config FILE   the file (default: $CRONVISOR_CONFIG, else ./cronvisor.yaml)\n";

const char *cli_config_path(const char *given)
{
    if (given)
        return given;
    const char *env = getenv("CRONVISOR_CONFIG");
    return env && *env ? env : "cronvisor.yaml";
}

/* The next fire instant of a job as text: an RFC 3339 time or why there is none. */
static void describe_next(const cfg_job_t *j, int64_t now, char *buf, size_t len)
{
    if (!j->enabled) {
        snprintf(buf, len, "disabled");
        return;
    }
    cron_expr_t *e = NULL;
    cron_error_t err;
    char tzerr[160];
    const tz_zone_t *z = tz_load(j->timezone ? j->timezone : "UTC", tzerr, sizeof(tzerr));
    if (z == NULL || cron_parse(j->schedule, j->name, &e, &err) != 0) {
        snprintf(buf, len, "-");
        return;
    }
    int64_t t;
    if (cron_kind(e) == CRON_KIND_MANUAL)
        snprintf(buf, len, "manual");
    else if (cron_kind(e) == CRON_KIND_REBOOT)
        snprintf(buf, len, "at start");
    else if (cron_next(e, z, now, &t) == 0)
        cv_format_utc(t, buf, len);
    else
        snprintf(buf, len, "never");
    cron_free(e);
}

static void print_jobs(const cfg_t *cfg)
{
    int64_t now = (int64_t)time(NULL);
    size_t wname = 4, wsched = 8;
    for (unsigned i = 0; i < cfg->n_jobs; i++) {
        size_t a = strlen(cfg->jobs[i].name), b = strlen(cfg->jobs[i].schedule);
        wname = a > wname ? a : wname;
        wsched = b > wsched ? b : wsched;
    }
    printf("%-*s  %-*s  %-20s  %s\n", (int)wname, "JOB", (int)wsched, "SCHEDULE", "TIMEZONE",
           "NEXT");
    for (unsigned i = 0; i < cfg->n_jobs; i++) {
        const cfg_job_t *j = &cfg->jobs[i];
        char next[64];
        describe_next(j, now, next, sizeof(next));
        printf("%-*s  %-*s  %-20s  %s\n", (int)wname, j->name, (int)wsched, j->schedule,
               j->timezone ? j->timezone : "UTC", next);
    }
    printf("%s: %u job(s), %u probe(s), %u notifier(s): OK\n", cfg->source, cfg->n_jobs,
           cfg->n_probes, cfg->n_notify);
}

int cli_check(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
        if (c == 'c') {
            path = optarg;
        } else if (c == 'h') {
            fputs(check_usage, stdout);
            return 0;
        } else {
            fputs(check_usage, stderr);
            return CV_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "cronvisor check: unexpected argument '%s'\n", argv[optind]);
        return CV_EXIT_USAGE;
    }
    path = cli_config_path(path);
    cfg_t *cfg = NULL;
    cfg_errors_t errs = {0};
    if (cfgcheck_load(path, &cfg, &errs) != 0) {
        cv_buf_t out = {0};
        cfg_errors_format(&errs, &out);
        fprintf(stderr, "%s%s: %zu error(s)\n", out.data ? out.data : "", path, errs.count);
        cv_buf_free(&out);
        cfg_errors_free(&errs);
        return CV_EXIT_CONFIG;
    }
    print_jobs(cfg);
    cfg_free(cfg);
    cfg_errors_free(&errs);
    return 0;
}
