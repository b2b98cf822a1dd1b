/* GET /metrics: Prometheus text format 0.0.4 (checked with `promtool check metrics`).
 * Counters count since the daemon started; gauges come from the read model. Probe states
 * arrive as MSG_HEALTH (the prober's hook). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "actors/executor.h"
#include "actors/notifier.h"
#include "actors/proc.h"
#include "http/api_int.h"

/* Appends s as a label value (escaping \, " and newlines). */
static void label(cv_buf_t *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            cv_buf_printf(b, "\\%c", *s);
        else if (*s == '\n')
            cv_buf_appends(b, "\\n");
        else
            cv_buf_append(b, s, 1);
    }
}

static void head(cv_buf_t *b, const char *name, const char *type, const char *help)
{
    cv_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A metric with one unlabelled sample. */
static void sample(cv_buf_t *b, const char *name, const char *type, const char *help, uint64_t v)
{
    head(b, name, type, help);
    cv_buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

/* One sample per configured job: name{job="x"} value. */
static void per_job(cv_buf_t *b, api_t *a, const char *name, const char *type, const char *help,
                    double (*value)(api_t *a, api__job_t *j))
{
    head(b, name, type, help);
    for (size_t i = 0; i < a->njobs; i++) {
        cv_buf_printf(b, "%s{job=\"", name);
        label(b, a->jobs[i]->name);
        cv_buf_printf(b, "\"} %.17g\n", value(a, a->jobs[i]));
    }
}

static double v_last_start(api_t *a, api__job_t *j)
{
    int64_t t = api__job_ctr(j)->last_start_ms;
    if (j->last && j->last->started_at > t)
        t = j->last->started_at;
    return (double)t / 1000.0;
}

static double v_last_success(api_t *a, api__job_t *j)
{
    int64_t t = api__job_ctr(j)->last_success_ms;
    if (j->last && j->last->status == RUN_SUCCESS && j->last->finished_at > t)
        t = j->last->finished_at;
    return (double)t / 1000.0;
}

static double v_next(api_t *a, api__job_t *j)
{
    int64_t n = api__job_next(a, j, cv_now_ms() / 1000);
    return n == INT64_MAX ? 0 : (double)n;
}

/* The gap between the next fire and the one after it (0: no schedule that fires by itself). A
 * job whose last success is older than twice this is overdue (deploy/prometheus/alerts.yml). */
static double v_interval(api_t *a, api__job_t *j)
{
    int64_t n = api__job_next(a, j, cv_now_ms() / 1000);
    if (n == INT64_MAX)
        return 0;
    int64_t after = 0; /* a next fire was found: the expression and the zone are parsed */
    if (j->eff.expr == NULL || cron_next(j->eff.expr, j->eff.zone, n, &after) != 0)
        return 0;
    return (double)(after - n);
}

static double v_auto_disabled(api_t *a, api__job_t *j)
{
    return !api__job_enabled(j) && j->auto_disabled ? 1 : 0;
}

static double v_running(api_t *a, api__job_t *j)
{
    return j->own_running; /* each instance reports its own: sums add up across a cluster */
}

static double v_queued(api_t *a, api__job_t *j)
{
    return j->own_queued;
}

static double v_consecutive(api_t *a, api__job_t *j)
{
    return (double)j->stats.consecutive_failures;
}

static double v_enabled(api_t *a, api__job_t *j)
{
    return api__job_enabled(j) ? 1 : 0;
}

static double v_items_ok(api_t *a, api__job_t *j)
{
    return (double)api__job_ctr(j)->items_processed;
}

static double v_items_failed(api_t *a, api__job_t *j)
{
    return (double)api__job_ctr(j)->items_failed;
}

static double v_pings(api_t *a, api__job_t *j)
{
    return (double)api__job_ctr(j)->pings;
}

static double v_ping_missed(api_t *a, api__job_t *j)
{
    return (double)api__job_ctr(j)->ping_missed;
}

static void pings_refused(cv_buf_t *b, api_t *a)
{
    head(b, "cronvisor_ping_refused_total", "counter",
         "Pings refused: unknown job or wrong key (key), body over limits.ping_max_body (size), "
         "over limits.pings_per_minute (rate), limits.ping_queue pings waiting to be recorded "
         "(queue).");
    cv_buf_printf(b,
                  "cronvisor_ping_refused_total{reason=\"key\"} %llu\n"
                  "cronvisor_ping_refused_total{reason=\"size\"} %llu\n"
                  "cronvisor_ping_refused_total{reason=\"rate\"} %llu\n"
                  "cronvisor_ping_refused_total{reason=\"queue\"} %llu\n",
                  (unsigned long long)a->ping_refused_key, (unsigned long long)a->ping_refused_size,
                  (unsigned long long)a->ping_refused_rate,
                  (unsigned long long)a->ping_refused_queue);
    head(b, "cronvisor_ping_queue", "gauge",
         "Pings accepted and not yet recorded (at most limits.ping_queue).");
    cv_buf_printf(b, "cronvisor_ping_queue %zu\n", a->pings_waiting);
    executor_ping_stats_t s;
    executor_ping_stats_get(&s);
    head(b, "cronvisor_ping_checks_dropped_total", "counter",
         "Scheduled instants of monitored jobs not checked for a ping: limits.ping_checks checks "
         "of the job were waiting for their grace.");
    cv_buf_printf(b, "cronvisor_ping_checks_dropped_total %llu\n",
                  (unsigned long long)s.checks_dropped);
}

static void runs_by_status(cv_buf_t *b, api_t *a)
{
    head(b, "cronvisor_job_runs_total", "counter", "Finished runs by final status.");
    for (size_t i = 0; i < a->njobs; i++)
        for (int s = RUN_SUCCESS; s < RUN__COUNT; s++) {
            cv_buf_appends(b, "cronvisor_job_runs_total{job=\"");
            label(b, a->jobs[i]->name);
            cv_buf_printf(b, "\",status=\"%s\"} %llu\n", run_status_name((run_status_t)s),
                          (unsigned long long)api__job_ctr(a->jobs[i])->by_status[s]);
        }
}

static void durations(cv_buf_t *b, api_t *a)
{
    const char *n = "cronvisor_job_duration_seconds";
    head(b, n, "histogram", "Duration of finished runs that started.");
    for (size_t i = 0; i < a->njobs; i++) {
        const api__job_t *j = a->jobs[i];
        const api__job_ctr_t *c = api__job_ctr(j);
        for (int k = 0; k <= API_HIST_BUCKETS; k++) {
            cv_buf_printf(b, "%s_bucket{job=\"", n);
            label(b, j->name);
            if (k < API_HIST_BUCKETS)
                cv_buf_printf(b, "\",le=\"%g\"} %llu\n", api__hist_bounds[k],
                              (unsigned long long)c->hist[k]);
            else
                cv_buf_printf(b, "\",le=\"+Inf\"} %llu\n", (unsigned long long)c->dur_count);
        }
        cv_buf_printf(b, "%s_sum{job=\"", n);
        label(b, j->name);
        cv_buf_printf(b, "\"} %.17g\n%s_count{job=\"", c->dur_sum, n);
        label(b, j->name);
        cv_buf_printf(b, "\"} %llu\n", (unsigned long long)c->dur_count);
    }
}

static void probes(cv_buf_t *b, api_t *a)
{
    static const char *const states[] = {"healthy", "degraded", "unhealthy", "unknown"};
    head(b, "cronvisor_probe_status", "gauge", "1 for the probe's current state.");
    for (size_t i = 0; i < a->nprobes; i++)
        for (size_t s = 0; s < CV_ARRAY_SIZE(states); s++) {
            cv_buf_appends(b, "cronvisor_probe_status{probe=\"");
            label(b, a->probes[i].name);
            cv_buf_printf(b, "\",status=\"%s\"} %d\n", states[s],
                          strcmp(a->probes[i].status, states[s]) == 0);
        }
    head(b, "cronvisor_probe_up", "gauge",
         "1 when the probe's target answers (healthy or degraded).");
    for (size_t i = 0; i < a->nprobes; i++) {
        cv_buf_appends(b, "cronvisor_probe_up{probe=\"");
        label(b, a->probes[i].name);
        cv_buf_printf(b, "\"} %d\n",
                      strcmp(a->probes[i].status, "healthy") == 0 ||
                          strcmp(a->probes[i].status, "degraded") == 0);
    }
    head(b, "cronvisor_probe_latency_seconds", "gauge", "Latency of the probe's latest check.");
    for (size_t i = 0; i < a->nprobes; i++) {
        cv_buf_appends(b, "cronvisor_probe_latency_seconds{probe=\"");
        label(b, a->probes[i].name);
        cv_buf_printf(b, "\"} %.17g\n", (double)a->probes[i].latency_ms / 1000.0);
    }
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (d == NULL)
        return 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n > 3 ? n - 3 : 0; /* ".", ".." and the directory's own fd */
}

static long rss_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = 0;
    fclose(f);
    return rss * sysconf(_SC_PAGESIZE);
}

static void process(cv_buf_t *b, api_t *a)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    head(b, "process_cpu_seconds_total", "counter", "User and system CPU time of the daemon.");
    cv_buf_printf(b, "process_cpu_seconds_total %.6f\n", cpu);
    head(b, "process_resident_memory_bytes", "gauge", "Resident set size of the daemon.");
    cv_buf_printf(b, "process_resident_memory_bytes %ld\n", rss_bytes());
    head(b, "process_open_fds", "gauge", "Open file descriptors of the daemon.");
    cv_buf_printf(b, "process_open_fds %d\n", open_fds());
    head(b, "process_start_time_seconds", "gauge", "Start time of the daemon (Unix seconds).");
    cv_buf_printf(b, "process_start_time_seconds %.3f\n", (double)a->started_ms / 1000.0);
    head(b, "cronvisor_build_info", "gauge", "Version of the daemon (always 1).");
    cv_buf_appends(b, "cronvisor_build_info{version=\"" CV_VERSION "\",instance=\"");
    label(b, a->instance);
    cv_buf_appends(b, "\"} 1\n");
}

static void conns(cv_buf_t *b, api_t *a)
{
    api_server_stats_t s;
    api_server_stats(a->srv, &s);
    head(b, "cronvisor_http_connections", "gauge", "Open HTTP connections (WebSocket included).");
    cv_buf_printf(b, "cronvisor_http_connections %zu\n", s.conns_open);
    head(b, "cronvisor_http_connections_refused_total", "counter",
         "Connections closed at accept because server.max_connections were open.");
    cv_buf_printf(b, "cronvisor_http_connections_refused_total %llu\n",
                  (unsigned long long)s.conns_refused);
    head(b, "cronvisor_http_write_timeouts_total", "counter",
         "Connections closed because their writes made no progress for server.write_timeout.");
    cv_buf_printf(b, "cronvisor_http_write_timeouts_total %llu\n",
                  (unsigned long long)s.write_timeouts);
    head(b, "cronvisor_http_rate_limited_total", "counter",
         "Requests answered 429: auth.rate_per_second / auth.rate_burst of their token used up.");
    cv_buf_printf(b, "cronvisor_http_rate_limited_total %llu\n",
                  (unsigned long long)s.rate_limited);
    head(b, "cronvisor_http_reset_floods_total", "counter",
         "HTTP/2 connections closed for resetting more than server.max_resets requests in 10 s.");
    cv_buf_printf(b, "cronvisor_http_reset_floods_total %llu\n",
                  (unsigned long long)s.reset_floods);
    head(b, "cronvisor_http_store_calls_cancelled_total", "counter",
         "Store reads not done because their client was gone first (HTTP/2 reset, closed).");
    cv_buf_printf(b, "cronvisor_http_store_calls_cancelled_total %llu\n",
                  (unsigned long long)a->store_calls_cancelled);
    head(b, "cronvisor_http_jobs_cache_pages", "gauge",
         "Encoded pages of GET /api/jobs kept (at most server.jobs_cache_pages; emptied when a "
         "job changes).");
    cv_buf_printf(b, "cronvisor_http_jobs_cache_pages %zu\n", a->njobs_cache);
    head(b, "cronvisor_http_jobs_cache_bytes", "gauge",
         "Bytes of the GET /api/jobs pages kept (at most server.jobs_cache_bytes; a larger page "
         "is not kept).");
    cv_buf_printf(b, "cronvisor_http_jobs_cache_bytes %zu\n", a->jobs_cache_bytes);
    head(b, "cronvisor_http_jobs_cache_requests_total", "counter",
         "GET /api/jobs pages answered from the cache (hit) or encoded anew (miss).");
    cv_buf_printf(b, "cronvisor_http_jobs_cache_requests_total{result=\"hit\"} %llu\n",
                  (unsigned long long)a->jobs_cache_hits);
    cv_buf_printf(b, "cronvisor_http_jobs_cache_requests_total{result=\"miss\"} %llu\n",
                  (unsigned long long)a->jobs_cache_misses);
    head(b, "cronvisor_http_pending_requests", "gauge", "Requests waiting for a deferred reply.");
    cv_buf_printf(b, "cronvisor_http_pending_requests %zu\n", s.pending);
    head(b, "cronvisor_http_pending_refused_total", "counter",
         "Requests answered 503 because server.max_pending requests were waiting.");
    cv_buf_printf(b, "cronvisor_http_pending_refused_total %llu\n",
                  (unsigned long long)s.pending_refused);
    head(b, "cronvisor_http_reloads_refused_total", "counter",
         "POST /api/reload answered 429 because server.max_pending_reloads reloads were waiting.");
    cv_buf_printf(b, "cronvisor_http_reloads_refused_total %llu\n",
                  (unsigned long long)a->reloads_refused);
}

static void hub(cv_buf_t *b, api_t *a)
{
    ws_hub_stats_t s = {0};
    if (a->hub)
        ws_hub_stats(a->hub, &s);
    head(b, "cronvisor_ws_clients", "gauge", "Connected WebSocket clients.");
    cv_buf_printf(b, "cronvisor_ws_clients %zu\n", s.clients);
    head(b, "cronvisor_ws_dropped_total", "counter", "WebSocket clients dropped, by reason.");
    cv_buf_printf(b, "cronvisor_ws_dropped_total{reason=\"slow\"} %llu\n",
                  (unsigned long long)s.dropped_slow);
    cv_buf_printf(b, "cronvisor_ws_dropped_total{reason=\"silent\"} %llu\n",
                  (unsigned long long)s.dropped_silent);
    cv_buf_printf(b, "cronvisor_ws_dropped_total{reason=\"flood\"} %llu\n",
                  (unsigned long long)s.dropped_flood);
    head(b, "cronvisor_ws_refused_total", "counter",
         "WebSocket upgrades refused (503): server.ws_max_clients reached.");
    cv_buf_printf(b, "cronvisor_ws_refused_total %llu\n", (unsigned long long)s.refused);
    head(b, "cronvisor_ws_queued_bytes", "gauge",
         "Bytes waiting to be sent to WebSocket clients (each bounded by ws_max_queued_bytes).");
    cv_buf_printf(b, "cronvisor_ws_queued_bytes %llu\n", (unsigned long long)s.queued_bytes);
    auth_ticket_stats_t t = {0};
    if (a->auth)
        auth_ticket_stats(a->auth, &t);
    head(b, "cronvisor_ws_tickets", "gauge",
         "WebSocket tickets issued and not yet used or expired (at most server.ws_max_tickets).");
    cv_buf_printf(b, "cronvisor_ws_tickets %zu\n", t.live);
    head(b, "cronvisor_ws_tickets_dropped_total", "counter",
         "Tickets dropped: the oldest of a caller that asked for more than "
         "server.ws_max_tickets_per_caller.");
    cv_buf_printf(b, "cronvisor_ws_tickets_dropped_total %llu\n", (unsigned long long)t.dropped);
    head(b, "cronvisor_ws_tickets_refused_total", "counter",
         "Ticket requests answered 429: server.ws_max_tickets tickets of others were live.");
    cv_buf_printf(b, "cronvisor_ws_tickets_refused_total %llu\n", (unsigned long long)t.refused);
    head(b, "cronvisor_ws_events_total", "counter", "Events published on the WebSocket stream.");
    cv_buf_printf(b, "cronvisor_ws_events_total %llu\n", (unsigned long long)s.events);
}

static void store_state(cv_buf_t *b, api_t *a)
{
    head(b, "cronvisor_store_up", "gauge",
         "1 when the store reaches its database and its outage spool is empty.");
    cv_buf_printf(b, "cronvisor_store_up %d\n", a->store_health == STORE_UP);
    head(b, "cronvisor_store_spooled_records", "gauge",
         "Run records in the outage spool, not yet in the database.");
    cv_buf_printf(b, "cronvisor_store_spooled_records %llu\n",
                  (unsigned long long)a->store_spooled);
    head(b, "cronvisor_store_spool_bytes", "gauge", "Size of the outage spool's records.");
    cv_buf_printf(b, "cronvisor_store_spool_bytes %llu\n",
                  (unsigned long long)a->store_spool_bytes);
    const cfg_storage_t *st = &a->cfg->cfg->storage;
    head(b, "cronvisor_store_spool_max_bytes", "gauge",
         "Size the outage spool may reach (storage.spool_max).");
    cv_buf_printf(b, "cronvisor_store_spool_max_bytes %lld\n", (long long)st->spool_max);
    if (st->postgres == NULL) {
        head(b, "cronvisor_store_pending_max_records", "gauge",
             "SQLite: records that may be held after a storage failure (storage.pending_max).");
        cv_buf_printf(b, "cronvisor_store_pending_max_records %d\n", st->pending_max);
    } else {
        sample(b, "cronvisor_store_queued_requests", "gauge",
               "PostgreSQL: requests waiting in memory for a lost connection to come back.",
               a->store_queued);
        sample(b, "cronvisor_store_queued_max_requests", "gauge",
               "PostgreSQL: requests that may wait for a lost connection (storage.pending_max).",
               (uint64_t)st->pending_max);
        sample(b, "cronvisor_store_queue_refused_total", "counter",
               "PostgreSQL: requests refused because storage.pending_max of them waited for a "
               "lost connection (records go to the outage spool instead).",
               a->store_queue_refused);
    }
    head(b, "cronvisor_store_spool_dropped_total", "counter",
         "Records refused because the outage spool was full (storage.spool_max).");
    cv_buf_printf(b, "cronvisor_store_spool_dropped_total %llu\n",
                  (unsigned long long)a->store_dropped);
}

static void output(cv_buf_t *b, api_t *a)
{
    proc_stats_t s;
    proc_stats_get(&s);
    head(b, "cronvisor_output_bytes_total", "counter",
         "Bytes read from the jobs' stdout and stderr.");
    cv_buf_printf(b, "cronvisor_output_bytes_total %llu\n", (unsigned long long)s.output_bytes);
    head(b, "cronvisor_output_throttled_total", "counter",
         "Times a job's output pipe used up limits.output_read_budget and waited a loop pass.");
    cv_buf_printf(b, "cronvisor_output_throttled_total %llu\n", (unsigned long long)s.throttled);
    head(b, "cronvisor_output_live_dropped_lines_total", "counter",
         "Output lines not passed to live viewers (limits.live_output_lines); kept in the run.");
    cv_buf_printf(b, "cronvisor_output_live_dropped_lines_total %llu\n",
                  (unsigned long long)a->output_live_dropped);
    head(b, "cronvisor_output_live_log_bytes", "gauge",
         "Output of running runs kept for GET /api/runs/{id}/log (each at most limits.live_log).");
    cv_buf_printf(b, "cronvisor_output_live_log_bytes %llu\n",
                  (unsigned long long)a->live_log_bytes);
    head(b, "cronvisor_output_live_log_truncated_total", "counter",
         "Running runs whose output kept for /log reached limits.live_log (the rest is in the "
         "record once the run ends, within max_output).");
    cv_buf_printf(b, "cronvisor_output_live_log_truncated_total %llu\n",
                  (unsigned long long)a->live_log_truncated);
}

static void notify(cv_buf_t *b)
{
    notifier_stats_t s;
    notifier_stats_get(&s);
    head(b, "cronvisor_notify_pending", "gauge",
         "Webhook deliveries in flight or waiting for a retry (at most limits.notify_pending).");
    cv_buf_printf(b, "cronvisor_notify_pending %llu\n", (unsigned long long)s.pending);
    head(b, "cronvisor_notify_dropped_total", "counter",
         "Notifications not attempted because limits.notify_pending deliveries were pending "
         "(recorded failed).");
    cv_buf_printf(b, "cronvisor_notify_dropped_total %llu\n", (unsigned long long)s.dropped);
}

static void h_metrics(api_req_t *req, void *data)
{
    api_t *a = data;
    if (!api__stats_fresh(a, req, h_metrics))
        return;
    cv_buf_t b = {0};
    runs_by_status(&b, a);
    durations(&b, a);
    per_job(&b, a, "cronvisor_job_last_start_timestamp_seconds", "gauge",
            "Start of the job's latest run (0: never).", v_last_start);
    per_job(&b, a, "cronvisor_job_last_success_timestamp_seconds", "gauge",
            "End of the job's latest successful run (0: none known).", v_last_success);
    per_job(&b, a, "cronvisor_job_next_fire_timestamp_seconds", "gauge",
            "Next scheduled fire instant (0: none: disabled, manual or @reboot).", v_next);
    per_job(&b, a, "cronvisor_job_interval_seconds", "gauge",
            "Seconds between the next fire and the one after it (0: no schedule of its own).",
            v_interval);
    per_job(&b, a, "cronvisor_job_auto_disabled", "gauge",
            "1 while the job is disabled by auto_disable_after (not by a person).",
            v_auto_disabled);
    per_job(&b, a, "cronvisor_job_running", "gauge", "Runs of the job running now.", v_running);
    per_job(&b, a, "cronvisor_job_queued", "gauge", "Runs of the job waiting for a slot.",
            v_queued);
    per_job(&b, a, "cronvisor_job_consecutive_failures", "gauge",
            "Failed runs since the latest success.", v_consecutive);
    per_job(&b, a, "cronvisor_job_enabled", "gauge", "1 when the job is enabled.", v_enabled);
    per_job(&b, a, "cronvisor_job_items_processed_total", "counter",
            "Items reported processed by finished runs.", v_items_ok);
    per_job(&b, a, "cronvisor_job_items_failed_total", "counter",
            "Items reported failed by finished runs.", v_items_failed);
    per_job(&b, a, "cronvisor_ping_received_total", "counter",
            "Runs recorded from pings of monitored jobs (success and /fail ends).", v_pings);
    per_job(&b, a, "cronvisor_ping_missed_total", "counter",
            "Scheduled instants of monitored jobs with no ping within their grace.", v_ping_missed);
    pings_refused(&b, a);
    size_t depth = 0;
    for (size_t i = 0; i < a->njobs; i++)
        depth += (size_t)a->jobs[i]->own_queued;
    head(&b, "cronvisor_queue_depth", "gauge", "Runs waiting under limits.max_concurrent.");
    cv_buf_printf(&b, "cronvisor_queue_depth %zu\n", depth);
    probes(&b, a);
    store_state(&b, a);
    conns(&b, a);
    hub(&b, a);
    output(&b, a);
    notify(&b);
    process(&b, a);
    api_reply_bytes(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len, NULL, 0);
    cv_buf_free(&b);
}

int api__routes_metrics(api_t *a)
{
    api_route_t r = {"GET", "/metrics", h_metrics, a, AUTH_ROLE_VIEWER, 0};
    return api_server_route(a->srv, &r);
}
