/* The dashboard routes over the embedded table (the real Vite build, or the CV_UI=OFF
 * placeholder): index at / and at client-side routes, hashed assets immutable, ETag / 304,
 * gzip, and JSON 404s for unknown API paths and missing files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <zlib.h>

#include "http/ui.h"
#include "tclient.h"

typedef struct fixture {
    uv_loop_t loop;
    api_server_t *srv;
    int port;
} fixture_t;

static void h_jobs(api_req_t *req, void *data)
{
    api_reply_json(req, 200, json_pack("{s:[]}", "jobs"));
}

static int setup(void **state)
{
    fixture_t *f = cv_calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    api_server_opts_t opts = {.listen = "127.0.0.1:0"};
    char *err = NULL;
    f->srv = api_server_create(&f->loop, &opts, &err);
    assert_non_null(f->srv);
    assert_int_equal(ui_routes(f->srv), 0);
    api_route_t jobs = {"GET", "/api/jobs", h_jobs, NULL, AUTH_ROLE_VIEWER, 0};
    assert_int_equal(api_server_route(f->srv, &jobs), 0);
    f->port = api_server_port(f->srv);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    assert_true(tc_close_server(f->srv, &f->loop));
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static const ui_asset_entry_t *first_hashed_asset(void)
{
    for (size_t i = 0; i < ui_assets_count; i++)
        if (strncmp(ui_assets[i].path, "/assets/", 8) == 0)
            return &ui_assets[i];
    return NULL;
}

static void get(fixture_t *f, const char *path, const char *headers, tc_resp_t *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(tc_request(&f->loop, f->port, "GET", path, headers, NULL, r), 0);
}

static void the_table_has_an_index_with_etag_and_no_cache(void **state)
{
    const api_asset_t *a = ui_asset_find("/index.html");
    assert_non_null(a);
    assert_string_equal(a->content_type, "text/html; charset=utf-8");
    assert_non_null(a->etag);
    assert_int_equal(a->etag[0], '"');
    assert_string_equal(a->cache_control, "no-cache");
    assert_null(ui_asset_find("/nope.js"));
}

static void root_and_client_routes_answer_the_index(void **state)
{
    fixture_t *f = *state;
    const api_asset_t *index = ui_asset_find("/index.html");
    const char *paths[] = {"/", "/jobs", "/jobs/backup/runs", "/runs/42"};
    for (size_t i = 0; i < CV_ARRAY_SIZE(paths); i++) {
        tc_resp_t r;
        get(f, paths[i], "", &r);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.body.len, index->len);
        assert_memory_equal(r.body.data, index->data, index->len);
        char v[128];
        assert_string_equal(tc_header(&r, "etag", v, sizeof(v)), index->etag);
        assert_string_equal(tc_header(&r, "cache-control", v, sizeof(v)), "no-cache");
        tc_resp_free(&r);
    }
}

static void a_matching_etag_is_answered_304(void **state)
{
    fixture_t *f = *state;
    char hdr[160];
    snprintf(hdr, sizeof(hdr), "If-None-Match: %s\r\n", ui_asset_find("/index.html")->etag);
    tc_resp_t r;
    get(f, "/", hdr, &r);
    assert_int_equal(r.status, 304);
    assert_int_equal(r.body.len, 0);
    tc_resp_free(&r);
}

static void hashed_assets_are_immutable_and_gzip_decodes_to_the_body(void **state)
{
    fixture_t *f = *state;
    const ui_asset_entry_t *e = first_hashed_asset();
    if (e == NULL)
        skip(); /* the CV_UI=OFF placeholder has no /assets/ */
    tc_resp_t r;
    get(f, e->path, "Accept-Encoding: gzip\r\n", &r);
    assert_int_equal(r.status, 200);
    char v[128];
    assert_string_equal(tc_header(&r, "cache-control", v, sizeof(v)),
                        "public, max-age=31536000, immutable");
    assert_non_null(e->asset.gz);
    assert_string_equal(tc_header(&r, "content-encoding", v, sizeof(v)), "gzip");
    uLongf out_len = e->asset.len + 16;
    unsigned char *out = cv_malloc(out_len);
    z_stream zs = {0};
    assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK);
    zs.next_in = (unsigned char *)r.body.data;
    zs.avail_in = (uInt)r.body.len;
    zs.next_out = out;
    zs.avail_out = (uInt)out_len;
    assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
    assert_int_equal(zs.total_out, e->asset.len);
    assert_memory_equal(out, e->asset.data, e->asset.len);
    inflateEnd(&zs);
    free(out);
    tc_resp_free(&r);
}

static void unknown_api_paths_and_missing_files_are_json_404s(void **state)
{
    fixture_t *f = *state;
    const char *paths[] = {"/api/nope", "/api", "/assets/missing-1234.js", "/favicon.png"};
    for (size_t i = 0; i < CV_ARRAY_SIZE(paths); i++) {
        tc_resp_t r;
        get(f, paths[i], "", &r);
        assert_int_equal(r.status, 404);
        assert_non_null(strstr(r.body.data, "\"not_found\""));
        tc_resp_free(&r);
    }
}

static void api_routes_still_win_over_the_fallback(void **state)
{
    fixture_t *f = *state;
    tc_resp_t r;
    get(f, "/api/jobs", "", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "{\"jobs\":[]}");
    tc_resp_free(&r);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_table_has_an_index_with_etag_and_no_cache),
        T(root_and_client_routes_answer_the_index),
        T(a_matching_etag_is_answered_304),
        T(hashed_assets_are_immutable_and_gzip_decodes_to_the_body),
        T(unknown_api_paths_and_missing_files_are_json_404s),
        T(api_routes_still_win_over_the_fallback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
