/* The HTTP API server: libh2o 2.2.5 on the daemon's libuv loop, a routing table with
 * "{param}" path segments, role checks, JSON replies, and replies that come later.
 *
 * Life of a request: the server matches (method, path) against the table (404 / 405 with
 * Allow when nothing fits; HEAD runs the GET route and sends headers only), checks the body
 * size (413), the bearer token and role (401 / 403), the rate limit of the token (429), parses
 * a JSON body when the route asks for it (400 with line and column), then calls the handler
 * with an api_req_t. The handler answers with one api_reply_* call, now or later: a handler
 * that must wait (a store query) calls api_req_defer() and replies from its callback. Every
 * api_reply_* call frees the request; when the client went away meanwhile the reply is
 * dropped and the request freed all the same.
 *
 * Everything runs on the loop thread. */
#ifndef CV_HTTP_SERVER_H
#define CV_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "core/actor.h"
#include "http/auth.h"

typedef struct api_server api_server_t;
typedef struct api_req api_req_t;

/** A handler. It must end with exactly one api_reply_* call on req, or call api_req_defer()
 * and reply later (from the loop thread). Returning without either is answered 500. */
typedef void (*api_handler_fn)(api_req_t *req, void *data);

enum {
    API_ROUTE_RATE_LIMITED = 1 << 0, /* counts against the caller's token bucket (429) */
    API_ROUTE_JSON_BODY = 1 << 1,    /* a non-empty body must be JSON: parsed into req->json */
    /* a route without authentication that may wait for the store: bounded by max_pending as the
     * authenticated ones are (503 busy) */
    API_ROUTE_WAITS = 1 << 2,
};

/** One row of the routing table. pattern segments are literal, "{name}" (one segment) or, as the
 * last segment, "{*name}" (the rest of the path, possibly empty). Of the routes matching a path,
 * the one with the most literal segments wins, then the first added. */
typedef struct api_route {
    const char *method;  /* "GET", "POST", ... (GET also answers HEAD) */
    const char *pattern; /* "/api/jobs/{name}/trigger" */
    api_handler_fn handler;
    void *data;       /* passed to the handler */
    auth_role_t role; /* minimum role; AUTH_ROLE_NONE = no authentication */
    unsigned flags;   /* API_ROUTE_* */
} api_route_t;

typedef struct api_server_opts {
    const char *listen;        /* "127.0.0.1:8080", "[::1]:0", ":8080"; port 0 = ephemeral */
    auth_t *auth;              /* borrowed, outlives the server; NULL = open (anonymous admin) */
    size_t max_body;           /* bodies above get a JSON 413; default 65536 (h2o itself answers
                                * a plain-text 413 above 4 * max_body + 64 KiB, unread) */
    const char *tls_cert_file; /* both set: TLS with HTTP/2 by ALPN (PEM files) */
    const char *tls_key_file;
    uint32_t idle_timeout_ms;  /* HTTP/1 keep-alive and request read timeout; default 10000 */
    size_t max_connections;    /* open connections; beyond, accepted and closed; default 1024 */
    unsigned max_streams;      /* HTTP/2 concurrent requests per connection; default 16 */
    size_t max_pending;        /* requests waiting for a deferred reply, all connections; beyond,
                                * authenticated routes get a JSON 503 "busy"; default 256 */
    unsigned max_resets;       /* requests a connection may have reset before their deferred reply
                                * within 10 s; beyond, it is closed; default 100 */
    uint64_t write_timeout_ms; /* a connection whose pending write has not moved for this long is
                                * closed; default 30000 */
} api_server_opts_t;

/** Counters of the server's limits (see api_server_stats). */
typedef struct api_server_stats {
    size_t conns_open;        /* connections open now (WebSocket ones included) */
    size_t pending;           /* requests waiting for a deferred reply now */
    uint64_t conns_refused;   /* connections closed at accept: max_connections reached */
    uint64_t write_timeouts;  /* connections closed by the write timeout */
    uint64_t pending_refused; /* requests answered 503: max_pending reached */
    uint64_t rate_limited;    /* requests answered 429 by a token's rate limit */
    uint64_t reset_floods;    /* connections closed: more than max_resets resets in 10 s */
} api_server_stats_t;

/** Starts listening. Refuses (NULL, message in *err, caller frees) a malformed address, a
 * non-loopback address without tokens (see auth_listen_allowed), a bind failure or bad TLS
 * files. HTTP/2 is served only over TLS (ALPN); a clear-text "Upgrade: h2c" is ignored and a
 * prior-knowledge preface answered 400. Ignores SIGPIPE process-wide (writes to closed sockets must
 * not kill the daemon). */
api_server_t *api_server_create(uv_loop_t *loop, const api_server_opts_t *opts, char **err);
/** Applies the bounds of opts (max_body, idle_timeout_ms, max_connections, max_streams,
 * max_pending, max_resets, write_timeout_ms; 0 takes the default) to what comes next: new
 * connections and requests (a reload). listen, auth and TLS stay as created. */
void api_server_set_limits(api_server_t *srv, const api_server_opts_t *opts);

/** Adds a route (the strings are copied). Returns 0 or -EINVAL for a malformed pattern
 * (not starting with '/', unclosed '{', "{*x}" not last). */
int api_server_route(api_server_t *srv, const api_route_t *route);
/** Adds routes[0..n). Returns 0 or the first error. */
int api_server_routes(api_server_t *srv, const api_route_t *routes, size_t n);

/** Serves an already-connected stream socket fd (any family, e.g. one end of a socketpair) as
 * if the listener had accepted it: the fuzzer's way into the real request path. The server owns
 * fd from then on (closed with the connection). With h2_prior_knowledge the connection speaks
 * HTTP/2 from its first byte (the client preface), bypassing TLS and ALPN; otherwise it is what
 * the listener does (TLS when configured, HTTP/1.1). Returns 0, -ESHUTDOWN after
 * api_server_close, or a libuv error for a bad fd (then fd is not taken). */
int api_server_adopt_fd(api_server_t *srv, int fd, bool h2_prior_knowledge);

/** Copies the server's counters into *out. Cannot fail. */
void api_server_stats(const api_server_t *srv, api_server_stats_t *out);

/** The bound TCP port (useful with port 0). */
int api_server_port(const api_server_t *srv);
/** The loop the server runs on. */
uv_loop_t *api_server_loop(const api_server_t *srv);
/** The auth table given at creation (may be NULL). */
auth_t *api_server_auth(const api_server_t *srv);

/** Closes the listener and every connection (WebSocket clients included); requests still
 * waiting for a deferred reply are answered 503 (their handlers must still reply, which then
 * only frees them). cb(srv, data) runs once everything h2o and the server own is released, after
 * which uv_loop_close() can succeed. srv is invalid after cb. Not from inside a WebSocket
 * message callback. */
void api_server_close(api_server_t *srv, void (*cb)(api_server_t *srv, void *data), void *data);

/* ---- the request view given to handlers ---- */

struct api_req {
    const char *method; /* "GET", "HEAD", "POST", ... */
    const char *path;   /* the path as sent, without the query string */
    const char *body;   /* the request body (NUL-terminated copy), "" when none */
    size_t body_len;
    json_t *json;                      /* parsed body with API_ROUTE_JSON_BODY (owned by req) */
    const auth_principal_t *principal; /* who asked (anonymous admin in open mode) */
    api_server_t *server;
};

/** Value of path parameter name ("{name}"), percent-decoded; NULL if the route has none. */
const char *api_req_param(const api_req_t *req, const char *name);
/** First value of query parameter name, decoded ('+' is a space); NULL if absent, "" for
 * "?flag". */
const char *api_req_query(const api_req_t *req, const char *name);
/** Value of request header name (case-insensitive), or NULL. The string lives as long as req.
 * Only during the handler's own call: after a deferral copy what you need first. */
const char *api_req_header(api_req_t *req, const char *name);
/** Marks req as answered later. */
void api_req_defer(api_req_t *req);
/** True when the request can no longer be answered (connection closed, stream reset, server
 * closed). A reply is still required to free req. HTTP/1 closes are seen when writing. */
bool api_req_gone(const api_req_t *req);
/** A new reference (cv_live_unref it) to req's liveness token (core/actor.h), ended the moment
 * req is gone or answered: lets another actor see that a deferred request was reset without
 * touching req. */
cv_live_t *api_req_live(api_req_t *req);

/* ---- replies: each frees req; returns 0, or -ECONNRESET when the client was gone ---- */

/** Replies status with the compact JSON of body (the reference is stolen; NULL = "null"). */
int api_reply_json(api_req_t *req, int status, json_t *body);
/** Replies {"error": {"code": code, "message": message}}. */
int api_reply_error(api_req_t *req, int status, const char *code, const char *message);

typedef struct api_header {
    const char *name;
    const char *value;
} api_header_t;

/** Replies raw bytes (copied) with content_type and extra headers. */
int api_reply_bytes(api_req_t *req, int status, const char *content_type, const void *data,
                    size_t len, const api_header_t *extra, size_t nextra);

/** A static asset, e.g. a dashboard file embedded at build time. */
typedef struct api_asset {
    const char *content_type;
    const void *data; /* identity body */
    size_t len;
    const void *gz; /* the same body gzip-compressed, or NULL */
    size_t gz_len;
    const char *etag; /* quoted, e.g. "\"3f2a\"", or NULL */
    const char *cache_control;
} api_asset_t;

/** Replies an asset: 304 when If-None-Match matches the ETag, the gzip variant when the client
 * accepts gzip (with Vary: Accept-Encoding), else the identity body. */
/* The bodies are sent from where they are, not copied: they must outlive every response (static,
 * embedded data), so that clients that never read pin no copies. */
int api_reply_asset(api_req_t *req, const api_asset_t *asset);

/** A response body shared by every request that sends it (e.g. the cached GET /api/jobs page):
 * reference-counted, so that a response still being written keeps its bytes after the cache let
 * go of them, and no request copies them. Loop thread only. */
typedef struct api_shared_body api_shared_body_t;

/** Makes a shared body of data[0..len) (taken: freed with the last reference) with one reference
 * for the caller. Its ETag is a hash of the bytes (two bodies with the same bytes share it); its
 * gzip variant is made on first use (api_reply_shared). Aborts on out-of-memory. */
api_shared_body_t *api_shared_body_new(char *data, size_t len);
/** Takes one more reference. */
void api_shared_body_ref(api_shared_body_t *b);
/** Drops one reference (NULL: nothing). */
void api_shared_body_unref(api_shared_body_t *b);

/** Replies 200 with b (content_type, extra headers), sent from b's bytes without a copy (h2o
 * writes them from where they are; the request's pool holds a reference until the response is
 * written or dropped): 304 with no body when If-None-Match names b's ETag; the gzip variant
 * (Content-Encoding: gzip) when Accept-Encoding accepts gzip. Always sends ETag and Vary:
 * Accept-Encoding. */
int api_reply_shared(api_req_t *req, const char *content_type, api_shared_body_t *b,
                     const api_header_t *extra, size_t nextra);

#endif
