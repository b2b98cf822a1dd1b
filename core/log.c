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

/* Appends s[0..len) to out with every registered secret replaced by "***": at each point the
 * earliest occurrence of any secret is cut, the longest one when several start there. Called with
 * log_lock held. */
static void redact_into(cv_buf_t *out, const char *s, size_t len)
{
    const char *p = s, *end = s + len;
    while (p < end) {
        const char *hit = NULL;
        size_t hit_len = 0;
        for (size_t i = 0; i < nsecrets; i++) {
            size_t n = strlen(secrets[i]);
            const char *q = memmem(p, (size_t)(end - p), secrets[i], n);
            if (q && (hit == NULL || q < hit || (q == hit && n > hit_len))) {
                hit = q;
                hit_len = n;
            }
        }
        if (hit == NULL) {
            cv_buf_append(out, p, (size_t)(end - p));
            return;
        }
        cv_buf_append(out, p, (size_t)(hit - p));
        cv_buf_append(out, "***", 3);
        p = hit + hit_len;
    }
}

char *cv_secret_redact(const char *s)
{
    cv_buf_t out = {0};
    pthread_mutex_lock(&log_lock);
    redact_into(&out, s, strlen(s));
    pthread_mutex_unlock(&log_lock);
    return out.data ? out.data : cv_strdup("");
}

/* Appends s[0..len) as the inside of a JSON string: runs of plain bytes are copied at once. A
 * byte that does not start well-formed UTF-8 (a client's path, say) becomes \ufffd, so that every
 * line stays valid JSON. */
static void json_escape(cv_buf_t *b, const char *s, size_t len)
{
    size_t run = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        size_t n = c >= 0x80 ? cv_utf8_seq((const unsigned char *)s + i, len - i) : 1;
        if (n > 0 && c >= 0x20 && c != '"' && c != '\\') {
            i += n;
            continue;
        }
        cv_buf_append(b, s + run, i - run);
        run = i + 1;
        if (c == '"' || c == '\\')
            cv_buf_printf(b, "\\%c", c);
        else if (c == '\n')
            cv_buf_appends(b, "\\n");
        else if (c >= 0x80)
            cv_buf_appends(b, "\\ufffd");
        else
            cv_buf_printf(b, "\\u%04x", c);
        i++;
    }
    cv_buf_append(b, s + run, len - run);
}

void cv_log(cv_log_level_t lvl, const char *component, const char *fmt, ...)
{
    if (lvl < log_min)
        return;
    /* Most messages fit the stack buffer: one vsnprintf, no allocation. */
    char small[512];
    char *msg = small;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    else if ((size_t)n >= sizeof(small)) {
        va_start(ap, fmt);
        msg = cv_vsprintf(fmt, ap);
        va_end(ap);
    }

    char ts[40];
    cv_format_utc_ms(cv_now_ms(), ts, sizeof(ts));
    pthread_mutex_lock(&log_lock);
    /* One line buffer, kept between lines (under the lock), so a line costs no allocation. */
    static cv_buf_t line, safe;
    cv_buf_reset(&line);
    cv_buf_reset(&safe);
    redact_into(&safe, msg, (size_t)n);
    if (log_json) {
        cv_buf_appends(&line, "{\"ts\":\"");
        cv_buf_appends(&line, ts);
        cv_buf_appends(&line, "\",\"level\":\"");
        cv_buf_appends(&line, level_names[lvl]);
        cv_buf_appends(&line, "\",\"component\":\"");
        json_escape(&line, component, strlen(component));
        cv_buf_appends(&line, "\",\"msg\":\"");
        json_escape(&line, safe.data ? safe.data : "", safe.len);
        cv_buf_appends(&line, "\"}\n");
    } else {
        cv_buf_printf(&line, "%s %-5s %-6s ", ts, level_names[lvl], component);
        cv_buf_append(&line, safe.data ? safe.data : "", safe.len);
        cv_buf_append(&line, "\n", 1);
    }
    ssize_t ignored = write(STDERR_FILENO, line.data, line.len);
    (void)ignored;
    pthread_mutex_unlock(&log_lock);
    if (msg != small)
        free(msg);
}
