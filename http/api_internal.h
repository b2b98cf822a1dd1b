/* Shared between the files of http/ only: route patterns, key/value lists, and the hooks the
 * WebSocket hub needs from the server. Not for other modules. */
#ifndef CV_HTTP_API_INTERNAL_H
#define CV_HTTP_API_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <h2o.h>

#include "core/util.h"
#include "http/server.h"

/** A list of owned (key, value) strings. Zero-initialise to start empty. */
typedef struct api__kv {
    char *key;
    char *value;
} api__kv_t;

typedef struct api__kvs {
    api__kv_t *v;
    size_t n, cap;
} api__kvs_t;

/** Appends (takes ownership of both heap strings). */
void api__kvs_add(api__kvs_t *kvs, char *key, char *value);
/** First value for key, or NULL. */
const char *api__kvs_get(const api__kvs_t *kvs, const char *key);
void api__kvs_free(api__kvs_t *kvs);

/** Parses "a=1&b=x%20y&flag" into kvs. Returns 0 or -EINVAL (bad escape). */
int api__query_parse(const char *q, size_t len, api__kvs_t *kvs);

/** A compiled route. */
typedef struct api__route {
    api_route_t r; /* method and pattern are owned copies */
    char **segs;   /* pattern segments: literal text, "{name}" or "{*name}" */
    size_t nsegs;
    size_t nliteral;
} api__route_t;

/** Compiles route (copies strings). Returns 0 or -EINVAL. */
int api__route_compile(const api_route_t *route, api__route_t *out);
void api__route_free(api__route_t *rt);
/** Matches a path (no query) against the route's pattern, ignoring the method. On a match
 * returns 1 and appends the decoded parameters to params; 0 on no match; -EINVAL when a
 * parameter has a malformed escape. */
int api__route_match(const api__route_t *rt, const char *path, size_t len, api__kvs_t *params);

/** The private side of api_req_t. */
typedef struct api__req {
    api_req_t pub;
    cv_list_t link;         /* in the server's pending list until answered */
    h2o_req_t *h2o;         /* NULL once answered or gone */
    struct api__req **slot; /* lives in the h2o pool: its dispose callback clears h2o */
    api__kvs_t params, query, headers;
    auth_principal_t principal;
    char *method, *path, *body;
    bool *replied; /* set while the handler runs: req_free sets it */
    bool deferred, head;
    cv_live_t *live; /* NULL, or the token api_req_live handed out: ended once gone */
} api__req_t;

/** Makes the request view for an h2o request (registers the pool dispose hook, copies method,
 * path, body) and puts it on pending. */
api__req_t *api__req_new(api_server_t *srv, h2o_req_t *h2o, cv_list_t *pending);
/** Answers the h2o request with a plain JSON error without freeing the view (server close). */
void api__req_abandon(api__req_t *r, int status, const char *code, const char *message);

/** A JSON string of s (NULL = "") with every byte that is not well-formed UTF-8 replaced by
 * U+FFFD: the way to put client-supplied text (method, path, parameters, headers) into JSON,
 * since jansson's json_string and json_pack fail (NULL) on invalid UTF-8. Never NULL. */
json_t *api__json_text(const char *s);
/** api_reply_error with extra headers (e.g. Allow on a 405). Never fails on the message's bytes. */
int api__reply_error_with(api_req_t *req, int status, const char *code, const char *message,
                          const api_header_t *extra, size_t nextra);

/** The h2o request behind req, or NULL once it is gone. */
h2o_req_t *api__req_h2o(api_req_t *req);
/** Frees req without replying: the caller took the h2o request over (WebSocket upgrade). */
void api__req_consume(api_req_t *req);

/** A hook run by api_server_close before connections are shut down. */
typedef struct api__close_hook {
    cv_list_t link;
    void (*fn)(struct api__close_hook *hook, api_server_t *srv);
} api__close_hook_t;

void api__server_add_close_hook(api_server_t *srv, api__close_hook_t *hook);
/** Counts an asynchronous close the server must wait for (e.g. a hub timer handle). */
void api__server_hold(api_server_t *srv);
/** The matching end of api__server_hold, from the handle's close callback. */
void api__server_release(api_server_t *srv);
/** Counts a request of connection conn gone (HTTP/2 reset) before its deferred reply; past
 * server.max_resets in 10 s the connection is closed. */
void api__server_reset(api_server_t *srv, h2o_conn_t *conn);
/** Adds delta (+1 / -1) to the requests waiting for a deferred reply (server.max_pending). */
void api__server_deferred(api_server_t *srv, int delta);

#endif
