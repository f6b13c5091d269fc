/* cellctl_cell.h — cellctl's view of the cell: the connection to cellstated
 * (with errors that say which server could not be reached), the records of
 * get.machines / get.jobs / get.tasks / get.job decoded into cs_machine,
 * cs_job and cs_task, lookups by id, and their JSON form for `-o json`
 * (cpu in cores as a number, mem and disk in MiB, names instead of ids):
 * thin wrappers of spec/celljson.h, whose view and JSON the HTTP API
 * shares, so that both print the same bytes.
 */
#ifndef CELLCTL_CELL_H
#define CELLCTL_CELL_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "proto/client.h"
#include "cellstate/error.h"
#include "cellstate/record.h"
#include "spec/celljson.h"

/* Options shared by every command (set by main from the command line). */
typedef enum ctl_output { CTL_OUT_TABLE = 0, CTL_OUT_JSON = 1 } ctl_output;

typedef struct ctl {
    const char *url;     /* cs_server_url(--server): one URL or a list (proto/servers.h) */
    uint32_t timeout_ms; /* per request, failover included (proto/client.h) */
    ctl_output output;
    cs_client *client; /* opened by the first ctl_call; closed by ctl_close */
    const cs_tls *tls; /* --tls-* or $CELLSCHED_TLS_* (proto/tls.h); NULL: plain; main's */
    const char *token; /* --token-file or $CELLSCHED_TOKEN_FILE's token; NULL: none; main's */
} ctl;

/* An error code for a bad command line (exit status 2), outside the
 * cs_error table. */
#define CTL_EUSAGE 100

/* A command's arguments: what follows the command name, and the options
 * that apply to it (main refuses the others). */
typedef struct ctl_args {
    int argc;
    char **argv;
    const char *job, *machine, *state; /* --job, --machine, --state */
    uint32_t interval_ms;              /* --interval */
    long count;                        /* --count; 0 = until stopped */
    bool ansi;                         /* --ansi: escapes even when not a terminal */
    bool dry_run;                      /* --dry-run */
    uint32_t deadline_ms;              /* drain --deadline */
    bool has_deadline, no_deadline;    /* drain: --deadline given; --no-deadline */
    bool err_stream;                   /* logs --stderr */
    uint32_t tail;                     /* logs --tail N; 0 = all */
    bool follow;                       /* logs -f */
    const char *since, *who, *action;  /* audit --since, --who, --action */
    uint32_t limit;                    /* audit -n; 0 = the default */
} ctl_args;

/* Close the connection, if any. */
void ctl_close(ctl *c);

/* One request (body[0..len) is the msgpack body). Opens the connection on
 * first use. A timeout becomes "cannot reach cellstated at URL: ..." so
 * that an absent server is named, not just "timed out". *reply is valid
 * until the next call (see cs_client_call). */
int ctl_call(ctl *c, uint32_t type, const void *body, size_t len, cs_msg *reply, cs_error *err);

/* ctl_call as a cs_call_fn (ctx: the ctl), for spec/celljson.h's fetches and
 * writes, so that their errors name the server that did not answer. */
int ctl_call_fn(void *ctx, uint32_t type, const void *body, size_t len, cs_msg *reply,
                cs_error *err);

/* The records of one or more replies: the view cellctl and the HTTP API
 * share (spec/celljson.h). */
typedef cs_cellview ctl_cell;

void ctl_cell_init(ctl_cell *cell);
void ctl_cell_free(ctl_cell *cell);

/* get.machines, get.jobs: replace the cell's list. */
int ctl_fetch_machines(ctl *c, ctl_cell *cell, cs_error *err);
int ctl_fetch_jobs(ctl *c, ctl_cell *cell, cs_error *err);
/* get.tasks with the filters that are not NULL (job and machine by name). */
int ctl_fetch_tasks(ctl *c, ctl_cell *cell, const char *job, const char *machine, const char *state,
                    cs_error *err);
/* get.job: the cell's jobs become that one job, its tasks the job's. */
int ctl_fetch_job(ctl *c, ctl_cell *cell, const char *job, cs_error *err);

/* By id; NULL when absent (borrowed from the cell). */
const cs_machine *ctl_machine_by_id(const ctl_cell *cell, cs_id id);
const cs_job *ctl_job_by_id(const ctl_cell *cell, cs_id id);
/* A machine's name, "" for id 0 and "#<id>" for an unknown one (in buf). */
const char *ctl_machine_name(const ctl_cell *cell, cs_id id, char *buf, size_t size);
const char *ctl_job_name(const ctl_cell *cell, cs_id id, char *buf, size_t size);

/* Millicores as cores: "0.5", "16", "0.125" (written into buf). */
const char *ctl_cores(int64_t millicores, char *buf, size_t size);
/* Ports as "31000,31001" ("-" when none). */
const char *ctl_ports(const uint16_t *ports, uint32_t n, char *buf, size_t size);
/* A job name as the user typed it: a Marathon id's leading "/" is
 * dropped, as cs_jobspec does when it names the job. */
const char *ctl_job_ref(const char *name);

/* JSON objects (new references; NULL when out of memory). */
json_t *ctl_res_json(const cs_res *r);
json_t *ctl_machine_json(const cs_machine *m);
json_t *ctl_task_json(const ctl_cell *cell, const cs_task *t);
/* The job's native spec (cs_jobspec_to_json) plus id, state, version,
 * spec_hash and, when `tasks` is not NULL, the count of its tasks per
 * state among them. */
json_t *ctl_job_json(const cs_job *j, const ctl_cell *tasks, cs_error *err);

/* Print a JSON value on stdout, indented, cpu without float noise. */
int ctl_print_json(json_t *v, cs_error *err);

#endif
