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
    .drop_run_counts = "DROP TRIGGER runs_count_delete; DROP TABLE job_counts;",
};

int main(void)
{
    int failed = run_suite(&sqlite_backend);
    /* A PostgreSQL backend runs the same suite here, given a database to use. */
    return failed;
}
