/* HTTP runs: a call to an application's own endpoint on libcurl multi inside the loop. The
 * configured headers may carry secrets (expanded from the environment and registered with the
 * logger): they are sent, never logged. A JSON response's items_processed, items_failed and
 * summary are read like the result protocol; the body's tail is kept as the run's output. */
#include "actors/exec_int.h"
#include "core/log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool status_expected(const cfg_http_t *h, long status)
{
    if (h->n_expect_status == 0)
        return status >= 200 && status < 300;
    for (unsigned i = 0; i < h->n_expect_status; i++)
        if (h->expect_status[i] == status)
            return true;
    return false;
}

/* Reads the result keys of a JSON object body into the run. */
static void read_results(run_t *r, const httpc_result_t *res)
{
    if (res->content_type == NULL || strstr(res->content_type, "json") == NULL ||
        res->body_truncated)
        return;
    json_t *doc = json_loadb(res->body, res->body_len, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return;
    }
    json_t *v;
    if ((v = json_object_get(doc, "items_processed")) && json_is_integer(v))
        r->items_processed = json_integer_value(v);
    if ((v = json_object_get(doc, "items_failed")) && json_is_integer(v))
        r->items_failed = json_integer_value(v);
    if ((v = json_object_get(doc, "summary")) && json_is_object(v)) {
        free(r->summary_json);
        r->summary_json = json_dumps(v, JSON_COMPACT);
    }
    json_decref(doc);
}

static void on_done(httpc_xfer_t *x, const httpc_result_t *res, void *ud)
{
    exec__run_t *xr = ud;
    run_t *r = xr->run;
    const cfg_http_t *h = &xr->job->http;
    xr->xfer = NULL;
    r->finished_at = cv_now_ms();
    r->duration_ms = (int64_t)res->total_ms;
    r->output_bytes = (int64_t)res->body_total;
    free(r->output_tail);
    r->output_tail = cv_strndup(res->body, res->body_len);
    free(r->error);
    r->error = NULL;
    if (res->error == HTTPC_ERR_CANCELLED) {
        r->status = RUN_CANCELLED;
        r->error = cv_strdup(xr->cancel_reason ? xr->cancel_reason : "cancelled");
    } else if (res->error == HTTPC_ERR_TIMEOUT) {
        r->status = RUN_TIMED_OUT;
        r->error = cv_strdup(res->message);
    } else if (res->error != HTTPC_OK) {
        r->status = RUN_FAILED;
        r->error = cv_strdup(res->message);
    } else {
        r->exit_code = (int)res->status;
        read_results(r, res);
        if (!status_expected(h, res->status)) {
            r->status = RUN_FAILED;
            r->error = cv_sprintf("unexpected HTTP status %ld", res->status);
        } else {
            r->status = r->items_failed > 0 ? RUN_PARTIAL : RUN_SUCCESS;
        }
    }
    exec__finished(xr);
}

void exec__http(exec__run_t *xr)
{
    executor_t *ex = xr->ex;
    const cfg_http_t *h = &xr->job->http;
    if (ex->http == NULL)
        ex->http = httpc_create(cv_runtime_loop(cv_actor_runtime(ex->actor)));
    httpc_header_t *hdrs = cv_calloc(h->n_headers + 1, sizeof(*hdrs));
    for (unsigned i = 0; i < h->n_headers; i++) {
        hdrs[i].name = h->headers[i].key;
        hdrs[i].value = h->headers[i].value;
    }
    char *by = cv_sprintf("cronvisor %s run %lld", xr->run->trigger, (long long)xr->run->id);
    hdrs[h->n_headers].name = "X-Triggered-By";
    hdrs[h->n_headers].value = by;
    int64_t timeout = h->timeout_ms ? h->timeout_ms : xr->job->timeout_ms;
    httpc_req_t req = {
        .method = h->method,
        .url = h->url,
        .headers = hdrs,
        .n_headers = h->n_headers + 1,
        .body = h->body,
        .body_len = h->body ? strlen(h->body) : 0,
        .timeout_ms = timeout > 0 && timeout < UINT32_MAX ? (uint32_t)timeout : 0,
        .max_body = xr->job->max_output > 0 ? (size_t)xr->job->max_output : 0,
    };
    char err[256];
    int rc = httpc_req_validate(&req, err, sizeof(err));
    if (rc == 0)
        cv_wait_until_ns(exec__not_before_ns(xr), PROC_NOT_BEFORE_MAX_NS);
    if (rc == 0 && (rc = httpc_request(ex->http, &req, on_done, xr, &xr->xfer)) != 0)
        snprintf(err, sizeof(err), "%s", strerror(-rc));
    free(hdrs);
    free(by);
    if (rc != 0) {
        xr->run->status = RUN_FAILED;
        xr->run->error = cv_sprintf("could not start the HTTP call: %s", err);
        exec__finished(xr);
    }
}
