/* libFuzzer driver: cfg_load_string() on arbitrary bytes, as YAML, as crontab and as chosen by
 * content, with a fixed fake environment and fake schedule/time zone checks. Any crash, leak
 * or sanitizer report is a bug; rejected input is fine. */
#include "core/config.h"
#include "core/log.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char *fake_getenv(void *ud, const char *name)
{
    (void)ud;
    if (strcmp(name, "HOST") == 0)
        return "db.internal";
    if (strcmp(name, "TOKEN") == 0)
        return "fuzz-token-value";
    if (strcmp(name, "EMPTY") == 0)
        return "";
    return NULL;
}

static int fake_schedule(void *ud, const char *schedule, const char *tz, const char *job, char *msg,
                         size_t msglen, int *column)
{
    (void)ud, (void)tz, (void)job;
    const char *bad = strchr(schedule, '!');
    if (bad == NULL)
        return 0;
    snprintf(msg, msglen, "unexpected '!'");
    *column = (int)(bad - schedule) + 1;
    return -EINVAL;
}

static int fake_timezone(void *ud, const char *tz, char *msg, size_t msglen)
{
    (void)ud;
    if (strchr(tz, '/') || strcmp(tz, "UTC") == 0)
        return 0;
    snprintf(msg, msglen, "unknown");
    return -ENOENT;
}

static void one(const uint8_t *data, size_t size, const char *name, cfg_format_t format)
{
    cfg_load_opts_t opts = {.format = format,
                            .getenv = fake_getenv,
                            .check_schedule = fake_schedule,
                            .check_timezone = fake_timezone};
    cfg_t *cfg = NULL;
    cfg_errors_t errs = {0};
    int rc = cfg_load_string((const char *)data, size, name, &opts, &cfg, &errs);
    if ((rc == 0) != (cfg != NULL) || (rc != 0 && errs.count == 0))
        __builtin_trap();
    cv_buf_t b = {0};
    cfg_errors_format(&errs, &b);
    /* The walk must hand libcyaml only what it accepts: its rejection would be a loader bug. */
    for (size_t i = 0; i < errs.count; i++)
        if (strncmp(errs.items[i].message, "could not load the configuration (libcyaml", 42) == 0)
            __builtin_trap();
    for (unsigned i = 0; cfg && i < cfg->n_jobs; i++)
        if (cfg_find_job(cfg, cfg->jobs[i].name) == NULL)
            __builtin_trap();
    cv_buf_free(&b);
    cfg_errors_free(&errs);
    cfg_free(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(data, size, "fuzz.yaml", CFG_FORMAT_AUTO);
    one(data, size, "fuzz", CFG_FORMAT_AUTO);
    one(data, size, "fuzz", CFG_FORMAT_CRONTAB);
    cv_secret_clear();
    return 0;
}
