/* test_defaults.c — integration: daemons started with their defaults write
 * nothing into the directory they were started in (often a checkout), and
 * cellstated on port 0 tells the port it got through --addr-file.
 *
 * Each test runs its processes from an empty temporary directory, with
 * XDG_STATE_HOME pointed at another one, and checks that the first is still
 * empty afterwards and that the state went where paths.h says. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/client.h"
#include "proto/proto.h"
#include "tests/support.h"

#define DEADLINE_MS 20000

static char root[256], cwd[300], state[300], saved_cwd[4096];
static int pids[4];
static int npids;

static void setup(void)
{
    cr_assert_eq(ts_mkdtemp(root, sizeof root), 0);
    snprintf(cwd, sizeof cwd, "%s/cwd", root);
    snprintf(state, sizeof state, "%s/state", root);
    cr_assert_eq(mkdir(cwd, 0755), 0);
    cr_assert(getcwd(saved_cwd, sizeof saved_cwd) != NULL);
    cr_assert_eq(chdir(cwd), 0);
    setenv("XDG_STATE_HOME", state, 1);
}

static void teardown(void)
{
    for (int i = 0; i < npids; i++)
        if (pids[i] > 0)
            ts_stop(pids[i], SIGTERM, 10000);
    npids = 0;
    if (saved_cwd[0])
        (void)!chdir(saved_cwd);
    if (root[0])
        ts_rmtree(root);
}

static int spawn(const char *const argv[], const char *logname)
{
    char log[400];
    snprintf(log, sizeof log, "%s/%s", root, logname);
    cr_assert_lt(npids, 4);
    int pid = ts_spawn((char *const *)argv, log);
    pids[npids++] = pid;
    return pid;
}

static bool dir_empty(const char *path)
{
    DIR *d = opendir(path);
    cr_assert(d != NULL, "%s: %s", path, strerror(errno));
    struct dirent *e;
    bool empty = true;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            cr_log_error("left in the start directory: %s", e->d_name);
            empty = false;
        }
    closedir(d);
    return empty;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Read the address file once it appears. */
static void read_addr(const char *path, char *url, size_t size)
{
    for (int waited = 0; waited < DEADLINE_MS; waited += 20) {
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            cr_assert(fgets(url, (int)size, f) != NULL, "%s is empty", path);
            fclose(f);
            url[strcspn(url, "\n")] = '\0';
            return;
        }
        ts_sleep_ms(20);
    }
    cr_assert_fail("%s did not appear", path);
}

Test(defaults, cellstated_on_port_0_writes_its_address_and_keeps_its_data_in_the_state_dir,
     .init = setup, .fini = teardown, .timeout = 60)
{
    char bin[256], addr[400], url[128];
    ts_bin("cellstated", bin, sizeof bin);
    snprintf(addr, sizeof addr, "%s/addr", root);
    const char *argv[] = {bin, "--listen", "tcp://127.0.0.1:0", "--addr-file", addr, "--nosync",
                          NULL};
    int pid = spawn(argv, "cellstated.log");
    read_addr(addr, url, sizeof url);
    cr_assert(strncmp(url, "tcp://127.0.0.1:", 16) == 0, "address '%s'", url);
    int port = atoi(url + 16);
    cr_assert(port > 0 && port < 65536, "address '%s' has no port", url);

    cs_client *c;
    cs_error err = {0};
    cr_assert_eq(cs_client_open(url, 5000, &c, &err), CS_OK, "%s", err.msg);
    cs_msg r;
    cr_assert_eq(cs_client_call(c, CS_MSG_STATS, "\x80", 1, &r, &err), CS_OK, "%s", err.msg);
    cs_client_close(c);
    cr_assert_eq(ts_stop(pid, SIGTERM, 10000), 0);
    pids[0] = 0;

    char data[400];
    snprintf(data, sizeof data, "%s/cellsched/cell/data.mdb", state);
    cr_assert(exists(data), "%s is missing", data);
    cr_assert(dir_empty(cwd));
}

Test(defaults, cell_agent_keeps_its_work_directory_in_the_state_dir, .init = setup,
     .fini = teardown, .timeout = 60)
{
    char bin[256], agent[256], url[64];
    ts_bin("cellstated", bin, sizeof bin);
    ts_bin("cell-agent", agent, sizeof agent);
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", ts_free_port());
    const char *sv[] = {bin, "--listen", url, "--nosync", NULL};
    spawn(sv, "cellstated.log");
    const char *ag[] = {agent, "--server", url, "--name", "m1", "--cpu", "1", "--mem", "256",
                        "--disk", "100", "--heartbeat-ms", "200", NULL};
    int apid = spawn(ag, "agent.log");

    /* The agent has registered once the cell lists m1. */
    cs_client *c;
    cs_error err = {0};
    cr_assert_eq(cs_client_open(url, 2000, &c, &err), CS_OK, "%s", err.msg);
    bool seen = false;
    for (int waited = 0; waited < DEADLINE_MS && !seen; waited += 50) {
        cs_msg r;
        if (cs_client_call(c, CS_MSG_GET_MACHINES, "\x80", 1, &r, &err) == CS_OK) {
            const msgpack_object *ms = cs_obj_get(&r.body, "machines");
            seen = ms != NULL && ms->type == MSGPACK_OBJECT_ARRAY && ms->via.array.size == 1;
        }
        if (!seen)
            ts_sleep_ms(50);
    }
    cs_client_close(c);
    cr_assert(seen, "m1 never registered");
    cr_assert_eq(ts_stop(apid, SIGTERM, 10000), 0);
    pids[1] = 0;

    char work[400];
    snprintf(work, sizeof work, "%s/cellsched/agent-m1/agent.lock", state);
    cr_assert(exists(work), "%s is missing", work);
    cr_assert(dir_empty(cwd));
}
