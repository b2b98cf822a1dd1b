/* httpc: an asynchronous HTTP client, libcurl multi driven by a libuv loop.
 *
 * Used by HTTP jobs, HTTP health probes and notification webhooks. Everything happens on the loop
 * thread; there is no thread of ours and no blocking call on the loop.
 *
 * libcurl + libuv sanity notes (checked on Debian 12, libcurl 7.88.1, libuv 1.44.2):
 * - curl drives sockets through CURLMOPT_SOCKETFUNCTION (one uv_poll_t per socket, closed on
 *   CURL_POLL_REMOVE) and asks for a single timer through CURLMOPT_TIMERFUNCTION (-1 stops it,
 *   0 means "as soon as possible": a 0 ms uv timer). curl_multi_socket_action is only ever called
 *   from a uv poll or timer callback, never from inside a curl callback.
 * - Completions are queued and delivered from a uv_idle callback: a completion callback never runs
 *   inside curl or inside an httpc_* call, so it may start, cancel or close freely.
 * - Name resolution: this libcurl has AsynchDNS with the threaded resolver (curl's own short-lived
 *   thread per lookup; no c-ares). httpc_global_init() logs a warning when a libcurl without
 *   AsynchDNS is found, since getaddrinfo() would then block the loop. Trap: when a transfer ends
 *   while its lookup still runs (timeout, cancel, close), curl joins the resolver thread and so
 *   blocks the loop until getaddrinfo() returns, unless CURLOPT_QUICK_EXIT (7.87+) is set, which
 *   detaches the thread instead. It is set on every handle (a test checks it).
 * - curl_global_init is not thread-safe on every build: call httpc_global_init() from main()
 *   before any thread starts. CURLOPT_NOSIGNAL is set on every handle; SIGPIPE is avoided with
 *   MSG_NOSIGNAL on Linux.
 * - uv_poll_init on an fd that curl closed and reused while the previous poll handle is still
 *   closing works: uv_poll_stop unregisters the fd from the loop at once.
 * - Only http and https are allowed (also for redirects): a webhook URL cannot read file://.
 * - libcurl honours http_proxy / https_proxy / no_proxy from the environment.
 * - Connections are kept in the multi handle's cache and reused between requests to the same
 *   host; httpc_close() closes them.
 *
 * Secrets: header values, URL userinfo and query strings never appear in result messages or
 * logs. Messages name the peer as host:port (never the path); curl's own error text is used only
 * for TLS failures, after every header value and URL secret in it is replaced by "***". */
#ifndef CV_CORE_HTTPC_H
#define CV_CORE_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct httpc httpc_t;
typedef struct httpc_xfer httpc_xfer_t;

#define HTTPC_DEFAULT_TIMEOUT_MS         30000u
#define HTTPC_DEFAULT_CONNECT_TIMEOUT_MS 10000u
#define HTTPC_DEFAULT_MAX_BODY           65536u
/** max_body value that keeps no body at all (bytes are still counted). */
#define HTTPC_BODY_NONE ((size_t)-1)

typedef struct httpc_header {
    const char *name;  /* token, e.g. "Authorization" */
    const char *value; /* may be a secret; never logged; no CR or LF */
} httpc_header_t;

/** A request. Zero-initialise, then set url (and what else you need): zero means the default. */
typedef struct httpc_req {
    const char *method; /* "GET" (NULL), "HEAD", "POST", "PUT", "PATCH", "DELETE"... */
    const char *url;    /* http:// or https:// */
    const httpc_header_t *headers;
    size_t n_headers;
    const void *body; /* sent as is (copied at httpc_request time) */
    size_t body_len;
    uint32_t timeout_ms;         /* whole request; 0 = HTTPC_DEFAULT_TIMEOUT_MS */
    uint32_t connect_timeout_ms; /* 0 = HTTPC_DEFAULT_CONNECT_TIMEOUT_MS */
    size_t max_body;             /* bytes of the body TAIL kept; 0 = default; HTTPC_BODY_NONE */
    bool tls_insecure;           /* true disables certificate and host name verification */
    bool follow_redirects;       /* off by default; on: at most max_redirects (0 = 5) */
    unsigned max_redirects;
} httpc_req_t;

typedef enum {
    HTTPC_OK = 0,        /* a response arrived (any status, 500 included) */
    HTTPC_ERR_CANCELLED, /* httpc_cancel() or httpc_close() */
    HTTPC_ERR_TIMEOUT,   /* timeout_ms or connect_timeout_ms elapsed */
    HTTPC_ERR_CONNECT,   /* refused, unreachable */
    HTTPC_ERR_DNS,       /* host name not resolved */
    HTTPC_ERR_TLS,       /* handshake or verification failed */
    HTTPC_ERR_URL,       /* malformed URL or scheme other than http/https */
    HTTPC_ERR_PROTOCOL,  /* empty reply, bad response, too many redirects */
    HTTPC_ERR_IO,        /* connection reset, send or receive error, other */
} httpc_error_t;

/** The outcome of one request. Everything it points to is owned by the client and valid only
 * during the completion callback: copy what you keep. */
typedef struct httpc_result {
    httpc_error_t error;
    const char *message;      /* NULL when error == HTTPC_OK; secret-free text otherwise */
    int curl_code;            /* CURLcode, for the curious */
    long status;              /* HTTP status; 0 when no response arrived */
    const char *body;         /* the last max_body bytes of the body, NUL-terminated ("" if none) */
    size_t body_len;          /* bytes at body */
    uint64_t body_total;      /* bytes the whole body had (after any transfer decoding) */
    bool body_truncated;      /* body_total > body_len */
    const char *content_type; /* response Content-Type or NULL */
    double total_ms;          /* from httpc_request() to completion, on the monotonic clock */
    double dns_ms;            /* from start to the name resolved; 0 if never */
    double connect_ms;        /* from start to TCP connected; 0 if never */
    double tls_ms;            /* from start to TLS handshake done; 0 for plain http or if never */
    double first_byte_ms;     /* from start to the first response byte; 0 if none */
} httpc_result_t;

/** Completion: called exactly once per accepted request, on the loop thread, from a uv_idle
 * callback (never inside an httpc_* call). The handle is freed when the callback returns. */
typedef void (*httpc_done_cb)(httpc_xfer_t *x, const httpc_result_t *res, void *ud);
typedef void (*httpc_close_cb)(void *ud);

/** Calls curl_global_init once. Call from main() before any thread starts. Logs a warning when
 * libcurl has no asynchronous resolver (lookups would block the loop). Returns 0 or -EIO. */
int httpc_global_init(void);
/** True when libcurl resolves names without blocking the caller (AsynchDNS). */
bool httpc_async_dns(void);

/** Creates a client on loop (calls httpc_global_init if not done). Never returns NULL (aborts
 * on out-of-memory). Free with httpc_close(). */
httpc_t *httpc_create(uv_loop_t *loop);

/** Closes the client asynchronously: every request in flight completes with
 * HTTPC_ERR_CANCELLED, then curl and the uv handles are released and cb(ud) runs (cb may be NULL)
 * after the last request callback. After this call httpc_request() fails with -ESHUTDOWN. */
void httpc_close(httpc_t *c, httpc_close_cb cb, void *ud);

/** Checks a request without sending it. Returns 0, or -EINVAL and writes into err (if not NULL)
 * a message that says what and where (never a header value): missing URL, bad method, a header
 * name that is not a token, a header value with CR/LF. */
int httpc_req_validate(const httpc_req_t *req, char *err, size_t errlen);

/** Starts a request. Everything in req is copied: the caller may free it on return. On success
 * returns 0, sets *out (if not NULL) to a handle valid until done returns, and done(ud) will be
 * called exactly once. Returns -EINVAL (see httpc_req_validate, or done is NULL) or -ESHUTDOWN
 * (closing) without calling done. */
int httpc_request(httpc_t *c, const httpc_req_t *req, httpc_done_cb done, void *ud,
                  httpc_xfer_t **out);

/** Cancels a request in flight: its callback will run later with HTTPC_ERR_CANCELLED. When the
 * request already finished but its callback has not run yet, nothing changes (the real result is
 * delivered). Calling it from the request's own callback does nothing. */
void httpc_cancel(httpc_xfer_t *x);

/** Number of requests not yet completed (in flight or waiting for their callback). */
size_t httpc_pending(const httpc_t *c);

/** Returns a heap copy of url fit for logs (caller frees): userinfo becomes "***", each query
 * value becomes "***" (a bare query item too), the fragment is dropped. A secret inside the path
 * (some webhook URLs) is not recognised: register such URLs with cv_secret_register(). NULL gives
 * "". Never fails. */
char *httpc_redact_url(const char *url);

#endif
