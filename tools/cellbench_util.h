/* cellbench_util.h — what every cellbench benchmark shares: the machine it
 * ran on, the clock, a seeded PRNG, a temporary directory, command-line
 * options, and the report (figures in words and one line of JSON).
 */
#ifndef CB_UTIL_H
#define CB_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cellstate/error.h"

/* Exit codes: 1 for a failure while running, 2 for a bad command line. */
enum { CB_EXIT_RUN = 1, CB_EXIT_USAGE = 2 };

/* ---- the machine the benchmark ran on ---------------------------------- */

typedef struct cb_host {
    long nproc;
    char cpu[256];
} cb_host;

/* nproc and the first "model name" of /proc/cpuinfo ("unknown" if absent):
 * figures mean little without the machine they came from. */
void cb_host_read(cb_host *h);

/* ---- time and randomness -------------------------------------------------- */

/* CLOCK_MONOTONIC in seconds, and in nanoseconds. */
double cb_now_s(void);
int64_t cb_now_ns(void);

/* Sleep until CLOCK_MONOTONIC reaches t ns, or for ms milliseconds; a
 * signal does not cut either short. */
void cb_sleep_until_ns(int64_t t);
void cb_sleep_ms(uint32_t ms);

/* n per second; NaN when no time passed, so that a report says "n/a"
 * rather than dividing by zero. */
double cb_per_s(double n, double s);

/* xorshift64*: small, fast and deterministic for a given seed, which makes
 * every run with the same options make the same choices. */
uint64_t cb_rng_next(uint64_t *s);
/* splitmix64 turns (seed, stream) into a well-mixed non-zero state. */
uint64_t cb_rng_seed(uint64_t seed, uint64_t stream);

/* ---- files -------------------------------------------------------------- */

/* A fresh directory under $TMPDIR or /tmp; `out` receives its path (empty
 * on failure). */
int cb_make_tmpdir(char *out, size_t size, cs_error *err);
/* base/name, made; its path into `out`. */
int cb_make_subdir(const char *base, const char *name, char *out, size_t size, cs_error *err);
/* rm -rf of a directory this process made; nothing for "". */
void cb_rmtree(const char *dir);

/* ---- the command line ------------------------------------------------------ */

/* The outcome of parsing: run, print the usage and succeed, or fail. */
enum { CB_PARSE_RUN = 0, CB_PARSE_HELP = 1, CB_PARSE_BAD = 2 };

/* One option: its flag, and its value (NULL for a switch). */
typedef struct cb_opt {
    char flag[64];
    const char *val;
} cb_opt;

/* Read the option at argv[*i] and step *i past it. Flags listed in
 * `switches` take no value; those in `valued` take one, as the next argument
 * or after '=' (both lists NULL-terminated). CS_EINVAL, with `err` naming
 * the problem, for anything else. `out->val` borrows from argv. */
int cb_opt_next(int argc, char **argv, int *i, const char *const *switches,
                const char *const *valued, cb_opt *out, cs_error *err);

/* What a benchmark's main does with its parser's outcome `parsed`: for
 * CB_PARSE_HELP, "usage: cellbench NAME [options]" and `usage` on stdout
 * (returns 0); for CB_PARSE_BAD, "cellbench NAME: " err's message and
 * `usage` on stderr (returns CB_EXIT_USAGE); for CB_PARSE_RUN, -1: go on. */
int cb_parse_exit(int parsed, const char *name, const char *usage, const cs_error *err);

/* A decimal number in [min, max], digits only. */
int cb_parse_u64(const char *flag, const char *s, uint64_t min, uint64_t max, uint64_t *out,
                 cs_error *err);
int cb_parse_u32(const char *flag, const char *s, uint32_t min, uint32_t max, uint32_t *out,
                 cs_error *err);

/* ---- the report ------------------------------------------------------------ */

/* A figure with `decimals` decimals, or "n/a" for NaN (nothing to divide by).
 * Returns buf, for use as a printf argument. */
const char *cb_fig(char *buf, size_t size, double v, int decimals);

/* One JSON object on one line, written field by field. */
typedef struct cb_json {
    FILE *out;
    bool first;
} cb_json;

void cb_json_u64(cb_json *j, const char *key, uint64_t v);
/* A real number, or null for NaN and infinities, which JSON cannot hold. */
void cb_json_real(cb_json *j, const char *key, double v);
/* A byte count, or null when unknown (-1). */
void cb_json_bytes(cb_json *j, const char *key, int64_t v);
void cb_json_str(cb_json *j, const char *key, const char *s);
void cb_json_bool(cb_json *j, const char *key, bool v);
/* Close the object and the line. */
void cb_json_end(cb_json *j);

#endif
