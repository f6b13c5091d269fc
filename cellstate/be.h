/* be.h — big-endian integers in byte strings: the store's keys (ids
 * big-endian, so that LMDB's byte order is numeric order), its meta values,
 * and the replica's log entries and snapshot headers. One copy, inline: the
 * key codecs are on the commit path. */
#ifndef CS_BE_H
#define CS_BE_H

#include <stdint.h>

static inline void cs_be64_put(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static inline uint64_t cs_be64_get(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static inline void cs_be32_put(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static inline uint32_t cs_be32_get(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#endif
