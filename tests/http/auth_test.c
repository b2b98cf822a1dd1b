/* Tokens, roles, rate limits and tickets: the auth table alone, then through the server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <unistd.h>

#include <openssl/evp.h>

#include "core/log.h"
#include "http/auth.h"
#include "tclient.h"

#define VIEWER   "tok-viewer-aaaaaaaaaaaa"
#define OPERATOR "tok-operator-bbbbbbbbbb"
#define ADMIN    "tok-admin-cccccccccccccc"

static void sha256_hex(const char *s, char out[65])
{
    unsigned char d[32];
    unsigned int n = 32;
    EVP_Digest(s, strlen(s), d, &n, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static auth_t *make_auth(double rate, double burst)
{
    static char hex[65];
    sha256_hex(OPERATOR, hex);
    auth_token_conf_t tokens[] = {
        {"viewer", AUTH_ROLE_VIEWER, VIEWER, NULL},
        {"operator", AUTH_ROLE_OPERATOR, NULL, hex}, /* given as its digest */
        {"admin", AUTH_ROLE_ADMIN, ADMIN, NULL},
    };
    auth_opts_t o = {.tokens = tokens, .ntokens = 3, .rate_per_sec = rate, .rate_burst = burst};
    char *err = NULL;
    auth_t *a = auth_create(&o, &err);
    assert_non_null(a);
    return a;
}

static void tokens_match_by_plain_value_or_by_digest(void **state)
{
    (void)state;
    auth_t *a = make_auth(0, 0);
    auth_principal_t p;
    assert_int_equal(auth_verify_token(a, VIEWER, strlen(VIEWER), &p), 0);
    assert_string_equal(p.name, "viewer");
    assert_int_equal(p.role, AUTH_ROLE_VIEWER);
    assert_int_equal(auth_verify_header(a, "bearer " OPERATOR, strlen("bearer " OPERATOR), &p), 0);
    assert_string_equal(p.name, "operator");
    assert_int_equal(p.role, AUTH_ROLE_OPERATOR);
    assert_int_equal(auth_verify_token(a, "tok-viewer", 10, &p), -EACCES); /* a prefix */
    assert_int_equal(auth_verify_token(a, "", 0, &p), -EACCES);
    assert_int_equal(auth_verify_header(a, NULL, 0, &p), -EACCES);
    assert_int_equal(auth_verify_header(a, "Basic " ADMIN, strlen("Basic " ADMIN), &p), -EACCES);
    assert_false(auth_is_open(a));
    auth_destroy(a);
}

static void every_lookup_compares_against_every_token(void **state)
{
    (void)state;
    auth_t *a = make_auth(0, 0);
    auth_principal_t p;
    uint64_t before = auth_compare_count(a);
    assert_int_equal(auth_verify_token(a, VIEWER, strlen(VIEWER), &p), 0); /* first entry */
    assert_int_equal(auth_compare_count(a) - before, 3);
    before = auth_compare_count(a);
    assert_int_equal(auth_verify_token(a, "nope", 4, &p), -EACCES);
    assert_int_equal(auth_compare_count(a) - before, 3);
    auth_destroy(a);
}

static void bad_token_configs_are_refused_without_echoing_the_secret(void **state)
{
    (void)state;
    struct {
        auth_token_conf_t t[2];
        size_t n;
        const char *expect;
    } cases[] = {
        {{{"a", AUTH_ROLE_VIEWER, "secret-1234", NULL}, {"a", AUTH_ROLE_ADMIN, "other-5678", NULL}},
         2,
         "used twice"},
        {{{"b", AUTH_ROLE_VIEWER, "secret-1234", "00"}}, 1, "exactly one"},
        {{{"c", AUTH_ROLE_VIEWER, NULL, "zz"}}, 1, "64 hex digits"},
        {{{"d", AUTH_ROLE_NONE, "secret-1234", NULL}}, 1, "role"},
        {{{NULL, AUTH_ROLE_VIEWER, "secret-1234", NULL}}, 1, "name"},
    };
    for (size_t i = 0; i < CV_ARRAY_SIZE(cases); i++) {
        auth_opts_t o = {.tokens = cases[i].t, .ntokens = cases[i].n};
        char *err = NULL;
        assert_null(auth_create(&o, &err));
        assert_non_null(err);
        assert_non_null(strstr(err, cases[i].expect));
        assert_null(strstr(err, "secret-1234"));
        free(err);
    }
}

static void without_tokens_only_loopback_may_listen(void **state)
{
    (void)state;
    struct {
        const char *addr;
        size_t ntokens;
        int rc;
    } cases[] = {
        {"127.0.0.1:8080", 0, 0},   {"127.1.2.3:0", 0, 0},         {"[::1]:8080", 0, 0},
        {"localhost:80", 0, 0},     {"0.0.0.0:8080", 0, -EPERM},   {"[::]:8080", 0, -EPERM},
        {"10.0.0.5:80", 0, -EPERM}, {":8080", 0, -EPERM},          {"0.0.0.0:8080", 2, 0},
        {"nonsense", 0, -EINVAL},   {"1.2.3.4:70000", 2, -EINVAL},
    };
    for (size_t i = 0; i < CV_ARRAY_SIZE(cases); i++) {
        char *err = NULL;
        int rc = auth_listen_allowed(cases[i].addr, cases[i].ntokens, &err);
        if (rc != cases[i].rc)
            fail_msg("%s with %zu tokens: %d, want %d", cases[i].addr, cases[i].ntokens, rc,
                     cases[i].rc);
        assert_true((rc == 0) == (err == NULL));
        if (err != NULL)
            assert_non_null(strstr(err, cases[i].addr));
        free(err);
    }
}

static void buckets_refill_at_the_configured_rate_per_token(void **state)
{
    (void)state;
    auth_t *a = make_auth(2.0, 3.0); /* 2 per second, bursts of 3 */
    for (int i = 0; i < 3; i++)
        assert_int_equal(auth_rate_take(a, "viewer", 1000), 0);
    int64_t wait = auth_rate_take(a, "viewer", 1000);
    assert_true(wait > 0 && wait <= 501);
    assert_int_equal(auth_rate_take(a, "admin", 1000), 0); /* its own bucket */
    assert_true(auth_rate_take(a, "viewer", 1400) > 0);
    assert_int_equal(auth_rate_take(a, "viewer", 1500), 0);
    assert_true(auth_rate_take(a, "viewer", 1500) > 0);
    auth_destroy(a);
}

static void tickets_are_single_use_and_expire(void **state)
{
    (void)state;
    auth_t *a = make_auth(0, 0);
    auth_principal_t who = {"viewer", AUTH_ROLE_VIEWER, 0, false}, got;
    char t1[65], t2[65];
    assert_int_equal(auth_ticket_issue(a, &who, 1000, t1), 0);
    assert_int_equal(auth_ticket_issue(a, &who, 1000, t2), 0);
    assert_int_equal(strlen(t1), 64);
    assert_string_not_equal(t1, t2);
    assert_int_equal(auth_ticket_redeem(a, t1, 64, 2000, &got), 0);
    assert_string_equal(got.name, "viewer");
    assert_int_equal(got.role, AUTH_ROLE_VIEWER);
    assert_int_equal(auth_ticket_redeem(a, t1, 64, 2000, &got), -EACCES);  /* used */
    assert_int_equal(auth_ticket_redeem(a, t2, 64, 61000, &got), -EACCES); /* expired */
    assert_int_equal(auth_ticket_redeem(a, t2, 10, 2000, &got), -EACCES);
    auth_destroy(a);
}

/* ---- through the server ---- */

typedef struct fixture {
    uv_loop_t loop;
    auth_t *auth;
    api_server_t *srv;
    int port;
} fixture_t;

static void h_ok(api_req_t *req, void *data)
{
    (void)data;
    api_reply_json(req, 200, json_pack("{s:s}", "who", req->principal->name));
}

static int setup(void **state)
{
    fixture_t *f = cv_calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->auth = make_auth(0.001, 2); /* 2 requests, then (practically) none */
    api_server_opts_t o = {.listen = "127.0.0.1:0", .auth = f->auth};
    char *err = NULL;
    f->srv = api_server_create(&f->loop, &o, &err);
    assert_non_null(f->srv);
    api_route_t routes[] = {
        {"GET", "/v", h_ok, NULL, AUTH_ROLE_VIEWER, 0},
        {"GET", "/o", h_ok, NULL, AUTH_ROLE_OPERATOR, 0},
        {"GET", "/a", h_ok, NULL, AUTH_ROLE_ADMIN, 0},
        {"GET", "/public", h_ok, NULL, AUTH_ROLE_NONE, 0},
        {"POST", "/trigger", h_ok, NULL, AUTH_ROLE_OPERATOR, API_ROUTE_RATE_LIMITED},
    };
    assert_int_equal(api_server_routes(f->srv, routes, CV_ARRAY_SIZE(routes)), 0);
    f->port = api_server_port(f->srv);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    assert_true(tc_close_server(f->srv, &f->loop));
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    auth_destroy(f->auth);
    free(f);
    return 0;
}

static int status_of(fixture_t *f, const char *method, const char *path, const char *token,
                     tc_resp_t *r)
{
    char *h = token ? cv_sprintf("Authorization: Bearer %s\r\n", token) : cv_strdup("");
    assert_int_equal(tc_request(&f->loop, f->port, method, path, h, NULL, r), 0);
    free(h);
    return r->status;
}

static void each_role_reaches_its_routes_and_no_further(void **state)
{
    fixture_t *f = *state;
    const char *paths[] = {"/v", "/o", "/a"};
    const char *tokens[] = {VIEWER, OPERATOR, ADMIN};
    tc_resp_t r = {0};
    for (int t = 0; t < 3; t++) {
        for (int p = 0; p < 3; p++) {
            int want = p <= t ? 200 : 403;
            int got = status_of(f, "GET", paths[p], tokens[t], &r);
            if (got != want)
                fail_msg("token %d on %s: %d, want %d", t, paths[p], got, want);
        }
    }
    assert_int_equal(status_of(f, "GET", "/o", VIEWER, &r), 403);
    assert_non_null(strstr(r.body.data, "\"forbidden\""));
    assert_int_equal(status_of(f, "GET", "/public", NULL, &r), 200);
    assert_int_equal(status_of(f, "GET", "/public", ADMIN, &r), 200);
    assert_string_equal(r.body.data, "{\"who\":\"admin\"}");
    tc_resp_free(&r);
}

static void missing_or_wrong_tokens_get_401_with_a_bearer_challenge(void **state)
{
    fixture_t *f = *state;
    tc_resp_t r = {0};
    char v[64];
    const char *bad[] = {NULL, "wrong-token", VIEWER "x"};
    for (size_t i = 0; i < CV_ARRAY_SIZE(bad); i++) {
        assert_int_equal(status_of(f, "GET", "/v", bad[i], &r), 401);
        assert_non_null(tc_header(&r, "www-authenticate", v, sizeof(v)));
        assert_non_null(strstr(v, "Bearer"));
        assert_non_null(strstr(r.body.data, "\"unauthorized\""));
    }
    tc_resp_free(&r);
}

static void rate_limited_routes_answer_429_with_retry_after_per_token(void **state)
{
    fixture_t *f = *state;
    tc_resp_t r = {0};
    char v[64];
    assert_int_equal(status_of(f, "POST", "/trigger", OPERATOR, &r), 200);
    assert_int_equal(status_of(f, "POST", "/trigger", OPERATOR, &r), 200);
    assert_int_equal(status_of(f, "POST", "/trigger", OPERATOR, &r), 429);
    assert_true(atoi(tc_header(&r, "retry-after", v, sizeof(v))) >= 1);
    assert_non_null(strstr(r.body.data, "\"rate_limited\""));
    assert_int_equal(status_of(f, "POST", "/trigger", ADMIN, &r), 200); /* another bucket */
    assert_int_equal(status_of(f, "GET", "/o", OPERATOR, &r), 200);     /* not limited */
    tc_resp_free(&r);
}

static void the_authorization_header_never_reaches_the_log(void **state)
{
    fixture_t *f = *state;
    tc_resp_t r = {0};
    char path[] = "/tmp/cv-auth-log-XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    assert_true(fd >= 0);
    dup2(fd, 2);
    cv_log_setup(CV_LOG_DEBUG, false);
    status_of(f, "GET", "/v", ADMIN, &r);
    status_of(f, "GET", "/nowhere", VIEWER, &r);
    status_of(f, "GET", "/v", "not-a-valid-token-zzz", &r);
    cv_log_setup(CV_LOG_INFO, false);
    dup2(saved, 2);
    close(saved);
    char buf[8192] = {0};
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    unlink(path);
    assert_true(n > 0); /* debug lines were written */
    assert_null(strstr(buf, ADMIN));
    assert_null(strstr(buf, VIEWER));
    assert_null(strstr(buf, "not-a-valid-token-zzz"));
    assert_null(strstr(buf, "Bearer"));
    tc_resp_free(&r);
}

static void open_mode_makes_everyone_admin(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    api_server_opts_t o = {.listen = "127.0.0.1:0"};
    char *err = NULL;
    api_server_t *srv = api_server_create(&loop, &o, &err);
    api_route_t route = {"GET", "/a", h_ok, NULL, AUTH_ROLE_ADMIN, 0};
    api_server_route(srv, &route);
    tc_resp_t r = {0};
    assert_int_equal(tc_request(&loop, api_server_port(srv), "GET", "/a", "", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "{\"who\":\"anonymous\"}");
    tc_resp_free(&r);
    assert_true(tc_close_server(srv, &loop));
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void a_reload_keeps_unchanged_tokens_and_revokes_the_others(void **state)
{
    (void)state;
    auth_t *a = make_auth(0, 0);
    auth_principal_t viewer, admin, op, fresh;
    char ticket[80];
    assert_int_equal(auth_verify_token(a, VIEWER, strlen(VIEWER), &viewer), 0);
    assert_int_equal(auth_verify_token(a, ADMIN, strlen(ADMIN), &admin), 0);
    assert_int_equal(auth_verify_token(a, OPERATOR, strlen(OPERATOR), &op), 0);
    assert_int_equal(auth_ticket_issue(a, &admin, 0, ticket), 0);
    /* viewer becomes an operator; admin is removed; operator keeps its name, not its value */
    auth_token_conf_t next[] = {
        {"viewer", AUTH_ROLE_OPERATOR, VIEWER, NULL},
        {"operator", AUTH_ROLE_OPERATOR, "tok-operator-rotated-zzz", NULL},
    };
    auth_opts_t o = {.tokens = next, .ntokens = 2};
    char *err = NULL;
    assert_int_equal(auth_reload(a, &o, &err), 0);
    assert_int_equal(auth_principal_refresh(a, &viewer), 0);
    assert_int_equal(viewer.role, AUTH_ROLE_OPERATOR);
    assert_int_equal(auth_principal_refresh(a, &admin), -EACCES);
    assert_int_equal(auth_principal_refresh(a, &op), -EACCES);
    assert_int_equal(auth_verify_token(a, ADMIN, strlen(ADMIN), &fresh), -EACCES);
    assert_int_equal(auth_verify_token(a, OPERATOR, strlen(OPERATOR), &fresh), -EACCES);
    assert_int_equal(auth_ticket_redeem(a, ticket, 64, 1, &fresh), -EACCES); /* went with admin */
    assert_int_equal(auth_verify_token(a, VIEWER, strlen(VIEWER), &fresh), 0);
    assert_int_equal(fresh.role, AUTH_ROLE_OPERATOR);
    /* a bad table is refused and the running one stays */
    auth_token_conf_t bad[] = {{"x", AUTH_ROLE_VIEWER, NULL, "not-hex"}};
    auth_opts_t ob = {.tokens = bad, .ntokens = 1};
    assert_int_equal(auth_reload(a, &ob, &err), -EINVAL);
    assert_non_null(err);
    free(err);
    assert_int_equal(auth_principal_refresh(a, &viewer), 0);
    /* no token left: open mode, where only the anonymous caller stays */
    auth_opts_t none = {.tokens = NULL, .ntokens = 0};
    assert_int_equal(auth_reload(a, &none, &err), 0);
    assert_true(auth_is_open(a));
    assert_int_equal(auth_principal_refresh(a, &viewer), -EACCES);
    assert_int_equal(auth_verify_token(a, "", 0, &fresh), 0);
    assert_int_equal(auth_principal_refresh(a, &fresh), 0);
    auth_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tokens_match_by_plain_value_or_by_digest),
        cmocka_unit_test(every_lookup_compares_against_every_token),
        cmocka_unit_test(bad_token_configs_are_refused_without_echoing_the_secret),
        cmocka_unit_test(without_tokens_only_loopback_may_listen),
        cmocka_unit_test(buckets_refill_at_the_configured_rate_per_token),
        cmocka_unit_test(tickets_are_single_use_and_expire),
        cmocka_unit_test(a_reload_keeps_unchanged_tokens_and_revokes_the_others),
        cmocka_unit_test_setup_teardown(each_role_reaches_its_routes_and_no_further, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(missing_or_wrong_tokens_get_401_with_a_bearer_challenge,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(rate_limited_routes_answer_429_with_retry_after_per_token,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(the_authorization_header_never_reaches_the_log, setup,
                                        teardown),
        cmocka_unit_test(open_mode_makes_everyone_admin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
