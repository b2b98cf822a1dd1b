/* Command runs: the child's environment, proc_start, live output and result values, and the
 * status a finished process earns. */
#include "actors/exec_int.h"
#include "core/log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

#define PROGRESS_MIN_INTERVAL_MS 100

/* The child's environment: the daemon's own entries are borrowed (they outlive proc_start, which
 * copies what it needs), the rest are ours from `owned` on. */
typedef struct {
    char **items;
    size_t n, cap, owned;
} env_t;

static void env_add(env_t *e, char *entry)
{
    if (e->n + 2 > e->cap) {
        e->cap = e->cap ? e->cap * 2 : 64;
        e->items = cv_realloc(e->items, e->cap * sizeof(char *));
    }
    e->items[e->n++] = entry;
    e->items[e->n] = NULL;
}

static bool env_overridden(const cfg_job_t *job, const char *entry)
{
    const char *eq = strchr(entry, '=');
    size_t klen = eq ? (size_t)(eq - entry) : strlen(entry);
    if (klen >= 10 && strncmp(entry, "CRONVISOR_", 10) == 0)
        return true;
    for (unsigned i = 0; i < job->n_env; i++)
        if (strlen(job->env[i].key) == klen && strncmp(job->env[i].key, entry, klen) == 0)
            return true;
    return false;
}

/* The daemon's environment, then the job's env, then the CRONVISOR_* variables. */
static env_t build_env(const exec__run_t *xr)
{
    const cfg_job_t *job = xr->job;
    const run_t *r = xr->run;
    env_t e = {0};
    for (char **p = environ; p && *p; p++)
        if (!env_overridden(job, *p))
            env_add(&e, *p);
    e.owned = e.n;
    for (unsigned i = 0; i < job->n_env; i++)
        env_add(&e, cv_sprintf("%s=%s", job->env[i].key, job->env[i].value));
    char when[40];
    cv_format_utc(r->scheduled_for / 1000, when, sizeof(when));
    env_add(&e, cv_sprintf("CRONVISOR_JOB=%s", r->job));
    env_add(&e, cv_sprintf("CRONVISOR_RUN_ID=%lld", (long long)r->id));
    env_add(&e, cv_sprintf("CRONVISOR_TRIGGER=%s", r->trigger));
    env_add(&e, cv_sprintf("CRONVISOR_SCHEDULED_FOR=%s", when));
    env_add(&e, cv_sprintf("CRONVISOR_ATTEMPT=%d", r->attempt));
    env_add(&e, cv_sprintf("CRONVISOR_INSTANCE=%s", r->instance));
    return e;
}

static void env_free(env_t *e)
{
    for (size_t i = e->owned; i < e->n; i++)
        free(e->items[i]);
    free(e->items);
}

static void on_line(proc_t *p, const proc_line_t *line, void *data)
{
    exec__run_t *xr = data;
    exec__output(xr, line->ts_ms, proc_output_stream_name(line->stream), line->text, line->len);
}

static void on_lines_end(proc_t *p, void *data)
{
    exec__output_flush(data);
}

static void on_values(proc_t *p, const result_values_t *v, void *data)
{
    exec__run_t *xr = data;
    run_t *r = xr->run;
    r->items_processed = v->items_processed;
    r->items_failed = v->items_failed;
    r->progress = v->progress;
    int64_t now = cv_now_ms();
    if (now - xr->last_progress_ms >= PROGRESS_MIN_INTERVAL_MS) {
        xr->last_progress_ms = now;
        cv_debug("exec", "run %lld progress=%.2f items=%lld/%lld", (long long)r->id, r->progress,
                 (long long)r->items_processed, (long long)r->items_failed);
        exec__publish(xr, RUN_EV_PROGRESS, false);
    }
}

static char *describe_exit(const proc_result_t *res)
{
    if (res->signal)
        return cv_sprintf("killed by signal %d (SIG%s)", res->signal,
                          sigabbrev_np(res->signal) ? sigabbrev_np(res->signal) : "?");
    return cv_sprintf("exit code %d", res->exit_code);
}

static run_status_t status_of(const exec__run_t *xr, const proc_result_t *res)
{
    if (res->timed_out)
        return RUN_TIMED_OUT;
    if (res->cancelled)
        return RUN_CANCELLED;
    if (res->spawn_failed || res->signal || res->exit_code != 0)
        return RUN_FAILED;
    return res->values.items_failed > 0 ? RUN_PARTIAL : RUN_SUCCESS;
}

static char *error_of(const exec__run_t *xr, const proc_result_t *res, run_status_t st)
{
    switch (st) {
    case RUN_TIMED_OUT:
        return cv_sprintf("timed out after %lldms", (long long)xr->job->timeout_ms);
    case RUN_CANCELLED:
        return cv_strdup(xr->cancel_reason ? xr->cancel_reason : "cancelled");
    case RUN_FAILED:
        return res->error ? cv_strdup(res->error) : describe_exit(res);
    case RUN_PARTIAL:
        return cv_sprintf("%lld item(s) failed", (long long)res->values.items_failed);
    default:
        return NULL;
    }
}

static void on_complete(proc_t *p, const proc_result_t *res, void *data)
{
    exec__run_t *xr = data;
    run_t *r = xr->run;
    r->status = status_of(xr, res);
    free(r->error);
    r->error = error_of(xr, res, r->status);
    r->exit_code = res->exit_code;
    r->signal = res->signal;
    if (res->started_at_ms)
        r->started_at = res->started_at_ms;
    r->finished_at = res->exited_at_ms ? res->exited_at_ms : cv_now_ms();
    r->duration_ms = res->duration_ms;
    r->max_rss_kb = res->max_rss_kb;
    r->cpu_user_ms = res->cpu_user_ms;
    r->cpu_sys_ms = res->cpu_sys_ms;
    r->output_bytes = (int64_t)res->output_bytes;
    free(r->output_tail);
    r->output_tail = cv_strndup(res->output, res->output_len);
    r->items_processed = res->values.items_processed;
    r->items_failed = res->values.items_failed;
    r->progress = res->values.progress;
    free(r->summary_json);
    r->summary_json = res->values.summary_json ? cv_strdup(res->values.summary_json) : NULL;
    exec__output_flush(xr); /* the last lines before the run's end */
    proc_release(p);
    xr->proc = NULL;
    exec__finished(xr);
}

void exec__spawn(exec__run_t *xr)
{
    const cfg_job_t *job = xr->job;
    env_t env = build_env(xr);
    proc_opts_t o = {
        .argv = job->action == CFG_ACTION_ARGV ? (const char *const *)job->argv : NULL,
        .command = job->action == CFG_ACTION_SHELL ? job->shell : NULL,
        .env = (const char *const *)env.items,
        .cwd = job->workdir,
        .timeout_ms = (uint64_t)job->timeout_ms,
        .kill_grace_ms = (uint64_t)job->kill_grace_ms,
        .max_output = (size_t)job->max_output,
        .read_budget = (size_t)xr->cfg->cfg->limits.output_read_budget,
        .not_before_ns = exec__not_before_ns(xr),
    };
    proc_callbacks_t cbs = {.on_complete = on_complete,
                            .on_line = on_line,
                            .on_lines_end = on_lines_end,
                            .on_values = on_values,
                            .data = xr};
    uv_loop_t *loop = cv_runtime_loop(cv_actor_runtime(xr->ex->actor));
    int rc = proc_start(loop, &o, &cbs, &xr->proc);
    env_free(&env);
    if (rc != 0) {
        xr->run->status = RUN_FAILED;
        xr->run->error = cv_sprintf("could not start: %s", strerror(-rc));
        exec__finished(xr);
    }
}

void exec__stop(exec__run_t *xr, int64_t grace_ms, const char *reason)
{
    if (xr->cancel_reason == NULL)
        xr->cancel_reason = cv_strdup(reason);
    if (xr->proc)
        proc_cancel(xr->proc, (uint64_t)grace_ms);
    else if (xr->xfer)
        httpc_cancel(xr->xfer);
}
