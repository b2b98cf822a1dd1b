/* The postgres probe: connect with libpq's non-blocking API on uv_poll, then SELECT 1.
 *
 * libpq traps handled here (see LIBRARY-NOTES): PQconnectStart resolves host= with a blocking
 * lookup, so a host name is resolved first with uv_getaddrinfo and passed as hostaddr=;
 * connect_timeout is ignored in async mode (the prober's deadline applies); PQsocket may change
 * during the connect (re-checked after every PQconnectPoll, the poll replaced when it did); the
 * poll handle is closed before PQfinish. The password is registered as a secret at create time. */
#include "actors/probe_int.h"
#include "core/log.h"
#include "core/util.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    probe_check_t *c; /* NULL once aborted or reported */
    uv_loop_t *loop;
    PQconninfoOption *opts;
    probe_resolve_t *res;
    PGconn *conn;
    uv_poll_t *poll;
    int fd;
    bool querying, got_row;
} pg_impl_t;

static void on_poll_freed(uv_handle_t *h)
{
    free(h);
}

static void on_last_poll_closed(uv_handle_t *h)
{
    pg_impl_t *g = h->data;
    free(h);
    PQfinish(g->conn);
    free(g);
}

/* Releases everything, after the check reported or was aborted. */
static void pg_free(pg_impl_t *g)
{
    g->c = NULL;
    if (g->opts)
        PQconninfoFree(g->opts);
    g->opts = NULL;
    if (g->poll) {
        uv_close((uv_handle_t *)g->poll, on_last_poll_closed);
        return;
    }
    if (g->conn)
        PQfinish(g->conn);
    free(g);
}

static void fail(pg_impl_t *g, const char *what)
{
    probe_check_t *c = g->c;
    char *msg = cv_sprintf("%s", what && what[0] ? what : "connection failed");
    pg_free(g);
    probe__done(c, false, msg);
    free(msg);
}

static void on_poll(uv_poll_t *h, int status, int events);

static void watch(pg_impl_t *g, int events)
{
    int fd = PQsocket(g->conn);
    if (g->poll && fd != g->fd) {
        uv_close((uv_handle_t *)g->poll, on_poll_freed);
        g->poll = NULL;
    }
    if (g->poll == NULL) {
        g->poll = cv_calloc(1, sizeof(*g->poll));
        g->fd = fd;
        int rc = uv_poll_init(g->loop, g->poll, fd);
        if (rc != 0) {
            free(g->poll);
            g->poll = NULL;
            fail(g, uv_strerror(rc));
            return;
        }
        g->poll->data = g;
    }
    uv_poll_start(g->poll, events, on_poll);
}

static void read_results(pg_impl_t *g)
{
    if (PQconsumeInput(g->conn) == 0) {
        fail(g, PQerrorMessage(g->conn));
        return;
    }
    while (!PQisBusy(g->conn)) {
        PGresult *r = PQgetResult(g->conn);
        if (r == NULL) {
            probe_check_t *c = g->c;
            bool ok = g->got_row;
            pg_free(g);
            probe__done(c, ok, ok ? "SELECT 1 answered" : "SELECT 1 returned no row");
            return;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st != PGRES_TUPLES_OK) {
            char *msg = cv_sprintf("SELECT 1 failed: %s", PQresultErrorMessage(r));
            PQclear(r);
            fail(g, msg);
            free(msg);
            return;
        }
        g->got_row = g->got_row || PQntuples(r) == 1;
        PQclear(r);
    }
}

static void start_query(pg_impl_t *g)
{
    g->querying = true;
    if (PQsetnonblocking(g->conn, 1) != 0 || PQsendQuery(g->conn, "SELECT 1") == 0) {
        fail(g, PQerrorMessage(g->conn));
        return;
    }
    int fl = PQflush(g->conn);
    if (fl < 0)
        fail(g, PQerrorMessage(g->conn));
    else
        watch(g, fl == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

static void step_connect(pg_impl_t *g)
{
    switch (PQconnectPoll(g->conn)) {
    case PGRES_POLLING_READING:
        watch(g, UV_READABLE);
        break;
    case PGRES_POLLING_WRITING:
        watch(g, UV_WRITABLE);
        break;
    case PGRES_POLLING_OK:
        start_query(g);
        break;
    default:
        fail(g, PQerrorMessage(g->conn));
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    pg_impl_t *g = h->data;
    if (g->c == NULL)
        return;
    if (!g->querying) {
        step_connect(g);
        return;
    }
    if (events & UV_WRITABLE) {
        int fl = PQflush(g->conn);
        if (fl < 0) {
            fail(g, PQerrorMessage(g->conn));
            return;
        }
        if (fl == 0)
            uv_poll_start(g->poll, UV_READABLE, on_poll);
    }
    if ((events & UV_READABLE) || status < 0)
        read_results(g);
}

static const char *opt(const PQconninfoOption *o, const char *key)
{
    for (; o && o->keyword; o++)
        if (strcmp(o->keyword, key) == 0)
            return o->val && o->val[0] ? o->val : NULL;
    return NULL;
}

static void connect_start(pg_impl_t *g, const char *hostaddr)
{
    size_t n = 0;
    for (const PQconninfoOption *o = g->opts; o->keyword; o++)
        n++;
    const char **kw = cv_calloc(n + 2, sizeof(char *)), **val = cv_calloc(n + 2, sizeof(char *));
    size_t k = 0;
    for (const PQconninfoOption *o = g->opts; o->keyword; o++) {
        if (o->val == NULL || (hostaddr && strcmp(o->keyword, "hostaddr") == 0))
            continue;
        kw[k] = o->keyword;
        val[k++] = o->val;
    }
    if (hostaddr) {
        kw[k] = "hostaddr";
        val[k++] = hostaddr;
    }
    g->conn = PQconnectStartParams(kw, val, 0);
    free(kw);
    free(val);
    if (g->conn == NULL)
        fail(g, "out of memory");
    else if (PQstatus(g->conn) == CONNECTION_BAD)
        fail(g, PQerrorMessage(g->conn));
    else
        watch(g, UV_WRITABLE);
}

static void on_resolved(void *ud, int status, const struct sockaddr *sa)
{
    pg_impl_t *g = ud;
    g->res = NULL;
    if (status != 0) {
        char *msg =
            cv_sprintf("cannot resolve '%s': %s", opt(g->opts, "host"), uv_strerror(status));
        fail(g, msg);
        free(msg);
        return;
    }
    char ip[64];
    probe__addr_text(sa, ip, sizeof(ip));
    connect_start(g, ip);
}

static void pg_start(probe_check_t *c)
{
    pg_impl_t *g = cv_calloc(1, sizeof(*g));
    g->c = c;
    g->loop = c->loop;
    g->fd = -1;
    c->impl = g;
    char *err = NULL;
    g->opts = PQconninfoParse(c->cfg->conninfo, &err);
    if (g->opts == NULL) {
        char *msg = cv_sprintf("invalid conninfo: %s", err ? err : "out of memory");
        PQfreemem(err);
        fail(g, msg);
        free(msg);
        return;
    }
    const char *host = opt(g->opts, "host");
    if (host == NULL || host[0] == '/' || strchr(host, ',') || probe__is_ip(host) ||
        opt(g->opts, "hostaddr")) {
        connect_start(g, NULL); /* a socket path, an address, or already given: no lookup */
        return;
    }
    int rc = 0;
    g->res = probe__resolve(c->loop, host, NULL, on_resolved, g, &rc);
    if (g->res == NULL)
        on_resolved(g, rc, NULL);
}

static void pg_abort(probe_check_t *c)
{
    pg_impl_t *g = c->impl;
    if (g->res) {
        probe__resolve_cancel(g->res);
        g->res = NULL;
    }
    pg_free(g);
}

static void pg_prepare(const cfg_probe_t *p)
{
    PQconninfoOption *o = PQconninfoParse(p->conninfo, NULL);
    cv_secret_register(opt(o, "password"));
    if (o)
        PQconninfoFree(o);
}

const probe_type_t probe__postgres = {"postgres", pg_prepare, pg_start, pg_abort};
