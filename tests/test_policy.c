/* test_policy.c — unit: placement policy presets, Kubernetes legacy Policy
 * files and the 0..10 priority scores (schedulers/policy.h). The Policy file
 * Kubernetes ships as its example is read from ../shared/testdata. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "schedulers/policy.h"
#include "tests/support.h"

#define TESTDATA "../shared/testdata/kubernetes"
#define EPS 1e-9

/* A policy no parse produces, to show that a refused input leaves `out`
 * alone. */
static const cs_policy sentinel = {0xdead, {7, 7, 7, 7, 7, 7, 7, 7}, true, 0xbeef, true};

/* Field by field: the struct has padding, which assignment need not copy. */
static bool same_policy(const cs_policy *a, const cs_policy *b)
{
    return a->predicates == b->predicates &&
           memcmp(a->weights, b->weights, sizeof a->weights) == 0 &&
           a->fewest_tasks == b->fewest_tasks && a->ignored == b->ignored &&
           a->first_fit == b->first_fit;
}

static void expect_weights(const cs_policy *p, const uint32_t want[CS_PRIO_COUNT])
{
    for (int i = 0; i < CS_PRIO_COUNT; i++)
        cr_expect_eq(p->weights[i], want[i], "%s: weight %u, want %u",
                     cs_priority_name((cs_priority)i), p->weights[i], want[i]);
}

static cs_policy parse_ok(const char *json)
{
    cs_policy p = sentinel;
    cs_error err = {0};
    cr_assert_eq(cs_policy_parse(json, strlen(json), &p, &err), CS_OK, "refused: %s\n%s", err.msg,
                 json);
    return p;
}

/* The policy is refused with CS_EINVAL and a message that starts with
 * `where` and holds `what`; `out` is untouched. */
static void expect_error(const char *json, const char *where, const char *what)
{
    cs_policy p = sentinel;
    cs_error err = {0};
    int rc = cs_policy_parse(json, strlen(json), &p, &err);
    cr_assert_eq(rc, CS_EINVAL, "rc %d for: %s", rc, json);
    cr_assert_eq(err.code, CS_EINVAL);
    cr_assert_eq(strncmp(err.msg, where, strlen(where)), 0, "error '%s' does not start with '%s'",
                 err.msg, where);
    cr_assert(strstr(err.msg, what) != NULL, "error '%s' lacks '%s'", err.msg, what);
    cr_assert_eq(same_policy(&p, &sentinel), true, "a refused policy was written");
}

/* A Policy with the given predicates and priorities members ("" = absent). */
static const char *policy_json(const char *members, char *buf, size_t size)
{
    snprintf(buf, size, "{\"kind\": \"Policy\", \"apiVersion\": \"v1\"%s%s}",
             members[0] != '\0' ? ", " : "", members);
    return buf;
}

static cs_policy parse_members_ok(const char *members)
{
    char buf[2048];
    return parse_ok(policy_json(members, buf, sizeof buf));
}

static void expect_members_error(const char *members, const char *where, const char *what)
{
    char buf[2048];
    expect_error(policy_json(members, buf, sizeof buf), where, what);
}

/* ---- presets ---------------------------------------------------------------------- */

Test(preset, spread_weighs_free_room_balance_spreading_and_soft_constraints)
{
    cs_policy p = sentinel;
    cs_error err = {0};
    cr_assert_eq(cs_policy_preset("spread", &p, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(p.predicates, (uint32_t)CS_PRED_ALL);
    expect_weights(&p, (uint32_t[CS_PRIO_COUNT]){[CS_PRIO_LEAST_REQUESTED] = 1,
                                                 [CS_PRIO_BALANCED] = 1,
                                                 [CS_PRIO_SPREADING] = 1,
                                                 [CS_PRIO_NODE_AFFINITY] = 1,
                                                 [CS_PRIO_JOB_AFFINITY] = 1,
                                                 [CS_PRIO_TAINT_TOLERATION] = 1});
    cr_assert(p.fewest_tasks, "Swarm's spread: fewest tasks first");
    cr_assert_eq(p.ignored, 0u);
}

Test(preset, binpack_weighs_most_requested_and_soft_constraints)
{
    cs_policy p = sentinel;
    cs_error err = {0};
    cr_assert_eq(cs_policy_preset("binpack", &p, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(p.predicates, (uint32_t)CS_PRED_ALL);
    expect_weights(&p, (uint32_t[CS_PRIO_COUNT]){[CS_PRIO_MOST_REQUESTED] = 1,
                                                 [CS_PRIO_NODE_AFFINITY] = 1,
                                                 [CS_PRIO_JOB_AFFINITY] = 1,
                                                 [CS_PRIO_TAINT_TOLERATION] = 1});
    cr_assert(!p.fewest_tasks);
}

Test(preset, random_weighs_equal_and_soft_constraints)
{
    cs_policy p = sentinel;
    cs_error err = {0};
    cr_assert_eq(cs_policy_preset("random", &p, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(p.predicates, (uint32_t)CS_PRED_ALL);
    expect_weights(&p, (uint32_t[CS_PRIO_COUNT]){[CS_PRIO_EQUAL] = 1,
                                                 [CS_PRIO_NODE_AFFINITY] = 1,
                                                 [CS_PRIO_JOB_AFFINITY] = 1,
                                                 [CS_PRIO_TAINT_TOLERATION] = 1});
    cr_assert(!p.fewest_tasks);
}

Test(preset, firstfit_is_random_first_fit_and_scores_nothing)
{
    cs_policy p = sentinel;
    cs_error err = {0};
    cr_assert_eq(cs_policy_preset("firstfit", &p, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(p.predicates, (uint32_t)CS_PRED_ALL);
    cr_assert(p.first_fit);
    cr_assert(!p.fewest_tasks);
    cr_assert_eq(cs_policy_preset("random", &p, &err), CS_OK, "%s", err.msg);
    cr_assert(!p.first_fit, "random scores its candidates");
    cr_assert_eq(cs_policy_resolve("firstfit", &p, &err), CS_OK, "%s", err.msg);
    cr_assert(p.first_fit);
}

Test(preset, unknown_name_is_named_with_the_valid_ones)
{
    cs_policy p = sentinel;
    cs_error err = {0};
    cr_assert_eq(cs_policy_preset("Spread", &p, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "\"Spread\"") != NULL, "%s", err.msg);
    cr_assert(strstr(err.msg, "spread, binpack, random, firstfit") != NULL, "%s", err.msg);
    cr_assert_eq(same_policy(&p, &sentinel), true);
    cr_assert_eq(cs_policy_preset(NULL, &p, &err), CS_EINVAL);
}

Test(preset, names_are_the_kubernetes_ones)
{
    cr_assert_str_eq(cs_priority_name(CS_PRIO_LEAST_REQUESTED), "LeastRequestedPriority");
    cr_assert_str_eq(cs_priority_name(CS_PRIO_MOST_REQUESTED), "MostRequestedPriority");
    cr_assert_str_eq(cs_priority_name(CS_PRIO_BALANCED), "BalancedResourceAllocation");
    cr_assert_str_eq(cs_priority_name(CS_PRIO_SPREADING), "SelectorSpreadPriority");
    cr_assert_str_eq(cs_priority_name(CS_PRIO_EQUAL), "EqualPriority");
    cr_assert_str_eq(cs_priority_name(CS_PRIO_NODE_AFFINITY), "NodeAffinityPriority");
    cr_assert_str_eq(cs_priority_name(CS_PRIO_JOB_AFFINITY), "InterPodAffinityPriority");
    cr_assert_str_eq(cs_priority_name(CS_PRIO_TAINT_TOLERATION), "TaintTolerationPriority");
    cr_assert_str_eq(cs_priority_name(CS_PRIO_COUNT), "unknown");
    cr_assert_str_eq(cs_predicate_name(CS_PRED_PORTS), "PodFitsHostPorts");
    cr_assert_str_eq(cs_predicate_name(CS_PRED_DISK_CONFLICT), "NoDiskConflict");
    cr_assert_str_eq(cs_predicate_name(CS_PRED_SELECTOR), "MatchNodeSelector");
    cr_assert_str_eq(cs_predicate_name(CS_PRED_HOSTNAME), "HostName");
    cr_assert_str_eq(cs_predicate_name(CS_PRED_AFFINITY), "MatchInterPodAffinity");
    cr_assert_str_eq(cs_predicate_name(CS_PRED_SPREAD), "Spread");
    cr_assert_str_eq(cs_predicate_name(CS_PRED_TAINTS), "PodToleratesNodeTaints");
    cr_assert_str_eq(cs_predicate_name(CS_PRED_PORTS | CS_PRED_SPREAD), "unknown");
}

/* Every priority's name parses back to itself: the names and the parser
 * cannot drift apart. */
Test(preset, every_priority_name_parses_to_its_priority)
{
    for (int i = 0; i < CS_PRIO_COUNT; i++) {
        char members[256];
        snprintf(members, sizeof members, "\"priorities\": [{\"name\": \"%s\", \"weight\": 9}]",
                 cs_priority_name((cs_priority)i));
        cs_policy p = parse_members_ok(members);
        cr_assert_eq(p.weights[i], 9u, "%s", members);
    }
}

/* ---- the Kubernetes example file ---------------------------------------------- */

static const char *testdata(const char *file, char *buf, size_t size)
{
    snprintf(buf, size, TESTDATA "/%s", file);
    if (access(buf, R_OK) != 0)
        cr_skip_test("%s is absent: the Kubernetes testdata lives in ../shared/testdata", buf);
    return buf;
}

Test(kubernetes, example_policy_file_gives_its_predicates_and_weights)
{
    char path[512];
    cs_policy p = sentinel;
    cs_error err = {0};
    cr_assert_eq(cs_policy_load(testdata("scheduler-policy-config.json", path, sizeof path), &p,
                                &err),
                 CS_OK, "%s", err.msg);
    /* PodFitsPorts, PodFitsResources, NoDiskConflict, MatchNodeSelector,
     * HostName: no MatchInterPodAffinity, which a job's AFFINITY needs all
     * the same: every filter is on. */
    cr_assert_eq(p.predicates, (uint32_t)CS_PRED_ALL);
    cr_assert(!p.fewest_tasks);
    cr_assert_eq(p.ignored, 0u);
    /* As listed, plus the soft-constraint priorities it does not list. */
    expect_weights(&p, (uint32_t[CS_PRIO_COUNT]){[CS_PRIO_LEAST_REQUESTED] = 1,
                                                 [CS_PRIO_BALANCED] = 1,
                                                 [CS_PRIO_SPREADING] = 1,
                                                 [CS_PRIO_EQUAL] = 1,
                                                 [CS_PRIO_NODE_AFFINITY] = 1,
                                                 [CS_PRIO_JOB_AFFINITY] = 1});
}

/* ---- Policy semantics ------------------------------------------------------------ */

Test(parse, absent_lists_mean_all_filters_and_the_spread_weights)
{
    cs_policy p = parse_members_ok("");
    cs_policy spread;
    cr_assert_eq(cs_policy_preset("spread", &spread, NULL), CS_OK);
    cr_assert_eq(p.predicates, spread.predicates);
    cr_assert_eq(memcmp(p.weights, spread.weights, sizeof p.weights), 0);
    cr_assert(!p.fewest_tasks, "fewest tasks first is Swarm's, not a Kubernetes file's");
}

Test(parse, empty_lists_mean_only_the_enforced_filters_and_equal_scores)
{
    cs_policy p = parse_members_ok("\"predicates\": [], \"priorities\": []");
    cr_assert_eq(p.predicates, (uint32_t)CS_PRED_ENFORCED,
                 "the job's own constraints and the machines' taints stay");
    expect_weights(&p, (uint32_t[CS_PRIO_COUNT]){[CS_PRIO_EQUAL] = 1,
                                                 [CS_PRIO_NODE_AFFINITY] = 1,
                                                 [CS_PRIO_JOB_AFFINITY] = 1});
}

Test(parse, predicate_names_map_to_their_filters)
{
    static const struct {
        const char *name;
        uint32_t bits;
    } cases[] = {
        {"PodFitsPorts", CS_PRED_PORTS},
        {"PodFitsHostPorts", CS_PRED_PORTS},
        {"NoDiskConflict", CS_PRED_DISK_CONFLICT},
        {"MatchNodeSelector", CS_PRED_SELECTOR},
        {"HostName", CS_PRED_HOSTNAME},
        {"MatchInterPodAffinity", CS_PRED_AFFINITY},
        {"GeneralPredicates", CS_PRED_PORTS | CS_PRED_SELECTOR | CS_PRED_HOSTNAME},
        {"PodFitsResources", 0},
        {"CheckNodeCondition", 0},
        {"CheckNodeUnschedulable", 0},
        {"PodToleratesNodeTaints", CS_PRED_TAINTS},
        {"PodToleratesNodeNoExecuteTaints", CS_PRED_TAINTS},
        {"NoVolumeZoneConflict", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char members[256];
        snprintf(members, sizeof members, "\"predicates\": [{\"name\": \"%s\"}]", cases[i].name);
        cs_policy p = parse_members_ok(members);
        cr_expect_eq(p.predicates, cases[i].bits | CS_PRED_ENFORCED, "%s: %#x, want %#x",
                     cases[i].name, p.predicates, cases[i].bits | CS_PRED_ENFORCED);
        cr_expect_eq(p.ignored, 0u, "%s", cases[i].name);
    }
}

Test(parse, overlapping_predicates_are_one_filter)
{
    cs_policy p = parse_members_ok("\"predicates\": [{\"name\": \"GeneralPredicates\"},"
                                   " {\"name\": \"PodFitsPorts\"}, {\"name\": \"NoDiskConflict\"}]");
    cr_assert_eq(p.predicates, (uint32_t)CS_PRED_ALL);
}

Test(parse, listed_weights_are_kept_and_soft_constraints_default_to_one)
{
    cs_policy p = parse_members_ok(
        "\"priorities\": [{\"name\": \"MostRequestedPriority\", \"weight\": 3},"
        " {\"name\": \"NodeAffinityPriority\", \"weight\": 5},"
        " {\"name\": \"ServiceSpreadingPriority\", \"weight\": 4294967295}]");
    cr_assert_eq(p.predicates, (uint32_t)CS_PRED_ALL);
    expect_weights(&p, (uint32_t[CS_PRIO_COUNT]){[CS_PRIO_MOST_REQUESTED] = 3,
                                                 [CS_PRIO_SPREADING] = UINT32_MAX,
                                                 [CS_PRIO_NODE_AFFINITY] = 5,
                                                 [CS_PRIO_JOB_AFFINITY] = 1});
}

Test(parse, input_need_not_be_nul_terminated)
{
    char buf[128];
    const char *json = "{\"kind\": \"Policy\", \"apiVersion\": \"v1\", \"predicates\": []}";
    size_t len = strlen(json);
    memcpy(buf, json, len);
    memset(buf + len, '}', sizeof buf - len); /* trailing bytes beyond len must not be read */
    cs_policy p = sentinel;
    cs_error err = {0};
    cr_assert_eq(cs_policy_parse(buf, len, &p, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(p.predicates, (uint32_t)CS_PRED_ENFORCED);
}

/* ---- Policy errors --------------------------------------------------------------- */

Test(parse_error, not_json_gives_line_and_column)
{
    expect_error("{\"kind\": \"Policy\",\n \"apiVersion\": }", "not JSON: line 2 column", "");
    expect_error("", "not JSON: line 1", "");
    expect_error("{\"kind\": \"Policy\", \"kind\": \"Policy\"}", "not JSON", "duplicate");
}

Test(parse_error, top_level_must_be_an_object)
{
    expect_error("[]", "expected a JSON object", "Policy");
}

Test(parse_error, kind_and_api_version)
{
    expect_error("{\"kind\": \"Pod\", \"apiVersion\": \"v1\"}", "kind: ", "expected \"Policy\"");
    expect_error("{\"kind\": 1, \"apiVersion\": \"v1\"}", "kind: ", "expected \"Policy\"");
    expect_error("{\"apiVersion\": \"v1\"}", "kind: missing", "\"Policy\"");
    expect_error("{\"kind\": \"Policy\", \"apiVersion\": \"v2\"}", "apiVersion: ",
                 "expected \"v1\"");
    expect_error("{\"kind\": \"Policy\"}", "apiVersion: missing", "\"v1\"");
}

Test(parse_error, unknown_and_unsupported_top_level_keys_are_named)
{
    expect_members_error("\"extenders\": []", "extenders: ", "not supported");
    expect_members_error("\"hardPodAffinitySymmetricWeight\": 10",
                         "hardPodAffinitySymmetricWeight: ", "not supported");
    expect_members_error("\"alwaysCheckAllPredicates\": true", "alwaysCheckAllPredicates: ",
                         "not supported");
    expect_members_error("\"priority\": []", "unknown key \"priority\"", "predicates, priorities");
}

Test(parse_error, lists_must_be_arrays_of_objects)
{
    expect_members_error("\"predicates\": {}", "predicates: ", "expected an array");
    expect_members_error("\"priorities\": null", "priorities: ", "expected an array");
    expect_members_error("\"predicates\": [\"HostName\"]", "predicates[0]: ",
                         "expected an object");
}

Test(parse_error, names_missing_wrong_or_unknown)
{
    expect_members_error("\"predicates\": [{}]", "predicates[0]: ", "\"name\" is missing");
    expect_members_error("\"predicates\": [{\"name\": \"HostName\"}, {\"name\": 3}]",
                         "predicates[1].name: ", "expected a string");
    expect_members_error("\"priorities\": [{\"weight\": 1}]", "priorities[0]: ",
                         "\"name\" is missing");
    expect_members_error("\"predicates\": [{\"name\": \"HostName\"}, {\"name\": \"NoDiskConflict\"},"
                         " {\"name\": \"PodToleratesNodeTaint\"}]",
                         "predicates[2]: ", "unknown predicate \"PodToleratesNodeTaint\"");
    expect_members_error("\"priorities\": [{\"name\": \"EqualPriority\", \"weight\": 1},"
                         " {\"name\": \"MostRequestedPriority\", \"weight\": 1},"
                         " {\"name\": \"ImageLocalityPriorty\", \"weight\": 1}]",
                         "priorities[2]: ", "unknown priority \"ImageLocalityPriorty\"");
    /* An ignored name in the other list is unknown there. */
    expect_members_error("\"predicates\": [{\"name\": \"ImageLocalityPriority\"}]",
                         "predicates[0]: ", "unknown predicate \"ImageLocalityPriority\"");
}

Test(parse_error, every_unknown_name_is_named_in_one_message)
{
    char buf[2048];
    const char *json = policy_json(
        "\"predicates\": [{\"name\": \"PodFitsPort\"}, {\"name\": \"HostName\"},"
        " {\"name\": \"MatchNodeSelectors\"}],"
        " \"priorities\": [{\"name\": \"EqualPriority\", \"weight\": 1},"
        " {\"name\": \"LeastRequested\", \"weight\": 1}]",
        buf, sizeof buf);
    cs_policy p = sentinel;
    cs_error err = {0};
    cr_assert_eq(cs_policy_parse(json, strlen(json), &p, &err), CS_EINVAL);
    cr_assert_str_eq(err.msg, "predicates[0]: unknown predicate \"PodFitsPort\"; "
                              "predicates[2]: unknown predicate \"MatchNodeSelectors\"; "
                              "priorities[1]: unknown priority \"LeastRequested\"");
    cr_assert_eq(same_policy(&p, &sentinel), true, "a refused policy was written");
}

Test(parse, image_and_cloud_volume_names_are_ignored_with_one_warning)
{
    cs_policy p = parse_members_ok(
        "\"predicates\": [{\"name\": \"MaxEBSVolumeCount\"}, {\"name\": \"HostName\"},"
        " {\"name\": \"CheckVolumeBinding\"}],"
        " \"priorities\": [{\"name\": \"ImageLocalityPriority\", \"weight\": 2},"
        " {\"name\": \"LeastRequestedPriority\", \"weight\": 1}]");
    cr_assert_eq(p.predicates, (uint32_t)CS_PRED_ENFORCED, "nothing else filters");
    expect_weights(&p, (uint32_t[CS_PRIO_COUNT]){[CS_PRIO_LEAST_REQUESTED] = 1,
                                                 [CS_PRIO_NODE_AFFINITY] = 1,
                                                 [CS_PRIO_JOB_AFFINITY] = 1});
    char w[256];
    cr_assert(cs_policy_warning(&p, w, sizeof w));
    cr_assert_str_eq(w, "policy: ignoring ImageLocalityPriority (container images), "
                        "MaxEBSVolumeCount (cloud volumes), CheckVolumeBinding (cloud volumes): "
                        "a cell has no container images or cloud volumes");
    /* A warning is cut, never overrun. */
    char small[20];
    cr_assert(cs_policy_warning(&p, small, sizeof small));
    cr_assert_eq(strlen(small), sizeof small - 1);
    cs_policy spread;
    cr_assert_eq(cs_policy_preset("spread", &spread, NULL), CS_OK);
    cr_assert_not(cs_policy_warning(&spread, w, sizeof w));
    cr_assert_str_eq(w, "");
    /* An ignored priority's weight is still checked. */
    expect_members_error("\"priorities\": [{\"name\": \"ImageLocalityPriority\", \"weight\": 0}]",
                         "priorities[0].weight: ", "must be a positive integer");
}

Test(parse, taint_toleration_priority_takes_its_weight)
{
    cs_policy p = parse_members_ok(
        "\"priorities\": [{\"name\": \"TaintTolerationPriority\", \"weight\": 3}]");
    cr_assert_eq(p.weights[CS_PRIO_TAINT_TOLERATION], 3u);
}

Test(parse_error, repeated_names)
{
    expect_members_error("\"predicates\": [{\"name\": \"HostName\"}, {\"name\": \"NoDiskConflict\"},"
                         " {\"name\": \"HostName\"}]",
                         "predicates[2]: ", "\"HostName\" repeats predicates[0]");
    expect_members_error("\"priorities\": [{\"name\": \"EqualPriority\", \"weight\": 1},"
                         " {\"name\": \"EqualPriority\", \"weight\": 2}]",
                         "priorities[1]: ", "\"EqualPriority\" repeats priorities[0]");
    expect_members_error("\"priorities\": [{\"name\": \"ServiceSpreadingPriority\", \"weight\": 1},"
                         " {\"name\": \"SelectorSpreadPriority\", \"weight\": 2}]",
                         "priorities[1]: ", "same priority as priorities[0]");
}

Test(parse_error, weights_must_be_positive_integers)
{
    static const char *const bad[] = {"0", "-1", "1.5", "\"2\"", "true", "null", "4294967296"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char members[256];
        snprintf(members, sizeof members,
                 "\"priorities\": [{\"name\": \"EqualPriority\", \"weight\": 1},"
                 " {\"name\": \"LeastRequestedPriority\", \"weight\": %s}]",
                 bad[i]);
        expect_members_error(members, "priorities[1].weight: ", "must be a positive integer");
    }
    expect_members_error("\"priorities\": [{\"name\": \"EqualPriority\"}]", "priorities[0]: ",
                         "\"weight\" is missing");
}

Test(parse_error, entry_keys_are_checked)
{
    expect_members_error("\"predicates\": [{\"name\": \"Zone\", \"argument\": "
                         "{\"serviceAffinity\": {\"labels\": [\"zone\"]}}}]",
                         "predicates[0].argument: ", "not supported");
    expect_members_error("\"priorities\": [{\"name\": \"EqualPriority\", \"weight\": 1,"
                         " \"argument\": {}}]",
                         "priorities[0].argument: ", "not supported");
    expect_members_error("\"predicates\": [{\"name\": \"HostName\", \"weight\": 1}]",
                         "predicates[0]: ", "unknown key \"weight\"");
    expect_members_error("\"priorities\": [{\"name\": \"EqualPriority\", \"weight\": 1,"
                         " \"wieght\": 2}]",
                         "priorities[0]: ", "unknown key \"wieght\"");
}

/* ---- files and --policy --------------------------------------------------------- */

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(text, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

Test(load, errors_name_the_path)
{
    char dir[256], path[512];
    cr_assert_eq(ts_mkdtemp(dir, sizeof dir), 0);
    cs_policy p = sentinel;
    cs_error err = {0};

    snprintf(path, sizeof path, "%s/absent.json", dir);
    cr_expect_eq(cs_policy_load(path, &p, &err), CS_ENOTFOUND);
    cr_expect_eq(strncmp(err.msg, path, strlen(path)), 0, "%s", err.msg);
    cr_expect(strstr(err.msg, strerror(ENOENT)) != NULL, "%s", err.msg);

    snprintf(path, sizeof path, "%s/bad.json", dir);
    const char *bad = "{\"kind\": \"Policy\", \"apiVersion\": \"v1\",\n"
                      " \"priorities\": [{\"name\": \"Nope\", \"weight\": 1}]}";
    write_file(path, bad, strlen(bad));
    cr_expect_eq(cs_policy_load(path, &p, &err), CS_EINVAL);
    char want[600];
    snprintf(want, sizeof want, "%s: priorities[0]: unknown priority \"Nope\"", path);
    cr_expect_str_eq(err.msg, want);

    cr_expect_eq(cs_policy_load(dir, &p, &err), CS_EINVAL);
    cr_expect(strstr(err.msg, "not a regular file") != NULL, "%s", err.msg);

    snprintf(path, sizeof path, "%s/big.json", dir);
    size_t big = (1u << 20) + 1;
    char *text = malloc(big);
    cr_assert_not_null(text);
    memset(text, ' ', big);
    write_file(path, text, big);
    free(text);
    cr_expect_eq(cs_policy_load(path, &p, &err), CS_ETOOBIG);
    cr_expect_eq(strncmp(err.msg, path, strlen(path)), 0, "%s", err.msg);

    cr_expect_eq(same_policy(&p, &sentinel), true, "a refused policy was written");
    ts_rmtree(dir);
}

Test(load, resolve_takes_a_preset_or_a_file)
{
    char dir[256], path[512];
    cr_assert_eq(ts_mkdtemp(dir, sizeof dir), 0);
    cs_policy p = sentinel, want;
    cs_error err = {0};

    cr_assert_eq(cs_policy_resolve("binpack", &p, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(cs_policy_preset("binpack", &want, &err), CS_OK);
    cr_assert_eq(same_policy(&p, &want), true);

    snprintf(path, sizeof path, "%s/policy.json", dir);
    const char *text = "{\"kind\": \"Policy\", \"apiVersion\": \"v1\", \"predicates\": [],"
                       " \"priorities\": [{\"name\": \"MostRequestedPriority\", \"weight\": 2}]}";
    write_file(path, text, strlen(text));
    cr_assert_eq(cs_policy_resolve(path, &p, &err), CS_OK, "%s", err.msg);
    cr_assert_eq(p.predicates, (uint32_t)CS_PRED_ENFORCED);
    cr_assert_eq(p.weights[CS_PRIO_MOST_REQUESTED], 2u);

    cr_assert_eq(cs_policy_resolve("", &p, &err), CS_EINVAL);
    cr_assert(strstr(err.msg, "spread, binpack, random") != NULL, "%s", err.msg);
    cr_assert_eq(cs_policy_resolve("no-such-preset-or-file", &p, &err), CS_ENOTFOUND);
    cr_assert(strstr(err.msg, "no-such-preset-or-file") != NULL, "%s", err.msg);
    ts_rmtree(dir);
}

/* ---- scores ------------------------------------------------------------------------ */

/* The brief's worked example: a 4-core, 8 GiB machine with 1000m / 2 GiB
 * allocated and a task of 1000m / 2 GiB: half of each is then in use. */
static const cs_res cap = {4000, 8192, 100000};
static const cs_res alloc = {1000, 2048, 0};
static const cs_res req = {1000, 2048, 50000};

Test(score, least_requested_worked_examples)
{
    cr_assert_float_eq(cs_policy_least_requested(&cap, &alloc, &req), 5.0, EPS);
    cs_res none = {0, 0, 0};
    /* cpu (4000 - 1000) * 10 / 4000 = 7.5; mem (8192 - 6144) * 10 / 8192 = 2.5 */
    cr_assert_float_eq(cs_policy_least_requested(&cap, &none, &(cs_res){1000, 6144, 0}), 5.0, EPS);
    /* cpu 7.5, mem 7.5 */
    cr_assert_float_eq(cs_policy_least_requested(&cap, &none, &(cs_res){1000, 2048, 0}), 7.5, EPS);
    cr_assert_float_eq(cs_policy_least_requested(&cap, &none, &none), 10.0, EPS);
}

Test(score, most_requested_worked_examples)
{
    cr_assert_float_eq(cs_policy_most_requested(&cap, &alloc, &req), 5.0, EPS);
    cs_res none = {0, 0, 0};
    /* cpu 1000 * 10 / 4000 = 2.5; mem 8192 * 10 / 8192 = 10 */
    cr_assert_float_eq(cs_policy_most_requested(&cap, &none, &(cs_res){1000, 8192, 0}), 6.25, EPS);
    cr_assert_float_eq(cs_policy_most_requested(&cap, &none, &none), 0.0, EPS);
}

Test(score, balanced_worked_examples)
{
    /* 0.5 and 0.5: perfectly balanced */
    cr_assert_float_eq(cs_policy_balanced(&cap, &alloc, &req), 10.0, EPS);
    /* cpu 2000/4000 = 0.5, mem 6144/8192 = 0.75: 10 - 0.25 * 10 */
    cr_assert_float_eq(cs_policy_balanced(&cap, &alloc, &(cs_res){1000, 4096, 0}), 7.5, EPS);
    /* Full on cpu: 0 however close the fractions (Kubernetes) */
    cr_assert_float_eq(cs_policy_balanced(&cap, &(cs_res){3000, 7168, 0}, &(cs_res){1000, 1024, 0}),
                       0.0, EPS);
}

Test(score, overcommit_and_missing_resources_score_zero)
{
    cs_res over = {3500, 0, 0}; /* cpu requested 4500 > 4000; mem 2048 fits */
    /* cpu 0; mem (8192 - 2048) * 10 / 8192 = 7.5 */
    cr_assert_float_eq(cs_policy_least_requested(&cap, &alloc, &over), 3.75, EPS);
    /* cpu 0; mem 2048 * 10 / 8192 = 2.5 */
    cr_assert_float_eq(cs_policy_most_requested(&cap, &alloc, &over), 1.25, EPS);
    cr_assert_float_eq(cs_policy_balanced(&cap, &alloc, &over), 0.0, EPS);

    cs_res nocpu = {0, 8192, 0}, none = {0, 0, 0}, small = {0, 2048, 0};
    /* cpu has no capacity: 0 for it, mem counts */
    cr_assert_float_eq(cs_policy_least_requested(&nocpu, &none, &small), 3.75, EPS);
    cr_assert_float_eq(cs_policy_most_requested(&nocpu, &none, &small), 1.25, EPS);
    /* a machine without cpu is full on cpu */
    cr_assert_float_eq(cs_policy_balanced(&nocpu, &none, &small), 0.0, EPS);
}

Test(score, spreading_favours_fewest_tasks_of_the_job)
{
    cr_assert_float_eq(cs_policy_spreading(0, 0), 10.0, EPS);
    cr_assert_float_eq(cs_policy_spreading(0, 4), 10.0, EPS);
    cr_assert_float_eq(cs_policy_spreading(1, 4), 7.5, EPS);
    cr_assert_float_eq(cs_policy_spreading(4, 4), 0.0, EPS);
    cr_assert_float_eq(cs_policy_spreading(5, 4), 0.0, EPS);
}

Test(score, taint_toleration_favours_fewest_untolerated_prefer_no_schedule_taints)
{
    cr_assert_float_eq(cs_policy_taint_toleration(0, 0), 10.0, EPS);
    cr_assert_float_eq(cs_policy_taint_toleration(0, 2), 10.0, EPS);
    cr_assert_float_eq(cs_policy_taint_toleration(1, 2), 5.0, EPS);
    cr_assert_float_eq(cs_policy_taint_toleration(2, 2), 0.0, EPS);
    cr_assert_float_eq(cs_policy_taint_toleration(3, 2), 0.0, EPS);
}

Test(score, node_affinity_is_relative_to_the_best_machine)
{
    cr_assert_float_eq(cs_policy_node_affinity(3, 4), 7.5, EPS);
    cr_assert_float_eq(cs_policy_node_affinity(4, 4), 10.0, EPS);
    cr_assert_float_eq(cs_policy_node_affinity(0, 0), 0.0, EPS);
    cr_assert_float_eq(cs_policy_node_affinity(5, 4), 10.0, EPS);
    cr_assert_float_eq(cs_policy_node_affinity(-1, 4), 0.0, EPS);
}

Test(score, job_affinity_spans_the_range_including_zero)
{
    cr_assert_float_eq(cs_policy_job_affinity(-2, -2, 2), 0.0, EPS);
    cr_assert_float_eq(cs_policy_job_affinity(0, -2, 2), 5.0, EPS);
    cr_assert_float_eq(cs_policy_job_affinity(2, -2, 2), 10.0, EPS);
    /* every machine attracts alike: the range is [0, 3], so all score 10 */
    cr_assert_float_eq(cs_policy_job_affinity(3, 3, 3), 10.0, EPS);
    /* every machine repels alike: [-3, 0], all score 0 */
    cr_assert_float_eq(cs_policy_job_affinity(-3, -3, -3), 0.0, EPS);
    cr_assert_float_eq(cs_policy_job_affinity(1, 1, 4), 2.5, EPS);
    cr_assert_float_eq(cs_policy_job_affinity(0, 0, 0), 0.0, EPS);
}

Test(score, resource_scores_fill_only_their_slots)
{
    double s[CS_PRIO_COUNT];
    for (int i = 0; i < CS_PRIO_COUNT; i++)
        s[i] = -1.0;
    cs_policy_resource_scores(&cap, &alloc, &(cs_res){1000, 4096, 0}, s);
    /* requested 2000m of 4000m (0.5) and 6144 of 8192 MiB (0.75) */
    cr_assert_float_eq(s[CS_PRIO_LEAST_REQUESTED], (5.0 + 2.5) / 2, EPS);
    cr_assert_float_eq(s[CS_PRIO_MOST_REQUESTED], (5.0 + 7.5) / 2, EPS);
    cr_assert_float_eq(s[CS_PRIO_BALANCED], 7.5, EPS);
    cr_assert_float_eq(s[CS_PRIO_EQUAL], 1.0, EPS);
    cr_assert_float_eq(s[CS_PRIO_SPREADING], -1.0, EPS);
    cr_assert_float_eq(s[CS_PRIO_NODE_AFFINITY], -1.0, EPS);
    cr_assert_float_eq(s[CS_PRIO_JOB_AFFINITY], -1.0, EPS);
}

Test(score, combine_is_the_weighted_sum_of_used_priorities)
{
    cs_policy p = {.predicates = CS_PRED_ALL,
                   .weights = {[CS_PRIO_LEAST_REQUESTED] = 2, [CS_PRIO_SPREADING] = 3,
                               [CS_PRIO_JOB_AFFINITY] = 1}};
    double s[CS_PRIO_COUNT];
    for (int i = 0; i < CS_PRIO_COUNT; i++)
        s[i] = NAN; /* unused slots are not read: a NaN there would spoil the sum */
    s[CS_PRIO_LEAST_REQUESTED] = 5.0;
    s[CS_PRIO_SPREADING] = 7.5;
    s[CS_PRIO_JOB_AFFINITY] = 10.0;
    cr_assert_float_eq(cs_policy_combine(&p, s), 2 * 5.0 + 3 * 7.5 + 10.0, EPS);
}

Test(score, score_resources_under_each_preset)
{
    cs_policy spread, binpack, random;
    cr_assert_eq(cs_policy_preset("spread", &spread, NULL), CS_OK);
    cr_assert_eq(cs_policy_preset("binpack", &binpack, NULL), CS_OK);
    cr_assert_eq(cs_policy_preset("random", &random, NULL), CS_OK);
    /* least 5 + balanced 10 */
    cr_assert_float_eq(cs_policy_score_resources(&spread, &cap, &alloc, &req), 15.0, EPS);
    cr_assert_float_eq(cs_policy_score_resources(&binpack, &cap, &alloc, &req), 5.0, EPS);
    cr_assert_float_eq(cs_policy_score_resources(&random, &cap, &alloc, &req), 1.0, EPS);
    cs_policy p = {.weights = {[CS_PRIO_LEAST_REQUESTED] = 2, [CS_PRIO_EQUAL] = 3}};
    cr_assert_float_eq(cs_policy_score_resources(&p, &cap, &alloc, &req), 13.0, EPS);

    /* spread prefers the emptier machine, binpack the fuller one */
    cs_res fuller = {2000, 4096, 0};
    cs_res none = {0, 0, 0};
    cr_assert_gt(cs_policy_score_resources(&spread, &cap, &none, &req),
                 cs_policy_score_resources(&spread, &cap, &fuller, &req));
    cr_assert_lt(cs_policy_score_resources(&binpack, &cap, &none, &req),
                 cs_policy_score_resources(&binpack, &cap, &fuller, &req));
}
