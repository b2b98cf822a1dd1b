/* A hash map from 64-bit ids (run ids) to pointers: open addressing, linear probing, and
 * deletion by backward shift (no tombstones), so a map whose entries come and go, like the runs
 * active at one moment, stays as short to probe as its live count allows. */
#ifndef CV_CORE_IDMAP_H
#define CV_CORE_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct cv_idmap {
    int64_t *keys;
    void **values; /* NULL marks an empty slot: values are never NULL */
    size_t cap, count;
} cv_idmap_t;

/** The value stored under id, or NULL. */
void *cv_idmap_get(const cv_idmap_t *m, int64_t id);
/** Stores value (not NULL) under id, replacing any. Aborts on out-of-memory. */
void cv_idmap_put(cv_idmap_t *m, int64_t id, void *value);
/** Removes id; returns its value, or NULL when it was not there. */
void *cv_idmap_remove(cv_idmap_t *m, int64_t id);
/** Frees the map's own memory (not the values). */
void cv_idmap_free(cv_idmap_t *m);

#endif
