/* simconf.h — cellsim settings for the cellsim suites (test_cellsim,
 * test_cellsim_replay): "key=value" strings set as the command line would,
 * each failure an assertion naming the setting. Header-only, so that only
 * the suites that include it link cellsim's modules. */
#ifndef TESTS_SIMCONF_H
#define TESTS_SIMCONF_H

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tools/cellsim_conf.h"

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
