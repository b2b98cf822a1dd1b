/* The effective job: a configured job with its runtime overrides applied, and its next fire.
 *
 * Computed here and nowhere else, so that the scheduler (which fires it), the executor (which runs
 * it, auto-disables it) and the API (which shows it) agree on what a job is. Plain structs only:
 * the overrides are (job, field, value-JSON) triples, as the store keeps them, whoever holds them.
 *
 * The overridable fields are `enabled` (a JSON boolean), `schedule` and `timezone` (JSON strings).
 * A locked job ignores schedule and time zone overrides (the API refuses them; an override left
 * from before the job was locked stays in the store but does not apply); its `enabled` override
 * applies (auto_disable_after disables locked jobs too). An override whose value is not valid
 * JSON of the right type is ignored with a warning. */
#ifndef CV_CORE_EFFJOB_H
#define CV_CORE_EFFJOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/cron.h"

/** The overridable fields, as bits of effjob_t.overridden and .ignored. */
typedef enum {
    EFFJOB_ENABLED = 1u << 0,
    EFFJOB_SCHEDULE = 1u << 1,
    EFFJOB_TIMEZONE = 1u << 2,
} effjob_field_t;

/** The names of the overridable fields, in bit order ("enabled", "schedule", "timezone"). */
extern const char *const effjob_fields[3];

/** One runtime override: value is JSON text (NULL: none). Strings are owned by whoever holds the
 * triple; in an effjob_overrides_t, by the list. */
typedef struct effjob_override {
    char *job;
    char *field;
    char *value;
} effjob_override_t;

/** A list of overrides, at most one per (job, field). Zero-initialised it is empty. */
typedef struct effjob_overrides {
    effjob_override_t *items;
    size_t n;
} effjob_overrides_t;

/** Sets (value JSON text, copied) or removes (value NULL) the override of (job, field). Returns
 * true when that changed the list. */
bool effjob_overrides_set(effjob_overrides_t *l, const char *job, const char *field,
                          const char *value);
/** The value of (job, field), or NULL. */
const char *effjob_overrides_get(const effjob_overrides_t *l, const char *job, const char *field);
/** Empties the list and frees its memory (the list can be used again). */
void effjob_overrides_clear(effjob_overrides_t *l);

/** A job as it runs. The strings are owned by it (effjob_clear frees them). */
typedef struct effjob {
    const cfg_job_t *cfg; /* the configuration, borrowed */
    bool enabled;
    char *schedule;      /* cron text, "@every 90s", "@reboot" or "manual" */
    char *timezone;      /* IANA name, never NULL ("UTC" when the configuration has none) */
    unsigned overridden; /* effjob_field_t bits: the fields whose override applies */
    unsigned ignored;    /* effjob_field_t bits: overrides present but ignored (invalid) */
    /* next fire (effjob_next_fire): parsed once, on first use */
    cron_expr_t *expr;
    const tz_zone_t *zone;
    bool parsed;  /* expr and zone tried */
    int64_t next; /* Unix s cached by effjob_next_fire; 0 = not computed; INT64_MAX = never */
} effjob_t;

/** Computes e from job and the overrides of job->name among ov[0..n) (triples of other jobs and
 * of unknown fields are skipped). e is zeroed or holds an earlier result (freed first); it
 * borrows job, which must outlive it. Invalid overrides (not JSON, or of the wrong type) are
 * ignored, noted in e->ignored and logged as warnings under the component source (e.g. "http";
 * NULL: not logged, for a caller that computes often what another one already warned of). Schedule
 * and time zone overrides of a locked job are ignored silently (noted in neither bit set). */
void effjob_compute(effjob_t *e, const cfg_job_t *job, const effjob_override_t *ov, size_t n,
                    const char *source);
/** The same from an override list. */
void effjob_compute_list(effjob_t *e, const cfg_job_t *job, const effjob_overrides_t *l,
                         const char *source);
/** Frees what e owns and zeroes it. */
void effjob_clear(effjob_t *e);

/** The job's next fire instant strictly after now (Unix s), or INT64_MAX when it never fires by
 * itself: disabled, manual, @reboot, or its schedule or time zone cannot be used. Cached until
 * that instant passes. */
int64_t effjob_next_fire(effjob_t *e, int64_t now);

#endif
