#include "actors/result_proto.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What one accepted line asks for; filled by validation, applied only if every key is valid. */
typedef struct change {
    bool set_processed, set_failed, has_progress;
    int64_t processed, processed_add, failed, failed_add;
    double progress;
    json_t *summary; /* borrowed from the parsed line */
    const char *message;
    size_t message_len;
} change_t;

void result_proto_init(result_proto_t *rp, const result_proto_callbacks_t *cbs)
{
    memset(rp, 0, sizeof(*rp));
    rp->values.progress = -1;
    if (cbs)
        rp->cbs = *cbs;
    rp->line_no = 1;
}

void result_proto_free(result_proto_t *rp)
{
    free(rp->values.summary_json);
    rp->values.summary_json = NULL;
    cv_buf_free(&rp->line);
}

void result_proto_values_copy(result_values_t *dst, const result_values_t *src)
{
    *dst = *src;
    dst->summary_json = src->summary_json ? cv_strdup(src->summary_json) : NULL;
}

static int reject(result_proto_t *rp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int reject(result_proto_t *rp, const char *fmt, ...)
{
    rp->values.errors++;
    if (rp->cbs.on_error) {
        va_list ap;
        va_start(ap, fmt);
        char *what = cv_vsprintf(fmt, ap);
        va_end(ap);
        char *msg = cv_sprintf("result line %llu: %s", (unsigned long long)rp->line_no, what);
        rp->cbs.on_error(rp->cbs.data, msg);
        free(msg);
        free(what);
    }
    return -EINVAL;
}

static int64_t sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    return a + b;
}

/* Reads a non-negative integer; 0 on success, -EINVAL otherwise. */
static int get_count(json_t *v, int64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -EINVAL;
    *out = json_integer_value(v);
    return 0;
}

/* Validates one key of a line into c. Returns 0 or the result of reject(). */
static int check_key(result_proto_t *rp, const char *key, json_t *v, change_t *c)
{
    if (strcmp(key, "items_processed") == 0 || strcmp(key, "items_failed") == 0 ||
        strcmp(key, "items_processed_add") == 0 || strcmp(key, "items_failed_add") == 0) {
        bool failed = key[6] == 'f', add = strstr(key, "_add") != NULL;
        int64_t n;
        if (get_count(v, &n) < 0)
            return reject(rp, "\"%s\" must be a non-negative integer", key);
        int64_t *dst = failed ? (add ? &c->failed_add : &c->failed)
                              : (add ? &c->processed_add : &c->processed);
        *dst = add ? sat_add(*dst, n) : n;
        if (!add)
            *(failed ? &c->set_failed : &c->set_processed) = true;
    } else if (strcmp(key, "progress") == 0) {
        if (!json_is_number(v) || !(json_number_value(v) >= 0 && json_number_value(v) <= 1))
            return reject(rp, "\"progress\" must be a number between 0 and 1");
        c->progress = json_number_value(v);
        c->has_progress = true;
    } else if (strcmp(key, "summary") == 0) {
        if (!json_is_object(v))
            return reject(rp, "\"summary\" must be a JSON object");
        c->summary = v;
    } else if (strcmp(key, "message") == 0) {
        if (!json_is_string(v))
            return reject(rp, "\"message\" must be a string");
        c->message = json_string_value(v);
        c->message_len = json_string_length(v);
    } else {
        return reject(rp,
                      "unknown key \"%.40s\" (known: items_processed, items_failed, "
                      "items_processed_add, items_failed_add, progress, summary, message)",
                      key);
    }
    return 0;
}

/* Applies a validated change. Returns true when a counter, the progress or the summary changed. */
static bool apply(result_proto_t *rp, const change_t *c, char *summary)
{
    result_values_t *v = &rp->values;
    if (c->set_processed)
        v->items_processed = c->processed;
    if (c->set_failed)
        v->items_failed = c->failed;
    v->items_processed = sat_add(v->items_processed, c->processed_add);
    v->items_failed = sat_add(v->items_failed, c->failed_add);
    if (c->has_progress)
        v->progress = c->progress;
    if (summary) {
        free(v->summary_json);
        v->summary_json = summary;
    }
    v->lines++;
    return c->set_processed || c->set_failed || c->processed_add || c->failed_add ||
           c->has_progress || summary;
}

/* Parses and applies one complete line (no newline). Blank lines are ignored. Returns 0, or
 * -EINVAL after calling on_error and counting the error; a rejected line changes no value (a line
 * is applied entirely or not at all). */
static int result_proto_apply_line(result_proto_t *rp, const char *line, size_t len)
{
    int rc = 0;
    json_t *root = NULL;
    char *summary = NULL;
    change_t c = {0};
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        len--;
    size_t skip = 0;
    while (skip < len && (line[skip] == ' ' || line[skip] == '\t'))
        skip++;
    if (skip == len)
        goto out; /* blank line */
    if (len > RESULT_PROTO_LINE_MAX) {
        rc = reject(rp, "line longer than %d bytes", RESULT_PROTO_LINE_MAX);
        goto out;
    }
    json_error_t err;
    root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &err);
    if (root == NULL) {
        /* jansson quotes the offending token ("... near 'x'"): keep only its description, so
         * that no value of the job's (a secret, maybe) reaches the log. */
        char *near = strstr(err.text, " near ");
        if (near)
            *near = '\0';
        rc = reject(rp, "not JSON (%s at column %d)", err.text, err.column);
        goto out;
    }
    if (!json_is_object(root)) {
        rc = reject(rp, "expected a JSON object such as {\"items_processed\": 10}");
        goto out;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        if ((rc = check_key(rp, key, val, &c)) < 0)
            goto out;
    }
    if (c.summary) {
        summary = json_dumps(c.summary, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (summary == NULL || strlen(summary) > RESULT_PROTO_SUMMARY_MAX) {
            rc = reject(rp, "\"summary\" longer than %d bytes", RESULT_PROTO_SUMMARY_MAX);
            goto out;
        }
    }
    bool changed = apply(rp, &c, summary);
    summary = NULL; /* owned by values now */
    if (c.message && rp->cbs.on_message)
        rp->cbs.on_message(rp->cbs.data, c.message, c.message_len);
    if (changed && rp->cbs.on_update)
        rp->cbs.on_update(rp->cbs.data, &rp->values);
out:
    free(summary);
    json_decref(root);
    rp->line_no++;
    return rc;
}

void result_proto_feed(result_proto_t *rp, const char *data, size_t len)
{
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t)(nl - data) : len;
        if (!rp->overflow) {
            if (rp->line.len + n > RESULT_PROTO_LINE_MAX) {
                rp->overflow = true;
                cv_buf_reset(&rp->line);
            } else {
                cv_buf_append(&rp->line, data, n);
            }
        }
        if (nl == NULL)
            return;
        if (rp->overflow) {
            reject(rp, "line longer than %d bytes", RESULT_PROTO_LINE_MAX);
            rp->line_no++;
            rp->overflow = false;
        } else {
            result_proto_apply_line(rp, rp->line.data ? rp->line.data : "", rp->line.len);
        }
        cv_buf_reset(&rp->line);
        data += n + 1;
        len -= n + 1;
    }
}

void result_proto_finish(result_proto_t *rp)
{
    if (rp->overflow || rp->line.len > 0)
        result_proto_feed(rp, "\n", 1);
    cv_buf_free(&rp->line);
}
