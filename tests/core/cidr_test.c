/* Address ranges of auth.proxy.from: what parses, what is refused, and which peers match
 * (IPv4, IPv6, IPv4-mapped IPv6, prefixes that end inside a byte). */
#include "core/cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static bool match(const char *range, const char *peer)
{
    cv_cidr_t c;
    assert_int_equal(cv_cidr_parse(range, &c), 0);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, peer, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        ss.ss_family = AF_INET;
    } else {
        assert_int_equal(inet_pton(AF_INET6, peer, &((struct sockaddr_in6 *)&ss)->sin6_addr), 1);
        ss.ss_family = AF_INET6;
    }
    return cv_cidr_match(&c, (struct sockaddr *)&ss);
}

static void parses_ranges_and_single_addresses(void **state)
{
    cv_cidr_t c;
    assert_int_equal(cv_cidr_parse("10.0.0.0/8", &c), 0);
    assert_int_equal(c.bits, 8);
    assert_int_equal(cv_cidr_parse("127.0.0.1", &c), 0);
    assert_int_equal(c.bits, 32);
    assert_int_equal(cv_cidr_parse("::1", &c), 0);
    assert_int_equal(c.bits, 128);
    assert_int_equal(cv_cidr_parse("fd00::/8", &c), 0);
    assert_int_equal(cv_cidr_parse("0.0.0.0/0", &c), 0);
}

static void refuses_what_is_not_a_range(void **state)
{
    cv_cidr_t c;
    const char *bad[] = {"",           "/8",        "10.0.0.300/8", "10.0.0.0/33",
                         "::/129",     "10.0.0.0/", "10.0.0.0/x",   "10.0.0.0/-1",
                         "10.1.2.3/8", "localhost", "10.0.0.0/8 "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(cv_cidr_parse(bad[i], &c), -EINVAL);
    assert_int_equal(cv_cidr_parse(NULL, &c), -EINVAL);
}

static void matches_peers_inside_the_prefix_only(void **state)
{
    assert_true(match("127.0.0.2/32", "127.0.0.2"));
    assert_false(match("127.0.0.2/32", "127.0.0.1"));
    assert_true(match("10.0.0.0/8", "10.255.1.2"));
    assert_false(match("10.0.0.0/8", "11.0.0.1"));
    assert_true(match("192.168.0.0/23", "192.168.1.200")); /* a prefix ending inside a byte */
    assert_false(match("192.168.0.0/23", "192.168.2.1"));
    assert_true(match("0.0.0.0/0", "8.8.8.8"));
    assert_true(match("fd00::/8", "fd12::1"));
    assert_false(match("fd00::/8", "fe80::1"));
    assert_false(match("::1/128", "127.0.0.1"));           /* families never mix... */
    assert_true(match("127.0.0.0/8", "::ffff:127.0.0.9")); /* ...but a mapped IPv4 is IPv4 */
    assert_false(match("127.0.0.0/8", "::ffff:10.0.0.1"));
    assert_false(match("10.0.0.0/8", "::a00:1")); /* IPv4-compatible is not mapped */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_ranges_and_single_addresses),
        cmocka_unit_test(refuses_what_is_not_a_range),
        cmocka_unit_test(matches_peers_inside_the_prefix_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
