/* Configuration: the crontab reader (supercronic-compatible).
 *
 * Lines are comments ('#'), blank, "KEY=value" (environment for the jobs that follow; CRON_TZ
 * also sets their time zone) or jobs: a schedule (5 fields, 6 with seconds first, or a macro
 * such as @daily or "@every 90s") and a command run with /bin/sh -c. A "# name: x" comment
 * directly above a job names it; otherwise it is "line-<n>". Values are taken literally: the
 * shell expands variables in commands. */
#include "core/config_int.h"
#include "core/log.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct ct {
    cfg__ctx_t *c;
    cfg_t *cfg;
    cfg_kv_t *env;
    unsigned n_env;
    char *tz;
    char *pending_name; /* from a "# name:" comment on the previous line */
} ct_t;

static bool is_name_run(const char *s, size_t n)
{
    static const char *names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG",
                                  "SEP", "OCT", "NOV", "DEC", "SUN", "MON", "TUE", "WED",
                                  "THU", "FRI", "SAT", "L",   "W",   "LW"};
    for (size_t i = 0; i < CV_ARRAY_SIZE(names); i++)
        if (strlen(names[i]) == n && strncasecmp(s, names[i], n) == 0)
            return true;
    return false;
}

/* Whether a word can be a cron field: digits, * / , - ? # and month or day names. */
static bool is_field(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        if (isalpha((unsigned char)s[i])) {
            size_t k = i;
            while (k < n && isalpha((unsigned char)s[k]))
                k++;
            if (!is_name_run(s + i, k - i))
                return false;
            i = k;
        } else if (strchr("0123456789*/,-?#", s[i]) && s[i]) {
            i++;
        } else {
            return false;
        }
    }
    return n > 0;
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

static const char *word_end(const char *p)
{
    while (*p && *p != ' ' && *p != '\t')
        p++;
    return p;
}

static void set_env(ct_t *t, const char *key, size_t klen, const char *val)
{
    char *k = cv_strndup(key, klen);
    size_t vlen = strlen(val);
    char *v = (vlen >= 2 && (val[0] == '"' || val[0] == '\'') && val[vlen - 1] == val[0])
                  ? cv_strndup(val + 1, vlen - 2)
                  : cv_strdup(val);
    if (cfg__secret_env_name(k))
        cv_secret_register(v);
    if (strcmp(k, "CRON_TZ") == 0) {
        free(t->tz);
        t->tz = cv_strdup(v);
    }
    for (unsigned i = 0; i < t->n_env; i++) {
        if (strcmp(t->env[i].key, k) == 0) {
            free(t->env[i].value);
            t->env[i].value = v;
            free(k);
            return;
        }
    }
    t->env = cv_realloc(t->env, (t->n_env + 1) * sizeof(*t->env));
    t->env[t->n_env++] = (cfg_kv_t){k, v};
}

/* "KEY=value" (spaces allowed around '='). Returns false when the line is not one. */
static bool env_line(ct_t *t, const char *p)
{
    size_t n = 0;
    if (!(isalpha((unsigned char)p[0]) || p[0] == '_'))
        return false;
    while (isalnum((unsigned char)p[n]) || p[n] == '_')
        n++;
    const char *q = skip_ws(p + n);
    if (*q != '=')
        return false;
    q = skip_ws(q + 1);
    char *val = cv_strdup(q);
    for (size_t e = strlen(val); e > 0 && (val[e - 1] == ' ' || val[e - 1] == '\t'); e--)
        val[e - 1] = '\0';
    set_env(t, p, n, val);
    free(val);
    return true;
}

static void name_comment(ct_t *t, const char *p)
{
    p = skip_ws(p + 1);
    free(t->pending_name);
    t->pending_name = NULL;
    if (strncmp(p, "name:", 5) != 0)
        return;
    p = skip_ws(p + 5);
    size_t n = strlen(p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    t->pending_name = cv_strndup(p, n);
}

/* Splits a job line into its schedule and command. Returns the command start or NULL. */
static const char *split_schedule(ct_t *t, const char *p, int line, int col, const char *name,
                                  cv_buf_t *sched)
{
    const char *q = p;
    int fields = 0;
    if (*p == '@') {
        q = word_end(p);
        fields = strncmp(p, "@every", (size_t)(q - p)) == 0 && q - p == 6 ? 2 : 1;
        if (fields == 2)
            q = word_end(skip_ws(q));
    } else {
        while (fields < 7) {
            const char *e = word_end(q);
            if (!is_field(q, (size_t)(e - q)))
                break;
            fields++;
            q = skip_ws(e);
        }
        if (fields == 7) {
            cfg__error(t->c, line, col, name,
                       "a year field is not supported: use 5 fields, or 6 with seconds first");
            return NULL;
        }
        if (fields < 5) {
            cfg__error(t->c, line, col, name,
                       "expected a schedule (5 fields, 6 with seconds first, or a macro such as "
                       "@daily) followed by a command");
            return NULL;
        }
        /* q points after the whitespace that follows the last field */
        q = p;
        for (int i = 0; i < fields; i++)
            q = word_end(skip_ws(q));
    }
    const char *w = p;
    for (int i = 0; i < fields; i++) {
        w = skip_ws(w);
        const char *e = word_end(w);
        cv_buf_printf(sched, "%s%.*s", i ? " " : "", (int)(e - w), w);
        w = e;
    }
    q = skip_ws(q);
    if (*q == '\0') {
        cfg__error(t->c, line, col, name, "missing command after the schedule");
        return NULL;
    }
    return q;
}

static void job_line(ct_t *t, const char *p, int line, int col)
{
    char *name = t->pending_name ? t->pending_name : cv_sprintf("line-%d", line);
    t->pending_name = NULL;
    cv_buf_t sched = {0};
    const char *cmd = split_schedule(t, p, line, col, name, &sched);
    if (cmd == NULL) {
        free(name);
        cv_buf_free(&sched);
        return;
    }
    cfg_t *cfg = t->cfg;
    cfg->jobs = cv_realloc(cfg->jobs, (cfg->n_jobs + 1) * sizeof(*cfg->jobs));
    cfg_job_t *j = &cfg->jobs[cfg->n_jobs++];
    *j = (cfg_job_t){.name = name,
                     .schedule = sched.data,
                     .timezone = t->tz ? cv_strdup(t->tz) : NULL,
                     .enabled = true,
                     .action = CFG_ACTION_SHELL,
                     .shell = cv_strdup(cmd),
                     .timeout_ms = CFG__INHERIT,
                     .kill_grace_ms = CFG__INHERIT,
                     .retries = {CFG__INHERIT, CFG__INHERIT, CFG__INHERIT},
                     .max_output = CFG__INHERIT,
                     .catch_up_ms = CFG__INHERIT,
                     .pos = {cfg->source, line, col},
                     .schedule_pos = {cfg->source, line, col}};
    if (t->n_env) {
        j->env = cv_calloc(t->n_env, sizeof(*j->env));
        for (unsigned i = 0; i < t->n_env; i++)
            j->env[i] = (cfg_kv_t){cv_strdup(t->env[i].key), cv_strdup(t->env[i].value)};
        j->n_env = t->n_env;
    }
}

static void one_line(ct_t *t, char *s, int line)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    const char *p = skip_ws(s);
    int col = (int)(p - s) + 1;
    if (*p == '\0') {
        free(t->pending_name);
        t->pending_name = NULL;
    } else if (*p == '#') {
        name_comment(t, p);
    } else if (env_line(t, p)) {
        free(t->pending_name);
        t->pending_name = NULL;
    } else {
        job_line(t, p, line, col);
    }
}

int cfg__load_crontab(cfg__ctx_t *c, const char *data, size_t len, cfg_t **out)
{
    cfg_t *cfg = cv_calloc(1, sizeof(*cfg));
    cfg->source = cv_strdup(c->file);
    cfg->from_crontab = true;
    cfg_defaults_t *d = &cfg->defaults;
    d->timeout_ms = d->kill_grace_ms = d->shutdown_grace_ms = d->max_output = CFG__INHERIT;
    d->retries = (cfg_retries_t){CFG__INHERIT, CFG__INHERIT, CFG__INHERIT};
    cfg->retention.days = CFG__INHERIT;
    ct_t t = {.c = c, .cfg = cfg};
    const char *p = data, *end = data + len;
    for (int line = 1; p < end; line++) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        char *s = cv_strndup(p, (size_t)((eol ? eol : end) - p));
        one_line(&t, s, line);
        free(s);
        p = eol ? eol + 1 : end;
    }
    cfg__free_kv(t.env, t.n_env);
    free(t.tz);
    free(t.pending_name);
    cfg__finish(c, cfg, NULL, NULL);
    *out = cfg;
    return 0;
}
