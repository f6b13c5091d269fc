/* test_host.c — what the agent reads of its host (agent/host.h): MemTotal,
 * cpu amounts in cores. */
#include <criterion/criterion.h>
#include <string.h>

#include "agent/host.h"

Test(host, meminfo_reads_memtotal_in_mib)
{
    int64_t mib = 0;
    cs_error err = {0};
    cr_assert_eq(ag_host_meminfo_mib("MemFree: 1 kB\nMemTotal:       2048000 kB\n", &mib, &err),
                 CS_OK, "%s", err.msg);
    cr_assert_eq(mib, 2000);
    cr_assert_eq(ag_host_meminfo_mib("MemFree: 1 kB\n", &mib, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "MemTotal"), "%s", err.msg);
    cr_assert_eq(ag_host_meminfo_mib("MemTotal: lots kB\n", &mib, &err), CS_EINVAL);
}

Test(host, cores_parse_to_millicores)
{
    int64_t m = 0;
    cs_error err = {0};
    cr_assert_eq(ag_host_parse_cores("2", &m, &err), CS_OK);
    cr_assert_eq(m, 2000);
    cr_assert_eq(ag_host_parse_cores("0.5", &m, &err), CS_OK);
    cr_assert_eq(m, 500);
    cr_assert_eq(ag_host_parse_cores("1.25", &m, &err), CS_OK);
    cr_assert_eq(m, 1250);
    cr_assert_eq(ag_host_parse_cores("1.2345", &m, &err), CS_EINVAL);
    cr_assert_eq(ag_host_parse_cores("two", &m, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "two"), "%s", err.msg);
}
