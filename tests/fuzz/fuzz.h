/* fuzz.h — what the libFuzzer targets of tests/fuzz share.
 *
 * Each tests/fuzz/fuzz_NAME.c is one target: an LLVMFuzzerTestOneInput that
 * hands the input to one decoder of outside bytes exactly as the code that
 * reads them does, with tests/fuzz/corpus/NAME/ as its seeds (`make fuzz`,
 * docs/fuzzing.md). Adding a target is adding that file and that folder.
 *
 * A target reports a bug by crashing: ASan and UBSan abort on memory and
 * undefined-behaviour errors, LeakSanitizer on leaks, and fz_require on a
 * broken property the decoder promises (a round trip that should give the
 * same bytes). Refusing an input is no bug: every malformed input must be
 * refused with an error code, never a crash.
 */
#ifndef CS_FUZZ_H
#define CS_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cellstate/error.h"
#include "cellstate/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A property the decoder promises does not hold: say which, and abort, so
 * that libFuzzer keeps the input as a crash. */
#define fz_require(cond, what)                                                  \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "fuzz: %s:%d: %s\n", __FILE__, __LINE__, (what));   \
            abort();                                                            \
        }                                                                       \
    } while (0)

/* Two canonical encodings must be equal: fz_require on their bytes. */
#define fz_require_same(b1, b2, what)                                                  \
    fz_require((b1)->size == (b2)->size &&                                              \
                   ((b1)->size == 0 || memcmp((b1)->data, (b2)->data, (b1)->size) == 0), \
               what)

/* tests/test_fuzz.c's planted bugs, to prove that make fuzz fails on each
 * kind of report: with FZ_PLANT_ENV set in the environment, an input that
 * is exactly "plant:overflow" reads past a heap block (ASan), "plant:ub"
 * overflows a signed int (UBSan), "plant:leak" leaks a block (LeakSanitizer)
 * and "plant:require" breaks an fz_require. Any other input, or no
 * FZ_PLANT_ENV, does nothing. fuzz_policy calls it first. */
#define FZ_PLANT_ENV "CELLSCHED_FUZZ_PLANT"
void fz_planted(const uint8_t *data, size_t size);

/* A fresh directory under $TMPDIR (else /tmp) for a target's store; its
 * path into out[0..size). 0, or -1 (errno set). */
int fz_mkdtemp(char *out, size_t size);
/* rm -rf of a directory fz_mkdtemp made. */
void fz_rmtree(const char *dir);

/* The cell every stateful target starts from (fuzz_command, fuzz_server),
 * and the seed generator too, so that the seeds' ids name its records:
 * machines 1 m1, 2 m2, 3 m3 (4 cores, 4 GiB, 10 GiB disk, ports
 * 31000-31009, rack and zone attributes) and jobs 1 "batch" (batch, 4
 * tasks of 1 core) and 2 "web" (service, 2 tasks of half a core and one
 * port). `s` is borrowed. CS_OK or the failing op's code. */
int fz_cell(cs_store *s, cs_error *err);

/* Stateful targets skip an input that would make a job of more tasks than
 * this: a valid job of a million tasks costs seconds and gigabytes, which
 * is no decoder's fault, and would hide the rest. */
#define FZ_TASKS_MAX 256

/* A command sequence, fuzz_command's input format, as replay reads a log:
 * entries of [kind: 1 byte][length: 2 bytes, big-endian][command bytes].
 * fz_next_command reads the entry at *p (left bytes *n) and advances; false
 * at the end or at a truncated entry. */
bool fz_next_command(const uint8_t **p, size_t *n, uint8_t *kind, const uint8_t **cmd,
                     size_t *len);

#endif
