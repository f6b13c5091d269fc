/* membermsg.h — the codecs of a replicated cell's membership on the wire
 * (docs/protocol.md §5.21-§5.24): `members` (23), the status of the replica
 * asked and the configuration it knows; `members.add` (24), `members.remove`
 * (25) and `members.transfer` (26), the operator's changes, each answered
 * with the log index it committed at. Conventions (ownership, errors,
 * defaults): proto/msg.h.
 *
 * Why the wire has its own names for roles: proto/ sits below server/, so it
 * cannot take cs_role from server/replica.h. The numbers are the same
 * (0 unavailable, 1 follower, 2 candidate, 3 leader), and on the wire a role
 * travels as its word, as every enumeration of the protocol does (§4).
 *
 * Why the addresses are checked here: a member's `listen` is where every
 * client and every other replica will send requests, and its `raft` where
 * Raft's TCP transport dials; a typo accepted at `members.add` would be
 * replicated into the configuration of every replica. Both ends use the same
 * checks: cellctl before it sends, the server's decoder when it receives.
 *
 * Used by cellstated (the lead's replica handlers) and by `cellctl members`.
 */
#ifndef CS_MEMBERMSG_H
#define CS_MEMBERMSG_H

#include "proto/msg.h"

/* A member's addresses, NUL included, as server/replica.h bounds them:
 * `listen` under 128 bytes, `raft` under 64. (The same definitions as
 * replica.h's, so that a file may include both.) */
#define CS_MEMBER_LISTEN_MAX 128
#define CS_MEMBER_RAFT_MAX 64
/* The most members a `members` reply may list (a cell has 1, 3 or 5; a few
 * more while members are added and removed). */
#define CS_MEMBERS_MAX 64

/* A replica's role, numbered as server/replica.h's cs_role. */
typedef enum cs_member_role {
    CS_MEMBER_UNAVAILABLE = 0, /* starting, stopping, or removed from the cell */
    CS_MEMBER_FOLLOWER = 1,
    CS_MEMBER_CANDIDATE = 2,
    CS_MEMBER_LEADER = 3,
    CS_MEMBER_ROLE_COUNT
} cs_member_role;

/* The role's word on the wire ("unavailable", "follower", "candidate",
 * "leader"); "unknown" for a number outside the table. Static. */
const char *cs_role_word(uint8_t role);
/* The role named by s[0..len): CS_OK and *out, or CS_EINVAL (no message:
 * the caller names the field). */
int cs_role_parse(const char *s, size_t len, uint8_t *out);

/* Address checks, for the decoders below and for cellctl's arguments. `what`
 * starts the message ("field 'listen'", "LISTEN"); s[0..len) is borrowed.
 *   listen: tcp://HOST:PORT, tls+tcp://HOST:PORT or ipc://PATH, under
 *           CS_MEMBER_LISTEN_MAX bytes;
 *   raft:   HOST:PORT, under CS_MEMBER_RAFT_MAX bytes;
 * HOST is a name, an IPv4 address or a bracketed IPv6 one ([::1]); PORT
 * 1..65535; no spaces or control bytes. CS_EINVAL naming what is wrong
 * ("field 'raft' is '127.0.0.1', not HOST:PORT"). */
int cs_member_listen_check(const char *what, const char *s, size_t len, cs_error *err);
int cs_member_raft_check(const char *what, const char *s, size_t len, cs_error *err);

/* ---- members (23) ------------------------------------------------------------
 * The request is empty ({}: cs_empty_req_*, proto/readmsg.h). The reply is
 * the picture the replica asked has (server/replica.h cs_replica_status):
 * {"id", "role", "term", "leader", "last_index", "commit_index",
 *  "applied_index", "snapshot_index", "members": [member, ...]}
 * each member {"id", "listen", "raft", "role", "voter", "match"}. Every key
 * is required and written. A member's role is as this replica knows it (the
 * leader is "leader", the others "follower"): ask each member for its own. */
typedef struct cs_member_info {
    uint64_t id;                /* >= 1 */
    const char *listen, *raft;  /* decode: in the arena; "" when not known */
    uint8_t role;               /* cs_member_role */
    bool voter;
    uint64_t match; /* the leader's view of the index replicated there; 0 on a follower */
} cs_member_info;

typedef struct cs_members_reply {
    uint64_t id;   /* the replica that answered */
    uint8_t role;  /* cs_member_role */
    uint64_t term;
    uint64_t leader; /* the leader's id; 0: none known */
    uint64_t last_index, commit_index, applied_index, snapshot_index;
    cs_member_info *members; /* encode: borrowed; decode: in the arena */
    uint32_t n;              /* at most CS_MEMBERS_MAX */
} cs_members_reply;

int cs_members_reply_encode(msgpack_packer *pk, const cs_members_reply *in);
/* CS_EPROTO for a wrong type ("members reply: field 'term' is not an
 * unsigned integer", "members reply: members[2]: field 'voter' is not a
 * boolean"), CS_EINVAL for a wrong value (an unknown role word, a member id
 * 0, an address too long). */
int cs_members_reply_decode(const msgpack_object *o, cs_members_reply *out, cs_arena *a,
                            cs_error *err);

/* ---- members.add (24), members.remove (25), members.transfer (26) -----------
 * add:      {"id", "listen", "raft"}: every field required and checked
 *           (id >= 1, the addresses by the checks above);
 * remove:   {"id"}, id >= 1;
 * transfer: {"id"}, 0 (or absent) = let Raft pick the most up-to-date voter.
 * `listen` and `raft` are NULL in the id-only forms. */
typedef struct cs_member_req {
    uint64_t id;
    const char *listen, *raft; /* decode: in the arena */
} cs_member_req;

int cs_member_add_req_encode(msgpack_packer *pk, const cs_member_req *in);
int cs_member_add_req_decode(const msgpack_object *o, cs_member_req *out, cs_arena *a,
                             cs_error *err);
/* {"id": in->id}, for remove and transfer alike. */
int cs_member_id_req_encode(msgpack_packer *pk, const cs_member_req *in);
int cs_member_remove_req_decode(const msgpack_object *o, cs_member_req *out, cs_arena *a,
                                cs_error *err);
int cs_member_transfer_req_decode(const msgpack_object *o, cs_member_req *out, cs_arena *a,
                                  cs_error *err);

/* {"index": uint}: the reply of each of the three: the leader's applied
 * index once the change committed, at or after the change's own entry (0
 * for transfer, which writes no entry). */
typedef struct cs_index_reply {
    uint64_t index;
} cs_index_reply;
int cs_index_reply_encode(msgpack_packer *pk, const cs_index_reply *in);
int cs_index_reply_decode(const msgpack_object *o, cs_index_reply *out, cs_arena *a,
                          cs_error *err);

#endif
