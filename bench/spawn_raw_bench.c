/* Baselines for the supervisor benchmarks (bench/supervisor_bench.py runs them in the same run as
 * the daemon): what the machine does with no supervisor in the way.
 *
 *   spawn_raw_bench timer N             a libuv 1 ms one-shot timer, re-armed N times: lateness
 *                                       of each callback past its due time (uv_hrtime)
 *   spawn_raw_bench tick N STAMP FILE [OFFSET_MS]
 *                                       N times: sleep on CLOCK_REALTIME until OFFSET_MS past the
 *                                       next whole second (TIMER_ABSTIME), posix_spawn STAMP FILE
 *                                       with CRONVISOR_SCHEDULED_FOR set to that second
 *   spawn_raw_bench burst N AT STAMP FILE
 *                                       sleep until Unix second AT, then posix_spawn N STAMP FILE
 *                                       back to back, then reap them all
 *   spawn_raw_bench throughput N K PROG posix_spawn + waitpid N runs of PROG, K in flight
 *
 * Results are printed as one JSON object on stdout. */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <uv.h>

extern char **environ;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- libuv timer lateness ---------------------------------------------------------------- */

typedef struct {
    uint64_t *late_ns;
    size_t n, i;
    uint64_t due_ns;
} timer_state_t;

static void on_timer(uv_timer_t *t)
{
    timer_state_t *s = t->data;
    uint64_t now = uv_hrtime();
    s->late_ns[s->i++] = now > s->due_ns ? now - s->due_ns : 0;
    if (s->i == s->n) {
        uv_close((uv_handle_t *)t, NULL);
        return;
    }
    s->due_ns = uv_hrtime() + 1000000;
    uv_timer_start(t, on_timer, 1, 0);
}

static int bench_timer(size_t n)
{
    uv_loop_t loop;
    uv_timer_t t;
    timer_state_t s = {.late_ns = calloc(n, sizeof(uint64_t)), .n = n};
    uv_loop_init(&loop);
    uv_timer_init(&loop, &t);
    t.data = &s;
    s.due_ns = uv_hrtime() + 1000000;
    uv_timer_start(&t, on_timer, 1, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    qsort(s.late_ns, n, sizeof(uint64_t), cmp_u64);
    printf("{\"samples\": %zu, \"p50_us\": %.1f, \"p99_us\": %.1f, \"max_us\": %.1f}\n", n,
           s.late_ns[n / 2] / 1e3, s.late_ns[(n * 99) / 100] / 1e3, s.late_ns[n - 1] / 1e3);
    free(s.late_ns);
    return 0;
}

/* CPU time this process used so far (children excluded), ms. */
static double self_cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/* ---- spawning ---------------------------------------------------------------------------- */

static char **env_with_scheduled(time_t sec)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 2, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "CRONVISOR_SCHEDULED_FOR=", 24) != 0)
            env[k++] = environ[i];
    static char entry[64];
    struct tm tm;
    gmtime_r(&sec, &tm);
    strftime(entry, sizeof(entry), "CRONVISOR_SCHEDULED_FOR=%Y-%m-%dT%H:%M:%SZ", &tm);
    env[k] = entry;
    return env;
}

static int spawn(const char *prog, const char *arg, char **env, pid_t *pid)
{
    char *argv[] = {(char *)prog, (char *)arg, NULL};
    int rc = posix_spawn(pid, prog, NULL, NULL, argv, env);
    if (rc != 0)
        fprintf(stderr, "posix_spawn %s: %s\n", prog, strerror(rc));
    return rc;
}

static void sleep_until(time_t sec, long nsec)
{
    struct timespec at = {.tv_sec = sec, .tv_nsec = nsec};
    while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &at, NULL) == EINTR)
        ;
}

static int bench_tick(int n, const char *stamp, const char *file, long offset_ms)
{
    for (int i = 0; i < n; i++) {
        time_t next = time(NULL) + 1;
        char **env = env_with_scheduled(next);
        sleep_until(next, offset_ms * 1000000L);
        pid_t pid;
        if (spawn(stamp, file, env, &pid) != 0)
            return 1;
        free(env);
        waitpid(pid, NULL, 0);
    }
    printf("{\"ticks\": %d}\n", n);
    return 0;
}

static int bench_burst(int n, time_t at, const char *stamp, const char *file)
{
    char **env = env_with_scheduled(at);
    sleep_until(at, 0);
    double cpu0 = self_cpu_ms();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++) {
        pid_t pid;
        if (spawn(stamp, file, env, &pid) != 0)
            return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    while (wait(NULL) > 0)
        ;
    free(env);
    printf("{\"spawned\": %d, \"spawn_loop_ms\": %.2f, \"cpu_ms\": %.1f}\n", n,
           (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6, self_cpu_ms() - cpu0);
    return 0;
}

static int bench_throughput(int n, int k, const char *prog)
{
    struct timespec t0, t1;
    int started = 0, running = 0, done = 0;
    double cpu0 = self_cpu_ms();
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (done < n) {
        while (running < k && started < n) {
            pid_t pid;
            if (spawn(prog, NULL, environ, &pid) != 0)
                return 1;
            started++;
            running++;
        }
        int status;
        if (waitpid(-1, &status, 0) > 0) {
            running--;
            done++;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("{\"runs\": %d, \"in_flight\": %d, \"seconds\": %.3f, \"runs_per_s\": %.1f, "
           "\"cpu_ms\": %.1f}\n",
           n, k, s, n / s, self_cpu_ms() - cpu0);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "timer") == 0)
        return bench_timer((size_t)atol(argv[2]));
    if (argc >= 5 && strcmp(argv[1], "tick") == 0)
        return bench_tick(atoi(argv[2]), argv[3], argv[4], argc > 5 ? atol(argv[5]) : 0);
    if (argc >= 6 && strcmp(argv[1], "burst") == 0)
        return bench_burst(atoi(argv[2]), (time_t)atoll(argv[3]), argv[4], argv[5]);
    if (argc >= 5 && strcmp(argv[1], "throughput") == 0)
        return bench_throughput(atoi(argv[2]), atoi(argv[3]), argv[4]);
    fprintf(
        stderr,
        "usage: spawn_raw_bench timer N | tick N STAMP FILE [OFFSET_MS] | burst N AT STAMP FILE |"
        " throughput N K PROG\n");
    return 2;
}
