/* arena.h — a bump allocator for decoded records.
 *
 * Decoding a record (a machine's attributes, a job's constraints) makes many
 * small allocations that all die together: at the end of a request, of a
 * commit, or of one step of an iteration. An arena hands them out from large
 * chunks and frees them all at once, so decoding never calls free() and a
 * decoded record's lifetime is simply "until the arena is reset".
 */
#ifndef CS_ARENA_H
#define CS_ARENA_H

#include <stddef.h>

typedef struct cs_arena_chunk cs_arena_chunk;

/* Callers own the struct (usually on the stack); initialise with
 * cs_arena_init and release with cs_arena_free. */
typedef struct cs_arena {
    cs_arena_chunk *head; /* newest chunk first */
    size_t chunk_size;
} cs_arena;

void cs_arena_init(cs_arena *a);

/* Memory for `size` bytes aligned for any type, valid until the next
 * cs_arena_reset or cs_arena_free. NULL when out of memory. */
void *cs_arena_alloc(cs_arena *a, size_t size);

/* A copy of `len` bytes of `s` plus a NUL, owned by the arena. */
char *cs_arena_strndup(cs_arena *a, const char *s, size_t len);

/* Forget every allocation but keep the first chunk for reuse. */
void cs_arena_reset(cs_arena *a);

/* Release every chunk. The arena may be initialised again. */
void cs_arena_free(cs_arena *a);

#endif
