/* What a configuration reload changes, section by section, and which of those changes the
 * running daemon applies (the rest waits for a restart). Names keys only, never values: the
 * summary is logged and a value may be a secret. */
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
    char *applied; /* other changed keys applied at once ("limits.max_concurrent, ..."), or NULL */
    char *not_applied; /* changed keys that need a restart ("probes (+1 -0 ~0), server.listen"), or
                          NULL */
} cfgdiff_t;

/** Compares the running configuration old with the new one. Jobs, tokens, limits, retention,
 * defaults, links and cluster apply on reload; probes, notify, server, storage and instance do
 * not. Fills *out (free with cfgdiff_free). */
void cfgdiff_compare(const cfg_t *old, const cfg_t *new_cfg, cfgdiff_t *out);

/** One line for the log: "jobs +1 -0 ~2, tokens +0 -1 ~0; not applied until restart: probes
 * (+1 -0 ~0), server.listen", or "no changes". Heap string, caller frees. */
char *cfgdiff_summary(const cfgdiff_t *d);

/** Frees what cfgdiff_compare allocated and zeroes *d. */
void cfgdiff_free(cfgdiff_t *d);

#endif
