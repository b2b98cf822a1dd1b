/* The API listen address: parsing, and the rule shared by `check` (core/config_check.c) and the
 * server (http/auth.c): without API tokens the API may listen on a loopback address only. */
#ifndef CV_CORE_LISTEN_H
#define CV_CORE_LISTEN_H

#include <stddef.h>

/** Splits a listen address "host:port", "[v6]:port" or ":port" (host = "0.0.0.0") into host
 * (NUL-terminated, brackets removed) and port (0..65535). Returns 0 or -EINVAL. */
int cv_listen_split(const char *addr, char *host, size_t hostlen, int *port);

/** Decides whether the API may listen on listen_addr given the number of configured tokens:
 * with none, only loopback hosts (127.0.0.0/8, ::1, localhost) are allowed. Returns 0, or
 * -EPERM / -EINVAL with a heap message in *err (caller frees). */
int cv_listen_allowed(const char *listen_addr, size_t ntokens, char **err);

#endif
