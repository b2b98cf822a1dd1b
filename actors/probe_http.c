/* The http probe: one request on httpc; the status must be expected (any 2xx by default) and
 * the body must contain body_contains when given. Header values (secrets from ${ENV}) are sent,
 * never reported: messages come from httpc (secret-free) or name only the status. */
#include "actors/probe_int.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BODY_KEEP (1u << 20)

typedef struct {
    probe_check_t *c; /* NULL once aborted */
    httpc_xfer_t *xfer;
} http_impl_t;

static bool status_expected(const cfg_probe_t *p, long status)
{
    if (p->n_expect_status == 0)
        return status >= 200 && status < 300;
    for (unsigned i = 0; i < p->n_expect_status; i++)
        if (p->expect_status[i] == status)
            return true;
    return false;
}

static void on_done(httpc_xfer_t *x, const httpc_result_t *res, void *ud)
{
    http_impl_t *h = ud;
    probe_check_t *c = h->c;
    free(h);
    if (c == NULL)
        return;
    const cfg_probe_t *p = c->cfg;
    char msg[256];
    if (res->error != HTTPC_OK) {
        probe__done(c, false, res->message);
        return;
    }
    if (!status_expected(p, res->status)) {
        snprintf(msg, sizeof(msg), "HTTP %ld (expected %s)", res->status,
                 p->n_expect_status ? "one of expect_status" : "2xx");
        probe__done(c, false, msg);
        return;
    }
    if (p->body_contains &&
        memmem(res->body, res->body_len, p->body_contains, strlen(p->body_contains)) == NULL) {
        snprintf(msg, sizeof(msg), "HTTP %ld but the body does not contain the expected text%s",
                 res->status, res->body_truncated ? " (in its last 1 MiB)" : "");
        probe__done(c, false, msg);
        return;
    }
    snprintf(msg, sizeof(msg), "HTTP %ld", res->status);
    probe__done(c, true, msg);
}

static void http_start(probe_check_t *c)
{
    const cfg_probe_t *p = c->cfg;
    httpc_header_t *hdrs = cv_calloc(p->n_headers + 1, sizeof(*hdrs));
    for (unsigned i = 0; i < p->n_headers; i++)
        hdrs[i] = (httpc_header_t){p->headers[i].key, p->headers[i].value};
    bool head = p->method && strcmp(p->method, "HEAD") == 0;
    httpc_req_t req = {
        .method = p->method,
        .url = p->url,
        .headers = hdrs,
        .n_headers = p->n_headers,
        .timeout_ms = (uint32_t)(p->timeout_ms + 1000), /* the prober's deadline comes first */
        .connect_timeout_ms = (uint32_t)(p->timeout_ms + 1000),
        .max_body = head || p->body_contains == NULL ? HTTPC_BODY_NONE : BODY_KEEP,
        .tls_insecure = !p->tls_verify,
    };
    http_impl_t *h = cv_calloc(1, sizeof(*h));
    h->c = c;
    c->impl = h;
    char err[256];
    int rc = httpc_req_validate(&req, err, sizeof(err));
    if (rc == 0)
        rc = httpc_request(c->http, &req, on_done, h, &h->xfer);
    free(hdrs);
    if (rc != 0) {
        free(h);
        probe__done(c, false, rc == -EINVAL ? err : "the HTTP client is closing");
    }
}

static void http_abort(probe_check_t *c)
{
    http_impl_t *h = c->impl;
    h->c = NULL;
    httpc_cancel(h->xfer); /* on_done still runs and frees h */
}

const probe_type_t probe__http = {"http", NULL, http_start, http_abort};
