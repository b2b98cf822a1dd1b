#include "actors/proc_output.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

/* Lines are stored as records: this header then len bytes of text, packed, no padding. The head
 * is a linear buffer of records; the tail is a byte ring of records whose oldest record is
 * evicted to make room. A record (16 + len bytes) is always smaller than its rendered line
 * (at least 35 + len bytes), so a ring of tail_budget bytes always holds tail_budget rendered
 * bytes' worth of records. */
typedef struct rec_hdr {
    int64_t ts_ms;
    uint32_t len;
    uint8_t stream;
    uint8_t nl; /* 1 when the job's line ended with a newline (counts as a byte) */
    uint8_t pad[2];
} rec_hdr_t;

#define TS_LEN 24 /* "2026-03-29T01:30:00.123Z" */

struct proc_output {
    size_t head_budget, tail_budget, line_max;
    proc_line_cb on_line;
    void *data;
    cv_buf_t head;
    size_t head_cost;
    bool head_closed;
    char *ring;
    size_t ring_start, ring_used, tail_cost;
    cv_buf_t partial[2]; /* unterminated line of stdout, stderr */
    uint64_t total, dropped, lines;
};

static const char *const stream_names[PROC_STREAM__COUNT] = {"stdout", "stderr", "result",
                                                             "result-error", "system"};

const char *proc_output_stream_name(proc_stream_t s)
{
    return (unsigned)s < PROC_STREAM__COUNT ? stream_names[s] : "?";
}

/* Rendered size of a line: "<ts> <tag> | <text>\n". */
static size_t prefix_len(unsigned stream)
{
    return TS_LEN + 1 + strlen(proc_output_stream_name(stream)) + 3;
}

static size_t line_cost(unsigned stream, size_t len)
{
    return prefix_len(stream) + len + 1;
}

proc_output_t *proc_output_new(size_t max_bytes, size_t line_max, proc_line_cb on_line, void *data)
{
    proc_output_t *o = cv_calloc(1, sizeof(*o));
    if (max_bytes == 0)
        max_bytes = PROC_OUTPUT_DEFAULT_MAX;
    o->head_budget = max_bytes / 2;
    o->tail_budget = max_bytes - o->head_budget;
    o->line_max = line_max ? line_max : PROC_OUTPUT_LINE_MAX;
    o->on_line = on_line;
    o->data = data;
    return o;
}

void proc_output_free(proc_output_t *o)
{
    if (o == NULL)
        return;
    cv_buf_free(&o->head);
    cv_buf_free(&o->partial[0]);
    cv_buf_free(&o->partial[1]);
    free(o->ring);
    free(o);
}

static void ring_put(proc_output_t *o, const void *src, size_t n)
{
    size_t pos = (o->ring_start + o->ring_used) % o->tail_budget;
    size_t first = n < o->tail_budget - pos ? n : o->tail_budget - pos;
    memcpy(o->ring + pos, src, first);
    memcpy(o->ring, (const char *)src + first, n - first);
    o->ring_used += n;
}

static void ring_get(const proc_output_t *o, size_t off, void *dst, size_t n)
{
    size_t pos = (o->ring_start + off) % o->tail_budget;
    size_t first = n < o->tail_budget - pos ? n : o->tail_budget - pos;
    memcpy(dst, o->ring + pos, first);
    memcpy((char *)dst + first, o->ring, n - first);
}

static void ring_evict_oldest(proc_output_t *o)
{
    rec_hdr_t h;
    ring_get(o, 0, &h, sizeof(h));
    size_t n = sizeof(h) + h.len;
    o->ring_start = (o->ring_start + n) % o->tail_budget;
    o->ring_used -= n;
    o->tail_cost -= line_cost(h.stream, h.len);
    o->dropped += h.len + h.nl;
}

static void tail_store(proc_output_t *o, const rec_hdr_t *h, const char *text)
{
    rec_hdr_t r = *h;
    size_t pre = prefix_len(r.stream);
    if (line_cost(r.stream, r.len) > o->tail_budget) {
        /* Longer than the whole tail: keep its beginning. */
        size_t avail = o->tail_budget > pre + 1 ? o->tail_budget - pre - 1 : 0;
        if (avail == 0) {
            o->dropped += r.len + r.nl;
            return;
        }
        o->dropped += r.len - avail;
        r.len = (uint32_t)avail;
    }
    if (o->ring == NULL)
        o->ring = cv_malloc(o->tail_budget);
    size_t cost = line_cost(r.stream, r.len);
    while (o->tail_cost + cost > o->tail_budget)
        ring_evict_oldest(o);
    assert(o->ring_used + sizeof(r) + r.len <= o->tail_budget);
    ring_put(o, &r, sizeof(r));
    ring_put(o, text, r.len);
    o->tail_cost += cost;
}

static void store_line(proc_output_t *o, int64_t ts, unsigned stream, char *text, size_t len,
                       bool nl)
{
    if (nl && len > 0 && text[len - 1] == '\r')
        len--;
    text[len] = '\0';
    o->lines++;
    if (o->on_line) {
        proc_line_t line = {.ts_ms = ts, .stream = stream, .text = text, .len = len};
        o->on_line(o->data, &line);
    }
    rec_hdr_t h = {.ts_ms = ts, .len = (uint32_t)len, .stream = (uint8_t)stream, .nl = nl};
    size_t cost = line_cost(stream, len);
    if (!o->head_closed && o->head_cost + cost <= o->head_budget) {
        cv_buf_append(&o->head, &h, sizeof(h));
        cv_buf_append(&o->head, text, len);
        o->head_cost += cost;
        return;
    }
    o->head_closed = true;
    tail_store(o, &h, text);
}

/* Emits the partial line of a stream and empties it. */
static void emit_partial(proc_output_t *o, unsigned stream, int64_t now_ms, bool nl)
{
    cv_buf_t *pb = &o->partial[stream];
    if (pb->data == NULL)
        cv_buf_append(pb, "", 0);
    store_line(o, now_ms, stream, pb->data, pb->len, nl);
    cv_buf_reset(pb);
}

void proc_output_feed(proc_output_t *o, proc_stream_t stream, const char *data, size_t len,
                      int64_t now_ms)
{
    assert(stream == PROC_STREAM_STDOUT || stream == PROC_STREAM_STDERR);
    cv_buf_t *pb = &o->partial[stream];
    o->total += len;
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t)(nl - data) : len;
        size_t room = o->line_max - pb->len;
        if (n > room) {
            cv_buf_append(pb, data, room);
            emit_partial(o, stream, now_ms, false);
            data += room;
            len -= room;
            continue;
        }
        cv_buf_append(pb, data, n);
        data += n;
        len -= n;
        if (nl == NULL)
            break;
        emit_partial(o, stream, now_ms, true);
        data++;
        len--;
    }
}

void proc_output_flush(proc_output_t *o, proc_stream_t stream, int64_t now_ms)
{
    assert(stream == PROC_STREAM_STDOUT || stream == PROC_STREAM_STDERR);
    if (o->partial[stream].len > 0)
        emit_partial(o, stream, now_ms, false);
}

void proc_output_add_line(proc_output_t *o, proc_stream_t stream, const char *text, size_t len,
                          int64_t now_ms)
{
    assert((unsigned)stream < PROC_STREAM__COUNT);
    char *copy = cv_malloc((len < o->line_max ? len : o->line_max) + 1);
    do {
        size_t n = len < o->line_max ? len : o->line_max;
        memcpy(copy, text, n);
        store_line(o, now_ms, stream, copy, n, true);
        text += n;
        len -= n;
    } while (len > 0);
    free(copy);
}

/* Appends one rendered line; ts_cache remembers the last formatted time. */
static void render_line(cv_buf_t *b, const rec_hdr_t *h, const char *text, int64_t *ts_prev,
                        char *ts_cache)
{
    if (h->ts_ms != *ts_prev) {
        cv_format_utc_ms(h->ts_ms, ts_cache, 32);
        *ts_prev = h->ts_ms;
    }
    cv_buf_append(b, ts_cache, strlen(ts_cache));
    cv_buf_append(b, " ", 1);
    cv_buf_appends(b, proc_output_stream_name(h->stream));
    cv_buf_append(b, " | ", 3);
    size_t at = b->len;
    cv_buf_append(b, text, h->len);
    for (char *p = memchr(b->data + at, '\0', h->len); p;
         p = memchr(p, '\0', b->len - (size_t)(p - b->data)))
        *p = '?';
    cv_buf_append(b, "\n", 1);
}

char *proc_output_render(const proc_output_t *o, size_t *len_out)
{
    cv_buf_t b = {0};
    int64_t ts_prev = INT64_MIN;
    char ts[32];
    cv_buf_append(&b, "", 0);
    for (size_t off = 0; off < o->head.len;) {
        rec_hdr_t h;
        memcpy(&h, o->head.data + off, sizeof(h));
        render_line(&b, &h, o->head.data + off + sizeof(h), &ts_prev, ts);
        off += sizeof(h) + h.len;
    }
    if (o->dropped > 0)
        cv_buf_printf(&b, "[... %llu bytes dropped ...]\n", (unsigned long long)o->dropped);
    char *text = NULL;
    for (size_t off = 0; off < o->ring_used;) {
        rec_hdr_t h;
        ring_get(o, off, &h, sizeof(h));
        text = cv_realloc(text, h.len + 1);
        ring_get(o, off + sizeof(h), text, h.len);
        render_line(&b, &h, text, &ts_prev, ts);
        off += sizeof(h) + h.len;
    }
    free(text);
    if (len_out)
        *len_out = b.len;
    return b.data;
}

uint64_t proc_output_total_bytes(const proc_output_t *o)
{
    return o->total;
}

uint64_t proc_output_dropped_bytes(const proc_output_t *o)
{
    return o->dropped;
}

uint64_t proc_output_lines(const proc_output_t *o)
{
    return o->lines;
}
