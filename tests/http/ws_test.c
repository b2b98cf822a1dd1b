/* The WebSocket hub over real sockets: handshake written here, masked client frames, tickets,
 * first-message auth, sequence numbers, resume, topics, slow and silent clients, bad frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "http/ws.h"
#include "tclient.h"

#define VIEWER_TOKEN "viewer-token-0123456789"

typedef struct fixture {
    uv_loop_t loop;
    auth_t *auth;
    api_server_t *srv;
    ws_hub_t *hub;
    int port;
} fixture_t;

static fixture_t *start(const ws_hub_opts_t *hub_opts)
{
    fixture_t *f = cv_calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    auth_token_conf_t tokens[] = {{"alice", AUTH_ROLE_VIEWER, VIEWER_TOKEN, NULL}};
    auth_opts_t aopts = {.tokens = tokens, .ntokens = 1};
    char *err = NULL;
    f->auth = auth_create(&aopts, &err);
    assert_non_null(f->auth);
    api_server_opts_t opts = {.listen = "127.0.0.1:0", .auth = f->auth};
    f->srv = api_server_create(&f->loop, &opts, &err);
    assert_non_null(f->srv);
    f->hub = ws_hub_create(f->srv, hub_opts);
    assert_non_null(f->hub);
    f->port = api_server_port(f->srv);
    return f;
}

static int setup(void **state)
{
    *state = start(NULL);
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

static const char *type_of(json_t *j)
{
    return json_string_value(json_object_get(j, "type"));
}

static json_int_t seq_of(json_t *j)
{
    return json_integer_value(json_object_get(j, "seq"));
}

/* Connects with first-message auth and waits for "authenticated". */
static void connect_authed(fixture_t *f, tc_conn_t *c, int rcvbuf)
{
    tc_resp_t r = {0};
    assert_int_equal(tc_ws_connect(c, &f->loop, f->port, "/api/events", NULL, rcvbuf, &r), 101);
    tc_ws_send_text(c, "{\"type\":\"auth\",\"token\":\"" VIEWER_TOKEN "\"}");
    json_t *j = tc_ws_read_json(c);
    assert_non_null(j);
    assert_string_equal(type_of(j), "authenticated");
    json_decref(j);
    tc_resp_free(&r);
}

static void publish_n(fixture_t *f, int n)
{
    for (int i = 0; i < n; i++) {
        char *ev = cv_sprintf("{\"type\":\"run.started\",\"i\":%d}", i);
        assert_true(ws_hub_publish(f->hub, ev, strlen(ev)) > 0);
        free(ev);
    }
}

static void ticket_upgrade_authenticates_and_a_ticket_is_single_use(void **state)
{
    fixture_t *f = *state;
    auth_principal_t p = {"alice", AUTH_ROLE_VIEWER, 0, false};
    char ticket[65], *target;
    tc_conn_t c, again;
    tc_resp_t r = {0};
    assert_int_equal(auth_ticket_issue(f->auth, &p, uv_now(&f->loop), ticket), 0);
    target = cv_sprintf("/api/events?ticket=%s", ticket);
    assert_int_equal(tc_ws_connect(&c, &f->loop, f->port, target, NULL, 0, &r), 101);
    json_t *j = tc_ws_read_json(&c);
    assert_string_equal(type_of(j), "authenticated");
    assert_string_equal(json_string_value(json_object_get(j, "name")), "alice");
    json_decref(j);
    assert_int_equal(tc_ws_connect(&again, &f->loop, f->port, target, NULL, 0, &r), 401);
    tc_close(&again);
    tc_close(&c);
    free(target);
    tc_resp_free(&r);
}

static void events_wait_for_first_message_auth_then_arrive_in_order(void **state)
{
    fixture_t *f = *state;
    tc_conn_t c;
    tc_resp_t r = {0};
    assert_int_equal(tc_ws_connect(&c, &f->loop, f->port, "/api/events", NULL, 0, &r), 101);
    publish_n(f, 3); /* before auth: not for this client */
    tc_ws_send_text(&c, "{\"type\":\"auth\",\"token\":\"" VIEWER_TOKEN "\"}");
    json_t *j = tc_ws_read_json(&c);
    assert_string_equal(type_of(j), "authenticated");
    assert_int_equal(seq_of(j), 3);
    json_decref(j);
    publish_n(f, 50);
    for (int i = 0; i < 50; i++) {
        j = tc_ws_read_json(&c);
        assert_non_null(j);
        assert_int_equal(seq_of(j), 4 + i);
        assert_string_equal(type_of(j), "run.started");
        assert_int_equal(json_integer_value(json_object_get(j, "i")), i);
        json_decref(j);
    }
    tc_close(&c);
    tc_resp_free(&r);
}

/* Events published in one loop pass leave in one socket write per client (coalesced), every
 * client getting the same frames in order. */
static void events_of_one_pass_leave_in_one_write_per_client(void **state)
{
    fixture_t *f = *state;
    tc_conn_t c[3];
    ws_hub_stats_t before, after;
    for (int k = 0; k < 3; k++)
        connect_authed(f, &c[k], 0);
    uv_run(&f->loop, UV_RUN_NOWAIT); /* nothing left to write from the handshakes */
    ws_hub_stats(f->hub, &before);
    assert_int_equal(before.queued_bytes, 0);
    publish_n(f, 100);
    ws_hub_stats(f->hub, &after);
    assert_int_equal(after.writes, before.writes); /* nothing written before the pass ends */
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < 100; i++) {
            json_t *j = tc_ws_read_json(&c[k]);
            assert_non_null(j);
            assert_int_equal(json_integer_value(json_object_get(j, "i")), i);
            json_decref(j);
        }
    }
    ws_hub_stats(f->hub, &after);
    assert_int_equal(after.writes - before.writes, 3);
    assert_int_equal(after.queued_bytes, 0);
    for (int k = 0; k < 3; k++)
        tc_close(&c[k]);
}

static void a_bad_token_or_another_first_message_is_closed_with_1008(void **state)
{
    fixture_t *f = *state;
    const char *firsts[] = {"{\"type\":\"auth\",\"token\":\"wrong\"}",
                            "{\"type\":\"subscribe\",\"topic\":\"run:1\"}"};
    for (size_t i = 0; i < CV_ARRAY_SIZE(firsts); i++) {
        tc_conn_t c;
        tc_resp_t r = {0};
        tc_frame_t fr = {0};
        assert_int_equal(tc_ws_connect(&c, &f->loop, f->port, "/api/events", NULL, 0, &r), 101);
        tc_ws_send_text(&c, firsts[i]);
        json_t *j = tc_ws_read_json(&c);
        assert_string_equal(type_of(j), "error");
        json_decref(j);
        assert_int_equal(tc_ws_read(&c, &fr), 0);
        assert_int_equal(fr.opcode, 8);
        assert_int_equal(fr.close_code, 1008);
        tc_ws_send_frame(&c, 8, "\x03\xe8", 2, true); /* answer the close */
        assert_true(tc_wait_eof(&c));
        tc_close(&c);
        cv_buf_free(&fr.payload);
        tc_resp_free(&r);
    }
}

static void an_unauthenticated_client_is_closed_after_the_auth_timeout(void **state)
{
    (void)state;
    fixture_t *f = start(&(ws_hub_opts_t){.auth_timeout_ms = 30, .drop_grace_ms = 20});
    tc_conn_t c;
    tc_resp_t r = {0};
    tc_frame_t fr = {0};
    assert_int_equal(tc_ws_connect(&c, &f->loop, f->port, "/api/events", NULL, 0, &r), 101);
    json_t *j = tc_ws_read_json(&c);
    assert_string_equal(json_string_value(json_object_get(j, "code")), "auth_timeout");
    json_decref(j);
    assert_int_equal(tc_ws_read(&c, &fr), 0);
    assert_int_equal(fr.close_code, 1008);
    /* This client never answers the close: the grace ends it. */
    assert_true(tc_wait_eof(&c));
    tc_close(&c);
    cv_buf_free(&fr.payload);
    tc_resp_free(&r);
    void *s = f;
    teardown(&s);
}

static void resume_replays_the_missed_events_in_order(void **state)
{
    fixture_t *f = *state;
    tc_conn_t c;
    publish_n(f, 10);
    connect_authed(f, &c, 0);
    tc_ws_send_text(&c, "{\"type\":\"resume\",\"since\":4}");
    for (int seq = 5; seq <= 10; seq++) {
        json_t *j = tc_ws_read_json(&c);
        assert_int_equal(seq_of(j), seq);
        json_decref(j);
    }
    publish_n(f, 1);
    json_t *j = tc_ws_read_json(&c);
    assert_int_equal(seq_of(j), 11);
    json_decref(j);
    tc_close(&c);
}

static void since_on_the_upgrade_resumes_right_after_authentication(void **state)
{
    fixture_t *f = *state;
    tc_conn_t c;
    tc_resp_t r = {0};
    publish_n(f, 5);
    assert_int_equal(tc_ws_connect(&c, &f->loop, f->port, "/api/events?since=3",
                                   "Authorization: Bearer " VIEWER_TOKEN "\r\n", 0, &r),
                     101);
    json_t *j = tc_ws_read_json(&c);
    assert_string_equal(type_of(j), "authenticated");
    json_decref(j);
    for (int seq = 4; seq <= 5; seq++) {
        j = tc_ws_read_json(&c);
        assert_int_equal(seq_of(j), seq);
        json_decref(j);
    }
    tc_close(&c);
    tc_resp_free(&r);
}

static void resume_older_than_the_ring_gets_a_resync(void **state)
{
    (void)state;
    fixture_t *f = start(&(ws_hub_opts_t){.ring_size = 5});
    tc_conn_t c;
    publish_n(f, 20);
    connect_authed(f, &c, 0);
    tc_ws_send_text(&c, "{\"type\":\"resume\",\"since\":14}"); /* 15..20: 16..20 kept */
    json_t *j = tc_ws_read_json(&c);
    assert_string_equal(type_of(j), "resync");
    assert_int_equal(seq_of(j), 20);
    json_decref(j);
    tc_ws_send_text(&c, "{\"type\":\"resume\",\"since\":15}"); /* exactly what is kept */
    j = tc_ws_read_json(&c);
    assert_int_equal(seq_of(j), 16);
    json_decref(j);
    for (int i = 0; i < 4; i++)
        json_decref(tc_ws_read_json(&c));
    tc_ws_send_text(&c, "{\"type\":\"resume\",\"since\":99}"); /* from a previous life */
    j = tc_ws_read_json(&c);
    assert_string_equal(type_of(j), "resync");
    json_decref(j);
    tc_close(&c);
    void *s = f;
    teardown(&s);
}

/* A publisher skips events while nobody listens (a headless daemon); a client resuming from
 * before the skipped ones resyncs, one resuming after them gets what followed. */
static void events_skipped_while_nobody_listened_make_an_older_resume_resync(void **state)
{
    fixture_t *f = *state;
    tc_conn_t c;
    assert_false(ws_hub_listening(f->hub));
    publish_n(f, 3);     /* 1..3 */
    ws_hub_skip(f->hub); /* 4: the placeholder */
    ws_hub_skip(f->hub); /* the same gap */
    publish_n(f, 2);     /* 5, 6 */
    connect_authed(f, &c, 0);
    assert_true(ws_hub_listening(f->hub));
    tc_ws_send_text(&c, "{\"type\":\"resume\",\"since\":2}");
    json_t *j = tc_ws_read_json(&c);
    assert_string_equal(type_of(j), "resync");
    assert_int_equal(seq_of(j), 6);
    json_decref(j);
    tc_ws_send_text(&c, "{\"type\":\"resume\",\"since\":4}");
    for (int seq = 5; seq <= 6; seq++) {
        j = tc_ws_read_json(&c);
        assert_int_equal(seq_of(j), seq);
        assert_string_equal(type_of(j), "run.started");
        json_decref(j);
    }
    tc_close(&c);
}

static void topic_events_reach_only_subscribers(void **state)
{
    fixture_t *f = *state;
    tc_conn_t sub, other;
    connect_authed(f, &sub, 0);
    connect_authed(f, &other, 0);
    tc_ws_send_text(&sub, "{\"type\":\"subscribe\",\"topic\":\"run:42\"}");
    json_t *j = tc_ws_read_json(&sub);
    assert_string_equal(type_of(j), "subscribed");
    json_decref(j);
    assert_int_equal(ws_hub_publish_topic(f->hub, "run:42", "{\"line\":\"hello\"}", 16), 1);
    assert_int_equal(ws_hub_publish_topic(f->hub, "run:43", "{\"line\":\"other\"}", 16), 0);
    assert_int_equal(ws_hub_publish_topic(f->hub, "bad topic", "{}", 2), -EINVAL);
    publish_n(f, 1); /* a main-stream event marks where "other" must be */
    j = tc_ws_read_json(&sub);
    assert_string_equal(json_string_value(json_object_get(j, "topic")), "run:42");
    assert_string_equal(json_string_value(json_object_get(j, "line")), "hello");
    json_decref(j);
    j = tc_ws_read_json(&other);
    assert_int_equal(seq_of(j), 1); /* no topic event before it */
    json_decref(j);
    tc_ws_send_text(&sub, "{\"type\":\"unsubscribe\",\"topic\":\"run:42\"}");
    json_decref(tc_ws_read_json(&sub));
    assert_int_equal(ws_hub_publish_topic(f->hub, "run:42", "{}", 2), 0);
    tc_close(&sub);
    tc_close(&other);
}

static void a_slow_client_is_dropped_while_others_keep_receiving(void **state)
{
    (void)state;
    fixture_t *f =
        start(&(ws_hub_opts_t){.max_queued = 64 * 1024, .ring_size = 100000, .drop_grace_ms = 1});
    tc_conn_t slow, fast;
    ws_hub_stats_t st;
    connect_authed(f, &slow, 4096);
    connect_authed(f, &fast, 0);
    tc_stop_reading(&slow);
    char *pad = cv_malloc(4001);
    memset(pad, 'x', 4000);
    pad[4000] = '\0';
    int64_t seq = 0, expected = 1;
    for (int i = 0; i < 20000; i++) {
        char *ev = cv_sprintf("{\"pad\":\"%s\"}", pad);
        seq = ws_hub_publish(f->hub, ev, strlen(ev));
        free(ev);
        /* let the server write and the fast client read what arrived so far */
        uv_run(&f->loop, UV_RUN_NOWAIT);
        tc_frame_t fr = {0};
        tc__frame_wait_t w = {&fast, &fr, false};
        while (tc__take_frame(&w) && w.done) {
            json_t *j = json_loadb(fr.payload.data, fr.payload.len, 0, NULL);
            assert_int_equal(seq_of(j), expected++);
            json_decref(j);
            w.done = false;
        }
        cv_buf_free(&fr.payload);
        ws_hub_stats(f->hub, &st);
        if (st.dropped_slow == 1 && st.clients == 1)
            break;
    }
    ws_hub_stats(f->hub, &st);
    assert_int_equal(st.dropped_slow, 1);
    assert_int_equal(st.clients, 1);
    /* the fast client still gets everything, in order */
    while (expected <= seq) {
        json_t *j = tc_ws_read_json(&fast);
        assert_non_null(j);
        assert_int_equal(seq_of(j), expected++);
        json_decref(j);
    }
    publish_n(f, 1);
    json_t *j = tc_ws_read_json(&fast);
    assert_int_equal(seq_of(j), seq + 1);
    json_decref(j);
    assert_true(tc_wait_eof(&slow)); /* reading again shows the server's close */
    free(pad);
    tc_close(&slow);
    tc_close(&fast);
    void *s = f;
    teardown(&s);
}

static void a_client_that_does_not_answer_pings_is_dropped(void **state)
{
    (void)state;
    fixture_t *f = start(&(ws_hub_opts_t){.ping_interval_ms = 20});
    tc_conn_t c;
    tc_frame_t fr = {0};
    ws_hub_stats_t st;
    connect_authed(f, &c, 0);
    assert_int_equal(tc_ws_read(&c, &fr), 0);
    assert_int_equal(fr.opcode, 9); /* ping; the test does not answer it */
    assert_true(tc_wait_eof(&c));
    ws_hub_stats(f->hub, &st);
    assert_int_equal(st.dropped_silent, 1);
    assert_int_equal(st.clients, 0);
    cv_buf_free(&fr.payload);
    tc_close(&c);
    void *s = f;
    teardown(&s);
}

static void bad_messages_get_errors_and_bad_frames_get_closes(void **state)
{
    fixture_t *f = *state;
    tc_conn_t c;
    tc_frame_t fr = {0};
    connect_authed(f, &c, 0);
    tc_ws_send_text(&c, "not json");
    json_t *j = tc_ws_read_json(&c);
    assert_string_equal(json_string_value(json_object_get(j, "code")), "bad_message");
    json_decref(j);
    tc_ws_send_text(&c, "{\"type\":\"dance\"}");
    j = tc_ws_read_json(&c);
    assert_string_equal(json_string_value(json_object_get(j, "code")), "unknown_type");
    json_decref(j);
    tc_ws_send_text(&c, "{\"type\":\"subscribe\",\"topic\":\"no spaces\"}");
    j = tc_ws_read_json(&c);
    assert_string_equal(json_string_value(json_object_get(j, "code")), "bad_topic");
    json_decref(j);
    tc_ws_send_frame(&c, 2, "\x01\x02", 2, true); /* binary */
    assert_int_equal(tc_ws_read(&c, &fr), 0);
    assert_int_equal(fr.close_code, 1003);
    tc_close(&c);

    struct {
        int opcode;
        size_t len;
        bool mask;
        int code;
    } bad[] = {{1, 5000, true, 1009}, {1, 10, false, 1002}};
    for (size_t i = 0; i < CV_ARRAY_SIZE(bad); i++) {
        connect_authed(f, &c, 0);
        char *junk = cv_malloc(bad[i].len);
        memset(junk, 'a', bad[i].len);
        tc_ws_send_frame(&c, bad[i].opcode, junk, bad[i].len, bad[i].mask);
        free(junk);
        assert_int_equal(tc_ws_read(&c, &fr), 0);
        assert_int_equal(fr.opcode, 8);
        assert_int_equal(fr.close_code, bad[i].code);
        assert_true(tc_wait_eof(&c));
        tc_close(&c);
    }
    cv_buf_free(&fr.payload);
}

static void a_plain_get_on_the_hub_path_is_a_400(void **state)
{
    fixture_t *f = *state;
    tc_resp_t r = {0};
    assert_int_equal(tc_request(&f->loop, f->port, "GET", "/api/events", "", NULL, &r), 0);
    assert_int_equal(r.status, 400);
    tc_resp_free(&r);
}

static void closing_the_server_closes_connected_clients(void **state)
{
    fixture_t *f = *state;
    tc_conn_t a, b;
    tc_resp_t r = {0};
    connect_authed(f, &a, 0);
    assert_int_equal(tc_ws_connect(&b, &f->loop, f->port, "/api/events", NULL, 0, &r), 101);
    assert_true(tc_close_server(f->srv, &f->loop));
    assert_true(tc_wait_eof(&a));
    assert_true(tc_wait_eof(&b));
    tc_close(&a);
    tc_close(&b);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    auth_destroy(f->auth);
    free(f);
    *state = NULL;
    tc_resp_free(&r);
}

static bool one_client_left(void *arg)
{
    ws_hub_stats_t st;
    ws_hub_stats(((fixture_t *)arg)->hub, &st);
    return st.clients == 1;
}

static void tc_start_reading(tc_conn_t *c)
{
    if (!c->reading) {
        uv_read_start((uv_stream_t *)&c->tcp, tc__alloc, tc__on_read);
        c->reading = true;
    }
}

static bool flooder_dropped(void *arg)
{
    ws_hub_stats_t st;
    ws_hub_stats(((fixture_t *)arg)->hub, &st);
    return st.dropped_flood == 1;
}

/* Reads frames until a close frame; returns its code (0 on EOF or timeout first). n counts
 * the text frames before it. */
static int read_until_close(tc_conn_t *c, size_t *n, tc_frame_t *fr)
{
    *n = 0;
    while (tc_ws_read(c, fr) == 0) {
        if (fr->opcode == 8)
            return fr->close_code;
        *n += fr->opcode == 1;
    }
    return 0;
}

static void a_client_flooding_subscribes_without_reading_is_closed_with_1008(void **state)
{
    (void)state;
    fixture_t *f = start(&(ws_hub_opts_t){.max_queued = 64 * 1024, .drop_grace_ms = 5000});
    tc_conn_t c;
    tc_frame_t fr = {0};
    ws_hub_stats_t st;
    connect_authed(f, &c, 4096);
    tc_stop_reading(&c);
    /* 100,000 subscribe messages (4.5 MB) whose replies (3.9 MB) it never reads */
    cv_buf_t flood = {0};
    const char *msg = "{\"type\":\"subscribe\",\"topic\":\"run:1\"}";
    const unsigned char key[4] = {1, 2, 3, 4};
    size_t len = strlen(msg);
    for (int i = 0; i < 100000; i++) {
        unsigned char hdr[6] = {0x81, (unsigned char)(0x80 | len), 1, 2, 3, 4};
        cv_buf_append(&flood, hdr, sizeof(hdr));
        for (size_t k = 0; k < len; k++) {
            char b = (char)(msg[k] ^ key[k % 4]);
            cv_buf_append(&flood, &b, 1);
        }
    }
    tc_send(&c, flood.data, flood.len);
    cv_buf_free(&flood);
    assert_true(tc_wait_for(&f->loop, flooder_dropped, f));
    ws_hub_stats(f->hub, &st);
    assert_true(st.queued_bytes <= 64 * 1024 + 4096);
    assert_int_equal(st.dropped_slow, 0);
    /* reading again: a few replies the kernel held, then the close, ahead of the rest */
    tc_start_reading(&c);
    size_t n = 0;
    assert_int_equal(read_until_close(&c, &n, &fr), 1008);
    assert_true(n < 100000);
    assert_true(tc_wait_eof(&c));
    ws_hub_stats(f->hub, &st);
    assert_int_equal(st.clients, 0);
    cv_buf_free(&fr.payload);
    tc_close(&c);
    void *s = f;
    teardown(&s);
}

static void a_slow_client_gets_1013_with_its_last_seq_and_resumes_without_a_gap(void **state)
{
    (void)state;
    fixture_t *f = start(
        &(ws_hub_opts_t){.max_queued = 64 * 1024, .ring_size = 100000, .drop_grace_ms = 5000});
    tc_conn_t slow;
    tc_frame_t fr = {0};
    ws_hub_stats_t st = {0};
    connect_authed(f, &slow, 4096);
    tc_stop_reading(&slow);
    char pad[1001];
    memset(pad, 'x', 1000);
    pad[1000] = '\0';
    for (int i = 0; i < 100000 && st.dropped_slow == 0; i++) {
        char *ev = cv_sprintf("{\"pad\":\"%s\"}", pad);
        ws_hub_publish(f->hub, ev, strlen(ev));
        free(ev);
        uv_run(&f->loop, UV_RUN_NOWAIT);
        ws_hub_stats(f->hub, &st);
    }
    assert_int_equal(st.dropped_slow, 1);
    publish_n(f, 5); /* published after the drop: the client must get them on resume */
    /* it reads what was sent: events 1..N in order, the resync notice naming N, the close */
    tc_start_reading(&slow);
    json_int_t expected = 1, last = -1;
    while (tc_ws_read(&slow, &fr) == 0 && fr.opcode == 1) {
        json_t *j = json_loadb(fr.payload.data, fr.payload.len, 0, NULL);
        if (type_of(j) != NULL) {
            assert_string_equal(type_of(j), "resync");
            last = seq_of(j);
        } else {
            assert_int_equal(seq_of(j), expected++);
        }
        json_decref(j);
    }
    assert_int_equal(fr.opcode, 8);
    assert_int_equal(fr.close_code, 1013);
    assert_int_equal(last, expected - 1);
    char *reason = cv_sprintf("since=%lld", (long long)last);
    assert_non_null(memmem(fr.payload.data, fr.payload.len, reason, strlen(reason)));
    free(reason);
    tc_close(&slow);
    /* resuming from the last seq it got replays everything after it, the 5 included */
    tc_conn_t again;
    tc_resp_t r = {0};
    char *target = cv_sprintf("/api/events?since=%lld", (long long)last);
    assert_int_equal(tc_ws_connect(&again, &f->loop, f->port, target,
                                   "Authorization: Bearer " VIEWER_TOKEN "\r\n", 0, &r),
                     101);
    free(target);
    json_t *j = tc_ws_read_json(&again);
    assert_string_equal(type_of(j), "authenticated");
    json_int_t latest = seq_of(j);
    json_decref(j);
    for (json_int_t seq = last + 1; seq <= latest; seq++) {
        j = tc_ws_read_json(&again);
        assert_non_null(j);
        assert_int_equal(seq_of(j), seq);
        json_decref(j);
    }
    cv_buf_free(&fr.payload);
    tc_resp_free(&r);
    tc_close(&again);
    void *s = f;
    teardown(&s);
}

static void upgrades_beyond_max_clients_get_a_503(void **state)
{
    (void)state;
    fixture_t *f = start(&(ws_hub_opts_t){.max_clients = 2});
    tc_conn_t a, b, c;
    tc_resp_t r = {0};
    ws_hub_stats_t st;
    connect_authed(f, &a, 0);
    connect_authed(f, &b, 0);
    assert_int_equal(tc_ws_connect(&c, &f->loop, f->port, "/api/events", NULL, 0, &r), 503);
    json_t *j = json_loadb(r.body.data, r.body.len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                        "too_many_clients");
    json_decref(j);
    tc_resp_free(&r);
    tc_close(&c);
    ws_hub_stats(f->hub, &st);
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.clients, 2);
    tc_close(&a); /* a place frees up once a client is gone */
    assert_true(tc_wait_for(&f->loop, one_client_left, f));
    connect_authed(f, &c, 0);
    tc_close(&b);
    tc_close(&c);
    void *s = f;
    teardown(&s);
}

static void subscriptions_beyond_max_topics_are_refused(void **state)
{
    (void)state;
    fixture_t *f = start(&(ws_hub_opts_t){.max_topics = 2});
    tc_conn_t c;
    const char *sends[] = {
        "{\"type\":\"subscribe\",\"topic\":\"a\"}", "{\"type\":\"subscribe\",\"topic\":\"b\"}",
        "{\"type\":\"subscribe\",\"topic\":\"c\"}", "{\"type\":\"unsubscribe\",\"topic\":\"a\"}",
        "{\"type\":\"subscribe\",\"topic\":\"c\"}"};
    const char *answers[] = {"subscribed", "subscribed", "error", "unsubscribed", "subscribed"};
    connect_authed(f, &c, 0);
    for (size_t i = 0; i < CV_ARRAY_SIZE(sends); i++) {
        tc_ws_send_text(&c, sends[i]);
        json_t *j = tc_ws_read_json(&c);
        assert_string_equal(type_of(j), answers[i]);
        if (strcmp(answers[i], "error") == 0)
            assert_string_equal(json_string_value(json_object_get(j, "code")), "too_many_topics");
        json_decref(j);
    }
    const char *ev = "{\"n\":1}";
    assert_int_equal(ws_hub_publish_topic(f->hub, "c", ev, strlen(ev)), 1);
    assert_int_equal(ws_hub_publish_topic(f->hub, "a", ev, strlen(ev)), 0);
    tc_close(&c);
    void *s = f;
    teardown(&s);
}

static int teardown_if_open(void **state)
{
    return *state ? teardown(state) : 0;
}

static int noop(void **state)
{
    *state = NULL;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(ticket_upgrade_authenticates_and_a_ticket_is_single_use,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(events_wait_for_first_message_auth_then_arrive_in_order,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(events_of_one_pass_leave_in_one_write_per_client, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_bad_token_or_another_first_message_is_closed_with_1008,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(an_unauthenticated_client_is_closed_after_the_auth_timeout,
                                        noop, NULL),
        cmocka_unit_test_setup_teardown(resume_replays_the_missed_events_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(since_on_the_upgrade_resumes_right_after_authentication,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(resume_older_than_the_ring_gets_a_resync, noop, NULL),
        cmocka_unit_test_setup_teardown(
            events_skipped_while_nobody_listened_make_an_older_resume_resync, setup, teardown),
        cmocka_unit_test_setup_teardown(topic_events_reach_only_subscribers, setup, teardown),
        cmocka_unit_test_setup_teardown(a_slow_client_is_dropped_while_others_keep_receiving, noop,
                                        NULL),
        cmocka_unit_test_setup_teardown(a_client_that_does_not_answer_pings_is_dropped, noop, NULL),
        cmocka_unit_test_setup_teardown(bad_messages_get_errors_and_bad_frames_get_closes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_plain_get_on_the_hub_path_is_a_400, setup, teardown),
        cmocka_unit_test_setup_teardown(closing_the_server_closes_connected_clients, setup,
                                        teardown_if_open),
        cmocka_unit_test_setup_teardown(
            a_client_flooding_subscribes_without_reading_is_closed_with_1008, noop, NULL),
        cmocka_unit_test_setup_teardown(
            a_slow_client_gets_1013_with_its_last_seq_and_resumes_without_a_gap, noop, NULL),
        cmocka_unit_test_setup_teardown(upgrades_beyond_max_clients_get_a_503, noop, NULL),
        cmocka_unit_test_setup_teardown(subscriptions_beyond_max_topics_are_refused, noop, NULL),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
