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
    /* Matching days of a month, by month (0..11), weekday of its 1st (0 = Sunday) and whether it is
     * a leap February: bit d = day d fires. Filled at parse time; makes each month one lookup. */
    uint32_t days[12][7][2];
};

/** Whether day d of a month of `len` days whose 1st falls on weekday wd1 matches e. */
bool cron__day_matches(const cron_expr_t *e, int d, int len, int wd1);

/** Fills e->days. Returns true when at least one day of the 400-year calendar matches. */
bool cron__fill_days(cron_expr_t *e);

#endif
