/* support.h — helpers shared by the Criterion suites: temporary stores and
 * small builders for machines and jobs. Not a suite itself (no test_ prefix).
 */
#ifndef CS_TEST_SUPPORT_H
#define CS_TEST_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/client.h"
#include "cellstate/store.h"
#include "txn/commit.h"
#include "txn/ops.h"

/* A store in a fresh temporary directory, removed by ts_store_destroy. */
typedef struct ts_store {
    char dir[256];
    cs_store *s;
} ts_store;

/* Create the directory and open a store (nosync, small map). Aborts the
 * test with a message on failure. */
void ts_store_create(ts_store *t);
/* Close and reopen the same directory. */
void ts_store_reopen(ts_store *t);
/* Close the store and remove its directory. */
void ts_store_destroy(ts_store *t);

/* Make a temporary directory (mkdtemp under $TMPDIR or /tmp); `out` gets its
 * path. Returns 0 or -1. */
int ts_mkdtemp(char *out, size_t size);
/* rm -rf of a directory this process made. */
void ts_rmtree(const char *dir);
/* A temporary directory for each test: `.init = ts_tmp_setup, .fini =
 * ts_tmp_teardown`, its path in ts_tmp (Criterion forks each test, so each
 * has its own). */
extern char ts_tmp[256];
void ts_tmp_setup(void);
void ts_tmp_teardown(void);
/* Run `cmd` under sh with stdout and stderr captured into out[0..size)
 * (NUL-terminated, cut at size - 1); its exit status, -1 if it did not
 * exit. */
int ts_run(const char *cmd, char *out, size_t size);
/* Run argv[0] with `argv` (NULL-terminated, borrowed) to its end, without
 * a shell, its standard output and error captured whole, through files
 * DIR/run.out and DIR/run.err, into *out and *err (the caller's: free).
 * Its exit status, -1 if it did not exit. */
int ts_run_argv(char *const argv[], const char *dir, char **out, char **err);

/* Register machine `name` with the given capacity (cpu millicores, mem MiB,
 * disk MiB) and port range; returns its id. Attributes as "k=v" strings,
 * any order (sorted here). */
cs_id ts_machine(cs_store *s, const char *name, int64_t cpu, int64_t mem, int64_t disk,
                 uint16_t port_lo, uint16_t port_hi, const char *const *attrs, uint32_t nattrs);

/* What ts_job stamps into `submitted`, as cellstated's writer stamps its
 * clock: fixed, so that two stores built by the same script are equal byte
 * for byte, and not 0, so that a replay taking the time from anywhere but
 * the logged command would differ. */
#define TS_SUBMITTED_MS UINT64_C(1700000000000)

/* Submit job `name` of `count` tasks each needing the given resources and
 * `nports` ports (fixed where ports[i] != 0; ports may be NULL for all
 * dynamic), submitted at TS_SUBMITTED_MS; returns its id. */
cs_id ts_job(cs_store *s, const char *name, uint8_t kind, int32_t priority, uint32_t count,
             int64_t cpu, int64_t mem, int64_t disk, const uint16_t *ports, uint32_t nports);

/* The cell version, through a fresh snapshot. */
uint64_t ts_version(cs_store *s);

/* Read one record through a fresh snapshot (copied into `a`). Fails the
 * test when absent. */
void ts_get_machine(cs_store *s, cs_id id, cs_arena *a, cs_machine *out);
void ts_get_task(cs_store *s, cs_id id, cs_arena *a, cs_task *out);

/* The whole store as one byte string: every database, every key and value
 * in order, with length prefixes, and the derived allocation of each
 * machine. Caller frees *out. Two stores are equal byte for byte when their
 * dumps are: the records' raw bytes hold every field (a job's `submitted`
 * and `note`, a task's `health` included). */
void ts_dump(cs_store *s, uint8_t **out, size_t *len);
/* The same for the listed databases only. */
void ts_dump_dbs(cs_store *s, const cs_db *dbs, size_t ndbs, uint8_t **out, size_t *len);
/* The cell's records only (machines, jobs, tasks and their indexes), without
 * meta, the log and idempotency records, which every attempt changes. */
void ts_dump_cell(cs_store *s, uint8_t **out, size_t *len);

/* Check the cell invariants on the current store; returns false and fills
 * `why` on the first violation:
 *   - every machine: allocated <= capacity on cpu, mem, disk;
 *   - allocated, ntasks and ports in use equal the sums over tasks placed there;
 *   - no port held twice on a machine;
 *   - every placed task is on exactly one existing machine, and the placed
 *     allocation table lists exactly the placed tasks. */
bool ts_check_invariants(cs_store *s, char *why, size_t whylen);

#endif

/* ---- processes, for integration tests -------------------------------------- */

/* A TCP port on 127.0.0.1 reserved for this test process until it exits.
 *
 * Why not "bind port 0, read it back, close": that port is free only at the
 * moment of the probe; the kernel may hand it to any other socket before the
 * test's daemon binds it (a test once connected to another test's server).
 * Instead, ports come from [TS_PORT_LO, TS_PORT_HI), below Linux's ephemeral
 * range (32768-60999), which the kernel never hands out on its own, in
 * blocks of TS_PORT_BLOCK, each reserved by an flock on a file under
 * $TMPDIR/cellsched-test-ports that this process holds until it exits (a
 * Criterion test is a process of its own), so that concurrent suites and
 * tests never share one. A block is taken only when every port in it can be
 * bound at that moment (no foreign listener). The test fails when every
 * block is taken. */
#define TS_PORT_LO 20000
#define TS_PORT_HI 32752
#define TS_PORT_BLOCK 16
int ts_free_port(void);
/* `n` consecutive reserved ports (1 <= n <= TS_PORT_BLOCK), for an agent's
 * --ports range; returns the first. */
int ts_port_range(int n);

/* The path of binary `name`: $CELLSCHED_BIN/name (make test sets it to the
 * sanitized build), else bin/name. Written into out. */
void ts_bin(const char *name, char *out, size_t size);

/* Start argv[0] with arguments argv (NULL-terminated), stdout and stderr to
 * `log` (appended). Returns the pid; fails the test if it cannot start. */
int ts_spawn(char *const argv[], const char *log);

/* Send `sig` to pid and wait up to timeout_ms for it to exit. Returns its
 * wait status, or -1 if it did not exit (it is then killed with SIGKILL). */
int ts_stop(int pid, int sig, int timeout_ms);

/* Sleep for ms milliseconds. */
void ts_sleep_ms(int ms);

/* CLOCK_MONOTONIC in milliseconds, for the tests' deadlines. */
int64_t ts_now_ms(void);

/* The whole file at `path`, NUL-terminated (the caller frees it); its
 * size into *len unless len is NULL. Fails the test when it cannot be
 * read. */
char *ts_slurp(const char *path, size_t *len);

/* Write the file at `path` into the test's log, each line prefixed with
 * `what` (a process's log, to show why a test failed). A missing file
 * writes nothing. */
void ts_log_file(const char *what, const char *path);

/* Kill every descendant of this process with SIGKILL (a walk of /proc,
 * repeated until none is alive) and reap every child. With the test made a
 * subreaper (PR_SET_CHILD_SUBREAPER), every process the test started, or
 * a process it started started, is a descendant: nothing outlives the
 * test, whatever state a failure left it in. Then the task cgroups of the
 * supervisors it killed are removed (agent/isolate.h), and the agents'
 * `cellsched` parent cgroups when empty. */
void ts_kill_descendants(void);

/* A request body being packed: ts_body_new, pack into the returned
 * packer, send x->b, then ts_body_free. */
typedef struct ts_body {
    msgpack_sbuffer b;
    msgpack_packer pk;
} ts_body;
msgpack_packer *ts_body_new(ts_body *x);
void ts_body_free(ts_body *x);
/* Field `key` of reply body `o` as a uint; fails the test when it is not. */
uint64_t ts_reply_u64(const msgpack_object *o, const char *key);

/* The body of a machine.register of machine `name` as the integration
 * tests make them (4 cores, 4096 MiB, 10000 MiB disk, ports 31000-31099):
 * a map of 4 + `more` keys, the caller packing the `more` others. */
void ts_pack_machine(msgpack_packer *pk, const char *name, uint32_t more);

/* The cell version the server `c` talks to serves (its stats, within a
 * second), or 0 when it does not answer. */
uint64_t ts_version_of(cs_client *c);

/* Whether the server `c` talks to serves job `name` (get.job, within two
 * seconds). */
bool ts_has_job(cs_client *c, const char *name);

/* A cellstated process for an integration test: its own temporary
 * directory (data and log), a free port on 127.0.0.1, and a client. */
typedef struct ts_daemon {
    char dir[256], log[300], url[64], bin[256];
    int pid;
    cs_client *c;
} ts_daemon;

/* Make the directory and port, start cellstated (--nosync, 64 workers, a
 * heartbeat timeout of an hour; up to two extra arguments, NULL for none,
 * which come after these and so override them) and wait until it answers. */
void ts_daemon_setup(ts_daemon *d, const char *extra1, const char *extra2);
/* Start it again on the same directory and port (after ts_daemon_stop). */
void ts_daemon_start(ts_daemon *d, const char *extra1, const char *extra2);
/* The same two with any number of extra arguments (`extra`: borrowed,
 * NULL-terminated, up to 5; NULL for none). */
void ts_daemon_setupv(ts_daemon *d, const char *const *extra);
void ts_daemon_startv(ts_daemon *d, const char *const *extra);
/* SIGTERM and wait; returns the wait status (0: a clean exit). On any
 * other status the daemon's log is written to the test's output. */
int ts_daemon_stop(ts_daemon *d);
/* Stop it if running and remove its directory. Safe to call twice. */
void ts_daemon_teardown(ts_daemon *d);

/* A replicated cellstated of n members (at most TS_CLUSTER_MAX) in one
 * temporary directory: cluster.json names each member's listen URL
 * (scheme `scheme`, "tcp" or "tls+tcp") and raft address, on free ports. */
#define TS_CLUSTER_MAX 5
typedef struct ts_cluster {
    int n;
    char dir[256], file[300], bin[256];
    char url[TS_CLUSTER_MAX][64];
    char log[TS_CLUSTER_MAX][300];
    int pid[TS_CLUSTER_MAX];
} ts_cluster;
void ts_cluster_setup(ts_cluster *c, int n, const char *scheme);
/* Start member i (0-based) with its data in the directory and up to 8
 * `extra` arguments (NULL-terminated; may be NULL): --election-timeout
 * 400 and --workers 64 come first, so extra may override them. */
void ts_cluster_start(ts_cluster *c, int i, const char *const *extra);
/* The index of the member that says it leads, asked through clients[i]
 * (one per member, any credentials that may read `members`); fails the
 * test after `wait_ms`. */
int ts_cluster_leader(ts_cluster *c, cs_client *const *clients, int wait_ms);
/* Kill every member and remove the directory. Safe to call twice. */
void ts_cluster_teardown(ts_cluster *c);

/* ---- the cell through a client, for integration tests ------------------------------ */

/* Submit a native JSON job spec (docs/design.md §8), or replace job `id`'s
 * spec with one (job.update); the test fails on any error. Returns the
 * job's id. */
cs_id ts_submit(cs_client *c, const char *json);
void ts_update(cs_client *c, cs_id id, const char *json);
/* Set job `job`'s note (job.note), as a scheduler does; the test fails on
 * any error. */
void ts_note(cs_client *c, const char *job, const char *note);

/* The whole cell as one `sync` reply (a full snapshot: one read, so that
 * what it shows held at one version). Records live in `a`. */
typedef struct ts_cell {
    cs_arena a;
    uint64_t version;
    cs_machine *machines;
    size_t nmachines;
    cs_job *jobs;
    size_t njobs;
    cs_task *tasks;
    size_t ntasks;
} ts_cell;

void ts_cell_read(cs_client *c, ts_cell *out);
void ts_cell_free(ts_cell *cell);
/* Job `id` of the snapshot; fails the test when absent. */
const cs_job *ts_cell_job(const ts_cell *cell, cs_id id);

/* ---- a stand-in server, for tests of clients ---------------------------------------- */

/* Answer one request: `req` (its body valid during the call) and the
 * reply, to be written whole into `reply` (empty on entry): cs_msg_begin
 * and a body, or cs_msg_error. Runs on the stand-in's thread. */
typedef void (*ts_answer_fn)(void *ctx, const cs_msg *req, msgpack_sbuffer *reply);

typedef struct ts_rep ts_rep;

/* A REP socket listening on a free port of 127.0.0.1, served by a thread
 * that hands each request to `answer` with `ctx` (an envelope that does not
 * decode is answered EPROTO, with its message). Fails the test when it
 * cannot listen. The caller's: ts_rep_stop. */
ts_rep *ts_rep_start(ts_answer_fn answer, void *ctx);
/* Its URL, tcp://127.0.0.1:PORT (owned by it, valid until ts_rep_stop). */
const char *ts_rep_url(const ts_rep *r);
/* Stop the thread (after the request in progress, if any) and close the
 * socket; frees r. */
void ts_rep_stop(ts_rep *r);
