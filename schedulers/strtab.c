/* strtab.c — interned strings and a 32-bit map (see strtab.h). */
#include "schedulers/strtab.h"

#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "cellstate/error.h"

void cs_strtab_init(cs_strtab *t)
{
    memset(t, 0, sizeof *t);
}

void cs_strtab_free(cs_strtab *t)
{
    free(t->pool);
    free(t->off);
    free(t->slots);
    cs_strtab_init(t);
}

static uint32_t slot_of(const cs_strtab *t, const char *s, size_t len, bool *found)
{
    uint32_t mask = t->nslots - 1;
    uint32_t i = (uint32_t)XXH3_64bits(s, len) & mask;
    for (;; i = (i + 1) & mask) {
        uint32_t v = t->slots[i];
        if (v == 0) {
            *found = false;
            return i;
        }
        const char *p = t->pool + t->off[v - 1];
        if (memcmp(p, s, len) == 0 && p[len] == '\0') {
            *found = true;
            return i;
        }
    }
}

static int grow_index(cs_strtab *t)
{
    uint32_t n = t->nslots ? t->nslots * 2 : 64;
    uint32_t *slots = calloc(n, sizeof *slots);
    if (slots == NULL)
        return CS_ENOMEM;
    free(t->slots);
    t->slots = slots;
    t->nslots = n;
    for (uint32_t id = 0; id < t->n; id++) {
        const char *p = t->pool + t->off[id];
        bool found;
        t->slots[slot_of(t, p, strlen(p), &found)] = id + 1;
    }
    return CS_OK;
}

uint32_t cs_strtab_find(const cs_strtab *t, const char *s, size_t len)
{
    if (t->nslots == 0)
        return CS_NONE;
    const char *nul = memchr(s, '\0', len);
    if (nul != NULL)
        len = (size_t)(nul - s);
    bool found;
    uint32_t i = slot_of(t, s, len, &found);
    return found ? t->slots[i] - 1 : CS_NONE;
}

int cs_strtab_intern(cs_strtab *t, const char *s, size_t len, uint32_t *id)
{
    const char *nul = memchr(s, '\0', len);
    if (nul != NULL)
        len = (size_t)(nul - s);
    /* Load at most 3/4: probes stay short, and the index is a large part of
     * what a machine's name costs. */
    if ((uint64_t)(t->n + 1) * 4 > (uint64_t)t->nslots * 3 && grow_index(t) != CS_OK)
        return CS_ENOMEM;
    bool found;
    uint32_t i = slot_of(t, s, len, &found);
    if (found) {
        *id = t->slots[i] - 1;
        return CS_OK;
    }
    if (t->npool + len + 1 > UINT32_MAX || t->n == CS_NONE - 1)
        return CS_ETOOBIG;
    if (t->npool + len + 1 > t->cappool) {
        /* Growth by a quarter, not doubling: the slack is paid per machine. */
        size_t cap = t->cappool ? t->cappool + t->cappool / 4 : 1024;
        if (cap < t->npool + len + 1)
            cap = t->npool + len + 1;
        char *pool = realloc(t->pool, cap);
        if (pool == NULL)
            return CS_ENOMEM;
        t->pool = pool;
        t->cappool = cap;
    }
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? t->cap + t->cap / 4 : 64;
        uint32_t *off = realloc(t->off, cap * sizeof *off);
        if (off == NULL)
            return CS_ENOMEM;
        t->off = off;
        t->cap = cap;
    }
    memcpy(t->pool + t->npool, s, len);
    t->pool[t->npool + len] = '\0';
    t->off[t->n] = (uint32_t)t->npool;
    t->npool += len + 1;
    t->slots[i] = t->n + 1;
    *id = t->n++;
    return CS_OK;
}

size_t cs_strtab_memory(const cs_strtab *t)
{
    return t->cappool + (size_t)t->cap * sizeof *t->off + (size_t)t->nslots * sizeof *t->slots;
}

/* ---- cs_u32map ------------------------------------------------------------- */

void cs_u32map_init(cs_u32map *m)
{
    m->e = NULL;
    m->cap = 0;
    m->n = 0;
}

void cs_u32map_free(cs_u32map *m)
{
    free(m->e);
    cs_u32map_init(m);
}

void cs_u32map_clear(cs_u32map *m)
{
    for (uint32_t i = 0; i < m->cap; i++)
        m->e[i].key = CS_NONE;
    m->n = 0;
}

/* Fibonacci hashing: keys are often small consecutive integers (ids, slots),
 * which a mask alone would put in one run. */
static inline uint32_t hash32(uint32_t k, uint32_t mask)
{
    return (uint32_t)(((uint64_t)k * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & mask;
}

static cs_u32map_entry *probe(const cs_u32map *m, uint32_t key)
{
    uint32_t mask = m->cap - 1;
    for (uint32_t i = hash32(key, mask);; i = (i + 1) & mask)
        if (m->e[i].key == key || m->e[i].key == CS_NONE)
            return &m->e[i];
}

bool cs_u32map_get(const cs_u32map *m, uint32_t key, uint32_t *out)
{
    if (m->n == 0)
        return false;
    const cs_u32map_entry *e = probe(m, key);
    if (e->key == CS_NONE)
        return false;
    *out = e->value;
    return true;
}

static int grow(cs_u32map *m)
{
    uint32_t cap = m->cap ? m->cap * 2 : 16;
    cs_u32map_entry *e = malloc(cap * sizeof *e);
    if (e == NULL)
        return CS_ENOMEM;
    cs_u32map old = *m;
    m->e = e;
    m->cap = cap;
    cs_u32map_clear(m);
    for (uint32_t i = 0; i < old.cap; i++)
        if (old.e[i].key != CS_NONE) {
            *probe(m, old.e[i].key) = old.e[i];
            m->n++;
        }
    free(old.e);
    return CS_OK;
}

static int slot(cs_u32map *m, uint32_t key, cs_u32map_entry **out)
{
    if ((m->n + 1) * 2 > m->cap && grow(m) != CS_OK)
        return CS_ENOMEM;
    cs_u32map_entry *e = probe(m, key);
    if (e->key == CS_NONE) {
        e->key = key;
        e->value = 0;
        m->n++;
    }
    *out = e;
    return CS_OK;
}

int cs_u32map_put(cs_u32map *m, uint32_t key, uint32_t value)
{
    cs_u32map_entry *e;
    if (slot(m, key, &e) != CS_OK)
        return CS_ENOMEM;
    e->value = value;
    return CS_OK;
}

int cs_u32map_add(cs_u32map *m, uint32_t key, uint32_t delta, uint32_t *out)
{
    cs_u32map_entry *e;
    if (slot(m, key, &e) != CS_OK)
        return CS_ENOMEM;
    e->value += delta;
    if (out != NULL)
        *out = e->value;
    return CS_OK;
}

void cs_u32map_del(cs_u32map *m, uint32_t key)
{
    if (m->n == 0)
        return;
    cs_u32map_entry *e = probe(m, key);
    if (e->key == CS_NONE)
        return;
    /* Backward-shift deletion: move later entries of the run into the hole
     * when their home slot allows, so that lookups never need tombstones. */
    uint32_t mask = m->cap - 1;
    uint32_t hole = (uint32_t)(e - m->e);
    for (uint32_t i = (hole + 1) & mask; m->e[i].key != CS_NONE; i = (i + 1) & mask) {
        uint32_t home = hash32(m->e[i].key, mask);
        /* Movable when home is not in the cyclic range (hole, i]. */
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            m->e[hole] = m->e[i];
            hole = i;
        }
    }
    m->e[hole].key = CS_NONE;
    m->n--;
}

size_t cs_u32map_memory(const cs_u32map *m)
{
    return (size_t)m->cap * sizeof *m->e;
}
