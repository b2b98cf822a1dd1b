/* WebSocket fan-out: N clients (default 1,000) connected to the daemon's /api/events; each round
 * POSTs a trigger and times, for every client, the arrival of that run's complete run.started
 * frame. Then the same clients against a raw floor in the same run: a minimal single-threaded
 * epoll server (a forked process) that answers the same upgrade and, on the same POST, writes
 * the very frame the daemon sent (captured in the first run) to every client, one write() each.
 * The client side is one epoll loop in C. See bench/README.md.
 *
 *     ws_fanout_bench path/to/cronvisor [clients] [rounds] */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TOKEN "fanout-bench-token-0123456789"
#define WANT  "\"type\":\"run.started\""

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(s, (struct sockaddr *)&sa, &len) != 0)
        die("bind");
    close(s);
    return ntohs(sa.sin_port);
}

static int connect_to(int port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(s);
        return -1;
    }
    return s;
}

static void send_all(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) { /* the floor's clients read: wait for room */
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
            continue;
        }
        if (w <= 0)
            die("write");
        b += w;
        n -= (size_t)w;
    }
}

/* ---- the client side ---- */

typedef struct client {
    int fd;
    char *buf;
    size_t len, cap;
    bool handshaken, authed, got;
} client_t;

static uint64_t g_frames; /* text frames received by every client */
static char *g_frame;     /* the run.started frame as the daemon sent it (header + payload) */
static size_t g_frame_len;

/* Reads what is there; returns the number of complete run.started frames seen. */
static int client_read(client_t *c)
{
    int found = 0;
    for (;;) {
        if (c->cap - c->len < 65536) {
            c->cap = c->cap * 2 + 65536;
            c->buf = realloc(c->buf, c->cap);
        }
        ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (n <= 0)
            break;
        c->len += (size_t)n;
    }
    size_t off = 0;
    if (!c->handshaken) {
        char *e = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (e == NULL)
            return 0;
        off = (size_t)(e + 4 - c->buf);
        c->handshaken = true;
    }
    while (c->len - off >= 2) {
        const unsigned char *h = (const unsigned char *)c->buf + off;
        size_t plen = h[1] & 0x7F, hl = 2;
        if (plen == 126) {
            if (c->len - off < 4)
                break;
            plen = ((size_t)h[2] << 8) | h[3];
            hl = 4;
        } else if (plen == 127) {
            if (c->len - off < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = (plen << 8) | h[2 + i];
            hl = 10;
        }
        if (c->len - off < hl + plen)
            break;
        const char *payload = (const char *)h + hl;
        if ((h[0] & 0x0F) == 1) {
            g_frames++;
            if (memmem(payload, plen, "\"authenticated\"", 15))
                c->authed = true;
            if (memmem(payload, plen, WANT, strlen(WANT))) {
                found++;
                if (g_frame == NULL) {
                    g_frame_len = hl + plen;
                    g_frame = malloc(g_frame_len);
                    memcpy(g_frame, h, g_frame_len);
                }
            }
        }
        off += hl + plen;
    }
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
    return found;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

typedef struct result {
    double p50, p99, max, last_p50, last_p99;
    double cpu_ms; /* the server's user + system CPU per round */
    double frames; /* text frames each client got per round */
} result_t;

/* utime + stime of pid (all threads), in ms. */
static double cpu_ms(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the name may hold spaces */
    unsigned long long ut = 0, st = 0;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

/* Connects n clients to port (served by pid), runs rounds triggers and returns the figures. */
static result_t measure(int port, pid_t pid, int n, int rounds)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    client_t *cs = calloc((size_t)n, sizeof(*cs));
    char req[512];
    for (int i = 0; i < n; i++) {
        cs[i].fd = connect_to(port);
        if (cs[i].fd < 0)
            die("connect");
        int len = snprintf(req, sizeof(req),
                           "GET /api/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                           "Sec-WebSocket-Version: 13\r\nAuthorization: Bearer " TOKEN "\r\n\r\n");
        send_all(cs[i].fd, req, (size_t)len);
        fcntl(cs[i].fd, F_SETFL, O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
    }
    struct epoll_event evs[256];
    int authed = 0;
    double deadline = now_ms() + 60000;
    while (authed < n) {
        if (now_ms() > deadline) {
            fprintf(stderr, "only %d of %d clients authenticated\n", authed, n);
            exit(1);
        }
        int k = epoll_wait(ep, evs, 256, 1000);
        for (int i = 0; i < k; i++) {
            client_t *c = evs[i].data.ptr;
            bool was = c->authed;
            client_read(c);
            authed += !was && c->authed;
        }
    }
    double *lat = calloc((size_t)n * (size_t)rounds, sizeof(double)),
           *last = calloc((size_t)rounds, sizeof(double));
    size_t nl = 0;
    double cpu0 = cpu_ms(pid);
    uint64_t frames0 = g_frames;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < n; i++)
            cs[i].got = false;
        int got = 0;
        int t = connect_to(port);
        if (t < 0)
            die("connect (trigger)");
        int len =
            snprintf(req, sizeof(req),
                     "POST /api/jobs/j/trigger HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN
                     "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        double t0 = now_ms();
        send_all(t, req, (size_t)len);
        deadline = t0 + 60000;
        while (got < n) {
            if (now_ms() > deadline) {
                fprintf(stderr, "round %d: only %d of %d clients got run.started\n", r, got, n);
                exit(1);
            }
            int k = epoll_wait(ep, evs, 256, 1000);
            double at = now_ms();
            for (int i = 0; i < k; i++) {
                client_t *c = evs[i].data.ptr;
                if (client_read(c) > 0 && !c->got) {
                    c->got = true;
                    lat[nl++] = at - t0;
                    got++;
                    if (got == n)
                        last[r] = at - t0;
                }
            }
        }
        close(t);
        /* let run.finished and job.updated go by before the next round */
        double until = now_ms() + 300;
        while (now_ms() < until) {
            int k = epoll_wait(ep, evs, 256, 50);
            for (int i = 0; i < k; i++)
                client_read(evs[i].data.ptr);
        }
    }
    double cpu = (cpu_ms(pid) - cpu0) / rounds;
    qsort(lat, nl, sizeof(double), cmp_double);
    qsort(last, (size_t)rounds, sizeof(double), cmp_double);
    result_t res = {pct(lat, nl, 0.5),
                    pct(lat, nl, 0.99),
                    lat[nl - 1],
                    pct(last, (size_t)rounds, 0.5),
                    pct(last, (size_t)rounds, 0.99),
                    cpu,
                    (double)(g_frames - frames0) / n / rounds};
    for (int i = 0; i < n; i++) {
        close(cs[i].fd);
        free(cs[i].buf);
    }
    free(cs);
    free(lat);
    free(last);
    close(ep);
    return res;
}

/* ---- the raw floor: one epoll loop, one write() per client ---- */

typedef struct peer {
    int fd;
    bool ws;
} peer_t;

static void floor_serve(int lfd, int n)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    peer_t **ws = calloc((size_t)n + 16, sizeof(*ws));
    int nws = 0;
    static const char resp101[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                  "Connection: Upgrade\r\nSec-WebSocket-Accept: "
                                  "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    static const char authed[] = "\x81\x18{\"type\":\"authenticated\"}";
    _Static_assert(sizeof(authed) - 1 == 2 + 0x18, "the frame's length byte");
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    char buf[4096];
    for (;;) {
        struct epoll_event evs[256];
        int k = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < k; i++) {
            peer_t *p = evs[i].data.ptr;
            if (p == NULL) {
                int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), one = 1;
                if (fd < 0)
                    continue;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                p = calloc(1, sizeof(*p));
                p->fd = fd;
                struct epoll_event e2 = {.events = EPOLLIN, .data.ptr = p};
                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e2);
                continue;
            }
            ssize_t r = read(p->fd, buf, sizeof(buf));
            if (r <= 0) {
                epoll_ctl(ep, EPOLL_CTL_DEL, p->fd, NULL);
                close(p->fd);
                if (p->ws)
                    for (int j = 0; j < nws; j++)
                        if (ws[j] == p)
                            ws[j] = ws[--nws];
                free(p);
                continue;
            }
            if (!p->ws && r >= 4 && memcmp(buf, "GET ", 4) == 0) {
                p->ws = true;
                ws[nws++] = p;
                send_all(p->fd, resp101, sizeof(resp101) - 1);
                send_all(p->fd, authed, sizeof(authed) - 1);
            } else if (!p->ws && r >= 5 && memcmp(buf, "POST ", 5) == 0) {
                for (int j = 0; j < nws; j++) /* the broadcast */
                    send_all(ws[j]->fd, g_frame, g_frame_len);
                send_all(p->fd, ok, sizeof(ok) - 1);
            }
        }
    }
}

/* ---- the daemon ---- */

static pid_t start_daemon(const char *bin, const char *dir, int port, int n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/cv.yaml", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        die("config");
    fprintf(f,
            "server:\n  listen: \"127.0.0.1:%d\"\n  ws_max_clients: %d\nauth:\n  tokens:\n"
            "    - name: b\n      role: admin\n      token: %s\njobs:\n  - name: j\n"
            "    schedule: manual\n    concurrency: allow\n    command: \"true\"\n",
            port, n + 16, TOKEN);
    fclose(f);
    pid_t pid = fork();
    if (pid == 0) {
        if (chdir(dir) != 0)
            _exit(127);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execl(bin, bin, "run", "-c", "cv.yaml", "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    double deadline = now_ms() + 30000;
    for (;;) {
        int s = connect_to(port);
        if (s >= 0) {
            close(s);
            return pid;
        }
        if (now_ms() > deadline || waitpid(pid, NULL, WNOHANG) == pid) {
            fprintf(stderr, "the daemon did not start listening\n");
            exit(1);
        }
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s path/to/cronvisor [clients] [rounds]\n", argv[0]);
        return 2;
    }
    char *bin = realpath(argv[1], NULL); /* the daemon runs in its own directory */
    if (bin == NULL)
        die(argv[1]);
    int n = argc > 2 ? atoi(argv[2]) : 1000, rounds = argc > 3 ? atoi(argv[3]) : 20;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    signal(SIGPIPE, SIG_IGN);

    char dir[] = "/var/tmp/cv-ws-fanout-XXXXXX";
    if (mkdtemp(dir) == NULL)
        die("mkdtemp");
    int port = free_port();
    pid_t d = start_daemon(bin, dir, port, n);
    result_t cv = measure(port, d, n, rounds);
    kill(d, SIGTERM);
    waitpid(d, NULL, 0);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 4096) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) != 0)
        die("floor listen");
    pid_t fl = fork();
    if (fl == 0) {
        floor_serve(lfd, n);
        _exit(0);
    }
    close(lfd);
    result_t raw = measure(ntohs(sa.sin_port), fl, n, rounds);
    kill(fl, SIGTERM);
    waitpid(fl, NULL, 0);

    printf("%d clients, %d rounds, run.started frame %zu bytes\n", n, rounds, g_frame_len);
    printf("%-22s %10s %10s %10s %14s %14s %14s\n", "server", "p50 ms", "p99 ms", "max ms",
           "last p50 ms", "last p99 ms", "CPU/round ms");
    printf("%-22s %10.2f %10.2f %10.2f %14.2f %14.2f %14.2f\n", "cronvisor", cv.p50, cv.p99, cv.max,
           cv.last_p50, cv.last_p99, cv.cpu_ms);
    printf("%-22s %10.2f %10.2f %10.2f %14.2f %14.2f %14.2f\n", "raw epoll floor", raw.p50, raw.p99,
           raw.max, raw.last_p50, raw.last_p99, raw.cpu_ms);
    printf("ratio cronvisor/floor: p50 %.2f, p99 %.2f\n", cv.p50 / raw.p50, cv.p99 / raw.p99);
    printf("frames per client and round: cronvisor %.2f, floor %.2f; server CPU per frame sent to "
           "all clients: cronvisor %.2f ms, floor %.2f ms (ratio %.2f)\n",
           cv.frames, raw.frames, cv.cpu_ms / cv.frames, raw.cpu_ms / raw.frames,
           (cv.cpu_ms / cv.frames) / (raw.cpu_ms / raw.frames));
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    free(bin);
    return 0;
}
