/* cellctl_members.c — members, members add|remove|transfer (see
 * cellctl_members.h). */
#include "tools/cellctl_members.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/membermsg.h"
#include "proto/proto.h"
#include "tools/cellctl_table.h"

/* ---- asking one replica ---------------------------------------------------------- */

/* `members` to the server of `c`: its reply decoded into *out (strings in
 * `a`). */
static int ask_members(ctl *c, cs_members_reply *out, cs_arena *a, cs_error *err)
{
    static const uint8_t empty[] = {0x80}; /* cs_empty_req_encode's bytes: {} */
    cs_msg r;
    CS_TRY(ctl_call(c, CS_MSG_MEMBERS, empty, sizeof empty, &r, err));
    return cs_members_reply_decode(&r.body, out, a, err);
}

void ctl_members_line(ctl *c, FILE *f)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_members_reply r;
    cs_error err = {0};
    if (ask_members(c, &r, &a, &err) != CS_OK)
        fprintf(f, "cell state: members: %s\n", err.msg);
    else if (r.n > 1 && r.leader != 0)
        fprintf(f,
                "cell state: %" PRIu32 " replicas, leader %" PRIu64 " (term %" PRIu64
                "); asked %" PRIu64 ": %s, applied %" PRIu64 "\n",
                r.n, r.leader, r.term, r.id, cs_role_word(r.role), r.applied_index);
    else if (r.n > 1)
        fprintf(f,
                "cell state: %" PRIu32 " replicas, no leader known (term %" PRIu64
                "); asked %" PRIu64 ": %s, applied %" PRIu64 "\n",
                r.n, r.term, r.id, cs_role_word(r.role), r.applied_index);
    cs_arena_free(&a);
}

/* One member of the configuration and what it says of itself. */
typedef struct peer {
    const cs_member_info *m; /* borrowed from the configuration */
    uint32_t timeout_ms;
    const cs_tls *tls;    /* the command's certificates (ctl.tls): a tls+tcp member needs them */
    const char *token;    /* and its token (ctl.token): a cell with roles refuses anonymous */
    bool answered;        /* `own` holds its answer */
    cs_members_reply own; /* its own status (its list of members is not used) */
    char why[CS_ERROR_MSG_SIZE]; /* when not answered, or answered as another id */
    cs_arena a;
    pthread_t thread;
    bool started;
} peer;

/* Ask member p->m at its own listen URL (a thread of its own: a client of
 * its own, nothing shared but `p`). */
static void *ask_peer(void *arg)
{
    peer *p = arg;
    cs_error err = {0};
    const char *url = p->m->listen;
    if (url[0] == '\0') {
        snprintf(p->why, sizeof p->why, "no listen address known");
        return NULL;
    }
    int rc = cs_member_listen_check("its listen address", url, strlen(url), &err);
    if (rc == CS_OK) {
        ctl one = {.url = url,
                   .tls = p->tls,
                   .token = p->token,
                   .timeout_ms = p->timeout_ms,
                   .output = CTL_OUT_TABLE};
        rc = ask_members(&one, &p->own, &p->a, &err);
        ctl_close(&one);
        /* ctl_call names the server and advises --server: true of the
         * server asked first, not of a member found in its list. */
        if (rc == CS_EIO && strncmp(err.msg, "server: ", 8) != 0)
            cs_errorf(&err, rc, "no answer at %s within %" PRIu32 " ms", url, p->timeout_ms);
    }
    if (rc != CS_OK) {
        snprintf(p->why, sizeof p->why, "%s", err.msg);
        return NULL;
    }
    p->answered = true;
    if (p->own.id != p->m->id)
        snprintf(p->why, sizeof p->why, "%s answered as member %" PRIu64 ", not %" PRIu64, url,
                 p->own.id, p->m->id);
    return NULL;
}

/* Whether p's own answer is to be shown: it answered, as itself. */
static bool trusted(const peer *p) { return p->answered && p->why[0] == '\0'; }

/* ---- members: the list ------------------------------------------------------------- */

/* The leader's applied index, as the leader says it: the member that calls
 * itself leader in the highest term (a deposed leader that has not heard
 * yet still says so, in an older term). false when none answered as one. */
static bool leader_applied(const peer *ps, uint32_t n, uint64_t *out)
{
    const peer *best = NULL;
    for (uint32_t i = 0; i < n; i++)
        if (trusted(&ps[i]) && ps[i].own.role == CS_MEMBER_LEADER &&
            (best == NULL || ps[i].own.term > best->own.term))
            best = &ps[i];
    if (best != NULL)
        *out = best->own.applied_index;
    return best != NULL;
}

/* How far member p is behind the leader; answers taken a moment apart may
 * show a follower ahead: that is no lag. */
static uint64_t lag_of(const peer *p, uint64_t lead)
{
    return lead > p->own.applied_index ? lead - p->own.applied_index : 0;
}

/* "follower", "leader,non-voter", "unreachable", "wrong-id". */
static const char *role_text(const peer *p, char *buf, size_t size)
{
    if (!p->answered)
        return "unreachable";
    if (!trusted(p))
        return "wrong-id";
    snprintf(buf, size, "%s%s", cs_role_word(p->own.role), p->m->voter ? "" : ",non-voter");
    return buf;
}

/* One row: ID, LISTEN, RAFT, ROLE, TERM, APPLIED, LAG; "-" for what is not
 * known (an unreachable member's numbers, any lag without a leader). */
static int table_row(ctl_table *t, const peer *p, bool has_lead, uint64_t lead, cs_error *err)
{
    char role[48];
    bool ok = trusted(p);
    CS_TRY(ctl_table_cellf(t, err, "%" PRIu64, p->m->id));
    CS_TRY(ctl_table_cellf(t, err, "%s", p->m->listen[0] ? p->m->listen : "-"));
    CS_TRY(ctl_table_cellf(t, err, "%s", p->m->raft[0] ? p->m->raft : "-"));
    CS_TRY(ctl_table_cellf(t, err, "%s", role_text(p, role, sizeof role)));
    if (!ok) {
        for (int i = 0; i < 3; i++)
            CS_TRY(ctl_table_cellf(t, err, "-"));
        return CS_OK;
    }
    CS_TRY(ctl_table_cellf(t, err, "%" PRIu64, p->own.term));
    CS_TRY(ctl_table_cellf(t, err, "%" PRIu64, p->own.applied_index));
    if (!has_lead)
        return ctl_table_cellf(t, err, "-");
    return ctl_table_cellf(t, err, "%" PRIu64, lag_of(p, lead));
}

static int print_table(const peer *ps, uint32_t n, cs_error *err)
{
    static const char *const headers[] = {"ID",    "LISTEN",   "RAFT", "ROLE",
                                          ">TERM", ">APPLIED", ">LAG"};
    ctl_table t;
    int rc = ctl_table_init(&t, 7, headers, err);
    uint64_t lead = 0;
    bool has_lead = leader_applied(ps, n, &lead);
    for (uint32_t i = 0; rc == CS_OK && i < n; i++)
        rc = table_row(&t, &ps[i], has_lead, lead, err);
    if (rc == CS_OK)
        ctl_table_print(&t, stdout, 0);
    ctl_table_free(&t);
    return rc;
}

/* A number, or null where it is not known. */
static json_t *maybe(bool known, uint64_t v)
{
    return known ? json_integer((json_int_t)v) : json_null();
}

/* Attach v to o under key; false when v is NULL or the set fails. */
static bool put(json_t *o, const char *key, json_t *v)
{
    return v != NULL && json_object_set_new(o, key, v) == 0;
}

/* A member as JSON: the configuration's view (id, addresses, voter, the
 * leader's match) and its own word (role, term, indexes; null when it did
 * not answer as itself, with "error" saying why). */
static json_t *peer_json(const peer *p, bool has_lead, uint64_t lead)
{
    bool ok = trusted(p);
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    bool good = put(o, "id", json_integer((json_int_t)p->m->id));
    good &= put(o, "listen", json_string(p->m->listen));
    good &= put(o, "raft", json_string(p->m->raft));
    good &= put(o, "voter", json_boolean(p->m->voter));
    good &= put(o, "role", json_string(!p->answered ? "unreachable"
                                       : ok          ? cs_role_word(p->own.role)
                                                     : "wrong-id"));
    good &= put(o, "term", maybe(ok, p->own.term));
    good &= put(o, "leader", maybe(ok, p->own.leader));
    good &= put(o, "applied_index", maybe(ok, p->own.applied_index));
    good &= put(o, "commit_index", maybe(ok, p->own.commit_index));
    good &= put(o, "last_index", maybe(ok, p->own.last_index));
    good &= put(o, "snapshot_index", maybe(ok, p->own.snapshot_index));
    good &= put(o, "match", json_integer((json_int_t)p->m->match));
    good &= put(o, "lag", maybe(ok && has_lead, ok ? lag_of(p, lead) : 0));
    if (p->why[0] != '\0')
        good &= put(o, "error", json_string(p->why));
    if (!good) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static int print_json(const ctl *c, const cs_members_reply *cfg, const peer *ps, uint32_t n,
                      cs_error *err)
{
    uint64_t lead = 0;
    bool has_lead = leader_applied(ps, n, &lead);
    json_t *o = json_object(), *list = json_array();
    bool ok = o != NULL && list != NULL;
    for (uint32_t i = 0; ok && i < n; i++)
        ok = json_array_append_new(list, peer_json(&ps[i], has_lead, lead)) == 0;
    /* the replica asked, and the configuration as it knows it */
    if (ok) {
        ok = put(o, "server", json_string(c->url));
        ok &= put(o, "id", json_integer((json_int_t)cfg->id));
        ok &= put(o, "leader", json_integer((json_int_t)cfg->leader));
        ok &= put(o, "term", json_integer((json_int_t)cfg->term));
        ok &= put(o, "members", json_incref(list));
    }
    int rc = ok ? ctl_print_json(o, err) : cs_errorf(err, CS_ENOMEM, "out of memory");
    json_decref(list);
    json_decref(o);
    return rc;
}

static int list_members(ctl *c, cs_error *err)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_members_reply cfg = {0};
    peer *ps = NULL;
    int rc = ask_members(c, &cfg, &a, err);
    if (rc != CS_OK) {
        cs_error_wrap(err, rc, "members");
        goto out;
    }
    ps = calloc((size_t)cfg.n + 1, sizeof *ps);
    if (ps == NULL) {
        rc = cs_errorf(err, CS_ENOMEM, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < cfg.n; i++) {
        peer *p = &ps[i];
        p->m = &cfg.members[i];
        p->timeout_ms = c->timeout_ms;
        p->tls = c->tls;
        p->token = c->token;
        cs_arena_init(&p->a);
        if (p->m->id == cfg.id) {
            /* the server asked: its reply is its own word */
            p->own = cfg;
            p->answered = true;
        } else if (pthread_create(&p->thread, NULL, ask_peer, p) == 0) {
            p->started = true;
        } else {
            snprintf(p->why, sizeof p->why, "cannot start a thread to ask it");
        }
    }
    for (uint32_t i = 0; i < cfg.n; i++)
        if (ps[i].started)
            pthread_join(ps[i].thread, NULL);
    rc = c->output == CTL_OUT_JSON ? print_json(c, &cfg, ps, cfg.n, err)
                                   : print_table(ps, cfg.n, err);
out:
    for (uint32_t i = 0; ps != NULL && i < cfg.n; i++)
        cs_arena_free(&ps[i].a);
    free(ps);
    cs_arena_free(&a);
    return rc;
}

/* ---- members add, remove, transfer ---------------------------------------------------- */

/* A member id on the command line: decimal digits only, at least 1 unless
 * `zero_ok`. */
static int parse_id(const char *verb, const char *text, bool zero_ok, uint64_t *out,
                    cs_error *err)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0 || (v == 0 && !zero_ok))
        return cs_errorf(err, CTL_EUSAGE, "members %s: ID '%s' is not a member id (1 or more)",
                         verb, text);
    *out = v;
    return CS_OK;
}

/* Send one change (its body already in `b`) and read the index it
 * committed at. */
static int change(ctl *c, uint32_t type, const msgpack_sbuffer *b, uint64_t *index,
                  cs_error *err)
{
    cs_msg r;
    CS_TRY(ctl_call(c, type, b->data, b->size, &r, err));
    cs_index_reply ir;
    CS_TRY(cs_index_reply_decode(&r.body, &ir, NULL, err));
    *index = ir.index;
    return CS_OK;
}

static int report(const ctl *c, const char *verb, uint64_t id, uint64_t index, cs_error *err)
{
    if (c->output == CTL_OUT_JSON) {
        json_t *o = json_pack("{s:s, s:I, s:I}", "action", verb, "id", (json_int_t)id, "index",
                              (json_int_t)index);
        int rc = o ? ctl_print_json(o, err) : cs_errorf(err, CS_ENOMEM, "out of memory");
        json_decref(o);
        return rc;
    }
    if (strcmp(verb, "add") == 0)
        printf("member %" PRIu64 " added at log index %" PRIu64
               " (a voter once it has caught up)\n", id, index);
    else if (strcmp(verb, "remove") == 0)
        printf("member %" PRIu64 " removed at log index %" PRIu64 "\n", id, index);
    else if (id != 0)
        printf("leadership transferred to member %" PRIu64 "\n", id);
    else
        printf("leadership transferred to the most up-to-date voter\n");
    return CS_OK;
}

static int add_member(ctl *c, const ctl_args *a, cs_error *err)
{
    if (a->argc != 4)
        return cs_errorf(err, CTL_EUSAGE, "members add: give ID LISTEN RAFT");
    cs_member_req q = {0, a->argv[2], a->argv[3]};
    CS_TRY(parse_id("add", a->argv[1], false, &q.id, err));
    /* the server checks them too; here the mistake is the command line's */
    if (cs_member_listen_check("members add: LISTEN", q.listen, strlen(q.listen), err) != CS_OK ||
        cs_member_raft_check("members add: RAFT", q.raft, strlen(q.raft), err) != CS_OK) {
        err->code = CTL_EUSAGE;
        return CTL_EUSAGE;
    }
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    uint64_t index = 0;
    int rc = cs_member_add_req_encode(&pk, &q) == CS_OK
             ? change(c, CS_MSG_MEMBERS_ADD, &b, &index, err)
             : cs_errorf(err, CS_ENOMEM, "out of memory");
    msgpack_sbuffer_destroy(&b);
    if (rc != CS_OK)
        return cs_error_wrap(err, rc, "members add %" PRIu64, q.id);
    return report(c, "add", q.id, index, err);
}

/* remove ID, transfer [ID]: the id-only form. */
static int id_change(ctl *c, const ctl_args *a, const char *verb, uint32_t type, bool optional,
                     cs_error *err)
{
    if (a->argc > 2 || (a->argc < 2 && !optional))
        return cs_errorf(err, CTL_EUSAGE, optional ? "members %s: give at most one ID"
                                                   : "members %s: give one ID", verb);
    cs_member_req q = {0, NULL, NULL};
    if (a->argc == 2)
        CS_TRY(parse_id(verb, a->argv[1], false, &q.id, err));
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    uint64_t index = 0;
    int rc = cs_member_id_req_encode(&pk, &q) == CS_OK
                 ? change(c, type, &b, &index, err)
                 : cs_errorf(err, CS_ENOMEM, "out of memory");
    msgpack_sbuffer_destroy(&b);
    if (rc != CS_OK)
        return q.id ? cs_error_wrap(err, rc, "members %s %" PRIu64, verb, q.id)
                    : cs_error_wrap(err, rc, "members %s", verb);
    return report(c, verb, q.id, index, err);
}

int ctl_cmd_members(ctl *c, const ctl_args *a, cs_error *err)
{
    if (a->argc == 0)
        return list_members(c, err);
    const char *sub = a->argv[0];
    if (strcmp(sub, "add") == 0)
        return add_member(c, a, err);
    if (strcmp(sub, "remove") == 0)
        return id_change(c, a, "remove", CS_MSG_MEMBERS_REMOVE, false, err);
    if (strcmp(sub, "transfer") == 0)
        return id_change(c, a, "transfer", CS_MSG_MEMBERS_TRANSFER, true, err);
    return cs_errorf(err, CTL_EUSAGE, "members: '%s' is not add, remove or transfer", sub);
}
