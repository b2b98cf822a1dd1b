/* Test helpers driven by the run's field table (proto/run.h): a run with a distinct value in every
 * field, and a field-by-field comparison, so that a field added to the table is round-tripped by
 * every test using them without editing it. */
#ifndef CV_TESTS_RUN_FIELDS_H
#define CV_TESTS_RUN_FIELDS_H

#include "core/util.h"
#include "proto/run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The size of a field's C value. */
static inline size_t runf_size(const run_field_t *f)
{
    switch (f->kind) {
    case RUN_K_I64:
        return sizeof(int64_t);
    case RUN_K_DBL:
        return sizeof(double);
    case RUN_K_TEXT:
        return sizeof(char *);
    case RUN_K_STATUS:
        return sizeof(run_status_t);
    default:
        return sizeof(int);
    }
}

/* Fills every field of r (its old strings freed) with a value that differs from field to field
 * and from seed to seed. The status is RUN_PARTIAL + seed % 2 (a final one). */
static inline void runf_fill(run_t *r, int seed)
{
    for (int i = 0; i < RUN_NPARAMS; i++) {
        const run_field_t *f = &run_fields[i];
        switch (f->kind) {
        case RUN_K_I64:
            *RUN_FIELD_PTR(r, f, int64_t) = 1700000000000LL + 1000 * seed + i;
            break;
        case RUN_K_INT:
            *RUN_FIELD_PTR(r, f, int) = 100 * seed + i + 1;
            break;
        case RUN_K_DBL:
            *RUN_FIELD_PTR(r, f, double) = seed + i / 64.0;
            break;
        case RUN_K_STATUS:
            *RUN_FIELD_PTR(r, f, run_status_t) = seed % 2 ? RUN_FAILED : RUN_PARTIAL;
            break;
        case RUN_K_TEXT: {
            char **p = RUN_FIELD_PTR(r, f, char *);
            free(*p);
            /* JSON text, so that a JSON column (summary) takes it as well */
            *p = cv_sprintf("{\"field\": \"%s\", \"seed\": %d, \"t\": \"\\u00e9\"}", f->name, seed);
            break;
        }
        }
    }
}

/* Asserts that every field of the table is the same in a and b (id too). */
static inline void runf_assert_equal(const run_t *a, const run_t *b)
{
    assert_int_equal(a->id, b->id);
    for (int i = 0; i < RUN_NPARAMS; i++) {
        const run_field_t *f = &run_fields[i];
        switch (f->kind) {
        case RUN_K_I64:
            assert_int_equal(*RUN_FIELD_CPTR(a, f, int64_t), *RUN_FIELD_CPTR(b, f, int64_t));
            break;
        case RUN_K_INT:
            assert_int_equal(*RUN_FIELD_CPTR(a, f, int), *RUN_FIELD_CPTR(b, f, int));
            break;
        case RUN_K_DBL:
            assert_true(*RUN_FIELD_CPTR(a, f, double) == *RUN_FIELD_CPTR(b, f, double));
            break;
        case RUN_K_STATUS:
            assert_int_equal(*RUN_FIELD_CPTR(a, f, run_status_t),
                             *RUN_FIELD_CPTR(b, f, run_status_t));
            break;
        case RUN_K_TEXT: {
            const char *x = *RUN_FIELD_CPTR(a, f, char *), *y = *RUN_FIELD_CPTR(b, f, char *);
            if (x == NULL || y == NULL || strcmp(x, y) != 0)
                fail_msg("run field %s: '%s' != '%s'", f->name, x ? x : "(null)", y ? y : "(null)");
            break;
        }
        }
    }
}

#endif
