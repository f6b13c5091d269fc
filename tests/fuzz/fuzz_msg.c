/* fuzz_msg.c — a request as cellstated reads it (server/server.c, serve):
 * the size limit, the envelope (cs_msg_decode, whose cs_mp_unpack is the
 * allocation-free bounds check in front of msgpack), the body-is-a-map
 * rule, then the body decoders that exist apart from their handlers:
 * machine.register (cs_unpack_machine_spec), job.submit and job.update
 * (cs_unpack_job_spec and the job's options, as the submit op reads them),
 * commit (cs_txn_from_object) and sched.report (cs_sched_report_unpack).
 * The other bodies are read field by field inside their handlers: the
 * fuzz_server target sends those through a running cellstated. */
#include <msgpack.h>

#include "cellstate/arena.h"
#include "cellstate/jobopts.h"
#include "proto/proto.h"
#include "proto/schedreport.h"
#include "tests/fuzz/fuzz.h"
#include "txn/txn.h"

static void body(const cs_msg *m)
{
    cs_error err = {0};
    cs_arena a;
    cs_arena_init(&a);
    switch (m->type) {
    case CS_MSG_MACHINE_REGISTER: {
        cs_machine spec;
        (void)cs_unpack_machine_spec(&m->body, &a, &spec, &err);
        break;
    }
    case CS_MSG_JOB_SUBMIT:
    case CS_MSG_JOB_UPDATE: {
        cs_job spec;
        cs_jobopts opts;
        if (cs_unpack_job_spec(&m->body, &a, &spec, &err) == CS_OK)
            (void)cs_job_opts(&spec, &a, &opts, &err);
        break;
    }
    case CS_MSG_COMMIT: {
        cs_txn t;
        cs_txn_init(&t, 0, 0, 0, 0, 0);
        (void)cs_txn_from_object(&m->body, &t, &err);
        cs_txn_free(&t);
        break;
    }
    case CS_MSG_SCHED_REPORT: {
        cs_sched_report r;
        (void)cs_sched_report_unpack(&m->body, &r, &err);
        break;
    }
    default:
        break;
    }
    cs_arena_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > CS_DEFAULT_MAX_MSG)
        return 0;
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 4096))
        return 0;
    cs_msg m;
    cs_error err = {0};
    if (cs_msg_decode(data, size, &zone, &m, &err) == CS_OK &&
        (m.body.type == MSGPACK_OBJECT_MAP || m.type == CS_MSG_COMMIT))
        body(&m);
    msgpack_zone_destroy(&zone);
    return 0;
}
