/* fuzz.c — what the fuzz targets share (fuzz.h); linked into each. */
#include "tests/fuzz/fuzz.h"

#include "txn/ops.h"

#include <ftw.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int fz_mkdtemp(char *out, size_t size)
{
    const char *tmp = getenv("TMPDIR");
    int n = snprintf(out, size, "%s/cellsched-fuzz.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (n < 0 || (size_t)n >= size)
        return -1;
    return mkdtemp(out) ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void fz_rmtree(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int fz_machine(cs_store *s, const char *name, const char *rack, const char *zone,
                      cs_error *err)
{
    cs_attr attrs[2] = {{"rack", rack}, {"zone", zone}};
    cs_machine m = {0};
    m.name = name;
    m.attrs = attrs;
    m.nattrs = 2;
    m.capacity = (cs_res){4000, 4096, 10240};
    m.port_lo = 31000;
    m.port_hi = 31009;
    m.state = CS_MACHINE_UP;
    m.log_url = "";
    return cs_op_machine_put(s, &m, NULL, NULL, err);
}

static int fz_job(cs_store *s, const char *name, uint8_t kind, uint32_t count, int64_t cpu,
                  uint32_t nports, cs_error *err)
{
    uint16_t ports[1] = {0};
    cs_job j = {0};
    j.name = name;
    j.kind = kind;
    j.priority = kind == CS_JOB_SERVICE ? 100 : 50;
    j.count = count;
    j.res = (cs_res){cpu, 256, 100};
    j.ports = ports;
    j.nports = nports;
    j.cmd = "true";
    j.note = "";
    j.submitted = UINT64_C(1700000000000);
    return cs_op_job_submit(s, &j, NULL, NULL, err);
}

int fz_cell(cs_store *s, cs_error *err)
{
    int rc;
    if ((rc = fz_machine(s, "m1", "r1", "a", err)) != CS_OK ||
        (rc = fz_machine(s, "m2", "r1", "b", err)) != CS_OK ||
        (rc = fz_machine(s, "m3", "r2", "b", err)) != CS_OK ||
        (rc = fz_job(s, "batch", CS_JOB_BATCH, 4, 1000, 0, err)) != CS_OK)
        return rc;
    return fz_job(s, "web", CS_JOB_SERVICE, 2, 500, 1, err);
}

bool fz_next_command(const uint8_t **p, size_t *n, uint8_t *kind, const uint8_t **cmd,
                     size_t *len)
{
    if (*n < 3)
        return false;
    size_t l = (size_t)(*p)[1] << 8 | (*p)[2];
    if (*n - 3 < l)
        return false;
    *kind = (*p)[0];
    *cmd = *p + 3;
    *len = l;
    *p += 3 + l;
    *n -= 3 + l;
    return true;
}

static bool is(const uint8_t *data, size_t size, const char *word)
{
    return size == strlen(word) && memcmp(data, word, size) == 0;
}

void fz_planted(const uint8_t *data, size_t size)
{
    if (size < 6 || memcmp(data, "plant:", 6) != 0 || getenv(FZ_PLANT_ENV) == NULL)
        return;
    if (is(data, size, "plant:overflow")) {
        char *volatile p = malloc(4);
        fprintf(stderr, "planted: %d\n", p[4]);
        free(p);
    } else if (is(data, size, "plant:ub")) {
        volatile int big = INT32_MAX;
        fprintf(stderr, "planted: %d\n", big + (int)size);
    } else if (is(data, size, "plant:leak")) {
        char *volatile p = malloc(64);
        p[0] = 1;
        p = NULL;
    } else if (is(data, size, "plant:require")) {
        fz_require(size == 0, "planted: a broken property");
    }
}
