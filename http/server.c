/* The API server: listener, connections, dispatch and shutdown. See server.h. */
#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/log.h"
#include "http/api_internal.h"

#include <h2o/http2.h> /* after h2o.h, which it needs */

#define DEFAULT_MAX_BODY         (64 * 1024)
#define DEFAULT_MAX_BODY         (64 * 1024)
#define DEFAULT_MAX_CONNS        1024
#define DEFAULT_MAX_STREAMS      16
#define DEFAULT_MAX_PENDING      256
#define DEFAULT_WRITE_TIMEOUT_MS 30000
#define DEFAULT_MAX_RESETS       100
#define RESET_WINDOW_MS          10000

typedef struct conn {
    uv_tcp_t tcp; /* first: h2o hands the handle back to on_conn_close */
    cv_list_t link;
    api_server_t *srv;
    size_t last_queued;   /* the write queue at the last sweep */
    uint64_t progress_ms; /* when its writes last moved (or had nothing to move) */
    bool cut;             /* shut down by a limit; h2o closes it */
    h2o_socket_t *sock;
    uint64_t resets_since; /* start of the reset-counting window */
    unsigned resets;       /* requests reset before their deferred reply in that window */
} conn_t;

typedef struct handler {
    h2o_handler_t super;
    api_server_t *srv;
} handler_t;

struct api_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t finisher; /* closed last: its close callback disposes of h2o */
    int port;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    SSL_CTX *ssl_ctx;
    auth_t *auth;
    size_t max_body;
    api__route_t *routes;
    size_t nroutes;
    cv_list_t conns;
    cv_list_t pending;
    cv_list_t close_hooks;
    uv_timer_t sweeper; /* the write timeout's check; runs only while connections are open */
    size_t max_conns, nconns, max_pending, ndeferred;
    unsigned max_streams, max_resets;
    uint64_t write_timeout_ms;
    api_server_stats_t stats;
    size_t holds; /* listener + connections + handles of others (hub timers) */
    bool closing;
    void (*close_cb)(api_server_t *srv, void *data);
    void *close_data;
};

static void on_conn_close(uv_handle_t *h)
{
    conn_t *c = (conn_t *)h;
    api_server_t *srv = c->srv;
    cv_list_remove(&c->link);
    free(c);
    srv->nconns--;
    if (srv->closing)
        cv_debug("http", "connection closed; %zu still open", srv->nconns);
    api__server_release(srv);
}

static void cut(conn_t *c);

/* Cuts a connection whose pending write has not moved for write_timeout: the write then fails
 * and h2o closes the connection itself. */
static void on_sweep(uv_timer_t *t)
{
    api_server_t *srv = t->data;
    uint64_t now = uv_now(srv->loop);
    for (cv_list_t *it = srv->conns.next; it != &srv->conns; it = it->next) {
        conn_t *c = cv_container_of(it, conn_t, link);
        size_t q = c->tcp.write_queue_size;
        if (q == 0 || q < c->last_queued)
            c->progress_ms = now;
        c->last_queued = q;
        if (c->cut || q == 0 || now - c->progress_ms < srv->write_timeout_ms)
            continue;
        srv->stats.write_timeouts++;
        cv_info("http", "closing a connection whose writes made no progress for %llu ms",
                (unsigned long long)srv->write_timeout_ms);
        cut(c);
    }
    if (cv_list_empty(&srv->conns))
        uv_timer_stop(t);
}

static void arm_sweeper(api_server_t *srv)
{
    if (uv_is_active((uv_handle_t *)&srv->sweeper))
        return;
    uint64_t every = srv->write_timeout_ms / 4;
    every = every < 50 ? 50 : every > 1000 ? 1000 : every;
    uv_timer_start(&srv->sweeper, on_sweep, every, every);
}

static void refuse_conn(uv_handle_t *h)
{
    free(h);
}

/* Hands an open connection to h2o: TLS and ALPN, HTTP/1 (and its upgrades) or, with h2, an
 * HTTP/2 connection that expects the client preface first. The connection counts against
 * max_connections and is watched by the write-timeout sweeper. */
static void serve(api_server_t *srv, conn_t *c, bool h2)
{
    srv->nconns++;
    c->progress_ms = uv_now(srv->loop);
    arm_sweeper(srv);
    cv_list_insert_tail(&srv->conns, &c->link);
    srv->holds++;
    c->sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_close);
    if (h2)
        h2o_http2_accept(&srv->accept_ctx, c->sock, *h2o_get_timestamp(&srv->ctx, NULL, NULL));
    else
        h2o_accept(&srv->accept_ctx, c->sock);
}

static void on_accept(uv_stream_t *listener, int status)
{
    api_server_t *srv = listener->data;
    if (status != 0) {
        cv_warn("http", "accept failed: %s", uv_strerror(status));
        return;
    }
    conn_t *c = cv_calloc(1, sizeof(*c));
    c->srv = srv;
    cv_list_init(&c->link);
    uv_tcp_init(srv->loop, &c->tcp);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, refuse_conn);
        return;
    }
    if (srv->nconns >= srv->max_conns) { /* accepted and closed: the backlog does not fill */
        srv->stats.conns_refused++;
        uv_close((uv_handle_t *)&c->tcp, refuse_conn);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    serve(srv, c, false);
}

int api_server_adopt_fd(api_server_t *srv, int fd, bool h2_prior_knowledge)
{
    if (srv->closing)
        return -ESHUTDOWN;
    conn_t *c = cv_calloc(1, sizeof(*c));
    c->srv = srv;
    cv_list_init(&c->link);
    uv_tcp_init(srv->loop, &c->tcp);
    int rc = uv_tcp_open(&c->tcp, fd);
    if (rc != 0) {
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return rc;
    }
    serve(srv, c, h2_prior_knowledge);
    return 0;
}

/* ---- routing ---- */

static bool method_matches(const api__route_t *rt, const char *method)
{
    return strcmp(rt->r.method, method) == 0 ||
           (strcmp(method, "HEAD") == 0 && strcmp(rt->r.method, "GET") == 0);
}

static void allow_add(cv_buf_t *allow, const char *method)
{
    if (strstr(allow->data ? allow->data : "", method) != NULL)
        return;
    cv_buf_printf(allow, "%s%s", allow->len ? ", " : "", method);
}

/* Finds the route for (method, path): returns its index, or -1 and fills allow with the methods
 * the path accepts (empty when no pattern matches it), or -2 for a malformed escape. */
static ssize_t find_route(api_server_t *srv, const char *method, const char *path, cv_buf_t *allow)
{
    ssize_t best = -1;
    for (size_t i = 0; i < srv->nroutes; i++) {
        api__kvs_t tmp = {0};
        int m = api__route_match(&srv->routes[i], path, strlen(path), &tmp);
        api__kvs_free(&tmp);
        if (m < 0)
            return -2;
        if (m == 0)
            continue;
        if (!method_matches(&srv->routes[i], method)) {
            allow_add(allow, srv->routes[i].r.method);
            if (strcmp(srv->routes[i].r.method, "GET") == 0)
                allow_add(allow, "HEAD");
            continue;
        }
        if (best < 0 || srv->routes[i].nliteral > srv->routes[best].nliteral)
            best = (ssize_t)i;
    }
    return best;
}

/* The method and path are the client's bytes, possibly not UTF-8: api_reply_error and
 * api__reply_error_with make them valid (a raw json_pack here returned NULL and crashed). */
static void reply_not_routed(api_req_t *req, const cv_buf_t *allow)
{
    char *msg;
    if (allow->len == 0) {
        msg = cv_sprintf("no route for %s %s", req->method, req->path);
        api_reply_error(req, 404, "not_found", msg);
    } else {
        msg = cv_sprintf("%s is not allowed on %s (allowed: %s)", req->method, req->path,
                         allow->data);
        api_header_t h = {"allow", allow->data};
        api__reply_error_with(req, 405, "method_not_allowed", msg, &h, 1);
    }
    free(msg);
}

/* A person named by the trusted proxy's headers (auth.proxy), when the request comes from one of
 * its addresses; from anywhere else the headers count for nothing. */
static bool proxy_person(api_server_t *srv, api__req_t *r, h2o_req_t *h2o)
{
    const char *user_h, *role_h;
    if (!auth_proxy_headers(srv->auth, &user_h, &role_h))
        return false;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (h2o->conn->callbacks->get_peername == NULL ||
        h2o->conn->callbacks->get_peername(h2o->conn, (struct sockaddr *)&ss) == 0)
        return false;
    const char *user = api_req_header(&r->pub, user_h);
    const char *role = role_h ? api_req_header(&r->pub, role_h) : NULL;
    return auth_verify_proxy(srv->auth, (struct sockaddr *)&ss, user, role, &r->principal) == 0;
}

/* 401 / 403 / 429 checks. Returns true when the request may go on; otherwise it was answered. */
static bool check_access(api_server_t *srv, api__req_t *r, const api__route_t *rt, h2o_req_t *h2o)
{
    api_req_t *req = &r->pub;
    const char *authz = api_req_header(req, "authorization");
    if (!proxy_person(srv, r, h2o) &&
        auth_verify_header(srv->auth, authz, authz ? strlen(authz) : 0, &r->principal) != 0) {
        if (rt->r.role == AUTH_ROLE_NONE) {
            snprintf(r->principal.name, sizeof(r->principal.name), "anonymous");
            r->principal.role = AUTH_ROLE_NONE;
            return true;
        }
        api_header_t h = {"www-authenticate", "Bearer realm=\"cronvisor\""};
        const char *text = authz ? "{\"error\":{\"code\":\"unauthorized\",\"message\":\"the "
                                   "bearer token is not valid\"}}"
                                 : "{\"error\":{\"code\":\"unauthorized\",\"message\":\"an "
                                   "Authorization: Bearer token is required\"}}";
        api_reply_bytes(req, 401, "application/json", text, strlen(text), &h, 1);
        return false;
    }
    if (r->principal.role < rt->r.role) {
        char *msg = cv_sprintf("%s \"%s\" has role %s; this needs %s",
                               r->principal.person ? "user" : "token", r->principal.name,
                               auth_role_name(r->principal.role), auth_role_name(rt->r.role));
        api_reply_error(req, 403, "forbidden", msg);
        free(msg);
        return false;
    }
    if ((rt->r.flags & API_ROUTE_RATE_LIMITED) && srv->auth != NULL) {
        int64_t wait = auth_rate_take(srv->auth, r->principal.name, uv_now(srv->loop));
        if (wait > 0) {
            srv->stats.rate_limited++;
            char secs[24];
            snprintf(secs, sizeof(secs), "%lld", (long long)((wait + 999) / 1000));
            api_header_t h = {"retry-after", secs};
            const char *text = "{\"error\":{\"code\":\"rate_limited\",\"message\":\"too many "
                               "requests for this token; retry later\"}}";
            api_reply_bytes(req, 429, "application/json", text, strlen(text), &h, 1);
            return false;
        }
    }
    return true;
}

/* Parses the body of a JSON route. Returns true when the request may go on. */
static bool parse_json_body(api__req_t *r)
{
    if (r->pub.body_len == 0)
        return true;
    json_error_t jerr;
    r->pub.json = json_loadb(r->pub.body, r->pub.body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (r->pub.json != NULL)
        return true;
    char *msg = cv_sprintf("invalid JSON body at line %d, column %d: %s", jerr.line, jerr.column,
                           jerr.text);
    json_t *body = json_pack("{s:{s:s,s:o,s:i,s:i}}", "error", "code", "bad_json", "message",
                             api__json_text(msg), "line", jerr.line, "column", jerr.column);
    free(msg);
    api_reply_json(&r->pub, 400, body);
    return false;
}

/* Everything before the handler. Returns the route, or NULL when the request was answered. */
static const api__route_t *prepare(api_server_t *srv, api__req_t *r, h2o_req_t *h2o)
{
    api_req_t *req = &r->pub;
    cv_buf_t allow = {0};
    ssize_t idx = find_route(srv, r->method, r->path, &allow);
    const api__route_t *rt = idx >= 0 ? &srv->routes[idx] : NULL;
    if (idx == -2 || (h2o->query_at != SIZE_MAX &&
                      api__query_parse(h2o->path.base + h2o->query_at + 1,
                                       h2o->path.len - h2o->query_at - 1, &r->query) != 0)) {
        api_reply_error(req, 400, "bad_request", "malformed percent-escape in the URL");
        rt = NULL;
    } else if (rt == NULL) {
        reply_not_routed(req, &allow);
    } else if (req->body_len > srv->max_body) {
        char *msg = cv_sprintf("the request body has %zu bytes; the limit is %zu", req->body_len,
                               srv->max_body);
        api_reply_error(req, 413, "body_too_large", msg);
        free(msg);
        rt = NULL;
    } else if (!check_access(srv, r, rt, h2o) ||
               ((rt->r.flags & API_ROUTE_JSON_BODY) && !parse_json_body(r))) {
        rt = NULL;
    } else {
        api__route_match(rt, r->path, strlen(r->path), &r->params);
    }
    cv_buf_free(&allow);
    return rt;
}

static int on_req(h2o_handler_t *self, h2o_req_t *h2o)
{
    api_server_t *srv = ((handler_t *)self)->srv;
    api__req_t *r = api__req_new(srv, h2o, &srv->pending);
    if (srv->closing) {
        api_reply_error(&r->pub, 503, "shutting_down", "the server is shutting down");
        return 0;
    }
    const api__route_t *rt = prepare(srv, r, h2o);
    if (rt == NULL)
        return 0;
    /* Whatever may wait for the store is refused while max_pending requests already do (of the
     * public routes only /readyz waits on it, API_ROUTE_WAITS; /healthz and the pings never). */
    bool may_wait = rt->r.role != AUTH_ROLE_NONE || (rt->r.flags & API_ROUTE_WAITS);
    if (may_wait && srv->ndeferred >= srv->max_pending) {
        srv->stats.pending_refused++;
        api_reply_error(&r->pub, 503, "busy",
                        "too many requests are waiting for the store; retry later");
        return 0;
    }
    bool replied = false;
    r->replied = &replied;
    rt->r.handler(&r->pub, rt->r.data);
    if (!replied) {
        r->replied = NULL;
        if (!r->deferred) {
            cv_error("http", "handler of %s %s returned without a reply", rt->r.method,
                     rt->r.pattern);
            api_reply_error(&r->pub, 500, "internal", "the handler did not reply");
        }
    }
    return 0;
}

/* ---- creation ---- */

static int setup_tls(api_server_t *srv, const api_server_opts_t *opts, char **err)
{
    srv->ssl_ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(srv->ssl_ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(srv->ssl_ctx, opts->tls_cert_file) != 1) {
        *err = cv_sprintf("api TLS: cannot load certificate chain \"%s\"", opts->tls_cert_file);
        return -EINVAL;
    }
    if (SSL_CTX_use_PrivateKey_file(srv->ssl_ctx, opts->tls_key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(srv->ssl_ctx) != 1) {
        *err = cv_sprintf("api TLS: cannot load private key \"%s\" (or it does not match the "
                          "certificate)",
                          opts->tls_key_file);
        return -EINVAL;
    }
    h2o_ssl_register_alpn_protocols(srv->ssl_ctx, h2o_http2_alpn_protocols);
    srv->accept_ctx.ssl_ctx = srv->ssl_ctx;
    return 0;
}

static int resolve(const char *host, int port, struct sockaddr_storage *ss)
{
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return -EINVAL;
}

static int start_listener(api_server_t *srv, const char *listen, char **err)
{
    char host[256];
    int port, rc;
    struct sockaddr_storage ss;
    if (auth_split_listen(listen, host, sizeof(host), &port) != 0 ||
        resolve(host, port, &ss) != 0) {
        *err = cv_sprintf("api listen address \"%s\" must be an IP address and port "
                          "(127.0.0.1:8080, [::1]:8080)",
                          listen);
        return -EINVAL;
    }
    uv_tcp_init(srv->loop, &srv->listener);
    srv->listener.data = srv;
    srv->holds++;
    if ((rc = uv_tcp_bind(&srv->listener, (struct sockaddr *)&ss, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&srv->listener, 128, on_accept)) != 0) {
        *err = cv_sprintf("api cannot listen on %s: %s", listen, uv_strerror(rc));
        return rc;
    }
    int len = sizeof(ss);
    uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len);
    srv->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

static void setup_h2o(api_server_t *srv, const api_server_opts_t *opts)
{
    h2o_config_init(&srv->config);
    srv->config.server_name = h2o_iovec_init(H2O_STRLIT("cronvisor"));
    /* h2o answers bodies above its own limit with a plain-text 413 before reading them; keep it
     * well above ours so that the usual oversize request gets the JSON 413 from prepare(). */
    srv->config.max_request_entity_size = srv->max_body * 4 + 65536;
    srv->config.http1.req_timeout = opts->idle_timeout_ms ? opts->idle_timeout_ms : 10000;
    /* HTTP/2 only over TLS (ALPN): no "Upgrade: h2c" and no prior-knowledge preface in clear
     * text (h2o 2.2 gates both on this flag; a preface is then a 400). */
    srv->config.http1.upgrade_to_http2 = 0;
    srv->config.http2.max_concurrent_requests_per_connection = srv->max_streams;
    h2o_hostconf_t *host =
        h2o_config_register_host(&srv->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(host, "/", 0);
    handler_t *h = (handler_t *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->srv = srv;
    h2o_context_init(&srv->ctx, srv->loop, &srv->config);
    srv->accept_ctx.ctx = &srv->ctx;
    srv->accept_ctx.hosts = srv->config.hosts;
}

void api_server_set_limits(api_server_t *srv, const api_server_opts_t *opts)
{
    srv->max_body = opts->max_body ? opts->max_body : DEFAULT_MAX_BODY;
    srv->max_conns = opts->max_connections ? opts->max_connections : DEFAULT_MAX_CONNS;
    srv->max_streams = opts->max_streams ? opts->max_streams : DEFAULT_MAX_STREAMS;
    srv->max_resets = opts->max_resets ? opts->max_resets : DEFAULT_MAX_RESETS;
    srv->max_pending = opts->max_pending ? opts->max_pending : DEFAULT_MAX_PENDING;
    srv->write_timeout_ms =
        opts->write_timeout_ms ? opts->write_timeout_ms : DEFAULT_WRITE_TIMEOUT_MS;
    /* read by h2o when a connection or a request starts */
    srv->config.max_request_entity_size = srv->max_body * 4 + 65536;
    srv->config.http1.req_timeout = opts->idle_timeout_ms ? opts->idle_timeout_ms : 10000;
    srv->config.http2.max_concurrent_requests_per_connection = srv->max_streams;
    if (uv_is_active((uv_handle_t *)&srv->sweeper)) { /* at the new cadence */
        uv_timer_stop(&srv->sweeper);
        arm_sweeper(srv);
    }
}

static void free_server(api_server_t *srv)
{
    for (size_t i = 0; i < srv->nroutes; i++)
        api__route_free(&srv->routes[i]);
    free(srv->routes);
    if (srv->ssl_ctx != NULL)
        SSL_CTX_free(srv->ssl_ctx);
    free(srv);
}

static void on_listener_closed(uv_handle_t *h);
static void on_finisher_closed(uv_handle_t *h);

api_server_t *api_server_create(uv_loop_t *loop, const api_server_opts_t *opts, char **err)
{
    *err = NULL;
    if (auth_listen_allowed(opts->listen, auth_is_open(opts->auth) ? 0 : 1, err) != 0)
        return NULL;
    signal(SIGPIPE, SIG_IGN);
    api_server_t *srv = cv_calloc(1, sizeof(*srv));
    srv->loop = loop;
    srv->auth = opts->auth;
    srv->max_body = opts->max_body ? opts->max_body : DEFAULT_MAX_BODY;
    srv->max_conns = opts->max_connections ? opts->max_connections : DEFAULT_MAX_CONNS;
    srv->max_streams = opts->max_streams ? opts->max_streams : DEFAULT_MAX_STREAMS;
    srv->max_resets = opts->max_resets ? opts->max_resets : DEFAULT_MAX_RESETS;
    srv->max_pending = opts->max_pending ? opts->max_pending : DEFAULT_MAX_PENDING;
    srv->write_timeout_ms =
        opts->write_timeout_ms ? opts->write_timeout_ms : DEFAULT_WRITE_TIMEOUT_MS;
    uv_timer_init(loop, &srv->sweeper);
    srv->sweeper.data = srv;
    srv->holds++;
    cv_list_init(&srv->conns);
    cv_list_init(&srv->pending);
    cv_list_init(&srv->close_hooks);
    uv_timer_init(loop, &srv->finisher);
    srv->finisher.data = srv;
    setup_h2o(srv, opts);
    if ((opts->tls_cert_file != NULL) != (opts->tls_key_file != NULL)) {
        *err = cv_strdup("api TLS needs both a certificate file and a key file");
        goto fail;
    }
    if (opts->tls_cert_file != NULL && setup_tls(srv, opts, err) != 0)
        goto fail;
    if (start_listener(srv, opts->listen, err) != 0)
        goto fail;
    return srv;
fail:
    /* The caller's loop finishes the release (nothing else was started). */
    srv->closing = true;
    uv_close((uv_handle_t *)&srv->sweeper, on_listener_closed);
    if (srv->holds > 1)
        uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
    else
        uv_close((uv_handle_t *)&srv->finisher, on_finisher_closed);
    return NULL;
}

int api_server_route(api_server_t *srv, const api_route_t *route)
{
    api__route_t rt;
    if (api__route_compile(route, &rt) != 0) {
        cv_error("http", "route %s %s is malformed", route->method ? route->method : "(null)",
                 route->pattern ? route->pattern : "(null)");
        return -EINVAL;
    }
    srv->routes = cv_realloc(srv->routes, (srv->nroutes + 1) * sizeof(*srv->routes));
    srv->routes[srv->nroutes++] = rt;
    return 0;
}

int api_server_routes(api_server_t *srv, const api_route_t *routes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = api_server_route(srv, &routes[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int api_server_port(const api_server_t *srv)
{
    return srv->port;
}

uv_loop_t *api_server_loop(const api_server_t *srv)
{
    return srv->loop;
}

auth_t *api_server_auth(const api_server_t *srv)
{
    return srv->auth;
}

/* ---- shutdown ---- */

void api__server_add_close_hook(api_server_t *srv, api__close_hook_t *hook)
{
    cv_list_insert_tail(&srv->close_hooks, &hook->link);
}

void api__server_hold(api_server_t *srv)
{
    srv->holds++;
}

/* Runs in a close callback, after everything else the server waited for has closed. */
static void on_finisher_closed(uv_handle_t *h)
{
    api_server_t *srv = h->data;
    /* h2o_context_dispose closes h2o's timers and queue handle and runs the loop once (NOWAIT)
     * so that they are released before the context's memory goes. It asserts that no entry is
     * linked: h2o_context_request_shutdown linked HTTP/2's GOAWAY resend timer. */
    if (h2o_timeout_is_linked(&srv->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&srv->ctx.http2._graceful_shutdown_timeout);
    h2o_context_dispose(&srv->ctx);
    h2o_config_dispose(&srv->config);
    void (*cb)(api_server_t *, void *) = srv->close_cb;
    void *data = srv->close_data;
    if (cb != NULL)
        cb(srv, data); /* srv is still valid here; it is freed right after */
    free_server(srv);
}

void api__server_release(api_server_t *srv)
{
    assert(srv->holds > 0);
    if (--srv->holds == 0 && srv->closing)
        uv_close((uv_handle_t *)&srv->finisher, on_finisher_closed);
}

static void on_listener_closed(uv_handle_t *h)
{
    api__server_release(h->data);
}

/* Ends a connection's writing side: h2o's next write to it (or the one pending, which the
 * kernel now reports writable) fails, and h2o closes the connection at once, whatever its
 * streams. Not SHUT_RD: an HTTP/2 connection that reads an end of stream only half-closes and
 * waits for its open streams, which a cut connection may never finish. */
static void cut(conn_t *c)
{
    uv_os_fd_t fd;
    c->cut = true;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
        shutdown(fd, SHUT_WR);
}

void api__server_reset(api_server_t *srv, h2o_conn_t *hc)
{
    h2o_socket_t *sock = hc->callbacks->get_socket ? hc->callbacks->get_socket(hc) : NULL;
    uint64_t now = uv_now(srv->loop);
    for (cv_list_t *it = srv->conns.next; sock != NULL && it != &srv->conns; it = it->next) {
        conn_t *c = cv_container_of(it, conn_t, link);
        if (c->sock != sock || c->cut)
            continue;
        if (now - c->resets_since >= RESET_WINDOW_MS) {
            c->resets_since = now;
            c->resets = 0;
        }
        if (++c->resets <= srv->max_resets)
            return;
        srv->stats.reset_floods++;
        cv_warn("http", "closing a connection that reset %u requests within %d s", c->resets,
                RESET_WINDOW_MS / 1000);
        cut(c);
        return;
    }
}

void api__server_deferred(api_server_t *srv, int delta)
{
    assert(delta > 0 || srv->ndeferred > 0);
    srv->ndeferred = (size_t)((ssize_t)srv->ndeferred + delta);
}

void api_server_stats(const api_server_t *srv, api_server_stats_t *out)
{
    *out = srv->stats;
    out->conns_open = srv->nconns;
    out->pending = srv->ndeferred;
}

void api_server_close(api_server_t *srv, void (*cb)(api_server_t *srv, void *data), void *data)
{
    assert(!srv->closing);
    srv->closing = true;
    srv->close_cb = cb;
    srv->close_data = data;
    while (!cv_list_empty(&srv->close_hooks)) {
        api__close_hook_t *hook = cv_container_of(srv->close_hooks.next, api__close_hook_t, link);
        cv_list_remove(&hook->link);
        hook->fn(hook, srv);
    }
    while (!cv_list_empty(&srv->pending)) {
        api__req_t *r = cv_container_of(srv->pending.next, api__req_t, link);
        api__req_abandon(r, 503, "shutting_down", "the server is shutting down");
    }
    cv_debug("http", "closing: %zu connection(s) open, %zu request(s) deferred", srv->nconns,
             srv->ndeferred);
    h2o_context_request_shutdown(&srv->ctx);
    /* Wake every connection's read with an end of stream: h2o then closes it itself, after any
     * response being written. (A connection is only ever closed by h2o.) */
    for (cv_list_t *it = srv->conns.next; it != &srv->conns; it = it->next) {
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&cv_container_of(it, conn_t, link)->tcp, &fd) == 0)
            shutdown(fd, SHUT_RD);
    }
    uv_close((uv_handle_t *)&srv->sweeper, on_listener_closed);
    uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
}
