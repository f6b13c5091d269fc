/* cellctl_show.h — cellctl's read-only commands: `get machines|jobs|tasks`,
 * `describe job|machine NAME`, `endpoints JOB` (where a job's healthy tasks
 * listen), `stats` and `watch` (a live table that redraws in place). Each
 * prints a table, or JSON with `-o json`.
 *
 * Each returns CS_OK, CTL_EUSAGE for a bad command line, or the error of the
 * request that failed, with a sentence in `err`; the ctl is borrowed.
 */
#ifndef CELLCTL_SHOW_H
#define CELLCTL_SHOW_H

#include "cellstate/error.h"
#include "tools/cellctl_cell.h"

int ctl_cmd_get(ctl *c, const ctl_args *a, cs_error *err);
int ctl_cmd_describe(ctl *c, const ctl_args *a, cs_error *err);
int ctl_cmd_endpoints(ctl *c, const ctl_args *a, cs_error *err);
int ctl_cmd_stats(ctl *c, const ctl_args *a, cs_error *err);
/* Redraws every a->interval_ms until a->count frames were drawn (0: until
 * SIGINT or SIGTERM, which end it cleanly with CS_OK). Returns the error of
 * the last frame, if its requests failed. */
int ctl_cmd_watch(ctl *c, const ctl_args *a, cs_error *err);

#endif
