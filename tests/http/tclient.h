/* A minimal HTTP/1.1 and WebSocket client for tests: plain uv_tcp on the test's own loop. Waits
 * run the loop until a condition holds, with a watchdog so that a broken server fails the test
 * instead of hanging it. Header-only (static functions): each test includes it once. */
#ifndef CV_TESTS_HTTP_TCLIENT_H
#define CV_TESTS_HTTP_TCLIENT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <uv.h>

#include <jansson.h>

#include "core/util.h"

#define TC_WAIT_MS 5000

typedef struct tc_conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_loop_t *loop;
    cv_buf_t in; /* bytes received, not yet consumed */
    bool connected, eof, closed, reading;
    int status; /* connect status */
} tc_conn_t;

typedef struct tc_resp {
    int status;
    char head[4096]; /* status line and headers, NUL-terminated */
    cv_buf_t body;
} tc_resp_t;

static inline void tc__on_watchdog(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

/* Runs the loop until pred(arg) is true. Returns false after TC_WAIT_MS. */
static inline bool tc_wait_for(uv_loop_t *loop, bool (*pred)(void *), void *arg)
{
    bool expired = false;
    uv_timer_t wd;
    uv_timer_init(loop, &wd);
    wd.data = &expired;
    uv_timer_start(&wd, tc__on_watchdog, TC_WAIT_MS, 0);
    while (!pred(arg) && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&wd, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return !expired;
}

static inline void tc__alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char scratch[65536];
    (void)h;
    (void)suggested;
    buf->base = scratch;
    buf->len = sizeof(scratch);
}

static inline void tc__on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    tc_conn_t *c = s->data;
    if (n > 0)
        cv_buf_append(&c->in, buf->base, (size_t)n);
    else if (n < 0) {
        c->eof = true;
        uv_read_stop(s);
    }
}

static inline void tc__on_connect(uv_connect_t *req, int status)
{
    tc_conn_t *c = req->data;
    c->status = status;
    c->connected = true;
    if (status == 0) {
        uv_read_start((uv_stream_t *)&c->tcp, tc__alloc, tc__on_read);
        c->reading = true;
    }
}

static inline bool tc__connected(void *arg)
{
    return ((tc_conn_t *)arg)->connected;
}

/* Connects to 127.0.0.1:port. rcvbuf > 0 sets SO_RCVBUF before connecting (slow clients).
 * Returns the connect status (0 on success). */
static inline int tc_connect_opts(tc_conn_t *c, uv_loop_t *loop, int port, int rcvbuf)
{
    struct sockaddr_in sa;
    memset(c, 0, sizeof(*c));
    c->loop = loop;
    uv_tcp_init_ex(loop, &c->tcp, AF_INET); /* creates the socket now: options can be set */
    c->tcp.data = c;
    c->creq.data = c;
    if (rcvbuf > 0) {
        uv_os_fd_t fd;
        uv_fileno((uv_handle_t *)&c->tcp, &fd);
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    }
    uv_ip4_addr("127.0.0.1", port, &sa);
    uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&sa, tc__on_connect);
    if (!tc_wait_for(loop, tc__connected, c))
        return -ETIMEDOUT;
    return c->status;
}

static inline int tc_connect(tc_conn_t *c, uv_loop_t *loop, int port)
{
    return tc_connect_opts(c, loop, port, 0);
}

static inline void tc__on_write(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

/* Queues bytes (copied) for sending. */
static inline void tc_send(tc_conn_t *c, const void *data, size_t len)
{
    uv_write_t *w = cv_malloc(sizeof(*w) + len);
    memcpy(w + 1, data, len);
    uv_buf_t b = uv_buf_init((char *)(w + 1), (unsigned)len);
    w->data = c;
    uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, tc__on_write);
}

static inline void tc_sendf(tc_conn_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void tc_sendf(tc_conn_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = cv_vsprintf(fmt, ap);
    va_end(ap);
    tc_send(c, s, strlen(s));
    free(s);
}

/* Stops reading from the socket (a client that never reads). */
static inline void tc_stop_reading(tc_conn_t *c)
{
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
}

static inline void tc_consume(tc_conn_t *c, size_t n)
{
    memmove(c->in.data, c->in.data + n, c->in.len - n);
    c->in.len -= n;
    c->in.data[c->in.len] = '\0';
}

/* Value of header name in a response head ("" terminated copy in out), or NULL. */
static inline const char *tc_header(const tc_resp_t *r, const char *name, char *out, size_t outlen)
{
    size_t n = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
            const char *v = p + 3 + n;
            while (*v == ' ')
                v++;
            size_t len = strcspn(v, "\r");
            snprintf(out, outlen, "%.*s", (int)len, v);
            return out;
        }
    }
    return NULL;
}

typedef struct tc__resp_wait {
    tc_conn_t *c;
    tc_resp_t *r;
    bool head_only;
    bool done;
} tc__resp_wait_t;

/* Tries to take one complete response from c->in. */
static inline bool tc__take_response(void *arg)
{
    tc__resp_wait_t *w = arg;
    tc_conn_t *c = w->c;
    if (c->in.len == 0)
        return c->eof;
    char *end = strstr(c->in.data, "\r\n\r\n");
    if (end == NULL)
        return c->eof;
    size_t hlen = (size_t)(end - c->in.data) + 4;
    tc_resp_t *r = w->r;
    snprintf(r->head, sizeof(r->head), "%.*s", (int)hlen, c->in.data);
    r->status = atoi(c->in.data + 9);
    char v[64];
    size_t blen = 0;
    if (!w->head_only && r->status != 304 && r->status != 101 && r->status != 204) {
        if (tc_header(r, "content-length", v, sizeof(v)) != NULL)
            blen = strtoul(v, NULL, 10);
        else if (tc_header(r, "transfer-encoding", v, sizeof(v)) != NULL) {
            char *z = strstr(c->in.data + hlen, "\r\n0\r\n\r\n");
            if (z == NULL)
                return c->eof;
            /* a single chunk is all the tests expect from a chunked body */
            char *data = strstr(c->in.data + hlen, "\r\n") + 2;
            cv_buf_reset(&r->body);
            cv_buf_append(&r->body, data, (size_t)(z - data));
            tc_consume(c, (size_t)(z + 7 - c->in.data));
            w->done = true;
            return true;
        }
    }
    if (c->in.len < hlen + blen)
        return c->eof;
    cv_buf_reset(&r->body);
    cv_buf_append(&r->body, c->in.data + hlen, blen);
    tc_consume(c, hlen + blen);
    w->done = true;
    return true;
}

/* Waits for one full response. Returns 0, or -1 on EOF / timeout before one arrived. */
static inline int tc_read_response_ex(tc_conn_t *c, tc_resp_t *r, bool head_only)
{
    tc__resp_wait_t w = {c, r, head_only, false};
    memset(r->head, 0, sizeof(r->head));
    r->status = 0;
    if (!tc_wait_for(c->loop, tc__take_response, &w) || !w.done)
        return -1;
    return 0;
}

static inline int tc_read_response(tc_conn_t *c, tc_resp_t *r)
{
    return tc_read_response_ex(c, r, false);
}

static inline void tc_resp_free(tc_resp_t *r)
{
    cv_buf_free(&r->body);
}

static inline bool tc__eof(void *arg)
{
    return ((tc_conn_t *)arg)->eof;
}

/* Waits until the server closed the connection. Returns false on timeout. */
static inline bool tc_wait_eof(tc_conn_t *c)
{
    if (!c->reading) {
        uv_read_start((uv_stream_t *)&c->tcp, tc__alloc, tc__on_read);
        c->reading = true;
    }
    return tc_wait_for(c->loop, tc__eof, c);
}

static inline void tc__on_close(uv_handle_t *h)
{
    ((tc_conn_t *)h->data)->closed = true;
}

static inline bool tc__closed(void *arg)
{
    return ((tc_conn_t *)arg)->closed;
}

/* Closes the client socket and frees its buffer. */
static inline void tc_close(tc_conn_t *c)
{
    uv_close((uv_handle_t *)&c->tcp, tc__on_close);
    tc_wait_for(c->loop, tc__closed, c);
    cv_buf_free(&c->in);
}

/* Closes with a TCP reset (SO_LINGER 0): the server sees an error, not an orderly end. */
static inline void tc_reset(tc_conn_t *c)
{
    uv_tcp_close_reset(&c->tcp, tc__on_close);
    tc_wait_for(c->loop, tc__closed, c);
    cv_buf_free(&c->in);
}

/* One request on a fresh connection: method, path, extra header lines ("" or "X: y\r\n"),
 * body (may be NULL). Fills r; returns 0 or -1. */
static inline int tc_request(uv_loop_t *loop, int port, const char *method, const char *path,
                             const char *headers, const char *body, tc_resp_t *r)
{
    tc_conn_t c;
    if (tc_connect(&c, loop, port) != 0)
        return -1;
    size_t blen = body ? strlen(body) : 0;
    tc_sendf(&c, "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%sContent-Length: %zu\r\n\r\n",
             method, path, headers ? headers : "", blen);
    if (blen)
        tc_send(&c, body, blen);
    int rc = tc_read_response_ex(&c, r, strcmp(method, "HEAD") == 0);
    tc_close(&c);
    return rc;
}

/* ---- server life in tests ---- */

#include "http/server.h"

static inline bool tc__flag(void *arg)
{
    return *(bool *)arg;
}

static inline void tc__on_server_closed(api_server_t *srv, void *data)
{
    (void)srv;
    *(bool *)data = true;
}

/* Closes srv and waits for its callback. Returns false on timeout. */
static inline bool tc_close_server(api_server_t *srv, uv_loop_t *loop)
{
    bool done = false;
    api_server_close(srv, tc__on_server_closed, &done);
    return tc_wait_for(loop, tc__flag, &done);
}

/* Waits until *flag is true. */
static inline bool tc_wait_flag(uv_loop_t *loop, bool *flag)
{
    return tc_wait_for(loop, tc__flag, flag);
}

/* ---- WebSocket ---- */

#include <openssl/evp.h>

typedef struct tc_frame {
    int opcode;
    cv_buf_t payload;
    int close_code; /* for close frames */
} tc_frame_t;

/* The Sec-WebSocket-Accept value the server must send for key. */
static inline void tc_ws_accept_key(const char *key, char out[64])
{
    unsigned char sha[20];
    unsigned int n = sizeof(sha);
    char *src = cv_sprintf("%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    EVP_Digest(src, strlen(src), sha, &n, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)out, sha, (int)n);
    free(src);
}

/* Connects and upgrades on target ("/api/events?ticket=..."). headers: extra header lines.
 * Returns the response status (101 on success), or -1. resp gets the response head. */
static inline int tc_ws_connect(tc_conn_t *c, uv_loop_t *loop, int port, const char *target,
                                const char *headers, int rcvbuf, tc_resp_t *resp)
{
    static const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    if (tc_connect_opts(c, loop, port, rcvbuf) != 0)
        return -1;
    tc_sendf(c,
             "GET %s HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
             target, key, headers ? headers : "");
    if (tc_read_response(c, resp) != 0) /* a 101 has no body; an error response has one */
        return -1;
    if (resp->status == 101) {
        char want[64], got[64];
        tc_ws_accept_key(key, want);
        if (tc_header(resp, "sec-websocket-accept", got, sizeof(got)) == NULL ||
            strcmp(got, want) != 0)
            return -1;
    }
    return resp->status;
}

/* Sends one frame with FIN set; masked unless mask is false (a protocol error from a client). */
static inline void tc_ws_send_frame(tc_conn_t *c, int opcode, const void *data, size_t len,
                                    bool mask)
{
    unsigned char hdr[14];
    size_t h = 0;
    const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
    hdr[h++] = (unsigned char)(0x80 | opcode);
    unsigned char m = mask ? 0x80 : 0;
    if (len < 126) {
        hdr[h++] = (unsigned char)(m | len);
    } else if (len < 65536) {
        hdr[h++] = m | 126;
        hdr[h++] = (unsigned char)(len >> 8);
        hdr[h++] = (unsigned char)len;
    } else {
        hdr[h++] = m | 127;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    if (mask) {
        memcpy(hdr + h, key, 4);
        h += 4;
    }
    unsigned char *frame = cv_malloc(h + len);
    memcpy(frame, hdr, h);
    for (size_t i = 0; i < len; i++)
        frame[h + i] = ((const unsigned char *)data)[i] ^ (mask ? key[i % 4] : 0);
    tc_send(c, frame, h + len);
    free(frame);
}

static inline void tc_ws_send_text(tc_conn_t *c, const char *text)
{
    tc_ws_send_frame(c, 1, text, strlen(text), true);
}

typedef struct tc__frame_wait {
    tc_conn_t *c;
    tc_frame_t *f;
    bool done;
} tc__frame_wait_t;

static inline bool tc__take_frame(void *arg)
{
    tc__frame_wait_t *w = arg;
    tc_conn_t *c = w->c;
    const unsigned char *p = (const unsigned char *)c->in.data;
    if (c->in.len < 2)
        return c->eof;
    size_t h = 2, len = p[1] & 0x7f;
    if (len == 126) {
        if (c->in.len < 4)
            return c->eof;
        len = (size_t)p[2] << 8 | p[3];
        h = 4;
    } else if (len == 127) {
        if (c->in.len < 10)
            return c->eof;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p[2 + i];
        h = 10;
    }
    if (c->in.len < h + len)
        return c->eof;
    w->f->opcode = p[0] & 0x0f;
    cv_buf_reset(&w->f->payload);
    cv_buf_append(&w->f->payload, p + h, len);
    w->f->close_code = (w->f->opcode == 8 && len >= 2) ? (p[h] << 8 | p[h + 1]) : 0;
    tc_consume(c, h + len);
    w->done = true;
    return true;
}

/* Waits for one frame. Returns 0, or -1 on EOF / timeout first. */
static inline int tc_ws_read(tc_conn_t *c, tc_frame_t *f)
{
    tc__frame_wait_t w = {c, f, false};
    if (!tc_wait_for(c->loop, tc__take_frame, &w) || !w.done)
        return -1;
    return 0;
}

/* Waits for the next text frame (skipping pings) and parses it; NULL on EOF, close or junk. */
static inline json_t *tc_ws_read_json(tc_conn_t *c)
{
    tc_frame_t f = {0};
    json_t *j = NULL;
    while (tc_ws_read(c, &f) == 0 && (f.opcode == 9 || f.opcode == 10))
        ;
    if (f.opcode == 1)
        j = json_loadb(f.payload.data, f.payload.len, 0, NULL);
    cv_buf_free(&f.payload);
    return j;
}

#endif
