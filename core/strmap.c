#include "core/strmap.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

static size_t slot_of(const cv_strmap_t *m, const char *key)
{
    size_t i = cv_hash64(key, strlen(key)) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], key) != 0)
        i = (i + 1) & (m->cap - 1);
    return i;
}

void *cv_strmap_get(const cv_strmap_t *m, const char *key)
{
    if (m->cap == 0)
        return NULL;
    size_t i = slot_of(m, key);
    return m->keys[i] ? m->values[i] : NULL;
}

static void grow(cv_strmap_t *m)
{
    cv_strmap_t bigger = {0};
    bigger.cap = m->cap ? m->cap * 2 : 64;
    bigger.keys = cv_calloc(bigger.cap, sizeof(char *));
    bigger.values = cv_calloc(bigger.cap, sizeof(void *));
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i]) {
            size_t j = slot_of(&bigger, m->keys[i]);
            bigger.keys[j] = m->keys[i];
            bigger.values[j] = m->values[i];
        }
    }
    bigger.count = m->count;
    free(m->keys);
    free(m->values);
    *m = bigger;
}

void cv_strmap_put(cv_strmap_t *m, const char *key, void *value)
{
    if ((m->count + 1) * 2 > m->cap)
        grow(m);
    size_t i = slot_of(m, key);
    if (m->keys[i] == NULL) {
        m->keys[i] = cv_strdup(key);
        m->count++;
    }
    m->values[i] = value;
}

void cv_strmap_free(cv_strmap_t *m, void (*fn)(void *value))
{
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i]) {
            if (fn)
                fn(m->values[i]);
            free(m->keys[i]);
        }
    }
    free(m->keys);
    free(m->values);
    memset(m, 0, sizeof(*m));
}
