/* simconf.h — for the cellsim suites (test_cellsim, test_cellsim_replay,
 * test_cellsim_sweep): cellsim settings as "key=value" strings set as the
 * command line would, each failure an assertion naming the setting, and a
 * run of the bin/cellsim binary. Header-only, so that only the suites that
 * include it link cellsim's modules. */
#ifndef TESTS_SIMCONF_H
#define TESTS_SIMCONF_H

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tools/cellsim_conf.h"

/* From tests/support.h (which has no include guard: declared again here). */
void ts_bin(const char *name, char *out, size_t size);
int ts_run(const char *cmd, char *out, size_t size);

/* Run bin/cellsim with `args` (a shell word list, borrowed): its exit
 * status, its output (stdout and stderr) in out[0..size). */
static inline int ts_cellsim(const char *args, char *out, size_t size)
{
    char bin[256], cmd[1024];
    ts_bin("cellsim", bin, sizeof bin);
    snprintf(cmd, sizeof cmd, "'%s' %s", bin, args);
    return ts_run(cmd, out, size);
}

/* Set each "key=value" of `ap` (NULL-ended, borrowed) on *c. */
static inline void ts_sim_conf_set(sim_conf *c, const char *first, va_list ap)
{
    cs_error err = {0};
    for (const char *kv = first; kv != NULL; kv = va_arg(ap, const char *)) {
        char key[64];
        const char *eq = strchr(kv, '=');
        cr_assert_not_null(eq, "%s", kv);
        snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
        cr_assert_eq(sim_conf_set(c, key, eq + 1, &err), CS_OK, "%s: %s", kv, err.msg);
    }
}

#endif
