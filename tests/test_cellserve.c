/* test_cellserve.c — integration: the examples' tiny HTTP server, started
 * as a task would be (its port and identity in the environment), asked over
 * real TCP on 127.0.0.1. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support.h"

typedef struct server {
    char dir[256];
    char log[320];
    int port;
    int pid;
} server;

static server S;

/* Connect to the server, retrying while it starts; -1 after ~10 s. */
static int dial(int port)
{
    for (int tries = 0; tries < 1000; tries++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        cr_assert(fd >= 0, "socket: %s", strerror(errno));
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
            return fd;
        close(fd);
        ts_sleep_ms(10);
    }
    return -1;
}

/* Send `req` as it is and read the whole answer (the server closes after
 * it) into out. */
static void ask(const char *req, char *out, size_t size)
{
    int fd = dial(S.port);
    cr_assert(fd >= 0, "cellserve does not listen on %d", S.port);
    size_t len = strlen(req), off = 0;
    while (off < len) {
        ssize_t n = write(fd, req + off, len - off);
        cr_assert(n > 0, "write: %s", strerror(errno));
        off += (size_t)n;
    }
    size_t got = 0;
    ssize_t n;
    while (got + 1 < size && (n = read(fd, out + got, size - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = '\0';
    close(fd);
}

static void setup(void)
{
    memset(&S, 0, sizeof S);
    cr_assert_eq(ts_mkdtemp(S.dir, sizeof S.dir), 0);
    snprintf(S.log, sizeof S.log, "%s/cellserve.log", S.dir);
    S.port = ts_free_port();
    char port[16], bin[256];
    snprintf(port, sizeof port, "%d", S.port);
    ts_bin("cellserve", bin, sizeof bin);
    /* What an agent gives a task (agent/runner.c). */
    setenv("CELL_TASK_ID", "3145728", 1);
    setenv("CELL_JOB", "web", 1);
    setenv("CELL_MACHINE", "m7", 1);
    setenv("GREETING", "bonjour", 1);
    setenv("PORT0", port, 1);
    char *argv[] = {bin, NULL};
    S.pid = ts_spawn(argv, S.log);
}

static void teardown(void)
{
    int st = 0, fd = -1;
    if (S.pid > 0) {
        /* Once it listens it has blocked SIGTERM for its signalfd: before
         * that, a SIGTERM would kill it by the default action. */
        fd = dial(S.port);
        if (fd >= 0)
            close(fd);
        st = ts_stop(S.pid, SIGTERM, 10000);
    }
    ts_rmtree(S.dir);
    cr_assert(fd >= 0 || S.pid <= 0, "cellserve never listened on %d", S.port);
    cr_assert(S.pid <= 0 || (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0),
              "SIGTERM ends cellserve with status 0 (wait status %d)", st);
}

TestSuite(cellserve, .init = setup, .fini = teardown, .timeout = 60);

Test(cellserve, root_names_the_task_and_its_machine)
{
    char out[2048];
    ask("GET / HTTP/1.1\r\nHost: x\r\n\r\n", out, sizeof out);
    cr_assert(strncmp(out, "HTTP/1.1 200", 12) == 0, "%s", out);
    char want[128];
    snprintf(want, sizeof want, "bonjour from task 3145728 of job web on m7, port %d", S.port);
    cr_assert(strstr(out, want) != NULL, "the page names the task, job and machine: %s", out);

    ask("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", out, sizeof out);
    cr_assert(strncmp(out, "HTTP/1.1 200", 12) == 0, "%s", out);
    cr_assert(strstr(out, "bonjour") == NULL, "HEAD has no body: %s", out);
}

Test(cellserve, health_other_paths_methods_and_garbage)
{
    char out[2048];
    ask("GET /health HTTP/1.1\r\nHost: x\r\n\r\n", out, sizeof out);
    cr_assert(strncmp(out, "HTTP/1.1 200", 12) == 0, "%s", out);
    ask("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", out, sizeof out);
    cr_assert(strncmp(out, "HTTP/1.1 404", 12) == 0, "%s", out);
    ask("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", out, sizeof out);
    cr_assert(strncmp(out, "HTTP/1.1 405", 12) == 0, "%s", out);
    ask("\x01\x02 not http at all\r\n\r\n", out, sizeof out);
    cr_assert(strncmp(out, "HTTP/1.1 400", 12) == 0, "%s", out);
    /* It still serves after the bad request. */
    ask("GET /health HTTP/1.1\r\nHost: x\r\n\r\n", out, sizeof out);
    cr_assert(strncmp(out, "HTTP/1.1 200", 12) == 0, "%s", out);
}

Test(cellserve, without_a_machine_name_the_host_name_is_shown)
{
    /* A second server, started without CELL_MACHINE. */
    unsetenv("CELL_MACHINE");
    server first = S;
    S.port = ts_free_port();
    char port[16], bin[256], host[256] = "";
    snprintf(port, sizeof port, "%d", S.port);
    ts_bin("cellserve", bin, sizeof bin);
    const char *argv[] = {bin, "--port", port, NULL};
    S.pid = ts_spawn((char *const *)argv, S.log);
    char out[2048];
    ask("GET / HTTP/1.1\r\nHost: x\r\n\r\n", out, sizeof out);
    gethostname(host, sizeof host - 1);
    char want[300];
    snprintf(want, sizeof want, "of job web on %s, port %d", host, S.port);
    cr_assert(strstr(out, want) != NULL, "%s", out);
    cr_assert_neq(ts_stop(S.pid, SIGTERM, 10000), -1);
    S.pid = first.pid;
    S.port = first.port;
}

Test(cellserve, bad_port_is_refused_with_a_message)
{
    char bin[256], log[400];
    ts_bin("cellserve", bin, sizeof bin);
    snprintf(log, sizeof log, "%s/bad.log", S.dir);
    const char *argv[] = {bin, "--port", "seventy", NULL};
    int pid = ts_spawn((char *const *)argv, log);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "exit 2 (wait status %d)", st);
    FILE *f = fopen(log, "r");
    char text[512] = "";
    cr_assert(f != NULL);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    cr_assert(strstr(text, "seventy") != NULL, "names the bad value: %s", text);
}
