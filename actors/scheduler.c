#include "actors/scheduler.h"
#include "core/log.h"
#include "proto/msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

struct scheduler {
    cv_actor_t *actor;
    cv_actor_t *executor;
    sched_core_t *core;
    int tfd;
    uv_poll_t poll;
    int64_t armed; /* the instant the timerfd is armed for, SCHED_NEVER when disarmed */
    const scheduler_clock_t *clock; /* tests only (scheduler_set_clock); NULL: the wall clock */
    void (*close_cb)(void *ud);
    void *close_ud;
};

/* The timerfd goes off this long before an instant: the executor prepares the run (policy,
 * claim, record, pipes, environment) ahead of it and starts the child on the instant itself
 * (proc_opts_t.not_before_ns), so that neither the wake-up of an idle CPU nor that work makes
 * the child late. */
#define SCHED_LEAD_NS 5000000

static int64_t now_sec(const scheduler_t *s)
{
    if (s->clock)
        return s->clock->now(s->clock->ud);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec;
}

static void arm(scheduler_t *s)
{
    int64_t deadline = sched_core_deadline(s->core);
    struct itimerspec its = {0};
    if (s->clock) { /* a fake clock: due now, or when the test moves it */
        its.it_value.tv_nsec = deadline <= now_sec(s) ? 1 : 0;
        if (timerfd_settime(s->tfd, 0, &its, NULL) != 0)
            cv_error("sched", "timerfd_settime: %s", strerror(errno));
        s->armed = deadline;
        return;
    }
    if (deadline != SCHED_NEVER) {
        int64_t at = deadline * 1000000000 - SCHED_LEAD_NS;
        its.it_value.tv_sec = at / 1000000000;
        its.it_value.tv_nsec = at % 1000000000;
    }
    /* CANCEL_ON_SET: a read fails with ECANCELED when the realtime clock is set. */
    if (timerfd_settime(s->tfd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, NULL) != 0)
        cv_error("sched", "timerfd_settime: %s", strerror(errno));
    s->armed = deadline;
}

static void post_fire(scheduler_t *s, const char *job, const char *trigger, int64_t at)
{
    msg_fire_t *m = msg_fire_new(job, trigger, at * 1000);
    cv_actor_post(s->executor, &m->hdr);
}

static void fire(void *ud, const char *job, int64_t scheduled_for, int64_t missed)
{
    if (missed > 0)
        cv_warn("sched",
                "job '%s': the clock jumped forward past %lld more instant(s); firing once", job,
                (long long)missed);
    post_fire(ud, job, "cron", scheduled_for);
}

static void fire_reboot(void *ud, const char *job, int64_t at, int64_t missed)
{
    post_fire(ud, job, "reboot", at);
}

static void fire_catch_up(void *ud, const char *job, int64_t at, int64_t missed)
{
    cv_info("sched", "job '%s': catching up the firing missed at %lld", job, (long long)at);
    post_fire(ud, job, "catch_up", at);
}

static void on_timer(uv_poll_t *h, int status, int events)
{
    scheduler_t *s = h->data;
    uint64_t expirations;
    ssize_t n = read(s->tfd, &expirations, sizeof(expirations));
    int64_t now = now_sec(s);
    if (n < 0 && errno == ECANCELED)
        cv_info("sched", "the wall clock was set; re-evaluating due jobs");
    else if (n == (ssize_t)sizeof(expirations) && s->armed != SCHED_NEVER && now < s->armed)
        now = s->armed; /* woken SCHED_LEAD_NS ahead: the armed instant is the one due */
    sched_core_run_due(s->core, now, fire, s);
    arm(s);
}

static void load_jobs(scheduler_t *s, msg_sched_jobs_t *m)
{
    int64_t now = now_sec(s);
    char err[256];
    /* Jobs absent from the new set are removed; unchanged ones keep their next instant. */
    sched_core_begin_sync(s->core);
    for (size_t i = 0; i < m->njobs; i++) {
        if (sched_core_put(s->core, &m->jobs[i], m->jobs[i].name, now, err, sizeof(err)) != 0)
            cv_error("sched", "job '%s' keeps its previous schedule: %s", m->jobs[i].name, err);
    }
    size_t removed = sched_core_end_sync(s->core);
    if (m->first) {
        sched_core_catch_up(s->core, now, fire_catch_up, s);
        sched_core_fire_reboot(s->core, now, fire_reboot, s);
    }
    cv_info("sched", "%zu job(s) scheduled, %zu removed", sched_core_count(s->core), removed);
    arm(s);
    cv_trim(); /* the previous set's memory */
}

/* A schedule changed through the API (already validated there; a failure keeps the old one). */
static void put_schedule(scheduler_t *s, const msg_job_schedule_t *m)
{
    char err[256];
    sched_job_spec_t spec = {
        .name = m->job, .schedule = m->schedule, .timezone = m->timezone, .enabled = m->enabled};
    if (sched_core_put(s->core, &spec, m->job, now_sec(s), err, sizeof(err)) != 0)
        cv_error("sched", "job '%s' keeps its previous schedule: %s", m->job, err);
    else
        cv_info("sched", "job '%s' rescheduled: \"%s\" (%s)", m->job, m->schedule,
                m->timezone ? m->timezone : "UTC");
    arm(s);
}

static void handle(cv_actor_t *self, cv_msg_t *msg)
{
    scheduler_t *s = cv_actor_state(self);
    switch (msg->type) {
    case MSG_SCHED_JOBS:
        load_jobs(s, (msg_sched_jobs_t *)msg);
        break;
    case MSG_JOB_ENABLE: {
        msg_job_enable_t *e = (msg_job_enable_t *)msg;
        sched_core_set_enabled(s->core, e->job, e->enabled, now_sec(s));
        arm(s);
        break;
    }
    case MSG_JOB_SCHEDULE:
        put_schedule(s, (msg_job_schedule_t *)msg);
        break;
    case MSG_SHUTDOWN:
        sched_core_free(s->core);
        s->core = sched_core_create();
        arm(s);
        break;
    default:
        cv_warn("sched", "unexpected message type %d", msg->type);
    }
}

scheduler_t *scheduler_create(cv_runtime_t *rt, cv_actor_t *executor, int *err)
{
    scheduler_t *s = cv_calloc(1, sizeof(*s));
    s->tfd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
    if (s->tfd < 0) {
        *err = -errno;
        free(s);
        return NULL;
    }
    int rc = uv_poll_init(cv_runtime_loop(rt), &s->poll, s->tfd);
    if (rc != 0) {
        *err = rc;
        close(s->tfd);
        free(s);
        return NULL;
    }
    s->poll.data = s;
    uv_poll_start(&s->poll, UV_READABLE, on_timer);
    s->executor = executor;
    s->core = sched_core_create();
    s->armed = SCHED_NEVER;
    s->actor = cv_actor_create(rt, "scheduler", handle, s);
    return s;
}

cv_actor_t *scheduler_actor(scheduler_t *s)
{
    return s->actor;
}

int64_t scheduler_next_of(const scheduler_t *s, const char *job)
{
    return sched_core_next_of(s->core, job);
}

void scheduler_set_clock(scheduler_t *s, const scheduler_clock_t *clock)
{
    s->clock = clock;
    arm(s);
}

void scheduler_clock_moved(scheduler_t *s)
{
    arm(s);
}

static void on_poll_closed(uv_handle_t *h)
{
    scheduler_t *s = h->data;
    close(s->tfd);
    sched_core_free(s->core);
    if (s->close_cb)
        s->close_cb(s->close_ud);
    free(s);
}

void scheduler_close(scheduler_t *s, void (*cb)(void *ud), void *ud)
{
    cv_actor_destroy(s->actor);
    s->close_cb = cb;
    s->close_ud = ud;
    uv_close((uv_handle_t *)&s->poll, on_poll_closed);
}

static void jobs_dispose(cv_msg_t *msg)
{
    msg_sched_jobs_t *m = (msg_sched_jobs_t *)msg;
    for (size_t i = 0; i < m->njobs; i++) {
        free((char *)m->jobs[i].name);
        free((char *)m->jobs[i].schedule);
        free((char *)m->jobs[i].timezone);
    }
    free(m->jobs);
    free(m);
}

msg_sched_jobs_t *scheduler_jobs_msg_new(bool first)
{
    msg_sched_jobs_t *m = cv_msg_new(sizeof(*m), MSG_SCHED_JOBS);
    m->hdr.dispose = jobs_dispose;
    m->first = first;
    return m;
}

void scheduler_jobs_msg_add(msg_sched_jobs_t *m, const sched_job_spec_t *spec)
{
    m->jobs = cv_realloc(m->jobs, (m->njobs + 1) * sizeof(*m->jobs));
    sched_job_spec_t *j = &m->jobs[m->njobs++];
    j->name = cv_strdup(spec->name);
    j->schedule = cv_strdup(spec->schedule);
    j->timezone = cv_strdup(spec->timezone ? spec->timezone : "UTC");
    j->enabled = spec->enabled;
    j->catch_up = spec->catch_up;
    j->last_run = spec->last_run;
}
