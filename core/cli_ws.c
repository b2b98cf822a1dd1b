/* A minimal WebSocket client (RFC 6455) for `cronvisor logs -f` and `trigger --wait`: opening
 * handshake (with the Sec-WebSocket-Accept check), masked text frames out, text frames in
 * (fragmented ones reassembled up to CLI_WS_MAX_MSG), ping answered by pong, close. Plain ws://
 * only (the daemon's http:// URL); blocking I/O with poll() deadlines: it is a command, not the
 * daemon. */
#include "core/cli_client.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CLI_WS_MAX_MSG (4u << 20) /* the largest message kept (the hub sends far smaller ones) */

struct cli_ws {
    int fd;
    cv_buf_t in;  /* bytes read and not yet parsed */
    cv_buf_t msg; /* a fragmented text message being reassembled */
    bool in_msg;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int send_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads what is available into ws->in, waiting until deadline (monotonic ms). Returns 1 when
 * bytes came, 0 on timeout, -1 on EOF or error. */
static int fill(cli_ws_t *ws, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left < 0)
            left = 0;
        struct pollfd p = {.fd = ws->fd, .events = POLLIN};
        int r = poll(&p, 1, (int)(left > 600000 ? 600000 : left));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
        char buf[16384];
        ssize_t n = recv(ws->fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        cv_buf_append(&ws->in, buf, (size_t)n);
        return 1;
    }
}

static void consume(cv_buf_t *b, size_t n)
{
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

static int send_frame(cli_ws_t *ws, int opcode, const void *payload, size_t len)
{
    unsigned char hdr[14];
    size_t h = 0;
    hdr[h++] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        hdr[h++] = (unsigned char)(0x80 | len);
    } else if (len <= 0xffff) {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (unsigned char)(len >> 8);
        hdr[h++] = (unsigned char)len;
    } else {
        hdr[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    unsigned char mask[4];
    if (RAND_bytes(mask, sizeof(mask)) != 1)
        return -1;
    memcpy(hdr + h, mask, 4);
    h += 4;
    unsigned char *frame = cv_malloc(h + len);
    memcpy(frame, hdr, h);
    const unsigned char *src = payload;
    for (size_t i = 0; i < len; i++)
        frame[h + i] = src[i] ^ mask[i & 3];
    int r = send_all(ws->fd, frame, h + len);
    free(frame);
    return r;
}

int cli_ws_send_text(cli_ws_t *ws, const char *text)
{
    return send_frame(ws, 0x1, text, strlen(text));
}

/* Parses one frame from ws->in. Returns 1 and fills the fields, 0 when more bytes are needed,
 * -1 for a protocol error (masked or oversized server frame). */
static int parse_frame(cli_ws_t *ws, int *fin, int *opcode, const unsigned char **payload,
                       size_t *plen, size_t *flen)
{
    const unsigned char *p = (const unsigned char *)ws->in.data;
    size_t n = ws->in.len;
    if (n < 2)
        return 0;
    if (p[1] & 0x80)
        return -1; /* a server never masks */
    uint64_t len = p[1] & 0x7f;
    size_t h = 2;
    if (len == 126) {
        if (n < 4)
            return 0;
        len = ((uint64_t)p[2] << 8) | p[3];
        h = 4;
    } else if (len == 127) {
        if (n < 10)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | p[2 + i];
        h = 10;
    }
    if (len > CLI_WS_MAX_MSG)
        return -1;
    if (n < h + len)
        return 0;
    *fin = (p[0] & 0x80) != 0;
    *opcode = p[0] & 0x0f;
    *payload = p + h;
    *plen = (size_t)len;
    *flen = h + (size_t)len;
    return 1;
}

int cli_ws_recv_text(cli_ws_t *ws, int timeout_ms, char **out)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int fin, opcode;
        const unsigned char *payload;
        size_t plen, flen;
        int r = parse_frame(ws, &fin, &opcode, &payload, &plen, &flen);
        if (r < 0)
            return -1;
        if (r == 0) {
            int f = fill(ws, deadline);
            if (f <= 0)
                return f;
            continue;
        }
        if (opcode == 0x9) { /* ping: answer with the same payload */
            unsigned char copy[125];
            size_t n = plen < sizeof(copy) ? plen : sizeof(copy);
            memcpy(copy, payload, n);
            consume(&ws->in, flen);
            if (send_frame(ws, 0xA, copy, n) != 0)
                return -1;
            continue;
        }
        if (opcode == 0x8) { /* close: answer it and stop */
            consume(&ws->in, flen);
            send_frame(ws, 0x8, NULL, 0);
            return -1;
        }
        if (opcode == 0x1 || opcode == 0x2 || (opcode == 0x0 && ws->in_msg)) {
            if (opcode != 0x0)
                cv_buf_reset(&ws->msg);
            if (ws->msg.len + plen > CLI_WS_MAX_MSG)
                return -1;
            cv_buf_append(&ws->msg, payload, plen);
            consume(&ws->in, flen);
            ws->in_msg = !fin;
            if (fin) {
                char *m = cv_malloc(ws->msg.len + 1);
                memcpy(m, ws->msg.data, ws->msg.len);
                m[ws->msg.len] = '\0';
                cv_buf_reset(&ws->msg);
                *out = m;
                return 1;
            }
            continue;
        }
        consume(&ws->in, flen); /* pong or unknown: ignored */
    }
}

/* Splits "http://host[:port][/prefix]" into its parts. Returns 0 or -1. */
static int split_url(const char *url, char *host, size_t hostlen, char *port, size_t portlen,
                     char *prefix, size_t prefixlen)
{
    if (strncasecmp(url, "http://", 7) != 0)
        return -1;
    const char *h = url + 7, *end;
    const char *slash = strchr(h, '/');
    const char *hend = slash ? slash : h + strlen(h);
    const char *colon;
    if (*h == '[') {
        end = memchr(h, ']', (size_t)(hend - h));
        if (end == NULL)
            return -1;
        h++;
        colon = end + 1 < hend && end[1] == ':' ? end + 1 : NULL;
    } else {
        colon = memchr(h, ':', (size_t)(hend - h));
        end = colon ? colon : hend;
    }
    if (end == h || (size_t)(end - h) >= hostlen || memchr(h, '@', (size_t)(hend - h)))
        return -1;
    memcpy(host, h, (size_t)(end - h));
    host[end - h] = '\0';
    const char *ps = colon ? colon + 1 : "80";
    size_t pl = colon ? (size_t)(hend - ps) : 2;
    if (pl == 0 || pl >= portlen)
        return -1;
    memcpy(port, ps, pl);
    port[pl] = '\0';
    size_t fl = slash ? strlen(slash) : 0;
    while (fl > 0 && slash[fl - 1] == '/')
        fl--;
    if (fl >= prefixlen)
        return -1;
    if (fl > 0)
        memcpy(prefix, slash, fl);
    prefix[fl] = '\0';
    return 0;
}

static int dial(const char *host, const char *port, int timeout_ms)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (struct addrinfo *a = res; a != NULL && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
            close(fd);
            fd = -1;
            continue;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t el = sizeof(err);
        if (poll(&p, 1, timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 ||
            err != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd >= 0) { /* back to blocking: every read waits in poll() with a deadline */
        struct timeval tv = {.tv_sec = timeout_ms / 1000 + 1, .tv_usec = 0};
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0 ||
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

/* The Sec-WebSocket-Accept value expected for key (RFC 6455 section 4.2.2). */
static void expected_accept(const char *key, char out[64])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char cat[128];
    snprintf(cat, sizeof(cat), "%s%s", key, guid);
    unsigned char sha[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)cat, strlen(cat), sha);
    EVP_EncodeBlock((unsigned char *)out, sha, SHA_DIGEST_LENGTH);
}

/* The value of header name in the response head (NUL-terminated), copied into out. */
static bool head_value(const char *head, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    for (const char *l = strstr(head, "\r\n"); l != NULL; l = strstr(l, "\r\n")) {
        l += 2;
        if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *v = l + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t n = strcspn(v, "\r\n");
            while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                n--;
            if (n >= outlen)
                return false;
            memcpy(out, v, n);
            out[n] = '\0';
            return true;
        }
    }
    return false;
}

static cli_ws_t *fail(cli_ws_t *ws, int *exit_code, int code, char *err, size_t errlen,
                      const char *what)
{
    *exit_code = code;
    snprintf(err, errlen, "%s", what);
    cli_ws_close(ws);
    return NULL;
}

cli_ws_t *cli_ws_open(const char *url, const char *token, int timeout_ms, int *exit_code, char *err,
                      size_t errlen)
{
    char host[256], port[16], prefix[512];
    if (split_url(url, host, sizeof(host), port, sizeof(port), prefix, sizeof(prefix)) != 0)
        return fail(NULL, exit_code, CV_EXIT_CLI_USAGE, err, errlen,
                    "following live output needs an http://HOST[:PORT] URL (no TLS, no userinfo)");
    int64_t deadline = now_ms() + timeout_ms;
    int fd = dial(host, port, timeout_ms);
    if (fd < 0)
        return fail(NULL, exit_code, CV_EXIT_CLI_UNAVAILABLE, err, errlen,
                    "cannot connect to the server for its WebSocket");
    cli_ws_t *ws = cv_calloc(1, sizeof(*ws));
    ws->fd = fd;
    unsigned char raw[16];
    char key[32], accept[64], want[64];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return fail(ws, exit_code, CV_EXIT_CLI_SOFTWARE, err, errlen, "no random bytes");
    EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));
    cv_buf_t req = {0};
    cv_buf_printf(&req,
                  "GET %s/api/events HTTP/1.1\r\nHost: %s%s%s:%s\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: "
                  "13\r\n",
                  prefix, strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", port,
                  key);
    if (token != NULL && token[0] != '\0')
        cv_buf_printf(&req, "Authorization: Bearer %s\r\n", token);
    cv_buf_appends(&req, "\r\n");
    int sent = send_all(fd, req.data, req.len);
    explicit_bzero(req.data, req.len); /* the token */
    cv_buf_free(&req);
    if (sent != 0)
        return fail(ws, exit_code, CV_EXIT_CLI_UNAVAILABLE, err, errlen,
                    "the server closed the WebSocket connection");
    char *end = NULL;
    while ((end = ws->in.len ? memmem(ws->in.data, ws->in.len, "\r\n\r\n", 4) : NULL) == NULL) {
        if (ws->in.len > 65536 || fill(ws, deadline) <= 0)
            return fail(ws, exit_code, CV_EXIT_CLI_UNAVAILABLE, err, errlen,
                        "no WebSocket handshake answer from the server");
    }
    size_t hl = (size_t)(end - ws->in.data) + 4;
    char *head = cv_malloc(hl + 1);
    memcpy(head, ws->in.data, hl);
    head[hl] = '\0';
    consume(&ws->in, hl);
    int status = 0;
    sscanf(head, "HTTP/1.%*d %d", &status);
    bool ok = status == 101 && head_value(head, "sec-websocket-accept", accept, sizeof(accept));
    free(head);
    if (status == 401 || status == 403)
        return fail(ws, exit_code, CV_EXIT_CLI_NOPERM, err, errlen,
                    "the server refused the token (set CRONVISOR_TOKEN)");
    if (status == 503 || status == 429)
        return fail(ws, exit_code, CV_EXIT_CLI_TEMPFAIL, err, errlen,
                    "the server cannot take a WebSocket client now (503/429)");
    expected_accept(key, want);
    if (!ok || strcmp(accept, want) != 0)
        return fail(ws, exit_code, CV_EXIT_CLI_SOFTWARE, err, errlen,
                    "the server did not accept the WebSocket upgrade");
    /* Without a Bearer header (no token) the hub wants {"type":"auth"} first; with an open
     * server (no tokens configured) it has authenticated us already. */
    if (token == NULL || token[0] == '\0')
        cli_ws_send_text(ws, "{\"type\":\"auth\",\"token\":\"\"}");
    for (;;) {
        int64_t left = deadline - now_ms();
        char *m = NULL;
        int r = cli_ws_recv_text(ws, left > 0 ? (int)left : 0, &m);
        if (r <= 0)
            return fail(ws, exit_code, r == 0 ? CV_EXIT_CLI_UNAVAILABLE : CV_EXIT_CLI_NOPERM, err,
                        errlen,
                        r == 0 ? "the WebSocket was not authenticated in time"
                               : "the server closed the WebSocket (authentication failed)");
        bool authed = strstr(m, "\"authenticated\"") != NULL;
        free(m);
        if (authed)
            return ws;
    }
}

void cli_ws_close(cli_ws_t *ws)
{
    if (ws == NULL)
        return;
    if (ws->fd >= 0) {
        uint8_t code[2] = {0x03, 0xe8}; /* 1000 */
        send_frame(ws, 0x8, code, 2);
        close(ws->fd);
    }
    cv_buf_free(&ws->in);
    cv_buf_free(&ws->msg);
    free(ws);
}
