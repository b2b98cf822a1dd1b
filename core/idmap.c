#include "core/idmap.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

static size_t home_of(const cv_idmap_t *m, int64_t id)
{
    uint64_t h = (uint64_t)id * 0x9e3779b97f4a7c15ULL; /* Fibonacci hashing: ids are sequential */
    return (size_t)(h >> 32) & (m->cap - 1);
}

static size_t slot_of(const cv_idmap_t *m, int64_t id)
{
    size_t i = home_of(m, id);
    while (m->values[i] && m->keys[i] != id)
        i = (i + 1) & (m->cap - 1);
    return i;
}

void *cv_idmap_get(const cv_idmap_t *m, int64_t id)
{
    return m->cap ? m->values[slot_of(m, id)] : NULL;
}

static void grow(cv_idmap_t *m)
{
    cv_idmap_t bigger = {.cap = m->cap ? m->cap * 2 : 64, .count = m->count};
    bigger.keys = cv_calloc(bigger.cap, sizeof(*bigger.keys));
    bigger.values = cv_calloc(bigger.cap, sizeof(*bigger.values));
    for (size_t i = 0; i < m->cap; i++) {
        if (m->values[i]) {
            size_t j = slot_of(&bigger, m->keys[i]);
            bigger.keys[j] = m->keys[i];
            bigger.values[j] = m->values[i];
        }
    }
    free(m->keys);
    free(m->values);
    *m = bigger;
}

void cv_idmap_put(cv_idmap_t *m, int64_t id, void *value)
{
    if ((m->count + 1) * 2 > m->cap)
        grow(m);
    size_t i = slot_of(m, id);
    if (m->values[i] == NULL)
        m->count++;
    m->keys[i] = id;
    m->values[i] = value;
}

void *cv_idmap_remove(cv_idmap_t *m, int64_t id)
{
    if (m->cap == 0)
        return NULL;
    size_t mask = m->cap - 1, i = slot_of(m, id);
    void *value = m->values[i];
    if (value == NULL)
        return NULL;
    m->count--;
    /* Shift back every later entry of the run whose home does not lie in (i, j]. */
    for (size_t j = (i + 1) & mask; m->values[j]; j = (j + 1) & mask) {
        size_t home = home_of(m, m->keys[j]);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->keys[i] = m->keys[j];
            m->values[i] = m->values[j];
            i = j;
        }
    }
    m->values[i] = NULL;
    return value;
}

void cv_idmap_free(cv_idmap_t *m)
{
    free(m->keys);
    free(m->values);
    memset(m, 0, sizeof(*m));
}
