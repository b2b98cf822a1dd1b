/* The dashboard's routes over the embedded asset table. */
#include "http/ui.h"

#include <stdio.h>
#include <string.h>

const api_asset_t *ui_asset_find(const char *path)
{
    for (size_t i = 0; i < ui_assets_count; i++)
        if (strcmp(ui_assets[i].path, path) == 0)
            return &ui_assets[i].asset;
    return NULL;
}

static int reply_index(api_req_t *req)
{
    const api_asset_t *a = ui_asset_find("/index.html");
    if (a == NULL)
        return api_reply_error(req, 404, "not_found", "the dashboard is not built in");
    return api_reply_asset(req, a);
}

static void on_index(api_req_t *req, void *data)
{
    reply_index(req);
}

static void on_asset(api_req_t *req, void *data)
{
    const char *rest = api_req_param(req, "path");
    char path[512];
    int n = snprintf(path, sizeof path, "/assets/%s", rest != NULL ? rest : "");
    const api_asset_t *a = n > 0 && (size_t)n < sizeof path ? ui_asset_find(path) : NULL;
    if (a == NULL) {
        api_reply_error(req, 404, "not_found", "no such dashboard file");
        return;
    }
    api_reply_asset(req, a);
}

/* True when the last segment of path looks like a file name ("x.js"): such a path that is
 * not embedded is a 404, not the app (a missing script must not be answered with HTML). */
static int looks_like_file(const char *path)
{
    const char *slash = strrchr(path, '/');
    return strchr(slash != NULL ? slash : path, '.') != NULL;
}

static void on_fallback(api_req_t *req, void *data)
{
    const char *path = req->path;
    if (strncmp(path, "/api/", 5) == 0 || strcmp(path, "/api") == 0) {
        api_reply_error(req, 404, "not_found", "no such API route");
        return;
    }
    const api_asset_t *a = ui_asset_find(path);
    if (a != NULL) {
        api_reply_asset(req, a);
        return;
    }
    if (looks_like_file(path)) {
        api_reply_error(req, 404, "not_found", "no such dashboard file");
        return;
    }
    reply_index(req);
}

int ui_routes(api_server_t *srv)
{
    const api_route_t routes[] = {
        {"GET", "/", on_index, NULL, AUTH_ROLE_NONE, 0},
        {"GET", "/assets/{*path}", on_asset, NULL, AUTH_ROLE_NONE, 0},
        {"GET", "/{*path}", on_fallback, NULL, AUTH_ROLE_NONE, 0},
    };
    return api_server_routes(srv, routes, sizeof routes / sizeof routes[0]);
}
