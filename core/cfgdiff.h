/* What a configuration reload changes, section by section, and which changed keys cannot apply
 * without a restart (a reload naming any of them is refused whole). Names keys only, never
 * values: the summary is logged and a value may be a secret. */
#ifndef CV_CORE_CFGDIFF_H
#define CV_CORE_CFGDIFF_H

#include "core/config.h"

#include <stdbool.h>

/** Counts of a list compared by name: added, removed, changed. */
typedef struct cfgdiff_count {
    unsigned added, removed, changed;
} cfgdiff_count_t;

typedef struct cfgdiff {
    cfgdiff_count_t jobs, tokens, probes, notify;
    bool proxy;         /* auth.proxy changed (also named in applied) */
    char *applied;      /* other changed keys ("limits.max_concurrent, links"), or NULL */
    char *restart_only; /* changed keys that need a restart ("server.listen, storage.sqlite.path"),
                           comma-separated, or NULL: the reload is refused when set */
} cfgdiff_t;

/** Compares the running configuration old with the new one. Jobs, tokens, probes, notify,
 * limits, retention, defaults, links, cluster, auth.rate_* and the server.* bounds apply on
 * reload; server.listen, server.tls, storage.* and instance are restart_only. Fills *out (free
 * with cfgdiff_free). */
void cfgdiff_compare(const cfg_t *old, const cfg_t *new_cfg, cfgdiff_t *out);

/** One line for the log: "jobs +2 -1 ~3, tokens -1, probes +1, limits.max_concurrent" (zero
 * counts left out), then "; restart needed: server.listen" when restart_only is set, or "no
 * changes". Heap string, caller frees. */
char *cfgdiff_summary(const cfgdiff_t *d);

/** True when two probes (or two notifiers) have the same settings (the name aside). */
bool cfgdiff_probe_eq(const cfg_probe_t *a, const cfg_probe_t *b);
bool cfgdiff_notify_eq(const cfg_notify_t *a, const cfg_notify_t *b);

/** Frees what cfgdiff_compare allocated and zeroes *d. */
void cfgdiff_free(cfgdiff_t *d);

#endif
