/* Configuration: the YAML reader.
 *
 * Three passes. (1) libyaml loads the document as a tree whose nodes know their line and
 * column; a walk guided by the libcyaml schema tables (config_schema.c, the single source of truth
 * for which keys exist, their types and which are required) expands ${} in every scalar, checks
 * keys and types, collects every error, and writes the valid part of the document as JSON
 * (a subset of YAML) with the expanded values. (2) libcyaml loads that JSON into cfg_t.
 * (3) The fields libcyaml cannot express (declared CYAML_FIELD_IGNORE: durations, sizes,
 * commands that are a string or a list, maps, status lists) and the positions are read from
 * the tree, then the shared checks run (config_check.c). */
#include "core/cidr.h"
#include "core/config_int.h"
#include "core/log.h"

#include <cyaml/cyaml.h>
#include <yaml.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WALK_BUDGET 200000

#include "core/cidr.h"
#include "core/config_schema.h"

/* What the walk checks in a CYAML_FIELD_IGNORE field, by key (one meaning per key name). */
typedef enum { SP_NONE, SP_DURATION, SP_SIZE, SP_COMMAND, SP_STRMAP, SP_STATUS } special_t;

static special_t special_of(const char *key)
{
    static const struct {
        const char *key;
        special_t kind;
    } tab[] = {{"timeout", SP_DURATION},
               {"kill_grace", SP_DURATION},
               {"backoff", SP_DURATION},
               {"backoff_max", SP_DURATION},
               {"shutdown_grace", SP_DURATION},
               {"interval", SP_DURATION},
               {"degraded_after", SP_DURATION},
               {"catch_up", SP_DURATION},
               {"heartbeat_timeout", SP_DURATION},
               {"max_output", SP_SIZE},
               {"spool_max", SP_SIZE},
               {"max_body", SP_SIZE},
               {"request_timeout", SP_DURATION},
               {"ws_max_queued_bytes", SP_SIZE},
               {"jobs_cache_bytes", SP_SIZE},
               {"ws_max_message_bytes", SP_SIZE},
               {"output_read_budget", SP_SIZE},
               {"live_log", SP_SIZE},
               {"command", SP_COMMAND},
               {"env", SP_STRMAP},
               {"headers", SP_STRMAP},
               {"expect_status", SP_STATUS}};
    for (size_t i = 0; i < CV_ARRAY_SIZE(tab); i++)
        if (strcmp(tab[i].key, key) == 0)
            return tab[i].kind;
    return SP_NONE;
}

/* ---- the tree ---- */

typedef struct ivec {
    int *v;
    unsigned n;
} ivec_t;

typedef struct yl {
    cfg__ctx_t *c;
    yaml_document_t doc;
    int nnodes;
    char **exp;           /* expanded scalar per node (index - 1) */
    unsigned char *expst; /* 0 not yet, 1 done, 2 failed */
    cv_buf_t json;
    const char *job; /* name of the job being walked, for errors */
    size_t budget;
    bool over_budget;
    ivec_t jobs, probes, notify, tokens;
} yl_t;

static void ivec_push(ivec_t *v, int x)
{
    v->v = cv_realloc(v->v, (v->n + 1) * sizeof(*v->v));
    v->v[v->n++] = x;
}

static yaml_node_t *nd(yl_t *y, int idx)
{
    return idx > 0 ? yaml_document_get_node(&y->doc, idx) : NULL;
}

static cfg_pos_t pos_of(yl_t *y, int idx)
{
    yaml_node_t *n = nd(y, idx);
    cfg_pos_t p = {y->c->file, 1, 1};
    if (n) {
        p.line = (int)n->start_mark.line + 1;
        p.column = (int)n->start_mark.column + 1;
        if (n->type == YAML_SCALAR_NODE &&
            (n->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
             n->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE))
            p.column++;
    }
    return p;
}

static bool is_null(yaml_node_t *n)
{
    if (n == NULL || n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = (const char *)n->data.scalar.value;
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static const char *kind_name(yaml_node_t *n)
{
    return n->type == YAML_MAPPING_NODE    ? "a mapping"
           : n->type == YAML_SEQUENCE_NODE ? "a list"
                                           : "a scalar";
}

/* The expanded value of scalar node idx, or NULL (not a scalar, or expansion failed: reported
 * once). secret: register the values that ${} brought in. */
static const char *sval(yl_t *y, int idx, bool secret)
{
    yaml_node_t *n = nd(y, idx);
    if (n == NULL || n->type != YAML_SCALAR_NODE)
        return NULL;
    if (y->expst[idx - 1] == 0) {
        cfg_pos_t p = pos_of(y, idx);
        int rc = cfg__expand(y->c, (const char *)n->data.scalar.value, secret, p.line, p.column,
                             y->job, &y->exp[idx - 1]);
        y->expst[idx - 1] = rc == 0 ? 1 : 2;
    }
    return y->expst[idx - 1] == 1 ? y->exp[idx - 1] : NULL;
}

/* Value node of key in mapping idx (the first occurrence), or 0; null values count as absent. */
static int map_get(yl_t *y, int idx, const char *key)
{
    yaml_node_t *n = nd(y, idx);
    if (n == NULL || n->type != YAML_MAPPING_NODE)
        return 0;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = nd(y, p->key);
        if (k && k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0)
            return is_null(nd(y, p->value)) ? 0 : p->value;
    }
    return 0;
}

/* ---- JSON output ---- */

/* Writes s as a double-quoted scalar. Characters YAML does not allow unescaped in a stream
 * (C0 and C1 controls, DEL, BOM, U+FFFE/FFFF) and the YAML 1.1 line breaks a quoted scalar
 * would fold (NEL, U+2028, U+2029) are escaped so libcyaml reads back the same string. */
static void json_str(cv_buf_t *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    cv_buf_append(b, "\"", 1);
    while (*p) {
        unsigned cp = *p;
        size_t n = 1;
        if (cp >= 0xc0 && p[1]) {
            n = cp >= 0xf0 ? 4 : cp >= 0xe0 ? 3 : 2;
            cp &= 0xff >> (n + 1);
            for (size_t i = 1; i < n; i++)
                cp = p[i] ? (cp << 6) | (p[i] & 0x3f) : 0;
        }
        if (cp == '"' || cp == '\\')
            cv_buf_printf(b, "\\%c", cp);
        else if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0) || cp == 0x2028 || cp == 0x2029 ||
                 cp == 0xfeff || cp == 0xfffe || cp == 0xffff)
            cv_buf_printf(b, "\\u%04x", cp);
        else
            cv_buf_append(b, p, n);
        for (size_t i = 0; i < n && *p; i++)
            p++;
    }
    cv_buf_append(b, "\"", 1);
}

static void json_truncate(cv_buf_t *b, size_t len)
{
    b->len = len;
    if (b->data)
        b->data[len] = '\0';
}

/* ---- the walk ---- */

static bool walk_value(yl_t *y, int idx, const cyaml_schema_value_t *s, const char *key,
                       const cyaml_schema_field_t *parent, int parent_idx);

static bool is_secret_field(yl_t *y, const cyaml_schema_field_t *parent, int parent_idx,
                            const char *key)
{
    if (parent == cfg__token_fields)
        return strcmp(key, "token") == 0;
    if (parent == cfg__storage_fields)
        return strcmp(key, "postgres") == 0;
    if (parent == cfg__ping_fields)
        return strcmp(key, "key") == 0;
    if (parent == cfg__notify_fields)
        return strcmp(key, "url") == 0;
    if (parent == cfg__probe_fields) {
        if (strcmp(key, "conninfo") == 0)
            return true;
        const char *type = sval(y, map_get(y, parent_idx, "type"), false);
        return strcmp(key, "url") == 0 && type && strcmp(type, "redis") == 0;
    }
    return false;
}

static void list_strings(cv_buf_t *b, const cyaml_strval_t *t, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (t[i].str[0] == '\0')
            continue;
        cv_buf_printf(b, "%s%s", b->len ? ", " : "", t[i].str);
    }
}

static const cyaml_strval_t *find_strval(const cyaml_schema_value_t *s, const char *v)
{
    for (uint32_t i = 0; v[0] && i < s->enumeration.count; i++)
        if (strcmp(s->enumeration.strings[i].str, v) == 0)
            return &s->enumeration.strings[i];
    return NULL;
}

static bool parse_bool(const char *v, bool *out)
{
    static const char *t[] = {"true", "yes", "on"}, *f[] = {"false", "no", "off"};
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(v, t[i]) == 0)
            return *out = true, true;
        if (strcasecmp(v, f[i]) == 0)
            return *out = false, true;
    }
    return false;
}

static bool parse_nonneg_int(const char *v, long long max, long long *out)
{
    long long x = 0;
    if (!isdigit((unsigned char)v[0]))
        return false;
    for (; *v; v++) {
        if (!isdigit((unsigned char)*v) || x > (max - (*v - '0')) / 10)
            return false;
        x = x * 10 + (*v - '0');
    }
    *out = x;
    return true;
}

static void error_at(yl_t *y, int idx, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void error_at(yl_t *y, int idx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = cv_vsprintf(fmt, ap);
    va_end(ap);
    cfg__error_at(y->c, pos_of(y, idx), y->job, "%s", msg);
    free(msg);
}

/* A scalar of a typed field: checked, then written to the JSON in canonical form. */
static bool walk_scalar(yl_t *y, int idx, const cyaml_schema_value_t *s, const char *key,
                        bool secret)
{
    const char *v = sval(y, idx, secret);
    if (v == NULL)
        return false;
    cv_buf_t *b = &y->json;
    long long iv;
    bool bv;
    char *end;
    switch (s->type) {
    case CYAML_STRING:
        if (secret)
            cv_secret_register(v);
        json_str(b, v);
        return true;
    case CYAML_INT:
        if (!parse_nonneg_int(v, INT_MAX, &iv)) {
            error_at(y, idx, "%s: expected a whole number (0 or more), got '%s'", key, v);
            return false;
        }
        cv_buf_printf(b, "%lld", iv);
        return true;
    case CYAML_BOOL:
        if (!parse_bool(v, &bv)) {
            error_at(y, idx, "%s: expected true or false, got '%s'", key, v);
            return false;
        }
        cv_buf_appends(b, bv ? "true" : "false");
        return true;
    case CYAML_FLOAT: {
        double d = strtod(v, &end);
        if (end == v || *end || !isfinite(d) || d <= 0) {
            error_at(y, idx, "%s: expected a positive number, got '%s'", key, v);
            return false;
        }
        cv_buf_printf(b, "%.17g", d);
        return true;
    }
    case CYAML_ENUM:
        if (find_strval(s, v) == NULL) {
            cv_buf_t allowed = {0};
            list_strings(&allowed, s->enumeration.strings, s->enumeration.count);
            error_at(y, idx, "unknown %s value '%s' (allowed: %s)", key, v, allowed.data);
            cv_buf_free(&allowed);
            return false;
        }
        json_str(b, v);
        return true;
    default:
        return false;
    }
}

static bool walk_flags(yl_t *y, int idx, const cyaml_schema_value_t *s, const char *key)
{
    yaml_node_t *n = nd(y, idx);
    if (n->type != YAML_SEQUENCE_NODE) {
        error_at(y, idx, "%s: expected a list, got %s", key, kind_name(n));
        return false;
    }
    cv_buf_append(&y->json, "[", 1);
    bool first = true;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        const char *v = sval(y, *it, false);
        if (v == NULL || find_strval(s, v) == NULL) {
            cv_buf_t allowed = {0};
            list_strings(&allowed, s->enumeration.strings, s->enumeration.count);
            if (nd(y, *it)->type != YAML_SCALAR_NODE || v)
                error_at(y, *it, "%s: unknown value '%s' (allowed: %s)", key, v ? v : "?",
                         allowed.data);
            cv_buf_free(&allowed);
            continue;
        }
        cv_buf_appends(&y->json, first ? "" : ",");
        json_str(&y->json, v);
        first = false;
    }
    cv_buf_append(&y->json, "]", 1);
    return true;
}

static bool walk_sequence(yl_t *y, int idx, const cyaml_schema_value_t *s, const char *key)
{
    yaml_node_t *n = nd(y, idx);
    if (n->type != YAML_SEQUENCE_NODE) {
        error_at(y, idx, "%s: expected a list, got %s", key, kind_name(n));
        return false;
    }
    const cyaml_schema_value_t *e = s->sequence.entry;
    ivec_t *track = e == &cfg__job_entry      ? &y->jobs
                    : e == &cfg__probe_entry  ? &y->probes
                    : e == &cfg__notify_entry ? &y->notify
                    : e == &cfg__token_entry  ? &y->tokens
                                              : NULL;
    cv_buf_append(&y->json, "[", 1);
    bool first = true;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        size_t mark = y->json.len;
        cv_buf_appends(&y->json, first ? "" : ",");
        if (!walk_value(y, *it, e, key, NULL, idx)) {
            json_truncate(&y->json, mark);
            continue;
        }
        first = false;
        if (track)
            ivec_push(track, *it);
    }
    cv_buf_append(&y->json, "]", 1);
    return true;
}

static bool check_strmap(yl_t *y, int idx, const char *key)
{
    yaml_node_t *n = nd(y, idx);
    if (n->type != YAML_MAPPING_NODE) {
        error_at(y, idx, "%s: expected a mapping of names to values, got %s", key, kind_name(n));
        return false;
    }
    bool env = strcmp(key, "env") == 0;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = nd(y, p->key), *v = nd(y, p->value);
        const char *name = k->type == YAML_SCALAR_NODE ? (char *)k->data.scalar.value : NULL;
        bool bad = name == NULL || !*name || strpbrk(name, env ? "= \t\n" : ": \t\n");
        if (bad) {
            error_at(y, p->key, "%s: invalid name", key);
            continue;
        }
        if (v->type != YAML_SCALAR_NODE) {
            error_at(y, p->value, "%s: value of '%s' must be a string, got %s", key, name,
                     kind_name(v));
            continue;
        }
        sval(y, p->value, !env || cfg__secret_env_name(name));
    }
    return true;
}

static void check_item(yl_t *y, int idx, const char *key, special_t sp, bool single)
{
    long long st;
    const char *v = sval(y, idx, false);
    if (v == NULL)
        return;
    if (sp == SP_COMMAND && single && !*v)
        error_at(y, idx, "%s: is empty", key);
    if (sp == SP_STATUS && (!parse_nonneg_int(v, 999, &st) || st < 100 || st > 599))
        error_at(y, idx, "%s: expected an HTTP status (100-599), got '%s'", key, v);
}

/* command (a string or a list of strings), expect_status (a status or a list of them). */
static bool check_list(yl_t *y, int idx, const char *key, special_t sp)
{
    yaml_node_t *n = nd(y, idx);
    const char *what =
        sp == SP_COMMAND ? "a string or a list of strings" : "an HTTP status or a list of them";
    if (n->type == YAML_SCALAR_NODE) {
        check_item(y, idx, key, sp, true);
        return true;
    }
    if (n->type != YAML_SEQUENCE_NODE ||
        n->data.sequence.items.top == n->data.sequence.items.start) {
        error_at(y, idx, "%s: expected %s", key, what);
        return false;
    }
    bool ok = true;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        if (nd(y, *it)->type != YAML_SCALAR_NODE) {
            error_at(y, *it, "%s: expected %s, got a list item that is %s", key, what,
                     kind_name(nd(y, *it)));
            ok = false;
            continue;
        }
        check_item(y, *it, key, sp, false);
    }
    return ok;
}

static bool check_special(yl_t *y, int idx, const char *key)
{
    yaml_node_t *n = nd(y, idx);
    special_t sp = special_of(key);
    int64_t x;
    if (sp == SP_STRMAP)
        return check_strmap(y, idx, key);
    if (sp == SP_COMMAND || sp == SP_STATUS)
        return check_list(y, idx, key, sp);
    if (n->type != YAML_SCALAR_NODE) {
        error_at(y, idx, "%s: expected a %s, got %s", key, sp == SP_SIZE ? "size" : "duration",
                 kind_name(n));
        return false;
    }
    const char *v = sval(y, idx, false);
    if (v && sp == SP_DURATION && cfg_parse_duration(v, &x) < 0)
        error_at(y, idx, "%s: '%s' is not a duration (use e.g. 90s, 5m, 1h30m)", key, v);
    if (v && sp == SP_SIZE && cfg_parse_size(v, &x) < 0)
        error_at(y, idx, "%s: '%s' is not a size (use e.g. 64KiB, 10MB, 1GiB or bytes)", key, v);
    return true;
}

static const char *suggest_key(const cyaml_schema_field_t *fields, const char *key)
{
    const char *best = NULL;
    size_t bestd = SIZE_MAX;
    for (const cyaml_schema_field_t *f = fields; f->key; f++) {
        size_t d = cv_edit_distance(key, f->key);
        if (d < bestd) {
            bestd = d;
            best = f->key;
        }
    }
    size_t limit = strlen(key) / 3 + 1;
    return bestd <= (limit < 2 ? 2 : limit) ? best : NULL;
}

static void placeholder(yl_t *y, const cyaml_schema_field_t *f, bool *first)
{
    if (f->value.type != CYAML_STRING && f->value.type != CYAML_ENUM)
        return;
    cv_buf_appends(&y->json, *first ? "" : ",");
    json_str(&y->json, f->key);
    cv_buf_appends(&y->json, ":\"\"");
    *first = false;
}

/* One key: value pair of a mapping. */
static void walk_pair(yl_t *y, const cyaml_schema_field_t *fields, int map_idx, yaml_node_pair_t *p,
                      bool *seen, bool *first)
{
    yaml_node_t *k = nd(y, p->key);
    if (k->type != YAML_SCALAR_NODE) {
        error_at(y, p->key, "keys must be plain names, got %s", kind_name(k));
        return;
    }
    const char *key = (const char *)k->data.scalar.value;
    const cyaml_schema_field_t *f = fields;
    while (f->key && strcmp(f->key, key) != 0)
        f++;
    if (f->key == NULL) {
        const char *hint = suggest_key(fields, key);
        if (hint)
            error_at(y, p->key, "unknown key '%s' — did you mean '%s'?", key, hint);
        else
            error_at(y, p->key, "unknown key '%s'", key);
        return;
    }
    if (seen[f - fields]) {
        error_at(y, p->key, "duplicate key '%s'", key);
        return;
    }
    seen[f - fields] = true;
    if (is_null(nd(y, p->value))) {
        seen[f - fields] = false;
        return;
    }
    if (f->value.type == CYAML_IGNORE) {
        check_special(y, p->value, key);
        return;
    }
    size_t mark = y->json.len;
    cv_buf_appends(&y->json, *first ? "" : ",");
    json_str(&y->json, key);
    cv_buf_append(&y->json, ":", 1);
    if (walk_value(y, p->value, &f->value, key, fields, map_idx))
        *first = false;
    else
        json_truncate(&y->json, mark);
}

static bool walk_mapping(yl_t *y, int idx, const cyaml_schema_field_t *fields, const char *key)
{
    yaml_node_t *n = nd(y, idx);
    if (n->type != YAML_MAPPING_NODE) {
        if (key)
            error_at(y, idx, "%s: expected a mapping, got %s", key, kind_name(n));
        else
            error_at(y, idx, "expected a mapping of keys to values, got %s", kind_name(n));
        return false;
    }
    const char *saved_job = y->job;
    if (fields == cfg__job_fields)
        y->job = sval(y, map_get(y, idx, "name"), false);
    size_t nf = 0;
    while (fields[nf].key)
        nf++;
    bool *seen = cv_calloc(nf + 1, sizeof(bool)), first = true;
    cv_buf_append(&y->json, "{", 1);
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++)
        walk_pair(y, fields, idx, p, seen, &first);
    for (size_t i = 0; i < nf; i++) {
        if (seen[i] || (fields[i].value.flags & CYAML_FLAG_OPTIONAL))
            continue;
        error_at(y, idx, "missing required key '%s'", fields[i].key);
        placeholder(y, &fields[i], &first);
    }
    cv_buf_append(&y->json, "}", 1);
    free(seen);
    y->job = saved_job;
    return true;
}

static bool walk_value(yl_t *y, int idx, const cyaml_schema_value_t *s, const char *key,
                       const cyaml_schema_field_t *parent, int parent_idx)
{
    if (++y->budget > WALK_BUDGET) {
        if (!y->over_budget)
            error_at(y, idx, "the document is too large (too many nodes or aliases)");
        y->over_budget = true;
        return false;
    }
    yaml_node_t *n = nd(y, idx);
    switch (s->type) {
    case CYAML_MAPPING:
        if (parent == cfg__storage_fields && strcmp(key, "sqlite") == 0 &&
            n->type == YAML_SCALAR_NODE) {
            /* storage.sqlite: ./path, shorthand for {path: ./path} (as postgres: takes a DSN) */
            cv_buf_appends(&y->json, "{\"path\":");
            if (!walk_scalar(y, idx, &s->mapping.fields[0].value, "sqlite", false))
                return false;
            cv_buf_append(&y->json, "}", 1);
            return true;
        }
        return walk_mapping(y, idx, s->mapping.fields, key);
    case CYAML_SEQUENCE:
        return walk_sequence(y, idx, s, key);
    case CYAML_FLAGS:
        return walk_flags(y, idx, s, key);
    default:
        if (n->type != YAML_SCALAR_NODE) {
            error_at(y, idx, "%s: expected a %s, got %s", key,
                     s->type == CYAML_STRING ? "string" : "single value", kind_name(n));
            return false;
        }
        return walk_scalar(y, idx, s, key, parent && is_secret_field(y, parent, parent_idx, key));
    }
}

/* ---- pass 3: what libcyaml does not read, and positions ---- */

static int64_t get_duration(yl_t *y, int map, const char *key)
{
    int64_t ms;
    const char *v = sval(y, map_get(y, map, key), false);
    return v && cfg_parse_duration(v, &ms) == 0 ? ms : CFG__INHERIT;
}

static int64_t get_size(yl_t *y, int map, const char *key)
{
    int64_t n;
    const char *v = sval(y, map_get(y, map, key), false);
    return v && cfg_parse_size(v, &n) == 0 ? n : CFG__INHERIT;
}

static bool get_bool(yl_t *y, int map, const char *key, bool dflt)
{
    bool b;
    const char *v = sval(y, map_get(y, map, key), false);
    return v && parse_bool(v, &b) ? b : dflt;
}

static void get_command(yl_t *y, int idx, char **shell, char ***argv, unsigned *argc)
{
    yaml_node_t *n = nd(y, idx);
    if (n == NULL)
        return;
    if (n->type == YAML_SCALAR_NODE) {
        const char *v = sval(y, idx, false);
        if (v && *v)
            *shell = cv_strdup(v);
        return;
    }
    if (n->type != YAML_SEQUENCE_NODE)
        return;
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    char **v = cv_calloc(cnt + 1, sizeof(*v));
    unsigned k = 0;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        const char *s = sval(y, *it, false);
        if (s)
            v[k++] = cv_strdup(s);
    }
    if (k == 0) {
        free(v);
        return;
    }
    *argv = v;
    *argc = k;
}

static void get_kv(yl_t *y, int idx, cfg_kv_t **out, unsigned *count)
{
    yaml_node_t *n = nd(y, idx);
    if (n == NULL || n->type != YAML_MAPPING_NODE)
        return;
    size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    cfg_kv_t *kv = cv_calloc(cnt + 1, sizeof(*kv));
    unsigned k = 0;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *key = nd(y, p->key);
        const char *v = sval(y, p->value, false);
        if (key->type != YAML_SCALAR_NODE || v == NULL || !*key->data.scalar.value)
            continue;
        kv[k].key = cv_strdup((char *)key->data.scalar.value);
        kv[k++].value = cv_strdup(v);
    }
    *out = kv;
    *count = k;
}

static void get_status(yl_t *y, int idx, int **out, unsigned *count)
{
    yaml_node_t *n = nd(y, idx);
    if (n == NULL)
        return;
    bool one = n->type == YAML_SCALAR_NODE;
    size_t cnt = one ? 1 : (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    int *v = cv_calloc(cnt + 1, sizeof(*v));
    unsigned k = 0;
    for (size_t i = 0; i < cnt; i++) {
        long long st;
        const char *s = sval(y, one ? idx : n->data.sequence.items.start[i], false);
        if (s && parse_nonneg_int(s, 999, &st) && st >= 100 && st <= 599)
            v[k++] = (int)st;
    }
    *out = v;
    *count = k;
}

static void get_retries(yl_t *y, int map, cfg_retries_t *r)
{
    int idx = map_get(y, map, "retries");
    if (!map_get(y, idx, "max"))
        r->max = CFG__INHERIT;
    r->backoff_ms = get_duration(y, idx, "backoff");
    r->backoff_max_ms = get_duration(y, idx, "backoff_max");
}

static cfg_pos_t src_pos(yl_t *y, const cfg_t *cfg, int idx)
{
    cfg_pos_t p = pos_of(y, idx);
    p.file = cfg->source;
    return p;
}

static void check_method(yl_t *y, int map, char *method)
{
    static const char *ok[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
    if (method == NULL)
        return;
    for (char *p = method; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    for (size_t i = 0; i < CV_ARRAY_SIZE(ok); i++)
        if (strcmp(method, ok[i]) == 0)
            return;
    error_at(y, map_get(y, map, "method"),
             "method: unknown HTTP method '%s' (allowed: GET, HEAD, POST, PUT, PATCH, DELETE, "
             "OPTIONS)",
             method);
}

static void finish_job(yl_t *y, const cfg_t *cfg, cfg_job_t *j, int idx)
{
    y->job = sval(y, map_get(y, idx, "name"), false);
    int sched = map_get(y, idx, "schedule");
    j->pos = src_pos(y, cfg, idx);
    j->schedule_pos = sched ? src_pos(y, cfg, sched) : j->pos;
    j->enabled = get_bool(y, idx, "enabled", true);
    j->locked = get_bool(y, idx, "locked", false);
    int cmd = map_get(y, idx, "command"), http = map_get(y, idx, "http");
    int ping = map_get(y, idx, "ping");
    if (ping && (cmd || http))
        error_at(y, cmd ? cmd : http,
                 "a job with ping: runs elsewhere and reports in; remove its %s (or the ping:)",
                 cmd ? "command" : "http call");
    else if (cmd && http)
        error_at(y, http, "set either command or http, not both");
    else if (!cmd && !http && !ping)
        error_at(y, idx, "needs a command or an http call (or ping: for a job run elsewhere)");
    get_command(y, cmd, &j->shell, &j->argv, &j->argc);
    j->action = ping      ? CFG_ACTION_PING
                : http    ? CFG_ACTION_HTTP
                : j->argv ? CFG_ACTION_ARGV
                          : CFG_ACTION_SHELL;
    if (ping) {
        j->ping.grace_ms = get_duration(y, ping, "grace");
        if (j->ping.grace_ms == 0)
            error_at(y, map_get(y, ping, "grace"),
                     "ping.grace must be more than 0 (how late a ping may come, e.g. 5m)");
        if (j->ping.key == NULL || j->ping.key[0] == '\0')
            error_at(y, ping,
                     "ping: needs a key (the secret the job presents to POST /ping/%s; e.g. "
                     "key: ${PING_KEY})",
                     y->job ? y->job : "{job}");
    }
    if (http) {
        get_kv(y, map_get(y, http, "headers"), &j->http.headers, &j->http.n_headers);
        get_status(y, map_get(y, http, "expect_status"), &j->http.expect_status,
                   &j->http.n_expect_status);
        j->http.timeout_ms = get_duration(y, http, "timeout");
        check_method(y, http, j->http.method);
    }
    get_kv(y, map_get(y, idx, "env"), &j->env, &j->n_env);
    j->timeout_ms = get_duration(y, idx, "timeout");
    j->kill_grace_ms = get_duration(y, idx, "kill_grace");
    j->max_output = get_size(y, idx, "max_output");
    j->catch_up_ms = get_duration(y, idx, "catch_up");
    get_retries(y, idx, &j->retries);
    y->job = NULL;
}

static void finish_probe(yl_t *y, const cfg_t *cfg, cfg_probe_t *p, int idx)
{
    p->pos = src_pos(y, cfg, idx);
    p->interval_ms = get_duration(y, idx, "interval");
    p->timeout_ms = get_duration(y, idx, "timeout");
    p->degraded_after_ms = get_duration(y, idx, "degraded_after");
    if (!map_get(y, idx, "fail_after"))
        p->fail_after = CFG__INHERIT;
    p->tls_verify = get_bool(y, idx, "tls_verify", true);
    get_kv(y, map_get(y, idx, "headers"), &p->headers, &p->n_headers);
    get_status(y, map_get(y, idx, "expect_status"), &p->expect_status, &p->n_expect_status);
    get_command(y, map_get(y, idx, "command"), &p->shell, &p->argv, &p->argc);
    check_method(y, idx, p->method);
}

/* auth.proxy: its addresses must parse, and there must be some (a proxy trusted from anywhere
 * would let anyone name themselves). */
static void finish_proxy(yl_t *y, cfg_t *cfg, int root)
{
    int proxy = map_get(y, map_get(y, root, "auth"), "proxy");
    cfg_proxy_t *p = &cfg->auth.proxy;
    if (!proxy)
        return;
    p->pos = src_pos(y, cfg, proxy);
    if (p->default_role == 0)
        p->default_role = CFG_ROLE_VIEWER;
    int from = map_get(y, proxy, "from");
    yaml_node_t *n = nd(y, from);
    if (n == NULL || n->type != YAML_SEQUENCE_NODE ||
        n->data.sequence.items.top == n->data.sequence.items.start) {
        error_at(y, from ? from : proxy,
                 "auth.proxy.from: list the proxy's addresses (e.g. [127.0.0.1/32, ::1/128]); the "
                 "user header is trusted only from them");
        return;
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        cv_cidr_t c;
        const char *v = sval(y, *it, false);
        if (v == NULL || cv_cidr_parse(v, &c) != 0)
            error_at(y, *it,
                     "auth.proxy.from: '%s' is not an address or a CIDR range (e.g. 10.0.0.0/8, "
                     "127.0.0.1, ::1/128; no host bits past the prefix)",
                     v ? v : "");
    }
}

static void finish_tree(yl_t *y, cfg_t *cfg, int root)
{
    int d = map_get(y, root, "defaults");
    cfg->defaults.timeout_ms = get_duration(y, d, "timeout");
    cfg->defaults.kill_grace_ms = get_duration(y, d, "kill_grace");
    cfg->defaults.shutdown_grace_ms = get_duration(y, d, "shutdown_grace");
    cfg->defaults.max_output = get_size(y, d, "max_output");
    cfg->storage.spool_max = get_size(y, map_get(y, root, "storage"), "spool_max");
    int server = map_get(y, root, "server");
    cfg->server.max_body = get_size(y, server, "max_body");
    cfg->server.request_timeout_ms = get_duration(y, server, "request_timeout");
    cfg->server.ws_max_queued_bytes = get_size(y, server, "ws_max_queued_bytes");
    cfg->server.jobs_cache_bytes = get_size(y, server, "jobs_cache_bytes");
    cfg->server.ws_max_message_bytes = get_size(y, server, "ws_max_message_bytes");
    cfg->limits.output_read_budget = get_size(y, map_get(y, root, "limits"), "output_read_budget");
    cfg->limits.ping_max_body = get_size(y, map_get(y, root, "limits"), "ping_max_body");
    cfg->limits.live_log = get_size(y, map_get(y, root, "limits"), "live_log");
    get_retries(y, d, &cfg->defaults.retries);
    cfg->cluster.heartbeat_timeout_ms =
        get_duration(y, map_get(y, root, "cluster"), "heartbeat_timeout");
    if (!map_get(y, map_get(y, root, "retention"), "days"))
        cfg->retention.days = CFG__INHERIT;
    for (unsigned i = 0; i < cfg->n_jobs && i < y->jobs.n; i++)
        finish_job(y, cfg, &cfg->jobs[i], y->jobs.v[i]);
    for (unsigned i = 0; i < cfg->n_probes && i < y->probes.n; i++)
        finish_probe(y, cfg, &cfg->probes[i], y->probes.v[i]);
    for (unsigned i = 0; i < cfg->n_notify && i < y->notify.n; i++)
        cfg->notify[i].pos = src_pos(y, cfg, y->notify.v[i]);
    for (unsigned i = 0; i < cfg->auth.n_tokens && i < y->tokens.n; i++)
        cfg->auth.tokens[i].pos = src_pos(y, cfg, y->tokens.v[i]);
    finish_proxy(y, cfg, root);
}

static cfg_pos_t yaml_where(void *ud, const cfg_t *cfg, unsigned job, const char *key, int item)
{
    yl_t *y = ud;
    int idx = 0;
    if (job == UINT_MAX && strcmp(key, "storage") == 0)
        idx = map_get(y, map_get(y, 1, "storage"), "postgres");
    else if (job == UINT_MAX && strcmp(key, "server.listen") == 0)
        idx = map_get(y, map_get(y, 1, "server"), "listen");
    else if (job == UINT_MAX)
        idx = map_get(y, map_get(y, 1, "defaults"), "timezone");
    else if (job < y->jobs.n) {
        int j = y->jobs.v[job];
        idx = map_get(y, j, key);
        yaml_node_t *n = nd(y, idx);
        if (n && item >= 0 && n->type == YAML_SEQUENCE_NODE &&
            item < n->data.sequence.items.top - n->data.sequence.items.start)
            idx = n->data.sequence.items.start[item];
        if (idx == 0)
            idx = j;
    }
    if (idx == 0)
        return (cfg_pos_t){cfg->source, 1, 1};
    return src_pos(y, cfg, idx);
}

static void *cy_mem(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    return cv_realloc(ptr, size);
}

static int parse_tree(yl_t *y, const char *data, size_t len)
{
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    int ok = yaml_parser_load(&parser, &y->doc);
    if (!ok) {
        yaml_mark_t m = parser.problem_mark;
        cfg__error(y->c, (int)m.line + 1, (int)m.column + 1, NULL, "YAML syntax error: %s%s%s",
                   parser.problem ? parser.problem : "invalid document", parser.context ? " " : "",
                   parser.context ? parser.context : "");
    }
    yaml_parser_delete(&parser);
    return ok ? 0 : -EINVAL;
}

int cfg__load_yaml(cfg__ctx_t *c, const char *data, size_t len, cfg_t **out)
{
    yl_t y = {.c = c};
    cfg_t *cfg = NULL;
    if (parse_tree(&y, data, len) < 0)
        return -EINVAL;
    y.nnodes = (int)(y.doc.nodes.top - y.doc.nodes.start);
    y.exp = cv_calloc((size_t)y.nnodes + 1, sizeof(*y.exp));
    y.expst = cv_calloc((size_t)y.nnodes + 1, 1);
    if (y.nnodes == 0 || !walk_mapping(&y, 1, cfg__top_fields, NULL)) {
        json_truncate(&y.json, 0);
        cv_buf_appends(&y.json, "{}");
    }
    cyaml_config_t cy = {
        .log_fn = NULL, .mem_fn = cy_mem, .log_level = CYAML_LOG_ERROR, .flags = CYAML_CFG_DEFAULT};
    cyaml_err_t err = cyaml_load_data((const uint8_t *)y.json.data, y.json.len, &cy,
                                      &cfg__top_schema, (cyaml_data_t **)&cfg, NULL);
    if (err != CYAML_OK) {
        if (c->nerrors == 0)
            cfg__error(c, 1, 1, NULL, "could not load the configuration (libcyaml: %s)",
                       cyaml_strerror(err));
        cfg = NULL;
    } else {
        cfg->source = cv_strdup(c->file);
        finish_tree(&y, cfg, y.nnodes ? 1 : 0);
        cfg__finish(c, cfg, yaml_where, &y);
    }
    for (int i = 0; i < y.nnodes; i++)
        free(y.exp[i]);
    free(y.exp);
    free(y.expst);
    free(y.jobs.v);
    free(y.probes.v);
    free(y.notify.v);
    free(y.tokens.v);
    cv_buf_free(&y.json);
    yaml_document_delete(&y.doc);
    *out = cfg;
    return cfg ? 0 : -EINVAL;
}
