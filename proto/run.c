#include "proto/run.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
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

int64_t run_chain_parent(const char *trigger)
{
    if (trigger == NULL || strncmp(trigger, "chain:", 6) != 0)
        return 0;
    const char *p = trigger + 6;
    int64_t id = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (id > (INT64_MAX - 9) / 10)
            return 0;
        id = id * 10 + (*p - '0');
    }
    return *p == '\0' ? id : 0;
}

/* clang-format off */
const run_field_t run_fields[RUN_NPARAMS] = {
#define RUN__ENTRY(n, k, c, j, jk, l) \
    {.name = #n, .kind = RUN_K_##k, .column = c, .json = j, .json_kind = RUN_J_##jk, .life = l, \
     .off = offsetof(run_t, n)},
    RUN_FIELDS(RUN__ENTRY)
#undef RUN__ENTRY
};
/* clang-format on */

void run_field_set_status(run_t *r, const run_field_t *f, const char *name)
{
    run_status_t *out = RUN_FIELD_PTR(r, f, run_status_t);
    if (name == NULL || run_status_parse(name, out) < 0) {
        cv_warn("store", "run %lld has an unknown status '%s'; shown as FAILED", (long long)r->id,
                name ? name : "");
        *out = RUN_FAILED;
    }
}

run_t *run_new(const char *job, const char *trigger)
{
    run_t *r = cv_calloc(1, sizeof(*r));
    r->refs = 1;
    r->job = job ? cv_strdup(job) : NULL;
    r->trigger = trigger ? cv_strdup(trigger) : NULL;
    r->exit_code = -1;
    r->progress = -1;
    r->attempt = 1;
    return r;
}

run_t *run_dup(const run_t *r)
{
    run_t *c = cv_malloc(sizeof(*c));
    *c = *r;
    c->refs = 1;
    c->published = false;
    for (size_t i = 0; i < RUN_NPARAMS; i++) {
        if (run_fields[i].kind != RUN_K_TEXT)
            continue;
        char **p = RUN_FIELD_PTR(c, &run_fields[i], char *);
        *p = *p ? cv_strdup(*p) : NULL;
    }
    return c;
}

run_t *run_ref(const run_t *r)
{
    run_t *m = (run_t *)r; /* the count is not part of the immutable record */
    if (__atomic_load_n(&m->refs, __ATOMIC_RELAXED) == 0) /* made by hand: its one owner's */
        __atomic_store_n(&m->refs, 1, __ATOMIC_RELAXED);
    m->published = true; /* set before the reference leaves the thread that made it */
    __atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
    return m;
}

run_t *run_share(const run_t *r)
{
    return r->published ? run_ref(r) : run_dup(r);
}

void run_unref(run_t *r)
{
    if (r == NULL)
        return;
    /* a record made by hand (calloc) has refs 0: it has one owner */
    if (__atomic_load_n(&r->refs, __ATOMIC_ACQUIRE) > 1 &&
        __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    for (size_t i = 0; i < RUN_NPARAMS; i++)
        if (run_fields[i].kind == RUN_K_TEXT)
            free(*RUN_FIELD_PTR(r, &run_fields[i], char *));
    free(r);
}

void run_free(run_t *r)
{
    run_unref(r);
}
