/* Configuration: the libcyaml schema of the YAML file. Keys that libcyaml cannot express
 * (durations, sizes, string-or-list, maps) are CYAML_FIELD_IGNORE here and read by
 * config_yaml.c from the libyaml tree. */
#include "core/config_schema.h"

#include <stddef.h>

#define STR(k, s, m)     CYAML_FIELD_STRING_PTR(k, CYAML_FLAG_OPTIONAL, s, m, 0, CYAML_UNLIMITED)
#define STR_REQ(k, s, m) CYAML_FIELD_STRING_PTR(k, CYAML_FLAG_DEFAULT, s, m, 0, CYAML_UNLIMITED)
#define INT(k, s, m)     CYAML_FIELD_INT(k, CYAML_FLAG_OPTIONAL, s, m)
#define BOOL(k, s, m)    CYAML_FIELD_BOOL(k, CYAML_FLAG_OPTIONAL, s, m)
#define IGN(k)           CYAML_FIELD_IGNORE(k, CYAML_FLAG_OPTIONAL)
#define MAP(k, s, m, f)  CYAML_FIELD_MAPPING(k, CYAML_FLAG_OPTIONAL, s, m, f)
#define STRSEQ(k, s, m, n)                                                                         \
    CYAML_FIELD_SEQUENCE_COUNT(k, CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, s, m, n, &str_entry,   \
                               0, CYAML_UNLIMITED)
#define SEQ(k, s, m, n, e)                                                                         \
    CYAML_FIELD_SEQUENCE_COUNT(k, CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, s, m, n, e, 0,         \
                               CYAML_UNLIMITED)

static const cyaml_schema_value_t str_entry = {
    CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, CYAML_UNLIMITED),
};

/* An empty string maps to 0 in the tables of required enums: it is what the walk writes in
 * place of a missing value (the load has failed by then) and is never accepted from a file. */
static const cyaml_strval_t concurrency_strings[] = {
    {"forbid", CFG_CONC_FORBID}, {"allow", CFG_CONC_ALLOW}, {"replace", CFG_CONC_REPLACE}};
static const cyaml_strval_t outage_strings[] = {{"skip", CFG_OUTAGE_SKIP}, {"run", CFG_OUTAGE_RUN}};
static const cyaml_strval_t role_strings[] = {{"", 0},
                                              {"viewer", CFG_ROLE_VIEWER},
                                              {"operator", CFG_ROLE_OPERATOR},
                                              {"admin", CFG_ROLE_ADMIN}};
static const cyaml_strval_t probe_type_strings[] = {{"", 0},
                                                    {"http", CFG_PROBE_HTTP},
                                                    {"postgres", CFG_PROBE_POSTGRES},
                                                    {"redis", CFG_PROBE_REDIS},
                                                    {"tcp", CFG_PROBE_TCP},
                                                    {"exec", CFG_PROBE_EXEC}};
static const cyaml_strval_t format_strings[] = {{"json", CFG_NOTIFY_JSON},
                                                {"slack", CFG_NOTIFY_SLACK}};
static const cyaml_strval_t event_strings[] = {{"run.failed", CFG_EV_RUN_FAILED},
                                               {"run.recovered", CFG_EV_RUN_RECOVERED},
                                               {"run.timed_out", CFG_EV_RUN_TIMED_OUT},
                                               {"run.slow", CFG_EV_RUN_SLOW},
                                               {"job.auto_disabled", CFG_EV_JOB_AUTO_DISABLED},
                                               {"probe.unhealthy", CFG_EV_PROBE_UNHEALTHY},
                                               {"probe.recovered", CFG_EV_PROBE_RECOVERED}};

#define ENUM(k, flags, s, m, t) CYAML_FIELD_ENUM(k, flags, s, m, t, CYAML_ARRAY_LEN(t))

static const cyaml_schema_field_t retries_fields[] = {
    INT("max", cfg_retries_t, max), IGN("backoff"), IGN("backoff_max"), CYAML_FIELD_END};

static const cyaml_schema_field_t tls_fields[] = {STR_REQ("cert", cfg_tls_t, cert),
                                                  STR_REQ("key", cfg_tls_t, key), CYAML_FIELD_END};

static const cyaml_schema_field_t server_fields[] = {
    STR("listen", cfg_server_t, listen),
    MAP("tls", cfg_server_t, tls, tls_fields),
    IGN("max_body"),
    IGN("request_timeout"),
    IGN("ws_max_queued_bytes"),
    IGN("jobs_cache_bytes"),
    IGN("ws_max_message_bytes"),
    INT("ws_max_clients", cfg_server_t, ws_max_clients),
    INT("ws_max_tickets", cfg_server_t, ws_max_tickets),
    INT("ws_max_tickets_per_caller", cfg_server_t, ws_max_tickets_per_caller),
    INT("ws_max_topics", cfg_server_t, ws_max_topics),
    INT("max_connections", cfg_server_t, max_connections),
    INT("max_streams", cfg_server_t, max_streams),
    INT("max_pending", cfg_server_t, max_pending),
    INT("max_pending_reloads", cfg_server_t, max_pending_reloads),
    INT("jobs_cache_pages", cfg_server_t, jobs_cache_pages),
    INT("max_resets", cfg_server_t, max_resets),
    INT("write_timeout", cfg_server_t, write_timeout),
    CYAML_FIELD_END};

static const cyaml_schema_field_t sqlite_fields[] = {STR("path", cfg_sqlite_t, path),
                                                     CYAML_FIELD_END};

const cyaml_schema_field_t cfg__storage_fields[] = {
    MAP("sqlite", cfg_storage_t, sqlite, sqlite_fields), STR("postgres", cfg_storage_t, postgres),
    STR("spool_dir", cfg_storage_t, spool_dir),          IGN("spool_max"),
    INT("pending_max", cfg_storage_t, pending_max),      CYAML_FIELD_END};

static const cyaml_schema_field_t defaults_fields[] = {
    STR("timezone", cfg_defaults_t, timezone),
    IGN("timeout"),
    IGN("kill_grace"),
    ENUM("concurrency", CYAML_FLAG_OPTIONAL, cfg_defaults_t, concurrency, concurrency_strings),
    ENUM("on_store_outage", CYAML_FLAG_OPTIONAL, cfg_defaults_t, on_store_outage, outage_strings),
    MAP("retries", cfg_defaults_t, retries, retries_fields),
    IGN("shutdown_grace"),
    IGN("max_output"),
    CYAML_FIELD_END};

static const cyaml_schema_field_t limits_fields[] = {
    INT("max_concurrent", cfg_limits_t, max_concurrent),
    INT("max_queued", cfg_limits_t, max_queued),
    INT("notification_history", cfg_limits_t, notification_history),
    IGN("output_read_budget"),
    IGN("live_log"),
    INT("live_output_lines", cfg_limits_t, live_output_lines),
    IGN("ping_max_body"),
    INT("pings_per_minute", cfg_limits_t, pings_per_minute),
    INT("ping_queue", cfg_limits_t, ping_queue),
    INT("ping_checks", cfg_limits_t, ping_checks),
    INT("notify_pending", cfg_limits_t, notify_pending),
    CYAML_FIELD_END};

static const cyaml_schema_field_t retention_fields[] = {
    INT("days", cfg_retention_t, days), INT("max_runs_per_job", cfg_retention_t, max_runs_per_job),
    CYAML_FIELD_END};

static const cyaml_schema_field_t cluster_fields[] = {IGN("heartbeat_timeout"), CYAML_FIELD_END};

const cyaml_schema_field_t cfg__token_fields[] = {
    STR_REQ("name", cfg_token_t, name),
    ENUM("role", CYAML_FLAG_DEFAULT, cfg_token_t, role, role_strings),
    STR("token", cfg_token_t, token), STR("sha256", cfg_token_t, sha256), CYAML_FIELD_END};
const cyaml_schema_value_t cfg__token_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, cfg_token_t, cfg__token_fields)};

static const cyaml_schema_field_t proxy_fields[] = {
    STR_REQ("user_header", cfg_proxy_t, user_header), STRSEQ("from", cfg_proxy_t, from, n_from),
    STR("role_header", cfg_proxy_t, role_header),
    ENUM("default_role", CYAML_FLAG_OPTIONAL, cfg_proxy_t, default_role, role_strings),
    CYAML_FIELD_END};

static const cyaml_schema_field_t auth_fields[] = {
    SEQ("tokens", cfg_auth_t, tokens, n_tokens, &cfg__token_entry),
    MAP("proxy", cfg_auth_t, proxy, proxy_fields),
    INT("rate_per_second", cfg_auth_t, rate_per_second), INT("rate_burst", cfg_auth_t, rate_burst),
    CYAML_FIELD_END};

static const cyaml_schema_field_t link_fields[] = {
    STR_REQ("title", cfg_link_t, title), STR_REQ("url", cfg_link_t, url), CYAML_FIELD_END};
static const cyaml_schema_value_t link_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, cfg_link_t, link_fields)};

static const cyaml_schema_field_t http_fields[] = {STR("method", cfg_http_t, method),
                                                   STR_REQ("url", cfg_http_t, url),
                                                   IGN("headers"),
                                                   STR("body", cfg_http_t, body),
                                                   IGN("expect_status"),
                                                   IGN("timeout"),
                                                   CYAML_FIELD_END};

const cyaml_schema_field_t cfg__ping_fields[] = {IGN("grace"), STR("key", cfg_ping_t, key),
                                                 CYAML_FIELD_END};

const cyaml_schema_field_t cfg__job_fields[] = {
    STR_REQ("name", cfg_job_t, name),
    STR("title", cfg_job_t, title),
    STR("description", cfg_job_t, description),
    STR_REQ("schedule", cfg_job_t, schedule),
    STR("schedule_human", cfg_job_t, schedule_human),
    STR("timezone", cfg_job_t, timezone),
    BOOL("enabled", cfg_job_t, enabled),
    BOOL("locked", cfg_job_t, locked),
    IGN("command"),
    MAP("http", cfg_job_t, http, http_fields),
    MAP("ping", cfg_job_t, ping, cfg__ping_fields),
    STR("workdir", cfg_job_t, workdir),
    IGN("env"),
    IGN("timeout"),
    IGN("kill_grace"),
    MAP("retries", cfg_job_t, retries, retries_fields),
    ENUM("concurrency", CYAML_FLAG_OPTIONAL, cfg_job_t, concurrency, concurrency_strings),
    ENUM("on_store_outage", CYAML_FLAG_OPTIONAL, cfg_job_t, on_store_outage, outage_strings),
    IGN("max_output"),
    IGN("catch_up"),
    INT("auto_disable_after", cfg_job_t, auto_disable_after),
    STRSEQ("requires", cfg_job_t, requires, n_requires),
    STRSEQ("tags", cfg_job_t, tags, n_tags),
    STRSEQ("on_success", cfg_job_t, on_success, n_on_success),
    STRSEQ("on_failure", cfg_job_t, on_failure, n_on_failure),
    STRSEQ("on_complete", cfg_job_t, on_complete, n_on_complete),
    CYAML_FIELD_END};
const cyaml_schema_value_t cfg__job_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, cfg_job_t, cfg__job_fields)};

const cyaml_schema_field_t cfg__probe_fields[] = {
    STR_REQ("name", cfg_probe_t, name),
    ENUM("type", CYAML_FLAG_DEFAULT, cfg_probe_t, type, probe_type_strings),
    IGN("interval"),
    IGN("timeout"),
    IGN("degraded_after"),
    INT("fail_after", cfg_probe_t, fail_after),
    STR("url", cfg_probe_t, url),
    STR("method", cfg_probe_t, method),
    IGN("headers"),
    IGN("expect_status"),
    STR("body_contains", cfg_probe_t, body_contains),
    BOOL("tls_verify", cfg_probe_t, tls_verify),
    STR("conninfo", cfg_probe_t, conninfo),
    STR("address", cfg_probe_t, address),
    IGN("command"),
    CYAML_FIELD_END};
const cyaml_schema_value_t cfg__probe_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, cfg_probe_t, cfg__probe_fields)};

const cyaml_schema_field_t cfg__notify_fields[] = {
    STR_REQ("name", cfg_notify_t, name),
    STR_REQ("url", cfg_notify_t, url),
    ENUM("format", CYAML_FLAG_OPTIONAL, cfg_notify_t, format, format_strings),
    CYAML_FIELD_FLAGS("events", CYAML_FLAG_OPTIONAL, cfg_notify_t, events, event_strings,
                      CYAML_ARRAY_LEN(event_strings)),
    STRSEQ("jobs", cfg_notify_t, jobs, n_jobs),
    CYAML_FIELD_FLOAT("slow_factor", CYAML_FLAG_OPTIONAL, cfg_notify_t, slow_factor),
    CYAML_FIELD_END};
const cyaml_schema_value_t cfg__notify_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, cfg_notify_t, cfg__notify_fields)};

const cyaml_schema_field_t cfg__top_fields[] = {
    MAP("server", cfg_t, server, server_fields),
    MAP("storage", cfg_t, storage, cfg__storage_fields),
    MAP("defaults", cfg_t, defaults, defaults_fields),
    MAP("limits", cfg_t, limits, limits_fields),
    MAP("retention", cfg_t, retention, retention_fields),
    MAP("cluster", cfg_t, cluster, cluster_fields),
    MAP("auth", cfg_t, auth, auth_fields),
    SEQ("links", cfg_t, links, n_links, &link_entry),
    STR("instance", cfg_t, instance),
    SEQ("jobs", cfg_t, jobs, n_jobs, &cfg__job_entry),
    SEQ("probes", cfg_t, probes, n_probes, &cfg__probe_entry),
    SEQ("notify", cfg_t, notify, n_notify, &cfg__notify_entry),
    CYAML_FIELD_END};
const cyaml_schema_value_t cfg__top_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, cfg_t, cfg__top_fields)};
