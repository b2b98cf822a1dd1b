/* libFuzzer driver for the cron parser and next-fire computation. Arbitrary bytes are parsed;
 * a rejected expression must come with a message and a column inside the text; an accepted one
 * must yield strictly increasing instants in a few zones, and in UTC each instant's wall clock must
 * match the expression. See tests/fuzz/README.md. */
#include "core/cron_internal.h"
#include "core/tz.h"
#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const tz_zone_t *zones[3];

static void load_zones(void)
{
    static const char *names[] = {"Europe/Stockholm", "Australia/Lord_Howe", "America/New_York"};
    char err[256];
    for (int i = 0; i < 3; i++)
        if (!zones[i] && !(zones[i] = tz_load(names[i], err, sizeof(err)))) {
            fprintf(stderr, "%s\n", err);
            abort();
        }
}

/* Whether the UTC instant t matches e's fields (wall clock = UTC). */
static bool matches_utc(const cron_expr_t *e, int64_t t)
{
    int64_t days = t / 86400, secs = t % 86400, y;
    unsigned m, d;
    cv_civil_from_days(days, &y, &m, &d);
    static const int len[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    int mlen = len[m - 1] + (m == 2 && leap);
    int wd1 = (int)(((cv_days_from_civil(y, m, 1) % 7) + 11) % 7);
    return (e->month >> m & 1) && cron__day_matches(e, (int)d, mlen, wd1) &&
           (e->hour >> (secs / 3600) & 1) && (e->min >> (secs / 60 % 60) & 1) &&
           (e->sec >> (secs % 60) & 1);
}

static void check_sequence(const cron_expr_t *e, const tz_zone_t *z, int64_t t, bool utc)
{
    for (int i = 0; i < 6; i++) {
        int64_t next;
        int rc = cron_next(e, z, t, &next);
        if (rc == -ERANGE || rc == -ENOENT)
            return;
        if (rc != 0 || next <= t)
            abort();
        if (utc && e->kind == CRON_KIND_CRON && !matches_utc(e, next))
            abort();
        t = next;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 512)
        return 0;
    load_zones();
    char *text = cv_strndup((const char *)data, size);
    cron_expr_t *e = NULL;
    cron_error_t err;
    int rc = cron_parse(text, "fuzz", &e, &err);
    if (rc != 0) {
        if (rc != -EINVAL || e || !err.message[0] || !err.field || err.column < 0 ||
            (size_t)err.column > strlen(text) + 1)
            abort();
        free(text);
        return 0;
    }
    uint64_t h = cv_hash64(data, size);
    int64_t starts[] = {1774648800, /* 2026-03-27T22:00Z, before the spring change */
                        1792879200, /* 2026-10-24T22:00Z, before the autumn change */
                        (int64_t)(h % 4102444800u)};
    for (size_t i = 0; i < CV_ARRAY_SIZE(starts); i++) {
        check_sequence(e, NULL, starts[i], true);
        for (int k = 0; k < 3; k++)
            check_sequence(e, zones[k], starts[i], false);
    }
    cron_free(e);
    free(text);
    return 0;
}
