/* reports.c — sched.report: each scheduler's metrics under its name, kept
 * in memory and served by stats (proto/schedreport.h says why not in the
 * store). */
#include <stdlib.h>

#include "proto/msg.h"
#include "server/internal.h"

/* A scheduler's metrics: kept in memory, like heartbeats, and served by
 * stats; never written to the store. */
int srv_sched_report(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_sched_report *r = malloc(sizeof *r); /* 5 KiB: not on an nng thread's stack */
    if (r == NULL)
        return cs_errorf(err, CS_ENOMEM, "sched.report: out of memory");
    cs_server *s = w->s;
    int rc = cs_sched_report_unpack(body(w), r, err);
    if (rc == CS_OK)
        rc = srv_auth_sched_name(w, r->name, err);
    if (rc == CS_OK) {
        pthread_mutex_lock(&s->rmu);
        rc = cs_sched_table_put(&s->reports, r, now_ms(), err);
        pthread_mutex_unlock(&s->rmu);
    }
    if (rc == CS_OK)
        srv_metrics_named(s, r->name);
    free(r);
    if (rc != CS_OK)
        return rc;
    pthread_mutex_lock(&s->mu);
    uint64_t v = s->version;
    pthread_mutex_unlock(&s->mu);
    cs_version_reply reply = {v};
    PK(cs_version_reply_encode(pk, &reply));
    return CS_OK;
}

