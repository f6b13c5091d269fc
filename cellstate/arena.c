/* arena.c — bump allocator (see arena.h). */
#include "cellstate/arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct cs_arena_chunk {
    cs_arena_chunk *next;
    size_t size; /* usable bytes in data[] */
    size_t used;
    alignas(max_align_t) unsigned char data[];
};

#define CS_ARENA_FIRST_CHUNK 4096

void cs_arena_init(cs_arena *a)
{
    a->head = NULL;
    a->chunk_size = CS_ARENA_FIRST_CHUNK;
}

void *cs_arena_alloc(cs_arena *a, size_t size)
{
    const size_t align = alignof(max_align_t);
    /* Refuse before rounding: rounding a size near SIZE_MAX up wraps to 0. */
    if (size > SIZE_MAX - align - sizeof(cs_arena_chunk))
        return NULL;
    size = (size + align - 1) & ~(align - 1);
    if (size == 0)
        size = align;
    cs_arena_chunk *c = a->head;
    if (c == NULL || c->size - c->used < size) {
        /* Chunks double up to 1 MiB so that a large snapshot does not make
         * thousands of small chunks; an oversized request gets its own. */
        size_t want = a->chunk_size;
        if (want < size)
            want = size;
        c = malloc(sizeof *c + want);
        if (c == NULL)
            return NULL;
        c->size = want;
        c->used = 0;
        c->next = a->head;
        a->head = c;
        if (a->chunk_size < (1u << 20))
            a->chunk_size *= 2;
    }
    void *p = c->data + c->used;
    c->used += size;
    return p;
}

char *cs_arena_strndup(cs_arena *a, const char *s, size_t len)
{
    char *p = cs_arena_alloc(a, len + 1);
    if (p == NULL)
        return NULL;
    if (len > 0)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void cs_arena_reset(cs_arena *a)
{
    if (a->head == NULL)
        return;
    /* Keep the newest chunk, the largest: a reused arena then usually fits
     * its next round in one chunk. */
    cs_arena_chunk *keep = a->head;
    cs_arena_chunk *c = keep->next;
    while (c != NULL) {
        cs_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    keep->next = NULL;
    keep->used = 0;
}

void cs_arena_free(cs_arena *a)
{
    cs_arena_chunk *c = a->head;
    while (c != NULL) {
        cs_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->chunk_size = CS_ARENA_FIRST_CHUNK;
}
