/* The API's run object (http/api_json.c) is driven by the run's field table (proto/run.h): it has
 * a key for every field, shaped as proto/openapi.yaml's Run schema says, and the schema names
 * every one of them as required. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../storage/run_fields.h"
#include "http/api_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

static void the_json_has_a_key_for_every_field(void **state)
{
    (void)state;
    run_t *r = run_new(NULL, NULL);
    r->id = 9;
    runf_fill(r, 1);
    json_t *full = api__run_json(r, true);
    json_t *brief = api__run_json(r, false);
    assert_int_equal(json_integer_value(json_object_get(full, "id")), 9);
    for (int i = 0; i < RUN_NPARAMS; i++) {
        const run_field_t *f = &run_fields[i];
        json_t *v = json_object_get(full, f->json);
        if (v == NULL)
            fail_msg("no key %s for the field %s", f->json, f->name);
        assert_false(json_is_null(v)); /* every field has a value here */
        if (f->json_kind == RUN_J_OUTPUT)
            assert_null(json_object_get(brief, f->json));
        else
            assert_true(json_equal(v, json_object_get(brief, f->json)));
    }
    assert_int_equal(json_object_size(full), RUN_NPARAMS + 1);
    assert_string_equal(json_string_value(json_object_get(full, "host")), r->host);
    assert_string_equal(json_string_value(json_object_get(full, "status")), "FAILED");
    assert_true(json_is_object(json_object_get(full, "summary"))); /* parsed, not text */
    json_decref(full);
    json_decref(brief);
    run_free(r);
}

/* Absent values are null as the schema says: no host (a run recorded before it was kept). */
static void absent_values_are_null(void **state)
{
    (void)state;
    run_t *r = run_new("j", "cron");
    json_t *o = api__run_json(r, true);
    assert_true(json_is_null(json_object_get(o, "host")));
    assert_true(json_is_null(json_object_get(o, "retry_of")));
    assert_true(json_is_null(json_object_get(o, "progress")));
    assert_true(json_is_null(json_object_get(o, "started_at")));
    assert_string_equal(json_string_value(json_object_get(o, "output_tail")), "");
    json_decref(o);
    run_free(r);
}

/* openapi.yaml's Run schema lists every key of the table in required and as a property. */
static void the_openapi_run_schema_names_every_field(void **state)
{
    (void)state;
    const char *src = getenv("CV_SOURCE_DIR");
    assert_non_null(src);
    char *path = cv_sprintf("%s/proto/openapi.yaml", src);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof(text) - 1, fp);
    text[n] = '\0';
    fclose(fp);
    free(path);
    const char *run = strstr(text, "\n    Run:\n");
    assert_non_null(run);
    const char *end = strstr(run + 1, "\n    RunFull:");
    assert_non_null(end);
    const char *req = strstr(run, "required: [");
    assert_true(req && req < end);
    const char *req_end = strchr(req, ']');
    for (int i = 0; i < RUN_NPARAMS; i++) {
        const run_field_t *f = &run_fields[i];
        if (f->json_kind == RUN_J_OUTPUT) /* RunFull's */
            continue;
        char *key = cv_sprintf("\n        %s:\n", f->json);
        const char *at = strstr(run, key);
        if (at == NULL || at > end)
            fail_msg("the Run schema has no property %s", f->json);
        free(key);
        bool listed = false;
        size_t len = strlen(f->json);
        for (const char *p = req + 11; p < req_end && !listed; p++)
            listed = strncmp(p, f->json, len) == 0 && (p[len] == ',' || p[len] == ']') &&
                     (p[-1] == '[' || p[-1] == ' ');
        if (!listed)
            fail_msg("the Run schema does not require %s", f->json);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_json_has_a_key_for_every_field),
        cmocka_unit_test(absent_values_are_null),
        cmocka_unit_test(the_openapi_run_schema_names_every_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
