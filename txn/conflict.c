/* conflict.c — fine- and coarse-grained conflict detection (see conflict.h). */
#include "txn/conflict.h"

#include <stdlib.h>
#include <string.h>

uint8_t cs_conflict_fine(const cs_machine *m, const cs_res *res, const uint16_t *ports,
                         uint32_t nports)
{
    /* A cordoned or draining machine takes no new task, whatever a
     * scheduler's copy said when it chose it. */
    if (m->state != CS_MACHINE_UP || m->admin != CS_ADMIN_ACTIVE)
        return CS_CONFLICT_MACHINE_NOT_UP;
    /* Amounts are bounded by CS_RES_MAX (record.h), so these sums cannot
     * overflow. */
    if (m->allocated.cpu + res->cpu > m->capacity.cpu)
        return CS_CONFLICT_CPU;
    if (m->allocated.mem + res->mem > m->capacity.mem)
        return CS_CONFLICT_MEM;
    if (m->allocated.disk + res->disk > m->capacity.disk)
        return CS_CONFLICT_DISK;
    for (uint32_t i = 0; i < nports; i++) {
        if (cs_ports_contains(m->ports, m->nports, ports[i]))
            return CS_CONFLICT_PORT;
        for (uint32_t k = 0; k < i; k++)
            if (ports[k] == ports[i])
                return CS_CONFLICT_PORT;
    }
    return CS_COMMITTED;
}

uint8_t cs_conflict_coarse(const cs_machine *m, uint64_t seq_at_start, uint64_t seen,
                           const cs_res *res, const uint16_t *ports, uint32_t nports)
{
    if (seq_at_start != seen)
        return CS_CONFLICT_MACHINE_CHANGED;
    return cs_conflict_fine(m, res, ports, nports);
}

static int cmp_u16(const void *a, const void *b)
{
    return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

int cs_machine_take(cs_machine *m, const cs_res *res, const uint16_t *ports, uint32_t nports,
                    cs_arena *a)
{
    if (nports > 0) {
        uint16_t *p = cs_arena_alloc(a, (m->nports + nports) * sizeof *p);
        if (p == NULL)
            return CS_ENOMEM;
        if (m->nports > 0)
            memcpy(p, m->ports, m->nports * sizeof *p);
        memcpy(p + m->nports, ports, nports * sizeof *p);
        m->nports += nports;
        qsort(p, m->nports, sizeof *p, cmp_u16);
        m->ports = p;
    }
    cs_res_add(&m->allocated, res);
    m->ntasks++;
    return CS_OK;
}

int cs_machine_give(cs_machine *m, const cs_res *res, const uint16_t *ports, uint32_t nports,
                    cs_arena *a)
{
    if (nports > 0 && m->nports > 0) {
        uint16_t *p = cs_arena_alloc(a, m->nports * sizeof *p);
        if (p == NULL)
            return CS_ENOMEM;
        uint32_t n = 0;
        for (uint32_t i = 0; i < m->nports; i++) {
            bool drop = false;
            for (uint32_t k = 0; k < nports && !drop; k++)
                drop = m->ports[i] == ports[k];
            if (!drop)
                p[n++] = m->ports[i];
        }
        m->ports = p;
        m->nports = n;
    }
    cs_res_sub(&m->allocated, res);
    if (m->ntasks > 0)
        m->ntasks--;
    return CS_OK;
}
