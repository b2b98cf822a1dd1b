/* Loading a configuration with every check the daemon relies on: the config loader's own
 * validation plus schedules (the cron engine) and time zones (the tz database). */
#ifndef CV_CORE_CFGCHECK_H
#define CV_CORE_CFGCHECK_H

#include "core/config.h"

/** cfg_load() with schedule and time-zone checks wired in. Same contract as cfg_load(). */
int cfgcheck_load(const char *path, cfg_t **out, cfg_errors_t *errs);

/** The same for a buffer (tests, fuzzing). */
int cfgcheck_load_string(const char *data, size_t len, const char *name, cfg_t **out,
                         cfg_errors_t *errs);

/** A loaded configuration shared read-only by several actors: it is freed when the last
 * reference is put. Loop thread only. */
typedef struct cfgref {
    cfg_t *cfg;
    int refs;
} cfgref_t;

/** Wraps cfg (taking ownership) with one reference. */
cfgref_t *cfgref_new(cfg_t *cfg);
cfgref_t *cfgref_get(cfgref_t *r);
void cfgref_put(cfgref_t *r);

#endif
