/* The command line's minimal WebSocket client (core/cli_ws.c) against a scripted server thread
 * on a loopback socket: the handshake (path prefix, Bearer header, Sec-WebSocket-Accept check,
 * 401), fragmented messages with a ping between the fragments, 16- and 64-bit lengths, masked
 * client frames, close, and the frames a client must refuse (masked by the server, oversized).
 * No sleeps: every step waits on a socket. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <cmocka.h>

#include "core/cli_client.h"

typedef enum { SC_FRAMES, SC_BAD_ACCEPT, SC_401, SC_OVERSIZE, SC_MASKED } scenario_t;

typedef struct srv {
    int lfd, port;
    scenario_t sc;
    pthread_t th;
    char head[4096]; /* the client's request head */
    unsigned char pong[128], text[128];
    size_t pong_len, text_len;
    int pong_masked, text_masked, pong_op, text_op;
} srv_t;

static void send_all(int fd, const void *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p = (const char *)p + w;
        n -= (size_t)w;
    }
}

static int read_n(int fd, unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void frame(int fd, int fin, int op, const void *payload, size_t len, int masked)
{
    unsigned char h[14];
    size_t n = 0;
    h[n++] = (unsigned char)((fin ? 0x80 : 0) | op);
    unsigned char m = masked ? 0x80 : 0;
    if (len < 126) {
        h[n++] = (unsigned char)(m | len);
    } else if (len <= 0xffff) {
        h[n++] = m | 126;
        h[n++] = (unsigned char)(len >> 8);
        h[n++] = (unsigned char)len;
    } else {
        h[n++] = m | 127;
        for (int i = 7; i >= 0; i--)
            h[n++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    if (masked) {
        memset(h + n, 0, 4); /* a zero mask: the payload is as is */
        n += 4;
    }
    send_all(fd, h, n);
    send_all(fd, payload, len);
}

/* Reads one client frame: its opcode, whether it was masked, and the unmasked payload. */
static int read_client_frame(int fd, int *op, int *masked, unsigned char *out, size_t *len)
{
    unsigned char h[2], mask[4];
    if (read_n(fd, h, 2) != 0)
        return -1;
    *op = h[0] & 0x0f;
    *masked = (h[1] & 0x80) != 0;
    size_t n = h[1] & 0x7f;
    if (n >= 126 || !*masked || read_n(fd, mask, 4) != 0 || read_n(fd, out, n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] ^= mask[i & 3];
    *len = n;
    return 0;
}

static void *serve(void *arg)
{
    srv_t *s = arg;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    size_t hl = 0;
    while (hl + 1 < sizeof(s->head) && strstr(s->head, "\r\n\r\n") == NULL) {
        ssize_t r = recv(fd, s->head + hl, 1, 0);
        if (r <= 0)
            break;
        hl += (size_t)r;
    }
    if (s->sc == SC_401) {
        const char *r = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n";
        send_all(fd, r, strlen(r));
        close(fd);
        return NULL;
    }
    char key[64] = "", cat[160], acc[64];
    const char *k = strstr(s->head, "Sec-WebSocket-Key: ");
    if (k != NULL)
        sscanf(k + 19, "%63[^\r]", key);
    snprintf(cat, sizeof(cat), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    unsigned char sha[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)cat, strlen(cat), sha);
    EVP_EncodeBlock((unsigned char *)acc, sha, SHA_DIGEST_LENGTH);
    if (s->sc == SC_BAD_ACCEPT)
        acc[0] = acc[0] == 'A' ? 'B' : 'A';
    char resp[256];
    snprintf(resp, sizeof(resp),
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Accept: %s\r\n\r\n",
             acc);
    send_all(fd, resp, strlen(resp));
    const char *authed = "{\"type\":\"authenticated\",\"seq\":0}";
    frame(fd, 1, 0x1, authed, strlen(authed), 0);
    if (s->sc == SC_FRAMES) {
        frame(fd, 0, 0x1, "hel", 3, 0);
        frame(fd, 1, 0x9, "pp", 2, 0); /* a ping between two fragments */
        frame(fd, 1, 0x0, "lo", 2, 0);
        char *mid = malloc(300), *big = malloc(70000);
        memset(mid, 'm', 300);
        memset(big, 'b', 70000);
        frame(fd, 1, 0x1, mid, 300, 0);
        frame(fd, 1, 0x1, big, 70000, 0);
        free(mid);
        free(big);
        /* the pong, then "hi" (after the {"type":"auth"} a client without a token sends) */
        for (int got = 0; got < 2;) {
            int op, masked;
            unsigned char buf[128];
            size_t n;
            if (read_client_frame(fd, &op, &masked, buf, &n) != 0)
                break;
            if (op == 0x1 && n > 0 && buf[0] == '{')
                continue;
            int *o = got == 0 ? &s->pong_op : &s->text_op;
            *o = op;
            *(got == 0 ? &s->pong_masked : &s->text_masked) = masked;
            memcpy(got == 0 ? s->pong : s->text, buf, n);
            *(got == 0 ? &s->pong_len : &s->text_len) = n;
            got++;
        }
        frame(fd, 1, 0x8, "\x03\xe8", 2, 0);
    } else if (s->sc == SC_OVERSIZE) {
        unsigned char h[10] = {0x81, 127, 0, 0, 0, 0, 0x10, 0, 0, 0}; /* 256 MiB declared */
        send_all(fd, h, sizeof(h));
    } else if (s->sc == SC_MASKED) {
        frame(fd, 1, 0x1, "{}", 2, 1);
    }
    /* wait for the client to go (its close frame, then EOF) */
    unsigned char sink[256];
    while (recv(fd, sink, sizeof(sink), 0) > 0) {
    }
    close(fd);
    return NULL;
}

static srv_t *srv_start(scenario_t sc)
{
    srv_t *s = calloc(1, sizeof(*s));
    s->sc = sc;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->lfd, 4), 0);
    socklen_t al = sizeof(a);
    getsockname(s->lfd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    pthread_create(&s->th, NULL, serve, s);
    return s;
}

static void srv_join(srv_t *s)
{
    pthread_join(s->th, NULL);
    close(s->lfd);
    free(s);
}

static cli_ws_t *open_ws(srv_t *s, const char *path, const char *token, int *code)
{
    char url[128], err[160];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", s->port, path);
    return cli_ws_open(url, token, 20000, code, err, sizeof(err));
}

static void test_frames_fragments_ping_lengths_and_close(void **state)
{
    (void)state;
    srv_t *s = srv_start(SC_FRAMES);
    int code = 0;
    cli_ws_t *ws = open_ws(s, "/prefix/", "tok-123", &code);
    assert_non_null(ws);
    char *m = NULL;
    assert_int_equal(cli_ws_recv_text(ws, 20000, &m), 1);
    assert_string_equal(m, "hello"); /* reassembled around the ping */
    free(m);
    assert_int_equal(cli_ws_recv_text(ws, 20000, &m), 1);
    assert_int_equal(strlen(m), 300);
    free(m);
    assert_int_equal(cli_ws_recv_text(ws, 20000, &m), 1);
    assert_int_equal(strlen(m), 70000);
    assert_int_equal(m[69999], 'b');
    free(m);
    assert_int_equal(cli_ws_send_text(ws, "hi"), 0);
    assert_int_equal(cli_ws_recv_text(ws, 20000, &m), -1); /* the server's close */
    cli_ws_close(ws);
    pthread_join(s->th, NULL);
    assert_non_null(strstr(s->head, "GET /prefix/api/events HTTP/1.1\r\n"));
    assert_non_null(strstr(s->head, "\r\nAuthorization: Bearer tok-123\r\n"));
    assert_non_null(strstr(s->head, "\r\nSec-WebSocket-Version: 13\r\n"));
    close(s->lfd);
    free(s);
}

static void test_client_frames_are_masked_and_the_ping_answered(void **state)
{
    (void)state;
    srv_t *s = srv_start(SC_FRAMES);
    int code = 0;
    cli_ws_t *ws = open_ws(s, "", NULL, &code);
    assert_non_null(ws);
    char *m = NULL;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cli_ws_recv_text(ws, 20000, &m), 1);
        free(m);
    }
    assert_int_equal(cli_ws_send_text(ws, "hi"), 0);
    assert_int_equal(cli_ws_recv_text(ws, 20000, &m), -1);
    cli_ws_close(ws);
    pthread_join(s->th, NULL);
    assert_int_equal(s->pong_op, 0xA);
    assert_true(s->pong_masked);
    assert_int_equal(s->pong_len, 2);
    assert_memory_equal(s->pong, "pp", 2);
    assert_int_equal(s->text_op, 0x1);
    assert_true(s->text_masked);
    assert_int_equal(s->text_len, 2);
    assert_memory_equal(s->text, "hi", 2);
    close(s->lfd);
    free(s);
}

static void test_a_wrong_accept_key_is_refused(void **state)
{
    (void)state;
    srv_t *s = srv_start(SC_BAD_ACCEPT);
    int code = 0;
    assert_null(open_ws(s, "", NULL, &code));
    assert_int_equal(code, CV_EXIT_CLI_SOFTWARE);
    srv_join(s);
}

static void test_401_is_an_auth_error(void **state)
{
    (void)state;
    srv_t *s = srv_start(SC_401);
    int code = 0;
    assert_null(open_ws(s, "", "bad", &code));
    assert_int_equal(code, CV_EXIT_CLI_NOPERM);
    srv_join(s);
}

static void test_oversized_and_masked_server_frames_end_the_connection(void **state)
{
    (void)state;
    scenario_t scs[] = {SC_OVERSIZE, SC_MASKED};
    for (size_t i = 0; i < 2; i++) {
        srv_t *s = srv_start(scs[i]);
        int code = 0;
        cli_ws_t *ws = open_ws(s, "", NULL, &code);
        assert_non_null(ws);
        char *m = NULL;
        assert_int_equal(cli_ws_recv_text(ws, 20000, &m), -1);
        cli_ws_close(ws);
        srv_join(s);
    }
}

static void test_urls_it_cannot_follow(void **state)
{
    (void)state;
    const char *bad[] = {"https://127.0.0.1:1", "http://user:pw@127.0.0.1:1", "http://", "ftp://x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int code = 0;
        char err[160];
        assert_null(cli_ws_open(bad[i], NULL, 1000, &code, err, sizeof(err)));
        assert_int_equal(code, CV_EXIT_CLI_USAGE);
        assert_null(strstr(err, "pw")); /* the URL's secret is not echoed */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frames_fragments_ping_lengths_and_close),
        cmocka_unit_test(test_client_frames_are_masked_and_the_ping_answered),
        cmocka_unit_test(test_a_wrong_accept_key_is_refused),
        cmocka_unit_test(test_401_is_an_auth_error),
        cmocka_unit_test(test_oversized_and_masked_server_frames_end_the_connection),
        cmocka_unit_test(test_urls_it_cannot_follow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
