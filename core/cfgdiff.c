/* Section-by-section comparison of two configurations. See cfgdiff.h. */
#include "core/cfgdiff.h"

#include <stdlib.h>
#include <string.h>

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool strv_eq(char *const *a, unsigned na, char *const *b, unsigned nb)
{
    if (na != nb)
        return false;
    for (unsigned i = 0; i < na; i++)
        if (!str_eq(a[i], b[i]))
            return false;
    return true;
}

static bool kv_eq(const cfg_kv_t *a, unsigned na, const cfg_kv_t *b, unsigned nb)
{
    if (na != nb)
        return false;
    for (unsigned i = 0; i < na; i++)
        if (!str_eq(a[i].key, b[i].key) || !str_eq(a[i].value, b[i].value))
            return false;
    return true;
}

static bool ints_eq(const int *a, unsigned na, const int *b, unsigned nb)
{
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof(int)) == 0);
}

static bool http_eq(const cfg_http_t *a, const cfg_http_t *b)
{
    return str_eq(a->method, b->method) && str_eq(a->url, b->url) &&
           kv_eq(a->headers, a->n_headers, b->headers, b->n_headers) && str_eq(a->body, b->body) &&
           ints_eq(a->expect_status, a->n_expect_status, b->expect_status, b->n_expect_status) &&
           a->timeout_ms == b->timeout_ms;
}

static bool job_eq(const cfg_job_t *a, const cfg_job_t *b)
{
    return str_eq(a->title, b->title) && str_eq(a->description, b->description) &&
           str_eq(a->schedule, b->schedule) && a->manual == b->manual &&
           str_eq(a->schedule_human, b->schedule_human) && str_eq(a->timezone, b->timezone) &&
           a->enabled == b->enabled && a->locked == b->locked && a->action == b->action &&
           str_eq(a->shell, b->shell) && strv_eq(a->argv, a->argc, b->argv, b->argc) &&
           http_eq(&a->http, &b->http) && a->ping.grace_ms == b->ping.grace_ms &&
           str_eq(a->ping.key, b->ping.key) && str_eq(a->workdir, b->workdir) &&
           kv_eq(a->env, a->n_env, b->env, b->n_env) && a->timeout_ms == b->timeout_ms &&
           a->kill_grace_ms == b->kill_grace_ms && a->retries.max == b->retries.max &&
           a->retries.backoff_ms == b->retries.backoff_ms &&
           a->retries.backoff_max_ms == b->retries.backoff_max_ms &&
           a->concurrency == b->concurrency && a->on_store_outage == b->on_store_outage &&
           a->max_output == b->max_output && a->catch_up_ms == b->catch_up_ms &&
           a->auto_disable_after == b->auto_disable_after &&
           strv_eq(a->requires, a->n_requires, b->requires, b->n_requires) &&
           strv_eq(a->tags, a->n_tags, b->tags, b->n_tags) &&
           strv_eq(a->on_success, a->n_on_success, b->on_success, b->n_on_success) &&
           strv_eq(a->on_failure, a->n_on_failure, b->on_failure, b->n_on_failure) &&
           strv_eq(a->on_complete, a->n_on_complete, b->on_complete, b->n_on_complete);
}

bool cfgdiff_probe_eq(const cfg_probe_t *a, const cfg_probe_t *b)
{
    return a->type == b->type && a->interval_ms == b->interval_ms &&
           a->timeout_ms == b->timeout_ms && a->degraded_after_ms == b->degraded_after_ms &&
           a->fail_after == b->fail_after && str_eq(a->url, b->url) &&
           str_eq(a->method, b->method) &&
           kv_eq(a->headers, a->n_headers, b->headers, b->n_headers) &&
           ints_eq(a->expect_status, a->n_expect_status, b->expect_status, b->n_expect_status) &&
           str_eq(a->body_contains, b->body_contains) && a->tls_verify == b->tls_verify &&
           str_eq(a->conninfo, b->conninfo) && str_eq(a->address, b->address) &&
           str_eq(a->shell, b->shell) && strv_eq(a->argv, a->argc, b->argv, b->argc);
}

bool cfgdiff_notify_eq(const cfg_notify_t *a, const cfg_notify_t *b)
{
    return str_eq(a->url, b->url) && a->format == b->format && a->events == b->events &&
           strv_eq(a->jobs, a->n_jobs, b->jobs, b->n_jobs) && a->slow_factor == b->slow_factor;
}

static bool token_eq(const cfg_token_t *a, const cfg_token_t *b)
{
    return a->role == b->role && str_eq(a->token, b->token) && str_eq(a->sha256, b->sha256);
}

/* Compares two arrays of structs whose first member is the name (char *), element size sz. */
typedef bool (*same_fn)(const void *a, const void *b);

static cfgdiff_count_t count_by_name(const void *old, unsigned n_old, const void *cur,
                                     unsigned n_cur, size_t sz, same_fn same)
{
    cfgdiff_count_t c = {0};
    for (unsigned i = 0; i < n_cur; i++) {
        const void *e = (const char *)cur + i * sz;
        const void *was = NULL;
        for (unsigned k = 0; k < n_old && was == NULL; k++) {
            const void *o = (const char *)old + k * sz;
            if (str_eq(*(char *const *)o, *(char *const *)e))
                was = o;
        }
        if (was == NULL)
            c.added++;
        else if (!same(was, e))
            c.changed++;
    }
    c.removed = n_old + c.added - n_cur;
    return c;
}

static bool job_same(const void *a, const void *b)
{
    return job_eq(a, b);
}
static bool probe_same(const void *a, const void *b)
{
    return cfgdiff_probe_eq(a, b);
}
static bool notify_same(const void *a, const void *b)
{
    return cfgdiff_notify_eq(a, b);
}
static bool token_same(const void *a, const void *b)
{
    return token_eq(a, b);
}

static bool any(cfgdiff_count_t c)
{
    return c.added || c.removed || c.changed;
}

static void add_key(cv_buf_t *b, const char *key)
{
    cv_buf_printf(b, "%s%s", b->len ? ", " : "", key);
}

static bool defaults_eq(const cfg_defaults_t *a, const cfg_defaults_t *b)
{
    return str_eq(a->timezone, b->timezone) && a->timeout_ms == b->timeout_ms &&
           a->kill_grace_ms == b->kill_grace_ms && a->concurrency == b->concurrency &&
           a->on_store_outage == b->on_store_outage && a->retries.max == b->retries.max &&
           a->retries.backoff_ms == b->retries.backoff_ms &&
           a->retries.backoff_max_ms == b->retries.backoff_max_ms &&
           a->shutdown_grace_ms == b->shutdown_grace_ms && a->max_output == b->max_output;
}

static bool links_eq(const cfg_t *a, const cfg_t *b)
{
    if (a->n_links != b->n_links)
        return false;
    for (unsigned i = 0; i < a->n_links; i++)
        if (!str_eq(a->links[i].title, b->links[i].title) ||
            !str_eq(a->links[i].url, b->links[i].url))
            return false;
    return true;
}

static void applied_bounds(const cfg_t *o, const cfg_t *n, cv_buf_t *b);

static bool proxy_changed(const cfg_t *o, const cfg_t *n)
{
    const cfg_proxy_t *op = &o->auth.proxy, *np = &n->auth.proxy;
    return !str_eq(op->user_header, np->user_header) || !str_eq(op->role_header, np->role_header) ||
           op->default_role != np->default_role ||
           !strv_eq(op->from, op->n_from, np->from, np->n_from);
}

static void applied_keys(const cfg_t *o, const cfg_t *n, cv_buf_t *b)
{
    if (o->limits.max_concurrent != n->limits.max_concurrent)
        add_key(b, "limits.max_concurrent");
    if (o->limits.max_queued != n->limits.max_queued)
        add_key(b, "limits.max_queued");
    if (o->limits.output_read_budget != n->limits.output_read_budget)
        add_key(b, "limits.output_read_budget");
    if (o->limits.live_output_lines != n->limits.live_output_lines)
        add_key(b, "limits.live_output_lines");
    if (o->retention.days != n->retention.days ||
        o->retention.max_runs_per_job != n->retention.max_runs_per_job)
        add_key(b, "retention");
    if (!defaults_eq(&o->defaults, &n->defaults))
        add_key(b, "defaults");
    if (!links_eq(o, n))
        add_key(b, "links");
    if (o->cluster.heartbeat_timeout_ms != n->cluster.heartbeat_timeout_ms)
        add_key(b, "cluster.heartbeat_timeout");
    const cfg_proxy_t *op = &o->auth.proxy, *np = &n->auth.proxy;
    if (!str_eq(op->user_header, np->user_header) || !str_eq(op->role_header, np->role_header) ||
        op->default_role != np->default_role ||
        !strv_eq(op->from, op->n_from, np->from, np->n_from))
        add_key(b, "auth.proxy");
    applied_bounds(o, n, b);
}

static void applied_bounds(const cfg_t *o, const cfg_t *n, cv_buf_t *b)
{
    const struct {
        const char *key;
        int64_t was, is;
    } bounds[] = {
        {"limits.notification_history", o->limits.notification_history,
         n->limits.notification_history},
        {"server.max_body", o->server.max_body, n->server.max_body},
        {"server.request_timeout", o->server.request_timeout_ms, n->server.request_timeout_ms},
        {"server.max_connections", o->server.max_connections, n->server.max_connections},
        {"server.max_streams", o->server.max_streams, n->server.max_streams},
        {"server.max_resets", o->server.max_resets, n->server.max_resets},
        {"server.max_pending", o->server.max_pending, n->server.max_pending},
        {"server.max_pending_reloads", o->server.max_pending_reloads,
         n->server.max_pending_reloads},
        {"server.write_timeout", o->server.write_timeout, n->server.write_timeout},
        {"server.jobs_cache_pages", o->server.jobs_cache_pages, n->server.jobs_cache_pages},
        {"server.jobs_cache_bytes", o->server.jobs_cache_bytes, n->server.jobs_cache_bytes},
        {"server.ws_max_queued_bytes", o->server.ws_max_queued_bytes,
         n->server.ws_max_queued_bytes},
        {"server.ws_max_message_bytes", o->server.ws_max_message_bytes,
         n->server.ws_max_message_bytes},
        {"server.ws_max_clients", o->server.ws_max_clients, n->server.ws_max_clients},
        {"server.ws_max_topics", o->server.ws_max_topics, n->server.ws_max_topics},
        {"server.ws_max_tickets", o->server.ws_max_tickets, n->server.ws_max_tickets},
        {"server.ws_max_tickets_per_caller", o->server.ws_max_tickets_per_caller,
         n->server.ws_max_tickets_per_caller},
        {"auth.rate_per_second", o->auth.rate_per_second, n->auth.rate_per_second},
        {"auth.rate_burst", o->auth.rate_burst, n->auth.rate_burst},
        {"limits.ping_max_body", o->limits.ping_max_body, n->limits.ping_max_body},
        {"limits.live_log", o->limits.live_log, n->limits.live_log},
        {"limits.pings_per_minute", o->limits.pings_per_minute, n->limits.pings_per_minute},
        {"limits.ping_queue", o->limits.ping_queue, n->limits.ping_queue},
        {"limits.ping_checks", o->limits.ping_checks, n->limits.ping_checks},
        {"limits.notify_pending", o->limits.notify_pending, n->limits.notify_pending},
    };
    for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++)
        if (bounds[i].was != bounds[i].is)
            add_key(b, bounds[i].key);
}

static void restart_keys(const cfg_t *o, const cfg_t *n, cv_buf_t *b)
{
    if (!str_eq(o->server.listen, n->server.listen))
        add_key(b, "server.listen");
    if (!str_eq(o->server.tls.cert, n->server.tls.cert) ||
        !str_eq(o->server.tls.key, n->server.tls.key))
        add_key(b, "server.tls");
    if (!str_eq(o->storage.sqlite.path, n->storage.sqlite.path))
        add_key(b, "storage.sqlite.path");
    if (!str_eq(o->storage.postgres, n->storage.postgres))
        add_key(b, "storage.postgres");
    if (!str_eq(o->storage.spool_dir, n->storage.spool_dir))
        add_key(b, "storage.spool_dir");
    if (o->storage.spool_max != n->storage.spool_max)
        add_key(b, "storage.spool_max");
    if (o->storage.pending_max != n->storage.pending_max)
        add_key(b, "storage.pending_max");
    if (!str_eq(o->instance, n->instance))
        add_key(b, "instance");
}

void cfgdiff_compare(const cfg_t *old, const cfg_t *new_cfg, cfgdiff_t *out)
{
    memset(out, 0, sizeof(*out));
    out->jobs = count_by_name(old->jobs, old->n_jobs, new_cfg->jobs, new_cfg->n_jobs,
                              sizeof(cfg_job_t), job_same);
    out->tokens = count_by_name(old->auth.tokens, old->auth.n_tokens, new_cfg->auth.tokens,
                                new_cfg->auth.n_tokens, sizeof(cfg_token_t), token_same);
    out->proxy = proxy_changed(old, new_cfg);
    out->probes = count_by_name(old->probes, old->n_probes, new_cfg->probes, new_cfg->n_probes,
                                sizeof(cfg_probe_t), probe_same);
    out->notify = count_by_name(old->notify, old->n_notify, new_cfg->notify, new_cfg->n_notify,
                                sizeof(cfg_notify_t), notify_same);
    cv_buf_t b = {0};
    applied_keys(old, new_cfg, &b);
    if (b.len)
        out->applied = cv_strdup(b.data);
    cv_buf_reset(&b);
    restart_keys(old, new_cfg, &b);
    if (b.len)
        out->restart_only = cv_strdup(b.data);
    cv_buf_free(&b);
}

/* "name +a -r ~c" with the zero counts left out; nothing when the list did not change. */
static void add_count(cv_buf_t *b, const char *name, cfgdiff_count_t c)
{
    if (!any(c))
        return;
    cv_buf_printf(b, "%s%s", b->len ? ", " : "", name);
    if (c.added)
        cv_buf_printf(b, " +%u", c.added);
    if (c.removed)
        cv_buf_printf(b, " -%u", c.removed);
    if (c.changed)
        cv_buf_printf(b, " ~%u", c.changed);
}

char *cfgdiff_summary(const cfgdiff_t *d)
{
    cv_buf_t b = {0};
    add_count(&b, "jobs", d->jobs);
    add_count(&b, "tokens", d->tokens);
    add_count(&b, "probes", d->probes);
    add_count(&b, "notify", d->notify);
    if (d->applied)
        cv_buf_printf(&b, "%s%s", b.len ? ", " : "", d->applied);
    if (d->restart_only)
        cv_buf_printf(&b, "%srestart needed: %s", b.len ? "; " : "", d->restart_only);
    if (b.len == 0)
        cv_buf_appends(&b, "no changes");
    char *s = cv_strdup(b.data);
    cv_buf_free(&b);
    return s;
}

void cfgdiff_free(cfgdiff_t *d)
{
    free(d->applied);
    free(d->restart_only);
    memset(d, 0, sizeof(*d));
}
