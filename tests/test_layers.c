/* test_layers.c — the tree keeps its architecture: tools/layers.sh passes
 * on the checkout and names an #include that points back up, and the
 * daemons that read no JSON (cellstated, cell-agent) do not link jansson.
 *
 * The suite runs from the checkout (make test's directory). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "tests/support.h"

static char tmp[256];

static void setup(void)
{
    cr_assert_eq(ts_mkdtemp(tmp, sizeof tmp), 0);
}

static void teardown(void)
{
    if (tmp[0])
        ts_rmtree(tmp);
}

/* Run `cmd` under sh, stdout and stderr into out; its exit status. */
static int run(const char *cmd, char *out, size_t size)
{
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    cr_assert(p != NULL);
    size_t n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp, dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", tmp, dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL);
    fputs(text, f);
    fclose(f);
}

Test(layers, the_checkout_has_no_include_pointing_up)
{
    char out[8192];
    int rc = run("sh tools/layers.sh .", out, sizeof out);
    cr_assert_eq(rc, 0, "tools/layers.sh found: %s", out);
    cr_assert_str_empty(out);
}

Test(layers, an_include_pointing_up_is_named_with_its_line, .init = setup, .fini = teardown)
{
    /* The store must not know the server, nor txn the wire; an agent may
     * use the codec but not the schedulers. Includes that point down, into
     * the same folder, or at system headers pass. */
    write_file("cellstate", "store.c",
               "#include <stdio.h>\n#include \"cellstate/record.h\"\n#include \"server/server.h\"\n");
    write_file("txn", "commit.c", "#include \"cellstate/store.h\"\n#include \"proto/proto.h\"\n");
    write_file("agent", "loop.c",
               "#include \"proto/proto.h\"\n#include \"agent/loop.h\"\n"
               "  #  include \"schedulers/sched.h\"\n");
    write_file("server", "writer.c", "#include \"txn/command.h\"\n#include \"proto/proto.h\"\n");
    write_file("tools", "any.c", "#include \"server/server.h\"\n#include \"agent/loop.h\"\n");
    char cmd[512], out[8192];
    snprintf(cmd, sizeof cmd, "sh tools/layers.sh %s", tmp);
    cr_assert_eq(run(cmd, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "cellstate/store.c:3: cellstate may not include server/server.h"), "%s", out);
    cr_assert(strstr(out, "txn/commit.c:2: txn may not include proto/proto.h"), "%s", out);
    cr_assert(strstr(out, "agent/loop.c:3: agent may not include schedulers/sched.h"), "%s", out);
    cr_assert_null(strstr(out, "writer.c"), "%s", out);
    cr_assert_null(strstr(out, "tools/"), "%s", out);
    cr_assert_null(strstr(out, "record.h"), "%s", out);
}

/* Whether ELF `bin` names `lib` among the libraries it needs. */
static bool needs(const char *bin, const char *lib)
{
    char path[512], cmd[1024], out[8192];
    ts_bin(bin, path, sizeof path);
    snprintf(cmd, sizeof cmd, "readelf -d '%s'", path);
    cr_assert_eq(run(cmd, out, sizeof out), 0, "readelf: %s", out);
    cr_assert(strstr(out, "NEEDED"), "%s names no library: %s", bin, out);
    return strstr(out, lib) != NULL;
}

Test(layers, only_what_reads_json_links_jansson)
{
    cr_assert_not(needs("cellstated", "libjansson"), "cellstated links jansson");
    cr_assert_not(needs("cell-agent", "libjansson"), "cell-agent links jansson");
    /* The check can see jansson where it is used: cellctl reads job specs. */
    cr_assert(needs("cellctl", "libjansson"), "cellctl does not link jansson");
}
