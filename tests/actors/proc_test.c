/* actors/proc.c and core/reaper.c against real child processes. Every test runs its own loop
 * until the completion callback, then releases the proc, stops the reaper and checks that the
 * loop closes cleanly. The test process is a child subreaper (set in main) so that orphaned
 * grandchildren come back to it and their fate can be checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "actors/proc.h"
#include "core/reaper.h"
#include "core/util.h"

static const char *const test_env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", NULL};

typedef struct ctx {
    uv_loop_t loop;
    proc_t *p;
    const proc_result_t *r;
    int completions;
    int lines[PROC_STREAM__COUNT];
    int values_updates;
    pid_t first_number; /* first stdout line parsed as a number (a pid the job prints) */
    bool cancel_on_first_line;
    bool release_on_first_line;
} ctx_t;

static void on_complete(proc_t *p, const proc_result_t *r, void *data)
{
    ctx_t *c = data;
    c->completions++;
    c->r = r;
}

static void on_line(proc_t *p, const proc_line_t *line, void *data)
{
    ctx_t *c = data;
    c->lines[line->stream]++;
    if (line->stream != PROC_STREAM_STDOUT || c->lines[PROC_STREAM_STDOUT] != 1)
        return;
    c->first_number = (pid_t)atoi(line->text);
    if (c->cancel_on_first_line)
        assert_int_equal(proc_cancel(p, 2000), 0);
    if (c->release_on_first_line)
        proc_release(p);
}

static void on_values(proc_t *p, const result_values_t *v, void *data)
{
    ((ctx_t *)data)->values_updates++;
}

/* Starts opts on a fresh loop and runs it until nothing is left (the completion came). */
static void run(ctx_t *c, proc_opts_t *o)
{
    proc_callbacks_t cbs = {on_complete, on_line, on_values, c, NULL};
    if (o->env == NULL)
        o->env = test_env;
    assert_int_equal(uv_loop_init(&c->loop), 0);
    assert_int_equal(proc_start(&c->loop, o, &cbs, &c->p), 0);
    assert_int_equal(uv_run(&c->loop, UV_RUN_DEFAULT), 0);
}

static void finish(ctx_t *c)
{
    if (!c->release_on_first_line)
        proc_release(c->p);
    reaper_stop();
    uv_run(&c->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&c->loop), 0);
}

static const proc_result_t *run_command(ctx_t *c, const char *command)
{
    proc_opts_t o = {.command = command};
    run(c, &o);
    assert_int_equal(c->completions, 1);
    return c->r;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (strstr(hay, needle) == NULL)
        fail_msg("expected to find \"%s\" in:\n%s", needle, hay);
}

/* Zombie children of this process, from /proc. */
static int count_zombie_children(void)
{
    int n = 0;
    DIR *d = opendir("/proc");
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char path[300], buf[512];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = '\0';
        char *rp = strrchr(buf, ')'); /* the command name may hold spaces */
        char state;
        int ppid;
        if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == getpid() && state == 'Z')
            n++;
    }
    closedir(d);
    return n;
}

static long rss_kb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%ld %ld", &pages, &resident), 2);
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* ---- exit codes and signals ------------------------------------------------------------------ */

static void reports_the_exit_code_of_the_command(void **state)
{
    ctx_t c = {0};
    const proc_result_t *r = run_command(&c, "exit 3");
    assert_int_equal(r->exit_code, 3);
    assert_int_equal(r->signal, 0);
    assert_false(r->spawn_failed || r->timed_out || r->cancelled || r->drain_forced);
    assert_true(r->pid > 0);
    assert_true(r->started_at_ms <= r->exited_at_ms && r->exited_at_ms <= r->finished_at_ms);
    finish(&c);
}

/* A run prepared ahead of its instant: proc_start blocks until the instant, so the child's own
 * clock reads no earlier than it. */
static void does_not_start_the_child_before_not_before(void **state)
{
    ctx_t c = {0};
    const char *argv[] = {"date", "+%s%N", NULL};
    int64_t at = cv_now_ns() + 15000000;
    proc_opts_t o = {.argv = argv, .not_before_ns = at};
    proc_callbacks_t cbs = {on_complete, on_line, on_values, &c, NULL};
    o.env = test_env;
    assert_int_equal(uv_loop_init(&c.loop), 0);
    assert_int_equal(proc_start(&c.loop, &o, &cbs, &c.p), 0);
    assert_true(cv_now_ns() >= at);
    assert_int_equal(uv_run(&c.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(c.r->exit_code, 0);
    const char *out = strstr(c.r->output, "stdout | ");
    assert_non_null(out);
    long long child_ns = atoll(out + strlen("stdout | "));
    assert_true(child_ns >= at);
    assert_true(c.r->started_at_ms >= at / 1000000);
    finish(&c);
}

/* An instant far ahead (a wall clock set back under a prepared run) blocks the loop no longer
 * than PROC_NOT_BEFORE_MAX_NS. */
static void waits_at_most_the_cap_for_a_far_instant(void **state)
{
    ctx_t c = {0};
    int64_t t0 = cv_mono_ns();
    proc_opts_t o = {.command = "exit 0", .not_before_ns = cv_now_ns() + 60 * 1000000000LL};
    run(&c, &o);
    assert_int_equal(c.r->exit_code, 0);
    assert_true(cv_mono_ns() - t0 < 30 * 1000000000LL);
    assert_true(cv_mono_ns() - t0 >= PROC_NOT_BEFORE_MAX_NS);
    finish(&c);
}

static void reports_signal_9_when_the_job_kills_itself(void **state)
{
    ctx_t c = {0};
    const proc_result_t *r = run_command(&c, "kill -9 $$");
    assert_int_equal(r->signal, SIGKILL);
    assert_int_equal(r->exit_code, -1);
    finish(&c);
}

static void exits_127_when_the_argv_command_is_not_found(void **state)
{
    ctx_t c = {0};
    const char *argv[] = {"no-such-command-cv", "x", NULL};
    proc_opts_t o = {.argv = argv};
    run(&c, &o);
    assert_int_equal(c.completions, 1);
    assert_int_equal(c.r->exit_code, 127);
    assert_true(c.r->spawn_failed);
    assert_int_equal(c.r->pid, 0);
    assert_string_equal(c.r->error, "command not found: no-such-command-cv");
    assert_contains(c.r->output, "system | command not found: no-such-command-cv");
    finish(&c);

    ctx_t c2 = {0};
    const char *argv2[] = {"/no/such/dir/cmd", NULL};
    proc_opts_t o2 = {.argv = argv2};
    run(&c2, &o2);
    assert_int_equal(c2.r->exit_code, 127);
    assert_string_equal(c2.r->error, "command not found: /no/such/dir/cmd");
    finish(&c2);
}

static void exits_126_when_the_argv_file_is_not_executable(void **state)
{
    char path[] = "/tmp/cv-proc-noexec-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "#!/bin/sh\nexit 0\n", 17), 17);
    close(fd);
    chmod(path, 0644);
    ctx_t c = {0};
    const char *argv[] = {path, NULL};
    proc_opts_t o = {.argv = argv};
    run(&c, &o);
    assert_int_equal(c.r->exit_code, 126);
    assert_true(c.r->spawn_failed);
    assert_contains(c.r->error, "cannot execute");
    finish(&c);

    /* The same file found through PATH (argv[0] without a slash). */
    char *slash = strrchr(path, '/'), *env_path = NULL;
    *slash = '\0';
    assert_true(asprintf(&env_path, "PATH=/no/such/dir:%s", path) > 0);
    const char *env[] = {env_path, NULL};
    const char *argv2[] = {slash + 1, NULL};
    ctx_t c2 = {0};
    proc_opts_t o2 = {.argv = argv2, .env = env};
    run(&c2, &o2);
    assert_int_equal(c2.r->exit_code, 126);
    assert_true(c2.r->spawn_failed);
    finish(&c2);
    free(env_path);
    *slash = '/';
    unlink(path);
}

static void exits_127_through_the_shell_for_a_missing_command(void **state)
{
    ctx_t c = {0};
    const proc_result_t *r = run_command(&c, "no-such-command-cv");
    assert_int_equal(r->exit_code, 127);
    assert_false(r->spawn_failed);
    assert_contains(r->output, "stderr | ");
    finish(&c);
}

/* Found executable beforehand, refused by the kernel: the child reports why it could not exec. */
static void exits_126_when_the_kernel_refuses_the_file(void **state)
{
    char path[] = "/tmp/cv-proc-noformat-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "\x01\x02\x03 not a program\n", 18), 18);
    close(fd);
    chmod(path, 0755);
    ctx_t c = {0};
    const char *argv[] = {path, NULL};
    proc_opts_t o = {.argv = argv};
    run(&c, &o);
    assert_int_equal(c.completions, 1);
    assert_int_equal(c.r->exit_code, 126);
    assert_true(c.r->spawn_failed);
    assert_contains(c.r->error, "cannot execute");
    assert_contains(c.r->error, strerror(ENOEXEC));
    assert_contains(c.r->output, "system | cannot execute");
    finish(&c);
    unlink(path);
}

static void fails_to_start_in_a_missing_working_directory(void **state)
{
    ctx_t c = {0};
    proc_opts_t o = {.command = "true", .cwd = "/no/such/dir"};
    run(&c, &o);
    assert_true(c.r->spawn_failed);
    assert_int_equal(c.r->exit_code, 126);
    assert_contains(c.r->error, "working directory /no/such/dir");
    finish(&c);
}

/* ---- output ---------------------------------------------------------------------------------- */

static void captures_stdout_and_stderr_with_tags_in_order(void **state)
{
    ctx_t c = {0};
    const proc_result_t *r =
        run_command(&c, "for i in 1 2 3; do echo out$i; echo err$i >&2; done; printf tail");
    assert_int_equal(r->exit_code, 0);
    assert_int_equal(c.lines[PROC_STREAM_STDOUT], 4);
    assert_int_equal(c.lines[PROC_STREAM_STDERR], 3);
    const char *o1 = strstr(r->output, "Z stdout | out1\n"),
               *o2 = strstr(r->output, "stdout | out2\n"),
               *o3 = strstr(r->output, "stdout | out3\n"),
               *e1 = strstr(r->output, "stderr | err1\n"),
               *e3 = strstr(r->output, "stderr | err3\n");
    assert_true(o1 && o2 && o3 && e1 && e3);
    assert_true(o1 < o2 && o2 < o3 && e1 < e3);
    assert_contains(r->output, "stdout | tail\n");
    assert_int_equal(r->output_bytes, 3 * 5 + 3 * 5 + 4);
    assert_int_equal(r->output_dropped, 0);
    /* "2026-03-29T01:30:00.123Z stdout | out1" */
    assert_true(strlen(r->output) > 24 && r->output[4] == '-' && r->output[10] == 'T' &&
                r->output[23] == 'Z' && r->output[24] == ' ');
    finish(&c);
}

static void keeps_memory_bounded_when_a_job_prints_a_gigabyte(void **state)
{
    ctx_t c = {0};
    long before = rss_kb();
    proc_opts_t o = {.command = "head -c 1G /dev/zero | tr '\\0' x; echo; echo last line",
                     .max_output = 64 * 1024};
    run(&c, &o);
    const proc_result_t *r = c.r;
    long growth = rss_kb() - before;
    assert_int_equal(r->exit_code, 0);
    assert_true(r->output_bytes >= (1ULL << 30));
    assert_true(r->output_len <= 64 * 1024 + 64);
    assert_contains(r->output, " bytes dropped ...]\n");
    assert_contains(r->output, "stdout | last line\n");
    assert_true(r->output_dropped > (1ULL << 30) - 64 * 1024);
    assert_true(c.lines[PROC_STREAM_STDOUT] >= (1 << 30) / PROC_OUTPUT_LINE_MAX);
    if (growth > 8 * 1024)
        fail_msg("RSS grew by %ld kB while capturing 1 GB", growth);
    finish(&c);
}

/* ---- reading in bounded chunks ------------------------------------------------------------- */

typedef struct pass_ctx {
    ctx_t c;
    uv_check_t check;
    uint64_t passes;     /* loop passes seen by the check handle */
    uint64_t pass_lines; /* stdout lines in this pass */
    uint64_t max_pass_lines;
    uint64_t batches, max_batch, batch;
} pass_ctx_t;

static void pass_on_line(proc_t *p, const proc_line_t *line, void *data)
{
    pass_ctx_t *pc = data;
    on_line(p, line, &pc->c);
    pc->pass_lines++;
    pc->batch++;
}

static void pass_on_lines_end(proc_t *p, void *data)
{
    pass_ctx_t *pc = data;
    pc->batches++;
    if (pc->batch > pc->max_batch)
        pc->max_batch = pc->batch;
    pc->batch = 0;
}

static void pass_on_complete(proc_t *p, const proc_result_t *r, void *data)
{
    on_complete(p, r, &((pass_ctx_t *)data)->c);
}

static void on_pass_end(uv_check_t *h)
{
    pass_ctx_t *pc = h->data;
    pc->passes++;
    if (pc->pass_lines > pc->max_pass_lines)
        pc->max_pass_lines = pc->pass_lines;
    pc->pass_lines = 0;
}

static void reads_at_most_the_budget_per_loop_pass_and_batches_its_lines(void **state)
{
    pass_ctx_t pc = {0};
    ctx_t *c = &pc.c;
    proc_stats_t before, after;
    proc_stats_get(&before);
    /* 4 MiB of "y\n" as fast as the child can write it (8 KiB writes), read 4 KiB per pass at
     * most. */
    proc_opts_t o = {.command = "yes | head -c 4M; echo last",
                     .env = test_env,
                     .read_budget = 4 * 1024,
                     .max_output = 64 * 1024};
    proc_callbacks_t cbs = {.on_complete = pass_on_complete,
                            .on_line = pass_on_line,
                            .on_lines_end = pass_on_lines_end,
                            .data = &pc};
    assert_int_equal(uv_loop_init(&c->loop), 0);
    assert_int_equal(uv_check_init(&c->loop, &pc.check), 0);
    pc.check.data = &pc;
    assert_int_equal(uv_check_start(&pc.check, on_pass_end), 0);
    uv_unref((uv_handle_t *)&pc.check);
    assert_int_equal(proc_start(&c->loop, &o, &cbs, &c->p), 0);
    assert_int_equal(uv_run(&c->loop, UV_RUN_DEFAULT), 0);
    proc_stats_get(&after);

    assert_int_equal(c->completions, 1);
    assert_int_equal(c->r->exit_code, 0);
    assert_int_equal(c->r->output_bytes, 4 * 1024 * 1024 + 5);
    assert_contains(c->r->output, "stdout | last\n");
    assert_int_equal(c->lines[PROC_STREAM_STDOUT], 2 * 1024 * 1024 + 1);
    /* No pass handled more than the budget: 4 KiB of "y\n" is 2048 lines (+ a partial one). */
    assert_true(pc.max_pass_lines <= 2048 + 1);
    assert_true(pc.passes >= 4 * 1024 / 4);
    assert_true(after.throttled > before.throttled);
    assert_true(after.output_bytes - before.output_bytes == 4 * 1024 * 1024 + 5);
    /* One batch per read, never more lines than one read holds. */
    assert_true(pc.batches >= 4 * 1024 / 4);
    assert_true(pc.max_batch <= 2048 + 1);
    uv_close((uv_handle_t *)&pc.check, NULL);
    finish(c);
}

/* ---- waiting for orphans ----------------------------------------------------------------------
 */

/* Waits (on the loop, with a 10 s guard) until the orphan pid was reaped, or, with pid 0, until
 * reaper_orphans_reaped() reaches target. */
typedef struct orphan_wait {
    uint64_t target;
    pid_t pid;
    bool done, armed;
    uv_timer_t guard;
} orphan_wait_t;

static void on_orphan(void *data, pid_t pid, int status)
{
    orphan_wait_t *w = data;
    if ((w->pid && pid == w->pid) || (!w->pid && reaper_orphans_reaped() >= w->target))
        w->done = true;
    if (w->done && w->armed && !uv_is_closing((uv_handle_t *)&w->guard))
        uv_close((uv_handle_t *)&w->guard, NULL);
}

static void on_guard(uv_timer_t *t)
{
    fail_msg("orphan not reaped within 10 s");
}

static void await_orphans(uv_loop_t *loop, orphan_wait_t *w)
{
    w->done = !w->pid && reaper_orphans_reaped() >= w->target;
    reaper_set_orphan_cb(on_orphan, w);
    reaper_poll();
    if (!w->done) {
        uv_timer_init(loop, &w->guard);
        uv_timer_start(&w->guard, on_guard, 10000, 0);
        w->armed = true;
        uv_run(loop, UV_RUN_DEFAULT);
    }
    reaper_set_orphan_cb(NULL, NULL);
    assert_true(w->done);
}

/* ---- timeouts, cancel, drain ----------------------------------------------------------------- */

/* Members of a killed group close their pipes as soon as they start exiting, which can be a
 * moment before they are zombies: wait until we (their subreaper, their parent being dead) have
 * reaped every one of them. */
static void await_group_gone(uv_loop_t *loop, pid_t pgid)
{
    while (kill(-pgid, 0) == 0) {
        orphan_wait_t w = {.target = reaper_orphans_reaped() + 1};
        await_orphans(loop, &w);
    }
    assert_int_equal(errno, ESRCH);
}

static void kills_the_whole_group_at_the_timeout(void **state)
{
    ctx_t c = {0};
    proc_opts_t o = {
        .command = "sleep 1000 & echo $!; sleep 1000", .timeout_ms = 200, .kill_grace_ms = 5000};
    run(&c, &o);
    const proc_result_t *r = c.r;
    assert_true(r->timed_out);
    assert_false(r->cancelled);
    assert_int_equal(r->signal, SIGTERM);
    assert_true(r->duration_ms >= 200 && r->duration_ms < 4000);
    assert_contains(r->error, "timed out after");
    assert_contains(r->output, "system | timed out after");
    assert_true(c.first_number > 0);
    await_group_gone(&c.loop, r->pid);
    assert_int_equal(kill(c.first_number, 0), -1); /* the grandchild is gone with its group */
    assert_int_equal(errno, ESRCH);
    finish(&c);
}

static void sigkills_a_job_that_ignores_sigterm_after_the_grace(void **state)
{
    ctx_t c = {0};
    proc_opts_t o = {.command = "trap '' TERM; echo ready; sleep 1000; echo survived",
                     .timeout_ms = 150,
                     .kill_grace_ms = 300};
    run(&c, &o);
    const proc_result_t *r = c.r;
    assert_true(r->timed_out);
    assert_int_equal(r->signal, SIGKILL);
    assert_true(r->duration_ms >= 450);
    assert_contains(r->output, "SIGKILL to process group");
    assert_null(strstr(r->output, "survived"));
    finish(&c);
}

static void cancel_terminates_the_group_and_marks_the_run(void **state)
{
    ctx_t c = {.cancel_on_first_line = true};
    proc_opts_t o = {.command = "echo $$; sleep 1000"};
    run(&c, &o);
    assert_true(c.r->cancelled);
    assert_false(c.r->timed_out);
    assert_int_equal(c.r->signal, SIGTERM);
    assert_int_equal(proc_cancel(c.p, 0), -ESRCH);
    assert_int_equal(proc_signal_group(c.p, SIGTERM), -ESRCH);
    finish(&c);
}

/* Cancelled in the same callback as the spawn: the child may not have made its process group
 * yet (it does so itself, beside the daemon), and must get the SIGTERM all the same, not run on
 * until the SIGKILL of the grace. */
static void cancel_right_after_the_spawn_reaches_the_child(void **state)
{
    for (int i = 0; i < 20; i++) {
        ctx_t c = {0};
        proc_callbacks_t cbs = {on_complete, on_line, on_values, &c, NULL};
        proc_opts_t o = {
            .argv = (const char *[]){"sleep", "1000", NULL}, .env = test_env, .new_session = i % 2};
        assert_int_equal(uv_loop_init(&c.loop), 0);
        assert_int_equal(proc_start(&c.loop, &o, &cbs, &c.p), 0);
        assert_int_equal(proc_cancel(c.p, 10000), 0);
        assert_int_equal(uv_run(&c.loop, UV_RUN_DEFAULT), 0);
        assert_int_equal(c.completions, 1);
        assert_true(c.r->cancelled);
        assert_int_equal(c.r->signal, SIGTERM);
        assert_true(c.r->duration_ms < 5000);
        finish(&c);
    }
}

static void release_before_completion_kills_and_frees_without_a_callback(void **state)
{
    ctx_t c = {.release_on_first_line = true};
    proc_opts_t o = {.command = "echo $$; sleep 1000"};
    run(&c, &o);
    assert_int_equal(c.completions, 0);
    finish(&c);
}

static void completes_after_the_drain_grace_when_a_grandchild_holds_the_pipes(void **state)
{
    ctx_t c = {0};
    proc_opts_t o = {.command = "sleep 1000 & echo $!; exit 4", .drain_grace_ms = 300};
    run(&c, &o);
    const proc_result_t *r = c.r;
    assert_int_equal(c.completions, 1);
    assert_int_equal(r->exit_code, 4);
    assert_true(r->drain_forced);
    assert_true(r->finished_at_ms - r->exited_at_ms >= 250);
    assert_contains(r->output, "system | output still open");
    pid_t gc = c.first_number;
    assert_true(gc > 0);
    assert_int_equal(kill(gc, 0), 0); /* it was left running: not our decision */
    kill(gc, SIGKILL);
    assert_int_equal(waitpid(gc, NULL, 0), gc); /* re-parented to us, the subreaper */
    finish(&c);
}

/* ---- environment, descriptors, result protocol ----------------------------------------------- */

/* "pid pgrp sid" of the job's shell, from /proc. */
static const char *const ids_command =
    "read -r pid comm state ppid pgrp sid rest < /proc/$$/stat; echo \"$pid $pgrp $sid\"";

static void puts_the_child_in_its_own_process_group_or_session(void **state)
{
    ctx_t c = {0};
    const proc_result_t *r = run_command(&c, ids_command);
    char want[64];
    snprintf(want, sizeof(want), "stdout | %d %d %d\n", (int)r->pid, (int)r->pid, (int)getsid(0));
    assert_contains(r->output, want);
    finish(&c);

    ctx_t s = {0};
    proc_opts_t o = {.command = ids_command, .new_session = true};
    run(&s, &o);
    snprintf(want, sizeof(want), "stdout | %d %d %d\n", (int)s.r->pid, (int)s.r->pid,
             (int)s.r->pid);
    assert_contains(s.r->output, want);
    finish(&s);
}

static void applies_environment_and_working_directory(void **state)
{
    char dir[] = "/tmp/cv-proc-cwd-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *env[] = {"PATH=/usr/bin:/bin", "FOO=bar baz", "CRONVISOR_RESULT_FD=99", NULL};
    ctx_t c = {0};
    proc_opts_t o = {.command = "echo \"foo=$FOO\"; echo \"cwd=$(pwd)\"; "
                                "echo \"fd=$CRONVISOR_RESULT_FD\"; echo \"home=${HOME-unset}\"",
                     .env = env,
                     .cwd = dir};
    run(&c, &o);
    char *want = NULL;
    assert_true(asprintf(&want, "stdout | cwd=%s\n", dir) > 0);
    assert_contains(c.r->output, "stdout | foo=bar baz\n");
    assert_contains(c.r->output, want);
    assert_contains(c.r->output, "stdout | fd=3\n");
    assert_contains(c.r->output, "stdout | home=unset\n");
    free(want);
    finish(&c);
    rmdir(dir);
}

/* Many children started from one callback, more than there are descriptor slot sets: each one's
 * output, errors and result lines come back to its own run. */
static void children_started_together_keep_their_own_pipes(void **state)
{
    enum { N = 60 };
    static ctx_t c[N];
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char *cmds[N];
    for (int i = 0; i < N; i++) {
        memset(&c[i], 0, sizeof(c[i]));
        cmds[i] = cv_sprintf("echo out%d; echo err%d >&2; echo '{\"items_processed\": %d}' >&3", i,
                             i, i + 1);
        proc_opts_t o = {.command = cmds[i], .env = test_env};
        proc_callbacks_t cbs = {on_complete, on_line, on_values, &c[i], NULL};
        assert_int_equal(proc_start(&loop, &o, &cbs, &c[i].p), 0);
    }
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    for (int i = 0; i < N; i++) {
        char want[64];
        assert_int_equal(c[i].completions, 1);
        assert_int_equal(c[i].r->exit_code, 0);
        snprintf(want, sizeof(want), "stdout | out%d\n", i);
        assert_contains(c[i].r->output, want);
        snprintf(want, sizeof(want), "stderr | err%d\n", i);
        assert_contains(c[i].r->output, want);
        assert_int_equal(c[i].lines[PROC_STREAM_STDOUT], 1);
        assert_int_equal(c[i].lines[PROC_STREAM_STDERR], 1);
        assert_int_equal(c[i].r->values.items_processed, i + 1);
        proc_release(c[i].p);
        free(cmds[i]);
    }
    reaper_stop();
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void leaks_no_daemon_descriptor_into_the_child(void **state)
{
    int fd = open("/dev/null", O_RDONLY);
    int leak = dup2(fd, 20); /* deliberately without O_CLOEXEC */
    assert_int_equal(leak, 20);
    close(fd);
    ctx_t c = {0};
    /* Simple commands only: a pipe or $(...) would open descriptors in the listed shell. */
    const proc_result_t *r = run_command(&c, "ls /proc/$$/fd; readlink /proc/$$/fd/0");
    assert_contains(r->output, "stdout | 0\n");
    assert_int_equal(c.lines[PROC_STREAM_STDOUT], 5); /* 0 1 2 3 and the readlink */
    assert_contains(r->output, "stdout | 3\n");
    assert_contains(r->output, "stdout | /dev/null\n");
    close(leak);
    finish(&c);
}

static void on_usr1(int sig)
{
    (void)sig;
}

/* The child shares the daemon's memory until it execs: it must start with no signal blocked or
 * ignored whatever the daemon ignores (SIGPIPE), blocks or handles. */
static void starts_the_child_with_default_signals_and_an_empty_mask(void **state)
{
    (void)state;
    struct sigaction sa = {.sa_handler = on_usr1};
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    ctx_t c = {0};
    const proc_result_t *r = run_command(&c, "exec grep -E '^Sig(Blk|Ign)' /proc/self/status");
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    signal(SIGUSR1, SIG_DFL);
    assert_int_equal(r->exit_code, 0);
    assert_contains(r->output, "stdout | SigBlk:\t0000000000000000\n");
    assert_contains(r->output, "stdout | SigIgn:\t0000000000000000\n");
    finish(&c);
}

static void applies_result_lines_and_reports_a_bad_one_without_failing(void **state)
{
    ctx_t c = {0};
    const proc_result_t *r = run_command(
        &c, "echo '{\"items_processed\": 10, \"progress\": 0.5}' >&$CRONVISOR_RESULT_FD; "
            "echo '{\"items_failed_add\": 1}' >&3; echo '{\"items_failed_add\": 2}' >&3; "
            "echo 'not json' >&3; "
            "echo '{\"summary\": {\"rows\": 5, \"ok\": true}, \"message\": \"all done\"}' >&3; "
            "printf '{\"progress\": 1}' >&3");
    assert_int_equal(r->exit_code, 0);
    assert_int_equal(r->values.items_processed, 10);
    assert_int_equal(r->values.items_failed, 3);
    assert_true(r->values.progress == 1.0);
    assert_string_equal(r->values.summary_json, "{\"rows\":5,\"ok\":true}");
    assert_int_equal(r->values.errors, 1);
    assert_int_equal(r->values.lines, 5);
    assert_int_equal(c.values_updates, 5);
    assert_contains(r->output, "result-error | result line 4: not JSON");
    assert_contains(r->output, "result | all done\n");
    finish(&c);
}

/* ---- reaping and resource usage -------------------------------------------------------------- */

static void reaps_orphans_left_by_a_double_forking_job(void **state)
{
    ctx_t c = {0};
    uint64_t before = reaper_orphans_reaped();
    const proc_result_t *r = run_command(
        &c, "(sleep 0.2 >/dev/null 2>&1 3>&- &); (sleep 0.3 >/dev/null 2>&1 3>&- &); exit 0");
    assert_int_equal(r->exit_code, 0);
    assert_false(r->drain_forced);
    /* The job is over; its two grandchildren are still sleeping. Wait for their reaping. */
    orphan_wait_t w = {.target = before + 2};
    await_orphans(&c.loop, &w);
    assert_true(reaper_orphans_reaped() >= before + 2);
    assert_int_equal(count_zombie_children(), 0);
    finish(&c);
}

static void measures_cpu_time_and_peak_memory(void **state)
{
    ctx_t c = {0};
    const char *cpu[] = {"/usr/bin/perl", "-e", "1 while (times)[0] < 0.25", NULL};
    proc_opts_t o = {.argv = cpu};
    run(&c, &o);
    assert_int_equal(c.r->exit_code, 0);
    assert_true(c.r->cpu_user_ms >= 100);
    finish(&c);

    ctx_t m = {0};
    const char *mem[] = {"/usr/bin/perl", "-e", "my $x = 'x' x (50 * 1024 * 1024); print length $x",
                         NULL};
    proc_opts_t o2 = {.argv = mem};
    run(&m, &o2);
    assert_int_equal(m.r->exit_code, 0);
    assert_true(m.r->max_rss_kb >= 40000);
    finish(&m);
}

static void rejects_invalid_options(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    proc_t *p = NULL;
    proc_callbacks_t cbs = {on_complete, NULL, NULL, NULL, NULL};
    const char *empty[] = {NULL};
    proc_opts_t none = {0}, both = {.command = "true", .argv = empty}, bad = {.argv = empty};
    assert_int_equal(proc_start(&loop, &none, &cbs, &p), -EINVAL);
    assert_int_equal(proc_start(&loop, &both, &cbs, &p), -EINVAL);
    assert_int_equal(proc_start(&loop, &bad, &cbs, &p), -EINVAL);
    assert_null(p);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* like the daemon: the child must still get SIGPIPE by default */
    if (reaper_set_subreaper(true) < 0) {
        fprintf(stderr, "cannot become a child subreaper\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reports_the_exit_code_of_the_command),
        cmocka_unit_test(does_not_start_the_child_before_not_before),
        cmocka_unit_test(waits_at_most_the_cap_for_a_far_instant),
        cmocka_unit_test(reports_signal_9_when_the_job_kills_itself),
        cmocka_unit_test(exits_127_when_the_argv_command_is_not_found),
        cmocka_unit_test(exits_126_when_the_argv_file_is_not_executable),
        cmocka_unit_test(exits_127_through_the_shell_for_a_missing_command),
        cmocka_unit_test(exits_126_when_the_kernel_refuses_the_file),
        cmocka_unit_test(fails_to_start_in_a_missing_working_directory),
        cmocka_unit_test(captures_stdout_and_stderr_with_tags_in_order),
        cmocka_unit_test(keeps_memory_bounded_when_a_job_prints_a_gigabyte),
        cmocka_unit_test(reads_at_most_the_budget_per_loop_pass_and_batches_its_lines),
        cmocka_unit_test(kills_the_whole_group_at_the_timeout),
        cmocka_unit_test(sigkills_a_job_that_ignores_sigterm_after_the_grace),
        cmocka_unit_test(cancel_terminates_the_group_and_marks_the_run),
        cmocka_unit_test(cancel_right_after_the_spawn_reaches_the_child),
        cmocka_unit_test(release_before_completion_kills_and_frees_without_a_callback),
        cmocka_unit_test(completes_after_the_drain_grace_when_a_grandchild_holds_the_pipes),
        cmocka_unit_test(puts_the_child_in_its_own_process_group_or_session),
        cmocka_unit_test(starts_the_child_with_default_signals_and_an_empty_mask),
        cmocka_unit_test(applies_environment_and_working_directory),
        cmocka_unit_test(children_started_together_keep_their_own_pipes),
        cmocka_unit_test(leaks_no_daemon_descriptor_into_the_child),
        cmocka_unit_test(applies_result_lines_and_reports_a_bad_one_without_failing),
        cmocka_unit_test(reaps_orphans_left_by_a_double_forking_job),
        cmocka_unit_test(measures_cpu_time_and_peak_memory),
        cmocka_unit_test(rejects_invalid_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
