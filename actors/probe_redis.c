/* The redis probe: PING (after AUTH when the URL has a password) over hiredis' libuv adapter.
 *
 * hiredis 0.14 traps handled here (see LIBRARY-NOTES): its adapter header defines a static
 * on_close() (no function of ours has that name); it has no asynchronous connect timeout (the
 * prober's deadline applies: redisAsyncFree); a host name would be resolved with a blocking
 * lookup, so it is resolved first with uv_getaddrinfo. Commands are sent from the connect
 * callback, so a failed connect has no pending command callbacks. The adapter also ignores poll
 * errors, and libuv reports a refused non-blocking connect as one (UV_EBADF, poll stopped): the
 * connect would then only end at the deadline. So while connecting, a short timer reads the
 * socket's SO_ERROR and ends the check with the real reason (connection refused). */
#include "actors/probe_int.h"
#include "core/log.h"
#include "core/util.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef struct {
    probe_check_t *c; /* NULL once aborted or reported */
    uv_loop_t *loop;
    probe_resolve_t *res;
    redisAsyncContext *ac;
    bool freeing; /* redisAsyncFree by abort: callbacks must not free us */
    bool connected, timer_on;
    uv_timer_t watch; /* SO_ERROR while connecting */
    char *host, *user, *pass;
    int port;
} redis_impl_t;

typedef struct {
    char *host, *user, *pass;
    int port;
} redis_url_t;

static void url_free(redis_url_t *u)
{
    free(u->host);
    free(u->user);
    free(u->pass);
}

/* redis://[[user]:password@]host[:port][/db] (also [v6] hosts). Returns 0 or -1. */
static int url_parse(const char *url, redis_url_t *u)
{
    memset(u, 0, sizeof(*u));
    u->port = 6379;
    if (url == NULL || strncmp(url, "redis://", 8) != 0)
        return -1;
    const char *s = url + 8, *end = s + strcspn(s, "/?#");
    const char *at = memrchr(s, '@', (size_t)(end - s));
    if (at) {
        const char *colon = memchr(s, ':', (size_t)(at - s));
        if (colon) {
            if (colon > s)
                u->user = cv_strndup(s, (size_t)(colon - s));
            u->pass = cv_strndup(colon + 1, (size_t)(at - colon - 1));
        } else {
            u->pass = cv_strndup(s, (size_t)(at - s)); /* redis://password@host */
        }
        s = at + 1;
    }
    const char *hend = end, *pcolon = NULL;
    if (*s == '[') {
        const char *close = memchr(s, ']', (size_t)(end - s));
        if (close == NULL)
            return -1;
        u->host = cv_strndup(s + 1, (size_t)(close - s - 1));
        pcolon = close + 1 < end && close[1] == ':' ? close + 1 : NULL;
    } else {
        pcolon = memchr(s, ':', (size_t)(end - s));
        hend = pcolon ? pcolon : end;
        u->host = cv_strndup(s, (size_t)(hend - s));
    }
    if (pcolon) {
        char *e = NULL;
        long port = strtol(pcolon + 1, &e, 10);
        if (e != end || port <= 0 || port > 65535)
            return -1;
        u->port = (int)port;
    }
    return u->host[0] ? 0 : -1;
}

static void report(redis_impl_t *r, bool ok, const char *what)
{
    probe_check_t *c = r->c;
    r->c = NULL;
    char *msg = cv_sprintf("%s (%s:%d)", what, r->host, r->port);
    probe__done(c, ok, msg);
    free(msg);
}

static void on_watch_closed(uv_handle_t *h)
{
    redis_impl_t *r = h->data;
    free(r);
}

/* Final: nothing of hiredis refers to r any more. */
static void impl_free(redis_impl_t *r)
{
    free(r->host);
    free(r->user);
    free(r->pass);
    r->host = r->user = r->pass = NULL;
    if (r->timer_on)
        uv_close((uv_handle_t *)&r->watch, on_watch_closed);
    else
        free(r);
}

static void on_watch(uv_timer_t *t)
{
    redis_impl_t *r = t->data;
    int err = 0;
    socklen_t len = sizeof(err);
    if (r->connected || r->ac == NULL) {
        uv_timer_stop(t);
        return;
    }
    if (getsockopt(r->ac->c.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0)
        return;
    char *msg = cv_sprintf("connect failed: %s", strerror(err));
    report(r, false, msg);
    free(msg);
    r->freeing = true;
    redisAsyncFree(r->ac);
    impl_free(r);
}

static void on_ping(redisAsyncContext *ac, void *reply, void *priv)
{
    redis_impl_t *r = priv;
    redisReply *rep = reply;
    if (rep == NULL || r->c == NULL)
        return;
    if (rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0)
        report(r, true, "PONG");
    else {
        char *msg = cv_sprintf("PING answered %s", rep->type == REDIS_REPLY_ERROR && rep->str
                                                       ? rep->str
                                                       : "something other than PONG");
        report(r, false, msg);
        free(msg);
    }
    redisAsyncDisconnect(ac);
}

static void on_auth(redisAsyncContext *ac, void *reply, void *priv)
{
    redis_impl_t *r = priv;
    redisReply *rep = reply;
    if (rep == NULL || r->c == NULL)
        return;
    if (rep->type == REDIS_REPLY_ERROR) {
        char *msg = cv_sprintf("AUTH failed: %s", rep->str ? rep->str : "error");
        report(r, false, msg);
        free(msg);
        redisAsyncDisconnect(ac);
        return;
    }
    redisAsyncCommand(ac, on_ping, r, "PING");
}

static void on_connected(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    redis_impl_t *r = ac->data;
    r->connected = status == REDIS_OK;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback; no command is pending */
        char *msg = cv_sprintf("connect failed: %s", ac->errstr);
        if (r->c)
            report(r, false, msg);
        free(msg);
        if (!r->freeing)
            impl_free(r);
        return;
    }
    if (r->pass && r->user)
        redisAsyncCommand(ac, on_auth, r, "AUTH %s %s", r->user, r->pass);
    else if (r->pass)
        redisAsyncCommand(ac, on_auth, r, "AUTH %s", r->pass);
    else
        redisAsyncCommand(ac, on_ping, r, "PING");
}

static void on_disconnected(const redisAsyncContext *ac, int status)
{
    redis_impl_t *r = ac->data;
    if (r->freeing)
        return; /* the aborter frees */
    if (r->c) {
        char *msg = cv_sprintf("connection lost: %s", ac->err ? ac->errstr : "closed");
        report(r, false, msg);
        free(msg);
    }
    impl_free(r);
}

static void connect_to(redis_impl_t *r, const char *ip)
{
    redisAsyncContext *ac = redisAsyncConnect(ip, r->port);
    if (ac == NULL || ac->err) {
        char *msg = cv_sprintf("connect failed: %s", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        report(r, false, msg);
        free(msg);
        impl_free(r);
        return;
    }
    r->ac = ac;
    ac->data = r;
    redisLibuvAttach(ac, r->loop);
    redisAsyncSetConnectCallback(ac, on_connected);
    redisAsyncSetDisconnectCallback(ac, on_disconnected);
    uv_timer_init(r->loop, &r->watch);
    r->watch.data = r;
    r->timer_on = true;
    uv_timer_start(&r->watch, on_watch, 20, 20);
}

static void on_resolved(void *ud, int status, const struct sockaddr *sa)
{
    redis_impl_t *r = ud;
    r->res = NULL;
    if (status != 0) {
        char *msg = cv_sprintf("cannot resolve: %s", uv_strerror(status));
        report(r, false, msg);
        free(msg);
        impl_free(r);
        return;
    }
    char ip[64];
    probe__addr_text(sa, ip, sizeof(ip));
    connect_to(r, ip);
}

static void redis_start(probe_check_t *c)
{
    redis_url_t u;
    if (url_parse(c->cfg->url, &u) != 0) {
        url_free(&u);
        probe__done(c, false, "invalid redis URL (expected redis://[:password@]host[:port][/db])");
        return;
    }
    redis_impl_t *r = cv_calloc(1, sizeof(*r));
    r->c = c;
    r->loop = c->loop;
    r->host = u.host;
    r->user = u.user;
    r->pass = u.pass;
    r->port = u.port;
    c->impl = r;
    if (probe__is_ip(r->host)) {
        connect_to(r, r->host);
        return;
    }
    int rc = 0;
    r->res = probe__resolve(c->loop, r->host, NULL, on_resolved, r, &rc);
    if (r->res == NULL)
        on_resolved(r, rc, NULL);
}

static void redis_abort(probe_check_t *c)
{
    redis_impl_t *r = c->impl;
    r->c = NULL;
    if (r->res) {
        probe__resolve_cancel(r->res);
    } else if (r->ac) {
        r->freeing = true;
        redisAsyncFree(r->ac); /* pending callbacks get NULL replies; nothing is posted */
    }
    impl_free(r);
}

static void redis_prepare(const cfg_probe_t *p)
{
    redis_url_t u;
    if (url_parse(p->url, &u) == 0)
        cv_secret_register(u.pass);
    url_free(&u);
}

const probe_type_t probe__redis = {"redis", redis_prepare, redis_start, redis_abort};
