/* txn.c — building, encoding and decoding transactions and results. */
#include "txn/txn.h"

#include "cellstate/mpcheck.h"

#include <stdlib.h>
#include <string.h>

static const char *const conflict_names[] = {"fine", "coarse"};
static const char *const commit_names[] = {"incremental", "gang"};

const char *cs_conflict_mode_name(uint8_t m) { return m < 2 ? conflict_names[m] : "unknown"; }
const char *cs_commit_mode_name(uint8_t m) { return m < 2 ? commit_names[m] : "unknown"; }

static int parse2(const char *const *names, const char *s, uint8_t *out)
{
    for (uint8_t i = 0; i < 2; i++)
        if (strcmp(names[i], s) == 0) {
            *out = i;
            return CS_OK;
        }
    return CS_EINVAL;
}
int cs_conflict_mode_parse(const char *s, uint8_t *out) { return parse2(conflict_names, s, out); }
int cs_commit_mode_parse(const char *s, uint8_t *out)
{
    /* "all-or-nothing" is the paper's name for gang commits. */
    if (strcmp(s, "all-or-nothing") == 0) {
        *out = CS_COMMIT_GANG;
        return CS_OK;
    }
    return parse2(commit_names, s, out);
}

const char *cs_outcome_str(uint8_t o)
{
    switch (o) {
#define CS_OUTCOME_CASE(name, value, text) \
    case value:                            \
        return text;
        CS_OUTCOME_TABLE(CS_OUTCOME_CASE)
#undef CS_OUTCOME_CASE
    default:
        return "unknown outcome";
    }
}

/* ---- building --------------------------------------------------------- */

void cs_txn_init(cs_txn *t, uint64_t sched, uint64_t req, uint64_t snap_version, uint8_t conflict,
                 uint8_t commit)
{
    memset(t, 0, sizeof *t);
    t->sched = sched;
    t->req = req;
    t->snap_version = snap_version;
    t->conflict = conflict;
    t->commit = commit;
}

void cs_txn_reset(cs_txn *t, uint64_t req, uint64_t snap_version)
{
    t->req = req;
    t->snap_version = snap_version;
    t->nclaims = t->nports = t->nreleases = t->npreempts = 0;
}

void cs_txn_free(cs_txn *t)
{
    free(t->claims);
    free(t->ports);
    free(t->releases);
    free(t->preempts);
    memset(t, 0, sizeof *t);
}

/* Grow *arr (of elements of `size`) so that it holds `need` elements. */
static int grow(void **arr, uint32_t *cap, uint32_t need, size_t size)
{
    if (need <= *cap)
        return CS_OK;
    uint32_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > UINT32_MAX / 2)
            return CS_ENOMEM;
        c *= 2;
    }
    void *p = realloc(*arr, (size_t)c * size);
    if (p == NULL)
        return CS_ENOMEM;
    *arr = p;
    *cap = c;
    return CS_OK;
}

int cs_txn_add_claim(cs_txn *t, cs_id task, cs_id machine, const cs_res *res, const uint16_t *ports,
                     uint32_t nports, uint64_t seq)
{
    if (t->nports > UINT32_MAX - nports)
        return CS_ENOMEM;
    if (grow((void **)&t->claims, &t->capclaims, t->nclaims + 1, sizeof *t->claims) ||
        grow((void **)&t->ports, &t->capports, t->nports + nports, sizeof *t->ports))
        return CS_ENOMEM;
    if (nports > 0)
        memcpy(t->ports + t->nports, ports, nports * sizeof *ports);
    t->claims[t->nclaims++] = (cs_claim){task, machine, *res, t->nports, nports, seq};
    t->nports += nports;
    return CS_OK;
}

int cs_txn_add_release(cs_txn *t, cs_id task, uint8_t state, int32_t exit_code)
{
    if (grow((void **)&t->releases, &t->capreleases, t->nreleases + 1, sizeof *t->releases))
        return CS_ENOMEM;
    t->releases[t->nreleases++] = (cs_release){task, state, exit_code};
    return CS_OK;
}

int cs_txn_add_preempt(cs_txn *t, cs_id victim, cs_id preemptor)
{
    if (grow((void **)&t->preempts, &t->cappreempts, t->npreempts + 1, sizeof *t->preempts))
        return CS_ENOMEM;
    t->preempts[t->npreempts++] = (cs_preempt){victim, preemptor};
    return CS_OK;
}

/* ---- encoding --------------------------------------------------------- */

#define PK(call)              \
    do {                      \
        if ((call) != 0)      \
            return CS_ENOMEM; \
    } while (0)

/* [sched, req, snap_version, conflict, commit,
 *  [[task, machine, cpu, mem, disk, [port...], seq]...],
 *  [[task, state, exit_code]...], [[victim, preemptor]...]] */
int cs_txn_encode(const cs_txn *t, msgpack_sbuffer *buf)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    PK(msgpack_pack_array(&pk, 8));
    PK(msgpack_pack_uint64(&pk, t->sched));
    PK(msgpack_pack_uint64(&pk, t->req));
    PK(msgpack_pack_uint64(&pk, t->snap_version));
    PK(msgpack_pack_uint8(&pk, t->conflict));
    PK(msgpack_pack_uint8(&pk, t->commit));
    PK(msgpack_pack_array(&pk, t->nclaims));
    for (uint32_t i = 0; i < t->nclaims; i++) {
        const cs_claim *c = &t->claims[i];
        PK(msgpack_pack_array(&pk, 7));
        PK(msgpack_pack_uint64(&pk, c->task));
        PK(msgpack_pack_uint64(&pk, c->machine));
        PK(msgpack_pack_int64(&pk, c->res.cpu));
        PK(msgpack_pack_int64(&pk, c->res.mem));
        PK(msgpack_pack_int64(&pk, c->res.disk));
        PK(msgpack_pack_array(&pk, c->nports));
        for (uint32_t p = 0; p < c->nports; p++)
            PK(msgpack_pack_uint16(&pk, t->ports[c->port_off + p]));
        PK(msgpack_pack_uint64(&pk, c->seq));
    }
    PK(msgpack_pack_array(&pk, t->nreleases));
    for (uint32_t i = 0; i < t->nreleases; i++) {
        PK(msgpack_pack_array(&pk, 3));
        PK(msgpack_pack_uint64(&pk, t->releases[i].task));
        PK(msgpack_pack_uint8(&pk, t->releases[i].state));
        PK(msgpack_pack_int32(&pk, t->releases[i].exit_code));
    }
    PK(msgpack_pack_array(&pk, t->npreempts));
    for (uint32_t i = 0; i < t->npreempts; i++) {
        PK(msgpack_pack_array(&pk, 2));
        PK(msgpack_pack_uint64(&pk, t->preempts[i].victim));
        PK(msgpack_pack_uint64(&pk, t->preempts[i].preemptor));
    }
    return CS_OK;
}

/* ---- decoding --------------------------------------------------------- */

static int want_u64(const msgpack_object *o, const char *field, uint64_t max, uint64_t *out,
                    cs_error *err)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return cs_errorf(err, CS_EPROTO, "transaction: %s is not an unsigned integer", field);
    if (o->via.u64 > max)
        return cs_errorf(err, CS_EPROTO, "transaction: %s is out of range", field);
    *out = o->via.u64;
    return CS_OK;
}

/* Resources may be negative on the wire: that is for commit validation to
 * refuse with a message naming the claim, not a decoding error. */
static int want_i64(const msgpack_object *o, const char *field, int64_t *out, cs_error *err)
{
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return CS_OK;
    }
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > (uint64_t)INT64_MAX)
            return cs_errorf(err, CS_EPROTO, "transaction: %s overflows", field);
        *out = (int64_t)o->via.u64;
        return CS_OK;
    }
    return cs_errorf(err, CS_EPROTO, "transaction: %s is not an integer", field);
}

static int want_array(const msgpack_object *o, const char *field, uint32_t n, cs_error *err)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || (n != UINT32_MAX && o->via.array.size != n))
        return cs_errorf(err, CS_EPROTO, "transaction: %s is not an array%s", field,
                         n != UINT32_MAX ? " of the right length" : "");
    if (o->via.array.size > CS_TXN_MAX_ITEMS)
        return cs_errorf(err, CS_EPROTO, "transaction: %s has more than %u items", field,
                         CS_TXN_MAX_ITEMS);
    return CS_OK;
}

int cs_txn_from_object(const msgpack_object *o, cs_txn *t, cs_error *err)
{
    CS_TRY(want_array(o, "transaction", 8, err));
    const msgpack_object *f = o->via.array.ptr;
    uint64_t sched = 0, req = 0, ver = 0, conflict = 0, commit = 0;
    CS_TRY(want_u64(&f[0], "scheduler id", UINT64_MAX, &sched, err));
    CS_TRY(want_u64(&f[1], "request id", UINT64_MAX, &req, err));
    CS_TRY(want_u64(&f[2], "snapshot version", UINT64_MAX, &ver, err));
    CS_TRY(want_u64(&f[3], "conflict mode", CS_CONFLICT_MODE_COUNT - 1, &conflict, err));
    CS_TRY(want_u64(&f[4], "commit mode", CS_COMMIT_MODE_COUNT - 1, &commit, err));
    cs_txn_free(t);
    cs_txn_init(t, sched, req, ver, (uint8_t)conflict, (uint8_t)commit);

    CS_TRY(want_array(&f[5], "claims", UINT32_MAX, err));
    for (uint32_t i = 0; i < f[5].via.array.size; i++) {
        const msgpack_object *c = &f[5].via.array.ptr[i];
        CS_TRY(want_array(c, "claim", 7, err));
        const msgpack_object *cf = c->via.array.ptr;
        uint64_t task = 0, machine = 0, seq = 0;
        cs_res res = {0, 0, 0};
        CS_TRY(want_u64(&cf[0], "claim task", UINT64_MAX, &task, err));
        CS_TRY(want_u64(&cf[1], "claim machine", UINT64_MAX, &machine, err));
        CS_TRY(want_i64(&cf[2], "claim cpu", &res.cpu, err));
        CS_TRY(want_i64(&cf[3], "claim mem", &res.mem, err));
        CS_TRY(want_i64(&cf[4], "claim disk", &res.disk, err));
        CS_TRY(want_array(&cf[5], "claim ports", UINT32_MAX, err));
        uint32_t np = cf[5].via.array.size;
        if (np > CS_PORTS_PER_TASK_MAX)
            return cs_errorf(err, CS_EPROTO, "transaction: claim %u has more than %d ports", i,
                             CS_PORTS_PER_TASK_MAX);
        uint16_t ports[CS_PORTS_PER_TASK_MAX];
        for (uint32_t p = 0; p < np; p++) {
            uint64_t v = 0;
            CS_TRY(want_u64(&cf[5].via.array.ptr[p], "claim port", UINT16_MAX, &v, err));
            ports[p] = (uint16_t)v;
        }
        CS_TRY(want_u64(&cf[6], "claim seq", UINT64_MAX, &seq, err));
        if (cs_txn_add_claim(t, task, machine, &res, ports, np, seq) != CS_OK)
            return cs_errorf(err, CS_ENOMEM, "transaction: out of memory");
    }
    CS_TRY(want_array(&f[6], "releases", UINT32_MAX, err));
    for (uint32_t i = 0; i < f[6].via.array.size; i++) {
        const msgpack_object *r = &f[6].via.array.ptr[i];
        CS_TRY(want_array(r, "release", 3, err));
        uint64_t task = 0, state = 0;
        int64_t code = 0;
        CS_TRY(want_u64(&r->via.array.ptr[0], "release task", UINT64_MAX, &task, err));
        CS_TRY(want_u64(&r->via.array.ptr[1], "release state", CS_TASK_STATE_COUNT - 1, &state, err));
        CS_TRY(want_i64(&r->via.array.ptr[2], "release exit code", &code, err));
        if (code < INT32_MIN || code > INT32_MAX)
            return cs_errorf(err, CS_EPROTO, "transaction: release exit code is out of range");
        if (cs_txn_add_release(t, task, (uint8_t)state, (int32_t)code) != CS_OK)
            return cs_errorf(err, CS_ENOMEM, "transaction: out of memory");
    }
    CS_TRY(want_array(&f[7], "preemptions", UINT32_MAX, err));
    for (uint32_t i = 0; i < f[7].via.array.size; i++) {
        const msgpack_object *p = &f[7].via.array.ptr[i];
        CS_TRY(want_array(p, "preemption", 2, err));
        uint64_t victim = 0, preemptor = 0;
        CS_TRY(want_u64(&p->via.array.ptr[0], "preemption victim", UINT64_MAX, &victim, err));
        CS_TRY(want_u64(&p->via.array.ptr[1], "preemption preemptor", UINT64_MAX, &preemptor, err));
        if (cs_txn_add_preempt(t, victim, preemptor) != CS_OK)
            return cs_errorf(err, CS_ENOMEM, "transaction: out of memory");
    }
    return CS_OK;
}

int cs_txn_decode(const void *data, size_t len, cs_txn *t, cs_error *err)
{
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 4096))
        return cs_errorf(err, CS_ENOMEM, "transaction: out of memory");
    msgpack_object obj;
    int rc = cs_mp_unpack(data, len, &zone, &obj, CS_EPROTO, "transaction", err);
    if (rc == CS_OK)
        rc = cs_txn_from_object(&obj, t, err);
    msgpack_zone_destroy(&zone);
    return rc;
}

/* ---- results ---------------------------------------------------------- */

void cs_txn_result_init(cs_txn_result *r) { memset(r, 0, sizeof *r); }

void cs_txn_result_free(cs_txn_result *r)
{
    free(r->claims);
    free(r->releases);
    free(r->preempts);
    memset(r, 0, sizeof *r);
}

static int sized(uint8_t **arr, uint32_t n)
{
    free(*arr);
    *arr = NULL;
    if (n == 0)
        return CS_OK;
    *arr = calloc(n, 1);
    return *arr ? CS_OK : CS_ENOMEM;
}

int cs_txn_result_prepare(cs_txn_result *r, const cs_txn *t)
{
    r->version = 0;
    r->replayed = false;
    r->committed = r->conflicts = 0;
    r->nclaims = t->nclaims;
    r->nreleases = t->nreleases;
    r->npreempts = t->npreempts;
    if (sized(&r->claims, t->nclaims) || sized(&r->releases, t->nreleases) ||
        sized(&r->preempts, t->npreempts))
        return CS_ENOMEM;
    return CS_OK;
}

/* [version, committed, conflicts, claims (bin), releases (bin), preempts (bin)] */
int cs_txn_result_encode(const cs_txn_result *r, msgpack_sbuffer *buf)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    PK(msgpack_pack_array(&pk, 6));
    PK(msgpack_pack_uint64(&pk, r->version));
    PK(msgpack_pack_uint32(&pk, r->committed));
    PK(msgpack_pack_uint32(&pk, r->conflicts));
    const uint8_t *arrs[3] = {r->claims, r->releases, r->preempts};
    uint32_t ns[3] = {r->nclaims, r->nreleases, r->npreempts};
    for (int i = 0; i < 3; i++) {
        PK(msgpack_pack_bin(&pk, ns[i]));
        if (ns[i] > 0)
            PK(msgpack_pack_bin_body(&pk, arrs[i], ns[i]));
    }
    return CS_OK;
}

int cs_txn_result_decode(const void *data, size_t len, cs_txn_result *r, cs_error *err)
{
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 256))
        return cs_errorf(err, CS_ENOMEM, "result: out of memory");
    msgpack_object obj;
    int rc = cs_mp_unpack(data, len, &zone, &obj, CS_EPROTO, "result", err);
    if (rc != CS_OK)
        goto out;
    const msgpack_object *f = obj.via.array.ptr;
    if (obj.type != MSGPACK_OBJECT_ARRAY || obj.via.array.size != 6 ||
        f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        f[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[1].via.u64 > UINT32_MAX ||
        f[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[2].via.u64 > UINT32_MAX) {
        rc = cs_errorf(err, CS_EPROTO, "result: not [version, committed, conflicts, ...]");
        goto out;
    }
    cs_txn_result_free(r);
    r->version = f[0].via.u64;
    r->committed = (uint32_t)f[1].via.u64;
    r->conflicts = (uint32_t)f[2].via.u64;
    uint8_t **arrs[3] = {&r->claims, &r->releases, &r->preempts};
    uint32_t *ns[3] = {&r->nclaims, &r->nreleases, &r->npreempts};
    for (int i = 0; i < 3; i++) {
        const msgpack_object *b = &f[3 + i];
        if (b->type != MSGPACK_OBJECT_BIN) {
            rc = cs_errorf(err, CS_EPROTO, "result: outcome list %d is not binary", i);
            goto out;
        }
        if ((rc = sized(arrs[i], b->via.bin.size)) != CS_OK) {
            rc = cs_errorf(err, rc, "result: out of memory");
            goto out;
        }
        for (uint32_t k = 0; k < b->via.bin.size; k++) {
            uint8_t o = (uint8_t)b->via.bin.ptr[k];
            if (o >= CS_OUTCOME_COUNT) {
                rc = cs_errorf(err, CS_EPROTO, "result: unknown outcome %u", o);
                goto out;
            }
            (*arrs[i])[k] = o;
        }
        *ns[i] = b->via.bin.size;
    }
out:
    msgpack_zone_destroy(&zone);
    return rc;
}
