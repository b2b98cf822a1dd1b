/* Bearer tokens, roles, token buckets and WebSocket tickets. See auth.h. */
#include "http/auth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/cidr.h"
#include "core/listen.h"
#include "core/log.h"
#include "core/util.h"

#define DIGEST_LEN             32
#define DEF_MAX_TICKETS        1024
#define DEF_MAX_CALLER_TICKETS 16

typedef struct bucket {
    double level;
    uint64_t last_ms;
    bool started;
} bucket_t;

typedef struct token {
    char name[AUTH_NAME_MAX];
    auth_role_t role;
    uint32_t key;
    unsigned char digest[DIGEST_LEN];
    bucket_t bucket;
} token_t;

typedef struct ticket {
    unsigned char digest[DIGEST_LEN]; /* of the ticket text: a leaked table reveals nothing */
    auth_principal_t principal;
    uint64_t expires_ms;
} ticket_t;

struct auth {
    token_t *tokens;
    size_t ntokens;
    bucket_t shared_bucket; /* anonymous callers, names not in the table */
    double rate_per_sec, rate_burst;
    uint32_t ticket_ttl_ms;
    ticket_t
        *tickets; /* grown as needed, at most max_tickets used (more after a lowering reload) */
    size_t ntickets, cap_tickets, max_tickets, max_caller_tickets;
    uint64_t tickets_dropped, tickets_refused;
    uint64_t compares;
    uint32_t next_key; /* the key of the next token loaded */
    /* the trusted proxy (auth.proxy); proxy_user NULL: none */
    char *proxy_user, *proxy_role;
    cv_cidr_t *proxy_from;
    size_t nproxy_from;
    auth_role_t proxy_default_role;
};

static void sha256(const void *data, size_t len, unsigned char out[DIGEST_LEN])
{
    unsigned int outlen = DIGEST_LEN;
    if (EVP_Digest(data, len, out, &outlen, EVP_sha256(), NULL) != 1 || outlen != DIGEST_LEN) {
        cv_error("auth", "SHA-256 failed in OpenSSL");
        abort();
    }
}

static int nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int parse_hex_digest(const char *hex, unsigned char out[DIGEST_LEN])
{
    if (strlen(hex) != 2 * DIGEST_LEN)
        return -EINVAL;
    for (size_t i = 0; i < DIGEST_LEN; i++) {
        int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

static int load_token(auth_t *a, const auth_token_conf_t *c, size_t idx, char **err)
{
    token_t *t = &a->tokens[idx];
    if (c->name == NULL || c->name[0] == '\0' || strlen(c->name) >= AUTH_NAME_MAX) {
        *err = cv_sprintf("api token #%zu: a name of 1 to %d characters is required", idx + 1,
                          AUTH_NAME_MAX - 1);
        return -EINVAL;
    }
    for (size_t i = 0; i < idx; i++) {
        if (strcmp(a->tokens[i].name, c->name) == 0) {
            *err = cv_sprintf("api token \"%s\": the name is used twice", c->name);
            return -EINVAL;
        }
    }
    if (c->role < AUTH_ROLE_VIEWER || c->role > AUTH_ROLE_ADMIN) {
        *err = cv_sprintf("api token \"%s\": role must be viewer, operator or admin", c->name);
        return -EINVAL;
    }
    if ((c->token == NULL) == (c->sha256_hex == NULL)) {
        *err = cv_sprintf("api token \"%s\": give exactly one of token or sha256", c->name);
        return -EINVAL;
    }
    snprintf(t->name, sizeof(t->name), "%s", c->name);
    t->role = c->role;
    if (c->token != NULL) {
        if (c->token[0] == '\0') {
            *err = cv_sprintf("api token \"%s\": the token is empty", c->name);
            return -EINVAL;
        }
        cv_secret_register(c->token);
        sha256(c->token, strlen(c->token), t->digest);
    } else if (parse_hex_digest(c->sha256_hex, t->digest) != 0) {
        *err = cv_sprintf("api token \"%s\": sha256 must be 64 hex digits", c->name);
        return -EINVAL;
    }
    return 0;
}

static int load_proxy(auth_t *a, const auth_proxy_conf_t *p, char **err)
{
    if (p->user_header == NULL || p->user_header[0] == '\0')
        return 0;
    a->proxy_from = cv_calloc(p->nfrom ? p->nfrom : 1, sizeof(cv_cidr_t));
    for (size_t i = 0; i < p->nfrom; i++) {
        if (cv_cidr_parse(p->from[i], &a->proxy_from[i]) != 0) {
            *err =
                cv_sprintf("auth.proxy.from: '%s' is not an address or a CIDR range", p->from[i]);
            return -EINVAL;
        }
    }
    a->nproxy_from = p->nfrom;
    a->proxy_user = cv_strdup(p->user_header);
    a->proxy_role = p->role_header && p->role_header[0] ? cv_strdup(p->role_header) : NULL;
    a->proxy_default_role = p->default_role != AUTH_ROLE_NONE ? p->default_role : AUTH_ROLE_VIEWER;
    return 0;
}

static void free_proxy(auth_t *a)
{
    free(a->proxy_user);
    free(a->proxy_role);
    free(a->proxy_from);
    a->proxy_user = a->proxy_role = NULL;
    a->proxy_from = NULL;
    a->nproxy_from = 0;
}

auth_t *auth_create(const auth_opts_t *opts, char **err)
{
    auth_t *a = cv_calloc(1, sizeof(*a));
    *err = NULL;
    a->rate_per_sec = opts->rate_per_sec > 0 ? opts->rate_per_sec : 5.0;
    a->rate_burst = opts->rate_burst >= 1 ? opts->rate_burst : 20.0;
    a->ticket_ttl_ms = opts->ticket_ttl_ms > 0 ? opts->ticket_ttl_ms : 60000;
    a->max_tickets = opts->max_tickets > 0 ? opts->max_tickets : DEF_MAX_TICKETS;
    a->max_caller_tickets =
        opts->max_caller_tickets > 0 ? opts->max_caller_tickets : DEF_MAX_CALLER_TICKETS;
    a->ntokens = opts->ntokens;
    a->tokens = cv_calloc(opts->ntokens ? opts->ntokens : 1, sizeof(token_t));
    for (size_t i = 0; i < opts->ntokens; i++) {
        if (load_token(a, &opts->tokens[i], i, err) != 0)
            goto fail;
        a->tokens[i].key = ++a->next_key;
    }
    if (load_proxy(a, &opts->proxy, err) != 0)
        goto fail;
    return a;
fail:
    auth_destroy(a);
    return NULL;
}

void auth_destroy(auth_t *a)
{
    if (a == NULL)
        return;
    OPENSSL_cleanse(a->tokens, a->ntokens * sizeof(token_t));
    free(a->tokens);
    if (a->tickets != NULL)
        OPENSSL_cleanse(a->tickets, a->cap_tickets * sizeof(ticket_t));
    free(a->tickets);
    free_proxy(a);
    OPENSSL_cleanse(a, sizeof(*a));
    free(a);
}

static const token_t *find_token(const auth_t *a, const char *name)
{
    for (size_t i = 0; i < a->ntokens; i++) {
        if (strcmp(a->tokens[i].name, name) == 0)
            return &a->tokens[i];
    }
    return NULL;
}

int auth_reload(auth_t *a, const auth_opts_t *opts, char **err)
{
    auth_opts_t o = *opts;
    o.ticket_ttl_ms = a->ticket_ttl_ms;
    auth_t *fresh = auth_create(&o, err);
    if (fresh == NULL)
        return -EINVAL;
    for (size_t i = 0; i < fresh->ntokens; i++) {
        token_t *t = &fresh->tokens[i];
        const token_t *was = find_token(a, t->name);
        if (was != NULL && CRYPTO_memcmp(was->digest, t->digest, DIGEST_LEN) == 0) {
            t->key = was->key;
            t->bucket = was->bucket;
        } else {
            t->key = ++a->next_key;
        }
    }
    OPENSSL_cleanse(a->tokens, a->ntokens * sizeof(token_t));
    free(a->tokens);
    a->tokens = fresh->tokens;
    a->ntokens = fresh->ntokens;
    a->rate_per_sec = fresh->rate_per_sec; /* buckets above the new burst are cut at next use */
    a->rate_burst = fresh->rate_burst;
    a->max_tickets = fresh->max_tickets;
    a->max_caller_tickets = fresh->max_caller_tickets;
    fresh->tokens = NULL;
    fresh->ntokens = 0;
    free_proxy(a);
    a->proxy_user = fresh->proxy_user;
    a->proxy_role = fresh->proxy_role;
    a->proxy_from = fresh->proxy_from;
    a->nproxy_from = fresh->nproxy_from;
    a->proxy_default_role = fresh->proxy_default_role;
    fresh->proxy_user = fresh->proxy_role = NULL;
    fresh->proxy_from = NULL;
    auth_destroy(fresh);
    for (size_t i = 0; i < a->ntickets;) { /* tickets of tokens now gone go with them */
        if (auth_principal_refresh(a, &a->tickets[i].principal) != 0)
            a->tickets[i] = a->tickets[--a->ntickets];
        else
            i++;
    }
    return 0;
}

int auth_principal_refresh(const auth_t *a, auth_principal_t *p)
{
    if (p->person)
        return a != NULL && a->proxy_user != NULL ? 0 : -EACCES;
    if (auth_is_open(a))
        return p->key == 0 ? 0 : -EACCES;
    const token_t *t = find_token(a, p->name);
    if (t == NULL || p->key == 0 || t->key != p->key)
        return -EACCES;
    p->role = t->role;
    return 0;
}

bool auth_is_open(const auth_t *a)
{
    return a == NULL || a->ntokens == 0;
}

/* Parses "viewer", "operator", "admin". Returns 0 or -EINVAL. */
static int auth_role_parse(const char *s, auth_role_t *out)
{
    static const struct {
        const char *name;
        auth_role_t role;
    } roles[] = {
        {"viewer", AUTH_ROLE_VIEWER}, {"operator", AUTH_ROLE_OPERATOR}, {"admin", AUTH_ROLE_ADMIN}};
    for (size_t i = 0; i < CV_ARRAY_SIZE(roles); i++) {
        if (s != NULL && strcmp(s, roles[i].name) == 0) {
            *out = roles[i].role;
            return 0;
        }
    }
    return -EINVAL;
}

const char *auth_role_name(auth_role_t role)
{
    switch (role) {
    case AUTH_ROLE_VIEWER:
        return "viewer";
    case AUTH_ROLE_OPERATOR:
        return "operator";
    case AUTH_ROLE_ADMIN:
        return "admin";
    default:
        return "none";
    }
}

static void set_anonymous(auth_principal_t *out)
{
    snprintf(out->name, sizeof(out->name), "anonymous");
    out->role = AUTH_ROLE_ADMIN;
    out->key = 0;
    out->person = false;
}

int auth_verify_token(auth_t *a, const char *token, size_t len, auth_principal_t *out)
{
    if (auth_is_open(a)) {
        set_anonymous(out);
        return 0;
    }
    unsigned char digest[DIGEST_LEN];
    sha256(token != NULL ? token : "", token != NULL ? len : 0, digest);
    /* Walk the whole table whatever matches, and select without a data-dependent branch. */
    size_t found = SIZE_MAX;
    for (size_t i = 0; i < a->ntokens; i++) {
        int diff = CRYPTO_memcmp(digest, a->tokens[i].digest, DIGEST_LEN);
        size_t mask = (size_t)0 - (size_t)(diff == 0);
        found = (found & ~mask) | (i & mask);
        a->compares++;
    }
    OPENSSL_cleanse(digest, sizeof(digest));
    if (found == SIZE_MAX || token == NULL || len == 0)
        return -EACCES;
    snprintf(out->name, sizeof(out->name), "%s", a->tokens[found].name);
    out->role = a->tokens[found].role;
    out->key = a->tokens[found].key;
    out->person = false;
    return 0;
}

int auth_verify_header(auth_t *a, const char *value, size_t len, auth_principal_t *out)
{
    if (auth_is_open(a)) {
        set_anonymous(out);
        return 0;
    }
    if (value == NULL || len < 7 || strncasecmp(value, "Bearer ", 7) != 0)
        return -EACCES;
    value += 7;
    len -= 7;
    while (len > 0 && *value == ' ') {
        value++;
        len--;
    }
    while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
        len--;
    return auth_verify_token(a, value, len, out);
}

bool auth_proxy_headers(const auth_t *a, const char **user, const char **role)
{
    if (a == NULL || a->proxy_user == NULL)
        return false;
    *user = a->proxy_user;
    *role = a->proxy_role;
    return true;
}

static bool person_name_ok(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] == 0x7f)
            return false;
    return n > 0 && n < AUTH_PERSON_MAX;
}

int auth_verify_proxy(const auth_t *a, const struct sockaddr *peer, const char *user,
                      const char *role, auth_principal_t *out)
{
    if (a == NULL || a->proxy_user == NULL || user == NULL || !person_name_ok(user))
        return -EACCES;
    bool trusted = false;
    for (size_t i = 0; i < a->nproxy_from && !trusted; i++)
        trusted = cv_cidr_match(&a->proxy_from[i], peer);
    if (!trusted)
        return -EACCES;
    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "%s", user);
    out->person = true;
    if (role == NULL || auth_role_parse(role, &out->role) != 0)
        out->role = a->proxy_default_role;
    return 0;
}

char *auth_principal_actor(const auth_principal_t *p)
{
    return cv_sprintf("%s:%s", p->person ? "user" : "api", p->name);
}

uint64_t auth_compare_count(const auth_t *a)
{
    return a->compares;
}

static bucket_t *find_bucket(auth_t *a, const char *name)
{
    for (size_t i = 0; i < a->ntokens; i++) {
        if (strcmp(a->tokens[i].name, name) == 0)
            return &a->tokens[i].bucket;
    }
    return &a->shared_bucket;
}

int64_t auth_rate_take(auth_t *a, const char *name, uint64_t now_ms)
{
    bucket_t *b = find_bucket(a, name != NULL ? name : "");
    if (!b->started) {
        b->started = true;
        b->level = a->rate_burst;
        b->last_ms = now_ms;
    }
    if (now_ms > b->last_ms) {
        b->level += (double)(now_ms - b->last_ms) * a->rate_per_sec / 1000.0;
        if (b->level > a->rate_burst)
            b->level = a->rate_burst;
        b->last_ms = now_ms;
    }
    if (b->level >= 1.0) {
        b->level -= 1.0;
        return 0;
    }
    int64_t wait = (int64_t)((1.0 - b->level) * 1000.0 / a->rate_per_sec) + 1;
    return wait > 0 ? wait : 1;
}

static bool same_principal(const auth_principal_t *x, const auth_principal_t *y)
{
    return x->person == y->person && x->key == y->key && strcmp(x->name, y->name) == 0;
}

void auth_ticket_stats(const auth_t *a, auth_ticket_stats_t *out)
{
    *out = (auth_ticket_stats_t){
        .live = a->ntickets, .dropped = a->tickets_dropped, .refused = a->tickets_refused};
}

static void expire_tickets(auth_t *a, uint64_t now_ms)
{
    for (size_t i = 0; i < a->ntickets;) {
        if (a->tickets[i].expires_ms <= now_ms)
            a->tickets[i] = a->tickets[--a->ntickets];
        else
            i++;
    }
}

int auth_ticket_issue(auth_t *a, const auth_principal_t *principal, uint64_t now_ms, char *out)
{
    unsigned char raw[32];
    expire_tickets(a, now_ms);
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -EIO;
    for (size_t i = 0; i < sizeof(raw); i++)
        sprintf(out + 2 * i, "%02x", raw[i]);
    OPENSSL_cleanse(raw, sizeof(raw));
    /* the caller's own tickets: past its bound its oldest goes (the same lifetime for all) */
    size_t own = 0, oldest = SIZE_MAX;
    for (size_t i = 0; i < a->ntickets; i++) {
        if (!same_principal(&a->tickets[i].principal, principal))
            continue;
        own++;
        if (oldest == SIZE_MAX || a->tickets[i].expires_ms < a->tickets[oldest].expires_ms)
            oldest = i;
    }
    if (own >= a->max_caller_tickets) {
        a->tickets_dropped++;
        a->tickets[oldest] = a->tickets[--a->ntickets];
    } else if (a->ntickets >= a->max_tickets) {
        a->tickets_refused++;
        OPENSSL_cleanse(out, 64);
        return -EBUSY;
    }
    if (a->ntickets == a->cap_tickets) {
        size_t cap = a->cap_tickets ? a->cap_tickets * 2 : 16;
        ticket_t *grown = cv_calloc(cap, sizeof(ticket_t));
        if (a->ntickets > 0)
            memcpy(grown, a->tickets, a->ntickets * sizeof(ticket_t));
        if (a->tickets != NULL)
            OPENSSL_cleanse(a->tickets, a->cap_tickets * sizeof(ticket_t));
        free(a->tickets);
        a->tickets = grown;
        a->cap_tickets = cap;
    }
    ticket_t *t = &a->tickets[a->ntickets++];
    sha256(out, 64, t->digest);
    t->principal = *principal;
    t->expires_ms = now_ms + a->ticket_ttl_ms;
    return 0;
}

int auth_ticket_redeem(auth_t *a, const char *ticket, size_t len, uint64_t now_ms,
                       auth_principal_t *out)
{
    unsigned char digest[DIGEST_LEN];
    expire_tickets(a, now_ms);
    if (ticket == NULL || len != 64)
        return -EACCES;
    sha256(ticket, len, digest);
    for (size_t i = 0; i < a->ntickets; i++) {
        if (CRYPTO_memcmp(digest, a->tickets[i].digest, DIGEST_LEN) == 0) {
            *out = a->tickets[i].principal;
            a->tickets[i] = a->tickets[--a->ntickets];
            return 0;
        }
    }
    return -EACCES;
}

int auth_split_listen(const char *addr, char *host, size_t hostlen, int *port)
{
    return cv_listen_split(addr, host, hostlen, port);
}

int auth_listen_allowed(const char *listen_addr, size_t ntokens, char **err)
{
    return cv_listen_allowed(listen_addr, ntokens, err);
}
