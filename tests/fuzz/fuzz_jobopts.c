/* fuzz_jobopts.c — a job's options as every reader of a job decodes them
 * (cs_jobopts_decode of the job's `extra` bytes, cellstate/jobopts.h): the
 * submit op, the schedulers' copies, the agent. Options it accepts must
 * keep their canonical encoding: encoding them, decoding that and encoding
 * again gives the same bytes. */
#include "cellstate/arena.h"
#include "cellstate/jobopts.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    cs_jobopts o, again;
    msgpack_sbuffer b1, b2;
    msgpack_sbuffer_init(&b1);
    msgpack_sbuffer_init(&b2);
    if (cs_jobopts_decode(data, size, &a, &o, &err) == CS_OK) {
        fz_require(cs_jobopts_encode(&o, &b1, &err) == CS_OK, "decoded options encode");
        fz_require(cs_jobopts_decode(b1.data, b1.size, &a, &again, &err) == CS_OK,
                   "encoded options decode");
        fz_require(cs_jobopts_encode(&again, &b2, &err) == CS_OK, "decoded options encode again");
        fz_require_same(&b1, &b2, "encode(decode(encode(o))) == encode(o)");
    }
    msgpack_sbuffer_destroy(&b1);
    msgpack_sbuffer_destroy(&b2);
    cs_arena_free(&a);
    return 0;
}
