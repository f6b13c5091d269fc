/* cellbench_place.h — `cellbench place`: a workload shaped like Nomad's C1M
 * (J jobs x T tasks, a share of them constrained) on M simulated machines,
 * placed by 1, 2, 4, 8 ... real cell-batch processes sharing the jobs by
 * hash: committed placements per second, conflict fraction and wait time,
 * for each number of schedulers, each on a fresh cell; with --architecture,
 * Omega's monolithic, multipath or Mesos-style two-level cell instead of
 * its shared state.
 */
#ifndef CB_PLACE_H
#define CB_PLACE_H

/* The options of `place`, for cellbench --help. */
extern const char cb_place_usage[];

/* `cellbench place ...` (argv[0] is "place"); returns the exit code. Every
 * process and directory it made is gone when it returns, also after a
 * failure or SIGINT/SIGTERM. */
int cb_place_main(int argc, char **argv);

#endif
