/* The outage spool file (storage/spool.c): append, replay in order, commit and truncation, a torn
 * last record after a crash, the size limit and the lock. */
#include "storage/spool.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[64];
static char path[128];

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/cv-spool-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/sub/spool.log", dir); /* the directory is created */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    rmdir(sub);
    rmdir(dir);
    return 0;
}

static off_t file_size(void)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* Reads every pending record from the head; returns how many, checks their text. */
static size_t read_all(spool_t *sp, const char *const *want, size_t nwant)
{
    uint64_t off = spool_head(sp), next;
    char *data;
    size_t len, n = 0;
    while (spool_read(sp, off, &data, &len, &next) == 0) {
        assert_true(n < nwant);
        assert_int_equal(len, strlen(want[n]));
        assert_string_equal(data, want[n]);
        free(data);
        off = next;
        n++;
    }
    assert_int_equal(off, spool_end(sp));
    return n;
}

/* Runs fn with stderr going to a file; returns what was logged (heap). */
static char *capture_stderr(int (*fn)(spool_t **), spool_t **sp, int *rc)
{
    char logp[160];
    snprintf(logp, sizeof(logp), "%s/stderr.txt", dir);
    fflush(stderr);
    int saved = dup(2);
    int fd = open(logp, O_RDWR | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    *rc = fn(sp);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char *buf = cv_calloc(1, 4096);
    assert_true(pread(fd, buf, 4095, 0) >= 0);
    close(fd);
    unlink(logp);
    return buf;
}

static int open_default(spool_t **sp)
{
    return spool_open(path, 0, sp);
}

static void test_append_replay_in_order(void **state)
{
    (void)state;
    spool_t *sp;
    assert_int_equal(spool_open(path, 0, &sp), 0);
    assert_int_equal(spool_pending(sp), 0);
    assert_int_equal(spool_end(sp), SPOOL_HEADER_SIZE);
    const char *recs[] = {"{\"op\":\"insert\",\"n\":1}", "{\"op\":\"update\",\"n\":2}", "third"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(spool_append(sp, recs[i], strlen(recs[i])), 0);
    assert_int_equal(spool_sync(sp), 0);
    assert_int_equal(spool_pending(sp), 3);
    assert_int_equal(read_all(sp, recs, 3), 3);
    spool_close(sp);

    /* a restart finds them again, in order */
    assert_int_equal(spool_open(path, 0, &sp), 0);
    assert_int_equal(spool_pending(sp), 3);
    assert_int_equal(read_all(sp, recs, 3), 3);
    spool_close(sp);
}

static void test_commit_moves_head_then_truncates(void **state)
{
    (void)state;
    spool_t *sp;
    assert_int_equal(spool_open(path, 0, &sp), 0);
    const char *recs[] = {"one", "two", "three"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(spool_append(sp, recs[i], strlen(recs[i])), 0);
    assert_int_equal(spool_sync(sp), 0);
    char *data;
    size_t len;
    uint64_t next;
    assert_int_equal(spool_read(sp, spool_head(sp), &data, &len, &next), 0);
    free(data);
    /* the first record reached the database: a crash now replays only the other two */
    assert_int_equal(spool_commit(sp, next, 1), 0);
    assert_int_equal(spool_pending(sp), 2);
    spool_close(sp);
    assert_int_equal(spool_open(path, 0, &sp), 0);
    assert_int_equal(spool_pending(sp), 2);
    assert_int_equal(read_all(sp, recs + 1, 2), 2);
    /* everything committed: the file is cut back to its header */
    assert_int_equal(spool_commit(sp, spool_end(sp), 2), 0);
    assert_int_equal(spool_pending(sp), 0);
    assert_int_equal(file_size(), SPOOL_HEADER_SIZE);
    assert_int_equal(spool_read(sp, spool_head(sp), &data, &len, &next), -ENOENT);
    /* and a bad commit offset is refused */
    assert_int_equal(spool_commit(sp, spool_end(sp) + 5, 1), -EINVAL);
    spool_close(sp);
}

static void test_torn_last_record_is_ignored_with_a_warning(void **state)
{
    (void)state;
    spool_t *sp;
    assert_int_equal(spool_open(path, 0, &sp), 0);
    const char *recs[] = {"kept-1", "kept-2"};
    for (int i = 0; i < 2; i++)
        assert_int_equal(spool_append(sp, recs[i], strlen(recs[i])), 0);
    assert_int_equal(spool_sync(sp), 0);
    uint64_t good = spool_end(sp);
    spool_close(sp);

    /* a crash in the middle of the third write: its header says 100 bytes, 10 made it */
    int fd = open(path, O_WRONLY | O_APPEND);
    unsigned char torn[18] = {100, 0,   0,   0,   1,   2,   3,   4,   'p',
                              'a', 'r', 't', 'i', 'a', 'l', '.', '.', '.'};
    assert_int_equal(write(fd, torn, sizeof(torn)), (ssize_t)sizeof(torn));
    close(fd);

    int rc;
    char *log = capture_stderr(open_default, &sp, &rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(log, "incomplete or corrupt"));
    free(log);
    assert_int_equal(spool_pending(sp), 2);
    assert_int_equal(spool_end(sp), good);
    assert_int_equal(file_size(), (off_t)good); /* cut: new appends follow the good records */
    assert_int_equal(spool_append(sp, "after", 5), 0);
    const char *all[] = {"kept-1", "kept-2", "after"};
    assert_int_equal(read_all(sp, all, 3), 3);
    spool_close(sp);

    /* a record whose checksum does not match (a bit flipped) is torn too */
    fd = open(path, O_RDWR);
    char c;
    assert_int_equal(pread(fd, &c, 1, (off_t)good + 8), 1);
    c ^= 0x20;
    assert_int_equal(pwrite(fd, &c, 1, (off_t)good + 8), 1);
    close(fd);
    log = capture_stderr(open_default, &sp, &rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(log, "incomplete or corrupt"));
    free(log);
    assert_int_equal(spool_pending(sp), 2);
    assert_int_equal(read_all(sp, recs, 2), 2);
    spool_close(sp);
}

static void test_size_limit(void **state)
{
    (void)state;
    spool_t *sp;
    /* header 16 + two records of 8 + 20 bytes = 72 */
    assert_int_equal(spool_open(path, 72, &sp), 0);
    char rec[20];
    memset(rec, 'x', sizeof(rec));
    assert_int_equal(spool_append(sp, rec, sizeof(rec)), 0);
    assert_int_equal(spool_append(sp, rec, sizeof(rec)), 0);
    assert_int_equal(spool_append(sp, rec, 1), -ENOSPC); /* nothing appended */
    assert_int_equal(spool_pending(sp), 2);
    assert_int_equal(spool_bytes(sp), 72);
    assert_int_equal(spool_append(sp, rec, 0), -EMSGSIZE);
    /* committing frees the room again */
    assert_int_equal(spool_commit(sp, spool_end(sp), 2), 0);
    assert_int_equal(spool_append(sp, rec, sizeof(rec)), 0);
    spool_close(sp);
}

static void test_lock_and_foreign_file(void **state)
{
    (void)state;
    spool_t *sp, *other;
    assert_int_equal(spool_open(path, 0, &sp), 0);
    int rc;
    (void)rc;
    fflush(stderr);
    assert_int_equal(spool_open(path, 0, &other), -EBUSY); /* a second daemon */
    spool_close(sp);
    int fd = open(path, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, "not a spool file at all", 23), 23);
    close(fd);
    assert_int_equal(spool_open(path, 0, &sp), -EINVAL);
}

int main(void)
{
    cv_log_setup(CV_LOG_WARN, false);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_replay_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_moves_head_then_truncates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_last_record_is_ignored_with_a_warning, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_size_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_and_foreign_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
