/* httpc: the text side. URL redaction, request validation, and masking of secrets in messages. */
#include "core/httpc_text.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/httpc.h"
#include "core/log.h"
#include "core/util.h"

/* Copy of s where every needle (at least 3 bytes long) is replaced by "***", then the global
 * secret registry applied. */
static char *scrub(const char *s, const char *const *needles, size_t n)
{
    cv_buf_t b = {0};
    cv_buf_appends(&b, "");
    while (*s) {
        size_t best = 0;
        for (size_t i = 0; i < n; i++) {
            size_t len = needles[i] ? strlen(needles[i]) : 0;
            if (len >= 3 && len > best && strncmp(s, needles[i], len) == 0)
                best = len;
        }
        if (best) {
            cv_buf_appends(&b, "***");
            s += best;
        } else {
            cv_buf_append(&b, s++, 1);
        }
    }
    char *r = cv_secret_redact(b.data);
    cv_buf_free(&b);
    return r;
}

static void redact_query(cv_buf_t *b, const char *q, size_t len)
{
    const char *end = q + len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *item_end = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(item_end - q));
        if (eq)
            cv_buf_printf(b, "%.*s=***", (int)(eq - q), q);
        else if (item_end > q)
            cv_buf_appends(b, "***");
        if (amp)
            cv_buf_appends(b, "&");
        q = amp ? amp + 1 : end;
    }
}

char *httpc_redact_url(const char *url)
{
    if (url == NULL)
        return cv_strdup("");
    cv_buf_t b = {0};
    cv_buf_appends(&b, "");
    const char *sep = strstr(url, "://");
    const char *auth = url;
    if (sep != NULL && (size_t)(sep - url) <= strcspn(url, "/?#"))
        auth = sep + 3;
    cv_buf_append(&b, url, (size_t)(auth - url));
    const char *auth_end = auth + strcspn(auth, "/?#");
    const char *at = memrchr(auth, '@', (size_t)(auth_end - auth));
    if (at != NULL) {
        cv_buf_appends(&b, "***@");
        auth = at + 1;
    }
    const char *path_end = auth_end + strcspn(auth_end, "?#");
    cv_buf_append(&b, auth, (size_t)(path_end - auth));
    if (*path_end == '?') {
        cv_buf_appends(&b, "?");
        redact_query(&b, path_end + 1, strcspn(path_end + 1, "#"));
    }
    return b.data;
}

char *httpc__url_peer(const char *url)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *r = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
        r = cv_sprintf("%s:%s", host, port);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return r ? r : cv_strdup("(unparsable URL)");
}

static bool is_token(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= max || !(isalnum((unsigned char)s[n]) || strchr("!#$%&'*+-.^_`|~", s[n])))
            return false;
    return n > 0;
}

static int invalid(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int invalid(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err != NULL)
        vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

int httpc_req_validate(const httpc_req_t *req, char *err, size_t len)
{
    if (req->url == NULL || req->url[0] == '\0')
        return invalid(err, len, "HTTP request: url is missing");
    for (const char *p = req->url; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return invalid(err, len,
                           "HTTP request: url has a space or control character at "
                           "offset %zu",
                           (size_t)(p - req->url));
    if (req->method != NULL && !is_token(req->method, 16))
        return invalid(err, len, "HTTP request: method is not a word like GET or POST");
    if (req->body == NULL && req->body_len > 0)
        return invalid(err, len, "HTTP request: body is NULL with body_len %zu", req->body_len);
    for (size_t i = 0; i < req->n_headers; i++) {
        const httpc_header_t *h = &req->headers[i];
        if (h->name == NULL || !is_token(h->name, 256))
            return invalid(err, len,
                           "HTTP request: header %zu: name is empty or has characters "
                           "not allowed in a header name",
                           i + 1);
        if (h->value == NULL || strpbrk(h->value, "\r\n") != NULL)
            return invalid(err, len,
                           "HTTP request: header %zu (%s): value is missing or contains "
                           "CR or LF",
                           i + 1, h->name);
    }
    return 0;
}

char *httpc__scrub(const char *txt, const char *url, const struct curl_slist *hdrs)
{
    const char *needles[64];
    size_t n = 0;
    char *parts[4] = {NULL, NULL, NULL, NULL};
    CURLU *u = curl_url();
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK) {
        CURLUPart which[4] = {CURLUPART_USER, CURLUPART_PASSWORD, CURLUPART_QUERY,
                              CURLUPART_FRAGMENT};
        for (int i = 0; i < 4; i++)
            if (curl_url_get(u, which[i], &parts[i], 0) == CURLUE_OK)
                needles[n++] = parts[i];
    }
    for (const struct curl_slist *h = hdrs; h != NULL && n < CV_ARRAY_SIZE(needles); h = h->next) {
        const char *v = h->data + strcspn(h->data, ":;");
        if (*v)
            needles[n++] = v + 1 + strspn(v + 1, " ");
    }
    char *r = scrub(txt, needles, n);
    for (int i = 0; i < 4; i++)
        curl_free(parts[i]);
    curl_url_cleanup(u);
    return r;
}
