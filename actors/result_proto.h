/* The result protocol: JSON lines a job writes on the file descriptor named by the environment
 * variable CRONVISOR_RESULT_FD to report counters, a summary, progress and messages.
 * The full description (keys, types, limits, errors) is in proto/RESULT_PROTOCOL.md.
 *
 * This module is a pure parser: bytes in, values and callbacks out. It knows nothing of pipes or
 * loops (actors/proc.c feeds it what it reads from the result pipe). A bad line never stops the
 * parser: it is reported through on_error and counted, and the next line is parsed normally. */
#ifndef CV_ACTORS_RESULT_PROTO_H
#define CV_ACTORS_RESULT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

/** Longest accepted line (without its newline) and longest summary (as compact JSON text). */
#define RESULT_PROTO_LINE_MAX    65536
#define RESULT_PROTO_SUMMARY_MAX 65536

/** What the job reported so far. */
typedef struct result_values {
    int64_t items_processed; /* 0 until reported */
    int64_t items_failed;    /* 0 until reported */
    double progress;         /* 0..1, -1 when never reported */
    char *summary_json;      /* last summary object as compact JSON text (owned), NULL if none */
    uint64_t lines;          /* lines accepted */
    uint64_t errors;         /* lines rejected */
} result_values_t;

typedef struct result_proto_callbacks {
    /** A {"message": "..."} value (NUL-terminated, len bytes). Optional. */
    void (*on_message)(void *data, const char *text, size_t len);
    /** A rejected line: msg says what is wrong, e.g. `result line 3: "progress" must be a number
     * between 0 and 1`; it quotes no value from the line. Optional. */
    void (*on_error)(void *data, const char *msg);
    /** Called after a line changed items_*, progress or summary. Optional. */
    void (*on_update)(void *data, const result_values_t *v);
    void *data;
} result_proto_callbacks_t;

/** Parser state. Treat as opaque; read values through `values`. */
typedef struct result_proto {
    result_values_t values;
    result_proto_callbacks_t cbs;
    cv_buf_t line;    /* partial line */
    bool overflow;    /* current line passed RESULT_PROTO_LINE_MAX: skip to its newline */
    uint64_t line_no; /* 1-based number of the line being read */
} result_proto_t;

/** Initialises rp (caller-owned memory) with the callbacks (copied; may be NULL). Cannot fail. */
void result_proto_init(result_proto_t *rp, const result_proto_callbacks_t *cbs);
/** Feeds raw bytes from the result pipe; complete lines are parsed and applied at once.
 * Callbacks run from inside this call. Cannot fail. */
void result_proto_feed(result_proto_t *rp, const char *data, size_t len);
/** End of stream: a last line without newline is parsed as if it had one. Cannot fail. */
void result_proto_finish(result_proto_t *rp);
/** Releases what rp owns (the summary text and the partial line). rp may be reinitialised. */
void result_proto_free(result_proto_t *rp);

/** Deep copy of values into *dst (dst's previous summary is not freed). */
void result_proto_values_copy(result_values_t *dst, const result_values_t *src);

#endif
