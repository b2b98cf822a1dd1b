/* Internals shared by the prober (actors/prober.c) and its check types (actors/probe_*.c).
 *
 * A check is one attempt of one probe. The prober allocates a probe_check_t, starts its deadline
 * timer and calls the type's start(). The type reports exactly once with probe__done() unless
 * the prober aborts it first (deadline, close) with abort(). After probe__done() or after abort()
 * returns, the type must not touch the check any more: it keeps its own state (impl) and frees
 * it itself once its handles are closed. probe__done() may be called from inside start().
 *
 * Deadline against reply (core/actor.h has the rule): abort() may reach c->impl only because a
 * type frees its impl in the same callback that calls probe__done(), so a check the prober
 * still holds always has its impl. A type that frees its state before the prober learns the
 * outcome (the store probe, answered by message) keeps c->impl NULL and lets the prober drop
 * the late answer by its seq. */
#ifndef CV_ACTORS_PROBE_INT_H
#define CV_ACTORS_PROBE_INT_H

#include "core/actor.h"
#include "core/config.h"
#include "core/httpc.h"

#include <stdbool.h>
#include <sys/socket.h>
#include <uv.h>

typedef struct probe_check {
    const cfg_probe_t *cfg;
    uv_loop_t *loop;
    httpc_t *http;
    cv_actor_t *store;  /* store probe: the store actor */
    cv_actor_t *prober; /* store probe: where the ping's answer goes */
    uint64_t seq;       /* store probe: echoed in the answer */
    void *impl;         /* the type's state */
    void *owner;        /* the prober's probe state */
} probe_check_t;

typedef struct probe_type {
    const char *name;
    /** Optional: registers the secrets of a probe's configuration (once, at create time). */
    void (*prepare)(const cfg_probe_t *cfg);
    void (*start)(probe_check_t *c);
    void (*abort)(probe_check_t *c);
} probe_type_t;

extern const probe_type_t probe__http, probe__postgres, probe__redis, probe__tcp, probe__exec;

/** Reports the outcome of a check: ok, and a message (an error, or a detail such as "HTTP 200";
 * may be NULL). The message is copied and redacted by the prober. */
void probe__done(probe_check_t *c, bool ok, const char *message);

/* Name resolution off the loop (uv_getaddrinfo). */
typedef struct probe_resolve probe_resolve_t;
typedef void (*probe_resolved_cb)(void *ud, int status, const struct sockaddr *addr);
/** Resolves host (port may be NULL) and calls cb once with the first address or a libuv error.
 * Returns NULL (and calls nothing) when uv_getaddrinfo refuses at once: *err is set. */
probe_resolve_t *probe__resolve(uv_loop_t *loop, const char *host, const char *port,
                                probe_resolved_cb cb, void *ud, int *err);
/** The callback will not be called; the request is freed when libuv is done with it. */
void probe__resolve_cancel(probe_resolve_t *r);
/** True when host is a numeric IPv4 or IPv6 address. */
bool probe__is_ip(const char *host);
/** The numeric text of an address into buf (>= 64 bytes). */
void probe__addr_text(const struct sockaddr *sa, char *buf, size_t len);

#endif
