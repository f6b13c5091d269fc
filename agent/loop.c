/* loop.c — one machine's register/heartbeat/poll/report state machine (see
 * loop.h).
 *
 * Concurrency: the two aio callbacks of a machine may run at the same time
 * on nng's threads; `mu` guards everything below it in struct ag_machine.
 * nng calls that can complete an aio (send, recv, sleep, cancel) are made
 * after the lock is released, so that no callback ever waits for a lock
 * its own submitter holds.
 */
#include "agent/loop.h"

#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/taskidx.h"
#include "proto/agentmsg.h"
#include "proto/proto.h"

/* The pause after a failure to build a request, and the longest retry
 * backoff. */
#define AG_MAX_SLEEP_MS 1000
/* How long "running" reports of new tasks wait for more to go with them
 * (as long as when the control loop looked every second): a poll reply
 * brings a few tasks at a time, and fewer, fuller report requests keep
 * the server's writer free for commits. Measured at C1M with fsync and one
 * scheduler: 200 ms gave 49,000 placements/s, 1,000 ms 71,000. */
#define AG_REPORT_GATHER_MS 1000
#define AG_MAX_BACKOFF_MS 5000
/* While the server cannot be reached, say so at most this often. */
#define AG_FAIL_LOG_MS 10000

void ag_config_default(ag_config *c)
{
    memset(c, 0, sizeof *c);
    c->heartbeat_ms = 3000;
    c->poll_wait_ms = 25000;
    c->call_timeout_ms = 5000;
    c->tick_ms = 100;
}

/* ---- one request at a time on one REQ context ----------------------------- */

typedef enum call_state { CALL_IDLE, CALL_SLEEP, CALL_SEND, CALL_RECV } call_state;

typedef struct ag_call {
    nng_ctx ctx;
    nng_aio *aio;
    call_state state;
    uint32_t type;
    uint64_t req;
    uint32_t timeout_ms;
    nng_msg *reply; /* the decoded reply points into it */
    msgpack_zone zone;
} ag_call;

/* What a completed aio meant for its call. */
typedef enum call_event { EV_WOKE, EV_SENT, EV_REPLY, EV_FAILED } call_event;

static int call_init(ag_call *c, nng_socket sock, void (*cb)(void *), void *arg, cs_error *err)
{
    int rv;
    if ((rv = nng_ctx_open(&c->ctx, sock)) != 0)
        return cs_errorf(err, CS_EIO, "nng context: %s", nng_strerror(rv));
    if ((rv = nng_aio_alloc(&c->aio, cb, arg)) != 0) {
        nng_ctx_close(c->ctx);
        return cs_errorf(err, CS_ENOMEM, "nng aio: %s", nng_strerror(rv));
    }
    /* A report must not be applied twice because nng resent it while the
     * first was queued: retries are ours, after the call times out. */
    nng_ctx_set_ms(c->ctx, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    msgpack_zone_init(&c->zone, 4096);
    c->state = CALL_IDLE;
    return CS_OK;
}

static void call_fini(ag_call *c)
{
    if (c->aio == NULL)
        return;
    nng_aio_free(c->aio);
    nng_ctx_close(c->ctx);
    if (c->reply)
        nng_msg_free(c->reply);
    msgpack_zone_destroy(&c->zone);
    c->aio = NULL;
}

/* Build the message for `type` with `body` (one packed msgpack object) and
 * note it as the call's request. The caller submits it (call_submit) after
 * releasing its lock. */
static int call_prepare(ag_call *c, uint32_t type, uint64_t req, const msgpack_sbuffer *body,
                        const char *token, uint32_t timeout_ms, nng_msg **out)
{
    msgpack_sbuffer head;
    msgpack_sbuffer_init(&head);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &head, msgpack_sbuffer_write);
    nng_msg *msg = NULL;
    int rc = CS_ENOMEM;
    if ((token != NULL ? cs_msg_begin_auth(&pk, type, req) : cs_msg_begin(&pk, type, req)) !=
            CS_OK ||
        nng_msg_alloc(&msg, 0) != 0)
        goto cleanup;
    if (nng_msg_append(msg, head.data, head.size) != 0 ||
        nng_msg_append(msg, body->data, body->size) != 0)
        goto cleanup;
    if (token != NULL) {
        /* The fifth element, after the body (proto.h). */
        head.size = 0;
        if (cs_pack_str(&pk, token) != CS_OK || nng_msg_append(msg, head.data, head.size) != 0)
            goto cleanup;
    }
    c->type = type;
    c->req = req;
    c->timeout_ms = timeout_ms;
    c->state = CALL_SEND;
    *out = msg;
    msg = NULL;
    rc = CS_OK;
cleanup:
    if (msg)
        nng_msg_free(msg);
    msgpack_sbuffer_destroy(&head);
    return rc;
}

static void call_submit(ag_call *c, nng_msg *msg)
{
    nng_aio_set_msg(c->aio, msg);
    nng_aio_set_timeout(c->aio, (nng_duration)c->timeout_ms);
    nng_ctx_send(c->ctx, c->aio);
}

/* Classify the aio's completion; on EV_FAILED `rv` is nng's error. Frees
 * a message that could not be sent. */
static call_event call_event_of(ag_call *c, int *rv, const char **stage)
{
    *rv = nng_aio_result(c->aio);
    *stage = c->state == CALL_SEND ? "sending" : "waiting for the answer";
    switch (c->state) {
    case CALL_SEND:
        if (*rv != 0) {
            nng_msg_free(nng_aio_get_msg(c->aio));
            nng_aio_set_msg(c->aio, NULL);
            c->state = CALL_IDLE;
            return EV_FAILED;
        }
        return EV_SENT;
    case CALL_RECV:
        c->state = CALL_IDLE;
        return *rv == 0 ? EV_REPLY : EV_FAILED;
    default:
        c->state = CALL_IDLE;
        return EV_WOKE;
    }
}

/* A request that got no answer: CS_EIO naming the stage. With no
 * connection, nng 1.5 queues the send and later resets the context, so the
 * receive fails with NNG_ESTATE rather than NNG_ETIMEDOUT: both mean that
 * nothing answered in time. */
static int call_failure(const ag_call *c, int rv, const char *stage, cs_error *err)
{
    if (rv == NNG_ETIMEDOUT || rv == NNG_ESTATE)
        return cs_errorf(err, CS_EIO, "no answer within %u ms", c->timeout_ms);
    return cs_errorf(err, CS_EIO, "%s: %s", stage, nng_strerror(rv));
}

static void call_recv(ag_call *c)
{
    c->state = CALL_RECV;
    nng_aio_set_timeout(c->aio, (nng_duration)c->timeout_ms);
    nng_ctx_recv(c->ctx, c->aio);
}

/* Give back the memory of the last reply and its decoding. A poll reply is
 * the largest thing a machine holds (every task on it with its job, and
 * the decoded tree, several times the bytes), and a simulator keeps
 * thousands of machines: held from one poll to the next, it was most of
 * the ~340 KB a simulated machine cost at C1M scale. The zone keeps its
 * first chunk (4 KiB). */
static void call_release(ag_call *c)
{
    if (c->reply) {
        nng_msg_free(c->reply);
        c->reply = NULL;
    }
    msgpack_zone_clear(&c->zone);
}

/* Decode the reply just received. An error reply is returned as its code
 * with the server's message; the reply stays valid until the next call. */
static int call_reply(ag_call *c, cs_msg *reply, cs_error *err)
{
    if (c->reply)
        nng_msg_free(c->reply);
    c->reply = nng_aio_get_msg(c->aio);
    nng_aio_set_msg(c->aio, NULL);
    if (c->reply == NULL)
        return cs_errorf(err, CS_EIO, "%s: a receive completed without a message",
                         cs_msg_name(c->type));
    msgpack_zone_clear(&c->zone);
    int rc = cs_msg_decode(nng_msg_body(c->reply), nng_msg_len(c->reply), &c->zone, reply, err);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "reply to %s", cs_msg_name(c->type));
    if (reply->type == CS_MSG_ERROR) {
        cs_error_reply e;
        cs_error_reply_decode(&reply->body, &e, NULL, err);
        return cs_errorf(err, e.code, "%s: server: %.*s", cs_msg_name(c->type),
                         (int)e.message_len, e.message);
    }
    if (reply->type != c->type || reply->req != c->req)
        return cs_errorf(err, CS_EPROTO, "reply to %s is of type %s", cs_msg_name(c->type),
                         cs_msg_name(reply->type));
    return CS_OK;
}

/* ---- the machine ------------------------------------------------------------ */

typedef enum ctl_kind { CTL_NONE, CTL_REGISTER, CTL_HEARTBEAT, CTL_REPORT } ctl_kind;

/* The most reports one task.status carries: every report due at one step
 * of the control loop goes in one request (and one write on the server),
 * which is what keeps a machine that starts many tasks at once cheap. */
#define AG_BATCH_MAX 64

typedef struct ag_inflight {
    cs_id task;
    uint32_t attempt;
    ag_health_state health;
} ag_inflight;

struct ag_machine {
    ag_config cfg;
    char name[CS_NAME_MAX + 1];
    ag_backend be;
    ag_call ctl, poll;
    cs_clock *clock;
    cs_sleep ctl_sleep, poll_sleep; /* the loops' pauses (clock.h: not nng_sleep_aio) */
    pthread_mutex_t mu;
    /* guarded by mu */
    bool stopping;
    bool registered;
    cs_id id;
    uint64_t since;         /* version of the last poll reply; 0: ask for every entry in full */
    int64_t hb_due;         /* next heartbeat */
    /* When to look at the tasks again (tick): a look walks every task, and
     * a simulated machine at C1M scale holds a hundred on a process's
     * thousands of machines, so it is not done on every wake-up but when
     * something changed (`dirty`: a poll reply, a report's answer) or
     * something falls due (`look_at`: a backend's wake_at, a kill, a
     * report's retry). */
    bool dirty;
    int64_t look_at;
    uint32_t reports_due;   /* reports the last look found due */
    int64_t reg_retry_at;   /* next registration attempt */
    uint32_t reg_backoff_ms, poll_backoff_ms;
    uint64_t next_req;
    ctl_kind ctl_doing;
    /* The reports in flight, one task.status: each task and attempt, and
     * the health it carries (UNKNOWN: none). */
    ag_inflight ctl_batch[AG_BATCH_MAX];
    uint32_t ctl_n;
    bool ctl_batched;       /* sent in the batch form (protocol.md §5.10) */
    bool batch_refused;     /* the server predates the batch form: one report a request */
    bool health_refused;    /* the server refused a health report: said once */
    bool failing;           /* the last request could not reach the server */
    int64_t fail_logged_at;
    ag_task *tasks;
    ag_taskidx idx;         /* the tasks by (id, attempt) */
    ag_counts counts;
    msgpack_sbuffer body;   /* request bodies, reused */
    cs_arena parena;        /* poll reply decoding, reset per reply */
};

static void mlog(const ag_machine *m, bool warn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void mlog(const ag_machine *m, bool warn, const char *fmt, ...)
{
    if (m->cfg.quiet && !warn)
        return;
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "cell-agent: %s: %s\n", m->name, line);
}

static void ctl_cb(void *arg);
static void poll_cb(void *arg);

int ag_machine_new(nng_socket sock, cs_clock *clock, const ag_config *cfg, const ag_backend *be,
                   ag_machine **out, cs_error *err)
{
    if (cfg->name == NULL || cfg->name[0] == '\0' || strlen(cfg->name) > CS_NAME_MAX)
        return cs_errorf(err, CS_EINVAL, "machine name must be 1 to %d bytes", CS_NAME_MAX);
    ag_machine *m = calloc(1, sizeof *m);
    if (m == NULL)
        return cs_errorf(err, CS_ENOMEM, "machine: out of memory");
    int rc;
    m->cfg = *cfg;
    snprintf(m->name, sizeof m->name, "%s", cfg->name);
    m->cfg.name = m->name;
    m->be = *be;
    m->next_req = 1;
    m->dirty = true;
    m->clock = clock;
    cs_sleep_init(&m->ctl_sleep, clock);
    cs_sleep_init(&m->poll_sleep, clock);
    msgpack_sbuffer_init(&m->body);
    cs_arena_init(&m->parena);
    ag_taskidx_init(&m->idx);
    if ((rc = cs_clock_reserve(clock, 2, err)) != CS_OK)
        goto err_reserve;
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        rc = cs_errorf(err, CS_ENOMEM, "machine: out of memory");
        goto err_mutex;
    }
    if ((rc = call_init(&m->ctl, sock, ctl_cb, m, err)) != CS_OK)
        goto err_ctl;
    if ((rc = call_init(&m->poll, sock, poll_cb, m, err)) != CS_OK)
        goto err_poll;
    *out = m;
    return CS_OK;
err_poll:
    call_fini(&m->ctl);
err_ctl:
    pthread_mutex_destroy(&m->mu);
err_mutex:
    cs_clock_unreserve(clock, 2);
err_reserve:
    msgpack_sbuffer_destroy(&m->body);
    cs_arena_free(&m->parena);
    free(m);
    return rc;
}

int ag_machine_adopt(ag_machine *m, const ag_task *t, cs_error *err)
{
    ag_task *c = malloc(sizeof *c);
    if (c == NULL)
        return cs_errorf(err, CS_ENOMEM, "adopting task %llu: out of memory",
                         (unsigned long long)t->id);
    *c = *t;
    pthread_mutex_lock(&m->mu);
    int rc = ag_taskidx_add(&m->idx, c, err);
    if (rc == CS_OK) {
        c->next = m->tasks;
        m->tasks = c;
        m->dirty = true;
    }
    pthread_mutex_unlock(&m->mu);
    if (rc != CS_OK)
        free(c);
    return rc;
}

void ag_machine_start(ag_machine *m)
{
    /* Both loops begin with an immediate wake-up: the control loop
     * registers, the poll loop waits for the registration. */
    pthread_mutex_lock(&m->mu);
    m->ctl.state = CALL_SLEEP;
    m->poll.state = CALL_SLEEP;
    cs_sleep_begin(&m->ctl_sleep, m->ctl.aio, 0);
    cs_sleep_begin(&m->poll_sleep, m->poll.aio, 0);
    pthread_mutex_unlock(&m->mu);
}

void ag_machine_stop(ag_machine *m)
{
    pthread_mutex_lock(&m->mu);
    m->stopping = true;
    pthread_mutex_unlock(&m->mu);
    nng_aio_stop(m->ctl.aio);
    nng_aio_stop(m->poll.aio);
    /* A sleep that the clock's thread had just taken to end is finished
     * by that thread: wait until it is done with this machine. */
    cs_clock_disarm(m->clock, &m->ctl_sleep.timer, true);
    cs_clock_disarm(m->clock, &m->poll_sleep.timer, true);
}

void ag_machine_free(ag_machine *m)
{
    if (m == NULL)
        return;
    call_fini(&m->ctl);
    call_fini(&m->poll);
    while (m->tasks) {
        ag_task *t = m->tasks;
        m->tasks = t->next;
        free(t);
    }
    ag_taskidx_free(&m->idx);
    pthread_mutex_destroy(&m->mu);
    cs_clock_unreserve(m->clock, 2);
    msgpack_sbuffer_destroy(&m->body);
    cs_arena_free(&m->parena);
    free(m);
}

void ag_machine_counts(ag_machine *m, ag_counts *out)
{
    pthread_mutex_lock(&m->mu);
    *out = m->counts;
    out->registered = m->registered;
    out->running = 0;
    for (ag_task *t = m->tasks; t; t = t->next)
        out->running += t->phase != AG_ENDED;
    pthread_mutex_unlock(&m->mu);
}

static ag_task *find_task(ag_machine *m, cs_id id, uint32_t attempt)
{
    return ag_taskidx_find(&m->idx, id, attempt);
}

static uint32_t backoff(uint32_t *ms)
{
    *ms = *ms ? *ms * 2 : 100;
    if (*ms > AG_MAX_BACKOFF_MS)
        *ms = AG_MAX_BACKOFF_MS;
    return *ms;
}

/* Whether `rc` says that no server could serve the request now, rather
 * than that one refused it: no answer (CS_EIO), or a replica without a
 * leader or stopping (CS_ENOTLEADER, CS_EUNAVAIL). Either is retried after
 * the back-off, and the retry goes to the socket's next connected pipe:
 * another replica when the socket dials several (loop.h). */
static bool unreachable(int rc)
{
    return rc == CS_EIO || rc == CS_ENOTLEADER || rc == CS_EUNAVAIL;
}

/* A request failed to reach the server, or timed out: say so once, then
 * again every AG_FAIL_LOG_MS while it lasts, so that an unreachable server
 * is visible in the log without flooding it. */
static void note_unreachable(ag_machine *m, const char *what, const char *why, int64_t now)
{
    /* Quiet (simulated) machines leave this to the simulator's summary:
     * ten thousand of them would say the same thing. */
    if (!m->cfg.quiet && (!m->failing || now - m->fail_logged_at >= AG_FAIL_LOG_MS)) {
        mlog(m, true, "%s: cannot reach cellstated (%s); retrying", what, why);
        m->fail_logged_at = now;
    }
    m->failing = true;
}

static void note_reachable(ag_machine *m)
{
    if (m->failing && !m->cfg.quiet)
        mlog(m, true, "cellstated answers again");
    m->failing = false;
}

static void revoke_task(ag_machine *m, ag_task *t, const char *why)
{
    if (!t->revoked && t->phase != AG_ENDED)
        mlog(m, false, "task %llu attempt %u (%s): %s: killing it", (unsigned long long)t->id,
             t->attempt, t->job, why);
    t->revoked = true;
    t->done = true;
    t->done_version = 0;
}

/* ---- the control loop: register, report, heartbeat ----------------------- */

/* A change of health is reported once the server knows the task runs,
 * and only while it runs: the final report supersedes it. */
static bool health_due(const ag_task *t)
{
    return t->running_acked && t->phase != AG_ENDED && t->health != AG_HEALTH_UNKNOWN &&
           t->health != t->health_acked;
}

static bool needs_report(const ag_task *t)
{
    if (t->done || t->revoked)
        return false;
    return (t->started && !t->running_acked) || t->phase == AG_ENDED || health_due(t);
}

/* SIGTERM, then SIGKILL once the grace period has passed, to a task that
 * must go: revoked, or condemned by its health checks. Lowers *due to
 * when the SIGKILL is due. */
static void kill_step(ag_machine *m, ag_task *t, int64_t now, int64_t *due)
{
    if (t->kill_at == 0) {
        if (m->be.signal(m->be.ctx, t, SIGTERM)) {
            t->kill_at = now + t->grace_ms;
            if (!t->revoked)
                mlog(m, true, "task %llu attempt %u (%s): %s: killing it",
                     (unsigned long long)t->id, t->attempt, t->job, t->health_reason);
        }
    } else if (!t->killed && now >= t->kill_at) {
        mlog(m, false, "task %llu attempt %u: still running after %u ms: SIGKILL",
             (unsigned long long)t->id, t->attempt, t->grace_ms);
        t->killed = m->be.signal(m->be.ctx, t, SIGKILL);
    }
    if (t->kill_at && !t->killed && t->kill_at < *due)
        *due = t->kill_at;
}

/* Look at every task: refresh from the backend, escalate kills, forget what
 * is finished with, count the reports due now. Returns the earliest time a
 * task needs another look (INT64_MAX: none does until something changes). */
static int64_t tick(ag_machine *m, int64_t now)
{
    int64_t due = INT64_MAX;
    m->reports_due = 0;
    ag_task **pp = &m->tasks;
    while (*pp) {
        ag_task *t = *pp;
        if (t->phase != AG_ENDED)
            m->be.refresh(m->be.ctx, t, now);
        if ((t->revoked || t->health_kill) && t->phase != AG_ENDED)
            kill_step(m, t, now, &due);
        if (t->health_kill && t->phase == AG_ENDED && !t->done) {
            /* However the process ended, it ended because its checks
             * condemned it: that is the reason the cell gets, with the
             * exit code it ended with. */
            t->ok = false;
            snprintf(t->reason, sizeof t->reason, "%s", t->health_reason);
        }
        if (t->done && t->phase == AG_ENDED && !t->listed && m->since >= t->done_version) {
            m->be.forget(m->be.ctx, t);
            *pp = t->next;
            ag_taskidx_remove(&m->idx, t);
            free(t);
            continue;
        }
        if (t->phase != AG_ENDED && t->wake_at && t->wake_at < due)
            due = t->wake_at;
        if (needs_report(t) && t->retry_at > now && t->retry_at < due)
            due = t->retry_at;
        m->reports_due += needs_report(t) && t->retry_at <= now;
        pp = &t->next;
    }
    return due;
}

static int pack_register(ag_machine *m, msgpack_packer *pk)
{
    const ag_config *c = &m->cfg;
    /* The encoder only reads the attributes and taints. */
    cs_machine spec = {.name = m->name, .attrs = (cs_attr *)c->attrs, .nattrs = c->nattrs,
                       .capacity = c->capacity, .port_lo = c->port_lo, .port_hi = c->port_hi,
                       .taints = (cs_taint *)c->taints, .ntaints = c->ntaints,
                       .state = CS_MACHINE_UP, .log_url = c->log_url};
    return cs_register_req_encode(pk, &spec);
}

/* The report t is due (needs_report): `running`, `running` with its
 * health (*health set to it), or the final one. */
static cs_task_report due_report(const ag_task *t, ag_health_state *health)
{
    bool final = t->phase == AG_ENDED && (t->running_acked || !t->started);
    *health = !final && health_due(t) ? t->health : AG_HEALTH_UNKNOWN;
    cs_task_report r = {t->id, t->attempt, CS_TASK_RUNNING, 0, NULL, CS_TASK_HEALTH_UNKNOWN};
    if (final) {
        r.state = t->ok ? CS_TASK_FINISHED : CS_TASK_FAILED;
        r.exit_code = t->exit_code;
        r.reason = t->ok ? "" : t->reason;
    } else if (*health != AG_HEALTH_UNKNOWN) {
        r.health = *health == AG_HEALTH_HEALTHY ? CS_TASK_HEALTH_HEALTHY
                                                : CS_TASK_HEALTH_UNHEALTHY;
    }
    return r;
}

/* The reports due now (at most AG_BATCH_MAX) into one task.status body,
 * noted in m->ctl_batch: the batch form, or the single form for the first
 * of them when the server does not take batches. */
static int pack_reports(ag_machine *m, msgpack_packer *pk, int64_t now)
{
    cs_task_report due[AG_BATCH_MAX];
    uint32_t n = 0;
    for (ag_task *t = m->tasks; t && n < AG_BATCH_MAX; t = t->next)
        if (needs_report(t) && t->retry_at <= now) {
            ag_inflight *f = &m->ctl_batch[n];
            *f = (ag_inflight){t->id, t->attempt, AG_HEALTH_UNKNOWN};
            due[n++] = due_report(t, &f->health);
        }
    m->ctl_n = n;
    if (n == 0)
        return CS_OK;
    m->ctl_batched = !m->batch_refused;
    if (!m->ctl_batched)
        m->ctl_n = n = 1;
    cs_task_status_req q = {.batch = m->ctl_batched, .reports = due, .n = n};
    return cs_task_status_req_encode(pk, &q);
}

/* Decide the control loop's next step (lock held): a request to send
 * (*msg set), or a sleep (*sleep_ms set). */
static void ctl_next(ag_machine *m, nng_msg **msg, int64_t *sleep_ms)
{
    int64_t now = cs_clock_now_ms();
    if (m->dirty || now >= m->look_at) {
        m->dirty = false;
        m->look_at = tick(m, now);
    }
    int64_t due = m->look_at;
    *msg = NULL;
    m->body.size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &m->body, msgpack_sbuffer_write);
    uint32_t type = 0;
    int rc = CS_OK;
    m->ctl_doing = CTL_NONE;
    if (!m->registered) {
        if (now >= m->reg_retry_at) {
            m->ctl_doing = CTL_REGISTER;
            type = CS_MSG_MACHINE_REGISTER;
            rc = pack_register(m, &pk);
        } else if (m->reg_retry_at < due) {
            due = m->reg_retry_at;
        }
    } else {
        m->ctl_n = 0;
        if (m->reports_due > 0)
            rc = pack_reports(m, &pk, now);
        if (m->ctl_n > 0) {
            m->ctl_doing = CTL_REPORT;
            type = CS_MSG_TASK_STATUS;
        }
        if (m->ctl_doing == CTL_NONE && now >= m->hb_due) {
            m->ctl_doing = CTL_HEARTBEAT;
            type = CS_MSG_HEARTBEAT;
            cs_heartbeat_req q = {cs_ref_id(m->id)};
            rc = cs_heartbeat_req_encode(&pk, &q);
        } else if (m->hb_due < due) {
            due = m->hb_due;
        }
    }
    if (m->ctl_doing != CTL_NONE) {
        if (rc == CS_OK)
            rc = call_prepare(&m->ctl, type, m->next_req++, &m->body, m->cfg.token,
                              m->cfg.call_timeout_ms, msg);
        if (rc == CS_OK)
            return;
        /* Out of memory building a small message: wait and try again. */
        mlog(m, true, "%s: out of memory building the request", cs_msg_name(type));
        m->ctl_doing = CTL_NONE;
        due = now + AG_MAX_SLEEP_MS;
    }
    m->ctl.state = CALL_SLEEP;
    *sleep_ms = due > now ? due - now : 0;
}

static void on_register(ag_machine *m, int rc, const cs_msg *r, const cs_error *err, int64_t now)
{
    cs_id_reply reply = {0, 0};
    cs_error e2 = {0};
    if (rc == CS_OK && (rc = cs_id_reply_decode(&r->body, &reply, NULL, &e2)) != CS_OK)
        err = &e2;
    cs_id id = reply.id;
    if (rc != CS_OK) {
        if (unreachable(rc))
            note_unreachable(m, "machine.register", err->msg, now);
        else
            mlog(m, true, "machine.register refused: %s", err->msg);
        m->reg_retry_at = now + backoff(&m->reg_backoff_ms);
        return;
    }
    note_reachable(m);
    if (m->id != 0 && m->id != id)
        mlog(m, true, "the cell knows this machine by a new id %llu (was %llu)",
             (unsigned long long)id, (unsigned long long)m->id);
    mlog(m, false, "registered as machine %llu", (unsigned long long)id);
    m->registered = true;
    m->id = id;
    m->since = 0; /* the next poll answers at once with the whole list */
    m->reg_backoff_ms = 0;
    m->hb_due = now + m->cfg.heartbeat_ms;
}

static void on_heartbeat(ag_machine *m, int rc, const cs_msg *r, const cs_error *err, int64_t now)
{
    m->hb_due = now + m->cfg.heartbeat_ms;
    if (rc == CS_ENOTFOUND) {
        mlog(m, true, "the cell does not know this machine any more (%s): registering again",
             err->msg);
        m->registered = false;
        return;
    }
    if (rc != CS_OK) {
        if (unreachable(rc))
            note_unreachable(m, "machine.heartbeat", err->msg, now);
        else
            mlog(m, true, "heartbeat refused: %s", err->msg);
        return;
    }
    note_reachable(m);
    cs_heartbeat_reply reply;
    cs_error e2 = {0};
    cs_arena a;
    cs_arena_init(&a);
    rc = cs_heartbeat_reply_decode(&r->body, &reply, &a, &e2);
    cs_arena_free(&a);
    if (rc != CS_OK) {
        mlog(m, true, "heartbeat reply: %s", e2.msg);
        return;
    }
    if (reply.state == CS_MACHINE_DOWN) {
        /* Its tasks were lost; the poll after registering will not list
         * them, and reconciliation kills them. */
        mlog(m, true, "the cell marked this machine down: registering again");
        m->registered = false;
    }
}

/* The server's answer `rc` (err when not CS_OK) to report f; `v` is the
 * reply's version. */
static void on_report_one(ag_machine *m, const ag_inflight *f, int rc, const cs_error *err,
                          uint64_t v, int64_t now)
{
    ag_task *t = find_task(m, f->task, f->attempt);
    if (t == NULL)
        return; /* forgotten meanwhile: a poll showed it ended */
    if (rc == CS_ESTATE || rc == CS_ENOTFOUND) {
        /* protocol.md §5.10: the agent's view is stale; kill, do not retry. */
        mlog(m, true, "task %llu attempt %u: report refused (%s)", (unsigned long long)t->id,
             t->attempt, err->msg);
        revoke_task(m, t, "placement is stale");
        return;
    }
    if (rc != CS_OK && f->health != AG_HEALTH_UNKNOWN && (rc == CS_EPROTO || rc == CS_EINVAL)) {
        /* A server without health reports (protocol.md §5.10): retrying
         * cannot help, and the task's other reports must still go out. */
        if (!m->health_refused)
            mlog(m, true, "the server refuses health reports (%s); not sending them", err->msg);
        m->health_refused = true;
        t->health_acked = f->health;
        return;
    }
    if (rc != CS_OK) {
        if (unreachable(rc))
            note_unreachable(m, "task.status", err->msg, now);
        else
            mlog(m, true, "task %llu attempt %u: report failed: %s", (unsigned long long)t->id,
                 t->attempt, err->msg);
        t->retry_at = now + backoff(&t->backoff_ms);
        return;
    }
    note_reachable(m);
    t->backoff_ms = 0;
    t->retry_at = 0;
    bool final = t->phase == AG_ENDED && (t->running_acked || !t->started);
    if (!final) {
        t->running_acked = true;
        if (f->health != AG_HEALTH_UNKNOWN) {
            t->health_acked = f->health;
            mlog(m, false, "task %llu attempt %u (%s): reported %s", (unsigned long long)t->id,
                 t->attempt, t->job, f->health == AG_HEALTH_HEALTHY ? "healthy" : "unhealthy");
        }
        return;
    }
    t->done = true;
    t->done_version = v;
    m->counts.reported++;
    mlog(m, false, "task %llu attempt %u (%s): reported %s%s%s", (unsigned long long)t->id,
         t->attempt, t->job, t->ok ? "finished" : "failed", t->ok ? "" : ": ",
         t->ok ? "" : t->reason);
}

static void on_report(ag_machine *m, int rc, const cs_msg *r, const cs_error *err, int64_t now)
{
    m->dirty = true; /* acknowledged, retried or revoked: look again */
    cs_task_status_reply res = {0, NULL, 0};
    cs_arena a;
    cs_arena_init(&a);
    cs_error e = {0};
    if (rc == CS_OK && m->ctl_batched &&
        (cs_task_status_reply_decode(&r->body, &res, &a, &e) != CS_OK || res.n != m->ctl_n)) {
        cs_errorf(&e, CS_EPROTO, "task.status reply: 'results' is not an array of %u results",
                  m->ctl_n);
        for (uint32_t i = 0; i < m->ctl_n; i++)
            on_report_one(m, &m->ctl_batch[i], CS_EPROTO, &e, 0, now);
        cs_arena_free(&a);
        return;
    }
    if (rc == CS_OK && !m->ctl_batched) {
        cs_version_reply v;
        res.version = cs_version_reply_decode(&r->body, &v, NULL, &e) == CS_OK ? v.version : 0;
    }
    if (rc == CS_EPROTO && m->ctl_batched) {
        /* A server that predates the batch form reads it as a single
         * report without its fields: send one report a request from now
         * on, at once. */
        mlog(m, true, "the server refuses batched reports (%s); sending them one by one",
             err->msg);
        m->batch_refused = true;
        cs_arena_free(&a);
        return;
    }
    for (uint32_t i = 0; i < m->ctl_n; i++) {
        int rci = rc;
        const cs_error *ei = err;
        if (res.results != NULL) {
            rci = res.results[i].code;
            cs_errorf(&e, rci, "%s", res.results[i].message);
            ei = &e;
        }
        on_report_one(m, &m->ctl_batch[i], rci, ei, res.version, now);
    }
    cs_arena_free(&a);
}

typedef enum step {
    STEP_HANDLED, /* nothing more to do now; the lock is released */
    STEP_WOKE,    /* a sleep ended (or was cut short): decide the next step */
    STEP_RESULT   /* a request ended: *rc and, on CS_OK, the reply */
} step;

/* The common start of both callbacks, called with the machine locked.
 * Nothing cancels a machine's aios but ag_machine_stop, so a cancelled
 * operation is only a wake-up on the way to noticing `stopping`.
 *
 * The poll loop brings the control loop's sleep forward when the tasks
 * change (cs_sleep_hasten, which never touches an aio that is not
 * sleeping): no aio is ever cancelled from another thread while its owner
 * may be reusing it. */
static step call_step(ag_machine *m, ag_call *c, cs_msg *r, cs_error *err, int *rc)
{
    int rv;
    const char *stage;
    call_event ev = call_event_of(c, &rv, &stage);
    if (m->stopping || ev == EV_SENT) {
        if (!m->stopping)
            call_recv(c);
        pthread_mutex_unlock(&m->mu);
        return STEP_HANDLED;
    }
    if (ev == EV_WOKE || (ev == EV_FAILED && rv == NNG_ECANCELED))
        return STEP_WOKE;
    *rc = ev == EV_REPLY ? call_reply(c, r, err) : call_failure(c, rv, stage, err);
    return STEP_RESULT;
}

static void ctl_cb(void *arg)
{
    ag_machine *m = arg;
    cs_msg r;
    cs_error err = {0};
    int rc = CS_OK;
    pthread_mutex_lock(&m->mu);
    step st = call_step(m, &m->ctl, &r, &err, &rc);
    if (st == STEP_HANDLED)
        return;
    if (st == STEP_RESULT) {
        int64_t now = cs_clock_now_ms();
        if (m->ctl_doing == CTL_REGISTER)
            on_register(m, rc, &r, &err, now);
        else if (m->ctl_doing == CTL_HEARTBEAT)
            on_heartbeat(m, rc, &r, &err, now);
        else if (m->ctl_doing == CTL_REPORT)
            on_report(m, rc, &r, &err, now);
        m->ctl_doing = CTL_NONE;
    }
    nng_msg *msg;
    int64_t sleep_ms = 0;
    ctl_next(m, &msg, &sleep_ms);
    /* A sleep begins under the lock, so that ag_machine_stop (which takes
     * it to set `stopping`) finds the sleep cancellable. */
    if (msg == NULL)
        cs_sleep_begin(&m->ctl_sleep, m->ctl.aio, cs_clock_now_ms() + sleep_ms);
    pthread_mutex_unlock(&m->mu);
    if (msg)
        call_submit(&m->ctl, msg);
}

/* ---- the poll loop ------------------------------------------------------------- */

/* A job as a start needs it: name, command and options, or `bad` (why it
 * cannot be read) so that the start fails visibly. */
typedef struct job_view {
    const char *name, *cmd;
    cs_jobopts opts;
    const char *bad;
} job_view;

static int decode_job(const msgpack_object *job, cs_arena *a, job_view *out, cs_error *err)
{
    out->name = "?";
    out->cmd = "";
    out->bad = NULL;
    cs_jobopts_init(&out->opts);
    cs_job j;
    cs_error jerr = {0};
    int rc;
    if (job == NULL || job->type != MSGPACK_OBJECT_MAP)
        rc = cs_errorf(&jerr, CS_EPROTO, "entry has no 'job' map");
    else if ((rc = cs_unpack_job_spec(job, a, &j, &jerr)) == CS_OK) {
        out->name = j.name;
        out->cmd = j.cmd;
        if ((rc = cs_job_opts(&j, a, &out->opts, &jerr)) != CS_OK)
            cs_error_wrap(&jerr, rc, "job %s: options", j.name);
    }
    if (rc != CS_OK && (out->bad = cs_arena_strndup(a, jerr.msg, strlen(jerr.msg))) == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    return CS_OK;
}

/* The jobs of a compact reply, each decoded on first use: the jobs of
 * tasks the machine already runs are never decoded. Parallel to the
 * decoded reply's jobs[]. */
typedef struct reply_job {
    bool decoded;
    job_view v;
} reply_job;

/* One readable entry of a poll reply (proto/agentmsg.h: cs_poll_entry) as
 * an assignment. The entry of a (task, attempt) the machine already has
 * yields only that pair: nothing else of it is needed. A short entry of
 * one it does not have means that claim failed here (an entry it could
 * not start, a lost reply): it is an error, and `*unknown` tells the
 * caller to ask for every entry in full next time. An entry whose job
 * cannot be read is returned with `bad` set. */
static int decode_assign(ag_machine *m, const cs_poll_entry *e, reply_job *rj, cs_arena *a,
                         ag_assign *out, bool *unknown, cs_error *err)
{
    memset(out, 0, sizeof *out);
    cs_jobopts_init(&out->opts);
    if (e->kind == CS_POLL_BAD)
        return cs_errorf(err, CS_EPROTO, "%s", e->bad);
    out->id = e->id;
    out->attempt = e->attempts;
    if (find_task(m, out->id, out->attempt) != NULL)
        return CS_OK;
    if (e->kind == CS_POLL_SHORT) {
        *unknown = true;
        return cs_errorf(err, CS_EPROTO, "short entry for task %llu attempt %u, which this "
                         "machine does not have: asking for every entry in full",
                         (unsigned long long)out->id, out->attempt);
    }
    cs_task t;
    int rc;
    if ((rc = cs_unpack_task(e->task, a, &t, err)) != CS_OK)
        return rc;
    if (e->job_index >= 0 && t.job != e->job)
        return cs_errorf(err, CS_EPROTO, "task %llu: entry names job %llu, the task is of job %llu",
                         (unsigned long long)out->id, (unsigned long long)e->job,
                         (unsigned long long)t.job);
    out->index = t.index;
    out->ports = t.ports;
    out->nports = t.nports;
    out->res = t.res;
    job_view local, *v = &local;
    reply_job *j = e->job_index >= 0 ? &rj[e->job_index] : NULL;
    if (j == NULL)
        rc = decode_job(e->job_map, a, &local, err);
    else if (!j->decoded && (rc = decode_job(e->job_map, a, &j->v, err)) == CS_OK)
        j->decoded = true;
    if (rc != CS_OK)
        return rc;
    if (j != NULL)
        v = &j->v;
    out->job = v->name;
    out->cmd = v->cmd;
    out->opts = v->opts;
    out->bad = v->bad;
    return CS_OK;
}

/* Apply one poll reply (lock held): start what is new, revoke what is gone.
 * `complete` false (some entry could not be read) revokes nothing, since a
 * task missing from the list might be that entry. Returns when the control
 * loop should look at the tasks: at once for a kill, a little later for
 * starts to report (gathering them), INT64_MAX when nothing changed. */
static int64_t reconcile(ag_machine *m, const ag_assign *as, uint32_t n, bool complete,
                         int64_t now)
{
    int64_t look = INT64_MAX;
    for (ag_task *t = m->tasks; t; t = t->next)
        t->listed = false;
    for (uint32_t i = 0; i < n; i++) {
        const ag_assign *a = &as[i];
        ag_task *t = find_task(m, a->id, a->attempt);
        if (t != NULL) {
            t->listed = true;
            continue;
        }
        t = calloc(1, sizeof *t);
        cs_error e;
        if (t != NULL) {
            t->id = a->id;
            t->attempt = a->attempt;
        }
        if (t == NULL || ag_taskidx_add(&m->idx, t, &e) != CS_OK) {
            mlog(m, true, "task %llu: out of memory; will start it at the next poll",
                 (unsigned long long)a->id);
            free(t);
            continue;
        }
        t->index = a->index;
        snprintf(t->job, sizeof t->job, "%s", a->job);
        t->grace_ms = m->cfg.kill_grace_ms ? m->cfg.kill_grace_ms : a->opts.kill_grace_ms;
        t->listed = true;
        m->be.start(m->be.ctx, t, a, now);
        m->counts.started++;
        mlog(m, false, "task %llu attempt %u (%s/%u): %s%s", (unsigned long long)t->id,
             t->attempt, t->job, t->index, t->phase == AG_ENDED && !t->started ? "cannot start: "
                                                                               : "started",
             t->phase == AG_ENDED && !t->started ? t->reason : "");
        t->next = m->tasks;
        m->tasks = t;
        if (look > now + AG_REPORT_GATHER_MS)
            look = now + AG_REPORT_GATHER_MS;
    }
    if (complete) {
        for (ag_task *t = m->tasks; t; t = t->next) {
            if (t->listed || t->done)
                continue;
            if (t->phase == AG_ENDED) {
                /* Not placed here any more: any report would be refused. */
                t->done = true;
                t->done_version = 0;
            } else {
                revoke_task(m, t, "no longer assigned here");
                look = now;
            }
        }
    }
    return look;
}

/* Decode a poll reply (in m->parena) into assignments and reconcile. A
 * reply without "jobs" is the default form (a server that ignored the
 * request's "jobs": "once"). A job map without a readable id is logged
 * and matches nothing: the entries naming it are then skipped as naming a
 * job the reply does not carry. */
static int apply_poll(ag_machine *m, const cs_msg *r, cs_error *err)
{
    cs_arena_reset(&m->parena);
    cs_poll_reply pr;
    CS_TRY(cs_poll_reply_decode(&r->body, &pr, &m->parena, err));
    for (uint32_t i = 0; i < pr.njobs; i++)
        if (pr.jobs[i].id == 0)
            mlog(m, true, "poll reply job %u ignored: %s", i, pr.jobs[i].bad);
    reply_job *rj = cs_arena_alloc(&m->parena, (pr.njobs + 1) * sizeof *rj);
    ag_assign *as = cs_arena_alloc(&m->parena, (pr.ntasks + 1) * sizeof *as);
    if (rj == NULL || as == NULL)
        return cs_errorf(err, CS_ENOMEM, "poll reply: out of memory");
    memset(rj, 0, (pr.njobs + 1) * sizeof *rj);
    uint32_t k = 0;
    bool complete = true, unknown = false;
    for (uint32_t i = 0; i < pr.ntasks; i++) {
        cs_error e = {0};
        if (decode_assign(m, &pr.tasks[i], rj, &m->parena, &as[k], &unknown, &e) == CS_OK) {
            as[k].machine = m->cfg.name;
            k++;
            continue;
        }
        mlog(m, true, "poll reply entry %u ignored: %s", i, e.msg);
        complete = false;
    }
    int64_t look = reconcile(m, as, k, complete, cs_clock_now_ms());
    /* since 0 answers at once, in full: the entries this machine lacks come
     * with their jobs, and the full reply holds no short entry that could
     * send it round again. */
    m->since = unknown ? 0 : pr.version;
    /* A new `since` may let finished tasks be forgotten: no hurry. */
    m->dirty = true;
    if (look != INT64_MAX)
        cs_sleep_hasten(&m->ctl_sleep, look);
    return CS_OK;
}

/* The next poll (lock held): a request, or a short sleep until registered. */
static void poll_next(ag_machine *m, nng_msg **msg, int64_t *sleep_ms)
{
    *msg = NULL;
    *sleep_ms = 100;
    m->poll.state = CALL_SLEEP;
    if (!m->registered)
        return;
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    /* "jobs": "once": each job once per reply, not once per task; "known":
     * "short": what is unchanged since the last reply applied comes short. */
    cs_poll_req q = {.machine = cs_ref_id(m->id), .since = m->since,
                     .wait_ms = m->cfg.poll_wait_ms, .jobs_once = true, .known_short = true};
    int rc = cs_poll_req_encode(&pk, &q);
    if (rc == CS_OK)
        rc = call_prepare(&m->poll, CS_MSG_POLL, m->next_req++, &b, m->cfg.token,
                          m->cfg.call_timeout_ms + m->cfg.poll_wait_ms, msg);
    if (rc != CS_OK) {
        m->poll.state = CALL_SLEEP;
        *sleep_ms = AG_MAX_SLEEP_MS;
    }
    msgpack_sbuffer_destroy(&b);
}

static void poll_cb(void *arg)
{
    ag_machine *m = arg;
    cs_msg r;
    cs_error err = {0};
    int rc = CS_OK;
    pthread_mutex_lock(&m->mu);
    step st = call_step(m, &m->poll, &r, &err, &rc);
    if (st == STEP_HANDLED)
        return;
    int64_t delay = 0;
    if (st == STEP_RESULT) {
        if (rc == CS_OK)
            rc = apply_poll(m, &r, &err);
        /* reconcile copied what it keeps: the reply and its arena go */
        call_release(&m->poll);
        cs_arena_free(&m->parena);
        cs_arena_init(&m->parena);
        if (rc == CS_OK) {
            m->poll_backoff_ms = 0;
        } else {
            if (rc == CS_ENOTFOUND) {
                mlog(m, true, "poll: %s: registering again", err.msg);
                m->registered = false;
            } else if (unreachable(rc)) {
                note_unreachable(m, "poll", err.msg, cs_clock_now_ms());
            } else {
                mlog(m, true, "poll failed: %s", err.msg);
            }
            delay = backoff(&m->poll_backoff_ms);
        }
    }
    nng_msg *msg = NULL;
    int64_t sleep_ms = delay;
    if (delay == 0)
        poll_next(m, &msg, &sleep_ms);
    else
        m->poll.state = CALL_SLEEP;
    if (msg == NULL)
        cs_sleep_begin(&m->poll_sleep, m->poll.aio, cs_clock_now_ms() + sleep_ms);
    pthread_mutex_unlock(&m->mu);
    if (msg)
        call_submit(&m->poll, msg);
}
