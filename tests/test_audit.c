/* test_audit.c — the audit log (server/audit.h) and `cellctl audit`.
 *
 * Unit: the module on a temporary directory — entries read back oldest
 * first with their filters, a torn or overlong line skipped, rotation, an
 * error counted while appends go on. Integration: a real cellstated on
 * 127.0.0.1 (tests/support.h ts_daemon) — the writes a cell takes are in
 * the log in order with their actions, targets and versions, a refused
 * write is not, hostile names stay JSON, the request's filters and its
 * errors; and the cellctl binary, which merges two servers' entries. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/client.h"
#include "proto/jobmsg.h"
#include "proto/proto.h"
#include "proto/readmsg.h"
#include "server/audit.h"
#include "server/server.h"
#include "spec/jobspec.h"
#include "tests/support.h"
#include "txn/txn.h"

/* Criterion's runner now and then loses a 48-byte record of its own when
 * two tests run side by side, and LeakSanitizer then fails the binary: the
 * stack lies wholly in libcriterion. Suppressed as test_prom does. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libcriterion.so\n"; }

/* ---- the module ----------------------------------------------------------------------- */

static cs_audit *open_in(const char *dir, uint64_t max)
{
    cs_audit *a = NULL;
    cs_error err = {0};
    cr_assert_eq(cs_audit_open(dir, max, &a, &err), CS_OK, "%s", err.msg);
    return a;
}

/* Append one entry in a group of its own. */
static void add1(cs_audit *a, uint64_t t, const char *who, const char *action, const char *target,
                 uint64_t v)
{
    cs_audit_buf b;
    cs_audit_buf_init(&b);
    cs_audit_add(&b, t, who, action, target, v);
    cr_assert_eq(b.n, 1);
    cs_audit_flush(a, &b);
    cr_assert_eq(b.len, 0, "a flush empties the buffer");
    cs_audit_buf_free(&b);
}

typedef struct got {
    cs_arena ar;
    cs_audit_entry *e;
    uint32_t n;
    bool more;
} got;

static void read_q(cs_audit *a, const cs_audit_req *q, got *g)
{
    cs_arena_init(&g->ar);
    cs_error err = {0};
    cr_assert_eq(cs_audit_read(a, q, &g->ar, &g->e, &g->n, &g->more, &err), CS_OK, "%s", err.msg);
}

static char *path_in(const char *dir, const char *name)
{
    char *p = NULL;
    cr_assert(asprintf(&p, "%s/%s", dir, name) > 0);
    return p;
}

TestSuite(audit_file, .init = ts_tmp_setup, .fini = ts_tmp_teardown, .timeout = 60);

Test(audit_file, entries_come_back_oldest_first_with_filters)
{
    cs_audit *a = open_in(ts_tmp, 0);
    static const char *const who[] = {"agent:m1", "agent:m2", "operator",
                                      "scheduler.batch:cell-batch", "agent:m10"};
    /* One group of five (one write), then five alone. */
    cs_audit_buf b;
    cs_audit_buf_init(&b);
    for (int i = 0; i < 5; i++) {
        char t[32];
        snprintf(t, sizeof t, "entry %d", i);
        cs_audit_add(&b, 1000 + (uint64_t)i, who[i], i % 2 ? "job.kill" : "commit", t,
                     (uint64_t)i + 1);
    }
    cr_assert_eq(b.n, 5);
    cs_audit_flush(a, &b);
    cs_audit_buf_free(&b);
    for (int i = 5; i < 10; i++) {
        char t[32];
        snprintf(t, sizeof t, "entry %d", i);
        add1(a, 1000 + (uint64_t)i, who[i % 5], i % 2 ? "job.kill" : "commit", t, (uint64_t)i + 1);
    }

    got g;
    read_q(a, &(cs_audit_req){.limit = 100}, &g);
    cr_assert_eq(g.n, 10);
    cr_assert_not(g.more);
    for (uint32_t i = 0; i < 10; i++) {
        char t[32];
        snprintf(t, sizeof t, "entry %u", i);
        cr_assert_str_eq(g.e[i].target, t, "oldest first");
        cr_assert_eq(g.e[i].time_ms, 1000 + i);
        cr_assert_eq(g.e[i].version, i + 1);
        cr_assert_str_eq(g.e[i].who, who[i % 5]);
    }
    cs_arena_free(&g.ar);

    /* The newest three, and "more". */
    read_q(a, &(cs_audit_req){.limit = 3}, &g);
    cr_assert_eq(g.n, 3);
    cr_assert(g.more);
    cr_assert_str_eq(g.e[0].target, "entry 7");
    cr_assert_str_eq(g.e[2].target, "entry 9");
    cs_arena_free(&g.ar);

    /* Who as a prefix at a boundary: "agent" and "agent:" are every agent,
     * "agent:m1" one agent (not agent:m10). */
    read_q(a, &(cs_audit_req){.limit = 100, .who = "agent"}, &g);
    cr_assert_eq(g.n, 6);
    cs_arena_free(&g.ar);
    read_q(a, &(cs_audit_req){.limit = 100, .who = "agent:"}, &g);
    cr_assert_eq(g.n, 6);
    cs_arena_free(&g.ar);
    read_q(a, &(cs_audit_req){.limit = 100, .who = "agent:m1"}, &g);
    cr_assert_eq(g.n, 2);
    cr_assert_str_eq(g.e[0].target, "entry 0");
    cr_assert_str_eq(g.e[1].target, "entry 5");
    cs_arena_free(&g.ar);
    read_q(a, &(cs_audit_req){.limit = 100, .who = "scheduler"}, &g);
    cr_assert_eq(g.n, 2);
    cs_arena_free(&g.ar);
    read_q(a, &(cs_audit_req){.limit = 100, .who = "oper"}, &g);
    cr_assert_eq(g.n, 0, "a prefix that ends inside a part matches nothing");
    cs_arena_free(&g.ar);

    /* Action exactly; since. */
    read_q(a, &(cs_audit_req){.limit = 100, .action = "job.kill"}, &g);
    cr_assert_eq(g.n, 5);
    for (uint32_t i = 0; i < g.n; i++)
        cr_assert_str_eq(g.e[i].action, "job.kill");
    cs_arena_free(&g.ar);
    read_q(a, &(cs_audit_req){.limit = 100, .action = "job"}, &g);
    cr_assert_eq(g.n, 0);
    cs_arena_free(&g.ar);
    read_q(a, &(cs_audit_req){.limit = 100, .since = 1007}, &g);
    cr_assert_eq(g.n, 3);
    cr_assert_str_eq(g.e[0].target, "entry 7");
    cr_assert_not(g.more);
    cs_arena_free(&g.ar);
    read_q(a, &(cs_audit_req){.limit = 2, .since = 1004, .action = "commit"}, &g);
    cr_assert_eq(g.n, 2);
    cr_assert(g.more, "entry 4 matched too");
    cr_assert_str_eq(g.e[0].target, "entry 6");
    cs_arena_free(&g.ar);
    cs_audit_close(a);
}

Test(audit_file, who_matches_at_a_boundary)
{
    cr_assert(cs_audit_who_matches("agent:m1", "agent:m1"));
    cr_assert(cs_audit_who_matches("agent:m1", "agent"));
    cr_assert(cs_audit_who_matches("agent:m1", "agent:"));
    cr_assert(cs_audit_who_matches("scheduler.batch:cell-batch", "scheduler"));
    cr_assert(cs_audit_who_matches("scheduler.batch:cell-batch", "scheduler.batch"));
    cr_assert(cs_audit_who_matches("operator", ""));
    cr_assert_not(cs_audit_who_matches("agent:m10", "agent:m1"));
    cr_assert_not(cs_audit_who_matches("anonymous", "anon"));
    cr_assert_not(cs_audit_who_matches("agent", "agent:m1"));
}

Test(audit_file, every_line_is_json_whatever_the_text)
{
    cs_audit *a = open_in(ts_tmp, 0);
    /* Quotes, a backslash, a newline, a tab, a control character, UTF-8,
     * and bytes that are not UTF-8 (a lone continuation, a cut sequence). */
    const char *hostile = "we\"b\\\n\tx\x01 \xc3\xa9\xe2\x82\xac \x80 \xe2\x82";
    add1(a, 5, "operator", "job.submit", hostile, 1);
    add1(a, 6, hostile, "job.kill", "job 1", 2);
    char long_target[600];
    memset(long_target, '"', sizeof long_target - 1);
    long_target[sizeof long_target - 1] = '\0';
    add1(a, 7, "operator", "job.note", long_target, 3);
    /* 254 bytes and a 2-byte character across the bound: cut before it. */
    char cut[300];
    memset(cut, 'a', 254);
    memcpy(cut + 254, "\xc3\xa9", 3);
    add1(a, 8, "operator", "job.note", cut, 4);
    cs_audit_close(a);

    char *path = path_in(ts_tmp, "audit.log");
    FILE *f = fopen(path, "r");
    cr_assert(f != NULL);
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    json_t *first = NULL;
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        cr_assert(o != NULL, "line %d is not JSON (%s): %s", n + 1, je.text, line);
        cr_assert(json_is_integer(json_object_get(o, "time")));
        cr_assert(json_is_integer(json_object_get(o, "version")));
        if (n == 0)
            first = o;
        else
            json_decref(o);
        n++;
    }
    free(line);
    fclose(f);
    free(path);
    cr_assert_eq(n, 4, "one line per entry: the newline in the text is escaped");
    /* The valid UTF-8 stays itself; each byte that is not becomes U+FFFD. */
    cr_assert_str_eq(json_string_value(json_object_get(first, "target")),
                     "we\"b\\\n\tx\x01 \xc3\xa9\xe2\x82\xac \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd");
    json_decref(first);

    /* And it reads back through the module, the target cut at 255 bytes. */
    a = open_in(ts_tmp, 0);
    got g;
    read_q(a, &(cs_audit_req){.limit = 10}, &g);
    cr_assert_eq(g.n, 4);
    cut[254] = '\0';
    cr_assert_str_eq(g.e[3].target, cut, "cut at a character's boundary");
    cr_assert_str_eq(g.e[1].who,
                     "we\"b\\\n\tx\x01 \xc3\xa9\xe2\x82\xac \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd");
    cr_assert_eq(strlen(g.e[2].target), CS_AUDIT_TARGET_MAX);
    cs_arena_free(&g.ar);
    cs_audit_close(a);
}

/* Write `text` (len bytes) at the end of DIR/audit.log. */
static void append_raw(const char *dir, const char *text, size_t len)
{
    char *path = path_in(dir, "audit.log");
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    free(path);
}

Test(audit_file, a_torn_or_overlong_line_is_skipped)
{
    cs_audit *a = open_in(ts_tmp, 0);
    add1(a, 1, "operator", "job.kill", "first", 1);
    cs_audit_close(a);
    /* A line longer than the reader's chunk, then a line torn by a crash. */
    size_t big = 200 * 1024;
    char *junk = malloc(big + 1);
    memset(junk, 'x', big);
    junk[big] = '\n';
    append_raw(ts_tmp, junk, big + 1);
    free(junk);
    /* An entry of another form (keys reordered, spaces): parsed whole. */
    static const char other[] = "{\"version\": 2, \"time\": 2, \"who\": \"operator\", "
                                "\"action\": \"job.kill\", \"target\": \"other\"}\n";
    append_raw(ts_tmp, other, sizeof other - 1);
    append_raw(ts_tmp, "{\"time\":2,\"who\":\"op", 19);

    a = open_in(ts_tmp, 0);
    add1(a, 3, "operator", "job.kill", "after", 3);
    got g;
    read_q(a, &(cs_audit_req){.limit = 10}, &g);
    cr_assert_eq(g.n, 3, "the torn line is ended, not joined to the next entry (%u: %s)", g.n,
                 g.n > 0 ? g.e[0].target : "");
    cr_assert_str_eq(g.e[0].target, "first");
    cr_assert_str_eq(g.e[1].target, "other");
    cr_assert_str_eq(g.e[2].target, "after");
    cs_arena_free(&g.ar);
    read_q(a, &(cs_audit_req){.limit = 10, .who = "operator", .action = "job.kill"}, &g);
    cr_assert_eq(g.n, 3, "the filters hold for the other form too");
    cs_arena_free(&g.ar);
    cr_assert_eq(cs_audit_errors(a), 0);
    cs_audit_close(a);
}

Test(audit_file, rotation_keeps_the_newest_across_two_files)
{
    cs_audit *a = open_in(ts_tmp, 1000);
    for (int i = 0; i < 60; i++) {
        char t[32];
        snprintf(t, sizeof t, "entry %d", i);
        add1(a, 100 + (uint64_t)i, "operator", "job.kill", t, (uint64_t)i + 1);
    }
    struct stat st, st1;
    char *p0 = path_in(ts_tmp, "audit.log"), *p1 = path_in(ts_tmp, "audit.log.1");
    cr_assert_eq(stat(p0, &st), 0);
    cr_assert_eq(stat(p1, &st1), 0, "rotated");
    cr_assert_leq(st.st_size, 1000);
    cr_assert_leq(st1.st_size, 1000);
    cr_assert_eq(st.st_mode & 0777, 0600);
    free(p0);
    free(p1);
    got g;
    read_q(a, &(cs_audit_req){.limit = 10000}, &g);
    /* Both files, and nothing but the newest: consecutive, ending at 59. */
    cr_assert_gt(g.n, 10);
    cr_assert_lt(g.n, 60, "older files are gone");
    cr_assert_str_eq(g.e[g.n - 1].target, "entry 59");
    for (uint32_t i = 1; i < g.n; i++)
        cr_assert_eq(g.e[i].version, g.e[i - 1].version + 1, "no gap between the two files");
    cr_assert_not(g.more);
    cs_arena_free(&g.ar);
    cs_audit_close(a);
}

Test(audit_file, a_failed_rotation_is_counted_and_appends_go_on)
{
    /* audit.log.1 a directory that is not empty: the rename fails. */
    char *p1 = path_in(ts_tmp, "audit.log.1"), *inner = path_in(ts_tmp, "audit.log.1/x");
    cr_assert_eq(mkdir(p1, 0700), 0);
    int fd = open(inner, O_WRONLY | O_CREAT, 0600);
    cr_assert(fd >= 0);
    close(fd);
    cs_audit *a = open_in(ts_tmp, 200);
    for (int i = 0; i < 5; i++)
        add1(a, 10 + (uint64_t)i, "operator", "job.kill", "a target of some length", (uint64_t)i);
    cr_assert_gt(cs_audit_errors(a), 0, "the failed rename is counted");
    got g;
    read_q(a, &(cs_audit_req){.limit = 100}, &g);
    cr_assert_eq(g.n, 5, "every entry was still appended");
    cs_arena_free(&g.ar);
    cs_audit_close(a);
    free(p1);
    free(inner);
}

/* ---- a real cellstated ------------------------------------------------------------------ */

static ts_daemon d1, d2;

static void setup(void) { ts_daemon_setup(&d1, NULL, NULL); }

static void teardown(void)
{
    ts_daemon_teardown(&d1);
    ts_daemon_teardown(&d2);
}

TestSuite(audit, .init = setup, .fini = teardown, .timeout = 120);

static uint64_t reply_u64(const cs_msg *r, const char *key)
{
    uint64_t v = 0;
    cs_error err = {0};
    cr_assert_eq(cs_obj_u64(&r->body, key, true, UINT64_MAX, &v, &err), CS_OK, "%s", err.msg);
    return v;
}

/* Send `b` (destroyed) as a request of `type`; its code, the reply in *r. */
static int send_req(cs_client *c, uint32_t type, msgpack_sbuffer *b, cs_msg *r, cs_error *err)
{
    int rc = cs_client_callb(c, type, b, r, err);
    msgpack_sbuffer_destroy(b);
    return rc;
}

#define PACKER(b, pk)                                                                     \
    msgpack_sbuffer b;                                                                    \
    msgpack_sbuffer_init(&b);                                                             \
    msgpack_packer pk;                                                                    \
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write)

/* machine.register of `name` (any bytes): its id and the version. */
static cs_id add_machine(cs_client *c, const char *name, uint64_t *version)
{
    PACKER(b, pk);
    ts_pack_machine(&pk, name, 0);
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(send_req(c, CS_MSG_MACHINE_REGISTER, &b, &r, &err), CS_OK, "%s", err.msg);
    if (version != NULL)
        *version = reply_u64(&r, "version");
    return reply_u64(&r, "id");
}

/* job.submit of a small service job named `name` (any bytes). */
static cs_id submit(cs_client *c, const char *name, uint64_t *version)
{
    static const char spec_json[] = "{\"name\": \"x\", \"kind\": \"service\", \"count\": 2, "
                                    "\"cmd\": \"sleep 100\", \"resources\": {\"cpu\": 0.25, "
                                    "\"mem\": 64}}";
    cs_jobspec spec;
    cs_error err = {0};
    cr_assert_eq(cs_jobspec_parse(spec_json, strlen(spec_json), &spec, &err), CS_OK, "%s", err.msg);
    cs_job j = spec.job;
    j.name = name;
    PACKER(b, pk);
    cr_assert_eq(cs_job_submit_req_encode(&pk, &j), CS_OK);
    cs_msg r;
    cr_assert_eq(send_req(c, CS_MSG_JOB_SUBMIT, &b, &r, &err), CS_OK, "%s", err.msg);
    cs_jobspec_free(&spec);
    if (version != NULL)
        *version = reply_u64(&r, "version");
    return reply_u64(&r, "id");
}

/* job.kill of job `id`: its code (the version in *version on CS_OK). */
static int kill_job(cs_client *c, cs_id id, uint64_t *version)
{
    PACKER(b, pk);
    cs_ref ref = cs_ref_id(id);
    cr_assert_eq(cs_ref_req_encode(&pk, "job", &ref), CS_OK);
    cs_msg r;
    cs_error err = {0};
    int rc = send_req(c, CS_MSG_JOB_KILL, &b, &r, &err);
    if (rc == CS_OK && version != NULL)
        *version = reply_u64(&r, "version");
    return rc;
}

static uint64_t cordon(cs_client *c, cs_id m)
{
    PACKER(b, pk);
    cs_machine_admin_req q = {.machine = cs_ref_id(m), .admin = CS_ADMIN_CORDONED};
    cr_assert_eq(cs_machine_admin_req_encode(&pk, &q), CS_OK);
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(send_req(c, CS_MSG_MACHINE_ADMIN, &b, &r, &err), CS_OK, "%s", err.msg);
    return reply_u64(&r, "version");
}

/* A commit of one claim: task `task` on machine `m`. */
static uint64_t claim(cs_client *c, cs_id task, cs_id m)
{
    cs_txn t;
    cs_txn_init(&t, 9, 1, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_res res = {250, 64, 0};
    cr_assert_eq(cs_txn_add_claim(&t, task, m, &res, NULL, 0, 0), CS_OK);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    cr_assert_eq(cs_txn_encode(&t, &b), CS_OK);
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(send_req(c, CS_MSG_COMMIT, &b, &r, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(reply_u64(&r, "conflicts"), 0);
    cs_txn_free(&t);
    return reply_u64(&r, "version");
}

/* The audit request `q` to d: its code; the reply decoded into *out (its
 * strings in `a`). */
static int audit_call(cs_client *c, const cs_audit_req *q, cs_audit_reply *out, cs_arena *a,
                      cs_error *err)
{
    PACKER(b, pk);
    cr_assert_eq(cs_audit_req_encode(&pk, q), CS_OK);
    cs_msg r;
    int rc = send_req(c, CS_MSG_AUDIT, &b, &r, err);
    if (rc == CS_OK)
        cr_assert_eq(cs_audit_reply_decode(&r.body, out, a, err), CS_OK, "%s", err->msg);
    return rc;
}

static void audit_ok(cs_client *c, const cs_audit_req *q, cs_audit_reply *out, cs_arena *a)
{
    cs_error err = {0};
    cr_assert_eq(audit_call(c, q, out, a, &err), CS_OK, "%s", err.msg);
}

static void expect_entry(const cs_audit_entry *e, const char *action, const char *target,
                         uint64_t version)
{
    cr_assert_str_eq(e->action, action);
    cr_assert_str_eq(e->target, target, "%s", action);
    cr_assert_eq(e->version, version, "%s: version %llu, not %llu", action,
                 (unsigned long long)e->version, (unsigned long long)version);
    cr_assert_str_eq(e->who, "anonymous", "a cell without authentication");
    cr_assert_gt(e->time_ms, UINT64_C(1600000000000), "wall-clock ms");
}

/* Register m1, submit web, place task 0 on m1, cordon m1, kill web; and a
 * kill of a job that does not exist, refused. */
static void make_history(cs_client *c, uint64_t v[5], cs_id *m, cs_id *job)
{
    *m = add_machine(c, "m1", &v[0]);
    *job = submit(c, "web", &v[1]);
    v[2] = claim(c, cs_task_id(*job, 0), *m);
    v[3] = cordon(c, *m);
    cr_assert_eq(kill_job(c, 4242, NULL), CS_ENOTFOUND, "an unknown job is refused");
    cr_assert_eq(kill_job(c, *job, &v[4]), CS_OK);
}

Test(audit, accepted_writes_in_order_refused_ones_not)
{
    uint64_t v[5];
    cs_id m, job;
    make_history(d1.c, v, &m, &job);
    cs_arena a;
    cs_arena_init(&a);
    cs_audit_reply r;
    audit_ok(d1.c, &(cs_audit_req){0}, &r, &a);
    cr_assert_eq(r.n, 5, "five accepted writes; the refused kill is not there (%u)", r.n);
    cr_assert_not(r.more);
    char t[64];
    snprintf(t, sizeof t, "machine %llu m1", (unsigned long long)m);
    expect_entry(&r.entries[0], "machine.register", t, v[0]);
    snprintf(t, sizeof t, "job %llu web", (unsigned long long)job);
    expect_entry(&r.entries[1], "job.submit", t, v[1]);
    expect_entry(&r.entries[2], "commit", "1 claim (1 committed), 0 releases, 0 preempts", v[2]);
    snprintf(t, sizeof t, "machine %llu m1 cordon", (unsigned long long)m);
    expect_entry(&r.entries[3], "machine.admin", t, v[3]);
    snprintf(t, sizeof t, "job %llu web", (unsigned long long)job);
    expect_entry(&r.entries[4], "job.kill", t, v[4]);
    for (uint32_t i = 1; i < r.n; i++)
        cr_assert_geq(r.entries[i].time_ms, r.entries[i - 1].time_ms);

    /* A repeat that changes nothing (the same cordon) is not a change. */
    cordon(d1.c, m);
    cs_arena_free(&a);
    cs_arena_init(&a);
    audit_ok(d1.c, &(cs_audit_req){0}, &r, &a);
    cr_assert_eq(r.n, 5);
    cs_arena_free(&a);
}

Test(audit, filters_and_limit)
{
    uint64_t v[5];
    cs_id m, job;
    make_history(d1.c, v, &m, &job);
    cs_arena a;
    cs_arena_init(&a);
    cs_audit_reply all, r;
    audit_ok(d1.c, &(cs_audit_req){0}, &all, &a);
    cr_assert_eq(all.n, 5);

    audit_ok(d1.c, &(cs_audit_req){.action = "job.kill"}, &r, &a);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(r.entries[0].version, v[4]);
    audit_ok(d1.c, &(cs_audit_req){.who = "anonymous"}, &r, &a);
    cr_assert_eq(r.n, 5);
    audit_ok(d1.c, &(cs_audit_req){.who = "agent:"}, &r, &a);
    cr_assert_eq(r.n, 0, "no agent wrote");
    audit_ok(d1.c, &(cs_audit_req){.who = "anon"}, &r, &a);
    cr_assert_eq(r.n, 0);

    /* limit: the newest, oldest first, and more. */
    audit_ok(d1.c, &(cs_audit_req){.limit = 2}, &r, &a);
    cr_assert_eq(r.n, 2);
    cr_assert(r.more);
    cr_assert_str_eq(r.entries[0].action, "machine.admin");
    cr_assert_str_eq(r.entries[1].action, "job.kill");
    audit_ok(d1.c, &(cs_audit_req){.limit = 5}, &r, &a);
    cr_assert_eq(r.n, 5);
    cr_assert_not(r.more);

    /* since: from the commit's time on (entries of the same millisecond
     * before it come too; none after it is left out). */
    uint64_t since = all.entries[2].time_ms;
    audit_ok(d1.c, &(cs_audit_req){.since = since}, &r, &a);
    cr_assert_geq(r.n, 3);
    cr_assert_eq(r.entries[r.n - 1].version, v[4]);
    for (uint32_t i = 0; i < r.n; i++)
        cr_assert_geq(r.entries[i].time_ms, since);
    audit_ok(d1.c, &(cs_audit_req){.since = all.entries[4].time_ms + 60000}, &r, &a);
    cr_assert_eq(r.n, 0);
    cs_arena_free(&a);
}

Test(audit, hostile_names_stay_json)
{
    const char *name = "we\"b\\\n\t \xc3\xa9\xe2\x82\xac}{";
    cs_id job = submit(d1.c, name, NULL);
    add_machine(d1.c, "m\"1\n\xff", NULL);
    char path[400];
    snprintf(path, sizeof path, "%s/data/audit.log", d1.dir);
    FILE *f = fopen(path, "r");
    cr_assert(f != NULL, "%s", path);
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    char want[128];
    snprintf(want, sizeof want, "job %llu %s", (unsigned long long)job, name);
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        cr_assert(o != NULL, "not JSON (%s): %s", je.text, line);
        const char *t = json_string_value(json_object_get(o, "target"));
        cr_assert(t != NULL);
        if (n == 0)
            cr_assert_str_eq(t, want);
        else
            cr_assert(strstr(t, "m\"1\n\xef\xbf\xbd") != NULL, "%s", t);
        json_decref(o);
        n++;
    }
    free(line);
    fclose(f);
    cr_assert_eq(n, 2);
    /* And through the request, byte for byte. */
    cs_arena a;
    cs_arena_init(&a);
    cs_audit_reply r;
    audit_ok(d1.c, &(cs_audit_req){.action = "job.submit"}, &r, &a);
    cr_assert_eq(r.n, 1);
    cr_assert_str_eq(r.entries[0].target, want);
    cs_arena_free(&a);
}

Test(audit, malformed_requests_are_refused_and_the_server_serves_on)
{
    add_machine(d1.c, "m1", NULL);
    struct {
        const char *key;
        int kind; /* 0: a string, 1: 0, 2: 10001, 3: 200 bytes of text */
        int code;
        const char *says;
    } cases[] = {
        {"limit", 0, CS_EPROTO, "field 'limit' is not an unsigned integer"},
        {"limit", 1, CS_EINVAL, "field 'limit' is 0"},
        {"limit", 2, CS_EINVAL, "field 'limit' is out of range"},
        {"since", 0, CS_EPROTO, "field 'since' is not an unsigned integer"},
        {"who", 3, CS_EINVAL, "field 'who' is longer than 95 bytes"},
        {"who", 1, CS_EPROTO, "field 'who' is not a string"},
        {"action", 3, CS_EINVAL, "field 'action' is longer than 31 bytes"},
    };
    char text[201];
    memset(text, 'a', 200);
    text[200] = '\0';
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        PACKER(b, pk);
        msgpack_pack_map(&pk, 1);
        if (cases[i].kind == 0)
            cs_pack_kv_str(&pk, cases[i].key, "ten");
        else if (cases[i].kind == 3)
            cs_pack_kv_str(&pk, cases[i].key, text);
        else
            cs_pack_kv_u64(&pk, cases[i].key, cases[i].kind == 1 ? 0 : 10001);
        cs_msg r;
        cs_error err = {0};
        int rc = send_req(d1.c, CS_MSG_AUDIT, &b, &r, &err);
        cr_assert_eq(rc, cases[i].code, "%s: %s", cases[i].says, err.msg);
        cr_assert(strstr(err.msg, cases[i].says) != NULL, "'%s' does not say '%s'", err.msg,
                  cases[i].says);
    }
    /* A body that is not a map. */
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_client_call(d1.c, CS_MSG_AUDIT, "\x93\x01\x02\x03", 4, &r, &err), CS_EPROTO);
    cr_assert(strstr(err.msg, "not a map") != NULL, "%s", err.msg);
    /* Still serving. */
    cs_arena a;
    cs_arena_init(&a);
    cs_audit_reply ok;
    audit_ok(d1.c, &(cs_audit_req){0}, &ok, &a);
    cr_assert_eq(ok.n, 1);
    cs_arena_free(&a);
}

Test(audit, rotation_keeps_the_newest_readable)
{
    ts_daemon_teardown(&d1);
    ts_daemon_setup(&d1, "--audit-max-bytes", "1500");
    char name[32];
    uint64_t last = 0;
    for (int i = 0; i < 60; i++) {
        snprintf(name, sizeof name, "machine-%02d", i);
        add_machine(d1.c, name, &last);
    }
    char p1[400];
    snprintf(p1, sizeof p1, "%s/data/audit.log.1", d1.dir);
    cr_assert_eq(access(p1, F_OK), 0, "rotated to audit.log.1");
    cs_arena a;
    cs_arena_init(&a);
    cs_audit_reply r;
    audit_ok(d1.c, &(cs_audit_req){.limit = CS_AUDIT_LIMIT_MAX}, &r, &a);
    /* More than audit.log holds: audit.log.1's too. */
    char p0[400];
    snprintf(p0, sizeof p0, "%s/data/audit.log", d1.dir);
    size_t len;
    char *text = ts_slurp(p0, &len);
    cr_assert(text != NULL);
    uint32_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    free(text);
    cr_assert_gt(r.n, lines, "entries of both files (%u, audit.log holds %u)", r.n, lines);
    cr_assert_lt(r.n, 60, "the oldest are gone");
    cr_assert_eq(r.entries[r.n - 1].version, last);
    cr_assert(strstr(r.entries[r.n - 1].target, "machine-59") != NULL);
    for (uint32_t i = 1; i < r.n; i++)
        cr_assert_eq(r.entries[i].version, r.entries[i - 1].version + 1,
                     "consecutive across the two files");
    cs_arena_free(&a);
}

Test(audit, the_monitors_writes_are_cellstateds)
{
    ts_daemon_teardown(&d1);
    const char *const extra[] = {"--heartbeat-timeout", "300", "--job-gc", "1s", NULL};
    ts_daemon_setupv(&d1, extra);
    cs_id m = add_machine(d1.c, "silent", NULL);
    cs_id job = submit(d1.c, "short-lived", NULL);
    cr_assert_eq(kill_job(d1.c, job, NULL), CS_OK);
    char want[64];
    snprintf(want, sizeof want, "machine %llu silent", (unsigned long long)m);
    cs_arena a;
    cs_arena_init(&a);
    cs_audit_reply r = {0};
    /* The machine sends no heartbeat: the monitor marks it down. */
    for (int i = 0; i < 200; i++) {
        cs_arena_reset(&a);
        audit_ok(d1.c, &(cs_audit_req){.action = "machine.down"}, &r, &a);
        if (r.n > 0)
            break;
        ts_sleep_ms(50);
    }
    cr_assert_eq(r.n, 1, "the monitor's verdict is in the log");
    cr_assert_str_eq(r.entries[0].who, "cellstated");
    cr_assert_str_eq(r.entries[0].target, want);
    /* The killed job is collected a second after it ended. */
    for (int i = 0; i < 200; i++) {
        cs_arena_reset(&a);
        audit_ok(d1.c, &(cs_audit_req){.action = "job.gc"}, &r, &a);
        if (r.n > 0)
            break;
        ts_sleep_ms(50);
    }
    cr_assert_eq(r.n, 1, "the collection is in the log");
    cr_assert_str_eq(r.entries[0].who, "cellstated");
    cr_assert_str_eq(r.entries[0].target, "1 ended job");
    cs_arena_free(&a);
}

/* ---- a failing audit, in-process ------------------------------------------------------- */

/* The value of counter `name` in the server's metrics text. */
static uint64_t counter_of(cs_server *s, const char *name)
{
    char *text = NULL;
    size_t len = 0;
    cs_error err = {0};
    cr_assert_eq(cs_server_metrics_text(s, false, &text, &len, &err), CS_OK, "%s", err.msg);
    char want[128];
    snprintf(want, sizeof want, "\n%s ", name);
    const char *p = strstr(text, want);
    cr_assert(p != NULL, "no %s in the metrics", name);
    uint64_t v = strtoull(p + strlen(want), NULL, 10);
    free(text);
    return v;
}

TestSuite(audit_errors, .init = ts_tmp_setup, .fini = ts_tmp_teardown, .timeout = 60);

Test(audit_errors, a_failing_audit_is_counted_and_the_cells_writes_go_on)
{
    char data[300], old[320], inner[340], url[64];
    snprintf(data, sizeof data, "%s/data", ts_tmp);
    snprintf(old, sizeof old, "%s/audit.log.1", data);
    snprintf(inner, sizeof inner, "%s/x", old);
    /* audit.log.1 a directory that is not empty: every rotation fails. */
    cr_assert_eq(mkdir(data, 0700), 0);
    cr_assert_eq(mkdir(old, 0700), 0);
    int fd = open(inner, O_WRONLY | O_CREAT, 0600);
    cr_assert(fd >= 0);
    close(fd);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", ts_free_port());
    cs_server_opts o;
    cs_server_opts_default(&o);
    o.data_dir = data;
    o.listen_url = url;
    o.workers = 8;
    o.nosync = true;
    o.audit_max_bytes = 200;
    cs_server *s = NULL;
    cs_error err = {0};
    cr_assert_eq(cs_server_start(&o, &s, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(counter_of(s, "cellsched_audit_errors_total"), 0);
    cs_client *c = NULL;
    cr_assert_eq(cs_client_open(url, 5000, &c, &err), CS_OK, "%s", err.msg);
    char name[16];
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof name, "m%d", i);
        add_machine(c, name, NULL); /* fails the test if a write is refused */
    }
    cr_assert_gt(counter_of(s, "cellsched_audit_errors_total"), 0, "the failed rotations");
    /* Nothing is lost but the rotation: the entries are in audit.log. */
    cs_arena a;
    cs_arena_init(&a);
    cs_audit_reply r;
    audit_ok(c, &(cs_audit_req){0}, &r, &a);
    cr_assert_eq(r.n, 6);
    cs_arena_free(&a);
    cs_client_close(c);
    cs_server_stop(s);
}

/* ---- cellctl audit ----------------------------------------------------------------------- */

typedef struct run {
    int status;
    char *out, *err;
} run;

/* cellctl --server servers ARGS...; stdout and stderr captured. */
static void cellctl(const char *servers, run *r, const char *const *args)
{
    char bin[256];
    ts_bin("cellctl", bin, sizeof bin);
    char *argv[24] = {bin, (char *)"--server", (char *)servers, (char *)"--timeout",
                      (char *)"2s"};
    int n = 5;
    for (; *args != NULL && n < 23; args++)
        argv[n++] = (char *)*args;
    argv[n] = NULL;
    r->status = ts_run_argv(argv, d1.dir, &r->out, &r->err);
}

static void run_free(run *r)
{
    free(r->out);
    free(r->err);
}

/* The lines of `text` that hold `word`, in order, as one string. */
static int line_of(const char *text, const char *word)
{
    int line = 0;
    for (const char *p = text; *p; line++) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char buf[512];
        snprintf(buf, sizeof buf, "%.*s", (int)len, p);
        if (strstr(buf, word) != NULL)
            return line;
        p += len + (eol != NULL);
    }
    return -1;
}

Test(audit, cellctl_merges_two_servers_by_time)
{
    ts_daemon_setup(&d2, NULL, NULL);
    cs_id a = submit(d1.c, "alpha", NULL);
    ts_sleep_ms(5); /* distinct milliseconds, so that the merge has one order */
    submit(d2.c, "bravo", NULL);
    ts_sleep_ms(5);
    cr_assert_eq(kill_job(d1.c, a, NULL), CS_OK);

    char both[200];
    snprintf(both, sizeof both, "%s,%s", d1.url, d2.url);
    run r;
    cellctl(both, &r, (const char *const[]){"audit", NULL});
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    int head = line_of(r.out, "TIME"), s1 = line_of(r.out, "alpha"),
        s2 = line_of(r.out, "bravo"), k = line_of(r.out, "job.kill");
    cr_assert(head == 0 && line_of(r.out, "WHO") == 0 && line_of(r.out, "TARGET") == 0 &&
                  line_of(r.out, "VERSION") == 0,
              "%s", r.out);
    cr_assert(s1 == 1 && s2 == 2 && k == 3, "merged by time: %s", r.out);
    cr_assert(strstr(r.out, "job.submit") != NULL && strstr(r.out, "anonymous") != NULL);
    run_free(&r);

    /* JSON lines, each naming its server. */
    cellctl(both, &r, (const char *const[]){"audit", "-o", "json", "--action", "job.submit", NULL});
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    int n = 0;
    for (char *p = r.out, *eol; (eol = strchr(p, '\n')) != NULL; p = eol + 1, n++) {
        *eol = '\0';
        json_error_t je;
        json_t *o = json_loads(p, 0, &je);
        cr_assert(o != NULL, "%s: %s", je.text, p);
        cr_assert_str_eq(json_string_value(json_object_get(o, "action")), "job.submit");
        cr_assert_str_eq(json_string_value(json_object_get(o, "server")), n == 0 ? d1.url : d2.url);
        json_decref(o);
    }
    cr_assert_eq(n, 2);
    run_free(&r);

    /* -n 1: the newest of both. */
    cellctl(both, &r, (const char *const[]){"audit", "-n", "1", NULL});
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_assert(line_of(r.out, "job.kill") == 1 && line_of(r.out, "job.submit") < 0, "%s", r.out);
    run_free(&r);

    /* A server that does not answer: named, the others still printed,
     * and the command fails. */
    char three[300];
    snprintf(three, sizeof three, "%s,tcp://127.0.0.1:%d", both, ts_free_port());
    cellctl(three, &r, (const char *const[]){"audit", NULL});
    cr_assert_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_assert(line_of(r.out, "bravo") == 2, "%s", r.out);
    cr_assert(strstr(r.err, "127.0.0.1") != NULL && strstr(r.err, "did not answer") != NULL,
              "%s", r.err);
    run_free(&r);

    /* A bad command line. */
    cellctl(d1.url, &r, (const char *const[]){"audit", "--since", "yesterday", NULL});
    cr_assert_eq(r.status, 2, "%s", r.err);
    cr_assert(strstr(r.err, "--since yesterday") != NULL, "%s", r.err);
    run_free(&r);
    cellctl(d1.url, &r, (const char *const[]){"audit", "-n", "0", NULL});
    cr_assert_eq(r.status, 2, "%s", r.err);
    run_free(&r);
}
