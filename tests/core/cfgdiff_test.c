/* What a reload changes: counts per named list, keys applied at once, keys that wait for a
 * restart, and a summary that names keys but never a value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/cfgdiff.h"

static cfg_t *load(const char *yaml)
{
    cfg_t *cfg = NULL;
    cfg_errors_t errs = {0};
    assert_int_equal(cfg_load_string(yaml, strlen(yaml), "t.yaml", NULL, &cfg, &errs), 0);
    cfg_errors_free(&errs);
    return cfg;
}

#define BASE                                                                                       \
    "server:\n  listen: \"127.0.0.1:8080\"\n"                                                      \
    "auth:\n  tokens:\n    - name: a\n      role: viewer\n      token: secret-aaaa\n"              \
    "    - name: b\n      role: admin\n      token: secret-bbbb\n"                                 \
    "jobs:\n  - name: j1\n    schedule: manual\n    command: 'true'\n"                             \
    "  - name: j2\n    schedule: manual\n    command: 'true'\n"

static void the_same_configuration_changes_nothing(void **state)
{
    (void)state;
    cfg_t *a = load(BASE), *b = load(BASE);
    cfgdiff_t d;
    cfgdiff_compare(a, b, &d);
    char *s = cfgdiff_summary(&d);
    assert_string_equal(s, "no changes");
    free(s);
    cfgdiff_free(&d);
    cfg_free(a);
    cfg_free(b);
}

static void server_bounds_that_wait_for_a_restart_are_named(void **state)
{
    (void)state;
    cfg_t *a = load(BASE);
    cfg_t *b = load("server:\n  listen: \"127.0.0.1:8080\"\n  max_connections: 10\n"
                    "  ws_max_clients: 5\n"
                    "limits:\n  max_queued: 7\n"
                    "auth:\n  rate_per_second: 2\n"
                    "  tokens:\n    - name: a\n      role: viewer\n      token: secret-aaaa\n"
                    "    - name: b\n      role: admin\n      token: secret-bbbb\n"
                    "jobs:\n  - name: j1\n    schedule: manual\n    command: 'true'\n"
                    "  - name: j2\n    schedule: manual\n    command: 'true'\n");
    cfgdiff_t d;
    cfgdiff_compare(a, b, &d);
    char *s = cfgdiff_summary(&d);
    assert_non_null(strstr(s, "limits.max_queued"));
    const char *later = strstr(s, "not applied until restart: ");
    assert_non_null(later);
    assert_non_null(strstr(later, "server.max_connections"));
    assert_non_null(strstr(later, "server.ws_max_clients"));
    assert_non_null(strstr(later, "auth.rate_per_second"));
    assert_null(strstr(later, "limits.max_queued"));
    free(s);
    cfgdiff_free(&d);
    cfg_free(a);
    cfg_free(b);
}

static void changes_are_counted_and_restart_keys_named_without_values(void **state)
{
    (void)state;
    cfg_t *a = load(BASE);
    cfg_t *b = load("server:\n  listen: \"127.0.0.1:9090\"\n"
                    "limits:\n  max_concurrent: 3\n"
                    "auth:\n  tokens:\n    - name: a\n      role: admin\n      token: secret-aaaa\n"
                    "    - name: c\n      role: viewer\n      token: secret-cccc\n"
                    "probes:\n  - name: p\n    type: tcp\n    address: \"127.0.0.1:1\"\n"
                    "jobs:\n  - name: j1\n    schedule: manual\n    command: 'false'\n"
                    "  - name: j3\n    schedule: manual\n    command: 'true'\n");
    cfgdiff_t d;
    cfgdiff_compare(a, b, &d);
    assert_int_equal(d.jobs.added, 1);
    assert_int_equal(d.jobs.removed, 1);
    assert_int_equal(d.jobs.changed, 1);
    assert_int_equal(d.tokens.added, 1);
    assert_int_equal(d.tokens.removed, 1);
    assert_int_equal(d.tokens.changed, 1);
    char *s = cfgdiff_summary(&d);
    assert_string_equal(s, "jobs +1 -1 ~1, tokens +1 -1 ~1, limits.max_concurrent; not applied "
                           "until restart: probes (+1 -0 ~0), server.listen");
    assert_null(strstr(s, "secret"));
    free(s);
    cfgdiff_free(&d);
    cfg_free(a);
    cfg_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_same_configuration_changes_nothing),
        cmocka_unit_test(changes_are_counted_and_restart_keys_named_without_values),
        cmocka_unit_test(server_bounds_that_wait_for_a_restart_are_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
