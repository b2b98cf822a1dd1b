/* The id map against a plain array as the model: puts, replacements, removals that must shift
 * later entries back (colliding ids, wrap-around at the table's end), and growth. */
#include "core/idmap.h"
#include "core/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#define N 5000

static void finds_what_was_put_and_nothing_else(void **state)
{
    cv_idmap_t m = {0};
    assert_null(cv_idmap_get(&m, 1));
    assert_null(cv_idmap_remove(&m, 1));
    static int vals[N];
    for (int i = 0; i < N; i++)
        cv_idmap_put(&m, (int64_t)i * 3 + 1, &vals[i]);
    assert_int_equal(m.count, N);
    for (int i = 0; i < N; i++) {
        assert_ptr_equal(cv_idmap_get(&m, (int64_t)i * 3 + 1), &vals[i]);
        assert_null(cv_idmap_get(&m, (int64_t)i * 3 + 2));
    }
    cv_idmap_put(&m, 1, &vals[7]); /* replaces */
    assert_int_equal(m.count, N);
    assert_ptr_equal(cv_idmap_get(&m, 1), &vals[7]);
    cv_idmap_free(&m);
    assert_null(cv_idmap_get(&m, 1));
}

/* Random puts and removals, checked against an array after every step. */
static void removal_keeps_every_other_entry_reachable(void **state)
{
    cv_idmap_t m = {0};
    static int present[N], vals[N];
    srand(42);
    for (int step = 0; step < 200000; step++) {
        int k = rand() % N;
        /* Spread ids far apart and near INT64 limits too, so probes wrap around the table. */
        int64_t id = (k % 2 ? INT64_MAX - k : (int64_t)k << 40);
        if (rand() % 3 == 0) {
            void *v = cv_idmap_remove(&m, id);
            assert_ptr_equal(v, present[k] ? &vals[k] : NULL);
            present[k] = 0;
        } else {
            cv_idmap_put(&m, id, &vals[k]);
            present[k] = 1;
        }
        if (step % 997 == 0) {
            size_t count = 0;
            for (int i = 0; i < N; i++) {
                int64_t id2 = (i % 2 ? INT64_MAX - i : (int64_t)i << 40);
                assert_ptr_equal(cv_idmap_get(&m, id2), present[i] ? &vals[i] : NULL);
                count += (size_t)present[i];
            }
            assert_int_equal(m.count, count);
        }
    }
    cv_idmap_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(finds_what_was_put_and_nothing_else),
        cmocka_unit_test(removal_keeps_every_other_entry_reachable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
