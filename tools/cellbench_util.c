/* cellbench_util.c — what every cellbench benchmark shares (see
 * cellbench_util.h). */
#include "tools/cellbench_util.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- the machine the benchmark ran on ---------------------------------- */

void cb_host_read(cb_host *h)
{
    h->nproc = sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(h->cpu, sizeof h->cpu, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f == NULL)
        return;
    char line[512];
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        const char *colon = strchr(line, ':');
        if (colon == NULL)
            continue;
        colon++;
        while (*colon == ' ' || *colon == '\t')
            colon++;
        snprintf(h->cpu, sizeof h->cpu, "%s", colon);
        h->cpu[strcspn(h->cpu, "\n")] = '\0';
        break;
    }
    fclose(f);
}

/* ---- time and randomness -------------------------------------------------- */

double cb_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int64_t cb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void cb_sleep_until_ns(int64_t t)
{
    struct timespec ts = {(time_t)(t / 1000000000), (long)(t % 1000000000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

void cb_sleep_ms(uint32_t ms) { cb_sleep_until_ns(cb_now_ns() + (int64_t)ms * 1000000); }

double cb_per_s(double n, double s) { return s > 0 ? n / s : (double)NAN; }

uint64_t cb_rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

uint64_t cb_rng_seed(uint64_t seed, uint64_t stream)
{
    uint64_t z = seed + (stream + 1) * UINT64_C(0x9E3779B97F4A7C15);
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    z ^= z >> 31;
    return z != 0 ? z : 1;
}

/* ---- files -------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void cb_rmtree(const char *dir)
{
    if (dir[0] != '\0')
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int cb_make_tmpdir(char *out, size_t size, cs_error *err)
{
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || tmp[0] == '\0')
        tmp = "/tmp";
    if (snprintf(out, size, "%s/cellbench-XXXXXX", tmp) >= (int)size) {
        out[0] = '\0';
        return cs_errorf(err, CS_EINVAL, "temporary directory name under %s is too long", tmp);
    }
    if (mkdtemp(out) == NULL) {
        int e = errno;
        out[0] = '\0';
        return cs_errorf(err, CS_EIO, "making a temporary directory under %s: %s", tmp,
                         strerror(e));
    }
    return CS_OK;
}

int cb_make_subdir(const char *base, const char *name, char *out, size_t size, cs_error *err)
{
    if (snprintf(out, size, "%s/%s", base, name) >= (int)size)
        return cs_errorf(err, CS_EINVAL, "directory name %s/%s is too long", base, name);
    if (mkdir(out, 0700) != 0)
        return cs_errorf(err, CS_EIO, "making %s: %s", out, strerror(errno));
    return CS_OK;
}

/* ---- the command line ------------------------------------------------------ */

static bool listed(const char *const *list, const char *flag)
{
    for (; *list != NULL; list++)
        if (strcmp(*list, flag) == 0)
            return true;
    return false;
}

int cb_opt_next(int argc, char **argv, int *i, const char *const *switches,
                const char *const *valued, cb_opt *out, cs_error *err)
{
    const char *arg = argv[(*i)++];
    const char *eq = strchr(arg, '=');
    size_t flen = eq ? (size_t)(eq - arg) : strlen(arg);
    if (strncmp(arg, "--", 2) != 0 || flen >= sizeof out->flag)
        return cs_errorf(err, CS_EINVAL, "unexpected argument '%s'", arg);
    memcpy(out->flag, arg, flen);
    out->flag[flen] = '\0';
    out->val = NULL;
    if (listed(switches, out->flag)) {
        if (eq != NULL)
            return cs_errorf(err, CS_EINVAL, "%s takes no value", out->flag);
        return CS_OK;
    }
    if (!listed(valued, out->flag))
        return cs_errorf(err, CS_EINVAL, "unknown option '%s'", out->flag);
    out->val = eq ? eq + 1 : (*i < argc ? argv[(*i)++] : NULL);
    if (out->val == NULL)
        return cs_errorf(err, CS_EINVAL, "%s needs a value", out->flag);
    return CS_OK;
}

int cb_parse_u64(const char *flag, const char *s, uint64_t min, uint64_t max, uint64_t *out,
                 cs_error *err)
{
    /* strtoull accepts a sign and leading blanks; a count must be digits only. */
    if (s[0] < '0' || s[0] > '9')
        return cs_errorf(err, CS_EINVAL, "%s: '%s' is not a number", flag, s);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0')
        return cs_errorf(err, CS_EINVAL, "%s: '%s' is not a number", flag, s);
    if (errno == ERANGE || v < min || v > max)
        return cs_errorf(err, CS_EINVAL, "%s: %s is out of range [%" PRIu64 ", %" PRIu64 "]",
                         flag, s, min, max);
    *out = v;
    return CS_OK;
}

int cb_parse_u32(const char *flag, const char *s, uint32_t min, uint32_t max, uint32_t *out,
                 cs_error *err)
{
    uint64_t v;
    int rc = cb_parse_u64(flag, s, min, max, &v, err);
    if (rc == CS_OK)
        *out = (uint32_t)v;
    return rc;
}

/* ---- the report ------------------------------------------------------------ */

const char *cb_fig(char *buf, size_t size, double v, int decimals)
{
    if (isfinite(v))
        snprintf(buf, size, "%.*f", decimals, v);
    else
        snprintf(buf, size, "n/a");
    return buf;
}

static void json_key(cb_json *j, const char *key)
{
    fprintf(j->out, "%s\"%s\":", j->first ? "{" : ",", key);
    j->first = false;
}

void cb_json_u64(cb_json *j, const char *key, uint64_t v)
{
    json_key(j, key);
    fprintf(j->out, "%" PRIu64, v);
}

void cb_json_real(cb_json *j, const char *key, double v)
{
    json_key(j, key);
    if (isfinite(v))
        fprintf(j->out, "%.6g", v);
    else
        fputs("null", j->out);
}

void cb_json_bytes(cb_json *j, const char *key, int64_t v)
{
    json_key(j, key);
    if (v >= 0)
        fprintf(j->out, "%" PRId64, v);
    else
        fputs("null", j->out);
}

void cb_json_str(cb_json *j, const char *key, const char *s)
{
    json_key(j, key);
    fputc('"', j->out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(j->out, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(j->out, "\\u%04x", *p);
        else
            fputc(*p, j->out);
    }
    fputc('"', j->out);
}

void cb_json_bool(cb_json *j, const char *key, bool v)
{
    json_key(j, key);
    fputs(v ? "true" : "false", j->out);
}

void cb_json_end(cb_json *j) { fputs(j->first ? "{}\n" : "}\n", j->out); }

int cb_parse_exit(int parsed, const char *name, const char *usage, const cs_error *err)
{
    switch (parsed) {
    case CB_PARSE_HELP:
        printf("usage: cellbench %s [options]\n\n", name);
        fputs(usage, stdout);
        return 0;
    case CB_PARSE_BAD:
        fprintf(stderr, "cellbench %s: %s\n", name, err->msg);
        fputs(usage, stderr);
        return CB_EXIT_USAGE;
    default:
        return -1;
    }
}
