#include "proto/msg.h"
#include "core/cfgcheck.h"

#include <stdlib.h>
#include <string.h>

static void fire_dispose(cv_msg_t *m)
{
    msg_fire_t *f = (msg_fire_t *)m;
    free(f->job);
    free(f->trigger);
    free(f);
}

msg_fire_t *msg_fire_new(const char *job, const char *trigger, int64_t scheduled_for)
{
    msg_fire_t *f = cv_msg_new(sizeof(*f), MSG_FIRE);
    f->hdr.dispose = fire_dispose;
    f->job = cv_strdup(job);
    f->trigger = cv_strdup(trigger);
    f->scheduled_for = scheduled_for;
    f->attempt = 1;
    return f;
}

static void ping_dispose(cv_msg_t *m)
{
    msg_ping_t *p = (msg_ping_t *)m;
    free(p->job);
    free(p->body);
    free(p);
}

msg_ping_t *msg_ping_new(const char *job, ping_kind_t kind, int64_t at_ms, const char *body,
                         size_t len)
{
    msg_ping_t *p = cv_msg_new(sizeof(*p), MSG_PING);
    p->hdr.dispose = ping_dispose;
    p->job = cv_strdup(job);
    p->kind = kind;
    p->at_ms = at_ms;
    if (body != NULL && len > 0) {
        p->body = cv_malloc(len + 1);
        memcpy(p->body, body, len);
        p->body[len] = '\0';
        p->body_len = len;
    }
    p->items_processed = -1;
    p->items_failed = -1;
    return p;
}

const char *ping_kind_name(ping_kind_t k)
{
    return k == PING_START ? "start" : k == PING_FAIL ? "fail" : "success";
}

static void run_event_dispose(cv_msg_t *m)
{
    msg_run_event_t *e = (msg_run_event_t *)m;
    run_free(e->run);
    free(e);
}

msg_run_event_t *msg_run_event_new(run_ev_kind_t kind, const run_t *run)
{
    msg_run_event_t *e = cv_msg_new(sizeof(*e), MSG_RUN_EVENT);
    e->hdr.dispose = run_event_dispose;
    e->kind = kind;
    e->run = run_dup(run);
    return e;
}

msg_run_event_t *msg_run_event_share(run_ev_kind_t kind, const run_t *run)
{
    msg_run_event_t *e = cv_msg_new(sizeof(*e), MSG_RUN_EVENT);
    e->hdr.dispose = run_event_dispose;
    e->kind = kind;
    e->run = run_ref(run);
    return e;
}

static void output_dispose(cv_msg_t *m)
{
    msg_run_output_t *o = (msg_run_output_t *)m;
    free(o->lines);
    cv_buf_free(&o->text);
    free(o);
}

msg_run_output_t *msg_run_output_new(int64_t run_id)
{
    msg_run_output_t *o = cv_msg_new(sizeof(*o), MSG_RUN_OUTPUT);
    o->hdr.dispose = output_dispose;
    o->run_id = run_id;
    return o;
}

void msg_run_output_add(msg_run_output_t *o, int64_t at_ms, const char *stream, const char *line,
                        size_t len)
{
    /* Grows by doubling: n is a power of two exactly when the array is full. */
    if ((o->n & (o->n - 1)) == 0)
        o->lines = cv_realloc(o->lines, (o->n ? 2 * o->n : 1) * sizeof(*o->lines));
    o->lines[o->n++] =
        (msg_output_line_t){.at_ms = at_ms, .stream = stream, .off = o->text.len, .len = len};
    cv_buf_append(&o->text, line, len);
    cv_buf_append(&o->text, "", 1);
}

const char *msg_run_output_text(const msg_run_output_t *o, size_t i)
{
    return o->text.data + o->lines[i].off;
}

msg_run_output_t *msg_run_output_copy(const msg_run_output_t *o)
{
    msg_run_output_t *c = msg_run_output_new(o->run_id);
    for (size_t i = 0; i < o->n; i++)
        msg_run_output_add(c, o->lines[i].at_ms, o->lines[i].stream, msg_run_output_text(o, i),
                           o->lines[i].len);
    c->dropped = o->dropped;
    return c;
}

static void fire_reply_dispose(cv_msg_t *m)
{
    msg_fire_reply_t *r = (msg_fire_reply_t *)m;
    free(r->reason);
    free(r);
}

msg_fire_reply_t *msg_fire_reply_new(uint64_t corr, fire_outcome_t outcome, int64_t run_id,
                                     run_status_t status, const char *reason)
{
    msg_fire_reply_t *r = cv_msg_new(sizeof(*r), MSG_FIRE_REPLY);
    r->hdr.dispose = fire_reply_dispose;
    r->corr = corr;
    r->outcome = outcome;
    r->run_id = run_id;
    r->status = status;
    r->reason = reason ? cv_strdup(reason) : NULL;
    return r;
}

static void job_enable_dispose(cv_msg_t *m)
{
    msg_job_enable_t *e = (msg_job_enable_t *)m;
    free(e->job);
    free(e);
}

msg_job_enable_t *msg_job_enable_new(const char *job, bool enabled)
{
    msg_job_enable_t *e = cv_msg_new(sizeof(*e), MSG_JOB_ENABLE);
    e->hdr.dispose = job_enable_dispose;
    e->job = cv_strdup(job);
    e->enabled = enabled;
    return e;
}

const char *run_ev_kind_name(run_ev_kind_t k)
{
    static const char *const names[] = {"run.queued", "run.started", "run.progress",
                                        "run.finished"};
    return names[k];
}

static char *dup_opt(const char *s)
{
    return s ? cv_strdup(s) : NULL;
}

static void audit_dispose(cv_msg_t *m)
{
    msg_audit_t *a = (msg_audit_t *)m;
    free(a->actor);
    free(a->action);
    free(a->job);
    free(a->before);
    free(a->after);
    free(a);
}

msg_audit_t *msg_audit_new(const char *actor, const char *action, const char *job, int64_t run_id,
                           const char *before, const char *after)
{
    msg_audit_t *a = cv_msg_new(sizeof(*a), MSG_AUDIT);
    a->hdr.dispose = audit_dispose;
    a->actor = dup_opt(actor);
    a->action = dup_opt(action);
    a->job = dup_opt(job);
    a->run_id = run_id;
    a->before = dup_opt(before);
    a->after = dup_opt(after);
    return a;
}

static void override_dispose(cv_msg_t *m)
{
    msg_override_t *o = (msg_override_t *)m;
    free(o->job);
    free(o->field);
    free(o->value);
    free(o->by);
    free(o);
}

msg_override_t *msg_override_new(const char *job, const char *field, const char *value,
                                 const char *by)
{
    msg_override_t *o = cv_msg_new(sizeof(*o), MSG_OVERRIDE);
    o->hdr.dispose = override_dispose;
    o->job = dup_opt(job);
    o->field = dup_opt(field);
    o->value = dup_opt(value);
    o->by = dup_opt(by);
    return o;
}

static void exec_config_dispose(cv_msg_t *m)
{
    msg_exec_config_t *c = (msg_exec_config_t *)m;
    cfgref_put(c->cfg);
    free(c->summary);
    free(c);
}

msg_exec_config_t *msg_exec_config_new(struct cfgref *cfg)
{
    msg_exec_config_t *c = cv_msg_new(sizeof(*c), MSG_EXEC_CONFIG);
    c->hdr.dispose = exec_config_dispose;
    c->cfg = cfgref_get(cfg);
    return c;
}

/* ---- health ---- */

const char *health_status_name(health_status_t s)
{
    static const char *const names[] = {"unknown", "healthy", "degraded", "unhealthy"};
    return (unsigned)s < CV_ARRAY_SIZE(names) ? names[s] : "unknown";
}

/* Deep copy of src into dst (dst's previous content is not freed). */
static void health_result_copy(health_result_t *dst, const health_result_t *src)
{
    *dst = *src;
    dst->probe = dup_opt(src->probe);
    dst->message = dup_opt(src->message);
}

void health_result_clear(health_result_t *h)
{
    free(h->probe);
    free(h->message);
    memset(h, 0, sizeof(*h));
}

static void job_schedule_dispose(cv_msg_t *m)
{
    msg_job_schedule_t *s = (msg_job_schedule_t *)m;
    free(s->job);
    free(s->schedule);
    free(s->timezone);
    free(s);
}

msg_job_schedule_t *msg_job_schedule_new(const char *job, const char *schedule, const char *zone,
                                         bool enabled)
{
    msg_job_schedule_t *s = cv_msg_new(sizeof(*s), MSG_JOB_SCHEDULE);
    s->hdr.dispose = job_schedule_dispose;
    s->job = cv_strdup(job);
    s->schedule = cv_strdup(schedule);
    s->timezone = dup_opt(zone);
    s->enabled = enabled;
    return s;
}

static void health_dispose(cv_msg_t *m)
{
    msg_health_t *h = (msg_health_t *)m;
    health_result_clear(&h->h);
    free(h);
}

msg_health_t *msg_health_new(const health_result_t *h, health_status_t previous)
{
    msg_health_t *m = cv_msg_new(sizeof(*m), MSG_HEALTH);
    m->hdr.dispose = health_dispose;
    health_result_copy(&m->h, h);
    m->previous = previous;
    return m;
}

static void health_query_dispose(cv_msg_t *m)
{
    msg_health_query_t *q = (msg_health_query_t *)m;
    free(q->probe);
    free(q);
}

msg_health_query_t *msg_health_query_new(int type, const char *probe, cv_actor_t *reply_to,
                                         uint64_t corr)
{
    msg_health_query_t *q = cv_msg_new(sizeof(*q), type);
    q->hdr.dispose = health_query_dispose;
    q->probe = dup_opt(probe);
    q->reply_to = reply_to;
    q->corr = corr;
    return q;
}

static void health_list_dispose(cv_msg_t *m)
{
    msg_health_list_t *l = (msg_health_list_t *)m;
    for (size_t i = 0; i < l->count; i++)
        health_result_clear(&l->items[i]);
    free(l->items);
    free(l->error);
    free(l);
}

msg_health_list_t *msg_health_list_new(uint64_t corr, const health_result_t *items, size_t count,
                                       const char *error)
{
    msg_health_list_t *l = cv_msg_new(sizeof(*l), MSG_HEALTH_LIST);
    l->hdr.dispose = health_list_dispose;
    l->corr = corr;
    l->items = cv_calloc(count ? count : 1, sizeof(*l->items));
    for (size_t i = 0; i < count; i++)
        health_result_copy(&l->items[i], &items[i]);
    l->count = count;
    l->error = dup_opt(error);
    return l;
}

/* ---- notifications ---- */

void notify_record_copy(notify_record_t *dst, const notify_record_t *src)
{
    *dst = *src;
    dst->notifier = dup_opt(src->notifier);
    dst->event = dup_opt(src->event);
    dst->subject = dup_opt(src->subject);
    dst->last_error = dup_opt(src->last_error);
}

void notify_record_clear(notify_record_t *r)
{
    free(r->notifier);
    free(r->event);
    free(r->subject);
    free(r->last_error);
    memset(r, 0, sizeof(*r));
}

static void notify_list_dispose(cv_msg_t *m)
{
    msg_notify_list_t *l = (msg_notify_list_t *)m;
    for (size_t i = 0; i < l->count; i++)
        notify_record_clear(&l->items[i]);
    free(l->items);
    free(l);
}

msg_notify_list_t *msg_notify_list_new(uint64_t corr, notify_record_t *items, size_t count)
{
    msg_notify_list_t *l = cv_msg_new(sizeof(*l), MSG_NOTIFY_LIST);
    l->hdr.dispose = notify_list_dispose;
    l->corr = corr;
    l->items = items;
    l->count = count;
    return l;
}

msg_audit_t *msg_audit_dup(const msg_audit_t *a)
{
    return msg_audit_new(a->actor, a->action, a->job, a->run_id, a->before, a->after);
}

static void claim_dispose(cv_msg_t *m)
{
    msg_claim_t *c = (msg_claim_t *)m;
    run_free(c->run);
    free(c);
}

msg_claim_t *msg_claim_new(const run_t *run, cv_actor_t *reply_to, uint64_t corr)
{
    msg_claim_t *c = cv_msg_new(sizeof(*c), MSG_CLAIM);
    c->hdr.dispose = claim_dispose;
    c->run = run_dup(run);
    c->reply_to = reply_to;
    c->corr = corr;
    return c;
}

msg_store_state_t *msg_store_state_new(int health, uint64_t spooled, uint64_t spool_bytes,
                                       uint64_t dropped)
{
    msg_store_state_t *m = cv_msg_new(sizeof(*m), MSG_STORE_STATE);
    m->health = health;
    m->spooled = spooled;
    m->spool_bytes = spool_bytes;
    m->dropped = dropped;
    return m;
}

static void claim_reply_dispose(cv_msg_t *m)
{
    msg_claim_reply_t *r = (msg_claim_reply_t *)m;
    for (size_t i = 0; i < r->nothers; i++)
        free(r->other_instance[i]);
    free(r);
}

msg_claim_reply_t *msg_claim_reply_new(uint64_t corr, int status, int64_t run_id)
{
    msg_claim_reply_t *r = cv_msg_new(sizeof(*r), MSG_CLAIM_REPLY);
    r->hdr.dispose = claim_reply_dispose;
    r->corr = corr;
    r->status = status;
    r->run_id = run_id;
    r->done_ns = cv_mono_ns();
    return r;
}

static void instance_beat_dispose(cv_msg_t *m)
{
    msg_instance_beat_t *b = (msg_instance_beat_t *)m;
    free(b->id);
    free(b);
}

msg_instance_beat_t *msg_instance_beat_new(const char *id, int64_t last_seen)
{
    msg_instance_beat_t *b = cv_msg_new(sizeof(*b), MSG_INSTANCE_BEAT);
    b->hdr.dispose = instance_beat_dispose;
    b->id = id ? cv_strdup(id) : NULL;
    b->last_seen = last_seen;
    return b;
}

static void cancel_dispose(cv_msg_t *m)
{
    free(((msg_cancel_t *)m)->by);
    free(m);
}

msg_cancel_t *msg_cancel_new(int64_t run_id, const char *by)
{
    msg_cancel_t *c = cv_msg_new(sizeof(*c), MSG_CANCEL);
    c->hdr.dispose = cancel_dispose;
    c->run_id = run_id;
    c->by = dup_opt(by);
    return c;
}

/* ---- reload through the API ---- */

static void reload_dispose(cv_msg_t *m)
{
    free(((msg_reload_t *)m)->by);
    free(m);
}

msg_reload_t *msg_reload_new(const char *by, cv_actor_t *reply_to, uint64_t corr)
{
    msg_reload_t *r = cv_msg_new(sizeof(*r), MSG_RELOAD);
    r->hdr.dispose = reload_dispose;
    r->by = dup_opt(by);
    r->reply_to = reply_to;
    r->corr = corr;
    return r;
}

static void reload_reply_dispose(cv_msg_t *m)
{
    msg_reload_reply_t *r = (msg_reload_reply_t *)m;
    free(r->changed);
    free(r->errors);
    free(r);
}

msg_reload_reply_t *msg_reload_reply_new(uint64_t corr, reload_outcome_t outcome,
                                         const char *changed, const char *errors)
{
    msg_reload_reply_t *r = cv_msg_new(sizeof(*r), MSG_RELOAD_REPLY);
    r->hdr.dispose = reload_reply_dispose;
    r->corr = corr;
    r->outcome = outcome;
    r->changed = dup_opt(changed);
    r->errors = dup_opt(errors);
    return r;
}
