/* test_install.c — `make install` and `make uninstall` as a Debian package
 * uses them (PREFIX=/usr, DESTDIR a staging directory): every program and
 * man page lands where it should with the right mode, each page renders
 * without a warning from man (or groff), each page's OPTIONS name every
 * long option its program's --help prints (so that the pages cannot drift
 * from the programs), the systemd units pass systemd-analyze verify,
 * cellctl's bash completion offers every command and option of cellctl
 * --help, and uninstall removes exactly what install put.
 *
 * The suite runs from the checkout (make test's directory). It installs the
 * binaries make test built ($CELLSCHED_BIN, else bin/) with `make -o`, so
 * that installing never rebuilds them. */
#include <criterion/criterion.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/support.h"

static const char *const daemons[] = {"cellstated", "cell-agent", "cell-batch", "cell-service"};
static const char *const tools[] = {"cellctl", "cellbench", "cellsim"};
#define NDAEMONS (sizeof daemons / sizeof daemons[0])
#define NTOOLS (sizeof tools / sizeof tools[0])

/* The directory of the binaries under test. */
static void bin_dir(char *out, size_t size)
{
    char path[1024];
    ts_bin("cellstated", path, sizeof path);
    snprintf(out, size, "%s", dirname(path));
}

/* Run `make GOAL DESTDIR=destdir PREFIX=prefix` on the binaries under
 * test, outside make test's own make (its MAKEFLAGS and jobserver are not
 * this make's); fails the test unless it exits 0. */
static void make_goal_in(const char *goal, const char *destdir, const char *prefix)
{
    char bin[1024], cmd[8192], out[16384];
    bin_dir(bin, sizeof bin);
    int n = snprintf(cmd, sizeof cmd,
                     "env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u SANITIZER make --no-print-directory %s "
                     "DESTDIR='%s' PREFIX='%s' BIN=%s",
                     goal, destdir, prefix, bin);
    for (size_t i = 0; i < NDAEMONS + NTOOLS; i++)
        n += snprintf(cmd + n, sizeof cmd - (size_t)n, " -o %s/%s", bin,
                      i < NDAEMONS ? daemons[i] : tools[i - NDAEMONS]);
    cr_assert_lt((size_t)n, sizeof cmd);
    int rc = ts_run(cmd, out, sizeof out);
    cr_assert_eq(rc, 0, "make %s exited %d:\n%s", goal, rc, out);
}

/* The same into ts_tmp/stage with PREFIX=/usr, as a Debian package stages. */
static void make_goal(const char *goal)
{
    char stage[512];
    snprintf(stage, sizeof stage, "%s/stage", ts_tmp);
    make_goal_in(goal, stage, "/usr");
}

/* Whether the file at `path` holds `text`. */
static bool file_has(const char *path, const char *text)
{
    FILE *f = fopen(path, "r");
    cr_assert(f != NULL, "cannot open %s", path);
    char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strstr(buf, text) != NULL;
}

/* Assert that `path` is a regular file with mode `mode`. */
static void assert_file(const char *path, mode_t mode)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s was not installed", path);
    cr_assert(S_ISREG(st.st_mode), "%s is not a file", path);
    cr_assert_eq(st.st_mode & 07777, mode, "%s has mode %o", path, st.st_mode & 07777);
}

/* The installed path of page `name`.`sec`. */
static void page_path(const char *name, int sec, char *out, size_t size)
{
    snprintf(out, size, "%s/stage/usr/share/man/man%d/%s.%d", ts_tmp, sec, name, sec);
}

/* Every regular file under ts_tmp/stage, one path a line, sorted. */
static void stage_files(char *out, size_t size)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd %s/stage && find . -type f | LC_ALL=C sort", ts_tmp);
    cr_assert_eq(ts_run(cmd, out, size), 0, "%s", out);
}

Test(install, puts_every_program_and_page_in_place, .init = ts_tmp_setup, .fini = ts_tmp_teardown)
{
    make_goal("install");
    char path[1024], cmd[1200], out[8192];
    for (size_t i = 0; i < NDAEMONS + NTOOLS; i++) {
        const char *name = i < NDAEMONS ? daemons[i] : tools[i - NDAEMONS];
        snprintf(path, sizeof path, "%s/stage/usr/bin/%s", ts_tmp, name);
        assert_file(path, 0755);
        /* The program itself, not a stand-in: it runs and answers --help. */
        snprintf(cmd, sizeof cmd, "%s --help", path);
        cr_assert_eq(ts_run(cmd, out, sizeof out), 0, "%s --help: %s", path, out);
        cr_assert(strstr(out, "usage: "), "%s --help: %s", path, out);

        page_path(name, i < NDAEMONS ? 8 : 1, path, sizeof path);
        assert_file(path, 0644);
    }
    /* The daemons' units, each starting its program where it was installed. */
    for (size_t i = 0; i < NDAEMONS; i++) {
        char exec[256];
        snprintf(path, sizeof path, "%s/stage/usr/lib/systemd/system/%s.service", ts_tmp, daemons[i]);
        assert_file(path, 0644);
        snprintf(exec, sizeof exec, "\nExecStart=/usr/bin/%s ", daemons[i]);
        cr_assert(file_has(path, exec), "%s does not start /usr/bin/%s", path, daemons[i]);
        cr_assert(file_has(path, "\nEnvironmentFile=-/etc/default/cellsched\n"), "%s", path);
    }
    snprintf(path, sizeof path, "%s/stage/usr/share/doc/cellsched/cellsched.default", ts_tmp);
    assert_file(path, 0644);
    snprintf(path, sizeof path, "%s/stage/usr/share/bash-completion/completions/cellctl", ts_tmp);
    assert_file(path, 0644);
}

/* How pages are rendered: man (man-db), else groff, else neither. */
typedef enum renderer { R_NONE, R_MAN, R_GROFF } renderer;

static renderer find_renderer(void)
{
    char out[256];
    if (ts_run("command -v man", out, sizeof out) == 0)
        return R_MAN;
    if (ts_run("command -v groff", out, sizeof out) == 0)
        return R_GROFF;
    return R_NONE;
}

/* Render `file`, its output thrown away; its warnings (empty when none)
 * into out. Returns the exit status. The braces keep ts_run's 2>&1 from
 * sending stderr after stdout into /dev/null. */
static int render(renderer r, const char *file, char *out, size_t size)
{
    char cmd[2048];
    if (r == R_MAN)
        snprintf(cmd, sizeof cmd, "{ MANWIDTH=80 man --warnings -l '%s' >/dev/null; }", file);
    else
        snprintf(cmd, sizeof cmd, "groff -man -ww -z '%s'", file);
    return ts_run(cmd, out, size);
}

Test(install, every_page_renders_without_warnings, .init = ts_tmp_setup, .fini = ts_tmp_teardown)
{
    renderer r = find_renderer();
    if (r == R_NONE)
        cr_skip_test("neither man nor groff is installed (Debian: man-db)");
    make_goal("install");
    char path[1024], out[8192];
    /* The check itself sees a warning: a page calling an undefined macro. */
    snprintf(path, sizeof path, "%s/broken.1", ts_tmp);
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL);
    fputs(".TH BROKEN 1\n.SH NAME\nbroken \\- a page\n.NOSUCHMACRO x\n", f);
    fclose(f);
    render(r, path, out, sizeof out);
    cr_assert(strstr(out, "NOSUCHMACRO"), "an undefined macro gave no warning: %s", out);

    for (size_t i = 0; i < NDAEMONS + NTOOLS; i++) {
        const char *name = i < NDAEMONS ? daemons[i] : tools[i - NDAEMONS];
        page_path(name, i < NDAEMONS ? 8 : 1, path, sizeof path);
        int rc = render(r, path, out, sizeof out);
        cr_assert_eq(rc, 0, "rendering %s exited %d: %s", path, rc, out);
        cr_assert_eq(out[0], '\0', "%s renders with warnings:\n%s", path, out);
    }
}

/* The text of `path` from `.SH from` up to `.SH to` (exclusive), with the
 * roff escapes for hyphens and fonts taken out, into a malloc'd string. */
static char *section_text(const char *path, const char *from, const char *to)
{
    FILE *f = fopen(path, "r");
    cr_assert(f != NULL, "cannot open %s", path);
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap), line[4096];
    cr_assert(text != NULL);
    bool in = false;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, ".SH ", 4) == 0) {
            if (strncmp(line + 4, from, strlen(from)) == 0)
                in = true;
            else if (strncmp(line + 4, to, strlen(to)) == 0)
                in = false;
        }
        if (!in)
            continue;
        for (const char *p = line; *p; p++) {
            if (p[0] == '\\' && p[1] == '-') {
                p++;
            } else if (p[0] == '\\' && p[1] == 'f' && p[2] != '\0') {
                p += 2;
                continue;
            }
            if (len + 2 > cap) {
                cap *= 2;
                text = realloc(text, cap);
                cr_assert(text != NULL);
            }
            text[len++] = *p;
        }
    }
    fclose(f);
    text[len] = '\0';
    return text;
}

/* Whether `opt` occurs in `text` as a whole option (not as the start of a
 * longer one: --retry in --retry-ms does not count). */
static bool mentions(const char *text, const char *opt)
{
    size_t n = strlen(opt);
    for (const char *p = strstr(text, opt); p; p = strstr(p + 1, opt)) {
        char next = p[n];
        if (!((next >= 'a' && next <= 'z') || (next >= '0' && next <= '9') || next == '-'))
            return true;
    }
    return false;
}

/* Each long option (--[a-z][a-z0-9-]*) that `args --help` prints must be
 * in the page's OPTIONS (for cellctl, whose commands take their own
 * options, in COMMANDS and OPTIONS). Returns how many options it checked. */
static int check_help_against_page(const char *args, const char *page)
{
    char bin[1024], cmd[2048], out[32768], missing[4096] = "";
    bin_dir(bin, sizeof bin);
    snprintf(cmd, sizeof cmd, "%s/%s --help", bin, args);
    cr_assert_eq(ts_run(cmd, out, sizeof out), 0, "%s: %s", cmd, out);
    char *text = section_text(page, strstr(page, "cellctl") ? "COMMANDS" : "OPTIONS", "EXIT STATUS");
    cr_assert_neq(text[0], '\0', "%s has no OPTIONS section", page);
    int checked = 0;
    for (const char *p = out; (p = strstr(p, "--")) != NULL;) {
        const char *q = p + 2;
        if (!(*q >= 'a' && *q <= 'z')) {
            p = q;
            continue;
        }
        while ((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '-')
            q++;
        char opt[128];
        snprintf(opt, sizeof opt, "%.*s", (int)(q - p), p);
        checked++;
        if (!mentions(text, opt) && !strstr(missing, opt)) {
            strncat(missing, " ", sizeof missing - strlen(missing) - 1);
            strncat(missing, opt, sizeof missing - strlen(missing) - 1);
        }
        p = q;
    }
    free(text);
    cr_expect_eq(missing[0], '\0', "%s does not list%s (from %s --help)", page, missing, args);
    return checked;
}

Test(install, every_page_lists_every_long_option_of_its_help)
{
    char path[1024];
    for (size_t i = 0; i < NDAEMONS + NTOOLS; i++) {
        const char *name = i < NDAEMONS ? daemons[i] : tools[i - NDAEMONS];
        snprintf(path, sizeof path, "man/%s.%d", name, i < NDAEMONS ? 8 : 1);
        cr_assert_gt(check_help_against_page(name, path), 0, "%s --help has no long option", name);
    }
    cr_assert_gt(check_help_against_page("cellsim sweep", "man/cellsim.1"), 0);
    cr_assert_gt(check_help_against_page("cellsim plot", "man/cellsim.1"), 0);
}

Test(install, the_check_finds_an_option_a_page_lacks, .init = ts_tmp_setup, .fini = ts_tmp_teardown)
{
    /* A page whose only option is a longer one than --listen. */
    char path[1024];
    snprintf(path, sizeof path, "%s/cellstated.8", ts_tmp);
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL);
    fputs(".TH CELLSTATED 8\n.SH OPTIONS\n.TP\n\\fB\\-\\-listen\\-more\\fR\n.SH EXIT STATUS\n", f);
    fclose(f);
    char *text = section_text(path, "OPTIONS", "EXIT STATUS");
    cr_assert(mentions(text, "--listen-more"));
    cr_assert_not(mentions(text, "--listen"), "--listen-more counted as --listen");
    free(text);
}

Test(install, uninstall_removes_exactly_what_install_put, .init = ts_tmp_setup, .fini = ts_tmp_teardown)
{
    make_goal("install");
    char files[8192], path[1024];
    stage_files(files, sizeof files);
    size_t lines = 0;
    for (const char *p = files; *p; p++)
        lines += *p == '\n';
    cr_assert_eq(lines, NDAEMONS * 3 + NTOOLS * 2 + 2, "installed:\n%s", files);

    /* Someone else's file beside them stays. */
    snprintf(path, sizeof path, "%s/stage/usr/bin/other", ts_tmp);
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL);
    fclose(f);

    make_goal("uninstall");
    stage_files(files, sizeof files);
    cr_assert_str_eq(files, "./usr/bin/other\n", "left after uninstall:\n%s", files);
}

Test(install, units_pass_systemd_analyze_verify, .init = ts_tmp_setup, .fini = ts_tmp_teardown)
{
    char out[8192], cmd[2048], path[1024];
    if (ts_run("command -v systemd-analyze", out, sizeof out) != 0)
        cr_skip_test("systemd-analyze is not installed (Debian: systemd)");
    /* Installed for real under a prefix of the test's own, without DESTDIR,
     * so that each unit's ExecStart= names a program that exists. */
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s/prefix", ts_tmp);
    make_goal_in("install", "", prefix);

    /* The check itself sees a mistake: a key systemd does not know. */
    snprintf(path, sizeof path, "%s/broken.service", ts_tmp);
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL);
    fprintf(f, "[Service]\nExecStart=%s/bin/cellctl --help\nNoSuchKey=1\n", prefix);
    fclose(f);
    snprintf(cmd, sizeof cmd, "systemd-analyze verify --man=no '%s'", path);
    ts_run(cmd, out, sizeof out);
    cr_assert(strstr(out, "NoSuchKey"), "an unknown key gave no complaint: %s", out);

    for (size_t i = 0; i < NDAEMONS; i++) {
        snprintf(path, sizeof path, "%s/lib/systemd/system/%s.service", prefix, daemons[i]);
        snprintf(cmd, sizeof cmd, "systemd-analyze verify --man=no '%s'", path);
        int rc = ts_run(cmd, out, sizeof out);
        cr_assert_eq(rc, 0, "%s: exit %d: %s", path, rc, out);
        cr_assert_eq(out[0], '\0', "%s:\n%s", path, out);
    }
}

/* What the installed completion offers for the words `words` (the last
 * one being completed), space-separated, into out. */
static void complete(const char *script, const char *words, char *out, size_t size)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "bash -c 'source \"$0\"; COMP_WORDS=(%s); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); "
             "_cellctl; printf \" %%s \" \"${COMPREPLY[*]}\"' '%s'",
             words, script);
    cr_assert_eq(ts_run(cmd, out, size), 0, "%s: %s", words, out);
}

Test(install, completion_offers_every_command_and_option_of_cellctl_help, .init = ts_tmp_setup,
     .fini = ts_tmp_teardown)
{
    char out[4096], help[8192], script[1024], bin[1024], cmd[2048], want[160];
    if (ts_run("command -v bash", out, sizeof out) != 0)
        cr_skip_test("bash is not installed");
    make_goal("install");
    snprintf(script, sizeof script, "%s/stage/usr/share/bash-completion/completions/cellctl", ts_tmp);

    /* Words, values and the command after global options. */
    complete(script, "cellctl ge", out, sizeof out);
    cr_assert_str_eq(out, " get ");
    complete(script, "cellctl --server tcp://h:1 get \"\"", out, sizeof out);
    cr_assert_str_eq(out, " machines jobs tasks ");
    complete(script, "cellctl get tasks --state r", out, sizeof out);
    cr_assert_str_eq(out, " running ");
    complete(script, "cellctl -o j", out, sizeof out);
    cr_assert_str_eq(out, " json ");

    /* Every command of cellctl --help, and each option on its line. */
    bin_dir(bin, sizeof bin);
    snprintf(cmd, sizeof cmd, "%s/cellctl --help", bin);
    cr_assert_eq(ts_run(cmd, help, sizeof help), 0, "%s", help);
    char *cmds = strstr(help, "commands:\n"), *end = strstr(help, "options of every command:");
    cr_assert(cmds && end && cmds < end, "cellctl --help changed its form: %s", help);
    *end = '\0';
    int ncommands = 0;
    for (char *line = strchr(cmds, '\n') + 1, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        next = next ? next + 1 : NULL;
        char name[64];
        if (sscanf(line, " %63[a-z]", name) != 1)
            continue;
        ncommands++;
        snprintf(cmd, sizeof cmd, "cellctl %s", name);
        complete(script, cmd, out, sizeof out);
        snprintf(want, sizeof want, " %s ", name);
        cr_expect(strstr(out, want), "'%s' does not offer %s: %s", cmd, name, out);

        snprintf(cmd, sizeof cmd, "cellctl %s -", name);
        complete(script, cmd, out, sizeof out);
        char *eol = strchr(line, '\n');
        for (char *p = line; (p = strstr(p, "--")) && (!eol || p < eol);) {
            char opt[64];
            if (sscanf(p, "%63[a-z-]", opt) == 1) {
                snprintf(want, sizeof want, " %s ", opt);
                cr_expect(strstr(out, want), "'%s' does not offer %s: %s", cmd, opt, out);
            }
            p += 2;
        }
    }
    cr_assert_gt(ncommands, 10, "found %d commands in cellctl --help", ncommands);
}
