/* cellchaos_load.c — the writes of a chaos run (see cellchaos_load.h). */
#include "tools/cellchaos_load.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cellstate/rng.h"
#include "proto/client.h"
#include "proto/jobmsg.h"
#include "proto/msg.h"
#include "spec/jobspec.h"

/* A write's reply may wait for an election (500-1000 ms here) and the
 * forwarding to the new leader, and the client may try every replica in
 * turn within this bound. */
#define CC_WRITE_TIMEOUT_MS 10000

struct cc_load {
    cc_check *k;
    cc_load_opts o;
    char servers[1024]; /* the replicas' URLs, comma-separated */
    uint64_t rng;
    uint64_t seq; /* names: every attempt its own, so a retry never meets an earlier try */
    atomic_bool stop;
    atomic_uint_fast64_t tried, acked;
    pthread_t thread;
    bool started;
};

static void sleep_ms(uint32_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int cc_load_new(const char *servers, cc_check *k, const cc_load_opts *o, cc_load **out,
                cs_error *err)
{
    cc_load *l = calloc(1, sizeof *l);
    if (l == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    if (snprintf(l->servers, sizeof l->servers, "%s", servers) >= (int)sizeof l->servers) {
        free(l);
        return cs_errorf(err, CS_EINVAL, "load: the list of servers is too long");
    }
    l->k = k;
    l->o = *o;
    l->rng = o->seed ^ UINT64_C(0x6c6f6164); /* its own stream of the run's seed */
    atomic_init(&l->stop, false);
    atomic_init(&l->tried, 0);
    atomic_init(&l->acked, 0);
    *out = l;
    return CS_OK;
}

void cc_load_free(cc_load *l)
{
    if (l == NULL)
        return;
    cc_load_stop(l);
    free(l);
}

void cc_load_counts(cc_load *l, uint64_t *tried, uint64_t *acked)
{
    *tried = atomic_load(&l->tried);
    *acked = atomic_load(&l->acked);
}

/* One write through the client, which moves on to another replica when
 * one does not answer or cannot take writes now. */
static int write_once(cc_load *l, cs_client *c, uint32_t type, const msgpack_sbuffer *body,
                      cs_msg *reply, cs_error *err)
{
    atomic_fetch_add(&l->tried, 1);
    return cs_client_callb(c, type, body, reply, err);
}

/* Submit the spec in `json` once; its id and the reply's version on CS_OK. */
static int submit(cc_load *l, cs_client *c, const char *json, cs_id *id,
                  uint64_t *version, cs_error *err)
{
    cs_jobspec spec;
    CS_TRY(cs_jobspec_parse(json, strlen(json), &spec, err));
    cs_msg r;
    int rc = write_once(l, c, CS_MSG_JOB_SUBMIT, &spec.body, &r, err);
    cs_id_reply ir;
    cs_arena a;
    cs_arena_init(&a);
    if (rc == CS_OK && (rc = cs_id_reply_decode(&r.body, &ir, &a, err)) == CS_OK) {
        *id = ir.id;
        *version = ir.version;
    }
    cs_arena_free(&a);
    cs_jobspec_free(&spec);
    return rc;
}

static int kill_job(cc_load *l, cs_client *c, cs_id id, uint64_t *version, cs_error *err)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    cs_job_ref_req req = {cs_ref_id(id)};
    int rc = cs_job_ref_req_encode(&pk, &req);
    cs_msg r;
    if (rc == CS_OK)
        rc = write_once(l, c, CS_MSG_JOB_KILL, &b, &r, err);
    cs_version_reply vr;
    cs_arena a;
    cs_arena_init(&a);
    if (rc == CS_OK && (rc = cs_version_reply_decode(&r.body, &vr, &a, err)) == CS_OK)
        *version = vr.version;
    cs_arena_free(&a);
    msgpack_sbuffer_destroy(&b);
    return rc;
}

int cc_load_service(cc_load *l, uint32_t count, uint32_t wait_ms, cs_id *job, cs_error *err)
{
    char json[512];
    cs_client *c;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc;
    CS_TRY(cs_client_open(l->servers, CC_WRITE_TIMEOUT_MS, &c, err));
    for (;;) {
        /* The name carries the attempt: a first try committed without its
         * reply reaching us must not make the next one "already exists". */
        snprintf(json, sizeof json,
                 "{\"name\": \"chaos-service-%llu\", \"kind\": \"service\", \"priority\": 100, "
                 "\"count\": %u, \"cmd\": \"true\", \"duration\": \"1000h\", "
                 "\"resources\": {\"cpu\": 0.5, \"mem\": 256}}",
                 (unsigned long long)l->seq++, count);
        uint64_t version = 0;
        if ((rc = submit(l, c, json, job, &version, err)) == CS_OK) {
            atomic_fetch_add(&l->acked, 1);
            char name[64];
            snprintf(name, sizeof name, "chaos-service-%llu", (unsigned long long)l->seq - 1);
            rc = cc_check_ack_submit(l->k, *job, name, version);
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >= wait_ms) {
            cs_error_wrap(err, rc, "submitting the service job for %u ms", wait_ms);
            break;
        }
        sleep_ms(200);
    }
    cs_client_close(c);
    return rc;
}

static void *run(void *arg)
{
    cc_load *l = arg;
    cs_client *c;
    cs_error oerr = {0};
    if (cs_client_open(l->servers, CC_WRITE_TIMEOUT_MS, &c, &oerr) != CS_OK) {
        fprintf(stderr, "cellchaos: load: %s\n", oerr.msg);
        return NULL;
    }
    char json[512], name[64];
    uint32_t since_kill = 0; /* acknowledged submits since the last kill tried */
    while (!atomic_load(&l->stop)) {
        cs_error err = {0};
        cs_id id = 0;
        uint64_t version = 0;
        snprintf(name, sizeof name, "chaos-%llu", (unsigned long long)l->seq++);
        snprintf(json, sizeof json,
                 "{\"name\": \"%s\", \"count\": %u, \"cmd\": \"true\", \"max_retries\": 1000, "
                 "\"resources\": {\"cpu\": 1, \"mem\": 512}}",
                 name, l->o.batch_tasks);
        if (submit(l, c, json, &id, &version, &err) == CS_OK) {
            atomic_fetch_add(&l->acked, 1);
            if (cc_check_ack_submit(l->k, id, name, version) != CS_OK)
                fprintf(stderr, "cellchaos: out of memory: submit of %s not recorded\n", name);
            since_kill++;
        }
        if (l->o.kill_each > 0 && since_kill >= l->o.kill_each &&
            cc_check_pick_live(l->k, &l->rng, &id)) {
            since_kill = 0;
            /* A kill refused (the job ended already: CS_ESTATE) or
             * unanswered is no acknowledged write. */
            if (kill_job(l, c, id, &version, &err) == CS_OK) {
                atomic_fetch_add(&l->acked, 1);
                cc_check_ack_kill(l->k, id, version);
            }
        }
        sleep_ms(l->o.every_ms);
    }
    cs_client_close(c);
    return NULL;
}

int cc_load_start(cc_load *l, cs_error *err)
{
    if (pthread_create(&l->thread, NULL, run, l) != 0)
        return cs_errorf(err, CS_EIO, "starting the load thread");
    l->started = true;
    return CS_OK;
}

void cc_load_stop(cc_load *l)
{
    atomic_store(&l->stop, true);
    if (l->started) {
        pthread_join(l->thread, NULL);
        l->started = false;
    }
}
