/* fuzz_wire_record.c — machine, job and task maps as clients read them from
 * replies (cs_unpack_machine, cs_unpack_job, cs_unpack_task, proto/proto.h:
 * cellctl, the agent, the schedulers' map-form sync), after cs_mp_unpack,
 * the bounds check every reader of outside bytes runs first. The input is
 * one msgpack object, tried as each of the three. */
#include <msgpack.h>

#include "cellstate/arena.h"
#include "cellstate/mpcheck.h"
#include "proto/proto.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 4096))
        return 0;
    msgpack_object o;
    cs_error err = {0};
    if (cs_mp_unpack(data, size, &zone, &o, CS_EPROTO, "record", &err) == CS_OK) {
        cs_arena a;
        cs_arena_init(&a);
        cs_machine m;
        cs_job j;
        cs_task t;
        (void)cs_unpack_machine(&o, &a, &m, &err);
        (void)cs_unpack_job(&o, &a, &j, &err);
        (void)cs_unpack_task(&o, &a, &t, &err);
        cs_arena_free(&a);
    }
    msgpack_zone_destroy(&zone);
    return 0;
}
