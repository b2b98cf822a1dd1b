/* Pings of monitored jobs (`ping:`): POST /ping/{job}, /ping/{job}/start, /ping/{job}/fail.
 *
 * Not an API token: the caller presents the job's own ping key (Authorization: Bearer <key> or
 * X-Ping-Key: <key>). Keys are compared as SHA-256 digests with CRYPTO_memcmp, and an unknown job
 * is compared against a dummy digest, so that neither the answer (404 for both) nor its timing
 * tells which jobs exist. An accepted ping becomes a MSG_PING to the executor, which records the
 * run; the answer (202) does not wait for it. The pings accepted whose MSG_PING_DONE has not come
 * back (with a shared store, those waiting for the database) are at most limits.ping_queue: past
 * it a ping is refused (429 ping_queue_full), so that none accepted is dropped. */
#include "http/api_int.h"
#include "http/api_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define DIGEST_LEN 32

static void digest(const char *s, size_t len, unsigned char out[DIGEST_LEN])
{
    unsigned int n = DIGEST_LEN;
    if (EVP_Digest(s, len, out, &n, EVP_sha256(), NULL) != 1 || n != DIGEST_LEN)
        abort(); /* OpenSSL without SHA-256: nothing works */
}

/* The presented key (not NUL-terminated) in *key, *len; false when none. */
static bool presented_key(api_req_t *req, const char **key, size_t *len)
{
    const char *v = api_req_header(req, "x-ping-key");
    if (v == NULL) {
        v = api_req_header(req, "authorization");
        if (v == NULL || strncasecmp(v, "Bearer ", 7) != 0)
            return false;
        v += 7;
    }
    while (*v == ' ')
        v++;
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    *key = v;
    *len = n;
    return n > 0;
}

/* The configured monitored job whose key req presents, or NULL (then answered 404). */
static api__job_t *authorized_job(api_t *a, api_req_t *req)
{
    const char *name = api_req_param(req, "job");
    api__job_t *j = name ? api__job_find(a, name) : NULL;
    const char *conf = j && j->cfg && j->cfg->action == CFG_ACTION_PING ? j->cfg->ping.key : NULL;
    const char *key = NULL;
    size_t len = 0;
    bool given = presented_key(req, &key, &len);
    unsigned char want[DIGEST_LEN], got[DIGEST_LEN];
    digest(conf ? conf : "\x01no such job", conf ? strlen(conf) : 12, want);
    digest(given ? key : "", given ? len : 0, got);
    int diff = CRYPTO_memcmp(want, got, DIGEST_LEN);
    OPENSSL_cleanse(want, sizeof(want));
    OPENSSL_cleanse(got, sizeof(got));
    if (diff != 0 || conf == NULL || !given) {
        a->ping_refused_key++;
        api_reply_error(req, 404, "not_found",
                        "no monitored job of that name accepts this ping key (give the job's "
                        "key as Authorization: Bearer <key> or X-Ping-Key: <key>)");
        return NULL;
    }
    return j;
}

/* Takes one ping from j's bucket (limits.pings_per_minute, as many at once). */
static bool rate_take(api_t *a, api__job_t *j, uint64_t now_ms)
{
    double per_min = (double)a->cfg->cfg->limits.pings_per_minute;
    if (!j->ping_bucket_started) {
        j->ping_bucket_started = true;
        j->ping_tokens = per_min;
        j->ping_refill_ms = now_ms;
    }
    if (now_ms > j->ping_refill_ms) {
        j->ping_tokens += (double)(now_ms - j->ping_refill_ms) * per_min / 60000.0;
        if (j->ping_tokens > per_min)
            j->ping_tokens = per_min;
        j->ping_refill_ms = now_ms;
    }
    if (j->ping_tokens < 1.0)
        return false;
    j->ping_tokens -= 1.0;
    return true;
}

/* Parses a count ("items_processed", "items_failed") from the query or, for a JSON object body,
 * from it. Returns 0 (*out -1 when absent) or -EINVAL. */
static int count_field(api_req_t *req, json_t *body, const char *name, int64_t *out)
{
    *out = -1;
    const char *q = api_req_query(req, name);
    if (q != NULL) {
        char *end;
        errno = 0;
        long long v = strtoll(q, &end, 10);
        if (q[0] == '\0' || *end != '\0' || errno != 0 || v < 0)
            return -EINVAL;
        *out = v;
        return 0;
    }
    json_t *v = body ? json_object_get(body, name) : NULL;
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -EINVAL;
    *out = (int64_t)json_integer_value(v);
    return 0;
}

static void ping(api_req_t *req, api_t *a, ping_kind_t kind)
{
    api__job_t *j = authorized_job(a, req);
    if (j == NULL)
        return;
    int64_t max = a->cfg->cfg->limits.ping_max_body;
    if ((int64_t)req->body_len > max) {
        a->ping_refused_size++;
        char *msg = cv_sprintf("the ping body has %zu bytes; limits.ping_max_body is %lld",
                               req->body_len, (long long)max);
        api_reply_error(req, 413, "body_too_large", msg);
        free(msg);
        return;
    }
    /* before the rate: a ping refused here does not use up the job's budget */
    int queue = a->cfg->cfg->limits.ping_queue;
    if (a->pings_waiting >= (size_t)queue) {
        a->ping_refused_queue++;
        char *msg = cv_sprintf("%zu pings already wait to be recorded (limits.ping_queue is %d); "
                               "this one was not accepted: send it again",
                               a->pings_waiting, queue);
        api_header_t h = {"retry-after", "1"};
        api__reply_error_with(req, 429, "ping_queue_full", msg, &h, 1);
        free(msg);
        return;
    }
    if (!rate_take(a, j, (uint64_t)cv_now_ms())) {
        a->ping_refused_rate++;
        char *msg = cv_sprintf("more than %d pings a minute for job '%s' (limits.pings_per_minute)",
                               a->cfg->cfg->limits.pings_per_minute, j->name);
        api_header_t h = {"retry-after", "60"};
        api__reply_error_with(req, 429, "rate_limited", msg, &h, 1);
        free(msg);
        return;
    }
    json_t *body = NULL;
    const char *ctype = api_req_header(req, "content-type");
    if (req->body_len > 0 && ctype && strncasecmp(ctype, "application/json", 16) == 0)
        body = json_loadb(req->body, req->body_len, 0, NULL);
    if (body != NULL && !json_is_object(body)) {
        json_decref(body);
        body = NULL;
    }
    int64_t processed, failed;
    int rc = count_field(req, body, "items_processed", &processed);
    if (rc == 0)
        rc = count_field(req, body, "items_failed", &failed);
    json_decref(body);
    if (rc != 0) {
        api_reply_error(req, 400, "bad_request",
                        "items_processed and items_failed must be non-negative integers");
        return;
    }
    msg_ping_t *m = msg_ping_new(j->name, kind, cv_now_ms(), req->body, req->body_len);
    m->items_processed = processed;
    m->items_failed = failed;
    m->reply_to = a->actor;
    a->pings_waiting++;
    cv_actor_post(a->executor, &m->hdr);
    api_reply_json(
        req, 202,
        json_pack("{s:b,s:s,s:s}", "ok", 1, "job", j->name, "ping", ping_kind_name(kind)));
}

static void h_ping(api_req_t *req, void *data)
{
    ping(req, data, PING_SUCCESS);
}

static void h_ping_start(api_req_t *req, void *data)
{
    ping(req, data, PING_START);
}

static void h_ping_fail(api_req_t *req, void *data)
{
    ping(req, data, PING_FAIL);
}

int api__routes_ping(api_t *a)
{
    /* AUTH_ROLE_NONE: the ping key is the credential, checked by the handler */
    const api_route_t routes[] = {
        {"POST", "/ping/{job}", h_ping, a, AUTH_ROLE_NONE, 0},
        {"POST", "/ping/{job}/start", h_ping_start, a, AUTH_ROLE_NONE, 0},
        {"POST", "/ping/{job}/fail", h_ping_fail, a, AUTH_ROLE_NONE, 0},
    };
    return api_server_routes(a->srv, routes, CV_ARRAY_SIZE(routes));
}
