/* The effective job (effjob.h): configuration + runtime overrides + next fire. */
#include "core/effjob.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/tz.h"
#include "core/util.h"

const char *const effjob_fields[3] = {"enabled", "schedule", "timezone"};

/* ---- the override list ---- */

static effjob_override_t *find(const effjob_overrides_t *l, const char *job, const char *field)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i].job, job) == 0 && strcmp(l->items[i].field, field) == 0)
            return &l->items[i];
    return NULL;
}

bool effjob_overrides_set(effjob_overrides_t *l, const char *job, const char *field,
                          const char *value)
{
    effjob_override_t *o = find(l, job, field);
    if (o == NULL && value == NULL)
        return false;
    if (o && value && strcmp(o->value, value) == 0)
        return false;
    if (o == NULL) {
        l->items = cv_realloc(l->items, (l->n + 1) * sizeof(*l->items));
        o = &l->items[l->n++];
        o->job = cv_strdup(job);
        o->field = cv_strdup(field);
        o->value = cv_strdup(value);
        return true;
    }
    free(o->value);
    if (value) {
        o->value = cv_strdup(value);
        return true;
    }
    free(o->job);
    free(o->field);
    *o = l->items[--l->n];
    return true;
}

const char *effjob_overrides_get(const effjob_overrides_t *l, const char *job, const char *field)
{
    const effjob_override_t *o = find(l, job, field);
    return o ? o->value : NULL;
}

void effjob_overrides_clear(effjob_overrides_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].job);
        free(l->items[i].field);
        free(l->items[i].value);
    }
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

/* ---- the effective job ---- */

static int field_bit(const char *field)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(field, effjob_fields[i]) == 0)
            return 1 << i;
    return 0;
}

/* Applies one override of e's job to e. */
static void apply(effjob_t *e, const effjob_override_t *o, const char *source)
{
    int bit = field_bit(o->field);
    if (bit == 0 || o->value == NULL)
        return;
    json_t *v = json_loads(o->value, JSON_DECODE_ANY, NULL);
    bool ok = bit == EFFJOB_ENABLED ? json_is_boolean(v) : json_is_string(v);
    if (!ok) {
        if (source)
            cv_warn(source, "job %s: the runtime override of %s (%s) is not a JSON %s: ignored",
                    e->cfg->name, o->field, o->value, bit == EFFJOB_ENABLED ? "boolean" : "string");
        e->ignored |= (unsigned)bit;
    } else if (bit == EFFJOB_ENABLED) {
        e->enabled = json_is_true(v);
        e->overridden |= EFFJOB_ENABLED;
    } else if (!e->cfg->locked) { /* a locked job keeps its configured schedule and zone */
        char **slot = bit == EFFJOB_SCHEDULE ? &e->schedule : &e->timezone;
        free(*slot);
        *slot = cv_strdup(json_string_value(v));
        e->overridden |= (unsigned)bit;
    }
    json_decref(v);
}

void effjob_compute(effjob_t *e, const cfg_job_t *job, const effjob_override_t *ov, size_t n,
                    const char *source)
{
    effjob_clear(e);
    e->cfg = job;
    e->enabled = job->enabled;
    e->schedule = cv_strdup(job->schedule ? job->schedule : "manual");
    e->timezone = cv_strdup(job->timezone && job->timezone[0] ? job->timezone : "UTC");
    for (size_t i = 0; i < n; i++)
        if (strcmp(ov[i].job, job->name) == 0)
            apply(e, &ov[i], source);
}

void effjob_compute_list(effjob_t *e, const cfg_job_t *job, const effjob_overrides_t *l,
                         const char *source)
{
    effjob_compute(e, job, l->items, l->n, source);
}

void effjob_clear(effjob_t *e)
{
    free(e->schedule);
    free(e->timezone);
    cron_free(e->expr);
    memset(e, 0, sizeof(*e));
}

/* ---- next fire ---- */

static bool parse(effjob_t *e)
{
    if (!e->parsed) {
        e->parsed = true;
        e->zone = tz_load(e->timezone, NULL, 0);
        if (e->zone == NULL || cron_parse(e->schedule, e->cfg->name, &e->expr, NULL) != 0)
            e->expr = NULL;
    }
    return e->expr != NULL;
}

int64_t effjob_next_fire(effjob_t *e, int64_t now)
{
    if (e->next != 0 && (e->next == INT64_MAX || e->next > now))
        return e->next;
    int64_t next = INT64_MAX;
    if (!e->enabled || !parse(e) || cron_next(e->expr, e->zone, now, &next) != 0)
        next = INT64_MAX;
    e->next = next;
    return next;
}
