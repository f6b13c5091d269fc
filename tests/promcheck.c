/* promcheck.c — promtool's verdict on an exposition (see promcheck.h). */
#include "tests/promcheck.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support.h"

bool ts_have_promtool(void)
{
    return system("command -v promtool >/dev/null 2>&1") == 0;
}

int ts_promtool_run(const char *text, char *out, size_t size)
{
    char dir[256], path[300], cmd[400];
    cr_assert_eq(ts_mkdtemp(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/metrics.txt", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "writing %s", path);
    bool written = fputs(text, f) >= 0;
    written = fclose(f) == 0 && written;
    cr_assert(written, "writing %s", path);
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s'", path);
    int rc = ts_run(cmd, out, size);
    ts_rmtree(dir);
    return rc;
}

void ts_promtool_check(const char *text)
{
    if (!ts_have_promtool())
        cr_skip_test("promtool is not installed (Debian: prometheus; tools/deps.sh installs it)");
    char out[8192];
    int rc = ts_promtool_run(text, out, sizeof out);
    cr_assert_eq(rc, 0, "promtool check metrics exited %d:\n%s", rc, out);
    cr_assert_eq(out[0], '\0', "promtool check metrics found problems:\n%s", out);
}
