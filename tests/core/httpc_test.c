/* httpc against a libuv HTTP server living on the same loop (httpc_test_server.h). No sleeps:
 * each case runs the loop until its callbacks arrive, and ends with uv_loop_close() == 0. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
#include <dlfcn.h>
#include <netdb.h>
#include <semaphore.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "core/httpc.h"
#include "core/httpc_text.h"
#include "core/log.h"
#include "tests/core/httpc_test_server.h"

typedef struct got {
    int calls;
    httpc_error_t error;
    long status;
    char *message, *body, *ctype;
    size_t body_len;
    uint64_t body_total;
    bool truncated;
    double total_ms, connect_ms, tls_ms, first_byte_ms;
    int64_t start_ns, end_ns;
    int order; /* value of the fixture's completion counter when this one completed */
} got_t;

typedef struct fx {
    uv_loop_t loop;
    srv_t srv;
    httpc_t *c;
    int completed;
    bool closed;
    int completed_at_close;
} fx_t;

static fx_t *cur; /* the fixture of the running case (callbacks reach it through here) */

static void on_done(httpc_xfer_t *x, const httpc_result_t *r, void *ud)
{
    got_t *g = ud;
    g->calls++;
    g->end_ns = cv_mono_ns();
    g->error = r->error;
    g->status = r->status;
    g->message = r->message ? cv_strdup(r->message) : NULL;
    g->body = cv_malloc(r->body_len + 1); /* binary: may hold NUL bytes */
    memcpy(g->body, r->body, r->body_len + 1);
    g->body_len = r->body_len;
    g->body_total = r->body_total;
    g->truncated = r->body_truncated;
    g->ctype = r->content_type ? cv_strdup(r->content_type) : NULL;
    g->total_ms = r->total_ms;
    g->connect_ms = r->connect_ms;
    g->tls_ms = r->tls_ms;
    g->first_byte_ms = r->first_byte_ms;
    g->order = ++cur->completed;
}

static void got_free(got_t *g)
{
    free(g->message);
    free(g->body);
    free(g->ctype);
}

static void fx_start(fx_t *f)
{
    memset(f, 0, sizeof(*f));
    cur = f;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(srv_start(&f->loop, &f->srv), 0);
    f->c = httpc_create(&f->loop);
}

static void on_client_closed(void *ud)
{
    fx_t *f = ud;
    f->closed = true;
    f->completed_at_close = f->completed;
}

/* Closes the client and the server, runs the loop dry and checks nothing is left behind. */
static void fx_finish(fx_t *f)
{
    if (f->c != NULL)
        httpc_close(f->c, on_client_closed, f);
    srv_stop(&f->srv);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->closed);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void run_until_calls(fx_t *f, const int *calls, int want)
{
    while (*calls < want)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static char *url(fx_t *f, const char *path)
{
    return cv_sprintf("http://127.0.0.1:%d%s", f->srv.port, path);
}

/* Sends a request built from req (url filled from path) and waits for its completion. */
static void fetch(fx_t *f, httpc_req_t req, const char *path, got_t *g)
{
    char *u = url(f, path);
    req.url = u;
    g->start_ns = cv_mono_ns();
    assert_int_equal(httpc_request(f->c, &req, on_done, g, NULL), 0);
    free(u);
    run_until_calls(f, &g->calls, 1);
    assert_int_equal(g->calls, 1);
}

/* A TCP port on 127.0.0.1 where connections are refused: bound without SO_REUSEADDR and not
 * listening, so nothing else can take it while *fd stays open (close it at the end). */
static int closed_port(int *fd)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(*fd >= 0);
    assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

static void returns_200_with_body_content_type_and_timings(void **state)
{
    fx_t f;
    got_t g = {0};
    fx_start(&f);
    fetch(&f, (httpc_req_t){0}, "/ok", &g);
    assert_int_equal(g.error, HTTPC_OK);
    assert_null(g.message);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body, "hello from /ok");
    assert_int_equal(g.body_total, 14);
    assert_false(g.truncated);
    assert_string_equal(g.ctype, "text/plain");
    assert_true(g.connect_ms > 0 && g.first_byte_ms >= g.connect_ms);
    assert_true(g.total_ms >= g.first_byte_ms);
    assert_true(g.tls_ms == 0);
    got_free(&g);
    fx_finish(&f);
}

static void reports_500_as_a_status_not_a_transport_error(void **state)
{
    fx_t f;
    got_t g = {0};
    fx_start(&f);
    fetch(&f, (httpc_req_t){0}, "/500", &g);
    assert_int_equal(g.error, HTTPC_OK);
    assert_null(g.message);
    assert_int_equal(g.status, 500);
    assert_string_equal(g.body, "boom");
    got_free(&g);
    fx_finish(&f);
}

static void head_request_gets_the_status_and_no_body(void **state)
{
    fx_t f;
    got_t g = {0};
    fx_start(&f);
    fetch(&f, (httpc_req_t){.method = "HEAD"}, "/ok", &g);
    assert_int_equal(g.error, HTTPC_OK);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.body_total, 0);
    got_free(&g);
    fx_finish(&f);
}

static void does_not_follow_redirects_unless_asked(void **state)
{
    fx_t f;
    got_t g1 = {0}, g2 = {0};
    fx_start(&f);
    fetch(&f, (httpc_req_t){0}, "/redirect", &g1);
    assert_int_equal(g1.status, 302);
    fetch(&f, (httpc_req_t){.follow_redirects = true}, "/redirect", &g2);
    assert_int_equal(g2.status, 200);
    assert_string_equal(g2.body, "hello from /ok");
    got_free(&g1);
    got_free(&g2);
    fx_finish(&f);
}

static void times_out_on_a_hanging_server_at_the_timeout_with_a_clear_message(void **state)
{
    fx_t f;
    got_t g = {0};
    fx_start(&f);
    fetch(&f, (httpc_req_t){.timeout_ms = 300}, "/hang", &g);
    double elapsed = (double)(g.end_ns - g.start_ns) / 1e6;
    printf("# /hang with timeout 300 ms completed after %.1f ms\n", elapsed);
    assert_int_equal(g.error, HTTPC_ERR_TIMEOUT);
    assert_true(elapsed >= 299 && elapsed < 300 + 200);
    assert_int_equal(g.status, 0);
    char *want =
        cv_sprintf("timed out after 300 ms waiting for 127.0.0.1:%d to respond", f.srv.port);
    assert_string_equal(g.message, want);
    free(want);
    got_free(&g);
    fx_finish(&f);
}

static void reports_connection_refused_on_a_closed_port(void **state)
{
    fx_t f;
    got_t g = {0};
    int fd, port = closed_port(&fd);
    fx_start(&f);
    char *u = cv_sprintf("http://127.0.0.1:%d/x", port);
    assert_int_equal(httpc_request(f.c, &(httpc_req_t){.url = u}, on_done, &g, NULL), 0);
    run_until_calls(&f, &g.calls, 1);
    assert_int_equal(g.error, HTTPC_ERR_CONNECT);
    char *want = cv_sprintf("connection refused to 127.0.0.1:%d", port);
    assert_string_equal(g.message, want);
    free(want);
    free(u);
    got_free(&g);
    fx_finish(&f);
    close(fd);
}

static void sends_the_method_headers_and_body(void **state)
{
    fx_t f;
    got_t g = {0};
    httpc_header_t h[] = {{"X-Test", "hello"}, {"Authorization", "Bearer abc"}, {"X-Empty", ""}};
    fx_start(&f);
    fetch(&f,
          (httpc_req_t){
              .method = "PUT", .headers = h, .n_headers = 3, .body = "payload=1", .body_len = 9},
          "/echo-headers", &g);
    assert_int_equal(g.status, 200);
    assert_true(strncmp(g.body, "PUT /echo-headers HTTP/1.1\r\n", 28) == 0);
    assert_non_null(strstr(g.body, "\r\nX-Test: hello\r\n"));
    assert_non_null(strstr(g.body, "\r\nAuthorization: Bearer abc\r\n"));
    assert_non_null(strstr(g.body, "\r\nX-Empty:"));
    assert_non_null(strstr(g.body, "\r\nUser-Agent: cronvisor/"));
    assert_null(strstr(g.body, "Expect:"));
    assert_true(strlen(g.body) > 9 && strcmp(g.body + strlen(g.body) - 9, "payload=1") == 0);
    got_free(&g);
    fx_finish(&f);
}

static void assert_tail_is_end_of_big(const got_t *g, size_t keep)
{
    assert_int_equal(g->body_total, SRV_BIG_LEN);
    assert_int_equal(g->body_len, keep);
    assert_true(g->truncated);
    for (size_t i = 0; i < keep; i++)
        if ((unsigned char)g->body[i] != srv_big_byte(SRV_BIG_LEN - keep + i))
            fail_msg("tail byte %zu of %zu differs", i, keep);
}

static void keeps_the_last_max_body_bytes_and_counts_all_of_a_5_mb_body(void **state)
{
    fx_t f;
    got_t small = {0}, odd = {0}, none = {0};
    fx_start(&f);
    fetch(&f, (httpc_req_t){.max_body = 1024}, "/big", &small);
    assert_tail_is_end_of_big(&small, 1024);
    /* Not a divisor of any read size: the ring wraps at varying offsets. */
    fetch(&f, (httpc_req_t){.max_body = 100003}, "/big", &odd);
    assert_tail_is_end_of_big(&odd, 100003);
    fetch(&f, (httpc_req_t){.max_body = HTTPC_BODY_NONE}, "/big", &none);
    assert_int_equal(none.body_len, 0);
    assert_int_equal(none.body_total, SRV_BIG_LEN);
    assert_string_equal(none.ctype, "application/octet-stream");
    got_free(&small);
    got_free(&odd);
    got_free(&none);
    fx_finish(&f);
}

#define N_CONCURRENT 200

static void completes_200_concurrent_requests(void **state)
{
    fx_t f;
    static got_t g[N_CONCURRENT];
    int calls = 0;
    fx_start(&f);
    memset(g, 0, sizeof(g));
    char *ok = url(&f, "/ok"), *slow = url(&f, "/slow?ms=100");
    int64_t t0 = cv_mono_ns();
    for (int i = 0; i < N_CONCURRENT; i++) {
        httpc_req_t req = {.url = i % 2 ? slow : ok, .timeout_ms = 10000};
        assert_int_equal(httpc_request(f.c, &req, on_done, &g[i], NULL), 0);
    }
    assert_int_equal(httpc_pending(f.c), N_CONCURRENT);
    while (f.completed < N_CONCURRENT)
        uv_run(&f.loop, UV_RUN_ONCE);
    double ms = (double)(cv_mono_ns() - t0) / 1e6;
    printf("# %d concurrent requests (half wait 100 ms on the server) done in %.1f ms\n",
           N_CONCURRENT, ms);
    for (int i = 0; i < N_CONCURRENT; i++) {
        calls += g[i].calls;
        assert_int_equal(g[i].calls, 1);
        assert_int_equal(g[i].error, HTTPC_OK);
        assert_int_equal(g[i].status, 200);
        assert_string_equal(g[i].body, i % 2 ? "slow" : "hello from /ok");
        got_free(&g[i]);
    }
    assert_int_equal(calls, N_CONCURRENT);
    assert_int_equal(httpc_pending(f.c), 0);
    assert_true(ms < 100.0 * N_CONCURRENT / 2 / 4); /* far from one after the other */
    free(ok);
    free(slow);
    fx_finish(&f);
}

static void on_cancel_timer(uv_timer_t *t)
{
    httpc_cancel(t->data);
    uv_close((uv_handle_t *)t, NULL);
}

static void cancel_delivers_one_cancelled_callback_later_not_inside_the_call(void **state)
{
    fx_t f;
    got_t now = {0}, later = {0};
    httpc_xfer_t *x;
    uv_timer_t t;
    fx_start(&f);
    char *u = url(&f, "/hang");
    assert_int_equal(httpc_request(f.c, &(httpc_req_t){.url = u}, on_done, &now, &x), 0);
    httpc_cancel(x);
    assert_int_equal(now.calls, 0); /* not from inside httpc_cancel */
    assert_int_equal(httpc_request(f.c, &(httpc_req_t){.url = u}, on_done, &later, &x), 0);
    uv_timer_init(&f.loop, &t);
    t.data = x;
    uv_update_time(&f.loop); /* the timer counts from now, not from the last loop pass */
    uv_timer_start(&t, on_cancel_timer, 50, 0);
    run_until_calls(&f, &later.calls, 1);
    run_until_calls(&f, &now.calls, 1);
    assert_int_equal(now.error, HTTPC_ERR_CANCELLED);
    assert_int_equal(later.error, HTTPC_ERR_CANCELLED);
    assert_string_equal(later.message, "cancelled");
    assert_true(later.total_ms >= 45 && later.total_ms < 1000); /* at the cancel, not the timeout */
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_int_equal(now.calls + later.calls, 2);
    free(u);
    got_free(&now);
    got_free(&later);
    fx_finish(&f);
}

static void close_with_requests_in_flight_cancels_them_then_calls_back(void **state)
{
    fx_t f;
    got_t g[10] = {0};
    fx_start(&f);
    char *hang = url(&f, "/hang"), *slow = url(&f, "/slow?ms=5000");
    for (int i = 0; i < 10; i++)
        assert_int_equal(
            httpc_request(f.c, &(httpc_req_t){.url = i % 2 ? hang : slow}, on_done, &g[i], NULL),
            0);
    while (f.srv.requests < 10) /* all ten reached the server: truly in flight */
        uv_run(&f.loop, UV_RUN_ONCE);
    httpc_close(f.c, on_client_closed, &f);
    assert_int_equal(httpc_request(f.c, &(httpc_req_t){.url = hang}, on_done, &g[0], NULL),
                     -ESHUTDOWN);
    f.c = NULL;
    assert_int_equal(f.completed, 0);
    fx_finish(&f);
    assert_int_equal(f.completed_at_close, 10); /* every request callback ran before close's */
    for (int i = 0; i < 10; i++) {
        assert_int_equal(g[i].calls, 1);
        assert_int_equal(g[i].error, HTTPC_ERR_CANCELLED);
        assert_string_equal(g[i].message, "cancelled: HTTP client closing");
        got_free(&g[i]);
    }
    free(hang);
    free(slow);
}

static void assert_no_secret(const char *msg)
{
    const char *secrets[] = {"alice", "hunter2secret", "tok123456", "frag-secret", "sekrit-token"};
    for (size_t i = 0; i < CV_ARRAY_SIZE(secrets); i++)
        if (strstr(msg, secrets[i]) != NULL)
            fail_msg("secret %zu leaked into \"%s\"", i, msg);
}

static void never_puts_url_or_header_secrets_in_error_messages(void **state)
{
    fx_t f;
    got_t refused = {0}, timeout = {0}, tls = {0};
    httpc_header_t h[] = {{"Authorization", "Bearer sekrit-token"}};
    int fd, port = closed_port(&fd);
    fx_start(&f);
    char *u1 = cv_sprintf("http://alice:hunter2secret@127.0.0.1:%d/p?token=tok123456", port);
    char *u2 = cv_sprintf("http://alice:hunter2secret@127.0.0.1:%d/hang?token=tok123456#frag-"
                          "secret",
                          f.srv.port);
    char *u3 =
        cv_sprintf("https://alice:hunter2secret@127.0.0.1:%d/ok?token=tok123456", f.srv.port);
    httpc_req_t r = {.headers = h, .n_headers = 1, .timeout_ms = 200};
    r.url = u2;
    assert_int_equal(httpc_request(f.c, &r, on_done, &timeout, NULL), 0);
    r.timeout_ms = 10000; /* the other two fail on their own, well before */
    r.url = u1;
    assert_int_equal(httpc_request(f.c, &r, on_done, &refused, NULL), 0);
    r.url = u3; /* TLS to a plain-text server: the handshake fails with curl's own text */
    assert_int_equal(httpc_request(f.c, &r, on_done, &tls, NULL), 0);
    while (f.completed < 3)
        uv_run(&f.loop, UV_RUN_ONCE);
    printf("# refused: %s\n# timeout: %s\n# tls: %s\n", refused.message, timeout.message,
           tls.message);
    assert_int_equal(refused.error, HTTPC_ERR_CONNECT);
    assert_int_equal(timeout.error, HTTPC_ERR_TIMEOUT);
    assert_int_equal(tls.error, HTTPC_ERR_TLS);
    assert_non_null(strstr(tls.message, "TLS handshake with 127.0.0.1:"));
    assert_no_secret(refused.message);
    assert_no_secret(timeout.message);
    assert_no_secret(tls.message);
    free(u1);
    free(u2);
    free(u3);
    got_free(&refused);
    got_free(&timeout);
    got_free(&tls);
    fx_finish(&f);
    close(fd);
}

static void rejects_non_http_schemes_with_a_clear_message(void **state)
{
    fx_t f;
    got_t g = {0};
    fx_start(&f);
    assert_int_equal(
        httpc_request(f.c, &(httpc_req_t){.url = "file:///etc/passwd"}, on_done, &g, NULL), 0);
    run_until_calls(&f, &g.calls, 1);
    assert_int_equal(g.error, HTTPC_ERR_URL);
    assert_non_null(strstr(g.message, "unsupported scheme in URL file:///etc/passwd"));
    got_free(&g);
    fx_finish(&f);
}

static void rejects_header_injection_without_echoing_the_value(void **state)
{
    fx_t f;
    char err[256];
    httpc_header_t bad_value[] = {{"X-Token", "s3cret\r\nX-Evil: 1"}};
    httpc_header_t bad_name[] = {{"X Token", "v"}};
    httpc_req_t r = {.url = "http://127.0.0.1:1/", .headers = bad_value, .n_headers = 1};
    fx_start(&f);
    assert_int_equal(httpc_req_validate(&r, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "HTTP request: header 1 (X-Token): value is missing or contains "
                             "CR or LF");
    assert_int_equal(httpc_request(f.c, &r, on_done, NULL, NULL), -EINVAL);
    r.headers = bad_name;
    assert_int_equal(httpc_req_validate(&r, err, sizeof(err)), -EINVAL);
    r = (httpc_req_t){.url = "http://x/ y"};
    assert_int_equal(httpc_req_validate(&r, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "HTTP request: url has a space or control character at offset 9");
    r = (httpc_req_t){.url = "http://x/", .method = "GE T"};
    assert_int_equal(httpc_req_validate(&r, err, sizeof(err)), -EINVAL);
    assert_int_equal(httpc_pending(f.c), 0);
    fx_finish(&f);
}

static void redact_url_hides_userinfo_query_values_and_fragment(void **state)
{
    const char *cases[][2] = {
        {"https://user:pw@example.com/a/b?x=1&token=abc#frag",
         "https://***@example.com/a/b?x=***&token=***"},
        {"http://example.com:8080/path", "http://example.com:8080/path"},
        {"http://example.com/p@th?bare&k=", "http://example.com/p@th?***&k=***"},
        {"http://a:b@[::1]:81/", "http://***@[::1]:81/"},
        {"example.com/x?q=1", "example.com/x?q=***"},
        {"", ""},
    };
    for (size_t i = 0; i < CV_ARRAY_SIZE(cases); i++) {
        char *r = httpc_redact_url(cases[i][0]);
        assert_string_equal(r, cases[i][1]);
        free(r);
    }
    char *r = httpc_redact_url(NULL);
    assert_string_equal(r, "");
    free(r);
}

static void scrub_masks_url_parts_header_values_and_registered_secrets(void **state)
{
    struct curl_slist *h = curl_slist_append(NULL, "Authorization: Bearer sekrit-token");
    h = curl_slist_append(h, "X-Empty;");
    cv_secret_register("registered-secret");
    char *r =
        httpc__scrub("alice:hunter2secret token=tok123456 frag-secret Bearer sekrit-token "
                     "registered-secret at example.com:443",
                     "https://alice:hunter2secret@example.com/p?token=tok123456#frag-secret", h);
    assert_string_equal(r, "***:*** *** *** *** *** at example.com:443");
    free(r);
    cv_secret_clear();
    curl_slist_free_all(h);
}

typedef struct ticker {
    uv_timer_t t;
    int64_t last_ns;
    double max_gap_ms;
    int ticks;
} ticker_t;

static void on_tick(uv_timer_t *t)
{
    ticker_t *k = cv_container_of(t, ticker_t, t);
    int64_t now = cv_mono_ns();
    double gap = (double)(now - k->last_ns) / 1e6;
    if (gap > k->max_gap_ms)
        k->max_gap_ms = gap;
    k->last_ns = now;
    k->ticks++;
}

static void keeps_the_loop_responsive_while_a_request_hangs(void **state)
{
    fx_t f;
    got_t g = {0};
    ticker_t k = {0};
    fx_start(&f);
    uv_timer_init(&f.loop, &k.t);
    k.last_ns = cv_mono_ns();
    uv_timer_start(&k.t, on_tick, 10, 10);
    /* "localhost" goes through curl's resolver too. */
    char *u = cv_sprintf("http://localhost:%d/hang", f.srv.port);
    assert_int_equal(
        httpc_request(f.c, &(httpc_req_t){.url = u, .timeout_ms = 500}, on_done, &g, NULL), 0);
    run_until_calls(&f, &g.calls, 1);
    uv_close((uv_handle_t *)&k.t, NULL);
    printf("# async DNS: %s; 10 ms ticker during a 500 ms hang: %d ticks, max gap %.2f ms\n",
           httpc_async_dns() ? "yes" : "no", k.ticks, k.max_gap_ms);
    assert_int_equal(g.error, HTTPC_ERR_TIMEOUT);
    assert_true(k.ticks >= 20); /* a blocked loop would give ~1 tick and a ~500 ms gap */
    assert_true(k.max_gap_ms < 250);
    free(u);
    got_free(&g);
    fx_finish(&f);
}

static sem_t dns_entered, dns_release, dns_returned;
static int dns_slow_calls;

/* Interposes libc's getaddrinfo for libcurl's resolver thread: "slow-dns.test" blocks until the
 * test releases it (10 s at most), other names go to libc. */
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    if (node != NULL && strcmp(node, "slow-dns.test") == 0) {
        struct timespec ts;
        __atomic_add_fetch(&dns_slow_calls, 1, __ATOMIC_SEQ_CST);
        sem_post(&dns_entered);
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 10;
        sem_timedwait(&dns_release, &ts);
        sem_post(&dns_returned);
        return EAI_NONAME;
    }
    int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **) =
        (int (*)(const char *, const char *, const struct addrinfo *, struct addrinfo **))dlsym(
            RTLD_NEXT, "getaddrinfo");
    return real(node, service, hints, res);
}

static void a_slow_lookup_delays_neither_a_timeout_nor_a_close_nor_the_loop(void **state)
{
    fx_t f;
    got_t g = {0};
    ticker_t k = {0};
    sem_init(&dns_entered, 0, 0);
    sem_init(&dns_release, 0, 0);
    sem_init(&dns_returned, 0, 0);
    struct timespec ts;
    fx_start(&f);
    g.start_ns = cv_mono_ns();
    httpc_req_t req = {.url = "http://slow-dns.test:8080/", .timeout_ms = 200};
    assert_int_equal(httpc_request(f.c, &req, on_done, &g, NULL), 0);
    uv_run(&f.loop, UV_RUN_ONCE); /* curl's 0 ms timer: the lookup starts in curl's thread */
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    assert_int_equal(sem_timedwait(&dns_entered, &ts), 0); /* it now hangs in getaddrinfo */
    double entered_ms = (double)(cv_mono_ns() - g.start_ns) / 1e6;
    uv_timer_init(&f.loop, &k.t);
    k.last_ns = cv_mono_ns();
    uv_timer_start(&k.t, on_tick, 10, 10);
    run_until_calls(&f, &g.calls, 1);
    uv_close((uv_handle_t *)&k.t, NULL);
    double elapsed = (double)(g.end_ns - g.start_ns) / 1e6;
    printf("# lookup hanging (entered after %.1f ms): timeout after %.1f ms, ticker max gap "
           "%.2f ms\n",
           entered_ms, elapsed, k.max_gap_ms);
    assert_int_equal(dns_slow_calls, 1);
    assert_int_equal(g.error, HTTPC_ERR_TIMEOUT);
    assert_string_equal(g.message,
                        "timed out after 200 ms resolving the host name of slow-dns.test:8080");
    assert_true(elapsed >= 199 && elapsed < (entered_ms > 200 ? entered_ms : 200) + 300);
    assert_true(k.max_gap_ms < 150);

    /* Closing the client while a lookup runs does not wait for it either. */
    got_t g2 = {0};
    req.timeout_ms = 0;
    assert_int_equal(httpc_request(f.c, &req, on_done, &g2, NULL), 0);
    uv_run(&f.loop, UV_RUN_ONCE); /* curl's 0 ms timer: the lookup starts */
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    assert_int_equal(sem_timedwait(&dns_entered, &ts), 0);
    int64_t t0 = cv_mono_ns();
    fx_finish(&f);
    double close_ms = (double)(cv_mono_ns() - t0) / 1e6;
    printf("# close with a lookup hanging took %.1f ms\n", close_ms);
    assert_int_equal(g2.error, HTTPC_ERR_CANCELLED);
    assert_true(close_ms < 300);
    for (int i = 0; i < 2; i++) { /* let curl's detached resolver threads finish */
        sem_post(&dns_release);
        sem_wait(&dns_returned);
    }
    got_free(&g);
    got_free(&g2);
}

static got_t chain_second;

static void on_first_then_start_another(httpc_xfer_t *x, const httpc_result_t *r, void *ud)
{
    on_done(x, r, ud);
    char *u = url(cur, "/ok");
    assert_int_equal(httpc_request(cur->c, &(httpc_req_t){.url = u}, on_done, &chain_second, NULL),
                     0);
    free(u);
}

static void a_callback_may_start_another_request(void **state)
{
    fx_t f;
    got_t first = {0};
    fx_start(&f);
    memset(&chain_second, 0, sizeof(chain_second));
    char *u = url(&f, "/500");
    assert_int_equal(
        httpc_request(f.c, &(httpc_req_t){.url = u}, on_first_then_start_another, &first, NULL), 0);
    run_until_calls(&f, &chain_second.calls, 1);
    assert_int_equal(first.status, 500);
    assert_int_equal(chain_second.status, 200);
    free(u);
    got_free(&first);
    got_free(&chain_second);
    fx_finish(&f);
}

/* ---- a cancel (a deadline's) against a completion: both orders, and one pass ---- */

static void find_active_idle(uv_handle_t *h, void *arg)
{
    if (h->type == UV_IDLE && uv_is_active(h))
        *(bool *)arg = true;
}

/* True when a completion waits for its callback: httpc's idle handle (the only idle handle of
 * these loops) runs exactly while one does. */
static bool completion_waiting(fx_t *f)
{
    bool found = false;
    uv_walk(&f->loop, find_active_idle, &found);
    return found;
}

static void
a_cancel_after_the_transfer_ended_but_before_its_callback_keeps_the_real_result(void **state)
{
    fx_t f;
    fx_start(&f);
    char *u = url(&f, "/ok");
    bool seen = false;
    /* The transfer ends in a poll callback and its callback runs from the next pass's idle:
     * in between (where a deadline's timer fires first) the cancel must change nothing. A
     * transfer that ends in curl's timer callback is delivered in that same pass; try again. */
    for (int attempt = 0; attempt < 20 && !seen; attempt++) {
        got_t g = {0};
        httpc_xfer_t *x;
        assert_int_equal(httpc_request(f.c, &(httpc_req_t){.url = u}, on_done, &g, &x), 0);
        while (g.calls == 0 && !completion_waiting(&f))
            uv_run(&f.loop, UV_RUN_ONCE);
        if (g.calls == 0) {
            seen = true;
            httpc_cancel(x);
            assert_int_equal(g.calls, 0);
            run_until_calls(&f, &g.calls, 1);
        }
        assert_int_equal(g.calls, 1);
        assert_int_equal(g.error, HTTPC_OK);
        assert_int_equal(g.status, 200);
        assert_string_equal(g.body, "hello from /ok");
        got_free(&g);
    }
    assert_true(seen);
    free(u);
    fx_finish(&f);
}

static void on_done_then_cancel_self(httpc_xfer_t *x, const httpc_result_t *r, void *ud)
{
    on_done(x, r, ud);
    httpc_cancel(x); /* a deadline reached from inside the callback: nothing happens */
}

static void a_cancel_before_the_transfer_ended_and_one_from_its_callback_deliver_once(void **state)
{
    fx_t f;
    got_t g = {0};
    httpc_xfer_t *x;
    fx_start(&f);
    char *u = url(&f, "/hang");
    assert_int_equal(httpc_request(f.c, &(httpc_req_t){.url = u}, on_done_then_cancel_self, &g, &x),
                     0);
    while (f.srv.requests < 1) /* truly in flight */
        uv_run(&f.loop, UV_RUN_ONCE);
    httpc_cancel(x);
    httpc_cancel(x); /* a second cancel (close after a deadline) changes nothing either */
    run_until_calls(&f, &g.calls, 1);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.error, HTTPC_ERR_CANCELLED);
    free(u);
    got_free(&g);
    fx_finish(&f);
}

int main(void)
{
    assert_int_equal(httpc_global_init(), 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(returns_200_with_body_content_type_and_timings),
        cmocka_unit_test(reports_500_as_a_status_not_a_transport_error),
        cmocka_unit_test(head_request_gets_the_status_and_no_body),
        cmocka_unit_test(does_not_follow_redirects_unless_asked),
        cmocka_unit_test(times_out_on_a_hanging_server_at_the_timeout_with_a_clear_message),
        cmocka_unit_test(reports_connection_refused_on_a_closed_port),
        cmocka_unit_test(sends_the_method_headers_and_body),
        cmocka_unit_test(keeps_the_last_max_body_bytes_and_counts_all_of_a_5_mb_body),
        cmocka_unit_test(completes_200_concurrent_requests),
        cmocka_unit_test(cancel_delivers_one_cancelled_callback_later_not_inside_the_call),
        cmocka_unit_test(close_with_requests_in_flight_cancels_them_then_calls_back),
        cmocka_unit_test(never_puts_url_or_header_secrets_in_error_messages),
        cmocka_unit_test(rejects_non_http_schemes_with_a_clear_message),
        cmocka_unit_test(rejects_header_injection_without_echoing_the_value),
        cmocka_unit_test(redact_url_hides_userinfo_query_values_and_fragment),
        cmocka_unit_test(scrub_masks_url_parts_header_values_and_registered_secrets),
        cmocka_unit_test(keeps_the_loop_responsive_while_a_request_hangs),
        cmocka_unit_test(a_callback_may_start_another_request),
        cmocka_unit_test(a_slow_lookup_delays_neither_a_timeout_nor_a_close_nor_the_loop),
        cmocka_unit_test(
            a_cancel_after_the_transfer_ended_but_before_its_callback_keeps_the_real_result),
        cmocka_unit_test(a_cancel_before_the_transfer_ended_and_one_from_its_callback_deliver_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
