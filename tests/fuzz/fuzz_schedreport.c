/* fuzz_schedreport.c — a scheduler's sched.report body as cellstated keeps
 * it (proto/schedreport.h): bounds-checked and unpacked, read with
 * cs_sched_report_unpack, put in the table of reports and packed for
 * `stats`, as the server's handler does. */
#include <msgpack.h>

#include "cellstate/mpcheck.h"
#include "proto/schedreport.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 4096))
        return 0;
    msgpack_object o;
    cs_error err = {0};
    cs_sched_report r;
    if (cs_mp_unpack(data, size, &zone, &o, CS_EPROTO, "message", &err) == CS_OK &&
        cs_sched_report_unpack(&o, &r, &err) == CS_OK) {
        cs_sched_table t;
        cs_sched_table_init(&t);
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
        if (cs_sched_table_put(&t, &r, 1000, &err) == CS_OK)
            fz_require(cs_sched_table_pack(&t, 2000, &pk) == CS_OK, "a kept report packs");
        msgpack_sbuffer_destroy(&b);
        cs_sched_table_free(&t);
    }
    msgpack_zone_destroy(&zone);
    return 0;
}
