/* Internal to the configuration loader (core/config*.c): shared state and helpers. */
#ifndef CV_CORE_CONFIG_INT_H
#define CV_CORE_CONFIG_INT_H

#include "core/config.h"

/* Sentinel of a job-level duration, size or count that inherits from defaults. */
#define CFG__INHERIT (-1)

typedef struct cfg__ctx {
    const cfg_load_opts_t *opts;
    cfg_errors_t *errs;
    size_t nerrors; /* errors added by this load */
    const char *file;
} cfg__ctx_t;

/* Where a value of job (index) is, for semantic errors: key is a job key ("name",
 * "requires"...), item the index in a list value or -1. Falls back to the job's position. */
typedef cfg_pos_t (*cfg__where_fn)(void *ud, const cfg_t *cfg, unsigned job, const char *key,
                                   int item);

void cfg__error(cfg__ctx_t *c, int line, int column, const char *job, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void cfg__error_at(cfg__ctx_t *c, cfg_pos_t pos, const char *job, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Expands ${VAR}, ${VAR:-default}, ${VAR:?message} and $$ in s. Errors are reported at
 * line:column (+ offset of the reference when on the first line). When secret, every expanded
 * value is registered with cv_secret_register. Returns 0 and a heap *out, or -EINVAL. */
int cfg__expand(cfg__ctx_t *c, const char *s, bool secret, int line, int column, const char *job,
                char **out);

/* Whether an env variable name looks like it holds a secret (SECRET, TOKEN, PASSWORD, KEY). */
bool cfg__secret_env_name(const char *name);

/* Whether s is a valid job or probe name: [a-z0-9_-]+. */
bool cfg__valid_name(const char *s);

/* Sets every default of cfg and resolves inherited job values (CFG__INHERIT) from defaults,
 * then runs the checks shared by both formats (names, schedules, time zones, requires,
 * probes, notifiers, tokens). */
void cfg__finish(cfg__ctx_t *c, cfg_t *cfg, cfg__where_fn where, void *ud);

int cfg__load_yaml(cfg__ctx_t *c, const char *data, size_t len, cfg_t **out);
int cfg__load_crontab(cfg__ctx_t *c, const char *data, size_t len, cfg_t **out);

void cfg__free_kv(cfg_kv_t *kv, unsigned n);
/** Moves the strings and arrays of cfg's jobs into one block (cfg->job_text), freeing the
 * originals, and builds cfg->job_index again. Done once, when a configuration is complete;
 * nothing may replace a job's string or array after it. */
void cfg__compact_jobs(cfg_t *cfg);

#endif
