/* cellctl_job.h — cellctl's commands that change jobs: `submit FILE`,
 * `update JOB FILE`, `kill JOB` and `scale JOB N`. Specs are read with
 * spec/jobspec.h (native JSON or a Marathon app); its warnings go to
 * standard error, each naming the field that was ignored.
 *
 * Each returns CS_OK, CTL_EUSAGE for a bad command line, or the error of the
 * spec or of the request, with a sentence in `err`; the ctl is borrowed.
 */
#ifndef CELLCTL_JOB_H
#define CELLCTL_JOB_H

#include "cellstate/error.h"
#include "tools/cellctl_cell.h"

int ctl_cmd_submit(ctl *c, const ctl_args *a, cs_error *err);
int ctl_cmd_update(ctl *c, const ctl_args *a, cs_error *err);
int ctl_cmd_kill(ctl *c, const ctl_args *a, cs_error *err);
int ctl_cmd_scale(ctl *c, const ctl_args *a, cs_error *err);

#endif
