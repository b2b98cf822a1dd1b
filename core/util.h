/* Small helpers every module uses: allocation that aborts on out-of-memory, containers by
 * intrusive links, monotonic and wall clocks, and a growable byte buffer. */
#ifndef CV_CORE_UTIL_H
#define CV_CORE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdarg.h>

#define CV_ARRAY_SIZE(a)                   (sizeof(a) / sizeof((a)[0]))
#define cv_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/** Allocators that never return NULL: on out-of-memory they print a line and abort(). */
void *cv_malloc(size_t n);
void *cv_calloc(size_t count, size_t n);
void *cv_realloc(void *p, size_t n);
char *cv_strdup(const char *s);
char *cv_strndup(const char *s, size_t n);
/** Gives the free pages of the heap back to the system (glibc's malloc_trim), after large
 * temporary work (a configuration loaded, a page of jobs encoded). Nothing elsewhere. */
void cv_trim(void);
/** printf into a fresh heap string (caller frees). Aborts on out-of-memory. */
char *cv_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *cv_vsprintf(const char *fmt, va_list ap);

/** A growable byte buffer; data is always NUL-terminated. Zero-initialise to start empty. */
typedef struct cv_buf {
    char *data;
    size_t len;
    size_t cap;
} cv_buf_t;

void cv_buf_append(cv_buf_t *b, const void *data, size_t len);
void cv_buf_appends(cv_buf_t *b, const char *s);
void cv_buf_printf(cv_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cv_buf_reset(cv_buf_t *b);
void cv_buf_free(cv_buf_t *b);

/** Doubly linked intrusive list (circular, with a sentinel head). */
typedef struct cv_list {
    struct cv_list *prev, *next;
} cv_list_t;

static inline void cv_list_init(cv_list_t *h)
{
    h->prev = h->next = h;
}
static inline bool cv_list_empty(const cv_list_t *h)
{
    return h->next == h;
}
static inline void cv_list_insert_tail(cv_list_t *h, cv_list_t *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}
static inline void cv_list_remove(cv_list_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

/** mkdir -p of the directory that will hold path (mode for the ones it creates). Returns 0 or
 * -errno. */
int cv_mkdir_parent(const char *path, unsigned mode);

/** Wall clock in milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t cv_now_ms(void);
/** Monotonic clock in nanoseconds (CLOCK_MONOTONIC). */
int64_t cv_mono_ns(void);
/** Wall clock in nanoseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t cv_now_ns(void);
/** Blocks the calling thread until the wall clock reaches at_ns (Unix nanoseconds): sleeps to
 * shortly before it, then spins the last CV_WAIT_SPIN_NS, so that it returns within a
 * microsecond of the instant instead of a scheduler wake-up later. Returns at once when at_ns
 * is past, and never waits longer than max_ns (a wall clock set back meanwhile). */
void cv_wait_until_ns(int64_t at_ns, int64_t max_ns);
#define CV_WAIT_SPIN_NS 200000

/** Formats a Unix time (seconds) as RFC 3339 UTC, "2026-03-29T01:30:00Z". buf >= 32 bytes. */
void cv_format_utc(int64_t t, char *buf, size_t len);
/** Same with milliseconds, "2026-03-29T01:30:00.123Z". buf >= 32 bytes. */
void cv_format_utc_ms(int64_t ms, char *buf, size_t len);
/** Parses RFC 3339 ("2026-03-29T01:30:00Z", "...+02:00", fractional seconds ignored).
 * Returns 0 and sets *out (Unix seconds), or -EINVAL. */
int cv_parse_rfc3339(const char *s, int64_t *out);

/** Days from 1970-01-01 of a proleptic Gregorian date (any year). */
int64_t cv_days_from_civil(int64_t y, unsigned m, unsigned d);
/** Inverse of cv_days_from_civil. */
void cv_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);

/** 64-bit FNV-1a of a byte string: a stable hash that does not change between runs. */
uint64_t cv_hash64(const void *data, size_t len);

/** Levenshtein distance between two short strings (for "did you mean"). */
size_t cv_edit_distance(const char *a, const char *b);

/** Length (1 to 4) of the well-formed UTF-8 sequence at p[0..avail), or 0 when the bytes there
 * are not one (stray continuation byte, overlong form, surrogate, above U+10FFFF, truncated).
 * A NUL byte is a valid sequence of length 1. avail must be > 0. Never fails. */
size_t cv_utf8_seq(const unsigned char *p, size_t avail);
/** A heap copy of s[0..len), NUL-terminated, where every byte that does not start a well-formed
 * UTF-8 sequence (and every NUL byte) becomes U+FFFD, so that the result is always valid for
 * jansson and for JSON logs. Sets *outlen to its length when outlen is not NULL. Aborts on
 * out-of-memory like cv_malloc; never returns NULL. */
char *cv_utf8_clean(const char *s, size_t len, size_t *outlen);

#endif
