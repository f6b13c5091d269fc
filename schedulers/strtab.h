/* strtab.h — interned strings and a small integer map, for the schedulers'
 * local copy of the cell.
 *
 * A cell of 10,000 machines repeats the same few attribute keys and values
 * ("rack", "zone", "r12") on every machine. The local copy stores each
 * distinct string once and refers to it by a 32-bit id, so that a machine's
 * attributes cost 8 bytes a pair and comparing two values (a constraint
 * against a machine) is comparing two integers. Strings are never removed:
 * records are never deleted from the cell either, and ids must stay valid
 * in compiled constraints for as long as the copy lives.
 *
 * cs_u32map maps 32-bit keys to 32-bit values (open addressing, linear
 * probing): per-value task counts and cached regular-expression results in
 * the placer, the active-jobs-by-name index in the copy.
 *
 * Neither is thread-safe; both belong to one scheduler thread.
 */
#ifndef CS_STRTAB_H
#define CS_STRTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "No such string" / "no such slot": never a valid id, key or slot. */
#define CS_NONE UINT32_MAX

typedef struct cs_strtab {
    char *pool;       /* every string, NUL-terminated, one after another */
    size_t npool, cappool;
    uint32_t *off;    /* offset in pool of each id */
    uint32_t n, cap;
    uint32_t *slots;  /* hash index: id + 1, 0 = empty */
    uint32_t nslots;  /* power of two */
} cs_strtab;

/* An empty table (no allocation yet). */
void cs_strtab_init(cs_strtab *t);
void cs_strtab_free(cs_strtab *t);

/* The id of s[0..len), adding it if new. `s` is copied and need not be
 * NUL-terminated (a NUL inside is stored up to it). CS_ENOMEM on failure,
 * CS_ETOOBIG past 4 GiB of strings. */
int cs_strtab_intern(cs_strtab *t, const char *s, size_t len, uint32_t *id);

/* The id of s[0..len), or CS_NONE when it was never interned. */
uint32_t cs_strtab_find(const cs_strtab *t, const char *s, size_t len);

/* The string of `id` (a valid id), owned by the table: valid until
 * cs_strtab_free (interning more strings may move it: do not keep it across
 * a call that interns). */
static inline const char *cs_strtab_str(const cs_strtab *t, uint32_t id)
{
    return t->pool + t->off[id];
}

/* Bytes the table holds (pool, offsets and index, at their capacity). */
size_t cs_strtab_memory(const cs_strtab *t);

typedef struct cs_u32map_entry {
    uint32_t key; /* CS_NONE = empty */
    uint32_t value;
} cs_u32map_entry;

typedef struct cs_u32map {
    cs_u32map_entry *e;
    uint32_t cap; /* power of two, or 0 */
    uint32_t n;
} cs_u32map;

void cs_u32map_init(cs_u32map *m);
void cs_u32map_free(cs_u32map *m);
/* Forget every entry, keeping the memory. */
void cs_u32map_clear(cs_u32map *m);

/* The value under `key` (not CS_NONE) into *out; false when absent. */
bool cs_u32map_get(const cs_u32map *m, uint32_t key, uint32_t *out);
/* Set `key` to `value`. CS_ENOMEM on failure. */
int cs_u32map_put(cs_u32map *m, uint32_t key, uint32_t value);
/* Add `delta` (wrapping) to the value under `key`, absent counting as 0;
 * the new value into *out when `out` is not NULL. CS_ENOMEM on failure. */
int cs_u32map_add(cs_u32map *m, uint32_t key, uint32_t delta, uint32_t *out);
/* Remove `key` if present. */
void cs_u32map_del(cs_u32map *m, uint32_t key);

size_t cs_u32map_memory(const cs_u32map *m);

#endif
