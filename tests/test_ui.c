/* test_ui.c — integration: the web dashboard at /ui/ (http/ui.h,
 * docs/http.md "The dashboard") served by a real cellstated --http on
 * 127.0.0.1.
 *
 * Suite ui_files: the embedded files come back byte for byte as they are
 * in ui/, each with its content type; /ui redirects to /ui/; an unknown
 * page under /ui/ is the API's JSON 404 and a POST to a page a 405 — with
 * a small HTTP/1.1 client on a raw socket.
 *
 * Suite ui_browser: Debian's chromium, headless, loads the page from the
 * live cell (machines registered, a job submitted and given a note, a
 * scheduler's report sent as a scheduler sends it) and the DOM it renders
 * is checked for the machines, the job, its counts and the scheduler's
 * metrics as the page formats them; a note holding markup must come out
 * as text. Loaded from a file:// URL, where there is no API, the page must
 * say so. Skipped, naming the package, where chromium is not installed
 * (tools/deps.sh's tests group installs it). Chromium's profile and cache
 * go to the test's directory, and every process it started is killed at
 * the end (the test is their subreaper).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "proto/agentmsg.h"
#include "proto/client.h"
#include "proto/msg.h"
#include "proto/proto.h"
#include "proto/schedreport.h"
#include "tests/support.h"

/* ---- one HTTP request --------------------------------------------------------------- */

typedef struct reply {
    int status;
    char *raw; /* status line, headers and body, NUL-terminated */
    size_t len;
    const char *body; /* into raw */
    size_t body_len;
} reply;

/* Send `method path` with Connection: close to 127.0.0.1:port and read the
 * whole reply into *r (the caller frees r->raw). */
static void request(int port, const char *method, const char *path, reply *r)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect to port %d", port);
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char req[512];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Content-Length: 0\r\n\r\n", method, path);
    cr_assert(n > 0 && (size_t)n < sizeof req);
    cr_assert_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    FILE *m = open_memstream(&r->raw, &r->len);
    char buf[8192];
    ssize_t k;
    while ((k = recv(fd, buf, sizeof buf, 0)) > 0)
        fwrite(buf, 1, (size_t)k, m);
    fclose(m);
    close(fd);
    r->status = 0;
    sscanf(r->raw, "HTTP/1.%*d %d", &r->status);
    const char *sep = strstr(r->raw, "\r\n\r\n");
    r->body = sep ? sep + 4 : r->raw + r->len;
    r->body_len = r->len - (size_t)(r->body - r->raw);
}

/* Header `name`'s value into buf, NULL when absent. */
static const char *header(const reply *r, const char *name, char *buf, size_t size)
{
    size_t n = strlen(name);
    for (const char *p = strstr(r->raw, "\r\n"); p && p + 2 < r->body; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
            const char *v = p + 3 + n + strspn(p + 3 + n, " ");
            snprintf(buf, size, "%.*s", (int)strcspn(v, "\r"), v);
            return buf;
        }
    }
    return NULL;
}

/* ---- the cell ------------------------------------------------------------------------- */

static ts_daemon daemon_;
static int http_port;

static void cell_setup(void)
{
    /* Chromium's processes, whatever becomes of the test, are ours to end. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    ts_tmp_setup();
    char listen[64];
    http_port = ts_free_port();
    snprintf(listen, sizeof listen, "127.0.0.1:%d", http_port);
    ts_daemon_setup(&daemon_, "--http", listen);
    /* The gateway starts after the msgpack listener ts_daemon waited for. */
    int64_t until = ts_now_ms() + 10000;
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        if (fd >= 0)
            close(fd);
        if (ok)
            break;
        cr_assert(ts_now_ms() < until, "the HTTP API on port %d never listened", http_port);
        ts_sleep_ms(20);
    }
}

static void cell_teardown(void)
{
    ts_daemon_teardown(&daemon_);
    ts_kill_descendants();
    ts_tmp_teardown();
}

TestSuite(ui_files, .init = cell_setup, .fini = cell_teardown, .timeout = 240);
/* A browser test starts its cell itself, once it knows chromium is there:
 * a skipped test's .fini does not run, so nothing may be started before. */
TestSuite(ui_browser, .fini = cell_teardown, .timeout = 240);

/* ---- the files ------------------------------------------------------------------------ */

static void expect_file(const char *path, const char *file, const char *type)
{
    reply r;
    char ct[80];
    request(http_port, "GET", path, &r);
    cr_assert_eq(r.status, 200, "GET %s:\n%.500s", path, r.raw);
    cr_assert_str_eq(header(&r, "Content-Type", ct, sizeof ct), type, "GET %s", path);
    size_t len;
    char *want = ts_slurp(file, &len);
    cr_assert_eq(r.body_len, len, "GET %s: %zu bytes, %s has %zu", path, r.body_len, file, len);
    cr_assert(memcmp(r.body, want, len) == 0, "GET %s is not %s byte for byte", path, file);
    free(want);
    free(r.raw);
}

Test(ui_files, each_file_with_its_type)
{
    expect_file("/ui/", "ui/index.html", "text/html; charset=utf-8");
    expect_file("/ui/app.js", "ui/app.js", "text/javascript; charset=utf-8");
    expect_file("/ui/style.css", "ui/style.css", "text/css; charset=utf-8");
    /* A query string (a browser's cache buster) is not part of the path. */
    expect_file("/ui/app.js?v=2", "ui/app.js", "text/javascript; charset=utf-8");

    reply r;
    request(http_port, "HEAD", "/ui/", &r);
    cr_assert_eq(r.status, 200, "%s", r.raw);
    cr_assert_eq(r.body_len, 0, "HEAD has no body: %s", r.raw);
    free(r.raw);
}

Test(ui_files, ui_redirects_unknown_is_404_and_pages_are_read_only)
{
    reply r;
    char buf[80];
    request(http_port, "GET", "/ui", &r);
    cr_assert_eq(r.status, 301, "%s", r.raw);
    cr_assert_str_eq(header(&r, "Location", buf, sizeof buf), "/ui/");
    free(r.raw);

    static const char *const unknown[] = {"/ui/nope.js", "/ui/index.html", "/ui//", "/ui/app.js/"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        request(http_port, "GET", unknown[i], &r);
        cr_assert_eq(r.status, 404, "GET %s:\n%s", unknown[i], r.raw);
        cr_assert_str_eq(header(&r, "Content-Type", buf, sizeof buf), "application/json");
        cr_assert(strstr(r.body, "\"not_found\"") != NULL, "%s", r.raw);
        free(r.raw);
    }

    request(http_port, "POST", "/ui/", &r);
    cr_assert_eq(r.status, 405, "%s", r.raw);
    cr_assert_str_eq(header(&r, "Allow", buf, sizeof buf), "GET, HEAD");
    cr_assert(strstr(r.body, "POST /ui/: the page takes GET") != NULL, "%s", r.raw);
    free(r.raw);
    request(http_port, "DELETE", "/ui", &r);
    cr_assert_eq(r.status, 405, "%s", r.raw);
    free(r.raw);

    /* And the API beside it still answers. */
    request(http_port, "GET", "/v1/machines", &r);
    cr_assert_eq(r.status, 200, "%s", r.raw);
    free(r.raw);
}

/* ---- in a browser ------------------------------------------------------------------- */

static void call(uint32_t type, msgpack_sbuffer *b)
{
    cs_msg r;
    cs_error err = {0};
    cr_assert_eq(cs_client_callb(daemon_.c, type, b, &r, &err), CS_OK, "%s", err.msg);
    msgpack_sbuffer_destroy(b);
}

static void register_machine(const char *name, int64_t cpu_milli, int64_t mem)
{
    cs_machine m = {0};
    m.name = name;
    m.capacity = (cs_res){cpu_milli, mem, 20000};
    m.port_lo = 31000;
    m.port_hi = 31099;
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    cr_assert_eq(cs_register_req_encode(&pk, &m), CS_OK);
    call(CS_MSG_MACHINE_REGISTER, &b);
}

/* A report as cell-batch sends one (schedulers/metrics.c's keys), with
 * values whose rendering the page makes unmistakable. */
static void report_metrics(void)
{
    cs_sched_report *rep = calloc(1, sizeof *rep);
    cs_error err = {0};
    snprintf(rep->name, sizeof rep->name, "batch-ui");
    snprintf(rep->kind, sizeof rep->kind, "batch");
    snprintf(rep->warning, sizeof rep->warning, "<i>policy</i> & more");
    cr_assert_eq(cs_sched_report_add_float(rep, "busyness", 0.375, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_sched_report_add_float(rep, "conflict_fraction", 0.125, &err), CS_OK);
    cr_assert_eq(cs_sched_report_add_float(rep, "placements_per_s", 12.5, &err), CS_OK);
    cr_assert_eq(cs_sched_report_add_uint(rep, "wait_first_p50_ms", 40, &err), CS_OK);
    cr_assert_eq(cs_sched_report_add_uint(rep, "wait_first_p99_ms", 1500, &err), CS_OK);
    cr_assert_eq(cs_sched_report_add_uint(rep, "pending_tasks", 3, &err), CS_OK);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    cr_assert_eq(cs_sched_report_pack(&pk, rep), CS_OK);
    call(CS_MSG_SCHED_REPORT, &b);
    free(rep);
}

#define NO_CHROMIUM "chromium is not installed (Debian's chromium package: sh tools/deps.sh " \
                    "install tests)"

/* Skip the test, naming the package, when chromium is not installed. */
static void need_chromium(void)
{
    char out[256];
    if (ts_run("command -v chromium", out, sizeof out) != 0)
        cr_skip_test(NO_CHROMIUM);
}

/* chromium --dump-dom of `url`: the DOM as the page left it once
 * `budget_ms` of virtual time passed (the caller frees it). */
static char *dump_dom(const char *url, int budget_ms)
{
    char out[256];
    char cmd[2048], dom[600], log[600];
    snprintf(dom, sizeof dom, "%s/dom.html", ts_tmp);
    snprintf(log, sizeof log, "%s/chromium.log", ts_tmp);
    /* --user-data-dir: its profile and cache in the test's directory;
     * `timeout`: a browser that hangs fails the test, it does not hold it. */
    snprintf(cmd, sizeof cmd,
             "HOME='%s' timeout -k 5 120 chromium --headless --disable-gpu --no-sandbox "
             "--no-first-run --user-data-dir='%s/chromium' --virtual-time-budget=%d "
             "--dump-dom '%s' >'%s' 2>'%s'",
             ts_tmp, ts_tmp, budget_ms, url, dom, log);
    int st = ts_run(cmd, out, sizeof out);
    if (st != 0)
        ts_log_file("chromium", log);
    cr_assert_eq(st, 0, "chromium exited %d on %s", st, url);
    return ts_slurp(dom, NULL);
}

static void expect_in(const char *dom, const char *what, const char *why)
{
    cr_assert(strstr(dom, what) != NULL, "%s: '%s' is not in the DOM:\n%s", why, what, dom);
}

Test(ui_browser, the_page_shows_the_cell)
{
    need_chromium();
    cell_setup();
    register_machine("ui-m1", 4000, 4096);
    register_machine("ui-m2", 2000, 2048);
    ts_submit(daemon_.c, "{\"name\": \"ui-web\", \"kind\": \"service\", \"cmd\": \"sleep 100\", "
                         "\"count\": 3, \"resources\": {\"cpu\": 0.5, \"mem\": 64}}");
    ts_note(daemon_.c, "ui-web", "<img src=x onerror=\"document.title='pwned'\"> waits & sees");
    report_metrics();
    reply r;
    request(http_port, "POST", "/v1/machines/ui-m2/cordon", &r);
    cr_assert_eq(r.status, 200, "%s", r.raw);
    free(r.raw);

    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ui/#job=ui-web", http_port);
    char *dom = dump_dom(url, 2000);
    expect_in(dom, "data-machine=\"ui-m1\"", "machine rows");
    expect_in(dom, "data-machine=\"ui-m2\"", "machine rows");
    expect_in(dom, "4 cores", "ui-m1's cpu capacity");
    expect_in(dom, ">cordoned<", "ui-m2's admin state");
    expect_in(dom, "data-job=\"ui-web\"", "the job's row");
    expect_in(dom, "pending 3", "the job's tasks by state");
    expect_in(dom, "Tasks of <b>ui-web</b>", "the selected job's tasks");
    expect_in(dom, "data-scheduler=\"batch-ui\"", "the scheduler's card");
    expect_in(dom, "37.5%", "busyness");
    expect_in(dom, "12.5%", "conflict fraction");
    expect_in(dom, "40 ms / 1.5 s", "wait p50 / p99");
    expect_in(dom, ">12.5<", "placements/s");
    expect_in(dom, "<polyline", "the sparklines");
    expect_in(dom, "class=\"status live\"", "the live status");
    /* Names from clients are text, never markup. */
    expect_in(dom, "&lt;img src=x onerror=\"document.title='pwned'\"&gt; waits &amp; sees",
              "the note as text");
    expect_in(dom, "&lt;i&gt;policy&lt;/i&gt; &amp; more", "the warning as text");
    cr_assert(strstr(dom, "<img") == NULL && strstr(dom, "<i>policy") == NULL,
              "markup from a client became DOM:\n%s", dom);
    cr_assert(strstr(dom, "pwned</title>") == NULL, "the note's script ran");
    free(dom);
}

Test(ui_browser, without_the_api_it_says_so)
{
    need_chromium();
    /* No cell: a directory for chromium's profile, and its processes ours. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    ts_tmp_setup();
    char cwd[512], url[700];
    cr_assert(getcwd(cwd, sizeof cwd) != NULL);
    /* The page itself, without a server behind it. */
    snprintf(url, sizeof url, "file://%s/ui/index.html", cwd);
    char *dom = dump_dom(url, 2000);
    expect_in(dom, "class=\"status down\"", "the status");
    expect_in(dom, "API unreachable", "the status's words");
    free(dom);
}
