#include "core/util.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static void oom(size_t n)
{
    fprintf(stderr, "cronvisor: out of memory allocating %zu bytes\n", n);
    abort();
}

void *cv_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *cv_calloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (p == NULL)
        oom(count * n);
    return p;
}

void *cv_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

char *cv_strdup(const char *s)
{
    return cv_strndup(s, strlen(s));
}

void cv_trim(void)
{
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

char *cv_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = cv_malloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *cv_vsprintf(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        n = 0;
    char *p = cv_malloc((size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    return p;
}

char *cv_sprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = cv_vsprintf(fmt, ap);
    va_end(ap);
    return p;
}

static void buf_reserve(cv_buf_t *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = cv_realloc(b->data, cap);
    b->cap = cap;
}

void cv_buf_append(cv_buf_t *b, const void *data, size_t len)
{
    buf_reserve(b, len);
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void cv_buf_appends(cv_buf_t *b, const char *s)
{
    cv_buf_append(b, s, strlen(s));
}

void cv_buf_printf(cv_buf_t *b, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n > 0) {
        buf_reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
}

void cv_buf_reset(cv_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void cv_buf_free(cv_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int cv_mkdir_parent(const char *path, unsigned mode)
{
    char *dir = cv_strdup(path);
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (slash == NULL || slash == dir)
        goto out;
    *slash = '\0';
    for (char *p = dir + 1; *p && rc == 0; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, (mode_t)mode) != 0 && errno != EEXIST)
            rc = -errno;
        *p = '/';
    }
    if (rc == 0 && mkdir(dir, (mode_t)mode) != 0 && errno != EEXIST)
        rc = -errno;
out:
    free(dir);
    return rc;
}

int64_t cv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cv_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t cv_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void cv_wait_until_ns(int64_t at_ns, int64_t max_ns)
{
    int64_t wait = at_ns - cv_now_ns();
    if (wait <= 0)
        return;
    if (wait > max_ns)
        wait = max_ns;
    /* Sleep and bound the spin on the monotonic clock: a wall clock set back meanwhile cannot
     * stretch the wait past max_ns. */
    int64_t end = cv_mono_ns() + wait;
    if (wait > CV_WAIT_SPIN_NS) {
        int64_t to = end - CV_WAIT_SPIN_NS;
        struct timespec ts = {.tv_sec = to / 1000000000, .tv_nsec = to % 1000000000};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
            ;
    }
    while (cv_now_ns() < at_ns && cv_mono_ns() < end)
        ;
}

/* Howard Hinnant's days_from_civil / civil_from_days. */
int64_t cv_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void cv_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

void cv_format_utc(int64_t t, char *buf, size_t len)
{
    int64_t days = floor_div(t, 86400);
    int64_t secs = t - days * 86400;
    int64_t y;
    unsigned m, d;
    cv_civil_from_days(days, &y, &m, &d);
    snprintf(buf, len, "%04lld-%02u-%02uT%02d:%02d:%02dZ", (long long)y, m, d, (int)(secs / 3600),
             (int)(secs / 60 % 60), (int)(secs % 60));
}

void cv_format_utc_ms(int64_t ms, char *buf, size_t len)
{
    /* Every log line formats the time: the date and time of the last second are kept (per
     * thread), only the milliseconds are new. */
    static _Thread_local int64_t last_s = INT64_MIN;
    static _Thread_local char last[40];
    int64_t s = floor_div(ms, 1000);
    if (s != last_s) {
        cv_format_utc(s, last, sizeof(last));
        last[strlen(last) - 1] = '\0'; /* drop the Z */
        last_s = s;
    }
    int milli = (int)(ms - s * 1000);
    snprintf(buf, len, "%s.%c%c%cZ", last, '0' + milli / 100, '0' + milli / 10 % 10,
             '0' + milli % 10);
}

static int parse_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (**p < '0' || **p > '9')
            return -1;
        v = v * 10 + (**p - '0');
        (*p)++;
    }
    *out = v;
    return 0;
}

int cv_parse_rfc3339(const char *s, int64_t *out)
{
    int y, mo, d, h, mi, se = 0;
    const char *p = s;
    if (parse_digits(&p, 4, &y) || *p++ != '-' || parse_digits(&p, 2, &mo) || *p++ != '-' ||
        parse_digits(&p, 2, &d))
        return -EINVAL;
    if (*p != 'T' && *p != 't' && *p != ' ')
        return -EINVAL;
    p++;
    if (parse_digits(&p, 2, &h) || *p++ != ':' || parse_digits(&p, 2, &mi))
        return -EINVAL;
    if (*p == ':') {
        p++;
        if (parse_digits(&p, 2, &se))
            return -EINVAL;
        if (*p == '.') {
            p++;
            while (*p >= '0' && *p <= '9')
                p++;
        }
    }
    int off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (parse_digits(&p, 2, &oh) || *p++ != ':' || parse_digits(&p, 2, &om))
            return -EINVAL;
        off = sign * (oh * 3600 + om * 60);
    } else {
        return -EINVAL;
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return -EINVAL;
    *out = cv_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se - off;
    return 0;
}

uint64_t cv_hash64(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

size_t cv_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return la > lb ? la : lb;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = diag + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

size_t cv_utf8_seq(const unsigned char *p, size_t avail)
{
    size_t n = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;
    if (n == 0 || avail < n)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    if (n == 2 && *p < 0xC2)
        return 0; /* overlong */
    if (n == 3 && ((*p == 0xE0 && p[1] < 0xA0) || (*p == 0xED && p[1] >= 0xA0)))
        return 0; /* overlong, or a surrogate */
    if (n == 4 && (*p > 0xF4 || (*p == 0xF0 && p[1] < 0x90) || (*p == 0xF4 && p[1] >= 0x90)))
        return 0; /* overlong, or above U+10FFFF */
    return n;
}

char *cv_utf8_clean(const char *s, size_t len, size_t *outlen)
{
    cv_buf_t b = {0};
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        size_t n = cv_utf8_seq(p, (size_t)(end - p));
        if (n > 0 && *p != 0) {
            cv_buf_append(&b, p, n);
            p += n;
        } else {
            cv_buf_appends(&b, "\xEF\xBF\xBD");
            p++;
        }
    }
    if (outlen != NULL)
        *outlen = b.len;
    return b.data ? b.data : cv_strdup("");
}
