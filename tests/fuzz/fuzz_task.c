/* fuzz_task.c — a task record as the store reads it back (cs_task_decode):
 * the record target of tests/fuzz/record.h. */
#define FZ_RECORD task
#include "tests/fuzz/record.h"
