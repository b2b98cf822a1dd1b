#include "actors/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "core/reaper.h"
#include "core/util.h"

enum { P_OUT, P_ERR, P_RES, P_N };

#define READ_BUF       (64 * 1024)
#define DEFAULT_PATH   "/usr/local/bin:/usr/bin:/bin"
#define RESULT_FD_NAME "CRONVISOR_RESULT_FD"
#define STRINGIFY_(x)  #x
#define STRINGIFY(x)   STRINGIFY_(x)

struct proc {
    uv_loop_t *loop;
    proc_callbacks_t cbs;
    reaper_watch_t watch;
    uv_pipe_t pipes[P_N];
    bool reading[P_N]; /* pipe open and not at EOF */
    bool paused[P_N];  /* read budget used up: reading stopped until the next pass */
    size_t pass_bytes[P_N];
    size_t read_budget;
    bool lines_pending; /* on_line was called since the last on_lines_end */
    uv_timer_t timeout_timer, kill_timer, drain_timer, resume_timer;
    unsigned open_handles;
    bool exited, completed, released, in_cb;
    uint64_t kill_grace_ms, drain_grace_ms;
    int64_t start_mono_ns;
    int exec_err; /* written by the child when it cannot exec */
    char *argv0;  /* for that error's message */
    proc_output_t *out;
    result_proto_t rp;
    proc_result_t res;
};

static void complete(proc_t *p);

static proc_stats_t stats;

void proc_stats_get(proc_stats_t *out)
{
    *out = stats;
}

/* sig to the child's process group. A child just spawned may not have made its group yet (it
 * does so itself, beside the daemon, with every signal blocked until just before its exec): it
 * gets sig directly, held until it execs with default dispositions. Never after the reaping,
 * when the pid may belong to someone else. */
static int kill_group(proc_t *p, int sig)
{
    if (kill(-p->res.pid, sig) == 0)
        return 0;
    int err = errno;
    if (err == ESRCH && !p->exited && kill(p->res.pid, sig) == 0)
        return 0;
    return -err;
}

/* ---- memory: freed in the last close callback, never from inside a proc callback ---------- */

static void proc_free(proc_t *p)
{
    proc_output_free(p->out);
    result_proto_free(&p->rp);
    free(p->argv0);
    free(p->res.output);
    free(p->res.values.summary_json);
    free(p->res.error);
    free(p);
}

static void on_handle_closed(uv_handle_t *h)
{
    proc_t *p = h->data;
    if (--p->open_handles == 0 && p->released && p->completed)
        proc_free(p);
}

static void close_handle(proc_t *p, uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, on_handle_closed);
}

void proc_release(proc_t *p)
{
    if (p == NULL || p->released)
        return;
    p->released = true;
    if (!p->completed) {
        if (p->res.pid > 0)
            kill_group(p, SIGKILL);
        return; /* complete() sees released and frees after closing */
    }
    if (p->open_handles == 0 && !p->in_cb)
        proc_free(p);
}

/* ---- output and result protocol ------------------------------------------------------------ */

/* Tells the consumer that a burst of lines is over (it may pass them on as one batch). */
static void lines_end(proc_t *p)
{
    if (!p->lines_pending)
        return;
    p->lines_pending = false;
    if (p->cbs.on_lines_end && !p->released)
        p->cbs.on_lines_end(p, p->cbs.data);
}

static void system_line(proc_t *p, const char *text)
{
    proc_output_add_line(p->out, PROC_STREAM_SYSTEM, text, strlen(text), cv_now_ms());
    lines_end(p);
}

static void on_output_line(void *data, const proc_line_t *line)
{
    proc_t *p = data;
    if (p->cbs.on_line && !p->released) {
        p->lines_pending = true;
        p->cbs.on_line(p, line, p->cbs.data);
    }
}

static void on_result_message(void *data, const char *text, size_t len)
{
    proc_t *p = data;
    proc_output_add_line(p->out, PROC_STREAM_RESULT, text, len, cv_now_ms());
}

static void on_result_error(void *data, const char *msg)
{
    proc_t *p = data;
    proc_output_add_line(p->out, PROC_STREAM_RESULT_ERROR, msg, strlen(msg), cv_now_ms());
}

static void on_result_update(void *data, const result_values_t *v)
{
    proc_t *p = data;
    if (p->cbs.on_values && !p->released)
        p->cbs.on_values(p, v, p->cbs.data);
}

/* ---- pipes ----------------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    /* One buffer per thread is enough: a loop calls alloc, reads, and hands the bytes to on_read
     * (which copies what it keeps) for one stream at a time. A buffer inside every proc_t cost
     * each spawn the zeroing of 64 KiB (calloc) and its page faults: 1,000 concurrent runs held
     * 64 MiB (bench/README.md, Supervisor). */
    static _Thread_local char readbuf[READ_BUF];
    proc_t *p = h->data;
    int i = (int)((uv_pipe_t *)h - p->pipes);
    /* Never more than what is left of the pipe's budget for this pass. */
    size_t left = p->read_budget > p->pass_bytes[i] ? p->read_budget - p->pass_bytes[i] : 1;
    *buf = uv_buf_init(readbuf, left < READ_BUF ? (unsigned)left : READ_BUF);
}

/* End of one pipe: flush what it left and close it. */
static void finish_pipe(proc_t *p, int i)
{
    if (!p->reading[i])
        return;
    p->reading[i] = false;
    if (i == P_RES)
        result_proto_finish(&p->rp);
    else
        proc_output_flush(p->out, i == P_OUT ? PROC_STREAM_STDOUT : PROC_STREAM_STDERR,
                          cv_now_ms());
    lines_end(p);
    close_handle(p, (uv_handle_t *)&p->pipes[i]);
}

static bool pipes_done(const proc_t *p)
{
    return !p->reading[P_OUT] && !p->reading[P_ERR] && !p->reading[P_RES];
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* Next pass: the pipes that used up their budget are read again. */
static void on_resume(uv_timer_t *t)
{
    proc_t *p = t->data;
    for (int i = 0; i < P_N; i++) {
        p->pass_bytes[i] = 0;
        if (!p->paused[i])
            continue;
        p->paused[i] = false;
        if (p->reading[i] && !p->completed)
            uv_read_start((uv_stream_t *)&p->pipes[i], on_alloc, on_read);
    }
}

/* Counts what pipe i read (n of the asked bytes); past the budget, it stops reading until the next
 * loop pass (libuv would otherwise read up to 32 buffers in a row, and read again as soon as the
 * child refills the pipe). The child blocks in write meanwhile: the pipe is the back-pressure. */
static void charge_read(proc_t *p, int i, size_t n, size_t asked)
{
    if (n < asked) { /* the pipe is empty: libuv stops reading it for this pass */
        p->pass_bytes[i] = 0;
        return;
    }
    p->pass_bytes[i] += n;
    if (p->pass_bytes[i] < p->read_budget || p->paused[i])
        return;
    p->paused[i] = true;
    stats.throttled++;
    uv_read_stop((uv_stream_t *)&p->pipes[i]);
    /* A 0 ms timer runs in the next pass, after this pass polled everything else. */
    if (!uv_is_active((uv_handle_t *)&p->resume_timer))
        uv_timer_start(&p->resume_timer, on_resume, 0, 0);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    proc_t *p = s->data;
    int i = (int)((uv_pipe_t *)s - p->pipes);
    if (nread > 0) {
        if (i == P_RES) {
            result_proto_feed(&p->rp, buf->base, (size_t)nread);
        } else {
            stats.output_bytes += (uint64_t)nread;
            proc_output_feed(p->out, i == P_OUT ? PROC_STREAM_STDOUT : PROC_STREAM_STDERR,
                             buf->base, (size_t)nread, cv_now_ms());
        }
        lines_end(p);
        charge_read(p, i, (size_t)nread, buf->len);
        return;
    }
    if (nread == 0)
        return;
    if (nread != UV_EOF)
        cv_warn("proc", "reading from pid %d: %s", (int)p->res.pid, uv_strerror((int)nread));
    finish_pipe(p, i);
    if (p->exited && pipes_done(p))
        complete(p);
}

static int open_pipe(proc_t *p, int i, int fd)
{
    int rc = uv_pipe_init(p->loop, &p->pipes[i], 0);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    p->pipes[i].data = p;
    p->open_handles++;
    rc = uv_pipe_open(&p->pipes[i], fd);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&p->pipes[i], on_alloc, on_read);
    if (rc < 0) {
        close_handle(p, (uv_handle_t *)&p->pipes[i]);
        return rc;
    }
    p->reading[i] = true;
    return 0;
}

/* ---- timers and signals ---------------------------------------------------------------------- */

int proc_signal_group(proc_t *p, int sig)
{
    if (p->completed || p->res.pid <= 0)
        return -ESRCH;
    /* The group outlives its leader while any member lives, and its id is not reused before. */
    return kill_group(p, sig);
}

static void on_kill_timer(uv_timer_t *t)
{
    proc_t *p = t->data;
    char *msg = cv_sprintf("still running %llu ms after SIGTERM: SIGKILL to process group",
                           (unsigned long long)p->kill_grace_ms);
    system_line(p, msg);
    free(msg);
    proc_signal_group(p, SIGKILL);
}

/* SIGTERM now, SIGKILL after grace_ms (at once when 0). */
static void terminate(proc_t *p, uint64_t grace_ms)
{
    if (grace_ms == 0) {
        proc_signal_group(p, SIGKILL);
        return;
    }
    proc_signal_group(p, SIGTERM);
    if (!uv_is_active((uv_handle_t *)&p->kill_timer)) {
        p->kill_grace_ms = grace_ms;
        uv_timer_start(&p->kill_timer, on_kill_timer, grace_ms, 0);
    }
}

static void on_timeout(uv_timer_t *t)
{
    proc_t *p = t->data;
    int64_t ms = (cv_mono_ns() - p->start_mono_ns) / 1000000;
    p->res.timed_out = true;
    free(p->res.error);
    p->res.error = cv_sprintf("timed out after %lld ms", (long long)ms);
    char *msg = cv_sprintf("%s: SIGTERM to process group", p->res.error);
    system_line(p, msg);
    free(msg);
    terminate(p, p->kill_grace_ms);
}

int proc_cancel(proc_t *p, uint64_t grace_ms)
{
    if (p->completed || p->res.pid <= 0)
        return -ESRCH;
    if (!p->res.cancelled) {
        p->res.cancelled = true;
        system_line(p, grace_ms ? "cancelled: SIGTERM to process group"
                                : "cancelled: SIGKILL to process group");
    }
    terminate(p, grace_ms);
    return 0;
}

static void on_drain_timer(uv_timer_t *t)
{
    proc_t *p = t->data;
    if (p->res.pid > 0) {
        p->res.drain_forced = true;
        char *msg = cv_sprintf("output still open %llu ms after exit (a background process holds "
                               "it): stopped reading",
                               (unsigned long long)p->drain_grace_ms);
        system_line(p, msg);
        free(msg);
    }
    complete(p);
}

/* Whether an exec's errno means the program is missing (127) rather than unusable (126). */
static bool exec_not_found(int err)
{
    return err == ENOENT || err == ENOTDIR || err == ELOOP || err == ENAMETOOLONG;
}

static char *exec_error(int err, const char *name)
{
    return exec_not_found(err) ? cv_sprintf("command not found: %s", name)
                               : cv_sprintf("cannot execute %s: %s", name, strerror(err));
}

static int exec_exit_code(int err)
{
    return exec_not_found(err) ? 127 : 126;
}

static void slots_sweep(void);

static void on_child_exit(reaper_watch_t *w, pid_t pid, int status, const reaper_usage_t *u)
{
    proc_t *p = w->data;
    slots_sweep(); /* a child gone no longer shares the descriptor table */
    proc_result_t *r = &p->res;
    p->exited = true;
    r->exited_at_ms = cv_now_ms();
    r->duration_ms = (cv_mono_ns() - p->start_mono_ns) / 1000000;
    r->max_rss_kb = u->max_rss_kb;
    r->cpu_user_ms = u->cpu_user_ms;
    r->cpu_sys_ms = u->cpu_sys_ms;
    if (p->exec_err) {
        r->spawn_failed = true;
        r->exit_code = exec_exit_code(p->exec_err);
        free(r->error);
        r->error = exec_error(p->exec_err, p->argv0);
        system_line(p, r->error);
    } else if (WIFEXITED(status)) {
        r->exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        r->exit_code = -1;
        r->signal = WTERMSIG(status);
    }
    uv_timer_stop(&p->timeout_timer);
    if (pipes_done(p))
        complete(p);
    else
        uv_timer_start(&p->drain_timer, on_drain_timer, p->drain_grace_ms, 0);
}

/* ---- completion ------------------------------------------------------------------------------ */

static void complete(proc_t *p)
{
    proc_result_t *r = &p->res;
    if (p->completed)
        return;
    p->completed = true;
    if (r->pid > 0 && (r->timed_out || r->cancelled || p->released))
        kill_group(p, SIGKILL); /* what was meant to die must not outlive the run */
    for (int i = 0; i < P_N; i++)
        finish_pipe(p, i);
    close_handle(p, (uv_handle_t *)&p->timeout_timer);
    close_handle(p, (uv_handle_t *)&p->kill_timer);
    close_handle(p, (uv_handle_t *)&p->drain_timer);
    close_handle(p, (uv_handle_t *)&p->resume_timer);
    result_proto_values_copy(&r->values, &p->rp.values);
    r->output_bytes = proc_output_total_bytes(p->out);
    r->output = proc_output_render(p->out, &r->output_len);
    r->output_dropped = proc_output_dropped_bytes(p->out);
    proc_output_free(p->out);
    p->out = NULL;
    r->finished_at_ms = cv_now_ms();
    if (!p->released) {
        p->in_cb = true;
        p->cbs.on_complete(p, r, p->cbs.data);
        p->in_cb = false;
    }
}

/* ---- spawning -------------------------------------------------------------------------------- */

/* The run ends without a process: exit_code and error say why; delivered from the loop. */
static void fail_start(proc_t *p, int exit_code, char *error)
{
    p->res.spawn_failed = true;
    p->res.exit_code = exit_code;
    free(p->res.error);
    p->res.error = error;
    p->res.exited_at_ms = p->res.started_at_ms;
    system_line(p, error);
    p->exited = true;
    uv_timer_start(&p->drain_timer, on_drain_timer, 0, 0);
}

static char *join_path(const char *dir, size_t dlen, const char *name, const char *cwd)
{
    if (dlen == 0)
        dir = ".", dlen = 1;
    if (dir[0] != '/' && cwd)
        return cv_sprintf("%s/%.*s/%s", cwd, (int)dlen, dir, name);
    return cv_sprintf("%.*s/%s", (int)dlen, dir, name);
}

/* 0 when path is an executable regular file, else -ENOENT (missing) or -EACCES. */
static int probe_file(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return errno == EACCES ? -EACCES : -ENOENT;
    return S_ISREG(st.st_mode) && access(path, X_OK) == 0 ? 0 : -EACCES;
}

/* Finds argv[0] in the PATH of the child's environment (execvp's rules). Returns a heap path, or
 * NULL with *err = -ENOENT (nowhere) or -EACCES (found, not executable). */
static char *search_path(const char *name, const char *const *env, const char *cwd, int *err)
{
    const char *path = DEFAULT_PATH;
    for (const char *const *e = env; e && *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0)
            path = *e + 5;
    *err = -ENOENT;
    for (const char *d = path;; d++) {
        size_t dlen = strcspn(d, ":");
        char *cand = join_path(d, dlen, name, cwd);
        int rc = probe_file(cand);
        if (rc == 0)
            return cand;
        if (rc == -EACCES)
            *err = -EACCES;
        free(cand);
        d += dlen;
        if (*d == '\0')
            return NULL;
    }
}

/* ---- spawning ----
 * The child is created with clone(CLONE_VM | CLONE_FILES): it shares the daemon's memory and
 * descriptor table, so neither is copied for it. (posix_spawn copies the whole table, which holds
 * three pipe ends per running child, and the child then closes them one by one: in a burst of
 * 1,000 runs a spawn went from 0.59 ms for the first hundred to 0.93 ms for the last.) The daemon
 * first puts the child's descriptors in reserved slots, low numbers it keeps open on /dev/null;
 * the child's first act is close_range(slots_end, ~0, CLOSE_RANGE_UNSHARE), a table of its own
 * holding only what lies below the slots' end.
 *
 * Without CLONE_VFORK the daemon waits neither for the exec (about 0.4 ms) nor for that first
 * act: sleeping until the child runs cost the loop a context switch per spawn, about a quarter of
 * its CPU time per run on a 2-vCPU VM. The slots come in SLOT_SETS sets used in turn, and a set
 * goes back to /dev/null (the daemon must not keep a pipe's write end open) once its child has a
 * table of its own, which spawn and the reaping of any child check. Meanwhile the two run in
 * one address space, so the child touches nothing the daemon may change: it runs on a stack of
 * its own, from copies of its arguments (a spawn block, reused once the kernel has cleared the
 * block's tid word, which it does at the child's exec or exit: CLONE_CHILD_CLEARTID), and makes
 * its system calls directly, never through the C library (whose wrappers set errno, the daemon's
 * errno: the child shares its thread pointer). */

enum { SLOT_OUT, SLOT_ERR, SLOT_RES, SLOT_N };
#define SLOT_SETS 16

/* A system call without the C library: returns the result or -errno. */
#if defined(__x86_64__)
__attribute__((always_inline)) static inline long raw_sys(long n, long a, long b, long c, long d)
{
    long ret;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return ret;
}
#define CHILD_CLONE_FLAGS 0
#elif defined(__aarch64__)
__attribute__((always_inline)) static inline long raw_sys(long n, long a, long b, long c, long d)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
    return x0;
}
#define CHILD_CLONE_FLAGS 0
#else
/* Elsewhere the daemon waits for the exec (CLONE_VFORK), so the C library's errno is safe. */
static long raw_sys(long n, long a, long b, long c, long d)
{
    long rc = syscall(n, a, b, c, d);
    return rc < 0 ? -errno : rc;
}
#define CHILD_CLONE_FLAGS CLONE_VFORK
#endif

#define SPAWN_STACK (32 * 1024)

/* ready: the child has a descriptor table of its own. */
enum { BLOCK_READY = 0, BLOCK_SHARED = 1, BLOCK_WAITED = 2 /* and the daemon sleeps on it */ };

typedef struct {
    int ready; /* BLOCK_*, a futex word */
    pid_t tid; /* non-zero until the child execs or exits (CLONE_CHILD_CLEARTID) */
    int *err;  /* where the child writes why it could not exec */
    bool new_session;
    int fds[1 + SLOT_N]; /* stdin, then the set's slots, moved to 0..PROC_RESULT_FD */
    unsigned slots_end;
    const char *path, *cwd;
    char **argv, **envp;
    char *copy; /* path, cwd, argv and envp, copied (kept for the block's next child) */
    size_t copy_cap;
    cv_list_t link;
    char stack[SPAWN_STACK] __attribute__((aligned(16)));
} spawn_block_t;

static int slot_null = -1;                    /* /dev/null, the children's stdin */
static int slot_fd[SLOT_SETS][SLOT_N];        /* each set's descriptors */
static spawn_block_t *slot_holder[SLOT_SETS]; /* the child still sharing a set, or NULL */
static unsigned slot_next, slots_end;         /* the set to use next; one past the highest slot */

/* Reserves the slots once (above PROC_RESULT_FD, so no dup in the child clobbers one). */
static int slots_open(void)
{
    if (slot_null >= 0)
        return 0;
    int fds[1 + SLOT_SETS * SLOT_N];
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC), err = null < 0 ? errno : 0;
    size_t n = 0;
    for (; err == 0 && n < CV_ARRAY_SIZE(fds); n++)
        if ((fds[n] = fcntl(null, F_DUPFD_CLOEXEC, PROC_RESULT_FD + 1)) < 0)
            err = errno;
    if (null >= 0)
        close(null);
    if (err) {
        while (n-- > 1)
            close(fds[n - 1]);
        return err;
    }
    slot_null = fds[0];
    memcpy(slot_fd, fds + 1, sizeof(slot_fd));
    for (size_t i = 0; i < n; i++)
        if ((unsigned)fds[i] + 1 > slots_end)
            slots_end = (unsigned)fds[i] + 1;
    return 0;
}

static bool block_in_use(spawn_block_t *b)
{
    return __atomic_load_n(&b->tid, __ATOMIC_ACQUIRE) != 0;
}

/* The child no longer shares the daemon's table: it has its own, or it is gone. */
static bool block_unshared(spawn_block_t *b)
{
    return __atomic_load_n(&b->ready, __ATOMIC_ACQUIRE) == BLOCK_READY || !block_in_use(b);
}

/* Puts a set back to /dev/null. */
static void slot_set_release(unsigned set)
{
    for (int i = 0; i < SLOT_N; i++)
        dup3(slot_null, slot_fd[set][i], O_CLOEXEC);
    slot_holder[set] = NULL;
}

/* Releases every set whose child has a table of its own. */
static void slots_sweep(void)
{
    for (unsigned set = 0; set < SLOT_SETS; set++)
        if (slot_holder[set] && block_unshared(slot_holder[set]))
            slot_set_release(set);
}

/* A free set: any one, the next in turn first; when every set is held, waits (rarely) for the
 * child holding the next in turn to run its first system call. A child that dies first clears its
 * tid, which wakes nobody here: hence the timeout. */
static unsigned slot_set_take(void)
{
    unsigned set = slot_next;
    slot_next = (slot_next + 1) % SLOT_SETS;
    for (unsigned i = 0; i < SLOT_SETS; i++)
        if (slot_holder[(set + i) % SLOT_SETS] == NULL)
            return (set + i) % SLOT_SETS;
    spawn_block_t *b = slot_holder[set];
    int expected = BLOCK_SHARED;
    __atomic_compare_exchange_n(&b->ready, &expected, BLOCK_WAITED, false, __ATOMIC_ACQ_REL,
                                __ATOMIC_ACQUIRE);
    while (!block_unshared(b)) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        syscall(SYS_futex, &b->ready, FUTEX_WAIT, BLOCK_WAITED, &ts);
    }
    slot_set_release(set);
    return set;
}

/* Blocks whose child may still use them, and blocks free for reuse. */
static cv_list_t busy_blocks = {&busy_blocks, &busy_blocks};
static cv_list_t spare_blocks = {&spare_blocks, &spare_blocks};

/* A free block, after moving those whose child has exec'd to the spares (a child execs within
 * a millisecond or so, so few are ever busy). */
static spawn_block_t *block_get(void)
{
    for (cv_list_t *n = busy_blocks.next, *next; n != &busy_blocks; n = next) {
        next = n->next;
        spawn_block_t *b = cv_container_of(n, spawn_block_t, link);
        if (!block_in_use(b)) {
            for (unsigned set = 0; set < SLOT_SETS; set++) /* its child is gone or exec'd */
                if (slot_holder[set] == b)
                    slot_set_release(set);
            cv_list_remove(n);
            cv_list_insert_tail(&spare_blocks, n);
        }
    }
    if (cv_list_empty(&spare_blocks)) {
        spawn_block_t *b = cv_malloc(sizeof(spawn_block_t));
        b->copy = NULL;
        b->copy_cap = 0;
        return b;
    }
    cv_list_t *n = spare_blocks.next;
    cv_list_remove(n);
    return cv_container_of(n, spawn_block_t, link);
}

static bool is_result_fd_entry(const char *entry)
{
    return strncmp(entry, RESULT_FD_NAME "=", sizeof(RESULT_FD_NAME)) == 0;
}

/* Copies path, cwd, argv and the environment into one allocation owned by the block (reused by
 * its next child when large enough). The environment is the caller's without any
 * CRONVISOR_RESULT_FD, plus ours. */
static void block_copy_args(spawn_block_t *b, const char *path, const char *cwd,
                            const char *const argv[], const char *const env[])
{
    static const char result_fd[] = RESULT_FD_NAME "=" STRINGIFY(PROC_RESULT_FD);
    size_t nargv = 0, nenv = 0, bytes = strlen(path) + 1 + (cwd ? strlen(cwd) + 1 : 0);
    for (; argv[nargv]; nargv++)
        bytes += strlen(argv[nargv]) + 1;
    for (const char *const *e = env; e && *e; e++)
        if (!is_result_fd_entry(*e)) {
            bytes += strlen(*e) + 1;
            nenv++;
        }
    bytes += sizeof(result_fd);
    size_t ptrs = (nargv + 1 + nenv + 2) * sizeof(char *);
    if (ptrs + bytes > b->copy_cap) {
        free(b->copy);
        b->copy_cap = ptrs + bytes;
        b->copy = cv_malloc(b->copy_cap);
    }
    b->argv = (char **)(void *)b->copy;
    b->envp = b->argv + nargv + 1;
    char *s = b->copy + ptrs;
#define COPY_STR(dst, src)                                                                         \
    do {                                                                                           \
        size_t len_ = strlen(src) + 1;                                                             \
        memcpy(s, (src), len_);                                                                    \
        (dst) = s;                                                                                 \
        s += len_;                                                                                 \
    } while (0)
    for (size_t i = 0; i < nargv; i++)
        COPY_STR(b->argv[i], argv[i]);
    b->argv[nargv] = NULL;
    size_t k = 0;
    for (const char *const *e = env; e && *e; e++)
        if (!is_result_fd_entry(*e))
            COPY_STR(b->envp[k++], *e);
    COPY_STR(b->envp[k++], result_fd);
    b->envp[k] = NULL;
    COPY_STR(b->path, path);
    b->cwd = NULL;
    if (cwd)
        COPY_STR(b->cwd, cwd);
#undef COPY_STR
}

/* Runs in the child, on the block's stack, in the daemon's memory until execve: system calls
 * only, no C library, no instrumentation (a sanitizer's bookkeeping is the daemon's). */
__attribute__((no_sanitize("address", "undefined"))) static int child_main(void *arg)
{
    spawn_block_t *b = arg;
    long rc = raw_sys(SYS_close_range, b->slots_end, ~0U, CLOSE_RANGE_UNSHARE, 0);
    if (rc < 0)
        rc = raw_sys(SYS_unshare, CLONE_FILES, 0, 0, 0);
    if (__atomic_exchange_n(&b->ready, BLOCK_READY, __ATOMIC_ACQ_REL) == BLOCK_WAITED)
        raw_sys(SYS_futex, (long)&b->ready, FUTEX_WAKE, 1, 0);
    if (rc < 0)
        goto fail;
    /* Every disposition back to default before the mask is cleared: a handler of the daemon must
     * never run here. (A zeroed kernel sigaction is SIG_DFL, no flags, empty mask.) */
    static const unsigned long dfl[4] = {0};
    for (long sig = 1; sig < _NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            raw_sys(SYS_rt_sigaction, sig, (long)dfl, 0, _NSIG / 8);
    rc = b->new_session ? raw_sys(SYS_setsid, 0, 0, 0, 0) : raw_sys(SYS_setpgid, 0, 0, 0, 0);
    if (rc < 0)
        goto fail;
    for (long i = 0; i <= PROC_RESULT_FD; i++)
        if ((rc = raw_sys(SYS_dup3, b->fds[i], i, 0, 0)) < 0)
            goto fail;
    raw_sys(SYS_close_range, PROC_RESULT_FD + 1, ~0U, 0, 0);
    if (b->cwd && (rc = raw_sys(SYS_chdir, (long)b->cwd, 0, 0, 0)) < 0)
        goto fail;
    static const unsigned long none = 0;
    raw_sys(SYS_rt_sigprocmask, SIG_SETMASK, (long)&none, 0, _NSIG / 8);
    rc = raw_sys(SYS_execve, (long)b->path, (long)b->argv, (long)b->envp, 0);
fail:
    *b->err = rc < 0 ? (int)-rc : EINVAL;
    raw_sys(SYS_exit_group, 127, 0, 0, 0);
    __builtin_unreachable();
}

/* Spawns the child with its setup. Returns 0 or a positive errno of the spawn itself; *exec_err
 * receives, before the child exits with 127, why the child could not exec. */
static int spawn_child(const char *path, const char *const argv[], const char *const env[],
                       const char *cwd, bool new_session, const int wfd[P_N], int *exec_err,
                       pid_t *pid)
{
    _Static_assert(PROC_RESULT_FD == SLOT_N, "stdin, then one slot per pipe");
    int err = slots_open();
    if (err)
        return err;
    slots_sweep();
    unsigned set = slot_set_take();
    for (int i = 0; i < SLOT_N && err == 0; i++)
        if (dup3(wfd[i], slot_fd[set][i], O_CLOEXEC) < 0)
            err = errno;
    if (err) {
        slot_set_release(set);
        return err;
    }
    spawn_block_t *b = block_get();
    block_copy_args(b, path, cwd, argv, env);
    b->err = exec_err;
    b->new_session = new_session;
    b->fds[0] = slot_null;
    memcpy(b->fds + 1, slot_fd[set], sizeof(slot_fd[set]));
    b->slots_end = slots_end;
    b->ready = BLOCK_SHARED;
    b->tid = 1;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    *pid = clone(child_main, b->stack + sizeof(b->stack),
                 CLONE_VM | CLONE_FILES | CLONE_CHILD_CLEARTID | CHILD_CLONE_FLAGS | SIGCHLD, b,
                 NULL, NULL, &b->tid);
    err = *pid < 0 ? errno : 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    cv_list_insert_tail(err == 0 ? &busy_blocks : &spare_blocks, &b->link);
    if (err == 0 && !block_unshared(b))
        slot_holder[set] = b;
    else
        slot_set_release(set);
    return err;
}

/* pipe2(O_CLOEXEC) with both ends moved above PROC_RESULT_FD. Returns 0 or -errno. */
static int make_pipe(int fds[2])
{
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    for (int i = 0; i < 2; i++) {
        if (fds[i] > PROC_RESULT_FD)
            continue;
        int nfd = fcntl(fds[i], F_DUPFD_CLOEXEC, PROC_RESULT_FD + 1);
        int err = errno;
        close(fds[i]);
        fds[i] = nfd;
        if (nfd < 0) {
            close(fds[1 - i]);
            return -err;
        }
    }
    return 0;
}

/* Checks the working directory so that a chdir failure is not mistaken for a missing command. */
static char *check_cwd(const char *cwd)
{
    struct stat st;
    if (cwd == NULL)
        return NULL;
    if (stat(cwd, &st) < 0)
        return cv_sprintf("cannot use working directory %s: %s", cwd, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return cv_sprintf("cannot use working directory %s: not a directory", cwd);
    if (access(cwd, X_OK) < 0)
        return cv_sprintf("cannot use working directory %s: %s", cwd, strerror(errno));
    return NULL;
}

/* Checks the working directory and finds the program; *path stays NULL when argv[0] holds a '/'
 * (execve takes it as it is, relative to cwd). Returns false after fail_start(). The exec may
 * still fail (the file changed, or is not a format the kernel runs): on_child_exit reports it. */
static bool resolve(proc_t *p, const proc_opts_t *o, const char *name, char **path)
{
    int rc = 0;
    char *err = check_cwd(o->cwd);
    if (err) {
        fail_start(p, 126, err);
        return false;
    }
    if (strchr(name, '/')) {
        char *full = name[0] != '/' && o->cwd ? cv_sprintf("%s/%s", o->cwd, name) : NULL;
        rc = probe_file(full ? full : name);
        free(full);
        if (rc == 0)
            return true;
    } else if ((*path = search_path(name, o->env, o->cwd, &rc)) != NULL) {
        return true;
    }
    fail_start(p, exec_exit_code(-rc), exec_error(-rc, name));
    return false;
}

/* Resolves the program, creates the pipes and spawns. On any failure, fail_start(). */
static void launch(proc_t *p, const proc_opts_t *o)
{
    const char *shell_argv[] = {"/bin/sh", "-c", o->command, NULL};
    const char *const *argv = o->command ? shell_argv : o->argv;
    int fds[P_N][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
    char *path = NULL;
    int rc = 0;
    if (!resolve(p, o, argv[0], &path))
        return;
    for (int i = 0; i < P_N && rc == 0; i++)
        rc = make_pipe(fds[i]);
    if (rc < 0) {
        fail_start(p, -1, cv_sprintf("cannot start %s: pipe: %s", argv[0], strerror(-rc)));
        goto out;
    }
    int wfd[P_N] = {fds[P_OUT][1], fds[P_ERR][1], fds[P_RES][1]};
    if (o->not_before_ns)
        cv_wait_until_ns(o->not_before_ns, PROC_NOT_BEFORE_MAX_NS);
    p->start_mono_ns = cv_mono_ns();
    p->res.started_at_ms = cv_now_ms();
    rc = spawn_child(path ? path : argv[0], argv, o->env, o->cwd, o->new_session, wfd, &p->exec_err,
                     &p->res.pid);
    if (rc != 0) {
        p->res.pid = 0;
        fail_start(p, -1, cv_sprintf("cannot start %s: %s", argv[0], strerror(rc)));
        goto out;
    }
    p->argv0 = cv_strdup(argv[0]);
    /* SIGCHLD reaches us only through the loop (the signal handler just writes to libuv's
     * pipe; the reaper runs in a later callback), so registering before this callback returns
     * cannot miss the exit, however fast the child is. */
    reaper_watch(&p->watch, p->res.pid, on_child_exit);
    for (int i = 0; i < P_N; i++) {
        close(fds[i][1]);
        fds[i][1] = -1;
        if (open_pipe(p, i, fds[i][0]) < 0)
            cv_warn("proc", "cannot watch a pipe of pid %d", (int)p->res.pid);
        fds[i][0] = -1;
    }
out:
    for (int i = 0; i < P_N; i++)
        for (int j = 0; j < 2; j++)
            if (fds[i][j] >= 0)
                close(fds[i][j]);
    free(path);
}

static int check_opts(const proc_opts_t *o, const proc_callbacks_t *cbs)
{
    if (o == NULL || cbs == NULL || cbs->on_complete == NULL)
        return -EINVAL;
    if ((o->argv == NULL) == (o->command == NULL))
        return -EINVAL;
    if (o->argv && (o->argv[0] == NULL || o->argv[0][0] == '\0'))
        return -EINVAL;
    return 0;
}

int proc_start(uv_loop_t *loop, const proc_opts_t *o, const proc_callbacks_t *cbs, proc_t **out)
{
    int rc = check_opts(o, cbs);
    if (rc < 0)
        return rc;
    if ((rc = reaper_start(loop)) < 0)
        return rc;
    proc_t *p = cv_calloc(1, sizeof(*p));
    p->loop = loop;
    p->cbs = *cbs;
    p->watch.data = p;
    p->kill_grace_ms = o->kill_grace_ms ? o->kill_grace_ms : PROC_DEFAULT_KILL_GRACE_MS;
    p->drain_grace_ms = o->drain_grace_ms ? o->drain_grace_ms : PROC_DEFAULT_DRAIN_GRACE_MS;
    p->read_budget = o->read_budget ? o->read_budget : PROC_DEFAULT_READ_BUDGET;
    p->out = proc_output_new(o->max_output, o->line_max, on_output_line, p);
    result_proto_callbacks_t rcb = {on_result_message, on_result_error, on_result_update, p};
    result_proto_init(&p->rp, &rcb);
    p->start_mono_ns = cv_mono_ns();
    p->res.started_at_ms = cv_now_ms();
    uv_timer_t *timers[] = {&p->timeout_timer, &p->kill_timer, &p->drain_timer, &p->resume_timer};
    for (size_t i = 0; i < CV_ARRAY_SIZE(timers); i++) {
        uv_timer_init(loop, timers[i]);
        timers[i]->data = p;
        p->open_handles++;
    }
    launch(p, o);
    /* The timeout counts from the spawn: the loop's time is the one cached when this iteration
     * began, before a wait for the instant (not_before_ns) or the spawns of a burst. */
    uv_update_time(loop);
    /* + 1: the loop's clock is whole milliseconds, so a timer may go off up to 1 ms before the
     * duration measured from start_mono_ns reaches the timeout. */
    if (p->res.pid > 0 && o->timeout_ms > 0)
        uv_timer_start(&p->timeout_timer, on_timeout, o->timeout_ms + 1, 0);
    *out = p;
    return 0;
}
