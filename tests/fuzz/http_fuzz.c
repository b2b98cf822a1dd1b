/* Fuzzes the daemon's real HTTP request path: h2o's HTTP/1.1 and HTTP/2 parsers, the router,
 * authentication, every API handler (with a real SQLite store on its worker thread) and the JSON
 * replies. The API actor is built once, as the daemon builds it (api_create with a configuration
 * of two jobs and an admin token); each input is one connection handed to the server through
 * api_server_adopt_fd (one end of a socketpair).
 *
 * Input: a first byte 0x00 means HTTP/2 with prior knowledge (the client preface is sent by the
 * driver, the rest of the input is frames); anything else is sent as is on an HTTP/1.1
 * connection (which may itself ask for h2c or a WebSocket upgrade). The driver writes the input,
 * waits until the server has read it all and no request waits for a deferred reply, then shuts
 * its write side and reads until the server closes the connection. A server that holds a
 * closed client's connection for 5 s is reported as a hang (trap). HTTP_FUZZ_SHOW=1 in the
 * environment copies the server's replies to stderr. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "actors/store_actor.h"
#include "core/actor.h"
#include "core/cfgcheck.h"
#include "core/log.h"
#include "http/api.h"
#include "http/api_int.h"
#include "proto/msg.h"
#include "storage/store.h"

#define IDLE_WAIT_MS 1000 /* longest wait for the server to become idle */
#define HANG_MS      5000 /* then, longest wait for it to close */

static const char CONFIG[] = "server:\n"
                             "  listen: \"127.0.0.1:0\"\n"
                             "auth:\n"
                             "  tokens:\n"
                             "    - name: fuzz\n"
                             "      role: admin\n"
                             "      token: fuzz-admin-token\n"
                             "jobs:\n"
                             "  - name: hello\n"
                             "    schedule: \"*/5 * * * *\"\n"
                             "    command: 'true'\n"
                             "  - name: frozen\n"
                             "    schedule: manual\n"
                             "    locked: true\n"
                             "    command: 'true'\n";

static const char H2_PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static uv_loop_t loop;
static api_t *api;

/* ---- the world: store, API actor and stand-ins for the executor and the scheduler ---- */

/* Accepts every trigger (so POST .../trigger reaches its reply path); swallows cancels. */
static void fake_executor(cv_actor_t *self, cv_msg_t *m)
{
    static int64_t next_run = 1;
    (void)self;
    if (m->type != MSG_FIRE)
        return;
    msg_fire_t *f = (msg_fire_t *)m;
    if (f->reply_to != NULL)
        cv_actor_post(
            f->reply_to,
            &msg_fire_reply_new(f->corr, FIRE_ACCEPTED, next_run++, RUN_QUEUED, NULL)->hdr);
}

static void swallow(cv_actor_t *self, cv_msg_t *m)
{
    (void)self;
    (void)m;
}

static void on_migrated(void *ud, int status, int64_t n)
{
    (void)n;
    *(int *)ud = status == 0 ? 1 : -1;
}

static char dir[] = "/tmp/cv-http-fuzz-XXXXXX";

/* At exit (libFuzzer ends with exit()): the database files go; the process owns nothing else. */
static void remove_dir(void)
{
    static const char *const names[] = {"fuzz.db", "fuzz.db-wal", "fuzz.db-shm", "fuzz.db-journal"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char *path = cv_sprintf("%s/%s", dir, names[i]);
        unlink(path);
        free(path);
    }
    rmdir(dir);
}

static void world_create(void)
{
    cv_log_setup(CV_LOG_ERROR, false);
    uv_loop_init(&loop);
    int err = 0;
    cv_runtime_t *rt = cv_runtime_create(&loop, &err);
    cfg_t *cfg = NULL;
    if (rt == NULL || cfg_load_string(CONFIG, strlen(CONFIG), "fuzz.yaml", NULL, &cfg, NULL) != 0)
        abort();
    if (mkdtemp(dir) == NULL)
        abort();
    atexit(remove_dir);
    char *dsn = cv_sprintf("%s/fuzz.db", dir);
    store_config_t sc = {.dsn = dsn, .instance = "fuzz", .sync = STORE_SYNC_NORMAL};
    store_t *st = NULL;
    int migrated = 0;
    if (store_open(&loop, &sc, &st) != 0)
        abort();
    store_migrate(st, on_migrated, &migrated);
    while (migrated == 0)
        uv_run(&loop, UV_RUN_ONCE);
    if (migrated < 0)
        abort();
    free(dsn);
    cfgref_t *ref = cfgref_new(cfg);
    api_opts_t ao = {
        .cfg = ref, .store = store_actor_actor(store_actor_create(rt, st)), .instance = "fuzz"};
    char *msg = NULL;
    api_t *a = api_create(rt, &ao, &msg);
    if (a == NULL) {
        fprintf(stderr, "http_fuzz: %s\n", msg ? msg : "api_create failed");
        abort();
    }
    api_set_peers(a, cv_actor_create(rt, "executor", fake_executor, NULL),
                  cv_actor_create(rt, "scheduler", swallow, NULL));
    api = a;
    /* Let the start-up store reads (statistics) settle. */
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
}

/* ---- one connection ---- */

typedef struct client {
    uv_poll_t poll;
    int fd;
    const uint8_t *out;
    size_t len, off;
    bool shut, eof, hung, late;
} client_t;

/* True when the server has read everything sent and no request waits for the store, the
 * executor or another actor: the moment to close the write side (an HTTP/2 connection closes
 * at the client's end of stream, dropping replies still to come). */
static bool server_idle(const client_t *c)
{
    int unread = 0;
    return c->off == c->len && ioctl(c->fd, SIOCOUTQ, &unread) == 0 && unread == 0 &&
           api->pending == 0 && cv_list_empty(&api->triggers) && cv_list_empty(&api->queries) &&
           cv_list_empty(&api->stats_waiters);
}

static void client_write(client_t *c)
{
    while (c->off < c->len) {
        ssize_t n = send(c->fd, c->out + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (n <= 0) {
            if (n < 0 && errno == EAGAIN)
                return;
            c->off = c->len; /* the server closed: nothing more to send */
            break;
        }
        c->off += (size_t)n;
    }
}

static void client_read(client_t *c)
{
    char buf[16384];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n > 0 && getenv("HTTP_FUZZ_SHOW") != NULL) /* to see what the seeds reach */
            fwrite(buf, 1, (size_t)n, stderr);
        if (n > 0)
            continue;
        if (n == 0 || errno != EAGAIN)
            c->eof = true;
        return;
    }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    client_t *c = p->data;
    if (status < 0) {
        c->eof = true;
        return;
    }
    if (events & UV_WRITABLE)
        client_write(c);
    if (events & UV_READABLE)
        client_read(c);
    if (c->eof)
        uv_poll_stop(p);
    else if (c->off == c->len)
        uv_poll_start(p, UV_READABLE, on_poll);
}

static void on_timer(uv_timer_t *t)
{
    client_t *c = t->data;
    if (c->late)
        c->hung = true;
    if (!c->late && getenv("HTTP_FUZZ_SHOW") != NULL)
        fprintf(stderr, "\nhttp_fuzz: the server did not become idle in %d ms\n", IDLE_WAIT_MS);
    c->late = true; /* the server never became idle: close the write side all the same */
    uv_timer_start(t, on_timer, HANG_MS, 0);
}

static void run_connection(const uint8_t *data, size_t size)
{
    bool h2 = size > 0 && data[0] == 0;
    uint8_t *msg = NULL;
    if (h2) { /* the preface, then the frames of the input */
        msg = cv_malloc(sizeof(H2_PREFACE) - 1 + size - 1);
        memcpy(msg, H2_PREFACE, sizeof(H2_PREFACE) - 1);
        memcpy(msg + sizeof(H2_PREFACE) - 1, data + 1, size - 1);
        data = msg;
        size += sizeof(H2_PREFACE) - 2;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
    if (api_server_adopt_fd(api->srv, sv[0], h2) != 0)
        abort();
    client_t c = {.fd = sv[1], .out = data, .len = size};
    uv_poll_init(&loop, &c.poll, sv[1]);
    c.poll.data = &c;
    uv_poll_start(&c.poll, UV_READABLE | UV_WRITABLE, on_poll);
    uv_timer_t timer;
    uv_timer_init(&loop, &timer);
    timer.data = &c;
    uv_timer_start(&timer, on_timer, IDLE_WAIT_MS, 0);
    while (!c.eof && !c.hung) {
        if (!c.shut && (c.late || server_idle(&c))) {
            shutdown(c.fd, SHUT_WR);
            c.shut = true;
        }
        /* Not idle means an event is coming (the server's read, a store or actor reply). */
        uv_run(&loop, UV_RUN_ONCE);
    }
    if (c.hung) {
        fprintf(stderr,
                "http_fuzz: the server kept the connection %d ms after the client's "
                "end of stream\n",
                HANG_MS);
        __builtin_trap();
    }
    uv_close((uv_handle_t *)&c.poll, NULL);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(&loop, UV_RUN_NOWAIT); /* the close callbacks: ours and the server's connection */
    close(sv[1]);
    free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (api == NULL)
        world_create();
    run_connection(data, size);
    return 0;
}
