/* Backend selection, dispatch through the ops table, and the helpers every backend shares. */
#include "storage/store.h"
#include "storage/store_pg.h"
#include "storage/store_sqlite.h"

#include "core/log.h"
#include "core/util.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

int store_open(uv_loop_t *loop, const store_config_t *cfg, store_t **out)
{
    *out = NULL;
    if (loop == NULL || cfg == NULL || cfg->dsn == NULL || cfg->dsn[0] == '\0') {
        cv_error("store", "no database given: set storage.dsn to a file path or postgres:// URL");
        return -EINVAL;
    }
    if (cfg->instance == NULL || cfg->instance[0] == '\0') {
        cv_error("store", "no instance id given to the store");
        return -EINVAL;
    }
    if (store_pg_dsn_matches(cfg->dsn))
        return store_pg_open(loop, cfg, out); /* the DSN may hold a password: never log it */
    return store_sqlite_open(loop, cfg, out);
}

void store_close(store_t *s, store_status_cb cb, void *ud)
{
    s->ops->close(s, cb, ud);
}

void store_migrate(store_t *s, store_count_cb cb, void *ud)
{
    s->ops->migrate(s, cb, ud);
}

void store_ping(store_t *s, store_status_cb cb, void *ud)
{
    s->ops->ping(s, cb, ud);
}

uint64_t store_commits(store_t *s)
{
    return s->ops->commits(s);
}

void store_insert_run(store_t *s, const run_t *r, store_id_cb cb, void *ud)
{
    s->ops->insert_run(s, r, cb, ud);
}

void store_claim_run(store_t *s, const run_t *r, store_id_cb cb, void *ud)
{
    if (s->ops->claim_run)
        s->ops->claim_run(s, r, cb, ud);
    else
        s->ops->insert_run(s, r, cb, ud);
}

const char *store_health_name(store_health_t h)
{
    return h == STORE_DEGRADED ? "degraded" : h == STORE_REPLAYING ? "replaying" : "up";
}

void store_get_state(store_t *s, store_state_t *out)
{
    *out = (store_state_t){.health = STORE_UP};
    if (s->ops->get_state)
        s->ops->get_state(s, out);
}

int store_watch_state(store_t *s, store_state_cb cb, void *ud)
{
    return s->ops->watch_state ? s->ops->watch_state(s, cb, ud) : -ENOTSUP;
}

void store_update_run(store_t *s, const run_t *r, store_status_cb cb, void *ud)
{
    s->ops->update_run(s, r, cb, ud);
}

void store_get_run(store_t *s, int64_t id, store_run_cb cb, void *ud)
{
    s->ops->get_run(s, id, cb, ud);
}

void store_query_runs(store_t *s, const store_run_filter_t *f, store_page_cb cb, void *ud)
{
    s->ops->query_runs(s, f, cb, ud);
}

void store_job_stats(store_t *s, const char *const *jobs, size_t njobs, int last_n,
                     store_stats_cb cb, void *ud)
{
    s->ops->job_stats(s, jobs, njobs, last_n, cb, ud);
}

void store_summary(store_t *s, int64_t since, store_summary_cb cb, void *ud)
{
    s->ops->summary(s, since, cb, ud);
}

void store_abandon_stale(store_t *s, const char *instance, const char *reason, store_count_cb cb,
                         void *ud)
{
    s->ops->abandon_stale(s, instance, reason, cb, ud);
}

void store_retention(store_t *s, int days, int max_runs_per_job, store_count_cb cb, void *ud)
{
    s->ops->retention(s, days, max_runs_per_job, cb, ud);
}

void store_override_set(store_t *s, const store_override_t *ov, store_status_cb cb, void *ud)
{
    s->ops->override_set(s, ov, cb, ud);
}

void store_override_delete(store_t *s, const char *job, const char *field, store_status_cb cb,
                           void *ud)
{
    s->ops->override_delete(s, job, field, cb, ud);
}

void store_override_list(store_t *s, const char *job, store_overrides_cb cb, void *ud)
{
    s->ops->override_list(s, job, cb, ud);
}

void store_audit_append(store_t *s, const store_audit_t *a, store_id_cb cb, void *ud)
{
    s->ops->audit_append(s, a, cb, ud);
}

void store_audit_list(store_t *s, const char *job, int limit, const char *cursor, store_audit_cb cb,
                      void *ud)
{
    s->ops->audit_list(s, job, limit, cursor, cb, ud);
}

bool store_is_shared(const store_t *s)
{
    return s->ops->shared;
}

void store_heartbeat(store_t *s, const store_instance_t *inst, store_status_cb cb, void *ud)
{
    s->ops->heartbeat(s, inst, cb, ud);
}

void store_abandon_dead(store_t *s, int64_t seen_before, store_count_cb cb, void *ud)
{
    s->ops->abandon_dead(s, seen_before, cb, ud);
}

void store_list_instances(store_t *s, store_instances_cb cb, void *ud)
{
    s->ops->list_instances(s, cb, ud);
}

int store_watch_overrides(store_t *s, store_notify_cb cb, void *ud)
{
    return s->ops->watch_overrides ? s->ops->watch_overrides(s, cb, ud) : -ENOTSUP;
}

int store_watch_events(store_t *s, store_event_cb cb, void *ud)
{
    return s->ops->watch_events ? s->ops->watch_events(s, cb, ud) : -ENOTSUP;
}

void store_notify(store_t *s, const char *channel, const char *payload, store_status_cb cb,
                  void *ud)
{
    assert(s->ops->notify != NULL); /* callers check store_is_shared() */
    s->ops->notify(s, channel, payload, cb, ud);
}

void store_instances_free(store_instance_t *inst, size_t n)
{
    for (size_t i = 0; inst != NULL && i < n; i++) {
        free(inst[i].id);
        free(inst[i].hostname);
        free(inst[i].version);
    }
    free(inst);
}

/* A cursor is "k" followed by the decimal id of the last row of the page: opaque to clients,
 * cheap to check. */
char *store_cursor_encode(int64_t id)
{
    return cv_sprintf("k%" PRId64, id);
}

int store_cursor_decode(const char *cursor, int64_t *id)
{
    if (cursor == NULL || cursor[0] != 'k' || cursor[1] < '1' || cursor[1] > '9')
        return -EINVAL;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(cursor + 1, &end, 10);
    if (errno != 0 || *end != '\0' || v <= 0)
        return -EINVAL;
    *id = v;
    return 0;
}

int store_page_limit(int limit)
{
    if (limit <= 0)
        return STORE_PAGE_DEFAULT;
    return limit > STORE_PAGE_MAX ? STORE_PAGE_MAX : limit;
}

void store_run_page_free(store_run_page_t *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->count; i++)
        run_free(p->runs[i]);
    free(p->runs);
    free(p->next_cursor);
    p->runs = NULL;
    p->count = 0;
    p->next_cursor = NULL;
}

void store_job_stats_free(store_job_stats_t *st, size_t n)
{
    for (size_t i = 0; st != NULL && i < n; i++) {
        free(st[i].job);
        run_free(st[i].last);
    }
    free(st);
}

void store_overrides_free(store_override_t *ov, size_t n)
{
    for (size_t i = 0; ov != NULL && i < n; i++) {
        free(ov[i].job);
        free(ov[i].field);
        free(ov[i].value);
        free(ov[i].updated_by);
    }
    free(ov);
}

void store_note_put(store_t *s, const store_note_t *n, store_status_cb cb, void *ud)
{
    s->ops->note_put(s, n, cb, ud);
}

void store_note_list(store_t *s, int limit, store_notes_cb cb, void *ud)
{
    s->ops->note_list(s, limit, cb, ud);
}

void store_notes_free(store_note_t *n, size_t count)
{
    for (size_t i = 0; n != NULL && i < count; i++) {
        free(n[i].instance);
        free(n[i].notifier);
        free(n[i].event);
        free(n[i].subject);
        free(n[i].last_error);
    }
    free(n);
}

void store_audit_page_free(store_audit_page_t *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->count; i++) {
        store_audit_t *a = &p->entries[i];
        free(a->actor);
        free(a->action);
        free(a->job);
        free(a->before);
        free(a->after);
    }
    free(p->entries);
    free(p->next_cursor);
    p->entries = NULL;
    p->count = 0;
    p->next_cursor = NULL;
}
