/* Next fire instant of a parsed cron expression. See cron.h for the rules.
 *
 * The search runs on wall-clock time (local seconds, see tz.h) field by field: the first matching
 * month, then a day (one table lookup per month), hour, minute, second. The result is mapped to
 * real time with the zone; the two DST policies differ only in that mapping. */
#include "core/cron_internal.h"
#include "core/util.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define YEAR_MAX  9999
#define MIN_AFTER (INT64_C(-62135596800) + 2 * 86400) /* 0001-01-03T00:00:00Z */
#define MAX_AFTER INT64_C(253402300799)               /* 9999-12-31T23:59:59Z */
#define MAX_LOOPS 100000

static const int month_len[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

static bool leap_year(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Weekday (0 = Sunday) of a day number counted from 1970-01-01, a Thursday. */
static int weekday(int64_t days)
{
    return (int)(((days % 7) + 11) % 7);
}

/* The weekday nearest to day w that stays in the month, or 0 when day w does not exist. */
static int nearest_weekday(int w, int len, int wd1)
{
    if (w > len)
        return 0;
    int wd = (wd1 + w - 1) % 7;
    if (wd == 6)
        return w > 1 ? w - 1 : w + 2;
    if (wd == 0)
        return w < len ? w + 1 : w - 2;
    return w;
}

bool cron__day_matches(const cron_expr_t *e, int d, int len, int wd1)
{
    int wd = (wd1 + d - 1) % 7;
    bool dom = (e->dom >> d & 1) || (len - d <= 30 && (e->dom_last >> (len - d) & 1)) ||
               (e->dom_last_weekday && d == nearest_weekday(len, len, wd1));
    for (uint32_t w = e->dom_weekday; !dom && w; w &= w - 1)
        dom = nearest_weekday(__builtin_ctz(w), len, wd1) == d;
    bool dow = (e->dow >> wd & 1) || ((e->dow_last >> wd & 1) && d + 7 > len) ||
               (e->dow_nth[wd] >> ((d - 1) / 7 + 1) & 1);
    if (e->dom_star || e->dow_star)
        return dom && dow;
    return dom || dow;
}

/* The interned day tables: a hash table of buckets, guarded by one lock (parsing is rare; the
 * configuration's checks, the actors and the CLI may parse on different threads). */
#define DAYS_BUCKETS 256
static pthread_mutex_t days_lock = PTHREAD_MUTEX_INITIALIZER;
static cron__days_t *days_table[DAYS_BUCKETS];

static uint32_t days_hash(const uint32_t bits[12][7][2])
{
    const unsigned char *p = (const unsigned char *)bits;
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < sizeof(uint32_t[12][7][2]); i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* The shared table equal to bits, with one more reference (created when missing). */
static const cron__days_t *days_get(const uint32_t bits[12][7][2])
{
    uint32_t h = days_hash(bits);
    pthread_mutex_lock(&days_lock);
    cron__days_t *d = days_table[h % DAYS_BUCKETS];
    while (d && (d->hash != h || memcmp(d->bits, bits, sizeof(d->bits)) != 0))
        d = d->next;
    if (d == NULL) {
        d = cv_calloc(1, sizeof(*d));
        memcpy(d->bits, bits, sizeof(d->bits));
        d->hash = h;
        d->next = days_table[h % DAYS_BUCKETS];
        days_table[h % DAYS_BUCKETS] = d;
    }
    d->refs++;
    pthread_mutex_unlock(&days_lock);
    return d;
}

void cron__days_put(const cron__days_t *days)
{
    if (days == NULL)
        return;
    pthread_mutex_lock(&days_lock);
    cron__days_t **pp = &days_table[days->hash % DAYS_BUCKETS];
    while (*pp != days)
        pp = &(*pp)->next;
    cron__days_t *d = *pp;
    if (--d->refs == 0) {
        *pp = d->next;
        free(d);
    }
    pthread_mutex_unlock(&days_lock);
}

bool cron__fill_days(cron_expr_t *e)
{
    uint32_t table[12][7][2] = {{{0}}};
    bool any = false;
    for (int m = 1; m <= 12; m++) {
        if (!(e->month >> m & 1))
            continue;
        for (int wd1 = 0; wd1 < 7; wd1++)
            for (int leap = 0; leap <= (m == 2); leap++) {
                int len = month_len[m - 1] + leap;
                uint32_t bits = 0;
                for (int d = 1; d <= len; d++)
                    if (cron__day_matches(e, d, len, wd1))
                        bits |= UINT32_C(1) << d;
                table[m - 1][wd1][leap] = bits;
                any |= bits != 0;
            }
    }
    e->days = any ? days_get(table) : NULL;
    return any;
}

/* Lowest set bit of mask at position >= from, or -1. from may be up to 64. */
static int next_bit(uint64_t mask, int from)
{
    if (from >= 64)
        return -1;
    mask &= ~UINT64_C(0) << from;
    return mask ? __builtin_ctzll(mask) : -1;
}

/* The civil fields of a wall-clock time being searched. */
typedef struct civil {
    int64_t y;
    int m, d, h, mi, s;
} civil_t;

static void civil_from_local(int64_t w, civil_t *c)
{
    int64_t days = w >= 0 ? w / 86400 : -((-w + 86399) / 86400);
    int64_t secs = w - days * 86400;
    unsigned m, d;
    cv_civil_from_days(days, &c->y, &m, &d);
    c->m = (int)m, c->d = (int)d;
    c->h = (int)(secs / 3600), c->mi = (int)(secs / 60 % 60), c->s = (int)(secs % 60);
}

/* Moves c to the first day at or after it (in its month or later months) that matches.
 * Returns false past YEAR_MAX. Resets the time of day when the day changes. */
static bool seek_day(const cron_expr_t *e, civil_t *c)
{
    for (;;) {
        if (c->y > YEAR_MAX)
            return false;
        int m = next_bit(e->month, c->m);
        if (m < 0 || m > 12) {
            *c = (civil_t){.y = c->y + 1, .m = 1, .d = 1};
            continue;
        }
        if (m != c->m)
            *c = (civil_t){.y = c->y, .m = m, .d = 1};
        int64_t first = cv_days_from_civil(c->y, (unsigned)m, 1);
        uint32_t days = e->days->bits[m - 1][weekday(first)][m == 2 && leap_year(c->y)];
        int d = next_bit(days, c->d);
        if (d < 0) {
            *c = (civil_t){.y = c->y, .m = m + 1, .d = 1};
            if (c->m > 12)
                *c = (civil_t){.y = c->y + 1, .m = 1, .d = 1};
            continue;
        }
        if (d != c->d)
            *c = (civil_t){.y = c->y, .m = m, .d = d};
        return true;
    }
}

/* Moves the wall-clock time *w to the first matching one at or after it. -ERANGE past 9999. */
static int next_wall(const cron_expr_t *e, int64_t *w)
{
    civil_t c;
    civil_from_local(*w, &c);
    for (;;) {
        if (!seek_day(e, &c))
            return -ERANGE;
        int h = next_bit(e->hour, c.h);
        if (h < 0) {
            c = (civil_t){.y = c.y, .m = c.m, .d = c.d + 1};
            continue;
        }
        if (h != c.h)
            c.h = h, c.mi = c.s = 0;
        int mi = next_bit(e->min, c.mi);
        if (mi < 0) {
            c.h++, c.mi = c.s = 0;
            continue;
        }
        if (mi != c.mi)
            c.mi = mi, c.s = 0;
        int s = next_bit(e->sec, c.s);
        if (s < 0) {
            c.mi++, c.s = 0;
            continue;
        }
        *w = cv_days_from_civil(c.y, (unsigned)c.m, (unsigned)c.d) * 86400 + c.h * 3600 +
             c.mi * 60 + s;
        return 0;
    }
}

/* Hour field `*` or `*\/n`: fire at every instant whose wall clock matches. Walks the zone's
 * constant-offset segments: in each one the wall clock is a shifted copy of real time. */
static int next_cadence(const cron_expr_t *e, const tz_zone_t *z, int64_t after, int64_t *out)
{
    int64_t t = after + 1;
    for (int i = 0; i < MAX_LOOPS; i++) {
        int o = tz_offset_at(z, t);
        int64_t end = tz_next_transition(z, t);
        int64_t w = t + o;
        int rc = next_wall(e, &w);
        if (rc < 0)
            return rc;
        if (w - o < end) {
            *out = w - o;
            return 0;
        }
        t = end;
    }
    return -ERANGE;
}

/* The smallest offset in force during the 27 hours up to t (gaps never last longer). */
static int min_offset_before(const tz_zone_t *z, int64_t t)
{
    int64_t s = t - 27 * 3600;
    int lowest = tz_offset_at(z, s);
    for (int i = 0; i < 16; i++) {
        s = tz_next_transition(z, s);
        if (s > t)
            break;
        int o = tz_offset_at(z, s);
        lowest = o < lowest ? o : lowest;
    }
    return lowest;
}

/* Where fixed-hour wall time w fires: *inst, and the wall time up to which later wall times fire
 * exactly as many seconds later (*until), the end of the stretch with one mapping. */
static int map_fixed(const tz_zone_t *z, int64_t w, tz_local_t *r, int64_t *until)
{
    int rc = tz_local_to_utc(z, w, r);
    if (rc < 0)
        return rc;
    if (r->kind == TZ_LOCAL_GAP) {
        *until = r->transition + r->offset_after;
        return 0;
    }
    int64_t end = tz_next_transition(z, r->first);
    *until = end == INT64_MAX ? INT64_MAX : end + r->offset_before;
    return 0;
}

/* A wall time moved forward out of a gap lands among the real times after the gap; a real one
 * there may come first. found is the moved instant for gap r. */
static int64_t earlier_after_gap(const cron_expr_t *e, const tz_zone_t *z, int64_t after,
                                 const tz_local_t *r, int64_t found)
{
    int64_t v = r->transition + r->offset_after;
    if (after + r->offset_after + 1 > v)
        v = after + r->offset_after + 1;
    tz_local_t r2;
    if (next_wall(e, &v) < 0 || v >= found + r->offset_after || tz_local_to_utc(z, v, &r2) < 0)
        return found;
    if (r2.kind != TZ_LOCAL_GAP && r2.first > after && r2.first < found)
        return r2.first;
    return found;
}

/* Fixed hours: each matching wall time fires once, at its first occurrence, or moved forward by
 * the gap when it does not exist. */
static int next_fixed(const cron_expr_t *e, const tz_zone_t *z, int64_t after, int64_t *out)
{
    /* A wall time up to one gap earlier than now may still be due (moved forward). */
    int64_t w = after + 1 + min_offset_before(z, after);
    for (int i = 0; i < MAX_LOOPS; i++) {
        tz_local_t r;
        int64_t until;
        int rc = next_wall(e, &w);
        if (rc < 0 || (rc = map_fixed(z, w, &r, &until)) < 0)
            return rc;
        if (r.first > after) {
            *out = r.kind == TZ_LOCAL_GAP ? earlier_after_gap(e, z, after, &r, r.first) : r.first;
            return 0;
        }
        /* Wall times up to `until` fire second for second after r.first: skip those not later
         * than `after` in one step. */
        int64_t jump = w + (after - r.first) + 1;
        w = jump < until ? jump : until;
    }
    return -ERANGE;
}

int cron_next(const cron_expr_t *e, const tz_zone_t *z, int64_t after, int64_t *out)
{
    if (e->kind == CRON_KIND_REBOOT || e->kind == CRON_KIND_MANUAL)
        return -ENOENT;
    if (after < MIN_AFTER || after > MAX_AFTER)
        return -ERANGE;
    if (e->kind == CRON_KIND_EVERY) {
        int64_t q = after >= 0 ? after / e->every : -((-after + e->every - 1) / e->every);
        int64_t next = (q + 1) * e->every;
        if (next > MAX_AFTER + 1)
            return -ERANGE;
        *out = next;
        return 0;
    }
    if (!z)
        z = tz_utc();
    int64_t next = 0;
    int rc = e->hour_cadence ? next_cadence(e, z, after, &next) : next_fixed(e, z, after, &next);
    if (rc < 0)
        return rc;
    if (next > MAX_AFTER + 1)
        return -ERANGE;
    *out = next;
    return 0;
}
