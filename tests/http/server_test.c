/* The API server over real sockets: routing, errors, HEAD, limits, deferred replies, assets and
 * shutdown. Each test runs the server on 127.0.0.1:0 with a client on the same loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "http/api_internal.h"
#include "tclient.h"

typedef struct fixture {
    uv_loop_t loop;
    api_server_t *srv;
    int port;
    api_req_t *held; /* a deferred request */
    int calls;
} fixture_t;

static void h_echo(api_req_t *req, void *data)
{
    fixture_t *f = data;
    f->calls++;
    const char *x = api_req_query(req, "x");
    const char *y = api_req_query(req, "y");
    api_reply_json(req, 200,
                   json_pack("{s:s,s:s,s:s?,s:s?,s:s}", "method", req->method, "name",
                             api_req_param(req, "name"), "x", x, "y", y, "who",
                             req->principal->name));
}

static void h_list(api_req_t *req, void *data)
{
    (void)data;
    api_reply_json(req, 200, json_pack("{s:[i,i,i]}", "jobs", 1, 2, 3));
}

static void h_create(api_req_t *req, void *data)
{
    (void)data;
    json_t *name = json_object_get(req->json, "name");
    api_reply_json(req, 201, json_pack("{s:O?,s:i}", "created", name, "len", (int)req->body_len));
}

static void h_defer(api_req_t *req, void *data)
{
    fixture_t *f = data;
    f->calls++;
    f->held = req;
    api_req_defer(req);
}

static void h_forget(api_req_t *req, void *data)
{
    (void)req;
    (void)data;
}

static void h_rest(api_req_t *req, void *data)
{
    (void)data;
    const char *rest = api_req_param(req, "rest");
    api_reply_bytes(req, 200, "text/plain", rest, strlen(rest), NULL, 0);
}

static const char gz_body[] = "\x1f\x8b-pretend-gzip";
static void h_asset(api_req_t *req, void *data)
{
    (void)data;
    api_asset_t a = {.content_type = "text/html",
                     .data = "<html>hello</html>",
                     .len = 18,
                     .gz = gz_body,
                     .gz_len = sizeof(gz_body) - 1,
                     .etag = "\"v1\"",
                     .cache_control = "no-cache"};
    api_reply_asset(req, &a);
}

static size_t g_max_pending; /* 0: the default */

static int setup(void **state)
{
    fixture_t *f = cv_calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    api_server_opts_t opts = {.listen = "127.0.0.1:0", .max_pending = g_max_pending};
    char *err = NULL;
    f->srv = api_server_create(&f->loop, &opts, &err);
    assert_non_null(f->srv);
    api_route_t routes[] = {
        {"POST", "/api/jobs/{name}/trigger", h_echo, f, AUTH_ROLE_OPERATOR, 0},
        {"GET", "/api/jobs", h_list, f, AUTH_ROLE_VIEWER, 0},
        {"GET", "/api/jobs/{name}", h_echo, f, AUTH_ROLE_VIEWER, 0},
        {"GET", "/api/jobs/special", h_list, f, AUTH_ROLE_VIEWER, 0},
        {"POST", "/api/jobs", h_create, f, AUTH_ROLE_ADMIN, API_ROUTE_JSON_BODY},
        {"GET", "/api/slow", h_defer, f, AUTH_ROLE_VIEWER, 0},
        {"GET", "/api/forget", h_forget, f, AUTH_ROLE_VIEWER, 0},
        {"GET", "/ui/{*rest}", h_rest, f, AUTH_ROLE_NONE, 0},
        {"GET", "/index.html", h_asset, f, AUTH_ROLE_NONE, 0},
    };
    assert_int_equal(api_server_routes(f->srv, routes, CV_ARRAY_SIZE(routes)), 0);
    f->port = api_server_port(f->srv);
    assert_true(f->port > 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (f->srv != NULL)
        assert_true(tc_close_server(f->srv, &f->loop));
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static json_t *body_json(const tc_resp_t *r)
{
    json_error_t e;
    json_t *j = json_loadb(r->body.data, r->body.len, 0, &e);
    if (j == NULL)
        fail_msg("response body is not JSON: %s", r->body.data);
    return j;
}

static const char *error_code(json_t *j)
{
    return json_string_value(json_object_get(json_object_get(j, "error"), "code"));
}

static void route_params_and_query_reach_the_handler_decoded(void **state)
{
    fixture_t *f = *state;
    tc_resp_t r = {0};
    assert_int_equal(tc_request(&f->loop, f->port, "POST",
                                "/api/jobs/back%20up/trigger?x=1&y=two+words", "", NULL, &r),
                     0);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "back up");
    assert_string_equal(json_string_value(json_object_get(j, "x")), "1");
    assert_string_equal(json_string_value(json_object_get(j, "y")), "two words");
    assert_string_equal(json_string_value(json_object_get(j, "who")), "anonymous");
    char v[64];
    assert_string_equal(tc_header(&r, "content-type", v, sizeof(v)), "application/json");
    assert_int_equal(atoi(tc_header(&r, "content-length", v, sizeof(v))), (int)r.body.len);
    json_decref(j);
    tc_resp_free(&r);
}

static void literal_segments_win_over_parameters(void **state)
{
    fixture_t *f = *state;
    tc_resp_t r = {0};
    assert_int_equal(tc_request(&f->loop, f->port, "GET", "/api/jobs/special", "", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "{\"jobs\":[1,2,3]}");
    assert_int_equal(tc_request(&f->loop, f->port, "GET", "/api/jobs/other", "", NULL, &r), 0);
    assert_non_null(strstr(r.body.data, "\"name\":\"other\""));
    assert_int_equal(tc_request(&f->loop, f->port, "GET", "/ui/a/b.js", "", NULL, &r), 0);
    assert_string_equal(r.body.data, "a/b.js");
    tc_resp_free(&r);
}

static void unknown_path_is_a_404_json_error(void **state)
{
    fixture_t *f = *state;
    tc_resp_t r = {0};
    assert_int_equal(tc_request(&f->loop, f->port, "GET", "/api/nope", "", NULL, &r), 0);
    assert_int_equal(r.status, 404);
    json_t *j = body_json(&r);
    assert_string_equal(error_code(j), "not_found");
    json_decref(j);
    /* a parameter must not match an empty segment, nor extra segments */
    assert_int_equal(tc_request(&f->loop, f->port, "POST", "/api/jobs//trigger", "", NULL, &r), 0);
    assert_int_equal(r.status, 404);
    assert_int_equal(tc_request(&f->loop, f->port, "GET", "/api/jobs/a/b/c", "", NULL, &r), 0);
    assert_int_equal(r.status, 404);
    tc_resp_free(&r);
}

static void wrong_method_is_a_405_with_allow(void **state)
{
    fixture_t *f = *state;
    tc_resp_t r = {0};
    char v[64];
    assert_int_equal(tc_request(&f->loop, f->port, "DELETE", "/api/jobs", "", NULL, &r), 0);
    assert_int_equal(r.status, 405);
    assert_string_equal(tc_header(&r, "allow", v, sizeof(v)), "GET, HEAD, POST");
    json_t *j = body_json(&r);
    assert_string_equal(error_code(j), "method_not_allowed");
    json_decref(j);
    tc_resp_free(&r);
}

static void head_sends_the_get_headers_without_a_body(void **state)
{
    fixture_t *f = *state;
    tc_conn_t c;
    tc_resp_t get = {0}, head = {0}, again = {0};
    char v1[64], v2[64];
    assert_int_equal(tc_connect(&c, &f->loop, f->port), 0);
    tc_sendf(&c, "GET /api/jobs HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(tc_read_response(&c, &get), 0);
    tc_sendf(&c, "HEAD /api/jobs HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(tc_read_response_ex(&c, &head, true), 0);
    assert_int_equal(head.status, 200);
    assert_string_equal(tc_header(&head, "content-length", v1, sizeof(v1)),
                        tc_header(&get, "content-length", v2, sizeof(v2)));
    /* The connection stays usable: no stray body bytes came after the HEAD response. */
    tc_sendf(&c, "GET /api/jobs HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(tc_read_response(&c, &again), 0);
    assert_int_equal(again.status, 200);
    assert_string_equal(again.body.data, get.body.data);
    assert_int_equal(c.in.len, 0);
    tc_close(&c);
    tc_resp_free(&get);
    tc_resp_free(&head);
    tc_resp_free(&again);
}

static void body_over_the_limit_is_a_413_json_error(void **state)
{
    fixture_t *f = *state;
    tc_resp_t r = {0};
    char *big = cv_malloc(70001);
    memset(big, 'a', 70000);
    big[70000] = '\0';
    assert_int_equal(tc_request(&f->loop, f->port, "POST", "/api/jobs", "", big, &r), 0);
    assert_int_equal(r.status, 413);
    json_t *j = body_json(&r);
    assert_string_equal(error_code(j), "body_too_large");
    json_decref(j);
    free(big);
    tc_resp_free(&r);
}

static void malformed_json_is_a_400_with_line_and_column(void **state)
{
    fixture_t *f = *state;
    tc_resp_t r = {0};
    const char *bad = "{\"name\": \"x\",\n  oops}";
    json_error_t want;
    assert_null(json_loads(bad, 0, &want));
    assert_int_equal(tc_request(&f->loop, f->port, "POST", "/api/jobs", "", bad, &r), 0);
    assert_int_equal(r.status, 400);
    json_t *j = body_json(&r);
    json_t *e = json_object_get(j, "error");
    assert_string_equal(error_code(j), "bad_json");
    assert_int_equal(json_integer_value(json_object_get(e, "line")), 2);
    assert_int_equal(json_integer_value(json_object_get(e, "column")), want.column);
    assert_non_null(strstr(json_string_value(json_object_get(e, "message")), "line 2"));
    json_decref(j);
    assert_int_equal(
        tc_request(&f->loop, f->port, "POST", "/api/jobs", "", "{\"name\":\"ok\"}", &r), 0);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.body.data, "{\"created\":\"ok\",\"len\":13}");
    tc_resp_free(&r);
}

static void malformed_escape_in_the_path_is_a_400(void **state)
{
    fixture_t *f = *state;
    tc_resp_t r = {0};
    assert_int_equal(tc_request(&f->loop, f->port, "GET", "/api/jobs/a%zz", "", NULL, &r), 0);
    assert_int_equal(r.status, 400);
    assert_int_equal(tc_request(&f->loop, f->port, "GET", "/api/jobs/a%00b", "", NULL, &r), 0);
    assert_int_equal(r.status, 400);
    tc_resp_free(&r);
}

static bool held(void *arg)
{
    return ((fixture_t *)arg)->held != NULL;
}

static void deferred_reply_is_sent_when_the_handler_answers_later(void **state)
{
    fixture_t *f = *state;
    tc_conn_t c;
    tc_resp_t r = {0};
    assert_int_equal(tc_connect(&c, &f->loop, f->port), 0);
    tc_sendf(&c, "GET /api/slow HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(tc_wait_for(&f->loop, held, f));
    assert_int_equal(c.in.len, 0);
    assert_false(api_req_gone(f->held));
    assert_int_equal(api_reply_json(f->held, 200, json_pack("{s:b}", "late", 1)), 0);
    f->held = NULL;
    assert_int_equal(tc_read_response(&c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "{\"late\":true}");
    tc_close(&c);
    tc_resp_free(&r);
}

static void client_gone_before_a_deferred_reply_is_harmless(void **state)
{
    fixture_t *f = *state;
    tc_conn_t c;
    tc_resp_t r = {0};
    assert_int_equal(tc_connect(&c, &f->loop, f->port), 0);
    tc_sendf(&c, "GET /api/slow HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(tc_wait_for(&f->loop, held, f));
    tc_reset(&c);
    /* Whether the server noticed yet or not, the reply is accepted or dropped, never a crash. */
    int rc = api_reply_json(f->held, 200, json_pack("{s:s}", "to", "nobody"));
    assert_true(rc == 0 || rc == -ECONNRESET);
    f->held = NULL;
    assert_int_equal(tc_request(&f->loop, f->port, "GET", "/api/jobs", "", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    tc_resp_free(&r);
}

static int setup_one_pending(void **state)
{
    g_max_pending = 1;
    int rc = setup(state);
    g_max_pending = 0;
    return rc;
}

static void requests_beyond_max_pending_get_a_503_until_a_deferred_reply_is_sent(void **state)
{
    fixture_t *f = *state;
    tc_conn_t c;
    tc_resp_t r = {0};
    assert_int_equal(tc_connect(&c, &f->loop, f->port), 0);
    tc_sendf(&c, "GET /api/slow HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(tc_wait_for(&f->loop, held, f));
    api_req_t *first = f->held;
    f->held = NULL;
    assert_int_equal(tc_request(&f->loop, f->port, "GET", "/api/slow", "", NULL, &r), 0);
    assert_int_equal(r.status, 503);
    json_t *j = body_json(&r);
    assert_string_equal(error_code(j), "busy");
    json_decref(j);
    tc_resp_free(&r);
    assert_int_equal(f->calls, 1);
    api_server_stats_t st;
    api_server_stats(f->srv, &st);
    assert_int_equal(st.pending, 1);
    assert_int_equal(st.pending_refused, 1);
    /* A client that went away still holds its place until its handler replies. */
    tc_reset(&c);
    assert_true(api_reply_json(first, 200, NULL) <= 0);
    api_server_stats(f->srv, &st);
    assert_int_equal(st.pending, 0);
    tc_conn_t c2;
    assert_int_equal(tc_connect(&c2, &f->loop, f->port), 0);
    tc_sendf(&c2, "GET /api/slow HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(tc_wait_for(&f->loop, held, f));
    assert_int_equal(api_reply_json(f->held, 200, NULL), 0);
    f->held = NULL;
    assert_int_equal(tc_read_response(&c2, &r), 0);
    assert_int_equal(r.status, 200);
    tc_resp_free(&r);
    tc_close(&c2);
}

static void handler_returning_without_a_reply_gets_a_500(void **state)
{
    fixture_t *f = *state;
    tc_resp_t r = {0};
    assert_int_equal(tc_request(&f->loop, f->port, "GET", "/api/forget", "", NULL, &r), 0);
    assert_int_equal(r.status, 500);
    tc_resp_free(&r);
}

static void closing_answers_pending_requests_503_and_closes_idle_connections(void **state)
{
    fixture_t *f = *state;
    tc_conn_t busy, idle;
    tc_resp_t r = {0}, first = {0};
    assert_int_equal(tc_connect(&idle, &f->loop, f->port), 0);
    tc_sendf(&idle, "GET /api/jobs HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(tc_read_response(&idle, &first), 0); /* now an idle keep-alive */
    assert_int_equal(tc_connect(&busy, &f->loop, f->port), 0);
    tc_sendf(&busy, "GET /api/slow HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(tc_wait_for(&f->loop, held, f));
    api_req_t *late = f->held;
    assert_true(tc_close_server(f->srv, &f->loop));
    f->srv = NULL;
    assert_int_equal(tc_read_response(&busy, &r), 0);
    assert_int_equal(r.status, 503);
    assert_true(tc_wait_eof(&busy));
    assert_true(tc_wait_eof(&idle));
    /* The handler answers after the close: the reply only frees the request. */
    assert_true(api_req_gone(late));
    assert_int_equal(api_reply_json(late, 200, NULL), -ECONNRESET);
    f->held = NULL;
    tc_close(&busy);
    tc_close(&idle);
    tc_resp_free(&r);
    tc_resp_free(&first);
}

static void assets_answer_304_on_a_matching_etag_and_gzip_when_accepted(void **state)
{
    fixture_t *f = *state;
    tc_resp_t r = {0};
    char v[64];
    assert_int_equal(tc_request(&f->loop, f->port, "GET", "/index.html", "", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "<html>hello</html>");
    assert_string_equal(tc_header(&r, "etag", v, sizeof(v)), "\"v1\"");
    assert_null(tc_header(&r, "content-encoding", v, sizeof(v)));
    assert_int_equal(tc_request(&f->loop, f->port, "GET", "/index.html",
                                "If-None-Match: \"v0\", \"v1\"\r\n", NULL, &r),
                     0);
    assert_int_equal(r.status, 304);
    assert_int_equal(r.body.len, 0);
    assert_int_equal(tc_request(&f->loop, f->port, "GET", "/index.html",
                                "Accept-Encoding: deflate, gzip\r\n", NULL, &r),
                     0);
    assert_int_equal(r.status, 200);
    assert_string_equal(tc_header(&r, "content-encoding", v, sizeof(v)), "gzip");
    assert_string_equal(tc_header(&r, "vary", v, sizeof(v)), "Accept-Encoding");
    assert_int_equal(r.body.len, sizeof(gz_body) - 1);
    assert_int_equal(tc_request(&f->loop, f->port, "GET", "/index.html",
                                "Accept-Encoding: gzip;q=0\r\n", NULL, &r),
                     0);
    assert_null(tc_header(&r, "content-encoding", v, sizeof(v)));
    tc_resp_free(&r);
}

static void malformed_route_patterns_are_refused(void **state)
{
    fixture_t *f = *state;
    api_route_t bad[] = {
        {"GET", "nope", h_list, NULL, AUTH_ROLE_NONE, 0},
        {"GET", "/a/{x", h_list, NULL, AUTH_ROLE_NONE, 0},
        {"GET", "/a/{*rest}/b", h_list, NULL, AUTH_ROLE_NONE, 0},
        {"GET", "/a/{}", h_list, NULL, AUTH_ROLE_NONE, 0},
        {"GET", "/a/x{y}", h_list, NULL, AUTH_ROLE_NONE, 0},
    };
    for (size_t i = 0; i < CV_ARRAY_SIZE(bad); i++)
        assert_int_equal(api_server_route(f->srv, &bad[i]), -EINVAL);
}

static void listening_on_a_bad_address_fails_with_a_message(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char *err = NULL;
    api_server_opts_t opts = {.listen = "127.0.0.1:99999"};
    assert_null(api_server_create(&loop, &opts, &err));
    assert_non_null(strstr(err, "127.0.0.1:99999"));
    free(err);
    opts.listen = "0.0.0.0:0"; /* no tokens: not loopback */
    assert_null(api_server_create(&loop, &opts, &err));
    assert_non_null(strstr(err, "loopback"));
    free(err);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(route_params_and_query_reach_the_handler_decoded, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(literal_segments_win_over_parameters, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_path_is_a_404_json_error, setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_method_is_a_405_with_allow, setup, teardown),
        cmocka_unit_test_setup_teardown(head_sends_the_get_headers_without_a_body, setup, teardown),
        cmocka_unit_test_setup_teardown(body_over_the_limit_is_a_413_json_error, setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_json_is_a_400_with_line_and_column, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(malformed_escape_in_the_path_is_a_400, setup, teardown),
        cmocka_unit_test_setup_teardown(deferred_reply_is_sent_when_the_handler_answers_later,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(client_gone_before_a_deferred_reply_is_harmless, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            requests_beyond_max_pending_get_a_503_until_a_deferred_reply_is_sent, setup_one_pending,
            teardown),
        cmocka_unit_test_setup_teardown(handler_returning_without_a_reply_gets_a_500, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            closing_answers_pending_requests_503_and_closes_idle_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(assets_answer_304_on_a_matching_etag_and_gzip_when_accepted,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_route_patterns_are_refused, setup, teardown),
        cmocka_unit_test(listening_on_a_bad_address_fails_with_a_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
