/* Fuzzes the WebSocket hub through a real upgraded connection: h2o's HTTP/1 upgrade, wslay's
 * frame parser, http/ws.c's message handling (auth, resume, subscribe, limits) and its replies,
 * on a libuv loop, as the daemon runs them.
 *
 * Input: one flags byte, then raw bytes written to the socket after the upgrade request (the
 * client's frames: seeds use the mask key 0 so that mutations of the payload stay readable).
 * Flags: bit 0 authenticates on the upgrade (Authorization header); bit 1 adds "?since=3";
 * bit 2 publishes four events (0.5 KB) and a topic event ("run:1") after every 64
 * bytes written; bit 3
 * stops reading the replies (a client that never reads: the queue limits must hold).
 *
 * Besides the sanitizers it traps when the hub keeps a client after the peer went away, or when
 * the bytes queued for all clients pass the per-client limit (one client at a time here). */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "http/auth.h"
#include "http/server.h"
#include "http/ws.h"

#define TOKEN     "fuzz-token-0123456789"
#define MAX_QUEUE (8 * 1024)

static uv_loop_t loop;
static api_server_t *srv;
static ws_hub_t *hub;
static int port;

static void setup(void)
{
    static auth_token_conf_t tokens[] = {{"fuzz", AUTH_ROLE_VIEWER, TOKEN, NULL}};
    auth_opts_t aopts = {.tokens = tokens, .ntokens = 1};
    char *err = NULL;
    signal(SIGPIPE, SIG_IGN);
    cv_log_setup(CV_LOG_ERROR, false);
    uv_loop_init(&loop);
    auth_t *auth = auth_create(&aopts, &err);
    api_server_opts_t opts = {.listen = "127.0.0.1:0", .auth = auth};
    srv = api_server_create(&loop, &opts, &err);
    ws_hub_opts_t ho = {.ring_size = 16,
                        .max_queued = MAX_QUEUE,
                        .max_msg = 1024,
                        .drop_grace_ms = 1,
                        .max_topics = 4,
                        .max_clients = 4};
    hub = srv ? ws_hub_create(srv, &ho) : NULL;
    if (hub == NULL)
        __builtin_trap();
    port = api_server_port(srv);
    for (int i = 0; i < 5; i++) { /* something to resume from */
        const char *ev = "{\"type\":\"seed\"}";
        ws_hub_publish(hub, ev, strlen(ev));
    }
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One pass: the server runs, the client reads what came (unless it never reads). */
static bool pump(int fd, bool reads)
{
    char buf[65536];
    struct pollfd p = {fd, POLLIN, 0};
    uv_run(&loop, UV_RUN_NOWAIT);
    poll(&p, 1, 1);
    if (!reads)
        return true;
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
        ;
    return n != 0 && (n >= 0 || errno == EAGAIN || errno == EWOULDBLOCK);
}

static void check_bounded(void)
{
    ws_hub_stats_t st;
    ws_hub_stats(hub, &st);
    /* a limit is checked after each message or event: one more of either may pass it */
    if (st.queued_bytes > MAX_QUEUE + 2 * 1024 + 256)
        __builtin_trap();
}

static void publish(void)
{
    static char ev[600];
    static const char *out = "{\"type\":\"output\",\"line\":\"some output line\"}";
    if (ev[0] == '\0') /* big enough for a client that does not read to pass its limit */
        snprintf(ev, sizeof(ev), "{\"type\":\"run.started\",\"pad\":\"%0512d\"}", 0);
    for (int i = 0; i < 4; i++)
        ws_hub_publish(hub, ev, strlen(ev));
    ws_hub_publish_topic(hub, "run:1", out, strlen(out));
}

static int connect_client(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS)
        __builtin_trap();
    return fd;
}

/* Writes len bytes, running the loop while the socket is full. False when the server closed. */
static bool write_all(int fd, const uint8_t *p, size_t len, bool reads, bool events)
{
    size_t off = 0, since_publish = 0;
    int64_t deadline = now_ms() + 2000;
    while (off < len) {
        size_t chunk = events ? 64 : len - off;
        chunk = chunk < len - off ? chunk : len - off;
        ssize_t n = send(fd, p + off, chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTCONN)
            return false;
        off += n > 0 ? (size_t)n : 0;
        since_publish += n > 0 ? (size_t)n : 0;
        if (events && since_publish >= 64) {
            publish();
            since_publish = 0;
        }
        if (!pump(fd, reads) || now_ms() > deadline)
            return false; /* closed, or it stopped reading from us: fine */
        check_bounded();
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        setup();
        ready = true;
    }
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    bool reads = !(flags & 8), events = flags & 4;
    int fd = connect_client();
    char req[512];
    snprintf(req, sizeof(req),
             "GET /api/events%s HTTP/1.1\r\nHost: f\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\n%s\r\n",
             (flags & 2) ? "?since=3" : "",
             (flags & 1) ? "Authorization: Bearer " TOKEN "\r\n" : "");
    if (write_all(fd, (const uint8_t *)req, strlen(req), true, false))
        write_all(fd, data + 1, size - 1, reads, events);
    check_bounded();
    shutdown(fd, SHUT_WR);
    /* the hub must let go of the client once its peer is gone */
    ws_hub_stats_t st;
    int64_t deadline = now_ms() + 3000;
    do {
        pump(fd, true);
        ws_hub_stats(hub, &st);
    } while (st.clients > 0 && now_ms() < deadline);
    close(fd);
    if (st.clients > 0)
        __builtin_trap();
    return 0;
}
