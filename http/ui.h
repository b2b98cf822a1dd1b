/* The dashboard's routes: the single-page app embedded in the binary (see http/ui_assets.h). */
#ifndef CV_HTTP_UI_H
#define CV_HTTP_UI_H

#include "http/server.h"
#include "http/ui_assets.h"

/** Adds the dashboard routes to srv, none needing authentication (the page asks for a token
 * itself): GET / (index.html), GET /assets/{*path} (hashed files, immutable; 404 when absent)
 * and a fallback GET /{*path} answering a top-level file when one exists and index.html for any
 * other client-side route; paths under /api/ are answered with a JSON 404 instead. Every reply
 * goes through api_reply_asset (ETag / 304, gzip). Returns 0 or the first api_server_route
 * error. */
int ui_routes(api_server_t *srv);

/** The embedded file at URL path ("/index.html"), or NULL. */
const api_asset_t *ui_asset_find(const char *path);

#endif
