/* TZif reader (RFC 8536) and POSIX TZ rule evaluator. See tz.h. */
#include "core/tz_internal.h"
#include "core/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TZ_MAX_FILE    (1 << 20)
#define TZ_MAX_OFFSET  (26 * 3600)
#define TZ_MAX_NAME    255
#define TZ_DEFAULT_DIR "/usr/share/zoneinfo"
/* Instants beyond +-2^60 s (36 billion years) are clamped, so that no sum overflows. */
#define TZ_TIME_LIMIT (INT64_C(1) << 60)

/* One end of a DST period in a POSIX TZ rule: Jn, n or Mm.w.d, at `time` seconds of local time. */
typedef struct tz_rule {
    char kind; /* 'J' (1..365, no Feb 29), 'D' (0..365), 'M' */
    int day, month, week, wday;
    int32_t time;
} tz_rule_t;

typedef struct tz_footer {
    bool present, has_dst;
    int32_t std_off, dst_off; /* east positive */
    tz_rule_t start, end;
} tz_footer_t;

struct tz_zone {
    struct tz_zone *next; /* cache chain */
    char *name;
    size_t count;     /* transitions */
    int64_t *times;   /* ascending */
    int32_t *offsets; /* offset in force from times[i] on */
    int32_t initial;  /* before the first transition: local time type 0 */
    tz_footer_t footer;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static tz_zone_t *cache_head;
static tz_zone_t utc_zone = {.name = "UTC"};

/* ---- POSIX TZ rule (footer) ---------------------------------------------------------------- */

/* Parses [+-]hh[:mm[:ss]] with hours up to max_hours. Returns the pointer after it, or NULL. */
static const char *parse_hms(const char *p, int max_hours, int32_t *out)
{
    int sign = 1;
    long v[3] = {0, 0, 0};
    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    for (int i = 0; i < 3; i++) {
        if (i > 0 && *p != ':')
            break;
        if (i > 0)
            p++;
        if (*p < '0' || *p > '9')
            return NULL;
        int digits = 0;
        while (*p >= '0' && *p <= '9' && digits < 4)
            v[i] = v[i] * 10 + (*p++ - '0'), digits++;
        if ((i == 0 && v[i] > max_hours) || (i > 0 && v[i] > 59))
            return NULL;
    }
    *out = (int32_t)(sign * (v[0] * 3600 + v[1] * 60 + v[2]));
    return p;
}

/* Skips a zone abbreviation: 3+ letters, or <...> of letters, digits, + and -. */
static const char *skip_abbrev(const char *p)
{
    const char *start = p;
    if (*p == '<') {
        for (p++; *p && *p != '>'; p++)
            if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                  (*p >= '0' && *p <= '9') || *p == '+' || *p == '-'))
                return NULL;
        return *p == '>' && p - start >= 4 ? p + 1 : NULL;
    }
    while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
        p++;
    return p - start >= 3 ? p : NULL;
}

static const char *parse_int(const char *p, int lo, int hi, int *out)
{
    long v = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 4)
        v = v * 10 + (*p++ - '0'), digits++;
    if (digits == 0 || v < lo || v > hi)
        return NULL;
    *out = (int)v;
    return p;
}

static const char *parse_rule(const char *p, tz_rule_t *r)
{
    memset(r, 0, sizeof(*r));
    r->time = 7200;
    if (*p == 'J') {
        r->kind = 'J';
        p = parse_int(p + 1, 1, 365, &r->day);
    } else if (*p == 'M') {
        r->kind = 'M';
        p = parse_int(p + 1, 1, 12, &r->month);
        if (p && *p == '.')
            p = parse_int(p + 1, 1, 5, &r->week);
        else
            p = NULL;
        if (p && *p == '.')
            p = parse_int(p + 1, 0, 6, &r->wday);
        else
            p = NULL;
    } else {
        r->kind = 'D';
        p = parse_int(p, 0, 365, &r->day);
    }
    if (p && *p == '/')
        p = parse_hms(p + 1, 167, &r->time); /* RFC 8536 extension: -167..167 hours */
    return p;
}

/* Parses a footer such as "CET-1CEST,M3.5.0,M10.5.0/3". Returns 0 or -EINVAL. */
static int parse_footer(const char *s, tz_footer_t *f)
{
    memset(f, 0, sizeof(*f));
    if (*s == '\0')
        return 0;
    int32_t off;
    const char *p = skip_abbrev(s);
    if (!p || !(p = parse_hms(p, 24, &off)))
        return -EINVAL;
    f->present = true;
    f->std_off = f->dst_off = -off; /* POSIX counts west as positive */
    if (*p == '\0')
        return 0;
    if (!(p = skip_abbrev(p)))
        return -EINVAL;
    f->has_dst = true;
    f->dst_off = f->std_off + 3600;
    if (*p != ',' && *p != '\0') {
        if (!(p = parse_hms(p, 24, &off)))
            return -EINVAL;
        f->dst_off = -off;
    }
    if (*p == '\0' && f->dst_off == f->std_off)
        f->has_dst = false;
    if (*p == '\0') { /* POSIX default rules (US) */
        f->start = (tz_rule_t){.kind = 'M', .month = 3, .week = 2, .wday = 0, .time = 7200};
        f->end = (tz_rule_t){.kind = 'M', .month = 11, .week = 1, .wday = 0, .time = 7200};
        return 0;
    }
    if (*p != ',' || !(p = parse_rule(p + 1, &f->start)) || *p != ',' ||
        !(p = parse_rule(p + 1, &f->end)) || *p != '\0')
        return -EINVAL;
    if (f->dst_off == f->std_off)
        f->has_dst = false;
    return 0;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* The local-time seconds (in the offset in force before it) at which rule r fires in year y. */
static int64_t rule_local(const tz_rule_t *r, int64_t y)
{
    int64_t days;
    if (r->kind == 'J')
        days = cv_days_from_civil(y, 1, 1) + r->day - 1 + (is_leap(y) && r->day >= 60);
    else if (r->kind == 'D')
        days = cv_days_from_civil(y, 1, 1) + r->day;
    else {
        static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        int len = mdays[r->month - 1] + (r->month == 2 && is_leap(y));
        int64_t first = cv_days_from_civil(y, (unsigned)r->month, 1);
        int wd1 = (int)(((first % 7) + 11) % 7); /* 1970-01-01 was a Thursday (4) */
        int day = 1 + (r->wday - wd1 + 7) % 7 + (r->week - 1) * 7;
        while (day > len)
            day -= 7;
        days = first + day - 1;
    }
    return days * 86400 + r->time;
}

static int64_t year_of(int64_t t)
{
    int64_t y;
    unsigned m, d;
    int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
    cv_civil_from_days(days, &y, &m, &d);
    return y;
}

static int footer_offset(const tz_footer_t *f, int64_t t)
{
    if (!f->has_dst)
        return f->std_off;
    int64_t y = year_of(t + f->std_off);
    int64_t s = rule_local(&f->start, y) - f->std_off;
    int64_t e = rule_local(&f->end, y) - f->dst_off;
    bool dst = s < e ? (t >= s && t < e) : !(t >= e && t < s);
    return dst ? f->dst_off : f->std_off;
}

/* ---- queries -------------------------------------------------------------------------------- */

const tz_zone_t *tz_utc(void)
{
    return &utc_zone;
}

const char *tz_zone_name(const tz_zone_t *z)
{
    return z->name;
}

int tz_offset_at(const tz_zone_t *z, int64_t t)
{
    size_t n = z->count;
    t = t > TZ_TIME_LIMIT ? TZ_TIME_LIMIT : t < -TZ_TIME_LIMIT ? -TZ_TIME_LIMIT : t;
    if (n == 0)
        return z->footer.present ? footer_offset(&z->footer, t) : z->initial;
    if (t < z->times[0])
        return z->initial;
    if (t >= z->times[n - 1])
        return z->footer.present ? footer_offset(&z->footer, t) : z->offsets[n - 1];
    size_t lo = 0, hi = n - 1; /* times[lo] <= t < times[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->times[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return z->offsets[lo];
}

/* Next change of offset away from `o` produced by the footer rule after t. */
static int64_t footer_next(const tz_zone_t *z, int64_t t, int o)
{
    const tz_footer_t *f = &z->footer;
    if (!f->present || !f->has_dst)
        return INT64_MAX;
    int64_t y0 = year_of(t + f->std_off);
    for (int64_t y = y0 - 1; y <= y0 + 3; y++) {
        int64_t c[2] = {rule_local(&f->start, y) - f->std_off, rule_local(&f->end, y) - f->dst_off};
        if (c[0] > c[1]) {
            int64_t tmp = c[0];
            c[0] = c[1], c[1] = tmp;
        }
        for (int i = 0; i < 2; i++)
            if (c[i] > t && footer_offset(f, c[i]) != o)
                return c[i];
    }
    return INT64_MAX; /* e.g. DST all year round */
}

int64_t tz_next_transition(const tz_zone_t *z, int64_t t)
{
    if (t >= TZ_TIME_LIMIT)
        return INT64_MAX;
    if (t < -TZ_TIME_LIMIT)
        t = -TZ_TIME_LIMIT;
    int o = tz_offset_at(z, t);
    size_t n = z->count;
    if (n > 0 && t < z->times[n - 1]) {
        size_t lo = 0, hi = n - 1; /* first index with times[i] > t */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (z->times[mid] > t)
                hi = mid;
            else
                lo = mid + 1;
        }
        for (size_t i = lo; i < n; i++)
            if (tz_offset_at(z, z->times[i]) != o)
                return z->times[i];
        t = z->times[n - 1];
    }
    if (n > 0 && !z->footer.present)
        return INT64_MAX;
    return footer_next(z, t, o);
}

#define TZ_LOCAL_LIMIT (INT64_C(100000) * 366 * 86400)

int tz_local_to_utc(const tz_zone_t *z, int64_t local, tz_local_t *out)
{
    if (local > TZ_LOCAL_LIMIT || local < -TZ_LOCAL_LIMIT)
        return -ERANGE;
    memset(out, 0, sizeof(*out));
    int64_t s = local - TZ_MAX_OFFSET - 3600, end = local + TZ_MAX_OFFSET + 3600;
    int o = tz_offset_at(z, s);
    int found = 0;
    bool gap = false;
    while (s <= end) {
        int64_t e = tz_next_transition(z, s);
        /* segment [s, e) shows wall clock [s + o, e + o) */
        if (local >= s + o && (e == INT64_MAX || local < e + o)) {
            if (found++ == 0) {
                out->first = out->second = local - o;
                out->offset_before = out->offset_after = o;
            } else { /* the last occurrence, should a zone repeat a time more than twice */
                out->second = local - o;
                out->offset_after = o;
                out->transition = s;
            }
        }
        if (e == INT64_MAX || e > end)
            break;
        int o2 = tz_offset_at(z, e);
        if (!found && local >= e + o && local < e + o2) {
            gap = true;
            out->transition = e;
            out->offset_before = o;
            out->offset_after = o2;
        }
        s = e;
        o = o2;
    }
    if (found == 0 && gap) {
        out->kind = TZ_LOCAL_GAP;
        out->first = out->second = local - out->offset_before;
        out->gap_len = out->offset_after - out->offset_before;
        return 0;
    }
    if (found == 0) /* cannot happen with offsets within +-26 h */
        return -EINVAL;
    out->kind = found == 1 ? TZ_LOCAL_ONCE : TZ_LOCAL_TWICE;
    return 0;
}

/* ---- TZif parsing ---------------------------------------------------------------------------- */

static int64_t be(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    if (bytes == 4)
        return (int32_t)(uint32_t)v;
    return (int64_t)v;
}

typedef struct tzif_hdr {
    char version;
    int64_t isut, isstd, leap, time, type, chars;
} tzif_hdr_t;

static int read_header(const unsigned char *p, size_t len, tzif_hdr_t *h)
{
    if (len < 44 || memcmp(p, "TZif", 4) != 0)
        return -EINVAL;
    h->version = (char)p[4];
    int64_t *f[] = {&h->isut, &h->isstd, &h->leap, &h->time, &h->type, &h->chars};
    for (int i = 0; i < 6; i++) {
        *f[i] = (uint32_t)be(p + 20 + 4 * i, 4);
        if (*f[i] > TZ_MAX_FILE)
            return -EINVAL;
    }
    if (h->type < 1 || (h->isut && h->isut != h->type) || (h->isstd && h->isstd != h->type))
        return -EINVAL;
    return 0;
}

static size_t block_size(const tzif_hdr_t *h, int tb)
{
    return (size_t)(h->time * tb + h->time + h->type * 6 + h->chars + h->leap * (tb + 4) +
                    h->isstd + h->isut);
}

/* Fills z from one data block with tb-byte times. Returns 0 or -EINVAL. */
static int read_block(tz_zone_t *z, const tzif_hdr_t *h, const unsigned char *p, int tb)
{
    const unsigned char *idx = p + h->time * tb, *types = idx + h->time;
    for (int64_t i = 0; i < h->type; i++) {
        int64_t off = be(types + 6 * i, 4);
        if (off > TZ_MAX_OFFSET || off < -TZ_MAX_OFFSET)
            return -EINVAL;
    }
    z->initial = (int32_t)be(types, 4);
    z->count = (size_t)h->time;
    z->times = cv_calloc(z->count + 1, sizeof(int64_t));
    z->offsets = cv_calloc(z->count + 1, sizeof(int32_t));
    for (size_t i = 0; i < z->count; i++) {
        z->times[i] = be(p + i * (size_t)tb, tb);
        if (idx[i] >= h->type || (i > 0 && z->times[i] <= z->times[i - 1]) ||
            z->times[i] > TZ_TIME_LIMIT / 2 || z->times[i] < -TZ_TIME_LIMIT / 2)
            return -EINVAL;
        z->offsets[i] = (int32_t)be(types + 6 * idx[i], 4);
    }
    return 0;
}

static int parse_tzif(tz_zone_t *z, const unsigned char *p, size_t len, const char **why)
{
    tzif_hdr_t h;
    *why = "not a TZif file";
    if (read_header(p, len, &h) < 0)
        return -EINVAL;
    *why = "truncated TZif file";
    size_t v1 = block_size(&h, 4);
    if (44 + v1 > len)
        return -EINVAL;
    if (h.version == 0) {
        *why = "corrupt TZif data";
        return h.leap ? -ENOTSUP : read_block(z, &h, p + 44, 4);
    }
    p += 44 + v1, len -= 44 + v1;
    if (read_header(p, len, &h) < 0)
        return -EINVAL;
    size_t v2 = block_size(&h, 8);
    if (44 + v2 > len)
        return -EINVAL;
    if (h.leap)
        return -ENOTSUP;
    *why = "corrupt TZif data";
    if (read_block(z, &h, p + 44, 8) < 0)
        return -EINVAL;
    const char *foot = (const char *)p + 44 + v2, *stop = (const char *)p + len;
    if (foot >= stop || *foot != '\n')
        return 0; /* no footer: the last transition's offset holds for ever */
    *why = "corrupt TZif footer";
    const char *nl = memchr(foot + 1, '\n', (size_t)(stop - foot - 1));
    if (!nl || nl - foot > 128)
        return -EINVAL;
    char rule[130];
    memcpy(rule, foot + 1, (size_t)(nl - foot - 1));
    rule[nl - foot - 1] = '\0';
    *why = "unsupported TZ rule in TZif footer";
    return parse_footer(rule, &z->footer);
}

/* ---- loading and the cache --------------------------------------------------------------------
 */

static bool valid_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > TZ_MAX_NAME || name[0] == '/')
        return false;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
              strchr("_+-./", *c)))
            return false;
    for (const char *comp = name; comp;) {
        const char *slash = strchr(comp, '/');
        size_t n = slash ? (size_t)(slash - comp) : strlen(comp);
        if (n == 0 || (n == 1 && comp[0] == '.') || (n == 2 && comp[0] == '.' && comp[1] == '.'))
            return false;
        comp = slash ? slash + 1 : NULL;
    }
    return true;
}

static const char *tz_dir(void)
{
    const char *d = getenv("TZDIR");
    return d && *d ? d : TZ_DEFAULT_DIR;
}

/* Reads a regular file of at most TZ_MAX_FILE bytes. Returns 0 or a negative errno. */
static int read_file(const char *path, unsigned char **data, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = 0;
    struct stat st;
    *data = NULL;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > TZ_MAX_FILE) {
        rc = -ENOENT;
        goto out;
    }
    *data = cv_malloc((size_t)st.st_size + 1);
    ssize_t got = read(fd, *data, (size_t)st.st_size);
    if (got != st.st_size) {
        rc = -EIO;
        goto out;
    }
    *len = (size_t)got;
out:
    if (rc < 0) {
        free(*data);
        *data = NULL;
    }
    close(fd);
    return rc;
}

/* Finds the closest existing name in the same directory, for "did you mean". */
static void suggest(const char *name, char *best, size_t bestlen)
{
    best[0] = '\0';
    const char *slash = strrchr(name, '/');
    char *dirpath =
        slash ? cv_sprintf("%s/%.*s", tz_dir(), (int)(slash - name), name) : cv_strdup(tz_dir());
    DIR *d = opendir(dirpath);
    size_t best_dist = 4;
    for (struct dirent *de; d && (de = readdir(d));) {
        if (de->d_name[0] == '.')
            continue;
        size_t dist = cv_edit_distance(slash ? slash + 1 : name, de->d_name);
        if (dist > 0 && dist < best_dist) {
            best_dist = dist;
            snprintf(best, bestlen, "%.*s%s", slash ? (int)(slash - name + 1) : 0, name,
                     de->d_name);
        }
    }
    if (d)
        closedir(d);
    free(dirpath);
}

tz_zone_t *tz__parse(const char *name, const void *data, size_t len, char *err, size_t errlen)
{
    tz_zone_t *z = cv_calloc(1, sizeof(*z));
    const char *why = "";
    int rc = parse_tzif(z, data, len, &why);
    if (rc < 0) {
        if (rc == -ENOTSUP)
            snprintf(err, errlen, "time zone '%s' counts leap seconds, which is not supported",
                     name);
        else
            snprintf(err, errlen, "time zone '%s': %s", name, why);
        tz__free(z);
        return NULL;
    }
    z->name = cv_strdup(name);
    return z;
}

void tz__free(tz_zone_t *z)
{
    free(z->name);
    free(z->times);
    free(z->offsets);
    free(z);
}

static tz_zone_t *load_file(const char *name, char *err, size_t errlen)
{
    char *path = cv_sprintf("%s/%s", tz_dir(), name);
    unsigned char *data = NULL;
    size_t len = 0;
    int rc = read_file(path, &data, &len);
    free(path);
    if (rc < 0) {
        char hint[300];
        suggest(name, hint, sizeof(hint));
        snprintf(err, errlen, "unknown time zone '%s'%s%s%s", name,
                 hint[0] ? " (did you mean " : "", hint, hint[0] ? "?)" : "");
        return NULL;
    }
    tz_zone_t *z = tz__parse(name, data, len, err, errlen);
    free(data);
    return z;
}

tz_zone_t *tz_load(const char *name, char *err, size_t errlen)
{
    char dummy[1];
    if (errlen == 0)
        err = dummy, errlen = sizeof(dummy);
    if (!name || strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0)
        return &utc_zone;
    if (!valid_name(name)) {
        snprintf(err, errlen,
                 "invalid time zone name '%.*s': use an IANA name such as Europe/Stockholm", 100,
                 name);
        return NULL;
    }
    pthread_mutex_lock(&cache_lock);
    tz_zone_t *z = cache_head;
    while (z && strcmp(z->name, name) != 0)
        z = z->next;
    if (!z && (z = load_file(name, err, errlen))) {
        z->next = cache_head;
        cache_head = z;
    }
    pthread_mutex_unlock(&cache_lock);
    return z;
}

void tz_cache_clear(void)
{
    pthread_mutex_lock(&cache_lock);
    while (cache_head) {
        tz_zone_t *z = cache_head;
        cache_head = z->next;
        tz__free(z);
    }
    pthread_mutex_unlock(&cache_lock);
}
