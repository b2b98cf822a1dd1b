/* What a reload changes: counts per named list, keys applied on reload, the restart-only keys
 * that make the reload refused, and a summary that names keys but never a value. */
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

static void server_bounds_and_rates_apply_on_reload(void **state)
{
    (void)state;
    cfg_t *a = load(BASE);
    cfg_t *b = load("server:\n  listen: \"127.0.0.1:8080\"\n  max_connections: 10\n"
                    "  ws_max_clients: 5\n"
                    "limits:\n  max_queued: 7\n  notification_history: 50\n"
                    "auth:\n  rate_per_second: 2\n"
                    "  tokens:\n    - name: a\n      role: viewer\n      token: secret-aaaa\n"
                    "    - name: b\n      role: admin\n      token: secret-bbbb\n"
                    "jobs:\n  - name: j1\n    schedule: manual\n    command: 'true'\n"
                    "  - name: j2\n    schedule: manual\n    command: 'true'\n");
    cfgdiff_t d;
    cfgdiff_compare(a, b, &d);
    assert_null(d.restart_only);
    char *s = cfgdiff_summary(&d);
    assert_string_equal(s, "limits.max_queued, limits.notification_history, "
                           "server.max_connections, server.ws_max_clients, auth.rate_per_second");
    free(s);
    cfgdiff_free(&d);
    cfg_free(a);
    cfg_free(b);
}

static void listen_tls_storage_and_instance_are_restart_only(void **state)
{
    (void)state;
    cfg_t *a = load(BASE);
    cfg_t *b =
        load("server:\n  listen: \"127.0.0.1:9090\"\n"
             "instance: other\n"
             "storage:\n  sqlite:\n    path: /tmp/elsewhere.db\n  pending_max: 99\n"
             "auth:\n  tokens:\n    - name: a\n      role: viewer\n      token: secret-aaaa\n"
             "    - name: b\n      role: admin\n      token: secret-bbbb\n"
             "jobs:\n  - name: j1\n    schedule: manual\n    command: 'true'\n"
             "  - name: j2\n    schedule: manual\n    command: 'true'\n");
    cfgdiff_t d;
    cfgdiff_compare(a, b, &d);
    assert_non_null(d.restart_only);
    assert_string_equal(d.restart_only,
                        "server.listen, storage.sqlite.path, storage.pending_max, instance");
    assert_null(d.applied);
    char *s = cfgdiff_summary(&d);
    assert_string_equal(s, "restart needed: server.listen, storage.sqlite.path, "
                           "storage.pending_max, instance");
    assert_null(strstr(s, "elsewhere"));
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
    assert_string_equal(s, "jobs +1 -1 ~1, tokens +1 -1 ~1, probes +1, limits.max_concurrent; "
                           "restart needed: server.listen");
    assert_string_equal(d.restart_only, "server.listen");
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
        cmocka_unit_test(server_bounds_and_rates_apply_on_reload),
        cmocka_unit_test(listen_tls_storage_and_instance_are_restart_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
