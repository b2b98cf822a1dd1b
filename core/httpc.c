/* httpc: libcurl multi on a libuv loop. See httpc.h for the contract and the integration notes.
 *
 * Life of a request: httpc_request() builds an easy handle and adds it to the multi handle
 * (state ACTIVE, on c->active). curl asks for sockets and one timer; their uv callbacks call
 * curl_multi_socket_action() and then drain curl_multi_info_read(). A finished or cancelled
 * transfer gets its result filled, leaves the multi handle and goes to c->pending (state PENDING);
 * a uv_idle callback then calls the user's callback and frees the transfer. */
#include "core/httpc.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "core/httpc_text.h"
#include "core/log.h"
#include "core/util.h"

#define COMP "httpc"

typedef enum { X_ACTIVE, X_PENDING, X_CALLING } xfer_state_t;

struct httpc {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;  /* the one timer curl asks for */
    uv_idle_t idle;    /* delivers completions; runs while c->pending is not empty */
    cv_list_t active;  /* httpc_xfer_t in the multi handle */
    cv_list_t pending; /* httpc_xfer_t whose callback has not run yet */
    cv_list_t socks;   /* sock_t with an open uv_poll_t */
    size_t n_xfers;    /* active + pending + calling */
    size_t n_handles;  /* uv handles not yet closed */
    bool closing, torn_down;
    httpc_close_cb close_cb;
    void *close_ud;
};

struct httpc_xfer {
    cv_list_t link;
    httpc_t *c;
    CURL *easy;
    struct curl_slist *hdrs;
    httpc_done_cb done;
    void *ud;
    xfer_state_t state;
    char *url;  /* as given: only to scrub curl's error text */
    char *peer; /* "host:port" from the URL, for messages */
    uint32_t timeout_ms, connect_timeout_ms;
    unsigned max_redirects;
    size_t keep; /* max bytes of body tail kept */
    cv_buf_t tail;
    size_t tail_start; /* once the tail is full, index of its oldest byte */
    int64_t start_ns;
    char *content_type, *message;
    httpc_result_t res;
    char errbuf[CURL_ERROR_SIZE];
};

typedef struct sock {
    uv_poll_t poll;
    cv_list_t link;
    httpc_t *c;
    curl_socket_t fd;
} sock_t;

static bool global_done;

int httpc_global_init(void)
{
    if (global_done)
        return 0;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        cv_error(COMP, "curl_global_init failed: HTTP jobs, probes and webhooks are unavailable");
        return -EIO;
    }
    global_done = true;
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    if (!httpc_async_dns())
        cv_warn(COMP,
                "libcurl %s has no asynchronous resolver: name lookups block the loop "
                "(use IP addresses or a libcurl built with threaded resolver or c-ares)",
                v->version);
    return 0;
}

bool httpc_async_dns(void)
{
    return (curl_version_info(CURLVERSION_NOW)->features & CURL_VERSION_ASYNCHDNS) != 0;
}

/* ---- body tail ---- */

static void tail_append(httpc_xfer_t *x, const char *p, size_t n)
{
    size_t max = x->keep;
    x->res.body_total += n;
    if (max == 0 || n == 0)
        return;
    if (n >= max) { /* only the last max bytes of this chunk can survive */
        p += n - max;
        n = max;
    }
    if (x->tail.len < max) { /* filling phase: plain append */
        size_t k = n < max - x->tail.len ? n : max - x->tail.len;
        cv_buf_append(&x->tail, p, k);
        p += k;
        n -= k;
    }
    while (n > 0) { /* full: overwrite the oldest bytes, ring-wise */
        size_t k = n < max - x->tail_start ? n : max - x->tail_start;
        memcpy(x->tail.data + x->tail_start, p, k);
        x->tail_start = (x->tail_start + k) % max;
        p += k;
        n -= k;
    }
}

/* Rotates the ring so that the tail reads oldest first. */
static void tail_finish(httpc_xfer_t *x)
{
    if (x->tail_start != 0) {
        size_t len = x->tail.len, s = x->tail_start;
        char *lin = cv_malloc(len + 1);
        memcpy(lin, x->tail.data + s, len - s);
        memcpy(lin + len - s, x->tail.data, s);
        lin[len] = '\0';
        free(x->tail.data);
        x->tail.data = lin;
        x->tail.cap = len + 1;
        x->tail_start = 0;
    }
    x->res.body = x->tail.data ? x->tail.data : "";
    x->res.body_len = x->tail.len;
    x->res.body_truncated = x->res.body_total > x->tail.len;
}

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
    tail_append(ud, p, size * n);
    return size * n;
}

/* ---- results ---- */

/* Curl's error text with this request's secrets masked (it can echo URL parts). */
static char *safe_curl_text(httpc_xfer_t *x, CURLcode rc)
{
    return httpc__scrub(x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc), x->url, x->hdrs);
}

/* Says in which phase the request ran out of time, and which limit that was. */
static char *timeout_message(httpc_xfer_t *x)
{
    const httpc_result_t *r = &x->res;
    unsigned limit = x->timeout_ms;
    if (r->connect_ms == 0 && x->connect_timeout_ms < limit)
        limit = x->connect_timeout_ms; /* curl's connect timeout covers resolving too */
    if (r->dns_ms == 0)
        return cv_sprintf("timed out after %u ms resolving the host name of %s", limit, x->peer);
    if (r->connect_ms == 0)
        return cv_sprintf("timed out after %u ms connecting to %s", limit, x->peer);
    if (r->tls_ms == 0 && strncasecmp(x->url, "https:", 6) == 0)
        return cv_sprintf("timed out after %u ms in the TLS handshake with %s", limit, x->peer);
    if (r->first_byte_ms == 0)
        return cv_sprintf("timed out after %u ms waiting for %s to respond", limit, x->peer);
    return cv_sprintf("timed out after %u ms receiving the response from %s (%llu body bytes "
                      "received)",
                      limit, x->peer, (unsigned long long)r->body_total);
}

static char *connect_message(httpc_xfer_t *x, long os_errno)
{
    if (os_errno == ECONNREFUSED)
        return cv_sprintf("connection refused to %s", x->peer);
    if (os_errno != 0)
        return cv_sprintf("could not connect to %s: %s", x->peer, strerror((int)os_errno));
    return cv_sprintf("could not connect to %s", x->peer);
}

enum { D_NONE, D_CURL, D_OS }; /* what fills the second %s of a message */

/* How curl failures read. Other codes: HTTPC_ERR_IO, "request to host:port failed: ...". */
static const struct {
    CURLcode rc;
    httpc_error_t kind;
    int detail;
    const char *fmt; /* %s: host:port, then the detail */
} curl_errors[] = {
    {CURLE_COULDNT_RESOLVE_HOST, HTTPC_ERR_DNS, D_NONE, "could not resolve host %s"},
    {CURLE_COULDNT_RESOLVE_PROXY, HTTPC_ERR_DNS, D_NONE, "could not resolve the proxy for %s"},
    {CURLE_PEER_FAILED_VERIFICATION, HTTPC_ERR_TLS, D_CURL, "TLS verification failed for %s: %s"},
    {CURLE_SSL_CACERT_BADFILE, HTTPC_ERR_TLS, D_CURL, "TLS verification failed for %s: %s"},
    {CURLE_SSL_ISSUER_ERROR, HTTPC_ERR_TLS, D_CURL, "TLS verification failed for %s: %s"},
    {CURLE_SSL_PINNEDPUBKEYNOTMATCH, HTTPC_ERR_TLS, D_CURL, "TLS verification failed for %s: %s"},
    {CURLE_SSL_CONNECT_ERROR, HTTPC_ERR_TLS, D_CURL, "TLS handshake with %s failed: %s"},
    {CURLE_SSL_CERTPROBLEM, HTTPC_ERR_TLS, D_CURL, "TLS handshake with %s failed: %s"},
    {CURLE_SSL_CIPHER, HTTPC_ERR_TLS, D_CURL, "TLS handshake with %s failed: %s"},
    {CURLE_GOT_NOTHING, HTTPC_ERR_PROTOCOL, D_NONE, "empty reply from %s"},
    {CURLE_WEIRD_SERVER_REPLY, HTTPC_ERR_PROTOCOL, D_NONE, "invalid HTTP response from %s"},
    {CURLE_HTTP2, HTTPC_ERR_PROTOCOL, D_CURL, "HTTP/2 error with %s: %s"},
    {CURLE_HTTP2_STREAM, HTTPC_ERR_PROTOCOL, D_CURL, "HTTP/2 error with %s: %s"},
    {CURLE_PARTIAL_FILE, HTTPC_ERR_PROTOCOL, D_NONE, "response from %s ended early"},
    {CURLE_SEND_ERROR, HTTPC_ERR_IO, D_OS, "connection to %s failed while sending: %s"},
    {CURLE_RECV_ERROR, HTTPC_ERR_IO, D_OS, "connection to %s failed while receiving: %s"},
};

/* Classifies rc and returns a secret-free message (NULL for CURLE_OK). */
static char *error_message(httpc_xfer_t *x, CURLcode rc, httpc_error_t *kind)
{
    long os_errno = 0;
    curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &os_errno);
    const char *why = os_errno ? strerror((int)os_errno) : curl_easy_strerror(rc);
    *kind = HTTPC_ERR_IO;
    switch (rc) {
    case CURLE_OK:
        *kind = HTTPC_OK;
        return NULL;
    case CURLE_OPERATION_TIMEDOUT:
        *kind = HTTPC_ERR_TIMEOUT;
        return timeout_message(x);
    case CURLE_COULDNT_CONNECT:
        *kind = HTTPC_ERR_CONNECT;
        return connect_message(x, os_errno);
    case CURLE_TOO_MANY_REDIRECTS:
        *kind = HTTPC_ERR_PROTOCOL;
        return cv_sprintf("more than %u redirects from %s", x->max_redirects, x->peer);
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT: {
        char *url = httpc_redact_url(x->url), *msg;
        *kind = HTTPC_ERR_URL;
        msg = cv_sprintf("%s URL %s (expected http://host[:port]/path or https://...)",
                         rc == CURLE_URL_MALFORMAT ? "malformed" : "unsupported scheme in", url);
        free(url);
        return msg;
    }
    default:
        break;
    }
    for (size_t i = 0; i < CV_ARRAY_SIZE(curl_errors); i++) {
        if (curl_errors[i].rc != rc)
            continue;
        char *detail = curl_errors[i].detail == D_CURL ? safe_curl_text(x, rc) : NULL;
        char *msg = cv_sprintf(curl_errors[i].fmt, x->peer, detail ? detail : why);
        *kind = curl_errors[i].kind;
        free(detail);
        return msg;
    }
    return cv_sprintf("request to %s failed: %s", x->peer, curl_easy_strerror(rc));
}

static void on_idle(uv_idle_t *h);

static double info_ms(CURL *e, CURLINFO what)
{
    curl_off_t us = 0;
    curl_easy_getinfo(e, what, &us);
    return (double)us / 1000.0;
}

/* Fills x->res from the easy handle, takes x out of the multi handle and queues its callback.
 * cancel_msg != NULL marks a cancellation. Never called from inside a curl callback. */
static void xfer_finish(httpc_xfer_t *x, CURLcode rc, const char *cancel_msg)
{
    httpc_t *c = x->c;
    httpc_result_t *r = &x->res;
    const char *ct = NULL;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct);
    x->content_type = ct ? cv_strdup(ct) : NULL;
    r->content_type = x->content_type;
    r->dns_ms = info_ms(x->easy, CURLINFO_NAMELOOKUP_TIME_T);
    r->connect_ms = info_ms(x->easy, CURLINFO_CONNECT_TIME_T);
    r->tls_ms = info_ms(x->easy, CURLINFO_APPCONNECT_TIME_T);
    r->first_byte_ms = info_ms(x->easy, CURLINFO_STARTTRANSFER_TIME_T);
    r->total_ms = (double)(cv_mono_ns() - x->start_ns) / 1e6;
    r->curl_code = cancel_msg ? CURLE_ABORTED_BY_CALLBACK : (int)rc;
    if (cancel_msg != NULL) {
        r->error = HTTPC_ERR_CANCELLED;
        x->message = cv_strdup(cancel_msg);
    } else {
        x->message = error_message(x, rc, &r->error);
    }
    r->message = x->message;
    tail_finish(x);

    curl_multi_remove_handle(c->multi, x->easy);
    curl_easy_cleanup(x->easy);
    x->easy = NULL;
    cv_list_remove(&x->link);
    cv_list_insert_tail(&c->pending, &x->link);
    x->state = X_PENDING;
    uv_idle_start(&c->idle, on_idle);
}

static void xfer_free(httpc_xfer_t *x)
{
    curl_slist_free_all(x->hdrs);
    cv_buf_free(&x->tail);
    free(x->url);
    free(x->peer);
    free(x->content_type);
    free(x->message);
    free(x);
}

/* ---- curl <-> uv glue ---- */

static void check_done(httpc_t *c)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        httpc_xfer_t *x = NULL;
        CURLcode rc = m->data.result; /* m dies with curl_multi_remove_handle */
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        xfer_finish(x, rc, NULL);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    sock_t *s = cv_container_of(h, sock_t, poll);
    httpc_t *c = s->c;
    int flags = 0, running = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    check_done(c);
}

static void on_timer(uv_timer_t *t)
{
    httpc_t *c = cv_container_of(t, httpc_t, timer);
    int running = 0;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

static void handle_gone(httpc_t *c);

static void on_sock_closed(uv_handle_t *h)
{
    sock_t *s = h->data;
    httpc_t *c = s->c;
    free(s);
    handle_gone(c);
}

static void sock_close(sock_t *s)
{
    cv_list_remove(&s->link);
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

/* CURLMOPT_SOCKETFUNCTION: watch fd for what curl wants; a uv_poll_t per socket. */
static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *sockp)
{
    httpc_t *c = userp;
    sock_t *s = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            curl_multi_assign(c->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (s == NULL) {
        s = cv_calloc(1, sizeof(*s));
        int rc = uv_poll_init_socket(c->loop, &s->poll, fd);
        if (rc < 0) {
            cv_error(COMP, "cannot watch socket %d: %s", (int)fd, uv_strerror(rc));
            free(s);
            return -1;
        }
        s->poll.data = s;
        s->c = c;
        s->fd = fd;
        c->n_handles++;
        cv_list_insert_tail(&c->socks, &s->link);
        curl_multi_assign(c->multi, fd, s);
    }
    int ev = ((what & CURL_POLL_IN) ? UV_READABLE : 0) | ((what & CURL_POLL_OUT) ? UV_WRITABLE : 0);
    uv_poll_start(&s->poll, ev, on_poll);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: -1 stops the timer; 0 means "soon" (next loop pass). */
static int on_curl_timer(CURLM *m, long ms, void *userp)
{
    httpc_t *c = userp;
    if (ms < 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timer, (uint64_t)ms, 0);
    return 0;
}

/* ---- client ---- */

httpc_t *httpc_create(uv_loop_t *loop)
{
    httpc_global_init();
    httpc_t *c = cv_calloc(1, sizeof(*c));
    c->loop = loop;
    cv_list_init(&c->active);
    cv_list_init(&c->pending);
    cv_list_init(&c->socks);
    c->multi = curl_multi_init();
    if (c->multi == NULL) {
        fprintf(stderr, "httpc: curl_multi_init failed (out of memory)\n");
        abort();
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    uv_timer_init(loop, &c->timer);
    uv_idle_init(loop, &c->idle);
    c->timer.data = c->idle.data = c;
    c->n_handles = 2;
    return c;
}

size_t httpc_pending(const httpc_t *c)
{
    return c->n_xfers;
}

static struct curl_slist *build_headers(const httpc_req_t *req)
{
    struct curl_slist *l = NULL;
    bool has_expect = false;
    for (size_t i = 0; i < req->n_headers; i++) {
        const httpc_header_t *h = &req->headers[i];
        has_expect |= strcasecmp(h->name, "Expect") == 0;
        /* "Name;" is curl's way to send an empty value ("Name:" would remove the header). */
        char *line =
            h->value[0] ? cv_sprintf("%s: %s", h->name, h->value) : cv_sprintf("%s;", h->name);
        l = curl_slist_append(l, line);
        free(line);
    }
    if (!has_expect) /* no 100-continue round trip (and its 1 s wait on servers without it) */
        l = curl_slist_append(l, "Expect:");
    return l;
}

static void set_method_and_body(CURL *e, const httpc_req_t *req)
{
    const char *m = req->method ? req->method : "GET";
    if (strcmp(m, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
        return;
    }
    if (req->body_len > 0 || strcmp(m, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body_len ? (const char *)req->body : "");
    }
    if (strcmp(m, "POST") != 0 && strcmp(m, "GET") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
    else if (strcmp(m, "GET") == 0 && req->body_len > 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "GET");
}

static CURL *build_easy(httpc_xfer_t *x, const httpc_req_t *req)
{
    CURL *e = curl_easy_init();
    if (e == NULL) {
        fprintf(stderr, "httpc: curl_easy_init failed (out of memory)\n");
        abort();
    }
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075700
    /* Without it, ending a transfer whose lookup is still running (timeout, cancel) joins the
     * resolver thread: the loop would block until getaddrinfo() returns. */
    curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
#endif
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "cronvisor/" CV_VERSION);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)x->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)x->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, req->tls_insecure ? 0L : 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, req->tls_insecure ? 0L : 2L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    if (req->follow_redirects) {
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)x->max_redirects);
    }
    set_method_and_body(e, req);
    return e;
}

int httpc_request(httpc_t *c, const httpc_req_t *req, httpc_done_cb done, void *ud,
                  httpc_xfer_t **out)
{
    if (c->closing)
        return -ESHUTDOWN;
    if (done == NULL)
        return -EINVAL;
    int rc = httpc_req_validate(req, NULL, 0);
    if (rc < 0)
        return rc;
    httpc_xfer_t *x = cv_calloc(1, sizeof(*x));
    x->c = c;
    x->done = done;
    x->ud = ud;
    x->url = cv_strdup(req->url);
    x->peer = httpc__url_peer(req->url);
    x->timeout_ms = req->timeout_ms ? req->timeout_ms : HTTPC_DEFAULT_TIMEOUT_MS;
    x->connect_timeout_ms =
        req->connect_timeout_ms ? req->connect_timeout_ms : HTTPC_DEFAULT_CONNECT_TIMEOUT_MS;
    x->max_redirects = req->max_redirects ? req->max_redirects : 5;
    x->keep = req->max_body == HTTPC_BODY_NONE ? 0
              : req->max_body                  ? req->max_body
                                               : HTTPC_DEFAULT_MAX_BODY;
    x->hdrs = build_headers(req);
    x->easy = build_easy(x, req);
    x->start_ns = cv_mono_ns();
    CURLMcode mrc = curl_multi_add_handle(c->multi, x->easy);
    if (mrc != CURLM_OK) {
        cv_error(COMP, "curl_multi_add_handle: %s", curl_multi_strerror(mrc));
        curl_easy_cleanup(x->easy);
        xfer_free(x);
        return -EIO;
    }
    x->state = X_ACTIVE;
    cv_list_insert_tail(&c->active, &x->link);
    c->n_xfers++;
    if (out != NULL)
        *out = x;
    return 0;
}

void httpc_cancel(httpc_xfer_t *x)
{
    if (x->state == X_ACTIVE)
        xfer_finish(x, CURLE_OK, "cancelled");
}

static void on_handle_closed(uv_handle_t *h)
{
    handle_gone(h->data);
}

/* After close: once no callback is left, release curl, then the uv handles. */
static void teardown(httpc_t *c)
{
    c->torn_down = true;
    curl_multi_cleanup(c->multi); /* may report CURL_POLL_REMOVE for cached connections */
    c->multi = NULL;
    while (!cv_list_empty(&c->socks)) /* anything curl did not report */
        sock_close(cv_container_of(c->socks.next, sock_t, link));
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->idle, on_handle_closed);
}

static void handle_gone(httpc_t *c)
{
    if (--c->n_handles > 0)
        return;
    httpc_close_cb cb = c->close_cb;
    void *ud = c->close_ud;
    free(c);
    if (cb != NULL)
        cb(ud);
}

static void on_idle(uv_idle_t *h)
{
    httpc_t *c = cv_container_of(h, httpc_t, idle);
    /* Only what is queued now: a callback that queues another completion (start and cancel)
     * must not keep this pass from returning to the loop. */
    cv_list_t batch;
    cv_list_init(&batch);
    if (!cv_list_empty(&c->pending)) {
        batch.next = c->pending.next;
        batch.prev = c->pending.prev;
        batch.next->prev = batch.prev->next = &batch;
        cv_list_init(&c->pending);
    }
    while (!cv_list_empty(&batch)) {
        httpc_xfer_t *x = cv_container_of(batch.next, httpc_xfer_t, link);
        cv_list_remove(&x->link);
        x->state = X_CALLING;
        x->done(x, &x->res, x->ud);
        c->n_xfers--;
        xfer_free(x);
    }
    if (!cv_list_empty(&c->pending))
        return;
    uv_idle_stop(&c->idle);
    if (c->closing && !c->torn_down && c->n_xfers == 0)
        teardown(c);
}

void httpc_close(httpc_t *c, httpc_close_cb cb, void *ud)
{
    assert(!c->closing);
    c->closing = true;
    c->close_cb = cb;
    c->close_ud = ud;
    while (!cv_list_empty(&c->active))
        xfer_finish(cv_container_of(c->active.next, httpc_xfer_t, link), CURLE_OK,
                    "cancelled: HTTP client closing");
    uv_idle_start(&c->idle, on_idle);
}
