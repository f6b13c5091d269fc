/* authz.c — who sends each request, and what they may do (issue 17 §2,
 * docs/security.md "Roles").
 *
 * A cell enforces roles when it has certificates (--tls-cert ...: the
 * role is the client certificate's, proto/principal.h) or a token file
 * (--auth-tokens: the role is the token's, sent in each request's
 * envelope). A cell with neither is a development cell: every request is
 * taken, as before roles existed, and cellstated says so loudly at start.
 *
 * Where each principal comes from, first match:
 *   1. a token in the envelope: the token file's principal for it; an
 *      unknown token is refused (a typo must not silently demote a client
 *      to anonymous);
 *   2. {"as": principal} in the envelope, honoured only from a client that
 *      is itself trusted to act for others: a replica (certificate role
 *      server, or a server token) forwarding its client's write to the
 *      leader (forward.c), and the HTTP gateway in this process, whose
 *      inproc listener nobody outside the process can reach;
 *   3. the TLS peer certificate's CN (tools/cellsched-certs.sh);
 *   4. anonymous: no rights.
 *
 * Checks come in two steps. By message type alone (srv_auth_request, on
 * the worker's thread before anything is read or queued): which roles may
 * send it. Then, where the answer depends on records, in the handler or
 * the writer's prep, where the records are read anyway: an agent acts only
 * for its own machine and the tasks placed there; a scheduler commits only
 * under its own id and, when its role names a job kind, only for jobs of
 * that kind. Job kinds and a task's job never change, so a check against
 * any snapshot is exact; a task's machine does change, but a report names
 * the attempt, and a later placement is a later attempt, which the state
 * machine already refuses to take a stale report for.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cellstate/vec.h"
#include "proto/schedreport.h"
#include "proto/tlsengine.h"
#include "server/internal.h"

/* Role bits of the policy table. */
#define R_AGENT (1u << CS_AUTH_AGENT)
#define R_SCHED (1u << CS_AUTH_SCHEDULER)
#define R_OPER (1u << CS_AUTH_OPERATOR)
#define R_READ (1u << CS_AUTH_READER)
#define R_SERVER (1u << CS_AUTH_SERVER)
#define R_READS (R_SCHED | R_OPER | R_READ | R_SERVER)

/* Which roles may send each request. A replica (server) may do anything:
 * it holds the whole cell anyway. Absent (0): nobody, which is also what
 * a type that is not a request gets before routing refuses it. */
static const uint8_t policy[CS_MSG_COUNT] = {
    [CS_MSG_MACHINE_REGISTER] = R_AGENT | R_SERVER,
    [CS_MSG_HEARTBEAT] = R_AGENT | R_SERVER,
    [CS_MSG_POLL] = R_AGENT | R_SERVER,
    [CS_MSG_TASK_STATUS] = R_AGENT | R_SERVER,
    [CS_MSG_JOB_SUBMIT] = R_OPER | R_SERVER,
    [CS_MSG_JOB_KILL] = R_OPER | R_SERVER,
    [CS_MSG_JOB_UPDATE] = R_OPER | R_SERVER,
    [CS_MSG_MACHINE_ADMIN] = R_OPER | R_SERVER,
    [CS_MSG_MEMBERS_ADD] = R_OPER | R_SERVER,
    [CS_MSG_MEMBERS_REMOVE] = R_OPER | R_SERVER,
    [CS_MSG_MEMBERS_TRANSFER] = R_OPER | R_SERVER,
    /* A scheduler scales a job (global jobs' pins) and ends a batch job. */
    [CS_MSG_JOB_SCALE] = R_OPER | R_SCHED | R_SERVER,
    [CS_MSG_JOB_END] = R_OPER | R_SCHED | R_SERVER,
    [CS_MSG_JOB_SURGE] = R_SCHED | R_SERVER,
    [CS_MSG_JOB_NOTE] = R_SCHED | R_SERVER,
    [CS_MSG_COMMIT] = R_SCHED | R_SERVER,
    [CS_MSG_SCHED_REPORT] = R_SCHED | R_SERVER,
    [CS_MSG_OFFER_ACQUIRE] = R_SCHED | R_SERVER,
    [CS_MSG_OFFER_RELEASE] = R_SCHED | R_SERVER,
    [CS_MSG_OFFER_COMMIT] = R_SCHED | R_SERVER,
    [CS_MSG_SYNC] = R_READS,
    [CS_MSG_GET_MACHINES] = R_READS,
    [CS_MSG_GET_JOBS] = R_READS,
    [CS_MSG_GET_TASKS] = R_READS,
    [CS_MSG_GET_JOB] = R_READS,
    [CS_MSG_STATS] = R_READS,
    /* The audit log (audit.h) names every principal and what it did. */
    [CS_MSG_AUDIT] = R_OPER | R_READ | R_SERVER,
    /* Every member of the cell may learn who serves it. */
    [CS_MSG_MEMBERS] = R_READS | R_AGENT,
};

/* The roles of a policy entry, for the refusal's text: "operator,
 * server". */
static void roles_text(uint8_t mask, char *buf, size_t n)
{
    size_t off = 0;
    buf[0] = '\0';
    for (uint8_t r = 1; r < CS_AUTH_ROLE_COUNT; r++)
        if (mask & (1u << r)) {
            int k = snprintf(buf + off, n - off, "%s%s", off ? ", " : "", cs_auth_role_name(r));
            if (k < 0 || (size_t)k >= n - off)
                return;
            off += (size_t)k;
        }
    if (off == 0)
        snprintf(buf, n, "nobody");
}

int srv_auth_denied(const worker *w, cs_error *err, const char *fmt, ...)
{
    char why[CS_ERROR_MSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return cs_errorf(err, CS_EPERM, "permission denied: %s may not %s: %s", w->who,
                     cs_msg_name(w->msg.type), why);
}

/* ---- the token file -------------------------------------------------------- */

typedef struct srv_token {
    char *secret;
    size_t len;
    cs_principal p;
} srv_token;

static void tokens_free(srv_auth *a)
{
    for (size_t i = 0; i < a->ntokens; i++) {
        explicit_bzero(a->tokens[i].secret, a->tokens[i].len);
        free(a->tokens[i].secret);
    }
    free(a->tokens);
    a->tokens = NULL;
    a->ntokens = 0;
}

/* Read --auth-tokens: lines "TOKEN PRINCIPAL", blank lines and #
 * comments skipped. Every line is checked, and the first fault named with
 * its line number, so that a file with a typo never starts a cell whose
 * rights differ from what its operator wrote. */
static int tokens_load(srv_auth *a, const char *path, cs_error *err)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return cs_errorf(err, CS_EINVAL, "--auth-tokens %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0)
        fprintf(stderr,
                "cellstated: WARNING: --auth-tokens %s can be read by other users (mode %03o); "
                "its tokens are passwords: chmod 600\n",
                path, (unsigned)(st.st_mode & 0777));
    char line[CS_TOKEN_MAX + CS_PRINCIPAL_MAX + 64];
    int rc = CS_OK;
    size_t cap = 0;
    unsigned lineno = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            rc = cs_errorf(err, CS_EINVAL, "--auth-tokens %s line %u: longer than %zu bytes", path,
                           lineno, sizeof line - 2);
            goto out;
        }
        char *save = NULL, *tok = strtok_r(line, " \t\r\n", &save);
        if (tok == NULL || tok[0] == '#')
            continue;
        char *who = strtok_r(NULL, " \t\r\n", &save), *extra = strtok_r(NULL, " \t\r\n", &save);
        if (who == NULL || (extra != NULL && extra[0] != '#')) {
            rc = cs_errorf(err, CS_EINVAL,
                           "--auth-tokens %s line %u: expected \"TOKEN PRINCIPAL\" (e.g. "
                           "\"<secret> agent:m1\")",
                           path, lineno);
            goto out;
        }
        size_t tlen = strlen(tok);
        if (tlen < CS_TOKEN_MIN || tlen > CS_TOKEN_MAX) {
            rc = cs_errorf(err, CS_EINVAL,
                           "--auth-tokens %s line %u: a token has %d to %d bytes, this one %zu",
                           path, lineno, CS_TOKEN_MIN, CS_TOKEN_MAX, tlen);
            goto out;
        }
        cs_principal p;
        cs_error perr = {0};
        if (cs_principal_parse(who, strlen(who), &p, &perr) != CS_OK) {
            rc = cs_errorf(err, CS_EINVAL, "--auth-tokens %s line %u: %s", path, lineno, perr.msg);
            goto out;
        }
        for (size_t i = 0; i < a->ntokens; i++)
            if (cs_secret_equal(a->tokens[i].secret, a->tokens[i].len, tok, tlen)) {
                rc = cs_errorf(err, CS_EINVAL,
                               "--auth-tokens %s line %u: the same token as an earlier line (each "
                               "principal needs its own)",
                               path, lineno);
                goto out;
            }
        srv_token *v = cs_vec_grow(a->tokens, &cap, a->ntokens + 1, sizeof *v, 8);
        if (v == NULL) {
            rc = cs_errorf(err, CS_ENOMEM, "--auth-tokens: out of memory");
            goto out;
        }
        a->tokens = v;
        if ((v[a->ntokens].secret = strdup(tok)) == NULL) {
            rc = cs_errorf(err, CS_ENOMEM, "--auth-tokens: out of memory");
            goto out;
        }
        v[a->ntokens].len = tlen;
        v[a->ntokens].p = p;
        a->ntokens++;
    }
    if (ferror(f))
        rc = cs_errorf(err, CS_EINVAL, "--auth-tokens %s: %s", path, strerror(errno));
    else if (a->ntokens == 0)
        rc = cs_errorf(err, CS_EINVAL, "--auth-tokens %s holds no token", path);
out:
    explicit_bzero(line, sizeof line);
    fclose(f);
    if (rc != CS_OK)
        tokens_free(a);
    return rc;
}

int srv_auth_init(cs_server *s, cs_error *err)
{
    srv_auth *a = &s->auth;
    if (s->o.auth_tokens != NULL)
        CS_TRY(tokens_load(a, s->o.auth_tokens, err));
    a->enforce = s->o.tls != NULL || a->ntokens > 0;
    return CS_OK;
}

void srv_auth_free(cs_server *s) { tokens_free(&s->auth); }

/* ---- who sends a request ------------------------------------------------- */

static int from_token(cs_server *s, const msgpack_object *t, cs_principal *p, cs_error *err)
{
    const srv_auth *a = &s->auth;
    const char *tok = t->via.str.ptr;
    size_t len = t->via.str.size;
    /* Every entry compared, in time independent of where it matches. */
    const srv_token *found = NULL;
    for (size_t i = 0; i < a->ntokens; i++)
        if (cs_secret_equal(a->tokens[i].secret, a->tokens[i].len, tok, len) && found == NULL)
            found = &a->tokens[i];
    if (found == NULL)
        return cs_errorf(err, CS_EPERM,
                         "permission denied: the request's token is not one of this cell's "
                         "(--auth-tokens)%s",
                         a->ntokens == 0 ? "; this cell takes no tokens" : "");
    *p = found->p;
    return CS_OK;
}

/* The principal of the TLS peer of `pipe`: its certificate's CN as a
 * principal's text (tools/cellsched-certs.sh). A CN that names no role
 * makes the client anonymous: the CA vouched for it, not for a role. */
static void from_certificate(nng_pipe pipe, cs_principal *p)
{
    struct cs_tls_peer peer;
    cs_error ignored;
    *p = cs_principal_anonymous();
    if (cs_tls_peer(pipe, &peer, &ignored) != CS_OK || !peer.verified)
        return;
    cs_principal q;
    if (cs_principal_parse(peer.cn, strlen(peer.cn), &q, &ignored) == CS_OK)
        *p = q;
}

int srv_auth_request(worker *w, cs_error *err)
{
    cs_server *s = w->s;
    w->redact = false;
    w->principal = cs_principal_anonymous();
    snprintf(w->who, sizeof w->who, "anonymous");
    if (!s->auth.enforce)
        return CS_OK;
    nng_pipe pipe = nng_msg_get_pipe(w->req);
    const msgpack_object *cred = &w->msg.auth;
    bool trusted = false; /* the client may act for another */
    if (s->auth.have_local && nng_listener_id(nng_pipe_listener(pipe)) ==
                                  nng_listener_id(s->auth.local))
        trusted = true;
    else
        from_certificate(pipe, &w->principal);
    /* The credentials: a token string, or {"token"?: str, "as"?: str}. */
    const msgpack_object *tok = NULL, *as = NULL;
    if (cred->type == MSGPACK_OBJECT_STR) {
        tok = cred;
    } else if (cred->type == MSGPACK_OBJECT_MAP) {
        tok = cs_obj_get(cred, "token");
        as = cs_obj_get(cred, "as");
        if ((tok != NULL && tok->type != MSGPACK_OBJECT_STR) ||
            (as != NULL && as->type != MSGPACK_OBJECT_STR))
            return cs_errorf(err, CS_EPROTO,
                             "the envelope's credentials: \"token\" and \"as\" must be strings");
    } else if (cred->type != MSGPACK_OBJECT_NIL) {
        return cs_errorf(err, CS_EPROTO,
                         "the envelope's credentials are neither a token string nor a map "
                         "{\"token\", \"as\"}");
    }
    if (tok != NULL)
        CS_TRY(from_token(s, tok, &w->principal, err));
    trusted = trusted || w->principal.role == CS_AUTH_SERVER;
    if (as != NULL) {
        if (!trusted) {
            char me[CS_PRINCIPAL_MAX + 1];
            return cs_errorf(err, CS_EPERM,
                             "permission denied: %s may not act for another principal (only a "
                             "replica of the cell may)",
                             cs_principal_text(&w->principal, me, sizeof me));
        }
        cs_error perr = {0};
        if (cs_principal_parse(as->via.str.ptr, as->via.str.size, &w->principal, &perr) != CS_OK)
            return cs_errorf(err, CS_EPROTO, "the envelope's \"as\": %s", perr.msg);
    }
    cs_principal_text(&w->principal, w->who, sizeof w->who);
    w->redact = w->principal.role == CS_AUTH_READER;
    uint8_t allowed = w->msg.type < CS_MSG_COUNT ? policy[w->msg.type] : 0;
    if ((allowed & (1u << w->principal.role)) != 0)
        return CS_OK;
    char roles[128];
    roles_text(allowed, roles, sizeof roles);
    return srv_auth_denied(w, err, "only %s may", roles);
}

/* ---- the checks that read records ------------------------------------------ */

bool srv_auth_agent(const worker *w)
{
    return w->s->auth.enforce && w->principal.role == CS_AUTH_AGENT;
}

bool srv_auth_sched(const worker *w)
{
    return w->s->auth.enforce && w->principal.role == CS_AUTH_SCHEDULER;
}

int srv_auth_machine(const worker *w, const char *name, cs_error *err)
{
    if (!srv_auth_agent(w) || strcmp(name, w->principal.name) == 0)
        return CS_OK;
    return srv_auth_denied(w, err, "machine %s is not its own (%s)", name, w->principal.name);
}

int srv_auth_job(const worker *w, cs_snap *snap, cs_id job, cs_error *err)
{
    if (!srv_auth_sched(w) || w->principal.kinds == CS_KINDS_ALL)
        return CS_OK;
    cs_arena a;
    cs_arena_init(&a);
    cs_job j;
    int rc = cs_snap_job(snap, job, &a, &j, err);
    if (rc == CS_OK && !cs_principal_kind_ok(&w->principal, j.kind))
        rc = srv_auth_denied(w, err, "job %llu (%s) is a %s job", (unsigned long long)job, j.name,
                             cs_job_kind_name(j.kind));
    cs_arena_free(&a);
    return rc;
}

int srv_auth_sched_name(const worker *w, const char *name, cs_error *err)
{
    if (!srv_auth_sched(w) || strcmp(name, w->principal.name) == 0)
        return CS_OK;
    return srv_auth_denied(w, err, "it names the scheduler %s, not itself (%s)", name,
                           w->principal.name);
}

int srv_auth_txn(const worker *w, cs_snap *snap, const cs_txn *t, cs_error *err)
{
    if (!srv_auth_sched(w))
        return CS_OK;
    uint64_t mine = cs_sched_id_of(w->principal.name);
    if (t->sched != mine)
        return srv_auth_denied(w, err,
                               "the transaction is signed with scheduler id %llu, not its own "
                               "(%llu, of the name %s)",
                               (unsigned long long)t->sched, (unsigned long long)mine,
                               w->principal.name);
    if (w->principal.kinds == CS_KINDS_ALL)
        return CS_OK;
    /* Every task the transaction places or ends must be of a job of the
     * scheduler's kind; a victim of a preemption may be of any kind (the
     * state machine allows only a lower priority). Consecutive items are
     * usually of one job: its kind is read once. */
    cs_arena a;
    cs_arena_init(&a);
    int rc = CS_OK;
    cs_id last_job = 0;
    uint32_t n = t->nclaims + t->nreleases;
    for (uint32_t i = 0; rc == CS_OK && i < n; i++) {
        cs_id task = i < t->nclaims ? t->claims[i].task : t->releases[i - t->nclaims].task;
        cs_task k;
        cs_arena_reset(&a);
        if ((rc = cs_snap_task(snap, task, &a, &k, err)) == CS_ENOTFOUND) {
            rc = CS_OK; /* the state machine names the unknown task */
            continue;
        }
        if (rc == CS_OK && k.job != last_job) {
            if ((rc = srv_auth_job(w, snap, k.job, err)) == CS_ENOTFOUND)
                rc = CS_OK;
            last_job = k.job;
        }
    }
    cs_arena_free(&a);
    return rc;
}

int srv_auth_report(const worker *w, cs_snap *snap, cs_id machine, const cs_task_report *r,
                    cs_error *err)
{
    if (!srv_auth_agent(w))
        return CS_OK;
    cs_arena a;
    cs_arena_init(&a);
    cs_task k;
    int rc = cs_snap_task(snap, r->task, &a, &k, err);
    /* Only a report on the task's current placement elsewhere is another
     * machine's: one on an earlier attempt, or on a task placed nowhere,
     * is stale, which the state machine refuses as it always has (an
     * agent reporting a task moved off it, as it kills it, is no attack
     * and keeps its answer). */
    if (rc == CS_OK && k.machine != 0 && k.machine != machine && r->attempt == k.attempts)
        rc = srv_auth_denied(w, err, "task %llu is not on machine %s",
                             (unsigned long long)r->task, w->principal.name);
    cs_arena_free(&a);
    return rc == CS_ENOTFOUND ? CS_OK : rc; /* the state machine names the unknown task */
}
