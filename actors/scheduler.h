/* The scheduler actor: keeps every enabled job's next fire instant (actors/sched_core.h) and arms
 * one absolute CLOCK_REALTIME timerfd for the earliest. No periodic tick: an idle daemon sleeps
 * until the next instant. TFD_TIMER_CANCEL_ON_SET wakes it when the wall clock is stepped (NTP,
 * suspend, a person with `date -s`), so what became due fires and nothing fires twice.
 *
 * At the instant it posts MSG_FIRE (trigger "cron") to the executor. */
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

/** MSG_SCHED_JOBS is the scheduler's own message type (beyond proto/msg.h). */
enum { MSG_SCHED_JOBS = 100 };

/** Builds a MSG_SCHED_JOBS message; add jobs with msg_sched_jobs_add (strings are copied). */
msg_sched_jobs_t *msg_sched_jobs_new(bool first);
void msg_sched_jobs_add(msg_sched_jobs_t *m, const sched_job_spec_t *spec);

/** The next instant (Unix s) the scheduler holds for a job, or SCHED_NEVER. Loop thread only;
 * read-only. */
int64_t scheduler_next_of(const scheduler_t *s, const char *job);

#endif
