/* PostgreSQL backend: the outage spool's records. Each write made while the database is
 * unreachable becomes one JSON object in the spool file (storage/spool.h) and is read back into
 * a request of the same kind when the connection returns. */
#include "storage/store_pg_int.h"

#include "core/log.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

bool store_pg__spoolable(const store_pg_req_t *r)
{
    switch (r->op) {
    case STORE_OP_INSERT_RUN:
        return !r->nospool;
    case STORE_OP_UPDATE_RUN:
    case STORE_OP_ABANDON:
    case STORE_OP_OV_SET:
    case STORE_OP_OV_DELETE:
    case STORE_OP_AUDIT_APPEND:
        return true;
    default: /* reads, claims, heartbeats, sweeps and retention make no sense later */
        return false;
    }
}

static json_t *jstr(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *run_json(const run_t *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(r->id));
    json_object_set_new(o, "job", jstr(r->job));
    json_object_set_new(o, "status", json_integer(r->status));
    json_object_set_new(o, "trigger", jstr(r->trigger));
    json_object_set_new(o, "scheduled_for", json_integer(r->scheduled_for));
    json_object_set_new(o, "queued_at", json_integer(r->queued_at));
    json_object_set_new(o, "started_at", json_integer(r->started_at));
    json_object_set_new(o, "finished_at", json_integer(r->finished_at));
    json_object_set_new(o, "duration_ms", json_integer(r->duration_ms));
    json_object_set_new(o, "attempt", json_integer(r->attempt));
    json_object_set_new(o, "retry_of", json_integer(r->retry_of));
    json_object_set_new(o, "exit_code", json_integer(r->exit_code));
    json_object_set_new(o, "signal", json_integer(r->signal));
    json_object_set_new(o, "items_processed", json_integer(r->items_processed));
    json_object_set_new(o, "items_failed", json_integer(r->items_failed));
    json_object_set_new(o, "progress", json_real(r->progress));
    json_object_set_new(o, "summary_json", jstr(r->summary_json));
    json_object_set_new(o, "error", jstr(r->error));
    json_object_set_new(o, "output_tail", jstr(r->output_tail));
    json_object_set_new(o, "output_bytes", json_integer(r->output_bytes));
    json_object_set_new(o, "max_rss_kb", json_integer(r->max_rss_kb));
    json_object_set_new(o, "cpu_user_ms", json_integer(r->cpu_user_ms));
    json_object_set_new(o, "cpu_sys_ms", json_integer(r->cpu_sys_ms));
    json_object_set_new(o, "instance", jstr(r->instance));
    return o;
}

static int64_t gi(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static char *gs(const json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? cv_strdup(v) : NULL;
}

static run_t *run_from(const json_t *o)
{
    if (!json_is_object(o))
        return NULL;
    run_t *r = cv_calloc(1, sizeof(*r));
    r->id = gi(o, "id");
    r->job = gs(o, "job");
    int64_t st = gi(o, "status");
    r->status = st >= 0 && st < RUN__COUNT ? (run_status_t)st : RUN_FAILED;
    r->trigger = gs(o, "trigger");
    r->scheduled_for = gi(o, "scheduled_for");
    r->queued_at = gi(o, "queued_at");
    r->started_at = gi(o, "started_at");
    r->finished_at = gi(o, "finished_at");
    r->duration_ms = gi(o, "duration_ms");
    r->attempt = (int)gi(o, "attempt");
    r->retry_of = gi(o, "retry_of");
    r->exit_code = (int)gi(o, "exit_code");
    r->signal = (int)gi(o, "signal");
    r->items_processed = gi(o, "items_processed");
    r->items_failed = gi(o, "items_failed");
    r->progress = json_number_value(json_object_get(o, "progress"));
    r->summary_json = gs(o, "summary_json");
    r->error = gs(o, "error");
    r->output_tail = gs(o, "output_tail");
    r->output_bytes = gi(o, "output_bytes");
    r->max_rss_kb = gi(o, "max_rss_kb");
    r->cpu_user_ms = gi(o, "cpu_user_ms");
    r->cpu_sys_ms = gi(o, "cpu_sys_ms");
    r->instance = gs(o, "instance");
    if (r->job == NULL || r->trigger == NULL) {
        run_free(r);
        return NULL;
    }
    return r;
}

static const char *const op_names[] = {
    [STORE_OP_INSERT_RUN] = "insert_run",     [STORE_OP_UPDATE_RUN] = "update_run",
    [STORE_OP_ABANDON] = "abandon",           [STORE_OP_OV_SET] = "override_set",
    [STORE_OP_OV_DELETE] = "override_delete", [STORE_OP_AUDIT_APPEND] = "audit_append",
};

char *store_pg__spool_encode(const store_pg_req_t *r, size_t *len)
{
    if (!store_pg__spoolable(r))
        return NULL;
    json_t *o = json_object();
    json_object_set_new(o, "op", json_string(op_names[r->op]));
    switch (r->op) {
    case STORE_OP_INSERT_RUN:
    case STORE_OP_UPDATE_RUN:
        json_object_set_new(o, "run", run_json(r->u.run));
        if (r->key)
            json_object_set_new(o, "key", json_string(r->key));
        if (r->retry_key)
            json_object_set_new(o, "retry_key", json_string(r->retry_key));
        break;
    case STORE_OP_ABANDON:
        json_object_set_new(o, "instance", jstr(r->u.abandon.instance));
        json_object_set_new(o, "reason", jstr(r->u.abandon.reason));
        break;
    case STORE_OP_OV_SET:
    case STORE_OP_OV_DELETE: {
        const store_override_t *ov = &r->u.ov.ov;
        json_object_set_new(o, "job", jstr(ov->job));
        json_object_set_new(o, "field", jstr(ov->field));
        json_object_set_new(o, "value", jstr(ov->value));
        json_object_set_new(o, "updated_at", json_integer(ov->updated_at));
        json_object_set_new(o, "updated_by", jstr(ov->updated_by));
        break;
    }
    case STORE_OP_AUDIT_APPEND: {
        const store_audit_t *a = &r->u.audit;
        json_object_set_new(o, "at", json_integer(a->at));
        json_object_set_new(o, "actor", jstr(a->actor));
        json_object_set_new(o, "action", jstr(a->action));
        json_object_set_new(o, "job", jstr(a->job));
        json_object_set_new(o, "run_id", json_integer(a->run_id));
        json_object_set_new(o, "before", jstr(a->before));
        json_object_set_new(o, "after", jstr(a->after));
        if (r->key)
            json_object_set_new(o, "key", json_string(r->key));
        break;
    }
    default:
        break;
    }
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    *len = text ? strlen(text) : 0;
    return text;
}

store_pg_req_t *store_pg__spool_decode(const char *data, size_t len)
{
    json_error_t jerr;
    json_t *o = json_loadb(data, len, 0, &jerr);
    const char *op = json_string_value(json_object_get(o, "op"));
    store_pg_req_t *r = NULL;
    for (size_t i = 0; op && i < CV_ARRAY_SIZE(op_names); i++) {
        if (op_names[i] == NULL || strcmp(op_names[i], op) != 0)
            continue;
        r = cv_calloc(1, sizeof(*r));
        r->op = (store_op_t)i;
        break;
    }
    if (r == NULL) {
        json_decref(o);
        return NULL;
    }
    bool ok = true;
    switch (r->op) {
    case STORE_OP_INSERT_RUN:
    case STORE_OP_UPDATE_RUN:
        r->u.run = run_from(json_object_get(o, "run"));
        r->key = gs(o, "key");
        r->retry_key = gs(o, "retry_key");
        ok = r->u.run != NULL;
        break;
    case STORE_OP_ABANDON:
        r->u.abandon.instance = gs(o, "instance");
        r->u.abandon.reason = gs(o, "reason");
        ok = r->u.abandon.reason != NULL;
        break;
    case STORE_OP_OV_SET:
    case STORE_OP_OV_DELETE: {
        store_override_t *ov = &r->u.ov.ov;
        ov->job = gs(o, "job");
        ov->field = gs(o, "field");
        ov->value = gs(o, "value");
        ov->updated_at = gi(o, "updated_at");
        ov->updated_by = gs(o, "updated_by");
        ok = ov->job && ov->field && (r->op == STORE_OP_OV_DELETE || ov->value);
        break;
    }
    case STORE_OP_AUDIT_APPEND: {
        store_audit_t *a = &r->u.audit;
        a->at = gi(o, "at");
        a->actor = gs(o, "actor");
        a->action = gs(o, "action");
        a->job = gs(o, "job");
        a->run_id = gi(o, "run_id");
        a->before = gs(o, "before");
        a->after = gs(o, "after");
        r->key = gs(o, "key");
        ok = a->actor && a->action;
        break;
    }
    default:
        ok = false;
    }
    json_decref(o);
    if (!ok) {
        store_req_args_free(r->op, &r->u, 0);
        free(r->key);
        free(r->retry_key);
        free(r);
        return NULL;
    }
    return r;
}
