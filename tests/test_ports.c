/* test_ports.c — the test suites' port reservations (tests/support.h):
 * ports below the ephemeral range, never handed to two test processes at
 * once, and bindable when handed out. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support.h"

static bool can_listen(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 1) == 0;
    close(fd);
    return ok;
}

Test(ports, handed_out_once_below_the_ephemeral_range_and_bindable)
{
    int seen[3 * TS_PORT_BLOCK];
    for (int i = 0; i < 3 * TS_PORT_BLOCK; i++) {
        seen[i] = ts_free_port();
        cr_assert(seen[i] >= TS_PORT_LO && seen[i] < TS_PORT_HI, "port %d", seen[i]);
        cr_assert(seen[i] < 32768, "port %d is in the ephemeral range", seen[i]);
        cr_assert(can_listen(seen[i]), "port %d cannot be bound", seen[i]);
        for (int j = 0; j < i; j++)
            cr_assert_neq(seen[i], seen[j], "port %d handed out twice", seen[i]);
    }
    int r = ts_port_range(TS_PORT_BLOCK);
    for (int p = r; p < r + TS_PORT_BLOCK; p++)
        for (int j = 0; j < 3 * TS_PORT_BLOCK; j++)
            cr_assert_neq(p, seen[j], "range port %d handed out before", p);
}

/* Another process's block is never handed out here while it lives: a child
 * reserves ports and reports them through a pipe, then waits; every port
 * this process takes meanwhile differs from the child's. */
Test(ports, another_process_block_is_not_shared)
{
    int up[2], hold[2];
    cr_assert_eq(pipe(up), 0);
    cr_assert_eq(pipe(hold), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        close(up[0]);
        close(hold[1]);
        int theirs[8];
        for (int i = 0; i < 8; i++)
            theirs[i] = ts_free_port();
        if (write(up[1], theirs, sizeof theirs) != (ssize_t)sizeof theirs)
            _exit(1);
        char c;
        (void)!read(hold[0], &c, 1); /* until the parent is done */
        _exit(0);
    }
    close(up[1]);
    close(hold[0]);
    int theirs[8];
    cr_assert_eq(read(up[0], theirs, sizeof theirs), (ssize_t)sizeof theirs);
    for (int i = 0; i < 4 * TS_PORT_BLOCK; i++) {
        int mine = ts_free_port();
        for (int j = 0; j < 8; j++)
            cr_assert_neq(mine, theirs[j], "port %d is also the other process's", mine);
    }
    close(hold[1]);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
