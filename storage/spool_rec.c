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

bool store_req_spoolable(store_op_t op)
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

/* The fields of a spooled run, in one table for writing and reading them back. */
typedef enum { RF_I64, RF_INT, RF_DBL, RF_STR } run_field_type_t;

/* clang-format off */
static const struct {
    const char *name;
    size_t off;
    run_field_type_t type;
} run_fields[] = {
#define RF(field, type) {#field, offsetof(run_t, field), type}
    RF(id, RF_I64),            RF(job, RF_STR),           RF(status, RF_INT),
    RF(trigger, RF_STR),       RF(scheduled_for, RF_I64), RF(queued_at, RF_I64),
    RF(started_at, RF_I64),    RF(finished_at, RF_I64),   RF(duration_ms, RF_I64),
    RF(attempt, RF_INT),       RF(retry_of, RF_I64),      RF(exit_code, RF_INT),
    RF(signal, RF_INT),        RF(items_processed, RF_I64), RF(items_failed, RF_I64),
    RF(progress, RF_DBL),      RF(summary_json, RF_STR),  RF(error, RF_STR),
    RF(output_tail, RF_STR),   RF(output_bytes, RF_I64),  RF(max_rss_kb, RF_I64),
    RF(cpu_user_ms, RF_I64),   RF(cpu_sys_ms, RF_I64),    RF(instance, RF_STR),
#undef RF
};
/* clang-format on */

static json_t *run_json(const run_t *r)
{
    json_t *o = json_object();
    for (size_t i = 0; i < CV_ARRAY_SIZE(run_fields); i++) {
        const char *p = (const char *)r + run_fields[i].off;
        json_t *v;
        switch (run_fields[i].type) {
        case RF_I64:
            v = json_integer(*(const int64_t *)p);
            break;
        case RF_INT:
            v = json_integer(run_fields[i].off == offsetof(run_t, status) ? (int)r->status
                                                                          : *(const int *)p);
            break;
        case RF_DBL:
            v = json_real(*(const double *)p);
            break;
        default:
            v = jstr(*(char *const *)p);
        }
        json_object_set_new(o, run_fields[i].name, v);
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
    for (size_t i = 0; i < CV_ARRAY_SIZE(run_fields); i++) {
        char *p = (char *)r + run_fields[i].off;
        const char *k = run_fields[i].name;
        switch (run_fields[i].type) {
        case RF_I64:
            *(int64_t *)p = gi(o, k);
            break;
        case RF_INT:
            if (run_fields[i].off == offsetof(run_t, status)) {
                int64_t st = gi(o, k);
                r->status = st >= 0 && st < RUN__COUNT ? (run_status_t)st : RUN_FAILED;
            } else {
                *(int *)p = (int)gi(o, k);
            }
            break;
        case RF_DBL:
            *(double *)p = json_number_value(json_object_get(o, k));
            break;
        default:
            *(char **)p = gs(o, k);
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
