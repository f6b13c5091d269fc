/* members.c — the cell's members as clients see them: `members` (a read,
 * answered by any replica from its own view) and the membership changes
 * `members.add`, `members.remove`, `members.transfer` (the leader's: a
 * follower forwards them, forward.c). A cellstated without --cluster is a
 * cell of one member, itself, which leads, and has nothing to change. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/membermsg.h"
#include "server/internal.h"
#include "server/replica.h"

/* How long a membership change may take to commit (an added member's
 * catch-up rounds included) before the operator is told. */
#define CHANGE_TIMEOUT_MS 30000

/* One replica, no --cluster: itself, leading, at its bound address. */
static int members_single(worker *w, msgpack_packer *pk, cs_error *err)
{
    char url[CS_MEMBER_LISTEN_MAX];
    CS_TRY(cs_server_bound_url(w->s, url, sizeof url, err));
    cs_member_info me = {1, url, "", CS_MEMBER_LEADER, true, 0};
    cs_members_reply r = {.id = 1, .role = CS_MEMBER_LEADER, .leader = 1, .members = &me, .n = 1};
    return cs_members_reply_encode(pk, &r) == CS_OK
               ? CS_OK
               : cs_errorf(err, CS_ENOMEM, "reply: out of memory");
}

int srv_members(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_server *s = w->s;
    if (!s->replicated)
        return members_single(w, pk, err);
    cs_replica_status st;
    int rc = srv_replica_status(s, &st, err);
    if (rc != CS_OK)
        return rc;
    cs_member_info *m = calloc(st.nmembers ? st.nmembers : 1, sizeof *m);
    if (m == NULL) {
        free(st.members);
        return cs_errorf(err, CS_ENOMEM, "members: out of memory");
    }
    for (size_t i = 0; i < st.nmembers; i++) {
        const cs_member_status *x = &st.members[i];
        m[i] = (cs_member_info){x->m.id, x->m.listen, x->m.raft, (uint8_t)x->role, x->voter,
                                x->match};
    }
    cs_members_reply r = {
        .id = st.id,
        .role = (uint8_t)st.role,
        .term = st.term,
        .leader = st.leader,
        .last_index = st.last_index,
        .commit_index = st.commit_index,
        .applied_index = st.applied_index,
        .snapshot_index = st.snapshot_index,
        .members = m,
        .n = (uint32_t)st.nmembers,
    };
    rc = cs_members_reply_encode(pk, &r) == CS_OK
             ? CS_OK
             : cs_errorf(err, CS_ENOMEM, "reply: out of memory");
    free(m);
    free(st.members);
    return rc;
}

/* A membership change that committed, in the audit log: "member 4
 * tcp://10.0.0.4:7600 raft 10.0.0.4:7610", "member 4", "to member 4" (a
 * transfer to id 0 lets Raft pick: "to any member"). */
static void audit_change(worker *w, const cs_member_req *req)
{
    cs_server *s = w->s;
    char t[2 * CS_AUDIT_TARGET_MAX]; /* cut by cs_audit_add */
    if (w->msg.type == CS_MSG_MEMBERS_ADD)
        snprintf(t, sizeof t, "member %llu %s raft %s", (unsigned long long)req->id, req->listen,
                 req->raft);
    else if (w->msg.type == CS_MSG_MEMBERS_REMOVE)
        snprintf(t, sizeof t, "member %llu", (unsigned long long)req->id);
    else if (req->id != 0)
        snprintf(t, sizeof t, "to member %llu", (unsigned long long)req->id);
    else
        snprintf(t, sizeof t, "to any member");
    pthread_mutex_lock(&s->mu);
    uint64_t v = s->version;
    pthread_mutex_unlock(&s->mu);
    cs_audit_buf b;
    cs_audit_buf_init(&b);
    cs_audit_add(&b, wall_ms(), w->who, cs_msg_name(w->msg.type), t, v);
    cs_audit_flush(s->audit, &b);
    cs_audit_buf_free(&b);
}

/* The applied index after a change, for its reply. */
static uint64_t applied_now(cs_server *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t i = s->applied_index;
    pthread_mutex_unlock(&s->mu);
    return i;
}

int srv_members_change(worker *w, msgpack_packer *pk, cs_error *err)
{
    cs_server *s = w->s;
    uint32_t type = w->msg.type;
    if (!s->replicated)
        return cs_errorf(err, CS_ESTATE,
                         "%s: this cellstated runs without --cluster, a cell of one member; "
                         "start the replicas with --cluster FILE --id N",
                         cs_msg_name(type));
    cs_arena a;
    cs_arena_init(&a);
    cs_member_req req;
    int rc = type == CS_MSG_MEMBERS_ADD      ? cs_member_add_req_decode(&w->msg.body, &req, &a, err)
             : type == CS_MSG_MEMBERS_REMOVE ? cs_member_remove_req_decode(&w->msg.body, &req, &a, err)
                                             : cs_member_transfer_req_decode(&w->msg.body, &req, &a, err);
    if (rc == CS_OK) {
        pthread_rwlock_rdlock(&s->store_lk);
        if (s->replica == NULL) {
            rc = cs_errorf(err, CS_EUNAVAIL, "the replica is stopping");
        } else if (type == CS_MSG_MEMBERS_ADD) {
            cs_member m;
            memset(&m, 0, sizeof m);
            m.id = req.id;
            snprintf(m.listen, sizeof m.listen, "%s", req.listen);
            snprintf(m.raft, sizeof m.raft, "%s", req.raft);
            rc = cs_replica_add(s->replica, &m, CHANGE_TIMEOUT_MS, err);
        } else if (type == CS_MSG_MEMBERS_REMOVE) {
            rc = cs_replica_remove(s->replica, req.id, CHANGE_TIMEOUT_MS, err);
        } else {
            rc = cs_replica_transfer(s->replica, req.id, CHANGE_TIMEOUT_MS, err);
        }
        pthread_rwlock_unlock(&s->store_lk);
    }
    if (rc == CS_OK)
        audit_change(w, &req);
    cs_arena_free(&a);
    if (rc != CS_OK)
        return rc;
    cs_index_reply r = {type == CS_MSG_MEMBERS_TRANSFER ? 0 : applied_now(s)};
    return cs_index_reply_encode(pk, &r) == CS_OK
               ? CS_OK
               : cs_errorf(err, CS_ENOMEM, "reply: out of memory");
}
