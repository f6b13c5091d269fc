/* cellsim_sweep.c — `cellsim sweep` (see cellsim_sweep.h). */
#include "tools/cellsim_sweep.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tools/cellbench_util.h"
#include "tools/cellsim_kernel.h"
#include "tools/cellsim_report.h"

void sim_sweep_usage(FILE *f)
{
    fputs("usage: cellsim sweep [--preset omega|small] [--config FILE.json] [--SETTING VALUE ...]\n"
          "                     --vary KEY=V1,V2,... [--vary KEY2=...] [--out RESULTS.csv] [--jobs N]\n"
          "\n"
          "One simulation per point of the product of the --vary lists (the first --vary\n"
          "changes slowest), the other settings fixed; one CSV row per run, in the\n"
          "product's order, the same bytes for the same seed and settings.\n"
          "\n"
          "  --vary KEY=LIST  any setting of cellsim --help, with its values separated by\n"
          "                   commas (or by semicolons when the list holds one, for\n"
          "                   empirical distributions); repeat for a grid\n"
          "  --out FILE       the CSV (default: stdout)\n"
          "  --jobs N         runs at once, each in a process (default: the online CPUs)\n"
          "  --help           this\n"
          "\n"
          "Columns: the varied keys, every other setting of the run, then service_* and\n"
          "batch_* (the batch schedulers aggregated): jobs, scheduled, abandoned,\n"
          "unscheduled, tasks_unplaced, wait_mean_s, wait_p50_s, wait_p90_s, wait_p99_s,\n"
          "busyness_median, busyness_mad, conflict_fraction_median, conflict_fraction_mad,\n"
          "conflict_fraction, placements, commits; and events. An empty field: no value\n"
          "(no successful transaction). A progress bar on stderr when it is a terminal.\n",
          f);
}

void sim_sweep_free(sim_sweep *sw)
{
    for (size_t v = 0; v < sw->nvary; v++) {
        for (size_t i = 0; i < sw->vary[v].n; i++)
            free(sw->vary[v].values[i]);
        free(sw->vary[v].values);
    }
    free(sw->vary);
    sw->vary = NULL;
    sw->nvary = 0;
}

size_t sim_sweep_points(const sim_sweep *sw)
{
    size_t n = 1;
    for (size_t v = 0; v < sw->nvary; v++)
        n *= sw->vary[v].n;
    return n;
}

/* `key` with dashes as underscores (the settings' one spelling). */
static void norm_key(const char *key, size_t n, char *out, size_t size)
{
    snprintf(out, size, "%.*s", (int)n, key);
    for (char *p = out; *p; p++)
        if (*p == '-')
            *p = '_';
}

/* Whether setting `name` (normalized) is output-only (json, timing) or
 * known at all. */
static bool key_known(const char *name, bool *output)
{
    for (size_t i = 0; i < sim_conf_nkeys(); i++)
        if (strcmp(sim_conf_key(i, output), name) == 0)
            return true;
    return false;
}

/* One --vary's text ("KEY=V1,V2") into a new sw->vary entry, each value
 * tried on the base settings. */
static int add_vary(sim_sweep *sw, const char *text, cs_error *err)
{
    const char *eq = strchr(text, '=');
    if (eq == NULL || eq == text)
        return cs_errorf(err, CS_EINVAL, "--vary '%s': KEY=V1,V2,... expected", text);
    char key[64];
    if ((size_t)(eq - text) >= sizeof key)
        return cs_errorf(err, CS_EINVAL, "--vary: unknown setting '%.*s'", (int)(eq - text), text);
    norm_key(text, (size_t)(eq - text), key, sizeof key);
    bool output = false;
    if (!key_known(key, &output))
        return cs_errorf(err, CS_EINVAL, "--vary: unknown setting '%s' (cellsim --help lists them)", key);
    if (output)
        return cs_errorf(err, CS_EINVAL, "--vary %s: changes only how a run reports, not what it simulates", key);
    for (size_t v = 0; v < sw->nvary; v++)
        if (strcmp(sw->vary[v].key, key) == 0)
            return cs_errorf(err, CS_EINVAL, "--vary %s: given twice", key);
    if (sw->nvary == SIM_SWEEP_MAX_VARY)
        return cs_errorf(err, CS_EINVAL, "--vary %s: at most %d settings vary", key, SIM_SWEEP_MAX_VARY);
    const char *list = eq + 1;
    if (*list == '\0')
        return cs_errorf(err, CS_EINVAL, "--vary %s: the list of values is empty", key);
    sim_vary *grown = realloc(sw->vary, (sw->nvary + 1) * sizeof *grown);
    if (grown == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    sw->vary = grown;
    sim_vary *vy = &sw->vary[sw->nvary++];
    memset(vy, 0, sizeof *vy);
    snprintf(vy->key, sizeof vy->key, "%s", key);
    char sep = strchr(list, ';') ? ';' : ',';
    for (const char *p = list;;) {
        const char *end = strchr(p, sep);
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0)
            return cs_errorf(err, CS_EINVAL, "--vary %s: an empty value in '%s'", key, list);
        char **vals = realloc(vy->values, (vy->n + 1) * sizeof *vals);
        if (vals == NULL)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
        vy->values = vals;
        if ((vals[vy->n] = strndup(p, n)) == NULL)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
        sim_conf probe = sw->base;
        int rc = sim_conf_set(&probe, key, vals[vy->n++], err);
        if (rc != CS_OK) {
            cs_error_wrap(err, rc, "--vary %s", key);
            return rc;
        }
        if (end == NULL)
            break;
        p = end + 1;
    }
    return CS_OK;
}

/* The value of flag argv[*i] ("--x=v" or "--x v"), moving *i past it. */
static int own_value(int argc, char **argv, int *i, const char *flag, const char **out, cs_error *err)
{
    size_t n = strlen(flag);
    if (argv[*i][n] == '=') {
        *out = argv[*i] + n + 1;
        return CS_OK;
    }
    if (*i + 1 >= argc)
        return cs_errorf(err, CS_EINVAL, "%s: needs a value", flag);
    *out = argv[++*i];
    return CS_OK;
}

/* Whether argv[i] is `flag` or `flag=...`. */
static bool is_flag(const char *arg, const char *flag)
{
    size_t n = strlen(flag);
    return strncmp(arg, flag, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

int sim_sweep_parse(int argc, char **argv, sim_sweep *sw, cs_error *err)
{
    memset(sw, 0, sizeof *sw);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    sw->jobs = cpus > 0 ? (unsigned)cpus : 1;
    /* The sweep's own flags are taken out; the rest, in order, are
     * cellsim's settings. --vary is checked once the base is known. */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    const char **varies = calloc((size_t)argc + 1, sizeof *varies);
    int rc = CS_OK, nrest = 0, nvaries = 0;
    if (rest == NULL || varies == NULL) {
        rc = cs_errorf(err, CS_ENOMEM, "out of memory");
        goto out;
    }
    rest[nrest++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            sw->help = true;
            goto out;
        } else if (is_flag(a, "--vary")) {
            if ((rc = own_value(argc, argv, &i, "--vary", &v, err)) != CS_OK)
                goto out;
            varies[nvaries++] = v;
        } else if (is_flag(a, "--out")) {
            if ((rc = own_value(argc, argv, &i, "--out", &sw->out, err)) != CS_OK)
                goto out;
        } else if (is_flag(a, "--jobs")) {
            uint32_t jobs;
            if ((rc = own_value(argc, argv, &i, "--jobs", &v, err)) != CS_OK ||
                (rc = cb_parse_u32("--jobs", v, 1, 256, &jobs, err)) != CS_OK)
                goto out;
            sw->jobs = jobs;
        } else {
            rest[nrest++] = argv[i];
        }
    }
    bool help = false;
    if ((rc = sim_conf_parse(nrest, rest, &sw->base, &help, err)) != CS_OK)
        goto out;
    if (nvaries == 0) {
        rc = cs_errorf(err, CS_EINVAL, "at least one --vary KEY=V1,V2,... is needed");
        goto out;
    }
    for (int v = 0; v < nvaries; v++)
        if ((rc = add_vary(sw, varies[v], err)) != CS_OK)
            goto out;
out:
    free(rest);
    free(varies);
    if (rc != CS_OK)
        sim_sweep_free(sw);
    return rc;
}

/* ---- one run, one row -------------------------------------------------------------- */

/* `s` as a CSV field: quoted when it holds a comma, a quote or a line
 * break (RFC 4180). */
static void csv_field(FILE *f, bool first, const char *s)
{
    if (!first)
        fputc(',', f);
    if (strpbrk(s, ",\"\r\n") == NULL) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_num(FILE *f, double v)
{
    if (isnan(v))
        fputc(',', f);
    else
        fprintf(f, ",%.10g", v);
}

static void csv_u64(FILE *f, uint64_t v) { fprintf(f, ",%" PRIu64, v); }

static bool is_varied(const sim_sweep *sw, const char *key)
{
    for (size_t v = 0; v < sw->nvary; v++)
        if (strcmp(sw->vary[v].key, key) == 0)
            return true;
    return false;
}

static const char *const kinds[2] = {"service", "batch"};
static const char *const figures[] = {
    "jobs", "scheduled", "abandoned", "unscheduled", "tasks_unplaced", "wait_mean_s",
    "wait_p50_s", "wait_p90_s", "wait_p99_s", "busyness_median", "busyness_mad",
    "conflict_fraction_median", "conflict_fraction_mad", "conflict_fraction", "placements",
    "commits",
};

bool sim_sweep_is_figure(const char *name)
{
    if (strcmp(name, "events") == 0)
        return true;
    for (int k = 0; k < 2; k++) {
        size_t n = strlen(kinds[k]);
        if (strncmp(name, kinds[k], n) != 0 || name[n] != '_')
            continue;
        for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++)
            if (strcmp(name + n + 1, figures[i]) == 0)
                return true;
    }
    return false;
}

static void header(const sim_sweep *sw, FILE *f)
{
    for (size_t v = 0; v < sw->nvary; v++)
        csv_field(f, v == 0, sw->vary[v].key);
    for (size_t i = 0; i < sim_conf_nkeys(); i++) {
        bool output;
        const char *key = sim_conf_key(i, &output);
        if (!output && !is_varied(sw, key))
            csv_field(f, false, key);
    }
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++)
            fprintf(f, ",%s_%s", kinds[k], figures[i]);
    fputs(",events\n", f);
}

/* The same order as `figures`. */
static void summary_fields(FILE *f, const sim_summary *m)
{
    csv_u64(f, m->w.jobs);
    csv_u64(f, m->w.scheduled);
    csv_u64(f, m->w.abandoned);
    csv_u64(f, m->w.unscheduled);
    csv_u64(f, m->w.tasks_unplaced);
    csv_num(f, m->w.jobs ? m->w.mean_s : (double)NAN);
    for (int p = 0; p < 3; p++)
        csv_num(f, m->w.jobs ? m->w.pct_ms[p] / 1e3 : (double)NAN);
    csv_num(f, m->busy_med);
    csv_num(f, m->busy_mad);
    csv_num(f, m->cf_med);
    csv_num(f, m->cf_mad);
    csv_num(f, m->cf_all);
    csv_u64(f, m->placements);
    csv_u64(f, m->commits);
}

/* The settings of point i: the base with the i-th combination of values,
 * the last --vary the fastest to change. They are set in the order of the
 * --vary flags, as flags are, should one setting ever depend on another. */
static void point_conf(const sim_sweep *sw, size_t i, sim_conf *c, const char **vals)
{
    for (size_t v = sw->nvary; v-- > 0;) {
        vals[v] = sw->vary[v].values[i % sw->vary[v].n];
        i /= sw->vary[v].n;
    }
    *c = sw->base;
    for (size_t v = 0; v < sw->nvary; v++) {
        cs_error ignored = {0};
        /* Each value was checked by sim_sweep_parse against the same base. */
        (void)sim_conf_set(c, sw->vary[v].key, vals[v], &ignored);
    }
}

/* Run point i and format its row into *row (the caller's, free). */
static int run_point(const sim_sweep *sw, size_t i, char **row, cs_error *err)
{
    sim_conf c;
    const char *vals[SIM_SWEEP_MAX_VARY];
    point_conf(sw, i, &c, vals);
    sim_result r;
    int rc = sim_run(&c, &r, err);
    if (rc != CS_OK)
        return rc;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL) {
        sim_result_free(&r);
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    }
    for (size_t v = 0; v < sw->nvary; v++)
        csv_field(f, v == 0, vals[v]);
    for (size_t k = 0; rc == CS_OK && k < sim_conf_nkeys(); k++) {
        bool output;
        const char *key = sim_conf_key(k, &output);
        char text[1024];
        if (output || is_varied(sw, key))
            continue;
        if ((rc = sim_conf_get(&c, key, text, sizeof text, err)) == CS_OK)
            csv_field(f, false, text);
    }
    for (int k = 0; rc == CS_OK && k < 2; k++) {
        sim_summary m;
        if ((rc = sim_summarize(&r, k == 0 ? SIM_ALL_SERVICE : SIM_ALL_BATCH, &m, err)) == CS_OK)
            summary_fields(f, &m);
    }
    csv_u64(f, r.events);
    fputc('\n', f);
    sim_result_free(&r);
    if (fclose(f) != 0 && rc == CS_OK)
        rc = cs_errorf(err, CS_ENOMEM, "out of memory");
    if (rc != CS_OK) {
        free(buf);
        return rc;
    }
    *row = buf;
    return CS_OK;
}

/* ---- the pool ---------------------------------------------------------------------- */

/* Runs are child processes, not threads: sim_run is not safe to run twice
 * at once in one process. The kernel hands each scheduler its options
 * through cs_sched_opts_parse, which uses getopt_long and its globals
 * (optind, optarg): two runs on threads crashed in it under ASan. A child
 * forked per point owns all of that, and a crash in one run becomes that
 * point's error instead of the sweep's. */

/* One child: the point it runs and what it has written so far. */
typedef struct child {
    pid_t pid;
    int fd;             /* its pipe's read end; -1: free slot */
    size_t point;
    char *buf;
    size_t len, cap;
} child;

typedef struct pool {
    const sim_sweep *sw;
    size_t npoints, next, done;
    char **rows;        /* rows[i]: point i's row once it ran */
    size_t failed;      /* the lowest failed point; SIZE_MAX: none */
    cs_error ferr;
} pool;

/* In the child: run point i and write 'R' and its row, or 'E' and the
 * error's code and message, to fd; never returns. */
static void child_main(const sim_sweep *sw, size_t i, int fd)
{
    char *row = NULL;
    cs_error e = {0};
    int rc = run_point(sw, i, &row, &e);
    char *msg = NULL;
    size_t len = 0;
    if (rc == CS_OK) {
        len = strlen(row) + 1;
        msg = malloc(len);
        if (msg != NULL) {
            msg[0] = 'R';
            memcpy(msg + 1, row, len - 1);
        }
    } else if ((msg = malloc(sizeof e.msg + 16)) != NULL) {
        len = (size_t)snprintf(msg, sizeof e.msg + 16, "E%d %s", rc, e.msg);
    }
    for (size_t off = 0; msg != NULL && off < len;) {
        ssize_t n = write(fd, msg + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    free(row);
    free(msg);
    _exit(rc == CS_OK ? 0 : 1);
}

static void fail(pool *p, size_t i, int code, const char *msg)
{
    if (i < p->failed) {
        p->failed = i;
        p->ferr.code = code;
        snprintf(p->ferr.msg, sizeof p->ferr.msg, "%s", msg);
    }
}

/* Start point p->next in slot c. */
static int spawn(pool *p, FILE *out, child *c, cs_error *err)
{
    int fds[2];
    if (pipe(fds) != 0)
        return cs_errorf(err, CS_EIO, "pipe: %s", strerror(errno));
    fflush(out); /* the child must not write the parent's buffered rows again */
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return cs_errorf(err, CS_EIO, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(fds[0]);
        child_main(p->sw, p->next, fds[1]);
    }
    close(fds[1]);
    *c = (child){.pid = pid, .fd = fds[0], .point = p->next++};
    return CS_OK;
}

/* Child c's pipe is readable: take what it wrote; at its end, reap it and
 * file its row or its error. */
static int collect(pool *p, child *c, cs_error *err)
{
    if (c->cap - c->len < 4096) {
        size_t cap = c->cap ? c->cap * 2 : 8192;
        char *g = realloc(c->buf, cap);
        if (g == NULL)
            return cs_errorf(err, CS_ENOMEM, "out of memory");
        c->buf = g;
        c->cap = cap;
    }
    ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len - 1);
    if (n < 0 && errno == EINTR)
        return CS_OK;
    if (n > 0) {
        c->len += (size_t)n;
        return CS_OK;
    }
    close(c->fd);
    c->fd = -1;
    int status = 0;
    while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
        ;
    p->done++;
    char *text = c->buf;
    if (text != NULL)
        text[c->len] = '\0';
    if (text != NULL && text[0] == 'R' && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        memmove(text, text + 1, c->len); /* the row, without its tag */
        p->rows[c->point] = text;
        c->buf = NULL;
    } else if (text != NULL && text[0] == 'E') {
        char *sp = strchr(text, ' ');
        fail(p, c->point, atoi(text + 1), sp ? sp + 1 : text + 1);
    } else {
        char why[64];
        if (WIFSIGNALED(status))
            snprintf(why, sizeof why, "the run died of signal %d", WTERMSIG(status));
        else
            snprintf(why, sizeof why, "the run exited with status %d and no result",
                     WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        fail(p, c->point, CS_EIO, why);
    }
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
    return CS_OK;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void progress_bar(FILE *f, size_t done, size_t total, double elapsed)
{
    enum { WIDTH = 30 };
    size_t fill = total ? done * WIDTH / total : WIDTH;
    char bar[WIDTH + 1];
    for (size_t i = 0; i < WIDTH; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[WIDTH] = '\0';
    fprintf(f, "\rcellsim sweep: [%s] %zu/%zu runs, %.0f s", bar, done, total, elapsed);
    fflush(f);
}

/* The point's settings as "key=value, ..." for an error message. */
static void point_name(const sim_sweep *sw, size_t i, char *out, size_t size)
{
    sim_conf c;
    const char *vals[SIM_SWEEP_MAX_VARY];
    point_conf(sw, i, &c, vals);
    size_t n = 0;
    out[0] = '\0';
    for (size_t v = 0; v < sw->nvary && n < size; v++)
        n += (size_t)snprintf(out + n, size - n, "%s%s=%s", v ? " " : "", sw->vary[v].key, vals[v]);
}

int sim_sweep_run(const sim_sweep *sw, FILE *out, FILE *progress, cs_error *err)
{
    pool p = {.sw = sw, .npoints = sim_sweep_points(sw), .failed = SIZE_MAX};
    unsigned nslots = sw->jobs < p.npoints ? sw->jobs : (unsigned)p.npoints;
    child *kids = calloc(nslots ? nslots : 1, sizeof *kids);
    struct pollfd *pfd = calloc(nslots ? nslots : 1, sizeof *pfd);
    p.rows = calloc(p.npoints ? p.npoints : 1, sizeof *p.rows);
    int rc = CS_OK;
    if (kids == NULL || pfd == NULL || p.rows == NULL) {
        rc = cs_errorf(err, CS_ENOMEM, "out of memory");
        goto out;
    }
    for (unsigned k = 0; k < nslots; k++)
        kids[k].fd = -1;
    header(sw, out);
    fflush(out);
    double t0 = now_s();
    size_t written = 0;
    if (progress != NULL)
        progress_bar(progress, 0, p.npoints, 0);
    for (;;) {
        /* A failure stops the hand-out; the runs under way end on their own. */
        for (unsigned k = 0; rc == CS_OK && k < nslots; k++)
            if (kids[k].fd < 0 && p.next < p.npoints && p.failed == SIZE_MAX)
                rc = spawn(&p, out, &kids[k], err);
        /* Rows go out in the grid's order as soon as those before are out. */
        for (; written < p.npoints && p.rows[written] != NULL; written++)
            fputs(p.rows[written], out);
        fflush(out);
        nfds_t n = 0;
        for (unsigned k = 0; k < nslots; k++)
            if (kids[k].fd >= 0)
                pfd[n++] = (struct pollfd){.fd = kids[k].fd, .events = POLLIN};
        if (n == 0)
            break;
        if (poll(pfd, n, 1000) < 0 && errno != EINTR && rc == CS_OK)
            rc = cs_errorf(err, CS_EIO, "poll: %s", strerror(errno));
        for (nfds_t i = 0; i < n; i++) {
            if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            for (unsigned k = 0; k < nslots; k++)
                if (kids[k].fd == pfd[i].fd) {
                    int crc = collect(&p, &kids[k], err);
                    rc = rc == CS_OK ? crc : rc;
                }
        }
        if (progress != NULL)
            progress_bar(progress, p.done, p.npoints, now_s() - t0);
        if (rc != CS_OK && p.failed == SIZE_MAX)
            p.failed = p.next; /* stop handing out; wait for the children */
    }
    if (progress != NULL)
        fputc('\n', progress);
    if (rc == CS_OK && p.failed != SIZE_MAX) {
        char name[512];
        point_name(sw, p.failed, name, sizeof name);
        rc = cs_errorf(err, p.ferr.code ? p.ferr.code : CS_EIO, "run %zu of %zu (%s): %s",
                       p.failed + 1, p.npoints, name, p.ferr.msg);
    } else if (rc == CS_OK && ferror(out)) {
        rc = cs_errorf(err, CS_EIO, "writing the results failed");
    }
out:
    for (size_t i = 0; p.rows != NULL && i < p.npoints; i++)
        free(p.rows[i]);
    free(p.rows);
    free(kids);
    free(pfd);
    return rc;
}

int sim_sweep_main(int argc, char **argv)
{
    sim_sweep sw;
    cs_error err = {0};
    if (sim_sweep_parse(argc, argv, &sw, &err) != CS_OK) {
        fprintf(stderr, "cellsim sweep: %s\n(cellsim sweep --help lists the flags)\n", err.msg);
        return 2;
    }
    if (sw.help) {
        sim_sweep_usage(stdout);
        sim_sweep_free(&sw);
        return 0;
    }
    FILE *out = stdout;
    if (sw.out != NULL && (out = fopen(sw.out, "w")) == NULL) {
        fprintf(stderr, "cellsim sweep: %s: %s\n", sw.out, strerror(errno));
        sim_sweep_free(&sw);
        return 1;
    }
    int rc = sim_sweep_run(&sw, out, isatty(STDERR_FILENO) ? stderr : NULL, &err);
    if (out != stdout && fclose(out) != 0 && rc == CS_OK)
        rc = cs_errorf(&err, CS_EIO, "%s: %s", sw.out, strerror(errno));
    if (rc != CS_OK)
        fprintf(stderr, "cellsim sweep: %s\n", err.msg);
    sim_sweep_free(&sw);
    return rc == CS_OK ? 0 : 1;
}
