#include "actors/sched_core.h"
#include "core/cron.h"
#include "core/tz.h"
#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sjob {
    char *name;
    char *schedule;
    char *timezone;
    cron_expr_t *expr;
    const tz_zone_t *tz;
    bool enabled;
    int64_t next;      /* SCHED_NEVER when not on the clock */
    int64_t last_fire; /* last instant fired; next is always computed after it */
    uint64_t seq;      /* tie-breaker: jobs due at one instant fire in insertion order */
    size_t heap_idx;   /* SIZE_MAX when not in the heap */
    uint64_t gen;      /* last synchronisation that named this job */
    int64_t catch_up;  /* seconds, 0: off */
    struct sjob *hnext;
} sjob_t;

struct sched_core {
    sjob_t **heap;
    size_t nheap, capheap;
    sjob_t **buckets;
    size_t nbuckets, count;
    uint64_t seq;
    uint64_t gen;
};

/* ---- name table ---- */

static size_t bucket_of(const sched_core_t *s, const char *name)
{
    return cv_hash64(name, strlen(name)) & (s->nbuckets - 1);
}

static sjob_t *lookup(const sched_core_t *s, const char *name)
{
    for (sjob_t *j = s->buckets[bucket_of(s, name)]; j; j = j->hnext)
        if (strcmp(j->name, name) == 0)
            return j;
    return NULL;
}

static void table_grow(sched_core_t *s)
{
    size_t old_n = s->nbuckets;
    sjob_t **old = s->buckets;
    s->nbuckets = old_n * 2;
    s->buckets = cv_calloc(s->nbuckets, sizeof(*s->buckets));
    for (size_t i = 0; i < old_n; i++) {
        for (sjob_t *j = old[i], *next; j; j = next) {
            next = j->hnext;
            size_t b = bucket_of(s, j->name);
            j->hnext = s->buckets[b];
            s->buckets[b] = j;
        }
    }
    free(old);
}

/* ---- heap ordered by (next, seq) ---- */

static bool before(const sjob_t *a, const sjob_t *b)
{
    return a->next < b->next || (a->next == b->next && a->seq < b->seq);
}

static void heap_swap(sched_core_t *s, size_t i, size_t j)
{
    sjob_t *t = s->heap[i];
    s->heap[i] = s->heap[j];
    s->heap[j] = t;
    s->heap[i]->heap_idx = i;
    s->heap[j]->heap_idx = j;
}

static void sift_up(sched_core_t *s, size_t i)
{
    while (i > 0 && before(s->heap[i], s->heap[(i - 1) / 2])) {
        heap_swap(s, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void sift_down(sched_core_t *s, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->nheap && before(s->heap[l], s->heap[m]))
            m = l;
        if (r < s->nheap && before(s->heap[r], s->heap[m]))
            m = r;
        if (m == i)
            return;
        heap_swap(s, i, m);
        i = m;
    }
}

static void heap_remove(sched_core_t *s, sjob_t *j)
{
    size_t i = j->heap_idx;
    if (i == SIZE_MAX)
        return;
    s->nheap--;
    if (i != s->nheap) {
        s->heap[i] = s->heap[s->nheap];
        s->heap[i]->heap_idx = i;
        sift_down(s, i);
        sift_up(s, i);
    }
    j->heap_idx = SIZE_MAX;
}

static void heap_insert(sched_core_t *s, sjob_t *j)
{
    if (s->nheap == s->capheap) {
        s->capheap = s->capheap ? s->capheap * 2 : 64;
        s->heap = cv_realloc(s->heap, s->capheap * sizeof(*s->heap));
    }
    j->heap_idx = s->nheap;
    s->heap[s->nheap++] = j;
    sift_up(s, j->heap_idx);
}

/* Recomputes j->next strictly after `after` and (re)places the job in the heap. */
static void reschedule(sched_core_t *s, sjob_t *j, int64_t after)
{
    heap_remove(s, j);
    j->next = SCHED_NEVER;
    if (!j->enabled || cron_kind(j->expr) == CRON_KIND_MANUAL ||
        cron_kind(j->expr) == CRON_KIND_REBOOT)
        return;
    if (j->last_fire != SCHED_NEVER && after < j->last_fire)
        after = j->last_fire;
    int64_t next;
    if (cron_next(j->expr, j->tz, after, &next) != 0)
        return;
    j->next = next;
    j->seq = ++s->seq;
    heap_insert(s, j);
}

sched_core_t *sched_core_create(void)
{
    sched_core_t *s = cv_calloc(1, sizeof(*s));
    s->nbuckets = 64;
    s->buckets = cv_calloc(s->nbuckets, sizeof(*s->buckets));
    return s;
}

static void job_free(sjob_t *j)
{
    free(j->name);
    free(j->schedule);
    free(j->timezone);
    cron_free(j->expr);
    free(j);
}

void sched_core_free(sched_core_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nbuckets; i++) {
        for (sjob_t *j = s->buckets[i], *next; j; j = next) {
            next = j->hnext;
            job_free(j);
        }
    }
    free(s->buckets);
    free(s->heap);
    free(s);
}

static const char *zone_name(const char *tz)
{
    return tz && *tz ? tz : "UTC";
}

int sched_core_put(sched_core_t *s, const sched_job_spec_t *spec, const char *hash_seed,
                   int64_t now, char *err, size_t errlen)
{
    sjob_t *j = lookup(s, spec->name);
    if (j != NULL)
        j->gen = s->gen; /* named by this sync, even if the new definition is refused */
    const tz_zone_t *tz = tz_load(zone_name(spec->timezone), err, errlen);
    if (tz == NULL)
        return -EINVAL;
    cron_expr_t *expr = NULL;
    cron_error_t cerr;
    if (cron_parse(spec->schedule, hash_seed, &expr, &cerr) != 0) {
        snprintf(err, errlen, "%s", cerr.message);
        return -EINVAL;
    }
    if (j == NULL) {
        if (s->count + 1 > s->nbuckets)
            table_grow(s);
        j = cv_calloc(1, sizeof(*j));
        j->name = cv_strdup(spec->name);
        j->heap_idx = SIZE_MAX;
        j->last_fire = SCHED_NEVER;
        j->gen = s->gen;
        size_t b = bucket_of(s, j->name);
        j->hnext = s->buckets[b];
        s->buckets[b] = j;
        s->count++;
    } else if (strcmp(j->schedule, spec->schedule) == 0 &&
               strcmp(j->timezone, zone_name(spec->timezone)) == 0 && j->enabled == spec->enabled) {
        cron_free(expr);
        return 0; /* unchanged: keep its next instant */
    }
    free(j->schedule);
    free(j->timezone);
    cron_free(j->expr);
    j->schedule = cv_strdup(spec->schedule);
    j->timezone = cv_strdup(zone_name(spec->timezone));
    j->expr = expr;
    j->tz = tz;
    j->enabled = spec->enabled;
    j->catch_up = spec->catch_up;
    if (spec->last_run > 0 && (j->last_fire == SCHED_NEVER || spec->last_run > j->last_fire))
        j->last_fire = spec->last_run;
    reschedule(s, j, now);
    return 0;
}

int sched_core_set_enabled(sched_core_t *s, const char *name, bool enabled, int64_t now)
{
    sjob_t *j = lookup(s, name);
    if (j == NULL)
        return -ENOENT;
    if (j->enabled == enabled)
        return 0;
    j->enabled = enabled;
    reschedule(s, j, now);
    return 0;
}

int64_t sched_core_deadline(const sched_core_t *s)
{
    return s->nheap ? s->heap[0]->next : SCHED_NEVER;
}

int64_t sched_core_next_of(const sched_core_t *s, const char *name)
{
    const sjob_t *j = lookup(s, name);
    return j ? j->next : -ENOENT;
}

/* Counts the instants of j in (first, now] beyond the first one, capped: a big forward jump of
 * a per-second job must not cost a walk over every second it skipped. */
static int64_t count_missed(const sjob_t *j, int64_t first, int64_t now)
{
    int64_t missed = 0, t = first, next;
    while (missed < 1000 && cron_next(j->expr, j->tz, t, &next) == 0 && next <= now) {
        missed++;
        t = next;
    }
    return missed;
}

size_t sched_core_run_due(sched_core_t *s, int64_t now, sched_fire_cb cb, void *ud)
{
    size_t fired = 0;
    while (s->nheap && s->heap[0]->next <= now) {
        sjob_t *j = s->heap[0];
        int64_t at = j->next;
        /* An instant at most SCHED_LATE_MAX old was missed by a busy loop, not by a clock jump:
         * it fires, late, and so does each later one (the next turns of this loop). */
        bool late = now - at <= SCHED_LATE_MAX;
        int64_t missed = late ? 0 : count_missed(j, at, now);
        j->last_fire = at;
        reschedule(s, j, late || now < at ? at : now);
        fired++;
        cb(ud, j->name, at, missed);
    }
    return fired;
}

/* The latest instant of j in (after, now], or SCHED_NEVER. Bounded: a per-second job with a one
 * day deadline walks 86,400 instants once, at start. */
static int64_t latest_due(const sjob_t *j, int64_t after, int64_t now)
{
    int64_t t = after, next, found = SCHED_NEVER;
    for (int i = 0; i < 200000 && cron_next(j->expr, j->tz, t, &next) == 0 && next <= now; i++)
        found = t = next;
    return found;
}

size_t sched_core_catch_up(sched_core_t *s, int64_t now, sched_fire_cb cb, void *ud)
{
    size_t fired = 0;
    for (size_t i = 0; i < s->nbuckets; i++) {
        for (sjob_t *j = s->buckets[i]; j; j = j->hnext) {
            if (!j->enabled || j->catch_up <= 0 || cron_kind(j->expr) == CRON_KIND_MANUAL ||
                cron_kind(j->expr) == CRON_KIND_REBOOT)
                continue;
            int64_t from = now - j->catch_up - 1;
            if (j->last_fire != SCHED_NEVER && j->last_fire > from)
                from = j->last_fire;
            int64_t at = latest_due(j, from, now);
            if (at == SCHED_NEVER)
                continue;
            j->last_fire = at;
            fired++;
            cb(ud, j->name, at, 0);
        }
    }
    return fired;
}

size_t sched_core_fire_reboot(sched_core_t *s, int64_t now, sched_fire_cb cb, void *ud)
{
    size_t fired = 0;
    for (size_t i = 0; i < s->nbuckets; i++) {
        for (sjob_t *j = s->buckets[i]; j; j = j->hnext) {
            if (j->enabled && cron_kind(j->expr) == CRON_KIND_REBOOT) {
                fired++;
                cb(ud, j->name, now, 0);
            }
        }
    }
    return fired;
}

void sched_core_begin_sync(sched_core_t *s)
{
    s->gen++;
}

size_t sched_core_end_sync(sched_core_t *s)
{
    size_t removed = 0;
    for (size_t i = 0; i < s->nbuckets; i++) {
        for (sjob_t **pp = &s->buckets[i]; *pp;) {
            sjob_t *j = *pp;
            if (j->gen == s->gen) {
                pp = &j->hnext;
                continue;
            }
            *pp = j->hnext;
            heap_remove(s, j);
            job_free(j);
            s->count--;
            removed++;
        }
    }
    return removed;
}

size_t sched_core_count(const sched_core_t *s)
{
    return s->count;
}
