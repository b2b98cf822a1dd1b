#include "core/reaper.h"

#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "core/log.h"

#define NBUCKETS 64

/* Process-wide state: there is one SIGCHLD and one set of children per process. */
static struct {
    uv_signal_t sig;
    uv_loop_t *loop; /* bound loop; NULL when stopped and closed */
    bool running;    /* started and not stopped */
    bool init;       /* buckets initialised */
    cv_list_t buckets[NBUCKETS];
    unsigned nwatched;
    uint64_t orphans;
    reaper_orphan_cb orphan_cb;
    void *orphan_data;
} R;

static cv_list_t *bucket(pid_t pid)
{
    if (!R.init) {
        for (int i = 0; i < NBUCKETS; i++)
            cv_list_init(&R.buckets[i]);
        R.init = true;
    }
    return &R.buckets[(unsigned)pid % NBUCKETS];
}

/* Only a registered child should keep the loop running. */
static void update_ref(void)
{
    if (!R.running)
        return;
    if (R.nwatched > 0)
        uv_ref((uv_handle_t *)&R.sig);
    else
        uv_unref((uv_handle_t *)&R.sig);
}

static int64_t tv_ms(struct timeval tv)
{
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Cancels a registration that has not fired. */
static void reaper_unwatch(reaper_watch_t *w)
{
    if (w->pid <= 0)
        return;
    cv_list_remove(&w->link);
    w->pid = 0;
    R.nwatched--;
    update_ref();
}

static void dispatch(pid_t pid, int status, const struct rusage *ru)
{
    cv_list_t *h = bucket(pid);
    for (cv_list_t *n = h->next; n != h; n = n->next) {
        reaper_watch_t *w = cv_container_of(n, reaper_watch_t, link);
        if (w->pid != pid)
            continue;
        reaper_usage_t u = {.max_rss_kb = ru->ru_maxrss,
                            .cpu_user_ms = tv_ms(ru->ru_utime),
                            .cpu_sys_ms = tv_ms(ru->ru_stime)};
        reaper_unwatch(w);
        w->cb(w, pid, status, &u);
        return;
    }
    R.orphans++;
    cv_debug("reaper", "reaped orphan pid %d (status 0x%x)", (int)pid, status);
    if (R.orphan_cb)
        R.orphan_cb(R.orphan_data, pid, status);
}

unsigned reaper_poll(void)
{
    unsigned n = 0;
    for (;;) {
        int status;
        struct rusage ru;
        pid_t pid = wait4(-1, &status, WNOHANG, &ru);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid <= 0)
            return n; /* 0: children left but none exited; ECHILD: no children */
        n++;
        dispatch(pid, status, &ru);
    }
}

static void on_sigchld(uv_signal_t *h, int signum)
{
    reaper_poll();
}

static void on_closed(uv_handle_t *h)
{
    R.loop = NULL;
}

int reaper_start(uv_loop_t *loop)
{
    if (R.running)
        return R.loop == loop ? 0 : -EBUSY;
    if (R.loop != NULL)
        return -EBUSY; /* still closing */
    int rc = uv_signal_init(loop, &R.sig);
    if (rc < 0)
        return rc;
    rc = uv_signal_start(&R.sig, on_sigchld, SIGCHLD);
    if (rc < 0) {
        uv_close((uv_handle_t *)&R.sig, on_closed);
        R.loop = loop;
        return rc;
    }
    R.loop = loop;
    R.running = true;
    update_ref();
    reaper_poll();
    return 0;
}

void reaper_stop(void)
{
    if (!R.running)
        return;
    R.running = false;
    uv_close((uv_handle_t *)&R.sig, on_closed);
}

int reaper_watch(reaper_watch_t *w, pid_t pid, reaper_exit_cb cb)
{
    if (pid <= 0 || cb == NULL)
        return -EINVAL;
    if (!R.running)
        return -ENOTCONN;
    w->pid = pid;
    w->cb = cb;
    cv_list_insert_tail(bucket(pid), &w->link);
    R.nwatched++;
    update_ref();
    return 0;
}

int reaper_set_subreaper(bool on)
{
    if (prctl(PR_SET_CHILD_SUBREAPER, on ? 1UL : 0UL, 0UL, 0UL, 0UL) < 0)
        return -errno;
    return 0;
}

uint64_t reaper_orphans_reaped(void)
{
    return R.orphans;
}

void reaper_set_orphan_cb(reaper_orphan_cb cb, void *data)
{
    R.orphan_cb = cb;
    R.orphan_data = data;
}
