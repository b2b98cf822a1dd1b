/* The run record (proto/run.h): the copy and the references of a run, and its outage spool
 * record (storage/spool_rec.c), both driven by the field table: every field is checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "run_fields.h"
#include "storage/store_req.h"

#include <stdlib.h>

/* run_dup copies every field of the table, its strings into memory of its own. */
static void dup_copies_every_field_deeply(void **state)
{
    (void)state;
    run_t *r = run_new("j", "cron");
    r->id = 42;
    runf_fill(r, 3);
    run_t *c = run_dup(r);
    runf_assert_equal(c, r);
    for (int i = 0; i < RUN_NPARAMS; i++)
        if (run_fields[i].kind == RUN_K_TEXT)
            assert_ptr_not_equal(*RUN_FIELD_CPTR(c, &run_fields[i], char *),
                                 *RUN_FIELD_CPTR(r, &run_fields[i], char *));
    assert_false(c->published);
    run_free(r);
    runf_fill(c, 4); /* c is its own: changing it frees only its strings (ASan) */
    run_free(c);
}

/* A published run is shared, not copied: run_share of a published run is the run itself, of an
 * unpublished one a copy; the last reference frees it (ASan finds a leak or a double free). */
static void references_share_a_published_run_and_the_last_frees_it(void **state)
{
    (void)state;
    run_t *r = run_new("j", "cron");
    runf_fill(r, 1);
    run_t *copy = run_share(r); /* not published yet: its owner may still change it */
    assert_ptr_not_equal(copy, r);
    run_t *a = run_ref(r);
    assert_ptr_equal(a, r);
    assert_true(r->published);
    run_t *b = run_share(r);
    assert_ptr_equal(b, r);
    assert_int_equal(r->refs, 3);
    run_unref(a);
    run_unref(r);
    assert_int_equal(b->refs, 1);
    assert_string_equal(b->job, copy->job); /* still alive */
    run_unref(b);
    run_unref(copy);
    run_unref(NULL);
}

/* A run written to the spool is read back with every field of the table. */
static void the_spool_record_keeps_every_field(void **state)
{
    (void)state;
    static const store_op_t ops[] = {STORE_OP_INSERT_RUN, STORE_OP_UPDATE_RUN};
    for (size_t i = 0; i < 2; i++) {
        store_op_t op = ops[i];
        run_t *r = run_new(NULL, NULL);
        r->id = -17; /* provisional */
        runf_fill(r, 5);
        store_req_args_t u = {0};
        u.run = r;
        size_t len = 0;
        char *rec = store_req_spool_encode(op, &u, "k1", NULL, &len);
        assert_non_null(rec);
        store_op_t back = 0;
        store_req_args_t v;
        char *key = NULL, *retry_key = NULL;
        assert_int_equal(store_req_spool_decode(rec, len, &back, &v, &key, &retry_key), 0);
        assert_int_equal(back, op);
        assert_string_equal(key, "k1");
        assert_null(retry_key);
        runf_assert_equal(v.run, r);
        store_req_args_free(back, &v, 0);
        free(key);
        free(rec);
        run_free(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dup_copies_every_field_deeply),
        cmocka_unit_test(references_share_a_published_run_and_the_last_frees_it),
        cmocka_unit_test(the_spool_record_keeps_every_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
