/* Address ranges ("10.0.0.0/8", "::1/128", "127.0.0.1" = one address): parsing and matching, for
 * auth.proxy.from (the addresses of a trusted reverse proxy). Pure functions. */
#ifndef CV_CORE_CIDR_H
#define CV_CORE_CIDR_H

#include <stdbool.h>

#include <sys/socket.h>

typedef struct cv_cidr {
    int family;             /* AF_INET or AF_INET6 */
    unsigned char addr[16]; /* network byte order; 4 bytes used for AF_INET */
    int bits;               /* prefix length: 0..32 or 0..128 */
} cv_cidr_t;

/** Parses "address/bits" or a bare address (all bits). Returns 0 and *out, or -EINVAL (not an
 * IPv4/IPv6 address, a prefix out of range, or host bits set beyond the prefix). */
int cv_cidr_parse(const char *s, cv_cidr_t *out);

/** True when the socket address sa (AF_INET or AF_INET6; an IPv4-mapped IPv6 address is matched
 * as its IPv4 address) is inside c. Any other family never matches. */
bool cv_cidr_match(const cv_cidr_t *c, const struct sockaddr *sa);

#endif
