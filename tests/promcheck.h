/* promcheck.h — promtool's verdict on a Prometheus text exposition, for the
 * suites that write one (test_promtext, test_prom). Not a suite itself.
 *
 * promtool comes with Debian's `prometheus` package, an optional test tool
 * (tools/deps.sh installs it; CI has it): without it the check is skipped,
 * saying which package to install, and the rest of the test still runs. */
#ifndef CS_TEST_PROMCHECK_H
#define CS_TEST_PROMCHECK_H

#include <stdbool.h>
#include <stddef.h>

/* Whether promtool is on PATH. */
bool ts_have_promtool(void);

/* Run `promtool check metrics` on `text` (borrowed): its exit status, and
 * what it printed in out[0..size). Fails the test when the text cannot be
 * written; call only when ts_have_promtool(). */
int ts_promtool_run(const char *text, char *out, size_t size);

/* Pipe `text` (borrowed) into `promtool check metrics` and fail the test,
 * with promtool's words, unless it exits 0 with nothing to say (its linter
 * prints each problem, e.g. a counter without _total, and still exits 0
 * for some). Skips the test, naming the package, when promtool is absent. */
void ts_promtool_check(const char *text);

#endif
