/* idindex.c — see idindex.h. */
#include "cellstate/idindex.h"

#include <stdlib.h>

#include "cellstate/error.h"

void cs_idindex_init(cs_idindex *x) { memset(x, 0, sizeof *x); }

static void place(cs_idindex *x, cs_id id, uint32_t pos)
{
    uint32_t mask = x->nslots - 1;
    uint32_t i = cs_idindex_hash(id, mask);
    while (x->slots[i] != 0)
        i = (i + 1) & mask;
    x->slots[i] = pos + 1;
}

int cs_idindex_add(cs_idindex *x, const void *base, size_t stride, uint32_t pos)
{
    if ((uint64_t)(x->n + 1) * 4 > (uint64_t)x->nslots * 3) {
        uint32_t n = x->nslots ? x->nslots * 2 : 64;
        uint32_t *s = calloc(n, sizeof *s);
        if (s == NULL)
            return CS_ENOMEM;
        free(x->slots);
        x->slots = s;
        x->nslots = n;
        for (uint32_t i = 0; i < pos; i++)
            place(x, cs_idindex_id_at(base, stride, i), i);
    }
    place(x, cs_idindex_id_at(base, stride, pos), pos);
    x->n++;
    return CS_OK;
}

void cs_idindex_clear(cs_idindex *x)
{
    if (x->slots != NULL)
        memset(x->slots, 0, (size_t)x->nslots * sizeof *x->slots);
    x->n = 0;
}

void cs_idindex_free(cs_idindex *x)
{
    free(x->slots);
    memset(x, 0, sizeof *x);
}
