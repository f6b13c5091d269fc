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
#include <stdint.h>

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

/* A list of record ids (cs_id), the growable array three modules keep: the
 * keys a write transaction touched, the tasks an operation walks, every
 * record of a full sync. Zero-initialised it is empty; the caller frees
 * `v` (free, or cs_ids_free). */
typedef struct cs_ids {
    uint64_t *v;
    size_t n, cap;
} cs_ids;

/* Append `id`. CS_ENOMEM leaves the list as it was. */
int cs_ids_push(cs_ids *l, uint64_t id);

/* Free the list's array; the list is empty afterwards. */
void cs_ids_free(cs_ids *l);

#endif
