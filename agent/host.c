/* host.c — host name and capacity detection (see host.h). */
#include "agent/host.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

int ag_host_name(char *out, size_t size, cs_error *err)
{
    if (gethostname(out, size) != 0)
        return cs_errorf(err, CS_EIO, "gethostname: %s", strerror(errno));
    out[size - 1] = '\0';
    return CS_OK;
}

int ag_host_meminfo_mib(const char *text, int64_t *mib, cs_error *err)
{
    const char *p = strstr(text, "MemTotal:");
    /* Only a line that starts with the key: "MemTotal:" inside another
     * key's name would be someone else's number. */
    while (p != NULL && p != text && p[-1] != '\n')
        p = strstr(p + 1, "MemTotal:");
    if (p == NULL)
        return cs_errorf(err, CS_EINVAL, "meminfo: no MemTotal line");
    p += strlen("MemTotal:");
    char *end;
    errno = 0;
    unsigned long long kb = strtoull(p, &end, 10);
    while (*end == ' ')
        end++;
    if (end == p || errno != 0 || strncmp(end, "kB", 2) != 0)
        return cs_errorf(err, CS_EINVAL, "meminfo: MemTotal is not a number of kB");
    if (kb / 1024 > (unsigned long long)CS_RES_MAX)
        return cs_errorf(err, CS_EINVAL, "meminfo: MemTotal %llu kB is out of range", kb);
    *mib = (int64_t)(kb / 1024);
    return CS_OK;
}

static int mem_mib(int64_t *mib, cs_error *err)
{
    char buf[8192];
    FILE *f = fopen("/proc/meminfo", "r");
    if (f != NULL) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        if (ag_host_meminfo_mib(buf, mib, err) == CS_OK)
            return CS_OK;
    }
    /* Not Linux, or /proc not mounted: the C library's view. */
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || psize <= 0)
        return cs_errorf(err, CS_EIO, "memory size: neither /proc/meminfo nor sysconf knows it");
    *mib = (int64_t)((unsigned long long)pages * (unsigned long long)psize >> 20);
    return CS_OK;
}

int ag_host_capacity(const char *dir, cs_res *out, cs_error *err)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus <= 0)
        return cs_errorf(err, CS_EIO, "cpu count: sysconf(_SC_NPROCESSORS_ONLN) failed");
    int64_t mem;
    int rc = mem_mib(&mem, err);
    if (rc != CS_OK)
        return rc;
    struct statvfs fs;
    if (statvfs(dir, &fs) != 0)
        return cs_errorf(err, CS_EIO, "disk size of %s: %s", dir, strerror(errno));
    unsigned long long bytes = (unsigned long long)fs.f_blocks * fs.f_frsize;
    out->cpu = (int64_t)cpus * 1000;
    out->mem = mem;
    out->disk = (int64_t)(bytes >> 20);
    return CS_OK;
}

int ag_host_parse_cores(const char *text, int64_t *millicores, cs_error *err)
{
    /* Parsed by hand rather than with strtod, so that "0.001" is exactly
     * one millicore and no locale decides what the decimal point is. */
    const char *p = text;
    int64_t whole = 0, frac = 0;
    int digits = 0, decimals = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        whole = whole * 10 + (*p - '0');
        if (whole > CS_RES_MAX / 1000)
            return cs_errorf(err, CS_EINVAL, "cpu '%s' is too large", text);
    }
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++, decimals++) {
            if (decimals == 3)
                return cs_errorf(err, CS_EINVAL, "cpu '%s': at most three decimals", text);
            frac = frac * 10 + (*p - '0');
        }
    }
    if (digits + decimals == 0 || *p != '\0')
        return cs_errorf(err, CS_EINVAL, "cpu '%s' is not a number of cores", text);
    for (int i = decimals; i < 3; i++)
        frac *= 10;
    *millicores = whole * 1000 + frac;
    return CS_OK;
}
