/* The tcp probe: resolve host (off the loop), then connect to the first address. */
#include "actors/probe_int.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    probe_check_t *c; /* NULL once aborted or reported */
    probe_resolve_t *res;
    uv_tcp_t tcp;
    uv_connect_t conn;
    char host[256];
    char port[16];
} tcp_impl_t;

static void on_tcp_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Splits "host:port" or "[v6]:port". */
static int split(const char *addr, char *host, size_t hlen, char *port, size_t plen)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon[1] == '\0')
        return -1;
    const char *h = addr;
    size_t n = (size_t)(colon - addr);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n == 0 || n >= hlen || strlen(colon + 1) >= plen)
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    strcpy(port, colon + 1);
    return 0;
}

static void on_connect(uv_connect_t *req, int status)
{
    tcp_impl_t *t = req->data;
    probe_check_t *c = t->c;
    if (c == NULL)
        return; /* aborted: the handle is already closing */
    t->c = NULL;
    char msg[400];
    if (status == 0)
        snprintf(msg, sizeof(msg), "connected to %s:%s", t->host, t->port);
    else
        snprintf(msg, sizeof(msg), "connect to %s:%s failed: %s", t->host, t->port,
                 uv_strerror(status));
    uv_close((uv_handle_t *)&t->tcp, on_tcp_closed);
    probe__done(c, status == 0, msg);
}

static void on_resolved(void *ud, int status, const struct sockaddr *sa)
{
    tcp_impl_t *t = ud;
    probe_check_t *c = t->c;
    t->res = NULL;
    char msg[400];
    if (status != 0) {
        snprintf(msg, sizeof(msg), "cannot resolve '%s': %s", t->host, uv_strerror(status));
        free(t);
        probe__done(c, false, msg);
        return;
    }
    uv_tcp_init(c->loop, &t->tcp);
    t->tcp.data = t;
    t->conn.data = t;
    int rc = uv_tcp_connect(&t->conn, &t->tcp, sa, on_connect);
    if (rc != 0) {
        t->c = NULL;
        snprintf(msg, sizeof(msg), "connect to %s:%s failed: %s", t->host, t->port,
                 uv_strerror(rc));
        uv_close((uv_handle_t *)&t->tcp, on_tcp_closed);
        probe__done(c, false, msg);
    }
}

static void tcp_start(probe_check_t *c)
{
    tcp_impl_t *t = cv_calloc(1, sizeof(*t));
    t->c = c;
    c->impl = t;
    if (split(c->cfg->address, t->host, sizeof(t->host), t->port, sizeof(t->port)) != 0) {
        free(t);
        probe__done(c, false, "address is not host:port");
        return;
    }
    int err = 0;
    t->res = probe__resolve(c->loop, t->host, t->port, on_resolved, t, &err);
    if (t->res == NULL) {
        char msg[400];
        snprintf(msg, sizeof(msg), "cannot resolve '%s': %s", t->host, uv_strerror(err));
        free(t);
        probe__done(c, false, msg);
    }
}

static void tcp_abort(probe_check_t *c)
{
    tcp_impl_t *t = c->impl;
    t->c = NULL;
    if (t->res) {
        probe__resolve_cancel(t->res);
        free(t);
        return;
    }
    uv_close((uv_handle_t *)&t->tcp, on_tcp_closed); /* on_connect gets ECANCELED first */
}

const probe_type_t probe__tcp = {"tcp", NULL, tcp_start, tcp_abort};
