/* seeds.c — writes the fuzz targets' seed corpora (tests/fuzz/corpus/NAME/)
 * with the real encoders: `make fuzz-seeds` runs it and the result is
 * committed, so that `make fuzz` starts from valid inputs of every kind
 * instead of finding the formats byte by byte.
 *
 *   seeds OUT_DIR [TESTDATA_DIR]
 *
 * It builds fz_cell's cell (tests/fuzz/fuzz.h) in a temporary store, runs
 * one of each command on it (placements, reports, a scale, a surge, an
 * update, a note, a cordon, a drain, a kill, ...), and writes: the records
 * and the logged commands (machine, job, task, jobopts, txn, command);
 * then serves the store with an in-process cellstated and writes one
 * request of every type (msg: whole messages; server: type byte and body)
 * and what the server answers that clients decode (sync, poll, the records
 * of get.*: wire_record), and task.logs requests to an agent (logs). Job
 * specs come from examples/, Marathon apps and the Kubernetes Policy from
 * TESTDATA_DIR (../shared/testdata, when present: Apache-2.0 files,
 * tests/fuzz/NOTICE), policies also from a few written here. Every seed is
 * small (the largest is a few KB). */
#include <errno.h>
#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cellstate/arena.h"
#include "cellstate/jobopts.h"
#include "proto/proto.h"
#include "proto/schedreport.h"
#include "server/server.h"
#include "spec/jobspec.h"
#include "tests/fuzz/fuzz.h"
#include "txn/command.h"
#include "txn/commit.h"
#include "txn/ops.h"
#include "txn/txn.h"

#define URL "inproc://cellsched-seeds"

static const char *out_dir;

static void die(const char *what, const char *why) __attribute__((noreturn));
static void die(const char *what, const char *why)
{
    fprintf(stderr, "seeds: %s: %s\n", what, why);
    exit(1);
}

static void check(int rc, const char *what, const cs_error *err)
{
    if (rc != CS_OK)
        die(what, err->msg);
}

/* Write data[0..len) as OUT_DIR/target/name. */
static void seed(const char *target, const char *name, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", out_dir, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        die(path, strerror(errno));
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, target, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        die(path, strerror(errno));
}

static void seedb(const char *target, const char *name, const msgpack_sbuffer *b)
{
    seed(target, name, b->data, b->size);
}

/* Copy the file at `path` as a seed; false when it is absent. */
static bool seed_file(const char *target, const char *name, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    seed(target, name, buf, n);
    return true;
}

/* ---- the store: records and log entries ----------------------------------- */

static void scenario(cs_store *s)
{
    cs_error err = {0};
    const cs_id b0 = cs_task_id(1, 0), b1 = cs_task_id(1, 1), w0 = cs_task_id(2, 0),
                w1 = cs_task_id(2, 1);
    const cs_res batch = {1000, 256, 100}, web = {500, 256, 100};
    const uint16_t port[1] = {31000};
    cs_txn t;
    cs_txn_init(&t, 7, 1, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_txn_result r;
    cs_txn_result_init(&r);
    check(cs_txn_add_claim(&t, b0, 1, &batch, NULL, 0, 0), "claim", &err);
    check(cs_txn_add_claim(&t, b1, 2, &batch, NULL, 0, 0), "claim", &err);
    check(cs_txn_add_claim(&t, w0, 1, &web, port, 1, 0), "claim", &err);
    check(cs_txn_add_claim(&t, w1, 2, &web, port, 1, 0), "claim", &err);
    check(cs_commit(s, &t, &r, &err), "commit", &err);
    cs_txn_result_free(&r);
    cs_txn_free(&t);
    check(cs_op_task_status(s, b0, 1, CS_TASK_RUNNING, 0, "", NULL, &err), "running", &err);
    check(cs_op_task_status(s, b1, 1, CS_TASK_FAILED, 2, "exit 2", NULL, &err), "failed", &err);
    cs_task_report hr = {w0, 1, CS_TASK_RUNNING, 0, "", CS_TASK_HEALTH_HEALTHY};
    check(cs_op_task_report(s, &hr, NULL, &err), "healthy", &err);
    check(cs_op_task_status(s, w1, 1, CS_TASK_RUNNING, 0, "", NULL, &err), "running", &err);
    /* A retry of the failed task and a preemption. */
    cs_txn_init(&t, 7, 2, 0, CS_CONFLICT_COARSE, CS_COMMIT_GANG);
    cs_txn_result_init(&r);
    check(cs_txn_add_release(&t, b1, CS_TASK_PENDING, 0), "release", &err);
    check(cs_txn_add_claim(&t, cs_task_id(1, 2), 3, &batch, NULL, 0, 0), "claim", &err);
    check(cs_txn_add_preempt(&t, b0, cs_task_id(1, 2)), "preempt", &err);
    (void)cs_commit(s, &t, &r, &err); /* refused or not, it is logged if it did anything */
    cs_txn_result_free(&r);
    cs_txn_free(&t);
    check(cs_op_job_note(s, 1, "no machine fits: cpu on 3", NULL, &err), "note", &err);
    check(cs_op_job_scale(s, 1, 6, NULL, &err), "scale", &err);
    check(cs_op_job_surge(s, 2, 1, NULL, &err), "surge", &err);
    cs_arena a;
    cs_arena_init(&a);
    cs_jobspec spec;
    check(cs_jobspec_load("examples/web.json", &spec, &err), "examples/web.json", &err);
    spec.job.name = "web";
    spec.job.count = 2;
    check(cs_op_job_update(s, 2, &spec.job, NULL, &err), "update", &err);
    cs_jobspec_free(&spec);
    check(cs_op_machine_admin(s, 3, CS_ADMIN_CORDONED, 0, NULL, &err), "cordon", &err);
    check(cs_op_machine_admin(s, 2, CS_ADMIN_DRAINING, UINT64_C(1700000600000), NULL, &err),
          "drain", &err);
    check(cs_op_machine_drain_deadline(s, 2, NULL, &err), "drain deadline", &err);
    check(cs_op_machine_state(s, 3, CS_MACHINE_DOWN, NULL, &err), "down", &err);
    check(cs_jobspec_load("examples/batch.json", &spec, &err), "examples/batch.json", &err);
    cs_id id;
    spec.job.submitted = UINT64_C(1700000001000);
    check(cs_op_job_submit(s, &spec.job, &id, NULL, &err), "submit", &err);
    cs_jobspec_free(&spec);
    check(cs_op_job_kill(s, id, UINT64_C(1700000002000), NULL, &err), "kill", &err);
    check(cs_op_job_gc(s, &id, 1, NULL, &err), "gc", &err);
    cs_arena_free(&a);
}

typedef struct log_ctx {
    msgpack_sbuffer all; /* every entry, fuzz_command's format */
    unsigned n;
} log_ctx;

static int log_entry(void *ctx, uint64_t version, uint32_t n, uint8_t kind, const void *cmd,
                     size_t len)
{
    (void)n;
    log_ctx *l = ctx;
    uint8_t head[3] = {kind, (uint8_t)(len >> 8), (uint8_t)len};
    if (len > 0xffff)
        return CS_OK; /* not expressible in the format: no command of the scenario is */
    char name[64];
    snprintf(name, sizeof name, "%02llu-%s", (unsigned long long)version, cs_cmd_name(kind));
    msgpack_sbuffer one;
    msgpack_sbuffer_init(&one);
    msgpack_sbuffer_write(&one, (const char *)head, 3);
    msgpack_sbuffer_write(&one, cmd, len);
    seedb("command", name, &one);
    msgpack_sbuffer_destroy(&one);
    msgpack_sbuffer_write(&l->all, (const char *)head, 3);
    msgpack_sbuffer_write(&l->all, cmd, len);
    l->n++;
    /* The log's records and transactions are also the record targets' seeds. */
    if (kind == CS_CMD_MACHINE_PUT)
        seed("machine", name, cmd, len);
    else if (kind == CS_CMD_JOB_SUBMIT)
        seed("job", name, cmd, len);
    else if (kind == CS_CMD_TXN)
        seed("txn", name, cmd, len);
    return CS_OK;
}

static int put_task(void *ctx, const cs_task *t)
{
    (void)ctx;
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    char name[64];
    snprintf(name, sizeof name, "task-%llu-%u", (unsigned long long)cs_task_job(t->id), t->index);
    if (cs_task_encode(t, &b) == CS_OK)
        seedb("task", name, &b);
    msgpack_sbuffer_destroy(&b);
    return CS_OK;
}

static int put_job(void *ctx, const cs_job *j)
{
    (void)ctx;
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    char name[300];
    snprintf(name, sizeof name, "stored-%s", j->name);
    if (cs_job_encode(j, &b) == CS_OK)
        seedb("job", name, &b);
    msgpack_sbuffer_destroy(&b);
    if (j->extra_len > 0)
        seed("jobopts", name, j->extra, j->extra_len);
    return CS_OK;
}

static int put_machine(void *ctx, const cs_machine *m)
{
    (void)ctx;
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    char name[300];
    snprintf(name, sizeof name, "stored-%s", m->name);
    if (cs_machine_encode(m, &b) == CS_OK)
        seedb("machine", name, &b);
    msgpack_sbuffer_destroy(&b);
    return CS_OK;
}

static void store_seeds(cs_store *s)
{
    cs_error err = {0};
    cs_snap *snap;
    log_ctx l = {.n = 0};
    msgpack_sbuffer_init(&l.all);
    check(cs_snap_open(s, &snap, &err), "snapshot", &err);
    check(cs_snap_each_log(snap, 0, log_entry, &l, &err), "log", &err);
    check(cs_snap_each_machine(snap, put_machine, NULL, &err), "machines", &err);
    check(cs_snap_each_job(snap, put_job, NULL, &err), "jobs", &err);
    check(cs_snap_each_task(snap, put_task, NULL, &err), "tasks", &err);
    cs_snap_close(snap);
    seedb("command", "whole-log", &l.all);
    msgpack_sbuffer_destroy(&l.all);
}

/* ---- job specs, options, policies ------------------------------------------ */

static void spec_seeds(const char *testdata)
{
    static const char *const native[] = {"batch.json", "web.json"};
    static const char *const marathon[] = {"app.json", "readiness-and-health-app.json",
                                           "nginx.json"};
    char path[512];
    for (size_t i = 0; i < sizeof native / sizeof *native; i++) {
        snprintf(path, sizeof path, "examples/%s", native[i]);
        if (!seed_file("jobspec", native[i], path))
            die(path, "missing");
    }
    if (!seed_file("marathon", "examples-marathon-app.json", "examples/marathon-app.json"))
        die("examples/marathon-app.json", "missing");
    for (size_t i = 0; testdata && i < sizeof marathon / sizeof *marathon; i++) {
        snprintf(path, sizeof path, "%s/marathon/%s", testdata, marathon[i]);
        seed_file("marathon", marathon[i], path);
    }
    if (testdata) {
        snprintf(path, sizeof path, "%s/kubernetes/scheduler-policy-config.json", testdata);
        seed_file("policy", "scheduler-policy-config.json", path);
    }
    /* The options of every spec above, as the submit body carries them. */
    static const char *const all[] = {"examples/batch.json", "examples/web.json",
                                      "examples/marathon-app.json"};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        cs_jobspec s;
        cs_error err = {0};
        check(cs_jobspec_load(all[i], &s, &err), all[i], &err);
        char name[64];
        snprintf(name, sizeof name, "spec-%zu", i);
        if (s.job.extra_len > 0)
            seed("jobopts", name, s.job.extra, s.job.extra_len);
        cs_jobspec_free(&s);
    }
    static const char *const policies[] = {
        "{\"kind\": \"Policy\", \"apiVersion\": \"v1\", \"predicates\": "
        "[{\"name\": \"GeneralPredicates\"}, {\"name\": \"PodToleratesNodeTaints\"}], "
        "\"priorities\": [{\"name\": \"LeastRequestedPriority\", \"weight\": 1}, "
        "{\"name\": \"TaintTolerationPriority\", \"weight\": 2}]}",
        "{\"kind\": \"Policy\", \"apiVersion\": \"v1\", \"predicates\": [{\"name\": "
        "\"PodFitsResources\"}, {\"name\": \"NoDiskConflict\"}], \"priorities\": [{\"name\": "
        "\"MostRequestedPriority\", \"weight\": 3}, {\"name\": \"ImageLocalityPriority\", "
        "\"weight\": 1}]}",
        "{\"kind\": \"Policy\", \"apiVersion\": \"v1\", \"priorities\": [{\"name\": "
        "\"SelectorSpreadPriority\", \"weight\": 1}, {\"name\": \"BalancedResourceAllocation\", "
        "\"weight\": 1}, {\"name\": \"NodeAffinityPriority\", \"weight\": 1}]}",
    };
    for (size_t i = 0; i < sizeof policies / sizeof *policies; i++) {
        char name[32];
        snprintf(name, sizeof name, "policy-%zu.json", i);
        seed("policy", name, policies[i], strlen(policies[i]));
    }
}

/* ---- requests and what the server answers ---------------------------------- */

typedef struct conn {
    nng_socket sock;
    uint64_t req;
} conn;

/* Send `body` as a request of `type` with id `req`; the whole reply into
 * `reply` (the caller's to destroy). Writes the request as seeds of msg
 * and server. */
static void call(conn *c, uint32_t type, const msgpack_sbuffer *body, const char *name,
                 msgpack_sbuffer *reply)
{
    msgpack_sbuffer m;
    msgpack_sbuffer_init(&m);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &m, msgpack_sbuffer_write);
    if (cs_msg_begin(&pk, type, c->req) != CS_OK ||
        msgpack_sbuffer_write(&m, body->data, body->size) != 0)
        die(name, "out of memory");
    seedb("msg", name, &m);
    msgpack_sbuffer s;
    msgpack_sbuffer_init(&s);
    uint8_t t = (uint8_t)type;
    msgpack_sbuffer_write(&s, (const char *)&t, 1);
    msgpack_sbuffer_write(&s, body->data, body->size);
    seedb("server", name, &s);
    msgpack_sbuffer_destroy(&s);
    char *r = NULL;
    size_t rlen = 0;
    int rv;
    if ((rv = nng_send(c->sock, m.data, m.size, 0)) != 0 ||
        (rv = nng_recv(c->sock, &r, &rlen, NNG_FLAG_ALLOC)) != 0)
        die(name, nng_strerror(rv));
    msgpack_sbuffer_destroy(&m);
    msgpack_sbuffer_init(reply);
    msgpack_sbuffer_write(reply, r, rlen);
    nng_free(r, rlen);
}

/* The body of a whole reply message: the bytes after its envelope header. */
static void reply_body(const msgpack_sbuffer *reply, const char *target, const char *name)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    cs_msg m;
    cs_error err = {0};
    check(cs_msg_decode(reply->data, reply->size, &zone, &m, &err), name, &err);
    if (m.type == CS_MSG_ERROR)
        die(name, "the server refused the request");
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, m.body);
    seedb(target, name, &b);
    msgpack_sbuffer_destroy(&b);
    msgpack_zone_destroy(&zone);
}

/* Each record in the reply's array under `key`, as wire_record seeds. */
static void reply_records(const msgpack_sbuffer *reply, const char *key, const char *name)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    cs_msg m;
    cs_error err = {0};
    check(cs_msg_decode(reply->data, reply->size, &zone, &m, &err), name, &err);
    const msgpack_object *list = cs_obj_get(&m.body, key);
    if (list == NULL || list->type != MSGPACK_OBJECT_ARRAY)
        die(name, "no list in the reply");
    for (uint32_t i = 0; i < list->via.array.size && i < 4; i++) {
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
        msgpack_pack_object(&pk, list->via.array.ptr[i]);
        char n[64];
        snprintf(n, sizeof n, "%s-%u", name, i);
        seedb("wire_record", n, &b);
        msgpack_sbuffer_destroy(&b);
    }
    msgpack_zone_destroy(&zone);
}

/* A body packer: start with map_begin(n), then the kv helpers. */
typedef struct body {
    msgpack_sbuffer b;
    msgpack_packer pk;
} body;

static msgpack_packer *body_map(body *x, uint32_t n)
{
    msgpack_sbuffer_init(&x->b);
    msgpack_packer_init(&x->pk, &x->b, msgpack_sbuffer_write);
    msgpack_pack_map(&x->pk, n);
    return &x->pk;
}

static void request(conn *c, uint32_t type, body *x, const char *name, const char *records)
{
    msgpack_sbuffer reply;
    c->req = 1; /* the id fuzz_poll's machine waits for */
    call(c, type, &x->b, name, &reply);
    if (records)
        reply_records(&reply, records, name);
    msgpack_sbuffer_destroy(&reply);
    msgpack_sbuffer_destroy(&x->b);
}

static void server_seeds(const char *dir)
{
    cs_server_opts o;
    cs_server_opts_default(&o);
    o.data_dir = dir;
    o.listen_url = URL;
    o.workers = 4;
    o.nosync = true;
    o.job_gc_ms = 0;
    o.log_retain_ms = 0;
    cs_server *srv;
    cs_error err = {0};
    check(cs_server_start(&o, &srv, &err), "cellstated", &err);
    conn c = {.req = 1};
    int rv;
    if ((rv = nng_req0_open(&c.sock)) != 0 || (rv = nng_dial(c.sock, URL, NULL, 0)) != 0)
        die("connecting", nng_strerror(rv));
    body x;
    msgpack_packer *pk;
    msgpack_sbuffer reply;

    /* Replies that clients decode: sync (schedulers), poll (agents). */
    static const char *const forms[] = {"compact", "map"};
    for (int i = 0; i < 2; i++) {
        for (uint64_t since = 0; since <= 6; since += 6) {
            pk = body_map(&x, 2);
            cs_pack_kv_u64(pk, "since", since);
            cs_pack_kv_str(pk, "form", forms[i]);
            char name[64];
            snprintf(name, sizeof name, "sync-%s-since-%llu", forms[i], (unsigned long long)since);
            call(&c, CS_MSG_SYNC, &x.b, name, &reply);
            reply_body(&reply, "sync", name);
            msgpack_sbuffer_destroy(&reply);
            msgpack_sbuffer_destroy(&x.b);
        }
    }
    /* The first piece of a full sync in pieces (base, ids, more, next). */
    pk = body_map(&x, 3);
    cs_pack_kv_u64(pk, "since", 0);
    cs_pack_kv_str(pk, "form", "compact");
    cs_pack_kv_u64(pk, "chunk", 2);
    call(&c, CS_MSG_SYNC, &x.b, "sync-compact-piece", &reply);
    reply_body(&reply, "sync", "sync-compact-piece");
    msgpack_sbuffer_destroy(&reply);
    msgpack_sbuffer_destroy(&x.b);
    for (uint64_t m = 1; m <= 2; m++) {
        for (int form = 0; form < 3; form++) {
            c.req = 1;
            pk = body_map(&x, form == 0 ? 2 : 4);
            cs_pack_kv_u64(pk, "machine", m);
            cs_pack_kv_u64(pk, "since", form == 2 ? 8 : 0);
            if (form > 0) {
                cs_pack_kv_str(pk, "jobs", "once");
                cs_pack_kv_str(pk, "known", "short");
            }
            char name[64];
            snprintf(name, sizeof name, "poll-m%llu-%s", (unsigned long long)m,
                     form == 0 ? "each" : form == 1 ? "once" : "short");
            call(&c, CS_MSG_POLL, &x.b, name, &reply);
            seedb("poll", name, &reply);
            msgpack_sbuffer_destroy(&reply);
            msgpack_sbuffer_destroy(&x.b);
        }
    }

    /* Reads, whose records are wire_record seeds. */
    pk = body_map(&x, 0);
    request(&c, CS_MSG_GET_MACHINES, &x, "get-machines", "machines");
    pk = body_map(&x, 0);
    request(&c, CS_MSG_GET_JOBS, &x, "get-jobs", "jobs");
    pk = body_map(&x, 2);
    cs_pack_kv_str(pk, "job", "web");
    cs_pack_kv_str(pk, "state", "running");
    request(&c, CS_MSG_GET_TASKS, &x, "get-tasks", "tasks");
    pk = body_map(&x, 1);
    cs_pack_kv_u64(pk, "machine", 1);
    request(&c, CS_MSG_GET_TASKS, &x, "get-tasks-m1", "tasks");
    pk = body_map(&x, 1);
    cs_pack_kv_str(pk, "job", "batch");
    request(&c, CS_MSG_GET_JOB, &x, "get-job", NULL);
    pk = body_map(&x, 0);
    request(&c, CS_MSG_STATS, &x, "stats", NULL);
    pk = body_map(&x, 0);
    request(&c, CS_MSG_VERSION, &x, "version", NULL);

    /* Writes: one of each, valid against the cell. */
    pk = body_map(&x, 1);
    cs_pack_kv_u64(pk, "machine", 1);
    request(&c, CS_MSG_HEARTBEAT, &x, "heartbeat", NULL);
    cs_taint taints[1] = {{"dedicated", "gpu", CS_TAINT_NO_SCHEDULE}};
    pk = body_map(&x, 6);
    cs_pack_kv_str(pk, "name", "m4");
    cs_pack_kv_res(pk, "capacity", &(cs_res){8000, 16384, 100000});
    cs_pack_str(pk, "attrs");
    msgpack_pack_map(pk, 1);
    cs_pack_kv_str(pk, "rack", "r3");
    cs_pack_taints(pk, taints, 1);
    cs_pack_kv_u64(pk, "port_lo", 32000);
    cs_pack_kv_u64(pk, "port_hi", 32100);
    request(&c, CS_MSG_MACHINE_REGISTER, &x, "machine-register", NULL);
    static const char *const specs[] = {"examples/batch.json", "examples/web.json",
                                        "examples/marathon-app.json"};
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) {
        cs_jobspec s;
        check(cs_jobspec_load(specs[i], &s, &err), specs[i], &err);
        char name[64];
        snprintf(name, sizeof name, "job-submit-%zu", i);
        msgpack_sbuffer_init(&x.b);
        msgpack_sbuffer_write(&x.b, s.body.data, s.body.size);
        request(&c, CS_MSG_JOB_SUBMIT, &x, name, NULL);
        if (i == 1) {
            pk = body_map(&x, 2);
            cs_pack_kv_str(pk, "job", "web");
            cs_pack_str(pk, "spec");
            msgpack_sbuffer_write(&x.b, s.body.data, s.body.size);
            request(&c, CS_MSG_JOB_UPDATE, &x, "job-update", NULL);
        }
        cs_jobspec_free(&s);
    }
    pk = body_map(&x, 2);
    cs_pack_kv_str(pk, "job", "batch");
    cs_pack_kv_u64(pk, "count", 3);
    request(&c, CS_MSG_JOB_SCALE, &x, "job-scale", NULL);
    pk = body_map(&x, 2);
    cs_pack_kv_str(pk, "job", "web");
    cs_pack_kv_u64(pk, "surge", 2);
    request(&c, CS_MSG_JOB_SURGE, &x, "job-surge", NULL);
    pk = body_map(&x, 2);
    cs_pack_kv_u64(pk, "job", 1);
    cs_pack_kv_str(pk, "note", "waiting for cpu");
    request(&c, CS_MSG_JOB_NOTE, &x, "job-note", NULL);
    pk = body_map(&x, 5);
    cs_pack_kv_u64(pk, "task", cs_task_id(2, 1));
    cs_pack_kv_u64(pk, "attempt", 1);
    cs_pack_kv_str(pk, "state", "running");
    cs_pack_kv_str(pk, "health", "unhealthy");
    cs_pack_kv_str(pk, "reason", "");
    request(&c, CS_MSG_TASK_STATUS, &x, "task-status", NULL);
    pk = body_map(&x, 1);
    cs_pack_str(pk, "reports");
    msgpack_pack_array(pk, 2);
    msgpack_pack_map(pk, 4);
    cs_pack_kv_u64(pk, "task", cs_task_id(2, 1));
    cs_pack_kv_u64(pk, "attempt", 1);
    cs_pack_kv_str(pk, "state", "failed");
    cs_pack_kv_i64(pk, "exit_code", -9);
    msgpack_pack_map(pk, 3);
    cs_pack_kv_u64(pk, "task", cs_task_id(1, 0));
    cs_pack_kv_u64(pk, "attempt", 1);
    cs_pack_kv_str(pk, "state", "finished");
    request(&c, CS_MSG_TASK_STATUS, &x, "task-status-batch", NULL);
    cs_txn t;
    cs_txn_init(&t, 9, 1, 8, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    const uint16_t port[1] = {0};
    check(cs_txn_add_claim(&t, cs_task_id(1, 3), 1, &(cs_res){1000, 256, 100}, NULL, 0, 0),
          "claim", &err);
    check(cs_txn_add_claim(&t, cs_task_id(2, 2), 1, &(cs_res){500, 256, 100}, port, 1, 0),
          "claim", &err);
    check(cs_txn_add_release(&t, cs_task_id(1, 1), CS_TASK_PENDING, 0), "release", &err);
    msgpack_sbuffer_init(&x.b);
    if (cs_txn_encode(&t, &x.b) != CS_OK)
        die("commit", "out of memory");
    cs_txn_free(&t);
    request(&c, CS_MSG_COMMIT, &x, "commit", NULL);
    cs_sched_report r = {.name = "batch-0", .kind = "batch", .warning = "policy: ignoring x"};
    check(cs_sched_report_add_uint(&r, "placed", 12, &err), "metric", &err);
    check(cs_sched_report_add_float(&r, "busy", 0.25, &err), "metric", &err);
    msgpack_sbuffer_init(&x.b);
    msgpack_packer_init(&x.pk, &x.b, msgpack_sbuffer_write);
    if (cs_sched_report_pack(&x.pk, &r) != CS_OK)
        die("sched.report", "out of memory");
    seedb("schedreport", "batch-0", &x.b);
    request(&c, CS_MSG_SCHED_REPORT, &x, "sched-report", NULL);
    pk = body_map(&x, 3);
    cs_pack_kv_str(pk, "machine", "m1");
    cs_pack_kv_str(pk, "admin", "draining");
    cs_pack_kv_u64(pk, "deadline_ms", 60000);
    request(&c, CS_MSG_MACHINE_ADMIN, &x, "machine-admin", NULL);
    pk = body_map(&x, 1);
    cs_pack_kv_str(pk, "job", "batch");
    request(&c, CS_MSG_JOB_END, &x, "job-end", NULL);
    pk = body_map(&x, 1);
    cs_pack_kv_str(pk, "job", "batch");
    request(&c, CS_MSG_JOB_KILL, &x, "job-kill", NULL);
    pk = body_map(&x, 3);
    cs_pack_kv_u64(pk, "limit", 5);
    cs_pack_kv_str(pk, "who", "anonymous");
    cs_pack_kv_str(pk, "action", "job.kill");
    request(&c, CS_MSG_AUDIT, &x, "audit", NULL);
    nng_close(c.sock);
    cs_server_stop(srv);
}

/* task.logs requests as cellctl logs sends them to an agent: whole
 * messages, for fuzz_logs (its work directory holds batch/0, attempt 1). */
static void logs_seeds(void)
{
    static const struct {
        const char *name, *stream;
        uint64_t offset, tail, max;
    } reqs[] = {
        {"stdout", NULL, 0, 0, 0},          {"stderr", "stderr", 0, 0, 0},
        {"tail-2", "stdout", 0, 2, 0},      {"offset-5-max-10", NULL, 5, 0, 10},
        {"tail-9-max-4", "stdout", 0, 9, 4},
    };
    for (size_t i = 0; i < sizeof reqs / sizeof *reqs; i++) {
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
        uint32_t n = 2 + (reqs[i].stream != NULL) + (reqs[i].offset > 0) + (reqs[i].tail > 0) +
                     (reqs[i].max > 0);
        if (cs_msg_begin(&pk, CS_MSG_TASK_LOGS, 1) != CS_OK || msgpack_pack_map(&pk, n) != 0 ||
            cs_pack_kv_u64(&pk, "task", cs_task_id(1, 0)) != CS_OK ||
            cs_pack_kv_u64(&pk, "attempt", 1) != CS_OK ||
            (reqs[i].stream && cs_pack_kv_str(&pk, "stream", reqs[i].stream) != CS_OK) ||
            (reqs[i].offset && cs_pack_kv_u64(&pk, "offset", reqs[i].offset) != CS_OK) ||
            (reqs[i].tail && cs_pack_kv_u64(&pk, "tail", reqs[i].tail) != CS_OK) ||
            (reqs[i].max && cs_pack_kv_u64(&pk, "max", reqs[i].max) != CS_OK))
            die("task.logs", "out of memory");
        seedb("logs", reqs[i].name, &b);
        msgpack_sbuffer_destroy(&b);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: seeds OUT_DIR [TESTDATA_DIR]\n");
        return 2;
    }
    out_dir = argv[1];
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        die(out_dir, strerror(errno));
    struct stat st;
    const char *testdata = argc == 3 && stat(argv[2], &st) == 0 ? argv[2] : NULL;
    char dir[256];
    cs_store *s;
    cs_error err = {0};
    cs_store_opts so = {.map_size = 64u << 20, .nosync = true};
    if (fz_mkdtemp(dir, sizeof dir) != 0)
        die("temporary directory", strerror(errno));
    check(cs_store_open(dir, &so, &s, &err), dir, &err);
    check(fz_cell(s, &err), "the cell", &err);
    scenario(s);
    store_seeds(s);
    cs_store_close(s);
    spec_seeds(testdata);
    logs_seeds();
    server_seeds(dir);
    fz_rmtree(dir);
    return 0;
}
