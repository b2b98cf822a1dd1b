/* A string-keyed hash map (open addressing, linear probing) for lookups by job name. Keys are
 * copied; values are opaque pointers owned by the caller. No deletion: entries live until
 * cv_strmap_free (job state outlives config reloads, which is what its users want). */
#ifndef CV_CORE_STRMAP_H
#define CV_CORE_STRMAP_H

#include <stddef.h>

typedef struct cv_strmap {
    char **keys;
    void **values;
    size_t cap, count;
} cv_strmap_t;

/** The value stored under key, or NULL. */
void *cv_strmap_get(const cv_strmap_t *m, const char *key);
/** Stores value under key (replacing any). Aborts on out-of-memory. */
void cv_strmap_put(cv_strmap_t *m, const char *key, void *value);
/** Calls fn for every entry; then frees the map's own memory (not the values). */
void cv_strmap_free(cv_strmap_t *m, void (*fn)(void *value));

#endif
