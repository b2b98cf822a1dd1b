#include "proto/run.h"
#include "core/util.h"

#include <errno.h>
#include <stdlib.h>
#include <strings.h>

static const char *const status_names[RUN__COUNT] = {
    [RUN_QUEUED] = "QUEUED",       [RUN_RUNNING] = "RUNNING", [RUN_SUCCESS] = "SUCCESS",
    [RUN_PARTIAL] = "PARTIAL",     [RUN_FAILED] = "FAILED",   [RUN_TIMED_OUT] = "TIMED_OUT",
    [RUN_CANCELLED] = "CANCELLED", [RUN_SKIPPED] = "SKIPPED", [RUN_ABANDONED] = "ABANDONED",
};

const char *run_status_name(run_status_t s)
{
    return (unsigned)s < RUN__COUNT ? status_names[s] : "UNKNOWN";
}

int run_status_parse(const char *s, run_status_t *out)
{
    for (int i = 0; i < RUN__COUNT; i++) {
        if (strcasecmp(s, status_names[i]) == 0) {
            *out = (run_status_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

bool run_status_final(run_status_t s)
{
    return s != RUN_QUEUED && s != RUN_RUNNING;
}

run_t *run_new(const char *job, const char *trigger)
{
    run_t *r = cv_calloc(1, sizeof(*r));
    r->job = job ? cv_strdup(job) : NULL;
    r->trigger = trigger ? cv_strdup(trigger) : NULL;
    r->exit_code = -1;
    r->progress = -1;
    r->attempt = 1;
    return r;
}

static char *dup_or_null(const char *s)
{
    return s ? cv_strdup(s) : NULL;
}

run_t *run_dup(const run_t *r)
{
    run_t *c = cv_malloc(sizeof(*c));
    *c = *r;
    c->job = dup_or_null(r->job);
    c->trigger = dup_or_null(r->trigger);
    c->summary_json = dup_or_null(r->summary_json);
    c->error = dup_or_null(r->error);
    c->output_tail = dup_or_null(r->output_tail);
    c->instance = dup_or_null(r->instance);
    return c;
}

void run_free(run_t *r)
{
    if (r == NULL)
        return;
    free(r->job);
    free(r->trigger);
    free(r->summary_json);
    free(r->error);
    free(r->output_tail);
    free(r->instance);
    free(r);
}
