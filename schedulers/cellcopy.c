/* cellcopy.c — a scheduler's local copy of the cell (see cellcopy.h). */
#include "schedulers/cellcopy.h"

#include <stdlib.h>
#include <string.h>

#include "cellstate/idindex.h"
#include "cellstate/vec.h"
#include "proto/proto.h"
#include "proto/sync.h"

/* The per-machine budget (about 200 bytes with names and attributes)
 * starts with the record itself. */
_Static_assert(sizeof(cs_cmachine) <= 96, "cs_cmachine grew past 96 bytes");

/* Machines, jobs and tasks live in arrays; cellstate/idindex.h finds a
 * record by id: four bytes per record instead of twelve is a large part of
 * what keeps a machine under 200 bytes. Its "not found" is the copy's
 * CS_NONE. */
_Static_assert(CS_IDINDEX_NONE == CS_NONE, "the index's not-found is the copy's");

/* ---- the copy ------------------------------------------------------------------ */

enum { UNDO_CLAIM, UNDO_EVICT, UNDO_REQUEUE, UNDO_HOLD };

/* One tentative change and what it replaced (a hold: only `machine` and
 * `res`). */
typedef struct undo {
    uint8_t kind;
    uint8_t state, last_end, nports, health;
    uint32_t task, machine;  /* slots */
    uint32_t prev, next;     /* the list the task left: its job's pending list (claim) or its
                              * machine's task list (evict, requeue) */
    uint32_t old_machine;
    cs_res res;
    uint16_t *ports;         /* claim, requeue: the task's ports before (restored); evict: unused */
} undo;

struct cs_copy {
    uint64_t version;
    cs_strtab strs;
    /* Attribute sets: [n, key1, value1, ..., t, tkey1, tvalue1, effect1, ...]
     * runs (a machine's attributes, then its taints) in one pool,
     * deduplicated through `attrix` (offset + 1, 0 = empty). Offset 0 is
     * the empty set. */
    uint32_t *attrpool;
    uint32_t nattrpool, capattrpool;
    uint32_t *attrix;
    uint32_t nattrix, nattrsets;
    /* Whether a set with a NoExecute taint was ever interned: sets are
     * never dropped, so this only turns true. Upkeep skips its per-task
     * NoExecute check on a cell that never had one (cs_copy_noexecute). */
    bool noexecute;
    cs_cmachine *machines;
    uint32_t nmachines, capmachines;
    cs_idindex mix;
    cs_cjob *jobs;
    uint32_t njobs, capjobs;
    cs_idindex jix;
    cs_u32map active; /* interned name -> slot of the active job */
    cs_ctask *tasks;
    uint32_t ntasks, captasks; /* found by id through their job's `tasks` (no index of their own) */
    undo *undo;
    uint32_t nundo, capundo;
    cs_arena scratch; /* one record's decoding at a time */
    msgpack_zone zone; /* one machine or job map of a compact reply at a time */
    bool omit_running;   /* syncs ask to leave out tasks that only started */
    /* Receiving a full sync in pieces (cs_copy_apply_piece): the base of
     * the pieces, which the copy's version becomes after the last. */
    bool in_pieces;
    uint64_t piece_base;
};

static int nomem(cs_error *err)
{
    return cs_errorf(err, CS_ENOMEM, "local copy: out of memory");
}

int cs_copy_new(cs_copy **out, cs_error *err)
{
    cs_copy *c = calloc(1, sizeof *c);
    if (c == NULL)
        return nomem(err);
    cs_strtab_init(&c->strs);
    cs_u32map_init(&c->active);
    cs_arena_init(&c->scratch);
    msgpack_zone_init(&c->zone, 4096);
    c->capattrpool = 64;
    c->attrpool = calloc(c->capattrpool, sizeof *c->attrpool);
    if (c->attrpool == NULL) {
        msgpack_zone_destroy(&c->zone);
        free(c);
        return nomem(err);
    }
    c->nattrpool = 2; /* the empty set at offset 0: no attributes, no taints */
    *out = c;
    return CS_OK;
}

static void job_release(cs_cjob *j)
{
    for (uint32_t i = 0; j->cons != NULL && i < j->job.nconstraints; i++)
        cs_ccons_free(&j->cons[i]);
    free(j->cons);
    j->cons = NULL;
    cs_arena_free(&j->arena);
}

/* Forget every record; interned strings and attribute sets stay (ids in
 * them remain valid and are reused by the records that come back). */
static void clear_records(cs_copy *c)
{
    for (uint32_t i = 0; i < c->nmachines; i++)
        free(c->machines[i].ports);
    for (uint32_t i = 0; i < c->njobs; i++) {
        job_release(&c->jobs[i]);
        free(c->jobs[i].tasks);
    }
    for (uint32_t i = 0; i < c->ntasks; i++)
        free(c->tasks[i].ports);
    c->nmachines = c->njobs = c->ntasks = 0;
    cs_idindex_clear(&c->mix);
    cs_idindex_clear(&c->jix);
    cs_u32map_clear(&c->active);
}

void cs_copy_free(cs_copy *c)
{
    if (c == NULL)
        return;
    cs_copy_rollback(c);
    clear_records(c);
    free(c->machines);
    free(c->jobs);
    free(c->tasks);
    cs_idindex_free(&c->mix);
    cs_idindex_free(&c->jix);
    free(c->attrpool);
    free(c->attrix);
    free(c->undo);
    cs_u32map_free(&c->active);
    cs_strtab_free(&c->strs);
    cs_arena_free(&c->scratch);
    msgpack_zone_destroy(&c->zone);
    free(c);
}

void cs_copy_omit_running(cs_copy *c, bool omit) { c->omit_running = omit; }

uint64_t cs_copy_version(const cs_copy *c) { return c->version; }
uint32_t cs_copy_nmachines(const cs_copy *c) { return c->nmachines; }
uint32_t cs_copy_njobs(const cs_copy *c) { return c->njobs; }
uint32_t cs_copy_ntasks(const cs_copy *c) { return c->ntasks; }
const cs_cmachine *cs_copy_machine_at(const cs_copy *c, uint32_t s) { return &c->machines[s]; }
const cs_cjob *cs_copy_job_at(const cs_copy *c, uint32_t s) { return &c->jobs[s]; }
const cs_ctask *cs_copy_task_at(const cs_copy *c, uint32_t s) { return &c->tasks[s]; }

uint32_t cs_copy_machine_slot(const cs_copy *c, cs_id id)
{
    return cs_idindex_find(&c->mix, c->machines, sizeof *c->machines, id);
}
uint32_t cs_copy_job_slot(const cs_copy *c, cs_id id)
{
    return cs_idindex_find(&c->jix, c->jobs, sizeof *c->jobs, id);
}
/* A task id is its job's id and its index (record.h): the job's
 * task-by-index array finds it with no table of its own, one look-up among
 * the few jobs instead of a probe among 100,000s of tasks. */
uint32_t cs_copy_task_slot(const cs_copy *c, cs_id id)
{
    uint32_t js = cs_copy_job_slot(c, cs_task_job(id));
    if (js == CS_NONE)
        return CS_NONE;
    const cs_cjob *j = &c->jobs[js];
    uint32_t i = cs_task_index(id);
    return i < j->ntaskidx ? j->tasks[i] : CS_NONE;
}
const cs_cmachine *cs_copy_machine(const cs_copy *c, cs_id id)
{
    uint32_t s = cs_copy_machine_slot(c, id);
    return s == CS_NONE ? NULL : &c->machines[s];
}
const cs_cjob *cs_copy_job(const cs_copy *c, cs_id id)
{
    uint32_t s = cs_copy_job_slot(c, id);
    return s == CS_NONE ? NULL : &c->jobs[s];
}
const cs_ctask *cs_copy_task(const cs_copy *c, cs_id id)
{
    uint32_t s = cs_copy_task_slot(c, id);
    return s == CS_NONE ? NULL : &c->tasks[s];
}

uint32_t cs_copy_job_named_slot(const cs_copy *c, uint32_t name)
{
    uint32_t slot;
    return name != CS_NONE && cs_u32map_get(&c->active, name, &slot) ? slot : CS_NONE;
}

const cs_cjob *cs_copy_job_named(const cs_copy *c, const char *name)
{
    uint32_t s = cs_copy_job_named_slot(c, cs_copy_find_str(c, name));
    return s == CS_NONE ? NULL : &c->jobs[s];
}

const char *cs_copy_str(const cs_copy *c, uint32_t id) { return cs_strtab_str(&c->strs, id); }
uint32_t cs_copy_find_str(const cs_copy *c, const char *s)
{
    return cs_strtab_find(&c->strs, s, strlen(s));
}
const cs_strtab *cs_copy_strtab(const cs_copy *c) { return &c->strs; }

uint32_t cs_copy_attrs(const cs_copy *c, const cs_cmachine *m, const uint32_t **pairs)
{
    *pairs = &c->attrpool[m->attrs + 1];
    return c->attrpool[m->attrs];
}

uint32_t cs_copy_taints(const cs_copy *c, const cs_cmachine *m, const uint32_t **triples)
{
    const uint32_t *t = &c->attrpool[m->attrs + 1 + 2 * c->attrpool[m->attrs]];
    *triples = t + 1;
    return t[0];
}

uint32_t cs_copy_attr(const cs_copy *c, const cs_cmachine *m, uint32_t key)
{
    const uint32_t *p = &c->attrpool[m->attrs];
    for (uint32_t i = 0; i < p[0]; i++)
        if (p[1 + 2 * i] == key)
            return p[2 + 2 * i];
    return CS_NONE;
}

bool cs_copy_noexecute(const cs_copy *c) { return c->noexecute; }

cs_ccons *cs_copy_job_cons(cs_copy *c, uint32_t job_slot) { return c->jobs[job_slot].cons; }

size_t cs_copy_pending(const cs_copy *c, cs_id job, cs_id *out, size_t max)
{
    uint32_t js = cs_copy_job_slot(c, job);
    size_t n = 0;
    if (js == CS_NONE)
        return 0;
    for (uint32_t t = c->jobs[js].pending; t != CS_NONE && n < max; t = c->tasks[t].next)
        out[n++] = c->tasks[t].id;
    return n;
}

/* ---- growth helpers ------------------------------------------------------------- */

/* Make room for `want` elements of `size` bytes. Growth is by a quarter
 * (not doubling) so that a large cell does not carry half its size again
 * in slack; full syncs reserve the exact count. */
static int reserve(void **arr, uint32_t *cap, uint32_t want, size_t size)
{
    if (want <= *cap)
        return CS_OK;
    uint64_t n = *cap ? (uint64_t)*cap + *cap / 4 + 16 : 16;
    if (n < want)
        n = want;
    if (n > UINT32_MAX - 1)
        return CS_ENOMEM;
    void *p = realloc(*arr, (size_t)n * size);
    if (p == NULL)
        return CS_ENOMEM;
    *arr = p;
    *cap = (uint32_t)n;
    return CS_OK;
}

/* ---- attribute sets ------------------------------------------------------------- */

static uint32_t set_hash(const uint32_t *run, uint32_t len, uint32_t mask)
{
    uint64_t h = UINT64_C(1469598103934665603);
    for (uint32_t i = 0; i < len; i++)
        h = (h ^ run[i]) * UINT64_C(1099511628211);
    return cs_idindex_hash(h, mask);
}

/* The length of the set at `off`: its attributes and its taints. */
static uint32_t set_len(const uint32_t *pool, uint32_t off)
{
    uint32_t na = pool[off];
    return 2 + 2 * na + 3 * pool[off + 1 + 2 * na];
}

static int attrix_grow(cs_copy *c)
{
    uint32_t n = c->nattrix ? c->nattrix * 2 : 64;
    uint32_t *ix = calloc(n, sizeof *ix);
    if (ix == NULL)
        return CS_ENOMEM;
    free(c->attrix);
    c->attrix = ix;
    c->nattrix = n;
    for (uint32_t off = 2; off < c->nattrpool; off += set_len(c->attrpool, off)) {
        uint32_t len = set_len(c->attrpool, off);
        uint32_t i = set_hash(&c->attrpool[off], len, n - 1);
        while (ix[i] != 0)
            i = (i + 1) & (n - 1);
        ix[i] = off + 1;
    }
    return CS_OK;
}

/* The offset of the set holding the machine's attributes and taints,
 * adding it if new. */
static int intern_attrs(cs_copy *c, const cs_machine *m, uint32_t *out)
{
    if (m->nattrs == 0 && m->ntaints == 0) {
        *out = 0;
        return CS_OK;
    }
    uint32_t len = 2 + 2 * m->nattrs + 3 * m->ntaints;
    if (reserve((void **)&c->attrpool, &c->capattrpool, c->nattrpool + len,
                sizeof *c->attrpool) != CS_OK)
        return CS_ENOMEM;
    /* Build the run at the end of the pool; keep it only if it is new. */
    uint32_t *run = &c->attrpool[c->nattrpool];
    run[0] = m->nattrs;
    for (uint32_t i = 0; i < m->nattrs; i++) {
        const char *k = m->attrs[i].key, *v = m->attrs[i].value;
        if (cs_strtab_intern(&c->strs, k, strlen(k), &run[1 + 2 * i]) != CS_OK ||
            cs_strtab_intern(&c->strs, v, strlen(v), &run[2 + 2 * i]) != CS_OK)
            return CS_ENOMEM;
    }
    uint32_t *tr = &run[1 + 2 * m->nattrs];
    tr[0] = m->ntaints;
    for (uint32_t i = 0; i < m->ntaints; i++) {
        const char *k = m->taints[i].key, *v = m->taints[i].value;
        if (cs_strtab_intern(&c->strs, k, strlen(k), &tr[1 + 3 * i]) != CS_OK ||
            cs_strtab_intern(&c->strs, v, strlen(v), &tr[2 + 3 * i]) != CS_OK)
            return CS_ENOMEM;
        tr[3 + 3 * i] = m->taints[i].effect;
        c->noexecute |= m->taints[i].effect == CS_TAINT_NO_EXECUTE;
    }
    if ((uint64_t)(c->nattrsets + 1) * 4 > (uint64_t)c->nattrix * 3 && attrix_grow(c) != CS_OK)
        return CS_ENOMEM;
    uint32_t mask = c->nattrix - 1;
    uint32_t i = set_hash(run, len, mask);
    for (; c->attrix[i] != 0; i = (i + 1) & mask) {
        const uint32_t *other = &c->attrpool[c->attrix[i] - 1];
        if (set_len(c->attrpool, c->attrix[i] - 1) == len &&
            memcmp(other, run, len * sizeof *run) == 0) {
            *out = c->attrix[i] - 1;
            return CS_OK;
        }
    }
    c->attrix[i] = c->nattrpool + 1;
    *out = c->nattrpool;
    c->nattrpool += len;
    c->nattrsets++;
    return CS_OK;
}

/* ---- machine ports in use ------------------------------------------------------- */

static uint32_t port_pos(const cs_cmachine *m, uint16_t port)
{
    uint32_t lo = 0, hi = m->nports;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (m->ports[mid] < port)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Make room for `want` ports: a power of two, so that the capacity fits in
 * a byte of the machine. Never shrinks, so that undoing an eviction always
 * finds room for the ports it puts back. */
static int ports_room(cs_cmachine *m, uint32_t want)
{
    uint32_t cap = m->ports ? 1u << m->ports_log2 : 0;
    if (want <= cap)
        return CS_OK;
    uint8_t lg = 2;
    while ((1u << lg) < want)
        lg++;
    uint16_t *p = realloc(m->ports, ((size_t)1 << lg) * sizeof *p);
    if (p == NULL)
        return CS_ENOMEM;
    m->ports = p;
    m->ports_log2 = lg;
    return CS_OK;
}

/* Insert into room made beforehand (ports_room). */
static void ports_insert(cs_cmachine *m, uint16_t port)
{
    uint32_t i = port_pos(m, port);
    memmove(&m->ports[i + 1], &m->ports[i], (m->nports - i) * sizeof *m->ports);
    m->ports[i] = port;
    m->nports++;
}

static void ports_remove(cs_cmachine *m, uint16_t port)
{
    uint32_t i = port_pos(m, port);
    if (i == m->nports || m->ports[i] != port)
        return;
    memmove(&m->ports[i], &m->ports[i + 1], (m->nports - i - 1) * sizeof *m->ports);
    m->nports--;
}

static size_t ports_bytes(const cs_cmachine *m)
{
    return m->ports ? ((size_t)1 << m->ports_log2) * sizeof *m->ports : 0;
}

/* ---- task lists ------------------------------------------------------------------ */

static void machine_link(cs_copy *c, uint32_t ts)
{
    cs_ctask *t = &c->tasks[ts];
    cs_cmachine *m = &c->machines[t->machine];
    t->prev = CS_NONE;
    t->next = m->tasks;
    if (m->tasks != CS_NONE)
        c->tasks[m->tasks].prev = ts;
    m->tasks = ts;
}

static void machine_unlink(cs_copy *c, uint32_t ts)
{
    cs_ctask *t = &c->tasks[ts];
    cs_cmachine *m = &c->machines[t->machine];
    if (t->prev != CS_NONE)
        c->tasks[t->prev].next = t->next;
    else
        m->tasks = t->next;
    if (t->next != CS_NONE)
        c->tasks[t->next].prev = t->prev;
    t->next = t->prev = CS_NONE;
}

/* Put task `ts` between `prev` and `next` of its job's pending list (both
 * CS_NONE and the list empty, or prev = the tail to append). */
static void pending_insert(cs_copy *c, uint32_t ts, uint32_t prev, uint32_t next)
{
    cs_ctask *t = &c->tasks[ts];
    cs_cjob *j = &c->jobs[t->job];
    t->prev = prev;
    t->next = next;
    if (prev != CS_NONE)
        c->tasks[prev].next = ts;
    else
        j->pending = ts;
    if (next != CS_NONE)
        c->tasks[next].prev = ts;
    else
        j->pending_tail = ts;
    j->npending++;
}

static void pending_unlink(cs_copy *c, uint32_t ts)
{
    cs_ctask *t = &c->tasks[ts];
    cs_cjob *j = &c->jobs[t->job];
    if (t->prev != CS_NONE)
        c->tasks[t->prev].next = t->next;
    else
        j->pending = t->next;
    if (t->next != CS_NONE)
        c->tasks[t->next].prev = t->prev;
    else
        j->pending_tail = t->prev;
    t->next = t->prev = CS_NONE;
    j->npending--;
}

static bool task_ended(uint8_t state)
{
    return state == CS_TASK_FAILED || state == CS_TASK_FINISHED || state == CS_TASK_LOST;
}

/* Take a task out of whichever list (or count) its state puts it in. */
static void task_detach(cs_copy *c, uint32_t ts)
{
    cs_ctask *t = &c->tasks[ts];
    if (cs_task_state_placed(t->state)) {
        machine_unlink(c, ts);
        c->jobs[t->job].nplaced--;
    } else if (t->state == CS_TASK_PENDING) {
        pending_unlink(c, ts);
    } else if (task_ended(t->state)) {
        c->jobs[t->job].nended--;
    }
}

static void task_attach(cs_copy *c, uint32_t ts)
{
    cs_ctask *t = &c->tasks[ts];
    if (cs_task_state_placed(t->state)) {
        machine_link(c, ts);
        c->jobs[t->job].nplaced++;
    } else if (t->state == CS_TASK_PENDING) {
        pending_insert(c, ts, c->jobs[t->job].pending_tail, CS_NONE);
    } else if (task_ended(t->state)) {
        c->jobs[t->job].nended++;
    }
}

/* ---- applying records ------------------------------------------------------------- */

/* Whether machine `d` of the copy already has `m`'s name, attributes and
 * taints: most updates of a machine are of its allocation alone, and
 * comparing costs less than interning again (a tenth of a simulated run
 * went into it). */
static bool same_strings(const cs_copy *c, const cs_cmachine *d, const cs_machine *m)
{
    if (strcmp(cs_copy_str(c, d->name), m->name) != 0)
        return false;
    const uint32_t *a = &c->attrpool[d->attrs];
    if (a[0] != m->nattrs)
        return false;
    for (uint32_t i = 0; i < m->nattrs; i++)
        if (strcmp(cs_copy_str(c, a[1 + 2 * i]), m->attrs[i].key) != 0 ||
            strcmp(cs_copy_str(c, a[2 + 2 * i]), m->attrs[i].value) != 0)
            return false;
    const uint32_t *t = &a[1 + 2 * m->nattrs];
    if (t[0] != m->ntaints)
        return false;
    for (uint32_t i = 0; i < m->ntaints; i++)
        if (strcmp(cs_copy_str(c, t[1 + 3 * i]), m->taints[i].key) != 0 ||
            strcmp(cs_copy_str(c, t[2 + 3 * i]), m->taints[i].value) != 0 ||
            t[3 + 3 * i] != m->taints[i].effect)
            return false;
    return true;
}

static int machine_rec(cs_copy *c, const cs_machine *mp, cs_error *err)
{
    const cs_machine m = *mp;
    uint32_t name, attrs;
    uint32_t s = cs_copy_machine_slot(c, m.id);
    if (m.name == NULL) {
        /* Without its record, which the copy has (keeps_records). */
        if (s == CS_NONE)
            return cs_errorf(err, CS_EPROTO, "sync: machine %llu without its record, which the "
                             "copy lacks", (unsigned long long)m.id);
        name = c->machines[s].name;
        attrs = c->machines[s].attrs;
    } else if (s != CS_NONE && same_strings(c, &c->machines[s], &m)) {
        name = c->machines[s].name;
        attrs = c->machines[s].attrs;
    } else if (cs_strtab_intern(&c->strs, m.name, strlen(m.name), &name) != CS_OK ||
               intern_attrs(c, &m, &attrs) != CS_OK) {
        return nomem(err);
    }
    if (s == CS_NONE) {
        if (reserve((void **)&c->machines, &c->capmachines, c->nmachines + 1,
                    sizeof *c->machines) != CS_OK)
            return nomem(err);
        s = c->nmachines;
        memset(&c->machines[s], 0, sizeof c->machines[s]);
        c->machines[s].id = m.id;
        c->machines[s].tasks = CS_NONE;
        if (cs_idindex_add(&c->mix, c->machines, sizeof *c->machines, s) != CS_OK)
            return nomem(err);
        c->nmachines++;
    }
    cs_cmachine *d = &c->machines[s];
    if (m.nports > UINT16_MAX)
        return cs_errorf(err, CS_EPROTO, "sync: machine %s: %u ports in use", m.name, m.nports);
    if (m.nports == 0) {
        /* Ports are held only while non-empty: most machines of a batch
         * cell have none. */
        free(d->ports);
        d->ports = NULL;
        d->ports_log2 = 0;
    } else if (ports_room(d, m.nports) != CS_OK) {
        return nomem(err);
    }
    if (m.nports)
        memcpy(d->ports, m.ports, m.nports * sizeof *m.ports);
    d->nports = (uint16_t)m.nports;
    d->seq = m.seq;
    d->capacity = m.capacity;
    d->allocated = m.allocated;
    d->name = name;
    d->attrs = attrs;
    d->ntasks = m.ntasks;
    d->port_lo = m.port_lo;
    d->port_hi = m.port_hi;
    d->state = m.state;
    if (m.state == CS_MACHINE_UP && m.admin == CS_ADMIN_CORDONED)
        d->state = CS_MACHINE_DRAINING;
    else if (m.state == CS_MACHINE_UP && m.admin == CS_ADMIN_DRAINING)
        d->state = CS_CMACHINE_EVACUATING;
    return CS_OK;
}

static int apply_machine(cs_copy *c, const msgpack_object *o, cs_error *err)
{
    cs_arena_reset(&c->scratch);
    cs_machine m;
    int rc = cs_unpack_machine(o, &c->scratch, &m, err);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "sync: machine");
    return machine_rec(c, &m, err);
}

/* Bytes a job holds besides its slot, for cs_copy_memory: an arena's first
 * chunk is 4 KiB, and what the record and options take beyond that. */
static size_t job_bytes(const cs_cjob *j)
{
    size_t b = strlen(j->job.cmd) + j->job.extra_len + strlen(j->job.name) +
               j->job.nports * sizeof(uint16_t) +
               j->job.nconstraints * (sizeof(cs_constraint) + 3 * 16);
    b = b < 4096 ? 4096 : 2 * b;
    return b + j->job.nconstraints * sizeof(cs_ccons);
}

/* Compile the constraints and decode the options of a freshly unpacked
 * job; a problem makes the job `bad` (its tasks stay pending with the
 * reason), not the sync fail. */
static int job_prepare(cs_copy *c, cs_cjob *j, cs_error *err)
{
    cs_error why;
    cs_error_clear(&why);
    cs_jobopts_init(&j->opts);
    if (j->job.nconstraints) {
        j->cons = calloc(j->job.nconstraints, sizeof *j->cons);
        if (j->cons == NULL)
            return nomem(err);
        for (uint32_t i = 0; i < j->job.nconstraints; i++)
            cs_u32map_init(&j->cons[i].cache);
    }
    int rc = CS_OK;
    for (uint32_t i = 0; rc == CS_OK && i < j->job.nconstraints; i++)
        rc = cs_ccons_compile(&j->job.constraints[i], &c->strs, &j->cons[i], &why);
    if (rc == CS_OK) {
        rc = cs_job_opts(&j->job, &j->arena, &j->opts, &why);
        if (rc != CS_OK) {
            cs_jobopts_init(&j->opts);
            if (rc != CS_ENOMEM)
                cs_error_wrap(&why, rc, "options");
        }
    }
    if (rc == CS_ENOMEM)
        return nomem(err);
    if (rc != CS_OK) {
        j->bad = cs_arena_strndup(&j->arena, why.msg, strlen(why.msg));
        if (j->bad == NULL)
            return nomem(err);
    }
    j->bytes = job_bytes(j);
    return CS_OK;
}

static int job_rec(cs_copy *c, uint32_t s, cs_cjob *njp, cs_error *err);

static int apply_job(cs_copy *c, const msgpack_object *o, cs_error *err)
{
    uint64_t id = 0, version = 0;
    int rc;
    if ((rc = cs_obj_u64(o, "id", true, CS_JOB_ID_MAX, &id, err)) ||
        (rc = cs_obj_u64(o, "version", true, UINT64_MAX, &version, err)))
        return cs_error_wrap(err, rc, "sync: job");
    uint32_t s = cs_copy_job_slot(c, id);
    /* Unchanged since we decoded it: keep the compiled constraints. */
    if (s != CS_NONE && c->jobs[s].job.version == version)
        return CS_OK;
    cs_cjob nj;
    memset(&nj, 0, sizeof nj);
    cs_arena_init(&nj.arena);
    rc = cs_unpack_job(o, &nj.arena, &nj.job, err);
    if (rc != CS_OK) {
        cs_arena_free(&nj.arena);
        return cs_error_wrap(err, rc, "sync: job %llu", (unsigned long long)id);
    }
    return job_rec(c, s, &nj, err);
}

/* Put job `nj` (its record in its own arena, which the copy takes) in
 * slot `s`, or a new slot when CS_NONE. */
static int job_rec(cs_copy *c, uint32_t s, cs_cjob *njp, cs_error *err)
{
    cs_cjob nj = *njp;
    int rc;
    if ((rc = job_prepare(c, &nj, err)) != CS_OK ||
        cs_strtab_intern(&c->strs, nj.job.name, strlen(nj.job.name), &nj.name) != CS_OK) {
        job_release(&nj);
        return rc != CS_OK ? rc : nomem(err);
    }
    if (s == CS_NONE) {
        if (reserve((void **)&c->jobs, &c->capjobs, c->njobs + 1, sizeof *c->jobs) != CS_OK) {
            job_release(&nj);
            return nomem(err);
        }
        s = c->njobs;
        nj.tasks = NULL;
        nj.ntaskidx = 0;
        nj.pending = nj.pending_tail = CS_NONE;
        c->jobs[s] = nj;
        if (cs_idindex_add(&c->jix, c->jobs, sizeof *c->jobs, s) != CS_OK) {
            job_release(&c->jobs[s]);
            return nomem(err);
        }
        c->njobs++;
    } else {
        cs_cjob *j = &c->jobs[s];
        uint32_t held;
        if (cs_u32map_get(&c->active, j->name, &held) && held == s)
            cs_u32map_del(&c->active, j->name);
        job_release(j);
        /* The indexes of its tasks stay: they are the job's, not the spec's. */
        j->job = nj.job;
        j->opts = nj.opts;
        j->bad = nj.bad;
        j->cons = nj.cons;
        j->name = nj.name;
        j->bytes = nj.bytes;
        j->arena = nj.arena;
    }
    if (c->jobs[s].job.state == CS_JOB_ACTIVE &&
        cs_u32map_put(&c->active, c->jobs[s].name, s) != CS_OK)
        return nomem(err);
    return CS_OK;
}

/* Drop the jobs `ids` (n of them; ids the copy lacks are skipped) and
 * their tasks: a sync's "gone" (protocol §5.7), collected jobs. The
 * records left keep their order and move down over the holes, and every
 * slot that names one (a task's job, machine and job lists, a job's task
 * table, the active names, the id index) is renumbered: the copy is what a
 * full sync would have built, in a pass over the copy instead of a read of
 * the whole cell. CS_ENOMEM (then the copy must be synced in full). */
static int forget_jobs(cs_copy *c, const cs_id *ids, size_t n, cs_error *err)
{
    uint32_t *jmap = NULL, *tmap = NULL;
    bool any = false;
    int rc = CS_OK;
    if ((jmap = malloc(((size_t)c->njobs + 1) * sizeof *jmap)) == NULL)
        goto oom;
    for (uint32_t i = 0; i < c->njobs; i++)
        jmap[i] = i;
    for (size_t i = 0; i < n; i++) {
        uint32_t s = cs_copy_job_slot(c, ids[i]);
        if (s != CS_NONE) {
            jmap[s] = CS_NONE;
            any = true;
        }
    }
    if (!any)
        goto out;
    if ((tmap = malloc(((size_t)c->ntasks + 1) * sizeof *tmap)) == NULL)
        goto oom;
    /* Out of the lists first, while every slot is still what it was. */
    for (uint32_t t = 0; t < c->ntasks; t++)
        if (jmap[c->tasks[t].job] == CS_NONE)
            task_detach(c, t);
    uint32_t w = 0;
    for (uint32_t t = 0; t < c->ntasks; t++) {
        if (jmap[c->tasks[t].job] == CS_NONE) {
            tmap[t] = CS_NONE;
            free(c->tasks[t].ports);
        } else {
            tmap[t] = w++;
        }
    }
    uint32_t ntasks = w;
    w = 0;
    for (uint32_t i = 0; i < c->njobs; i++) {
        if (jmap[i] != CS_NONE) {
            jmap[i] = w++;
            continue;
        }
        uint32_t held;
        if (cs_u32map_get(&c->active, c->jobs[i].name, &held) && held == i)
            cs_u32map_del(&c->active, c->jobs[i].name);
        job_release(&c->jobs[i]);
        free(c->jobs[i].tasks);
    }
    uint32_t njobs = w;
#define REMAP(map, v) ((v) == CS_NONE ? CS_NONE : (map)[v])
    for (uint32_t t = 0; t < c->ntasks; t++) {
        if (tmap[t] == CS_NONE)
            continue;
        cs_ctask x = c->tasks[t];
        x.job = jmap[x.job];
        x.next = REMAP(tmap, x.next);
        x.prev = REMAP(tmap, x.prev);
        c->tasks[tmap[t]] = x;
    }
    for (uint32_t i = 0; i < c->njobs; i++) {
        if (jmap[i] == CS_NONE)
            continue;
        cs_cjob x = c->jobs[i];
        for (uint32_t k = 0; k < x.ntaskidx; k++)
            x.tasks[k] = REMAP(tmap, x.tasks[k]);
        x.pending = REMAP(tmap, x.pending);
        x.pending_tail = REMAP(tmap, x.pending_tail);
        c->jobs[jmap[i]] = x;
        uint32_t held;
        if (cs_u32map_get(&c->active, x.name, &held) && held == i &&
            cs_u32map_put(&c->active, x.name, jmap[i]) != CS_OK)
            goto oom; /* cannot fail: the name is there already */
    }
    for (uint32_t m = 0; m < c->nmachines; m++)
        c->machines[m].tasks = REMAP(tmap, c->machines[m].tasks);
#undef REMAP
    c->ntasks = ntasks;
    c->njobs = njobs;
    cs_idindex_clear(&c->jix);
    for (uint32_t i = 0; i < njobs; i++)
        if (cs_idindex_add(&c->jix, c->jobs, sizeof *c->jobs, i) != CS_OK)
            goto oom;
    goto out;
oom:
    rc = nomem(err);
out:
    free(jmap);
    free(tmap);
    return rc;
}

static int job_index_task(cs_cjob *j, uint32_t index, uint32_t ts)
{
    if (index >= j->ntaskidx) {
        uint32_t n = j->ntaskidx ? j->ntaskidx : 4;
        while (n <= index)
            n *= 2;
        if (n > CS_TASK_INDEX_MAX + 1)
            n = CS_TASK_INDEX_MAX + 1;
        uint32_t *p = realloc(j->tasks, n * sizeof *p);
        if (p == NULL)
            return CS_ENOMEM;
        for (uint32_t i = j->ntaskidx; i < n; i++)
            p[i] = CS_NONE;
        j->tasks = p;
        j->ntaskidx = n;
    }
    j->tasks[index] = ts;
    return CS_OK;
}

/* Insert or replace task `t` (borrowed) in the copy. */
static int apply_task_rec(cs_copy *c, const cs_task *t, cs_error *err)
{
    uint32_t js = cs_copy_job_slot(c, t->job);
    if (js == CS_NONE)
        return cs_errorf(err, CS_EPROTO, "sync: task %llu: the copy has no job %llu",
                         (unsigned long long)t->id, (unsigned long long)t->job);
    uint32_t ms = CS_NONE;
    if (t->machine != 0)
        ms = cs_copy_machine_slot(c, t->machine);
    /* A placed task joins its machine's list: machine 0 (none) is as
     * unknown as an id the copy lacks. */
    if (ms == CS_NONE && cs_task_state_placed(t->state))
        return cs_errorf(err, CS_EPROTO, "sync: task %llu: the copy has no machine %llu",
                         (unsigned long long)t->id, (unsigned long long)t->machine);
    if (t->nports > CS_PORTS_PER_TASK_MAX)
        return cs_errorf(err, CS_EPROTO, "sync: task %llu: %u ports", (unsigned long long)t->id,
                         t->nports);
    uint16_t *ports = NULL;
    if (t->nports) {
        ports = malloc(t->nports * sizeof *ports);
        if (ports == NULL)
            return nomem(err);
        memcpy(ports, t->ports, t->nports * sizeof *ports);
    }
    cs_cjob *j = &c->jobs[js];
    uint32_t s = t->index < j->ntaskidx ? j->tasks[t->index] : CS_NONE;
    if (s == CS_NONE) {
        if (reserve((void **)&c->tasks, &c->captasks, c->ntasks + 1, sizeof *c->tasks) != CS_OK)
            goto oom;
        s = c->ntasks;
        if (job_index_task(j, t->index, s) != CS_OK)
            goto oom;
        memset(&c->tasks[s], 0, sizeof c->tasks[s]);
        c->tasks[s].id = t->id;
        c->tasks[s].state = CS_TASK_STATE_COUNT; /* in no list yet */
        c->tasks[s].next = c->tasks[s].prev = CS_NONE;
        c->ntasks++;
    }
    cs_ctask *d = &c->tasks[s];
    task_detach(c, s);
    free(d->ports);
    d->ports = ports;
    d->nports = (uint8_t)t->nports;
    d->res = t->res;
    d->job = js;
    d->machine = ms;
    d->attempts = t->attempts;
    d->state = t->state;
    d->last_end = t->last_end;
    d->health = t->health;
    d->spec = t->spec;
    task_attach(c, s);
    return CS_OK;
oom:
    free(ports);
    return nomem(err);
}

static int apply_task(cs_copy *c, const msgpack_object *o, cs_error *err)
{
    cs_arena_reset(&c->scratch);
    cs_task t;
    int rc = cs_unpack_task(o, &c->scratch, &t, err);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "sync: task");
    return apply_task_rec(c, &t, err);
}

static int apply_list(cs_copy *c, const msgpack_object *reply, const char *key,
                      int (*fn)(cs_copy *, const msgpack_object *, cs_error *), cs_error *err)
{
    const msgpack_object *l = cs_obj_get(reply, key);
    if (l == NULL)
        return cs_errorf(err, CS_EPROTO, "sync: field '%s' is missing", key);
    if (l->type != MSGPACK_OBJECT_ARRAY)
        return cs_errorf(err, CS_EPROTO, "sync: field '%s' is not an array", key);
    for (uint32_t i = 0; i < l->via.array.size; i++) {
        int rc = fn(c, &l->via.array.ptr[i], err);
        if (rc != CS_OK)
            return rc;
    }
    return CS_OK;
}

static uint32_t list_size(const msgpack_object *reply, const char *key)
{
    const msgpack_object *l = cs_obj_get(reply, key);
    return l != NULL && l->type == MSGPACK_OBJECT_ARRAY ? l->via.array.size : 0;
}

/* A reply's "gone": the ids of the collected jobs, which forget_jobs
 * drops. From the map form's object, or (cur) the compact form's bytes. */
static int apply_gone_ids(cs_copy *c, const msgpack_object *o, cs_mp_cur *cur, cs_error *err)
{
    cs_ids ids = {0};
    uint32_t n = 0;
    int rc = CS_OK;
    if (o != NULL ? o->type != MSGPACK_OBJECT_ARRAY : cs_mp_read_array(cur, &n) != CS_OK)
        return cs_errorf(err, CS_EPROTO, "sync: field 'gone' is not an array");
    if (o != NULL)
        n = o->via.array.size;
    for (uint32_t i = 0; i < n && rc == CS_OK; i++) {
        uint64_t id = 0;
        bool ok = o != NULL ? o->via.array.ptr[i].type == MSGPACK_OBJECT_POSITIVE_INTEGER
                            : cs_mp_read_uint(cur, &id) == CS_OK;
        if (o != NULL && ok)
            id = o->via.array.ptr[i].via.u64;
        if (!ok || id == 0 || id > CS_JOB_ID_MAX)
            rc = cs_errorf(err, CS_EPROTO, "sync: gone[%u] is not a job id", i);
        else if (cs_ids_push(&ids, id) != CS_OK)
            rc = nomem(err);
    }
    if (rc == CS_OK)
        rc = forget_jobs(c, ids.v, ids.n, err);
    free(ids.v);
    return rc;
}

static int apply_gone_map(cs_copy *c, const msgpack_object *o, cs_error *err)
{
    return apply_gone_ids(c, o, NULL, err);
}

int cs_copy_apply(cs_copy *c, const msgpack_object *reply, cs_error *err)
{
    cs_copy_rollback(c);
    uint64_t version = 0;
    bool full = false;
    int rc;
    if (reply == NULL || reply->type != MSGPACK_OBJECT_MAP) {
        rc = cs_errorf(err, CS_EPROTO, "sync: the reply is not a map");
        goto fail;
    }
    if ((rc = cs_obj_u64(reply, "version", true, UINT64_MAX, &version, err)) ||
        (rc = cs_obj_bool(reply, "full", true, &full, err))) {
        cs_error_wrap(err, rc, "sync");
        goto fail;
    }
    if (cs_obj_get(reply, "base") != NULL) {
        rc = cs_errorf(err, CS_EPROTO, "sync: a piece of a full sync in the map form (the copy "
                       "reads pieces in the compact form)");
        goto fail;
    }
    if (full) {
        clear_records(c);
        /* The exact sizes: no growth slack on a fresh copy. */
        uint32_t nm = list_size(reply, "machines"), nj = list_size(reply, "jobs"),
                 nt = list_size(reply, "tasks");
        if (reserve((void **)&c->machines, &c->capmachines, nm, sizeof *c->machines) ||
            reserve((void **)&c->jobs, &c->capjobs, nj, sizeof *c->jobs) ||
            reserve((void **)&c->tasks, &c->captasks, nt, sizeof *c->tasks)) {
            rc = nomem(err);
            goto fail;
        }
    }
    const msgpack_object *gone = cs_obj_get(reply, "gone");
    if (gone != NULL && (rc = apply_gone_map(c, gone, err)) != CS_OK)
        goto fail;
    /* Machines and jobs first: tasks refer to them. */
    if ((rc = apply_list(c, reply, "machines", apply_machine, err)) ||
        (rc = apply_list(c, reply, "jobs", apply_job, err)) ||
        (rc = apply_list(c, reply, "tasks", apply_task, err)))
        goto fail;
    c->version = version;
    c->in_pieces = false;
    cs_arena_reset(&c->scratch);
    return CS_OK;
fail:
    c->version = 0;
    c->in_pieces = false;
    return rc;
}

/* ---- the compact form ------------------------------------------------------
 * Read in place with a cursor (cellstate/mpcheck.h): machines and jobs are
 * still maps, each unpacked alone into a small zone and applied as above;
 * tasks are positional entries, each standing for a run of equal tasks
 * (proto/proto.h), applied with no object tree at all. */

/* [a, b] of a piece ("ids", "next"): two unsigned integers. */
static int read_pair(cs_mp_cur *cur, const char *key, uint64_t *a, uint64_t *b, cs_error *err)
{
    uint32_t n;
    if (cs_mp_read_array(cur, &n) != CS_OK || n != 2 || cs_mp_read_uint(cur, a) != CS_OK ||
        cs_mp_read_uint(cur, b) != CS_OK)
        return cs_errorf(err, CS_EPROTO, "sync: field '%s' is not an array of two unsigned "
                         "integers", key);
    return CS_OK;
}

/* A piece's fields, once read: all of base, ids and more, or none; next
 * with more, and only then. */
static int check_piece(cs_copy_reply *r, const bool *seen, cs_error *err)
{
    static const char *const keys[] = {"base", "ids", "more", "next"};
    r->piece = seen[0] || seen[1] || seen[2];
    if (!r->piece && !seen[3])
        return CS_OK;
    for (int f = 0; f < 3; f++)
        if (!seen[f])
            return cs_errorf(err, CS_EPROTO, "sync: field '%s' is missing (a piece of a full "
                             "sync has base, ids and more)", keys[f]);
    if (r->at.more != seen[3])
        return cs_errorf(err, CS_EPROTO, "sync: field 'next' is %s", seen[3] ? "there without "
                         "more" : "missing (more is true)");
    if (r->at.next.kind >= CS_KIND_COUNT)
        return cs_errorf(err, CS_EPROTO, "sync: field 'next': kind %u is not 0, 1 or 2",
                         r->at.next.kind);
    return CS_OK;
}

int cs_copy_read_reply(const void *data, size_t len, cs_copy_reply *r, cs_error *err)
{
    static const char *const keys[] = {"version", "full", "machines", "jobs", "tasks", "form",
                                       "gone",    "base", "ids",      "more", "next"};
    enum { NKEYS = sizeof keys / sizeof *keys };
    memset(r, 0, sizeof *r);
    bool piece[4] = {false}; /* base, ids, more, next */
    bool seen[5] = {false}; /* version, full, machines, jobs, tasks */
    cs_mp_cur *list[3] = {&r->machines, &r->jobs, &r->tasks};
    cs_mp_cur cur;
    cs_mp_cur_init(&cur, data, len);
    uint32_t n;
    if (cs_mp_read_map(&cur, &n) != CS_OK)
        return cs_errorf(err, CS_EPROTO, "sync: the reply is not a map");
    bool form = false;
    for (uint32_t i = 0; i < n; i++) {
        const char *k;
        uint32_t klen;
        if (cs_mp_read_str(&cur, &k, &klen) != CS_OK)
            return cs_errorf(err, CS_EPROTO, "sync: key %u of the reply is not a string", i);
        int f = 0;
        while (f < NKEYS && !(strlen(keys[f]) == klen && memcmp(keys[f], k, klen) == 0))
            f++;
        if (f >= 7 && f < NKEYS && piece[f - 7])
            return cs_errorf(err, CS_EPROTO, "sync: field '%s' appears twice", keys[f]);
        if (f >= 7 && f < NKEYS)
            piece[f - 7] = true;
        if (f < 5 && seen[f])
            return cs_errorf(err, CS_EPROTO, "sync: field '%s' appears twice", keys[f]);
        if (f < 5)
            seen[f] = true;
        const void *v;
        size_t vlen;
        if (f == 0) {
            if (cs_mp_read_uint(&cur, &r->version) != CS_OK)
                return cs_errorf(err, CS_EPROTO, "sync: field 'version' is not an unsigned integer");
        } else if (f == 1) {
            if (cs_mp_read_bool(&cur, &r->full) != CS_OK)
                return cs_errorf(err, CS_EPROTO, "sync: field 'full' is not a boolean");
        } else if (f == 5) {
            const char *fv;
            uint32_t flen;
            if (form || cs_mp_read_str(&cur, &fv, &flen) != CS_OK)
                return cs_errorf(err, CS_EPROTO, "sync: field 'form' is not one string");
            form = true;
            r->compact = flen == 7 && memcmp(fv, "compact", 7) == 0;
            if (!r->compact && !(flen == 3 && memcmp(fv, "map", 3) == 0))
                return cs_errorf(err, CS_EPROTO, "sync: field 'form' is '%.*s'",
                                 (int)(flen > 32 ? 32 : flen), fv);
        } else if (f == 6) {
            if (r->has_gone || cs_mp_read_raw(&cur, &v, &vlen) != CS_OK)
                return cs_errorf(err, CS_EPROTO, "sync: field 'gone' is not one array");
            r->has_gone = true;
            cs_mp_cur_init(&r->gone, v, vlen);
        } else if (f == 7) {
            if (cs_mp_read_uint(&cur, &r->at.base) != CS_OK)
                return cs_errorf(err, CS_EPROTO, "sync: field 'base' is not an unsigned integer");
        } else if (f == 8) {
            CS_TRY(read_pair(&cur, "ids", &r->at.max_machine, &r->at.max_job, err));
        } else if (f == 9) {
            if (cs_mp_read_bool(&cur, &r->at.more) != CS_OK)
                return cs_errorf(err, CS_EPROTO, "sync: field 'more' is not a boolean");
        } else if (f == 10) {
            uint64_t kind;
            CS_TRY(read_pair(&cur, "next", &kind, &r->at.next.id, err));
            r->at.next.kind = kind > UINT8_MAX ? UINT8_MAX : (uint8_t)kind;
        } else if (f < 5 && i == n - 1) {
            /* The last field (the server puts the tasks there) runs to
             * the end of the reply: its entries are checked as they are
             * read, so it is not scanned first to find its end. */
            cs_mp_cur_init(list[f - 2], cur.p, cs_mp_cur_left(&cur));
            cur.p = cur.end;
        } else if (cs_mp_read_raw(&cur, &v, &vlen) != CS_OK) {
            return cs_errorf(err, CS_EPROTO, "sync: the reply is truncated");
        } else if (f < 5) {
            cs_mp_cur_init(list[f - 2], v, vlen);
        }
    }
    for (int f = 0; f < 5; f++)
        if (!seen[f])
            return cs_errorf(err, CS_EPROTO, "sync: field '%s' is missing", keys[f]);
    return check_piece(r, piece, err);
}

/* Apply each map of `list` (machines or jobs) with fn. */
static int apply_maps(cs_copy *c, cs_mp_cur *list, const char *key,
                      int (*fn)(cs_copy *, const msgpack_object *, cs_error *), cs_error *err)
{
    uint32_t n;
    if (cs_mp_read_array(list, &n) != CS_OK)
        return cs_errorf(err, CS_EPROTO, "sync: field '%s' is not an array", key);
    for (uint32_t i = 0; i < n; i++) {
        const void *v;
        size_t vlen;
        msgpack_object o;
        msgpack_zone_clear(&c->zone);
        if (cs_mp_read_raw(list, &v, &vlen) != CS_OK)
            return cs_errorf(err, CS_EPROTO, "sync: %s[%u] is truncated", key, i);
        int rc = cs_mp_unpack(v, vlen, &c->zone, &o, CS_EPROTO, key, err);
        if (rc == CS_OK)
            rc = fn(c, &o, err);
        if (rc != CS_OK)
            return cs_error_wrap(err, rc, "%s[%u]", key, i);
    }
    return CS_OK;
}

static int apply_entries(cs_copy *c, cs_mp_cur *list, cs_error *err)
{
    uint32_t n;
    if (cs_mp_read_array(list, &n) != CS_OK)
        return cs_errorf(err, CS_EPROTO, "sync: field 'tasks' is not an array");
    for (uint32_t i = 0; i < n; i++) {
        cs_arena_reset(&c->scratch);
        cs_task t;
        uint32_t run;
        int rc = cs_read_task_entry(list, &c->scratch, &t, &run, err);
        if (rc != CS_OK)
            return cs_error_wrap(err, rc, "sync: tasks[%u]", i);
        for (uint32_t k = 0; k < run; k++) {
            if ((rc = apply_task_rec(c, &t, err)) != CS_OK)
                return rc;
            t.id++;
            t.index++;
        }
    }
    return CS_OK;
}

/* The map form, unpacked whole and applied by cs_copy_apply. */
static int apply_map_form(cs_copy *c, const void *data, size_t len, cs_error *err)
{
    msgpack_object o;
    msgpack_zone_clear(&c->zone);
    int rc = cs_mp_unpack(data, len, &c->zone, &o, CS_EPROTO, "sync reply", err);
    if (rc != CS_OK) {
        c->version = 0;
        c->in_pieces = false;
        return rc;
    }
    rc = cs_copy_apply(c, &o, err);
    msgpack_zone_clear(&c->zone);
    return rc;
}

int cs_copy_apply_bytes(cs_copy *c, const void *data, size_t len, cs_error *err)
{
    return cs_copy_apply_piece(c, data, len, NULL, NULL, err);
}

int cs_copy_apply_piece(cs_copy *c, const void *data, size_t len, bool *piece, cs_sync_piece *at,
                        cs_error *err)
{
    cs_copy_rollback(c);
    cs_copy_reply r;
    int rc = cs_copy_read_reply(data, len, &r, err);
    if (rc != CS_OK)
        goto fail;
    if (r.piece && !r.compact) {
        rc = cs_errorf(err, CS_EPROTO, "sync: a piece of a full sync in the map form (the copy "
                       "reads pieces in the compact form)");
        goto fail;
    }
    if (r.piece && !r.full && !(c->in_pieces && c->piece_base == r.at.base)) {
        rc = cs_errorf(err, CS_EPROTO, "sync: a piece that continues a full sync from version "
                       "%llu, which the copy is not receiving", (unsigned long long)r.at.base);
        goto fail;
    }
    if (piece != NULL)
        *piece = r.piece;
    if (at != NULL)
        *at = r.at;
    c->in_pieces = false;
    if (!r.compact)
        return apply_map_form(c, data, len, err);
    if (r.full) {
        clear_records(c);
        cs_mp_cur m = r.machines, j = r.jobs;
        uint32_t nm = 0, nj = 0;
        cs_mp_read_array(&m, &nm);
        cs_mp_read_array(&j, &nj);
        if (reserve((void **)&c->machines, &c->capmachines, nm, sizeof *c->machines) ||
            reserve((void **)&c->jobs, &c->capjobs, nj, sizeof *c->jobs)) {
            rc = nomem(err);
            goto fail;
        }
    }
    if (r.has_gone && (rc = apply_gone_ids(c, NULL, &r.gone, err)) != CS_OK)
        goto fail;
    /* Machines and jobs first: tasks refer to them. */
    if ((rc = apply_maps(c, &r.machines, "machines", apply_machine, err)) ||
        (rc = apply_maps(c, &r.jobs, "jobs", apply_job, err)) ||
        (rc = apply_entries(c, &r.tasks, err)))
        goto fail;
    /* Between pieces the copy mixes versions: version 0 until the last,
     * then the pieces' base. */
    c->version = !r.piece ? r.version : r.at.more ? 0 : r.at.base;
    c->in_pieces = r.piece && r.at.more;
    c->piece_base = r.at.base;
    cs_arena_reset(&c->scratch);
    msgpack_zone_clear(&c->zone);
    return CS_OK;
fail:
    c->version = 0;
    c->in_pieces = false;
    return rc;
}

/* ---- records from a store in the same process ---------------------------------------- */

/* The reader cs_copy_apply_snap gives cs_sync_reply_visit: the steps of
 * cs_copy_apply_bytes, taking the records as the store decoded them
 * instead of packing and reading them again. */
typedef struct visit {
    cs_copy *c;
    uint64_t version;
    bool full;
} visit;

static int v_head(void *ctx, uint64_t version, bool full, size_t ngone,
                  const cs_sync_piece *piece, cs_error *err)
{
    visit *v = ctx;
    (void)ngone;
    (void)piece; /* the in-process sync never asks for pieces */
    v->version = version;
    v->full = full;
    if (full)
        clear_records(v->c);
    return CS_OK;
}

static int v_gone(void *ctx, const cs_id *jobs, size_t n, cs_error *err)
{
    return forget_jobs(((visit *)ctx)->c, jobs, n, err);
}

static int v_list(void *ctx, int kind, size_t n, cs_error *err)
{
    visit *v = ctx;
    cs_copy *c = v->c;
    if (!v->full || kind == CS_KIND_TASK)
        return CS_OK;
    if (n > UINT32_MAX)
        return nomem(err);
    /* The exact sizes: no growth slack on a fresh copy. */
    int rc = kind == CS_KIND_MACHINE
                 ? reserve((void **)&c->machines, &c->capmachines, (uint32_t)n, sizeof *c->machines)
                 : reserve((void **)&c->jobs, &c->capjobs, (uint32_t)n, sizeof *c->jobs);
    return rc == CS_OK ? CS_OK : nomem(err);
}

static int v_machine(void *ctx, const cs_machine *m, cs_error *err)
{
    return machine_rec(((visit *)ctx)->c, m, err);
}

static int v_job(void *ctx, const cs_job *j, cs_error *err)
{
    cs_copy *c = ((visit *)ctx)->c;
    uint32_t s = cs_copy_job_slot(c, j->id);
    /* Unchanged since we took it: keep the compiled constraints. */
    if (s != CS_NONE && c->jobs[s].job.version == j->version)
        return CS_OK;
    cs_cjob nj;
    memset(&nj, 0, sizeof nj);
    cs_arena_init(&nj.arena);
    if (cs_job_copy(j, &nj.arena, &nj.job) != CS_OK) {
        cs_arena_free(&nj.arena);
        return nomem(err);
    }
    return job_rec(c, s, &nj, err);
}

static int v_task(void *ctx, const cs_task *t, cs_error *err)
{
    return apply_task_rec(((visit *)ctx)->c, t, err);
}

static int v_end(void *ctx, cs_error *err)
{
    visit *v = ctx;
    v->c->version = v->version;
    return CS_OK;
}

int cs_copy_apply_snap(cs_copy *c, cs_snap *snap, bool *full, cs_error *err)
{
    cs_copy_rollback(c);
    visit v = {c, 0, false};
    cs_sync_visitor vis = {&v,    v_head, v_gone, v_list,         v_machine,
                           v_job, v_task, v_end,  true};
    cs_sync_req req = {.since = c->version, .compact = true, .omit_running = c->omit_running,
                       .gone = true};
    int rc = cs_sync_reply_visit(snap, &req, &vis, err);
    cs_arena_reset(&c->scratch);
    if (rc != CS_OK) {
        c->version = 0;
        c->in_pieces = false;
        return cs_error_wrap(err, rc, "sync");
    }
    *full = v.full;
    return CS_OK;
}

int cs_copy_sync(cs_copy *c, const cs_sched_port *port, cs_error *err)
{
    cs_copy_rollback(c);
    int rc = port->sync(port->ctx, c, err);
    if (rc != CS_OK) {
        c->version = 0;
        c->in_pieces = false;
    }
    return rc;
}

bool cs_copy_omits_running(const cs_copy *c) { return c->omit_running; }

/* A full sync in pieces whose catch-up delta came back full (its base fell
 * behind the log floor, --log-retain: 10 min by default, against seconds
 * for a transfer) starts again; this many starts in a row is a cell that
 * compacts faster than the reader reads, and an error. */
#define SYNC_STARTS_MAX 4

static int sync_pieces(cs_copy *c, cs_copy_sync_call call, void *ctx, uint32_t chunk,
                       uint64_t min_index, cs_error *err)
{
    cs_sync_req req = {.since = c->version, .compact = true, .omit_running = c->omit_running,
                       .min_index = min_index, .gone = true, .chunk = chunk};
    unsigned starts = 0;
    for (;;) {
        const void *body;
        size_t len;
        bool piece;
        cs_sync_piece at;
        CS_TRY(call(ctx, &req, &body, &len, err));
        CS_TRY(cs_copy_apply_piece(c, body, len, &piece, &at, err));
        if (!piece)
            return CS_OK; /* a delta (the catch-up one too), or a server that answers whole */
        if (!req.cont && ++starts > SYNC_STARTS_MAX)
            return cs_errorf(err, CS_EUNAVAIL, "sync: a full sync in pieces started %u times, "
                             "its base behind the log floor each time", SYNC_STARTS_MAX);
        bool several = req.cont;
        req = (cs_sync_req){.compact = true, .omit_running = c->omit_running,
                            .min_index = min_index, .gone = true, .chunk = chunk};
        if (at.more) {
            req.cont = true;
            req.at = at;
        } else if (several) {
            req.since = at.base; /* the copy's version now */
        } else {
            return CS_OK; /* one piece held the whole cell: one version already */
        }
    }
}

int cs_copy_sync_with(cs_copy *c, cs_copy_sync_call call, void *ctx, uint32_t chunk,
                      uint64_t min_index, cs_error *err)
{
    cs_copy_rollback(c);
    int rc = sync_pieces(c, call, ctx, chunk, min_index, err);
    if (rc != CS_OK) {
        c->version = 0;
        c->in_pieces = false;
    }
    return rc;
}

/* ---- tentative changes -------------------------------------------------------------- */

static int push_undo(cs_copy *c, const undo *u)
{
    if (reserve((void **)&c->undo, &c->capundo, c->nundo + 1, sizeof *c->undo) != CS_OK)
        return CS_ENOMEM;
    c->undo[c->nundo++] = *u;
    return CS_OK;
}

int cs_copy_claim(cs_copy *c, cs_id task, cs_id machine, const cs_res *res,
                  const uint16_t *ports, uint32_t nports, cs_error *err)
{
    uint32_t ts = cs_copy_task_slot(c, task), ms = cs_copy_machine_slot(c, machine);
    if (ts == CS_NONE)
        return cs_errorf(err, CS_ENOTFOUND, "claim: unknown task %llu", (unsigned long long)task);
    if (ms == CS_NONE)
        return cs_errorf(err, CS_ENOTFOUND, "claim: unknown machine %llu",
                         (unsigned long long)machine);
    cs_ctask *t = &c->tasks[ts];
    cs_cmachine *m = &c->machines[ms];
    if (t->state != CS_TASK_PENDING)
        return cs_errorf(err, CS_ESTATE, "claim: task %llu is %s, not pending",
                         (unsigned long long)task, cs_task_state_name(t->state));
    if (nports > CS_PORTS_PER_TASK_MAX)
        return cs_errorf(err, CS_EINVAL, "claim: task %llu: %u ports (at most %d)",
                         (unsigned long long)task, nports, CS_PORTS_PER_TASK_MAX);
    for (uint32_t i = 0; i < nports; i++) {
        bool twice = false;
        for (uint32_t k = 0; k < i; k++)
            twice |= ports[k] == ports[i];
        if (twice || cs_ports_contains(m->ports, m->nports, ports[i]))
            return cs_errorf(err, CS_ESTATE, "claim: task %llu: port %u %s on machine %s",
                             (unsigned long long)task, ports[i],
                             twice ? "asked twice" : "in use", cs_copy_str(c, m->name));
    }
    uint16_t *own = NULL;
    if (nports) {
        own = malloc(nports * sizeof *own);
        if (own == NULL)
            return nomem(err);
        memcpy(own, ports, nports * sizeof *own);
    }
    undo u = {.kind = UNDO_CLAIM, .state = t->state, .last_end = t->last_end,
              .nports = t->nports, .health = t->health, .task = ts, .machine = ms,
              .prev = t->prev, .next = t->next, .old_machine = t->machine, .res = t->res,
              .ports = t->ports};
    if (push_undo(c, &u) != CS_OK) {
        free(own);
        return nomem(err);
    }
    /* Reserve room for every port before changing anything, so that a
     * failure leaves the copy as it was. */
    if (m->nports + nports > UINT16_MAX || ports_room(m, m->nports + nports) != CS_OK) {
        c->nundo--;
        free(own);
        return nomem(err);
    }
    pending_unlink(c, ts);
    t->ports = own;
    t->nports = (uint8_t)nports;
    t->res = *res;
    t->state = CS_TASK_ASSIGNED;
    t->health = CS_TASK_HEALTH_UNKNOWN;
    t->machine = ms;
    machine_link(c, ts);
    c->jobs[t->job].nplaced++;
    m->ntasks++;
    cs_res_add(&m->allocated, res);
    for (uint32_t i = 0; i < nports; i++)
        ports_insert(m, ports[i]);
    return CS_OK;
}

/* Take placed task `what` (evict, requeue) off its machine, giving back
 * what it holds, with an undo record of `kind`. Returns its slot through
 * *slot. */
static int unplace(cs_copy *c, cs_id task, uint8_t kind, const char *what, uint32_t *slot,
                   cs_error *err)
{
    uint32_t ts = cs_copy_task_slot(c, task);
    if (ts == CS_NONE)
        return cs_errorf(err, CS_ENOTFOUND, "%s: unknown task %llu", what,
                         (unsigned long long)task);
    cs_ctask *t = &c->tasks[ts];
    if (!cs_task_state_placed(t->state))
        return cs_errorf(err, CS_ESTATE, "%s: task %llu is %s, not placed", what,
                         (unsigned long long)task, cs_task_state_name(t->state));
    undo u = {.kind = kind, .state = t->state, .last_end = t->last_end, .nports = t->nports,
              .health = t->health, .task = ts, .machine = t->machine, .prev = t->prev,
              .next = t->next, .old_machine = t->machine, .res = t->res, .ports = t->ports};
    if (push_undo(c, &u) != CS_OK)
        return nomem(err);
    cs_cmachine *m = &c->machines[t->machine];
    machine_unlink(c, ts);
    c->jobs[t->job].nplaced--;
    m->ntasks--;
    cs_res_sub(&m->allocated, &t->res);
    for (uint32_t i = 0; i < t->nports; i++)
        ports_remove(m, t->ports[i]);
    *slot = ts;
    return CS_OK;
}

int cs_copy_evict(cs_copy *c, cs_id task, cs_error *err)
{
    uint32_t ts;
    int rc = unplace(c, task, UNDO_EVICT, "evict", &ts, err);
    if (rc != CS_OK)
        return rc;
    /* The commit returns a preempted victim to pending; until then it is
     * out of every list so that no decision of this round places it again. */
    c->tasks[ts].state = CS_TASK_PREEMPTED;
    c->tasks[ts].last_end = CS_TASK_PREEMPTED;
    return CS_OK;
}

int cs_copy_requeue(cs_copy *c, cs_id task, cs_error *err)
{
    uint32_t ts;
    int rc = unplace(c, task, UNDO_REQUEUE, "requeue", &ts, err);
    if (rc != CS_OK)
        return rc;
    cs_ctask *t = &c->tasks[ts];
    cs_cjob *j = &c->jobs[t->job];
    /* What the commit's release to pending makes of it. The ports stay
     * with the undo record. */
    t->state = CS_TASK_PENDING;
    t->last_end = CS_TASK_KILLED;
    t->health = CS_TASK_HEALTH_UNKNOWN;
    t->res = j->job.res;
    t->ports = NULL;
    t->nports = 0;
    pending_insert(c, ts, j->pending_tail, CS_NONE);
    return CS_OK;
}

int cs_copy_hold(cs_copy *c, cs_id machine, const cs_res *res, cs_error *err)
{
    uint32_t ms = cs_copy_machine_slot(c, machine);
    if (ms == CS_NONE)
        return cs_errorf(err, CS_ENOTFOUND, "hold: unknown machine %llu", (unsigned long long)machine);
    if (res->cpu < 0 || res->mem < 0 || res->disk < 0)
        return cs_errorf(err, CS_EINVAL,
                         "hold: machine %s: a negative amount (cpu %lld, mem %lld, disk %lld)",
                         cs_copy_str(c, c->machines[ms].name), (long long)res->cpu,
                         (long long)res->mem, (long long)res->disk);
    undo u = {.kind = UNDO_HOLD, .machine = ms, .res = *res};
    if (push_undo(c, &u) != CS_OK)
        return nomem(err);
    cs_res_add(&c->machines[ms].allocated, res);
    return CS_OK;
}

size_t cs_copy_mark(const cs_copy *c) { return c->nundo; }

void cs_copy_undo(cs_copy *c, size_t mark)
{
    while (c->nundo > mark) {
        const undo *u = &c->undo[--c->nundo];
        cs_cmachine *m = &c->machines[u->machine];
        if (u->kind == UNDO_HOLD) {
            cs_res_sub(&m->allocated, &u->res);
            continue;
        }
        cs_ctask *t = &c->tasks[u->task];
        if (u->kind == UNDO_CLAIM) {
            for (uint32_t i = 0; i < t->nports; i++)
                ports_remove(m, t->ports[i]);
            cs_res_sub(&m->allocated, &t->res);
            m->ntasks--;
            machine_unlink(c, u->task);
            c->jobs[t->job].nplaced--;
            free(t->ports);
            t->ports = u->ports;
            t->nports = u->nports;
            t->res = u->res;
            t->state = u->state;
            t->last_end = u->last_end;
            t->health = u->health;
            t->machine = u->old_machine;
            /* Every later change is undone, so its old neighbours are
             * neighbours again. */
            pending_insert(c, u->task, u->prev, u->next);
        } else {
            if (u->kind == UNDO_REQUEUE) {
                /* Nothing later is left: it is still where it was queued. */
                pending_unlink(c, u->task);
                t->res = u->res;
                t->ports = u->ports;
                t->nports = u->nports;
                t->health = u->health;
            }
            t->state = u->state;
            t->last_end = u->last_end;
            /* The room they had is still there: ports_room never shrinks. */
            for (uint32_t i = 0; i < t->nports; i++)
                ports_insert(m, t->ports[i]);
            cs_res_add(&m->allocated, &t->res);
            m->ntasks++;
            t->prev = u->prev;
            t->next = u->next;
            if (u->prev != CS_NONE)
                c->tasks[u->prev].next = u->task;
            else
                m->tasks = u->task;
            if (u->next != CS_NONE)
                c->tasks[u->next].prev = u->task;
            c->jobs[t->job].nplaced++;
        }
    }
}

void cs_copy_rollback(cs_copy *c) { cs_copy_undo(c, 0); }

/* ---- memory -------------------------------------------------------------------------- */

void cs_copy_memory(const cs_copy *c, cs_copy_mem *out)
{
    memset(out, 0, sizeof *out);
    out->machines = (size_t)c->capmachines * sizeof *c->machines +
                    (size_t)c->mix.nslots * sizeof *c->mix.slots +
                    (size_t)c->capattrpool * sizeof *c->attrpool +
                    (size_t)c->nattrix * sizeof *c->attrix;
    for (uint32_t i = 0; i < c->nmachines; i++)
        out->machines += ports_bytes(&c->machines[i]);
    out->strings = cs_strtab_memory(&c->strs);
    out->jobs = (size_t)c->capjobs * sizeof *c->jobs + (size_t)c->jix.nslots * sizeof(uint32_t) +
                cs_u32map_memory(&c->active);
    for (uint32_t i = 0; i < c->njobs; i++) {
        const cs_cjob *j = &c->jobs[i];
        out->jobs += j->bytes + (size_t)j->ntaskidx * sizeof *j->tasks;
        for (uint32_t k = 0; j->cons != NULL && k < j->job.nconstraints; k++)
            out->jobs += cs_u32map_memory(&j->cons[k].cache) + (j->cons[k].re ? sizeof(regex_t) : 0);
    }
    out->tasks = (size_t)c->captasks * sizeof *c->tasks;
    for (uint32_t i = 0; i < c->ntasks; i++)
        out->tasks += (size_t)c->tasks[i].nports * sizeof(uint16_t);
    out->undo = (size_t)c->capundo * sizeof *c->undo;
    out->total = out->machines + out->strings + out->jobs + out->tasks + out->undo +
                 sizeof *c;
}
