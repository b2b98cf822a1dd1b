/* The exec probe: a command (shell string or argv) that must exit 0 before the deadline. It gets
 * the daemon's environment; at the deadline its process group is killed (proc_release). */
#include "actors/probe_int.h"
#include "actors/proc.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

typedef struct {
    probe_check_t *c;
    proc_t *proc;
} exec_impl_t;

/* The text of the last captured line ("<time> <stream> | text"), or "". */
static void last_line(const proc_result_t *r, char *buf, size_t len)
{
    buf[0] = '\0';
    if (r->output_len == 0)
        return;
    size_t end = r->output_len;
    while (end > 0 && r->output[end - 1] == '\n')
        end--;
    size_t start = end;
    while (start > 0 && r->output[start - 1] != '\n')
        start--;
    const char *line = r->output + start;
    const char *bar = memmem(line, end - start, " | ", 3);
    if (bar) {
        start = (size_t)(bar + 3 - r->output);
    }
    size_t n = end - start < len - 1 ? end - start : len - 1;
    memcpy(buf, r->output + start, n);
    buf[n] = '\0';
}

static void on_complete(proc_t *p, const proc_result_t *r, void *data)
{
    exec_impl_t *e = data;
    probe_check_t *c = e->c;
    free(e);
    proc_release(p);
    char msg[512], line[256];
    last_line(r, line, sizeof(line));
    bool ok = !r->spawn_failed && r->signal == 0 && r->exit_code == 0;
    if (r->spawn_failed)
        snprintf(msg, sizeof(msg), "cannot start: %s", r->error ? r->error : "unknown error");
    else if (r->signal)
        snprintf(msg, sizeof(msg), "killed by signal %d%s%s", r->signal, line[0] ? ": " : "", line);
    else
        snprintf(msg, sizeof(msg), "exit %d%s%s", r->exit_code, line[0] ? ": " : "", line);
    probe__done(c, ok, msg);
}

static void exec_start(probe_check_t *c)
{
    exec_impl_t *e = cv_calloc(1, sizeof(*e));
    e->c = c;
    c->impl = e;
    proc_opts_t o = {
        .argv = c->cfg->shell ? NULL : (const char *const *)c->cfg->argv,
        .command = c->cfg->shell,
        .env = (const char *const *)environ,
        .max_output = 4096,
    };
    proc_callbacks_t cbs = {.on_complete = on_complete, .data = e};
    int rc = proc_start(c->loop, &o, &cbs, &e->proc);
    if (rc != 0) {
        free(e);
        probe__done(c, false, "cannot start the command");
    }
}

static void exec_abort(probe_check_t *c)
{
    exec_impl_t *e = c->impl;
    proc_release(e->proc); /* kills the group; no completion follows */
    free(e);
}

const probe_type_t probe__exec = {"exec", NULL, exec_start, exec_abort};
