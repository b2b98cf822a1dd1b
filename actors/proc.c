#include "actors/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
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

struct proc {
    uv_loop_t *loop;
    proc_callbacks_t cbs;
    reaper_watch_t watch;
    uv_pipe_t pipes[P_N];
    bool reading[P_N]; /* pipe open and not at EOF */
    uv_timer_t timeout_timer, kill_timer, drain_timer;
    unsigned open_handles;
    bool exited, completed, released, in_cb;
    uint64_t kill_grace_ms, drain_grace_ms;
    int64_t start_mono_ns;
    proc_output_t *out;
    result_proto_t rp;
    proc_result_t res;
};

static void complete(proc_t *p);

/* ---- memory: freed in the last close callback, never from inside a proc callback ---------- */

static void proc_free(proc_t *p)
{
    proc_output_free(p->out);
    result_proto_free(&p->rp);
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
            kill(-p->res.pid, SIGKILL);
        return; /* complete() sees released and frees after closing */
    }
    if (p->open_handles == 0 && !p->in_cb)
        proc_free(p);
}

/* ---- output and result protocol ------------------------------------------------------------ */

static void system_line(proc_t *p, const char *text)
{
    proc_output_add_line(p->out, PROC_STREAM_SYSTEM, text, strlen(text), cv_now_ms());
}

static void on_output_line(void *data, const proc_line_t *line)
{
    proc_t *p = data;
    if (p->cbs.on_line && !p->released)
        p->cbs.on_line(p, line, p->cbs.data);
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
    *buf = uv_buf_init(readbuf, sizeof(readbuf));
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
    close_handle(p, (uv_handle_t *)&p->pipes[i]);
}

static bool pipes_done(const proc_t *p)
{
    return !p->reading[P_OUT] && !p->reading[P_ERR] && !p->reading[P_RES];
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    proc_t *p = s->data;
    int i = (int)((uv_pipe_t *)s - p->pipes);
    if (nread > 0) {
        if (i == P_RES)
            result_proto_feed(&p->rp, buf->base, (size_t)nread);
        else
            proc_output_feed(p->out, i == P_OUT ? PROC_STREAM_STDOUT : PROC_STREAM_STDERR,
                             buf->base, (size_t)nread, cv_now_ms());
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
    return kill(-p->res.pid, sig) < 0 ? -errno : 0;
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

static void on_child_exit(reaper_watch_t *w, pid_t pid, int status, const reaper_usage_t *u)
{
    proc_t *p = w->data;
    proc_result_t *r = &p->res;
    p->exited = true;
    r->exited_at_ms = cv_now_ms();
    r->duration_ms = (cv_mono_ns() - p->start_mono_ns) / 1000000;
    r->max_rss_kb = u->max_rss_kb;
    r->cpu_user_ms = u->cpu_user_ms;
    r->cpu_sys_ms = u->cpu_sys_ms;
    if (WIFEXITED(status)) {
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
        kill(-r->pid, SIGKILL); /* what was meant to die must not outlive the run */
    for (int i = 0; i < P_N; i++)
        finish_pipe(p, i);
    close_handle(p, (uv_handle_t *)&p->timeout_timer);
    close_handle(p, (uv_handle_t *)&p->kill_timer);
    close_handle(p, (uv_handle_t *)&p->drain_timer);
    result_values_copy(&r->values, &p->rp.values);
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
        struct stat st;
        if (stat(cand, &st) == 0) {
            if (S_ISREG(st.st_mode) && access(cand, X_OK) == 0)
                return cand;
            *err = -EACCES;
        }
        free(cand);
        d += dlen;
        if (*d == '\0')
            return NULL;
    }
}

/* Child environment: the caller's, without any CRONVISOR_RESULT_FD, plus ours. */
static char **build_env(const char *const *env)
{
    size_t n = 0;
    while (env && env[n])
        n++;
    char **out = cv_calloc(n + 2, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(env[i], RESULT_FD_NAME "=", sizeof(RESULT_FD_NAME)) != 0)
            out[k++] = (char *)env[i];
    out[k] = cv_sprintf("%s=%d", RESULT_FD_NAME, PROC_RESULT_FD);
    return out;
}

static void free_env(char **env)
{
    size_t i = 0;
    while (env[i + 1])
        i++;
    free(env[i]); /* ours is the last one */
    free(env);
}

/* ---- spawning ----
 * The child is created with clone(CLONE_VM | CLONE_VFORK | CLONE_FILES): it shares the daemon's
 * memory and descriptor table until it execs, so neither is copied for it. (posix_spawn copies
 * the whole table, which holds three pipe ends per running child, and the child then closes them
 * one by one: in a burst of 1,000 runs a spawn went from 0.59 ms for the first hundred to 0.93 ms
 * for the last.) The daemon first puts the child's descriptors in reserved slots, low numbers it
 * keeps open on /dev/null; the child's first act is close_range(slots_end, ~0,
 * CLOSE_RANGE_UNSHARE), a table of its own holding only what lies below the slots' end. */

enum { SLOT_IN, SLOT_OUT, SLOT_ERR, SLOT_RES, SLOT_N };

static int slots[SLOT_N] = {-1, -1, -1, -1};
static unsigned slots_end; /* one past the highest slot */

/* Reserves the slots once (above PROC_RESULT_FD, so no dup2 in the child clobbers one). */
static int slots_open(void)
{
    if (slots[SLOT_N - 1] >= 0)
        return 0;
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0)
        return errno;
    for (int i = 0; i < SLOT_N; i++) {
        if ((slots[i] = fcntl(null, F_DUPFD_CLOEXEC, PROC_RESULT_FD + 1)) < 0) {
            int err = errno;
            while (i-- > 0)
                close(slots[i]);
            slots[0] = -1;
            close(null);
            return err;
        }
        if ((unsigned)slots[i] + 1 > slots_end)
            slots_end = (unsigned)slots[i] + 1;
    }
    close(null);
    return 0;
}

typedef struct {
    const char *path;
    char *const *argv, *const *envp;
    const char *cwd;
    bool new_session;
    int err; /* written by the child when it cannot exec */
} child_args_t;

/* Runs in the child, on its own stack, in the daemon's memory until execve: only system calls,
 * nothing that takes a lock or allocates. */
static int child_main(void *arg)
{
    child_args_t *a = arg;
    if (syscall(SYS_close_range, slots_end, ~0U, CLOSE_RANGE_UNSHARE) < 0 &&
        syscall(SYS_unshare, CLONE_FILES) < 0)
        goto fail;
    /* Every disposition back to default before the mask is cleared: a handler of the daemon must
     * never run here. */
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (int sig = 1; sig < _NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP && sig != 32 && sig != 33)
            sigaction(sig, &dfl, NULL);
    if ((a->new_session ? setsid() : setpgid(0, 0)) < 0)
        goto fail;
    static const int to[SLOT_N] = {0, 1, 2, PROC_RESULT_FD};
    for (int i = 0; i < SLOT_N; i++)
        if (dup2(slots[i], to[i]) < 0)
            goto fail;
    syscall(SYS_close_range, PROC_RESULT_FD + 1, ~0U, 0);
    if (a->cwd && chdir(a->cwd) < 0)
        goto fail;
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(a->path, a->argv, a->envp);
fail:
    a->err = errno ? errno : EINVAL;
    _exit(127);
}

/* Spawns the child with its setup. Returns 0 or a positive errno: the child's chdir or exec
 * failure is known here, synchronously (the child has exited; it is reaped here). */
static int spawn_child(const char *path, char *const argv[], char *const envp[], const char *cwd,
                       bool new_session, const int wfd[P_N], pid_t *pid)
{
    static char stack[64 * 1024] __attribute__((aligned(16)));
    int err = slots_open();
    if (err)
        return err;
    const int from[SLOT_N] = {-1, wfd[P_OUT], wfd[P_ERR], wfd[P_RES]};
    for (int i = SLOT_OUT; i < SLOT_N && err == 0; i++)
        if (dup3(from[i], slots[i], O_CLOEXEC) < 0)
            err = errno;
    child_args_t a = {path, argv, envp, cwd, new_session, 0};
    if (err == 0) {
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        *pid = clone(child_main, stack + sizeof(stack),
                     CLONE_VM | CLONE_VFORK | CLONE_FILES | SIGCHLD, &a);
        err = *pid < 0 ? errno : 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    /* The slots go back to /dev/null: the daemon must not keep a pipe's write end open. */
    for (int i = SLOT_OUT; i < SLOT_N; i++)
        dup3(slots[SLOT_IN], slots[i], O_CLOEXEC);
    if (err == 0 && a.err != 0) {
        waitpid(*pid, NULL, 0);
        err = a.err;
    }
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

static char *exec_error(int err, const char *name)
{
    switch (err) {
    case ENOENT:
    case ENOTDIR:
    case ELOOP:
    case ENAMETOOLONG:
        return cv_sprintf("command not found: %s", name);
    default:
        return cv_sprintf("cannot execute %s: %s", name, strerror(err));
    }
}

static int exec_exit_code(int err)
{
    return (err == ENOENT || err == ENOTDIR || err == ELOOP || err == ENAMETOOLONG) ? 127 : 126;
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
 * (execve takes it as it is, relative to cwd). Returns false after fail_start(). */
static bool resolve(proc_t *p, const proc_opts_t *o, const char *name, char **path)
{
    int rc = 0;
    char *err = check_cwd(o->cwd);
    if (err) {
        fail_start(p, 126, err);
        return false;
    }
    if (strchr(name, '/') || (*path = search_path(name, o->env, o->cwd, &rc)) != NULL)
        return true;
    fail_start(p, rc == -ENOENT ? 127 : 126,
               rc == -ENOENT ? cv_sprintf("command not found: %s", name)
                             : cv_sprintf("cannot execute %s: %s", name, strerror(-rc)));
    return false;
}

/* Resolves the program, creates the pipes and spawns. On any failure, fail_start(). */
static void launch(proc_t *p, const proc_opts_t *o)
{
    const char *shell_argv[] = {"/bin/sh", "-c", o->command, NULL};
    const char *const *argv = o->command ? shell_argv : o->argv;
    int fds[P_N][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
    char *path = NULL;
    char **envp = NULL;
    int rc = 0;
    if (!resolve(p, o, argv[0], &path))
        return;
    for (int i = 0; i < P_N && rc == 0; i++)
        rc = make_pipe(fds[i]);
    if (rc < 0) {
        fail_start(p, -1, cv_sprintf("cannot start %s: pipe: %s", argv[0], strerror(-rc)));
        goto out;
    }
    envp = build_env(o->env);
    int wfd[P_N] = {fds[P_OUT][1], fds[P_ERR][1], fds[P_RES][1]};
    if (o->not_before_ns)
        cv_wait_until_ns(o->not_before_ns, PROC_NOT_BEFORE_MAX_NS);
    p->start_mono_ns = cv_mono_ns();
    p->res.started_at_ms = cv_now_ms();
    rc = spawn_child(path ? path : argv[0], (char *const *)argv, envp, o->cwd, o->new_session, wfd,
                     &p->res.pid);
    if (rc != 0) {
        p->res.pid = 0;
        if (rc == EAGAIN || rc == ENOMEM || rc == EMFILE || rc == ENFILE)
            fail_start(p, -1, cv_sprintf("cannot start %s: %s", argv[0], strerror(rc)));
        else
            fail_start(p, exec_exit_code(rc), exec_error(rc, argv[0]));
        goto out;
    }
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
    if (envp)
        free_env(envp);
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
    p->out = proc_output_new(o->max_output, o->line_max, on_output_line, p);
    result_proto_callbacks_t rcb = {on_result_message, on_result_error, on_result_update, p};
    result_proto_init(&p->rp, &rcb);
    p->start_mono_ns = cv_mono_ns();
    p->res.started_at_ms = cv_now_ms();
    uv_timer_t *timers[] = {&p->timeout_timer, &p->kill_timer, &p->drain_timer};
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

pid_t proc_pid(const proc_t *p)
{
    return p->res.pid;
}

bool proc_completed(const proc_t *p)
{
    return p->completed;
}

const result_values_t *proc_values(const proc_t *p)
{
    return &p->rp.values;
}
