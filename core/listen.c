#include "core/listen.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int cv_listen_split(const char *addr, char *host, size_t hostlen, int *port)
{
    const char *colon, *h = addr;
    size_t hlen;
    if (addr == NULL)
        return -EINVAL;
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (end == NULL || end[1] != ':')
            return -EINVAL;
        h = addr + 1;
        hlen = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL || memchr(addr, ':', (size_t)(colon - addr)) != NULL)
            return -EINVAL;
        hlen = (size_t)(colon - addr);
    }
    if (hlen == 0) {
        h = "0.0.0.0";
        hlen = 7;
    }
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno != 0 || p < 0 || p > 65535 || hlen >= hostlen)
        return -EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return 0;
}

static bool host_is_loopback(const char *host)
{
    struct in_addr v4;
    struct in6_addr v6;
    if (strcmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &v6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&v6);
    return false;
}

int cv_listen_allowed(const char *listen_addr, size_t ntokens, char **err)
{
    char host[256];
    int port;
    *err = NULL;
    if (cv_listen_split(listen_addr, host, sizeof(host), &port) != 0) {
        *err = cv_sprintf("api listen address \"%s\" is not host:port (e.g. 127.0.0.1:8080 or "
                          "[::1]:8080)",
                          listen_addr ? listen_addr : "(null)");
        return -EINVAL;
    }
    if (ntokens == 0 && !host_is_loopback(host)) {
        *err = cv_sprintf("api listen address \"%s\" is not loopback but no api token is "
                          "configured: add tokens or listen on 127.0.0.1",
                          listen_addr);
        return -EPERM;
    }
    return 0;
}
