/* vec.h — growing a heap array by doubling, the one way every module does
 * it (lists of ids, a scheduler's per-task tables).
 *
 * A growable array is three fields of its owner: the pointer, the count and
 * the capacity; only the capacity step is shared here, so that the owners
 * keep their own typed fields and the doubling, the first size and the
 * out-of-memory path are written once.
 */
#ifndef CS_VEC_H
#define CS_VEC_H

#include <stddef.h>

#include "cellstate/error.h"

/* Room for at least `need` (>= 1) elements of `elem` bytes in array `v`
 * of capacity *cap: returns `v` itself when it has the room, else the array
 * reallocated with the capacity doubled (from `first` when 0) until it holds
 * `need`, and *cap set to it. NULL when out of memory: then `v` and *cap are
 * unchanged and still the caller's. The array is the caller's to free.
 *
 *     cs_id *nv = cs_vec_grow(l->v, &l->cap, l->n + 1, sizeof *l->v, 16);
 *     if (nv == NULL)
 *         return CS_ENOMEM;
 *     l->v = nv;
 */
void *cs_vec_grow(void *v, size_t *cap, size_t need, size_t elem, size_t first);

#endif
