/* idindex.h — find a record by id in an array of records: an
 * open-addressing table of 32-bit positions beside the caller's array.
 *
 * The cell's in-memory structures keep their records in dense arrays (the
 * allocation table's overlay of a write transaction, a scheduler's copy of
 * machines and jobs), each record starting with its cs_id. The index holds
 * position + 1 (0 = empty) and compares with the id at the start of each
 * record, so it costs four bytes per record — at 10,000 machines and a
 * million tasks that is most of what keeps a scheduler's copy of a machine
 * under 200 bytes — and the records never move for it. Linear probing at a
 * load of at most 3/4; records are only ever appended (or all cleared), so
 * there is no deletion.
 *
 * The index borrows nothing: every call is given the array (`base`, and
 * `stride`, the size of one record). Not thread-safe.
 */
#ifndef CS_IDINDEX_H
#define CS_IDINDEX_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cellstate/record.h"

/* "No such record": the position find answers for an id not indexed. */
#define CS_IDINDEX_NONE UINT32_MAX

typedef struct cs_idindex {
    uint32_t *slots; /* position + 1, 0 = empty; owned */
    uint32_t nslots; /* a power of two, or 0 */
    uint32_t n;      /* records indexed */
} cs_idindex;

/* The id's bucket: a 64-bit finaliser (MurmurHash3's), so that the dense,
 * consecutive ids the store hands out spread over the table. */
static inline uint32_t cs_idindex_hash(cs_id id, uint32_t mask)
{
    id ^= id >> 33;
    id *= UINT64_C(0xff51afd7ed558ccd);
    id ^= id >> 33;
    return (uint32_t)id & mask;
}

static inline cs_id cs_idindex_id_at(const void *base, size_t stride, uint32_t pos)
{
    cs_id id;
    memcpy(&id, (const char *)base + (size_t)pos * stride, sizeof id);
    return id;
}

/* The position of the record with `id` in base[], or CS_IDINDEX_NONE. Inline: it
 * is on the commit path and the placer's. */
static inline uint32_t cs_idindex_find(const cs_idindex *x, const void *base, size_t stride,
                                       cs_id id)
{
    if (x->n == 0)
        return CS_IDINDEX_NONE;
    uint32_t mask = x->nslots - 1;
    for (uint32_t i = cs_idindex_hash(id, mask);; i = (i + 1) & mask) {
        uint32_t v = x->slots[i];
        if (v == 0)
            return CS_IDINDEX_NONE;
        if (cs_idindex_id_at(base, stride, v - 1) == id)
            return v - 1;
    }
}

/* An empty index (no memory held). */
void cs_idindex_init(cs_idindex *x);

/* Index the record at position `pos` of base[], whose id is not indexed
 * yet; records are added in position order (every position below `pos` is
 * indexed already), which lets a growing table re-index from the array.
 * CS_ENOMEM leaves the index as it was. */
int cs_idindex_add(cs_idindex *x, const void *base, size_t stride, uint32_t pos);

/* Forget every record, keeping the table's memory. */
void cs_idindex_clear(cs_idindex *x);

/* Free the table; the index is empty afterwards. */
void cs_idindex_free(cs_idindex *x);

#endif
