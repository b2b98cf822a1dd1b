/* Route patterns, percent-decoding and query strings: pure functions, no h2o. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http/api_internal.h"

void api__kvs_add(api__kvs_t *kvs, char *key, char *value)
{
    if (kvs->n == kvs->cap) {
        kvs->cap = kvs->cap ? 2 * kvs->cap : 4;
        kvs->v = cv_realloc(kvs->v, kvs->cap * sizeof(*kvs->v));
    }
    kvs->v[kvs->n].key = key;
    kvs->v[kvs->n].value = value;
    kvs->n++;
}

const char *api__kvs_get(const api__kvs_t *kvs, const char *key)
{
    for (size_t i = 0; i < kvs->n; i++) {
        if (strcmp(kvs->v[i].key, key) == 0)
            return kvs->v[i].value;
    }
    return NULL;
}

void api__kvs_free(api__kvs_t *kvs)
{
    for (size_t i = 0; i < kvs->n; i++) {
        free(kvs->v[i].key);
        free(kvs->v[i].value);
    }
    free(kvs->v);
    kvs->v = NULL;
    kvs->n = kvs->cap = 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..len) into a heap string (plus_is_space for query strings). Returns NULL for
 * a malformed escape or a decoded NUL byte. */
static char *api__decode(const char *s, size_t len, bool plus_is_space)
{
    char *out = cv_malloc(len + 1), *o = out;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            int hi = i + 1 < len ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                goto fail;
            *o++ = (char)(hi << 4 | lo);
            i += 2;
        } else if (s[i] == '\0') {
            goto fail;
        } else {
            *o++ = (plus_is_space && s[i] == '+') ? ' ' : s[i];
        }
    }
    *o = '\0';
    return out;
fail:
    free(out);
    return NULL;
}

int api__query_parse(const char *q, size_t len, api__kvs_t *kvs)
{
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && q[end] != '&')
            end++;
        if (end > i) {
            const char *eq = memchr(q + i, '=', end - i);
            size_t klen = eq ? (size_t)(eq - (q + i)) : end - i;
            char *k = api__decode(q + i, klen, true);
            char *v = eq ? api__decode(eq + 1, (size_t)(q + end - eq - 1), true) : cv_strdup("");
            if (k == NULL || v == NULL) {
                free(k);
                free(v);
                return -EINVAL;
            }
            api__kvs_add(kvs, k, v);
        }
        i = end + 1;
    }
    return 0;
}

static bool seg_is_param(const char *seg)
{
    return seg[0] == '{';
}

static bool seg_is_tail(const char *seg)
{
    return seg[0] == '{' && seg[1] == '*';
}

/* "{name}" -> "name", "{*name}" -> "name" */
static char *param_name(const char *seg)
{
    const char *start = seg + (seg_is_tail(seg) ? 2 : 1);
    return cv_strndup(start, strlen(start) - 1);
}

static int check_segment(const char *seg, bool last)
{
    size_t n = strlen(seg);
    if (seg[0] != '{')
        return strpbrk(seg, "{}") ? -EINVAL : 0;
    if (n < 3 || seg[n - 1] != '}' || strpbrk(seg + 1, "{") || strchr(seg, '}') != seg + n - 1)
        return -EINVAL;
    if (seg_is_tail(seg) && (n < 4 || !last))
        return -EINVAL;
    return 0;
}

int api__route_compile(const api_route_t *route, api__route_t *out)
{
    memset(out, 0, sizeof(*out));
    if (route->method == NULL || route->method[0] == '\0' || route->pattern == NULL ||
        route->pattern[0] != '/' || route->handler == NULL)
        return -EINVAL;
    out->r = *route;
    out->r.method = cv_strdup(route->method);
    out->r.pattern = cv_strdup(route->pattern);
    const char *p = route->pattern + 1;
    while (1) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        out->segs = cv_realloc(out->segs, (out->nsegs + 1) * sizeof(char *));
        out->segs[out->nsegs] = cv_strndup(p, n);
        if (check_segment(out->segs[out->nsegs++], slash == NULL) != 0) {
            api__route_free(out);
            return -EINVAL;
        }
        if (!seg_is_param(out->segs[out->nsegs - 1]))
            out->nliteral++;
        if (slash == NULL)
            break;
        p = slash + 1;
    }
    return 0;
}

void api__route_free(api__route_t *rt)
{
    for (size_t i = 0; i < rt->nsegs; i++)
        free(rt->segs[i]);
    free(rt->segs);
    free((char *)rt->r.method);
    free((char *)rt->r.pattern);
    memset(rt, 0, sizeof(*rt));
}

int api__route_match(const api__route_t *rt, const char *path, size_t len, api__kvs_t *params)
{
    api__kvs_t found = {0};
    size_t pos = 1;
    if (len == 0 || path[0] != '/')
        return 0;
    for (size_t i = 0; i < rt->nsegs; i++) {
        const char *seg = rt->segs[i];
        if (pos > len)
            goto nomatch;
        const char *slash = memchr(path + pos, '/', len - pos);
        size_t end = seg_is_tail(seg) ? len : slash ? (size_t)(slash - path) : len;
        if (!seg_is_param(seg)) {
            if (strlen(seg) != end - pos || memcmp(seg, path + pos, end - pos) != 0)
                goto nomatch;
        } else {
            if (end == pos && !seg_is_tail(seg))
                goto nomatch; /* "{name}" needs at least one character */
            char *v = api__decode(path + pos, end - pos, false);
            if (v == NULL) {
                api__kvs_free(&found);
                return -EINVAL;
            }
            api__kvs_add(&found, param_name(seg), v);
        }
        pos = end + 1;
    }
    if (pos <= len)
        goto nomatch; /* path has more segments than the pattern */
    for (size_t i = 0; i < found.n; i++)
        api__kvs_add(params, found.v[i].key, found.v[i].value);
    free(found.v);
    return 1;
nomatch:
    api__kvs_free(&found);
    return 0;
}
