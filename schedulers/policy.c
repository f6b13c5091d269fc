/* policy.c — placement policy: presets, Kubernetes legacy Policy files and
 * the 0..10 priority scores (see policy.h). */
#include "schedulers/policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

/* A Policy file is a few hundred bytes; the bound only keeps a wrong path
 * (a log, a disk image) from being read whole. */
#define POLICY_FILE_MAX (1u << 20)

/* One name of a Policy file and what it means: predicate bits, or a
 * cs_priority. */
typedef struct named {
    const char *name;
    uint32_t value;
} named;

/* The bits a listed name sets; every one but NoDiskConflict's is in
 * CS_PRED_ENFORCED already, so listing it changes nothing. */
static const named predicate_names[] = {
    {"PodFitsPorts", CS_PRED_PORTS},
    {"PodFitsHostPorts", CS_PRED_PORTS},
    {"PodFitsResources", 0},
    {"NoDiskConflict", CS_PRED_DISK_CONFLICT},
    {"MatchNodeSelector", CS_PRED_SELECTOR},
    {"HostName", CS_PRED_HOSTNAME},
    {"GeneralPredicates", CS_PRED_PORTS | CS_PRED_SELECTOR | CS_PRED_HOSTNAME},
    {"CheckNodeCondition", 0},
    {"CheckNodeUnschedulable", 0}, /* only `up` machines take tasks */
    {"MatchInterPodAffinity", CS_PRED_AFFINITY},
    {"PodToleratesNodeTaints", CS_PRED_TAINTS},
    {"PodToleratesNodeNoExecuteTaints", CS_PRED_TAINTS},
    {"NoVolumeZoneConflict", 0}, /* host volumes have no zone */
};

static const named priority_names[] = {
    {"LeastRequestedPriority", CS_PRIO_LEAST_REQUESTED},
    {"MostRequestedPriority", CS_PRIO_MOST_REQUESTED},
    {"BalancedResourceAllocation", CS_PRIO_BALANCED},
    {"ServiceSpreadingPriority", CS_PRIO_SPREADING},
    {"SelectorSpreadPriority", CS_PRIO_SPREADING},
    {"EqualPriority", CS_PRIO_EQUAL},
    {"NodeAffinityPriority", CS_PRIO_NODE_AFFINITY},
    {"InterPodAffinityPriority", CS_PRIO_JOB_AFFINITY},
    {"TaintTolerationPriority", CS_PRIO_TAINT_TOLERATION},
};

/* Kubernetes names that need container images or cloud volumes, which a
 * cell does not have: accepted, ignored, and named in one warning. The
 * index is the bit in cs_policy.ignored. */
typedef struct ignored_name {
    const char *name;
    bool priority; /* listed under "priorities" (else "predicates") */
    const char *needs;
} ignored_name;

static const ignored_name ignored_names[] = {
    {"ImageLocalityPriority", true, "container images"},
    {"MaxEBSVolumeCount", false, "cloud volumes"},
    {"MaxGCEPDVolumeCount", false, "cloud volumes"},
    {"MaxAzureDiskVolumeCount", false, "cloud volumes"},
    {"MaxCinderVolumeCount", false, "cloud volumes"},
    {"MaxCSIVolumeCountPred", false, "cloud volumes"},
    {"CheckVolumeBinding", false, "cloud volumes"},
    {"NoVolumeNodeConflict", false, "cloud volumes"},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const named *lookup(const named *table, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    return NULL;
}

const char *cs_priority_name(cs_priority p)
{
    switch (p) {
    case CS_PRIO_LEAST_REQUESTED: return "LeastRequestedPriority";
    case CS_PRIO_MOST_REQUESTED: return "MostRequestedPriority";
    case CS_PRIO_BALANCED: return "BalancedResourceAllocation";
    case CS_PRIO_SPREADING: return "SelectorSpreadPriority";
    case CS_PRIO_EQUAL: return "EqualPriority";
    case CS_PRIO_NODE_AFFINITY: return "NodeAffinityPriority";
    case CS_PRIO_JOB_AFFINITY: return "InterPodAffinityPriority";
    case CS_PRIO_TAINT_TOLERATION: return "TaintTolerationPriority";
    case CS_PRIO_COUNT: break;
    }
    return "unknown";
}

const char *cs_predicate_name(cs_predicate p)
{
    switch ((uint32_t)p) {
    case CS_PRED_PORTS: return "PodFitsHostPorts";
    case CS_PRED_DISK_CONFLICT: return "NoDiskConflict";
    case CS_PRED_SELECTOR: return "MatchNodeSelector";
    case CS_PRED_HOSTNAME: return "HostName";
    case CS_PRED_AFFINITY: return "MatchInterPodAffinity";
    case CS_PRED_SPREAD: return "Spread";
    case CS_PRED_TAINTS: return "PodToleratesNodeTaints";
    default: return "unknown";
    }
}

/* ---- presets ----------------------------------------------------------------- */

typedef struct preset {
    const char *name;
    cs_policy policy;
} preset;

/* Soft constraints weigh 1 in every preset: they are the job's request;
 * so do PreferNoSchedule taints, the machine owner's (Kubernetes' default
 * provider weighs TaintTolerationPriority 1). */
static const preset presets[] = {
    {"spread",
     {.predicates = CS_PRED_ALL,
      .weights = {[CS_PRIO_LEAST_REQUESTED] = 1, [CS_PRIO_BALANCED] = 1, [CS_PRIO_SPREADING] = 1,
                  [CS_PRIO_NODE_AFFINITY] = 1, [CS_PRIO_JOB_AFFINITY] = 1,
                  [CS_PRIO_TAINT_TOLERATION] = 1},
      .fewest_tasks = true}},
    {"binpack",
     {.predicates = CS_PRED_ALL,
      .weights = {[CS_PRIO_MOST_REQUESTED] = 1, [CS_PRIO_NODE_AFFINITY] = 1,
                  [CS_PRIO_JOB_AFFINITY] = 1, [CS_PRIO_TAINT_TOLERATION] = 1}}},
    {"random",
     {.predicates = CS_PRED_ALL,
      .weights = {[CS_PRIO_EQUAL] = 1, [CS_PRIO_NODE_AFFINITY] = 1, [CS_PRIO_JOB_AFFINITY] = 1,
                  [CS_PRIO_TAINT_TOLERATION] = 1}}},
    {"firstfit",
     {.predicates = CS_PRED_ALL,
      .weights = {[CS_PRIO_EQUAL] = 1, [CS_PRIO_NODE_AFFINITY] = 1, [CS_PRIO_JOB_AFFINITY] = 1,
                  [CS_PRIO_TAINT_TOLERATION] = 1},
      .first_fit = true}},
};

static const cs_policy *find_preset(const char *name)
{
    for (size_t i = 0; i < NELEM(presets); i++)
        if (strcmp(presets[i].name, name) == 0)
            return &presets[i].policy;
    return NULL;
}

bool cs_policy_warning(const cs_policy *p, char *buf, size_t size)
{
    if (size == 0)
        return p->ignored != 0;
    buf[0] = '\0';
    if (p->ignored == 0)
        return false;
    size_t o = (size_t)snprintf(buf, size, "policy: ignoring");
    const char *sep = " ";
    for (size_t i = 0; i < NELEM(ignored_names) && o < size; i++) {
        if (!(p->ignored & (1u << i)))
            continue;
        int w = snprintf(buf + o, size - o, "%s%s (%s)", sep, ignored_names[i].name,
                         ignored_names[i].needs);
        o += w > 0 ? (size_t)w : 0;
        sep = ", ";
    }
    if (o < size)
        snprintf(buf + o, size - o, ": a cell has no container images or cloud volumes");
    return true;
}

int cs_policy_preset(const char *name, cs_policy *out, cs_error *err)
{
    const cs_policy *p = name != NULL ? find_preset(name) : NULL;
    if (p == NULL)
        return cs_errorf(err, CS_EINVAL,
                         "unknown policy preset \"%.64s\" "
                         "(valid: spread, binpack, random, firstfit)",
                         name != NULL ? name : "(null)");
    *out = *p;
    return CS_OK;
}

/* ---- Kubernetes Policy files ------------------------------------------------- */

/* Top-level keys of Kubernetes' legacy Policy that cellsched does not
 * implement: named as such rather than as unknown, so that a user who
 * copied a working Kubernetes file learns what to remove. */
static const char *const unsupported_keys[] = {"extenders", "hardPodAffinitySymmetricWeight",
                                               "alwaysCheckAllPredicates"};

static int check_top_keys(json_t *root, cs_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach (root, key, v) {
        if (strcmp(key, "kind") == 0 || strcmp(key, "apiVersion") == 0 ||
            strcmp(key, "predicates") == 0 || strcmp(key, "priorities") == 0)
            continue;
        for (size_t i = 0; i < NELEM(unsupported_keys); i++)
            if (strcmp(key, unsupported_keys[i]) == 0)
                return cs_errorf(err, CS_EINVAL, "%s: not supported", key);
        return cs_errorf(err, CS_EINVAL,
                         "unknown key \"%.64s\" (a Policy has kind, apiVersion, predicates, "
                         "priorities)",
                         key);
    }
    return CS_OK;
}

static int check_const(json_t *root, const char *key, const char *want, cs_error *err)
{
    json_t *v = json_object_get(root, key);
    if (v == NULL)
        return cs_errorf(err, CS_EINVAL, "%s: missing (expected \"%s\")", key, want);
    if (!json_is_string(v) || strcmp(json_string_value(v), want) != 0)
        return cs_errorf(err, CS_EINVAL, "%s: expected \"%s\"", key, want);
    return CS_OK;
}

/* What an entry of "predicates" or "priorities" may name. */
typedef struct entry_kind {
    const char *list; /* the array's key */
    const char *what; /* one entry's noun, for errors */
    const named *table;
    size_t n;
    bool weighted; /* entries carry a "weight" */
} entry_kind;

static const entry_kind predicate_entries = {"predicates", "predicate", predicate_names,
                                             NELEM(predicate_names), false};
static const entry_kind priority_entries = {"priorities", "priority", priority_names,
                                            NELEM(priority_names), true};

/* The names of a file that are refused, gathered so that one message names
 * them all: a user who copied a Kubernetes file fixes it in one go. */
typedef struct unknowns {
    char text[CS_ERROR_MSG_SIZE];
    size_t len;
    uint32_t n;
} unknowns;

static void add_unknown(unknowns *u, const char *list, size_t i, const char *what,
                        const char *name)
{
    if (u->len >= sizeof u->text)
        return; /* full: the message is cut, the refusal stands */
    int w = snprintf(u->text + u->len, sizeof u->text - u->len, "%s%s[%zu]: unknown %s \"%.64s\"",
                     u->n ? "; " : "", list, i, what, name);
    u->len += w > 0 ? (size_t)w : 0;
    u->n++;
}

/* The bit in cs_policy.ignored of a name cellsched ignores, listed in the
 * right list; -1 if it is not one. */
static int ignored_bit(const char *name, bool priority)
{
    for (size_t i = 0; i < NELEM(ignored_names); i++)
        if (ignored_names[i].priority == priority && strcmp(ignored_names[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* Entry i of `arr` must be an object with a string "name", not named
 * before, and no keys but "name" and, when weighted, "weight". What the
 * name means is returned through `out`: NULL for a name `k` does not know
 * (the caller then looks for it among the ignored ones, else gathers it). */
static int entry_lookup(json_t *arr, size_t i, const entry_kind *k, const named **out,
                        cs_error *err)
{
    const char *list = k->list;
    bool weighted = k->weighted;
    json_t *e = json_array_get(arr, i);
    if (!json_is_object(e))
        return cs_errorf(err, CS_EINVAL, "%s[%zu]: expected an object", list, i);
    const char *key;
    json_t *v;
    json_object_foreach (e, key, v) {
        if (strcmp(key, "name") == 0 || (weighted && strcmp(key, "weight") == 0))
            continue;
        /* Kubernetes' custom predicates and priorities (serviceAffinity,
         * labelsPresence, labelPreference) come as an argument. */
        if (strcmp(key, "argument") == 0)
            return cs_errorf(err, CS_EINVAL, "%s[%zu].argument: not supported", list, i);
        return cs_errorf(err, CS_EINVAL, "%s[%zu]: unknown key \"%.64s\"", list, i, key);
    }
    json_t *n = json_object_get(e, "name");
    if (n == NULL)
        return cs_errorf(err, CS_EINVAL, "%s[%zu]: \"name\" is missing", list, i);
    if (!json_is_string(n))
        return cs_errorf(err, CS_EINVAL, "%s[%zu].name: expected a string", list, i);
    const char *name = json_string_value(n);
    for (size_t j = 0; j < i; j++) {
        const char *earlier = json_string_value(json_object_get(json_array_get(arr, j), "name"));
        if (earlier != NULL && strcmp(earlier, name) == 0)
            return cs_errorf(err, CS_EINVAL, "%s[%zu]: \"%.64s\" repeats %s[%zu]", list, i, name,
                             list, j);
    }
    *out = lookup(k->table, k->n, name);
    return CS_OK;
}

/* A name entry_lookup did not find: ignored (its bit set) or unknown. */
static void not_found(json_t *arr, size_t i, const entry_kind *k, uint32_t *ignored,
                      unknowns *u)
{
    const char *name = json_string_value(json_object_get(json_array_get(arr, i), "name"));
    int bit = ignored_bit(name, k->weighted);
    if (bit >= 0)
        *ignored |= 1u << bit;
    else
        add_unknown(u, k->list, i, k->what, name);
}

/* "predicates" or "priorities": absent (NULL through `arr`, not an error)
 * or an array. */
static int get_list(json_t *root, const char *key, json_t **arr, cs_error *err)
{
    *arr = json_object_get(root, key);
    if (*arr != NULL && !json_is_array(*arr))
        return cs_errorf(err, CS_EINVAL, "%s: expected an array", key);
    return CS_OK;
}

static int parse_predicates(json_t *arr, uint32_t *bits, uint32_t *ignored, unknowns *u,
                            cs_error *err)
{
    /* A job's hard constraints are its contract, and the machine's taints
     * its owner's: a file that lists its predicates cannot drop them. */
    *bits = CS_PRED_ENFORCED;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const named *n;
        int rc = entry_lookup(arr, i, &predicate_entries, &n, err);
        if (rc != CS_OK)
            return rc;
        if (n == NULL) {
            not_found(arr, i, &predicate_entries, ignored, u);
            continue;
        }
        /* Overlaps (GeneralPredicates with PodFitsPorts) are harmless: a
         * filter applied twice is applied once. */
        *bits |= n->value;
    }
    return CS_OK;
}

static int parse_weight(json_t *entry, size_t i, uint32_t *weight, cs_error *err)
{
    json_t *w = json_object_get(entry, "weight");
    if (w == NULL)
        return cs_errorf(err, CS_EINVAL, "priorities[%zu]: \"weight\" is missing", i);
    json_int_t x = json_is_integer(w) ? json_integer_value(w) : 0;
    if (x <= 0 || x > (json_int_t)UINT32_MAX)
        return cs_errorf(err, CS_EINVAL,
                         "priorities[%zu].weight: must be a positive integer (1..%u)", i,
                         UINT32_MAX);
    *weight = (uint32_t)x;
    return CS_OK;
}

static int parse_priorities(json_t *arr, uint32_t weights[CS_PRIO_COUNT], uint32_t *ignored,
                            unknowns *u, cs_error *err)
{
    size_t first[CS_PRIO_COUNT];
    memset(weights, 0, CS_PRIO_COUNT * sizeof weights[0]);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const named *n;
        int rc = entry_lookup(arr, i, &priority_entries, &n, err);
        if (rc != CS_OK)
            return rc;
        if (n == NULL) {
            uint32_t unused;
            /* An ignored priority's weight is still checked: the file
             * must be a valid Policy for Kubernetes too. */
            if ((rc = parse_weight(json_array_get(arr, i), i, &unused, err)) != CS_OK)
                return rc;
            not_found(arr, i, &priority_entries, ignored, u);
            continue;
        }
        /* Same name twice was caught by entry_lookup; this is the other name
         * of the spreading priority. One weight cannot hold two. */
        if (weights[n->value] != 0)
            return cs_errorf(err, CS_EINVAL,
                             "priorities[%zu]: \"%s\" is the same priority as priorities[%zu]",
                             i, n->name, first[n->value]);
        rc = parse_weight(json_array_get(arr, i), i, &weights[n->value], err);
        if (rc != CS_OK)
            return rc;
        first[n->value] = i;
    }
    /* Kubernetes with no priority configured scores every node alike. */
    if (json_array_size(arr) == 0)
        weights[CS_PRIO_EQUAL] = 1;
    return CS_OK;
}

static int policy_from_json(json_t *root, cs_policy *out, cs_error *err)
{
    if (!json_is_object(root))
        return cs_errorf(err, CS_EINVAL, "expected a JSON object (a Kubernetes Policy)");
    json_t *preds, *prios;
    int rc = check_top_keys(root, err);
    if (rc == CS_OK)
        rc = check_const(root, "kind", "Policy", err);
    if (rc == CS_OK)
        rc = check_const(root, "apiVersion", "v1", err);
    if (rc == CS_OK)
        rc = get_list(root, "predicates", &preds, err);
    if (rc == CS_OK)
        rc = get_list(root, "priorities", &prios, err);
    if (rc != CS_OK)
        return rc;

    cs_policy p = *find_preset("spread");
    p.fewest_tasks = false; /* Swarm's rule, not Kubernetes' */
    unknowns u = {.len = 0};
    u.text[0] = '\0';
    if (preds != NULL && (rc = parse_predicates(preds, &p.predicates, &p.ignored, &u, err)) != CS_OK)
        return rc;
    if (prios != NULL && (rc = parse_priorities(prios, p.weights, &p.ignored, &u, err)) != CS_OK)
        return rc;
    if (u.n > 0)
        return cs_errorf(err, CS_EINVAL, "%s", u.text);
    if (p.weights[CS_PRIO_NODE_AFFINITY] == 0)
        p.weights[CS_PRIO_NODE_AFFINITY] = 1;
    if (p.weights[CS_PRIO_JOB_AFFINITY] == 0)
        p.weights[CS_PRIO_JOB_AFFINITY] = 1;
    *out = p;
    return CS_OK;
}

int cs_policy_parse(const char *json, size_t len, cs_policy *out, cs_error *err)
{
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return cs_errorf(err, CS_EINVAL, "not JSON: line %d column %d: %s", je.line, je.column,
                         je.text);
    int rc = policy_from_json(root, out, err);
    json_decref(root);
    return rc;
}

/* The whole file into a malloc'd buffer (the caller frees it). */
static int read_whole(const char *path, char **buf, size_t *len, cs_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return cs_errorf(err, errno == ENOENT ? CS_ENOTFOUND : CS_EIO, "%s: %s", path,
                         strerror(errno));
    int rc = CS_OK;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        rc = cs_errorf(err, CS_EIO, "%s: %s", path, strerror(errno));
        goto out_close;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = cs_errorf(err, CS_EINVAL, "%s: not a regular file", path);
        goto out_close;
    }
    if (st.st_size > (off_t)POLICY_FILE_MAX) {
        rc = cs_errorf(err, CS_ETOOBIG, "%s: %lld bytes, larger than a Policy file may be (%u)",
                       path, (long long)st.st_size, POLICY_FILE_MAX);
        goto out_close;
    }
    *buf = malloc((size_t)st.st_size + 1);
    if (*buf == NULL) {
        rc = cs_errorf(err, CS_ENOMEM, "%s: out of memory", path);
        goto out_close;
    }
    *len = fread(*buf, 1, (size_t)st.st_size, f);
    if (ferror(f)) {
        rc = cs_errorf(err, CS_EIO, "%s: %s", path, strerror(errno));
        free(*buf);
        *buf = NULL;
    }
out_close:
    fclose(f);
    return rc;
}

int cs_policy_load(const char *path, cs_policy *out, cs_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = read_whole(path, &buf, &len, err);
    if (rc != CS_OK)
        return rc;
    rc = cs_policy_parse(buf, len, out, err);
    if (rc != CS_OK)
        cs_error_wrap(err, rc, "%s", path);
    free(buf);
    return rc;
}

int cs_policy_resolve(const char *arg, cs_policy *out, cs_error *err)
{
    const cs_policy *p = arg != NULL ? find_preset(arg) : NULL;
    if (p != NULL) {
        *out = *p;
        return CS_OK;
    }
    if (arg == NULL || arg[0] == '\0')
        return cs_errorf(err, CS_EINVAL,
                         "policy: expected a preset (spread, binpack, random, firstfit) "
                         "or a Policy file");
    return cs_policy_load(arg, out, err);
}

/* ---- scores ------------------------------------------------------------------ */

static double clamp_score(double s)
{
    if (!(s > 0.0)) /* also NaN */
        return 0.0;
    return s > CS_POLICY_MAX_SCORE ? CS_POLICY_MAX_SCORE : s;
}

/* Kubernetes' leastRequestedScore and mostRequestedScore for one resource:
 * 0 when the machine has none of it or the request does not fit. */
static double least_one(int64_t cap, int64_t requested)
{
    if (cap <= 0 || requested > cap)
        return 0.0;
    return clamp_score((double)(cap - requested) * CS_POLICY_MAX_SCORE / (double)cap);
}

static double most_one(int64_t cap, int64_t requested)
{
    if (cap <= 0 || requested > cap)
        return 0.0;
    return clamp_score((double)requested * CS_POLICY_MAX_SCORE / (double)cap);
}

double cs_policy_least_requested(const cs_res *cap, const cs_res *alloc, const cs_res *req)
{
    return (least_one(cap->cpu, alloc->cpu + req->cpu) +
            least_one(cap->mem, alloc->mem + req->mem)) / 2.0;
}

double cs_policy_most_requested(const cs_res *cap, const cs_res *alloc, const cs_res *req)
{
    return (most_one(cap->cpu, alloc->cpu + req->cpu) + most_one(cap->mem, alloc->mem + req->mem)) /
           2.0;
}

/* Kubernetes' fractionOfCapacity: a machine without the resource is full. */
static double fraction(int64_t cap, int64_t requested)
{
    return cap <= 0 ? 1.0 : (double)requested / (double)cap;
}

double cs_policy_balanced(const cs_res *cap, const cs_res *alloc, const cs_res *req)
{
    double cpu = fraction(cap->cpu, alloc->cpu + req->cpu);
    double mem = fraction(cap->mem, alloc->mem + req->mem);
    /* A full machine is not balanced, however equal its fractions. */
    if (cpu >= 1.0 || mem >= 1.0)
        return 0.0;
    double diff = cpu > mem ? cpu - mem : mem - cpu;
    return clamp_score(CS_POLICY_MAX_SCORE - diff * CS_POLICY_MAX_SCORE);
}

/* Kubernetes' reversed normalisation: 10 for the fewest, 0 for the most;
 * 10 everywhere when the most is 0. */
static double fewer_is_better(uint32_t n, uint32_t max)
{
    if (max == 0)
        return CS_POLICY_MAX_SCORE;
    if (n > max)
        return 0.0;
    return CS_POLICY_MAX_SCORE * (double)(max - n) / (double)max;
}

double cs_policy_taint_toleration(uint32_t bad, uint32_t max_bad)
{
    return fewer_is_better(bad, max_bad);
}

double cs_policy_spreading(uint32_t here, uint32_t max_here)
{
    return fewer_is_better(here, max_here);
}

double cs_policy_node_affinity(double matched, double max_matched)
{
    if (!(max_matched > 0.0))
        return 0.0;
    return clamp_score(CS_POLICY_MAX_SCORE * matched / max_matched);
}

double cs_policy_job_affinity(double raw, double lo, double hi)
{
    if (lo > 0.0)
        lo = 0.0;
    if (hi < 0.0)
        hi = 0.0;
    if (!(hi > lo))
        return 0.0;
    return clamp_score(CS_POLICY_MAX_SCORE * (raw - lo) / (hi - lo));
}

void cs_policy_resource_scores(const cs_res *cap, const cs_res *alloc, const cs_res *req,
                               double scores[CS_PRIO_COUNT])
{
    scores[CS_PRIO_LEAST_REQUESTED] = cs_policy_least_requested(cap, alloc, req);
    scores[CS_PRIO_MOST_REQUESTED] = cs_policy_most_requested(cap, alloc, req);
    scores[CS_PRIO_BALANCED] = cs_policy_balanced(cap, alloc, req);
    scores[CS_PRIO_EQUAL] = 1.0;
}

double cs_policy_combine(const cs_policy *p, const double scores[CS_PRIO_COUNT])
{
    double sum = 0.0;
    for (int i = 0; i < CS_PRIO_COUNT; i++)
        if (p->weights[i] != 0)
            sum += (double)p->weights[i] * scores[i];
    return sum;
}

double cs_policy_score_resources(const cs_policy *p, const cs_res *cap, const cs_res *alloc,
                                 const cs_res *req)
{
    double scores[CS_PRIO_COUNT] = {0};
    cs_policy_resource_scores(cap, alloc, req, scores);
    return cs_policy_combine(p, scores);
}
