/* The scheduler actor: keeps every enabled job's next fire instant (actors/sched_core.h) and arms
 * one absolute CLOCK_REALTIME timerfd for the earliest. No periodic tick: an idle daemon sleeps
 * until the next instant. TFD_TIMER_CANCEL_ON_SET wakes it when the wall clock is stepped (NTP,
 * suspend, a person with `date -s`), so what became due fires and nothing fires twice.
 *
 * At the instant it posts MSG_FIRE (trigger "cron"; "catch_up" for a missed instant, "reboot" for
 * @reboot at start) to the executor.
 *
 * Messages it takes: MSG_SCHED_JOBS (the supervisor's whole job list, overrides applied),
 * MSG_JOB_ENABLE and MSG_JOB_SCHEDULE (a job changed at run time) and MSG_SHUTDOWN (forget every
 * job: nothing fires any more). */
#ifndef CV_ACTORS_SCHEDULER_H
#define CV_ACTORS_SCHEDULER_H

#include "actors/sched_core.h"
#include "core/actor.h"

typedef struct scheduler scheduler_t;

/** Creates the scheduler; it posts MSG_FIRE to `executor`. Returns NULL with *err set when the
 * timerfd cannot be created. */
scheduler_t *scheduler_create(cv_runtime_t *rt, cv_actor_t *executor, int *err);
cv_actor_t *scheduler_actor(scheduler_t *s);
/** Closes the timer; `cb` runs once it is released (after which the scheduler is freed). */
void scheduler_close(scheduler_t *s, void (*cb)(void *ud), void *ud);

/** A set of job specs: the scheduler's whole view of the configuration. */
typedef struct {
    cv_msg_t hdr;
    sched_job_spec_t *jobs; /* owned, strings included */
    size_t njobs;
    bool first; /* the first load at start: fires @reboot jobs */
} msg_sched_jobs_t;

/* MSG_SCHED_JOBS (proto/msg.h): the supervisor's job list for the scheduler. */

/** Builds a MSG_SCHED_JOBS message; add jobs with scheduler_jobs_msg_add (strings are copied). */
msg_sched_jobs_t *scheduler_jobs_msg_new(bool first);
void scheduler_jobs_msg_add(msg_sched_jobs_t *m, const sched_job_spec_t *spec);

/** The next instant (Unix s) the scheduler holds for a job, or SCHED_NEVER. Loop thread only;
 * read-only. */
int64_t scheduler_next_of(const scheduler_t *s, const char *job);

/** The clock seam, for tests only: the daemon never sets it and the scheduler reads
 * CLOCK_REALTIME. With a clock set, "now" is clock->now(ud) (Unix s) and the timerfd is no longer
 * armed for an absolute instant: it is made readable at once while a job is due at the fake now,
 * and disarmed otherwise. After moving its clock the test calls scheduler_clock_moved(), as the
 * kernel wakes the real timer (TFD_TIMER_CANCEL_ON_SET) when the wall clock is set. Both calls:
 * loop thread, `clock` outlives the scheduler. */
typedef struct scheduler_clock {
    int64_t (*now)(void *ud);
    void *ud;
} scheduler_clock_t;
void scheduler_set_clock(scheduler_t *s, const scheduler_clock_t *clock);
void scheduler_clock_moved(scheduler_t *s);

#endif
