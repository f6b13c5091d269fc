/* constraint.h — a job's placement constraints, compiled once per job
 * version for the placer.
 *
 * Jobs carry constraints as data (cs_constraint: field, op, value, soft);
 * the store never reads them. The operators are Marathon's, plus `==`/`!=`
 * and job affinity (docs/protocol.md "Constraint operators"); their meaning
 * follows Marathon's Constraints.scala:
 *
 *   == / IS   the machine's value of `field` equals `value`
 *   !=        it differs, or the machine lacks the field
 *   LIKE      `value`, a POSIX extended regular expression, matches the
 *             whole of the machine's value
 *   UNLIKE    it does not match, or the machine lacks the field
 *   CLUSTER   all the job's tasks on machines whose value is `value`; with
 *             no value, on the value of the job's first placed task
 *   UNIQUE    at most one of the job's tasks per distinct value
 *   MAX_PER   at most `value` of the job's tasks per distinct value
 *   GROUP_BY  a machine is feasible when its value has no task of the job
 *             yet, or when at least `value` groups (default 0) have tasks
 *             and its value's count is the smallest among them
 *   AFFINITY / ANTI_AFFINITY   (field `job`) the machine runs / does not
 *             run a placed task of the active job named `value`
 *
 * Field `hostname` is the machine's name; any other field is an attribute.
 * As in Marathon, a machine that lacks the attribute passes only UNLIKE
 * (and `!=`, which Marathon does not have).
 *
 * Compiling interns the field and value (strtab.h), so that the placer
 * compares integers, parses the numbers, and compiles LIKE/UNLIKE once; a
 * compiled LIKE keeps the verdict per distinct value, so that 10,000
 * machines sharing 40 rack names cost 40 regexec calls.
 */
#ifndef CS_CONSTRAINT_H
#define CS_CONSTRAINT_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cellstate/error.h"
#include "cellstate/record.h"
#include "schedulers/strtab.h"

typedef enum cs_cop {
    CS_OP_EQ,
    CS_OP_NE,
    CS_OP_LIKE,
    CS_OP_UNLIKE,
    CS_OP_CLUSTER,
    CS_OP_UNIQUE,
    CS_OP_MAX_PER,
    CS_OP_GROUP_BY,
    CS_OP_AFFINITY,
    CS_OP_ANTI_AFFINITY,
    CS_OP_COUNT
} cs_cop;

typedef struct cs_ccons {
    uint8_t op;       /* cs_cop */
    bool soft;        /* a preference: scores, never filters */
    bool hostname;    /* field is the machine's name */
    uint32_t field;   /* interned attribute key (CS_NONE for hostname and job) */
    uint32_t value;   /* interned value; CS_NONE when the constraint has none */
    uint32_t num;     /* MAX_PER's limit, GROUP_BY's minimum number of groups (0: none) */
    regex_t *re;      /* LIKE, UNLIKE */
    cs_u32map cache;  /* LIKE, UNLIKE: value id -> 1 matches, 0 does not */
} cs_ccons;

/* Compile `src` into `out`, interning its strings into `strs`. An unknown
 * operator, a regular expression that does not compile, a MAX_PER or
 * GROUP_BY value that is not a number >= 1, a missing value where one is
 * needed, or field `job` with another operator (or AFFINITY on another
 * field) is CS_EINVAL naming the constraint; CS_ENOMEM. `src` is borrowed;
 * `out` owns its regex and cache (cs_ccons_free) on success and holds
 * nothing on failure. */
int cs_ccons_compile(const cs_constraint *src, cs_strtab *strs, cs_ccons *out, cs_error *err);
void cs_ccons_free(cs_ccons *c);

/* The value-level test of ==, !=, LIKE, UNLIKE and CLUSTER with a value,
 * for a machine whose value of the field is `v` (CS_NONE when it lacks the
 * field): whether it passes. False for the other operators, which are not
 * value-level. A LIKE's verdict is cached when memory allows (a failed
 * cache insert only costs the next regexec). `strs` is the table the
 * constraint was compiled against. */
bool cs_ccons_match(cs_ccons *c, const cs_strtab *strs, uint32_t v);

/* Whether the operator counts the job's tasks per value (UNIQUE, MAX_PER,
 * GROUP_BY, CLUSTER without value). */
bool cs_ccons_counts(const cs_ccons *c);

/* A short text of the constraint for reasons: "rack == r1", "UNIQUE
 * hostname", "MAX_PER rack 2", "AFFINITY job web". Writes at most `size`
 * bytes into `buf` (always NUL-terminated when size > 0). */
void cs_constraint_label(const cs_constraint *src, char *buf, size_t size);

#endif
