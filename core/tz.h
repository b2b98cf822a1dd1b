/* Time zones read from the system's tz database (TZif files, RFC 8536), parsed here without the C
 * library's global TZ state, so that every job can have its own zone and threads never race on
 * tzset(). A loaded zone answers two questions: what is the UTC offset at an instant, and which
 * instants carry a given wall-clock time (once, never because of a gap, or twice because of an
 * overlap).
 *
 * Times are Unix seconds (int64_t, leap seconds not counted). A "wall-clock time" or "local time"
 * is written as the Unix seconds it would be if the wall clock were UTC: local = utc + offset.
 * Instants beyond +-2^60 seconds are treated as those bounds. */
#ifndef CV_CORE_TZ_H
#define CV_CORE_TZ_H

#include <stddef.h>
#include <stdint.h>

/** A loaded zone: immutable, shared by everyone who loads the same name, owned by the cache. */
typedef struct tz_zone tz_zone_t;

/** Loads the IANA zone `name` ("Europe/Stockholm") from $TZDIR, else /usr/share/zoneinfo, or
 * returns the cached copy (the cache is keyed by name: a later change of $TZDIR is seen only after
 * tz_cache_clear). "UTC", "Etc/UTC" and NULL give the built-in zone named "UTC", which works even
 * without a tz database. Zones that count leap seconds ("right/...") are refused. Names
 * must be relative paths of letters, digits and `_+-./`, with no empty, "." or ".." component.
 * The zone stays valid until tz_cache_clear(); never free it. Thread-safe.
 * On failure returns NULL and writes a sentence into err (when errlen > 0), such as
 * "unknown time zone 'Europe/Stokholm' (did you mean Europe/Stockholm?)" or
 * "invalid time zone name '../etc/passwd': ..." or "time zone 'X': corrupt TZif file ...". */
tz_zone_t *tz_load(const char *name, char *err, size_t errlen);

/** The built-in UTC zone (never fails, never NULL). */
const tz_zone_t *tz_utc(void);

/** The name the zone was loaded under. Owned by the zone. */
const char *tz_zone_name(const tz_zone_t *z);

/** Frees every cached zone. Only call when no zone pointer is in use any more (at exit, in
 * tests). Zones loaded afterwards are read from disk again (so a changed $TZDIR is seen). */
void tz_cache_clear(void);

/** The UTC offset in seconds (east positive: +3600 for CET) in force at the instant utc_sec.
 * After the file's last transition the zone's POSIX TZ rule (the TZif footer) is applied, so any
 * year works. Never fails. */
int tz_offset_at(const tz_zone_t *z, int64_t utc_sec);

/** The first instant strictly after utc_sec at which the UTC offset changes, or INT64_MAX when it
 * never changes again. Transitions that change only the abbreviation or the DST flag are skipped.
 */
int64_t tz_next_transition(const tz_zone_t *z, int64_t utc_sec);

typedef enum tz_local_kind {
    TZ_LOCAL_ONCE = 1, /* the wall-clock time occurs exactly once */
    TZ_LOCAL_GAP,      /* it does not occur: the clock jumped over it (spring forward) */
    TZ_LOCAL_TWICE,    /* it occurs twice: the clock was set back over it (fall back) */
} tz_local_kind_t;

/** Where a wall-clock time lands in real time. */
typedef struct tz_local {
    tz_local_kind_t kind;
    /** ONCE: the instant. TWICE: the earlier instant. GAP: the instant it would be when moved
     * forward by the gap's length (local - offset_before): 02:30 in a 02:00->03:00 gap is 03:30. */
    int64_t first;
    /** TWICE: the later instant (the last one, were a zone to repeat a time more than twice).
     * Otherwise equal to first. */
    int64_t second;
    /** GAP: the instant the gap ends (the transition); TWICE: the instant the clock went back. */
    int64_t transition;
    /** GAP and TWICE: the offsets before and after that transition. ONCE: both the offset. */
    int32_t offset_before, offset_after;
    /** GAP: how many seconds of wall clock are skipped (offset_after - offset_before). */
    int32_t gap_len;
} tz_local_t;

/** Resolves the wall-clock time `local` (see the top of this file) in zone z into *out.
 * Returns 0, or -ERANGE when local is beyond the year range -100000..100000. */
int tz_local_to_utc(const tz_zone_t *z, int64_t local, tz_local_t *out);

#endif
