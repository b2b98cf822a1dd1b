#include "storage/store_req.h"
#include "core/util.h"

#include <errno.h>
#include <stdlib.h>

/* Frees a vector of n strings (NULL allowed). */
static void store_strv_free(char **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        free(v[i]);
    free(v);
}

static void free_instance(store_instance_t *i)
{
    free(i->id);
    free(i->hostname);
    free(i->version);
}

void store_req_args_free(store_op_t op, store_req_args_t *u, int status)
{
    switch (op) {
    case STORE_OP_GET_RUN:
        if (status == 0)
            run_free(u->run);
        break;
    case STORE_OP_INSERT_RUN:
    case STORE_OP_UPDATE_RUN:
        run_free(u->run);
        break;
    case STORE_OP_QUERY_RUNS:
        free((char *)u->query.f.job);
        free((char *)u->query.f.trigger);
        free((char *)u->query.f.cursor);
        store_run_page_free(&u->query.page);
        break;
    case STORE_OP_JOB_STATS:
        store_strv_free(u->stats.jobs, u->stats.njobs);
        store_job_stats_free(u->stats.out, u->stats.njobs);
        break;
    case STORE_OP_ABANDON:
        free(u->abandon.instance);
        free(u->abandon.reason);
        break;
    case STORE_OP_RETENTION:
        store_strv_free(u->retention.jobs, u->retention.njobs);
        break;
    case STORE_OP_OV_SET:
    case STORE_OP_OV_DELETE:
    case STORE_OP_OV_LIST:
        free(u->ov.ov.job);
        free(u->ov.ov.field);
        free(u->ov.ov.value);
        free(u->ov.ov.updated_by);
        store_overrides_free(u->ov.list, u->ov.count);
        break;
    case STORE_OP_AUDIT_APPEND:
        free(u->audit.actor);
        free(u->audit.action);
        free(u->audit.job);
        free(u->audit.before);
        free(u->audit.after);
        break;
    case STORE_OP_NOTE_PUT:
        free(u->note.instance);
        free(u->note.notifier);
        free(u->note.event);
        free(u->note.subject);
        free(u->note.last_error);
        break;
    case STORE_OP_NOTE_LIST:
        store_notes_free(u->notes.list, u->notes.count);
        break;
    case STORE_OP_AUDIT_LIST:
        free(u->audit_list.job);
        free(u->audit_list.cursor);
        store_audit_page_free(&u->audit_list.page);
        break;
    case STORE_OP_HEARTBEAT:
    case STORE_OP_INSTANCES:
        free_instance(&u->inst.one);
        store_instances_free(u->inst.list, u->inst.count);
        break;
    case STORE_OP_NOTIFY:
        free(u->notify.channel);
        free(u->notify.payload);
        break;
    default:
        break;
    }
}

void store_req_deliver(store_op_t op, const store_req_cb_t *cb, void *ud, int status,
                       int64_t result, store_req_args_t *u)
{
    bool ok = status == 0;
    switch (op) {
    case STORE_OP_CLOSE:
    case STORE_OP_PING:
    case STORE_OP_UPDATE_RUN:
    case STORE_OP_OV_SET:
    case STORE_OP_OV_DELETE:
    case STORE_OP_HEARTBEAT:
    case STORE_OP_NOTIFY:
    case STORE_OP_NOTE_PUT:
        if (cb->status)
            cb->status(ud, status);
        break;
    case STORE_OP_LISTEN:
        break;
    case STORE_OP_INSTANCES:
        cb->instances(ud, status, ok ? u->inst.list : NULL, ok ? u->inst.count : 0);
        break;
    case STORE_OP_INSERT_RUN:
    case STORE_OP_AUDIT_APPEND:
        if (cb->id)
            cb->id(ud, status, ok ? result : 0);
        break;
    case STORE_OP_MIGRATE:
    case STORE_OP_ABANDON:
    case STORE_OP_ABANDON_DEAD:
    case STORE_OP_RETENTION:
        if (cb->count)
            cb->count(ud, status, ok ? result : 0);
        break;
    case STORE_OP_GET_RUN: {
        bool taken = false;
        cb->run(ud, status, ok ? u->run : NULL, &taken);
        if (taken && ok)
            u->run = NULL;
        break;
    }
    case STORE_OP_QUERY_RUNS:
        cb->page(ud, status, ok ? &u->query.page : NULL);
        break;
    case STORE_OP_JOB_STATS:
        cb->stats(ud, status, ok ? u->stats.out : NULL, ok ? u->stats.njobs : 0);
        break;
    case STORE_OP_SUMMARY:
        cb->summary(ud, status, ok ? &u->summary.out : NULL);
        break;
    case STORE_OP_OV_LIST:
        cb->overrides(ud, status, ok ? u->ov.list : NULL, ok ? u->ov.count : 0);
        break;
    case STORE_OP_AUDIT_LIST:
        cb->audit(ud, status, ok ? &u->audit_list.page : NULL);
        break;
    case STORE_OP_NOTE_LIST:
        cb->notes(ud, status, ok ? u->notes.list : NULL, ok ? u->notes.count : 0);
        break;
    }
}

char *store_strdup_opt(const char *s)
{
    return s ? cv_strdup(s) : NULL;
}

int store_req_set_query(store_req_args_t *u, const store_run_filter_t *f)
{
    u->query.f = *f;
    u->query.f.job = store_strdup_opt(f->job);
    u->query.f.trigger = store_strdup_opt(f->trigger);
    u->query.f.cursor = store_strdup_opt(f->cursor);
    return 0;
}

int store_req_set_job_stats(store_req_args_t *u, const char *const *jobs, size_t njobs, int last_n)
{
    int status = 0;
    u->stats.jobs = cv_calloc(njobs ? njobs : 1, sizeof(char *));
    for (size_t i = 0; i < njobs; i++) {
        u->stats.jobs[i] = store_strdup_opt(jobs[i]);
        if (jobs[i] == NULL)
            status = -EINVAL;
    }
    u->stats.njobs = njobs;
    u->stats.last_n = last_n > 0 ? last_n : 20;
    return status;
}

int store_req_set_override(store_req_args_t *u, store_op_t op, const store_override_t *ov)
{
    store_override_t *o = &u->ov.ov;
    o->job = store_strdup_opt(ov->job);
    o->field = store_strdup_opt(ov->field);
    o->value = store_strdup_opt(ov->value);
    o->updated_by = store_strdup_opt(ov->updated_by);
    o->updated_at = ov->updated_at ? ov->updated_at : cv_now_ms();
    if (op == STORE_OP_OV_LIST)
        return 0;
    if (!ov->job || !ov->field || (op == STORE_OP_OV_SET && !ov->value))
        return -EINVAL;
    return 0;
}

int store_req_set_audit(store_req_args_t *u, const store_audit_t *a)
{
    u->audit = *a;
    u->audit.at = a->at ? a->at : cv_now_ms();
    u->audit.actor = store_strdup_opt(a->actor);
    u->audit.action = store_strdup_opt(a->action);
    u->audit.job = store_strdup_opt(a->job);
    u->audit.before = store_strdup_opt(a->before);
    u->audit.after = store_strdup_opt(a->after);
    return a->actor && a->action ? 0 : -EINVAL;
}

int store_req_set_audit_list(store_req_args_t *u, const char *job, int limit, const char *cursor)
{
    u->audit_list.job = store_strdup_opt(job);
    u->audit_list.cursor = store_strdup_opt(cursor);
    u->audit_list.limit = limit;
    return 0;
}

int store_req_set_note(store_req_args_t *u, const store_note_t *n)
{
    u->note = *n;
    u->note.instance = store_strdup_opt(n->instance);
    u->note.notifier = store_strdup_opt(n->notifier);
    u->note.event = store_strdup_opt(n->event);
    u->note.subject = store_strdup_opt(n->subject);
    u->note.last_error = store_strdup_opt(n->last_error);
    return n->instance && n->notifier ? 0 : -EINVAL;
}

int store_req_set_note_list(store_req_args_t *u, int limit)
{
    u->notes.limit = limit > 0 ? limit : 200;
    return 0;
}

int store_req_set_heartbeat(store_req_args_t *u, const store_instance_t *inst)
{
    store_instance_t *o = &u->inst.one;
    *o = *inst;
    o->id = store_strdup_opt(inst->id);
    o->hostname = store_strdup_opt(inst->hostname);
    o->version = store_strdup_opt(inst->version);
    o->last_seen = inst->last_seen ? inst->last_seen : cv_now_ms();
    return inst->id ? 0 : -EINVAL;
}
