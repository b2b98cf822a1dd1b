/* `cronvisor next`: the next fire instants of a schedule. */
#include "core/cli.h"
#include "core/cron.h"
#include "core/tz.h"
#include "core/util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char next_usage[] =
    "usage: cronvisor next [--count N] [--from RFC3339] [--tz ZONE] [--local] [--job NAME] EXPR\n"
    "\n"
    "Prints the next N (default 5) instants strictly after --from (default: now), one per line,\n"
    "in UTC (2026-03-29T01:30:00Z), or with --local in the zone with its UTC offset.\n"
    "\n"
    "  -n, --count N       how many instants (1..100000)\n"
    "  -f, --from TIME     start after this RFC 3339 instant\n"
    "  -z, --tz ZONE       IANA time zone of the schedule (default UTC)\n"
    "  -l, --local         print instants in ZONE with their offset\n"
    "  -j, --job NAME      job name that seeds H fields (default: a fixed seed)\n"
    "\n"
    "EXPR: 5 fields (min hour dom month dow) or 6 (seconds first), a macro (@daily, @every 90s),\n"
    "@reboot or manual. Quote it: cronvisor next '*/15 9-17 * * MON-FRI'.\n"
    "Exit status: 0, or 2 for a bad expression or argument.\n";

/* Formats t in zone z as "2026-03-29T03:30:00+02:00". */
static void format_local(const tz_zone_t *z, int64_t t, char *buf, size_t len)
{
    int off = tz_offset_at(z, t);
    char tmp[40];
    cv_format_utc(t + off, tmp, sizeof(tmp));
    tmp[strlen(tmp) - 1] = '\0';
    int a = off < 0 ? -off : off;
    snprintf(buf, len, "%s%c%02d:%02d", tmp, off < 0 ? '-' : '+', a / 3600, a / 60 % 60);
}

static void print_parse_error(const char *expr, const cron_error_t *err)
{
    fprintf(stderr, "cronvisor: invalid schedule: %s\n", err->message);
    if (err->column > 0) {
        fprintf(stderr, "  %s\n  %*s^\n", expr, err->column - 1, "");
    }
}

static int parse_count(const char *s, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 1 || v > 100000)
        return -1;
    *out = v;
    return 0;
}

int cli_next(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"count", required_argument, NULL, 'n'},
        {"from", required_argument, NULL, 'f'},
        {"tz", required_argument, NULL, 'z'},
        {"local", no_argument, NULL, 'l'},
        {"job", required_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    long count = 5;
    int64_t from = (int64_t)time(NULL);
    const char *zone = "UTC", *job = NULL;
    int local = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+n:f:z:lj:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (parse_count(optarg, &count) != 0) {
                fprintf(stderr, "cronvisor next: --count: '%s' is not a number from 1 to 100000\n",
                        optarg);
                return CV_EXIT_USAGE;
            }
            break;
        case 'f':
            if (cv_parse_rfc3339(optarg, &from) != 0) {
                fprintf(stderr,
                        "cronvisor next: --from: '%s' is not an RFC 3339 time "
                        "(e.g. 2026-03-29T01:30:00Z)\n",
                        optarg);
                return CV_EXIT_USAGE;
            }
            break;
        case 'z':
            zone = optarg;
            break;
        case 'l':
            local = 1;
            break;
        case 'j':
            job = optarg;
            break;
        case 'h':
            fputs(next_usage, stdout);
            return 0;
        default:
            fputs(next_usage, stderr);
            return CV_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "cronvisor next: expected one schedule expression (quote it)\n\n%s",
                next_usage);
        return CV_EXIT_USAGE;
    }
    const char *expr_text = argv[optind];

    char err[256];
    const tz_zone_t *z = tz_load(zone, err, sizeof(err));
    if (z == NULL) {
        fprintf(stderr, "cronvisor next: --tz: %s\n", err);
        return CV_EXIT_USAGE;
    }
    cron_expr_t *expr = NULL;
    cron_error_t cerr;
    if (cron_parse(expr_text, job, &expr, &cerr) != 0) {
        print_parse_error(expr_text, &cerr);
        return CV_EXIT_USAGE;
    }
    if (cron_kind(expr) == CRON_KIND_MANUAL || cron_kind(expr) == CRON_KIND_REBOOT) {
        fprintf(stderr, "cronvisor next: '%s' never fires on the clock (%s)\n", expr_text,
                cron_kind(expr) == CRON_KIND_MANUAL ? "manual runs only" : "once at start");
        cron_free(expr);
        return 0;
    }
    int64_t t = from;
    char buf[64];
    for (long i = 0; i < count; i++) {
        if (cron_next(expr, z, t, &t) != 0)
            break;
        if (local)
            format_local(z, t, buf, sizeof(buf));
        else
            cv_format_utc(t, buf, sizeof(buf));
        puts(buf);
    }
    cron_free(expr);
    return 0;
}
