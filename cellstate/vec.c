/* vec.c — growing a heap array by doubling (see vec.h). */
#include "cellstate/vec.h"

#include <stdint.h>
#include <stdlib.h>

void *cs_vec_grow(void *v, size_t *cap, size_t need, size_t elem, size_t first)
{
    if (need <= *cap)
        return v;
    size_t c = *cap ? *cap : (first ? first : 1);
    while (c < need) {
        if (c > SIZE_MAX / 2)
            return NULL;
        c *= 2;
    }
    if (elem != 0 && c > SIZE_MAX / elem)
        return NULL;
    void *p = realloc(v, c * elem);
    if (p != NULL)
        *cap = c;
    return p;
}

int cs_ids_push(cs_ids *l, uint64_t id)
{
    uint64_t *v = cs_vec_grow(l->v, &l->cap, l->n + 1, sizeof *v, 64);
    if (v == NULL)
        return CS_ENOMEM;
    l->v = v;
    l->v[l->n++] = id;
    return CS_OK;
}

void cs_ids_free(cs_ids *l)
{
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}
