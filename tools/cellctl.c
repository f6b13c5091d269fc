/* cellctl — the command line of a cellsched cell.
 *
 *   cellctl [--server URL] [--timeout D] [--tls-cert F --tls-key F --tls-ca F [--tls-crl F]]
 *           [--token-file F]
 *           COMMAND [ARGS] [OPTIONS]
 *   cellctl --help | cellctl help COMMAND | cellctl COMMAND --help
 *
 * Commands: submit, update, kill, scale (cellctl_job.c); get, describe,
 * endpoints, stats, watch (cellctl_show.c); cordon, uncordon, drain, logs
 * (cellctl_ops.c); members (cellctl_members.c); audit (cellctl_audit.c). Job specs are JSON, native or Marathon
 * (spec/jobspec.h; docs/design.md "Job specs").
 *
 * Exit status: 0 on success, 1 when a spec, a request or the server failed,
 * 2 for a bad command line. Every failure prints one line naming it.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec/jobspec.h"
#include "cellstate/units.h"
#include "proto/principal.h"
#include "proto/proto.h"
#include "proto/servers.h"
#include "tools/cellctl_audit.h"
#include "tools/cellctl_cell.h"
#include "tools/cellctl_job.h"
#include "tools/cellctl_members.h"
#include "tools/cellctl_ops.h"
#include "tools/cellctl_show.h"

enum { EXIT_FAIL = 1, EXIT_USAGE = 2 };

#define DEFAULT_TIMEOUT_MS 5000u
#define DEFAULT_INTERVAL_MS 2000u

/* Options beyond --server, --timeout and --help, as bits, so that each
 * command can say which apply to it. */
enum {
    O_OUTPUT = 1 << 0,
    O_JOB = 1 << 1,
    O_MACHINE = 1 << 2,
    O_STATE = 1 << 3,
    O_INTERVAL = 1 << 4,
    O_COUNT = 1 << 5,
    O_ANSI = 1 << 6,
    O_DRY_RUN = 1 << 7,
    O_DEADLINE = 1 << 8,
    O_NO_DEADLINE = 1 << 9,
    O_STDERR = 1 << 10,
    O_TAIL = 1 << 11,
    O_FOLLOW = 1 << 12,
    O_SINCE = 1 << 13,
    O_WHO = 1 << 14,
    O_ACTION = 1 << 15,
    O_LIMIT = 1 << 16,
};

/* Long options without a short form (getopt's values above any char). */
enum { OPT_SINCE = 256, OPT_WHO, OPT_ACTION };

typedef struct command {
    const char *name;
    int (*run)(ctl *c, const ctl_args *a, cs_error *err);
    unsigned opts;
    const char *synopsis;
    const char *help;
} command;

static const command commands[] = {
    {"submit", ctl_cmd_submit, O_OUTPUT | O_DRY_RUN, "submit FILE [--dry-run] [-o json]",
     "Submit the job spec in FILE (- reads standard input): cellsched's native JSON format, or\n"
     "a Marathon app definition as it is (told apart by its fields: an 'id' and no 'name').\n"
     "What cannot apply here (a container image, labels, fetch URIs, ...) is warned about on\n"
     "standard error, naming the field; an error names the JSON path that is wrong.\n"
     "  --dry-run   print the spec as native JSON instead of submitting it\n"},
    {"update", ctl_cmd_update, O_OUTPUT, "update JOB FILE [-o json]",
     "Replace the spec of job JOB with the one in FILE (same name and kind). Pending tasks\n"
     "take the new resources at once; placed ones are replaced by the schedulers' rolling\n"
     "update; a different count scales the job.\n"},
    {"kill", ctl_cmd_kill, O_OUTPUT, "kill JOB [-o json]",
     "Kill job JOB: every task that has not ended is killed and its resources released.\n"},
    {"scale", ctl_cmd_scale, O_OUTPUT, "scale JOB N [-o json]",
     "Set the task count of job JOB to N: new tasks are pending; tasks at index N and above\n"
     "are killed.\n"},
    {"get", ctl_cmd_get, O_OUTPUT | O_JOB | O_MACHINE | O_STATE,
     "get machines|jobs|tasks [--state S] [--job J] [--machine M] [-o json]",
     "List machines, jobs or tasks as a table, or as a JSON array with -o json (cpu in cores,\n"
     "mem and disk in MiB).\n"
     "  --state S     only records in state S (machines: up, draining, down; jobs: active,\n"
     "                killed; tasks: pending, assigned, running, finished, failed, killed,\n"
     "                lost, preempted)\n"
     "  --job J       tasks of job J only\n"
     "  --machine M   tasks on machine M only (ended tasks keep their last machine)\n"},
    {"describe", ctl_cmd_describe, O_OUTPUT, "describe job|machine NAME [-o json]",
     "Show one job (its spec, options, tasks, where each runs and why pending ones wait) or\n"
     "one machine (capacity, allocation, the tasks placed there).\n"},
    {"endpoints", ctl_cmd_endpoints, O_OUTPUT, "endpoints JOB [-o json]",
     "Where to reach job JOB: its tasks that are running and healthy (their health checks\n"
     "pass; for a job without health checks, running is enough). One line per task,\n"
     "MACHINE:PORT0 followed by its other ports, space separated; with -o json an array of\n"
     "{task, host, ports}. No such task: no output, exit status 0.\n"},
    {"stats", ctl_cmd_stats, O_OUTPUT, "stats [-o json]",
     "Show the cell's counts, capacity and allocation, the server's counters, and the latest\n"
     "metrics each scheduler reported (busyness, conflict fraction, wait times, ...).\n"},
    {"watch", ctl_cmd_watch, O_INTERVAL | O_COUNT | O_ANSI | O_JOB,
     "watch [--interval D] [--count N] [--job J] [--ansi]",
     "A live view of machines and of the tasks not yet ended, redrawn in place. Ctrl-C (or\n"
     "SIGTERM) ends it. Without a terminal (a log, a pipe) a frame is printed only when what\n"
     "it shows changed.\n"
     "  --interval D   time between looks at the cell (default 2s; 500ms, 1m, or seconds)\n"
     "  --count N      stop after N looks (for scripts)\n"
     "  --job J        only the tasks of job J\n"
     "  --ansi         redraw with escape codes even when the output is not a terminal\n"},
    {"cordon", ctl_cmd_cordon, O_OUTPUT, "cordon MACHINE [-o json]",
     "No new placements on MACHINE: its tasks keep running there, the schedulers place\n"
     "nothing new on it (the cell refuses such a claim). Outlives its agent's restarts.\n"
     "`get machines` shows it as up,cordoned.\n"},
    {"uncordon", ctl_cmd_uncordon, O_OUTPUT, "uncordon MACHINE [-o json]",
     "MACHINE takes new placements again (ends a cordon or a drain).\n"},
    {"drain", ctl_cmd_drain, O_OUTPUT | O_DEADLINE | O_NO_DEADLINE,
     "drain MACHINE [--deadline D | --no-deadline] [-o json]",
     "Cordon MACHINE and move its tasks off: cell-service replaces each service task there\n"
     "by one elsewhere within the job's update strategy (at least its minimum healthy keep\n"
     "running: the replacement runs before the old one stops when the strategy allows a\n"
     "surge); batch tasks may finish until the deadline, when those still there are killed\n"
     "and placed again elsewhere. `get machines` shows up,draining, then up,drained once\n"
     "no task is left. The machine stays cordoned until `uncordon`.\n"
     "  --deadline D    how long batch tasks may run on (default 1h; 30s, 10m, 0 = now)\n"
     "  --no-deadline   batch tasks run to their end\n"},
    {"logs", ctl_cmd_logs, O_STDERR | O_TAIL | O_FOLLOW,
     "logs JOB[/INDEX] [--stderr] [--tail N] [-f]",
     "Print the output of task INDEX (default 0) of job JOB, from the agent of the machine\n"
     "it runs on (or last ran on: an ended task's output stays while its agent retains its\n"
     "directory, cell-agent --retain-count and --retain-ms). No shared filesystem needed.\n"
     "  --stderr    its standard error instead of its standard output\n"
     "  --tail N    only the last N lines (at most the last 64 KiB)\n"
     "  -f          follow: print new output as it comes, until the task ends\n"},
    {"members", ctl_cmd_members, O_OUTPUT,
     "members [add ID LISTEN RAFT | remove ID | transfer [ID]] [-o json]",
     "The replicas of the cell. Without a verb: one line per member of the configuration\n"
     "the server knows (ID, LISTEN, RAFT), then each member's own word, asked at its LISTEN\n"
     "URL: its ROLE (leader, follower, candidate, unavailable; ',non-voter' while it catches\n"
     "up), TERM and APPLIED index, and LAG, the leader's applied index minus its own. A\n"
     "member that does not answer within --timeout is shown as unreachable.\n"
     "  add ID LISTEN RAFT   add member ID: clients reach it at LISTEN (tcp://HOST:PORT,\n"
     "                       tls+tcp://HOST:PORT or ipc://PATH), Raft at RAFT (HOST:PORT);\n"
     "                       start it first with an empty --data. It votes once caught up.\n"
     "  remove ID            take member ID out of the cell (the leader may remove itself:\n"
     "                       it steps down once the change commits)\n"
     "  transfer [ID]        hand leadership to member ID (none: the most up-to-date voter)\n"
     "Each change prints the log index once it committed; any replica forwards it to the\n"
     "leader.\n"},
    {"audit", ctl_cmd_audit, O_OUTPUT | O_SINCE | O_WHO | O_ACTION | O_LIMIT,
     "audit [--since D|TIME] [--who W] [--action A] [-n N] [-o json]",
     "The cell's audit log: every write a server accepted (who sent it, the message type, what\n"
     "it changed, the cell version after it), newest last. Every server of --server is asked\n"
     "(each logs the writes it accepted as leader) and their entries merged by time; one that\n"
     "does not answer is named on standard error, the others' entries are printed, and the\n"
     "exit status is 1. Times are UTC. -o json prints one JSON object a line.\n"
     "  --since D|TIME  entries from D ago (1h, 30m) or from TIME (2026-01-31T15:04:05Z)\n"
     "  --who W         entries of principal W (\"operator\"), or of every principal W\n"
     "                  begins (\"agent\" or \"agent:\" matches agent:m1)\n"
     "  --action A      entries of one action (job.kill, commit, machine.admin, ...)\n"
     "  -n, --limit N   the newest N entries (default 100, at most 10000)\n"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fputs("usage: cellctl [--server URL[,URL...]] [--timeout D] COMMAND [ARGS] [OPTIONS]\n\ncommands:\n", f);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %s\n", commands[i].synopsis);
    fputs("\noptions of every command:\n"
          "  -s, --server URL   cellstated's address, or a comma-separated list of a\n"
          "                     replicated cell's (default: $" CS_URL_ENV ", else "
          CS_DEFAULT_URL ")\n"
          "  --timeout D        how long to wait for an answer, every server of a list\n"
          "                     included (default 5s)\n"
          "  --tls-cert FILE --tls-key FILE --tls-ca FILE\n"
          "                     your certificate and key and the cell's CA, for tls+tcp://\n"
          "                     servers (default: $" CS_TLS_CERT_ENV ", $" CS_TLS_KEY_ENV ", $" CS_TLS_CA_ENV ")\n"
          "  --token-file FILE  your token, for a cell with roles from tokens (cellstated\n"
          "                     --auth-tokens; default: $" CS_TOKEN_FILE_ENV ")\n"
          "  --tls-crl FILE     the CA's revocation list: a server it lists is refused\n"
          "                     (default: $" CS_TLS_CRL_ENV ")\n"
          "  -o, --output FMT   table (default) or json\n"
          "  -h, --help         this help; `cellctl help COMMAND` for one command\n",
          f);
}

static void command_help(const command *cmd, FILE *f)
{
    fprintf(f, "usage: cellctl %s\n\n%s\nEvery command also takes --server URL and --timeout D.\n",
            cmd->synopsis, cmd->help);
}

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int parse_duration(const char *opt, const char *text, uint32_t *out)
{
    cs_error err;
    if (cs_duration_parse_ms(text, out, &err) != CS_OK) {
        fprintf(stderr, "cellctl: %s: %s\n", opt, err.msg);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"server", required_argument, NULL, 's'},   {"timeout", required_argument, NULL, 't'},
        {"output", required_argument, NULL, 'o'},   {"job", required_argument, NULL, 'j'},
        {"machine", required_argument, NULL, 'm'},  {"state", required_argument, NULL, 'S'},
        {"interval", required_argument, NULL, 'i'}, {"count", required_argument, NULL, 'c'},
        {"ansi", no_argument, NULL, 'a'},           {"dry-run", no_argument, NULL, 'd'},
        {"deadline", required_argument, NULL, 'D'}, {"no-deadline", no_argument, NULL, 'N'},
        {"stderr", no_argument, NULL, 'E'},         {"tail", required_argument, NULL, 'T'},
        {"follow", no_argument, NULL, 'f'},
        {"tls-cert", required_argument, NULL, 'C'}, {"tls-key", required_argument, NULL, 'K'},
        {"tls-ca", required_argument, NULL, 'A'},   {"tls-crl", required_argument, NULL, 'R'},
        {"token-file", required_argument, NULL, 'k'},
        {"since", required_argument, NULL, OPT_SINCE}, {"who", required_argument, NULL, OPT_WHO},
        {"action", required_argument, NULL, OPT_ACTION}, {"limit", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    const char *server = NULL;
    cs_tls_files tls_files = {0};
    const char *token_file = NULL;
    ctl c = {.timeout_ms = DEFAULT_TIMEOUT_MS, .output = CTL_OUT_TABLE};
    ctl_args a = {.interval_ms = DEFAULT_INTERVAL_MS};
    unsigned seen = 0;
    bool help = false;
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "s:o:hfn:", longopts, NULL)) != -1) {
        switch (opt) {
        case 's': server = optarg; break;
        case 'C': tls_files.cert = optarg; break;
        case 'K': tls_files.key = optarg; break;
        case 'A': tls_files.ca = optarg; break;
        case 'k': token_file = optarg; break;
        case 'R': tls_files.crl = optarg; break;
        case 't':
            if (parse_duration("--timeout", optarg, &c.timeout_ms) != 0)
                return EXIT_USAGE;
            if (c.timeout_ms == 0) {
                fprintf(stderr, "cellctl: --timeout must be more than 0\n");
                return EXIT_USAGE;
            }
            break;
        case 'o':
            seen |= O_OUTPUT;
            if (strcmp(optarg, "json") == 0)
                c.output = CTL_OUT_JSON;
            else if (strcmp(optarg, "table") != 0) {
                fprintf(stderr, "cellctl: -o %s: the output is table or json\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'j': seen |= O_JOB, a.job = optarg; break;
        case 'm': seen |= O_MACHINE, a.machine = optarg; break;
        case 'S': seen |= O_STATE, a.state = optarg; break;
        case 'i':
            seen |= O_INTERVAL;
            if (parse_duration("--interval", optarg, &a.interval_ms) != 0)
                return EXIT_USAGE;
            break;
        case 'c': {
            seen |= O_COUNT;
            char *end;
            a.count = strtol(optarg, &end, 10);
            if (*end != '\0' || end == optarg || a.count < 1) {
                fprintf(stderr, "cellctl: --count %s: not a number of frames >= 1\n", optarg);
                return EXIT_USAGE;
            }
            break;
        }
        case 'a': seen |= O_ANSI, a.ansi = true; break;
        case 'd': seen |= O_DRY_RUN, a.dry_run = true; break;
        case 'D':
            seen |= O_DEADLINE;
            a.has_deadline = true;
            if (parse_duration("--deadline", optarg, &a.deadline_ms) != 0)
                return EXIT_USAGE;
            break;
        case 'N': seen |= O_NO_DEADLINE, a.no_deadline = true; break;
        case 'E': seen |= O_STDERR, a.err_stream = true; break;
        case 'T': {
            seen |= O_TAIL;
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end != '\0' || end == optarg || n < 1 || n > 1000000) {
                fprintf(stderr, "cellctl: --tail %s: not a number of lines in 1..1000000\n",
                        optarg);
                return EXIT_USAGE;
            }
            a.tail = (uint32_t)n;
            break;
        }
        case 'f': seen |= O_FOLLOW, a.follow = true; break;
        case OPT_SINCE: seen |= O_SINCE, a.since = optarg; break;
        case OPT_WHO: seen |= O_WHO, a.who = optarg; break;
        case OPT_ACTION: seen |= O_ACTION, a.action = optarg; break;
        case 'n': {
            seen |= O_LIMIT;
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end != '\0' || end == optarg || n < 1 || n > CS_AUDIT_LIMIT_MAX) {
                fprintf(stderr, "cellctl: -n %s: not a number of entries in 1..%d\n", optarg,
                        CS_AUDIT_LIMIT_MAX);
                return EXIT_USAGE;
            }
            a.limit = (uint32_t)n;
            break;
        }
        case 'h': help = true; break;
        default:
            if (optopt)
                fprintf(stderr, "cellctl: option -%c is unknown or lacks its value\n", optopt);
            else
                fprintf(stderr, "cellctl: option %s is unknown or lacks its value\n",
                        argv[optind - 1]);
            fprintf(stderr, "run cellctl --help for the options\n");
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(help ? stdout : stderr);
        return help ? 0 : EXIT_USAGE;
    }
    const char *name = argv[optind];
    if (strcmp(name, "help") == 0) {
        const command *cmd = optind + 1 < argc ? find_command(argv[optind + 1]) : NULL;
        if (optind + 1 < argc && cmd == NULL) {
            fprintf(stderr, "cellctl: help: no command is named '%s'\n", argv[optind + 1]);
            return EXIT_USAGE;
        }
        if (cmd)
            command_help(cmd, stdout);
        else
            usage(stdout);
        return 0;
    }
    const command *cmd = find_command(name);
    if (cmd == NULL) {
        fprintf(stderr, "cellctl: no command is named '%s'; run cellctl --help\n", name);
        return EXIT_USAGE;
    }
    if (help) {
        command_help(cmd, stdout);
        return 0;
    }
    unsigned extra = seen & ~cmd->opts;
    if (extra) {
        static const char *const names[] = {"-o",         "--job",         "--machine",
                                            "--state",    "--interval",    "--count",
                                            "--ansi",     "--dry-run",     "--deadline",
                                            "--no-deadline", "--stderr",   "--tail",
                                            "-f",         "--since",       "--who",
                                            "--action",   "-n"};
        size_t bit = 0;
        while (!(extra & (1u << bit)))
            bit++;
        fprintf(stderr, "cellctl %s: %s does not apply (usage: cellctl %s)\n", name, names[bit],
                cmd->synopsis);
        return EXIT_USAGE;
    }
    /* The whole list is checked before any command runs: a bad entry is a
     * bad command line, named, even when an earlier server would answer. */
    cs_servers servers;
    cs_error perr = {0};
    if (cs_servers_from(server, &servers, &c.url, &perr) != CS_OK) {
        fprintf(stderr, "cellctl: %s\n", perr.msg);
        return EXIT_USAGE;
    }
    /* The certificates likewise, read once (proto/tls.h). */
    cs_tls *tls = NULL;
    cs_tls_files_env(&tls_files);
    if (cs_tls_load(&tls_files, &tls, &perr) != CS_OK ||
        cs_servers_check_tls(&servers, tls, &perr) != CS_OK) {
        fprintf(stderr, "cellctl: %s\n", perr.msg);
        cs_tls_free(tls);
        return EXIT_USAGE;
    }
    c.tls = tls;
    char *token = NULL;
    if (cs_token_load(token_file, &token, &perr) != CS_OK) {
        fprintf(stderr, "cellctl: %s\n", perr.msg);
        cs_tls_free(tls);
        return EXIT_USAGE;
    }
    c.token = token;
    a.argc = argc - optind - 1;
    a.argv = argv + optind + 1;
    cs_error err = {0};
    int rc = cmd->run(&c, &a, &err);
    ctl_close(&c);
    cs_tls_free(tls);
    free(token);
    if (rc == CS_OK)
        return 0;
    fprintf(stderr, "cellctl: %s\n", err.msg[0] ? err.msg : cs_strerror(rc));
    if (rc == CTL_EUSAGE) {
        fprintf(stderr, "usage: cellctl %s\n", cmd->synopsis);
        return EXIT_USAGE;
    }
    return EXIT_FAIL;
}
