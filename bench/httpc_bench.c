/* httpc throughput against the test server on the same loop (one thread does both sides, so
 * the figure is a floor for the client alone). Usage: httpc_bench [requests] [concurrency]
 * Every request opens a new connection (the server answers "Connection: close"). */
#include <stdio.h>
#include <stdlib.h>

#include "core/httpc.h"
#include "tests/core/httpc_test_server.h"

typedef struct bench {
    httpc_t *c;
    char *url;
    int to_start, done, failed;
} bench_t;

static void start_one(bench_t *b);

static void on_done(httpc_xfer_t *x, const httpc_result_t *r, void *ud)
{
    bench_t *b = ud;
    b->done++;
    if (r->error != HTTPC_OK || r->status != 200)
        b->failed++;
    if (b->to_start > 0)
        start_one(b);
}

static void start_one(bench_t *b)
{
    b->to_start--;
    if (httpc_request(b->c, &(httpc_req_t){.url = b->url}, on_done, b, NULL) < 0) {
        fprintf(stderr, "httpc_request failed\n");
        exit(1);
    }
}

static void on_closed(void *ud)
{
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20000, conc = argc > 2 ? atoi(argv[2]) : 50;
    uv_loop_t loop;
    srv_t srv;
    bench_t b = {.to_start = n};
    if (n <= 0 || conc <= 0) {
        fprintf(stderr, "usage: httpc_bench [requests > 0] [concurrency > 0]\n");
        return 2;
    }
    httpc_global_init();
    uv_loop_init(&loop);
    if (srv_start(&loop, &srv) != 0)
        return 1;
    b.c = httpc_create(&loop);
    b.url = cv_sprintf("http://127.0.0.1:%d/ok", srv.port);
    int64_t t0 = cv_mono_ns();
    for (int i = 0; i < conc && b.to_start > 0; i++)
        start_one(&b);
    while (b.done < n)
        uv_run(&loop, UV_RUN_ONCE);
    double s = (double)(cv_mono_ns() - t0) / 1e9;
    printf("%d requests, concurrency %d: %.0f requests/s (%.1f us each), %d failed\n", n, conc,
           n / s, s * 1e6 / n, b.failed);
    httpc_close(b.c, on_closed, NULL);
    srv_stop(&srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    free(b.url);
    return uv_loop_close(&loop) == 0 && b.failed == 0 ? 0 : 1;
}
