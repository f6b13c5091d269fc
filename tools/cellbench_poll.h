/* cellbench_poll.h — `cellbench poll`: N simulated machines long-poll one
 * cellstated while a scheduler commits their assignments; requests served
 * per second and the latency from commit to the machine seeing its task.
 */
#ifndef CB_POLL_H
#define CB_POLL_H

/* The options of `poll`, for cellbench --help. */
extern const char cb_poll_usage[];

/* `cellbench poll ...` (argv[0] is "poll"); returns the exit code. */
int cb_poll_main(int argc, char **argv);

#endif
