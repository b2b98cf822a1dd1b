/* proc: one run of a command as a child process on a libuv loop. The executor actor builds its
 * policies (concurrency, retries, queueing) on top of this; proc provides the mechanisms.
 *
 * Spawning: clone(CLONE_VM|CLONE_FILES) then execve, so the cost grows neither with the daemon's
 * memory (unlike the fork() of uv_spawn) nor with its descriptor table (unlike posix_spawn, which
 * copies the table: three pipe ends per running child), and the loop does not wait for the exec
 * (unlike vfork); see proc.c. The child gets
 *   - its own process group (pgid = pid), or its own session with new_session (which it makes
 *     itself, beside the daemon: a group signal sent before then reaches the child alone);
 *   - stdin from /dev/null, stdout and stderr each on a pipe, and the write end of a third pipe
 *     (the result protocol, see proto/RESULT_PROTOCOL.md) as fd PROC_RESULT_FD, whose number is in
 *     the environment variable CRONVISOR_RESULT_FD; every other descriptor is closed;
 *   - an empty signal mask and every signal disposition at its default;
 *   - exactly the environment given (plus CRONVISOR_RESULT_FD) and the given working directory.
 * A command that cannot be started does not make proc_start fail: the run completes (from the
 * loop, never from inside proc_start) with spawn_failed set and, like tini and the shell, exit
 * code 127 when the program is not found and 126 when it cannot be executed. Missing programs,
 * files that are not executable and bad working directories are found before spawning (pid 0);
 * an exec the kernel still refuses (a file that is no program, or changed meanwhile) is reported
 * by the child, which then exits, with the child's pid.
 *
 * Output: each of stdout and stderr is read at most read_budget bytes per loop pass; then the
 * pipe waits for the next pass (the child blocks in write: the pipe is the back-pressure), so a
 * child writing without pause is throttled, not killed, and the loop stays responsive. The lines
 * of each read reach on_line, then on_lines_end once (a consumer batches them there).
 *
 * Lifecycle: the completion callback is delivered exactly once, when the child has been reaped
 * (core/reaper.c) AND its three pipes reached end-of-file, or drain_grace_ms after the exit if a
 * background process still holds the pipes (they are then closed; drain_forced is set). At
 * timeout_ms the whole process group gets SIGTERM, then SIGKILL kill_grace_ms later.
 *
 * Memory: the caller owns the proc_t from proc_start until proc_release. The result passed to the
 * completion callback stays valid until proc_release. proc_release may be called from inside any
 * proc callback or later: the memory is freed only once every libuv handle of the proc is closed
 * (in the last close callback), never from inside a callback of the proc itself.
 *
 * Single-threaded: every function must be called from the loop's thread. */
#ifndef CV_ACTORS_PROC_H
#define CV_ACTORS_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "actors/proc_output.h"
#include "actors/result_proto.h"

/** Descriptor number of the result pipe in the child (also in $CRONVISOR_RESULT_FD). */
#define PROC_RESULT_FD              3
#define PROC_DEFAULT_KILL_GRACE_MS  5000
#define PROC_DEFAULT_DRAIN_GRACE_MS 2000
#define PROC_DEFAULT_READ_BUDGET    (64 * 1024)

typedef struct proc proc_t;

typedef struct proc_opts {
    /** Either argv (NULL-terminated; argv[0] without '/' is searched in the PATH of env, else
     * "/usr/local/bin:/usr/bin:/bin"; with '/' it is relative to cwd) ... */
    const char *const *argv;
    /** ... or a shell command line, run as /bin/sh -c command. Exactly one of the two. */
    const char *command;
    /** The complete environment, "NAME=value" strings, NULL-terminated. NULL means empty.
     * CRONVISOR_RESULT_FD is always set by proc (a value given here is replaced). */
    const char *const *env;
    /** Working directory; NULL keeps the daemon's. Checked before spawning. */
    const char *cwd;
    /** true: the child starts a new session (setsid); false: a new process group. */
    bool new_session;
    /** 0: no timeout. */
    uint64_t timeout_ms;
    /** SIGTERM-to-SIGKILL delay at timeout; 0 means PROC_DEFAULT_KILL_GRACE_MS. */
    uint64_t kill_grace_ms;
    /** How long to wait for pipe EOF after the child exited; 0 means the default. */
    uint64_t drain_grace_ms;
    /** Output budget (see proc_output.h); 0 means PROC_OUTPUT_DEFAULT_MAX. */
    size_t max_output;
    /** Longest line before it is cut; 0 means PROC_OUTPUT_LINE_MAX. */
    size_t line_max;
    /** Bytes read from one output pipe before it yields to the rest of the loop: past it the pipe
     * is not read again before the next loop pass, so a child that writes without pause is
     * throttled by its pipe (it blocks in write) instead of starving the loop. 0 means
     * PROC_DEFAULT_READ_BUDGET. */
    size_t read_budget;
    /** 0, or a wall-clock instant (Unix ns) before which the child must not start: everything
     * else is prepared, then proc_start blocks until the instant (at most PROC_NOT_BEFORE_MAX_NS)
     * and spawns. For a scheduled run prepared just ahead of its instant. */
    int64_t not_before_ns;
} proc_opts_t;

/** The longest proc_start blocks for proc_opts_t.not_before_ns. */
#define PROC_NOT_BEFORE_MAX_NS 20000000

/** How a run ended. Times are wall-clock Unix milliseconds; strings are owned by the proc. */
typedef struct proc_result {
    pid_t pid;         /* 0 when nothing was started */
    int exit_code;     /* exit status; 127/126 when not startable; -1 when killed by a signal
                          or on a system error before exec */
    int signal;        /* the signal that ended it, 0 when it exited */
    bool spawn_failed; /* the command could not be started; see error */
    bool timed_out;    /* it was signalled because timeout_ms passed */
    bool cancelled;    /* proc_cancel was called before it ended */
    bool drain_forced; /* the pipes were closed drain_grace_ms after the exit */
    int64_t started_at_ms;
    int64_t exited_at_ms;   /* when it was reaped (started_at_ms when not started) */
    int64_t finished_at_ms; /* when the completion was delivered */
    int64_t duration_ms;    /* start to exit, monotonic */
    int64_t max_rss_kb;     /* peak resident set of the child or its waited-for descendants */
    int64_t cpu_user_ms;
    int64_t cpu_sys_ms;
    uint64_t output_bytes;   /* bytes written on stdout + stderr, dropped ones included */
    uint64_t output_dropped; /* bytes not kept (see proc_output.h) */
    char *output;            /* rendered kept output (proc_output_render format), never NULL */
    size_t output_len;
    result_values_t values; /* what the job reported through the result protocol */
    char *error;            /* for a person: why it could not start, timed out, ...; or NULL */
} proc_result_t;

typedef struct proc_callbacks {
    /** Required. Called once, from the loop, when the run is over (see the lifecycle above). */
    void (*on_complete)(proc_t *p, const proc_result_t *r, void *data);
    /** Optional. Every complete output line, as it arrives (live tailing). */
    void (*on_line)(proc_t *p, const proc_line_t *line, void *data);
    /** Optional. The result-protocol values after each line that changed them. */
    void (*on_values)(proc_t *p, const result_values_t *v, void *data);
    void *data;
    /** Optional. Called after a burst of on_line calls (the lines of one read, of one note by
     * cronvisor, of a pipe's end): a consumer may batch lines and hand them on here. */
    void (*on_lines_end)(proc_t *p, void *data);
} proc_callbacks_t;

/** Starts a run on loop (starting the reaper on that loop if needed). opts and everything it
 * points to are copied or used only during the call. On success returns 0 and stores the handle
 * in *out; the completion callback will follow, even if the command cannot be started.
 * Returns -EINVAL for invalid options (none or both of argv and command, empty argv, no
 * on_complete), or the error of reaper_start (-EBUSY: reaper bound to another loop). */
int proc_start(uv_loop_t *loop, const proc_opts_t *opts, const proc_callbacks_t *cbs, proc_t **out);

/** Sends sig to the run's whole process group (or session's group). Returns 0, -ESRCH when the
 * run has completed or never started, or -errno of kill(). */
int proc_signal_group(proc_t *p, int sig);

/** Cancels the run: marks it cancelled, sends SIGTERM to the group and SIGKILL grace_ms later
 * (at once when grace_ms is 0). The completion callback follows as usual. Returns 0, or -ESRCH
 * when it has already completed or never started. */
int proc_cancel(proc_t *p, uint64_t grace_ms);

/** Counters of every proc of the process (loop thread only), for /metrics. */
typedef struct proc_stats {
    uint64_t output_bytes; /* bytes read from the children's stdout and stderr */
    uint64_t throttled;    /* times an output pipe used up its read budget and yielded a pass */
} proc_stats_t;
void proc_stats_get(proc_stats_t *out);

/** Gives the proc back. After completion: frees it as soon as its handles are closed (safe from
 * inside its callbacks). Before completion: the process group is SIGKILLed, no completion
 * callback is delivered, and the memory is freed once the child is reaped and the pipes closed.
 * p must not be used afterwards. */
void proc_release(proc_t *p);

#endif
