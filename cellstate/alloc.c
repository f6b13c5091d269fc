/* alloc.c — machines' allocations derived from placed tasks, in versioned
 * in-memory chains (see alloc.h). */
#include "cellstate/alloc.h"

#include "cellstate/arena.h"
#include "cellstate/idindex.h"
#include "cellstate/vec.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Machine ids index a two-level table: 2^16 chunks of 2^12 slots, allocated
 * as ids reach them, so that readers index it without a lock while the
 * writer grows it. */
#define CHUNK_BITS 12
#define CHUNK_SLOTS (1u << CHUNK_BITS)
#define NCHUNKS (1u << 16)
#define MACHINE_LIMIT ((cs_id)NCHUNKS * CHUNK_SLOTS)

/* An immutable allocation, visible to snapshots at or after `version`. The
 * arrays follow the struct in the same allocation. */
typedef struct entry {
    uint64_t version;
    uint64_t changed;
    bool known;
    cs_alloc_spec spec;
    cs_res allocated;
    uint32_t ntasks, nports;
    const cs_id *tasks;
    const uint16_t *ports;
    _Atomic(struct entry *) older;
} entry;

typedef _Atomic(entry *) slot;

struct cs_alloc {
    _Atomic(slot *) *chunks; /* NCHUNKS pointers */
    /* Machines whose chain holds more than one entry, each once: the
     * writer trims them as readers move on. Writer-only. */
    cs_ids pending;
    /* A machine could not be added to `pending` (out of memory): the next
     * trim finds the long chains by walking the whole table. */
    bool lost;
};

/* A machine's allocation being changed by a write transaction. */
typedef struct ov {
    cs_id machine;
    uint64_t changed;
    bool known;
    cs_alloc_spec spec;
    cs_res allocated;
    cs_id *tasks;
    uint32_t ntasks, captasks;
    uint16_t *ports;
    uint32_t nports, capports;
} ov;

struct cs_alloc_txn {
    cs_alloc *t;
    /* The overlay's task and port arrays: they all die with the
     * transaction, and a commit touches a hundred machines. */
    cs_arena a;
    uint64_t version;
    bool stamp;
    ov *v;
    uint32_t n;
    size_t cap;
    cs_idindex index; /* finds a machine's entry in v */
};

int cs_alloc_create(cs_alloc **out, cs_error *err)
{
    cs_alloc *t = calloc(1, sizeof *t);
    if (t == NULL || (t->chunks = calloc(NCHUNKS, sizeof *t->chunks)) == NULL) {
        free(t);
        return cs_errorf(err, CS_ENOMEM, "allocation table: out of memory");
    }
    *out = t;
    return CS_OK;
}

static void free_chain(entry *e)
{
    while (e != NULL) {
        entry *older = atomic_load_explicit(&e->older, memory_order_relaxed);
        free(e);
        e = older;
    }
}

void cs_alloc_destroy(cs_alloc *t)
{
    if (t == NULL)
        return;
    for (uint32_t c = 0; c < NCHUNKS; c++) {
        slot *s = atomic_load_explicit(&t->chunks[c], memory_order_relaxed);
        if (s == NULL)
            continue;
        for (uint32_t i = 0; i < CHUNK_SLOTS; i++)
            free_chain(atomic_load_explicit(&s[i], memory_order_relaxed));
        free(s);
    }
    free(t->chunks);
    cs_ids_free(&t->pending);
    free(t);
}

static slot *slot_of(const cs_alloc *t, cs_id machine)
{
    if (machine >= MACHINE_LIMIT)
        return NULL;
    slot *chunk = atomic_load_explicit(&t->chunks[machine >> CHUNK_BITS], memory_order_acquire);
    return chunk == NULL ? NULL : &chunk[machine & (CHUNK_SLOTS - 1)];
}

/* The newest entry visible at `version`, or NULL. */
static const entry *visible(const cs_alloc *t, cs_id machine, uint64_t version)
{
    slot *s = slot_of(t, machine);
    if (s == NULL)
        return NULL;
    const entry *e = atomic_load_explicit(s, memory_order_acquire);
    while (e != NULL && e->version > version)
        e = atomic_load_explicit(&e->older, memory_order_acquire);
    return e;
}

static void view_of(const entry *e, cs_alloc_view *out)
{
    memset(out, 0, sizeof *out);
    if (e == NULL)
        return;
    out->allocated = e->allocated;
    out->ntasks = e->ntasks;
    out->nports = e->nports;
    out->tasks = e->tasks;
    out->ports = e->ports;
    out->changed = e->changed;
    out->known = e->known;
    out->spec = e->spec;
}

void cs_alloc_get(const cs_alloc *t, cs_id machine, uint64_t version, cs_alloc_view *out)
{
    view_of(visible(t, machine, version), out);
}

/* ---- the writer's overlay ---------------------------------------------- */

int cs_alloc_txn_begin(cs_alloc *t, uint64_t version, bool stamp, cs_alloc_txn **out,
                       cs_error *err)
{
    cs_alloc_txn *x = calloc(1, sizeof *x);
    if (x == NULL)
        return cs_errorf(err, CS_ENOMEM, "allocation table: out of memory");
    x->t = t;
    cs_arena_init(&x->a);
    x->version = version;
    x->stamp = stamp;
    *out = x;
    return CS_OK;
}

void cs_alloc_txn_set_version(cs_alloc_txn *x, uint64_t version) { x->version = version; }

void cs_alloc_txn_discard(cs_alloc_txn *x)
{
    if (x == NULL)
        return;
    cs_arena_free(&x->a);
    free(x->v);
    cs_idindex_free(&x->index);
    free(x);
}

static ov *ov_find(const cs_alloc_txn *x, cs_id machine)
{
    uint32_t i = cs_idindex_find(&x->index, x->v, sizeof *x->v, machine);
    return i == CS_IDINDEX_NONE ? NULL : &x->v[i];
}

/* The overlay entry of `machine`, made from the published one on first use. */
static int ov_get(cs_alloc_txn *x, cs_id machine, ov **out, cs_error *err)
{
    if (machine == 0 || machine >= MACHINE_LIMIT)
        return cs_errorf(err, CS_EFULL, "machine id %llu is beyond the allocation table",
                         (unsigned long long)machine);
    ov *o = ov_find(x, machine);
    if (o != NULL) {
        *out = o;
        return CS_OK;
    }
    ov *nv = cs_vec_grow(x->v, &x->cap, (size_t)x->n + 1, sizeof *x->v, 32);
    if (nv == NULL)
        goto nomem;
    x->v = nv;
    o = &x->v[x->n];
    memset(o, 0, sizeof *o);
    o->machine = machine;
    const entry *e = visible(x->t, machine, UINT64_MAX);
    if (e != NULL) {
        o->changed = e->changed;
        o->known = e->known;
        o->spec = e->spec;
        o->allocated = e->allocated;
        if (e->ntasks > 0) {
            if ((o->tasks = cs_arena_alloc(&x->a, e->ntasks * sizeof *o->tasks)) == NULL)
                goto nomem;
            memcpy(o->tasks, e->tasks, e->ntasks * sizeof *o->tasks);
            o->ntasks = o->captasks = e->ntasks;
        }
        if (e->nports > 0) {
            if ((o->ports = cs_arena_alloc(&x->a, e->nports * sizeof *o->ports)) == NULL)
                goto nomem;
            memcpy(o->ports, e->ports, e->nports * sizeof *o->ports);
            o->nports = o->capports = e->nports;
        }
    }
    if (cs_idindex_add(&x->index, x->v, sizeof *x->v, x->n) != CS_OK)
        goto nomem;
    x->n++;
    *out = o;
    return CS_OK;
nomem:
    return cs_errorf(err, CS_ENOMEM, "allocation table: out of memory");
}

void cs_alloc_txn_get(const cs_alloc_txn *x, cs_id machine, cs_alloc_view *out)
{
    const ov *o = ov_find(x, machine);
    if (o == NULL) {
        cs_alloc_get(x->t, machine, UINT64_MAX, out);
        return;
    }
    out->allocated = o->allocated;
    out->ntasks = o->ntasks;
    out->nports = o->nports;
    out->tasks = o->tasks;
    out->ports = o->ports;
    out->changed = o->changed;
    out->known = o->known;
    out->spec = o->spec;
}

/* Position of the first element >= key in sorted v[0..n), for task ids and
 * for ports. */
#define DEFINE_LOWER(name, type)                               \
    static uint32_t name(const type *v, uint32_t n, type key)  \
    {                                                          \
        uint32_t lo = 0, hi = n;                               \
        while (lo < hi) {                                      \
            uint32_t mid = lo + (hi - lo) / 2;                 \
            if (v[mid] < key)                                  \
                lo = mid + 1;                                  \
            else                                               \
                hi = mid;                                      \
        }                                                      \
        return lo;                                             \
    }
DEFINE_LOWER(lower_id, cs_id)
DEFINE_LOWER(lower_port, uint16_t)

static int corrupt(cs_error *err, const char *what, cs_id machine, cs_id task)
{
    return cs_errorf(err, CS_ECORRUPT, "allocation of machine %llu: task %llu %s",
                     (unsigned long long)machine, (unsigned long long)task, what);
}

int cs_alloc_txn_remove(cs_alloc_txn *x, cs_id machine, cs_id task, const cs_res *res,
                        const uint16_t *ports, uint32_t nports, cs_error *err)
{
    ov *o;
    int rc = ov_get(x, machine, &o, err);
    if (rc != CS_OK)
        return rc;
    uint32_t i = lower_id(o->tasks, o->ntasks, task);
    if (i == o->ntasks || o->tasks[i] != task)
        return corrupt(err, "is not placed there", machine, task);
    for (uint32_t p = 0; p < nports; p++) {
        uint32_t k = lower_port(o->ports, o->nports, ports[p]);
        if (k == o->nports || o->ports[k] != ports[p])
            return corrupt(err, "holds a port not in use there", machine, task);
    }
    memmove(o->tasks + i, o->tasks + i + 1, (o->ntasks - i - 1) * sizeof *o->tasks);
    o->ntasks--;
    for (uint32_t p = 0; p < nports; p++) {
        uint32_t k = lower_port(o->ports, o->nports, ports[p]);
        memmove(o->ports + k, o->ports + k + 1, (o->nports - k - 1) * sizeof *o->ports);
        o->nports--;
    }
    cs_res_sub(&o->allocated, res);
    if (x->stamp)
        o->changed = x->version;
    return CS_OK;
}

int cs_alloc_txn_add(cs_alloc_txn *x, cs_id machine, cs_id task, const cs_res *res,
                     const uint16_t *ports, uint32_t nports, cs_error *err)
{
    ov *o;
    int rc = ov_get(x, machine, &o, err);
    if (rc != CS_OK)
        return rc;
    uint32_t i = lower_id(o->tasks, o->ntasks, task);
    if (i < o->ntasks && o->tasks[i] == task)
        return corrupt(err, "is placed there twice", machine, task);
    for (uint32_t p = 0; p < nports; p++) {
        uint32_t k = lower_port(o->ports, o->nports, ports[p]);
        if (k < o->nports && o->ports[k] == ports[p])
            return corrupt(err, "takes a port in use there", machine, task);
        for (uint32_t q = 0; q < p; q++)
            if (ports[q] == ports[p])
                return corrupt(err, "takes one port twice", machine, task);
    }
    if (o->ntasks == o->captasks) {
        uint32_t cap = o->captasks ? o->captasks * 2 : 8;
        cs_id *v = cs_arena_alloc(&x->a, cap * sizeof *v);
        if (v == NULL)
            goto nomem;
        if (o->ntasks > 0)
            memcpy(v, o->tasks, o->ntasks * sizeof *v);
        o->tasks = v;
        o->captasks = cap;
    }
    if (o->nports + nports > o->capports) {
        uint32_t cap = o->capports ? o->capports : 8;
        while (cap < o->nports + nports)
            cap *= 2;
        uint16_t *v = cs_arena_alloc(&x->a, cap * sizeof *v);
        if (v == NULL)
            goto nomem;
        if (o->nports > 0)
            memcpy(v, o->ports, o->nports * sizeof *v);
        o->ports = v;
        o->capports = cap;
    }
    memmove(o->tasks + i + 1, o->tasks + i, (o->ntasks - i) * sizeof *o->tasks);
    o->tasks[i] = task;
    o->ntasks++;
    for (uint32_t p = 0; p < nports; p++) {
        uint32_t k = lower_port(o->ports, o->nports, ports[p]);
        memmove(o->ports + k + 1, o->ports + k, (o->nports - k) * sizeof *o->ports);
        o->ports[k] = ports[p];
        o->nports++;
    }
    cs_res_add(&o->allocated, res);
    if (x->stamp)
        o->changed = x->version;
    return CS_OK;
nomem:
    return cs_errorf(err, CS_ENOMEM, "allocation table: out of memory");
}

int cs_alloc_txn_spec(cs_alloc_txn *x, cs_id machine, const cs_alloc_spec *spec, cs_error *err)
{
    ov *o;
    int rc = ov_get(x, machine, &o, err);
    if (rc == CS_OK) {
        o->known = true;
        o->spec = *spec;
    }
    return rc;
}

int cs_alloc_txn_changed(cs_alloc_txn *x, cs_id machine, uint64_t version, cs_error *err)
{
    ov *o;
    int rc = ov_get(x, machine, &o, err);
    if (rc == CS_OK && o->changed < version)
        o->changed = version;
    return rc;
}

/* ---- publishing and trimming ------------------------------------------ */

static entry *freeze(const ov *o, uint64_t version)
{
    size_t tb = o->ntasks * sizeof(cs_id), pb = o->nports * sizeof(uint16_t);
    entry *e = malloc(sizeof *e + tb + pb);
    if (e == NULL)
        return NULL;
    cs_id *tasks = (cs_id *)(e + 1);
    uint16_t *ports = (uint16_t *)((char *)tasks + tb);
    if (tb)
        memcpy(tasks, o->tasks, tb);
    if (pb)
        memcpy(ports, o->ports, pb);
    e->version = version;
    e->changed = o->changed;
    e->known = o->known;
    e->spec = o->spec;
    e->allocated = o->allocated;
    e->ntasks = o->ntasks;
    e->nports = o->nports;
    e->tasks = tasks;
    e->ports = ports;
    atomic_init(&e->older, NULL);
    return e;
}

static int pending_push(cs_alloc *t, cs_id machine) { return cs_ids_push(&t->pending, machine); }

/* Rebuild `pending` from the table after a push failed. */
static void find_pending(cs_alloc *t)
{
    t->pending.n = 0;
    for (uint32_t c = 0; c < NCHUNKS; c++) {
        slot *chunk = atomic_load_explicit(&t->chunks[c], memory_order_relaxed);
        for (uint32_t i = 0; chunk != NULL && i < CHUNK_SLOTS; i++) {
            entry *e = atomic_load_explicit(&chunk[i], memory_order_relaxed);
            if (e != NULL && atomic_load_explicit(&e->older, memory_order_relaxed) != NULL &&
                pending_push(t, (cs_id)c << CHUNK_BITS | i) != CS_OK)
                return; /* still lost: try again at the next trim */
        }
    }
    t->lost = false;
}

/* Free what no snapshot at or after `oldest` can reach (also done by every
 * publish); for a writer whose readers have moved on. */
static void alloc_trim(cs_alloc *t, uint64_t oldest)
{
    if (t->lost)
        find_pending(t);
    size_t keep = 0;
    for (size_t i = 0; i < t->pending.n; i++) {
        cs_id m = t->pending.v[i];
        slot *s = slot_of(t, m);
        entry *e = atomic_load_explicit(s, memory_order_relaxed);
        /* Keep every entry newer than `oldest` and the newest at or below
         * it: a snapshot at or after `oldest` stops there. */
        while (e != NULL && e->version > oldest)
            e = atomic_load_explicit(&e->older, memory_order_relaxed);
        if (e != NULL) {
            free_chain(atomic_exchange_explicit(&e->older, NULL, memory_order_relaxed));
            if (atomic_load_explicit(s, memory_order_relaxed) == e)
                continue; /* one entry left */
        }
        t->pending.v[keep++] = m;
    }
    t->pending.n = keep;
}

int cs_alloc_publish(cs_alloc_txn *x, uint64_t oldest, cs_error *err)
{
    cs_alloc *t = x->t;
    entry **made = x->n ? calloc(x->n, sizeof *made) : NULL;
    int rc = CS_OK;
    if (x->n && made == NULL)
        goto nomem;
    /* Allocate everything first, so that a failure publishes nothing. */
    for (uint32_t i = 0; i < x->n; i++) {
        cs_id m = x->v[i].machine;
        _Atomic(slot *) *cp = &t->chunks[m >> CHUNK_BITS];
        if (atomic_load_explicit(cp, memory_order_relaxed) == NULL) {
            slot *chunk = calloc(CHUNK_SLOTS, sizeof *chunk);
            if (chunk == NULL)
                goto nomem;
            atomic_store_explicit(cp, chunk, memory_order_release);
        }
        if ((made[i] = freeze(&x->v[i], x->version)) == NULL)
            goto nomem;
    }
    for (uint32_t i = 0; i < x->n; i++) {
        slot *s = slot_of(t, x->v[i].machine);
        entry *head = atomic_load_explicit(s, memory_order_relaxed);
        atomic_store_explicit(&made[i]->older, head, memory_order_relaxed);
        atomic_store_explicit(s, made[i], memory_order_release);
        /* A chain of one entry now has two: it joins `pending`. A longer
         * one is there already. */
        if (head != NULL && atomic_load_explicit(&head->older, memory_order_relaxed) == NULL &&
            pending_push(t, x->v[i].machine) != CS_OK)
            t->lost = true;
    }
    free(made);
    cs_alloc_txn_discard(x);
    alloc_trim(t, oldest);
    return CS_OK;
nomem:
    if (made != NULL)
        for (uint32_t i = 0; i < x->n; i++)
            free(made[i]);
    free(made);
    cs_alloc_txn_discard(x);
    rc = cs_errorf(err, CS_ENOMEM, "allocation table: out of memory publishing");
    return rc;
}
