/* Private to core/cron*.c: the parsed form of an expression. */
#ifndef CV_CORE_CRON_INTERNAL_H
#define CV_CORE_CRON_INTERNAL_H

#include "core/cron.h"

#include <stdint.h>

struct cron_expr {
    cron_kind_t kind;
    bool has_seconds;
    bool hour_cadence;       /* hour field starts with '*': keep cadence in real time over DST */
    bool dom_star, dow_star; /* Vixie: field starts with '*' (or is '?') */
    uint64_t sec, min;       /* bits 0..59 */
    uint32_t hour;           /* bits 0..23 */
    uint32_t dom;            /* bits 1..31 */
    uint32_t dom_last;       /* bit n: `L-n` (n = 0 is `L`) */
    uint32_t dom_weekday;    /* bit n: `nW` */
    bool dom_last_weekday;   /* `LW` */
    uint16_t month;          /* bits 1..12 */
    uint8_t dow;             /* bits 0..6, Sunday = 0 */
    uint8_t dow_last;        /* bit d: `dL` */
    uint8_t dow_nth[7];      /* [d] bit k: `d#k` */
    int64_t every;           /* @every, seconds */
    /* Matching days of a month (cron__days_t), NULL for a kind other than CRON_KIND_CRON. Filled
     * at parse time; makes each month one lookup. Shared: expressions with the same day fields
     * point to one table (672 bytes, most schedules have one of a few), released by cron_free. */
    const struct cron__days *days;
};

/** Matching days of a month, by month (0..11), weekday of its 1st (0 = Sunday) and whether it is
 * a leap February: bit d = day d fires. Immutable once interned. */
typedef struct cron__days {
    uint32_t bits[12][7][2];
    struct cron__days *next; /* in its bucket of the table of interned tables */
    uint32_t hash;
    uint32_t refs; /* expressions pointing to it (under the table's lock) */
} cron__days_t;

/** Whether day d of a month of `len` days whose 1st falls on weekday wd1 matches e. */
bool cron__day_matches(const cron_expr_t *e, int d, int len, int wd1);

/** Fills e->days (a shared table: one reference, released by cron__days_put). Returns true when
 * at least one day of the 400-year calendar matches; otherwise e->days is left NULL. */
bool cron__fill_days(cron_expr_t *e);
/** Releases a reference to a table from cron__fill_days (NULL: nothing). Thread-safe. */
void cron__days_put(const cron__days_t *d);

#endif
