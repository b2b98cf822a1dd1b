/* The executor with a shared store (several daemons on one PostgreSQL database): before a run
 * runs, its row is inserted as QUEUED through the store actor. The database assigns the id (no
 * local counter could be unique across instances), and for a cron or catch-up first attempt the
 * insert is the claim of the firing: one instance wins, the others get -EEXIST and forget the
 * firing without recording anything. For jobs with concurrency forbid or replace the claim also
 * reports the job's runs active on other live instances: the winner then records SKIPPED
 * (forbid), or asks their owners to cancel them (replace). */
#include "actors/exec_int.h"
#include "core/log.h"
#include "storage/schema.h"
#include "actors/store_actor.h"

#include <jansson.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct claim {
    cv_list_t link;
    exec__run_t *xr;
    msg_fire_t *fire; /* a copy, for exec__admit and its reply */
    uint64_t corr;
    uint64_t sent_ns;
} claim_t;

static msg_fire_t *fire_copy(const msg_fire_t *f)
{
    msg_fire_t *c = msg_fire_new(f->job, f->trigger, f->scheduled_for);
    c->attempt = f->attempt;
    c->retry_of = f->retry_of;
    c->reply_to = f->reply_to;
    c->corr = f->corr;
    return c;
}

void exec__claim(exec__run_t *xr, const msg_fire_t *f)
{
    executor_t *ex = xr->ex;
    claim_t *c = cv_calloc(1, sizeof(*c));
    c->xr = xr;
    c->fire = fire_copy(f);
    c->corr = ++ex->claim_corr;
    c->sent_ns = cv_mono_ns();
    xr->run->id = 0;
    xr->run->status = RUN_QUEUED;
    cv_list_insert_tail(&ex->claims, &c->link);
    ex->nclaiming++;
    msg_claim_t *m = msg_claim_new(xr->run, ex->actor, c->corr);
    /* forbid and replace hold across instances: the claim also finds the job's runs active on
     * the instances that still heart-beat (exec__admit acts on them) */
    if (xr->job->concurrency != CFG_CONC_ALLOW)
        m->live_since = cv_now_ms() - xr->cfg->cfg->cluster.heartbeat_timeout_ms;
    cv_actor_post(ex->store, &m->hdr);
}

void exec__cancel_elsewhere(exec__run_t *xr)
{
    executor_t *ex = xr->ex;
    for (size_t i = 0; i < xr->nothers; i++) {
        char *by = cv_sprintf("run %lld on instance %s (concurrency: replace)",
                              (long long)xr->run->id, ex->instance);
        json_t *o = json_pack("{s:I,s:s,s:s}", "run", (json_int_t)xr->other_run[i], "instance",
                              i == 0 && xr->other_instance ? xr->other_instance : "", "by", by);
        if (i > 0) /* only the first one's owner is known: any instance owning it acts */
            json_object_del(o, "instance");
        msg_store_req_t *c = store_req_new(STORE_OP_NOTIFY, NULL, 0, NULL, NULL);
        c->a.channel = cv_strdup(STORE_CHANNEL_CANCEL);
        c->a.payload = json_dumps(o, JSON_COMPACT);
        cv_info("exec",
                "job %s: run %lld replaces run %lld on another instance: asking it to cancel",
                xr->run->job, (long long)xr->run->id, (long long)xr->other_run[i]);
        cv_actor_post(ex->store, &c->hdr);
        json_decref(o);
        free(by);
    }
}

static void claim_free(claim_t *c)
{
    c->fire->hdr.dispose(&c->fire->hdr);
    free(c);
}

void exec__claim_reply(executor_t *ex, const msg_claim_reply_t *m)
{
    claim_t *c = NULL;
    for (cv_list_t *n = ex->claims.next; n != &ex->claims; n = n->next) {
        claim_t *k = cv_container_of(n, claim_t, link);
        if (k->corr == m->corr) {
            c = k;
            break;
        }
    }
    if (c == NULL)
        return;
    cv_list_remove(&c->link);
    ex->nclaiming--;
    exec__run_t *xr = c->xr;
    const run_t *r = xr->run;
    /* store: until the commit was seen; here: until this reply is handled, which includes the
     * runs started for the claims answered before it in the same batch */
    long long us = (long long)((cv_mono_ns() - c->sent_ns) / 1000);
    long long store_us = (long long)((m->done_ns - c->sent_ns) / 1000);
    if (m->status == 0) {
        xr->run->id = m->run_id;
        xr->persisted = true;
        xr->nothers = m->nothers;
        for (size_t i = 0; i < m->nothers; i++)
            xr->other_run[i] = m->other_run[i];
        if (m->nothers > 0)
            xr->other_instance = cv_strdup(m->other_instance[0]);
        cv_debug("exec", "run %lld job=%s claimed in %lldus (store %lldus)", (long long)m->run_id,
                 r->job, us, store_us);
        exec__admit(xr, c->fire);
    } else if (m->status == -EAGAIN) {
        /* The database is unreachable (the store spools): the run gets a provisional id, and the
         * database assigns the real one when the spool is written back. */
        bool firing = strcmp(r->trigger, "cron") == 0 && r->attempt == 1;
        xr->run->id = ex->next_provisional--;
        xr->persisted = false;
        if (firing && xr->job->on_store_outage == CFG_OUTAGE_SKIP) {
            exec__skip_unclaimed(xr, c->fire,
                                 "skipped: the store was unreachable, the firing could not be "
                                 "claimed (on_store_outage: skip)");
        } else {
            cv_info("exec", "job %s: the store is unreachable: run %lld starts unclaimed%s", r->job,
                    (long long)xr->run->id, firing ? " (on_store_outage: run)" : "");
            exec__admit(xr, c->fire);
        }
    } else if (m->status == -EEXIST) {
        cv_debug(
            "exec",
            "job %s: the firing at %lld was claimed by another instance (%lldus, store %lldus)",
            r->job, (long long)r->scheduled_for, us, store_us);
        exec__drop(xr);
    } else {
        cv_warn("exec", "job %s: firing at %lld not run: it could not be recorded (%s)", r->job,
                (long long)r->scheduled_for, strerror(-m->status));
        exec__drop(xr);
    }
    claim_free(c);
}

void exec__claims_free(executor_t *ex)
{
    while (!cv_list_empty(&ex->claims)) {
        claim_t *c = cv_container_of(ex->claims.next, claim_t, link);
        cv_list_remove(&c->link);
        ex->nclaiming--;
        exec__drop(c->xr);
        claim_free(c);
    }
}
