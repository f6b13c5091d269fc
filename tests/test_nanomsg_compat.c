/* test_nanomsg_compat.c — wire compatibility: a real cellstated process (nng
 * REP) answers clients built on the classic nanomsg library (libnanomsg), which
 * speaks the same SP protocol. Requests are packed here with msgpack-c by hand,
 * so that nothing of cellsched's client takes part on the sending side; replies
 * are read with cs_msg_decode. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/client.h"
#include "proto/proto.h"
#include "tests/support.h"

#define NANOCAT "/usr/bin/nanocat"

/* One daemon per test (Criterion runs each test in its own process); the
 * fini hook stops it and removes its directory even when an assertion
 * ends the test early. */
static ts_daemon D;
static int S = -1;


/* ---- the classic nanomsg client -------------------------------------------------- */

/* libnng exports nanomsg's API too (nn_socket, nn_send, ... its compatibility
 * layer), and the link line names -lnng before -lnanomsg, so a plain call to
 * nn_socket() here resolves to nng, and so do libnanomsg's own internal calls
 * through its PLT (its nn_send and nn_recv call nn_sendmsg and nn_recvmsg).
 * To be sure that the classic library does the talking, its entry points are
 * looked up in libnanomsg itself with dlsym on its handle, nn_sendmsg and
 * nn_recvmsg are called directly, each address is checked to lie in
 * libnanomsg (dladdr), and libnanomsg's own statistics must count every
 * message. */
typedef struct nanomsg {
    void *h;
    int (*socket)(int, int);
    int (*setsockopt)(int, int, int, const void *, size_t);
    int (*connect)(int, const char *);
    int (*sendmsg)(int, const struct nn_msghdr *, int);
    int (*recvmsg)(int, struct nn_msghdr *, int);
    int (*freemsg)(void *);
    int (*close)(int);
    int (*errno_)(void);
    const char *(*strerror)(int);
    uint64_t (*get_statistic)(int, int);
} nanomsg;

static nanomsg NN;

#define NN_ERR NN.strerror(NN.errno_())

static void *nn_sym(const char *name)
{
    dlerror();
    void *p = dlsym(NN.h, name);
    cr_assert_not_null(p, "dlsym %s: %s", name, dlerror());
    Dl_info info;
    cr_assert(dladdr(p, &info) != 0 && info.dli_fname != NULL, "dladdr %s", name);
    cr_assert(strstr(info.dli_fname, "libnanomsg") != NULL, "%s resolves to %s, not libnanomsg",
              name, info.dli_fname);
    return p;
}

static void nn_load(void)
{
    if (NN.h)
        return;
    NN.h = dlopen("libnanomsg.so.5", RTLD_NOW | RTLD_LOCAL);
    if (!NN.h)
        NN.h = dlopen("libnanomsg.so", RTLD_NOW | RTLD_LOCAL);
    cr_assert_not_null(NN.h, "dlopen libnanomsg: %s", dlerror());
    /* Object to function pointer: through memcpy, which -Wpedantic accepts. */
#define NN_BIND(field, name)                 \
    do {                                     \
        void *p_ = nn_sym(name);             \
        memcpy(&NN.field, &p_, sizeof p_);   \
    } while (0)
    NN_BIND(socket, "nn_socket");
    NN_BIND(setsockopt, "nn_setsockopt");
    NN_BIND(connect, "nn_connect");
    NN_BIND(sendmsg, "nn_sendmsg");
    NN_BIND(recvmsg, "nn_recvmsg");
    NN_BIND(freemsg, "nn_freemsg");
    NN_BIND(close, "nn_close");
    NN_BIND(errno_, "nn_errno");
    NN_BIND(strerror, "nn_strerror");
    NN_BIND(get_statistic, "nn_get_statistic");
#undef NN_BIND
}

static int nn_req_open(const char *url)
{
    nn_load();
    int s = NN.socket(AF_SP, NN_REQ);
    cr_assert(s >= 0, "nn_socket: %s", NN_ERR);
    int ms = 5000;
    cr_assert_eq(NN.setsockopt(s, NN_SOL_SOCKET, NN_RCVTIMEO, &ms, sizeof ms), 0,
                 "NN_RCVTIMEO: %s", NN_ERR);
    cr_assert_eq(NN.setsockopt(s, NN_SOL_SOCKET, NN_SNDTIMEO, &ms, sizeof ms), 0,
                 "NN_SNDTIMEO: %s", NN_ERR);
    cr_assert(NN.connect(s, url) >= 0, "nn_connect %s: %s", url, NN_ERR);
    return s;
}

/* The whole envelope [1, type, req, {}] packed by hand. */
static void pack_empty(msgpack_sbuffer *b, uint32_t type, uint64_t req)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(b);
    msgpack_packer_init(&pk, b, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint32(&pk, 1);
    msgpack_pack_uint32(&pk, type);
    msgpack_pack_uint64(&pk, req);
    msgpack_pack_map(&pk, 0);
}

/* Send raw bytes, receive one reply, decode it into r. The reply's bytes are
 * copied into the zone, since the decoded strings point into them. */
static void nn_call_raw(int s, const void *data, size_t len, msgpack_zone *zone, cs_msg *r)
{
    uint64_t sent0 = NN.get_statistic(s, NN_STAT_MESSAGES_SENT);
    uint64_t recv0 = NN.get_statistic(s, NN_STAT_MESSAGES_RECEIVED);

    struct nn_iovec iov = {(void *)(uintptr_t)data, len};
    struct nn_msghdr hdr = {&iov, 1, NULL, 0};
    int n = NN.sendmsg(s, &hdr, 0);
    cr_assert_eq(n, (int)len, "nn_sendmsg: %d (%s)", n, NN_ERR);

    void *buf = NULL;
    struct nn_iovec riov = {&buf, NN_MSG};
    struct nn_msghdr rhdr = {&riov, 1, NULL, 0};
    n = NN.recvmsg(s, &rhdr, 0);
    cr_assert(n >= 0, "nn_recvmsg: %s", NN_ERR);
    void *copy = msgpack_zone_malloc(zone, n > 0 ? (size_t)n : 1);
    cr_assert_not_null(copy);
    memcpy(copy, buf, (size_t)n);
    NN.freemsg(buf);

    /* libnanomsg's own counters saw the exchange: it, not nng, carried it. */
    cr_assert_eq(NN.get_statistic(s, NN_STAT_MESSAGES_SENT), sent0 + 1);
    cr_assert_eq(NN.get_statistic(s, NN_STAT_MESSAGES_RECEIVED), recv0 + 1);

    cs_error err = {0};
    int rc = cs_msg_decode(copy, (size_t)n, zone, r, &err);
    cr_assert_eq(rc, CS_OK, "reply does not decode: %s", err.msg);
}

static void nn_call(int s, const msgpack_sbuffer *b, msgpack_zone *zone, cs_msg *r)
{
    nn_call_raw(s, b->data, b->size, zone, r);
}

static uint64_t body_u64(const cs_msg *r, const char *key)
{
    uint64_t v = 0;
    cs_error err = {0};
    cr_assert_eq(cs_obj_u64(&r->body, key, true, UINT64_MAX, &v, &err), CS_OK, "%s", err.msg);
    return v;
}

static const char *body_str(const cs_msg *r, const char *key, cs_arena *a)
{
    const char *v = NULL;
    cs_error err = {0};
    cr_assert_eq(cs_obj_str(&r->body, key, true, 4096, a, &v, &err), CS_OK, "%s", err.msg);
    return v;
}

static void assert_stats(int s, uint64_t req, uint64_t machines)
{
    msgpack_sbuffer b;
    pack_empty(&b, CS_MSG_STATS, req);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    cs_msg r;
    nn_call(s, &b, &zone, &r);
    if (r.type == CS_MSG_ERROR) {
        cs_arena a;
        cs_arena_init(&a);
        cr_assert_fail("stats failed: %s", body_str(&r, "message", &a));
    }
    cr_assert_eq(r.type, CS_MSG_STATS);
    cr_assert_eq(r.req, req);
    cr_assert_eq(r.body.type, MSGPACK_OBJECT_MAP);
    cr_assert_not_null(cs_obj_get(&r.body, "version"), "stats body has \"version\"");
    if (machines != UINT64_MAX)
        cr_assert_eq(body_u64(&r, "machines"), machines);
    msgpack_zone_destroy(&zone);
    msgpack_sbuffer_destroy(&b);
}

static void fini(void)
{
    if (S >= 0)
        NN.close(S);
    S = -1;
    ts_daemon_teardown(&D);
}

/* ---- tests ----------------------------------------------------------------------- */

Test(nanomsg_compat, stats, .timeout = 60, .fini = fini)
{
    ts_daemon *d = &D;
    ts_daemon_setup(d, NULL, NULL);
    int s = S = nn_req_open(d->url);

    /* The envelope on the wire: fixarray(4) 1 15 7 fixmap(0). */
    msgpack_sbuffer b;
    pack_empty(&b, CS_MSG_STATS, 7);
    const unsigned char want[] = {0x94, 0x01, 0x0f, 0x07, 0x80};
    cr_assert_eq(b.size, sizeof want);
    cr_assert_eq(memcmp(b.data, want, sizeof want), 0);

    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    cs_msg r;
    nn_call(s, &b, &zone, &r);
    cr_assert_eq(r.type, CS_MSG_STATS, "reply type %u", r.type);
    cr_assert_eq(r.req, 7);
    cr_assert_eq(r.body.type, MSGPACK_OBJECT_MAP);
    cr_assert_not_null(cs_obj_get(&r.body, "version"));
    msgpack_zone_destroy(&zone);
    msgpack_sbuffer_destroy(&b);

    /* A second request on the same socket, another id. */
    assert_stats(s, 123456789012ull, 0);

    S = -1;
    cr_assert_eq(NN.close(s), 0);
    cr_assert_eq(ts_daemon_stop(d), 0, "cellstated exits 0 on SIGTERM");
    ts_daemon_teardown(d);
}

Test(nanomsg_compat, register_then_stats, .timeout = 60, .fini = fini)
{
    ts_daemon *d = &D;
    ts_daemon_setup(d, NULL, NULL);
    int s = S = nn_req_open(d->url);

    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint32(&pk, 1);
    msgpack_pack_uint32(&pk, CS_MSG_MACHINE_REGISTER);
    msgpack_pack_uint64(&pk, 42);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "name", 4);
    msgpack_pack_str_with_body(&pk, "nn1", 3);
    msgpack_pack_str_with_body(&pk, "capacity", 8);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "cpu", 3);
    msgpack_pack_int64(&pk, 4000);
    msgpack_pack_str_with_body(&pk, "mem", 3);
    msgpack_pack_int64(&pk, 8192);
    msgpack_pack_str_with_body(&pk, "disk", 4);
    msgpack_pack_int64(&pk, 100000);

    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    cs_msg r;
    nn_call(s, &b, &zone, &r);
    cs_arena a;
    cs_arena_init(&a);
    if (r.type == CS_MSG_ERROR)
        cr_assert_fail("machine.register failed: %s", body_str(&r, "message", &a));
    cr_assert_eq(r.type, CS_MSG_MACHINE_REGISTER);
    cr_assert_eq(r.req, 42);
    cr_assert(body_u64(&r, "id") != 0, "a machine id");
    cs_arena_free(&a);
    msgpack_zone_destroy(&zone);
    msgpack_sbuffer_destroy(&b);

    assert_stats(s, 43, 1);

    S = -1;
    cr_assert_eq(NN.close(s), 0);
    cr_assert_eq(ts_daemon_stop(d), 0, "cellstated exits 0 on SIGTERM");
    ts_daemon_teardown(d);
}

Test(nanomsg_compat, bad_msgpack_then_valid, .timeout = 60, .fini = fini)
{
    ts_daemon *d = &D;
    ts_daemon_setup(d, NULL, NULL);
    int s = S = nn_req_open(d->url);

    /* 0xc1 is the one byte msgpack never uses. */
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    cs_msg r;
    nn_call_raw(s, "\xc1\x01\x02", 3, &zone, &r);
    cr_assert_eq(r.type, CS_MSG_ERROR, "reply type %u", r.type);
    cs_arena a;
    cs_arena_init(&a);
    const char *msg = body_str(&r, "message", &a);
    cr_assert(strstr(msg, "not valid msgpack") != NULL, "message: %s", msg);
    cr_assert_not_null(cs_obj_get(&r.body, "code"));
    cr_assert_not_null(cs_obj_get(&r.body, "error"));
    cs_arena_free(&a);
    msgpack_zone_destroy(&zone);

    /* The same socket still works. */
    assert_stats(s, 8, 0);

    S = -1;
    cr_assert_eq(NN.close(s), 0);
    cr_assert_eq(ts_daemon_stop(d), 0, "cellstated exits 0 on SIGTERM");
    ts_daemon_teardown(d);
}

/* nanocat, the nanomsg project's own command-line client, as a second and
 * independent classic client: the request from a file, the raw reply on
 * stdout. */
Test(nanomsg_compat, nanocat, .timeout = 60, .fini = fini)
{
    if (access(NANOCAT, X_OK) != 0) {
        cr_skip_test(NANOCAT " is not installed");
        return;
    }
    ts_daemon *d = &D;
    ts_daemon_setup(d, NULL, NULL);

    char reqf[320], outf[320], errf[320];
    snprintf(reqf, sizeof reqf, "%.255s/req.bin", d->dir);
    snprintf(outf, sizeof outf, "%.255s/nanocat.out", d->dir);
    snprintf(errf, sizeof errf, "%.255s/nanocat.err", d->dir);
    msgpack_sbuffer b;
    pack_empty(&b, CS_MSG_STATS, 99);
    FILE *f = fopen(reqf, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(b.data, 1, b.size, f), b.size);
    cr_assert_eq(fclose(f), 0);
    msgpack_sbuffer_destroy(&b);

    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int out = open(outf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int er = open(errf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (out < 0 || er < 0)
            _exit(126);
        dup2(out, 1);
        dup2(er, 2);
        close(out);
        close(er);
        char *argv[] = {(char *)NANOCAT, (char *)"--req",  (char *)"--connect", d->url,
                        (char *)"--file", reqf,           (char *)"--raw",
                        (char *)"--recv-timeout", (char *)"5", NULL};
        execv(argv[0], argv);
        _exit(127);
    }
    int status = ts_stop(pid, 0, 15000);
    char errtext[512] = "";
    f = fopen(errf, "r");
    if (f) {
        size_t n = fread(errtext, 1, sizeof errtext - 1, f);
        errtext[n] = 0;
        fclose(f);
    }
    cr_assert(status != -1, "nanocat did not exit in time (stderr: %s)", errtext);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "nanocat status %d (stderr: %s)",
              status, errtext);

    unsigned char reply[65536];
    f = fopen(outf, "rb");
    cr_assert_not_null(f);
    size_t n = fread(reply, 1, sizeof reply, f);
    fclose(f);
    cr_assert(n > 0, "nanocat printed no reply (stderr: %s)", errtext);

    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_msg_decode(reply, n, &zone, &r, &err), CS_OK, "nanocat's reply (%zu bytes): %s",
                 n, err.msg);
    cr_assert_eq(r.type, CS_MSG_STATS, "reply type %u", r.type);
    cr_assert_eq(r.req, 99);
    cr_assert_not_null(cs_obj_get(&r.body, "version"));
    msgpack_zone_destroy(&zone);

    cr_assert_eq(ts_daemon_stop(d), 0, "cellstated exits 0 on SIGTERM");
    ts_daemon_teardown(d);
}
