/* fuzz_txn.c — a scheduler's transaction in its logged form
 * (cs_txn_decode, txn/txn.h), as replay reads it from the commit log. A
 * transaction it accepts keeps its canonical encoding: encoding it,
 * decoding that and encoding again gives the same bytes. */
#include "tests/fuzz/fuzz.h"
#include "txn/txn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cs_txn t, again;
    cs_txn_init(&t, 0, 0, 0, 0, 0);
    cs_txn_init(&again, 0, 0, 0, 0, 0);
    cs_error err = {0};
    msgpack_sbuffer b1, b2;
    msgpack_sbuffer_init(&b1);
    msgpack_sbuffer_init(&b2);
    if (cs_txn_decode(data, size, &t, &err) == CS_OK) {
        fz_require(cs_txn_encode(&t, &b1) == CS_OK, "a decoded transaction encodes");
        fz_require(cs_txn_decode(b1.data, b1.size, &again, &err) == CS_OK,
                   "an encoded transaction decodes");
        fz_require(cs_txn_encode(&again, &b2) == CS_OK, "a decoded transaction encodes again");
        fz_require_same(&b1, &b2, "encode(decode(encode(t))) == encode(t)");
    }
    msgpack_sbuffer_destroy(&b1);
    msgpack_sbuffer_destroy(&b2);
    cs_txn_free(&t);
    cs_txn_free(&again);
    return 0;
}
