#include "core/cfgcheck.h"
#include "core/cron.h"
#include "core/tz.h"

#include <stdio.h>
#include <stdlib.h>

static int check_timezone(void *ud, const char *tz, char *msg, size_t msglen)
{
    return tz_load(tz, msg, msglen) ? 0 : -1;
}

static int check_schedule(void *ud, const char *schedule, const char *zone_name,
                          const char *job_name, char *msg, size_t msglen, int *column)
{
    cron_expr_t *e = NULL;
    cron_error_t err;
    if (cron_parse(schedule, job_name, &e, &err) != 0) {
        snprintf(msg, msglen, "schedule: %s", err.message);
        *column = err.column > 0 ? err.column : 1;
        return -1;
    }
    cron_free(e);
    return 0;
}

static const cfg_load_opts_t opts = {
    .check_schedule = check_schedule,
    .check_timezone = check_timezone,
};

int cfgcheck_load(const char *path, cfg_t **out, cfg_errors_t *errs)
{
    return cfg_load(path, &opts, out, errs);
}

int cfgcheck_load_string(const char *data, size_t len, const char *name, cfg_t **out,
                         cfg_errors_t *errs)
{
    return cfg_load_string(data, len, name, &opts, out, errs);
}

cfgref_t *cfgref_new(cfg_t *cfg)
{
    cfgref_t *r = cv_malloc(sizeof(*r));
    r->cfg = cfg;
    r->refs = 1;
    return r;
}

cfgref_t *cfgref_get(cfgref_t *r)
{
    r->refs++;
    return r;
}

void cfgref_put(cfgref_t *r)
{
    if (r && --r->refs == 0) {
        cfg_free(r->cfg);
        free(r);
    }
}
