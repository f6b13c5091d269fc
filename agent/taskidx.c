/* taskidx.c — open addressing over (id, attempt) (see taskidx.h). */
#include "agent/taskidx.h"

#include <stdbool.h>
#include <stdlib.h>

/* Fibonacci hashing of the id: ids of one job are consecutive, and the
 * multiply spreads them over the table's high bits. The attempt is not
 * hashed: two attempts of a task rarely live on one machine at once. */
static uint32_t home(const ag_taskidx *x, cs_id id)
{
    return (uint32_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & (x->cap - 1);
}

void ag_taskidx_init(ag_taskidx *x)
{
    x->slot = NULL;
    x->cap = 0;
    x->n = 0;
}

void ag_taskidx_free(ag_taskidx *x)
{
    free(x->slot);
    ag_taskidx_init(x);
}

static void put(ag_taskidx *x, ag_task *t)
{
    uint32_t i = home(x, t->id);
    while (x->slot[i] != NULL)
        i = (i + 1) & (x->cap - 1);
    x->slot[i] = t;
}

int ag_taskidx_add(ag_taskidx *x, ag_task *t, cs_error *err)
{
    /* Load at most one half: probes stay short. */
    if (2 * (x->n + 1) > x->cap) {
        uint32_t cap = x->cap ? 2 * x->cap : 16;
        ag_task **slot = calloc(cap, sizeof *slot);
        if (slot == NULL || cap < x->cap) {
            free(slot);
            return cs_errorf(err, CS_ENOMEM, "task index: out of memory for %u tasks", x->n + 1);
        }
        ag_taskidx old = *x;
        x->slot = slot;
        x->cap = cap;
        for (uint32_t i = 0; i < old.cap; i++)
            if (old.slot[i] != NULL)
                put(x, old.slot[i]);
        free(old.slot);
    }
    put(x, t);
    x->n++;
    return CS_OK;
}

ag_task *ag_taskidx_find(const ag_taskidx *x, cs_id id, uint32_t attempt)
{
    if (x->cap == 0)
        return NULL;
    for (uint32_t i = home(x, id); x->slot[i] != NULL; i = (i + 1) & (x->cap - 1))
        if (x->slot[i]->id == id && x->slot[i]->attempt == attempt)
            return x->slot[i];
    return NULL;
}

void ag_taskidx_remove(ag_taskidx *x, const ag_task *t)
{
    if (x->cap == 0)
        return;
    uint32_t mask = x->cap - 1, i = home(x, t->id);
    while (x->slot[i] != t) {
        if (x->slot[i] == NULL)
            return;
        i = (i + 1) & mask;
    }
    /* Backward shift: move each later entry of the run into the hole when
     * its home does not lie (cyclically) between the hole and it, so that
     * every probe still reaches its entry without tombstones. */
    uint32_t hole = i;
    for (uint32_t j = (i + 1) & mask; x->slot[j] != NULL; j = (j + 1) & mask) {
        uint32_t h = home(x, x->slot[j]->id);
        bool stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
        if (!stays) {
            x->slot[hole] = x->slot[j];
            hole = j;
        }
    }
    x->slot[hole] = NULL;
    x->n--;
}
