/* JSON encodings of runs and jobs. Times are RFC 3339 UTC strings with milliseconds (null when
 * unknown); durations are integer milliseconds. Secrets are redacted from every free text. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "http/api_int.h"

json_t *api__jstrn(const char *s, size_t len)
{
    size_t n;
    char *raw = cv_strndup(s, len);
    char *red = cv_secret_redact(raw);
    char *clean = cv_utf8_clean(red, strlen(red), &n);
    json_t *j = json_stringn(clean, n);
    free(raw);
    free(red);
    free(clean);
    return j ? j : json_string("");
}

json_t *api__jstr(const char *s)
{
    return s ? api__jstrn(s, strlen(s)) : json_null();
}

json_t *api__jtime(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    char buf[40];
    cv_format_utc_ms(ms, buf, sizeof(buf));
    return json_string(buf);
}

int api__parse_time(const char *s, int64_t *ms)
{
    int64_t sec;
    if (s == NULL || cv_parse_rfc3339(s, &sec) != 0)
        return -EINVAL;
    *ms = sec * 1000;
    return 0;
}

static json_t *summary_json(const char *text)
{
    json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    return v ? v : json_null();
}

/* A run's API object: one key per field of the table (proto/run.h), shaped by its json kind. */
json_t *api__run_json(const run_t *r, bool with_output)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(r->id));
    for (size_t i = 0; i < RUN_NPARAMS; i++) {
        const run_field_t *f = &run_fields[i];
        if (f->json_kind == RUN_J_OUTPUT && !with_output)
            continue;
        json_t *v;
        switch (f->kind) {
        case RUN_K_STATUS:
            v = json_string(run_status_name(*RUN_FIELD_CPTR(r, f, run_status_t)));
            break;
        case RUN_K_TEXT: {
            const char *t = *RUN_FIELD_CPTR(r, f, char *);
            if (f->json_kind == RUN_J_JSONTEXT)
                v = summary_json(t);
            else
                v = api__jstr(f->json_kind == RUN_J_OUTPUT && t == NULL ? "" : t);
            break;
        }
        case RUN_K_DBL: {
            double d = *RUN_FIELD_CPTR(r, f, double);
            v = f->json_kind == RUN_J_NNULL && d < 0 ? json_null() : json_real(d);
            break;
        }
        default: {
            int64_t n =
                f->kind == RUN_K_INT ? *RUN_FIELD_CPTR(r, f, int) : *RUN_FIELD_CPTR(r, f, int64_t);
            if (f->json_kind == RUN_J_TIME)
                v = api__jtime(n);
            else if ((f->json_kind == RUN_J_ZNULL && n == 0) ||
                     (f->json_kind == RUN_J_NNULL && n < 0))
                v = json_null();
            else
                v = json_integer(n);
        }
        }
        json_object_set_new(o, f->json, v);
    }
    return o;
}

static json_t *last_run_json(const api__last_t *r)
{
    if (r == NULL)
        return json_null();
    return json_pack("{s:I,s:s,s:o,s:I,s:I,s:I,s:o}", "id", (json_int_t)r->id, "status",
                     run_status_name(r->status), "started_at", api__jtime(r->started_at),
                     "duration_ms", (json_int_t)r->duration_ms, "items_processed",
                     (json_int_t)r->items_processed, "items_failed", (json_int_t)r->items_failed,
                     "error", r->error ? api__jstr(r->error) : json_null());
}

static json_t *stats_json(const store_job_stats_t *s)
{
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:f,s:f,s:I,s:I,s:i}", "runs", (json_int_t)s->runs,
                     "successes", (json_int_t)s->successes, "partials", (json_int_t)s->partials,
                     "failures", (json_int_t)s->failures, "consecutive_failures",
                     (json_int_t)s->consecutive_failures, "success_rate", s->success_rate,
                     "avg_duration_ms", s->avg_duration_ms, "p95_duration_ms",
                     (json_int_t)s->p95_duration_ms, "duration_samples",
                     (json_int_t)s->duration_samples, "window", API_STATS_WINDOW);
}

static const char *action_name(cfg_action_t a)
{
    return a == CFG_ACTION_HTTP   ? "http"
           : a == CFG_ACTION_ARGV ? "argv"
           : a == CFG_ACTION_PING ? "ping"
                                  : "shell";
}

static const char *concurrency_name(cfg_concurrency_t c)
{
    return c == CFG_CONC_ALLOW ? "allow" : c == CFG_CONC_REPLACE ? "replace" : "forbid";
}

static json_t *strings_json(char **v, unsigned n)
{
    json_t *arr = json_array();
    for (unsigned i = 0; i < n; i++)
        json_array_append_new(arr, api__jstr(v[i]));
    return arr;
}

/* What the job does: the command (secrets redacted) or, for HTTP, method and header names only
 * (URLs and header values often carry credentials). */
static json_t *action_json(const cfg_job_t *c)
{
    json_t *o = json_pack("{s:s}", "type", action_name(c->action));
    if (c->action == CFG_ACTION_SHELL)
        json_object_set_new(o, "command", api__jstr(c->shell));
    else if (c->action == CFG_ACTION_ARGV)
        json_object_set_new(o, "argv", strings_json(c->argv, c->argc));
    else if (c->action == CFG_ACTION_PING) { /* never the key */
        char *url = cv_sprintf("/ping/%s", c->name);
        json_object_set_new(o, "ping_url", json_string(url));
        json_object_set_new(o, "grace_ms", json_integer((json_int_t)c->ping.grace_ms));
        free(url);
    } else {
        json_t *names = json_array();
        for (unsigned i = 0; i < c->http.n_headers; i++)
            json_array_append_new(names, api__jstr(c->http.headers[i].key));
        json_object_set_new(o, "method", api__jstr(c->http.method));
        json_object_set_new(o, "header_names", names);
    }
    return o;
}

static json_t *overridden_json(const api__job_t *j)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < CV_ARRAY_SIZE(effjob_fields); i++)
        if (j->eff.overridden & (1u << i))
            json_array_append_new(arr, json_string(effjob_fields[i]));
    return arr;
}

json_t *api__job_json(api_t *a, api__job_t *j, int64_t now)
{
    const cfg_job_t *c = j->cfg;
    int64_t next = api__job_next(a, j, now);
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(j->name));
    json_object_set_new(o, "title", api__jstr(c->title));
    json_object_set_new(o, "description", api__jstr(c->description));
    json_object_set_new(o, "schedule", api__jstr(api__job_schedule(j)));
    json_object_set_new(o, "schedule_human", api__jstr(c->schedule_human));
    json_object_set_new(o, "timezone", api__jstr(api__job_timezone(j)));
    json_object_set_new(o, "enabled", json_boolean(api__job_enabled(j)));
    json_object_set_new(o, "locked", json_boolean(c->locked));
    json_object_set_new(o, "overridden", overridden_json(j));
    json_object_set_new(o, "config",
                        json_pack("{s:o,s:o,s:b}", "schedule", api__jstr(c->schedule), "timezone",
                                  api__jstr(c->timezone), "enabled", c->enabled));
    json_object_set_new(o, "next_fire", next == INT64_MAX ? json_null() : api__jtime(next * 1000));
    json_object_set_new(o, "running", json_integer(j->running));
    json_object_set_new(o, "queued", json_integer(j->queued));
    json_object_set_new(o, "last_run", last_run_json(j->last));
    json_object_set_new(o, "stats", stats_json(&j->stats));
    json_object_set_new(o, "action", action_json(c));
    json_object_set_new(o, "concurrency", json_string(concurrency_name(c->concurrency)));
    json_object_set_new(o, "on_store_outage",
                        json_string(c->on_store_outage == CFG_OUTAGE_RUN ? "run" : "skip"));
    json_object_set_new(o, "timeout_ms", json_integer(c->timeout_ms));
    json_object_set_new(o, "retries", json_integer(c->retries.max));
    json_object_set_new(o, "tags", strings_json(c->tags, c->n_tags));
    json_object_set_new(o, "requires", strings_json(c->requires, c->n_requires));
    json_object_set_new(o, "chains",
                        json_pack("{s:o,s:o,s:o}", "on_success",
                                  strings_json(c->on_success, c->n_on_success), "on_failure",
                                  strings_json(c->on_failure, c->n_on_failure), "on_complete",
                                  strings_json(c->on_complete, c->n_on_complete)));
    return o;
}
