/* The scheduler's core: every enabled job's next fire instant in a min-heap ordered by
 * (instant, sequence). It never reads the clock: the caller passes "now", so tests drive it with
 * any time they like and the actor (actors/scheduler.c) arms one timer for sched_core_deadline().
 *
 * Instants are Unix seconds (cron has one-second resolution). */
#ifndef CV_ACTORS_SCHED_CORE_H
#define CV_ACTORS_SCHED_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCHED_NEVER INT64_MAX
/** Seconds: an instant younger than this when it is noticed is fired late, not folded. */
#define SCHED_LATE_MAX 60

typedef struct sched_core sched_core_t;

/** What the scheduler needs to know of a job (copied by sched_core_put). */
typedef struct sched_job_spec {
    const char *name;
    const char *schedule; /* cron text, "@every 90s", "@reboot" or "manual" */
    const char *timezone; /* IANA name; NULL or "" means UTC */
    bool enabled;
    int64_t catch_up; /* seconds: on start, fire once a missed instant this young (0: off) */
    int64_t last_run; /* the last instant recorded as fired (from the store), 0 when unknown */
} sched_job_spec_t;

/** Called once per firing: the job and the instant it was due. `missed` counts the instants that
 * became due while the clock jumped forward and were folded into this one firing. */
typedef void (*sched_fire_cb)(void *ud, const char *job, int64_t scheduled_for, int64_t missed);

sched_core_t *sched_core_create(void);
void sched_core_free(sched_core_t *s);

/** Adds or replaces a job. Its next instant is computed strictly after `now` (a job replaced with
 * an unchanged schedule keeps its next instant). Returns 0, or -EINVAL with a message in err
 * (schedule or time zone invalid; the old definition, if any, is kept). */
int sched_core_put(sched_core_t *s, const sched_job_spec_t *spec, const char *hash_seed,
                   int64_t now, char *err, size_t errlen);
/** Enables or disables a job. Enabling computes the next instant strictly after `now`. */
int sched_core_set_enabled(sched_core_t *s, const char *name, bool enabled, int64_t now);

/** The earliest next instant of any enabled job, or SCHED_NEVER. */
int64_t sched_core_deadline(const sched_core_t *s);
/** The next instant of one job (SCHED_NEVER when disabled, manual or @reboot), -ENOENT if unknown.
 */
int64_t sched_core_next_of(const sched_core_t *s, const char *name);

/** Fires every job whose instant is <= now. An instant at most SCHED_LATE_MAX seconds old fires
 * (late) and so does every later one up to now: a loop that was busy for a few seconds runs the
 * firings it owed, none is skipped. An older one fires once and its next instant is computed
 * strictly after now: a forward clock jump fires what became due once (`missed` counts the rest).
 * No instant ever fires twice, even if the clock later goes back. Returns the number fired. */
size_t sched_core_run_due(sched_core_t *s, int64_t now, sched_fire_cb cb, void *ud);

/** At start: for every enabled job with a catch-up deadline, fires once the latest instant in
 * [now - catch_up, now] that is after its last recorded run, if there is one. Returns the
 * number fired. */
size_t sched_core_catch_up(sched_core_t *s, int64_t now, sched_fire_cb cb, void *ud);

/** Calls cb for every enabled @reboot job (once at start). */
size_t sched_core_fire_reboot(sched_core_t *s, int64_t now, sched_fire_cb cb, void *ud);

/** Starts a synchronisation with a complete new set of jobs: every job put from now until
 * sched_core_end_sync() is kept (a failed put keeps the old definition); the others are removed
 * by sched_core_end_sync(), which returns how many. */
void sched_core_begin_sync(sched_core_t *s);
size_t sched_core_end_sync(sched_core_t *s);

/** Number of jobs known. */
size_t sched_core_count(const sched_core_t *s);

#endif
