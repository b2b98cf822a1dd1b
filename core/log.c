#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static cv_log_level_t log_min = CV_LOG_INFO;
static bool log_json;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static char **secrets;
static size_t nsecrets;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void cv_log_setup(cv_log_level_t min, bool json)
{
    log_min = min;
    log_json = json;
}

int cv_log_level_parse(const char *s, cv_log_level_t *out)
{
    for (size_t i = 0; i < CV_ARRAY_SIZE(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (cv_log_level_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

void cv_secret_register(const char *value)
{
    if (value == NULL || strlen(value) < 4)
        return;
    pthread_mutex_lock(&log_lock);
    for (size_t i = 0; i < nsecrets; i++) {
        if (strcmp(secrets[i], value) == 0) {
            pthread_mutex_unlock(&log_lock);
            return;
        }
    }
    secrets = cv_realloc(secrets, (nsecrets + 1) * sizeof(*secrets));
    secrets[nsecrets++] = cv_strdup(value);
    pthread_mutex_unlock(&log_lock);
}

void cv_secret_clear(void)
{
    pthread_mutex_lock(&log_lock);
    for (size_t i = 0; i < nsecrets; i++)
        free(secrets[i]);
    free(secrets);
    secrets = NULL;
    nsecrets = 0;
    pthread_mutex_unlock(&log_lock);
}

/* Called with log_lock held. */
static char *redact_locked(const char *s)
{
    cv_buf_t out = {0};
    const char *p = s;
    while (*p) {
        size_t best = 0;
        for (size_t i = 0; i < nsecrets; i++) {
            size_t n = strlen(secrets[i]);
            if (n > best && strncmp(p, secrets[i], n) == 0)
                best = n;
        }
        if (best) {
            cv_buf_appends(&out, "***");
            p += best;
        } else {
            cv_buf_append(&out, p, 1);
            p++;
        }
    }
    if (out.data == NULL)
        return cv_strdup("");
    return out.data;
}

char *cv_secret_redact(const char *s)
{
    pthread_mutex_lock(&log_lock);
    char *r = redact_locked(s);
    pthread_mutex_unlock(&log_lock);
    return r;
}

static void json_escape(cv_buf_t *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            cv_buf_printf(b, "\\%c", c);
        else if (c == '\n')
            cv_buf_appends(b, "\\n");
        else if (c < 0x20)
            cv_buf_printf(b, "\\u%04x", c);
        else
            cv_buf_append(b, s, 1);
    }
}

void cv_log(cv_log_level_t lvl, const char *component, const char *fmt, ...)
{
    if (lvl < log_min)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *msg = cv_vsprintf(fmt, ap);
    va_end(ap);

    char ts[40];
    cv_format_utc_ms(cv_now_ms(), ts, sizeof(ts));
    cv_buf_t line = {0};
    pthread_mutex_lock(&log_lock);
    char *safe = redact_locked(msg);
    if (log_json) {
        cv_buf_printf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"", ts,
                      level_names[lvl]);
        json_escape(&line, component);
        cv_buf_appends(&line, "\",\"msg\":\"");
        json_escape(&line, safe);
        cv_buf_appends(&line, "\"}\n");
    } else {
        cv_buf_printf(&line, "%s %-5s %-6s %s\n", ts, level_names[lvl], component, safe);
    }
    ssize_t ignored = write(STDERR_FILENO, line.data, line.len);
    (void)ignored;
    pthread_mutex_unlock(&log_lock);
    free(safe);
    free(msg);
    cv_buf_free(&line);
}
