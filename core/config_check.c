/* Configuration: defaults and the checks shared by the YAML and crontab readers. */
#include "core/config_int.h"
#include "core/listen.h"

#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define DEF_LISTEN             "127.0.0.1:8080"
#define DEF_SQLITE             "./data/cronvisor.db"
#define DEF_TIMEZONE           "UTC"
#define DEF_KILL_GRACE         10000
#define DEF_BACKOFF            1000
#define DEF_BACKOFF_MAX        30000
#define DEF_SHUTDOWN_GRACE     30000
#define DEF_MAX_OUTPUT         (1024 * 1024)
#define DEF_RETENTION_DAYS     90
#define DEF_SPOOL_DIR          "./data"
#define DEF_SPOOL_MAX          (64 * 1024 * 1024)
#define DEF_MAX_QUEUED         10000
#define DEF_MAX_BODY           (64 * 1024)
#define DEF_REQUEST_TIMEOUT    10000
#define DEF_WS_MAX_QUEUED      (1024 * 1024)
#define DEF_JOBS_CACHE_BYTES   (1024 * 1024)
#define DEF_WS_MAX_MSG         4096
#define DEF_WS_MAX_CLIENTS     1000
#define DEF_WS_MAX_TOPICS      16
#define DEF_WS_MAX_TICKETS     1024
#define DEF_WS_CALLER_TICKETS  16
#define DEF_OUTPUT_READ_BUDGET (64 * 1024)
#define DEF_LIVE_OUTPUT_LINES  256
#define DEF_LIVE_LOG           (1024 * 1024)
#define DEF_PING_MAX_BODY      (16 * 1024)
#define DEF_PINGS_PER_MINUTE   60
#define DEF_PING_QUEUE         1000
#define DEF_PING_CHECKS        1000
#define DEF_NOTIFY_PENDING     1000
#define DEF_PING_GRACE         (5 * 60 * 1000)
#define DEF_PENDING_MAX        10000

static void dflt_str(char **s, const char *v)
{
    if (*s == NULL)
        *s = cv_strdup(v);
}

static void dflt_i64(int64_t *v, int64_t d)
{
    if (*v == CFG__INHERIT)
        *v = d;
}

static void dflt_int(int *v, int d)
{
    if (*v == CFG__INHERIT)
        *v = d;
}

/* Unset (or 0) WebSocket bounds take their defaults; negative ones are left for check_server. */
static void apply_server_defaults(cfg_server_t *s)
{
    if (s->max_body == CFG__INHERIT || s->max_body == 0)
        s->max_body = DEF_MAX_BODY;
    if (s->request_timeout_ms == CFG__INHERIT || s->request_timeout_ms == 0)
        s->request_timeout_ms = DEF_REQUEST_TIMEOUT;
    if (s->ws_max_queued_bytes == CFG__INHERIT || s->ws_max_queued_bytes == 0)
        s->ws_max_queued_bytes = DEF_WS_MAX_QUEUED;
    if (s->jobs_cache_bytes == CFG__INHERIT || s->jobs_cache_bytes == 0)
        s->jobs_cache_bytes = DEF_JOBS_CACHE_BYTES;
    if (s->ws_max_message_bytes == CFG__INHERIT || s->ws_max_message_bytes == 0)
        s->ws_max_message_bytes = DEF_WS_MAX_MSG;
    if (s->ws_max_clients == 0)
        s->ws_max_clients = DEF_WS_MAX_CLIENTS;
    if (s->ws_max_topics == 0)
        s->ws_max_topics = DEF_WS_MAX_TOPICS;
    if (s->ws_max_tickets == 0)
        s->ws_max_tickets = DEF_WS_MAX_TICKETS;
    if (s->ws_max_tickets_per_caller == 0)
        s->ws_max_tickets_per_caller = DEF_WS_CALLER_TICKETS;
}

static void check_server(cfg__ctx_t *c, const cfg_server_t *s)
{
    cfg_pos_t p = {0};
    if (s->max_body < 1024 || s->max_body > 64 * 1024 * 1024)
        cfg__error_at(c, p, NULL, "server: max_body must be 1KiB to 64MiB");
    if (s->request_timeout_ms < 100 || s->request_timeout_ms > 3600 * 1000)
        cfg__error_at(c, p, NULL, "server: request_timeout must be 100ms to 1h");
    if (s->ws_max_queued_bytes < 4096)
        cfg__error_at(c, p, NULL, "server: ws_max_queued_bytes must be at least 4KiB");
    if (s->jobs_cache_bytes < 0)
        cfg__error_at(c, p, NULL, "server: jobs_cache_bytes must not be negative");
    if (s->ws_max_message_bytes < 256 || s->ws_max_message_bytes > 16 * 1024 * 1024)
        cfg__error_at(c, p, NULL, "server: ws_max_message_bytes must be 256B to 16MiB");
    if (s->ws_max_clients < 0 || s->ws_max_topics < 0)
        cfg__error_at(c, p, NULL, "server: ws_max_clients and ws_max_topics must be positive");
}

static void apply_top_defaults(cfg_t *cfg)
{
    cfg_defaults_t *d = &cfg->defaults;
    dflt_str(&cfg->server.listen, DEF_LISTEN);
    if (cfg->storage.postgres == NULL)
        dflt_str(&cfg->storage.sqlite.path, DEF_SQLITE);
    dflt_str(&cfg->storage.spool_dir, DEF_SPOOL_DIR);
    if (cfg->storage.spool_max <= 0) /* unset (or 0) */
        cfg->storage.spool_max = DEF_SPOOL_MAX;
    apply_server_defaults(&cfg->server);
    if (cfg->limits.max_queued == 0) /* unset */
        cfg->limits.max_queued = DEF_MAX_QUEUED;
    if (cfg->limits.notification_history == 0)
        cfg->limits.notification_history = 200;
    if (cfg->auth.rate_per_second == 0)
        cfg->auth.rate_per_second = 5;
    if (cfg->auth.rate_burst == 0)
        cfg->auth.rate_burst = 20;
    if (cfg->storage.pending_max == 0) /* unset */
        cfg->storage.pending_max = DEF_PENDING_MAX;
    if (d->on_store_outage == CFG_OUTAGE_INHERIT)
        d->on_store_outage = CFG_OUTAGE_SKIP;
    dflt_str(&d->timezone, DEF_TIMEZONE);
    dflt_i64(&d->timeout_ms, 0);
    dflt_i64(&d->kill_grace_ms, DEF_KILL_GRACE);
    if (d->concurrency == CFG_CONC_INHERIT)
        d->concurrency = CFG_CONC_FORBID;
    dflt_int(&d->retries.max, 0);
    dflt_i64(&d->retries.backoff_ms, DEF_BACKOFF);
    dflt_i64(&d->retries.backoff_max_ms, DEF_BACKOFF_MAX);
    dflt_i64(&d->shutdown_grace_ms, DEF_SHUTDOWN_GRACE);
    dflt_i64(&d->max_output, DEF_MAX_OUTPUT);
    dflt_int(&cfg->retention.days, DEF_RETENTION_DAYS);
    if (cfg->limits.output_read_budget <= 0) /* unset (or 0) */
        cfg->limits.output_read_budget = DEF_OUTPUT_READ_BUDGET;
    if (cfg->limits.live_output_lines <= 0) /* unset (or 0) */
        cfg->limits.live_output_lines = DEF_LIVE_OUTPUT_LINES;
    if (cfg->limits.live_log <= 0) /* unset (or 0) */
        cfg->limits.live_log = DEF_LIVE_LOG;
    if (cfg->limits.ping_max_body <= 0) /* unset (or 0) */
        cfg->limits.ping_max_body = DEF_PING_MAX_BODY;
    if (cfg->limits.pings_per_minute <= 0) /* unset (or 0) */
        cfg->limits.pings_per_minute = DEF_PINGS_PER_MINUTE;
    if (cfg->limits.ping_queue == 0) /* unset */
        cfg->limits.ping_queue = DEF_PING_QUEUE;
    if (cfg->limits.ping_checks == 0) /* unset */
        cfg->limits.ping_checks = DEF_PING_CHECKS;
    if (cfg->limits.notify_pending == 0) /* unset */
        cfg->limits.notify_pending = DEF_NOTIFY_PENDING;
    if (cfg->cluster.heartbeat_timeout_ms <= 0) /* unset (or 0s) */
        cfg->cluster.heartbeat_timeout_ms = 30000;
}

static void apply_job_defaults(const cfg_defaults_t *d, cfg_job_t *j)
{
    dflt_str(&j->timezone, d->timezone);
    dflt_i64(&j->timeout_ms, d->timeout_ms);
    dflt_i64(&j->kill_grace_ms, d->kill_grace_ms);
    if (j->concurrency == CFG_CONC_INHERIT)
        j->concurrency = d->concurrency;
    if (j->on_store_outage == CFG_OUTAGE_INHERIT)
        j->on_store_outage = d->on_store_outage;
    dflt_int(&j->retries.max, d->retries.max);
    dflt_i64(&j->retries.backoff_ms, d->retries.backoff_ms);
    dflt_i64(&j->retries.backoff_max_ms, d->retries.backoff_max_ms);
    dflt_i64(&j->max_output, d->max_output);
    dflt_i64(&j->catch_up_ms, 0);
    if (j->action == CFG_ACTION_PING)
        dflt_i64(&j->ping.grace_ms, DEF_PING_GRACE);
    if (j->action == CFG_ACTION_HTTP) {
        dflt_str(&j->http.method, "GET");
        dflt_i64(&j->http.timeout_ms, j->timeout_ms);
    }
}

static void apply_probe_defaults(cfg_probe_t *p)
{
    dflt_i64(&p->interval_ms, 60000);
    dflt_i64(&p->timeout_ms, 5000);
    dflt_i64(&p->degraded_after_ms, 1000);
    dflt_int(&p->fail_after, 1);
    if (p->type == CFG_PROBE_HTTP)
        dflt_str(&p->method, "GET");
}

static cfg_pos_t where(cfg__where_fn fn, void *ud, const cfg_t *cfg, unsigned job, const char *key,
                       int item)
{
    if (fn)
        return fn(ud, cfg, job, key, item);
    return cfg->jobs[job].pos;
}

static void check_job_names(cfg__ctx_t *c, cfg_t *cfg, cfg__where_fn fn, void *ud)
{
    for (unsigned i = 0; i < cfg->n_jobs; i++) {
        const cfg_job_t *j = &cfg->jobs[i];
        if (j->name == NULL || j->name[0] == '\0')
            continue; /* reported as missing by the reader */
        if (!cfg__valid_name(j->name)) {
            cfg__error_at(c, where(fn, ud, cfg, i, "name", -1), NULL,
                          "invalid job name '%s' (use lower-case letters, digits, '-' and '_')",
                          j->name);
            continue;
        }
        const cfg_job_t *first = cv_strmap_get(&cfg->job_index, j->name);
        if (first) {
            cfg__error_at(c, where(fn, ud, cfg, i, "name", -1), j->name,
                          "duplicate job name (first defined at line %d)", first->pos.line);
            continue;
        }
        cv_strmap_put(&cfg->job_index, j->name, (void *)j);
    }
}

static bool check_tz(cfg__ctx_t *c, const char *tz, cfg_pos_t pos, const char *job)
{
    if (c->opts == NULL || c->opts->check_timezone == NULL || tz == NULL)
        return true;
    char msg[256] = "";
    if (c->opts->check_timezone(c->opts->ud, tz, msg, sizeof(msg)) == 0)
        return true;
    cfg__error_at(c, pos, job, "unknown time zone '%s'%s%s", tz, msg[0] ? ": " : "", msg);
    return false;
}

static void check_schedule(cfg__ctx_t *c, cfg_job_t *j)
{
    if (j->schedule == NULL)
        return;
    if (strcmp(j->schedule, "manual") == 0 || strcmp(j->schedule, "@manual") == 0) {
        j->manual = true;
        return;
    }
    if (c->opts == NULL || c->opts->check_schedule == NULL)
        return;
    char msg[256] = "";
    int col = 1;
    if (c->opts->check_schedule(c->opts->ud, j->schedule, j->timezone, j->name, msg, sizeof(msg),
                                &col) == 0)
        return;
    if (col < 1 || (size_t)col > strlen(j->schedule) + 1)
        col = 1;
    cfg_pos_t p = j->schedule_pos;
    p.column += col - 1;
    cfg__error_at(c, p, j->name, "invalid schedule '%s': %s", j->schedule,
                  msg[0] ? msg : "not a cron expression");
}

static const char *nearest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t bestd = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        size_t d = cv_edit_distance(word, cands[i]);
        if (d < bestd) {
            bestd = d;
            best = cands[i];
        }
    }
    size_t limit = strlen(word) / 3 + 1;
    return bestd <= (limit < 2 ? 2 : limit) ? best : NULL;
}

static void check_requires(cfg__ctx_t *c, const cfg_t *cfg, unsigned i, cfg__where_fn fn, void *ud)
{
    const cfg_job_t *j = &cfg->jobs[i];
    const char **names = cv_calloc(cfg->n_probes + 1, sizeof(*names));
    for (unsigned k = 0; k < cfg->n_probes; k++)
        names[k] = cfg->probes[k].name ? cfg->probes[k].name : "";
    for (unsigned r = 0; r < j->n_requires; r++) {
        bool found = strcmp(j->requires[r], "store") == 0; /* the built-in probe */
        for (unsigned k = 0; k < cfg->n_probes && !found; k++)
            found = strcmp(names[k], j->requires[r]) == 0;
        if (found)
            continue;
        const char *hint = nearest(j->requires[r], names, cfg -> n_probes);
        cfg__error_at(c, where(fn, ud, cfg, i, "requires", (int)r), j->name,
                      "requires unknown probe '%s'%s%s%s", j->requires[r],
                      hint ? " — did you mean '" : "", hint ? hint : "", hint ? "'?" : "");
    }
    free(names);
}

/* A job's chain lists (on_success, on_failure, on_complete), by index: the graph's edges. */
static const char *const chain_keys[3] = {"on_success", "on_failure", "on_complete"};

static char **chain_list(const cfg_job_t *j, int k, unsigned *n)
{
    char **const v[3] = {j->on_success, j->on_failure, j->on_complete};
    const unsigned nv[3] = {j->n_on_success, j->n_on_failure, j->n_on_complete};
    *n = nv[k];
    return v[k];
}

static int job_index(const cfg_t *cfg, const char *name)
{
    for (unsigned i = 0; i < cfg->n_jobs; i++)
        if (cfg->jobs[i].name && strcmp(cfg->jobs[i].name, name) == 0)
            return (int)i;
    return -1;
}

static void check_chain_targets(cfg__ctx_t *c, const cfg_t *cfg, unsigned i, cfg__where_fn fn,
                                void *ud)
{
    const cfg_job_t *j = &cfg->jobs[i];
    const char **names = cv_calloc(cfg->n_jobs + 1, sizeof(*names));
    for (unsigned k = 0; k < cfg->n_jobs; k++)
        names[k] = cfg->jobs[k].name ? cfg->jobs[k].name : "";
    for (int k = 0; k < 3; k++) {
        unsigned n;
        char **v = chain_list(j, k, &n);
        for (unsigned r = 0; r < n; r++) {
            if (job_index(cfg, v[r]) >= 0)
                continue;
            const char *hint = nearest(v[r], names, cfg->n_jobs);
            cfg__error_at(c, where(fn, ud, cfg, i, chain_keys[k], (int)r), j->name,
                          "%s names unknown job '%s'%s%s%s", chain_keys[k], v[r],
                          hint ? " — did you mean '" : "", hint ? hint : "", hint ? "'?" : "");
        }
    }
    free(names);
}

/* Depth-first search of the chain graph (0 unvisited, 1 on the path, 2 done). Each back edge is
 * a cycle, reported as "chain cycle a → b → a" on the edge of a (the first job of the cycle the
 * search met) that leads into it. */
typedef struct chain_dfs {
    cfg__ctx_t *c;
    const cfg_t *cfg;
    cfg__where_fn fn;
    void *ud;
    unsigned char *state;
    unsigned *path; /* the jobs from the search's root to the current one */
    int *ek;        /* per path entry: the list (chain_keys) and item its next edge is */
    unsigned *er;
    unsigned depth;
} chain_dfs_t;

/* The edge (list k, item r) from job i (the end of the path) to t, a job on the path. */
static void chain_cycle(chain_dfs_t *d, unsigned i, int k, unsigned r, unsigned t)
{
    unsigned from = 0; /* the cycle is path[from..depth) then t */
    while (d->path[from] != t)
        from++;
    cv_buf_t b = {0};
    for (unsigned p = from; p < d->depth; p++)
        cv_buf_printf(&b, "%s → ", d->cfg->jobs[d->path[p]].name);
    cv_buf_appends(&b, d->cfg->jobs[t].name);
    /* reported where the cycle's first job names the next one: the edge its search followed */
    unsigned first = d->path[from];
    if (first != i) {
        k = d->ek[from];
        r = d->er[from] - 1;
    }
    cfg__error_at(d->c, where(d->fn, d->ud, d->cfg, first, chain_keys[k], (int)r),
                  d->cfg->jobs[first].name, "chain cycle %s", b.data);
    cv_buf_free(&b);
}

static void chain_push(chain_dfs_t *d, unsigned i)
{
    d->state[i] = 1;
    d->path[d->depth] = i;
    d->ek[d->depth] = 0;
    d->er[d->depth] = 0;
    d->depth++;
}

/* Iterative (a chain as long as the job list must not be a recursion as deep). */
static void chain_walk(chain_dfs_t *d, unsigned root)
{
    chain_push(d, root);
    while (d->depth > 0) {
        unsigned lvl = d->depth - 1, i = d->path[lvl], n;
        char **v = chain_list(&d->cfg->jobs[i], d->ek[lvl], &n);
        if (d->er[lvl] >= n) {
            d->er[lvl] = 0;
            if (++d->ek[lvl] == 3) {
                d->state[i] = 2;
                d->depth--;
            }
            continue;
        }
        int k = d->ek[lvl];
        unsigned r = d->er[lvl]++;
        int t = job_index(d->cfg, v[r]);
        if (t < 0 || d->state[t] == 2)
            continue;
        if (d->state[t] == 0)
            chain_push(d, (unsigned)t);
        else
            chain_cycle(d, i, k, r, (unsigned)t);
    }
}

static void check_chains(cfg__ctx_t *c, const cfg_t *cfg, cfg__where_fn fn, void *ud)
{
    for (unsigned i = 0; i < cfg->n_jobs; i++)
        check_chain_targets(c, cfg, i, fn, ud);
    size_t n = cfg->n_jobs + 1;
    chain_dfs_t d = {.c = c,
                     .cfg = cfg,
                     .fn = fn,
                     .ud = ud,
                     .state = cv_calloc(n, 1),
                     .path = cv_calloc(n, sizeof(unsigned)),
                     .ek = cv_calloc(n, sizeof(int)),
                     .er = cv_calloc(n, sizeof(unsigned))};
    for (unsigned i = 0; i < cfg->n_jobs; i++)
        if (d.state[i] == 0)
            chain_walk(&d, i);
    free(d.state);
    free(d.path);
    free(d.ek);
    free(d.er);
}

static void check_jobs(cfg__ctx_t *c, cfg_t *cfg, cfg__where_fn fn, void *ud)
{
    check_job_names(c, cfg, fn, ud);
    for (unsigned i = 0; i < cfg->n_jobs; i++) {
        cfg_job_t *j = &cfg->jobs[i];
        bool tz_ok = check_tz(c, j->timezone, where(fn, ud, cfg, i, "timezone", -1), j->name);
        apply_job_defaults(&cfg->defaults, j);
        if (tz_ok)
            check_schedule(c, j);
        check_requires(c, cfg, i, fn, ud);
        if (j->retries.backoff_max_ms < j->retries.backoff_ms)
            cfg__error_at(c, where(fn, ud, cfg, i, "retries", -1), j->name,
                          "retries: backoff_max is shorter than backoff");
    }
    check_chains(c, cfg, fn, ud);
}

static const char *probe_needs(const cfg_probe_t *p)
{
    switch (p->type) {
    case CFG_PROBE_HTTP:
        return p->url ? NULL : "url";
    case CFG_PROBE_REDIS:
        return p->url ? NULL : "url";
    case CFG_PROBE_POSTGRES:
        return p->conninfo ? NULL : "conninfo";
    case CFG_PROBE_TCP:
        return p->address ? NULL : "address (host:port)";
    case CFG_PROBE_EXEC:
        return (p->shell || p->argv) ? NULL : "command";
    }
    return NULL;
}

static void check_probes(cfg__ctx_t *c, cfg_t *cfg)
{
    static const char *types[] = {"", "http", "postgres", "redis", "tcp", "exec"};
    for (unsigned i = 0; i < cfg->n_probes; i++) {
        cfg_probe_t *p = &cfg->probes[i];
        apply_probe_defaults(p);
        if (p->name == NULL || p->name[0] == '\0' || p->type == 0)
            continue; /* reported as missing by the reader */
        if (!cfg__valid_name(p->name))
            cfg__error_at(c, p->pos, NULL, "probe '%s': invalid name (use [a-z0-9_-])", p->name);
        for (unsigned k = 0; k < i; k++)
            if (cfg->probes[k].name && strcmp(cfg->probes[k].name, p->name) == 0)
                cfg__error_at(c, p->pos, NULL, "probe '%s': duplicate probe name", p->name);
        const char *need = probe_needs(p);
        if (need)
            cfg__error_at(c, p->pos, NULL, "probe '%s': type %s needs '%s'", p->name,
                          types[p->type], need);
        if (p->type == CFG_PROBE_TCP && p->address && strrchr(p->address, ':') == NULL)
            cfg__error_at(c, p->pos, NULL, "probe '%s': address '%s' is not host:port", p->name,
                          p->address);
        if (p->interval_ms <= 0)
            cfg__error_at(c, p->pos, NULL, "probe '%s': interval must be positive", p->name);
    }
}

static void check_notify(cfg__ctx_t *c, cfg_t *cfg)
{
    for (unsigned i = 0; i < cfg->n_notify; i++) {
        cfg_notify_t *n = &cfg->notify[i];
        if (n->events == 0)
            n->events = CFG_EV_DEFAULT;
        if (n->slow_factor <= 0)
            n->slow_factor = 2.0;
        for (unsigned k = 0; k < n->n_jobs; k++)
            if (cfg_find_job(cfg, n->jobs[k]) == NULL)
                cfg__error_at(c, n->pos, NULL, "notify '%s': unknown job '%s' in jobs",
                              n->name ? n->name : "", n->jobs[k]);
        for (unsigned k = 0; n->name && k < i; k++)
            if (cfg->notify[k].name && strcmp(cfg->notify[k].name, n->name) == 0)
                cfg__error_at(c, n->pos, NULL, "notify '%s': duplicate name", n->name);
    }
}

static bool is_hex64(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!isxdigit((unsigned char)s[n]))
            return false;
    return n == 64;
}

static void check_tokens(cfg__ctx_t *c, cfg_t *cfg)
{
    for (unsigned i = 0; i < cfg->auth.n_tokens; i++) {
        cfg_token_t *t = &cfg->auth.tokens[i];
        const char *name = t->name ? t->name : "";
        if (t->token && t->sha256)
            cfg__error_at(c, t->pos, NULL, "token '%s': set either token or sha256, not both",
                          name);
        else if (!t->token && !t->sha256)
            cfg__error_at(c, t->pos, NULL, "token '%s': needs token or sha256", name);
        if (t->token && t->token[0] == '\0')
            cfg__error_at(c, t->pos, NULL, "token '%s': token is empty (is its variable set?)",
                          name);
        if (t->sha256 && !is_hex64(t->sha256))
            cfg__error_at(c, t->pos, NULL, "token '%s': sha256 must be 64 hex digits", name);
        for (char *p = t->sha256; p && *p; p++)
            *p = (char)tolower((unsigned char)*p);
    }
}

/* 0 means the server's default for each; a negative bound is a mistake. */
static void check_server_limits(cfg__ctx_t *c, cfg_t *cfg, cfg__where_fn fn, void *ud)
{
    const struct {
        const char *key;
        int v;
    } keys[] = {{"server.max_connections", cfg->server.max_connections},
                {"server.max_streams", cfg->server.max_streams},
                {"server.max_pending", cfg->server.max_pending},
                {"server.max_pending_reloads", cfg->server.max_pending_reloads},
                {"server.jobs_cache_pages", cfg->server.jobs_cache_pages},
                {"server.max_resets", cfg->server.max_resets},
                {"server.write_timeout", cfg->server.write_timeout},
                {"limits.max_queued", cfg->limits.max_queued},
                {"limits.notification_history", cfg->limits.notification_history},
                {"server.ws_max_tickets", cfg->server.ws_max_tickets},
                {"server.ws_max_tickets_per_caller", cfg->server.ws_max_tickets_per_caller},
                {"limits.ping_queue", cfg->limits.ping_queue},
                {"limits.ping_checks", cfg->limits.ping_checks},
                {"limits.notify_pending", cfg->limits.notify_pending},
                {"auth.rate_per_second", cfg->auth.rate_per_second},
                {"auth.rate_burst", cfg->auth.rate_burst}};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (keys[i].v >= 0)
            continue;
        cfg_pos_t p = fn ? fn(ud, cfg, UINT_MAX, keys[i].key, -1) : (cfg_pos_t){0};
        cfg__error_at(c, p, NULL, "%s must be 0 (the default) or more, not %d", keys[i].key,
                      keys[i].v);
    }
}

/* What `run` refuses (http/auth.c applies the same core/listen.c rule): an API without tokens on
 * a non-loopback address. */
static void check_listen(cfg__ctx_t *c, const cfg_t *cfg, cfg__where_fn fn, void *ud)
{
    char *msg = NULL;
    if (cv_listen_allowed(cfg->server.listen, cfg->auth.n_tokens, &msg) != 0) {
        cfg_pos_t p = fn ? fn(ud, cfg, UINT_MAX, "server.listen", -1) : (cfg_pos_t){0};
        cfg__error_at(c, p, NULL, "server.listen: %s", msg);
    }
    free(msg);
}

void cfg__finish(cfg__ctx_t *c, cfg_t *cfg, cfg__where_fn fn, void *ud)
{
    check_server_limits(c, cfg, fn, ud);
    apply_top_defaults(cfg);
    if (cfg->storage.postgres && cfg->storage.sqlite.path) {
        cfg_pos_t p = fn ? fn(ud, cfg, UINT_MAX, "storage", -1) : (cfg_pos_t){0};
        cfg__error_at(c, p, NULL, "storage: choose sqlite or postgres, not both");
    }
    if (fn)
        check_tz(c, cfg->defaults.timezone, fn(ud, cfg, UINT_MAX, "defaults.timezone", -1), NULL);
    check_probes(c, cfg);
    check_jobs(c, cfg, fn, ud);
    check_notify(c, cfg);
    check_tokens(c, cfg);
    check_server(c, &cfg->server);
    check_listen(c, cfg, fn, ud);
}
