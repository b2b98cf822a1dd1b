/* actors/result_proto.c: the JSON lines a job writes on $CRONVISOR_RESULT_FD. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/result_proto.h"

typedef struct seen {
    int messages, errors, updates;
    char last_message[128];
    char last_error[512];
} seen_t;

static void on_message(void *data, const char *text, size_t len)
{
    seen_t *s = data;
    s->messages++;
    snprintf(s->last_message, sizeof(s->last_message), "%.*s", (int)len, text);
}

static void on_error(void *data, const char *msg)
{
    seen_t *s = data;
    s->errors++;
    snprintf(s->last_error, sizeof(s->last_error), "%s", msg);
}

static void on_update(void *data, const result_values_t *v)
{
    ((seen_t *)data)->updates++;
}

static void init(result_proto_t *rp, seen_t *s)
{
    memset(s, 0, sizeof(*s));
    result_proto_callbacks_t cbs = {on_message, on_error, on_update, s};
    result_proto_init(rp, &cbs);
}

static void feed(result_proto_t *rp, const char *text)
{
    result_proto_feed(rp, text, strlen(text));
}

static void sets_and_increments_counters(void **state)
{
    result_proto_t rp;
    seen_t s;
    init(&rp, &s);
    assert_true(rp.values.progress < 0);
    feed(&rp, "{\"items_processed\": 10}\n{\"items_processed_add\": 5, \"items_failed\": 2}\n");
    feed(&rp, "{\"items_failed_add\": 1}\n");
    assert_int_equal(rp.values.items_processed, 15);
    assert_int_equal(rp.values.items_failed, 3);
    feed(&rp, "{\"items_processed\": 1}\n");
    assert_int_equal(rp.values.items_processed, 1);
    assert_int_equal(s.updates, 4);
    assert_int_equal(rp.values.lines, 4);
    assert_int_equal(s.errors, 0);
    result_proto_free(&rp);
}

static void keeps_the_last_summary_as_compact_json(void **state)
{
    result_proto_t rp;
    seen_t s;
    init(&rp, &s);
    feed(&rp, "{\"summary\": {\"a\": 1}}\n{\"summary\": {\"rows\": [1, 2], \"name\": \"x\"}}\n");
    assert_string_equal(rp.values.summary_json, "{\"rows\":[1,2],\"name\":\"x\"}");
    result_proto_free(&rp);
}

static void reports_messages_and_progress(void **state)
{
    result_proto_t rp;
    seen_t s;
    init(&rp, &s);
    feed(&rp, "{\"progress\": 0.4, \"message\": \"halfway there\"}\n");
    assert_true(rp.values.progress > 0.39 && rp.values.progress < 0.41);
    assert_int_equal(s.messages, 1);
    assert_string_equal(s.last_message, "halfway there");
    feed(&rp, "{\"message\": \"only a message\"}\n");
    assert_int_equal(s.updates, 1); /* a message alone changes no value */
    result_proto_free(&rp);
}

static void reassembles_lines_split_across_reads(void **state)
{
    result_proto_t rp;
    seen_t s;
    init(&rp, &s);
    feed(&rp, "{\"items_pro");
    feed(&rp, "cessed\": 7");
    assert_int_equal(rp.values.items_processed, 0);
    feed(&rp, "}\r\n\n   \n{\"items_failed\": 1}");
    assert_int_equal(rp.values.items_processed, 7);
    assert_int_equal(rp.values.items_failed, 0);
    result_proto_finish(&rp); /* the last line had no newline */
    assert_int_equal(rp.values.items_failed, 1);
    assert_int_equal(s.errors, 0);
    result_proto_free(&rp);
}

static void rejects_bad_lines_whole_and_keeps_going(void **state)
{
    static const struct {
        const char *line, *error;
    } bad[] = {
        {"not json", "result line 1: not JSON"},
        {"[1, 2]", "expected a JSON object"},
        {"{\"items_processed\": -1}", "\"items_processed\" must be a non-negative integer"},
        {"{\"items_failed\": 1.5}", "\"items_failed\" must be a non-negative integer"},
        {"{\"items_processed_add\": \"3\"}", "must be a non-negative integer"},
        {"{\"progress\": 1.5}", "\"progress\" must be a number between 0 and 1"},
        {"{\"progress\": \"half\"}", "\"progress\" must be a number"},
        {"{\"summary\": [1]}", "\"summary\" must be a JSON object"},
        {"{\"message\": 3}", "\"message\" must be a string"},
        {"{\"itemz\": 3}", "unknown key \"itemz\""},
        {"{\"items_processed\": 1, \"items_processed\": 2}", "not JSON"},
        {"{\"items_processed\": 99, \"progress\": 7}", "\"progress\""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        result_proto_t rp;
        seen_t s;
        init(&rp, &s);
        feed(&rp, bad[i].line);
        feed(&rp, "\n{\"items_processed\": 4}\n");
        assert_int_equal(s.errors, 1);
        if (strstr(s.last_error, bad[i].error) == NULL)
            fail_msg("line %s: error \"%s\" lacks \"%s\"", bad[i].line, s.last_error, bad[i].error);
        assert_int_equal(rp.values.errors, 1);
        assert_int_equal(rp.values.items_processed, 4); /* the next line still counts */
        assert_true(rp.values.progress < 0);            /* nothing of a bad line is applied */
        result_proto_free(&rp);
    }
}

static void rejects_a_line_longer_than_64_kib_without_buffering_it(void **state)
{
    result_proto_t rp;
    seen_t s;
    init(&rp, &s);
    size_t n = RESULT_PROTO_LINE_MAX + 100;
    char *big = malloc(n);
    memset(big, ' ', n);
    feed(&rp, "{\"message\": \"");
    for (int i = 0; i < 4; i++)
        result_proto_feed(&rp, big, n);
    assert_true(rp.line.cap <= 2 * RESULT_PROTO_LINE_MAX + 64);
    feed(&rp, "\"}\n{\"items_failed\": 2}\n");
    assert_int_equal(s.errors, 1);
    assert_non_null(strstr(s.last_error, "result line 1: line longer than 65536 bytes"));
    assert_int_equal(s.messages, 0);
    assert_int_equal(rp.values.items_failed, 2);
    free(big);
    result_proto_free(&rp);
}

static void counts_line_numbers_in_errors(void **state)
{
    result_proto_t rp;
    seen_t s;
    init(&rp, &s);
    feed(&rp, "{\"progress\": 0}\n{\"progress\": 0.5}\n{oops}\n");
    assert_non_null(strstr(s.last_error, "result line 3:"));
    result_proto_free(&rp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sets_and_increments_counters),
        cmocka_unit_test(keeps_the_last_summary_as_compact_json),
        cmocka_unit_test(reports_messages_and_progress),
        cmocka_unit_test(reassembles_lines_split_across_reads),
        cmocka_unit_test(rejects_bad_lines_whole_and_keeps_going),
        cmocka_unit_test(rejects_a_line_longer_than_64_kib_without_buffering_it),
        cmocka_unit_test(counts_line_numbers_in_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
