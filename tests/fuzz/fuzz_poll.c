/* fuzz_poll.c — a poll reply as cell-agent reads it (agent/loop.c): the
 * reply message through the agent's own call_reply (envelope, error reply,
 * type and request id) and apply_poll (the default, compact and short
 * entries, each task's job and options) on a machine that already runs
 * two tasks, so that short entries and known tasks take their paths too.
 *
 * Those functions are static to loop.c: the target includes the file, so
 * that the bytes go through the very code the agent runs, and links no
 * other copy of it (the archive's loop.o is never pulled in). Tasks are
 * "started" by a backend that only records them: nothing runs. */
#include "agent/loop.c"

#include "tests/fuzz/fuzz.h"

/* The poll request the harness's machine has outstanding: a reply must
 * carry this id (seeds use it). */
#define POLL_REQ 1

static void be_start(void *ctx, ag_task *t, const ag_assign *a, int64_t now)
{
    (void)ctx;
    (void)now;
    t->started = a->bad == NULL;
    t->phase = a->bad == NULL ? AG_RUNNING : AG_ENDED;
    if (a->bad != NULL)
        snprintf(t->reason, sizeof t->reason, "%s", a->bad);
}

static void be_refresh(void *ctx, ag_task *t, int64_t now)
{
    (void)ctx;
    (void)t;
    (void)now;
}

static bool be_signal(void *ctx, ag_task *t, int sig)
{
    (void)ctx;
    (void)t;
    (void)sig;
    return true;
}

static void be_forget(void *ctx, ag_task *t)
{
    (void)ctx;
    (void)t;
}

/* The socket and clock machines are made on: one per process, as in
 * cell-agent (libFuzzer leaves them no place but file scope). */
static nng_socket sock;
static cs_clock *clock_;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    cs_error err = {0};
    if (nng_req0_open(&sock) != 0 || cs_clock_new(&clock_, &err) != CS_OK) {
        fprintf(stderr, "fuzz_poll: cannot make a socket and a clock: %s\n", err.msg);
        abort();
    }
    return 0;
}

static void adopt(ag_machine *m, cs_id id, uint32_t attempt, const char *job)
{
    ag_task t = {0};
    t.id = id;
    t.attempt = attempt;
    t.index = cs_task_index(id);
    t.phase = AG_RUNNING;
    t.started = true;
    t.running_acked = true;
    snprintf(t.job, sizeof t.job, "%s", job);
    cs_error err = {0};
    if (ag_machine_adopt(m, &t, &err) != CS_OK)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ag_config cfg;
    ag_config_default(&cfg);
    cfg.name = "m1";
    cfg.quiet = true;
    ag_backend be = {NULL, be_start, be_refresh, be_signal, be_forget};
    ag_machine *m;
    cs_error err = {0};
    nng_msg *msg;
    if (ag_machine_new(sock, clock_, &cfg, &be, &m, &err) != CS_OK)
        abort();
    /* fz_cell's tasks: batch/0 and web/1, both placed here. */
    adopt(m, cs_task_id(1, 0), 1, "batch");
    adopt(m, cs_task_id(2, 1), 1, "web");
    if (nng_msg_alloc(&msg, size) != 0)
        abort();
    if (size > 0)
        memcpy(nng_msg_body(msg), data, size);
    pthread_mutex_lock(&m->mu);
    m->registered = true;
    m->poll.type = CS_MSG_POLL;
    m->poll.req = POLL_REQ;
    nng_aio_set_msg(m->poll.aio, msg);
    cs_msg r;
    if (call_reply(&m->poll, &r, &err) == CS_OK)
        (void)apply_poll(m, &r, &err);
    call_release(&m->poll);
    pthread_mutex_unlock(&m->mu);
    ag_machine_free(m);
    return 0;
}
