/* Job endpoints: list and show, trigger, enable/disable, schedule edits, override reset, and the
 * schedule preview. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/tz.h"
#include "http/api_int.h"

#define PREVIEW_MAX 100

typedef struct trigger {
    cv_list_t link;
    uint64_t corr;
    api_req_t *req;
    char *job, *by;
} trigger_t;

static int64_t now_s(void)
{
    return cv_now_ms() / 1000;
}

static char *actor_of(const api_req_t *req)
{
    return auth_principal_actor(req->principal);
}

void api__audit(api_t *a, const api_req_t *req, const char *action, const char *job, int64_t run_id,
                json_t *before, json_t *after)
{
    char *who = actor_of(req);
    char *b = before ? json_dumps(before, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    char *f = after ? json_dumps(after, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    msg_audit_t *m = msg_audit_new(who, action, job, run_id, b, f);
    cv_actor_post(a->store, &m->hdr);
    cv_info("http", "%s by %s: job=%s%s%s", action, who, job ? job : "-", f ? " after=" : "",
            f ? f : "");
    free(who);
    free(b);
    free(f);
    json_decref(before);
    json_decref(after);
}

/* The job named by the {name} parameter, or NULL after a 404. */
static api__job_t *req_job(api_t *a, api_req_t *req)
{
    const char *name = api_req_param(req, "name");
    api__job_t *j = api__job_find(a, name);
    if (j == NULL) {
        char *msg = cv_sprintf("no job named \"%s\"", name ? name : "");
        api_reply_error(req, 404, "not_found", msg);
        free(msg);
    }
    return j;
}

static bool refuse_locked(api__job_t *j, api_req_t *req)
{
    if (!j->cfg->locked)
        return false;
    char *msg = cv_sprintf("job \"%s\" is locked in the configuration: runtime changes are "
                           "not allowed",
                           j->name);
    api_reply_error(req, 423, "locked", msg);
    free(msg);
    return true;
}

/* ---- reads ---- */

/* The query of GET /api/jobs, validated. */
typedef struct jobs_query {
    size_t limit;
    const char *cursor, *q, *tag; /* NULL: none */
    unsigned status;              /* bit per run_status_t, bit RUN__COUNT for NEVER; 0: any */
    int enabled;                  /* -1: any */
} jobs_query_t;

#define STATUS_NEVER (1u << RUN__COUNT)

/* Parses the comma-separated status list into q->status. Returns 0, or -EINVAL with the bad
 * name in bad. */
static int parse_statuses(const char *text, jobs_query_t *q, char *bad, size_t badlen)
{
    char *copy = cv_strdup(text), *save = NULL;
    int rc = 0;
    for (char *t = strtok_r(copy, ",", &save); t != NULL && rc == 0;
         t = strtok_r(NULL, ",", &save)) {
        run_status_t st;
        if (strcmp(t, "NEVER") == 0)
            q->status |= STATUS_NEVER;
        else if (run_status_parse(t, &st) == 0)
            q->status |= 1u << st;
        else {
            snprintf(bad, badlen, "%s", t);
            rc = -EINVAL;
        }
    }
    free(copy);
    return rc == 0 && q->status == 0 ? -EINVAL : rc;
}

/* Reads and checks the query; on an error replies 400 (what and which parameter) and returns
 * -EINVAL. */
static int jobs_query(api_req_t *req, jobs_query_t *q)
{
    *q = (jobs_query_t){.limit = API_JOBS_PAGE, .enabled = -1};
    const char *limit = api_req_query(req, "limit"), *enabled = api_req_query(req, "enabled");
    const char *status = api_req_query(req, "status");
    char *end = NULL, bad[64] = "";
    if (limit != NULL) {
        long n = strtol(limit, &end, 10);
        if (*limit == '\0' || *end != '\0' || n < 1 || n > API_JOBS_PAGE_MAX) {
            api_reply_error(req, 400, "bad_request", "limit must be an integer from 1 to 1000");
            return -EINVAL;
        }
        q->limit = (size_t)n;
    }
    if (enabled != NULL) {
        if (strcmp(enabled, "true") != 0 && strcmp(enabled, "false") != 0) {
            api_reply_error(req, 400, "bad_request", "enabled must be true or false");
            return -EINVAL;
        }
        q->enabled = strcmp(enabled, "true") == 0;
    }
    if (status != NULL && parse_statuses(status, q, bad, sizeof(bad)) != 0) {
        char *msg = cv_sprintf("status: \"%s\" is not a run status (a comma-separated list of "
                               "SUCCESS, PARTIAL, FAILED, TIMED_OUT, CANCELLED, ABANDONED, "
                               "RUNNING, QUEUED, SKIPPED, NEVER)",
                               bad);
        api_reply_error(req, 400, "bad_request", msg);
        free(msg);
        return -EINVAL;
    }
    const char *v;
    q->cursor = (v = api_req_query(req, "cursor")) && *v ? v : NULL;
    q->q = (v = api_req_query(req, "q")) && *v ? v : NULL;
    q->tag = (v = api_req_query(req, "tag")) && *v ? v : NULL;
    return 0;
}

/* What the dashboard shows as the job's state: RUNNING while a run is, else the last run's
 * status, else QUEUED while one waits, else NEVER (as a bit of jobs_query_t.status). */
static unsigned job_state_bits(const api__job_t *j)
{
    unsigned bits = 0;
    if (j->running > 0)
        bits |= 1u << RUN_RUNNING;
    if (j->queued > 0)
        bits |= 1u << RUN_QUEUED;
    if (j->last != NULL)
        bits |= 1u << j->last->status;
    else if (bits == 0)
        bits |= STATUS_NEVER;
    return bits;
}

static bool contains_nocase(const char *hay, const char *needle)
{
    if (hay == NULL)
        return false;
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    return false;
}

static bool job_matches(const api__job_t *j, const jobs_query_t *q)
{
    if (q->enabled >= 0 && api__job_enabled(j) != (q->enabled == 1))
        return false;
    if (q->status != 0 && (job_state_bits(j) & q->status) == 0)
        return false;
    if (q->q != NULL && !contains_nocase(j->name, q->q) && !contains_nocase(j->cfg->title, q->q))
        return false;
    if (q->tag != NULL) {
        bool has = false;
        for (unsigned i = 0; i < j->cfg->n_tags && !has; i++)
            has = strcmp(j->cfg->tags[i], q->tag) == 0;
        if (!has)
            return false;
    }
    return true;
}

/* The first job (by name) after cursor: jobs_sorted[i] with name > cursor. */
static size_t after_cursor(api__job_t **sorted, size_t n, const char *cursor)
{
    size_t lo = 0, hi = n;
    while (cursor != NULL && lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(sorted[mid]->name, cursor) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Encodes the page q asks for into e (its body, bytes and until). */
static void jobs_page_build(api_t *a, const jobs_query_t *q, int64_t now, api__jobs_page_t *e)
{
    api__job_t **sorted = api__jobs_sorted(a);
    json_t *arr = json_array();
    size_t total = 0, shown = 0;
    const char *last = NULL;
    bool more = false;
    int64_t until = INT64_MAX;
    size_t from = after_cursor(sorted, a->njobs, q->cursor);
    for (size_t i = 0; i < a->njobs; i++) {
        api__job_t *j = sorted[i];
        if (!job_matches(j, q))
            continue;
        total++;
        if (i < from)
            continue;
        if (shown == q->limit) {
            more = true;
            continue;
        }
        json_array_append_new(arr, api__job_json(a, j, now));
        shown++;
        last = j->name;
        if (j->eff.next < until)
            until = j->eff.next;
    }
    json_t *body =
        json_pack("{s:o,s:o,s:I}", "jobs", arr, "next_cursor",
                  more && last ? json_string(last) : json_null(), "total", (json_int_t)total);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    e->bytes = strlen(text);
    e->body = api_shared_body_new(text, e->bytes);
    e->until = until;
}

static char *jobs_key(const jobs_query_t *q)
{
    return cv_sprintf("%zu\x1f%s\x1f%s\x1f%s\x1f%x\x1f%d", q->limit, q->cursor ? q->cursor : "",
                      q->q ? q->q : "", q->tag ? q->tag : "", q->status, q->enabled);
}

static void jobs_cache_drop(api_t *a, api__jobs_page_t *e)
{
    free(e->key);
    api_shared_body_unref(e->body);
    a->jobs_cache_bytes -= e->bytes;
    a->njobs_cache--;
    *e = (api__jobs_page_t){0};
}

/* A free entry of the cache with room for bytes more, made by dropping pages in turn. */
static api__jobs_page_t *jobs_cache_room(api_t *a, size_t bytes)
{
    while (a->njobs_cache > 0 && (a->njobs_cache == a->jobs_cache_max ||
                                  a->jobs_cache_bytes + bytes > a->jobs_cache_bytes_max)) {
        api__jobs_page_t *e = &a->jobs_cache[a->jobs_cache_next];
        a->jobs_cache_next = (a->jobs_cache_next + 1) % a->jobs_cache_max;
        if (e->key != NULL)
            jobs_cache_drop(a, e);
    }
    for (size_t i = 0;; i++)
        if (a->jobs_cache[i].key == NULL)
            return &a->jobs_cache[i];
}

/* The page for q with a reference for the caller: the cached one, or one built when missing or
 * past its next fire, then kept when it fits in server.jobs_cache_bytes (pages are dropped in
 * turn to make room). */
static api_shared_body_t *jobs_page(api_t *a, const jobs_query_t *q, int64_t now)
{
    if (a->jobs_cache_max == 0) { /* no configuration applied yet */
        a->jobs_cache_max = API_JOBS_CACHE;
        a->jobs_cache_bytes_max = API_JOBS_CACHE_BYTES;
        a->jobs_cache = cv_calloc(a->jobs_cache_max, sizeof(*a->jobs_cache));
    }
    char *key = jobs_key(q);
    api__jobs_page_t *e = NULL, built = {0};
    for (size_t i = 0; i < a->jobs_cache_max && e == NULL; i++)
        if (a->jobs_cache[i].key != NULL && strcmp(a->jobs_cache[i].key, key) == 0)
            e = &a->jobs_cache[i];
    if (e != NULL && now < e->until) {
        free(key);
        a->jobs_cache_hits++;
        api_shared_body_ref(e->body);
        return e->body;
    }
    a->jobs_cache_misses++;
    if (e != NULL)
        jobs_cache_drop(a, e);
    jobs_page_build(a, q, now, &built);
    if (built.bytes >= API_JOBS_TRIM_BYTES)
        cv_trim(); /* the page's JSON tree (several times its text) was freed */
    if (built.bytes > a->jobs_cache_bytes_max) {
        free(key);
        return built.body;
    }
    e = jobs_cache_room(a, built.bytes);
    *e = built;
    e->key = key;
    a->njobs_cache++;
    a->jobs_cache_bytes += e->bytes;
    api_shared_body_ref(e->body);
    return e->body;
}

static void h_jobs(api_req_t *req, void *data)
{
    api_t *a = data;
    jobs_query_t q;
    if (jobs_query(req, &q) != 0)
        return;
    if (!api__stats_fresh(a, req, h_jobs))
        return;
    api_shared_body_t *body = jobs_page(a, &q, now_s());
    api_header_t cc = {"cache-control", "no-cache"};
    api_reply_shared(req, "application/json", body, &cc, 1);
    api_shared_body_unref(body);
}

static void h_job(api_req_t *req, void *data)
{
    api_t *a = data;
    if (!api__stats_fresh(a, req, h_job))
        return;
    api__job_t *j = req_job(a, req);
    if (j)
        api_reply_json(req, 200, api__job_json(a, j, now_s()));
}

/* ---- trigger ---- */

static void trigger_free(trigger_t *t)
{
    cv_list_remove(&t->link);
    free(t->job);
    free(t->by);
    free(t);
}

static void h_trigger(api_req_t *req, void *data)
{
    api_t *a = data;
    api__job_t *j = req_job(a, req);
    if (j == NULL)
        return;
    if (a->executor == NULL) {
        api_reply_error(req, 503, "unavailable", "the executor is not running");
        return;
    }
    if (j->cfg->action == CFG_ACTION_PING) {
        char *msg = cv_sprintf("job '%s' runs elsewhere and reports by POST /ping/%s; it cannot "
                               "be run from here",
                               j->name, j->name);
        api_reply_error(req, 409, "ping_job", msg);
        free(msg);
        return;
    }
    trigger_t *t = cv_calloc(1, sizeof(*t));
    t->corr = ++a->next_corr;
    t->req = req;
    t->job = cv_strdup(j->name);
    t->by = actor_of(req);
    cv_list_insert_tail(&a->triggers, &t->link);
    msg_fire_t *f = msg_fire_new(j->name, t->by, cv_now_ms());
    f->reply_to = a->actor;
    f->corr = t->corr;
    cv_actor_post(a->executor, &f->hdr);
    api_req_defer(req);
}

static void trigger_answer(api_t *a, trigger_t *t, const msg_fire_reply_t *r)
{
    const char *why = r->reason ? r->reason : "refused";
    switch (r->outcome) {
    case FIRE_ACCEPTED: {
        api__audit(a, t->req, "run.trigger", t->job, r->run_id, NULL,
                   json_pack("{s:I}", "run_id", (json_int_t)r->run_id));
        api_reply_json(t->req, 202,
                       json_pack("{s:I,s:s,s:s}", "run_id", (json_int_t)r->run_id, "status",
                                 run_status_name(r->status), "job", t->job));
        break;
    }
    case FIRE_SKIPPED:
        api__audit(a, t->req, "run.trigger_refused", t->job, r->run_id, NULL,
                   json_pack("{s:s}", "reason", why));
        api_reply_error(t->req, 409, "conflict", why);
        break;
    case FIRE_UNKNOWN:
        api_reply_error(t->req, 404, "not_found", why);
        break;
    case FIRE_SHUTTING:
        api_reply_error(t->req, 503, "shutting_down", why);
        break;
    }
}

void api__trigger_replied(api_t *a, const msg_fire_reply_t *r)
{
    for (cv_list_t *n = a->triggers.next; n != &a->triggers; n = n->next) {
        trigger_t *t = cv_container_of(n, trigger_t, link);
        if (t->corr == r->corr) {
            trigger_answer(a, t, r);
            trigger_free(t);
            return;
        }
    }
}

void api__triggers_abort(api_t *a)
{
    while (!cv_list_empty(&a->triggers)) {
        trigger_t *t = cv_container_of(a->triggers.next, trigger_t, link);
        api_reply_error(t->req, 503, "shutting_down", "the daemon is shutting down");
        trigger_free(t);
    }
}

/* ---- enable / disable ---- */

static void post_override(api_t *a, const api_req_t *req, const char *job, const char *field,
                          json_t *value)
{
    char *text = value ? json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    char *by = actor_of(req);
    msg_override_t *o = msg_override_new(job, field, text, by);
    cv_actor_post(a->store, &o->hdr);
    if (a->executor) { /* it runs what the API shows (core/effjob.h) */
        o = msg_override_new(job, field, text, by);
        cv_actor_post(a->executor, &o->hdr);
    }
    api__model_override(a, job, field, text, by);
    free(text);
    free(by);
}

static void set_enabled(api_req_t *req, api_t *a, bool enabled)
{
    api__job_t *j = req_job(a, req);
    if (j == NULL || refuse_locked(j, req))
        return;
    bool before = api__job_enabled(j);
    json_t *v = json_boolean(enabled);
    post_override(a, req, j->name, "enabled", v);
    json_decref(v);
    if (a->scheduler) {
        msg_job_enable_t *m = msg_job_enable_new(j->name, enabled);
        cv_actor_post(a->scheduler, &m->hdr);
    }
    api__audit(a, req, enabled ? "job.enable" : "job.disable", j->name, 0,
               json_pack("{s:b}", "enabled", before), json_pack("{s:b}", "enabled", enabled));
    api__publish_job(a, j);
    api_reply_json(req, 200, api__job_json(a, j, now_s()));
}

static void h_enable(api_req_t *req, void *data)
{
    set_enabled(req, data, true);
}

static void h_disable(api_req_t *req, void *data)
{
    set_enabled(req, data, false);
}

/* ---- schedules ---- */

/* Parses schedule and zone; on an error replies 422 and returns -EINVAL. */
static int check_schedule(api_req_t *req, const char *schedule, const char *zone_name,
                          const char *seed, cron_expr_t **expr, const tz_zone_t **zone)
{
    char err[192];
    cron_error_t cerr = {0};
    *zone = tz_load(zone_name, err, sizeof(err));
    if (*zone == NULL) {
        api_reply_json(req, 422,
                       json_pack("{s:{s:s,s:o,s:s}}", "error", "code", "invalid_timezone",
                                 "message", api__jstr(err), "field", "timezone"));
        return -EINVAL;
    }
    if (cron_parse(schedule, seed, expr, &cerr) != 0) {
        api_reply_json(req, 422,
                       json_pack("{s:{s:s,s:o,s:i,s:s}}", "error", "code", "invalid_schedule",
                                 "message", api__jstr(cerr.message), "column", cerr.column, "field",
                                 cerr.field ? cerr.field : ""));
        return -EINVAL;
    }
    return 0;
}

static json_t *next_fires(const cron_expr_t *e, const tz_zone_t *z, int count)
{
    json_t *arr = json_array();
    int64_t t = now_s();
    for (int i = 0; i < count && cron_next(e, z, t, &t) == 0; i++)
        json_array_append_new(arr, api__jtime(t * 1000));
    return arr;
}

static const char *body_string(api_req_t *req, const char *key)
{
    return json_string_value(json_object_get(req->json, key));
}

/* 400 unless the body is a JSON object with a string "schedule" and, when it has a "timezone",
 * a string there (a number or null must not fall back to another zone unnoticed). */
static bool need_schedule_body(api_req_t *req)
{
    if (!json_is_object(req->json) || body_string(req, "schedule") == NULL) {
        api_reply_error(req, 400, "bad_request",
                        "the body must be a JSON object with a string \"schedule\"");
        return false;
    }
    json_t *zone = json_object_get(req->json, "timezone");
    if (zone && !json_is_string(zone)) {
        api_reply_error(req, 400, "bad_request",
                        "\"timezone\" must be a string: an IANA time zone name such as "
                        "\"Europe/Stockholm\"");
        return false;
    }
    return true;
}

static void tell_scheduler(api_t *a, api__job_t *j)
{
    if (a->scheduler == NULL)
        return;
    msg_job_schedule_t *m = msg_job_schedule_new(j->name, api__job_schedule(j),
                                                 api__job_timezone(j), api__job_enabled(j));
    cv_actor_post(a->scheduler, &m->hdr);
}

static json_t *schedule_pair(api__job_t *j)
{
    return json_pack("{s:s,s:s}", "schedule", api__job_schedule(j), "timezone",
                     api__job_timezone(j));
}

static void h_schedule(api_req_t *req, void *data)
{
    api_t *a = data;
    api__job_t *j = req_job(a, req);
    if (j == NULL || refuse_locked(j, req) || !need_schedule_body(req))
        return;
    const char *schedule = body_string(req, "schedule");
    const char *zone_text = body_string(req, "timezone");
    cron_expr_t *e = NULL;
    const tz_zone_t *z;
    if (check_schedule(req, schedule, zone_text ? zone_text : api__job_timezone(j), j->name, &e,
                       &z) != 0)
        return;
    json_t *before = schedule_pair(j);
    json_t *v = json_string(schedule);
    post_override(a, req, j->name, "schedule", v);
    json_decref(v);
    if (zone_text) {
        v = json_string(zone_text);
        post_override(a, req, j->name, "timezone", v);
        json_decref(v);
    }
    tell_scheduler(a, j);
    api__audit(a, req, "job.schedule", j->name, 0, before, schedule_pair(j));
    api__publish_job(a, j);
    api_reply_json(
        req, 200,
        json_pack("{s:o,s:o}", "job", api__job_json(a, j, now_s()), "next", next_fires(e, z, 5)));
    cron_free(e);
}

static void h_reset(api_req_t *req, void *data)
{
    api_t *a = data;
    api__job_t *j = req_job(a, req);
    if (j == NULL)
        return;
    json_t *before = json_object();
    for (size_t i = 0; i < CV_ARRAY_SIZE(effjob_fields); i++) {
        const char *v = effjob_overrides_get(&a->overrides, j->name, effjob_fields[i]);
        json_t *jv = v ? json_loads(v, JSON_DECODE_ANY, NULL) : NULL;
        json_object_set_new(before, effjob_fields[i], jv ? jv : json_null());
    }
    for (size_t i = 0; i < CV_ARRAY_SIZE(effjob_fields); i++)
        post_override(a, req, j->name, effjob_fields[i], NULL);
    tell_scheduler(a, j);
    api__audit(a, req, "job.overrides_reset", j->name, 0, before, schedule_pair(j));
    api__publish_job(a, j);
    api_reply_json(req, 200, api__job_json(a, j, now_s()));
}

static void h_preview(api_req_t *req, void *data)
{
    if (!need_schedule_body(req))
        return;
    json_t *jc = json_object_get(req->json, "count");
    int count = json_is_integer(jc) ? (int)json_integer_value(jc) : 5;
    if (jc && (!json_is_integer(jc) || count < 1 || count > PREVIEW_MAX)) {
        api_reply_error(req, 400, "bad_request", "\"count\" must be an integer from 1 to 100");
        return;
    }
    const char *zone_text = body_string(req, "timezone");
    const char *seed = body_string(req, "job");
    cron_expr_t *e = NULL;
    const tz_zone_t *z;
    if (check_schedule(req, body_string(req, "schedule"), zone_text ? zone_text : "UTC", seed, &e,
                       &z) != 0)
        return;
    static const char *const kinds[] = {"", "cron", "every", "reboot", "manual"};
    api_reply_json(req, 200,
                   json_pack("{s:s,s:s,s:o}", "kind", kinds[cron_kind(e)], "timezone",
                             tz_zone_name(z), "next", next_fires(e, z, count)));
    cron_free(e);
}

int api__routes_jobs(api_t *a)
{
    const api_route_t routes[] = {
        {"GET", "/api/jobs", h_jobs, a, AUTH_ROLE_VIEWER, 0},
        {"GET", "/api/jobs/{name}", h_job, a, AUTH_ROLE_VIEWER, 0},
        {"POST", "/api/jobs/{name}/trigger", h_trigger, a, AUTH_ROLE_OPERATOR,
         API_ROUTE_RATE_LIMITED},
        {"POST", "/api/jobs/{name}/enable", h_enable, a, AUTH_ROLE_OPERATOR, 0},
        {"POST", "/api/jobs/{name}/disable", h_disable, a, AUTH_ROLE_OPERATOR, 0},
        {"PUT", "/api/jobs/{name}/schedule", h_schedule, a, AUTH_ROLE_ADMIN, API_ROUTE_JSON_BODY},
        {"DELETE", "/api/jobs/{name}/overrides", h_reset, a, AUTH_ROLE_ADMIN, 0},
        {"POST", "/api/schedule/preview", h_preview, a, AUTH_ROLE_VIEWER, API_ROUTE_JSON_BODY},
    };
    return api_server_routes(a->srv, routes, CV_ARRAY_SIZE(routes));
}
