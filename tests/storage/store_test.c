/* The store suite (store_suite.h) against the SQLite backend, on temporary files. */
#include "store_suite.h"

#include <ftw.h>
#include <sqlite3.h>
#include <unistd.h>

static char *sqlite_fresh_dsn(void)
{
    char dir[] = "/tmp/cv-store-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    /* Two missing levels: open must create the parent directories. */
    return cv_sprintf("%s/state/db/cronvisor.db", dir);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void sqlite_drop(const char *dsn)
{
    char *root = cv_strdup(dsn);
    *strstr(root, "/state/") = '\0';
    nftw(root, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(root);
}

static int sqlite_raw_exec(const char *dsn, const char *sql)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open(dsn, &db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

static const store_backend_t sqlite_backend = {
    .name = "sqlite",
    .fresh_dsn = sqlite_fresh_dsn,
    .drop = sqlite_drop,
    .raw_exec = sqlite_raw_exec,
};

/* A database from before migration 6 (its history written without the count triggers): the
 * migration counts what is there, and the counts stay right from then on. */
static void migration_6_counts_an_existing_history(void **state)
{
    fx_t *f = *state;
    burst(f, "h", RUN_SUCCESS, 1000, 3);
    close_store(f);
    assert_int_equal(B->raw_exec(f->dsn, "DROP TRIGGER runs_count_delete;"
                                         " DROP TABLE job_counts;"
                                         " DELETE FROM schema_version WHERE version = 6;"
                                         " INSERT INTO runs (job, status, \"trigger\") VALUES"
                                         " ('h', 'FAILED', 'manual'), ('h', 'SUCCESS', 'manual'),"
                                         " ('other', 'TIMED_OUT', 'manual')"),
                     0);
    f->store = open_store(f, STORE_SYNC_FULL);
    assert_int_equal(migrate(f, 0), 1);
    store_job_stats_t s = stats_of(f, "h");
    assert_int_equal(s.runs, 5);
    assert_int_equal(s.successes, 4);
    assert_int_equal(s.failures, 1);
    s = stats_of(f, "other");
    assert_int_equal(s.runs, 1);
    assert_int_equal(s.failures, 1);
    add(f, "other", RUN_SUCCESS, "cron", 5);
    s = stats_of(f, "other");
    assert_int_equal(s.runs, 2);
    assert_int_equal(s.successes, 1);
}

int main(void)
{
    int failed = run_suite(&sqlite_backend);
    const struct CMUnitTest sqlite_only[] = {
        cmocka_unit_test_setup_teardown(migration_6_counts_an_existing_history, setup, teardown),
    };
    failed += cmocka_run_group_tests_name("sqlite only", sqlite_only, NULL, NULL);
    /* A PostgreSQL backend runs the same suite here, given a database to use. */
    return failed;
}
