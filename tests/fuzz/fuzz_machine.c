/* fuzz_machine.c — a machine record as the store reads it back (cs_machine_decode):
 * the record target of tests/fuzz/record.h. */
#define FZ_RECORD machine
#include "tests/fuzz/record.h"
