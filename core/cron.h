/* The cron engine: parses schedule expressions and computes fire instants in a time zone.
 * Pure functions: the clock is always a parameter, nothing here reads the time or keeps state
 * between calls, and a parsed expression is immutable (safe to share between threads).
 *
 * Grammar (case-insensitive):
 *   5 fields "minute hour day-of-month month day-of-week", or 6 with "second" first.
 *   Each field is a comma list of: `*`, `n`, `a-b`, `*\/n`, `a-b/n`, `a/n` (a to the field's end),
 *   names JAN-DEC and SUN-SAT, `H`, `H(a-b)`, `H/n`, `H(a-b)/n`.
 *   day-of-month also takes `?`, `L` (last day), `L-n` (n days before it), `nW` (the weekday
 *   nearest to day n, never leaving the month), `LW` (last weekday of the month).
 *   day-of-week also takes `?`, `nL` (last weekday n of the month) and `n#k` (k-th weekday n,
 *   k 1-5); 0 and 7 are both Sunday.
 *   Macros @yearly @annually @monthly @weekly @daily @midnight @hourly; `@every <duration>` with
 *   units s m h d combined as in 1h30m; `@reboot`; the word `manual`.
 *
 * Semantics:
 *   - When day-of-month and day-of-week are both restricted, a day matching either one fires
 *     (Vixie cron). A field that starts with `*` or is `?` counts as unrestricted, so
 *     `0 0 *\/2 * MON` means odd days that are Mondays.
 *   - `H` picks a value from a stable hash of the seed (the job name) and the field, so jobs spread
 *     over the hour or day but a job keeps its slot across restarts. In day-of-month H ranges over
 *     1-28 so that it fires every month.
 *   - `@every D` fires at the instants that are whole multiples of D since the Unix epoch
 *     (1970-01-01T00:00:00Z), whatever the time zone: `@every 1h` fires on each UTC hour, `@every
 *     90m` at 00:00, 01:30, 03:00 UTC... It therefore fires at the same instants after a restart.
 *   - Time zones, daylight saving time (the rules in every zone, with any offset or shift):
 *     * hour field of fixed hours (anything not starting with `*`: `2`, `1-5`, `H`, `0-23/2`): a
 *       wall-clock time skipped by a spring-forward gap fires once, moved forward by the gap
 *       (02:30 becomes 03:30; 02:15 becomes 02:45 in a 30-minute gap); a wall-clock time that
 *       occurs twice fires once, at its first occurrence.
 *     * hour field `*` or `*\/n`: the job fires at every instant whose wall clock matches, so it
 *       keeps its cadence in real time: nothing for the skipped hour, both occurrences of a
 *       repeated one.
 *     * Fire instants are strictly increasing: two firings never share an instant (a moved 02:30
 *       and a real 03:30 are one firing).
 *   - An expression that can never fire (`0 0 30 2 *`) is rejected by cron_parse. */
#ifndef CV_CORE_CRON_H
#define CV_CORE_CRON_H

#include <stdbool.h>
#include <stdint.h>

#include "core/tz.h"

typedef struct cron_expr cron_expr_t;

typedef enum cron_kind {
    CRON_KIND_CRON = 1, /* fields or a calendar macro */
    CRON_KIND_EVERY,    /* @every <duration> */
    CRON_KIND_REBOOT,   /* @reboot: once when the daemon starts, never on the clock */
    CRON_KIND_MANUAL,   /* manual: only when triggered */
} cron_kind_t;

/** Why an expression was rejected. */
typedef struct cron_error {
    /** A sentence with the field and the 1-based column, e.g.
     * "day-of-month: 32 is out of range 1-31 (column 9)". */
    char message[192];
    /** The field at fault ("second", "minute", "hour", "day-of-month", "month", "day-of-week",
     * "@every", "macro") or "" when the whole expression is at fault. Static storage. */
    const char *field;
    /** 1-based column of the offending token in the original text, 0 when there is none. */
    int column;
} cron_error_t;

/** Parses `text` into a new expression (*out, free with cron_free). hash_seed (usually the job
 * name) feeds `H`; NULL uses a fixed seed. Leading and trailing blanks are ignored.
 * Returns 0, or -EINVAL with *out = NULL and err filled (err may be NULL). Never crashes on bad
 * input; rejects expressions that can never fire ("never fires: day-of-month 30 does not occur in
 * February"). */
int cron_parse(const char *text, const char *hash_seed, cron_expr_t **out, cron_error_t *err);

/** Frees an expression (NULL is fine). */
void cron_free(cron_expr_t *e);

/** What kind of schedule this is. */
cron_kind_t cron_kind(const cron_expr_t *e);

/** True when the expression has a seconds field (6 fields) or is @every with a duration that is
 * not a whole number of minutes. */
bool cron_has_seconds(const cron_expr_t *e);

/** The first fire instant strictly after `after` (Unix seconds), for wall clocks in zone z (NULL
 * means UTC), into *out. Returns 0; -ENOENT for @reboot and manual, which never fire on the clock;
 * -ERANGE when the next instant would be after the year 9999 or `after` is outside the years
 * 1..9999. Costs a few microseconds at most: it jumps field by field, never minute by minute. */
int cron_next(const cron_expr_t *e, const tz_zone_t *z, int64_t after, int64_t *out);

#endif
