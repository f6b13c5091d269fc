/* paths.h — where the daemons keep their state when the operator names no
 * directory.
 *
 * Never the current directory: it is often a checkout, and a daemon started
 * there with its defaults used to leave folders in the source tree. The
 * choice follows the XDG base directories and the FHS: $XDG_STATE_HOME when
 * set, /var/lib for root, else ~/.local/state, each with cellsched/ below.
 */
#ifndef CS_PATHS_H
#define CS_PATHS_H

#include <stdbool.h>
#include <stddef.h>

#include "cellstate/error.h"

/* The default path of `leaf` (e.g. "cell", "agent-m1") into out[0..size):
 * $XDG_STATE_HOME/cellsched/LEAF when that variable is an absolute path,
 * else /var/lib/cellsched/LEAF for root, else
 * $HOME/.local/state/cellsched/LEAF. The environment values are passed in
 * (NULL: unset) so that the choice is checked without touching the
 * process's own. CS_EINVAL naming `flag`, the option to give instead, when
 * none applies (no absolute HOME) or the path does not fit. */
int cs_default_state_path(const char *leaf, const char *xdg_state_home, const char *home,
                          bool root, const char *flag, char *out, size_t size, cs_error *err);

/* The same from this process's environment and effective user. */
int cs_default_state_path_env(const char *leaf, const char *flag, char *out, size_t size,
                              cs_error *err);

/* Make directory `path` and its missing parents (mode 0755). An existing
 * directory is fine. CS_EIO naming the one that could not be made. */
int cs_mkdir_p(const char *path, cs_error *err);

#endif
