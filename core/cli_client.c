/* The operator commands: `cronvisor jobs|runs|trigger|logs|cancel|enable|disable`, a client of
 * the daemon's HTTP API (libcurl easy interface) and, for `trigger --wait` and `logs -f`, of its
 * WebSocket /api/events (cli_ws.c). Human tables by default (aligned columns, relative times,
 * never colour: the output is plain text whether or not it is a terminal, so it reads the same
 * through `kubectl exec`); --json prints the API's JSON as it came. The token comes only from
 * $CRONVISOR_TOKEN and is never printed. */
#include "core/cli.h"
#include "core/cli_client.h"
#include "core/util.h"

#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CLI_DEFAULT_URL       "http://127.0.0.1:8080"
#define CLI_MAX_BODY          (64u << 20) /* a response larger than this is not the API's */
#define CLI_WAIT_STEP_MS      10000       /* a run's state is re-read at least this often */
#define CLI_LOG_CHUNK_MAX     100000      /* log requests per run (a bound on a runaway follow) */
#define CLI_FOLLOW_RECONNECTS 100         /* logs -f: reconnections after being dropped as slow */

static const char client_usage_common[] =
    "\n"
    "common options:\n"
    "      --url URL   the daemon's API (default: $CRONVISOR_URL, else " CLI_DEFAULT_URL ")\n"
    "      --json      print the API's JSON as is (for scripts)\n"
    "  The API token is read from $CRONVISOR_TOKEN only (never an argument, never printed).\n"
    "\n"
    "Exit status: 0; 64 bad arguments; 65 refused by the server (409, 422, 423); 66 no such job\n"
    "or run; 69 server unreachable; 70 server error or unexpected answer; 75 rate limited or\n"
    "unavailable (429, 503); 77 bad or missing token, or role too low (401, 403).\n";

typedef struct cli_cmd cli_cmd_t;

typedef struct cli_ctx {
    const cli_cmd_t *cmd;
    char *url; /* without a trailing slash */
    const char *token;
    bool json, wait, follow;
    const char *job, *status, *since;
    long limit;
} cli_ctx_t;

typedef struct resp {
    long status;
    cv_buf_t body;
} resp_t;

struct cli_cmd {
    const char *name;
    const char *args; /* usage line after the name */
    const char *help;
    int nargs; /* positional arguments */
    int (*fn)(cli_ctx_t *c, char **args);
};

/* ---- HTTP ---- */

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    cv_buf_t *b = ud;
    if (b->len + size * n > CLI_MAX_BODY)
        return 0;
    cv_buf_append(b, data, size * n);
    return size * n;
}

/* One request. Returns 0 when a response came (any status), else prints why and returns
 * CV_EXIT_CLI_UNAVAILABLE (or _SOFTWARE). */
static int http(cli_ctx_t *c, const char *method, const char *path, resp_t *r)
{
    memset(r, 0, sizeof(*r));
    CURL *h = curl_easy_init();
    if (h == NULL) {
        fprintf(stderr, "cronvisor %s: cannot start libcurl\n", c->cmd->name);
        return CV_EXIT_CLI_SOFTWARE;
    }
    char *url = cv_sprintf("%s%s", c->url, path);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: application/json");
    char *auth = NULL;
    if (c->token != NULL && c->token[0] != '\0') {
        auth = cv_sprintf("Authorization: Bearer %s", c->token);
        hdrs = curl_slist_append(hdrs, auth);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 120000L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "cronvisor-cli/" CV_VERSION);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    if (auth != NULL) {
        explicit_bzero(auth, strlen(auth));
        free(auth);
    }
    free(url);
    if (rc == CURLE_OK)
        return 0;
    cv_buf_free(&r->body);
    /* curl's message names the host and port, never the token (it is in a header). */
    fprintf(stderr, "cronvisor %s: cannot reach %s: %s\n", c->cmd->name, c->url,
            curl_easy_strerror(rc));
    return rc == CURLE_WRITE_ERROR ? CV_EXIT_CLI_SOFTWARE : CV_EXIT_CLI_UNAVAILABLE;
}

/* Maps a non-2xx answer to an exit status and prints the server's message. */
static int http_error(cli_ctx_t *c, const resp_t *r)
{
    json_t *j = json_loads(r->body.data ? r->body.data : "", 0, NULL);
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    fprintf(stderr, "cronvisor %s: %s (HTTP %ld)\n", c->cmd->name,
            msg ? msg : "the server answered with an error", r->status);
    json_decref(j);
    switch (r->status) {
    case 401:
    case 403:
        if (c->token == NULL || c->token[0] == '\0')
            fprintf(stderr, "cronvisor %s: set CRONVISOR_TOKEN to an API token\n", c->cmd->name);
        return CV_EXIT_CLI_NOPERM;
    case 404:
        return CV_EXIT_CLI_NOT_FOUND;
    case 429:
    case 503:
        return CV_EXIT_CLI_TEMPFAIL;
    default:
        return r->status >= 400 && r->status < 500 ? CV_EXIT_CLI_REFUSED : CV_EXIT_CLI_SOFTWARE;
    }
}

/* A request that must answer 2xx with a JSON object: returns 0 and *out (decref it), or the
 * exit status. */
static int api(cli_ctx_t *c, const char *method, const char *path, json_t **out, resp_t *keep)
{
    resp_t r;
    int e = http(c, method, path, &r);
    if (e != 0)
        return e;
    if (r.status < 200 || r.status > 299) {
        e = http_error(c, &r);
        cv_buf_free(&r.body);
        return e;
    }
    json_error_t jerr;
    *out = json_loads(r.body.data ? r.body.data : "", 0, &jerr);
    if (!json_is_object(*out)) {
        fprintf(stderr, "cronvisor %s: the answer of %s is not the API's JSON\n", c->cmd->name,
                c->url);
        json_decref(*out);
        cv_buf_free(&r.body);
        return CV_EXIT_CLI_SOFTWARE;
    }
    if (keep != NULL)
        *keep = r;
    else
        cv_buf_free(&r.body);
    return 0;
}

static void print_raw(const resp_t *r)
{
    if (r->body.len > 0) {
        fwrite(r->body.data, 1, r->body.len, stdout);
        if (r->body.data[r->body.len - 1] != '\n')
            putchar('\n');
    }
}

static char *escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *copy = cv_strdup(e ? e : "");
    curl_free(e);
    return copy;
}

/* ---- formatting ---- */

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* "3m ago", "in 2h 5m", "-" for null. */
static void rel_time(const char *rfc3339, char *buf, size_t len)
{
    int64_t t;
    if (rfc3339 == NULL || rfc3339[0] == '\0' || cv_parse_rfc3339(rfc3339, &t) != 0) {
        snprintf(buf, len, "-");
        return;
    }
    int64_t d = t - (int64_t)time(NULL);
    bool future = d > 0;
    int64_t a = future ? d : -d;
    char v[32];
    if (a < 60)
        snprintf(v, sizeof(v), "%llds", (long long)a);
    else if (a < 3600)
        snprintf(v, sizeof(v), "%lldm", (long long)(a / 60));
    else if (a < 86400)
        snprintf(v, sizeof(v), "%lldh %lldm", (long long)(a / 3600), (long long)(a / 60 % 60));
    else
        snprintf(v, sizeof(v), "%lldd %lldh", (long long)(a / 86400), (long long)(a / 3600 % 24));
    if (a < 1)
        snprintf(buf, len, "now");
    else
        snprintf(buf, len, future ? "in %s" : "%s ago", v);
}

static void fmt_duration(const json_t *ms_j, char *buf, size_t len)
{
    if (!json_is_integer(ms_j)) {
        snprintf(buf, len, "-");
        return;
    }
    long long ms = (long long)json_integer_value(ms_j);
    if (ms < 1000)
        snprintf(buf, len, "%lldms", ms);
    else if (ms < 60000)
        snprintf(buf, len, "%.1fs", (double)ms / 1000.0);
    else if (ms < 3600000)
        snprintf(buf, len, "%lldm %llds", ms / 60000, ms / 1000 % 60);
    else
        snprintf(buf, len, "%lldh %lldm", ms / 3600000, ms / 60000 % 60);
}

/* A table of strings printed with aligned columns (the last one unpadded). */
typedef struct table {
    size_t ncols, nrows;
    char **cells; /* nrows * ncols */
} table_t;

static void table_row(table_t *t, const char *const *cols)
{
    t->cells = cv_realloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(char *));
    for (size_t i = 0; i < t->ncols; i++) {
        char *s = cv_strdup(cols[i] ? cols[i] : "");
        for (char *p = s; *p; p++) /* a control character would break the table */
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = '?';
        t->cells[t->nrows * t->ncols + i] = s;
    }
    t->nrows++;
}

static void table_print(table_t *t)
{
    size_t *w = cv_calloc(t->ncols, sizeof(size_t));
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t i = 0; i < t->ncols; i++) {
            size_t n = strlen(t->cells[r * t->ncols + i]);
            if (n > w[i])
                w[i] = n;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t i = 0; i < t->ncols; i++) {
            const char *s = t->cells[r * t->ncols + i];
            if (i + 1 < t->ncols)
                printf("%-*s  ", (int)w[i], s);
            else
                printf("%s\n", s);
            free((char *)s);
        }
    }
    free(w);
    free(t->cells);
}

/* ---- run states ---- */

static const char *const final_statuses[] = {"SUCCESS",   "FAILED",  "PARTIAL",  "TIMED_OUT",
                                             "CANCELLED", "SKIPPED", "ABANDONED"};

/* 0 SUCCESS, 1 FAILED, 2 PARTIAL, 3 TIMED_OUT, 4 CANCELLED, 5 SKIPPED, 6 ABANDONED; -1 while
 * the run is not over. */
static int exit_for_status(const char *status)
{
    for (size_t i = 0; status && i < sizeof(final_statuses) / sizeof(final_statuses[0]); i++)
        if (strcmp(status, final_statuses[i]) == 0)
            return (int)i;
    return -1;
}

/* Waits for run id to end: reads the run, then waits for its run.finished on the WebSocket
 * (re-reading at least every CLI_WAIT_STEP_MS in case an event was missed). Returns 0 with the
 * final run in *run, or an exit status. */
static int wait_run(cli_ctx_t *c, cli_ws_t *ws, long long id, json_t **run)
{
    char path[64];
    snprintf(path, sizeof(path), "/api/runs/%lld", id);
    for (;;) {
        json_t *r = NULL;
        int e = api(c, "GET", path, &r, NULL);
        if (e != 0)
            return e;
        if (exit_for_status(jstr(r, "status")) >= 0) {
            *run = r;
            return 0;
        }
        json_decref(r);
        if (ws == NULL) { /* https: no WebSocket client here, re-read the run every second */
            struct timespec one = {.tv_sec = 1};
            nanosleep(&one, NULL);
            continue;
        }
        int64_t until = cv_mono_ns() / 1000000 + CLI_WAIT_STEP_MS;
        for (;;) {
            int64_t left = until - cv_mono_ns() / 1000000;
            if (left <= 0)
                break;
            char *m = NULL;
            int got = cli_ws_recv_text(ws, (int)left, &m);
            if (got < 0) {
                fprintf(stderr, "cronvisor %s: the server closed the WebSocket\n", c->cmd->name);
                return CV_EXIT_CLI_UNAVAILABLE;
            }
            if (got == 0)
                break;
            json_t *ev = json_loads(m, 0, NULL);
            free(m);
            json_t *er = json_object_get(ev, "run");
            bool done = strcmp(jstr(ev, "type"), "run.finished") == 0 &&
                        json_integer_value(json_object_get(er, "id")) == id;
            if (done && exit_for_status(jstr(er, "status")) >= 0) {
                *run = json_incref(er);
                json_decref(ev);
                return 0;
            }
            json_decref(ev);
            if (done)
                break; /* read the record again */
        }
    }
}

/* ---- commands ---- */

/* Every job, following GET /api/jobs's pages (1,000 a page) into one {"jobs": [...]} object. */
static int fetch_jobs(cli_ctx_t *c, json_t **out)
{
    json_t *all = json_array();
    char *cursor = NULL;
    int e = 0;
    do {
        char *esc = cursor ? escape(cursor) : NULL;
        char *path = cv_sprintf("/api/jobs?limit=1000%s%s", esc ? "&cursor=" : "", esc ? esc : "");
        json_t *page = NULL;
        e = api(c, "GET", path, &page, NULL);
        free(path);
        free(esc);
        free(cursor);
        cursor = NULL;
        if (e != 0)
            break;
        json_array_extend(all, json_object_get(page, "jobs"));
        const char *next = json_string_value(json_object_get(page, "next_cursor"));
        cursor = next ? cv_strdup(next) : NULL;
        json_decref(page);
    } while (cursor != NULL);
    if (e != 0) {
        json_decref(all);
        return e;
    }
    *out = json_pack("{s:o}", "jobs", all);
    return 0;
}

static int cmd_jobs(cli_ctx_t *c, char **args)
{
    (void)args;
    json_t *j = NULL;
    int e = fetch_jobs(c, &j);
    if (e != 0)
        return e;
    if (c->json) {
        char *text = json_dumps(j, JSON_COMPACT);
        puts(text);
        free(text);
    } else {
        table_t t = {.ncols = 6};
        const char *head[] = {"NAME", "SCHEDULE", "ENABLED", "NEXT", "LAST", "ACTIVE"};
        table_row(&t, head);
        size_t i;
        json_t *job;
        json_array_foreach(json_object_get(j, "jobs"), i, job)
        {
            char next[48], last[96], ago[48], active[48];
            rel_time(json_string_value(json_object_get(job, "next_fire")), next, sizeof(next));
            json_t *lr = json_object_get(job, "last_run");
            if (json_is_object(lr)) {
                rel_time(json_string_value(json_object_get(lr, "started_at")), ago, sizeof(ago));
                snprintf(last, sizeof(last), "%s %s", jstr(lr, "status"), ago);
            } else {
                snprintf(last, sizeof(last), "-");
            }
            snprintf(active, sizeof(active), "%lld running, %lld queued",
                     (long long)json_integer_value(json_object_get(job, "running")),
                     (long long)json_integer_value(json_object_get(job, "queued")));
            const char *row[] = {jstr(job, "name"),
                                 jstr(job, "schedule"),
                                 json_is_true(json_object_get(job, "enabled")) ? "yes" : "no",
                                 next,
                                 last,
                                 active};
            table_row(&t, row);
        }
        table_print(&t);
    }
    json_decref(j);
    return 0;
}

/* --since: an RFC 3339 instant, or a duration back from now (90s, 30m, 2h, 7d). */
static int since_param(const char *s, char *out, size_t len)
{
    int64_t t;
    if (cv_parse_rfc3339(s, &t) == 0) {
        cv_format_utc(t, out, len);
        return 0;
    }
    char *end;
    long long v = strtoll(s, &end, 10);
    long long unit = 0;
    if (end != s && v >= 0 && end[0] != '\0' && end[1] == '\0')
        unit = end[0] == 's'   ? 1
               : end[0] == 'm' ? 60
               : end[0] == 'h' ? 3600
               : end[0] == 'd' ? 86400
                               : 0;
    if (unit == 0 || v > 100LL * 365 * 86400 / unit)
        return -1;
    cv_format_utc((int64_t)time(NULL) - v * unit, out, len);
    return 0;
}

static int cmd_runs(cli_ctx_t *c, char **args)
{
    (void)args;
    cv_buf_t path = {0};
    if (c->job != NULL) {
        char *e = escape(c->job);
        cv_buf_printf(&path, "/api/jobs/%s/runs?limit=%ld", e, c->limit);
        free(e);
    } else {
        cv_buf_printf(&path, "/api/runs?limit=%ld", c->limit);
    }
    if (c->status != NULL) {
        char *up = cv_strdup(c->status);
        for (char *p = up; *p; p++)
            if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 'a' + 'A');
        char *e = escape(up);
        cv_buf_printf(&path, "&status=%s", e);
        free(e);
        free(up);
    }
    if (c->since != NULL) {
        char ts[40];
        if (since_param(c->since, ts, sizeof(ts)) != 0) {
            fprintf(stderr,
                    "cronvisor runs: --since: '%s' is neither an RFC 3339 time nor a duration "
                    "such as 90s, 30m, 2h, 7d\n",
                    c->since);
            cv_buf_free(&path);
            return CV_EXIT_CLI_USAGE;
        }
        cv_buf_printf(&path, "&since=%s", ts);
    }
    json_t *j = NULL;
    resp_t raw;
    int e = api(c, "GET", path.data, &j, &raw);
    cv_buf_free(&path);
    if (e != 0)
        return e;
    if (c->json) {
        print_raw(&raw);
    } else {
        table_t t = {.ncols = 7};
        const char *head[] = {"ID", "JOB", "STATUS", "TRIGGER", "STARTED", "DURATION", "EXIT"};
        table_row(&t, head);
        size_t i;
        json_t *run;
        json_array_foreach(json_object_get(j, "runs"), i, run)
        {
            char id[32], started[48], dur[48], ex[48];
            snprintf(id, sizeof(id), "%lld",
                     (long long)json_integer_value(json_object_get(run, "id")));
            rel_time(json_string_value(json_object_get(run, "started_at")), started,
                     sizeof(started));
            fmt_duration(json_object_get(run, "duration_ms"), dur, sizeof(dur));
            long long code = (long long)json_integer_value(json_object_get(run, "exit_code"));
            long long sig = (long long)json_integer_value(json_object_get(run, "signal"));
            if (exit_for_status(jstr(run, "status")) < 0 ||
                json_is_null(json_object_get(run, "finished_at")))
                snprintf(ex, sizeof(ex), "-");
            else if (sig > 0)
                snprintf(ex, sizeof(ex), "signal %lld", sig);
            else
                snprintf(ex, sizeof(ex), "%lld", code);
            const char *row[] = {
                id, jstr(run, "job"), jstr(run, "status"), jstr(run, "trigger"), started, dur, ex};
            table_row(&t, row);
        }
        table_print(&t);
        if (i == 0)
            fprintf(stderr, "no runs\n");
    }
    cv_buf_free(&raw.body);
    json_decref(j);
    return 0;
}

static int parse_run_id(cli_ctx_t *c, const char *s, long long *id)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 1) {
        fprintf(stderr, "cronvisor %s: '%s' is not a run id (a positive integer)\n", c->cmd->name,
                s);
        return CV_EXIT_CLI_USAGE;
    }
    *id = v;
    return 0;
}

static void print_run_end(const json_t *run)
{
    char dur[48];
    fmt_duration(json_object_get(run, "duration_ms"), dur, sizeof(dur));
    printf("run %lld of %s: %s", (long long)json_integer_value(json_object_get(run, "id")),
           jstr(run, "job"), jstr(run, "status"));
    if (json_is_integer(json_object_get(run, "exit_code")) &&
        json_integer_value(json_object_get(run, "exit_code")) >= 0)
        printf(", exit %lld", (long long)json_integer_value(json_object_get(run, "exit_code")));
    printf(", %s", dur);
    const char *err = json_string_value(json_object_get(run, "error"));
    if (err != NULL && err[0] != '\0')
        printf(" (%s)", err);
    putchar('\n');
}

static int cmd_trigger(cli_ctx_t *c, char **args)
{
    cli_ws_t *ws = NULL;
    /* Listening before the trigger: its run.finished cannot be missed. Over https (the minimal
     * WebSocket client has no TLS) the run is re-read every second instead. */
    if (c->wait && strncmp(c->url, "https://", 8) != 0) {
        char err[160];
        int code = 0;
        ws = cli_ws_open(c->url, c->token, 30000, &code, err, sizeof(err));
        if (ws == NULL) {
            fprintf(stderr, "cronvisor trigger: %s\n", err);
            return code;
        }
    }
    char *e = escape(args[0]);
    char *path = cv_sprintf("/api/jobs/%s/trigger", e);
    free(e);
    json_t *j = NULL;
    resp_t raw;
    int rc = api(c, "POST", path, &j, &raw);
    free(path);
    if (rc != 0) {
        cli_ws_close(ws);
        return rc;
    }
    long long id = (long long)json_integer_value(json_object_get(j, "run_id"));
    if (!c->wait) {
        if (c->json)
            print_raw(&raw);
        else
            printf("run %lld of %s: %s\n", id, jstr(j, "job"), jstr(j, "status"));
    } else {
        if (!c->json) {
            printf("run %lld of %s: %s, waiting for its end\n", id, jstr(j, "job"),
                   jstr(j, "status"));
            fflush(stdout);
        }
        json_t *run = NULL;
        rc = wait_run(c, ws, id, &run);
        if (rc == 0) {
            if (c->json) {
                char *s = json_dumps(run, JSON_COMPACT);
                puts(s);
                free(s);
            } else {
                print_run_end(run);
            }
            rc = exit_for_status(jstr(run, "status"));
            json_decref(run);
        }
    }
    cli_ws_close(ws);
    cv_buf_free(&raw.body);
    json_decref(j);
    return rc;
}

/* Prints the run's output, all of it but its first `skip` lines (already printed before a
 * reconnection); counts its lines into *lines and sets *complete when the run had ended (the
 * output came from its stored record) and *cut when that record lost its head. */
static int log_fetch(cli_ctx_t *c, long long id, uint64_t skip, uint64_t *lines, bool *complete,
                     bool *cut)
{
    long long offset = 0;
    *lines = 0;
    for (int n = 0; n < CLI_LOG_CHUNK_MAX; n++) {
        char path[96];
        snprintf(path, sizeof(path), "/api/runs/%lld/log?offset=%lld", id, offset);
        json_t *j = NULL;
        resp_t raw;
        int e = api(c, "GET", path, &j, &raw);
        if (e != 0)
            return e;
        json_t *data = json_object_get(j, "data");
        const char *d = json_string_value(data);
        size_t dlen = json_string_length(data), from = 0;
        long long next = (long long)json_integer_value(json_object_get(j, "next_offset"));
        long long size = (long long)json_integer_value(json_object_get(j, "size"));
        *complete = json_is_true(json_object_get(j, "complete"));
        *cut = *complete && json_is_true(json_object_get(j, "truncated"));
        for (size_t i = 0; i < dlen && *lines < skip; i++)
            if (d[i] == '\n') {
                ++*lines;
                from = i + 1;
            }
        if (*lines < skip)
            from = dlen;
        if (c->json && from < dlen)
            print_raw(&raw);
        else if (!c->json && from < dlen)
            fwrite(d + from, 1, dlen - from, stdout);
        for (size_t i = from; i < dlen; i++)
            *lines += d[i] == '\n';
        fflush(stdout);
        bool progressed = next > offset;
        if (progressed)
            offset = next;
        cv_buf_free(&raw.body);
        json_decref(j);
        if (!progressed || offset >= size)
            return 0;
    }
    return 0;
}

static bool run_is_over(cli_ctx_t *c, long long id, int *err)
{
    char path[64];
    snprintf(path, sizeof(path), "/api/runs/%lld", id);
    json_t *run = NULL;
    if ((*err = api(c, "GET", path, &run, NULL)) != 0)
        return true;
    bool over = exit_for_status(jstr(run, "status")) >= 0;
    json_decref(run);
    return over;
}

/* Follows a live run: output events of topic run:<id> after the log read so far. Each event
 * carries its line number (line_no), so the lines the log read returned are skipped and none
 * is printed twice or lost between the read and the events. */
static int follow(cli_ctx_t *c, cli_ws_t *ws, long long id, uint64_t *printed)
{
    uint64_t lines = *printed;
    for (;;) {
        char *m = NULL;
        int got = cli_ws_recv_text(ws, CLI_WAIT_STEP_MS, &m);
        if (got < 0) /* closed (a slow reader dropped before its resync notice was read, a
                      * restart): the caller reconnects and reads what it missed from the log */
            return CV_EXIT_CLI_TEMPFAIL;
        if (got == 0) { /* quiet for a while: has it ended without us hearing? */
            int e = 0;
            if (run_is_over(c, id, &e))
                return e;
            continue;
        }
        json_t *ev = json_loads(m, 0, NULL);
        const char *type = jstr(ev, "type");
        bool end = false;
        if (strcmp(type, "output") == 0 &&
            json_integer_value(json_object_get(ev, "run_id")) == id) {
            json_t *no = json_object_get(ev, "line_no");
            if (!json_is_integer(no) || (uint64_t)json_integer_value(no) > lines) {
                if (json_is_integer(no))
                    lines = *printed = (uint64_t)json_integer_value(no);
                if (c->json)
                    puts(m);
                else
                    printf("%s\n", jstr(ev, "line"));
                fflush(stdout);
            }
        } else if (strcmp(type, "run.finished") == 0) {
            end = json_integer_value(json_object_get(json_object_get(ev, "run"), "id")) == id;
        } else if (strcmp(type, "resync") == 0 && json_object_get(ev, "reason") != NULL) {
            json_decref(ev); /* dropped for falling behind: the caller reconnects */
            free(m);
            return CV_EXIT_CLI_TEMPFAIL;
        }
        json_decref(ev);
        free(m);
        if (end)
            return 0;
    }
}

/* Connects, subscribes to run:<id> and waits for the hub's "subscribed". */
static cli_ws_t *subscribe_run(cli_ctx_t *c, long long id, int *e)
{
    char err[160];
    cli_ws_t *ws = cli_ws_open(c->url, c->token, 30000, e, err, sizeof(err));
    if (ws == NULL) {
        fprintf(stderr, "cronvisor logs: %s\n", err);
        return NULL;
    }
    char sub[96];
    snprintf(sub, sizeof(sub), "{\"type\":\"subscribe\",\"topic\":\"run:%lld\"}", id);
    if (cli_ws_send_text(ws, sub) == 0) {
        for (;;) {
            char *m = NULL;
            if (cli_ws_recv_text(ws, 30000, &m) <= 0)
                break;
            bool ok = strstr(m, "\"subscribed\"") != NULL;
            free(m);
            if (ok)
                return ws;
        }
    }
    fprintf(stderr, "cronvisor logs: no answer to the subscription\n");
    cli_ws_close(ws);
    *e = CV_EXIT_CLI_UNAVAILABLE;
    return NULL;
}

static int cmd_logs(cli_ctx_t *c, char **args)
{
    long long id;
    uint64_t printed = 0, lines = 0;
    int e = parse_run_id(c, args[0], &id);
    if (e != 0)
        return e;
    bool complete = false, cut = false;
    if (!c->follow)
        return log_fetch(c, id, 0, &lines, &complete, &cut);
    (void)run_is_over(c, id, &e); /* a missing run is 66 before any socket is opened */
    if (e != 0)
        return e;
    /* Subscribed first, read second: every line after the read comes as an event. A reader
     * dropped for falling behind (more than server.ws_max_queued_bytes of lines at once)
     * reconnects and takes the lines it missed from the log (skipping those it printed). */
    for (int attempt = 0; attempt < CLI_FOLLOW_RECONNECTS; attempt++) {
        cli_ws_t *ws = subscribe_run(c, id, &e);
        if (ws == NULL)
            return e;
        e = log_fetch(c, id, printed, &lines, &complete, &cut);
        if (lines > printed)
            printed = lines;
        if (e == 0 && complete && cut && attempt > 0)
            fprintf(stderr, "cronvisor logs: the run ended and its stored output lost its head; "
                            "lines may be missing above\n");
        if (e == 0 && !complete)
            e = follow(c, ws, id, &printed);
        cli_ws_close(ws);
        if (e != CV_EXIT_CLI_TEMPFAIL)
            return e;
    }
    fprintf(stderr, "cronvisor logs: the server closed the WebSocket %d times; giving up\n",
            CLI_FOLLOW_RECONNECTS);
    return e;
}

static int cmd_cancel(cli_ctx_t *c, char **args)
{
    long long id;
    int e = parse_run_id(c, args[0], &id);
    if (e != 0)
        return e;
    char path[64];
    snprintf(path, sizeof(path), "/api/runs/%lld/cancel", id);
    json_t *j = NULL;
    resp_t raw;
    if ((e = api(c, "POST", path, &j, &raw)) != 0)
        return e;
    if (c->json)
        print_raw(&raw);
    else
        printf("run %lld: cancellation requested (%s)\n", id, jstr(j, "status"));
    cv_buf_free(&raw.body);
    json_decref(j);
    return 0;
}

static int set_enabled(cli_ctx_t *c, const char *job, bool on)
{
    char *e = escape(job);
    char *path = cv_sprintf("/api/jobs/%s/%s", e, on ? "enable" : "disable");
    free(e);
    json_t *j = NULL;
    resp_t raw;
    int rc = api(c, "POST", path, &j, &raw);
    free(path);
    if (rc != 0)
        return rc;
    if (c->json)
        print_raw(&raw);
    else
        printf("%s: %s\n", jstr(j, "name"),
               json_is_true(json_object_get(j, "enabled")) ? "enabled" : "disabled");
    cv_buf_free(&raw.body);
    json_decref(j);
    return 0;
}

static int cmd_enable(cli_ctx_t *c, char **args)
{
    return set_enabled(c, args[0], true);
}

static int cmd_disable(cli_ctx_t *c, char **args)
{
    return set_enabled(c, args[0], false);
}

static const cli_cmd_t commands[] = {
    {"jobs", "", "Lists the jobs: schedule, enabled, next fire, last run, running and queued.\n", 0,
     cmd_jobs},
    {"runs", "[--job JOB] [--status S[,S...]] [--since DURATION|RFC3339] [--limit N]",
     "Lists runs, newest first.\n"
     "  -j, --job JOB      runs of this job only (66 when there is no such job)\n"
     "  -s, --status S     SUCCESS, FAILED, PARTIAL, TIMED_OUT, CANCELLED, SKIPPED, ABANDONED,\n"
     "                     RUNNING, QUEUED (a comma list)\n"
     "      --since WHEN   started at or after an RFC 3339 time, or this long ago (90s, 30m,\n"
     "                     2h, 7d)\n"
     "  -n, --limit N      at most N runs (1..500, default 20)\n",
     0, cmd_runs},
    {"trigger", "[--wait] JOB",
     "Runs JOB now and prints the new run's id.\n"
     "  -w, --wait   follow the run until it ends (over the WebSocket), print its outcome and "
     "exit\n"
     "               with its status: 0 SUCCESS, 1 FAILED, 2 PARTIAL, 3 TIMED_OUT, 4 CANCELLED,\n"
     "               5 SKIPPED, 6 ABANDONED (with --json: the final run record)\n",
     1, cmd_trigger},
    {"logs", "[-f] RUN",
     "Prints the output of run RUN (an id).\n"
     "  -f, --follow   keep printing the live output until the run ends (over the WebSocket)\n"
     "  With --json: the API's log chunks, one JSON object per line.\n",
     1, cmd_logs},
    {"cancel", "RUN", "Cancels a queued or running run (65 when it already ended).\n", 1,
     cmd_cancel},
    {"enable", "JOB", "Enables JOB (a runtime override; 65 for a locked job).\n", 1, cmd_enable},
    {"disable", "JOB", "Disables JOB (a runtime override; 65 for a locked job).\n", 1, cmd_disable},
};

static const cli_cmd_t *find_cmd(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

bool cli_client_is_command(const char *name)
{
    return find_cmd(name) != NULL;
}

static void print_usage(const cli_cmd_t *cmd, FILE *f)
{
    fprintf(f, "usage: cronvisor %s [--url URL] [--json] %s\n\n%s%s", cmd->name, cmd->args,
            cmd->help, client_usage_common);
}

static char *pick_url(const char *given)
{
    const char *u = given ? given : getenv("CRONVISOR_URL");
    if (u == NULL || u[0] == '\0')
        u = CLI_DEFAULT_URL;
    size_t n = strlen(u);
    while (n > 0 && u[n - 1] == '/')
        n--;
    char *s = cv_malloc(n + 1);
    memcpy(s, u, n);
    s[n] = '\0';
    return s;
}

int cli_client(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'},   {"json", no_argument, NULL, 'J'},
        {"wait", no_argument, NULL, 'w'},        {"follow", no_argument, NULL, 'f'},
        {"job", required_argument, NULL, 'j'},   {"status", required_argument, NULL, 's'},
        {"since", required_argument, NULL, 'S'}, {"limit", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    const cli_cmd_t *cmd = find_cmd(argv[0]);
    cli_ctx_t c = {.cmd = cmd, .limit = 20};
    const char *url = NULL;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":u:wfj:s:n:h", longopts, NULL)) != -1) {
        bool allowed = true;
        switch (opt) {
        case 'u':
            url = optarg;
            break;
        case 'J':
            c.json = true;
            break;
        case 'w':
            c.wait = allowed = cmd->fn == cmd_trigger;
            break;
        case 'f':
            c.follow = allowed = cmd->fn == cmd_logs;
            break;
        case 'j':
            c.job = optarg;
            allowed = cmd->fn == cmd_runs;
            break;
        case 's':
            c.status = optarg;
            allowed = cmd->fn == cmd_runs;
            break;
        case 'S':
            c.since = optarg;
            allowed = cmd->fn == cmd_runs;
            break;
        case 'n': {
            char *end;
            c.limit = strtol(optarg, &end, 10);
            allowed = cmd->fn == cmd_runs;
            if (allowed && (*optarg == '\0' || *end != '\0' || c.limit < 1 || c.limit > 500)) {
                fprintf(stderr, "cronvisor %s: --limit: '%s' is not a number from 1 to 500\n",
                        cmd->name, optarg);
                return CV_EXIT_CLI_USAGE;
            }
            break;
        }
        case 'h':
            print_usage(cmd, stdout);
            return 0;
        case ':':
            fprintf(stderr, "cronvisor %s: %s needs a value\n\n", cmd->name, argv[optind - 1]);
            print_usage(cmd, stderr);
            return CV_EXIT_CLI_USAGE;
        default:
            allowed = false;
        }
        if (!allowed) {
            fprintf(stderr, "cronvisor %s: unknown option '%s'\n\n", cmd->name, argv[optind - 1]);
            print_usage(cmd, stderr);
            return CV_EXIT_CLI_USAGE;
        }
    }
    if (argc - optind != cmd->nargs) {
        fprintf(stderr, "cronvisor %s: %s\n\n", cmd->name,
                argc - optind < cmd->nargs ? "missing argument" : "too many arguments");
        print_usage(cmd, stderr);
        return CV_EXIT_CLI_USAGE;
    }
    c.url = pick_url(url);
    if (strncmp(c.url, "http://", 7) != 0 && strncmp(c.url, "https://", 8) != 0) {
        fprintf(stderr, "cronvisor %s: --url must start with http:// or https://\n", cmd->name);
        free(c.url);
        return CV_EXIT_CLI_USAGE;
    }
    c.token = getenv("CRONVISOR_TOKEN");
    for (const char *p = c.token; p != NULL && *p != '\0'; p++)
        if ((unsigned char)*p < 0x21 || *p == 0x7f) { /* it goes into a header line as is */
            fprintf(stderr,
                    "cronvisor %s: CRONVISOR_TOKEN contains a space or control "
                    "character\n",
                    cmd->name);
            free(c.url);
            return CV_EXIT_CLI_USAGE;
        }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmd->fn(&c, argv + optind);
    curl_global_cleanup();
    free(c.url);
    return rc;
}
