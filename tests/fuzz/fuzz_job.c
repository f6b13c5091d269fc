/* fuzz_job.c — a job record as the store reads it back (cs_job_decode):
 * the record target of tests/fuzz/record.h. */
#define FZ_RECORD job
#include "tests/fuzz/record.h"
