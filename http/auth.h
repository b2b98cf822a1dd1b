/* API authentication: bearer tokens with roles, per-token rate limiting, and short-lived
 * single-use tickets for WebSocket connections.
 *
 * Tokens are kept only as SHA-256 digests. A presented token is hashed and compared against
 * every configured digest with CRYPTO_memcmp, always walking the whole table, so the time
 * taken does not reveal which token (or how much of one) matched.
 *
 * With no token configured the API is open: every caller is "anonymous" with the admin role.
 * That is only allowed when the server listens on a loopback address (auth_listen_allowed).
 *
 * Not thread-safe: use from the loop thread. Times are passed in (milliseconds of any
 * monotonic clock, e.g. uv_now()) so tests control them. */
#ifndef CV_HTTP_AUTH_H
#define CV_HTTP_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

typedef enum {
    AUTH_ROLE_NONE = 0, /* a route that needs no authentication */
    AUTH_ROLE_VIEWER = 1,
    AUTH_ROLE_OPERATOR = 2,
    AUTH_ROLE_ADMIN = 3,
} auth_role_t;

#define AUTH_NAME_MAX   64
#define AUTH_PERSON_MAX 256 /* a person's name from the proxy's user header, NUL included */

/** Who made a request: the configured token name and its role, or (person) the person a trusted
 * reverse proxy named (auth.proxy). */
typedef struct auth_principal {
    char name[AUTH_PERSON_MAX];
    auth_role_t role;
    uint32_t
        key; /* which loaded token (kept across reloads while name and value stay); 0: anonymous */
    bool person; /* authenticated by the proxy's user header, not by a token */
} auth_principal_t;

/** A trusted reverse proxy: requests from its addresses that carry user_header are the person it
 * names (role from role_header when that is a valid role name, else default_role). */
typedef struct auth_proxy_conf {
    const char *user_header; /* NULL: no proxy is trusted */
    const char *role_header; /* may be NULL */
    char *const *from;       /* CIDRs or addresses (core/cidr.h) */
    size_t nfrom;
    auth_role_t default_role; /* NONE: viewer */
} auth_proxy_conf_t;

/** One configured token: give either the plain token or the hex SHA-256 of it. */
typedef struct auth_token_conf {
    const char *name;
    auth_role_t role;
    const char *token;      /* plain token, or NULL */
    const char *sha256_hex; /* 64 hex digits, or NULL */
} auth_token_conf_t;

typedef struct auth_opts {
    const auth_token_conf_t *tokens;
    size_t ntokens;
    double rate_per_sec;       /* refill of each token's bucket; default 5/s */
    double rate_burst;         /* bucket size; default 20 */
    uint32_t ticket_ttl_ms;    /* lifetime of a WebSocket ticket; default 60000 */
    size_t max_tickets;        /* live tickets, all callers; default 1024 */
    size_t max_caller_tickets; /* live tickets of one token or person; default 16 */
    auth_proxy_conf_t proxy;
} auth_opts_t;

typedef struct auth auth_t;

/** Builds the token table (copies everything; plain tokens are registered as log secrets and
 * then forgotten) and the trusted proxy. Returns NULL and sets *err (heap string, caller frees)
 * when a token has no name, a duplicate name, no value, a malformed digest or role NONE, or a
 * proxy address is not an address or CIDR. */
auth_t *auth_create(const auth_opts_t *opts, char **err);
/** Replaces the token table of a by the one opts describes (SIGHUP): a token whose name and
 * value are unchanged keeps its identity (key) and rate bucket, with the new role; a removed
 * token, or one whose value changed, no longer verifies, and its outstanding tickets are
 * dropped; the rate limit becomes opts' (rate_per_sec, rate_burst), and so do the ticket bounds
 * (tickets beyond a lowered bound stay until used or expired). Returns 0, or -EINVAL with
 * *err set (heap, caller frees) as auth_create() does, in which case a is unchanged. */
int auth_reload(auth_t *a, const auth_opts_t *opts, char **err);

/** Checks that the token p was authenticated with is still loaded (after auth_reload) and
 * updates p->role to its current role. Returns 0, or -EACCES when that token is gone (removed,
 * renamed, its value changed; or tokens were added while p is the anonymous caller of open
 * mode). A person (p->person) stays while a proxy is configured. */
int auth_principal_refresh(const auth_t *a, auth_principal_t *p);

/** Frees the table and every outstanding ticket. NULL is allowed. */
void auth_destroy(auth_t *a);

/** True when no token is configured: every caller is an anonymous admin. */
bool auth_is_open(const auth_t *a);

/** "none", "viewer", "operator", "admin". */
const char *auth_role_name(auth_role_t role);

/** Checks a presented token (not NUL-terminated). Returns 0 and fills *out, or -EACCES. In open
 * mode any token (or none) yields the anonymous admin. Constant time over the table. */
int auth_verify_token(auth_t *a, const char *token, size_t len, auth_principal_t *out);
/** Same for the value of an Authorization header ("Bearer <token>", scheme case-insensitive).
 * value may be NULL (no header). Returns 0, or -EACCES (missing, malformed, unknown). */
int auth_verify_header(auth_t *a, const char *value, size_t len, auth_principal_t *out);
/** The header names of the trusted proxy (role may be set to NULL); false when none is
 * configured. The strings live until the next auth_reload. */
bool auth_proxy_headers(const auth_t *a, const char **user, const char **role);
/** Authenticates a request by the trusted proxy's headers: when peer (the TCP peer address) is in
 * auth.proxy.from and user (the user header's value, may be NULL) is 1 to AUTH_PERSON_MAX - 1
 * printable characters, fills *out with that person (role from role when it names a role, else
 * the default role) and returns 0. Otherwise -EACCES: the headers are to be ignored. */
int auth_verify_proxy(const auth_t *a, const struct sockaddr *peer, const char *user,
                      const char *role, auth_principal_t *out);
/** Who p is in audit records and run triggers: "user:<name>" for a person, "api:<name>" for a
 * token (heap string, caller frees). */
char *auth_principal_actor(const auth_principal_t *p);

/** Number of digest comparisons done so far (tests check that every lookup walks the table). */
uint64_t auth_compare_count(const auth_t *a);

/** Takes one unit from the principal's bucket. Returns 0 when allowed, else the number of
 * milliseconds until a unit is available (> 0). Unknown names share one bucket. */
int64_t auth_rate_take(auth_t *a, const char *name, uint64_t now_ms);

/** Issues a ticket for principal: 64 hex digits (32 random bytes) written to out (>= 65 bytes),
 * valid ticket_ttl_ms, redeemable once. A principal holding max_caller_tickets live ones loses
 * its oldest (its own, never another's). Returns 0, -EBUSY when max_tickets live tickets of
 * others are held, or -EIO when no randomness is available. */
int auth_ticket_issue(auth_t *a, const auth_principal_t *principal, uint64_t now_ms, char *out);
/** Live tickets now, and counts since the start (for /metrics). */
typedef struct auth_ticket_stats {
    size_t live;
    uint64_t dropped; /* a caller's oldest, replaced past max_caller_tickets */
    uint64_t refused; /* -EBUSY: max_tickets were live */
} auth_ticket_stats_t;
void auth_ticket_stats(const auth_t *a, auth_ticket_stats_t *out);
/** Redeems a ticket: returns 0 and fills *out (the ticket is consumed), or -EACCES when it is
 * unknown, used or expired. */
int auth_ticket_redeem(auth_t *a, const char *ticket, size_t len, uint64_t now_ms,
                       auth_principal_t *out);

/** Splits a listen address "host:port", "[v6]:port" or ":port" (host = "0.0.0.0") into host
 * (NUL-terminated, brackets removed) and port (0..65535). Returns 0 or -EINVAL. */
int auth_split_listen(const char *addr, char *host, size_t hostlen, int *port);

/** Decides whether the API may listen on listen_addr ("host:port", "[v6]:port") given the
 * number of configured tokens: with none, only loopback hosts (127.0.0.0/8, ::1, localhost)
 * are allowed. Returns 0, or -EPERM / -EINVAL with a heap message in *err (caller frees). */
int auth_listen_allowed(const char *listen_addr, size_t ntokens, char **err);

#endif
