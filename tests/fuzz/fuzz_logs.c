/* fuzz_logs.c — a task.logs request as cell-agent's log service answers
 * it (agent/logserve.c, answer): the envelope, the request's fields, and
 * the read of the task's output it names (an offset, a tail of lines, a
 * size), from a work directory holding the output of fz_cell's task
 * batch/0, attempt 1 (stdout of several lines, an empty stderr). The reply
 * must be a well-formed message.
 *
 * answer() is static to logserve.c: the target includes the file, so that
 * the bytes go through the very code the agent runs (the archive's
 * logserve.o is never pulled in). The work directory is made once per
 * process (libFuzzer leaves it no place but file scope) and removed at
 * exit. */
#include "agent/logserve.c"

#include "tests/fuzz/fuzz.h"

static char workdir[256];

static void remove_workdir(void)
{
    if (workdir[0])
        fz_rmtree(workdir);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "fuzz_logs: cannot write %s\n", path);
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char path[512];
    if (fz_mkdtemp(workdir, sizeof workdir) != 0)
        abort();
    atexit(remove_workdir);
    snprintf(path, sizeof path, "%s/tasks", workdir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/tasks/%llu-1", workdir,
             (unsigned long long)cs_task_id(1, 0));
    if (mkdir(path, 0755) != 0)
        abort();
    char file[600];
    snprintf(file, sizeof file, "%s/stdout", path);
    write_file(file, "starting\nstep 1\nstep 2\n\nno newline at the end");
    snprintf(file, sizeof file, "%s/stderr", path);
    write_file(file, "");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ag_logsrv s;
    memset(&s, 0, sizeof s);
    s.workdir = workdir;
    msgpack_sbuffer reply;
    msgpack_sbuffer_init(&reply);
    answer(&s, data, size, NULL, &reply);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    cs_msg m;
    cs_error err = {0};
    fz_require(cs_msg_decode(reply.data, reply.size, &zone, &m, &err) == CS_OK,
               "the reply decodes");
    msgpack_zone_destroy(&zone);
    msgpack_sbuffer_destroy(&reply);
    return 0;
}
