/* test_build.c — the set-up a fresh machine relies on: tools/deps.sh names
 * each missing piece (a compiler, libnng, which has no pkg-config file),
 * a failed install, and a user who cannot install; and the Makefile
 * rebuilds what a change of flags affects.
 *
 * Missing pieces are made with stand-ins rather than by removing packages:
 * a compiler name that is not on PATH, a compiler wrapper that cannot see
 * nng's header, an apt-get that fails or installs nothing, no sudo. The
 * suite runs from the checkout (make test's directory). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support.h"

/* An executable script at ts_tmp/name with `body`. */
static void script(const char *name, const char *body, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", ts_tmp, name);
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL);
    fprintf(f, "#!/bin/sh\n%s\n", body);
    fclose(f);
    cr_assert_eq(chmod(path, 0755), 0);
}

Test(build, deps_check_names_a_missing_compiler, .init = ts_tmp_setup, .fini = ts_tmp_teardown)
{
    char out[4096];
    int rc = ts_run("CC=no-such-cc-here sh tools/deps.sh check", out, sizeof out);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "missing: compiler (no-such-cc-here)"), "%s", out);
    /* Without a compiler, headers are looked for where Debian puts them:
     * the compiler is named, and not every header too. */
    cr_assert_null(strstr(out, "msgpack"), "%s", out);
}

Test(build, deps_check_names_libnng_which_has_no_pc_file, .init = ts_tmp_setup, .fini = ts_tmp_teardown)
{
    char cc[400], cmd[1024], out[4096];
    /* A compiler for which nng is not installed: it refuses any input that
     * mentions nng, and is the real compiler otherwise. */
    script("cc-without-nng",
           "in=$(mktemp); cat > \"$in\"; if grep -q nng \"$in\"; then rm -f \"$in\"; exit 1; fi\n"
           "for a; do case $a in -lnng) rm -f \"$in\"; exit 1;; esac; done\n"
           "cc \"$@\" < \"$in\"; rc=$?; rm -f \"$in\"; exit $rc",
           cc, sizeof cc);
    snprintf(cmd, sizeof cmd, "CC=%s sh tools/deps.sh check", cc);
    int rc = ts_run(cmd, out, sizeof out);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "libnng"), "%s", out);
    cr_assert_null(strstr(out, "compiler"), "%s", out);
    cr_assert_null(strstr(out, "lmdb"), "%s", out);
}

Test(build, deps_install_names_a_failed_apt_get_and_what_is_still_missing, .init = ts_tmp_setup,
     .fini = ts_tmp_teardown)
{
    char failing[400], noop[400], cmd[1024], out[4096];
    script("apt-fails", "echo 'E: Unable to locate package' >&2; exit 100", failing,
           sizeof failing);
    script("apt-noop", "exit 0", noop, sizeof noop);
    if (geteuid() != 0)
        cr_skip_test("needs root, which installs without sudo");

    snprintf(cmd, sizeof cmd, "CC=no-such-cc-here DEPS_APT=%s sh tools/deps.sh install", failing);
    int rc = ts_run(cmd, out, sizeof out);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "apt-get failed installing: gcc"), "%s", out);

    snprintf(cmd, sizeof cmd, "CC=no-such-cc-here DEPS_APT=%s sh tools/deps.sh install", noop);
    rc = ts_run(cmd, out, sizeof out);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "still missing after the install: compiler (no-such-cc-here)"), "%s",
              out);
}

Test(build, deps_install_without_root_or_sudo_names_the_command_for_root, .init = ts_tmp_setup,
     .fini = ts_tmp_teardown)
{
    char cmd[1024], out[4096];
    /* As root, drop to nobody for this one command; another user already
     * is one. */
    const char *as_user = geteuid() == 0 ? "setpriv --reuid=65534 --regid=65534 --clear-groups " : "";
    snprintf(cmd, sizeof cmd,
             "%senv CC=no-such-cc-here DEPS_SUDO=no-such-sudo-here sh tools/deps.sh install",
             as_user);
    int rc = ts_run(cmd, out, sizeof out);
    cr_assert_eq(rc, 1, "%s", out);
    /* The last line says what to do. */
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '\n')
        out[--n] = '\0';
    const char *last = strrchr(out, '\n');
    last = last ? last + 1 : out;
    cr_assert(strstr(last, "without sudo; run as root: apt-get update && apt-get install -y gcc"),
              "last line: %s", last);
}

/* Build one small object into a build directory of the test's own; true
 * when make compiled it (false: it was up to date). */
static bool compiled(const char *vars)
{
    char cmd[1024], out[8192];
    snprintf(cmd, sizeof cmd,
             "env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u CI -u SANITIZER -u OPT make --no-print-directory BUILD=%s/b %s "
             "%s/b/cellstate/error.o",
             ts_tmp, vars, ts_tmp);
    cr_assert_eq(ts_run(cmd, out, sizeof out), 0, "%s", out);
    return strstr(out, "-c cellstate/error.c") != NULL;
}

Test(build, a_change_of_flags_rebuilds_what_they_affect, .init = ts_tmp_setup, .fini = ts_tmp_teardown)
{
    cr_assert(compiled(""), "a new build directory compiled nothing");
    cr_assert_not(compiled(""), "the same flags compiled again");
    /* CI=true adds -Werror. */
    cr_assert(compiled("CI=true"), "CI=true did not rebuild");
    cr_assert_not(compiled("CI=true"), "CI=true compiled twice");
    cr_assert(compiled("OPT=-O0"), "another OPT did not rebuild");
}
