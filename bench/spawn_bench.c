/* Spawn rate of /bin/true: through proc_start (pipes, reaper, completion callback) against a
 * bare posix_spawn + waitpid, then again with 1 GB of touched heap in this process, to show that
 * neither cost grows with the daemon's memory. fork + exec (what uv_spawn does) is measured too,
 * with fewer iterations, for contrast.
 *
 * Usage: spawn_bench [spawns (default 2000)] [heap MiB (default 1024)] */
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "actors/proc.h"
#include "core/reaper.h"
#include "core/util.h"

static const char *const true_argv[] = {"/bin/true", NULL};
static const char *const bench_env[] = {"PATH=/usr/bin:/bin", NULL};

typedef struct chain {
    uv_loop_t *loop;
    int left;
    int failures;
} chain_t;

static void start_next(chain_t *c);

static void on_complete(proc_t *p, const proc_result_t *r, void *data)
{
    chain_t *c = data;
    if (r->exit_code != 0)
        c->failures++;
    proc_release(p);
    start_next(c);
}

static void start_next(chain_t *c)
{
    if (c->left-- <= 0)
        return;
    proc_opts_t o = {.argv = true_argv, .env = bench_env, .max_output = 4096};
    proc_callbacks_t cbs = {.on_complete = on_complete, .data = c};
    proc_t *p;
    if (proc_start(c->loop, &o, &cbs, &p) < 0)
        abort();
}

static double rate_proc(int n)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    chain_t c = {.loop = &loop, .left = n};
    int64_t t0 = cv_mono_ns();
    start_next(&c);
    uv_run(&loop, UV_RUN_DEFAULT);
    int64_t t1 = cv_mono_ns();
    reaper_stop();
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0 || c.failures)
        fprintf(stderr, "warning: loop not closed or %d failures\n", c.failures);
    return n / ((t1 - t0) / 1e9);
}

static double rate_posix_spawn(int n)
{
    int64_t t0 = cv_mono_ns();
    for (int i = 0; i < n; i++) {
        pid_t pid;
        if (posix_spawn(&pid, "/bin/true", NULL, NULL, (char *const *)true_argv,
                        (char *const *)bench_env) != 0)
            abort();
        while (waitpid(pid, NULL, 0) < 0)
            ;
    }
    return n / ((cv_mono_ns() - t0) / 1e9);
}

static double rate_fork(int n)
{
    int64_t t0 = cv_mono_ns();
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            execv("/bin/true", (char *const *)true_argv);
            _exit(127);
        }
        while (waitpid(pid, NULL, 0) < 0)
            ;
    }
    return n / ((cv_mono_ns() - t0) / 1e9);
}

static void measure(const char *label, int n)
{
    double raw = rate_posix_spawn(n);
    double via = rate_proc(n);
    double fk = rate_fork(n / 10 > 20 ? n / 10 : 20);
    printf("%-16s proc_start %8.0f/s   posix_spawn+waitpid %8.0f/s   ratio %.2f   "
           "(fork+exec %6.0f/s)\n",
           label, via, raw, via / raw, fk);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2000;
    size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 1024;
    signal(SIGPIPE, SIG_IGN);
    printf("%d spawns of /bin/true each (fork+exec: a tenth)\n", n);
    measure("empty heap", n);
    char *heap = cv_malloc(mib << 20);
    memset(heap, 1, mib << 20); /* touch every page */
    char label[32];
    snprintf(label, sizeof(label), "%zu MiB touched", mib);
    measure(label, n);
    free(heap);
    return 0;
}
