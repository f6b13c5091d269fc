/* test_logserve.c — the agent's log service (agent/logserve.h): reads by
 * offset and by tail, the bounds of a reply, refusals (a task it does not
 * have, a stream that is a symbolic link, a bad request), the retention of
 * done task directories (by count and by age, with the done files' times
 * set explicitly), and the service answering task.logs over nng on
 * 127.0.0.1. Task directories are made by hand, as the supervisor lays
 * them out (agent/runner.h). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/logserve.h"
#include "proto/client.h"
#include "proto/proto.h"
#include "tests/support.h"

static char root[256];

static void setup(void)
{
    cr_assert_eq(ts_mkdtemp(root, sizeof root), 0);
    char p[400];
    snprintf(p, sizeof p, "%s/tasks", root);
    cr_assert_eq(mkdir(p, 0755), 0);
}

static void teardown(void) { ts_rmtree(root); }

/* tasks/<id>-<attempt>/<name> with `text`. */
static void put(cs_id id, uint32_t attempt, const char *name, const char *text)
{
    char p[600];
    snprintf(p, sizeof p, "%s/tasks/%llu-%u", root, (unsigned long long)id, attempt);
    mkdir(p, 0755);
    snprintf(p + strlen(p), sizeof p - strlen(p), "/%s", name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "%s", p);
    fputs(text, f);
    fclose(f);
}

/* Mark a placement done at `ms` (wall clock): its done file's mtime. */
static void done_at(cs_id id, uint32_t attempt, int64_t ms)
{
    put(id, attempt, "done", "");
    char p[600];
    snprintf(p, sizeof p, "%s/tasks/%llu-%u/done", root, (unsigned long long)id, attempt);
    struct timespec ts[2] = {{ms / 1000, (ms % 1000) * 1000000L}, {ms / 1000, (ms % 1000) * 1000000L}};
    cr_assert_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
}

static bool exists(cs_id id, uint32_t attempt)
{
    char p[600];
    snprintf(p, sizeof p, "%s/tasks/%llu-%u", root, (unsigned long long)id, attempt);
    return access(p, F_OK) == 0;
}

static char *read_text(const ag_logs_req *q, ag_logs_chunk *c)
{
    cs_error err = {0};
    cr_assert_eq(ag_logs_read(root, q, c, &err), CS_OK, "%s", err.msg);
    char *s = malloc(c->len + 1);
    if (c->len)
        memcpy(s, c->data, c->len);
    s[c->len] = '\0';
    free(c->data);
    c->data = NULL;
    return s;
}

Test(logserve, reads_by_offset_and_by_tail, .init = setup, .fini = teardown)
{
    put(7, 1, "stdout", "one\ntwo\nthree\n");
    put(7, 1, "stderr", "bad\n");
    ag_logs_chunk c;
    ag_logs_req q = {.task = 7, .attempt = 1, .max = 1000};
    char *s = read_text(&q, &c);
    cr_assert_str_eq(s, "one\ntwo\nthree\n");
    cr_assert_eq(c.offset, 0);
    cr_assert_eq(c.size, 14);
    free(s);

    q.offset = 4; /* from an offset: what follows */
    s = read_text(&q, &c);
    cr_assert_str_eq(s, "two\nthree\n");
    cr_assert_eq(c.offset, 4);
    free(s);

    q.offset = 14; /* at the end: nothing, and the size tells where the end is */
    s = read_text(&q, &c);
    cr_assert_str_eq(s, "");
    cr_assert_eq(c.offset, 14);
    free(s);
    q.offset = 99;
    s = read_text(&q, &c);
    cr_assert_str_eq(s, "");
    cr_assert_eq(c.offset, 14, "an offset past the end is the end");
    free(s);

    q.offset = 0;
    q.max = 5; /* bounded: the first five bytes */
    s = read_text(&q, &c);
    cr_assert_str_eq(s, "one\nt");
    free(s);

    q.max = 1000;
    q.tail = 2;
    s = read_text(&q, &c);
    cr_assert_str_eq(s, "two\nthree\n");
    cr_assert_eq(c.offset, 4, "the tail says where it starts, to follow on from its end");
    free(s);
    q.tail = 9; /* more lines than there are: all of it */
    s = read_text(&q, &c);
    cr_assert_str_eq(s, "one\ntwo\nthree\n");
    free(s);
    put(7, 1, "stdout", "one\ntwo\nthree"); /* no final newline: the last line counts */
    q.tail = 1;
    s = read_text(&q, &c);
    cr_assert_str_eq(s, "three");
    free(s);
    q.tail = 2;
    q.max = 7; /* two lines asked, the last 7 bytes hold fewer: those 7 bytes */
    s = read_text(&q, &c);
    cr_assert_str_eq(s, "o\nthree");
    cr_assert_eq(c.offset, 6);
    free(s);

    q = (ag_logs_req){.task = 7, .attempt = 1, .err_stream = true, .max = 1000};
    s = read_text(&q, &c);
    cr_assert_str_eq(s, "bad\n");
    free(s);
}

Test(logserve, refuses_what_it_does_not_have, .init = setup, .fini = teardown)
{
    put(7, 1, "stdout", "secret? no: mine\n");
    ag_logs_chunk c;
    cs_error err = {0};
    ag_logs_req q = {.task = 7, .attempt = 2, .max = 100};
    cr_assert_eq(ag_logs_read(root, &q, &c, &err), CS_ENOTFOUND);
    cr_assert(strstr(err.msg, "task 7 attempt 2") != NULL, "%s", err.msg);
    q = (ag_logs_req){.task = 8, .attempt = 1, .max = 100};
    cr_assert_eq(ag_logs_read(root, &q, &c, &err), CS_ENOTFOUND);
    q = (ag_logs_req){.task = 7, .attempt = 1, .err_stream = true, .max = 100};
    cr_assert_eq(ag_logs_read(root, &q, &c, &err), CS_ENOTFOUND, "no stderr file");
    cr_assert(strstr(err.msg, "stderr") != NULL, "%s", err.msg);

    /* A task that replaced its output by a link to elsewhere gets nothing
     * read through it. */
    char target[400], link[600];
    snprintf(target, sizeof target, "%s/outside", root);
    FILE *f = fopen(target, "w");
    fputs("not a task's\n", f);
    fclose(f);
    snprintf(link, sizeof link, "%s/tasks/7-1/stderr", root);
    cr_assert_eq(symlink(target, link), 0);
    cr_assert_eq(ag_logs_read(root, &q, &c, &err), CS_EIO);
    cr_assert_null(c.data);
}

Test(logserve, retention_keeps_the_newest_for_a_while, .init = setup, .fini = teardown)
{
    const int64_t now = INT64_C(1700000100000);
    /* Five done placements, one a second apart (7-1 the newest), and one
     * still running (no done file), older than all of them. */
    for (uint32_t i = 1; i <= 5; i++)
        done_at(7, i, now - 1000 * (int64_t)i);
    put(9, 1, "stdout", "running\n");
    uint32_t removed = 0;
    cs_error err = {0};
    ag_retain r = {.keep = 3, .max_age_ms = 60000};
    cr_assert_eq(ag_retain_sweep(root, &r, now, &removed, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(removed, 2);
    cr_assert(exists(7, 1) && exists(7, 2) && exists(7, 3), "the three newest stay");
    cr_assert(!exists(7, 4) && !exists(7, 5), "the older ones go");
    cr_assert(exists(9, 1), "a placement that is not done is never removed");

    /* Age: 2.5 s later with a 4 s limit, 7-2 (done 6.5 s ago) and 7-3 go. */
    r.max_age_ms = 4000;
    cr_assert_eq(ag_retain_sweep(root, &r, now + 2500, &removed, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(removed, 2);
    cr_assert(exists(7, 1) && !exists(7, 2) && !exists(7, 3));

    /* A task's own tree (subdirectories, a link to outside) is removed
     * without following the link. */
    char sub[600], target[400], link[700];
    snprintf(target, sizeof target, "%s/keepme", root);
    snprintf(sub, sizeof sub, "%s/tasks/7-1/a", root);
    cr_assert_eq(mkdir(sub, 0755), 0);
    snprintf(sub, sizeof sub, "%s/tasks/7-1/a/b", root);
    cr_assert_eq(mkdir(sub, 0755), 0);
    FILE *f = fopen(target, "w");
    fclose(f);
    snprintf(link, sizeof link, "%s/link", sub);
    cr_assert_eq(symlink(target, link), 0);
    r.keep = 0;
    cr_assert_eq(ag_retain_sweep(root, &r, now, &removed, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(removed, 1);
    cr_assert(!exists(7, 1));
    cr_assert_eq(access(target, F_OK), 0, "the link's target was removed");
    cr_assert(exists(9, 1));
}

/* The service over nng: what cellctl logs asks, and what it refuses. */
static int call(cs_client *c, uint64_t task, uint32_t attempt, const char *stream, int64_t tail,
                cs_msg *r, cs_error *err)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3 + (tail >= 0));
    cs_pack_kv_u64(&pk, "task", task);
    cs_pack_kv_u64(&pk, "attempt", attempt);
    cs_pack_kv_str(&pk, "stream", stream);
    if (tail >= 0)
        cs_pack_kv_u64(&pk, "tail", (uint64_t)tail);
    int rc = cs_client_call(c, CS_MSG_TASK_LOGS, b.data, b.size, r, err);
    msgpack_sbuffer_destroy(&b);
    return rc;
}

Test(logserve, serves_task_logs_over_nng, .init = setup, .fini = teardown)
{
    put(7, 1, "stdout", "one\ntwo\n");
    ag_logsrv *s;
    cs_error err = {0};
    ag_retain r = {10, 3600000};
    cr_assert_eq(ag_logsrv_open(root, "tcp://0.0.0.0:0", "example.host", NULL, &r, &s, &err), CS_OK,
                 "%s", err.msg);
    cr_assert(strncmp(ag_logsrv_url(s), "tcp://example.host:", 19) == 0,
              "a wildcard address is advertised with the host's name: %s", ag_logsrv_url(s));
    ag_logsrv_close(s);

    cr_assert_eq(ag_logsrv_open(root, "tcp://127.0.0.1:0", "ignored", NULL, &r, &s, &err), CS_OK,
                 "%s", err.msg);
    const char *adv = ag_logsrv_url(s);
    cr_assert(strncmp(adv, "tcp://127.0.0.1:", 16) == 0 && strcmp(adv, "tcp://127.0.0.1:0") != 0,
              "the bound port is advertised: %s", adv);
    cs_client *c;
    cr_assert_eq(cs_client_open(adv, 5000, &c, &err), CS_OK, "%s", err.msg);
    cs_msg m;
    cr_assert_eq(call(c, 7, 1, "stdout", 1, &m, &err), CS_OK, "%s", err.msg);
    const msgpack_object *data = cs_obj_get(&m.body, "data");
    cr_assert(data && data->type == MSGPACK_OBJECT_BIN);
    cr_assert_eq(data->via.bin.size, 4);
    cr_assert(memcmp(data->via.bin.ptr, "two\n", 4) == 0);
    uint64_t next = 0, size = 0;
    cr_assert_eq(cs_obj_u64(&m.body, "next", true, UINT64_MAX, &next, &err), CS_OK);
    cr_assert_eq(cs_obj_u64(&m.body, "size", true, UINT64_MAX, &size, &err), CS_OK);
    cr_assert_eq(next, 8);
    cr_assert_eq(size, 8);

    cr_assert_eq(call(c, 7, 9, "stdout", -1, &m, &err), CS_ENOTFOUND);
    cr_assert(strstr(err.msg, "task 7 attempt 9") != NULL, "%s", err.msg);
    cr_assert_eq(call(c, 7, 1, "../../etc/passwd", -1, &m, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "stream") != NULL, "%s", err.msg);
    cr_assert_eq(cs_client_call(c, CS_MSG_STATS, "\x80", 1, &m, &err), CS_EPROTO);
    cr_assert(strstr(err.msg, "task.logs") != NULL, "%s", err.msg);
    cr_assert_eq(cs_client_call(c, CS_MSG_TASK_LOGS, "\x80", 1, &m, &err), CS_EPROTO);
    cr_assert(strstr(err.msg, "task") != NULL, "%s", err.msg);
    cs_client_close(c);
    ag_logsrv_close(s);

    cr_assert_eq(ag_logsrv_open(root, "ipc:///tmp/x", "h", NULL, &r, &s, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "ipc:///tmp/x") != NULL, "%s", err.msg);
    cr_assert_eq(ag_logsrv_open(root, "tcp://no-such-host.invalid:0", "h", NULL, &r, &s, &err),
                 CS_EINVAL);
    cr_assert(strstr(err.msg, "no-such-host.invalid") != NULL, "%s", err.msg);
}
