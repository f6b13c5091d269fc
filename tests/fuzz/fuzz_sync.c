/* fuzz_sync.c — a sync reply body as a scheduler applies it to its copy of
 * the cell (cs_copy_apply_bytes, schedulers/cellcopy.h): compact or map
 * form. Applied twice to one fresh copy: the second time every record is
 * already there (an incremental sync replacing them, or a full one
 * replacing the copy). */
#include "schedulers/cellcopy.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cs_copy *c;
    cs_error err = {0};
    if (cs_copy_new(&c, &err) != CS_OK)
        return 0;
    if (cs_copy_apply_bytes(c, data, size, &err) == CS_OK)
        (void)cs_copy_apply_bytes(c, data, size, &err);
    cs_copy_free(c);
    return 0;
}
