/* actors/proc_output.c: line splitting, the head/tail budget and the rendered format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/proc_output.h"

#define T0 1774747800123LL /* 2026-03-29T01:30:00.123Z */

typedef struct seen {
    int n;
    size_t longest;
    char last[64];
} seen_t;

static void on_line(void *data, const proc_line_t *l)
{
    seen_t *s = data;
    s->n++;
    if (l->len > s->longest)
        s->longest = l->len;
    assert_int_equal(strlen(l->text), l->len);
    snprintf(s->last, sizeof(s->last), "%s:%.40s", proc_output_stream_name(l->stream), l->text);
}

static void feeds(proc_output_t *o, proc_stream_t st, const char *text)
{
    proc_output_feed(o, st, text, strlen(text), T0);
}

static void renders_each_line_with_time_and_stream_tag(void **state)
{
    seen_t s = {0};
    proc_output_t *o = proc_output_new(0, 0, on_line, &s);
    feeds(o, PROC_STREAM_STDOUT, "hello\r\nwor");
    feeds(o, PROC_STREAM_STDERR, "oops\n");
    feeds(o, PROC_STREAM_STDOUT, "ld\n\n");
    proc_output_add_line(o, PROC_STREAM_RESULT_ERROR, "bad", 3, T0 + 1000);
    char *text = proc_output_render(o, NULL);
    assert_string_equal(text, "2026-03-29T01:30:00.123Z stdout | hello\n"
                              "2026-03-29T01:30:00.123Z stderr | oops\n"
                              "2026-03-29T01:30:00.123Z stdout | world\n"
                              "2026-03-29T01:30:00.123Z stdout | \n"
                              "2026-03-29T01:30:01.123Z result-error | bad\n");
    assert_int_equal(s.n, 5);
    assert_int_equal(proc_output_total_bytes(o), 19);
    assert_int_equal(proc_output_dropped_bytes(o), 0);
    free(text);
    proc_output_free(o);
}

static void cuts_long_lines_and_flushes_an_unterminated_one(void **state)
{
    seen_t s = {0};
    proc_output_t *o = proc_output_new(0, 10, on_line, &s);
    feeds(o, PROC_STREAM_STDOUT, "0123456789abcdefghij");
    assert_int_equal(s.n, 1); /* the second 10 bytes may still be followed by a newline */
    feeds(o, PROC_STREAM_STDOUT, "\nxyz");
    assert_int_equal(s.n, 2);
    proc_output_flush(o, PROC_STREAM_STDOUT, T0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.last, "stdout:xyz");
    assert_int_equal(s.longest, 10);
    proc_output_flush(o, PROC_STREAM_STDOUT, T0); /* nothing left: no empty line */
    assert_int_equal(s.n, 3);
    proc_output_free(o);
}

static void keeps_head_and_tail_and_counts_what_it_drops(void **state)
{
    proc_output_t *o = proc_output_new(2000, 0, NULL, NULL);
    char line[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(line, sizeof(line), "line %04d\n", i); /* 10 bytes, 45 rendered */
        feeds(o, PROC_STREAM_STDOUT, line);
    }
    size_t len;
    char *text = proc_output_render(o, &len);
    /* 1000 budget per half: 22 lines of 45 bytes each side. */
    assert_non_null(strstr(text, "stdout | line 0000\n"));
    assert_non_null(strstr(text, "stdout | line 0021\n"));
    assert_null(strstr(text, "stdout | line 0022\n"));
    assert_null(strstr(text, "stdout | line 0977\n"));
    assert_non_null(strstr(text, "stdout | line 0978\n"));
    assert_non_null(strstr(text, "stdout | line 0999\n"));
    assert_non_null(strstr(text, "\n[... 9560 bytes dropped ...]\n"));
    assert_int_equal(proc_output_dropped_bytes(o), 956 * 10);
    assert_int_equal(proc_output_total_bytes(o), 10000);
    assert_true(len <= 2000 + strlen("[... 9560 bytes dropped ...]\n"));
    assert_true(strstr(text, "line 0021") < strstr(text, "dropped") &&
                strstr(text, "dropped") < strstr(text, "line 0978"));
    free(text);
    proc_output_free(o);
}

static void truncates_a_line_larger_than_the_tail(void **state)
{
    proc_output_t *o = proc_output_new(200, 0, NULL, NULL);
    char big[500];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    feeds(o, PROC_STREAM_STDERR, big);
    proc_output_flush(o, PROC_STREAM_STDERR, T0);
    size_t len;
    char *text = proc_output_render(o, &len);
    assert_true(len <= 200 + 40);
    assert_non_null(strstr(text, "stderr | aaaa"));
    assert_true(proc_output_dropped_bytes(o) > 0);
    free(text);
    proc_output_free(o);
}

static void renders_nul_bytes_as_question_marks(void **state)
{
    proc_output_t *o = proc_output_new(0, 0, NULL, NULL);
    proc_output_feed(o, PROC_STREAM_STDOUT, "a\0b\n", 4, T0);
    char *text = proc_output_render(o, NULL);
    assert_string_equal(text, "2026-03-29T01:30:00.123Z stdout | a?b\n");
    free(text);
    proc_output_free(o);
}

/* The loop reads a pipe in chunks of at most its read budget, cut anywhere (inside a line, inside
 * "\r\n"): the capture must not depend on where. */
static proc_output_t *feed_in_chunks(const char *data, size_t len, size_t chunk, size_t max)
{
    proc_output_t *o = proc_output_new(max, 64, NULL, NULL);
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        proc_output_feed(o, PROC_STREAM_STDOUT, data + off, n, 1000);
    }
    proc_output_flush(o, PROC_STREAM_STDOUT, 1000);
    return o;
}

static void captures_the_same_head_and_tail_whatever_the_chunk_size(void **state)
{
    /* ~200 KB of lines of varied length (some longer than line_max), no final newline. */
    size_t len = 0, cap = 256 * 1024;
    char *data = malloc(cap);
    for (unsigned i = 0; len + 200 < cap - 1024 * 56; i++) {
        int n = snprintf(
            data + len, 200, "line %u %.*s%s", i, (int)(i % 97),
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
            "xxxxxxxxxxxxxxx",
            i % 5 == 0 ? "\r\n" : "\n");
        len += (size_t)n;
    }
    memcpy(data + len, "unterminated", 12);
    len += 12;
    proc_output_t *whole = feed_in_chunks(data, len, len, 16 * 1024);
    size_t wlen;
    char *want = proc_output_render(whole, &wlen);
    static const size_t chunks[] = {1, 2, 3, 7, 64, 65, 4096, 65536};
    for (size_t k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
        proc_output_t *o = feed_in_chunks(data, len, chunks[k], 16 * 1024);
        size_t glen;
        char *got = proc_output_render(o, &glen);
        assert_int_equal(glen, wlen);
        assert_memory_equal(got, want, wlen);
        assert_int_equal(proc_output_total_bytes(o), len);
        assert_int_equal(proc_output_dropped_bytes(o), proc_output_dropped_bytes(whole));
        assert_int_equal(proc_output_lines(o), proc_output_lines(whole));
        free(got);
        proc_output_free(o);
    }
    assert_true(proc_output_dropped_bytes(whole) > 0);
    assert_non_null(strstr(want, "stdout | unterminated\n"));
    free(want);
    proc_output_free(whole);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(renders_each_line_with_time_and_stream_tag),
        cmocka_unit_test(cuts_long_lines_and_flushes_an_unterminated_one),
        cmocka_unit_test(keeps_head_and_tail_and_counts_what_it_drops),
        cmocka_unit_test(truncates_a_line_larger_than_the_tail),
        cmocka_unit_test(renders_nul_bytes_as_question_marks),
        cmocka_unit_test(captures_the_same_head_and_tail_whatever_the_chunk_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
