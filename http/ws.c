/* The WebSocket hub. See ws.h for the protocol.
 *
 * Sending: every message leaves as a frame_t, the whole wire frame (header + payload, servers do
 * not mask) in one ref-counted block. An event is encoded once when published; each client's
 * queue holds references to it, not copies. A client's queued frames are written with one
 * sendmsg per loop pass, from the hub's uv_check, or when its previous write completes; what
 * the kernel does not take at once goes to h2o_socket_write (TLS sockets: all of it). wslay is left
 * only control frames (ping, pong, close): its send callback (on_send) appends their bytes to the
 * same queue, behind the data frames already queued, so h2o's own one-frame-per-write path is never
 * used.
 *
 * Rules kept here (h2o 2.2.5 + wslay): a client's socket is NULL until the 101 is written, so
 * frames are only queued then (the check writes them once the socket is there); the message
 * callback with a NULL argument, or a failed write (on_written), means the connection is gone
 * and is where a client is freed besides hard drops from the timer; a message callback never closes
 * its connection (it queues a close frame); loops over clients save the next pointer first. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <h2o/websocket.h>

#include "core/log.h"
#include "core/util.h"
#include "http/api_internal.h"
#include "http/ws.h"

/* One wire frame, shared by every client it is queued for. */
typedef struct frame {
    unsigned refs;
    size_t len;
    char bytes[]; /* header + payload */
} frame_t;

typedef struct event {
    uint64_t seq;
    frame_t *frame; /* NULL: a placeholder for events skipped while nobody listened */
} event_t;

/* A client's frames: waiting (pending) or handed to the socket (inflight). */
typedef struct frame_vec {
    frame_t **v;
    size_t n, cap, bytes;
} frame_vec_t;

typedef struct client {
    cv_list_t link;
    struct ws_hub *hub;
    h2o_websocket_conn_t *conn;
    auth_principal_t principal;
    bool authed, doomed, awaiting_pong, in_callback;
    bool close_pending; /* a close frame waits for the queued messages to go first */
    uint16_t close_code;
    char close_reason[64];
    bool dirty;      /* in hub->dirty: has pending frames to write in this pass */
    bool sndbuf_set; /* WS_SNDBUF applied to the socket */
    cv_list_t dirty_link;
    frame_vec_t pending, inflight; /* inflight: the frames of the socket's write in progress */
    h2o_iovec_t *iov;              /* inflight's buffers, as handed to h2o_socket_write */
    size_t iov_cap;
    uint64_t cursor; /* next seq to send */
    uint64_t connected_ms, doomed_ms, pinged_ms;
    char **topics;
    size_t ntopics;
} client_t;

struct ws_hub {
    api_server_t *srv;
    api__close_hook_t close_hook;
    uv_timer_t timer;
    uv_check_t check; /* writes the dirty clients' frames; sends close frames once drained */
    uv_idle_t kick;   /* keeps the loop from blocking before the check runs (see mark_dirty) */
    int open_handles;
    cv_list_t dirty;    /* clients with pending frames */
    size_t close_waits; /* clients with close_pending set */
    ws_hub_opts_t o;
    cv_list_t clients;
    event_t *ring; /* ring[seq % ring_size] */
    uint64_t latest;
    uint64_t gap_seq;       /* a placeholder for events skipped while nobody listened (0: none) */
    int64_t last_client_ns; /* when the last client left (monotonic), 0 when none ever came */
    bool closing;
    ws_hub_stats_t stats;
};

/* ---- frames ---- */

/* Encodes a text frame around payload. */
static frame_t *frame_text(const char *payload, size_t len)
{
    size_t hdr = len < 126 ? 2 : len <= 0xFFFF ? 4 : 10;
    frame_t *f = cv_malloc(sizeof(*f) + hdr + len);
    unsigned char *b = (unsigned char *)f->bytes;
    f->refs = 1;
    f->len = hdr + len;
    b[0] = 0x80 | WSLAY_TEXT_FRAME; /* FIN, text */
    if (hdr == 2) {
        b[1] = (unsigned char)len;
    } else if (hdr == 4) {
        b[1] = 126;
        b[2] = (unsigned char)(len >> 8);
        b[3] = (unsigned char)len;
    } else {
        b[1] = 127;
        for (int i = 0; i < 8; i++)
            b[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    }
    memcpy(b + hdr, payload, len);
    return f;
}

/* Raw bytes (what wslay hands its send callback) as a frame. */
static frame_t *frame_raw(const void *data, size_t len)
{
    frame_t *f = cv_malloc(sizeof(*f) + len);
    f->refs = 1;
    f->len = len;
    memcpy(f->bytes, data, len);
    return f;
}

static void frame_unref(frame_t *f)
{
    if (f != NULL && --f->refs == 0)
        free(f);
}

static void vec_push(frame_vec_t *q, frame_t *f)
{
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 8;
        q->v = cv_realloc(q->v, q->cap * sizeof(*q->v));
    }
    q->v[q->n++] = f;
    q->bytes += f->len;
}

static void vec_clear(frame_vec_t *q)
{
    for (size_t i = 0; i < q->n; i++)
        frame_unref(q->v[i]);
    q->n = q->bytes = 0;
}

static void vec_free(frame_vec_t *q)
{
    vec_clear(q);
    free(q->v);
}

/* ---- sending ---- */

static void on_check(uv_check_t *check);
static void on_kick(uv_idle_t *idle)
{
    (void)idle; /* only there so that the loop does not block before the check */
}

/* c has frames to write: the hub's check writes them in this loop pass. */
static void mark_dirty(client_t *c)
{
    struct ws_hub *hub = c->hub;
    if (c->dirty || hub->closing)
        return;
    c->dirty = true;
    cv_list_insert_tail(&hub->dirty, &c->dirty_link);
    uv_check_start(&hub->check, on_check);
    /* Marked from a phase after the check (a prepare callback, say), the frames would wait
     * for the loop's next wake-up: an active idle handle makes the poll return at once. */
    uv_idle_start(&hub->kick, on_kick);
}

static void on_written(h2o_socket_t *sock, const char *err);

/* h2o_iovec_t is laid out like struct iovec: the same array goes to sendmsg and to h2o. */
_Static_assert(sizeof(h2o_iovec_t) == sizeof(struct iovec) &&
                   offsetof(h2o_iovec_t, base) == offsetof(struct iovec, iov_base) &&
                   offsetof(h2o_iovec_t, len) == offsetof(struct iovec, iov_len),
               "h2o_iovec_t is not a struct iovec");

/* Writes what the kernel takes now (one sendmsg, more only past IOV_MAX buffers) and advances
 * *iov / *n past it; returns the bytes written. A plain socket with no write in progress only:
 * what is left goes to h2o_socket_write. Most of the time the kernel takes everything, and the
 * write costs no completion callback and no poll registration (libuv's uv_write costs both). */
static size_t write_now(h2o_socket_t *sock, h2o_iovec_t **iov, size_t *n)
{
    int fd = h2o_socket_get_fd(sock);
    size_t total = 0;
    while (*n > 0) {
        struct msghdr mh = {.msg_iov = (struct iovec *)*iov,
                            .msg_iovlen = *n < IOV_MAX ? *n : IOV_MAX};
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* EAGAIN, or an error h2o_socket_write will report */
        total += (size_t)w;
        size_t left = (size_t)w;
        while (*n > 0 && left >= (*iov)->len) {
            left -= (*iov)->len;
            (*iov)++;
            (*n)--;
        }
        if (*n > 0 && left > 0) {
            (*iov)->base += left;
            (*iov)->len -= left;
            break; /* the socket's buffer is full */
        }
        if (mh.msg_iovlen < IOV_MAX)
            break;
    }
    return total;
}

/* The kernel's send buffer for a WebSocket client (it doubles the value). Written in one go
 * per pass, a client's frames land in the kernel at once; with the default autotuning (up to
 * 4 MiB, tcp_wmem) a client that sends without reading would have several MiB of replies
 * absorbed there before its queue reached max_queued: that many more of its messages handled
 * before it is dropped. A fixed buffer keeps what it can hold outside max_queued small. */
#define WS_SNDBUF (64 * 1024)

/* Hands every pending frame to the socket in one write. Needs the socket, not writing. */
static void start_write(client_t *c)
{
    h2o_socket_t *sock = c->conn->sock;
    if (!c->sndbuf_set) {
        int v = WS_SNDBUF;
        c->sndbuf_set = true;
        setsockopt(h2o_socket_get_fd(sock), SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
    }
    frame_vec_t t = c->inflight;
    c->inflight = c->pending;
    c->pending = t; /* empty: its array is reused */
    if (c->iov_cap < c->inflight.n) {
        c->iov_cap = c->inflight.cap;
        c->iov = cv_realloc(c->iov, c->iov_cap * sizeof(*c->iov));
    }
    for (size_t i = 0; i < c->inflight.n; i++)
        c->iov[i] = h2o_iovec_init(c->inflight.v[i]->bytes, c->inflight.v[i]->len);
    c->hub->stats.writes++;
    h2o_iovec_t *iov = c->iov;
    size_t n = c->inflight.n;
    if (sock->ssl == NULL) {
        size_t w = write_now(sock, &iov, &n);
        sock->bytes_written += w;
        c->inflight.bytes -= w;
        if (n == 0) {
            vec_clear(&c->inflight);
            return;
        }
    }
    h2o_socket_write(sock, iov, n, on_written);
}

static bool can_write(const client_t *c)
{
    return c->conn->sock != NULL && !h2o_socket_is_writing(c->conn->sock);
}

/* Queues a frame (takes the reference). */
static void enqueue(client_t *c, frame_t *f)
{
    vec_push(&c->pending, f);
    mark_dirty(c);
}

static void queue_text(client_t *c, const char *data, size_t len)
{
    enqueue(c, frame_text(data, len));
}

static void queue_json(client_t *c, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (text != NULL)
        queue_text(c, text, strlen(text));
    free(text);
}

static void queue_close(client_t *c, uint16_t code, const char *reason)
{
    wslay_event_queue_close(c->conn->ws_ctx, code, (const uint8_t *)reason, strlen(reason));
}

static void queue_error(client_t *c, const char *code, const char *message)
{
    queue_json(c, json_pack("{s:s,s:s,s:s}", "type", "error", "code", code, "message", message));
}

/* Lets wslay send its control frames (they join c's queue through on_send). May free c (the
 * NULL callback): call it last. */
static void flush(client_t *c)
{
    if (!c->in_callback && c->conn->sock != NULL)
        h2o_websocket_proceed(c->conn);
}

static void schedule(struct ws_hub *hub);
static void on_check(uv_check_t *check);

/* Stops sending events to c and closes it gracefully: the close frame follows the messages
 * already queued (wslay would send it ahead of them), and the timer ends c after the grace. */
static void doom(client_t *c, uint16_t code, const char *reason)
{
    if (c->doomed)
        return;
    c->doomed = true;
    c->doomed_ms = uv_now(api_server_loop(c->hub->srv));
    c->close_pending = true;
    c->close_code = code;
    snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
    c->hub->close_waits++;
    uv_check_start(&c->hub->check, on_check);
    schedule(c->hub);
}

/* What one queued message costs beyond its bytes (an estimate; a shared event costs its
 * reference only, but it is counted at its full size like a message of the client's own). In the
 * bench, 20 flooders at 1 MiB of 37-byte replies each held about 2.8 MiB each when only payload
 * counted. Counting it keeps a client flooding small messages within its limit in memory, not only
 * in payload. */
#define MSG_OVERHEAD 96

/* Every byte waiting for c: its queued frames and the control frames wslay holds (with their
 * overhead), and the frames of the write in progress. */
static size_t queued_bytes(const client_t *c)
{
    return wslay_event_get_queued_msg_length(c->conn->ws_ctx) +
           (wslay_event_get_queued_msg_count(c->conn->ws_ctx) + c->pending.n) * MSG_OVERHEAD +
           c->pending.bytes + c->inflight.bytes;
}

static bool over_limit(const client_t *c)
{
    return queued_bytes(c) > c->hub->o.max_queued;
}

/* Events filled c's queue: it gets a resync notice with the last event it was sent, then a
 * close (1013); it may come back with ?since=<seq>. */
static void drop_slow(client_t *c)
{
    char notice[96], reason[64];
    unsigned long long last = (unsigned long long)(c->cursor - 1);
    c->hub->stats.dropped_slow++;
    cv_info("ws", "dropping slow client \"%s\": more than %zu bytes queued", c->principal.name,
            c->hub->o.max_queued);
    snprintf(notice, sizeof(notice),
             "{\"type\":\"resync\",\"reason\":\"slow_consumer\",\"seq\":%llu}", last);
    snprintf(reason, sizeof(reason), "slow consumer: resume with since=%llu", last);
    queue_text(c, notice, strlen(notice));
    doom(c, 1013, reason);
}

/* Replies to c's own messages filled its queue: it sends faster than it reads. Its queued
 * messages are not worth sending: the close (1008) goes ahead of them (a control frame), and
 * nothing more is read from it (back-pressure: its further messages stay in its socket). */
static void drop_flooder(client_t *c)
{
    c->hub->stats.dropped_flood++;
    cv_info("ws", "dropping client \"%s\": its unread replies passed %zu bytes",
            c->principal.name[0] ? c->principal.name : "(unauthenticated)", c->hub->o.max_queued);
    c->doomed = true;
    c->doomed_ms = uv_now(api_server_loop(c->hub->srv));
    vec_clear(&c->pending); /* not worth sending: the close goes ahead of them */
    queue_close(c, WSLAY_CODE_POLICY_VIOLATION, "sending faster than reading");
    wslay_event_shutdown_read(c->conn->ws_ctx);
    schedule(c->hub);
}

/* Sends the kept events from c->cursor to the latest. */
static void pump(client_t *c)
{
    struct ws_hub *hub = c->hub;
    while (!c->doomed && c->cursor <= hub->latest) {
        event_t *e = &hub->ring[c->cursor % hub->o.ring_size];
        if (e->frame != NULL) { /* not a placeholder for skipped events */
            e->frame->refs++;
            enqueue(c, e->frame);
        }
        c->cursor++;
        if (over_limit(c))
            drop_slow(c);
    }
}

static uint64_t oldest_kept(const struct ws_hub *hub)
{
    return hub->latest >= hub->o.ring_size ? hub->latest - hub->o.ring_size + 1 : 1;
}

static void resume(client_t *c, uint64_t since)
{
    struct ws_hub *hub = c->hub;
    if (since > hub->latest || since + 1 < oldest_kept(hub) ||
        (hub->gap_seq != 0 && since < hub->gap_seq)) {
        queue_json(c, json_pack("{s:s,s:I}", "type", "resync", "seq", (json_int_t)hub->latest));
        c->cursor = hub->latest + 1;
        return;
    }
    c->cursor = since + 1;
    pump(c);
}

/* ---- client life ---- */

static void client_free(client_t *c)
{
    struct ws_hub *hub = c->hub;
    cv_list_remove(&c->link);
    if (c->dirty)
        cv_list_remove(&c->dirty_link);
    if (c->close_pending)
        hub->close_waits--;
    vec_free(&c->pending);
    vec_free(&c->inflight); /* the socket is closed: its write will not touch them */
    free(c->iov);
    hub->stats.clients--;
    hub->last_client_ns = cv_mono_ns();
    if (c->authed)
        hub->stats.authenticated--;
    for (size_t i = 0; i < c->ntopics; i++)
        free(c->topics[i]);
    free(c->topics);
    free(c);
}

static void hub_maybe_free(struct ws_hub *hub);

/* Ends a client from outside any of its callbacks. Not while its 101 is being written. */
static void hard_close(client_t *c)
{
    struct ws_hub *hub = c->hub;
    h2o_websocket_close(c->conn);
    client_free(c);
    hub_maybe_free(hub);
}

static void authenticate(client_t *c, const auth_principal_t *p, bool resume_from, uint64_t since)
{
    struct ws_hub *hub = c->hub;
    c->authed = true;
    c->principal = *p;
    hub->stats.authenticated++;
    queue_json(c, json_pack("{s:s,s:I,s:s,s:s}", "type", "authenticated", "seq",
                            (json_int_t)hub->latest, "name", p->name, "role",
                            auth_role_name(p->role)));
    c->cursor = hub->latest + 1;
    if (resume_from)
        resume(c, since);
    schedule(hub); /* the next deadline is now a ping */
}

static bool topic_valid(const char *t, size_t len)
{
    if (t == NULL || len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!isalnum((unsigned char)t[i]) && !strchr(":._-", t[i]))
            return false;
    }
    return true;
}

static ssize_t topic_index(const client_t *c, const char *topic)
{
    for (size_t i = 0; i < c->ntopics; i++) {
        if (strcmp(c->topics[i], topic) == 0)
            return (ssize_t)i;
    }
    return -1;
}

static void on_subscribe(client_t *c, const char *type, const char *topic)
{
    bool sub = strcmp(type, "subscribe") == 0;
    if (topic == NULL || !topic_valid(topic, strlen(topic))) {
        queue_error(c, "bad_topic", "topic must be 1 to 64 characters of A-Z a-z 0-9 : . _ -");
        return;
    }
    ssize_t i = topic_index(c, topic);
    if (sub && i < 0) {
        if (c->ntopics == c->hub->o.max_topics) {
            queue_error(c, "too_many_topics", "unsubscribe from a topic first");
            return;
        }
        c->topics = cv_realloc(c->topics, (c->ntopics + 1) * sizeof(char *));
        c->topics[c->ntopics++] = cv_strdup(topic);
    } else if (!sub && i >= 0) {
        free(c->topics[i]);
        c->topics[i] = c->topics[--c->ntopics];
    }
    queue_json(c,
               json_pack("{s:s,s:s}", "type", sub ? "subscribed" : "unsubscribed", "topic", topic));
}

static bool get_since(json_t *msg, uint64_t *since)
{
    json_t *s = json_object_get(msg, "since");
    if (!json_is_integer(s) || json_integer_value(s) < 0)
        return false;
    *since = (uint64_t)json_integer_value(s);
    return true;
}

static void on_auth_message(client_t *c, json_t *msg, const char *type)
{
    auth_principal_t p;
    const char *token = json_string_value(json_object_get(msg, "token"));
    auth_t *auth = api_server_auth(c->hub->srv);
    if (strcmp(type, "auth") != 0) {
        queue_error(c, "unauthorized", "the first message must be {\"type\":\"auth\",...}");
        doom(c, WSLAY_CODE_POLICY_VIOLATION, "authentication required");
        return;
    }
    if (token == NULL ||
        auth_verify_token(auth, token, json_string_length(json_object_get(msg, "token")), &p)) {
        queue_error(c, "unauthorized", "the token is not valid");
        doom(c, WSLAY_CODE_POLICY_VIOLATION, "authentication failed");
        return;
    }
    uint64_t since = 0;
    bool has_since = get_since(msg, &since);
    authenticate(c, &p, has_since, since);
}

static void on_text(client_t *c, const uint8_t *data, size_t len)
{
    json_error_t jerr;
    json_t *msg = json_loadb((const char *)data, len, 0, &jerr);
    const char *type = json_string_value(json_object_get(msg, "type"));
    if (msg == NULL || type == NULL) {
        queue_error(c, "bad_message",
                    msg == NULL ? "the message is not JSON" : "the message has no \"type\"");
    } else if (!c->authed) {
        on_auth_message(c, msg, type);
    } else if (strcmp(type, "resume") == 0) {
        uint64_t since;
        if (get_since(msg, &since))
            resume(c, since);
        else
            queue_error(c, "bad_message", "resume needs \"since\": a sequence number");
    } else if (strcmp(type, "subscribe") == 0 || strcmp(type, "unsubscribe") == 0) {
        on_subscribe(c, type, json_string_value(json_object_get(msg, "topic")));
    } else if (strcmp(type, "auth") == 0) {
        queue_json(
            c, json_pack("{s:s,s:I}", "type", "authenticated", "seq", (json_int_t)c->hub->latest));
    } else {
        queue_error(c, "unknown_type", "known types: auth, resume, subscribe, unsubscribe");
    }
    json_decref(msg);
    if (!c->doomed && over_limit(c))
        drop_flooder(c);
}

/* wslay's send callback in place of h2o's: the bytes (control frames only: data frames never
 * go through wslay) join c's queue behind its data frames. Written at once when the socket is
 * free: a close must be on its way before h2o_websocket_proceed, our caller, sees nothing more
 * to read or write and closes the connection. */
static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user_data)
{
    h2o_websocket_conn_t *conn = user_data;
    client_t *c = conn->data;
    (void)ctx;
    (void)flags;
    vec_push(&c->pending, frame_raw(data, len));
    if (can_write(c))
        start_write(c);
    else
        mark_dirty(c);
    return (ssize_t)len;
}

/* The socket wrote c's frames (or failed: the connection is gone). */
static void on_written(h2o_socket_t *sock, const char *err)
{
    h2o_websocket_conn_t *conn = sock->data;
    client_t *c = conn->data;
    vec_clear(&c->inflight);
    if (err != NULL) {
        struct ws_hub *hub = c->hub;
        h2o_websocket_close(conn);
        client_free(c);
        hub_maybe_free(hub);
        return;
    }
    if (c->pending.n > 0) /* queued while this write was on its way: one write for all */
        start_write(c);
    h2o_websocket_proceed(conn); /* wslay's control frames; may free c */
}

static void on_ws_msg(h2o_websocket_conn_t *conn, const struct wslay_event_on_msg_recv_arg *arg)
{
    client_t *c = conn->data;
    if (arg == NULL) { /* gone: the only place h2o expects us to close */
        struct ws_hub *hub = c->hub;
        h2o_websocket_close(conn);
        client_free(c);
        hub_maybe_free(hub);
        return;
    }
    c->in_callback = true;
    if (arg->opcode == WSLAY_TEXT_FRAME && !c->doomed)
        on_text(c, arg->msg, arg->msg_length);
    else if (arg->opcode == WSLAY_BINARY_FRAME && !c->doomed)
        doom(c, WSLAY_CODE_UNSUPPORTED_DATA, "binary messages are not supported");
    else if (arg->opcode == WSLAY_PONG)
        c->awaiting_pong = false;
    c->in_callback = false;
    /* h2o_websocket_proceed, our caller, sends what was queued. */
}

/* Once per loop pass while there is work: writes each dirty client's queued frames in one
 * write, then sends the close frames whose clients' queues have drained. */
static void on_check(uv_check_t *check)
{
    struct ws_hub *hub = check->data;
    bool waiting = false;
    uv_idle_stop(&hub->kick);
    for (cv_list_t *it = hub->dirty.next, *next; it != &hub->dirty; it = next) {
        next = it->next;
        client_t *c = cv_container_of(it, client_t, dirty_link);
        if (c->conn->sock == NULL) { /* its 101 is being written */
            waiting = true;
            continue;
        }
        cv_list_remove(&c->dirty_link);
        c->dirty = false;
        if (c->pending.n > 0 && can_write(c))
            start_write(c); /* else the end of the write in progress writes them */
    }
    for (cv_list_t *it = hub->clients.next, *next; hub->close_waits > 0 && it != &hub->clients;
         it = next) {
        next = it->next;
        client_t *c = cv_container_of(it, client_t, link);
        if (!c->close_pending)
            continue;
        if (c->conn->sock == NULL || c->pending.n > 0 ||
            wslay_event_get_queued_msg_count(c->conn->ws_ctx) > 0) {
            waiting = true;
            continue;
        }
        c->close_pending = false;
        hub->close_waits--;
        queue_close(c, c->close_code, c->close_reason);
        flush(c); /* may free c */
    }
    if (!waiting && cv_list_empty(&hub->dirty))
        uv_check_stop(check);
}

/* ---- timer: auth timeouts, pings, grace ends ---- */

static uint64_t client_deadline(const struct ws_hub *hub, const client_t *c)
{
    if (c->doomed)
        return c->doomed_ms + hub->o.drop_grace_ms;
    if (!c->authed)
        return c->connected_ms + hub->o.auth_timeout_ms;
    return c->pinged_ms + hub->o.ping_interval_ms;
}

static void on_timer(uv_timer_t *t);

/* Arms the timer for the earliest client deadline; idle without clients. */
static void schedule(struct ws_hub *hub)
{
    uint64_t next = UINT64_MAX, now = uv_now(api_server_loop(hub->srv));
    for (cv_list_t *it = hub->clients.next; it != &hub->clients; it = it->next) {
        uint64_t d = client_deadline(hub, cv_container_of(it, client_t, link));
        next = d < next ? d : next;
    }
    if (next == UINT64_MAX || hub->closing)
        uv_timer_stop(&hub->timer);
    else
        uv_timer_start(&hub->timer, on_timer, next > now ? next - now : 1, 0);
}

/* Applies c's due deadline. May free c. */
static void expire(struct ws_hub *hub, client_t *c, uint64_t now)
{
    if (now < client_deadline(hub, c) || c->conn->sock == NULL)
        return;
    if (c->doomed) {
        hard_close(c);
    } else if (!c->authed) {
        queue_error(c, "auth_timeout", "no valid auth message in time");
        doom(c, WSLAY_CODE_POLICY_VIOLATION, "authentication timeout");
        flush(c);
    } else if (c->awaiting_pong) {
        hub->stats.dropped_silent++;
        cv_info("ws", "dropping client \"%s\": no answer to ping", c->principal.name);
        hard_close(c);
    } else {
        struct wslay_event_msg ping = {WSLAY_PING, (const uint8_t *)"", 0};
        wslay_event_queue_msg(c->conn->ws_ctx, &ping);
        c->awaiting_pong = true;
        c->pinged_ms = now;
        flush(c);
    }
}

static void on_timer(uv_timer_t *t)
{
    struct ws_hub *hub = t->data;
    uint64_t now = uv_now(t->loop);
    for (cv_list_t *it = hub->clients.next, *next; it != &hub->clients; it = next) {
        next = it->next;
        expire(hub, cv_container_of(it, client_t, link), now);
    }
    if (!hub->closing)
        schedule(hub);
}

/* ---- the upgrade ---- */

static bool upgrade_auth(api_req_t *req, auth_principal_t *p)
{
    auth_t *auth = api_server_auth(req->server);
    const char *ticket = api_req_query(req, "ticket");
    const char *authz = api_req_header(req, "authorization");
    if (req->principal->person) { /* named by the trusted proxy (auth.proxy) */
        *p = *req->principal;
        return true;
    }
    if (auth_is_open(auth))
        return auth_verify_token(auth, "", 0, p) == 0;
    if (ticket != NULL)
        return auth_ticket_redeem(auth, ticket, strlen(ticket),
                                  uv_now(api_server_loop(req->server)), p) == 0;
    if (authz != NULL)
        return auth_verify_header(auth, authz, strlen(authz), p) == 0;
    return false;
}

static void on_upgrade(api_req_t *req, void *data)
{
    struct ws_hub *hub = data;
    h2o_req_t *h2o = api__req_h2o(req);
    const char *key = NULL, *since_s = api_req_query(req, "since");
    char *end = NULL;
    uint64_t since = since_s ? strtoull(since_s, &end, 10) : 0;
    auth_principal_t p;
    if (hub->closing) {
        api_reply_error(req, 503, "shutting_down", "the server is shutting down");
        return;
    }
    if (h2o->version >= 0x200 || h2o_is_websocket_handshake(h2o, &key) != 0 || key == NULL) {
        api_reply_error(req, 400, "not_websocket",
                        "this endpoint needs a WebSocket upgrade over "
                        "HTTP/1.1");
        return;
    }
    if (since_s != NULL && (since_s[0] == '\0' || *end != '\0')) {
        api_reply_error(req, 400, "bad_since", "since must be a sequence number");
        return;
    }
    if (hub->stats.clients >= hub->o.max_clients) {
        hub->stats.refused++;
        api_reply_error(req, 503, "too_many_clients",
                        "too many WebSocket clients (server.ws_max_clients); retry later");
        return;
    }
    bool authed = upgrade_auth(req, &p);
    if (!authed && (api_req_query(req, "ticket") || api_req_header(req, "authorization"))) {
        api_header_t h = {"www-authenticate", "Bearer realm=\"cronvisor\""};
        const char *text = "{\"error\":{\"code\":\"unauthorized\",\"message\":\"the ticket or "
                           "token is not valid (tickets are single use)\"}}";
        api_reply_bytes(req, 401, "application/json", text, strlen(text), &h, 1);
        return;
    }
    client_t *c = cv_calloc(1, sizeof(*c));
    c->hub = hub;
    c->connected_ms = c->pinged_ms = uv_now(api_server_loop(hub->srv));
    cv_list_insert_tail(&hub->clients, &c->link);
    hub->stats.clients++;
    c->conn = h2o_upgrade_to_websocket(h2o, key, c, on_ws_msg);
    wslay_event_config_set_max_recv_msg_length(c->conn->ws_ctx, hub->o.max_msg);
    struct wslay_event_callbacks cbs = c->conn->ws_callbacks;
    cbs.send_callback = on_send;
    wslay_event_config_set_callbacks(c->conn->ws_ctx, &cbs);
    api__req_consume(req);
    if (authed)
        authenticate(c, &p, since_s != NULL, since); /* queued: sent after the 101 */
    schedule(hub);
}

/* ---- publishing ---- */

/* Trims json to "{...}" and returns the part after '{' (members, possibly empty). */
static bool object_body(const char *json, size_t len, const char **members, size_t *mlen)
{
    if (json == NULL)
        return false;
    while (len > 0 && isspace((unsigned char)json[0])) {
        json++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)json[len - 1]))
        len--;
    if (len < 2 || json[0] != '{' || json[len - 1] != '}')
        return false;
    const char *p = json + 1;
    size_t n = len - 1;
    while (n > 1 && isspace((unsigned char)*p)) {
        p++;
        n--;
    }
    *members = p;
    *mlen = n; /* includes the closing brace */
    return true;
}

/* "{" + prefix + ("," unless the object is empty) + members */
static char *wrap(const char *prefix, const char *members, size_t mlen, size_t *outlen)
{
    cv_buf_t b = {0};
    cv_buf_append(&b, "{", 1);
    cv_buf_appends(&b, prefix);
    if (!(mlen == 1 && members[0] == '}'))
        cv_buf_append(&b, ",", 1);
    cv_buf_append(&b, members, mlen);
    *outlen = b.len;
    return b.data;
}

int64_t ws_hub_publish(ws_hub_t *hub, const char *json, size_t len)
{
    const char *members;
    size_t mlen;
    if (!object_body(json, len, &members, &mlen))
        return -EINVAL;
    uint64_t seq = ++hub->latest;
    char prefix[40];
    snprintf(prefix, sizeof(prefix), "\"seq\":%llu", (unsigned long long)seq);
    event_t *e = &hub->ring[seq % hub->o.ring_size];
    size_t wlen;
    char *data = wrap(prefix, members, mlen, &wlen);
    frame_unref(e->frame);
    e->seq = seq;
    e->frame = frame_text(data, wlen); /* encoded once; every client queues a reference */
    free(data);
    hub->stats.events = seq;
    for (cv_list_t *it = hub->clients.next, *next; it != &hub->clients; it = next) {
        next = it->next;
        client_t *c = cv_container_of(it, client_t, link);
        if (!c->authed || c->doomed)
            continue;
        pump(c); /* written by on_check in this loop pass */
    }
    return (int64_t)seq;
}

bool ws_hub_listening(const ws_hub_t *hub)
{
    return hub->stats.clients > 0 ||
           (hub->last_client_ns != 0 && cv_mono_ns() - hub->last_client_ns < WS_RESUME_GRACE_NS);
}

void ws_hub_skip(ws_hub_t *hub)
{
    if (hub->gap_seq != 0 && hub->gap_seq == hub->latest) /* the latest is the placeholder */
        return;
    uint64_t seq = ++hub->latest;
    event_t *e = &hub->ring[seq % hub->o.ring_size];
    frame_unref(e->frame);
    e->frame = NULL;
    e->seq = seq;
    hub->gap_seq = seq;
    hub->stats.events = seq;
}

int ws_hub_publish_topic(ws_hub_t *hub, const char *topic, const char *json, size_t len)
{
    const char *members;
    size_t mlen, wlen;
    int n = 0;
    if (!topic_valid(topic, topic ? strlen(topic) : 0) || !object_body(json, len, &members, &mlen))
        return -EINVAL;
    char *prefix = cv_sprintf("\"topic\":\"%s\"", topic);
    char *data = wrap(prefix, members, mlen, &wlen);
    frame_t *f = frame_text(data, wlen);
    free(prefix);
    free(data);
    for (cv_list_t *it = hub->clients.next, *next; it != &hub->clients; it = next) {
        next = it->next;
        client_t *c = cv_container_of(it, client_t, link);
        if (!c->authed || c->doomed || topic_index(c, topic) < 0)
            continue;
        f->refs++;
        enqueue(c, f);
        n++;
        if (over_limit(c))
            drop_slow(c);
    }
    frame_unref(f);
    return n;
}

size_t ws_hub_revalidate(ws_hub_t *hub)
{
    auth_t *auth = api_server_auth(hub->srv);
    size_t closed = 0;
    for (cv_list_t *it = hub->clients.next, *next; it != &hub->clients; it = next) {
        next = it->next;
        client_t *c = cv_container_of(it, client_t, link);
        if (!c->authed || c->doomed || auth_principal_refresh(auth, &c->principal) == 0)
            continue;
        cv_info("ws", "closing the session of \"%s\": its token was revoked", c->principal.name);
        queue_error(c, "token_revoked", "the token of this session was revoked");
        doom(c, WSLAY_CODE_POLICY_VIOLATION, "token revoked");
        closed++;
        flush(c); /* may free c */
    }
    return closed;
}

void ws_hub_stats(const ws_hub_t *hub, ws_hub_stats_t *out)
{
    *out = hub->stats;
    out->queued_bytes = 0;
    for (const cv_list_t *it = hub->clients.next; it != &hub->clients; it = it->next) {
        const client_t *c = cv_container_of(it, client_t, link);
        if (c->conn != NULL)
            out->queued_bytes += queued_bytes(c);
    }
}

/* ---- creation and shutdown ---- */

static void on_handle_closed(uv_handle_t *h)
{
    struct ws_hub *hub = h->data;
    if (--hub->open_handles > 0)
        return;
    api_server_t *srv = hub->srv;
    for (size_t i = 0; i < hub->o.ring_size; i++)
        frame_unref(hub->ring[i].frame);
    free(hub->ring);
    free(hub);
    api__server_release(srv);
}

/* Frees the hub once the server closes it and its last client is gone. */
static void hub_maybe_free(struct ws_hub *hub)
{
    if (hub->closing && cv_list_empty(&hub->clients) &&
        !uv_is_closing((uv_handle_t *)&hub->timer)) {
        uv_close((uv_handle_t *)&hub->timer, on_handle_closed);
        uv_close((uv_handle_t *)&hub->check, on_handle_closed);
        uv_close((uv_handle_t *)&hub->kick, on_handle_closed);
    }
}

static void on_server_close(api__close_hook_t *hook, api_server_t *srv)
{
    struct ws_hub *hub = cv_container_of(hook, struct ws_hub, close_hook);
    (void)srv;
    hub->closing = true;
    uv_timer_stop(&hub->timer);
    for (cv_list_t *it = hub->clients.next, *next; it != &hub->clients; it = next) {
        next = it->next;
        client_t *c = cv_container_of(it, client_t, link);
        if (c->conn->sock != NULL) /* else the end of its 101 write reports it gone */
            hard_close(c);
    }
    hub_maybe_free(hub);
}

static void apply_defaults(ws_hub_opts_t *o, const ws_hub_opts_t *in)
{
    if (in != NULL)
        *o = *in;
    o->path = o->path ? o->path : "/api/events";
    o->ring_size = o->ring_size ? o->ring_size : 10000;
    o->max_queued = o->max_queued ? o->max_queued : 1024 * 1024;
    o->max_msg = o->max_msg ? o->max_msg : 4096;
    o->ping_interval_ms = o->ping_interval_ms ? o->ping_interval_ms : 30000;
    o->auth_timeout_ms = o->auth_timeout_ms ? o->auth_timeout_ms : 10000;
    o->drop_grace_ms = o->drop_grace_ms ? o->drop_grace_ms : 1000;
    o->max_topics = o->max_topics ? o->max_topics : 16;
    o->max_clients = o->max_clients ? o->max_clients : 1000;
}

void ws_hub_set_limits(ws_hub_t *hub, const ws_hub_opts_t *opts)
{
    hub->o.max_queued = opts->max_queued ? opts->max_queued : 1024 * 1024;
    hub->o.max_msg = opts->max_msg ? opts->max_msg : 4096;
    hub->o.max_topics = opts->max_topics ? opts->max_topics : 16;
    hub->o.max_clients = opts->max_clients ? opts->max_clients : 1000;
}

ws_hub_t *ws_hub_create(api_server_t *srv, const ws_hub_opts_t *opts)
{
    struct ws_hub *hub = cv_calloc(1, sizeof(*hub));
    apply_defaults(&hub->o, opts);
    hub->srv = srv;
    cv_list_init(&hub->clients);
    hub->ring = cv_calloc(hub->o.ring_size, sizeof(event_t));
    api_route_t route = {"GET", hub->o.path, on_upgrade, hub, AUTH_ROLE_NONE, 0};
    if (api_server_route(srv, &route) != 0) {
        free(hub->ring);
        free(hub);
        return NULL;
    }
    uv_timer_init(api_server_loop(srv), &hub->timer);
    uv_check_init(api_server_loop(srv), &hub->check);
    uv_idle_init(api_server_loop(srv), &hub->kick);
    cv_list_init(&hub->dirty);
    hub->timer.data = hub->check.data = hub->kick.data = hub;
    hub->open_handles = 3;
    api__server_hold(srv);
    hub->close_hook.fn = on_server_close;
    api__server_add_close_hook(srv, &hub->close_hook);
    return hub;
}
