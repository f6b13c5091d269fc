/* test_paths.c — default state directories (cellstate/paths.h): never the
 * current directory; XDG_STATE_HOME, then /var/lib for root, then
 * ~/.local/state. */
#include <criterion/criterion.h>
#include <string.h>

#include "cellstate/paths.h"

Test(paths, prefer_xdg_state_home_then_var_lib_for_root_then_home)
{
    char d[256];
    cs_error err = {0};
    cr_assert_eq(cs_default_state_path("agent-m1", "/st", "/home/u", false, "--workdir", d,
                                       sizeof d, &err),
                 CS_OK);
    cr_assert_str_eq(d, "/st/cellsched/agent-m1");
    cr_assert_eq(cs_default_state_path("cell", "/st", "/root", true, "--data", d, sizeof d, &err),
                 CS_OK);
    cr_assert_str_eq(d, "/st/cellsched/cell");
    cr_assert_eq(cs_default_state_path("cell", NULL, "/root", true, "--data", d, sizeof d, &err),
                 CS_OK);
    cr_assert_str_eq(d, "/var/lib/cellsched/cell");
    cr_assert_eq(cs_default_state_path("agent-m2", NULL, "/home/u", false, "--workdir", d,
                                       sizeof d, &err),
                 CS_OK);
    cr_assert_str_eq(d, "/home/u/.local/state/cellsched/agent-m2");
    /* A relative XDG_STATE_HOME is to be ignored (XDG), not taken as the
     * current directory. */
    cr_assert_eq(cs_default_state_path("agent-m2", "state", "/home/u", false, "--workdir", d,
                                       sizeof d, &err),
                 CS_OK);
    cr_assert_str_eq(d, "/home/u/.local/state/cellsched/agent-m2");
}

Test(paths, without_an_absolute_home_the_flag_is_named)
{
    char d[256];
    cs_error err = {0};
    cr_assert_eq(cs_default_state_path("cell", NULL, NULL, false, "--data", d, sizeof d, &err),
                 CS_EINVAL);
    cr_assert(strstr(err.msg, "give --data"), "%s", err.msg);
    cr_assert_eq(cs_default_state_path("cell", "", "relative", false, "--data", d, sizeof d, &err),
                 CS_EINVAL);
    char small[16];
    cr_assert_eq(cs_default_state_path("agent-m1", "/st", NULL, false, "--workdir", small,
                                       sizeof small, &err),
                 CS_EINVAL);
    cr_assert(strstr(err.msg, "too long") && strstr(err.msg, "--workdir"), "%s", err.msg);
}
