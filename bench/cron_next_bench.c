/* CPU time per computed fire instant for a set of cron expressions and zones.
 * Usage: cron_next_bench [instants per expression, default 20000]. See bench/README.md. */
#include "core/cron.h"
#include "core/tz.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *expr, *zone, *what;
    } cases[] = {
        {"*/5 * * * *", "UTC", "simple"},
        {"30 2 * * 1-5", "UTC", "simple, weekdays"},
        {"*/15 * * * * *", "UTC", "seconds"},
        {"0 0 L * *", "UTC", "L"},
        {"0 0 15W * *", "UTC", "W"},
        {"0 9 * * MON#2", "UTC", "#"},
        {"0 0 * * 5L", "UTC", "last Friday"},
        {"0 0 29 2 *", "UTC", "rare: leap day"},
        {"0 0 29 2 MON", "UTC", "leap day OR Monday"},
        {"0 0 29 2 */7", "UTC", "rare: leap day that is a Sunday"},
        {"0 0 */29 2 */7", "UTC", "rare: Feb 1 that is a Sunday"},
        {"30 2 * * *", "Europe/Stockholm", "DST, fixed hour"},
        {"*/30 * * * *", "Europe/Stockholm", "DST, cadence"},
        {"15 2 * * *", "Australia/Lord_Howe", "DST 30 min, fixed hour"},
        {"*/15 * * * *", "Australia/Lord_Howe", "DST 30 min, cadence"},
        {"0 0 29 2 */7", "America/New_York", "rare + DST"},
        {"0 */2 * * *", "America/New_York", "DST, 2-hour cadence"},
        {"0 * 29 2 */7", "America/New_York", "rare + DST, cadence"},
        {"30 2 * * *", "Asia/Kolkata", "+5:30, no DST"},
        {"@every 90s", "UTC", "@every"},
    };
    int per = argc > 1 ? atoi(argv[1]) : 20000;
    if (per <= 0)
        per = 20000;
    printf("%-18s %-20s %-34s %10s\n", "expression", "zone", "what", "ns/instant");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256];
        cron_error_t cerr;
        cron_expr_t *e = NULL;
        const tz_zone_t *z = tz_load(cases[i].zone, err, sizeof(err));
        if (!z || cron_parse(cases[i].expr, "bench", &e, &cerr) != 0) {
            fprintf(stderr, "%s: %s\n", cases[i].expr, z ? cerr.message : err);
            return 1;
        }
        int64_t t = 1767225600; /* 2026-01-01T00:00:00Z */
        int n = 0;
        double start = cpu_ns();
        for (; n < per; n++) {
            if (cron_next(e, z, t, &t) != 0) /* past 9999: start again */
                t = 1767225600;
        }
        double ns = (cpu_ns() - start) / n;
        printf("%-18s %-20s %-34s %10.0f\n", cases[i].expr, cases[i].zone, cases[i].what, ns);
        cron_free(e);
    }
    tz_cache_clear();
    return 0;
}
