/* test_bounds.c — integration: cellstated's memory stays bounded under
 * hostile load (issue 17 §3, docs/security.md): the bytes of requests in
 * flight across all connections, and what one request may ask for. A real
 * cellstated on 127.0.0.1, driven through the client and raw REQ sockets. */
#include <criterion/criterion.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdlib.h>
#include <string.h>

#include "proto/client.h"
#include "tests/support.h"

typedef struct body {
    msgpack_sbuffer b;
    msgpack_packer pk;
} body;

static msgpack_packer *body_new(body *x)
{
    msgpack_sbuffer_init(&x->b);
    msgpack_packer_init(&x->pk, &x->b, msgpack_sbuffer_write);
    return &x->pk;
}

static uint64_t reply_u64(const msgpack_object *o, const char *key)
{
    uint64_t v = 0;
    cs_error err = {0};
    cr_assert_eq(cs_obj_u64(o, key, true, UINT64_MAX, &v, &err), CS_OK, "%s", err.msg);
    return v;
}

static cs_id do_register(ts_daemon *d, const char *name)
{
    body x;
    msgpack_packer *pk = body_new(&x);
    msgpack_pack_map(pk, 4);
    cs_pack_kv_str(pk, "name", name);
    cs_res cap = {4000, 4096, 10000};
    cs_pack_kv_res(pk, "capacity", &cap);
    cs_pack_kv_u64(pk, "port_lo", 31000);
    cs_pack_kv_u64(pk, "port_hi", 31099);
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_client_callb(d->c, CS_MSG_MACHINE_REGISTER, &x.b, &r, &err), CS_OK, "%s",
                 err.msg);
    msgpack_sbuffer_destroy(&x.b);
    return reply_u64(&r.body, "id");
}

/* The "server" map of a stats reply: counter `key`. */
static uint64_t server_counter(ts_daemon *d, const char *key)
{
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_client_call(d->c, CS_MSG_STATS, "\x80", 1, &r, &err), CS_OK, "%s", err.msg);
    return reply_u64(cs_obj_get(&r.body, "server"), key);
}

static void wait_parked(ts_daemon *d, uint64_t n)
{
    for (int i = 0; i < 500 && server_counter(d, "parked_polls") != n; i++)
        ts_sleep_ms(20);
    cr_assert_eq(server_counter(d, "parked_polls"), n, "%llu polls parked",
                 (unsigned long long)n);
}

/* A poll of machine `m` since `since` that waits up to a minute, padded
 * with an unknown field (the decoder ignores it) to about `pad` bytes:
 * a large request that the server holds while it is parked. */
static void pack_big_poll(msgpack_sbuffer *b, uint64_t req, cs_id m, uint64_t since, size_t pad)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, msgpack_sbuffer_write);
    cr_assert_eq(cs_msg_begin(&pk, CS_MSG_POLL, req), CS_OK);
    msgpack_pack_map(&pk, 4);
    cs_pack_kv_u64(&pk, "machine", m);
    cs_pack_kv_u64(&pk, "since", since);
    cs_pack_kv_u64(&pk, "wait_ms", 60000);
    cs_pack_str(&pk, "pad");
    char *x = malloc(pad);
    cr_assert(x != NULL);
    memset(x, 'x', pad);
    msgpack_pack_str(&pk, pad);
    msgpack_pack_str_body(&pk, x, pad);
    free(x);
}

/* Receive the reply on `s` (within 20 s) and decode it into `out`, its
 * objects in `zone`; the message is held in *hold (the caller frees it). */
static void recv_reply(nng_socket s, msgpack_zone *zone, cs_msg *out, nng_msg **hold)
{
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 20000);
    cr_assert_eq(nng_recvmsg(s, hold, 0), 0, "no reply");
    cs_error err = {0};
    cr_assert_eq(cs_msg_decode(nng_msg_body(*hold), nng_msg_len(*hold), zone, out, &err), CS_OK,
                 "%s", err.msg);
}

/* Four polls of 20,000 bytes each under a bound of 65,536 bytes in flight:
 * three are held (parked), the fourth is refused at once with EUNAVAIL
 * naming the bound; small requests are still served meanwhile, and once the
 * parked polls are answered the bytes in flight are given back. */
Test(bounds, requests_past_max_inflight_bytes_are_refused_and_the_bytes_given_back,
     .timeout = 120)
{
    ts_daemon d;
    const char *extra[] = {"--max-msg", "32768", "--max-inflight-bytes", "65536", NULL};
    ts_daemon_setupv(&d, extra);
    cs_id m = do_register(&d, "m1");
    cs_msg r;
    cs_error err = {0};
    uint64_t v;
    {
        body x;
        msgpack_packer *pk = body_new(&x);
        msgpack_pack_map(pk, 2);
        cs_pack_kv_u64(pk, "machine", m);
        cs_pack_kv_u64(pk, "since", 0);
        cr_assert_eq(cs_client_callb(d.c, CS_MSG_POLL, &x.b, &r, &err), CS_OK, "%s", err.msg);
        v = reply_u64(&r.body, "version");
        msgpack_sbuffer_destroy(&x.b);
    }
    enum { NPOLL = 4, PAD = 20000 };
    nng_socket socks[NPOLL];
    size_t sent = 0;
    for (int i = 0; i < NPOLL; i++) {
        cr_assert_eq(nng_req0_open(&socks[i]), 0);
        cr_assert_eq(nng_dial(socks[i], d.url, NULL, 0), 0);
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        pack_big_poll(&b, 100 + (uint64_t)i, m, v, PAD);
        cr_assert_eq(nng_send(socks[i], b.data, b.size, 0), 0);
        if (i < 3) {
            sent += b.size;
            wait_parked(&d, (uint64_t)i + 1);
        } else {
            /* The fourth would take the total past the bound: refused now,
             * not queued behind the parked ones. */
            msgpack_zone zone;
            msgpack_zone_init(&zone, 1024);
            cs_msg e;
            nng_msg *hold;
            recv_reply(socks[i], &zone, &e, &hold);
            cr_assert_eq(e.type, CS_MSG_ERROR);
            cr_assert_eq(e.req, 103, "the refusal answers the request's own id");
            cs_error_reply er;
            cr_assert_eq(cs_error_reply_decode(&e.body, &er, NULL, &err), CS_OK, "%s", err.msg);
            cr_assert_eq(er.code, CS_EUNAVAIL);
            char *msg = strndup(er.message, er.message_len);
            cr_assert(strstr(msg, "busy") != NULL && strstr(msg, "--max-inflight-bytes 65536"),
                      "refusal '%s' names neither busy nor the bound", msg);
            free(msg);
            nng_msg_free(hold);
            msgpack_zone_destroy(&zone);
        }
        msgpack_sbuffer_destroy(&b);
    }
    /* Still serving small requests, and the three parked polls are counted
     * (stats counts its own few bytes too). */
    uint64_t held = server_counter(&d, "inflight_bytes");
    cr_assert_geq(held, sent, "%llu bytes in flight, %zu sent", (unsigned long long)held, sent);
    cr_assert_lt(held, sent + 64);
    cr_assert_eq(server_counter(&d, "parked_polls"), 3);

    /* A cordon changes the machine: its parked polls are answered. */
    body x;
    msgpack_packer *pk = body_new(&x);
    msgpack_pack_map(pk, 2);
    cs_pack_kv_u64(pk, "machine", m);
    cs_pack_kv_str(pk, "admin", "cordoned");
    cr_assert_eq(cs_client_callb(d.c, CS_MSG_MACHINE_ADMIN, &x.b, &r, &err), CS_OK, "%s",
                 err.msg);
    msgpack_sbuffer_destroy(&x.b);
    for (int i = 0; i < 3; i++) {
        msgpack_zone zone;
        msgpack_zone_init(&zone, 1024);
        cs_msg p;
        nng_msg *hold;
        recv_reply(socks[i], &zone, &p, &hold);
        cr_assert_eq(p.type, CS_MSG_POLL, "parked poll %d answered with type %u", i, p.type);
        nng_msg_free(hold);
        msgpack_zone_destroy(&zone);
    }
    /* Given back: only the stats request itself is in flight now (a reply is
     * sent after its request is released, so none is left over). */
    uint64_t left = server_counter(&d, "inflight_bytes");
    cr_assert_lt(left, 64, "%llu bytes still counted in flight", (unsigned long long)left);
    cr_assert_gt(left, 0, "the stats request is itself in flight while it is answered");
    /* And a request of the size that was refused is served now. */
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    pack_big_poll(&b, 200, m, 0, PAD);
    cr_assert_eq(nng_send(socks[3], b.data, b.size, 0), 0);
    msgpack_sbuffer_destroy(&b);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    cs_msg p;
    nng_msg *hold;
    recv_reply(socks[3], &zone, &p, &hold);
    cr_assert_eq(p.type, CS_MSG_POLL, "the retried request was answered with type %u", p.type);
    nng_msg_free(hold);
    msgpack_zone_destroy(&zone);
    for (int i = 0; i < NPOLL; i++)
        nng_close(socks[i]);
    ts_daemon_teardown(&d);
}

Test(bounds, max_inflight_bytes_below_max_msg_is_refused_at_start)
{
    char bin[256], out[1024];
    ts_bin("cellstated", bin, sizeof bin);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s --max-msg 65536 --max-inflight-bytes 4096", bin);
    int st = ts_run(cmd, out, sizeof out);
    cr_assert_neq(st, 0, "started with a bound below --max-msg");
    cr_assert(strstr(out, "--max-inflight-bytes 4096 is below --max-msg 65536") != NULL, "%s",
              out);
}
