/* The operator commands of the command line (jobs, runs, trigger, logs, cancel, enable,
 * disable): a client of the daemon's HTTP API (libcurl easy interface) and of its WebSocket
 * /api/events (cli_ws.c, a minimal RFC 6455 client: Debian 12's libcurl 7.88 is built without
 * WebSocket support). Nothing here includes http/ or actors/: the client speaks only the API. */
#ifndef CV_CORE_CLI_CLIENT_H
#define CV_CORE_CLI_CLIENT_H

#include <stddef.h>

/* Exit statuses of the client commands (sysexits.h numbers where one fits). A run's status
 * (trigger --wait) maps to 0..6: 0 SUCCESS, 1 FAILED, 2 PARTIAL, 3 TIMED_OUT, 4 CANCELLED,
 * 5 SKIPPED, 6 ABANDONED (exit_for_status in cli_client.c). */
#define CV_EXIT_CLI_USAGE       64 /* EX_USAGE: bad arguments */
#define CV_EXIT_CLI_REFUSED     65 /* the server refused the request (409, 422, 423, other 4xx) */
#define CV_EXIT_CLI_NOT_FOUND   66 /* no such job or run (404) */
#define CV_EXIT_CLI_UNAVAILABLE 69 /* EX_UNAVAILABLE: the server cannot be reached */
#define CV_EXIT_CLI_SOFTWARE    70 /* a 5xx other than 503, or a response that is not the API's */
#define CV_EXIT_CLI_TEMPFAIL    75 /* EX_TEMPFAIL: 429 rate limited or 503 (shutting down...) */
#define CV_EXIT_CLI_NOPERM      77 /* EX_NOPERM: 401 bad or missing token, 403 role too low */

typedef struct cli_ws cli_ws_t;

/** Opens ws://HOST:PORT/api/events (url is the API's http:// base URL) with the token (may be
 * NULL) as a Bearer header and waits for the hub's "authenticated" message. On failure returns
 * NULL with one of the CV_EXIT_CLI_* codes in *exit_code and a message in err. */
cli_ws_t *cli_ws_open(const char *url, const char *token, int timeout_ms, int *exit_code, char *err,
                      size_t errlen);
/** Sends one text message (masked, as a client must). Returns 0 or -1. */
int cli_ws_send_text(cli_ws_t *ws, const char *text);
/** Waits up to timeout_ms for a text message. Returns 1 with a malloc'd NUL-terminated message
 * in *out, 0 on timeout, -1 when the connection closed or failed. Answers pings with pongs. */
int cli_ws_recv_text(cli_ws_t *ws, int timeout_ms, char **out);
/** Sends a close frame and closes the socket. NULL is fine. */
void cli_ws_close(cli_ws_t *ws);

#endif
