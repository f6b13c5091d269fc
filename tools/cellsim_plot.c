/* cellsim_plot.c — `cellsim plot` (see cellsim_plot.h). */
#include "tools/cellsim_plot.h"

#include <errno.h>
#include <math.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "cellstate/paths.h"
#include "tools/cellsim_sweep.h"

extern char **environ;

void sim_plot_usage(FILE *f)
{
    fputs("usage: cellsim plot RESULTS.csv [--out DIR] [--gnuplot PROGRAM]\n"
          "\n"
          "The Omega paper's figures from a `cellsim sweep` CSV, as PNGs drawn by gnuplot\n"
          "(Debian: gnuplot-nox), each beside its script (NAME.gp). One line per\n"
          "combination of the settings that vary in the CSV:\n"
          "  tjob_wait.png, tjob_busyness.png            Figs. 5-7: mean job wait and busyness\n"
          "                                              against t_job_service (log x; the\n"
          "                                              wait on a log y, zeros left out)\n"
          "  schedulers_conflict.png, schedulers_busyness.png\n"
          "                                              Fig. 9: batch conflict fraction and\n"
          "                                              busyness against batch_schedulers\n"
          "  modes_conflict.png, modes_busyness.png      Fig. 14: service conflict fraction and\n"
          "                                              busyness against t_job_service, per\n"
          "                                              conflict x commit mode\n"
          "A figure whose columns are absent or constant is skipped, saying so.\n"
          "\n"
          "  --out DIR          where the PNGs go (default: the current directory; made if missing)\n"
          "  --gnuplot PROGRAM  the gnuplot to run (default: gnuplot, on PATH)\n"
          "  --help             this\n",
          f);
}

/* ---- the CSV ----------------------------------------------------------------------- */

/* Row 0 is the header; cells[r * ncols + c]. */
typedef struct table {
    size_t ncols, nrows; /* nrows counts the header */
    char **cells;
} table;

static void table_free(table *t)
{
    for (size_t i = 0; i < t->ncols * t->nrows; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

static const char *cell(const table *t, size_t row, size_t col) { return t->cells[row * t->ncols + col]; }

static int push(char ***v, size_t *n, size_t *cap, char *s)
{
    if (s == NULL)
        return CS_ENOMEM;
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        char **g = realloc(*v, c * sizeof *g);
        if (g == NULL) {
            free(s);
            return CS_ENOMEM;
        }
        *v = g;
        *cap = c;
    }
    (*v)[(*n)++] = s;
    return CS_OK;
}

/* Parse RFC 4180 text (quoted fields may hold commas, quotes doubled,
 * line breaks) into *t; every row as wide as the header. */
static int parse_csv(const char *path, const char *text, table *t, cs_error *err)
{
    memset(t, 0, sizeof *t);
    size_t n = 0, cap = 0, line = 1, row_start = 0;
    char *field = malloc(strlen(text) + 1);
    if (field == NULL)
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    int rc = CS_OK;
    const char *p = text;
    while (*p != '\0') {
        size_t len = 0;
        size_t at_line = line;
        if (*p == '"') {
            for (p++;; p++) {
                if (*p == '\0') {
                    rc = cs_errorf(err, CS_EINVAL, "%s: line %zu: a quoted field does not end", path, at_line);
                    goto out;
                }
                if (*p == '"' && p[1] == '"') {
                    field[len++] = '"';
                    p++;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    line += *p == '\n';
                    field[len++] = *p;
                }
            }
            if (*p != ',' && *p != '\n' && *p != '\r' && *p != '\0') {
                rc = cs_errorf(err, CS_EINVAL, "%s: line %zu: text after a quoted field", path, line);
                goto out;
            }
        } else {
            while (*p != ',' && *p != '\n' && *p != '\r' && *p != '\0')
                field[len++] = *p++;
        }
        if ((rc = push(&t->cells, &n, &cap, strndup(field, len))) != CS_OK) {
            rc = cs_errorf(err, rc, "out of memory");
            goto out;
        }
        if (*p == ',') {
            p++;
            continue;
        }
        /* The end of a row. */
        if (*p == '\r')
            p++;
        if (*p == '\n')
            p++;
        size_t width = n - row_start;
        if (t->nrows == 0) {
            t->ncols = width;
        } else if (width != t->ncols) {
            rc = cs_errorf(err, CS_EINVAL, "%s: line %zu: %zu fields, the header has %zu", path, line,
                           width, t->ncols);
            goto out;
        }
        t->nrows++;
        row_start = n;
        line++;
    }
    if (t->nrows == 0)
        rc = cs_errorf(err, CS_EINVAL, "%s: empty, not a cellsim sweep CSV", path);
out:
    free(field);
    if (rc != CS_OK) {
        for (size_t i = 0; i < n; i++)
            free(t->cells[i]);
        free(t->cells);
        memset(t, 0, sizeof *t);
    }
    return rc;
}

static int read_csv(const char *path, table *t, cs_error *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return cs_errorf(err, CS_EINVAL, "%s: %s", path, strerror(errno));
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    int rc = CS_OK;
    if (m == NULL) {
        fclose(f);
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    }
    char buf[65536];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, got, m);
    if (ferror(f))
        rc = cs_errorf(err, CS_EIO, "%s: %s", path, strerror(errno));
    fclose(f);
    if (fclose(m) != 0 && rc == CS_OK)
        rc = cs_errorf(err, CS_ENOMEM, "out of memory");
    if (rc == CS_OK && memchr(text, '\0', len) != NULL)
        rc = cs_errorf(err, CS_EINVAL, "%s: binary data, not a CSV", path);
    if (rc == CS_OK)
        rc = parse_csv(path, text, t, err);
    free(text);
    return rc;
}

/* The column named `name`, or -1. */
static long column(const table *t, const char *name)
{
    for (size_t c = 0; c < t->ncols; c++)
        if (strcmp(cell(t, 0, c), name) == 0)
            return (long)c;
    return -1;
}

/* Whether column c takes more than one value over rows `use` picks. */
static bool varies(const table *t, size_t c, const bool *use)
{
    const char *first = NULL;
    for (size_t r = 1; r < t->nrows; r++) {
        if (!use[r])
            continue;
        if (first == NULL)
            first = cell(t, r, c);
        else if (strcmp(first, cell(t, r, c)) != 0)
            return true;
    }
    return false;
}

static bool number(const char *s, double *out)
{
    char *end;
    if (*s == '\0')
        return false;
    errno = 0;
    *out = strtod(s, &end);
    return errno == 0 && *end == '\0' && isfinite(*out);
}

/* ---- the figures ------------------------------------------------------------------- */

typedef struct fig_spec {
    const char *file;       /* NAME of NAME.png and NAME.gp */
    const char *what;       /* the paper's figure, for the log */
    const char *title;
    const char *x, *xlabel;
    int xlog;               /* the log base of the x axis */
    const char *ylabel;
    const char *ys[2];      /* y columns (NULL: one) */
    const char *ynames[2];  /* each one's part of a line's title */
    bool omega_only;        /* only rows of architecture omega, when there is one */
    bool modes;             /* only when conflict or commit varies */
    /* A log y axis (points at 0 left out): waits span from milliseconds
     * to a saturated scheduler's hours, and on a linear axis the hours
     * flatten every other line to 0, as the paper's log axes do not. */
    bool ylog;
} fig_spec;

static const fig_spec specs[] = {
    {"tjob_wait", "Figs. 5-7 (a)", "Mean job wait time against t_job(service)", "t_job_service",
     "t_job(service) [s]", 10, "mean job wait time [s]",
     {"batch_wait_mean_s", "service_wait_mean_s"}, {"batch", "service"}, false, false, true},
    {"tjob_busyness", "Figs. 5-7 (b)", "Scheduler busyness against t_job(service)", "t_job_service",
     "t_job(service) [s]", 10, "busyness (median of daily values)",
     {"batch_busyness_median", "service_busyness_median"}, {"batch", "service"}, false, false, false},
    {"schedulers_conflict", "Fig. 9 (a)", "Omega: batch conflict fraction against batch schedulers",
     "batch_schedulers", "batch schedulers", 2, "conflict fraction (median of daily values)",
     {"batch_conflict_fraction_median", NULL}, {"batch", NULL}, true, false, false},
    {"schedulers_busyness", "Fig. 9 (b)", "Omega: batch busyness against batch schedulers",
     "batch_schedulers", "batch schedulers", 2, "busyness (median of daily values, mean of schedulers)",
     {"batch_busyness_median", NULL}, {"batch", NULL}, true, false, false},
    {"modes_conflict", "Fig. 14 (a)", "Service conflict fraction: fine/coarse x incremental/gang",
     "t_job_service", "t_job(service) [s]", 10, "conflict fraction (median of daily values)",
     {"service_conflict_fraction_median", NULL}, {"service", NULL}, true, true, false},
    {"modes_busyness", "Fig. 14 (b)", "Service busyness: fine/coarse x incremental/gang",
     "t_job_service", "t_job(service) [s]", 10, "busyness (median of daily values)",
     {"service_busyness_median", NULL}, {"service", NULL}, true, true, false},
};

/* `s` inside a gnuplot double-quoted string: no quote, backslash or line
 * break of the CSV can end it. */
static void gp_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++)
        fputc(*s == '"' ? '\'' : *s == '\\' ? '/' : *s == '\n' || *s == '\r' ? ' ' : *s, f);
    fputc('"', f);
}

typedef struct point {
    double x, y;
} point;

static int cmp_point(const void *a, const void *b)
{
    double x = ((const point *)a)->x, y = ((const point *)b)->x;
    return (x > y) - (x < y);
}

/* The group of row r: the values of the grouping columns, as a title. */
static void group_name(const table *t, size_t r, const size_t *gcols, size_t ng, char *out, size_t size)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t g = 0; g < ng && n < size; g++)
        n += (size_t)snprintf(out + n, size - n, "%s%s=%s", g ? " " : "", cell(t, 0, gcols[g]),
                              cell(t, r, gcols[g]));
}

/* Why the figure cannot be drawn (a static or `why` text), or NULL, with
 * the rows it uses in use[] and its y columns in ycols[]. */
static const char *check_fig(const table *t, const fig_spec *s, bool *use, long *ycols, char *why,
                             size_t whysize)
{
    long arch = column(t, "architecture");
    for (size_t r = 1; r < t->nrows; r++)
        use[r] = !s->omega_only || arch < 0 || strcmp(cell(t, r, (size_t)arch), "omega") == 0;
    long x = column(t, s->x);
    if (x < 0)
        return snprintf(why, whysize, "no column %s", s->x), why;
    if (!varies(t, (size_t)x, use))
        return snprintf(why, whysize, "%s is constant", s->x), why;
    if (s->modes) {
        long cf = column(t, "conflict"), cm = column(t, "commit");
        if (!(cf >= 0 && varies(t, (size_t)cf, use)) && !(cm >= 0 && varies(t, (size_t)cm, use)))
            return "neither conflict nor commit varies";
    }
    bool any = false;
    for (int k = 0; k < 2; k++) {
        ycols[k] = -1;
        if (s->ys[k] == NULL)
            continue;
        if ((ycols[k] = column(t, s->ys[k])) < 0)
            return snprintf(why, whysize, "no column %s", s->ys[k]), why;
        double v;
        for (size_t r = 1; r < t->nrows; r++)
            any |= use[r] && number(cell(t, r, (size_t)ycols[k]), &v);
    }
    if (!any)
        return "its y columns have no values";
    return NULL;
}

/* The gnuplot script of figure `s` into `f`: one datablock and one line
 * per (group, y column). */
static int write_script(const table *t, const fig_spec *s, const bool *use, const long *ycols,
                        const char *png, FILE *f, cs_error *err)
{
    size_t x = (size_t)column(t, s->x);
    /* Groups: the settings that vary among the rows used, but x. */
    size_t *gcols = calloc(t->ncols, sizeof *gcols), ng = 0;
    size_t *gfirst = calloc(t->nrows, sizeof *gfirst), ngroups = 0; /* a row of each group */
    size_t *grp = calloc(t->nrows, sizeof *grp);
    point *pts = calloc(t->nrows, sizeof *pts);
    int rc = CS_OK;
    if (gcols == NULL || gfirst == NULL || grp == NULL || pts == NULL) {
        rc = cs_errorf(err, CS_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t c = 0; c < t->ncols; c++)
        if (c != x && !sim_sweep_is_figure(cell(t, 0, c)) && varies(t, c, use))
            gcols[ng++] = c;
    for (size_t r = 1; r < t->nrows; r++) {
        if (!use[r])
            continue;
        size_t g = 0;
        for (; g < ngroups; g++) {
            size_t k = 0;
            while (k < ng && strcmp(cell(t, r, gcols[k]), cell(t, gfirst[g], gcols[k])) == 0)
                k++;
            if (k == ng)
                break;
        }
        if (g == ngroups)
            gfirst[ngroups++] = r;
        grp[r] = g;
    }
    fprintf(f, "# cellsim plot: %s of the Omega paper (EuroSys 2013)\n", s->what);
    fputs("set terminal pngcairo size 900,560 noenhanced\nset output ", f);
    gp_string(f, png);
    fputs("\nset title ", f);
    gp_string(f, s->title);
    fputs("\nset xlabel ", f);
    gp_string(f, s->xlabel);
    fputs("\nset ylabel ", f);
    gp_string(f, s->ylabel);
    fprintf(f, "\nset logscale x %d\nset key below\nset grid\n%s\n", s->xlog,
            s->ylog ? "set logscale y 10\nset yrange [*:*]\nset format y \"%g\"" : "set yrange [0:*]");
    size_t nseries = 0;
    for (size_t g = 0; g < ngroups; g++)
        for (int k = 0; k < 2; k++) {
            if (ycols[k] < 0)
                continue;
            size_t np = 0;
            for (size_t r = 1; r < t->nrows; r++)
                if (use[r] && grp[r] == g && number(cell(t, r, x), &pts[np].x) && pts[np].x > 0 &&
                    number(cell(t, r, (size_t)ycols[k]), &pts[np].y) && (!s->ylog || pts[np].y > 0))
                    np++;
            qsort(pts, np, sizeof *pts, cmp_point);
            fprintf(f, "$s%zu << EOD\n", nseries++);
            for (size_t i = 0; i < np; i++)
                fprintf(f, "%.10g %.10g\n", pts[i].x, pts[i].y);
            fputs("EOD\n", f);
        }
    fputs("plot ", f);
    size_t i = 0;
    for (size_t g = 0; g < ngroups; g++)
        for (int k = 0; k < 2; k++) {
            if (ycols[k] < 0)
                continue;
            char title[512], gname[400];
            group_name(t, gfirst[g], gcols, ng, gname, sizeof gname);
            snprintf(title, sizeof title, "%s%s%s", gname, *gname ? " " : "", s->ynames[k]);
            /* The second y (service beside batch) dashed, so the two read apart. */
            fprintf(f, "%s$s%zu using 1:2 with linespoints%s title ", i ? ", \\\n     " : "", i,
                    k ? " dashtype 2" : "");
            gp_string(f, title);
            i++;
        }
    fputc('\n', f);
out:
    free(gcols);
    free(gfirst);
    free(grp);
    free(pts);
    return rc;
}

/* Run `gnuplot script` (no shell) and wait for it. */
static int run_gnuplot(const char *gnuplot, const char *script, cs_error *err)
{
    char *argv[] = {(char *)gnuplot, (char *)script, NULL};
    pid_t pid;
    int e = posix_spawnp(&pid, gnuplot, NULL, NULL, argv, environ);
    if (e != 0)
        return cs_errorf(err, CS_ENOTFOUND,
                         "cannot run %s: %s (install gnuplot: apt-get install gnuplot-nox, or "
                         "sh tools/deps.sh install)",
                         gnuplot, strerror(e));
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return cs_errorf(err, CS_EIO, "waiting for %s: %s", gnuplot, strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
            return cs_errorf(err, CS_ENOTFOUND, "cannot run %s (install gnuplot-nox)", gnuplot);
        return cs_errorf(err, CS_EIO, "%s %s failed (%s %d)", gnuplot, script,
                         WIFEXITED(status) ? "exit status" : "signal",
                         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }
    return CS_OK;
}

static int draw(const table *t, const fig_spec *s, const bool *use, const long *ycols,
                const char *dir, const char *gnuplot, FILE *log, cs_error *err)
{
    char png[4096], gp[4096];
    snprintf(png, sizeof png, "%s/%s.png", dir, s->file);
    snprintf(gp, sizeof gp, "%s/%s.gp", dir, s->file);
    FILE *f = fopen(gp, "w");
    if (f == NULL)
        return cs_errorf(err, CS_EIO, "%s: %s", gp, strerror(errno));
    int rc = write_script(t, s, use, ycols, png, f, err);
    if (fclose(f) != 0 && rc == CS_OK)
        rc = cs_errorf(err, CS_EIO, "%s: %s", gp, strerror(errno));
    if (rc == CS_OK)
        rc = run_gnuplot(gnuplot, gp, err);
    if (rc == CS_OK)
        fprintf(log, "cellsim plot: %s: wrote %s\n", s->what, png);
    return rc;
}

int sim_plot(const char *csv, const char *dir, const char *gnuplot, FILE *log, int *written,
             cs_error *err)
{
    *written = 0;
    table t;
    CS_TRY(read_csv(csv, &t, err));
    /* The figures' directory is made if missing, as `--out figures/` reads. */
    int mk = cs_mkdir_p(dir, err);
    if (mk != CS_OK) {
        table_free(&t);
        return cs_error_wrap(err, mk, "--out %s", dir);
    }
    int rc = CS_OK;
    bool *use = calloc(t.nrows, sizeof *use);
    if (use == NULL) {
        table_free(&t);
        return cs_errorf(err, CS_ENOMEM, "out of memory");
    }
    for (size_t i = 0; rc == CS_OK && i < sizeof specs / sizeof specs[0]; i++) {
        long ycols[2];
        char why[256];
        const char *no = check_fig(&t, &specs[i], use, ycols, why, sizeof why);
        if (no != NULL) {
            fprintf(log, "cellsim plot: %s: skipped %s.png: %s\n", specs[i].what, specs[i].file, no);
            continue;
        }
        if ((rc = draw(&t, &specs[i], use, ycols, dir, gnuplot, log, err)) == CS_OK)
            (*written)++;
    }
    free(use);
    table_free(&t);
    return rc;
}

int sim_plot_main(int argc, char **argv)
{
    const char *csv = NULL, *dir = ".", *gnuplot = "gnuplot";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = strcmp(a, "--out") == 0 ? &dir : strcmp(a, "--gnuplot") == 0 ? &gnuplot : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            sim_plot_usage(stdout);
            return 0;
        } else if (dst != NULL) {
            if (i + 1 >= argc) {
                fprintf(stderr, "cellsim plot: %s: needs a value\n", a);
                return 2;
            }
            *dst = argv[++i];
        } else if (strncmp(a, "--", 2) == 0 || csv != NULL) {
            fprintf(stderr, "cellsim plot: unexpected argument '%s'\n(cellsim plot --help lists the flags)\n", a);
            return 2;
        } else {
            csv = a;
        }
    }
    if (csv == NULL) {
        fprintf(stderr, "cellsim plot: which RESULTS.csv? (cellsim plot --help)\n");
        return 2;
    }
    cs_error err = {0};
    int written;
    if (sim_plot(csv, dir, gnuplot, stdout, &written, &err) != CS_OK) {
        fprintf(stderr, "cellsim plot: %s\n", err.msg);
        return 1;
    }
    if (written == 0)
        fprintf(stdout, "cellsim plot: no figure could be drawn from %s\n", csv);
    return 0;
}
