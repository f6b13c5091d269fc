/* test_fuzz.c — `make fuzz` fails on every kind of finding: a planted bug
 * (tests/fuzz/fuzz.h, fz_planted) in the fuzz_policy target — a heap
 * overflow (ASan), a signed overflow (UBSan), a leak (LeakSanitizer), a
 * broken property (fz_require) — turns `make fuzz` non-zero, and the
 * failure line names the input, kept under FUZZ_OUT/crashes/ with the
 * planted bytes. So a Makefile or runner that stopped passing the
 * sanitizers, stopped reading libFuzzer's exit status or stopped keeping
 * the input fails here. And a target that finds nothing passes.
 *
 * Each run is FUZZ_SECONDS=0 (the seeds only, -runs=0) on a corpus of one
 * file written here, so it takes a second once build/fuzz is built (the
 * first run builds it: about a minute). Without clang and libFuzzer
 * (tools/deps.sh check fuzz; ./test.sh installs them) these are skipped;
 * that check itself is tested last. The suite runs from the checkout
 * (make test's directory). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/fuzz/fuzz.h"
#include "tests/support.h"

static void need_libfuzzer(void)
{
    char out[1024];
    if (ts_run("sh tools/deps.sh check fuzz", out, sizeof out) != 0)
        cr_skip_test("no clang with libFuzzer (%s): ./test.sh installs it", out);
}

/* make fuzz on fuzz_policy with the seed `input` only, planted bugs on;
 * its exit status, its output in out. */
static int fuzz_policy_on(const char *input, char *out, size_t size)
{
    char dir[512], path[600], cmd[2048];
    snprintf(dir, sizeof dir, "%s/corpus/policy", ts_tmp);
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(path, sizeof path, "%s/seed", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL);
    fputs(input, f);
    fclose(f);
    /* One make at a time in build/fuzz: Criterion runs two tests at once,
     * and the first builds the targets. The suites' sanitizer options are
     * not the fuzz targets'. */
    /* The first run also builds every object (tens of KiB of compiler
     * lines): only the end of make's output, where the runner reports, is
     * kept, with make's status. */
    snprintf(cmd, sizeof cmd,
             "mkdir -p build && flock build/.fuzz.lock env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL "
             "-u ASAN_OPTIONS -u UBSAN_OPTIONS -u LSAN_OPTIONS %s=1 make --no-print-directory "
             "fuzz FUZZ_TARGETS=policy FUZZ_SECONDS=0 FUZZ_OUT=%s/out FUZZ_CORPUS=%s/corpus "
             ">%s/make.log 2>&1; rc=$?; tail -c %zu %s/make.log; exit $rc",
             FZ_PLANT_ENV, ts_tmp, ts_tmp, ts_tmp, size / 2, ts_tmp);
    return ts_run(cmd, out, size);
}

/* The failure line names the kept input: FUZZ_OUT/crashes/policy-...;
 * it holds the planted bytes. */
static void kept(const char *out, const char *input)
{
    char prefix[600];
    snprintf(prefix, sizeof prefix, "input %s/out/crashes/policy-", ts_tmp);
    const char *at = strstr(out, prefix);
    cr_assert(at != NULL, "no kept input named: %s", out);
    char path[700];
    at += strlen("input ");
    size_t n = strcspn(at, ", \n");
    cr_assert(n < sizeof path);
    memcpy(path, at, n);
    path[n] = '\0';
    FILE *f = fopen(path, "r");
    cr_assert(f != NULL, "%s is not there", path);
    char buf[64] = {0};
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    cr_assert_eq(got, strlen(input));
    cr_assert_str_eq(buf, input);
}

static void fails_on(const char *input, const char *report)
{
    need_libfuzzer();
    char out[16384];
    int rc = fuzz_policy_on(input, out, sizeof out);
    cr_assert_neq(rc, 0, "make fuzz passed on %s: %s", input, out);
    cr_assert(strstr(out, "fuzz: policy") && strstr(out, "FAILED"), "%s", out);
    cr_assert(strstr(out, report), "no '%s' in: %s", report, out);
    kept(out, input);
}

Test(fuzz, a_target_that_finds_nothing_passes, .init = ts_tmp_setup, .fini = ts_tmp_teardown)
{
    need_libfuzzer();
    char out[16384];
    int rc = fuzz_policy_on("{\"kind\": \"Policy\", \"apiVersion\": \"v1\"}", out, sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "fuzz: policy") && strstr(out, " ok: "), "%s", out);
}

Test(fuzz, a_heap_overflow_fails_make_fuzz, .init = ts_tmp_setup, .fini = ts_tmp_teardown)
{
    fails_on("plant:overflow", "heap-buffer-overflow");
}

Test(fuzz, undefined_behaviour_fails_make_fuzz, .init = ts_tmp_setup, .fini = ts_tmp_teardown)
{
    fails_on("plant:ub", "runtime error: signed integer overflow");
}

Test(fuzz, a_leak_fails_make_fuzz, .init = ts_tmp_setup, .fini = ts_tmp_teardown)
{
    fails_on("plant:leak", "detected memory leaks");
}

Test(fuzz, a_broken_property_fails_make_fuzz, .init = ts_tmp_setup, .fini = ts_tmp_teardown)
{
    fails_on("plant:require", "planted: a broken property");
}

Test(fuzz, deps_check_fuzz_names_a_missing_clang_and_how_to_install_it, .init = ts_tmp_setup,
     .fini = ts_tmp_teardown)
{
    char out[4096];
    int rc = ts_run("FUZZ_CC=no-such-clang-here sh tools/deps.sh check fuzz", out, sizeof out);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "missing: clang (no-such-clang-here), libFuzzer"), "%s", out);
    cr_assert(strstr(out, "tools/deps.sh install fuzz"), "%s", out);
    /* The base pieces are not the fuzz group's business. */
    cr_assert_null(strstr(out, "msgpack"), "%s", out);
}
