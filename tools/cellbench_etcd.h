/* cellbench_etcd.h — `cellbench etcd`: the same commit workload against
 * etcd 3.4 and against cellsched, each a cell of the same number of
 * members on 127.0.0.1: C concurrent clients, each committing transactions
 * of K placements — etcd: a transaction that compares the mod_revision of
 * K machine keys and puts K task records; cellsched: a commit of K claims,
 * validated fine-grained — measured in interleaved rounds: committed
 * transactions/s and placements/s of each, their ratio, and each side's
 * client and server CPU.
 */
#ifndef CB_ETCD_H
#define CB_ETCD_H

/* The options of `etcd`, for cellbench --help. */
extern const char cb_etcd_usage[];

/* `cellbench etcd ...` (argv[0] is "etcd"); returns the exit code. Without
 * an etcd binary it says so and exits 0 (skipped), as its JSON line does.
 * Every process and directory it made is gone when it returns. */
int cb_etcd_main(int argc, char **argv);

#endif
