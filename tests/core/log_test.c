/* The logger's lines: JSON escaping, secret redaction (longest secret at the earliest point),
 * messages longer than the stack buffer, and the human-readable format. stderr is redirected to a
 * temporary file for each test and read back. */
#include "core/log.h"
#include "core/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

typedef struct {
    FILE *tmp;
    int saved;
} capture_t;

static void capture_begin(capture_t *c)
{
    c->tmp = tmpfile();
    assert_non_null(c->tmp);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->saved >= 0);
    assert_true(dup2(fileno(c->tmp), STDERR_FILENO) >= 0);
}

/* Returns everything written to stderr since capture_begin (heap). */
static char *capture_end(capture_t *c)
{
    assert_true(dup2(c->saved, STDERR_FILENO) >= 0);
    close(c->saved);
    long n = ftell(c->tmp);
    assert_true(n >= 0);
    char *out = cv_malloc((size_t)n + 1);
    rewind(c->tmp);
    assert_int_equal(fread(out, 1, (size_t)n, c->tmp), (size_t)n);
    out[n] = '\0';
    fclose(c->tmp);
    return out;
}

/* The value of the "msg" field of a single JSON line, still escaped. */
static char *msg_field(const char *line)
{
    const char *p = strstr(line, "\"msg\":\"");
    assert_non_null(p);
    p += 7;
    const char *end = strstr(p, "\"}\n");
    assert_non_null(end);
    return cv_strndup(p, (size_t)(end - p));
}

static void json_lines_escape_quotes_backslashes_and_control_bytes(void **state)
{
    (void)state;
    cv_log_setup(CV_LOG_DEBUG, true);
    capture_t c;
    capture_begin(&c);
    cv_info("exec", "say \"%s\" \\ then\nnext\ttab%c end", "hi", 1);
    char *out = capture_end(&c);
    assert_non_null(strstr(out, "\"level\":\"info\",\"component\":\"exec\""));
    char *m = msg_field(out);
    assert_string_equal(m, "say \\\"hi\\\" \\\\ then\\nnext\\u0009tab\\u0001 end");
    assert_int_equal(strchr(out, '\n') - out, (ptrdiff_t)strlen(out) - 1); /* one line */
    free(m);
    free(out);
}

/* A client's path or method is logged as sent: a byte that is not UTF-8 must not make the line
 * invalid JSON (well-formed multi-byte characters stay as they are). */
static void json_lines_replace_bytes_that_are_not_utf8(void **state)
{
    (void)state;
    cv_log_setup(CV_LOG_DEBUG, true);
    capture_t c;
    capture_begin(&c);
    cv_debug("http",
             "G\xe9T /api/jobs/\xff\xc3 -> 405 (caf\xc3\xa9, \xf0\x9f\x98\x80, \xed\xa0\x80)");
    char *out = capture_end(&c);
    char *m = msg_field(out);
    assert_string_equal(m,
                        "G\\ufffdT /api/jobs/\\ufffd\\ufffd -> 405 (caf\xc3\xa9, \xf0\x9f\x98\x80, "
                        "\\ufffd\\ufffd\\ufffd)");
    free(m);
    free(out);
}

static void utf8_clean_keeps_valid_text_and_replaces_each_bad_byte(void **state)
{
    (void)state;
    size_t n;
    char *s = cv_utf8_clean("a\xff\xc3\xa9\x00z\xe2\x82", 8, &n);
    assert_string_equal(s, "a\xef\xbf\xbd\xc3\xa9\xef\xbf\xbdz\xef\xbf\xbd\xef\xbf\xbd");
    assert_int_equal(n, strlen(s));
    free(s);
    assert_int_equal(cv_utf8_seq((const unsigned char *)"\xf4\x90\x80\x80", 4), 0);
    assert_int_equal(cv_utf8_seq((const unsigned char *)"\xc0\xaf", 2), 0);
    assert_int_equal(cv_utf8_seq((const unsigned char *)"\xf4\x8f\xbf\xbf", 4), 4);
}

static void secrets_are_cut_longest_first_at_the_earliest_point(void **state)
{
    (void)state;
    cv_secret_clear();
    cv_secret_register("tok-abcd");
    cv_secret_register("tok-abcdef");
    cv_secret_register("cdef-zz");
    cv_secret_register("abc"); /* shorter than 4 bytes: never registered */
    cv_log_setup(CV_LOG_DEBUG, true);
    capture_t c;
    capture_begin(&c);
    /* "tok-abcdef" wins over "tok-abcd" at the same point; the "cdef-zz" that overlaps the cut
     * is not a separate occurrence; a later "cdef-zz" is. */
    cv_warn("http", "a tok-abcdef-zz b tok-abcd c cdef-zz abc");
    char *out = capture_end(&c);
    char *m = msg_field(out);
    assert_string_equal(m, "a ***-zz b *** c *** abc");
    free(m);
    free(out);

    char *r = cv_secret_redact("tok-abcdtok-abcdef");
    assert_string_equal(r, "******");
    free(r);
    r = cv_secret_redact("");
    assert_string_equal(r, "");
    free(r);
    cv_secret_clear();
    r = cv_secret_redact("tok-abcdef");
    assert_string_equal(r, "tok-abcdef");
    free(r);
}

static void a_message_longer_than_the_stack_buffer_is_whole_and_redacted(void **state)
{
    (void)state;
    cv_secret_clear();
    cv_secret_register("s3cr3t-value");
    cv_log_setup(CV_LOG_DEBUG, true);
    char big[3001];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    capture_t c;
    capture_begin(&c);
    cv_error("store", "%s|s3cr3t-value|%s", big, big);
    char *out = capture_end(&c);
    char *m = msg_field(out);
    assert_int_equal(strlen(m), 2 * 3000 + 5);
    assert_memory_equal(m + 3000, "|***|", 5);
    assert_null(strstr(out, "s3cr3t"));
    free(m);
    free(out);
    cv_secret_clear();
}

static void text_lines_and_levels_below_the_minimum(void **state)
{
    (void)state;
    cv_log_setup(CV_LOG_INFO, false);
    capture_t c;
    capture_begin(&c);
    cv_debug("sched", "hidden %d", 1);
    cv_info("sched", "shown %d \"quoted\"", 2);
    char *out = capture_end(&c);
    assert_null(strstr(out, "hidden"));
    /* "<ts> info  sched  shown 2 \"quoted\"\n": the message is not escaped in text lines */
    const char *p = strstr(out, " info  sched  shown 2 \"quoted\"\n");
    assert_non_null(p);
    assert_int_equal(out[p - out + strlen(" info  sched  shown 2 \"quoted\"\n")], '\0');
    assert_int_equal(out[4], '-'); /* starts with the timestamp */
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_lines_escape_quotes_backslashes_and_control_bytes),
        cmocka_unit_test(json_lines_replace_bytes_that_are_not_utf8),
        cmocka_unit_test(utf8_clean_keeps_valid_text_and_replaces_each_bad_byte),
        cmocka_unit_test(secrets_are_cut_longest_first_at_the_earliest_point),
        cmocka_unit_test(a_message_longer_than_the_stack_buffer_is_whole_and_redacted),
        cmocka_unit_test(text_lines_and_levels_below_the_minimum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
