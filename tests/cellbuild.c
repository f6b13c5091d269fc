/* cellbuild.c — an in-memory cell and the sync replies cellstated would send for it (see
 * cellbuild.h). */
#include "tests/cellbuild.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "proto/sync.h"
#include "tests/support.h"
#include "txn/command.h"

#define TB_ATTRS 8
#define TB_CONS 8
#define TB_PORTS 8
#define TB_TAINTS 4

struct tb_machine {
    cs_machine m;
    char name[32];
    char kv[TB_ATTRS][2][32];
    cs_attr attrs[TB_ATTRS];
    char tkv[TB_TAINTS][2][32];
    cs_taint taints[TB_TAINTS];
    uint16_t ports[256];
    bool dirty;
    bool stored; /* in the cell's store (tb_reply_make) */
};

struct tb_job {
    cs_job j;
    char name[64];
    char cs[TB_CONS][3][64];
    cs_constraint cons[TB_CONS];
    uint16_t ports[TB_PORTS];
    uint8_t opts[2048];
    bool dirty;
    bool stored; /* in the cell's store (tb_reply_make) */
};

struct tb_task {
    cs_task t;
    uint16_t ports[TB_PORTS];
    bool dirty;
    bool stored; /* in the cell's store (tb_reply_make) */
};

void tb_init(tb_cell *b) { memset(b, 0, sizeof *b); }

void tb_free(tb_cell *b)
{
    if (b->store != NULL) {
        ts_store_destroy(b->store);
        free(b->store);
    }
    free(b->m);
    free(b->j);
    free(b->t);
    memset(b, 0, sizeof *b);
}

static void *grow(void *p, uint32_t *cap, uint32_t n, size_t size)
{
    if (n < *cap)
        return p;
    *cap = *cap ? *cap * 2 : 64;
    p = realloc(p, *cap * size);
    cr_assert_not_null(p);
    return p;
}

static tb_machine *mach(const tb_cell *b, cs_id id)
{
    cr_assert(id >= 1 && id <= b->nm, "no machine %llu", (unsigned long long)id);
    return &b->m[id - 1];
}

static tb_job *job(const tb_cell *b, cs_id id)
{
    cr_assert(id >= 1 && id <= b->nj, "no job %llu", (unsigned long long)id);
    return &b->j[id - 1];
}

static tb_task *task(const tb_cell *b, cs_id id)
{
    for (uint32_t i = 0; i < b->nt; i++)
        if (b->t[i].t.id == id)
            return &b->t[i];
    cr_assert_fail("no task %llu", (unsigned long long)id);
    return NULL;
}

const cs_task *tb_task_get(const tb_cell *b, cs_id id) { return &task(b, id)->t; }

cs_id tb_machine_add(tb_cell *b, const char *name, int64_t cpu, int64_t mem, int64_t disk,
                     uint16_t port_lo, uint16_t port_hi, const char *attrs)
{
    b->m = grow(b->m, &b->capm, b->nm, sizeof *b->m);
    tb_machine *m = &b->m[b->nm++];
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    m->m.id = b->nm;
    m->m.capacity = (cs_res){cpu, mem, disk};
    m->m.port_lo = port_lo;
    m->m.port_hi = port_hi;
    m->m.state = CS_MACHINE_UP;
    const char *p = attrs ? attrs : "";
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        cr_assert(m->m.nattrs < TB_ATTRS);
        int klen = (int)strcspn(p, "=");
        int vlen = (int)strcspn(p + klen + 1, " ");
        snprintf(m->kv[m->m.nattrs][0], 32, "%.*s", klen, p);
        snprintf(m->kv[m->m.nattrs][1], 32, "%.*s", vlen, p + klen + 1);
        m->m.nattrs++;
        p += klen + 1 + vlen;
    }
    m->dirty = true;
    return m->m.id;
}

void tb_machine_taint(tb_cell *b, cs_id id, const char *taint)
{
    tb_machine *m = mach(b, id);
    cr_assert(m->m.ntaints < TB_TAINTS);
    cs_arena a;
    cs_arena_init(&a);
    cs_taint t;
    cs_error err = {0};
    cr_assert_eq(cs_taint_parse(taint, &a, &t, &err), CS_OK, "%s", err.msg);
    uint32_t k = m->m.ntaints++;
    snprintf(m->tkv[k][0], 32, "%s", t.key);
    snprintf(m->tkv[k][1], 32, "%s", t.value);
    m->taints[k].effect = t.effect;
    cs_arena_free(&a);
    m->dirty = true;
}

void tb_machine_state(tb_cell *b, cs_id id, uint8_t state)
{
    tb_machine *m = mach(b, id);
    m->m.state = state;
    m->dirty = true;
    if (state == CS_MACHINE_DOWN)
        for (uint32_t i = 0; i < b->nt; i++)
            if (b->t[i].t.machine == id && cs_task_state_placed(b->t[i].t.state))
                tb_task_state(b, b->t[i].t.id, CS_TASK_LOST);
}

void tb_machine_admin(tb_cell *b, cs_id id, uint8_t admin)
{
    tb_machine *m = mach(b, id);
    m->m.admin = admin;
    m->dirty = true;
}

cs_id tb_job_add(tb_cell *b, const char *name, uint8_t kind, int32_t priority, uint32_t count,
                 int64_t cpu, int64_t mem, int64_t disk)
{
    b->j = grow(b->j, &b->capj, b->nj, sizeof *b->j);
    tb_job *j = &b->j[b->nj++];
    memset(j, 0, sizeof *j);
    snprintf(j->name, sizeof j->name, "%s", name);
    j->j.id = b->nj;
    j->j.kind = kind;
    j->j.priority = priority;
    j->j.count = count;
    j->j.res = (cs_res){cpu, mem, disk};
    j->j.spec_hash = j->j.id;
    j->dirty = true;
    for (uint32_t i = 0; i < count; i++) {
        b->t = grow(b->t, &b->capt, b->nt, sizeof *b->t);
        tb_task *t = &b->t[b->nt++];
        memset(t, 0, sizeof *t);
        t->t.id = cs_task_id(j->j.id, i);
        t->t.job = j->j.id;
        t->t.index = i;
        t->t.res = j->j.res;
        t->dirty = true;
    }
    return j->j.id;
}

void tb_job_ports(tb_cell *b, cs_id id, const uint16_t *ports, uint32_t n)
{
    tb_job *j = job(b, id);
    cr_assert(n <= TB_PORTS);
    memcpy(j->ports, ports, n * sizeof *ports);
    j->j.nports = n;
    j->dirty = true;
}

void tb_job_constraint(tb_cell *b, cs_id id, const char *field, const char *op,
                       const char *value, bool soft)
{
    tb_job *j = job(b, id);
    cr_assert(j->j.nconstraints < TB_CONS);
    uint32_t i = j->j.nconstraints++;
    snprintf(j->cs[i][0], 64, "%s", field);
    snprintf(j->cs[i][1], 64, "%s", op);
    snprintf(j->cs[i][2], 64, "%s", value ? value : "");
    j->cons[i].soft = soft;
    j->dirty = true;
}

void tb_job_opts(tb_cell *b, cs_id id, cs_jobopts *o)
{
    tb_job *j = job(b, id);
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    cs_error err = {0};
    cr_assert_eq(cs_jobopts_encode(o, &buf, &err), CS_OK, "%s", err.msg);
    cr_assert(buf.size <= sizeof j->opts);
    memcpy(j->opts, buf.data, buf.size);
    j->j.extra_len = (uint32_t)buf.size;
    msgpack_sbuffer_destroy(&buf);
    j->dirty = true;
}

void tb_job_kill(tb_cell *b, cs_id id)
{
    tb_job *j = job(b, id);
    j->j.state = CS_JOB_KILLED;
    j->dirty = true;
    for (uint32_t i = 0; i < b->nt; i++)
        if (b->t[i].t.job == id && !cs_task_state_final(b->t[i].t.state))
            tb_task_state(b, b->t[i].t.id, CS_TASK_KILLED);
}

static bool port_used(const tb_cell *b, cs_id machine, uint16_t port)
{
    for (uint32_t i = 0; i < b->nt; i++) {
        const cs_task *t = &b->t[i].t;
        if (t->machine == machine && cs_task_state_placed(t->state))
            for (uint32_t k = 0; k < t->nports; k++)
                if (b->t[i].ports[k] == port)
                    return true;
    }
    return false;
}

static void place(tb_cell *b, tb_task *t, cs_id machine, const cs_res *res, const uint16_t *ports,
                  uint32_t nports)
{
    cr_assert_eq(t->t.state, CS_TASK_PENDING, "task %llu is not pending",
                 (unsigned long long)t->t.id);
    t->t.state = CS_TASK_ASSIGNED;
    t->t.machine = machine;
    t->t.res = *res;
    t->t.attempts++;
    t->t.nports = nports;
    if (nports)
        memcpy(t->ports, ports, nports * sizeof *ports);
    t->dirty = true;
    mach(b, machine)->dirty = true;
}

void tb_place(tb_cell *b, cs_id jid, uint32_t index, cs_id machine)
{
    tb_job *j = job(b, jid);
    tb_machine *m = mach(b, machine);
    uint16_t ports[TB_PORTS];
    for (uint32_t i = 0; i < j->j.nports; i++) {
        ports[i] = j->ports[i];
        if (ports[i] != 0)
            continue;
        uint32_t p = m->m.port_lo;
        while (p <= m->m.port_hi && port_used(b, machine, (uint16_t)p))
            p++;
        for (uint32_t k = 0; k < i; k++)
            if (ports[k] == p)
                p++;
        cr_assert(p <= m->m.port_hi, "no free dynamic port on %s", m->name);
        ports[i] = (uint16_t)p;
    }
    place(b, task(b, cs_task_id(jid, index)), machine, &j->j.res, ports, j->j.nports);
}

void tb_task_state(tb_cell *b, cs_id id, uint8_t state)
{
    tb_task *t = task(b, id);
    if (cs_task_state_placed(t->t.state) && !cs_task_state_placed(state)) {
        mach(b, t->t.machine)->dirty = true;
        t->t.nports = 0;
    }
    t->t.state = state;
    if (state == CS_TASK_PENDING)
        t->t.machine = 0;
    t->dirty = true;
}

void tb_task_current(tb_cell *b, cs_id id)
{
    tb_task *t = task(b, id);
    t->t.spec = job(b, t->t.job)->j.spec_hash;
    t->dirty = true;
}

void tb_commit(tb_cell *b, const cs_txn *txn)
{
    for (uint32_t i = 0; i < txn->npreempts; i++) {
        tb_task *v = task(b, txn->preempts[i].victim);
        tb_task_state(b, v->t.id, CS_TASK_PENDING);
        v->t.last_end = CS_TASK_PREEMPTED;
    }
    for (uint32_t i = 0; i < txn->nclaims; i++) {
        const cs_claim *c = &txn->claims[i];
        place(b, task(b, c->task), c->machine, &c->res, cs_claim_ports(txn, c), c->nports);
    }
}

/* Allocations, ports in use and ntasks from the placed tasks, as the store
 * derives them (cellstate/alloc.h). */
static void derive(tb_cell *b)
{
    for (uint32_t i = 0; i < b->nm; i++) {
        b->m[i].m.allocated = (cs_res){0, 0, 0};
        b->m[i].m.ntasks = 0;
        b->m[i].m.nports = 0;
    }
    for (uint32_t i = 0; i < b->nt; i++) {
        const cs_task *t = &b->t[i].t;
        if (!cs_task_state_placed(t->state))
            continue;
        tb_machine *m = mach(b, t->machine);
        cs_res_add(&m->m.allocated, &t->res);
        m->m.ntasks++;
        for (uint32_t k = 0; k < t->nports; k++) {
            cr_assert(m->m.nports < 256);
            m->ports[m->m.nports++] = b->t[i].ports[k];
        }
    }
    for (uint32_t i = 0; i < b->nm; i++) {
        tb_machine *m = &b->m[i];
        /* insertion sort: a few ports per machine */
        for (uint32_t k = 1; k < m->m.nports; k++)
            for (uint32_t l = k; l > 0 && m->ports[l - 1] > m->ports[l]; l--) {
                uint16_t x = m->ports[l];
                m->ports[l] = m->ports[l - 1];
                m->ports[l - 1] = x;
            }
    }
}

/* Write the records changed since the last reply into the cell's store,
 * as they are here: through the write transaction's record functions, not
 * the operations, so that a test may build any state (an old spec, a task
 * on a drained machine). The store derives the machines' allocations,
 * ports in use and seq from the tasks, as it does for cellstated. */
static void store_dirty(tb_cell *b)
{
    if (b->store == NULL) {
        b->store = malloc(sizeof *b->store);
        cr_assert_not_null(b->store);
        ts_store_create(b->store);
    }
    cs_error err = {0};
    cs_wtxn *w;
    cr_assert_eq(cs_wtxn_begin(b->store->s, &w, &err), CS_OK, "%s", err.msg);
    bool wrote = false;
    for (uint32_t i = 0; i < b->nm; i++) {
        tb_machine *m = &b->m[i];
        if (!m->dirty)
            continue;
        m->m.name = m->name;
        m->m.attrs = m->attrs;
        for (uint32_t k = 0; k < m->m.nattrs; k++)
            m->attrs[k] = (cs_attr){m->kv[k][0], m->kv[k][1]};
        m->m.taints = m->taints;
        for (uint32_t k = 0; k < m->m.ntaints; k++) {
            m->taints[k].key = m->tkv[k][0];
            m->taints[k].value = m->tkv[k][1];
        }
        m->m.ports = m->ports;
        cr_assert_eq(cs_wtxn_put_machine(w, &m->m, !m->stored, &err), CS_OK, "%s", err.msg);
        m->stored = true;
        m->dirty = false;
        wrote = true;
    }
    for (uint32_t i = 0; i < b->nj; i++) {
        tb_job *j = &b->j[i];
        if (!j->dirty)
            continue;
        j->j.name = j->name;
        j->j.cmd = "true";
        j->j.note = "";
        j->j.ports = j->ports;
        j->j.extra = j->opts;
        j->j.constraints = j->cons;
        for (uint32_t k = 0; k < j->j.nconstraints; k++) {
            j->cons[k].field = j->cs[k][0];
            j->cons[k].op = j->cs[k][1];
            j->cons[k].value = j->cs[k][2];
        }
        cr_assert_eq(cs_wtxn_put_job(w, &j->j, !j->stored, &err), CS_OK, "%s", err.msg);
        j->stored = true;
        j->dirty = false;
        wrote = true;
    }
    cs_arena a;
    cs_arena_init(&a);
    /* First every changed task that was placed lets go of its machine, so
     * that a port or room another takes in the same reply is free. */
    for (uint32_t i = 0; i < b->nt; i++) {
        tb_task *t = &b->t[i];
        cs_task old;
        if (!t->dirty || !t->stored)
            continue;
        cr_assert_eq(cs_snap_task(cs_wtxn_snap(w), t->t.id, &a, &old, &err), CS_OK, "%s",
                     err.msg);
        if (cs_task_state_placed(old.state)) {
            cs_task off = old;
            off.state = CS_TASK_PENDING;
            cr_assert_eq(cs_wtxn_put_task(w, &old, &off, &err), CS_OK, "%s", err.msg);
        }
        cs_arena_reset(&a);
    }
    for (uint32_t i = 0; i < b->nt; i++) {
        tb_task *t = &b->t[i];
        if (!t->dirty)
            continue;
        t->t.ports = t->ports;
        t->t.reason = "";
        cs_task old;
        if (t->stored)
            cr_assert_eq(cs_snap_task(cs_wtxn_snap(w), t->t.id, &a, &old, &err), CS_OK, "%s",
                         err.msg);
        cr_assert_eq(cs_wtxn_put_task(w, t->stored ? &old : NULL, &t->t, &err), CS_OK,
                     "task %llu: %s", (unsigned long long)t->t.id, err.msg);
        cs_arena_reset(&a);
        t->stored = true;
        t->dirty = false;
        wrote = true;
    }
    cs_arena_free(&a);
    if (!wrote) {
        cs_wtxn_abort(w);
        return;
    }
    /* The log entry only marks what changed (the readers' delta); nothing
     * replays it. */
    static const uint8_t nil = 0xc0;
    cr_assert_eq(cs_wtxn_commit(w, CS_CMD_MACHINE_PUT, &nil, 1, NULL, &err), CS_OK, "%s",
                 err.msg);
}

/* The reply cellstated would send for `since`, in the map form or the
 * compact one (proto/sync.h). */
static void encode_reply(cs_snap *snap, uint64_t since, bool compact, msgpack_sbuffer *out)
{
    msgpack_sbuffer_init(out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    cs_sync_req req = {.since = since, .compact = compact};
    cs_error err = {0};
    cr_assert_eq(cs_sync_reply_encode(snap, &req, &pk, &err), CS_OK, "%s", err.msg);
}

void tb_reply_make(tb_cell *b, bool full, tb_reply *r)
{
    derive(b);
    uint64_t since = full ? 0 : b->version;
    store_dirty(b);
    cs_snap *snap;
    cs_error err = {0};
    cr_assert_eq(cs_snap_open(b->store->s, &snap, &err), CS_OK, "%s", err.msg);
    b->version = cs_snap_version(snap);
    encode_reply(snap, since, false, &r->buf);
    encode_reply(snap, since, true, &r->compact);
    cs_snap_close(snap);
    msgpack_zone_init(&r->zone, 4096);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack(r->buf.data, r->buf.size, &off, &r->zone, &r->obj),
                 MSGPACK_UNPACK_SUCCESS);
}

void tb_reply_free(tb_reply *r)
{
    msgpack_sbuffer_destroy(&r->compact);
    msgpack_zone_destroy(&r->zone);
    msgpack_sbuffer_destroy(&r->buf);
}

void tb_sync(tb_cell *b, cs_copy *c, bool full)
{
    tb_reply r;
    tb_reply_make(b, full, &r);
    cs_error err = {0};
    int rc = cs_copy_apply(c, &r.obj, &err);
    tb_reply_free(&r);
    cr_assert_eq(rc, CS_OK, "cs_copy_apply: %s", err.msg);
    cr_assert_eq(cs_copy_version(c), b->version);
}

void tb_check(const tb_cell *b)
{
    tb_cell *w = (tb_cell *)b;
    derive(w);
    for (uint32_t i = 0; i < b->nm; i++) {
        const cs_machine *m = &b->m[i].m;
        cr_assert(m->allocated.cpu <= m->capacity.cpu && m->allocated.mem <= m->capacity.mem &&
                      m->allocated.disk <= m->capacity.disk,
                  "machine %s overcommitted: cpu %lld/%lld mem %lld/%lld", b->m[i].name,
                  (long long)m->allocated.cpu, (long long)m->capacity.cpu,
                  (long long)m->allocated.mem, (long long)m->capacity.mem);
        for (uint32_t k = 1; k < m->nports; k++)
            cr_assert_neq(b->m[i].ports[k - 1], b->m[i].ports[k], "port %u twice on %s",
                          b->m[i].ports[k], b->m[i].name);
    }
}

int tb_sync_client(cs_copy *c, cs_client *client, cs_error *err)
{
    cs_port_nng *p = NULL;
    int rc = cs_port_nng_over(client, &p, err);
    if (rc == CS_OK)
        rc = cs_copy_sync(c, cs_port_nng_table(p), err);
    cs_port_nng_free(p);
    return rc;
}

/* ---- comparing copies ------------------------------------------------------------ */

void tb_assert_same_copy(const cs_copy *x, const cs_copy *y, const char *when)
{
    cr_assert_eq(cs_copy_version(x), cs_copy_version(y), "%s", when);
    cr_assert_eq(cs_copy_nmachines(x), cs_copy_nmachines(y), "%s", when);
    cr_assert_eq(cs_copy_njobs(x), cs_copy_njobs(y), "%s", when);
    cr_assert_eq(cs_copy_ntasks(x), cs_copy_ntasks(y), "%s", when);
    for (uint32_t i = 0; i < cs_copy_nmachines(x); i++) {
        const cs_cmachine *a = cs_copy_machine_at(x, i), *b = cs_copy_machine(y, a->id);
        cr_assert_not_null(b, "%s: machine %llu", when, (unsigned long long)a->id);
        cr_assert(a->seq == b->seq && a->state == b->state && a->ntasks == b->ntasks &&
                      a->allocated.cpu == b->allocated.cpu &&
                      a->allocated.mem == b->allocated.mem && a->capacity.cpu == b->capacity.cpu &&
                      a->port_lo == b->port_lo && a->nports == b->nports,
                  "%s: machine %llu differs", when, (unsigned long long)a->id);
        for (uint32_t k = 0; k < a->nports; k++)
            cr_assert_eq(a->ports[k], b->ports[k]);
        cr_assert_str_eq(cs_copy_str(x, a->name), cs_copy_str(y, b->name));
        cr_assert(a->capacity.mem == b->capacity.mem && a->port_hi == b->port_hi,
                  "%s: machine %llu's record differs", when, (unsigned long long)a->id);
        /* Attributes and taints, string by string (each copy interns its own). */
        const uint32_t *pa, *pb;
        uint32_t na = cs_copy_attrs(x, a, &pa), nb = cs_copy_attrs(y, b, &pb);
        cr_assert_eq(na, nb, "%s: machine %llu's attributes", when, (unsigned long long)a->id);
        for (uint32_t k = 0; k < 2 * na; k++)
            cr_assert_str_eq(cs_copy_str(x, pa[k]), cs_copy_str(y, pb[k]), "%s", when);
        na = cs_copy_taints(x, a, &pa);
        nb = cs_copy_taints(y, b, &pb);
        cr_assert_eq(na, nb, "%s: machine %llu's taints", when, (unsigned long long)a->id);
        for (uint32_t k = 0; k < 3 * na; k++)
            cr_assert(k % 3 == 2 ? pa[k] == pb[k]
                                 : strcmp(cs_copy_str(x, pa[k]), cs_copy_str(y, pb[k])) == 0,
                      "%s: machine %llu's taint %u", when, (unsigned long long)a->id, k / 3);
        uint32_t n = 0;
        for (uint32_t s = b->tasks; s != CS_NONE; s = cs_copy_task_at(y, s)->next) {
            const cs_ctask *t = cs_copy_task_at(y, s);
            const cs_ctask *u = cs_copy_task(x, t->id);
            cr_assert(u != NULL && u->machine != CS_NONE &&
                          cs_copy_machine_at(x, u->machine)->id == a->id,
                      "%s: task %llu on machine %llu in one copy only", when,
                      (unsigned long long)t->id, (unsigned long long)a->id);
            n++;
        }
        cr_assert_eq(n, a->ntasks, "%s: machine %llu's task list", when, (unsigned long long)a->id);
    }
    cs_id pa[512], pb[512];
    for (uint32_t i = 0; i < cs_copy_njobs(x); i++) {
        const cs_cjob *a = cs_copy_job_at(x, i), *b = cs_copy_job(y, a->job.id);
        cr_assert_not_null(b, "%s", when);
        cr_assert(a->job.version == b->job.version && a->npending == b->npending &&
                      a->nplaced == b->nplaced && a->job.state == b->job.state,
                  "%s: job %llu differs (pending %u/%u, placed %u/%u)", when,
                  (unsigned long long)a->job.id, a->npending, b->npending, a->nplaced,
                  b->nplaced);
        /* nended is kept by the copy as tasks come and go: recount it. */
        uint32_t ended = 0;
        for (uint32_t k = 0; k < a->ntaskidx; k++) {
            const cs_ctask *t = a->tasks[k] == CS_NONE ? NULL : cs_copy_task_at(x, a->tasks[k]);
            ended += t != NULL && (t->state == CS_TASK_FAILED || t->state == CS_TASK_FINISHED ||
                                   t->state == CS_TASK_LOST);
        }
        cr_assert(a->nended == ended && b->nended == ended, "%s: job %llu: %u ended, counted %u/%u",
                  when, (unsigned long long)a->job.id, ended, a->nended, b->nended);
        size_t na = cs_copy_pending(x, a->job.id, pa, 512),
               nb = cs_copy_pending(y, a->job.id, pb, 512);
        cr_assert_eq(na, nb);
        cr_assert_arr_eq(pa, pb, na * sizeof *pa, "%s: job %llu's pending order", when,
                         (unsigned long long)a->job.id);
    }
    for (uint32_t i = 0; i < cs_copy_ntasks(x); i++) {
        const cs_ctask *a = cs_copy_task_at(x, i), *b = cs_copy_task(y, a->id);
        cr_assert_not_null(b, "%s: task %llu", when, (unsigned long long)a->id);
        cr_assert(a->state == b->state && a->last_end == b->last_end &&
                      a->attempts == b->attempts && a->health == b->health &&
                      a->spec == b->spec && a->res.cpu == b->res.cpu &&
                      a->res.mem == b->res.mem && a->nports == b->nports &&
                      cs_copy_job_at(x, a->job)->job.id == cs_copy_job_at(y, b->job)->job.id,
                  "%s: task %llu differs", when, (unsigned long long)a->id);
        cr_assert_eq(a->machine == CS_NONE, b->machine == CS_NONE);
        if (a->machine != CS_NONE)
            cr_assert_eq(cs_copy_machine_at(x, a->machine)->id,
                         cs_copy_machine_at(y, b->machine)->id);
        for (uint32_t k = 0; k < a->nports; k++)
            cr_assert_eq(a->ports[k], b->ports[k]);
    }
}

/* ---- a port that interposes on commit ---------------------------------------- */

static int wrap_sync(void *ctx, cs_copy *c, cs_error *err)
{
    const tb_port *w = ctx;
    return w->base->sync(w->base->ctx, c, err);
}
static int wrap_commit(void *ctx, const cs_txn *t, cs_txn_result *r, cs_error *err)
{
    tb_port *w = ctx;
    return w->commit(w, t, r, err);
}
static int wrap_note(void *ctx, cs_id job, const char *note, cs_error *err)
{
    const tb_port *w = ctx;
    return w->base->note(w->base->ctx, job, note, err);
}
static int wrap_scale(void *ctx, cs_id job, uint32_t count, cs_error *err)
{
    const tb_port *w = ctx;
    return w->base->scale(w->base->ctx, job, count, err);
}
static int wrap_surge(void *ctx, cs_id job, uint32_t surge, cs_error *err)
{
    const tb_port *w = ctx;
    return w->base->surge(w->base->ctx, job, surge, err);
}
static int wrap_end(void *ctx, cs_id job, cs_error *err)
{
    const tb_port *w = ctx;
    return w->base->job_end(w->base->ctx, job, err);
}
static int wrap_report(void *ctx, const void *body, size_t len, cs_error *err)
{
    const tb_port *w = ctx;
    return w->base->report(w->base->ctx, body, len, err);
}
static int64_t wrap_now(void *ctx)
{
    const tb_port *w = ctx;
    return w->base->now(w->base->ctx);
}
static int64_t wrap_wall(void *ctx)
{
    const tb_port *w = ctx;
    return w->base->wall(w->base->ctx);
}
static void wrap_sleep(void *ctx, int64_t until)
{
    const tb_port *w = ctx;
    w->base->sleep(w->base->ctx, until);
}

void tb_port_wrap(tb_port *w, const cs_sched_port *base,
                  int (*commit)(tb_port *w, const cs_txn *t, cs_txn_result *r, cs_error *err),
                  void *user)
{
    *w = (tb_port){.base = base, .commit = commit, .user = user};
    w->table = (cs_sched_port){
        .ctx = w,
        .where = base->where,
        .sync = wrap_sync,
        .commit = wrap_commit,
        .note = wrap_note,
        .scale = wrap_scale,
        .surge = wrap_surge,
        .job_end = wrap_end,
        .report = wrap_report,
        .now = wrap_now,
        .wall = wrap_wall,
        .sleep = wrap_sleep,
    };
}
