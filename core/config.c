/* Configuration: the public API, errors, ${} expansion, durations and sizes. The YAML reader is
 * in config_yaml.c, the crontab reader in config_crontab.c, the shared checks in
 * config_check.c. */
#include "core/config_int.h"
#include "core/log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CFG_MAX_FILE (16 * 1024 * 1024)

/* ---- errors ---- */

static void errors_vadd(cfg_errors_t *errs, const char *file, int line, int column, const char *job,
                        const char *fmt, va_list ap)
{
    if (errs->count == errs->cap) {
        errs->cap = errs->cap ? errs->cap * 2 : 8;
        errs->items = cv_realloc(errs->items, errs->cap * sizeof(*errs->items));
    }
    cfg_error_t *e = &errs->items[errs->count++];
    e->file = cv_strdup(file ? file : "<config>");
    e->line = line;
    e->column = column;
    e->job = job ? cv_strdup(job) : NULL;
    e->message = cv_vsprintf(fmt, ap);
}

/* Appends an error (message printf-style). file may be NULL; job may be NULL. */
static void cfg_errors_add(cfg_errors_t *errs, const char *file, int line, int column,
                           const char *job, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void cfg_errors_add(cfg_errors_t *errs, const char *file, int line, int column,
                           const char *job, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errors_vadd(errs, file, line, column, job, fmt, ap);
    va_end(ap);
}

void cfg__error(cfg__ctx_t *c, int line, int column, const char *job, const char *fmt, ...)
{
    c->nerrors++;
    if (c->errs == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    errors_vadd(c->errs, c->file, line, column, job, fmt, ap);
    va_end(ap);
}

void cfg__error_at(cfg__ctx_t *c, cfg_pos_t pos, const char *job, const char *fmt, ...)
{
    c->nerrors++;
    if (c->errs == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    errors_vadd(c->errs, c->file, pos.line, pos.column, job, fmt, ap);
    va_end(ap);
}

char *cfg_error_format(const cfg_error_t *e)
{
    cv_buf_t b = {0};
    if (e->line > 0)
        cv_buf_printf(&b, "%s:%d:%d: ", e->file, e->line, e->column);
    else
        cv_buf_printf(&b, "%s: ", e->file);
    if (e->job)
        cv_buf_printf(&b, "job '%s': ", e->job);
    cv_buf_appends(&b, e->message);
    char *safe = cv_secret_redact(b.data);
    cv_buf_free(&b);
    return safe;
}

void cfg_errors_format(const cfg_errors_t *errs, cv_buf_t *out)
{
    for (size_t i = 0; i < errs->count; i++) {
        char *line = cfg_error_format(&errs->items[i]);
        cv_buf_appends(out, line);
        cv_buf_appends(out, "\n");
        free(line);
    }
}

void cfg_errors_free(cfg_errors_t *errs)
{
    if (errs == NULL)
        return;
    for (size_t i = 0; i < errs->count; i++) {
        free(errs->items[i].file);
        free(errs->items[i].job);
        free(errs->items[i].message);
    }
    free(errs->items);
    errs->items = NULL;
    errs->count = errs->cap = 0;
}

/* Errors from one load are reported in source order (a stable sort by line, then column). */
static void sort_errors(cfg_errors_t *errs, size_t from)
{
    for (size_t i = from + 1; i < errs->count; i++) {
        cfg_error_t e = errs->items[i];
        size_t j = i;
        while (j > from &&
               (errs->items[j - 1].line > e.line ||
                (errs->items[j - 1].line == e.line && errs->items[j - 1].column > e.column))) {
            errs->items[j] = errs->items[j - 1];
            j--;
        }
        errs->items[j] = e;
    }
}

/* ---- ${} expansion ---- */

static const char *ctx_getenv(cfg__ctx_t *c, const char *name)
{
    if (c->opts && c->opts->getenv)
        return c->opts->getenv(c->opts->ud, name);
    return getenv(name);
}

static size_t var_name_len(const char *s)
{
    size_t n = 0;
    if (!(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return 0;
    while (isalnum((unsigned char)s[n]) || s[n] == '_')
        n++;
    return n;
}

/* Expands one ${...} reference starting at s (pointing after "${"). Returns the length consumed
 * up to and including '}', or 0 on error (reported). */
static size_t expand_ref(cfg__ctx_t *c, const char *s, bool secret, cv_buf_t *out, int line,
                         int col, const char *job)
{
    size_t n = var_name_len(s);
    const char *close = strchr(s, '}');
    if (close == NULL) {
        cfg__error(c, line, col, job, "unterminated '${' (write '$$' for a literal '$')");
        return 0;
    }
    if (n == 0 || (s + n != close && s[n] != ':')) {
        cfg__error(c, line, col, job, "invalid variable reference '${%.*s}'", (int)(close - s), s);
        return 0;
    }
    char *name = cv_strndup(s, n);
    const char *val = ctx_getenv(c, name);
    bool empty = val == NULL || val[0] == '\0';
    size_t ret = (size_t)(close - s) + 1;
    if (s + n == close) {
        if (val)
            cv_buf_appends(out, val);
    } else if (s[n + 1] == '-') {
        if (!empty)
            cv_buf_appends(out, val);
        else
            cv_buf_append(out, s + n + 2, (size_t)(close - (s + n + 2)));
    } else if (s[n + 1] == '?') {
        if (empty) {
            const char *msg = s + n + 2;
            if (msg == close)
                cfg__error(c, line, col, job, "environment variable %s is not set", name);
            else
                cfg__error(c, line, col, job, "environment variable %s is not set: %.*s", name,
                           (int)(close - msg), msg);
            ret = 0;
        } else {
            cv_buf_appends(out, val);
        }
    } else {
        cfg__error(c, line, col, job, "invalid variable reference '${%.*s}' (use ${%s:-default})",
                   (int)(close - s), s, name);
        ret = 0;
    }
    if (secret && !empty)
        cv_secret_register(val);
    free(name);
    return ret;
}

int cfg__expand(cfg__ctx_t *c, const char *s, bool secret, int line, int column, const char *job,
                char **out)
{
    cv_buf_t b = {0};
    int rc = 0;
    bool first_line = true;
    cv_buf_append(&b, "", 0);
    for (const char *p = s; *p;) {
        if (*p == '\n')
            first_line = false;
        if (p[0] != '$' || (p[1] != '$' && p[1] != '{')) {
            cv_buf_append(&b, p++, 1);
            continue;
        }
        if (p[1] == '$') {
            cv_buf_append(&b, "$", 1);
            p += 2;
            continue;
        }
        int col = first_line ? column + (int)(p - s) : column;
        size_t used = expand_ref(c, p + 2, secret, &b, line, col, job);
        if (used == 0) {
            rc = -EINVAL;
            break;
        }
        p += 2 + used;
    }
    if (rc < 0) {
        cv_buf_free(&b);
        *out = NULL;
        return rc;
    }
    *out = b.data;
    return 0;
}

bool cfg__secret_env_name(const char *name)
{
    static const char *words[] = {"SECRET", "TOKEN", "PASSWORD", "KEY"};
    for (size_t i = 0; i < CV_ARRAY_SIZE(words); i++)
        if (strcasestr(name, words[i]))
            return true;
    return false;
}

bool cfg__valid_name(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > 128)
        return false;
    for (; *s; s++)
        if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_' || *s == '-'))
            return false;
    return true;
}

/* ---- durations and sizes ---- */

static bool mul_add(int64_t *acc, int64_t v, int64_t unit)
{
    if (v > INT64_MAX / unit || *acc > INT64_MAX - v * unit)
        return false;
    *acc += v * unit;
    return true;
}

int cfg_parse_duration(const char *s, int64_t *ms)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    if (strcmp(s, "0") == 0 || strcmp(s, "none") == 0 || strcmp(s, "off") == 0) {
        *ms = 0;
        return 0;
    }
    int64_t total = 0;
    const char *p = s;
    if (*p == '\0')
        return -EINVAL;
    while (*p) {
        if (!isdigit((unsigned char)*p))
            return -EINVAL;
        int64_t v = 0;
        while (isdigit((unsigned char)*p)) {
            if (v > (INT64_MAX - 9) / 10)
                return -EINVAL;
            v = v * 10 + (*p++ - '0');
        }
        size_t best = CV_ARRAY_SIZE(units);
        for (size_t i = 0; i < CV_ARRAY_SIZE(units); i++) {
            size_t n = strlen(units[i].unit);
            if (strncmp(p, units[i].unit, n) == 0 && !isalpha((unsigned char)p[n])) {
                best = i;
                break;
            }
        }
        if (best == CV_ARRAY_SIZE(units) || !mul_add(&total, v, units[best].ms))
            return -EINVAL;
        p += strlen(units[best].unit);
    }
    *ms = total;
    return 0;
}

int cfg_parse_size(const char *s, int64_t *bytes)
{
    static const struct {
        const char *unit;
        int64_t mult;
    } units[] = {{"", 1},       {"B", 1},         {"KB", 1000},
                 {"kB", 1000},  {"MB", 1000000},  {"GB", 1000000000},
                 {"KiB", 1024}, {"MiB", 1048576}, {"GiB", 1073741824},
                 {"K", 1024},   {"M", 1048576},   {"G", 1073741824}};
    const char *p = s;
    int64_t v = 0;
    if (!isdigit((unsigned char)*p))
        return -EINVAL;
    while (isdigit((unsigned char)*p)) {
        if (v > (INT64_MAX - 9) / 10)
            return -EINVAL;
        v = v * 10 + (*p++ - '0');
    }
    while (*p == ' ')
        p++;
    for (size_t i = 0; i < CV_ARRAY_SIZE(units); i++) {
        if (strcmp(p, units[i].unit) == 0) {
            int64_t total = 0;
            if (!mul_add(&total, v, units[i].mult))
                return -EINVAL;
            *bytes = total;
            return 0;
        }
    }
    return -EINVAL;
}

/* ---- loading ---- */

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* A crontab's first meaningful line is "KEY=value", "@macro ..." or starts with a cron field;
 * a YAML file's is "key:" or "---". */
static bool looks_like_crontab(const char *data, size_t len)
{
    const char *p = data, *end = data + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        while (p < le && (*p == ' ' || *p == '\t'))
            p++;
        if (p < le && *p != '#' && *p != '\r') {
            if (*p == '@' || *p == '*' || isdigit((unsigned char)*p))
                return true;
            size_t n = 0;
            while (p + n < le && (isalnum((unsigned char)p[n]) || p[n] == '_'))
                n++;
            return n > 0 && p + n < le && p[n] == '=';
        }
        p = eol ? eol + 1 : end;
    }
    return false;
}

int cfg_load_string(const char *data, size_t len, const char *name, const cfg_load_opts_t *opts,
                    cfg_t **out, cfg_errors_t *errs)
{
    cfg__ctx_t c = {.opts = opts, .errs = errs, .file = name ? name : "<config>"};
    size_t first = errs ? errs->count : 0;
    cfg_t *cfg = NULL;
    *out = NULL;
    const char *nul = memchr(data, '\0', len);
    if (nul) {
        int line = 1, col = 1;
        for (const char *p = data; p < nul; p++, col++)
            if (*p == '\n')
                line++, col = 0;
        cfg__error(&c, line, col, NULL, "the file contains a NUL byte");
        return -EINVAL;
    }
    cfg_format_t fmt = opts ? opts->format : CFG_FORMAT_AUTO;
    if (fmt == CFG_FORMAT_AUTO) {
        if (has_suffix(c.file, ".yaml") || has_suffix(c.file, ".yml"))
            fmt = CFG_FORMAT_YAML;
        else
            fmt = looks_like_crontab(data, len) ? CFG_FORMAT_CRONTAB : CFG_FORMAT_YAML;
    }
    if (fmt == CFG_FORMAT_CRONTAB)
        cfg__load_crontab(&c, data, len, &cfg);
    else
        cfg__load_yaml(&c, data, len, &cfg);
    if (errs)
        sort_errors(errs, first);
    if (c.nerrors > 0 || cfg == NULL) {
        if (c.nerrors == 0)
            cfg__error(&c, 1, 1, NULL, "could not load the configuration");
        cfg_free(cfg);
        return -EINVAL;
    }
    cfg__compact_jobs(cfg);
    cv_trim(); /* the loader's trees were freed: give their pages back */
    *out = cfg;
    return 0;
}

static int read_file(const char *path, char **data, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    cv_buf_t b = {0};
    char chunk[65536];
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        if (b.len + (size_t)n > CFG_MAX_FILE) {
            rc = -EFBIG;
            break;
        }
        cv_buf_append(&b, chunk, (size_t)n);
    }
    close(fd);
    if (rc < 0) {
        cv_buf_free(&b);
        return rc;
    }
    *data = b.data ? b.data : cv_strdup("");
    *len = b.len;
    return 0;
}

int cfg_load(const char *path, const cfg_load_opts_t *opts, cfg_t **out, cfg_errors_t *errs)
{
    char *data = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = read_file(path, &data, &len);
    if (rc < 0) {
        if (errs)
            cfg_errors_add(errs, path, 0, 0, NULL, "cannot read the configuration: %s",
                           strerror(-rc));
        return rc;
    }
    rc = cfg_load_string(data, len, path, opts, out, errs);
    free(data);
    return rc;
}

/* ---- freeing and lookup ---- */

void cfg__free_kv(cfg_kv_t *kv, unsigned n)
{
    for (unsigned i = 0; kv && i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

static void cfg__free_strv(char **v, unsigned n)
{
    for (unsigned i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

static void free_job(cfg_job_t *j)
{
    free(j->name);
    free(j->title);
    free(j->description);
    free(j->schedule);
    free(j->schedule_human);
    free(j->timezone);
    free(j->shell);
    cfg__free_strv(j->argv, j->argc);
    free(j->http.method);
    free(j->http.url);
    cfg__free_kv(j->http.headers, j->http.n_headers);
    free(j->http.body);
    free(j->http.expect_status);
    free(j->ping.key);
    free(j->workdir);
    cfg__free_kv(j->env, j->n_env);
    cfg__free_strv(j->requires, j->n_requires);
    cfg__free_strv(j->tags, j->n_tags);
    cfg__free_strv(j->on_success, j->n_on_success);
    cfg__free_strv(j->on_failure, j->n_on_failure);
    cfg__free_strv(j->on_complete, j->n_on_complete);
}

static void free_probe(cfg_probe_t *p)
{
    free(p->name);
    free(p->url);
    free(p->method);
    cfg__free_kv(p->headers, p->n_headers);
    free(p->expect_status);
    free(p->body_contains);
    free(p->conninfo);
    free(p->address);
    free(p->shell);
    cfg__free_strv(p->argv, p->argc);
}

void cfg_free(cfg_t *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->source);
    free(cfg->server.listen);
    free(cfg->server.tls.cert);
    free(cfg->server.tls.key);
    free(cfg->storage.sqlite.path);
    free(cfg->storage.postgres);
    free(cfg->storage.spool_dir);
    free(cfg->defaults.timezone);
    for (unsigned i = 0; i < cfg->auth.n_tokens; i++) {
        free(cfg->auth.tokens[i].name);
        free(cfg->auth.tokens[i].token);
        free(cfg->auth.tokens[i].sha256);
    }
    free(cfg->auth.tokens);
    free(cfg->auth.proxy.user_header);
    cfg__free_strv(cfg->auth.proxy.from, cfg->auth.proxy.n_from);
    free(cfg->auth.proxy.role_header);
    for (unsigned i = 0; i < cfg->n_links; i++) {
        free(cfg->links[i].title);
        free(cfg->links[i].url);
    }
    free(cfg->links);
    free(cfg->instance);
    cv_strmap_free(&cfg->job_index, NULL);
    for (unsigned i = 0; cfg->job_text == NULL && i < cfg->n_jobs; i++)
        free_job(&cfg->jobs[i]);
    free(cfg->job_text);
    free(cfg->jobs);
    for (unsigned i = 0; i < cfg->n_probes; i++)
        free_probe(&cfg->probes[i]);
    free(cfg->probes);
    for (unsigned i = 0; i < cfg->n_notify; i++) {
        free(cfg->notify[i].name);
        free(cfg->notify[i].url);
        cfg__free_strv(cfg->notify[i].jobs, cfg->notify[i].n_jobs);
    }
    free(cfg->notify);
    free(cfg);
}

const cfg_job_t *cfg_find_job(const cfg_t *cfg, const char *name)
{
    return cfg && name ? cv_strmap_get(&cfg->job_index, name) : NULL;
}
