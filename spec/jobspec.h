/* jobspec.h — job specs as people write them: JSON, in cellsched's native
 * format or as a Marathon app definition, turned into the body of a
 * job.submit request (docs/protocol.md §5.3).
 *
 * Why a library module and not part of cellctl: the conversion is the
 * contract between what a user writes and what the schedulers and agents
 * read (cs_job and cs_jobopts), so tests, tools and any future HTTP front
 * end must convert the same way. docs/design.md ("Job specs") lists every
 * field of both formats.
 *
 * The format is told by its fields: an object with "name" is native; one
 * with "id" and no "name" is a Marathon app. Errors are CS_EINVAL with a
 * message that starts with the JSON path of the offending field
 * ("healthChecks[0].portIndex: 2 is out of range: the app has 1 port").
 * What a spec asks for that cannot apply here (a container image, labels,
 * fetch URIs, ...) is not an error but a warning that names the field.
 */
#ifndef CS_JOBSPEC_H
#define CS_JOBSPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <msgpack.h>

#include "cellstate/arena.h"
#include "cellstate/error.h"
#include "cellstate/jobopts.h"
#include "cellstate/record.h"

/* Spec files larger than this are refused before parsing. */
#define CS_JOBSPEC_FILE_MAX (4u << 20)

typedef enum cs_jobspec_format {
    CS_JOBSPEC_NATIVE = 0,
    CS_JOBSPEC_MARATHON = 1,
} cs_jobspec_format;

/* A converted spec. Everything it points to lives in `arena` or `body` and
 * is released by cs_jobspec_free. */
typedef struct cs_jobspec {
    cs_jobspec_format format;
    /* The spec fields (name, kind, priority, count, res, ports, constraints,
     * cmd, extra = the encoded options); id, state and version are 0. */
    cs_job job;
    cs_jobopts opts;       /* what job.extra encodes, decoded */
    msgpack_sbuffer body;  /* the job.submit body: one msgpack map */
    const char **warnings; /* "path: what was ignored and why", in input order */
    uint32_t nwarnings;
    uint32_t warnings_cap;
    cs_arena arena;
} cs_jobspec;

/* Release what `s` holds. Safe on an initialised or freed spec. */
void cs_jobspec_free(cs_jobspec *s);

/* Convert the JSON text[0..len) (need not be NUL-terminated). On CS_OK `s`
 * holds the spec and its warnings until cs_jobspec_free; on error it holds
 * nothing that needs freeing beyond cs_jobspec_free, and `err` names the
 * JSON path (or line and column for a JSON syntax error). */
int cs_jobspec_parse(const char *text, size_t len, cs_jobspec *s, cs_error *err);

/* The same from a file; "-" reads standard input. The error message starts
 * with the file name. */
int cs_jobspec_load(const char *path, cs_jobspec *s, cs_error *err);

/* The same from a parsed JSON value (borrowed: not kept, not changed). */
int cs_jobspec_from_json(const json_t *root, cs_jobspec *s, cs_error *err);

/* The native JSON of a job's spec and options (both borrowed): every field,
 * explicitly, so that cs_jobspec_from_json of the result gives the same
 * submit body. cpu in cores, durations in seconds, fractions in [0, 1].
 * On CS_OK *out is a new reference the caller must json_decref. */
int cs_jobspec_to_json(const cs_job *j, const cs_jobopts *o, json_t **out, cs_error *err);

/* The cellsched job name of a Marathon app id: the id without its leading
 * "/" ("/prod/web" -> "prod/web"; the other slashes stay, so that distinct
 * ids give distinct names). Written into out[0..size). CS_EINVAL naming the
 * problem for an empty segment, "." or "..", or a name above 255 bytes. */
int cs_jobspec_marathon_name(const char *id, char *out, size_t size, cs_error *err);

#endif
