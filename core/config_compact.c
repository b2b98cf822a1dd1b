/* Configuration: the jobs' text moved into one block once a configuration is loaded.
 *
 * libcyaml and the reader allocate every string of every job on its own (10,000 jobs: ~110,000
 * allocations, each with its malloc header, spread between the loader's temporary trees). Once
 * the configuration is complete, its jobs' strings are copied end to end into cfg->job_text and
 * the originals freed, so that the text every actor reads (and the API shows) is stored once,
 * compactly, and the loader's heap can be given back (cv_trim): the jobs' arrays (argv, tags,
 * env, ...) move too, first in the block, and the map of job names is built again, so that no
 * small allocation of the loader's is left to pin its pages. */
#include "core/config_int.h"

#include <stdlib.h>
#include <string.h>

typedef void (*str_fn)(char **s, void *ud);

static void strv_each(char **v, unsigned n, str_fn fn, void *ud)
{
    for (unsigned i = 0; v && i < n; i++)
        fn(&v[i], ud);
}

static void kv_each(cfg_kv_t *kv, unsigned n, str_fn fn, void *ud)
{
    for (unsigned i = 0; kv && i < n; i++) {
        fn(&kv[i].key, ud);
        fn(&kv[i].value, ud);
    }
}

/* Calls fn on the address of every string of j (a NULL one included). */
static void job_strings(cfg_job_t *j, str_fn fn, void *ud)
{
    char **scalars[] = {&j->name,           &j->title,     &j->description, &j->schedule,
                        &j->schedule_human, &j->timezone,  &j->shell,       &j->http.method,
                        &j->http.url,       &j->http.body, &j->ping.key,    &j->workdir};
    for (size_t i = 0; i < CV_ARRAY_SIZE(scalars); i++)
        fn(scalars[i], ud);
    strv_each(j->argv, j->argc, fn, ud);
    kv_each(j->http.headers, j->http.n_headers, fn, ud);
    kv_each(j->env, j->n_env, fn, ud);
    strv_each(j->requires, j->n_requires, fn, ud);
    strv_each(j->tags, j->n_tags, fn, ud);
    strv_each(j->on_success, j->n_on_success, fn, ud);
    strv_each(j->on_failure, j->n_on_failure, fn, ud);
    strv_each(j->on_complete, j->n_on_complete, fn, ud);
}

static void count(char **s, void *ud)
{
    if (*s != NULL)
        *(size_t *)ud += strlen(*s) + 1;
}

static void move(char **s, void *ud)
{
    char **at = ud;
    if (*s == NULL)
        return;
    size_t n = strlen(*s) + 1;
    memcpy(*at, *s, n);
    free(*s);
    *s = *at;
    *at += n;
}

/* The arrays of j: their address and size in bytes (argv with its NULL). */
typedef struct job_array {
    void **p;
    size_t bytes;
} job_array_t;

static size_t job_arrays(cfg_job_t *j, job_array_t out[9])
{
    job_array_t a[] = {
        {(void **)&j->argv, (j->argc + 1) * sizeof(char *)},
        {(void **)&j->http.headers, j->http.n_headers * sizeof(cfg_kv_t)},
        {(void **)&j->http.expect_status, j->http.n_expect_status * sizeof(int)},
        {(void **)&j->env, j->n_env * sizeof(cfg_kv_t)},
        {(void **)&j->requires, j->n_requires * sizeof(char *)},
        {(void **)&j->tags, j->n_tags * sizeof(char *)},
        {(void **)&j->on_success, j->n_on_success * sizeof(char *)},
        {(void **)&j->on_failure, j->n_on_failure * sizeof(char *)},
        {(void **)&j->on_complete, j->n_on_complete * sizeof(char *)},
    };
    memcpy(out, a, sizeof(a));
    return CV_ARRAY_SIZE(a);
}

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* The map of job names built again: its keys were copied among the loader's allocations. */
static void reindex(cfg_t *cfg)
{
    cv_strmap_t fresh = {0};
    for (size_t i = 0; i < cfg->job_index.cap; i++)
        if (cfg->job_index.keys[i] != NULL)
            cv_strmap_put(&fresh, cfg->job_index.keys[i], cfg->job_index.values[i]);
    cv_strmap_free(&cfg->job_index, NULL);
    cfg->job_index = fresh;
}

void cfg__compact_jobs(cfg_t *cfg)
{
    if (cfg->job_text != NULL || cfg->n_jobs == 0)
        return;
    job_array_t arr[9];
    size_t arrays = 0, text = 0;
    for (unsigned i = 0; i < cfg->n_jobs; i++) {
        size_t n = job_arrays(&cfg->jobs[i], arr);
        for (size_t k = 0; k < n; k++)
            arrays += *arr[k].p ? align8(arr[k].bytes) : 0;
        job_strings(&cfg->jobs[i], count, &text);
    }
    cfg->job_text_len = arrays + text;
    cfg->job_text = cv_malloc(arrays + text + 1);
    char *arr_at = cfg->job_text, *str_at = cfg->job_text + arrays;
    for (unsigned i = 0; i < cfg->n_jobs; i++) {
        size_t n = job_arrays(&cfg->jobs[i], arr);
        for (size_t k = 0; k < n; k++) {
            if (*arr[k].p == NULL)
                continue;
            memcpy(arr_at, *arr[k].p, arr[k].bytes);
            free(*arr[k].p);
            *arr[k].p = arr_at;
            arr_at += align8(arr[k].bytes);
        }
        job_strings(&cfg->jobs[i], move, &str_at);
    }
    reindex(cfg);
}
