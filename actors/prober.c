/* The prober: schedules, deadlines, statuses, observers, refresh requests and the built-in store
 * probe. How each type checks lives in actors/probe_*.c (see actors/probe_int.h). */
#include "actors/prober.h"
#include "actors/probe_int.h"
#include "core/cfgdiff.h"
#include "core/log.h"
#include "actors/store_actor.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct pprobe {
    struct prober *p;
    size_t idx;
    const cfg_probe_t *cfg;
    cfgref_t *ref; /* the snapshot cfg points into (NULL: the store probe) */
    const probe_type_t *type;
    health_result_t res;
    uv_timer_t interval, deadline;
    int64_t min_latency_ms; /* set when the deadline ends a check */
    probe_check_t *check;   /* the check in flight, or NULL */
    int64_t start_ns;
    uint64_t seq;
    int closing; /* a probe removed by a reload: its handles not yet closed */
} pprobe_t;

/* A refresh request waiting for checks to complete. */
typedef struct waiter {
    cv_list_t link;
    cv_actor_t *reply_to;
    uint64_t corr;
    char *only; /* the probe asked for, or NULL: all */
    bool *pending;
    size_t left;
} waiter_t;

struct prober {
    cv_actor_t *actor;
    uv_loop_t *loop;
    cfgref_t *cfg;
    cfg_probe_t store_cfg;
    cv_actor_t *store;
    bool store_passive; /* the store probe follows MSG_STORE_STATE, checked at start only */
    cv_live_t *live;    /* ended at close: store answers still in flight then post nothing */
    httpc_t *http;
    pprobe_t **probes; /* the store probe (if any) first */
    size_t n;
    bool started;
    cv_actor_t *observers[PROBER_MAX_OBSERVERS];
    size_t nobservers;
    cv_list_t waiters;
    uint64_t checks;
    size_t open_handles;
    bool closing;
    void (*close_cb)(void *ud);
    void *close_ud;
};

/* ---- the store probe ----
 *
 * A STORE_OP_PING request to the store actor; its MSG_STORE_REPLY comes back by message, so the
 * check keeps no state in flight (c->impl stays NULL, abort has nothing to do): the reply names
 * its check by its corr (idx, seq), a stale one is dropped in on_pinged, and the prober's
 * liveness token (in the request) tells the store actor whether there is still a prober to
 * answer (core/actor.h, the rule for replies and deadlines). */

#define PING_IDX_BITS 16

static void store_start(probe_check_t *c)
{
    pprobe_t *pp = c->owner;
    uint64_t corr = (c->seq << PING_IDX_BITS) | (uint64_t)pp->idx;
    msg_store_req_t *m = store_req_new(STORE_OP_PING, c->prober, corr, pp->p->live, NULL);
    cv_actor_post(c->store, &m->hdr);
}

static void store_abort(probe_check_t *c)
{
    (void)c; /* the ping in flight is not the check's: its answer will be found stale */
}

static const probe_type_t probe_store = {"store", NULL, store_start, store_abort};

/* ---- results ---- */

static void post_change(prober_t *p, const pprobe_t *pp, health_status_t prev)
{
    for (size_t i = 0; i < p->nobservers; i++)
        cv_actor_post(p->observers[i], &msg_health_new(&pp->res, prev)->hdr);
}

static void log_result(const pprobe_t *pp, health_status_t prev)
{
    const health_result_t *r = &pp->res;
    const char *msg = r->message ? r->message : "";
    if (prev == r->status) {
        cv_debug("probe", "probe %s check status=%s latency=%lldms: %s", r->probe,
                 health_status_name(r->status), (long long)r->latency_ms, msg);
        return;
    }
    cv_log(r->status == HEALTH_UNHEALTHY ? CV_LOG_WARN : CV_LOG_INFO, "probe",
           "probe %s status=%s previous=%s latency=%lldms: %s", r->probe,
           health_status_name(r->status), health_status_name(prev), (long long)r->latency_ms, msg);
}

static void reply_list(prober_t *p, cv_actor_t *to, uint64_t corr, const char *only)
{
    health_result_t *items = cv_calloc(p->n, sizeof(*items));
    size_t n = 0;
    for (size_t i = 0; i < p->n; i++)
        if (only == NULL || strcmp(only, p->probes[i]->res.probe) == 0)
            items[n++] = p->probes[i]->res; /* shallow: copied by the constructor */
    msg_health_list_t *l = msg_health_list_new(corr, items, n, NULL);
    free(items);
    cv_actor_post(to, &l->hdr);
}

static void waiters_done(prober_t *p, size_t idx)
{
    for (cv_list_t *n = p->waiters.next, *next; n != &p->waiters; n = next) {
        next = n->next;
        waiter_t *w = cv_container_of(n, waiter_t, link);
        if (!w->pending[idx])
            continue;
        w->pending[idx] = false;
        if (--w->left > 0)
            continue;
        reply_list(p, w->reply_to, w->corr, w->only);
        cv_list_remove(&w->link);
        free(w->only);
        free(w->pending);
        free(w);
    }
}

/* Collapses whitespace runs (newlines, tabs) of s in place to single spaces and trims it. */
static char *probe__squash(char *s)
{
    char *w = s;
    bool space = true; /* drops leading whitespace */
    for (const char *r = s; *r; r++) {
        if (isspace((unsigned char)*r)) {
            if (!space)
                *w++ = ' ';
            space = true;
        } else {
            *w++ = *r;
            space = false;
        }
    }
    if (w > s && w[-1] == ' ')
        w--;
    *w = '\0';
    return s;
}

static health_status_t next_status(const pprobe_t *pp, bool ok, int64_t latency)
{
    if (ok)
        return latency > pp->cfg->degraded_after_ms ? HEALTH_DEGRADED : HEALTH_HEALTHY;
    int need = pp->cfg->fail_after > 0 ? pp->cfg->fail_after : 1;
    return pp->res.consecutive_failures >= need ? HEALTH_UNHEALTHY : pp->res.status;
}

static void finish(pprobe_t *pp, bool ok, const char *message)
{
    prober_t *p = pp->p;
    health_result_t *r = &pp->res;
    int64_t latency = (cv_mono_ns() - pp->start_ns) / 1000000;
    /* A libuv timer counts in whole milliseconds from a truncated loop time, so it may fire up
     * to 1 ms before the timeout has fully elapsed on the monotonic clock. */
    if (latency < pp->min_latency_ms)
        latency = pp->min_latency_ms;
    pp->min_latency_ms = 0;
    uv_timer_stop(&pp->deadline);
    free(pp->check);
    pp->check = NULL;
    p->checks++;
    r->consecutive_failures = ok ? 0 : r->consecutive_failures + 1;
    health_status_t prev = r->status, st = next_status(pp, ok, latency);
    free(r->message);
    char *text = st == HEALTH_DEGRADED
                     ? cv_sprintf("%s (slower than %lldms)", message ? message : "answered",
                                  (long long)pp->cfg->degraded_after_ms)
                     : cv_strdup(message ? message : (ok ? "ok" : "failed"));
    r->message = probe__squash(cv_secret_redact(text));
    free(text);
    r->latency_ms = latency;
    r->checked_at = cv_now_ms();
    r->status = st;
    if (st != prev)
        r->since = r->checked_at;
    log_result(pp, prev);
    if (st != prev)
        post_change(p, pp, prev);
    waiters_done(p, pp->idx);
}

void probe__done(probe_check_t *c, bool ok, const char *message)
{
    finish(c->owner, ok, message);
}

static void on_deadline(uv_timer_t *t)
{
    pprobe_t *pp = t->data;
    if (pp->check == NULL)
        return;
    pp->type->abort(pp->check);
    pp->min_latency_ms = pp->cfg->timeout_ms;
    char *msg = cv_sprintf("timed out after %lldms", (long long)pp->cfg->timeout_ms);
    finish(pp, false, msg);
    free(msg);
}

static void start_check(pprobe_t *pp)
{
    prober_t *p = pp->p;
    if (pp->check || p->closing)
        return;
    probe_check_t *c = cv_calloc(1, sizeof(*c));
    c->cfg = pp->cfg;
    c->loop = p->loop;
    c->http = p->http;
    c->store = p->store;
    c->prober = p->actor;
    c->seq = ++pp->seq;
    c->owner = pp;
    pp->check = c;
    uv_update_time(p->loop); /* the deadline counts from now, not from the loop's cached time */
    pp->start_ns = cv_mono_ns();
    uv_timer_start(&pp->deadline, on_deadline, (uint64_t)pp->cfg->timeout_ms, 0);
    pp->type->start(c); /* may finish (and free c) at once */
}

static void on_interval(uv_timer_t *t)
{
    pprobe_t *pp = t->data;
    if (pp->check)
        cv_debug("probe", "probe %s: previous check still running; this one is skipped",
                 pp->res.probe);
    start_check(pp);
}

/* ---- messages ---- */

static pprobe_t *find(prober_t *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->probes[i]->res.probe, name) == 0)
            return p->probes[i];
    return NULL;
}

static void on_query(prober_t *p, msg_health_query_t *q)
{
    if (q->reply_to == NULL)
        return;
    if (q->probe && find(p, q->probe) == NULL) {
        char *err = cv_sprintf("no probe named '%s'", q->probe);
        cv_actor_post(q->reply_to, &msg_health_list_new(q->corr, NULL, 0, err)->hdr);
        free(err);
        return;
    }
    if (q->hdr.type == MSG_HEALTH_GET) {
        reply_list(p, q->reply_to, q->corr, q->probe);
        return;
    }
    waiter_t *w = cv_calloc(1, sizeof(*w));
    w->reply_to = q->reply_to;
    w->corr = q->corr;
    w->only = q->probe ? cv_strdup(q->probe) : NULL;
    w->pending = cv_calloc(p->n ? p->n : 1, sizeof(bool));
    for (size_t i = 0; i < p->n; i++) {
        if (w->only == NULL || strcmp(w->only, p->probes[i]->res.probe) == 0) {
            w->pending[i] = true;
            w->left++;
        }
    }
    cv_list_insert_tail(&p->waiters, &w->link);
    for (size_t i = 0; i < p->n; i++)
        if (w->pending[i])
            start_check(p->probes[i]); /* joins a check already running */
}

static void on_pinged(prober_t *p, const msg_store_reply_t *m)
{
    size_t idx = (size_t)(m->corr & ((1u << PING_IDX_BITS) - 1));
    uint64_t seq = m->corr >> PING_IDX_BITS;
    if (m->op != STORE_OP_PING || idx >= p->n)
        return;
    pprobe_t *pp = p->probes[idx];
    if (pp->type != &probe_store || pp->check == NULL || pp->check->seq != seq)
        return; /* an answer to a check that already timed out */
    char *msg = m->status == -EAGAIN
                    ? cv_strdup("the database is unreachable (the store is degraded)")
                : m->status ? cv_sprintf("store ping failed: %s", strerror(-m->status))
                            : NULL;
    finish(pp, m->status == 0, msg ? msg : "store answered");
    free(msg);
}

/* A passive store probe (SQLite) follows the store's own state, which follows its writes
 * (storage/store.h, store_health_t): no periodic ping wakes an idle daemon. */
static void on_store_state(prober_t *p, const msg_store_state_t *m)
{
    pprobe_t *pp = p->n > 0 && p->probes[0]->type == &probe_store ? p->probes[0] : NULL;
    if (!p->store_passive || pp == NULL || p->closing)
        return;
    pp->start_ns = cv_mono_ns(); /* latency 0: nothing was asked */
    pp->min_latency_ms = 0;
    finish(pp, m->health != STORE_DEGRADED,
           m->health == STORE_DEGRADED    ? "the database is failing writes (the store is degraded)"
           : m->health == STORE_REPLAYING ? "writing back the writes held during a failure"
                                          : "store writes succeed");
}

/* ---- a new configuration ----
 * Probes are matched by name: one whose settings did not change keeps its state (status,
 * history, schedule, a check in flight) and the snapshot it was configured from; one added
 * starts now; one removed or changed is stopped (its check aborted, its handles closed, then
 * freed) and a changed one starts again from unknown. Refresh requests waiting are answered
 * with what is known, since the probes they wait for may be gone. */

static void on_closed(uv_handle_t *h);

static void answer_waiters(prober_t *p)
{
    while (!cv_list_empty(&p->waiters)) {
        waiter_t *w = cv_container_of(p->waiters.next, waiter_t, link);
        cv_list_remove(&w->link);
        reply_list(p, w->reply_to, w->corr, w->only);
        free(w->only);
        free(w->pending);
        free(w);
    }
}

static void drop_probe(pprobe_t *pp)
{
    if (pp->check) {
        pp->type->abort(pp->check);
        free(pp->check);
        pp->check = NULL;
    }
    pp->closing = 2;
    uv_close((uv_handle_t *)&pp->interval, on_closed);
    uv_close((uv_handle_t *)&pp->deadline, on_closed);
}

static const probe_type_t *type_of(const cfg_probe_t *c);
static pprobe_t *new_probe(prober_t *p, const cfg_probe_t *cfg, cfgref_t *ref,
                           const probe_type_t *t);

static void on_config(prober_t *p, msg_exec_config_t *m)
{
    const cfg_t *cfg = m->cfg->cfg;
    answer_waiters(p);
    pprobe_t **next = cv_calloc(cfg->n_probes + 2, sizeof(*next));
    bool *kept = cv_calloc(p->n + 1, sizeof(bool));
    size_t n = 0;
    for (size_t i = 0; i < p->n; i++)
        if (p->probes[i]->type == &probe_store) {
            next[n++] = p->probes[i];
            kept[i] = true;
        }
    for (unsigned k = 0; k < cfg->n_probes; k++) {
        const cfg_probe_t *c = &cfg->probes[k];
        const probe_type_t *t = type_of(c);
        if (t == NULL)
            continue;
        pprobe_t *was = find(p, c->name);
        if (was != NULL && was->type != &probe_store && cfgdiff_probe_eq(was->cfg, c)) {
            kept[was->idx] = true;
            next[n++] = was;
            continue;
        }
        pprobe_t *pp = new_probe(p, c, m->cfg, t);
        next[n++] = pp;
        if (p->started)
            uv_timer_start(&pp->interval, on_interval, 0, (uint64_t)c->interval_ms);
    }
    for (size_t i = 0; i < p->n; i++)
        if (!kept[i])
            drop_probe(p->probes[i]);
    free(kept);
    free(p->probes);
    p->probes = next;
    p->n = n;
    for (size_t i = 0; i < n; i++)
        p->probes[i]->idx = i;
    cfgref_put(p->cfg);
    p->cfg = cfgref_get(m->cfg);
}

static void handle(cv_actor_t *self, cv_msg_t *msg)
{
    prober_t *p = cv_actor_state(self);
    switch (msg->type) {
    case MSG_EXEC_CONFIG:
        on_config(p, (msg_exec_config_t *)msg);
        break;
    case MSG_HEALTH_GET:
    case MSG_HEALTH_REFRESH:
        on_query(p, (msg_health_query_t *)msg);
        break;
    case MSG_STORE_REPLY:
        on_pinged(p, (msg_store_reply_t *)msg);
        break;
    case MSG_STORE_STATE:
        on_store_state(p, (msg_store_state_t *)msg);
        break;
    default:
        cv_warn("probe", "unexpected message type %d", msg->type);
    }
}

/* ---- lifecycle ---- */

static const probe_type_t *type_of(const cfg_probe_t *c)
{
    switch (c->type) {
    case CFG_PROBE_HTTP:
        return &probe__http;
    case CFG_PROBE_POSTGRES:
        return &probe__postgres;
    case CFG_PROBE_REDIS:
        return &probe__redis;
    case CFG_PROBE_TCP:
        return &probe__tcp;
    case CFG_PROBE_EXEC:
        return &probe__exec;
    }
    return NULL;
}

static pprobe_t *new_probe(prober_t *p, const cfg_probe_t *cfg, cfgref_t *ref,
                           const probe_type_t *t)
{
    pprobe_t *pp = cv_calloc(1, sizeof(*pp));
    pp->p = p;
    pp->cfg = cfg;
    pp->ref = ref ? cfgref_get(ref) : NULL;
    pp->type = t;
    pp->res.probe = cv_strdup(cfg->name);
    pp->res.type = t->name;
    pp->res.latency_ms = -1;
    uv_timer_init(p->loop, &pp->interval);
    uv_timer_init(p->loop, &pp->deadline);
    pp->interval.data = pp->deadline.data = pp;
    if (t->prepare)
        t->prepare(cfg);
    return pp;
}

static void free_probe(pprobe_t *pp)
{
    health_result_clear(&pp->res);
    if (pp->ref)
        cfgref_put(pp->ref);
    free(pp);
}

prober_t *prober_create(cv_runtime_t *rt, const prober_opts_t *o)
{
    prober_t *p = cv_calloc(1, sizeof(*p));
    const cfg_t *cfg = o->cfg->cfg;
    p->loop = cv_runtime_loop(rt);
    p->cfg = cfgref_get(o->cfg);
    p->store = o->store;
    p->store_passive = o->store_passive;
    p->live = cv_live_new();
    p->http = httpc_create(p->loop);
    cv_list_init(&p->waiters);
    p->probes = cv_calloc(cfg->n_probes + 1, sizeof(*p->probes));
    p->store_cfg = (cfg_probe_t){.name = "store",
                                 .interval_ms = o->store_interval_ms ? o->store_interval_ms : 30000,
                                 .timeout_ms = o->store_timeout_ms ? o->store_timeout_ms : 5000,
                                 .degraded_after_ms = 1000,
                                 .fail_after = 1};
    if (p->store)
        p->probes[p->n++] = new_probe(p, &p->store_cfg, NULL, &probe_store);
    for (unsigned i = 0; i < cfg->n_probes; i++) {
        const probe_type_t *t = type_of(&cfg->probes[i]);
        if (t)
            p->probes[p->n++] = new_probe(p, &cfg->probes[i], o->cfg, t);
    }
    for (size_t i = 0; i < p->n; i++)
        p->probes[i]->idx = i;
    p->actor = cv_actor_create(rt, "prober", handle, p);
    return p;
}

cv_actor_t *prober_actor(prober_t *p)
{
    return p->actor;
}

int prober_add_observer(prober_t *p, cv_actor_t *observer)
{
    if (p->nobservers >= PROBER_MAX_OBSERVERS)
        return -ENOSPC;
    p->observers[p->nobservers++] = observer;
    return 0;
}

void prober_start(prober_t *p)
{
    p->started = true;
    for (size_t i = 0; i < p->n; i++) {
        pprobe_t *pp = p->probes[i];
        bool once = pp->type == &probe_store && p->store_passive;
        uv_timer_start(&pp->interval, on_interval, 0, once ? 0 : (uint64_t)pp->cfg->interval_ms);
    }
    cv_info("probe", "%zu probe(s) scheduled", p->n);
}

uint64_t prober_checks(const prober_t *p)
{
    return p->checks;
}

static void free_prober(prober_t *p)
{
    void (*cb)(void *) = p->close_cb;
    void *ud = p->close_ud;
    for (size_t i = 0; i < p->n; i++)
        free_probe(p->probes[i]);
    free(p->probes);
    cfgref_put(p->cfg);
    free(p);
    if (cb)
        cb(ud);
}

static void on_closed(uv_handle_t *h)
{
    pprobe_t *pp = h->data;
    prober_t *p = pp->p;
    if (pp->closing) { /* removed by a reload */
        if (--pp->closing == 0)
            free_probe(pp);
        return;
    }
    if (--p->open_handles == 0)
        free_prober(p);
}

static void on_http_closed(void *ud)
{
    prober_t *p = ud;
    if (--p->open_handles == 0)
        free_prober(p);
}

void prober_close(prober_t *p, void (*cb)(void *ud), void *ud)
{
    p->closing = true;
    p->close_cb = cb;
    p->close_ud = ud;
    cv_live_end(p->live);
    cv_actor_destroy(p->actor);
    while (!cv_list_empty(&p->waiters)) {
        waiter_t *w = cv_container_of(p->waiters.next, waiter_t, link);
        cv_list_remove(&w->link);
        free(w->only);
        free(w->pending);
        free(w);
    }
    p->open_handles = 2 * p->n + 1;
    for (size_t i = 0; i < p->n; i++) {
        pprobe_t *pp = p->probes[i];
        if (pp->check) {
            pp->type->abort(pp->check);
            free(pp->check);
            pp->check = NULL;
        }
        uv_close((uv_handle_t *)&pp->interval, on_closed);
        uv_close((uv_handle_t *)&pp->deadline, on_closed);
    }
    httpc_close(p->http, on_http_closed, p);
}

/* ---- helpers for the types ---- */

struct probe_resolve {
    uv_getaddrinfo_t req;
    probe_resolved_cb cb;
    void *ud;
    bool cancelled;
};

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    probe_resolve_t *r = req->data;
    if (!r->cancelled) {
        if (status == 0 && res == NULL)
            status = UV_EAI_NONAME;
        r->cb(r->ud, status, status == 0 ? res->ai_addr : NULL);
    }
    uv_freeaddrinfo(res);
    free(r);
}

probe_resolve_t *probe__resolve(uv_loop_t *loop, const char *host, const char *port,
                                probe_resolved_cb cb, void *ud, int *err)
{
    probe_resolve_t *r = cv_calloc(1, sizeof(*r));
    r->cb = cb;
    r->ud = ud;
    r->req.data = r;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    *err = uv_getaddrinfo(loop, &r->req, on_resolved, host, port, &hints);
    if (*err != 0) {
        free(r);
        return NULL;
    }
    return r;
}

void probe__resolve_cancel(probe_resolve_t *r)
{
    r->cancelled = true;
    uv_cancel((uv_req_t *)&r->req); /* if it already runs, its callback just frees it */
}

bool probe__is_ip(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return uv_inet_pton(AF_INET, host, buf) == 0 || uv_inet_pton(AF_INET6, host, buf) == 0;
}

void probe__addr_text(const struct sockaddr *sa, char *buf, size_t len)
{
    if (sa->sa_family == AF_INET6)
        uv_ip6_name((const struct sockaddr_in6 *)sa, buf, len);
    else
        uv_ip4_name((const struct sockaddr_in *)sa, buf, len);
}
