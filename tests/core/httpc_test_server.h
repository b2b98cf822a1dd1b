/* A tiny HTTP/1.1 server for tests, on libuv (127.0.0.1, port 0), sharing the loop of the code
 * under test. One request per connection ("Connection: close"). Routes:
 *   /ok            200 "hello from /ok" (text/plain); also with a query (/ok?x)
 *   /500           500 "boom"
 *   /slow?ms=N     200 "slow" after N ms (uv timer; default 200)
 *   /hang          never answers
 *   /big           200 with SRV_BIG_LEN bytes of srv_big_byte(i)
 *   /echo-headers  200 with the request head and body as the body
 *   /redirect      302 to /ok
 * A request that does not start like HTTP (a TLS hello) gets a plain-text 400 at once.
 * HEAD gets the headers only. Anything else: 404. */
#ifndef CV_TESTS_HTTPC_TEST_SERVER_H
#define CV_TESTS_HTTPC_TEST_SERVER_H

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/util.h"

#define SRV_BIG_LEN (5u * 1024 * 1024)

typedef struct srv {
    uv_tcp_t tcp;
    int port;
    cv_list_t conns;
    int requests; /* complete requests read */
    int open_conns;
    /* optional: told of every complete request before it is answered (body not NUL-terminated) */
    void (*on_request)(struct srv *srv, const char *method, const char *path, const char *body,
                       size_t body_len);
    void *ud;
} srv_t;

typedef struct srv_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    cv_list_t link;
    srv_t *srv;
    cv_buf_t in, out;
    const char *extra; /* static body written after out (for /big) */
    size_t extra_len;
    int handles; /* open handles: tcp (+ timer) */
    bool done;   /* request dispatched */
} srv_conn_t;

static inline unsigned char srv_big_byte(size_t i)
{
    return (unsigned char)(i * 31u + i / 4099u);
}

static const char *srv_big(void)
{
    static char *big;
    if (big == NULL) {
        big = cv_malloc(SRV_BIG_LEN);
        for (size_t i = 0; i < SRV_BIG_LEN; i++)
            big[i] = (char)srv_big_byte(i);
    }
    return big;
}

static void srv_conn_closed(uv_handle_t *h)
{
    srv_conn_t *k = h->data;
    if (--k->handles > 0)
        return;
    k->srv->open_conns--;
    cv_list_remove(&k->link);
    cv_buf_free(&k->in);
    cv_buf_free(&k->out);
    free(k);
}

static void srv_conn_close(srv_conn_t *k)
{
    if (uv_is_closing((uv_handle_t *)&k->tcp))
        return;
    uv_close((uv_handle_t *)&k->tcp, srv_conn_closed);
    if (k->handles == 2)
        uv_close((uv_handle_t *)&k->timer, srv_conn_closed);
}

static void srv_written(uv_write_t *w, int status)
{
    srv_conn_close(w->data);
}

static void srv_respond(srv_conn_t *k, int status, const char *ctype, const char *body, size_t len,
                        bool head)
{
    const char *reason = status == 200 ? "OK" : status == 302 ? "Found" : "Error";
    cv_buf_printf(&k->out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n", status,
                  reason, ctype, len);
    if (status == 302)
        cv_buf_appends(&k->out, "Location: /ok\r\n");
    cv_buf_appends(&k->out, "Connection: close\r\n\r\n");
    uv_buf_t bufs[2] = {uv_buf_init(k->out.data, (unsigned)k->out.len), uv_buf_init(NULL, 0)};
    unsigned n = 1;
    if (!head && len > 0) {
        bufs[1] = uv_buf_init((char *)body, (unsigned)len);
        n = 2;
    }
    k->wr.data = k;
    if (uv_write(&k->wr, (uv_stream_t *)&k->tcp, bufs, n, srv_written) < 0)
        srv_conn_close(k);
}

static void srv_slow_fire(uv_timer_t *t)
{
    srv_conn_t *k = t->data;
    srv_respond(k, 200, "text/plain", "slow", 4, false);
}

static void srv_dispatch(srv_conn_t *k, size_t head_len, size_t body_len)
{
    char method[16] = "", path[256] = "";
    sscanf(k->in.data, "%15s %255s", method, path);
    bool head = strcmp(method, "HEAD") == 0;
    k->srv->requests++;
    if (k->srv->on_request)
        k->srv->on_request(k->srv, method, path, k->in.data + head_len, body_len);
    if (strcmp(path, "/ok") == 0 || strncmp(path, "/ok?", 4) == 0) {
        srv_respond(k, 200, "text/plain", "hello from /ok", 14, head);
    } else if (strcmp(path, "/500") == 0) {
        srv_respond(k, 500, "text/plain", "boom", 4, head);
    } else if (strncmp(path, "/slow", 5) == 0) {
        const char *ms = strstr(path, "ms=");
        uv_timer_init(k->tcp.loop, &k->timer);
        k->timer.data = k;
        k->handles = 2;
        uv_timer_start(&k->timer, srv_slow_fire, ms ? strtoull(ms + 3, NULL, 10) : 200, 0);
    } else if (strncmp(path, "/hang", 5) == 0) {
        /* never answer */
    } else if (strcmp(path, "/big") == 0) {
        srv_respond(k, 200, "application/octet-stream", srv_big(), SRV_BIG_LEN, head);
    } else if (strcmp(path, "/echo-headers") == 0) {
        /* k->in stays untouched until the connection closes: it is the body being written. */
        srv_respond(k, 200, "text/plain", k->in.data, head_len + body_len, head);
    } else if (strcmp(path, "/redirect") == 0) {
        srv_respond(k, 302, "text/plain", "", 0, head);
    } else {
        srv_respond(k, 404, "text/plain", "no such path", 12, head);
    }
}

static void srv_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char slab[65536];
    *buf = uv_buf_init(slab, sizeof(slab));
}

static void srv_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    srv_conn_t *k = s->data;
    if (n < 0) {
        srv_conn_close(k);
        return;
    }
    if (k->done)
        return;
    cv_buf_append(&k->in, buf->base, (size_t)n);
    if (k->in.len > 0 && (k->in.data[0] < 'A' || k->in.data[0] > 'Z')) { /* TLS or junk */
        k->done = true;
        srv_respond(k, 400, "text/plain", "not HTTP", 8, false);
        return;
    }
    char *end = strstr(k->in.data, "\r\n\r\n");
    if (end == NULL)
        return;
    size_t head_len = (size_t)(end + 4 - k->in.data), body_len = 0;
    const char *cl = strcasestr(k->in.data, "\r\nContent-Length:");
    if (cl != NULL && cl < end)
        body_len = strtoull(cl + 17, NULL, 10);
    if (k->in.len < head_len + body_len)
        return;
    k->done = true;
    srv_dispatch(k, head_len, body_len);
}

static void srv_accept(uv_stream_t *l, int status)
{
    srv_t *srv = l->data;
    srv_conn_t *k = cv_calloc(1, sizeof(*k));
    k->srv = srv;
    k->handles = 1;
    uv_tcp_init(l->loop, &k->tcp);
    k->tcp.data = k;
    cv_list_insert_tail(&srv->conns, &k->link);
    srv->open_conns++;
    if (status < 0 || uv_accept(l, (uv_stream_t *)&k->tcp) < 0 ||
        uv_read_start((uv_stream_t *)&k->tcp, srv_alloc, srv_read) < 0)
        srv_conn_close(k);
}

/* Listens on 127.0.0.1 with a free port (srv->port). Returns 0 or a libuv error. Clears srv:
 * set on_request after. */
static int srv_start(uv_loop_t *loop, srv_t *srv)
{
    struct sockaddr_in addr;
    struct sockaddr_storage got;
    int len = sizeof(got);
    memset(srv, 0, sizeof(*srv));
    cv_list_init(&srv->conns);
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(loop, &srv->tcp);
    srv->tcp.data = srv;
    int rc = uv_tcp_bind(&srv->tcp, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->tcp, 1024, srv_accept);
    if (rc == 0)
        rc = uv_tcp_getsockname(&srv->tcp, (struct sockaddr *)&got, &len);
    srv->port = ntohs(((struct sockaddr_in *)&got)->sin_port);
    return rc;
}

/* Stops listening and closes every connection (the loop then finishes the closes). */
static void srv_stop(srv_t *srv)
{
    uv_close((uv_handle_t *)&srv->tcp, NULL);
    for (cv_list_t *it = srv->conns.next; it != &srv->conns; it = it->next)
        srv_conn_close(cv_container_of(it, srv_conn_t, link));
}

#endif
