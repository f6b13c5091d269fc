/* paths.c — default state directories (see paths.h). */
#include "cellstate/paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cs_default_state_path(const char *leaf, const char *xdg_state_home, const char *home,
                          bool root, const char *flag, char *out, size_t size, cs_error *err)
{
    int n;
    /* XDG: a relative $XDG_STATE_HOME is invalid and to be ignored. */
    if (xdg_state_home != NULL && xdg_state_home[0] == '/')
        n = snprintf(out, size, "%s/cellsched/%s", xdg_state_home, leaf);
    else if (root)
        n = snprintf(out, size, "/var/lib/cellsched/%s", leaf);
    else if (home != NULL && home[0] == '/')
        n = snprintf(out, size, "%s/.local/state/cellsched/%s", home, leaf);
    else
        return cs_errorf(err, CS_EINVAL,
                         "no default directory: neither XDG_STATE_HOME nor HOME is an absolute "
                         "path; give %s",
                         flag);
    if (n < 0 || (size_t)n >= size)
        return cs_errorf(err, CS_EINVAL, "the default directory is too long; give %s", flag);
    return CS_OK;
}

int cs_default_state_path_env(const char *leaf, const char *flag, char *out, size_t size,
                              cs_error *err)
{
    return cs_default_state_path(leaf, getenv("XDG_STATE_HOME"), getenv("HOME"), geteuid() == 0,
                                 flag, out, size, err);
}

int cs_mkdir_p(const char *path, cs_error *err)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return cs_errorf(err, CS_EINVAL, "path too long: %s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return cs_errorf(err, CS_EIO, "mkdir %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return cs_errorf(err, CS_EIO, "mkdir %s: %s", buf, strerror(errno));
    return CS_OK;
}
