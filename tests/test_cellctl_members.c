/* test_cellctl_members.c — `cellctl members` (tools/cellctl_members.h): the
 * built binary against fake replicas on 127.0.0.1 that answer `members`,
 * `members.add`, `members.remove` and `members.transfer` with the codecs of
 * proto/membermsg.h, so that what cellctl shows and sends is checked without
 * a replicated cell; against one real cellstated (no --cluster), which
 * lists itself and refuses changes; and its command-line errors, which need
 * no server. The replicated cell end to end is test_replica's and the
 * lead's integration suite's.
 *
 * Each fake is a stand-in server (tests/support.h ts_rep) with the status
 * it claims for itself and the configuration it lists; it records
 * the last change request it was sent. A member whose listen port has no
 * listener stands for a dead replica.
 */
#include <criterion/criterion.h>

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "proto/membermsg.h"
#include "proto/proto.h"
#include "tests/support.h"

/* ---- a fake replica -------------------------------------------------------------- */

typedef struct fake {
    ts_rep *rep;
    const char *url;       /* ts_rep_url(rep) */
    pthread_mutex_t mu;    /* guards what follows */
    cs_members_reply self; /* its answer to members (its list included: borrowed) */
    int change_code;       /* CS_OK: changes answered {"index": change_index}; else this error */
    uint64_t change_index;
    uint32_t last_type;    /* the last change request */
    uint64_t last_id;
    char last_listen[CS_MEMBER_LISTEN_MAX], last_raft[CS_MEMBER_RAFT_MAX];
} fake;

/* Record a change request and pack its reply (an index, or the fake's error). */
static void take_change(fake *f, const cs_msg *m, msgpack_sbuffer *b)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_member_req q = {0, NULL, NULL};
    cs_error err = {0};
    int rc = m->type == CS_MSG_MEMBERS_ADD      ? cs_member_add_req_decode(&m->body, &q, &a, &err)
             : m->type == CS_MSG_MEMBERS_REMOVE ? cs_member_remove_req_decode(&m->body, &q, &a, &err)
                                                : cs_member_transfer_req_decode(&m->body, &q, &a, &err);
    pthread_mutex_lock(&f->mu);
    f->last_type = m->type;
    f->last_id = q.id;
    snprintf(f->last_listen, sizeof f->last_listen, "%s", q.listen ? q.listen : "");
    snprintf(f->last_raft, sizeof f->last_raft, "%s", q.raft ? q.raft : "");
    int code = f->change_code;
    cs_index_reply reply = {f->change_index};
    pthread_mutex_unlock(&f->mu);
    if (rc == CS_OK && code != CS_OK) {
        rc = code;
        snprintf(err.msg, sizeof err.msg, "not the leader (the leader is member 1)");
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, msgpack_sbuffer_write);
    if (rc != CS_OK)
        cs_msg_error(b, m->req, rc, err.msg);
    else if (cs_msg_begin(&pk, m->type, m->req) == CS_OK)
        cs_index_reply_encode(&pk, &reply);
    cs_arena_free(&a);
}

static void answer(void *ctx, const cs_msg *m, msgpack_sbuffer *b)
{
    fake *f = ctx;
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, msgpack_sbuffer_write);
    if (m->type == CS_MSG_MEMBERS && cs_msg_begin(&pk, m->type, m->req) == CS_OK) {
        pthread_mutex_lock(&f->mu);
        cs_members_reply self = f->self;
        pthread_mutex_unlock(&f->mu);
        cs_members_reply_encode(&pk, &self);
    } else if (m->type >= CS_MSG_MEMBERS_ADD && m->type <= CS_MSG_MEMBERS_TRANSFER) {
        take_change(f, m, b);
    } else {
        cs_msg_error(b, m->req, CS_EPROTO, "not served by this test");
    }
}

/* Listen on a free port (f->url). Until fake_set, it answers members with
 * an empty picture and changes with index 0. */
static void fake_start(fake *f)
{
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    f->rep = ts_rep_start(answer, f);
    f->url = ts_rep_url(f->rep);
}

/* What it answers: `self` (borrowed, its list too, until fake_stop) to
 * members; `code` (CS_OK: {"index": index}) to changes. */
static void fake_set(fake *f, const cs_members_reply *self, int code, uint64_t index)
{
    pthread_mutex_lock(&f->mu);
    f->self = *self;
    f->change_code = code;
    f->change_index = index;
    pthread_mutex_unlock(&f->mu);
}

static void fake_stop(fake *f)
{
    ts_rep_stop(f->rep);
    pthread_mutex_destroy(&f->mu);
}

/* ---- running cellctl ------------------------------------------------------------- */

/* Run cellctl with `args` (one shell-quoted string); stdout and stderr
 * into out[0..size) (only stdout when `stdout_only`). Its exit status. */
static int cellctl(const char *args, bool stdout_only, char *out, size_t size)
{
    char bin[256], cmd[2048];
    ts_bin("cellctl", bin, sizeof bin);
    snprintf(cmd, sizeof cmd, stdout_only ? "{ %s %s 2>/dev/null; }" : "%s %s", bin, args);
    return ts_run(cmd, out, size);
}

/* The line of the table whose first column is `id`, split on spaces into
 * at most 8 columns; how many. */
static int row_of(char *table, const char *id, char **cols)
{
    for (char *line = strtok(table, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        size_t n = strlen(id);
        if (strncmp(line, id, n) != 0 || line[n] != ' ')
            continue;
        int k = 0;
        for (char *save, *c = strtok_r(line, " ", &save); c && k < 8; c = strtok_r(NULL, " ", &save))
            cols[k++] = c;
        return k;
    }
    return 0;
}

/* ---- the list ----------------------------------------------------------------------- */

/* Four members: 1 the leader (applied 100), 2 a follower catching up as a
 * non-voter (applied 90), 3 dead (nobody on its port), 4 a replica that
 * answers as member 9 (its listen address is another's). */
typedef struct cell4 {
    fake f1, f2, f4;
    char dead[64];
    cs_member_info members[4];
} cell4;

static void cell4_start(cell4 *c)
{
    snprintf(c->dead, sizeof c->dead, "tcp://127.0.0.1:%d", ts_free_port());
    /* the fakes' URLs are known once they listen: start them, then fill
     * in the configuration they list */
    fake_start(&c->f1);
    fake_start(&c->f2);
    fake_start(&c->f4);
    cs_member_info m[4] = {
        {1, c->f1.url, "127.0.0.1:7610", CS_MEMBER_LEADER, true, 100},
        {2, c->f2.url, "127.0.0.1:7611", CS_MEMBER_FOLLOWER, false, 90},
        {3, c->dead, "127.0.0.1:7612", CS_MEMBER_FOLLOWER, true, 40},
        {4, c->f4.url, "127.0.0.1:7613", CS_MEMBER_FOLLOWER, true, 100},
    };
    memcpy(c->members, m, sizeof m);
    /* what each says of itself; only the leader's list is asked for */
    cs_members_reply r1 = {1, CS_MEMBER_LEADER, 5, 1, 101, 100, 100, 64, c->members, 4};
    cs_members_reply r2 = {2, CS_MEMBER_FOLLOWER, 5, 1, 95, 92, 90, 64, c->members, 4};
    cs_members_reply r4 = {9, CS_MEMBER_FOLLOWER, 5, 1, 101, 100, 100, 64, c->members, 4};
    fake_set(&c->f1, &r1, CS_OK, 0);
    fake_set(&c->f2, &r2, CS_OK, 0);
    fake_set(&c->f4, &r4, CS_OK, 0);
}

static void cell4_stop(cell4 *c)
{
    fake_stop(&c->f1);
    fake_stop(&c->f2);
    fake_stop(&c->f4);
}

Test(cellctl_members, the_table_shows_each_members_own_word, .timeout = 60)
{
    cell4 c;
    cell4_start(&c);
    char args[256], out[8192], copy[8192], *cols[8];
    snprintf(args, sizeof args, "--server %s --timeout 1s members", c.f1.url);
    int st = cellctl(args, false, out, sizeof out);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    cr_expect(strncmp(out, "ID ", 3) == 0 && strstr(out, "ROLE") && strstr(out, "LAG"),
              "a header: %s", out);
    /* ID LISTEN RAFT ROLE TERM APPLIED LAG */
    memcpy(copy, out, sizeof out);
    cr_assert_eq(row_of(copy, "1", cols), 7, "%s", out);
    cr_expect_str_eq(cols[1], c.f1.url);
    cr_expect_str_eq(cols[2], "127.0.0.1:7610");
    cr_expect_str_eq(cols[3], "leader");
    cr_expect_str_eq(cols[4], "5");
    cr_expect_str_eq(cols[5], "100");
    cr_expect_str_eq(cols[6], "0");
    memcpy(copy, out, sizeof out);
    cr_assert_eq(row_of(copy, "2", cols), 7, "%s", out);
    /* its own applied index (90), not the leader's match for it */
    cr_expect_str_eq(cols[3], "follower,non-voter");
    cr_expect_str_eq(cols[5], "90");
    cr_expect_str_eq(cols[6], "10");
    memcpy(copy, out, sizeof out);
    cr_assert_eq(row_of(copy, "3", cols), 7, "%s", out);
    cr_expect_str_eq(cols[1], c.dead);
    cr_expect_str_eq(cols[3], "unreachable");
    cr_expect(strcmp(cols[4], "-") == 0 && strcmp(cols[5], "-") == 0 && strcmp(cols[6], "-") == 0);
    memcpy(copy, out, sizeof out);
    cr_assert_eq(row_of(copy, "4", cols), 7, "%s", out);
    cr_expect_str_eq(cols[3], "wrong-id");
    cr_expect_str_eq(cols[6], "-");
    cell4_stop(&c);
}

Test(cellctl_members, json_gives_every_number_and_says_why_one_is_missing, .timeout = 60)
{
    cell4 c;
    cell4_start(&c);
    char args[256], out[16384];
    snprintf(args, sizeof args, "--server %s --timeout 1s members -o json", c.f1.url);
    int st = cellctl(args, true, out, sizeof out);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    json_error_t je;
    json_t *o = json_loads(out, 0, &je);
    cr_assert_not_null(o, "%s: %s", je.text, out);
    cr_expect_str_eq(json_string_value(json_object_get(o, "server")), c.f1.url);
    cr_expect_eq(json_integer_value(json_object_get(o, "leader")), 1);
    cr_expect_eq(json_integer_value(json_object_get(o, "term")), 5);
    json_t *ms = json_object_get(o, "members");
    cr_assert_eq(json_array_size(ms), 4, "%s", out);
    json_t *m1 = json_array_get(ms, 0), *m2 = json_array_get(ms, 1), *m3 = json_array_get(ms, 2),
           *m4 = json_array_get(ms, 3);
    cr_expect_str_eq(json_string_value(json_object_get(m1, "role")), "leader");
    cr_expect_eq(json_integer_value(json_object_get(m1, "commit_index")), 100);
    cr_expect_eq(json_integer_value(json_object_get(m1, "last_index")), 101);
    cr_expect_eq(json_integer_value(json_object_get(m1, "lag")), 0);
    cr_expect_str_eq(json_string_value(json_object_get(m2, "role")), "follower");
    cr_expect(json_is_false(json_object_get(m2, "voter")));
    cr_expect_eq(json_integer_value(json_object_get(m2, "applied_index")), 90);
    cr_expect_eq(json_integer_value(json_object_get(m2, "commit_index")), 92);
    cr_expect_eq(json_integer_value(json_object_get(m2, "match")), 90);
    cr_expect_eq(json_integer_value(json_object_get(m2, "lag")), 10);
    cr_expect_null(json_object_get(m2, "error"));
    cr_expect_str_eq(json_string_value(json_object_get(m3, "role")), "unreachable");
    cr_expect(json_is_null(json_object_get(m3, "applied_index")));
    cr_expect(json_is_null(json_object_get(m3, "lag")));
    cr_expect_eq(json_integer_value(json_object_get(m3, "match")), 40);
    const char *why = json_string_value(json_object_get(m3, "error"));
    cr_expect(why != NULL && strstr(why, "no answer at") && strstr(why, c.dead), "%s", out);
    cr_expect_str_eq(json_string_value(json_object_get(m4, "role")), "wrong-id");
    why = json_string_value(json_object_get(m4, "error"));
    cr_expect(why != NULL && strstr(why, "answered as member 9, not 4"), "%s", out);
    json_decref(o);
    cell4_stop(&c);
}

Test(cellctl_members, a_single_replica_lists_itself, .timeout = 60)
{
    fake f;
    fake_start(&f);
    cs_member_info self = {1, f.url, "", CS_MEMBER_LEADER, true, 0};
    fake_set(&f, &(cs_members_reply){1, CS_MEMBER_LEADER, 0, 1, 0, 0, 0, 0, &self, 1}, CS_OK, 0);
    char args[256], out[4096], *cols[8];
    snprintf(args, sizeof args, "--server %s members", f.url);
    cr_assert_eq(cellctl(args, false, out, sizeof out), 0, "%s", out);
    cr_assert_eq(row_of(out, "1", cols), 7);
    cr_expect_str_eq(cols[2], "-");
    cr_expect_str_eq(cols[3], "leader");
    cr_expect_str_eq(cols[5], "0");
    cr_expect_str_eq(cols[6], "0");
    fake_stop(&f);
}

/* ---- the changes ---------------------------------------------------------------------- */

Test(cellctl_members, changes_send_their_fields_and_print_the_index, .timeout = 60)
{
    static const cs_members_reply none;
    fake f;
    fake_start(&f);
    fake_set(&f, &none, CS_OK, 1234);
    char args[256], out[4096];
    snprintf(args, sizeof args, "--server %s members add 4 tcp://127.0.0.1:7603 127.0.0.1:7613",
             f.url);
    cr_assert_eq(cellctl(args, false, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "member 4 added at log index 1234") != NULL, "%s", out);
    pthread_mutex_lock(&f.mu);
    cr_expect_eq(f.last_type, CS_MSG_MEMBERS_ADD);
    cr_expect_eq(f.last_id, 4);
    cr_expect_str_eq(f.last_listen, "tcp://127.0.0.1:7603");
    cr_expect_str_eq(f.last_raft, "127.0.0.1:7613");
    pthread_mutex_unlock(&f.mu);

    snprintf(args, sizeof args, "--server %s members remove 2", f.url);
    cr_assert_eq(cellctl(args, false, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "member 2 removed at log index 1234") != NULL, "%s", out);
    pthread_mutex_lock(&f.mu);
    cr_expect(f.last_type == CS_MSG_MEMBERS_REMOVE && f.last_id == 2);
    pthread_mutex_unlock(&f.mu);

    /* transfer without an id: 0, Raft picks */
    fake_set(&f, &none, CS_OK, 0);
    snprintf(args, sizeof args, "--server %s members transfer", f.url);
    cr_assert_eq(cellctl(args, false, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "most up-to-date voter") != NULL, "%s", out);
    pthread_mutex_lock(&f.mu);
    cr_expect(f.last_type == CS_MSG_MEMBERS_TRANSFER && f.last_id == 0);
    pthread_mutex_unlock(&f.mu);

    snprintf(args, sizeof args, "--server %s -o json members transfer 3", f.url);
    cr_assert_eq(cellctl(args, true, out, sizeof out), 0, "%s", out);
    json_t *o = json_loads(out, 0, NULL);
    cr_assert_not_null(o, "%s", out);
    cr_expect_str_eq(json_string_value(json_object_get(o, "action")), "transfer");
    cr_expect_eq(json_integer_value(json_object_get(o, "id")), 3);
    cr_expect_eq(json_integer_value(json_object_get(o, "index")), 0);
    json_decref(o);
    fake_stop(&f);
}

Test(cellctl_members, a_refused_change_names_the_servers_reason, .timeout = 60)
{
    static const cs_members_reply none;
    fake f;
    fake_start(&f);
    fake_set(&f, &none, CS_ENOTLEADER, 0);
    char args[256], out[4096];
    snprintf(args, sizeof args, "--server %s members remove 2", f.url);
    cr_expect_eq(cellctl(args, false, out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "members remove 2: server: not the leader (the leader is member 1)"),
              "%s", out);
    fake_stop(&f);
}

/* ---- the command line -------------------------------------------------------------- */

/* cellctl refuses these before it sends anything: exit 2, the problem named
 * (the server's port has no listener). */
Test(cellctl_members, bad_arguments_are_named_without_a_server, .timeout = 60)
{
    static const struct {
        const char *args, *says;
    } cases[] = {
        {"members add", "members add: give ID LISTEN RAFT"},
        {"members add 4 tcp://a:1", "members add: give ID LISTEN RAFT"},
        {"members add 0 tcp://a:1 a:2", "members add: ID '0' is not a member id (1 or more)"},
        {"members add x4 tcp://a:1 a:2", "ID 'x4' is not a member id"},
        {"members add +4 tcp://a:1 a:2", "ID '+4' is not a member id"},
        {"members add 18446744073709551616 tcp://a:1 a:2", "is not a member id"},
        {"members add 4 127.0.0.1:7600 a:2",
         "members add: LISTEN is '127.0.0.1:7600', not tcp://HOST:PORT"},
        {"members add 4 tcp://a:0 a:2", "LISTEN is 'tcp://a:0'"},
        {"members add 4 tcp://a:1 tcp://a:2", "members add: RAFT is 'tcp://a:2', not HOST:PORT"},
        {"members add 4 tcp://a:1 a", "RAFT is 'a', not HOST:PORT"},
        {"members add 4 tcp://a:1 a:2 extra", "members add: give ID LISTEN RAFT"},
        {"members remove", "members remove: give one ID"},
        {"members remove 0", "members remove: ID '0' is not a member id"},
        {"members remove 1 2", "members remove: give one ID"},
        {"members transfer 1 2", "members transfer: give at most one ID"},
        {"members transfer 0", "members transfer: ID '0' is not a member id"},
        {"members promote 2", "members: 'promote' is not add, remove or transfer"},
        {"members --deadline 1s", "--deadline does not apply"},
    };
    char server[64];
    snprintf(server, sizeof server, "tcp://127.0.0.1:%d", ts_free_port());
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char args[256], out[4096];
        snprintf(args, sizeof args, "--server %s --timeout 200ms %s", server, cases[i].args);
        int st = cellctl(args, false, out, sizeof out);
        cr_expect_eq(st, 2, "%s: exit %d: %s", cases[i].args, st, out);
        cr_expect(strstr(out, cases[i].says) != NULL, "%s: '%s' does not say '%s'",
                  cases[i].args, out, cases[i].says);
    }
    /* a well-formed request to nobody: a failure (1), naming the server */
    char args[256], out[4096];
    snprintf(args, sizeof args, "--server %s --timeout 200ms members", server);
    cr_expect_eq(cellctl(args, false, out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "members: cannot reach cellstated at") && strstr(out, server), "%s", out);
}

/* ---- against a real cellstated of one replica -------------------------------------- */

Test(cellctl_members, one_cellstated_lists_itself_and_refuses_changes, .timeout = 60)
{
    ts_daemon d;
    ts_daemon_setup(&d, NULL, NULL);
    char args[256], out[4096], *cols[8];
    snprintf(args, sizeof args, "--server %s members", d.url);
    int st = cellctl(args, false, out, sizeof out);
    cr_expect_eq(st, 0, "%s", out);
    cr_expect_eq(row_of(out, "1", cols), 7, "%s", out);
    cr_expect_str_eq(cols[1], d.url);
    cr_expect_str_eq(cols[3], "leader");
    cr_expect_str_eq(cols[6], "0");
    snprintf(args, sizeof args, "--server %s members add 2 tcp://127.0.0.1:7601 127.0.0.1:7611",
             d.url);
    st = cellctl(args, false, out, sizeof out);
    cr_expect_eq(st, 1, "%s", out);
    cr_expect(strstr(out, "members add 2: server: ") && strstr(out, "without --cluster"), "%s",
              out);
    ts_daemon_teardown(&d);
}
