/* fuzz_command.c — log entries as the state machine applies them
 * (cs_command_apply, txn/command.h, with its result): what a replica or a
 * restored backup reads from a log it did not write. The input is a sequence of entries (fz_next_command),
 * applied in order to a store holding fz_cell's cell, so that a command
 * naming its machines, jobs and tasks gets past the lookups into the ops.
 *
 * The store lives across inputs: opening one costs about 10 ms under the
 * sanitizers, a hundred times an input. It is made afresh (fz_cell again)
 * every FRESH_EVERY inputs, so that the cell the inputs meet stays close to
 * fz_cell's and small; a crash may then depend on the inputs just before,
 * which the stack in the report shows. libFuzzer's model leaves this state
 * no other place than file scope. */
#include <string.h>

#include "cellstate/arena.h"
#include "cellstate/mpcheck.h"
#include "cellstate/record.h"
#include "tests/fuzz/fuzz.h"
#include "txn/command.h"

#define FRESH_EVERY 64

static char dir[256];
static cs_store *store;
static unsigned inputs;

static void drop_store(void)
{
    if (store != NULL) {
        cs_store_close(store);
        store = NULL;
        fz_rmtree(dir);
    }
}

static cs_store *fresh_store(void)
{
    drop_store();
    cs_error err = {0};
    cs_store_opts o = {.map_size = 256u << 20, .nosync = true};
    if (fz_mkdtemp(dir, sizeof dir) != 0 || cs_store_open(dir, &o, &store, &err) != CS_OK ||
        fz_cell(store, &err) != CS_OK) {
        fprintf(stderr, "fuzz_command: cannot make a store in %s: %s\n", dir, err.msg);
        abort();
    }
    return store;
}

/* The count of tasks a job record asks for, with its surge; 0 when it is
 * not one. */
static uint64_t job_tasks(const void *data, size_t len)
{
    cs_arena a;
    cs_arena_init(&a);
    cs_job j;
    cs_error err = {0};
    uint64_t n = cs_job_decode(data, len, &a, &j, &err) == CS_OK ? (uint64_t)j.count + j.surge : 0;
    cs_arena_free(&a);
    return n;
}

/* Whether the command would make a job of more than FZ_TASKS_MAX tasks: a
 * submit, an update, a scale or a surge ([id, job record] or [id, n]). */
static bool too_big(uint8_t kind, const uint8_t *cmd, size_t len)
{
    if (kind == CS_CMD_JOB_SUBMIT)
        return job_tasks(cmd, len) > FZ_TASKS_MAX;
    if (kind != CS_CMD_JOB_UPDATE && kind != CS_CMD_JOB_SCALE && kind != CS_CMD_JOB_SURGE)
        return false;
    cs_mp_cur c;
    cs_mp_cur_init(&c, cmd, len);
    uint32_t n;
    uint64_t id, count;
    const void *rec;
    uint32_t rlen;
    if (cs_mp_read_array(&c, &n) != CS_OK || n != 2 || cs_mp_read_uint(&c, &id) != CS_OK)
        return false;
    if (kind == CS_CMD_JOB_UPDATE)
        return cs_mp_read_bin(&c, &rec, &rlen) == CS_OK && job_tasks(rec, rlen) > FZ_TASKS_MAX;
    return cs_mp_read_uint(&c, &count) == CS_OK && count > FZ_TASKS_MAX;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    atexit(drop_store);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *cmd;
    size_t n = size, len;
    uint8_t kind;
    while (fz_next_command(&p, &n, &kind, &cmd, &len))
        if (too_big(kind, cmd, len))
            return -1; /* not added to the corpus */
    if (store == NULL || inputs++ % FRESH_EVERY == 0)
        fresh_store();
    p = data;
    n = size;
    cs_result res;
    cs_result_init(&res);
    while (fz_next_command(&p, &n, &kind, &cmd, &len)) {
        cs_error err = {0};
        (void)cs_command_apply(store, kind, cmd, len, &res, &err);
    }
    cs_result_free(&res);
    return 0;
}
