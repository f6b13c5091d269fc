/* fuzz_policy.c — a Kubernetes scheduler Policy file as cell-service
 * --policy reads it (cs_policy_parse, schedulers/policy.h), and the warning
 * an accepted one gives. It also carries test_fuzz.c's planted bugs
 * (fz_planted): the quickest target to build and run. */
#include "schedulers/policy.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_planted(data, size);
    cs_policy p;
    cs_error err = {0};
    if (cs_policy_parse((const char *)data, size, &p, &err) == CS_OK) {
        char warning[512];
        (void)cs_policy_warning(&p, warning, sizeof warning);
    }
    return 0;
}
