/* Bounded capture of a run's output: raw bytes of stdout and stderr are split into lines, each
 * stamped with the wall-clock time it completed and a stream tag, and kept within a fixed budget.
 *
 * Budget: at most max_bytes of rendered text. The first half keeps the first lines (the head);
 * once a line does not fit there, every later line goes to the second half, a ring that keeps the
 * last lines (the tail) by evicting the oldest. Between them, when anything was lost, the render
 * shows one marker line "[... N bytes dropped ...]" (N counts the job's bytes, newlines included,
 * that are in neither part). A job writing 1 GB therefore costs max_bytes of memory, not 1 GB.
 *
 * Rendered format (proc_output_render), one line per captured line:
 *
 *     2026-03-29T01:30:00.123Z stdout | text of the line
 *
 * i.e. RFC 3339 UTC time with milliseconds, a space, the stream tag (stdout, stderr, result,
 * result-error, system), " | ", the line without its newline, "\n". A line longer than line_max
 * bytes is cut into several lines of line_max bytes; a trailing "\r" is removed; bytes are kept
 * as they are (no UTF-8 validation), except NUL which is rendered as "?".
 *
 * Pure data structure: no loop, no I/O, not thread-safe. */
#ifndef CV_ACTORS_PROC_OUTPUT_H
#define CV_ACTORS_PROC_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    PROC_STREAM_STDOUT,
    PROC_STREAM_STDERR,
    PROC_STREAM_RESULT,       /* a {"message": ...} from the result protocol */
    PROC_STREAM_RESULT_ERROR, /* a rejected result-protocol line */
    PROC_STREAM_SYSTEM,       /* a note by cronvisor itself (timeout, signal sent, ...) */
    PROC_STREAM__COUNT
} proc_stream_t;

/** "stdout", "stderr", "result", "result-error", "system". */
const char *proc_output_stream_name(proc_stream_t s);

/** One line as handed to the line callback. text is NUL-terminated and valid only during the
 * call; len excludes the newline. */
typedef struct proc_line {
    int64_t ts_ms;
    proc_stream_t stream;
    const char *text;
    size_t len;
} proc_line_t;

typedef void (*proc_line_cb)(void *data, const proc_line_t *line);

typedef struct proc_output proc_output_t;

/** Default budget and longest line. */
#define PROC_OUTPUT_DEFAULT_MAX (1024 * 1024)
#define PROC_OUTPUT_LINE_MAX    (16 * 1024)

/** Creates an empty capture keeping at most max_bytes of rendered text (0 = the default) and
 * cutting lines at line_max bytes (0 = PROC_OUTPUT_LINE_MAX). on_line (may be NULL) is called for
 * every complete line, kept or not. Caller frees with proc_output_free. Aborts on out-of-memory. */
proc_output_t *proc_output_new(size_t max_bytes, size_t line_max, proc_line_cb on_line, void *data);
void proc_output_free(proc_output_t *o);

/** Feeds raw bytes read from the job's stdout or stderr at wall time now_ms; the bytes count in
 * proc_output_total_bytes. Cannot fail. */
void proc_output_feed(proc_output_t *o, proc_stream_t stream, const char *data, size_t len,
                      int64_t now_ms);
/** End of a stream: an unterminated last line is emitted as a line. Cannot fail. */
void proc_output_flush(proc_output_t *o, proc_stream_t stream, int64_t now_ms);
/** Adds one whole line produced by cronvisor (result message, result error, system note); cut at
 * line_max like any line; not counted in total bytes. Cannot fail. */
void proc_output_add_line(proc_output_t *o, proc_stream_t stream, const char *text, size_t len,
                          int64_t now_ms);

/** Renders the kept lines (head, marker, tail) as one heap string (caller frees); *len_out (may
 * be NULL) receives its length. Never more than max_bytes plus the marker line. */
char *proc_output_render(const proc_output_t *o, size_t *len_out);

/** Bytes fed through proc_output_feed (stdout + stderr), dropped ones included. */
uint64_t proc_output_total_bytes(const proc_output_t *o);
/** Bytes of lines (newlines included) that are in neither head nor tail. */
uint64_t proc_output_dropped_bytes(const proc_output_t *o);
/** Number of complete lines seen, kept or not. */
uint64_t proc_output_lines(const proc_output_t *o);

#endif
