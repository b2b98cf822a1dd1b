/* The WebSocket hub: pushes daemon events to browsers over one endpoint (e.g. /api/events).
 *
 * Protocol (text frames, JSON):
 * - Authentication: "?ticket=<auth_ticket_issue() value>" or an "Authorization: Bearer" header
 *   on the upgrade request, or as the first message {"type":"auth","token":"..."} within
 *   auth_timeout_ms. Until then the client gets nothing; anything else first, a bad token or the
 *   timeout is answered {"type":"error",...} and a close (1008). In open mode (no tokens) every
 *   client is authenticated at once. The server confirms with
 *   {"type":"authenticated","seq":<latest>,"name":...,"role":...}.
 * - Events: ws_hub_publish() numbers each event and sends it as {"seq":N, ...the event's own
 *   members} to every authenticated client, in order. The last ring_size events are kept.
 * - Resume: {"type":"resume","since":N} (or "?since=N" on the upgrade, or "since" in the auth
 *   message) replays every kept event after N in order, then continues live. When N is older
 *   than the ring (or newer than the latest, e.g. after a restart) the client gets
 *   {"type":"resync","seq":<latest>} instead and must reload its state.
 * - Topics: {"type":"subscribe","topic":"run:42"} / "unsubscribe". ws_hub_publish_topic()
 *   sends {"topic":"run:42", ...} to subscribers only; topic events are not numbered nor kept.
 * - Slow clients: every byte waiting for one client (events, replies to its messages, topic
 *   events, the frames being written; each queued message counts 96 bytes more for its
 *   bookkeeping) counts against max_queued. When events push it past, the
 *   client is sent {"type":"resync","reason":"slow_consumer","seq":<last event sent to it>} and a
 *   close (1013, reason "slow consumer: resume with since=N"); it may reconnect with ?since=N.
 *   When replies to its own messages push it past (it sends faster than it reads), it is closed
 *   at once (1008, ahead of its queued replies) and nothing more is read from it. Either way it
 *   is dropped after drop_grace_ms at the latest. Memory per client stays bounded.
 * - Sending: an event is encoded once into a shared frame; each client's queue holds a
 *   reference. Whatever is queued for a client in a loop pass leaves in one socket write.
 * - Clients: beyond max_clients connected, an upgrade is answered 503 (JSON error).
 * - Liveness: a ping every ping_interval_ms; a client that has not answered the previous ping is
 *   dropped.
 * - Bad input: non-JSON or unknown messages get an error message; binary frames get a close
 *   (1003); messages above max_msg a close (1009); protocol errors a close (1002).
 *
 * The hub belongs to the server: api_server_close() closes its clients and frees it. */
#ifndef CV_HTTP_WS_H
#define CV_HTTP_WS_H

#include <stddef.h>
#include <stdint.h>

#include "http/server.h"

typedef struct ws_hub ws_hub_t;

/* Zero fields take the defaults. */
typedef struct ws_hub_opts {
    const char *path;          /* default "/api/events" */
    size_t ring_size;          /* events kept for resume; default 10000 */
    size_t max_queued;         /* bytes waiting for one client before it is dropped; 1 MiB */
    size_t max_msg;            /* largest message accepted from a client; default 4096 */
    uint32_t ping_interval_ms; /* default 30000 */
    uint32_t auth_timeout_ms;  /* default 10000 */
    uint32_t drop_grace_ms;    /* a dropped client's time to get its notice; default 1000 */
    size_t max_topics;         /* subscriptions per client; default 16 */
    size_t max_clients;        /* connected clients; more upgrades get a 503; default 1000 */
} ws_hub_opts_t;

typedef struct ws_hub_stats {
    size_t clients;          /* connected, authenticated or not */
    size_t authenticated;    /* receiving events */
    uint64_t dropped_slow;   /* closed (1013) for events above max_queued */
    uint64_t dropped_flood;  /* closed (1008) for replies to its own messages above max_queued */
    uint64_t refused;        /* upgrades answered 503: max_clients reached */
    uint64_t queued_bytes;   /* bytes waiting for all clients now */
    uint64_t dropped_silent; /* closed for not answering a ping */
    uint64_t events;         /* published events (the latest seq) */
    uint64_t writes;         /* socket writes (what a pass queued for a client leaves in one) */
} ws_hub_stats_t;

/** Creates the hub and adds its route (GET opts->path, no role: authentication is in-band) to
 * srv. opts may be NULL for the defaults. Returns NULL (logged) when the route cannot be added. */
ws_hub_t *ws_hub_create(api_server_t *srv, const ws_hub_opts_t *opts);
/** Applies max_queued, max_msg, max_clients and max_topics of opts (0: the default) from now on
 * (a reload): new clients, new subscriptions and the next writes; the rest of opts is ignored. */
void ws_hub_set_limits(ws_hub_t *hub, const ws_hub_opts_t *opts);

/** Publishes an event. json must be a JSON object ("{...}"; copied, not re-validated). Returns
 * its sequence number (1, 2, ...), or -EINVAL when json is not an object. */
int64_t ws_hub_publish(ws_hub_t *hub, const char *json, size_t len);

/** How long after the last client left events are still kept for it to resume. */
#define WS_RESUME_GRACE_NS (60 * 1000000000LL)

/** True while a client is connected, or left less than WS_RESUME_GRACE_NS ago (it may come
 * back and resume). A publisher may skip building an event nobody would receive and call
 * ws_hub_skip instead: a headless daemon spends nothing on events. */
bool ws_hub_listening(const ws_hub_t *hub);

/** Records that events were not published (nobody listened): a client resuming from before
 * now gets a resync instead of a silent gap. */
void ws_hub_skip(ws_hub_t *hub);

/** Sends a JSON object to the clients subscribed to topic ([A-Za-z0-9:._-], 1..64 chars).
 * Returns the number of recipients, or -EINVAL for a bad topic or json. */
int ws_hub_publish_topic(ws_hub_t *hub, const char *topic, const char *json, size_t len);

/** After the server's tokens were reloaded (auth_reload): every authenticated client whose token
 * is gone (removed, or its value changed) is sent {"type":"error","code":"token_revoked"} and
 * closed (1008); the others keep their session with their token's current role. Returns the
 * number of clients closed. */
size_t ws_hub_revalidate(ws_hub_t *hub);

/** Counters for /metrics and tests. */
void ws_hub_stats(const ws_hub_t *hub, ws_hub_stats_t *out);

#endif
