/* test_layers.c — the tree keeps its architecture: tools/layers.sh passes
 * on the checkout and names an #include that points back up, and the
 * daemon that reads no JSON (cell-agent) does not link jansson.
 *
 * The suite runs from the checkout (make test's directory). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "tests/support.h"

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", ts_tmp, dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", ts_tmp, dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL);
    fputs(text, f);
    fclose(f);
}

Test(layers, the_checkout_has_no_include_pointing_up)
{
    char out[8192];
    int rc = ts_run("sh tools/layers.sh .", out, sizeof out);
    cr_assert_eq(rc, 0, "tools/layers.sh found: %s", out);
    cr_assert_str_empty(out);
}

Test(layers, an_include_pointing_up_is_named_with_its_line, .init = ts_tmp_setup, .fini = ts_tmp_teardown)
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
    /* The HTTP gateway is a client of the server's protocol, never of its
     * internals; only cellstated's main wires the two. */
    write_file("http", "gateway.c", "#include \"spec/celljson.h\"\n#include \"server/internal.h\"\n");
    write_file("server", "cellstated.c", "#include \"http/gateway.h\"\n");
    write_file("server", "reads.c", "#include \"http/api.h\"\n");
    char cmd[512], out[8192];
    snprintf(cmd, sizeof cmd, "sh tools/layers.sh %s", ts_tmp);
    cr_assert_eq(ts_run(cmd, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "cellstate/store.c:3: cellstate may not include server/server.h"), "%s", out);
    cr_assert(strstr(out, "txn/commit.c:2: txn may not include proto/proto.h"), "%s", out);
    cr_assert(strstr(out, "agent/loop.c:3: agent may not include schedulers/sched.h"), "%s", out);
    cr_assert(strstr(out, "http/gateway.c:2: http may not include server/internal.h"), "%s", out);
    cr_assert(strstr(out, "server/reads.c:1: server may not include http/api.h"), "%s", out);
    cr_assert_null(strstr(out, "cellstated.c"), "%s", out);
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
    cr_assert_eq(ts_run(cmd, out, sizeof out), 0, "readelf: %s", out);
    cr_assert(strstr(out, "NEEDED"), "%s names no library: %s", bin, out);
    return strstr(out, lib) != NULL;
}

Test(layers, only_what_reads_json_links_jansson)
{
    cr_assert_not(needs("cell-agent", "libjansson"), "cell-agent links jansson");
    /* cellstated writes JSON for its HTTP API (http/gateway.h). */
    cr_assert(needs("cellstated", "libjansson"), "cellstated does not link jansson");
    /* The check can see jansson where it is used: cellctl reads job specs. */
    cr_assert(needs("cellctl", "libjansson"), "cellctl does not link jansson");
}
