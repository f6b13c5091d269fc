/* principal.h — who sends a request: a role and, where it applies, a name
 * (issue 17 §2, docs/security.md "Roles").
 *
 * A principal is written ROLE[:NAME], the same text in a certificate's
 * subject CN (tools/cellsched-certs.sh: CN=agent:m1, OU=agent), in a line
 * of cellstated's --auth-tokens file, and in the audit log:
 *
 *   agent:NAME              the agent of machine NAME
 *   scheduler:NAME          a scheduler that may commit for any job kind
 *   scheduler.batch:NAME    one that commits only for batch jobs (cell-batch)
 *   scheduler.service:NAME  one that commits only for service jobs
 *   operator                submits, kills, scales, updates, cordons, drains,
 *                           manages members; reads everything
 *   reader                  reads everything but job environments
 *   server                  a replica of the cell (it forwards what a
 *                           follower may not do, on behalf of its client)
 *
 * What each role may do is the server's business (server/authz.c); this
 * module only names and parses, so that the server, its tests and the
 * tools read the one grammar. It also reads a client's token file: in a
 * cell without TLS the token, sent in each request's envelope
 * (docs/protocol.md §2), is what names the principal.
 */
#ifndef CS_PRINCIPAL_H
#define CS_PRINCIPAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cellstate/error.h"
#include "cellstate/record.h"

typedef enum cs_auth_role {
    CS_AUTH_ANONYMOUS = 0, /* no certificate role, no token: no rights where roles apply */
    CS_AUTH_AGENT,
    CS_AUTH_SCHEDULER,
    CS_AUTH_OPERATOR,
    CS_AUTH_READER,
    CS_AUTH_SERVER,
    CS_AUTH_ROLE_COUNT
} cs_auth_role;

/* The job kinds a principal may act for, as a mask of 1u << cs_job_kind. */
#define CS_KINDS_ALL ((1u << CS_JOB_KIND_COUNT) - 1u)

/* The longest principal text: "scheduler.service:" and a name. */
#define CS_PRINCIPAL_MAX (24 + CS_NAME_MAX)

typedef struct cs_principal {
    uint8_t role;  /* cs_auth_role */
    uint8_t kinds; /* scheduler: the job kinds it may commit for (CS_KINDS_ALL: any) */
    char name[CS_NAME_MAX + 1]; /* agent, scheduler: its name; else "" */
} cs_principal;

/* The anonymous principal (no role). */
cs_principal cs_principal_anonymous(void);

/* Parse the principal text s[0..len) (not NUL-terminated). CS_EINVAL
 * naming the text for an unknown role, a name on a role that takes none,
 * no name on one that needs one, a name that is empty or longer than
 * CS_NAME_MAX. `s` is only read. */
int cs_principal_parse(const char *s, size_t len, cs_principal *out, cs_error *err);

/* The text of `p` into buf[0..n) (at least CS_PRINCIPAL_MAX + 1 bytes to
 * never truncate): "agent:m1", "operator", "anonymous". Returns buf. */
const char *cs_principal_text(const cs_principal *p, char *buf, size_t n);

/* The role's name ("agent", "scheduler", ..., "anonymous"). */
const char *cs_auth_role_name(uint8_t role);

/* Whether `p` acts for job kind `kind` (a scheduler's kinds; any other
 * role: true). */
static inline bool cs_principal_kind_ok(const cs_principal *p, uint8_t kind)
{
    return kind < CS_JOB_KIND_COUNT && (p->kinds & (1u << kind)) != 0;
}

/* ---- the client's token -------------------------------------------------- */

/* A client's token file when --token-file is not given. */
#define CS_TOKEN_FILE_ENV "CELLSCHED_TOKEN_FILE"
/* The longest token taken (a token is a secret of at least 16 bytes). */
#define CS_TOKEN_MAX 256
#define CS_TOKEN_MIN 16

/* Read the token of file `path` (borrowed; NULL: $CELLSCHED_TOKEN_FILE,
 * and when that is unset or empty *out is NULL and CS_OK: no token). The
 * token is the file's first line, without surrounding blanks. CS_EINVAL
 * naming the file: unreadable (with the system's reason), empty, shorter
 * than CS_TOKEN_MIN or longer than CS_TOKEN_MAX bytes, or holding a byte
 * that is not printable ASCII. On success *out is the caller's (free). */
int cs_token_load(const char *path, char **out, cs_error *err);

/* Whether two byte strings are equal, in time that depends only on their
 * lengths (a token compared byte by byte until the first difference would
 * tell a client how much of its guess was right). */
bool cs_secret_equal(const void *a, size_t alen, const void *b, size_t blen);

#endif
