/* The run record: what one execution of a job is, from the moment it is queued to its end.
 * The executor fills it, the store persists it, the API and the WebSocket hub show it.
 * Field names match the columns of the runs table and the keys of the JSON API. */
#ifndef CV_PROTO_RUN_H
#define CV_PROTO_RUN_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    RUN_QUEUED,    /* waiting for a slot under limits.max_concurrent */
    RUN_RUNNING,   /* started, not finished */
    RUN_SUCCESS,   /* exit 0 (HTTP: expected status) */
    RUN_PARTIAL,   /* exit 0 but items_failed > 0 */
    RUN_FAILED,    /* non-zero exit, killed by a signal, not startable (126/127) */
    RUN_TIMED_OUT, /* killed at its timeout */
    RUN_CANCELLED, /* cancelled by a person, a replace policy or shutdown */
    RUN_SKIPPED,   /* not started: concurrency forbid, a required probe unhealthy */
    RUN_ABANDONED, /* found RUNNING or QUEUED by a daemon that did not start it */
    RUN__COUNT
} run_status_t;

/** "SUCCESS", "FAILED", ... */
const char *run_status_name(run_status_t s);
/** Parses an upper- or lower-case status name. Returns 0 or -EINVAL. */
int run_status_parse(const char *s, run_status_t *out);
/** True for every status a run cannot leave (everything but QUEUED and RUNNING). */
bool run_status_final(run_status_t s);

/** One run. Strings are heap-owned by the record (run_free releases them); NULL when absent.
 * Times are Unix milliseconds, 0 when not (yet) known. */
typedef struct run {
    int64_t id; /* assigned by the store; 0 until then */
    char *job;  /* job name */
    run_status_t status;
    char *trigger;         /* "cron", "api:<token name>", "retry", "catch_up", "reboot", "once" */
    int64_t scheduled_for; /* the fire instant (ms), or the trigger instant for manual runs */
    int64_t queued_at;
    int64_t started_at;
    int64_t finished_at;
    int64_t duration_ms;
    int attempt;      /* 1 for the first attempt */
    int64_t retry_of; /* id of the first attempt, 0 for a first attempt */
    int exit_code;    /* -1 when it did not exit normally */
    int signal;       /* signal that ended it, 0 when none */
    int64_t items_processed;
    int64_t items_failed;
    double progress;      /* 0..1, -1 when never reported */
    char *summary_json;   /* the last {"summary": ...} object, as JSON text */
    char *error;          /* why it failed, for a person */
    char *output_tail;    /* captured output (head + marker + tail), see max_output */
    int64_t output_bytes; /* total bytes the job wrote, dropped ones included */
    int64_t max_rss_kb;
    int64_t cpu_user_ms;
    int64_t cpu_sys_ms;
    char *instance; /* id of the instance that ran it */
} run_t;

/** Allocates a zeroed run with exit_code -1 and progress -1. */
run_t *run_new(const char *job, const char *trigger);
/** Deep copy. */
run_t *run_dup(const run_t *r);
void run_free(run_t *r);

#endif
