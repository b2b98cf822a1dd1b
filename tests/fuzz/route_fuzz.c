/* Fuzzes the URL side of the API router: a path matched against a few patterns (percent-decoding
 * of parameters) and a query string. Input: path, a NUL byte, query. */
#include <stdint.h>
#include <string.h>

#include "http/api_internal.h"

static void noop(api_req_t *req, void *data)
{
    (void)req;
    (void)data;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *patterns[] = {"/api/jobs/{name}/trigger", "/api/runs/{id}", "/ui/{*rest}",
                                     "/api/jobs"};
    const char *in = (const char *)data;
    const char *nul = memchr(in, '\0', size);
    size_t plen = nul ? (size_t)(nul - in) : size;
    for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
        api_route_t r = {"GET", patterns[i], noop, NULL, AUTH_ROLE_NONE, 0};
        api__route_t rt;
        if (api__route_compile(&r, &rt) != 0)
            __builtin_trap();
        api__kvs_t params = {0};
        api__route_match(&rt, in, plen, &params);
        api__kvs_free(&params);
        api__route_free(&rt);
    }
    if (nul != NULL) {
        api__kvs_t q = {0};
        api__query_parse(nul + 1, size - plen - 1, &q);
        api__kvs_free(&q);
    }
    return 0;
}
