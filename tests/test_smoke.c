#include <criterion/criterion.h>
#include "tests/support.h"
Test(smoke, claim_commits)
{
    ts_store t;
    ts_store_create(&t);
    cs_id m = ts_machine(t.s, "m1", 4000, 8192, 100000, 31000, 31010, NULL, 0);
    cs_id j = ts_job(t.s, "web", CS_JOB_SERVICE, 50, 2, 1000, 1024, 0, NULL, 1);
    cs_txn tx;
    cs_txn_init(&tx, 1, 1, 0, CS_CONFLICT_FINE, CS_COMMIT_INCREMENTAL);
    cs_res r = {1000, 1024, 0};
    uint16_t p = 31000, p2 = 31001;
    cs_txn_add_claim(&tx, cs_task_id(j, 0), m, &r, &p, 1, 1);
    cs_txn_add_claim(&tx, cs_task_id(j, 1), m, &r, &p2, 1, 1);
    cs_txn_result res;
    cs_txn_result_init(&res);
    cs_error err = {0};
    cr_assert_eq(cs_commit(t.s, &tx, &res, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(res.committed, 2);
    char why[256];
    cr_assert(ts_check_invariants(t.s, why, sizeof why), "%s", why);
    cs_txn_result_free(&res);
    cs_txn_free(&tx);
    ts_store_destroy(&t);
}
