/* fuzz_server.c — request bodies as cellstated reads them: every message
 * type, through a running server in this process (server/server.h), over
 * nng's inproc transport. The first byte of the input picks the message
 * type (modulo CS_MSG_COUNT), the rest is the body; the harness wraps them
 * in a well-formed envelope ([version, type, request id, body]) so that the
 * bytes reach the handlers (fuzz_msg fuzzes the envelope itself). Each
 * request must be answered — a reply or an error reply — within
 * REPLY_TIMEOUT_MS: a request that hangs the server is a bug too.
 *
 * The server and its store live across inputs (starting one costs tens of
 * milliseconds) and start afresh, from fz_cell's cell, every FRESH_EVERY
 * inputs, so that the cell stays small and close to fz_cell; a crash may
 * then depend on the inputs just before, which the stack in the report
 * shows. Polls wait at most POLL_WAIT_MS. libFuzzer's model leaves this
 * state no other place than file scope. */
#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <string.h>

#include "cellstate/mpcheck.h"
#include "proto/proto.h"
#include "server/server.h"
#include "tests/fuzz/fuzz.h"

#define FRESH_EVERY 256
#define POLL_WAIT_MS 5
#define REPLY_TIMEOUT_MS 5000
#define URL "inproc://cellsched-fuzz"

static char dir[256];
static cs_server *server;
static nng_socket client;
static bool client_open;
static unsigned inputs;

static void stop_server(void)
{
    if (client_open) {
        nng_close(client);
        client_open = false;
    }
    if (server != NULL) {
        cs_server_stop(server);
        server = NULL;
        fz_rmtree(dir);
    }
}

static void fail(const char *what, const char *why) __attribute__((noreturn));
static void fail(const char *what, const char *why)
{
    fprintf(stderr, "fuzz_server: %s: %s\n", what, why);
    abort();
}

static void fresh_server(void)
{
    stop_server();
    cs_error err = {0};
    cs_store *s;
    cs_store_opts so = {.map_size = 256u << 20, .nosync = true};
    if (fz_mkdtemp(dir, sizeof dir) != 0 || cs_store_open(dir, &so, &s, &err) != CS_OK)
        fail("making a store", err.msg);
    int rc = fz_cell(s, &err);
    cs_store_close(s);
    if (rc != CS_OK)
        fail("making the cell", err.msg);
    cs_server_opts o;
    cs_server_opts_default(&o);
    o.data_dir = dir;
    o.listen_url = URL;
    o.workers = 8;
    o.poll_max_wait_ms = POLL_WAIT_MS;
    o.nosync = true;
    o.job_gc_ms = 0;
    o.log_retain_ms = 0;
    if (cs_server_start(&o, &server, &err) != CS_OK)
        fail("starting cellstated", err.msg);
    int rv;
    if ((rv = nng_req0_open(&client)) != 0 || (rv = nng_dial(client, URL, NULL, 0)) != 0)
        fail("connecting", nng_strerror(rv));
    client_open = true;
    nng_socket_set_ms(client, NNG_OPT_RECVTIMEO, REPLY_TIMEOUT_MS);
    nng_socket_set_ms(client, NNG_OPT_SENDTIMEO, REPLY_TIMEOUT_MS);
}

/* Whether the body asks for a job of more than FZ_TASKS_MAX tasks (a
 * submit or update's "count", a scale's "count", a surge's "surge"). */
static bool too_big(uint32_t type, const uint8_t *body, size_t len)
{
    const char *key = type == CS_MSG_JOB_SUBMIT || type == CS_MSG_JOB_UPDATE ||
                              type == CS_MSG_JOB_SCALE ? "count"
                      : type == CS_MSG_JOB_SURGE ? "surge"
                                                 : NULL;
    if (key == NULL)
        return false;
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 1024))
        return true;
    msgpack_object o;
    const msgpack_object *v;
    bool big = cs_mp_unpack(body, len, &zone, &o, CS_EPROTO, "body", NULL) == CS_OK &&
               (v = cs_obj_get(&o, key)) != NULL && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
               v->via.u64 > FZ_TASKS_MAX;
    msgpack_zone_destroy(&zone);
    return big;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    atexit(stop_server);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > CS_DEFAULT_MAX_MSG / 2)
        return -1;
    uint32_t type = data[0] % CS_MSG_COUNT;
    if (too_big(type, data + 1, size - 1))
        return -1;
    if (server == NULL || inputs++ % FRESH_EVERY == 0)
        fresh_server();
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    uint64_t req = inputs;
    if (cs_msg_begin(&pk, type, req) != CS_OK || msgpack_sbuffer_write(&b, (const char *)data + 1,
                                                                       size - 1) != 0)
        fail("building the request", "out of memory");
    int rv = nng_send(client, b.data, b.size, 0);
    msgpack_sbuffer_destroy(&b);
    if (rv != 0)
        fail("sending", nng_strerror(rv));
    char *reply = NULL;
    size_t rlen = 0;
    if ((rv = nng_recv(client, &reply, &rlen, NNG_FLAG_ALLOC)) != 0)
        fail("no reply", nng_strerror(rv));
    /* Every request is answered by a well-formed message of its own id,
     * or by an error reply of id 0 when the message could not be read at
     * all (a body that is not one whole msgpack object). */
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    cs_msg m;
    cs_error err = {0};
    fz_require(cs_msg_decode(reply, rlen, &zone, &m, &err) == CS_OK, "the reply decodes");
    fz_require(m.req == req || (m.type == CS_MSG_ERROR && m.req == 0),
               "the reply carries the request's id");
    msgpack_zone_destroy(&zone);
    nng_free(reply, rlen);
    return 0;
}
