/* The outage spool's records, shared by the backends: each write that cannot reach the database
 * (PostgreSQL unreachable; SQLite refusing writes) becomes one JSON object in the spool file
 * (storage/spool.h) and is read back into a request of the same kind when the database returns. */
#include "storage/store_pg_int.h"

#include "core/log.h"

#include <errno.h>
#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* True for the writes kept for later when the database cannot take them: run inserts and updates,
 * the abandon-stale sweep, override set/delete, audit appends. */
static bool store_req_spoolable(store_op_t op)
{
    switch (op) {
    case STORE_OP_INSERT_RUN:
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

bool store_pg__spoolable(const store_pg_req_t *r)
{
    return store_req_spoolable(r->op) && !(r->op == STORE_OP_INSERT_RUN && r->nospool);
}

static json_t *jstr(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* A spooled run: one key per field of the table (proto/run.h), named as the C member; the
 * status as its number. */
static json_t *run_json(const run_t *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(r->id));
    for (size_t i = 0; i < RUN_NPARAMS; i++) {
        const run_field_t *f = &run_fields[i];
        json_t *v;
        switch (f->kind) {
        case RUN_K_I64:
            v = json_integer(*RUN_FIELD_CPTR(r, f, int64_t));
            break;
        case RUN_K_INT:
            v = json_integer(*RUN_FIELD_CPTR(r, f, int));
            break;
        case RUN_K_STATUS:
            v = json_integer((int)*RUN_FIELD_CPTR(r, f, run_status_t));
            break;
        case RUN_K_DBL:
            v = json_real(*RUN_FIELD_CPTR(r, f, double));
            break;
        default:
            v = jstr(*RUN_FIELD_CPTR(r, f, char *));
        }
        json_object_set_new(o, f->name, v);
    }
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
    r->refs = 1;
    r->id = gi(o, "id");
    for (size_t i = 0; i < RUN_NPARAMS; i++) {
        const run_field_t *f = &run_fields[i];
        const char *k = f->name;
        switch (f->kind) {
        case RUN_K_I64:
            *RUN_FIELD_PTR(r, f, int64_t) = gi(o, k);
            break;
        case RUN_K_INT:
            *RUN_FIELD_PTR(r, f, int) = (int)gi(o, k);
            break;
        case RUN_K_STATUS: {
            int64_t st = gi(o, k);
            *RUN_FIELD_PTR(r, f, run_status_t) =
                st >= 0 && st < RUN__COUNT ? (run_status_t)st : RUN_FAILED;
            break;
        }
        case RUN_K_DBL:
            *RUN_FIELD_PTR(r, f, double) = json_number_value(json_object_get(o, k));
            break;
        default:
            *RUN_FIELD_PTR(r, f, char *) = gs(o, k);
        }
    }
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

char *store_req_spool_encode(store_op_t op, const store_req_args_t *u, const char *key,
                             const char *retry_key, size_t *len)
{
    if (!store_req_spoolable(op))
        return NULL;
    json_t *o = json_object();
    json_object_set_new(o, "op", json_string(op_names[op]));
    switch (op) {
    case STORE_OP_INSERT_RUN:
    case STORE_OP_UPDATE_RUN:
        json_object_set_new(o, "run", run_json(u->run));
        if (key)
            json_object_set_new(o, "key", json_string(key));
        if (retry_key)
            json_object_set_new(o, "retry_key", json_string(retry_key));
        break;
    case STORE_OP_ABANDON:
        json_object_set_new(o, "instance", jstr(u->abandon.instance));
        json_object_set_new(o, "reason", jstr(u->abandon.reason));
        break;
    case STORE_OP_OV_SET:
    case STORE_OP_OV_DELETE: {
        const store_override_t *ov = &u->ov.ov;
        json_object_set_new(o, "job", jstr(ov->job));
        json_object_set_new(o, "field", jstr(ov->field));
        json_object_set_new(o, "value", jstr(ov->value));
        json_object_set_new(o, "updated_at", json_integer(ov->updated_at));
        json_object_set_new(o, "updated_by", jstr(ov->updated_by));
        break;
    }
    case STORE_OP_AUDIT_APPEND: {
        const store_audit_t *a = &u->audit;
        json_object_set_new(o, "at", json_integer(a->at));
        json_object_set_new(o, "actor", jstr(a->actor));
        json_object_set_new(o, "action", jstr(a->action));
        json_object_set_new(o, "job", jstr(a->job));
        json_object_set_new(o, "run_id", json_integer(a->run_id));
        json_object_set_new(o, "before", jstr(a->before));
        json_object_set_new(o, "after", jstr(a->after));
        if (key)
            json_object_set_new(o, "key", json_string(key));
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

int store_req_spool_decode(const char *data, size_t len, store_op_t *opp, store_req_args_t *u,
                           char **key, char **retry_key)
{
    json_error_t jerr;
    json_t *o = json_loadb(data, len, 0, &jerr);
    const char *op = json_string_value(json_object_get(o, "op"));
    bool found = false;
    *key = *retry_key = NULL;
    memset(u, 0, sizeof(*u));
    for (size_t i = 0; op && i < CV_ARRAY_SIZE(op_names) && !found; i++) {
        found = op_names[i] != NULL && strcmp(op_names[i], op) == 0;
        if (found)
            *opp = (store_op_t)i;
    }
    if (!found) {
        json_decref(o);
        return -EINVAL;
    }
    bool ok = true;
    switch (*opp) {
    case STORE_OP_INSERT_RUN:
    case STORE_OP_UPDATE_RUN:
        u->run = run_from(json_object_get(o, "run"));
        *key = gs(o, "key");
        *retry_key = gs(o, "retry_key");
        ok = u->run != NULL;
        break;
    case STORE_OP_ABANDON:
        u->abandon.instance = gs(o, "instance");
        u->abandon.reason = gs(o, "reason");
        ok = u->abandon.reason != NULL;
        break;
    case STORE_OP_OV_SET:
    case STORE_OP_OV_DELETE: {
        store_override_t *ov = &u->ov.ov;
        ov->job = gs(o, "job");
        ov->field = gs(o, "field");
        ov->value = gs(o, "value");
        ov->updated_at = gi(o, "updated_at");
        ov->updated_by = gs(o, "updated_by");
        ok = ov->job && ov->field && (*opp == STORE_OP_OV_DELETE || ov->value);
        break;
    }
    case STORE_OP_AUDIT_APPEND: {
        store_audit_t *a = &u->audit;
        a->at = gi(o, "at");
        a->actor = gs(o, "actor");
        a->action = gs(o, "action");
        a->job = gs(o, "job");
        a->run_id = gi(o, "run_id");
        a->before = gs(o, "before");
        a->after = gs(o, "after");
        *key = gs(o, "key");
        ok = a->actor && a->action;
        break;
    }
    default:
        ok = false;
    }
    json_decref(o);
    if (!ok) {
        store_req_args_free(*opp, u, 0);
        free(*key);
        free(*retry_key);
        *key = *retry_key = NULL;
        return -EINVAL;
    }
    return 0;
}

char *store_pg__spool_encode(const store_pg_req_t *r, size_t *len)
{
    if (!store_pg__spoolable(r))
        return NULL;
    return store_req_spool_encode(r->op, &r->u, r->key, r->retry_key, len);
}

store_pg_req_t *store_pg__spool_decode(const char *data, size_t len)
{
    store_pg_req_t *r = cv_calloc(1, sizeof(*r));
    if (store_req_spool_decode(data, len, &r->op, &r->u, &r->key, &r->retry_key) < 0) {
        free(r);
        return NULL;
    }
    return r;
}
