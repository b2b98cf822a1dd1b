/* The request view handed to handlers and the reply helpers. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "core/log.h"
#include "http/api_internal.h"

struct api_shared_body {
    unsigned refs;
    char *data;
    size_t len;
    char *gz; /* made on first use; NULL before, or when gzip does not make it smaller */
    size_t gz_len;
    bool gz_tried;
    char hex[17];     /* a hash of the bytes */
    char etag[24];    /* "\"<hex>\"" */
    char etag_gz[28]; /* "\"<hex>-gz\"": a strong ETag per content coding */
};

/* The request can no longer be answered: whoever holds its token sees it. */
static void req_end_live(api__req_t *r)
{
    if (r->live != NULL)
        cv_live_end(r->live);
    r->live = NULL;
}

/* Called when h2o clears the request's pool: the request is finished or torn down. */
static void on_pool_dispose(void *p)
{
    api__req_t **slot = p;
    if (*slot != NULL) {
        if ((*slot)->deferred && (*slot)->h2o != NULL && (*slot)->h2o->version >= 0x200)
            api__server_reset((*slot)->pub.server, (*slot)->h2o->conn);
        (*slot)->h2o = NULL;
        (*slot)->slot = NULL;
        req_end_live(*slot);
    }
}

api__req_t *api__req_new(api_server_t *srv, h2o_req_t *h2o, cv_list_t *pending)
{
    api__req_t *r = cv_calloc(1, sizeof(*r));
    r->h2o = h2o;
    r->slot = h2o_mem_alloc_shared(&h2o->pool, sizeof(*r->slot), on_pool_dispose);
    *r->slot = r;
    r->method = cv_strndup(h2o->method.base, h2o->method.len);
    size_t plen = h2o->query_at != SIZE_MAX ? h2o->query_at : h2o->path.len;
    r->path = cv_strndup(h2o->path.base, plen);
    r->body = h2o->entity.base ? cv_strndup(h2o->entity.base, h2o->entity.len) : cv_strdup("");
    r->head = strcmp(r->method, "HEAD") == 0;
    r->pub.method = r->method;
    r->pub.path = r->path;
    r->pub.body = r->body;
    r->pub.body_len = h2o->entity.base ? h2o->entity.len : 0;
    r->pub.principal = &r->principal;
    r->pub.server = srv;
    cv_list_insert_tail(pending, &r->link);
    return r;
}

static void req_free(api__req_t *r)
{
    if (r->deferred)
        api__server_deferred(r->pub.server, -1);
    if (r->replied != NULL)
        *r->replied = true;
    if (r->slot != NULL)
        *r->slot = NULL;
    req_end_live(r);
    cv_list_remove(&r->link);
    api__kvs_free(&r->params);
    api__kvs_free(&r->query);
    api__kvs_free(&r->headers);
    json_decref(r->pub.json);
    free(r->method);
    free(r->path);
    free(r->body);
    free(r);
}

h2o_req_t *api__req_h2o(api_req_t *req)
{
    return ((api__req_t *)req)->h2o;
}

void api__req_consume(api_req_t *req)
{
    req_free((api__req_t *)req);
}

const char *api_req_param(const api_req_t *req, const char *name)
{
    return api__kvs_get(&((const api__req_t *)req)->params, name);
}

const char *api_req_query(const api_req_t *req, const char *name)
{
    return api__kvs_get(&((const api__req_t *)req)->query, name);
}

const char *api_req_header(api_req_t *req, const char *name)
{
    api__req_t *r = (api__req_t *)req;
    if (r->h2o == NULL)
        return NULL;
    char *lower = cv_strdup(name);
    for (char *c = lower; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    ssize_t i = h2o_find_header_by_str(&r->h2o->headers, lower, strlen(lower), -1);
    if (i < 0) {
        free(lower);
        return NULL;
    }
    h2o_iovec_t v = r->h2o->headers.entries[i].value;
    api__kvs_add(&r->headers, lower, cv_strndup(v.base, v.len));
    return r->headers.v[r->headers.n - 1].value;
}

void api_req_defer(api_req_t *req)
{
    api__req_t *r = (api__req_t *)req;
    if (!r->deferred)
        api__server_deferred(req->server, 1);
    r->deferred = true;
}

bool api_req_gone(const api_req_t *req)
{
    return ((const api__req_t *)req)->h2o == NULL;
}

cv_live_t *api_req_live(api_req_t *req)
{
    api__req_t *r = (api__req_t *)req;
    if (r->h2o == NULL) { /* already gone: a token born dead */
        cv_live_t *dead = cv_live_ref(cv_live_new());
        cv_live_end(dead);
        return dead;
    }
    if (r->live == NULL)
        r->live = cv_live_new();
    return cv_live_ref(r->live);
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return status < 400 ? "OK" : "Error";
    }
}

static void add_header(h2o_req_t *h2o, const char *name, const char *value)
{
    h2o_iovec_t n = h2o_strdup(&h2o->pool, name, strlen(name));
    for (size_t i = 0; i < n.len; i++)
        n.base[i] = (char)tolower((unsigned char)n.base[i]);
    h2o_iovec_t v = h2o_strdup(&h2o->pool, value, strlen(value));
    h2o_add_header_by_str(&h2o->pool, &h2o->res.headers, n.base, n.len, 1, NULL, v.base, v.len);
}

/* Sends the response for h2o: the body is copied into its pool, or, when shared (static data
 * that outlives every request, e.g. an embedded asset), sent from where it is, so that a client
 * that does not read pins no copy of it. HEAD gets the same headers, including the length of the
 * body it does not get. */
static void on_hold_dispose(void *p)
{
    api_shared_body_unref(*(api_shared_body_t **)p);
}

static void send_response_ex(h2o_req_t *h2o, int status, const char *content_type, const void *data,
                             size_t len, const api_header_t *extra, size_t nextra, bool shared,
                             api_shared_body_t *hold)
{
    if (hold != NULL) { /* the pool keeps the bytes until h2o is done with the request */
        api_shared_body_t **slot = h2o_mem_alloc_shared(&h2o->pool, sizeof(*slot), on_hold_dispose);
        *slot = hold;
        hold->refs++;
    }
    h2o->res.status = status;
    h2o->res.reason = reason_phrase(status);
    if (content_type != NULL)
        add_header(h2o, "content-type", content_type);
    for (size_t i = 0; i < nextra; i++)
        add_header(h2o, extra[i].name, extra[i].value);
    h2o->res.content_length = len;
    if (!shared) {
        h2o_send_inline(h2o, data, len);
        return;
    }
    static h2o_generator_t gen = {NULL, NULL}; /* final at once: never proceeded nor stopped */
    h2o_iovec_t buf = h2o_iovec_init(data, len);
    h2o_start_response(h2o, &gen);
    h2o_send(h2o, &buf, 1, H2O_SEND_STATE_FINAL);
}

static void send_response(h2o_req_t *h2o, int status, const char *content_type, const void *data,
                          size_t len, const api_header_t *extra, size_t nextra)
{
    send_response_ex(h2o, status, content_type, data, len, extra, nextra, false, NULL);
}

static int reply_ex(api_req_t *req, int status, const char *content_type, const void *data,
                    size_t len, const api_header_t *extra, size_t nextra, bool shared,
                    api_shared_body_t *hold)
{
    api__req_t *r = (api__req_t *)req;
    h2o_req_t *h2o = r->h2o;
    if (h2o == NULL) {
        req_free(r);
        return -ECONNRESET;
    }
    cv_debug("http", "%s %s -> %d", r->method, r->path, status);
    /* Disarm the pool hook first: once sent, h2o may free its request at any time. The data
     * may point into r (a parameter, a header): free r only after the copy into the pool. */
    *r->slot = NULL;
    r->slot = NULL;
    r->h2o = NULL;
    req_end_live(r);
    send_response_ex(h2o, status, content_type, data, len, extra, nextra, shared, hold);
    req_free(r);
    return 0;
}

static int reply(api_req_t *req, int status, const char *content_type, const void *data, size_t len,
                 const api_header_t *extra, size_t nextra)
{
    return reply_ex(req, status, content_type, data, len, extra, nextra, false, NULL);
}

int api_reply_bytes(api_req_t *req, int status, const char *content_type, const void *data,
                    size_t len, const api_header_t *extra, size_t nextra)
{
    return reply(req, status, content_type, data, len, extra, nextra);
}

int api_reply_json(api_req_t *req, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(body);
    int rc = reply(req, status, "application/json", text ? text : "null", text ? strlen(text) : 4,
                   NULL, 0);
    free(text);
    return rc;
}

json_t *api__json_text(const char *s)
{
    size_t n;
    char *clean = cv_utf8_clean(s ? s : "", s ? strlen(s) : 0, &n);
    json_t *j = json_stringn_nocheck(clean, n); /* cv_utf8_clean made it valid */
    free(clean);
    return j;
}

/* {"error": {"code": code, "message": message}}; never NULL, whatever bytes message holds
 * (it often quotes a client's method, path or parameter). */
static json_t *error_body(const char *code, const char *message)
{
    json_t *err = json_object(), *body = json_object();
    json_object_set_new(err, "code", api__json_text(code ? code : "error"));
    json_object_set_new(err, "message", api__json_text(message));
    json_object_set_new(body, "error", err);
    return body;
}

int api__reply_error_with(api_req_t *req, int status, const char *code, const char *message,
                          const api_header_t *extra, size_t nextra)
{
    json_t *body = error_body(code, message);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    int rc = reply(req, status, "application/json", text, strlen(text), extra, nextra);
    free(text);
    return rc;
}

int api_reply_error(api_req_t *req, int status, const char *code, const char *message)
{
    return api__reply_error_with(req, status, code, message, NULL, 0);
}

void api__req_abandon(api__req_t *r, int status, const char *code, const char *message)
{
    h2o_req_t *h2o = r->h2o;
    cv_list_remove(&r->link);
    if (r->deferred) /* the server may be gone when the handler finally replies */
        api__server_deferred(r->pub.server, -1);
    r->deferred = false;
    if (h2o == NULL)
        return;
    *r->slot = NULL;
    r->slot = NULL;
    r->h2o = NULL;
    req_end_live(r);
    json_t *body = error_body(code, message);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    send_response(h2o, status, "application/json", text, strlen(text), NULL, 0);
    free(text);
}

/* True when the comma-separated header value lists token with a non-zero q (if any). */
static bool header_lists(const char *value, const char *token)
{
    size_t tlen = strlen(token);
    for (const char *p = value; p != NULL && *p != '\0'; p = strchr(p, ',')) {
        while (*p == ' ' || *p == ',')
            p++;
        if (strncasecmp(p, token, tlen) != 0 || strchr(" ,;", p[tlen]) == NULL)
            continue;
        const char *q = strstr(p + tlen, "q=");
        const char *next = strchr(p + tlen, ',');
        return q == NULL || (next != NULL && q > next) || strtod(q + 2, NULL) > 0;
    }
    return false;
}

int api_reply_asset(api_req_t *req, const api_asset_t *a)
{
    api_header_t hdrs[4];
    size_t n = 0;
    if (a->etag != NULL)
        hdrs[n++] = (api_header_t){"etag", a->etag};
    if (a->cache_control != NULL)
        hdrs[n++] = (api_header_t){"cache-control", a->cache_control};
    if (a->gz != NULL)
        hdrs[n++] = (api_header_t){"vary", "Accept-Encoding"};
    const char *inm = api_req_header(req, "if-none-match");
    if (a->etag != NULL && inm != NULL && (strcmp(inm, "*") == 0 || strstr(inm, a->etag)))
        return reply(req, 304, NULL, "", 0, hdrs, n);
    const char *ae = api_req_header(req, "accept-encoding");
    if (a->gz != NULL && ae != NULL && header_lists(ae, "gzip")) {
        hdrs[n++] = (api_header_t){"content-encoding", "gzip"};
        return reply_ex(req, 200, a->content_type, a->gz, a->gz_len, hdrs, n, true, NULL);
    }
    return reply_ex(req, 200, a->content_type, a->data, a->len, hdrs, n, true, NULL);
}

/* ---- shared bodies ---- */

api_shared_body_t *api_shared_body_new(char *data, size_t len)
{
    api_shared_body_t *b = cv_calloc(1, sizeof(*b));
    b->refs = 1;
    b->data = data;
    b->len = len;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)data[i]) * 1099511628211ull;
    snprintf(b->hex, sizeof(b->hex), "%016llx", (unsigned long long)h);
    snprintf(b->etag, sizeof(b->etag), "\"%s\"", b->hex);
    snprintf(b->etag_gz, sizeof(b->etag_gz), "\"%s-gz\"", b->hex);
    return b;
}

void api_shared_body_ref(api_shared_body_t *b)
{
    b->refs++;
}

void api_shared_body_unref(api_shared_body_t *b)
{
    if (b == NULL || --b->refs > 0)
        return;
    free(b->data);
    free(b->gz);
    free(b);
}

/* Makes b's gzip variant (RFC 1952) once; keeps none when it is not smaller. */
static void shared_gzip(api_shared_body_t *b)
{
    if (b->gz_tried)
        return;
    b->gz_tried = true;
    z_stream zs = {0};
    if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return;
    size_t cap = deflateBound(&zs, b->len) + 32;
    char *out = cv_malloc(cap);
    zs.next_in = (Bytef *)b->data;
    zs.avail_in = (uInt)b->len;
    zs.next_out = (Bytef *)out;
    zs.avail_out = (uInt)cap;
    int rc = deflate(&zs, Z_FINISH);
    size_t n = cap - zs.avail_out;
    deflateEnd(&zs);
    if (rc != Z_STREAM_END || n >= b->len) {
        free(out);
        return;
    }
    b->gz = out;
    b->gz_len = n;
}

int api_reply_shared(api_req_t *req, const char *content_type, api_shared_body_t *b,
                     const api_header_t *extra, size_t nextra)
{
    api_header_t hdrs[8];
    size_t n = 0;
    const char *ae = api_req_header(req, "accept-encoding");
    bool gz = ae != NULL && header_lists(ae, "gzip");
    if (gz)
        shared_gzip(b);
    gz = gz && b->gz != NULL;
    hdrs[n++] = (api_header_t){"etag", gz ? b->etag_gz : b->etag};
    hdrs[n++] = (api_header_t){"vary", "Accept-Encoding"};
    for (size_t i = 0; i < nextra && n < CV_ARRAY_SIZE(hdrs) - 1; i++)
        hdrs[n++] = extra[i];
    /* either coding's tag names the same bytes */
    const char *inm = api_req_header(req, "if-none-match");
    if (inm != NULL && (strcmp(inm, "*") == 0 || strstr(inm, b->hex) != NULL))
        return reply(req, 304, NULL, "", 0, hdrs, n);
    if (gz) {
        hdrs[n++] = (api_header_t){"content-encoding", "gzip"};
        return reply_ex(req, 200, content_type, b->gz, b->gz_len, hdrs, n, true, b);
    }
    return reply_ex(req, 200, content_type, b->data, b->len, hdrs, n, true, b);
}
