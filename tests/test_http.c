/* test_http.c — integration: cellstated's HTTP API (http/gateway.h,
 * docs/http.md) against a real cellstated --http on 127.0.0.1, through a
 * small HTTP/1.1 client on a raw socket (no curl). Machines are registered
 * and tasks placed through the msgpack client, as agents and schedulers
 * would; everything else goes through HTTP, and the JSON is parsed with
 * jansson and checked value by value, or compared byte for byte with what
 * cellctl prints for the same records. The request target's parser is also
 * tested alone (suite http_target). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "http/api.h"
#include "http/gateway.h"
#include "proto/client.h"
#include "proto/proto.h"
#include "server/server.h"
#include "tests/promcheck.h"
#include "tests/support.h"
#include "txn/txn.h"

#define MARATHON_DATA "../shared/testdata/marathon"

/* ---- a small HTTP client ------------------------------------------------------------ */

typedef struct resp {
    int status; /* 0: no status line (the connection closed without one) */
    char *raw;  /* the whole reply, NUL-terminated */
    size_t len;
    char *body; /* into raw */
} resp;

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {30, 0}; /* no reply of these tests takes that long */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static bool send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k <= 0)
            return false;
        c += k;
        n -= (size_t)k;
    }
    return true;
}

/* Read until the server closes; parse the status line and find the body. */
static void read_reply(int fd, resp *r)
{
    FILE *m = open_memstream(&r->raw, &r->len);
    char buf[8192];
    ssize_t k;
    while ((k = recv(fd, buf, sizeof buf, 0)) > 0)
        fwrite(buf, 1, (size_t)k, m);
    fclose(m);
    r->status = 0;
    sscanf(r->raw, "HTTP/1.%*d %d", &r->status);
    char *sep = strstr(r->raw, "\r\n\r\n");
    r->body = sep ? sep + 4 : r->raw + r->len;
}

/* Send `req` (len bytes, a whole request or garbage) and read the reply. */
static void raw(int port, const void *req, size_t len, resp *r)
{
    int fd = dial(port);
    cr_assert(fd >= 0, "cannot connect to the HTTP API on port %d", port);
    send_all(fd, req, len);
    read_reply(fd, r);
    close(fd);
}

/* One request with Connection: close; `ctype` and `body` may be NULL. */
static void http(int port, const char *method, const char *path, const char *ctype,
                 const char *body, resp *r)
{
    char *req = NULL;
    size_t blen = body ? strlen(body) : 0;
    int n = asprintf(&req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "%s%s%sContent-Length: %zu\r\n\r\n%s",
                     method, path, ctype ? "Content-Type: " : "", ctype ? ctype : "",
                     ctype ? "\r\n" : "", blen, body ? body : "");
    cr_assert(n > 0);
    raw(port, req, (size_t)n, r);
    free(req);
}

static void resp_free(resp *r)
{
    free(r->raw);
    memset(r, 0, sizeof *r);
}

/* A header's value (case-insensitive name) into buf; NULL when absent. */
static const char *header(const resp *r, const char *name, char *buf, size_t size)
{
    size_t n = strlen(name);
    for (const char *p = strstr(r->raw, "\r\n"); p && p + 2 < r->body; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
            const char *v = p + 3 + n;
            while (*v == ' ')
                v++;
            snprintf(buf, size, "%.*s", (int)strcspn(v, "\r"), v);
            return buf;
        }
    }
    return NULL;
}

static uint64_t cell_index(const resp *r)
{
    char buf[32];
    cr_assert(header(r, "X-Cell-Index", buf, sizeof buf) != NULL, "no X-Cell-Index in:\n%s",
              r->raw);
    return strtoull(buf, NULL, 10);
}

static json_t *body_json(const resp *r)
{
    json_error_t je;
    json_t *j = json_loads(r->body, 0, &je);
    cr_assert(j != NULL, "not JSON (%s): %s", je.text, r->raw);
    return j;
}

/* Expect `status`; return the parsed body (the caller's). */
static json_t *expect(int port, const char *method, const char *path, const char *body,
                      int status)
{
    resp r;
    http(port, method, path, body ? "application/json" : NULL, body, &r);
    cr_assert_eq(r.status, status, "%s %s: expected %d, got:\n%s", method, path, status, r.raw);
    json_t *j = body_json(&r);
    resp_free(&r);
    return j;
}

/* An error reply: status, its token, and a message containing `part`. */
static void expect_error(int port, const char *method, const char *path, const char *ctype,
                         const char *body, int status, const char *token, const char *part)
{
    resp r;
    http(port, method, path, ctype, body, &r);
    cr_assert_eq(r.status, status, "%s %s: expected %d, got:\n%s", method, path, status, r.raw);
    char ct[64];
    cr_assert_str_eq(header(&r, "Content-Type", ct, sizeof ct), "application/json");
    json_t *j = body_json(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "code")), status);
    cr_assert_str_eq(json_string_value(json_object_get(j, "error")), token, "%s", r.raw);
    const char *msg = json_string_value(json_object_get(j, "message"));
    cr_assert(msg != NULL && strstr(msg, part) != NULL, "message '%s' lacks '%s'", msg, part);
    json_decref(j);
    resp_free(&r);
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    cr_assert(s != NULL, "no string '%s'", key);
    return s;
}

static json_int_t num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    cr_assert(json_is_integer(v), "no integer '%s'", key);
    return json_integer_value(v);
}

static json_t *find_by(json_t *arr, const char *key, const char *value)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        const char *s = json_string_value(json_object_get(e, key));
        if (s && strcmp(s, value) == 0)
            return e;
    }
    return NULL;
}

/* ---- the cell --------------------------------------------------------------------------- */

typedef struct cell {
    ts_daemon d;
    int port; /* the HTTP API's */
} cell;

static cell cell_;

/* Wait until the HTTP API accepts connections (it starts after the
 * msgpack listener, which ts_daemon already waited for). */
static void wait_http(int port)
{
    int64_t until = ts_now_ms() + 10000;
    for (;;) {
        int fd = dial(port);
        if (fd >= 0) {
            close(fd);
            return;
        }
        cr_assert(ts_now_ms() < until, "the HTTP API on port %d never listened", port);
        ts_sleep_ms(20);
    }
}

static void setup(void)
{
    char listen[64];
    cell_.port = ts_free_port();
    snprintf(listen, sizeof listen, "127.0.0.1:%d", cell_.port);
    ts_daemon_setup(&cell_.d, "--http", listen);
    wait_http(cell_.port);
}

static void teardown(void) { ts_daemon_teardown(&cell_.d); }

TestSuite(http, .init = setup, .fini = teardown, .timeout = 120);

static void call(ts_daemon *d, uint32_t type, msgpack_sbuffer *b, cs_msg *r)
{
    cs_error err = {0};
    cr_assert_eq(cs_client_callb(d->c, type, b, r, &err), CS_OK, "%s", err.msg);
    msgpack_sbuffer_destroy(b);
}

/* A machine of 4 cores, 4096 MiB, 10000 MiB disk, as an agent registers it. */
static cs_id add_machine(ts_daemon *d, const char *name)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    ts_pack_machine(&pk, name, 0);
    cs_msg r;
    call(d, CS_MSG_MACHINE_REGISTER, &b, &r);
    uint64_t id = 0;
    cs_error err;
    cr_assert_eq(cs_obj_u64(&r.body, "id", true, UINT64_MAX, &id, &err), CS_OK, "%s", err.msg);
    return id;
}

/* Place `task` on machine `m`, as a scheduler's commit does. */
static void place(ts_daemon *d, cs_id task, cs_id m, int64_t cpu, int64_t mem)
{
    cs_txn t;
    cs_res res = {cpu, mem, 0};
    cs_txn_init(&t, 9, task, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_txn_add_claim(&t, task, m, &res, NULL, 0, 0);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    cs_txn_encode(&t, &b);
    cs_msg r;
    call(d, CS_MSG_COMMIT, &b, &r);
    cs_txn_free(&t);
}

#define WEB "{\"name\": \"web\", \"kind\": \"service\", \"cmd\": \"sleep 100\", \"count\": 2, " \
            "\"resources\": {\"cpu\": 0.5, \"mem\": 64}}"

/* Two machines, job web (2 tasks) submitted over HTTP, its task 0 placed
 * on m1. Returns web's task 0's id. */
static cs_id populate(cell *c)
{
    cs_id m1 = add_machine(&c->d, "m1");
    add_machine(&c->d, "m2");
    json_t *w = expect(c->port, "POST", "/v1/jobs", WEB, 201);
    cr_assert_str_eq(str(w, "job"), "web");
    cs_id job = (cs_id)num(w, "id");
    json_decref(w);
    json_t *tasks = expect(c->port, "GET", "/v1/jobs/web/tasks", NULL, 200);
    cr_assert_eq(json_array_size(tasks), 2);
    cs_id t0 = (cs_id)num(json_array_get(tasks, 0), "id");
    cr_assert_eq(num(json_array_get(tasks, 0), "job_id"), (json_int_t)job);
    json_decref(tasks);
    place(&c->d, t0, m1, 500, 64);
    return t0;
}

static void still_serving(int port)
{
    json_t *j = expect(port, "GET", "/v1/machines", NULL, 200);
    json_decref(j);
}

/* ---- reads -------------------------------------------------------------------------- */

/* cellstated's Prometheus metrics (docs/metrics.md) at /metrics beside the
 * API: the text format's content type, families that moved with what the
 * test did, and promtool's approval when it is installed. */
Test(http, metrics_are_served_at_slash_metrics)
{
    cell *c = &cell_;
    populate(c);
    resp r;
    http(c->port, "GET", "/metrics", NULL, NULL, &r);
    cr_assert_eq(r.status, 200, "%s", r.raw);
    char ct[128];
    cr_assert_not_null(header(&r, "Content-Type", ct, sizeof ct));
    cr_assert(strncmp(ct, "text/plain; version=0.0.4", 25) == 0, "%s", ct);
    cr_assert(strstr(r.body, "# TYPE cellsched_server_requests_total counter") != NULL, "%.400s", r.body);
    cr_assert(strstr(r.body, "cellsched_machines{state=\"up\"} 2") != NULL, "%.2000s", r.body);
    /* Per machine only with --metrics-per-machine, which this cell lacks. */
    cr_assert(strstr(r.body, "cellsched_machine_tasks") == NULL);
    char *text = strdup(r.body);
    resp_free(&r);
    ts_promtool_check(text);
    free(text);
    http(c->port, "POST", "/metrics", NULL, NULL, &r);
    cr_assert_eq(r.status, 405, "%s", r.raw);
    cr_assert_not_null(header(&r, "Allow", ct, sizeof ct));
    cr_assert_str_eq(ct, "GET, HEAD");
    resp_free(&r);
    still_serving(c->port);
}

Test(http, every_read_route_and_filter)
{
    cell *c = &cell_;
    populate(c);
    json_t *ms = expect(c->port, "GET", "/v1/machines", NULL, 200);
    cr_assert_eq(json_array_size(ms), 2);
    json_t *m1 = find_by(ms, "name", "m1");
    cr_assert(m1 != NULL);
    cr_assert_eq(num(m1, "tasks"), 1);
    /* cpu in cores, mem in MiB, as cellctl's JSON */
    cr_assert_float_eq(json_real_value(json_object_get(json_object_get(m1, "allocated"), "cpu")),
                       0.5, 1e-9);
    json_decref(ms);
    ms = expect(c->port, "GET", "/v1/machines?state=down", NULL, 200);
    cr_assert_eq(json_array_size(ms), 0);
    json_decref(ms);

    json_t *jobs = expect(c->port, "GET", "/v1/jobs", NULL, 200);
    cr_assert_eq(json_array_size(jobs), 1);
    json_t *web = json_array_get(jobs, 0);
    cr_assert_str_eq(str(web, "name"), "web");
    cr_assert_eq(num(json_object_get(web, "tasks"), "assigned"), 1);
    cr_assert_eq(num(json_object_get(web, "tasks"), "pending"), 1);
    json_decref(jobs);
    jobs = expect(c->port, "GET", "/v1/jobs?state=killed", NULL, 200);
    cr_assert_eq(json_array_size(jobs), 0);
    json_decref(jobs);

    web = expect(c->port, "GET", "/v1/jobs/web", NULL, 200);
    cr_assert_str_eq(str(web, "kind"), "service");
    cr_assert_str_eq(str(web, "state"), "active");
    json_decref(web);

    json_t *tasks = expect(c->port, "GET", "/v1/tasks?machine=m1", NULL, 200);
    cr_assert_eq(json_array_size(tasks), 1);
    cr_assert_str_eq(str(json_array_get(tasks, 0), "machine"), "m1");
    cr_assert_str_eq(str(json_array_get(tasks, 0), "job"), "web");
    json_decref(tasks);
    tasks = expect(c->port, "GET", "/v1/tasks?state=pending&job=web", NULL, 200);
    cr_assert_eq(json_array_size(tasks), 1);
    cr_assert(json_is_null(json_object_get(json_array_get(tasks, 0), "machine")));
    json_decref(tasks);
    tasks = expect(c->port, "GET", "/v1/tasks", NULL, 200);
    cr_assert_eq(json_array_size(tasks), 2);
    json_decref(tasks);

    json_t *st = expect(c->port, "GET", "/v1/stats", NULL, 200);
    cr_assert_eq(num(st, "machines"), 2);
    cr_assert_float_eq(json_real_value(json_object_get(json_object_get(st, "capacity"), "cpu")),
                       8.0, 1e-9);
    json_decref(st);
    json_t *sc = expect(c->port, "GET", "/v1/schedulers", NULL, 200);
    cr_assert(json_is_array(sc));
    json_decref(sc);
    json_t *mem = expect(c->port, "GET", "/v1/members", NULL, 200);
    cr_assert(json_is_array(json_object_get(mem, "members")), "%s", json_dumps(mem, 0));
    json_decref(mem);

    /* HEAD: the headers of the GET, no body. */
    resp r;
    http(c->port, "HEAD", "/v1/machines", NULL, NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body[0], '\0', "%s", r.raw);
    resp_free(&r);
}

/* The bytes of `cellctl get WHAT -o json` (stdout). */
static char *cellctl_json(const cell *c, const char *what)
{
    char bin[256], cmd[512], *out = malloc(1 << 20);
    ts_bin("cellctl", bin, sizeof bin);
    snprintf(cmd, sizeof cmd, "(%s --server %s get %s -o json 2>/dev/null)", bin, c->d.url, what);
    cr_assert_eq(ts_run(cmd, out, 1 << 20), 0, "%s: %s", cmd, out);
    return out;
}

Test(http, records_are_the_bytes_cellctl_prints)
{
    cell *c = &cell_;
    populate(c);
    static const char *const what[] = {"machines", "jobs", "tasks"};
    for (size_t i = 0; i < 3; i++) {
        char path[64];
        snprintf(path, sizeof path, "/v1/%s", what[i]);
        resp r;
        http(c->port, "GET", path, NULL, NULL, &r);
        cr_assert_eq(r.status, 200);
        char *out = cellctl_json(c, what[i]);
        cr_assert_str_eq(r.body, out, "GET %s differs from cellctl get %s -o json", path,
                         what[i]);
        free(out);
        resp_free(&r);
    }
}

/* ---- writes ------------------------------------------------------------------------- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(m);
    fclose(f);
    return buf;
}

Test(http, submit_a_marathon_app_and_dry_run)
{
    cell *c = &cell_;
    add_machine(&c->d, "m1");
    /* A small Marathon app, with a field that cannot apply here. */
    const char *app = "{\"id\": \"/shop/cart\", \"cmd\": \"sleep 60\", \"cpus\": 0.25, "
                      "\"mem\": 32, \"instances\": 3, \"labels\": {\"team\": \"a\"}}";
    json_t *dry = expect(c->port, "POST", "/v1/jobs?dry_run=1", app, 200);
    cr_assert_str_eq(str(dry, "name"), "shop/cart");
    cr_assert_eq(num(dry, "count"), 3);
    cr_assert_str_eq(str(dry, "kind"), "service");
    json_decref(dry);
    expect_error(c->port, "GET", "/v1/jobs/shop%2Fcart", NULL, NULL, 404, "not_found",
                 "shop/cart");
    json_t *w = expect(c->port, "POST", "/v1/jobs", app, 201);
    cr_assert_str_eq(str(w, "job"), "shop/cart");
    json_t *warn = json_object_get(w, "warnings");
    cr_assert(json_array_size(warn) >= 1);
    cr_assert(strstr(json_string_value(json_array_get(warn, 0)), "labels") != NULL, "%s",
              json_string_value(json_array_get(warn, 0)));
    json_decref(w);
    /* By its Marathon id too: the leading "/" is dropped, as cellctl does. */
    json_t *j = expect(c->port, "GET", "/v1/jobs/%2Fshop%2Fcart/tasks", NULL, 200);
    cr_assert_eq(json_array_size(j), 3);
    json_decref(j);

}

/* What `cellctl submit --dry-run FILE` prints: stdout into *out, and
 * stderr's lines without their "cellctl: [warning: ]FILE: " prefix into
 * *msgs (one a line). Its exit status. */
static int cellctl_dry_run(const char *file, char **out, char **msgs)
{
    char bin[256], cmd[1024], buf[1 << 16];
    ts_bin("cellctl", bin, sizeof bin);
    /* ts_run adds 2>&1: the subshell keeps this stderr apart. */
    snprintf(cmd, sizeof cmd, "(%s submit --dry-run %s 2>/dev/null)", bin, file);
    int st = ts_run(cmd, buf, sizeof buf);
    *out = strdup(buf);
    snprintf(cmd, sizeof cmd, "(%s submit --dry-run %s 2>&1 >/dev/null)", bin, file);
    ts_run(cmd, buf, sizeof buf);
    FILE *m = open_memstream(msgs, &(size_t){0});
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        char *p = strstr(line, file);
        fprintf(m, "%s\n", p ? p + strlen(file) + 2 : line);
    }
    fclose(m);
    return st;
}

/* Marathon apps from the shared test data: the same native spec as
 * cellctl submit --dry-run, byte for byte, and the same warnings and
 * errors, word for word. */
Test(http, shared_marathon_apps_as_cellctl_takes_them)
{
    cell *c = &cell_;
    static const char *const apps[] = {"app.json", "readiness-and-health-app.json",
                                       "nginx.json"};
    char path[256];
    snprintf(path, sizeof path, MARATHON_DATA "/%s", apps[0]);
    if (access(path, R_OK) != 0) {
        /* A skipped test's .fini does not run: end the cell here. */
        teardown();
        cr_skip_test("%s is absent: the Marathon testdata lives in ../shared/testdata", path);
    }
    for (size_t i = 0; i < sizeof apps / sizeof apps[0]; i++) {
        snprintf(path, sizeof path, MARATHON_DATA "/%s", apps[i]);
        char *text = slurp(path), *out, *msgs;
        cr_assert(text != NULL, "%s", path);
        int st = cellctl_dry_run(path, &out, &msgs);
        resp r;
        http(c->port, "POST", "/v1/jobs?dry_run=1", "application/json", text, &r);
        if (st != 0) {
            /* Refused: the same message (cellctl's first line). */
            cr_assert_eq(r.status, 400, "%s: %s", path, r.raw);
            json_t *e = body_json(&r);
            char *nl = strchr(msgs, '\n');
            *nl = '\0';
            cr_assert_str_eq(str(e, "message"), msgs, "%s", path);
            json_decref(e);
        } else {
            cr_assert_eq(r.status, 200, "%s: %s", path, r.raw);
            cr_assert_str_eq(r.body, out, "%s: the dry run differs from cellctl's:\n%s---\n%s",
                             path, r.body, out);
            json_t *w = expect(c->port, "POST", "/v1/jobs", text, 201);
            json_t *warn = json_object_get(w, "warnings");
            size_t k = 0;
            for (char *line = strtok(msgs, "\n"); line; line = strtok(NULL, "\n"), k++)
                cr_assert_str_eq(json_string_value(json_array_get(warn, k)), line, "%s", path);
            cr_assert_gt(k, 0, "%s: cellctl warned of nothing", path);
            json_decref(w);
        }
        resp_free(&r);
        free(text);
        free(out);
        free(msgs);
    }
}

Test(http, scale_update_kill_cordon_drain)
{
    cell *c = &cell_;
    populate(c);
    json_t *r = expect(c->port, "POST", "/v1/jobs/web/scale", "{\"count\": 3}", 200);
    cr_assert_str_eq(str(r, "job"), "web");
    json_decref(r);
    r = expect(c->port, "GET", "/v1/jobs/web", NULL, 200);
    cr_assert_eq(num(r, "count"), 3);
    json_decref(r);

    const char *web2 = "{\"name\": \"web\", \"kind\": \"service\", \"cmd\": \"sleep 200\", "
                       "\"count\": 3, \"resources\": {\"cpu\": 0.25, \"mem\": 64}}";
    r = expect(c->port, "PUT", "/v1/jobs/web", web2, 200);
    json_decref(r);
    r = expect(c->port, "GET", "/v1/jobs/web", NULL, 200);
    cr_assert_str_eq(str(r, "cmd"), "sleep 200");
    json_decref(r);

    r = expect(c->port, "POST", "/v1/machines/m2/cordon", NULL, 200);
    cr_assert_str_eq(str(r, "admin"), "cordoned");
    json_decref(r);
    r = expect(c->port, "POST", "/v1/machines/m2/uncordon", NULL, 200);
    cr_assert_str_eq(str(r, "admin"), "active");
    json_decref(r);
    r = expect(c->port, "POST", "/v1/machines/m1/drain", "{\"deadline\": \"30s\"}", 200);
    cr_assert_str_eq(str(r, "admin"), "draining");
    cr_assert_gt(num(r, "drain_deadline"), 0);
    json_decref(r);
    r = expect(c->port, "POST", "/v1/machines/m2/drain", "{\"deadline\": null}", 200);
    cr_assert_eq(num(r, "drain_deadline"), 0, "no deadline: batch tasks run to their end");
    json_decref(r);
    r = expect(c->port, "POST", "/v1/machines/m2/drain", NULL, 200);
    cr_assert_gt(num(r, "drain_deadline"), 0, "cellctl's default deadline");
    json_decref(r);

    r = expect(c->port, "DELETE", "/v1/jobs/web", NULL, 200);
    json_decref(r);
    r = expect(c->port, "GET", "/v1/jobs/web", NULL, 200);
    cr_assert_str_eq(str(r, "state"), "killed");
    json_decref(r);
    /* 409: what its state no longer allows. */
    expect_error(c->port, "POST", "/v1/jobs/web/scale", "application/json", "{\"count\": 1}", 409,
                 "conflict", "is killed");
}

/* ---- errors ------------------------------------------------------------------------- */

Test(http, every_error_status)
{
    cell *c = &cell_;
    populate(c);
    const char *J = "application/json";
    expect_error(c->port, "GET", "/v2/jobs", NULL, NULL, 404, "not_found", "no route GET /v2");
    expect_error(c->port, "GET", "/v1/jobs/web/bogus", NULL, NULL, 404, "not_found", "no route");
    expect_error(c->port, "GET", "/v1/jobs/nope", NULL, NULL, 404, "not_found", "job nope");
    expect_error(c->port, "DELETE", "/v1/jobs/nope", NULL, NULL, 404, "not_found", "kill nope");
    expect_error(c->port, "POST", "/v1/machines/nope/cordon", NULL, NULL, 404, "not_found",
                 "cordon nope");
    /* 405 names what the path takes, in Allow too. */
    resp r;
    http(c->port, "PATCH", "/v1/jobs/web", NULL, NULL, &r);
    cr_assert_eq(r.status, 405, "%s", r.raw);
    char allow[64];
    cr_assert_str_eq(header(&r, "Allow", allow, sizeof allow), "GET, PUT, DELETE");
    resp_free(&r);
    expect_error(c->port, "DELETE", "/v1/machines", NULL, NULL, 405, "method_not_allowed",
                 "takes GET");
    /* 400: bad JSON, validation (the field's path, as cellctl says it),
     * bad filters and parameters. */
    expect_error(c->port, "POST", "/v1/jobs", J, "{\"name\": ", 400, "bad_request", "line 1");
    expect_error(c->port, "POST", "/v1/jobs", J, "{\"name\": \"x\", \"cmd\": \"true\", "
                 "\"count\": -1}", 400, "bad_request", "count");
    expect_error(c->port, "POST", "/v1/jobs", J, "{\"id\": \"/a\", \"cmd\": \"true\", "
                 "\"healthChecks\": [{\"protocol\": \"HTTP\", \"portIndex\": 2}]}", 400,
                 "bad_request", "healthChecks[0]");
    expect_error(c->port, "POST", "/v1/jobs", NULL, NULL, 400, "bad_request", "needs a JSON body");
    expect_error(c->port, "POST", "/v1/jobs/web/scale", J, "{\"count\": \"x\"}", 400,
                 "bad_request", "task count");
    expect_error(c->port, "POST", "/v1/jobs/web/scale", J, "[1]", 400, "bad_request",
                 "not a JSON object");
    expect_error(c->port, "PUT", "/v1/jobs/web", J, "{\"name\": \"other\", \"cmd\": \"true\"}",
                 400, "bad_request", "a job's name cannot change");
    expect_error(c->port, "POST", "/v1/machines/m1/drain", J, "{\"deadline\": \"soon\"}", 400,
                 "bad_request", "deadline");
    expect_error(c->port, "GET", "/v1/tasks?state=sleeping", NULL, NULL, 400, "bad_request",
                 "not a task state");
    expect_error(c->port, "GET", "/v1/machines?colour=red", NULL, NULL, 400, "bad_request",
                 "unknown query parameter 'colour'");
    expect_error(c->port, "GET", "/v1/jobs?index=x", NULL, NULL, 400, "bad_request", "index=x");
    expect_error(c->port, "GET", "/v1/jobs?wait=1s", NULL, NULL, 400, "bad_request",
                 "without index");
    expect_error(c->port, "GET", "/v1/jobs/a%zz", NULL, NULL, 400, "bad_request", "%-escape");
    expect_error(c->port, "POST", "/v1/jobs?dry_run=maybe", J, WEB, 400, "bad_request",
                 "dry_run");
    /* 409: a job of that name exists. */
    expect_error(c->port, "POST", "/v1/jobs", J, WEB, 409, "conflict", "submit web");
    /* 415: not JSON. */
    expect_error(c->port, "POST", "/v1/jobs", "text/plain", WEB, 415, "unsupported_media_type",
                 "text/plain");
    /* 413: refused before it is read (see hostile_input for 10 MB). */
    char big[128];
    snprintf(big, sizeof big, "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: "
             "application/json\r\nContent-Length: %u\r\n\r\n", (2u << 20));
    raw(c->port, big, strlen(big), &r);
    cr_assert_eq(r.status, 413, "%s", r.raw);
    resp_free(&r);
}

/* --http on an address in use stops cellstated at start, naming it; a value
 * that is not HOST:PORT is a bad command line. */
Test(http, bad_or_busy_address_is_refused_at_start)
{
    char bin[256], cmd[1024], out[4096];
    ts_bin("cellstated", bin, sizeof bin);
    snprintf(cmd, sizeof cmd, "timeout 20 %s --listen tcp://127.0.0.1:%d --data %s/busy --nosync "
             "--http 127.0.0.1:%d", bin, ts_free_port(), cell_.d.dir, cell_.port);
    cr_assert_eq(ts_run(cmd, out, sizeof out), 1, "%s", out);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", cell_.port);
    cr_assert(strstr(out, want) != NULL && strstr(out, "HTTP API") != NULL, "%s", out);
    snprintf(cmd, sizeof cmd, "timeout 20 %s --listen tcp://127.0.0.1:%d --data %s/bad --nosync "
             "--http localhost", bin, ts_free_port(), cell_.d.dir);
    cr_assert_eq(ts_run(cmd, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "--http localhost: not HOST:PORT") != NULL, "%s", out);
    still_serving(cell_.port);
}

/* With roles from tokens (cellstated --auth-tokens), the API acts for
 * the bearer token (docs/http.md "Authorization"): without one a read is
 * 403 naming anonymous; a reader reads and may not submit; the operator
 * submits; a header that is not "Bearer TOKEN" is 401. */
Test(http, roles_follow_the_bearer_token)
{
    char tokens[400], listen[64];
    snprintf(tokens, sizeof tokens, "%s/tokens", cell_.d.dir);
    FILE *f = fopen(tokens, "w");
    cr_assert_not_null(f);
    fputs("operator-0123456789abcdef operator\nreader-0123456789abcdef reader\n", f);
    fclose(f);
    int port = ts_free_port();
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    ts_daemon d;
    const char *extra[] = {"--http", listen, "--auth-tokens", tokens, NULL};
    ts_daemon_setupv(&d, extra);
    wait_http(port);
    resp r;
    http(port, "GET", "/v1/jobs", NULL, NULL, &r);
    cr_assert_eq(r.status, 403, "%d %s", r.status, r.body);
    cr_assert(strstr(r.body, "permission denied: anonymous may not get.jobs") != NULL, "%s",
              r.body);
    resp_free(&r);
    const char *as[] = {"reader-0123456789abcdef", "operator-0123456789abcdef"};
    for (int i = 0; i < 2; i++) {
        char *req = NULL;
        int n = asprintf(&req,
                         "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                         "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\n\r\n%s",
                         as[i], strlen(WEB), WEB);
        cr_assert(n > 0);
        raw(port, req, (size_t)n, &r);
        free(req);
        cr_assert_eq(r.status, i == 0 ? 403 : 201, "%s: %d %s", as[i], r.status, r.body);
        if (i == 0)
            cr_assert(strstr(r.body, "reader may not job.submit") != NULL, "%s", r.body);
        resp_free(&r);
    }
    const char *bad = "GET /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                      "Authorization: Basic b3A6cHc=\r\n\r\n";
    raw(port, bad, strlen(bad), &r);
    cr_assert_eq(r.status, 401, "%d %s", r.status, r.body);
    resp_free(&r);
    ts_daemon_teardown(&d);
}

/* ---- a replicated cell -------------------------------------------------------------- */

/* Three members in one directory (cluster.json), each with its HTTP API. */
typedef struct trio {
    char dir[256], cluster[300], bin[256];
    int http[3];
    int pid[3];
} trio;

static void trio_setup(trio *t)
{
    ts_daemon_teardown(&cell_.d); /* the suite's single cellstated is not used */
    memset(t, 0, sizeof *t);
    cr_assert_eq(ts_mkdtemp(t->dir, sizeof t->dir), 0);
    snprintf(t->cluster, sizeof t->cluster, "%s/cluster.json", t->dir);
    ts_bin("cellstated", t->bin, sizeof t->bin);
    FILE *f = fopen(t->cluster, "w");
    cr_assert(f != NULL);
    for (int i = 0; i < 3; i++) {
        t->http[i] = ts_free_port();
        int listen = ts_free_port(), raft = ts_free_port();
        fprintf(f, "%s{\"id\": %d, \"listen\": \"tcp://127.0.0.1:%d\", \"raft\": \"127.0.0.1:%d\"}",
                i ? ", " : "[", i + 1, listen, raft);
    }
    fputs("]\n", f);
    fclose(f);
}

/* Start member i (0-based) with --http on its port. */
static void trio_start(trio *t, int i)
{
    char id[16], data[300], log[300], listen[64];
    snprintf(id, sizeof id, "%d", i + 1);
    snprintf(data, sizeof data, "%s/data-%d", t->dir, i + 1);
    snprintf(log, sizeof log, "%s/cellstated-%d.log", t->dir, i + 1);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", t->http[i]);
    char f_cluster[] = "--cluster", f_id[] = "--id", f_data[] = "--data", f_nosync[] = "--nosync",
         f_http[] = "--http";
    char *argv[] = {t->bin, f_cluster, t->cluster, f_id, id, f_data, data, f_nosync, f_http,
                    listen, NULL};
    t->pid[i] = ts_spawn(argv, log);
    wait_http(t->http[i]);
}

static void trio_stop(trio *t)
{
    for (int i = 0; i < 3; i++) {
        if (t->pid[i] <= 0)
            continue;
        int st = ts_stop(t->pid[i], SIGTERM, 10000);
        if (st != 0) {
            char log[300];
            snprintf(log, sizeof log, "%s/cellstated-%d.log", t->dir, i + 1);
            ts_log_file("cellstated", log);
        }
        cr_expect_eq(st, 0, "member %d exited with %d", i + 1, st);
        t->pid[i] = 0;
    }
    ts_rmtree(t->dir);
}

/* A replica of a three-member cell started alone never has a leader: its
 * reads are answered, its writes are 503. */
Test(http, no_leader_is_503)
{
    trio t;
    trio_setup(&t);
    trio_start(&t, 0);
    json_t *m = expect(t.http[0], "GET", "/v1/members", NULL, 200);
    cr_assert_eq(json_array_size(json_object_get(m, "members")), 3);
    json_decref(m);
    json_t *jobs = expect(t.http[0], "GET", "/v1/jobs", NULL, 200);
    cr_assert_eq(json_array_size(jobs), 0);
    json_decref(jobs);
    expect_error(t.http[0], "POST", "/v1/jobs", "application/json", WEB, 503, "unavailable", "");
    trio_stop(&t);
}

/* The index of the member whose API says it is `role`, -1 when none. */
static int member_in_role(const trio *t, const char *role)
{
    for (int i = 0; i < 3; i++) {
        resp r;
        http(t->http[i], "GET", "/v1/members", NULL, NULL, &r);
        json_t *m = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
        const char *got = json_string_value(json_object_get(m, "role"));
        bool match = got != NULL && strcmp(got, role) == 0;
        json_decref(m);
        resp_free(&r);
        if (match)
            return i;
    }
    return -1;
}

/* A follower's API takes a submission (the server forwards it to the
 * leader) and the leader's API shows it. */
Test(http, a_follower_accepts_writes)
{
    trio t;
    trio_setup(&t);
    for (int i = 0; i < 3; i++)
        trio_start(&t, i);
    int leader = -1;
    for (int64_t until = ts_now_ms() + 20000; leader < 0; ts_sleep_ms(100)) {
        cr_assert(ts_now_ms() < until, "no leader elected within 20 s");
        leader = member_in_role(&t, "leader");
    }
    int follower = (leader + 1) % 3;
    json_t *w = expect(t.http[follower], "POST", "/v1/jobs", WEB, 201);
    cr_assert_str_eq(str(w, "job"), "web");
    uint64_t v = (uint64_t)num(w, "version");
    json_decref(w);
    /* The leader has it at once (it committed it); read there. */
    json_t *j = expect(t.http[leader], "GET", "/v1/jobs/web", NULL, 200);
    cr_assert_eq(num(j, "count"), 2);
    json_decref(j);
    /* And the follower once it applied it: a blocking query on it. */
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs?index=%" PRIu64 "&wait=10s", v - 1);
    j = expect(t.http[follower], "GET", path, NULL, 200);
    cr_assert(find_by(j, "name", "web") != NULL);
    json_decref(j);
    w = expect(t.http[follower], "POST", "/v1/jobs/web/scale", "{\"count\": 1}", 200);
    json_decref(w);
    trio_stop(&t);
}

/* ---- blocking queries -------------------------------------------------------------- */

/* The cell version a plain GET shows now. */
static uint64_t current_index(int port)
{
    resp r;
    http(port, "GET", "/v1/jobs", NULL, NULL, &r);
    uint64_t n = cell_index(&r);
    resp_free(&r);
    return n;
}

typedef struct later {
    ts_daemon *d;
    int delay_ms;
} later;

/* Submit a job from another client after a pause. */
static void *submit_later(void *arg)
{
    later *l = arg;
    ts_sleep_ms(l->delay_ms);
    cs_client *c;
    cs_error err = {0};
    if (cs_client_open(l->d->url, 5000, &c, &err) != CS_OK)
        return NULL;
    ts_submit(c, "{\"name\": \"late\", \"cmd\": \"true\"}");
    cs_client_close(c);
    return NULL;
}

Test(http, blocking_query_returns_when_another_client_submits)
{
    cell *c = &cell_;
    populate(c);
    uint64_t n = current_index(c->port);
    resp r;
    pthread_t t;
    later l = {&c->d, 300};
    pthread_create(&t, NULL, submit_later, &l);
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs?index=%" PRIu64 "&wait=60s", n);
    http(c->port, "GET", path, NULL, NULL, &r);
    pthread_join(t, NULL);
    cr_assert_eq(r.status, 200, "%s", r.raw);
    cr_assert_gt(cell_index(&r), n, "answered before the version passed %" PRIu64, n);
    json_t *jobs = body_json(&r);
    cr_assert(find_by(jobs, "name", "late") != NULL, "the new job is not in the reply: %s",
              r.body);
    json_decref(jobs);
    resp_free(&r);
    /* An index already passed answers at once with the current version. */
    snprintf(path, sizeof path, "/v1/tasks?index=%" PRIu64, n);
    http(c->port, "GET", path, NULL, NULL, &r);
    cr_assert_gt(cell_index(&r), n);
    resp_free(&r);
}

Test(http, blocking_query_times_out_with_the_same_version)
{
    cell *c = &cell_;
    populate(c);
    uint64_t n = current_index(c->port);
    resp r;
    char path[96];
    snprintf(path, sizeof path, "/v1/machines?index=%" PRIu64 "&wait=300ms", n);
    http(c->port, "GET", path, NULL, NULL, &r);
    cr_assert_eq(r.status, 200, "%s", r.raw);
    cr_assert_eq(cell_index(&r), n);
    json_t *ms = body_json(&r);
    cr_assert_eq(json_array_size(ms), 2);
    json_decref(ms);
    resp_free(&r);
}

/* More waiting queries than the gateway has threads: a GET is answered while
 * every one of them still waits (a waiting query holds no thread), and one
 * submission answers them all. */
Test(http, waiting_queries_hold_no_thread)
{
    cell *c = &cell_;
    populate(c);
    uint64_t n = current_index(c->port);
    resp r;
    enum { WAITERS = 3 * CS_HTTP_THREADS_DEFAULT };
    int fds[WAITERS];
    char req[160];
    snprintf(req, sizeof req, "GET /v1/tasks?index=%" PRIu64 "&wait=60s HTTP/1.1\r\nHost: x\r\n"
             "Connection: close\r\n\r\n", n);
    for (int i = 0; i < WAITERS; i++) {
        fds[i] = dial(c->port);
        cr_assert(fds[i] >= 0);
        cr_assert(send_all(fds[i], req, strlen(req)));
    }
    still_serving(c->port);
    char byte;
    for (int i = 0; i < WAITERS; i++)
        cr_assert_eq(recv(fds[i], &byte, 1, MSG_DONTWAIT | MSG_PEEK), -1,
                     "waiting query %d was answered before the version passed", i);
    cs_error err = {0};
    cs_client *cl;
    cr_assert_eq(cs_client_open(c->d.url, 5000, &cl, &err), CS_OK);
    ts_submit(cl, "{\"name\": \"wake\", \"cmd\": \"true\"}");
    cs_client_close(cl);
    for (int i = 0; i < WAITERS; i++) {
        read_reply(fds[i], &r);
        cr_assert_eq(r.status, 200, "%s", r.raw);
        cr_assert_gt(cell_index(&r), n);
        resp_free(&r);
        close(fds[i]);
    }
}

/* Two requests on one connection (HTTP/1.1 keeps it open). */
Test(http, a_connection_serves_several_requests)
{
    cell *c = &cell_;
    populate(c);
    int fd = dial(c->port);
    cr_assert(fd >= 0);
    const char *first = "GET /v1/machines HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert(send_all(fd, first, strlen(first)));
    /* Read the first reply by its Content-Length. */
    char buf[65536];
    size_t got = 0;
    char *body = NULL;
    long len = -1;
    while (body == NULL || (long)(got - (size_t)(body - buf)) < len) {
        ssize_t k = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        cr_assert_gt(k, 0, "the connection closed after %zu bytes", got);
        got += (size_t)k;
        buf[got] = '\0';
        char *sep = strstr(buf, "\r\n\r\n");
        if (body == NULL && sep != NULL) {
            body = sep + 4;
            char *cl = strcasestr(buf, "Content-Length:");
            cr_assert(cl != NULL && cl < body, "%s", buf);
            len = strtol(cl + 15, NULL, 10);
        }
    }
    cr_assert(strncmp(buf, "HTTP/1.1 200", 12) == 0, "%s", buf);
    const char *second = "GET /v1/jobs/web HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    cr_assert(send_all(fd, second, strlen(second)));
    resp r;
    read_reply(fd, &r);
    close(fd);
    cr_assert_eq(r.status, 200, "%s", r.raw);
    json_t *j = body_json(&r);
    cr_assert_str_eq(str(j, "name"), "web");
    json_decref(j);
    resp_free(&r);
}

/* ---- hostile input ------------------------------------------------------------------ */

Test(http, hostile_input_leaves_it_serving)
{
    cell *c = &cell_;
    populate(c);
    resp r;
    /* Garbage bytes: nng's own 400 (or a closed connection), nothing more. */
    static const char garbage[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n";
    raw(c->port, garbage, sizeof garbage - 1, &r);
    cr_assert(r.status == 0 || r.status == 400, "%s", r.raw);
    resp_free(&r);
    still_serving(c->port);
    /* A 10 MB body: 413 before a byte of it is read, then the rest is
     * sent into a closing connection. */
    int fd = dial(c->port);
    cr_assert(fd >= 0);
    const char *head = "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Content-Length: 10485760\r\n\r\n";
    cr_assert(send_all(fd, head, strlen(head)));
    read_reply(fd, &r);
    cr_assert_eq(r.status, 413, "%s", r.raw);
    cr_assert(strstr(r.body, "10485760") != NULL, "%s", r.body);
    char *mb = calloc(1, 1 << 20);
    for (int i = 0; i < 10; i++)
        if (!send_all(fd, mb, 1 << 20))
            break;
    free(mb);
    close(fd);
    resp_free(&r);
    still_serving(c->port);
    /* Bad JSON of every kind, a chunked body, a request cut short. */
    static const char *const bodies[] = {"{", "[]", "null", "{\"name\": 1}", "\"x\"",
                                         "{\"name\": \"a\", \"cmd\": \"x\", \"count\": 1e99}"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        http(c->port, "POST", "/v1/jobs", "application/json", bodies[i], &r);
        cr_assert_eq(r.status, 400, "%s: %s", bodies[i], r.raw);
        resp_free(&r);
    }
    const char *chunked = "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                          "Content-Type: application/json\r\n\r\n5\r\n{}{}{\r\n0\r\n\r\n";
    raw(c->port, chunked, strlen(chunked), &r);
    cr_assert_eq(r.status, 400, "%s", r.raw);
    resp_free(&r);
    fd = dial(c->port);
    const char *cut = "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"na";
    send_all(fd, cut, strlen(cut));
    close(fd);
    /* A blocking query whose client leaves. */
    fd = dial(c->port);
    const char *wait = "GET /v1/jobs?index=999999&wait=60s HTTP/1.1\r\nHost: x\r\n\r\n";
    send_all(fd, wait, strlen(wait));
    ts_sleep_ms(100);
    close(fd);
    still_serving(c->port);
    /* And it stops cleanly (no leak, no hang) with a query still waiting. */
    fd = dial(c->port);
    send_all(fd, wait, strlen(wait));
    ts_sleep_ms(100);
    cr_assert_eq(ts_daemon_stop(&c->d), 0);
    close(fd);
}

/* ---- the request target, without a server (http/api.h) ------------------------------ */

Test(http_target, segments_are_split_before_they_are_decoded)
{
    gw_req q = {.method = "GET"};
    cs_error err = {0};
    cr_assert_eq(gw_req_parse("/v1//jobs/%2Fprod%2Fweb/tasks?job=a+b%26c&state=&x", &q, &err),
                 CS_OK, "%s", err.msg);
    cr_assert_eq(q.nseg, 4);
    cr_assert_str_eq(q.seg[2], "/prod/web");
    cr_assert_str_eq(q.seg[3], "tasks");
    cr_assert_eq(q.nparams, 3);
    cr_assert_str_eq(gw_req_param(&q, "job"), "a b&c");
    cr_assert_str_eq(gw_req_param(&q, "state"), "");
    cr_assert_str_eq(gw_req_param(&q, "x"), "");
    cr_assert_null(gw_req_param(&q, "machine"));
    gw_req_free(&q);
    static const char *const bad[] = {"/v1/jobs/%zz", "/v1/jobs/%0", "/v1/jobs/%00x",
                                      "/v1/jobs?x=%", "/a/b/c/d/e/f/g/h/i"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(gw_req_parse(bad[i], &q, &err), CS_EINVAL, "%s was taken", bad[i]);
        gw_req_free(&q);
    }
}

Test(http_target, blocking_parameters)
{
    gw_req q = {.method = "GET"};
    cs_error err = {0};
    bool b;
    uint64_t ix;
    uint32_t ms;
    cr_assert_eq(gw_req_parse("/v1/jobs?index=7", &q, &err), CS_OK);
    cr_assert_eq(gw_blocking(&q, &b, &ix, &ms, &err), CS_OK);
    cr_assert(b);
    cr_assert_eq(ix, 7);
    cr_assert_eq(ms, CS_HTTP_WAIT_DEFAULT_MS);
    gw_req_free(&q);
    cr_assert_eq(gw_req_parse("/v1/jobs?index=7&wait=1h", &q, &err), CS_OK);
    cr_assert_eq(gw_blocking(&q, &b, &ix, &ms, &err), CS_OK);
    cr_assert_eq(ms, CS_HTTP_WAIT_MAX_MS, "a longer wait is cut to the maximum");
    gw_req_free(&q);
    cr_assert_eq(gw_req_parse("/v1/jobs?index=7&wait=1.5", &q, &err), CS_OK);
    cr_assert_eq(gw_blocking(&q, &b, &ix, &ms, &err), CS_OK);
    cr_assert_eq(ms, 1500);
    gw_req_free(&q);
    cr_assert_eq(gw_req_parse("/v1/jobs", &q, &err), CS_OK);
    cr_assert_eq(gw_blocking(&q, &b, &ix, &ms, &err), CS_OK);
    cr_assert_not(b);
    gw_req_free(&q);
    q.method = "POST";
    cr_assert_eq(gw_req_parse("/v1/jobs?index=7", &q, &err), CS_OK);
    cr_assert_eq(gw_blocking(&q, &b, &ix, &ms, &err), CS_OK);
    cr_assert_not(b, "only a GET blocks");
    gw_req_free(&q);
    q.method = "GET";
    static const char *const bad[] = {"/v1/jobs?index=-1", "/v1/jobs?index=1x",
                                      "/v1/jobs?index=99999999999999999999",
                                      "/v1/jobs?index=1&wait=soon", "/v1/jobs?wait=1s"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(gw_req_parse(bad[i], &q, &err), CS_OK);
        cr_assert_eq(gw_blocking(&q, &b, &ix, &ms, &err), CS_EINVAL, "%s was taken", bad[i]);
        gw_req_free(&q);
    }
}

/* ---- the gateway in this process, with pages beside the API ------------------------- */

static int page_write(void *arg, FILE *out, cs_error *err)
{
    int *n = arg;
    (*n)++;
    fprintf(out, "cell_up 1\n");
    return CS_OK;
}

static int page_fail(void *arg, FILE *out, cs_error *err)
{
    return cs_errorf(err, CS_EIO, "no metrics today");
}

/* What cellstated's main does with --http 127.0.0.1:0, plus two pages of
 * the kind the lead's /metrics will be, a small body limit, and the
 * gateway's own URL with the port it was given. */
Test(http_inproc, pages_beside_the_api_and_a_port_of_its_own, .init = ts_tmp_setup,
     .fini = ts_tmp_teardown)
{
    char data[300];
    snprintf(data, sizeof data, "%s/data", ts_tmp);
    cs_server_opts o;
    cs_server_opts_default(&o);
    o.data_dir = data;
    o.listen_url = "inproc://test-http-rep";
    o.local_url = "inproc://test-http-local";
    o.local_pub_url = "inproc://test-http-pub";
    o.workers = 16;
    o.nosync = true;
    cs_server *srv;
    cs_error err = {0};
    cr_assert_eq(cs_server_start(&o, &srv, &err), CS_OK, "%s", err.msg);
    int n = 0;
    cs_http_page pages[] = {
        {.path = "/metrics", .content_type = "text/plain; version=0.0.4", .write = page_write,
         .arg = &n},
        {.path = "/broken", .content_type = "text/plain", .write = page_fail}};
    cs_http_opts ho = {.listen = "127.0.0.1:0", .server_url = o.local_url,
                       .pub_url = o.local_pub_url, .threads = 2, .max_body = 64,
                       .pages = pages, .npages = 2};
    cs_http *h;
    cr_assert_eq(cs_http_start(&ho, &h, &err), CS_OK, "%s", err.msg);
    char url[128];
    cr_assert_eq(cs_http_url(h, url, sizeof url, &err), CS_OK);
    int port = 0;
    cr_assert_eq(sscanf(url, "http://127.0.0.1:%d/v1/", &port), 1, "%s", url);
    cr_assert_gt(port, 0, "%s: port 0 was not replaced by the bound one", url);

    resp r;
    char ct[64];
    http(port, "GET", "/metrics", NULL, NULL, &r);
    cr_assert_eq(r.status, 200, "%s", r.raw);
    cr_assert_str_eq(r.body, "cell_up 1\n");
    cr_assert_str_eq(header(&r, "Content-Type", ct, sizeof ct), "text/plain; version=0.0.4");
    cr_assert_eq(n, 1);
    resp_free(&r);
    expect_error(port, "GET", "/broken", NULL, NULL, 500, "internal", "no metrics today");
    expect_error(port, "GET", "/metrics/more", NULL, NULL, 404, "not_found", "no route");
    json_t *jobs = expect(port, "GET", "/v1/jobs", NULL, 200);
    cr_assert_eq(json_array_size(jobs), 0);
    json_decref(jobs);
    expect_error(port, "POST", "/v1/jobs", "application/json", WEB, 413, "too_large", "64 bytes");

    cs_http_stop(h);
    cs_server_stop(srv);
}
