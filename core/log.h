/* Logging: one line per event, human-readable or JSON lines, to stderr.
 *
 * Every secret the configuration expands (tokens, passwords, secret headers) is registered with
 * cv_secret_register(); the logger replaces any occurrence of a registered secret with "***"
 * before a line is written, so a secret cannot reach the log even through an error message. */
#ifndef CV_CORE_LOG_H
#define CV_CORE_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { CV_LOG_DEBUG, CV_LOG_INFO, CV_LOG_WARN, CV_LOG_ERROR } cv_log_level_t;

/** Sets the minimum level and the format (json = true for JSON lines). Not thread-safe: call at
 * start-up. */
void cv_log_setup(cv_log_level_t min, bool json);
/** Parses "debug", "info", "warn", "error". Returns 0 or -EINVAL. */
int cv_log_level_parse(const char *s, cv_log_level_t *out);

/** Logs a message from a component ("sched", "exec", ...). Thread-safe. */
void cv_log(cv_log_level_t lvl, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define cv_debug(comp, ...) cv_log(CV_LOG_DEBUG, comp, __VA_ARGS__)
#define cv_info(comp, ...)  cv_log(CV_LOG_INFO, comp, __VA_ARGS__)
#define cv_warn(comp, ...)  cv_log(CV_LOG_WARN, comp, __VA_ARGS__)
#define cv_error(comp, ...) cv_log(CV_LOG_ERROR, comp, __VA_ARGS__)

/** Registers a secret value (copied; values shorter than 4 bytes are ignored). Thread-safe. */
void cv_secret_register(const char *value);
/** Returns a heap copy of s with every registered secret replaced by "***" (caller frees). */
char *cv_secret_redact(const char *s);
/** Forgets every registered secret (tests). */
void cv_secret_clear(void);

#endif
