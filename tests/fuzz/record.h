/* record.h — the body of the record targets (fuzz_machine, fuzz_job,
 * fuzz_task): one decoder of cellstate/record.h, named by FZ_RECORD before
 * the include, run as the store reads records back (from LMDB, a snapshot,
 * a logged command). A record it accepts must also survive the canonical
 * encoding: encoding it, decoding that and encoding again gives the same
 * bytes (the byte-for-byte replay property rests on it). */
#include "cellstate/arena.h"
#include "cellstate/record.h"
#include "tests/fuzz/fuzz.h"

#define FZ_CAT(a, b, c) a##b##c
#define FZ_NAME(a, b, c) FZ_CAT(a, b, c)
#define FZ_TYPE FZ_NAME(cs_, FZ_RECORD, )
#define FZ_DECODE FZ_NAME(cs_, FZ_RECORD, _decode)
#define FZ_ENCODE FZ_NAME(cs_, FZ_RECORD, _encode)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_error err = {0};
    FZ_TYPE r, again;
    msgpack_sbuffer b1, b2;
    msgpack_sbuffer_init(&b1);
    msgpack_sbuffer_init(&b2);
    if (FZ_DECODE(data, size, &a, &r, &err) == CS_OK) {
        fz_require(FZ_ENCODE(&r, &b1) == CS_OK, "a decoded record encodes");
        fz_require(FZ_DECODE(b1.data, b1.size, &a, &again, &err) == CS_OK,
                   "an encoded record decodes");
        fz_require(FZ_ENCODE(&again, &b2) == CS_OK, "a decoded record encodes again");
        fz_require_same(&b1, &b2, "encode(decode(encode(r))) == encode(r)");
    }
    msgpack_sbuffer_destroy(&b1);
    msgpack_sbuffer_destroy(&b2);
    cs_arena_free(&a);
    return 0;
}
