/* replica.c — the cell state replicated with Raft (see replica.h): the
 * cluster file, the log's entries, the state machine libraft applies them
 * to, its snapshots, and the runtime on libuv.
 *
 * The only file of cellstated that includes <raft.h>: the rest speaks of
 * replicas, leaders and indexes through replica.h.
 *
 * Known bugs of libraft 0.15 (Debian's), from upstream's Jepsen work, and
 * what they mean here (docs/design.md, replication, has the long form):
 *
 * - #355 (assertion `last_applied <= commit_index`, Jepsen, Jan 2023) was
 *   brought in by PRs #351/#352, merged after 0.15 (Aug 2022): 0.15 has
 *   not the code, only the assertion, which test_replica's fault runs
 *   would trip.
 * - PR #362 reverted #351 (drop an AppendEntries result when the state
 *   changed during its disk write), which was the cause of #355. Neither
 *   is in 0.15, so 0.15 keeps the bug #351 aimed at (#339, fixed by #367):
 *   a follower whose term changes while it writes entries may answer a
 *   leader that did not send them, through a stale leader address. Guard:
 *   pre-vote, so that an isolated member does not raise terms; crash-only
 *   restarts if it crashes; test_replica delays and drops messages across
 *   elections and compares every store byte for byte.
 * - #390 (Jepsen: inconsistent reads and lost writes reported against
 *   later versions, open): the stores could differ without anyone
 *   noticing. Guard: the replicas' stores are compared (test_replica,
 *   byte for byte; the applied hook's results index by index).
 * - cowsql/raft PR #100: a snapshot taken right after a failed
 *   InstallSnapshot could capture a half-installed state. Here a failed
 *   restore either leaves the store untouched (refused before closing
 *   it) or stops the process; and fsm_snapshot refuses (RAFT_BUSY) to
 *   take a snapshot of a store whose applied index is behind raft's, so
 *   that no snapshot claims more than its copy holds.
 * Two more that bite this use directly, found reading 0.15 (both fixed
 * upstream by PR #336): the commit index is computed only at the leader's
 * last stored index, so a leader under steady load commits nothing
 * (may_append keeps one batch in flight); and an entry of an earlier term
 * may be committed by counting replicas (Raft §5.4.2, #220): a new leader
 * appends a barrier of its term at once, which closes all but the window
 * of its own first disk write. And one of raft_uv's: entries must be a
 * multiple of 8 bytes long (the entries section says why). And a member
 * that returns with an empty directory: the leader still holds its old
 * match index, so the reply to the snapshot it sends does not move that
 * follower out of the snapshot state (progressMaybeUpdate sees nothing
 * new) and it gets no entries until the install-snapshot timeout
 * (opts.install_snapshot_timeout_ms; test_replica wipes a member).
 */
#include "server/replica.h"

#include "cellstate/paths.h"
#include "proto/tls.h"
#include "server/rafttls.h"
#include "cellstate/be.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

/* Snapshot defaults. A snapshot copies the whole store (150 MB at C1M),
 * while an entry is a few hundred bytes to a few kilobytes: every 8,192
 * entries, which the log of a cell under load grows by in seconds, the
 * copies took a third of the members' CPU (docs/benchmarks.md,
 * Replication). 131,072 entries keep the log to some hundreds of MB; a
 * trailing 16,384 let a follower a little behind catch up from the log. */
#define SNAPSHOT_THRESHOLD 131072
#define SNAPSHOT_TRAILING 16384

/* ---- small pieces -------------------------------------------------------------- */

/* A failure that is no judgement of the cell (out of memory, an I/O error,
 * a full map, an entry this build cannot read) while applying a committed
 * entry. Every other replica applies that entry; skipping it here would
 * make this store differ from theirs for good, and retrying in place could
 * apply half of it twice. So the process stops (crash-only): the store
 * still holds the applied index of the last entry it took whole, and a
 * restart re-applies the log from there, or installs a snapshot. */
static _Noreturn void fatal(const char *what, uint64_t index, const char *msg)
{
    fprintf(stderr,
            "cellstated: replica: %s at log index %" PRIu64 ": %s; stopping so that a "
            "restart re-applies the log from the store's applied index\n",
            what, index, msg);
    fflush(stderr);
    abort();
}

const char *cs_role_name(cs_role role)
{
    switch (role) {
    case CS_ROLE_FOLLOWER:
        return "follower";
    case CS_ROLE_CANDIDATE:
        return "candidate";
    case CS_ROLE_LEADER:
        return "leader";
    default:
        return "unavailable";
    }
}

static cs_role role_of(int state)
{
    switch (state) {
    case RAFT_FOLLOWER:
        return CS_ROLE_FOLLOWER;
    case RAFT_CANDIDATE:
        return CS_ROLE_CANDIDATE;
    case RAFT_LEADER:
        return CS_ROLE_LEADER;
    default:
        return CS_ROLE_UNAVAILABLE;
    }
}

/* ---- the cluster file ---------------------------------------------------------- */

/* cellstated does not link jansson (only what reads job specs does), and
 * the cluster file has one fixed shape: an array of flat objects with an
 * integer and two strings. A parser of that shape is shorter than the build
 * change, and says exactly which member is wrong. It accepts any
 * whitespace and key order, string escapes but \u, and refuses unknown
 * keys (a misspelt "raft" would otherwise leave a member without one). */
typedef struct jp {
    const char *p, *end;
    const char *path;
    size_t member; /* 1-based, for messages; 0 outside the array */
    cs_error *err;
} jp;

static int jp_fail(jp *j, const char *what)
{
    if (j->member > 0)
        return cs_errorf(j->err, CS_EINVAL, "%s: member %zu: %s", j->path, j->member, what);
    return cs_errorf(j->err, CS_EINVAL, "%s: %s", j->path, what);
}

static void jp_ws(jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool jp_eat(jp *j, char c)
{
    jp_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return true;
    }
    return false;
}

/* A string into out[0..size) (NUL-terminated): CS_EINVAL when malformed or
 * longer than size - 1. */
static int jp_string(jp *j, char *out, size_t size, const char *what)
{
    if (!jp_eat(j, '"'))
        return jp_fail(j, "expected a string");
    size_t n = 0;
    while (j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if ((unsigned char)c < 0x20)
            return jp_fail(j, "control character in a string");
        if (c == '\\') {
            if (j->p == j->end)
                break;
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            const char *k = strchr(from, *j->p);
            if (*j->p == '\0' || k == NULL)
                return jp_fail(j, "unsupported escape in a string");
            c = to[k - from];
            j->p++;
        }
        if (n + 1 >= size) {
            char msg[96];
            snprintf(msg, sizeof msg, "\"%s\" is longer than %zu bytes", what, size - 1);
            return jp_fail(j, msg);
        }
        out[n++] = c;
    }
    if (j->p == j->end)
        return jp_fail(j, "unterminated string");
    j->p++;
    out[n] = '\0';
    return CS_OK;
}

static int jp_id(jp *j, uint64_t *out)
{
    jp_ws(j);
    uint64_t v = 0;
    const char *start = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        unsigned d = (unsigned)(*j->p++ - '0');
        if (v > (UINT64_MAX - d) / 10)
            return jp_fail(j, "\"id\" is too large");
        v = v * 10 + d;
    }
    if (j->p == start || v == 0)
        return jp_fail(j, "\"id\" must be an integer above 0");
    *out = v;
    return CS_OK;
}

static int jp_member(jp *j, cs_member *m)
{
    if (!jp_eat(j, '{'))
        return jp_fail(j, "expected an object");
    bool has_id = false, has_listen = false, has_raft = false;
    memset(m, 0, sizeof *m);
    if (!jp_eat(j, '}')) {
        do {
            char key[16];
            CS_TRY(jp_string(j, key, sizeof key, "key"));
            if (!jp_eat(j, ':'))
                return jp_fail(j, "expected ':'");
            if (strcmp(key, "id") == 0 && !has_id) {
                CS_TRY(jp_id(j, &m->id));
                has_id = true;
            } else if (strcmp(key, "listen") == 0 && !has_listen) {
                CS_TRY(jp_string(j, m->listen, sizeof m->listen, "listen"));
                has_listen = true;
            } else if (strcmp(key, "raft") == 0 && !has_raft) {
                CS_TRY(jp_string(j, m->raft, sizeof m->raft, "raft"));
                has_raft = true;
            } else {
                char msg[64];
                snprintf(msg, sizeof msg, "unknown or repeated key \"%s\"", key);
                return jp_fail(j, msg);
            }
        } while (jp_eat(j, ','));
        if (!jp_eat(j, '}'))
            return jp_fail(j, "expected ',' or '}'");
    }
    if (!has_id || !has_listen || !has_raft)
        return jp_fail(j, "needs \"id\", \"listen\" and \"raft\"");
    if (m->listen[0] == '\0')
        return jp_fail(j, "\"listen\" is empty");
    const char *colon = strrchr(m->raft, ':');
    if (colon == NULL || colon == m->raft || colon[1] == '\0')
        return jp_fail(j, "\"raft\" must be host:port");
    return CS_OK;
}

/* Ids and addresses unique: two members on one address would each take
 * the other's traffic. */
static int members_check(jp *j, const cs_member *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < i; k++) {
            j->member = i + 1;
            if (v[i].id == v[k].id)
                return jp_fail(j, "its id is another member's");
            if (strcmp(v[i].listen, v[k].listen) == 0)
                return jp_fail(j, "its \"listen\" is another member's");
            if (strcmp(v[i].raft, v[k].raft) == 0)
                return jp_fail(j, "its \"raft\" is another member's");
        }
    }
    return CS_OK;
}

#define CS_MEMBERS_MAX 7

static int members_parse(const char *path, const char *text, size_t len, cs_member *v,
                         size_t *n, cs_error *err)
{
    jp j = {text, text + len, path, 0, err};
    *n = 0;
    if (!jp_eat(&j, '['))
        return jp_fail(&j, "expected a JSON array of members");
    if (!jp_eat(&j, ']')) {
        do {
            if (*n == CS_MEMBERS_MAX)
                return jp_fail(&j, "more than 7 members");
            j.member = *n + 1;
            CS_TRY(jp_member(&j, &v[*n]));
            (*n)++;
        } while (jp_eat(&j, ','));
        j.member = 0;
        if (!jp_eat(&j, ']'))
            return jp_fail(&j, "expected ',' or ']'");
    }
    jp_ws(&j);
    if (j.p != j.end)
        return jp_fail(&j, "text after the array");
    if (*n == 0)
        return jp_fail(&j, "no members");
    return members_check(&j, v, *n);
}

int cs_members_load(const char *path, cs_member **out, size_t *n, cs_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return cs_errorf(err, CS_EIO, "%s: %s", path, strerror(errno));
    /* A cluster file of 7 members with the longest addresses is under 2 KiB. */
    char text[8192];
    size_t len = fread(text, 1, sizeof text, f);
    bool too_long = len == sizeof text;
    int rerr = ferror(f);
    fclose(f);
    if (rerr)
        return cs_errorf(err, CS_EIO, "%s: read error", path);
    if (too_long)
        return cs_errorf(err, CS_EINVAL, "%s: larger than %zu bytes", path, sizeof text - 1);
    cs_member *v = calloc(CS_MEMBERS_MAX, sizeof *v);
    if (v == NULL)
        return cs_errorf(err, CS_ENOMEM, "%s: out of memory", path);
    int rc = members_parse(path, text, len, v, n, err);
    if (rc != CS_OK) {
        free(v);
        return rc;
    }
    *out = v;
    return CS_OK;
}

/* ---- the members' record ---------------------------------------------------------- */

/* The client addresses of the members, replicated by member entries and
 * kept in the store's meta (`replica`, cs_store_group_put_replica), so that
 * a snapshot carries them to a new replica. Raft's own configuration holds
 * the ids and Raft addresses; this holds what it cannot, `listen`.
 * Layout: format byte 1, then per member, ascending ids: id (8, big-endian),
 * listen length (1) and bytes, raft length (1) and bytes. */
#define MEMBERS_FORMAT 1

typedef struct members {
    cs_member *v;
    size_t n, cap;
} members;

static cs_member *members_find(const members *ms, uint64_t id)
{
    for (size_t i = 0; i < ms->n; i++)
        if (ms->v[i].id == id)
            return &ms->v[i];
    return NULL;
}

/* Put (replace or insert, keeping ids ascending). */
static int members_put(members *ms, const cs_member *m)
{
    cs_member *have = members_find(ms, m->id);
    if (have != NULL) {
        *have = *m;
        return CS_OK;
    }
    if (ms->n == ms->cap) {
        size_t cap = ms->cap ? 2 * ms->cap : 8;
        cs_member *v = realloc(ms->v, cap * sizeof *v);
        if (v == NULL)
            return CS_ENOMEM;
        ms->v = v;
        ms->cap = cap;
    }
    size_t i = ms->n;
    while (i > 0 && ms->v[i - 1].id > m->id) {
        ms->v[i] = ms->v[i - 1];
        i--;
    }
    ms->v[i] = *m;
    ms->n++;
    return CS_OK;
}

static void members_remove(members *ms, uint64_t id)
{
    cs_member *have = members_find(ms, id);
    if (have == NULL)
        return;
    size_t i = (size_t)(have - ms->v);
    memmove(&ms->v[i], &ms->v[i + 1], (ms->n - i - 1) * sizeof *ms->v);
    ms->n--;
}

static size_t member_size(const cs_member *m)
{
    return 8 + 1 + strlen(m->listen) + 1 + strlen(m->raft);
}

/* Write m at p (member_size(m) bytes); returns the end. */
static uint8_t *member_pack(uint8_t *p, const cs_member *m)
{
    cs_be64_put(p, m->id);
    p += 8;
    size_t l = strlen(m->listen), k = strlen(m->raft);
    *p++ = (uint8_t)l;
    memcpy(p, m->listen, l);
    p += l;
    *p++ = (uint8_t)k;
    memcpy(p, m->raft, k);
    return p + k;
}

/* Read a member at *p (within end); false when it does not fit. */
static bool member_unpack(const uint8_t **p, const uint8_t *end, cs_member *m)
{
    const uint8_t *q = *p;
    memset(m, 0, sizeof *m);
    if (end - q < 9)
        return false;
    m->id = cs_be64_get(q);
    q += 8;
    size_t l = *q++;
    if (l >= sizeof m->listen || (size_t)(end - q) < l + 1)
        return false;
    memcpy(m->listen, q, l);
    q += l;
    size_t k = *q++;
    if (k >= sizeof m->raft || (size_t)(end - q) < k)
        return false;
    memcpy(m->raft, q, k);
    *p = q + k;
    return m->id != 0;
}

static int members_encode(const members *ms, uint8_t **out, size_t *len)
{
    size_t n = 1;
    for (size_t i = 0; i < ms->n; i++)
        n += member_size(&ms->v[i]);
    uint8_t *b = malloc(n), *p = b;
    if (b == NULL)
        return CS_ENOMEM;
    *p++ = MEMBERS_FORMAT;
    for (size_t i = 0; i < ms->n; i++)
        p = member_pack(p, &ms->v[i]);
    *out = b;
    *len = n;
    return CS_OK;
}

static int members_decode(const uint8_t *b, size_t len, members *ms, cs_error *err)
{
    ms->n = 0;
    if (len == 0)
        return CS_OK; /* never written: no member was recorded yet */
    if (b[0] != MEMBERS_FORMAT)
        return cs_errorf(err, CS_ECORRUPT, "replica record of format %u; this build reads %d",
                         b[0], MEMBERS_FORMAT);
    const uint8_t *p = b + 1, *end = b + len;
    while (p < end) {
        cs_member m;
        if (!member_unpack(&p, end, &m))
            return cs_errorf(err, CS_ECORRUPT, "replica record: a member does not decode");
        if (members_put(ms, &m) != CS_OK)
            return cs_errorf(err, CS_ENOMEM, "replica record: out of memory");
    }
    return CS_OK;
}

/* ---- entries ------------------------------------------------------------------------ */

/* A log entry: a format byte (so that a later build can change what
 * follows and still read these), a type, the count of padding bytes at its
 * end, then the type's body:
 *   commands       a group of commands applied together, in one LMDB
 *                  transaction on every replica: their count (4), then each
 *                  command's kind (1), length (4) and canonical bytes
 *                  (txn/command.h)
 *   command        one command: its kind (1) and canonical bytes (what
 *                  builds before groups wrote; still read, so that a log
 *                  they left goes on working)
 *   compact        the floor (8): cs_store_compact on every replica at this
 *                  point of the log
 *   member-put     a member as the members' record packs it
 *   member-remove  its id (8)
 * Why the padding: 0.15's raft_uv sends each entry's bytes as they are but
 * its receiver (uvDecodeEntriesBatch) steps over each entry padded to 8
 * bytes, so an AppendEntries of several entries whose lengths are not
 * multiples of 8 is read at the wrong offsets (the in-memory fixture never
 * encodes, and never shows it; test_replica's raft_uv test did). Every
 * entry is therefore a multiple of 8 bytes long.
 * Why compaction is an entry and not each replica's own timer: compaction
 * drops the idempotency records with the log entries below the floor, and a
 * scheduler that retries a transaction after a leader change (a lost reply)
 * must get the same answer from whichever replica leads next: its first
 * result if the record is kept, a fresh judgement if not. If replicas
 * compacted on their own clocks, one could answer from the record and
 * another judge the retry afresh, and the two stores would then differ. As
 * an entry, every replica drops exactly the same records between exactly
 * the same two commands. */
#define ENTRY_FORMAT 1
#define ENTRY_HEADER 3

enum {
    ENTRY_COMMAND = 1,
    ENTRY_COMPACT = 2,
    ENTRY_MEMBER_PUT = 3,
    ENTRY_MEMBER_REMOVE = 4,
    ENTRY_COMMANDS = 5,
};

/* The most commands one entry may carry (what a writer's group can hold:
 * 1,024 writes, each up to 1,024 reports, with room to spare). */
#define ENTRY_COMMANDS_MAX (1u << 22)

/* A zeroed entry of `type` with room for a body of `body` bytes, padded to
 * a multiple of 8: where the body goes, or NULL (out of memory, in `err`).
 * raft_apply takes *base on success and frees it with raft_free. */
static uint8_t *entry_new(uint8_t type, size_t body, void **base, size_t *len, cs_error *err)
{
    size_t n = ENTRY_HEADER + body;
    size_t pad = (8 - n % 8) % 8;
    *len = n + pad;
    uint8_t *p = raft_calloc(1, *len);
    *base = p;
    if (p == NULL) {
        cs_errorf(err, CS_ENOMEM, "log entry: out of memory");
        return NULL;
    }
    p[0] = ENTRY_FORMAT;
    p[1] = type;
    p[2] = (uint8_t)pad;
    return p + ENTRY_HEADER;
}

int cs_replica_entry_command(const cs_command *c, void **base, size_t *len, cs_error *err)
{
    uint8_t *at = entry_new(ENTRY_COMMAND, 1 + c->bytes.size, base, len, err);
    if (at == NULL)
        return CS_ENOMEM;
    at[0] = c->kind;
    if (c->bytes.size > 0)
        memcpy(at + 1, c->bytes.data, c->bytes.size);
    return CS_OK;
}

int cs_replica_entry_commands(const cs_command *const *cmds, size_t n, void **base, size_t *len,
                              cs_error *err)
{
    if (n == 0 || n > ENTRY_COMMANDS_MAX)
        return cs_errorf(err, CS_EINVAL, "log entry: %zu commands (1 to %u)", n,
                         ENTRY_COMMANDS_MAX);
    size_t body = 4;
    for (size_t i = 0; i < n; i++) {
        if (cmds[i]->bytes.size > UINT32_MAX)
            return cs_errorf(err, CS_EINVAL, "log entry: a command of %zu bytes",
                             cmds[i]->bytes.size);
        body += 5 + cmds[i]->bytes.size;
    }
    uint8_t *at = entry_new(ENTRY_COMMANDS, body, base, len, err);
    if (at == NULL)
        return CS_ENOMEM;
    cs_be32_put(at, (uint32_t)n);
    at += 4;
    for (size_t i = 0; i < n; i++) {
        at[0] = cmds[i]->kind;
        cs_be32_put(at + 1, (uint32_t)cmds[i]->bytes.size);
        if (cmds[i]->bytes.size > 0)
            memcpy(at + 5, cmds[i]->bytes.data, cmds[i]->bytes.size);
        at += 5 + cmds[i]->bytes.size;
    }
    return CS_OK;
}

/* An entry whose body is one 64-bit number (compact, member-remove). */
static int entry_u64(uint8_t type, uint64_t v, void **base, size_t *len, cs_error *err)
{
    uint8_t *at = entry_new(type, 8, base, len, err);
    if (at == NULL)
        return CS_ENOMEM;
    cs_be64_put(at, v);
    return CS_OK;
}

int cs_replica_entry_compact(uint64_t floor, void **base, size_t *len, cs_error *err)
{
    return entry_u64(ENTRY_COMPACT, floor, base, len, err);
}

int cs_replica_entry_member_put(const cs_member *m, void **base, size_t *len, cs_error *err)
{
    if (m->id == 0 || memchr(m->listen, '\0', sizeof m->listen) == NULL ||
        memchr(m->raft, '\0', sizeof m->raft) == NULL)
        return cs_errorf(err, CS_EINVAL, "member: id 0 or an address over its bound");
    uint8_t *at = entry_new(ENTRY_MEMBER_PUT, member_size(m), base, len, err);
    if (at == NULL)
        return CS_ENOMEM;
    member_pack(at, m);
    return CS_OK;
}

int cs_replica_entry_member_remove(uint64_t id, void **base, size_t *len, cs_error *err)
{
    return entry_u64(ENTRY_MEMBER_REMOVE, id, base, len, err);
}

/* ---- the state machine ------------------------------------------------------------ */

/* The snapshot's header, before the LMDB copy: magic, format, the Raft
 * index the snapshot is taken at, and the copy's length. */
#define SNAP_MAGIC "CELLSNAP"
#define SNAP_FORMAT 1
#define SNAP_HEADER 32

struct cs_replica_fsm {
    struct raft_fsm fsm;
    struct raft *raft; /* the instance applying to it: raft_last_applied */
    char *store_dir;
    cs_store_opts store_opts;
    _Atomic(cs_store *) store;
    cs_replica_hooks hooks;
    /* The store's applied index: entries at or below it are skipped. */
    uint64_t applied;
    /* The results of the entry being applied, one per command: raft hands
     * `out`'s address to the proposal's callback, which libraft 0.15 calls
     * right after fsm->apply returns (replication.c applyCommand), before
     * the next entry is applied. Reused from entry to entry, so that
     * nothing is allocated per entry once they have grown, and nothing
     * leaks on a follower, where no request takes `*result`. */
    cs_result *res;
    size_t capres;
    cs_replica_results out;
    members members;
    /* The Raft index of the snapshot being taken (set on the loop thread,
     * read by the copy on libuv's worker). */
    uint64_t snap_index;
    /* Told of every entry applied or skipped, and of a restore (the
     * runtime wakes cs_replica_wait_applied). */
    void (*advanced)(void *ctx, uint64_t applied);
    void *advanced_ctx;
};

static cs_store *fsm_store(cs_replica_fsm *f)
{
    return atomic_load_explicit(&f->store, memory_order_acquire);
}

/* Open the store and read what the replica keeps in it. */
static int fsm_open_store(cs_replica_fsm *f, cs_error *err)
{
    cs_store_opts o = f->store_opts;
    o.nosync = true; /* the Raft log is the durability (store.h, replication) */
    o.writemap = true;
    cs_store *s;
    CS_TRY(cs_store_open(f->store_dir, &o, &s, err));
    void *blob = NULL;
    size_t len = 0;
    int rc;
    if ((rc = cs_store_applied(s, &f->applied, err)) != CS_OK ||
        (rc = cs_store_replica(s, &blob, &len, err)) != CS_OK ||
        (rc = members_decode(blob, len, &f->members, err)) != CS_OK) {
        free(blob);
        cs_store_close(s);
        return cs_error_wrap(err, rc, "store in %s", f->store_dir);
    }
    free(blob);
    atomic_store_explicit(&f->store, s, memory_order_release);
    return CS_OK;
}

static void fsm_advanced(cs_replica_fsm *f)
{
    if (f->advanced != NULL)
        f->advanced(f->advanced_ctx, f->applied);
}

/* Room for n results in f->res (each initialised once). */
static void fsm_results(cs_replica_fsm *f, uint64_t index, size_t n)
{
    if (n <= f->capres)
        return;
    size_t cap = f->capres ? f->capres : 16;
    while (cap < n)
        cap *= 2;
    cs_result *v = realloc(f->res, cap * sizeof *v);
    if (v == NULL)
        fatal("applying a group of commands", index, "out of memory");
    for (size_t i = f->capres; i < cap; i++)
        cs_result_init(&v[i]);
    f->res = v;
    f->capres = cap;
}

/* The commands of a `commands` entry's body, checked whole before any is
 * applied: their count, and each one's kind, bytes and length. */
typedef struct cmdview {
    uint8_t kind;
    const uint8_t *b;
    size_t len;
} cmdview;

static bool next_command(const uint8_t **p, const uint8_t *end, cmdview *v)
{
    if ((size_t)(end - *p) < 5)
        return false;
    v->kind = (*p)[0];
    v->len = cs_be32_get(*p + 1);
    v->b = *p + 5;
    if (v->len > (size_t)(end - v->b))
        return false;
    *p = v->b + v->len;
    return true;
}

/* Apply the commands of one entry (a `commands` entry's body, or a single
 * `command` entry's when `single`) and record the entry's index, all in
 * one LMDB transaction (a group: cs_command_apply joins it), so that each
 * replica's store moves from entry to entry and never stops inside one.
 * The results land in f->res, f->out. */
static void apply_commands(cs_replica_fsm *f, uint64_t index, const uint8_t *b, size_t len,
                           bool single)
{
    size_t n = 1;
    const uint8_t *p = b, *end = b + len;
    if (!single) {
        if (len < 4)
            fatal("reading an entry", index, "a group of commands without its count");
        n = cs_be32_get(b);
        if (n == 0 || n > ENTRY_COMMANDS_MAX)
            fatal("reading an entry", index, "a group of commands with a count out of bounds");
        p = b + 4;
        cmdview v;
        for (size_t i = 0; i < n; i++)
            if (!next_command(&p, end, &v))
                fatal("reading an entry", index, "a command runs past the entry's end");
        if (p != end)
            fatal("reading an entry", index, "bytes after the group's last command");
        p = b + 4;
    } else if (len < 1) {
        fatal("reading an entry", index, "a command entry without its kind");
    }
    fsm_results(f, index, n);
    cs_store *s = fsm_store(f);
    cs_error err = {0};
    bool abandoned = false;
    if (cs_store_group_begin(s, &err) != CS_OK)
        fatal("beginning a write", index, err.msg);
    int rc = CS_OK;
    for (size_t i = 0; i < n && rc == CS_OK; i++) {
        cmdview v = {b[0], b + 1, len - 1};
        if (!single)
            next_command(&p, end, &v);
        rc = cs_command_apply(s, v.kind, v.b, v.len, &f->res[i], &err);
    }
    if (rc != CS_OK || cs_store_group_set_applied(s, index, &err) != CS_OK) {
        /* A command was not judged (a refusal is CS_OK with res.status
         * set): an error of this replica, not of the command. */
        cs_error end_err = {0};
        cs_store_group_end(s, &abandoned, NULL, &end_err);
        fatal("applying a command", index, err.msg);
    }
    if (cs_store_group_end(s, &abandoned, NULL, &err) != CS_OK || abandoned)
        fatal("committing a command", index, abandoned ? "the write was abandoned" : err.msg);
    f->out = (cs_replica_results){f->res, n};
}

static void apply_compact(cs_replica_fsm *f, uint64_t index, const uint8_t *b)
{
    cs_error err = {0};
    if (cs_store_compact_applied(fsm_store(f), cs_be64_get(b), index, &err) != CS_OK)
        fatal("compacting the store's log", index, err.msg);
}

/* A member entry changes the members' record; recorded with the index. */
static void apply_member(cs_replica_fsm *f, uint64_t index, uint8_t type, const uint8_t *b,
                         size_t len)
{
    if (type == ENTRY_MEMBER_PUT) {
        cs_member m;
        const uint8_t *q = b;
        if (!member_unpack(&q, b + len, &m) || q != b + len)
            fatal("reading a member entry", index, "it does not decode");
        if (members_put(&f->members, &m) != CS_OK)
            fatal("recording a member", index, "out of memory");
    } else {
        if (len != 8)
            fatal("reading a member entry", index, "it does not decode");
        members_remove(&f->members, cs_be64_get(b));
    }
    uint8_t *blob;
    size_t blen;
    if (members_encode(&f->members, &blob, &blen) != CS_OK)
        fatal("recording a member", index, "out of memory");
    cs_store *s = fsm_store(f);
    cs_error err = {0};
    bool abandoned = false;
    int rc = cs_store_group_begin(s, &err);
    if (rc == CS_OK && ((rc = cs_store_group_put_replica(s, blob, blen, &err)) != CS_OK ||
                        (rc = cs_store_group_set_applied(s, index, &err)) != CS_OK)) {
        cs_error end_err = {0};
        cs_store_group_end(s, &abandoned, NULL, &end_err);
    } else if (rc == CS_OK && (rc = cs_store_group_end(s, &abandoned, NULL, &err)) == CS_OK &&
               abandoned) {
        rc = CS_EIO;
    }
    free(blob);
    if (rc != CS_OK)
        fatal("recording a member", index, err.msg);
}

/* libraft calls apply for each committed entry, in log order, on the loop
 * thread. Which index: in 0.15 replicationApply applies `last_applied + 1`
 * and only then advances last_applied (replication.c), so during the call
 * raft_last_applied(r) + 1 is this entry's index. */
static int fsm_apply(struct raft_fsm *rf, const struct raft_buffer *buf, void **result)
{
    cs_replica_fsm *f = rf->data;
    uint64_t index = raft_last_applied(f->raft) + 1;
    *result = NULL;
    const uint8_t *p = buf->base;
    if (buf->len < ENTRY_HEADER || p[0] != ENTRY_FORMAT)
        fatal("reading an entry", index, "unknown entry format (a newer build's?)");
    if (p[2] > buf->len - ENTRY_HEADER)
        fatal("reading an entry", index, "its padding is longer than it");
    const uint8_t *body = p + ENTRY_HEADER;
    size_t len = buf->len - ENTRY_HEADER - p[2];
    if (index <= f->applied) {
        /* In the store already: applied before a restart, or carried by a
         * snapshot copied after its nominal index (fsm_snapshot_async). */
        fsm_advanced(f);
        return 0;
    }
    switch (p[1]) {
    case ENTRY_COMMAND:
    case ENTRY_COMMANDS:
        apply_commands(f, index, body, len, p[1] == ENTRY_COMMAND);
        f->applied = index;
        if (f->hooks.applied != NULL)
            f->hooks.applied(f->hooks.ctx, index, f->out.res, f->out.n);
        *result = &f->out;
        break;
    case ENTRY_COMPACT:
        if (len != 8)
            fatal("reading an entry", index, "a compaction entry of the wrong size");
        apply_compact(f, index, body);
        f->applied = index;
        break;
    case ENTRY_MEMBER_PUT:
    case ENTRY_MEMBER_REMOVE:
        apply_member(f, index, p[1], body, len);
        f->applied = index;
        break;
    default:
        fatal("reading an entry", index, "unknown entry type (a newer build's?)");
    }
    fsm_advanced(f);
    return 0;
}

/* Snapshots (fsm version 3, which 0.15 has: replication.c takeSnapshot).
 * `snapshot` runs on the loop thread: it notes the index and makes the
 * header. `snapshot_async` runs on libuv's worker pool (io->async_work) and
 * copies the store there, so that the loop keeps applying and answering
 * during a copy of a large store. The copy is an LMDB read transaction of
 * its own, begun on the worker: it may hold entries applied after the
 * snapshot's nominal index. That is harmless, because the copy carries its
 * own applied index (meta `applied`): a replica that installs it skips
 * every entry at or below that, whatever raft replays after the nominal
 * index. `snapshot_finalize` (loop thread) frees what the two made: with
 * version 3 the buffers are ours, not raft's. */
static int fsm_snapshot_async(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n);
static int fsm_snapshot_finalize(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n);

static int fsm_snapshot(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n)
{
    cs_replica_fsm *f = rf->data;
    /* The copy must hold at least what raft will say it holds: a restore
     * goes on after the nominal index, and anything missing below it would
     * never be applied there. Busy: raft tries again later. */
    if (f->applied < raft_last_applied(f->raft))
        return RAFT_BUSY;
    struct raft_buffer *b = calloc(2, sizeof *b);
    uint8_t *h = calloc(1, SNAP_HEADER);
    if (b == NULL || h == NULL) {
        free(b);
        free(h);
        return RAFT_NOMEM;
    }
    f->snap_index = raft_last_applied(f->raft);
    memcpy(h, SNAP_MAGIC, 8);
    cs_be32_put(h + 8, SNAP_FORMAT);
    cs_be64_put(h + 16, f->snap_index);
    b[0].base = h;
    b[0].len = SNAP_HEADER;
    *bufs = b;
    *n = 1;
    if (f->fsm.snapshot_async != NULL)
        return 0;
    int rv = fsm_snapshot_async(rf, bufs, n);
    if (rv != 0)
        fsm_snapshot_finalize(rf, bufs, n);
    return rv;
}

/* Copy the store into memory: an anonymous file (memfd) takes the copy,
 * then one buffer takes the file, which raft writes into its snapshot. */
static int fsm_snapshot_async(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n)
{
    cs_replica_fsm *f = rf->data;
    cs_error err = {0};
    int fd = memfd_create("cellsched-snapshot", MFD_CLOEXEC);
    if (fd < 0)
        return RAFT_IOERR;
    int rv = RAFT_IOERR;
    struct stat st;
    if (cs_store_copy(fsm_store(f), fd, &err) != CS_OK || fstat(fd, &st) != 0)
        goto out;
    size_t size = (size_t)st.st_size;
    uint8_t *data = malloc(size ? size : 1);
    if (data == NULL) {
        rv = RAFT_NOMEM;
        goto out;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t k = pread(fd, data + got, size - got, (off_t)got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            free(data);
            goto out;
        }
        got += (size_t)k;
    }
    cs_be64_put((uint8_t *)(*bufs)[0].base + 24, size);
    (*bufs)[1].base = data;
    (*bufs)[1].len = size;
    *n = 2;
    rv = 0;
out:
    close(fd);
    return rv;
}

static int fsm_snapshot_finalize(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n)
{
    (void)rf;
    if (*bufs != NULL) {
        for (unsigned i = 0; i < *n; i++)
            free((*bufs)[i].base);
        free(*bufs);
    }
    *bufs = NULL;
    *n = 0;
    return 0;
}

/* Write data[0..len) as `path`, atomically: beside it, synced, renamed over
 * it, and the directory synced, so that a crash leaves the old store or the
 * new one, never a mix. */
static int replace_file(const char *dir, const char *name, const void *data, size_t len,
                        cs_error *err)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s/%s.restore", dir, name) >= sizeof tmp ||
        (size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return cs_errorf(err, CS_EINVAL, "%s: path too long", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return cs_errorf(err, CS_EIO, "%s: %s", tmp, strerror(errno));
    const uint8_t *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t k = write(fd, p + done, len - done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return cs_errorf(err, CS_EIO, "%s: %s", tmp, strerror(e));
        }
        done += (size_t)k;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(tmp);
        return cs_errorf(err, CS_EIO, "%s: %s", tmp, strerror(errno));
    }
    if (rename(tmp, path) != 0)
        return cs_errorf(err, CS_EIO, "%s: %s", path, strerror(errno));
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return CS_OK;
}

/* raft_start loads the last snapshot at every start and calls restore with
 * it, and a follower calls it to install one sent by the leader. A store
 * that has applied the snapshot's index already keeps itself (a restart:
 * its own state is at least as new). Otherwise the store is replaced by
 * the snapshot's copy. On success the buffer is ours (snapshot.c
 * snapshotRestore); on an error before the store was closed it is still
 * raft's, and raft refuses the snapshot. Once the store is closed, a
 * failure is fatal: the replica has no store to go on with. */
static int fsm_restore(struct raft_fsm *rf, struct raft_buffer *buf)
{
    cs_replica_fsm *f = rf->data;
    const uint8_t *h = buf->base;
    if (buf->len < SNAP_HEADER || memcmp(h, SNAP_MAGIC, 8) != 0 ||
        cs_be32_get(h + 8) != SNAP_FORMAT || cs_be64_get(h + 24) != buf->len - SNAP_HEADER)
        return RAFT_MALFORMED;
    uint64_t index = cs_be64_get(h + 16);
    if (f->applied >= index) {
        raft_free(buf->base);
        fsm_advanced(f);
        return 0;
    }
    if (f->hooks.replacing != NULL)
        f->hooks.replacing(f->hooks.ctx);
    cs_store_close(fsm_store(f));
    atomic_store_explicit(&f->store, NULL, memory_order_release);
    cs_error err = {0};
    if (replace_file(f->store_dir, "data.mdb", h + SNAP_HEADER, buf->len - SNAP_HEADER, &err) !=
            CS_OK ||
        fsm_open_store(f, &err) != CS_OK)
        fatal("installing a snapshot", index, err.msg);
    if (f->applied < index)
        fatal("installing a snapshot", index, "its copy holds an older applied index");
    raft_free(buf->base);
    if (f->hooks.restored != NULL)
        f->hooks.restored(f->hooks.ctx, fsm_store(f), f->applied);
    fsm_advanced(f);
    return 0;
}

int cs_replica_fsm_new(const char *store_dir, const cs_store_opts *o,
                       const cs_replica_hooks *hooks, cs_replica_fsm **out, cs_error *err)
{
    cs_replica_fsm *f = calloc(1, sizeof *f);
    if (f == NULL)
        return cs_errorf(err, CS_ENOMEM, "replica: out of memory");
    int rc;
    if ((f->store_dir = strdup(store_dir)) == NULL) {
        rc = cs_errorf(err, CS_ENOMEM, "replica: out of memory");
        goto err_after_alloc;
    }
    if (o != NULL)
        f->store_opts = *o;
    if (hooks != NULL)
        f->hooks = *hooks;
    if ((rc = cs_mkdir_p(store_dir, err)) != CS_OK || (rc = fsm_open_store(f, err)) != CS_OK)
        goto err_after_dir;
    f->fsm.version = 3;
    f->fsm.data = f;
    f->fsm.apply = fsm_apply;
    f->fsm.snapshot = fsm_snapshot;
    f->fsm.restore = fsm_restore;
    f->fsm.snapshot_finalize = fsm_snapshot_finalize;
    f->fsm.snapshot_async = fsm_snapshot_async;
    *out = f;
    return CS_OK;

err_after_dir:
    free(f->members.v);
    free(f->store_dir);
err_after_alloc:
    free(f);
    return rc;
}

void *cs_replica_fsm_raft(cs_replica_fsm *f) { return &f->fsm; }

void cs_replica_fsm_bind(cs_replica_fsm *f, void *raft) { f->raft = raft; }

cs_store *cs_replica_fsm_store(cs_replica_fsm *f) { return fsm_store(f); }

const cs_member *cs_replica_fsm_members(cs_replica_fsm *f, size_t *n)
{
    *n = f->members.n;
    return f->members.v;
}

void cs_replica_fsm_free(cs_replica_fsm *f)
{
    if (f == NULL)
        return;
    cs_store_close(fsm_store(f));
    for (size_t i = 0; i < f->capres; i++)
        cs_result_free(&f->res[i]);
    free(f->res);
    free(f->members.v);
    free(f->store_dir);
    free(f);
}

/* ---- the runtime ------------------------------------------------------------------- */

/* Calls from other threads reach the loop through a queue and a uv_async
 * wake-up: libraft and libuv are not thread-safe, and everything of theirs
 * runs on the loop thread. A call a thread waits for (status, membership,
 * transfer) is freed by whichever side finishes last: the waiter when the
 * loop finished it, the loop when the waiter gave up (`abandoned`), since
 * libraft may still hold the request inside it. */
typedef enum call_kind {
    CALL_PROPOSE,  /* a command: its proposer's callback gets the result */
    CALL_ENTRY,    /* a compaction or member entry nobody waits for */
    CALL_STATUS,
    CALL_ADD,
    CALL_REMOVE,
    CALL_TRANSFER,
} call_kind;

typedef struct call call;
struct call {
    call *next;
    call_kind kind;
    cs_replica *r;
    struct raft_buffer buf; /* the entry, from raft_malloc */
    cs_propose_cb cb;
    void *arg;
    /* What a waiting thread reads back. */
    int rc;
    char msg[CS_ERROR_MSG_SIZE];
    bool waited, done, abandoned;
    cs_replica_status status; /* CALL_STATUS: filled on the loop thread */
    cs_member member;
    uint64_t id;
    /* libraft's requests: they live as long as the call. */
    raft_apply_cb apply_cb; /* for the entry, once appended; NULL: on_applied */
    struct raft_apply apply;
    struct raft_change change;
    struct raft_transfer transfer;
};

struct cs_replica {
    uint64_t id;
    char raft_addr[CS_MEMBER_RAFT_MAX];
    members initial; /* opts.members: addresses until the record has them */
    cs_replica_fsm *fsm;
    cs_replica_hooks hooks;
    uv_loop_t loop;
    uv_async_t wake;
    uv_check_t check;
    struct raft_uv_transport transport; /* raft_uv_tcp's */
    struct raft_uv_transport nodelay;   /* the same, Nagle off: what raft_uv uses */
    cs_rafttls *tls; /* with certificates: TLS over nodelay, and raft_uv uses it instead */
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb nodelay_closed;
    struct raft_io io;
    struct raft raft;
    pthread_t thread;
    pthread_t loop_thread; /* set by the loop thread itself, before any hook */
    /* `mu` guards the queue, `stopping`, `applied` and the start result;
     * `cv` signals calls done, the applied index moving and the start. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    call *head, *tail;
    bool stopping;
    bool started;
    int start_rc;
    char start_msg[CS_ERROR_MSG_SIZE];
    uint64_t applied;
    _Atomic int role; /* cs_role, for cs_replica_propose's quick refusal */
    /* Loop thread only. */
    bool closing;
    cs_role seen_role;
    uint64_t seen_term, seen_leader;
    /* Entries waiting for the batch in flight to commit (may_append). */
    call *pending, *pending_tail;
    struct raft_barrier barrier; /* the new leader's first entry, or an announcement */
    bool barrier_busy;
    /* An entry proposed here has committed since the last announcement
     * (announce_commit). */
    bool committed_unannounced;
    /* The index of the announcement barrier in flight; 0: none (the
     * barrier in flight, if any, is a new leader's). */
    uint64_t announce_index;
};

static int code_of(cs_replica *r, int rv)
{
    if (r->closing)
        return CS_EUNAVAIL;
    switch (rv) {
    case RAFT_NOTLEADER:
    case RAFT_LEADERSHIPLOST:
        return CS_ENOTLEADER;
    case RAFT_NOMEM:
        return CS_ENOMEM;
    case RAFT_BADID:
    case RAFT_NOTFOUND:
        return CS_ENOTFOUND;
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS:
        return CS_EEXIST;
    case RAFT_CANTCHANGE:
        return CS_ESTATE;
    default:
        return CS_EUNAVAIL;
    }
}

static void call_free(call *c)
{
    if (c->buf.base != NULL)
        raft_free(c->buf.base);
    free(c->status.members);
    free(c);
}

/* A waited call is finished: hand it to its waiter, or free it when the
 * waiter has left. */
static void call_done(call *c, int rc, const char *msg)
{
    cs_replica *r = c->r;
    if (!c->waited) {
        if (c->kind == CALL_PROPOSE && c->cb != NULL)
            c->cb(c->arg, rc, 0, NULL, 0, msg);
        call_free(c);
        return;
    }
    pthread_mutex_lock(&r->mu);
    c->rc = rc;
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    c->done = true;
    bool orphan = c->abandoned;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (orphan)
        call_free(c);
}

static void call_fail_raft(call *c, int rv, const char *what)
{
    cs_replica *r = c->r;
    char msg[CS_ERROR_MSG_SIZE];
    snprintf(msg, sizeof msg, "%s: %s", what,
             r->closing ? "the replica is stopping" : raft_strerror(rv));
    call_done(c, code_of(r, rv), msg);
}

static bool in_configuration(cs_replica *r, uint64_t id)
{
    for (unsigned i = 0; i < r->raft.configuration.n; i++)
        if (r->raft.configuration.servers[i].id == id)
            return true;
    return false;
}

/* The client address of member `id`: the replicated record's, else the
 * cluster file's. */
static const char *listen_of(cs_replica *r, uint64_t id)
{
    const cs_member *m = members_find(&r->fsm->members, id);
    if (m == NULL)
        m = members_find(&r->initial, id);
    return m != NULL ? m->listen : "";
}

/* ---- proposals ---- */

/* Whether the leader may append new entries now: only when every entry
 * it has is committed (one batch in flight). Why: 0.15 computes the commit
 * index only at the leader's own last stored index (replicationQuorum(r,
 * r->last_stored), fixed upstream by canonical/raft PR #336), so a leader
 * that keeps appending while followers acknowledge the previous entries
 * never finds a majority at its moving last index, and commits nothing
 * until the load pauses (test_replica shows a total stall without this).
 * Entries proposed meanwhile wait and go out together, one write: under
 * load the batches grow instead of the commit index stalling. */
static bool may_append(struct raft *raft)
{
    return raft_state(raft) == RAFT_LEADER && raft->commit_index >= raft_last_index(raft);
}

bool cs_replica_may_append(void *raft) { return may_append(raft); }

static void on_applied(struct raft_apply *req, int status, void *result)
{
    call *c = req->data;
    if (status == 0)
        c->r->committed_unannounced = true;
    if (c->kind == CALL_PROPOSE) {
        /* The buffer is raft's since raft_apply succeeded. */
        c->buf.base = NULL;
        if (status != 0) {
            char msg[CS_ERROR_MSG_SIZE];
            snprintf(msg, sizeof msg, "entry %" PRIu64 ": %s", (uint64_t)req->index,
                     c->r->closing ? "the replica is stopping" : raft_strerror(status));
            c->cb(c->arg, code_of(c->r, status), req->index, NULL, 0, msg);
        } else if (result == NULL) {
            /* Never for a live proposal: its index is above anything the
             * store held when this leader took office. */
            c->cb(c->arg, CS_EUNAVAIL, req->index, NULL, 0, "the entry was applied before");
        } else {
            const cs_replica_results *out = result;
            c->cb(c->arg, CS_OK, req->index, out->res, out->n, "");
        }
        free(c);
        return;
    }
    c->buf.base = NULL;
    free(c);
}

/* Append the call's entry; on failure the call is finished here. */
static void append_entry(cs_replica *r, call *c, raft_apply_cb cb)
{
    c->apply.data = c;
    int rv = raft_apply(&r->raft, &c->apply, &c->buf, 1, cb);
    if (rv == 0)
        return;
    /* Not appended: the buffer is still ours. */
    raft_free(c->buf.base);
    c->buf.base = NULL;
    call_fail_raft(c, rv, "proposing");
}

/* ---- membership ---- */

static void on_change_done(struct raft_change *req, int status)
{
    call *c = req->data;
    if (status != 0)
        call_fail_raft(c, status, "changing the configuration");
    else
        call_done(c, CS_OK, "");
}

static void on_add_added(struct raft_change *req, int status)
{
    call *c = req->data;
    if (status != 0) {
        call_fail_raft(c, status, "adding the member");
        return;
    }
    /* A voter only once it has caught up: raft_assign runs the catch-up
     * rounds of the Raft dissertation (§4.2.1) before the change. */
    int rv = raft_assign(&c->r->raft, &c->change, c->member.id, RAFT_VOTER, on_change_done);
    if (rv != 0)
        call_fail_raft(c, rv, "making the member a voter");
}

/* The member's entry is applied: change the configuration. The addresses
 * go first for a removal too: a leader that removes itself steps down when
 * the change commits, and could append nothing after it. */
static void on_member_recorded(struct raft_apply *req, int status, void *result)
{
    (void)result;
    call *c = req->data;
    c->buf.base = NULL;
    if (status != 0) {
        call_fail_raft(c, status, "recording the member's addresses");
        return;
    }
    c->change.data = c;
    int rv = c->kind == CALL_ADD
                 ? raft_add(&c->r->raft, &c->change, c->member.id, c->member.raft, on_add_added)
                 : raft_remove(&c->r->raft, &c->change, c->id, on_change_done);
    if (rv != 0)
        call_fail_raft(c, rv, "changing the configuration");
}

static void on_transferred(struct raft_transfer *req)
{
    call *c = req->data;
    if (raft_state(&c->r->raft) != RAFT_LEADER)
        call_done(c, CS_OK, "");
    else
        call_done(c, CS_EUNAVAIL, "transfer: leadership stayed here (the target did not win "
                                  "an election in time)");
}

/* ---- status ---- */

static void fill_status(cs_replica *r, cs_replica_status *st)
{
    memset(st, 0, sizeof *st);
    st->id = r->id;
    st->role = r->closing ? CS_ROLE_UNAVAILABLE : role_of(raft_state(&r->raft));
    st->term = r->raft.current_term;
    raft_id leader = 0;
    const char *addr = NULL;
    raft_leader(&r->raft, &leader, &addr);
    st->leader = leader;
    if (leader != 0)
        snprintf(st->leader_listen, sizeof st->leader_listen, "%s", listen_of(r, leader));
    st->last_index = raft_last_index(&r->raft);
    st->commit_index = r->raft.commit_index;
    st->applied_index = r->fsm->applied;
    st->snapshot_index = r->raft.log.snapshot.last_index;
    const struct raft_configuration *conf = &r->raft.configuration;
    st->members = conf->n ? calloc(conf->n, sizeof *st->members) : NULL;
    if (st->members == NULL)
        return; /* no members listed rather than no status */
    st->nmembers = conf->n;
    bool leading = raft_state(&r->raft) == RAFT_LEADER;
    for (unsigned i = 0; i < conf->n; i++) {
        const struct raft_server *sv = &conf->servers[i];
        cs_member_status *m = &st->members[i];
        m->m.id = sv->id;
        snprintf(m->m.raft, sizeof m->m.raft, "%s", sv->address);
        snprintf(m->m.listen, sizeof m->m.listen, "%s", listen_of(r, sv->id));
        m->voter = sv->role == RAFT_VOTER;
        m->role = sv->id == leader ? CS_ROLE_LEADER
                  : m->voter       ? CS_ROLE_FOLLOWER
                                   : CS_ROLE_UNAVAILABLE;
        if (leading)
            m->match = sv->id == r->id ? st->last_index
                                       : r->raft.leader_state.progress[i].match_index;
    }
}

/* ---- the transport ---- */

/* raft_uv_tcp with TCP_NODELAY on every connection. Why: 0.15 leaves
 * Nagle's algorithm on, and a follower answers a burst of AppendEntries
 * with several small writes in a row: the second waits for the leader to
 * acknowledge the first, which Linux delays by up to 40 ms when it has
 * nothing to send back. A 3-member cell committing 4 concurrent
 * transactions of 30 or more claims stalled that way on every round (about
 * 170 transactions/s with the members idle, against 2,100 with 10 claims;
 * docs/benchmarks.md, etcd). The wrapper forwards every method to
 * raft_uv_tcp and turns Nagle off on each stream it hands over. */
typedef struct nodelay_connect {
    struct raft_uv_connect req; /* what raft_uv_tcp completes */
    struct raft_uv_connect *outer;
    raft_uv_connect_cb cb;
} nodelay_connect;

static void set_nodelay(struct uv_stream_s *stream)
{
    if (stream != NULL && stream->type == UV_TCP)
        uv_tcp_nodelay((uv_tcp_t *)stream, 1);
}

static int nodelay_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    cs_replica *r = t->impl;
    int rv = r->transport.init(&r->transport, id, address);
    if (rv != 0)
        snprintf(t->errmsg, sizeof t->errmsg, "%s", r->transport.errmsg);
    return rv;
}

static void nodelay_accepted(struct raft_uv_transport *inner, raft_id id, const char *address,
                             struct uv_stream_s *stream)
{
    cs_replica *r = inner->data;
    set_nodelay(stream);
    r->accept_cb(&r->nodelay, id, address, stream);
}

static int nodelay_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    cs_replica *r = t->impl;
    r->accept_cb = cb;
    int rv = r->transport.listen(&r->transport, nodelay_accepted);
    if (rv != 0)
        snprintf(t->errmsg, sizeof t->errmsg, "%s", r->transport.errmsg);
    return rv;
}

static void nodelay_connected(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
    nodelay_connect *c = req->data;
    if (status == 0)
        set_nodelay(stream);
    struct raft_uv_connect *outer = c->outer;
    raft_uv_connect_cb cb = c->cb;
    free(c);
    cb(outer, stream, status);
}

static int nodelay_connect_to(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                              const char *address, raft_uv_connect_cb cb)
{
    cs_replica *r = t->impl;
    nodelay_connect *c = calloc(1, sizeof *c);
    if (c == NULL)
        return RAFT_NOMEM;
    c->req.data = c;
    c->outer = req;
    c->cb = cb;
    req->cb = cb;
    int rv = r->transport.connect(&r->transport, &c->req, id, address, nodelay_connected);
    if (rv != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "%s", r->transport.errmsg);
        free(c);
    }
    return rv;
}

static void nodelay_inner_closed(struct raft_uv_transport *inner)
{
    cs_replica *r = inner->data;
    if (r->nodelay_closed != NULL)
        r->nodelay_closed(&r->nodelay);
}

static void nodelay_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    cs_replica *r = t->impl;
    r->nodelay_closed = cb;
    r->transport.close(&r->transport, nodelay_inner_closed);
}

/* Ready r->nodelay over r->transport (initialised by raft_uv_tcp_init). */
static void nodelay_wrap(cs_replica *r)
{
    r->transport.data = r;
    r->nodelay = (struct raft_uv_transport){
        .impl = r,
        .init = nodelay_init,
        .listen = nodelay_listen,
        .connect = nodelay_connect_to,
        .close = nodelay_close,
    };
}

/* ---- the loop ---- */

/* An entry waits for may_append (flush_pending). */
static void pend(cs_replica *r, call *c)
{
    c->next = NULL;
    if (r->pending_tail != NULL)
        r->pending_tail->next = c;
    else
        r->pending = c;
    r->pending_tail = c;
}

static void run_call(cs_replica *r, call *c)
{
    switch (c->kind) {
    case CALL_PROPOSE:
    case CALL_ENTRY:
        pend(r, c);
        return;
    case CALL_STATUS:
        fill_status(r, &c->status);
        call_done(c, CS_OK, "");
        return;
    case CALL_ADD:
    case CALL_REMOVE: {
        bool add = c->kind == CALL_ADD;
        uint64_t id = add ? c->member.id : c->id;
        cs_error err = {0};
        void *base;
        size_t len;
        if (raft_state(&r->raft) != RAFT_LEADER)
            call_done(c, CS_ENOTLEADER, "this replica is not the leader");
        else if (in_configuration(r, id) == add)
            call_done(c, add ? CS_EEXIST : CS_ENOTFOUND,
                      add ? "the id is a member already" : "no member has that id");
        else if ((add ? cs_replica_entry_member_put(&c->member, &base, &len, &err)
                      : cs_replica_entry_member_remove(id, &base, &len, &err)) != CS_OK)
            call_done(c, err.code, err.msg);
        else {
            c->buf = (struct raft_buffer){base, len};
            c->apply_cb = on_member_recorded;
            pend(r, c);
        }
        return;
    }
    case CALL_TRANSFER: {
        c->transfer.data = c;
        int rv = raft_transfer(&r->raft, &c->transfer, c->id, on_transferred);
        if (rv != 0)
            call_fail_raft(c, rv, "transfer");
        return;
    }
    }
}

static void on_closed_handle(uv_handle_t *h) { (void)h; }

static void on_raft_closed(struct raft *raft)
{
    cs_replica *r = raft->data;
    raft_uv_close(&r->io);
    raft_uv_tcp_close(&r->transport);
    uv_close((uv_handle_t *)&r->wake, on_closed_handle);
    uv_close((uv_handle_t *)&r->check, on_closed_handle);
}

/* Whether the only entry in flight is an announcement of a commit
 * (announce_commit): a batch may go out behind it. The announcement is
 * there only to carry the commit index; a batch waiting for it to commit
 * would wait a whole replication round for nothing. Still one batch in
 * flight: the leader's last index stops at that batch until it commits,
 * so 0.15's commit at the last stored index (may_append) is reached. */
static bool announcing_only(cs_replica *r)
{
    return r->barrier_busy && r->announce_index != 0 &&
           raft_state(&r->raft) == RAFT_LEADER &&
           raft_last_index(&r->raft) == r->announce_index &&
           r->raft.commit_index + 1 >= r->announce_index;
}

/* Append what waits, if the leader may (may_append, or behind an
 * announcement); fail it when this replica no longer leads. */
static void flush_pending(cs_replica *r)
{
    if (r->pending == NULL)
        return;
    if (raft_state(&r->raft) != RAFT_LEADER || r->closing) {
        call *list = r->pending;
        r->pending = r->pending_tail = NULL;
        while (list != NULL) {
            call *next = list->next;
            call_fail_raft(list, RAFT_NOTLEADER, "proposing");
            list = next;
        }
        return;
    }
    if (!may_append(&r->raft) && !announcing_only(r))
        return;
    call *list = r->pending;
    r->pending = r->pending_tail = NULL;
    while (list != NULL) {
        call *next = list->next;
        append_entry(r, list, list->apply_cb != NULL ? list->apply_cb : on_applied);
        list = next;
    }
}

static void fail_queue(cs_replica *r, call *list)
{
    while (list != NULL) {
        call *next = list->next;
        call_done(list, CS_EUNAVAIL, "the replica is stopping");
        list = next;
    }
}

/* Stop: raft_close fails what libraft holds (proposals in flight get
 * RAFT_LEADERSHIPLOST or RAFT_SHUTDOWN: CS_EUNAVAIL while closing). */
static void begin_close(cs_replica *r)
{
    r->closing = true;
    if (r->tls != NULL)
        cs_rafttls_quiesce(r->tls); /* raft_uv must not be handed a connection now */
    flush_pending(r); /* fails them: closing */
    atomic_store(&r->role, CS_ROLE_UNAVAILABLE);
    raft_close(&r->raft, on_raft_closed);
}

static void on_wake(uv_async_t *h)
{
    cs_replica *r = h->data;
    pthread_mutex_lock(&r->mu);
    call *list = r->head;
    r->head = r->tail = NULL;
    bool stop = r->stopping;
    pthread_mutex_unlock(&r->mu);
    if (r->closing || stop) {
        fail_queue(r, list);
    } else {
        while (list != NULL) {
            call *next = list->next;
            run_call(r, list);
            list = next;
        }
        flush_pending(r);
    }
    if (stop && !r->closing)
        begin_close(r);
}

static void on_barrier(struct raft_barrier *req, int status)
{
    (void)status;
    cs_replica *r = req->data;
    r->barrier_busy = false;
    r->announce_index = 0;
}

/* The members of the configuration that the record lacks, from the cluster
 * file: a new cell's leader records them, so that a member added later
 * (which has only the record) knows every member's client address. */
static void record_initial_members(cs_replica *r)
{
    for (unsigned i = 0; i < r->raft.configuration.n; i++) {
        uint64_t id = r->raft.configuration.servers[i].id;
        const cs_member *m = members_find(&r->initial, id);
        if (m == NULL || members_find(&r->fsm->members, id) != NULL)
            continue;
        call *c = calloc(1, sizeof *c);
        void *base;
        size_t len;
        if (c == NULL || cs_replica_entry_member_put(m, &base, &len, NULL) != CS_OK) {
            free(c);
            return; /* the next leader, or the next election, tries again */
        }
        c->kind = CALL_ENTRY;
        c->r = r;
        c->buf = (struct raft_buffer){base, len};
        run_call(r, c);
    }
}

/* Tell the followers at once that the leader's commit index moved past
 * entries proposed here. Why: a follower learns the commit index only
 * from the leader's next AppendEntries — the next batch, or a heartbeat
 * up to a heartbeat timeout later — and applies (and wakes the polls it
 * holds) only then, so at 100 commits/s a follower served each commit
 * one commit later, ~10 ms behind the leader (docs/benchmarks.md, poll).
 * 0.15 has no call that sends a heartbeat now; a barrier (an empty entry
 * of the term) goes out at once and carries the commit index. Only when
 * no batch is waiting (under load the next batch carries it) and nothing
 * is in flight (may_append); the barrier's own commit announces nothing,
 * so barriers do not chain. */
static void announce_commit(cs_replica *r)
{
    if (!r->committed_unannounced || r->pending != NULL || r->barrier_busy ||
        !may_append(&r->raft))
        return;
    r->committed_unannounced = false;
    if (r->raft.configuration.n < 2)
        return; /* no follower to tell */
    r->barrier.data = r;
    r->barrier_busy = raft_barrier(&r->raft, &r->barrier, on_barrier) == 0;
    if (r->barrier_busy)
        r->announce_index = r->barrier.index;
}

/* libraft 0.15 has no callback for a change of state or term: the loop
 * looks after every turn (a uv_check handle), which is after every event
 * that could change them. The same turn appends the entries waiting for a
 * commit (may_append). */
static void on_check(uv_check_t *h)
{
    cs_replica *r = h->data;
    if (r->closing)
        return;
    flush_pending(r);
    announce_commit(r);
    cs_role role = role_of(raft_state(&r->raft));
    uint64_t term = r->raft.current_term;
    raft_id leader = 0;
    const char *addr = NULL;
    raft_leader(&r->raft, &leader, &addr);
    if (role == r->seen_role && term == r->seen_term && leader == r->seen_leader)
        return;
    bool elected = role == CS_ROLE_LEADER && r->seen_role != CS_ROLE_LEADER;
    r->seen_role = role;
    r->seen_term = term;
    r->seen_leader = leader;
    atomic_store(&r->role, role);
    if (r->hooks.role != NULL)
        r->hooks.role(r->hooks.ctx, role, term, leader);
    if (elected && !r->barrier_busy) {
        /* An entry of the new term first: it commits whatever earlier
         * terms left uncommitted (Raft §5.4.2), and it narrows the window
         * of 0.15's commit of an earlier term's entry by counting replicas
         * (canonical/raft #220, fixed by PR #336): see the top of the file. */
        r->barrier.data = r;
        r->barrier_busy = raft_barrier(&r->raft, &r->barrier, on_barrier) == 0;
    }
    if (elected)
        record_initial_members(r);
}

static void on_advanced(void *ctx, uint64_t applied)
{
    cs_replica *r = ctx;
    pthread_mutex_lock(&r->mu);
    r->applied = applied;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void *loop_main(void *arg)
{
    cs_replica *r = arg;
    /* Not r->thread: pthread_create may store it after this thread has
     * begun, and raft_start already runs hooks (a snapshot's restore). */
    r->loop_thread = pthread_self();
    int rv = r->start_rc == 0 ? raft_start(&r->raft) : r->start_rc;
    if (rv == 0)
        on_check(&r->check); /* a cell of one leads from raft_start on */
    pthread_mutex_lock(&r->mu);
    if (rv != 0 && r->start_rc == 0) {
        r->start_rc = rv;
        snprintf(r->start_msg, sizeof r->start_msg, "starting raft: %s",
                 raft_errmsg(&r->raft));
    }
    r->started = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (rv != 0)
        begin_close(r);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---- the API ---- */

static void deadline_in(struct timespec *ts, uint32_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Queue a call and wake the loop; false (and the call not queued) once the
 * replica is stopping. */
static bool enqueue(cs_replica *r, call *c)
{
    pthread_mutex_lock(&r->mu);
    bool ok = !r->stopping;
    if (ok) {
        if (r->tail != NULL)
            r->tail->next = c;
        else
            r->head = c;
        r->tail = c;
    }
    pthread_mutex_unlock(&r->mu);
    if (ok)
        uv_async_send(&r->wake);
    return ok;
}

/* Queue a waited call and wait up to timeout_ms for it. A status call's
 * picture moves to *st (may be NULL otherwise). */
static int call_wait(cs_replica *r, call *c, uint32_t timeout_ms, const char *what,
                     cs_replica_status *st, cs_error *err)
{
    c->waited = true;
    c->r = r;
    if (!enqueue(r, c)) {
        call_free(c);
        return cs_errorf(err, CS_EUNAVAIL, "%s: the replica is stopping", what);
    }
    struct timespec dl;
    deadline_in(&dl, timeout_ms);
    pthread_mutex_lock(&r->mu);
    while (!c->done) {
        if (pthread_cond_timedwait(&r->cv, &r->mu, &dl) == ETIMEDOUT)
            break;
    }
    if (!c->done) {
        c->abandoned = true;
        pthread_mutex_unlock(&r->mu);
        return cs_errorf(err, CS_EUNAVAIL, "%s: not done after %u ms", what, timeout_ms);
    }
    pthread_mutex_unlock(&r->mu);
    int rc = c->rc;
    if (rc != CS_OK)
        cs_errorf(err, rc, "%s", c->msg);
    if (rc == CS_OK && st != NULL) {
        *st = c->status;
        c->status.members = NULL;
    }
    call_free(c);
    return rc;
}

static const cs_member *member_in(const cs_member *v, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].id == id)
            return &v[i];
    return NULL;
}

/* A store with commands in it but no applied index was written outside
 * the replicated log (a single cellstated's): the other members do not
 * have it, and applying the log on top of it would make this member's
 * cell differ from theirs for good. */
static int check_store_origin(cs_replica_fsm *f, cs_error *err)
{
    if (f->applied > 0)
        return CS_OK;
    cs_snap *snap;
    CS_TRY(cs_snap_open(fsm_store(f), &snap, err));
    uint64_t version = cs_snap_version(snap);
    cs_snap_close(snap);
    if (version == 0)
        return CS_OK;
    return cs_errorf(err, CS_ESTATE,
                     "replica: the store in %s holds a cell (version %" PRIu64 ") that no "
                     "replicated log wrote; start the member on an empty directory",
                     f->store_dir, version);
}

/* Undo what cs_replica_start set up before its thread ran. */
static void start_unwind(cs_replica *r)
{
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uv_loop_close(&r->loop);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    cs_replica_fsm_free(r->fsm);
    cs_rafttls_free(r->tls);
    free(r->initial.v);
    free(r);
}

int cs_replica_start(const cs_replica_opts *o, const cs_replica_hooks *hooks, cs_replica **out,
                     cs_error *err)
{
    if (o->id == 0 || o->raft_dir == NULL || o->store_dir == NULL)
        return cs_errorf(err, CS_EINVAL, "replica: an id above 0, a Raft and a store "
                                         "directory are needed");
    const cs_member *self = member_in(o->members, o->nmembers, o->id);
    const char *addr = self != NULL ? self->raft : o->raft_addr;
    if (addr == NULL || addr[0] == '\0')
        return cs_errorf(err, CS_EINVAL,
                         "replica: member %" PRIu64 " is not in the cluster file and has no "
                         "Raft address of its own",
                         o->id);
    cs_replica *r = calloc(1, sizeof *r);
    if (r == NULL)
        return cs_errorf(err, CS_ENOMEM, "replica: out of memory");
    r->id = o->id;
    snprintf(r->raft_addr, sizeof r->raft_addr, "%s", addr);
    if (hooks != NULL)
        r->hooks = *hooks;
    int rc;
    for (size_t i = 0; i < o->nmembers; i++) {
        if (members_put(&r->initial, &o->members[i]) != CS_OK) {
            rc = cs_errorf(err, CS_ENOMEM, "replica: out of memory");
            goto err_after_alloc;
        }
    }
    if ((rc = cs_mkdir_p(o->raft_dir, err)) != CS_OK ||
        (rc = cs_replica_fsm_new(o->store_dir, &o->store_opts, hooks, &r->fsm, err)) != CS_OK)
        goto err_after_alloc;
    r->fsm->advanced = on_advanced;
    r->fsm->advanced_ctx = r;
    r->applied = r->fsm->applied;
    if ((rc = check_store_origin(r->fsm, err)) != CS_OK)
        goto err_after_fsm;

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&r->mu, NULL);
    if (uv_loop_init(&r->loop) != 0) {
        rc = cs_errorf(err, CS_EIO, "replica: libuv loop");
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        goto err_after_fsm;
    }
    uv_async_init(&r->loop, &r->wake, on_wake);
    r->wake.data = r;
    uv_check_init(&r->loop, &r->check);
    r->check.data = r;
    uv_check_start(&r->check, on_check);

    int rv = raft_uv_tcp_init(&r->transport, &r->loop);
    if (rv != 0) {
        rc = cs_errorf(err, CS_EIO, "replica: raft TCP transport: %s", raft_strerror(rv));
        goto err_after_handles;
    }
    nodelay_wrap(r);
    if (o->tls != NULL) {
        cs_rafttls_pem pem;
        cs_tls_pem(o->tls, &pem.cert, &pem.key, &pem.ca);
        if ((rc = cs_rafttls_new(&r->loop, &r->nodelay, &pem, &r->tls, err)) != CS_OK) {
            raft_uv_tcp_close(&r->transport);
            goto err_after_handles;
        }
    }
    if ((rv = raft_uv_init(&r->io, &r->loop, o->raft_dir,
                           r->tls != NULL ? cs_rafttls_transport(r->tls) : &r->nodelay)) != 0) {
        rc = cs_errorf(err, CS_EIO, "replica: raft I/O in %s: %s", o->raft_dir,
                       r->io.errmsg);
        raft_uv_tcp_close(&r->transport);
        goto err_after_handles;
    }
    /* No LZ4 on snapshots: the store copy is already compacted, a snapshot
     * travels only to a lagging or new member, and compressing every one
     * took a fifth of the members' CPU at C1M (docs/benchmarks.md,
     * Replication). */
    if ((rv = raft_uv_set_snapshot_compression(&r->io, false)) != 0) {
        rc = cs_errorf(err, CS_EIO, "replica: snapshot compression: %s", raft_strerror(rv));
        raft_uv_close(&r->io);
        raft_uv_tcp_close(&r->transport);
        goto err_after_handles;
    }
    /* 0.15's raft_uv has async_work (uv_queue_work) but declares version 1,
     * and raft_init refuses an fsm with snapshot_async on an io below 2:
     * declare what it has. Without the method, snapshots are taken on the
     * loop (fsm_snapshot copies in place). */
    if (r->io.async_work != NULL && r->io.version < 2)
        r->io.version = 2;
    else if (r->io.async_work == NULL)
        r->fsm->fsm.snapshot_async = NULL;
    if ((rv = raft_init(&r->raft, &r->io, cs_replica_fsm_raft(r->fsm), r->id, r->raft_addr)) !=
        0) {
        rc = cs_errorf(err, CS_EIO, "replica: raft: %s", raft_errmsg(&r->raft));
        raft_uv_close(&r->io);
        raft_uv_tcp_close(&r->transport);
        goto err_after_handles;
    }
    r->raft.data = r;
    cs_replica_fsm_bind(r->fsm, &r->raft);
    raft_set_election_timeout(&r->raft, o->election_timeout_ms ? o->election_timeout_ms : 1000);
    raft_set_heartbeat_timeout(&r->raft, o->heartbeat_timeout_ms ? o->heartbeat_timeout_ms : 100);
    raft_set_snapshot_threshold(&r->raft,
                                o->snapshot_threshold ? o->snapshot_threshold : SNAPSHOT_THRESHOLD);
    raft_set_snapshot_trailing(&r->raft,
                               o->snapshot_trailing ? o->snapshot_trailing : SNAPSHOT_TRAILING);
    /* Pre-vote (dissertation §9.6): a member cut off from the others does
     * not raise its term while it is away, so that rejoining does not
     * depose a working leader. */
    raft_set_pre_vote(&r->raft, true);
    if (o->install_snapshot_timeout_ms != 0)
        raft_set_install_snapshot_timeout(&r->raft, o->install_snapshot_timeout_ms);

    /* Every member of a new cell bootstraps the same configuration: all of
     * the cluster file, as voters. A Raft directory with state refuses it
     * (RAFT_CANTBOOTSTRAP), which is the normal restart. A member that is
     * not in the file joins a running cell: it waits to be added. */
    if (self != NULL) {
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        for (size_t i = 0; i < o->nmembers && rv == 0; i++)
            rv = raft_configuration_add(&conf, o->members[i].id, o->members[i].raft, RAFT_VOTER);
        if (rv == 0)
            rv = raft_bootstrap(&r->raft, &conf);
        raft_configuration_close(&conf);
        if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
            r->start_rc = rv;
            snprintf(r->start_msg, sizeof r->start_msg, "bootstrapping raft: %s",
                     raft_errmsg(&r->raft));
        }
    }
    if (pthread_create(&r->thread, NULL, loop_main, r) != 0) {
        rc = cs_errorf(err, CS_EIO, "replica: cannot start its thread");
        r->closing = true;
        raft_close(&r->raft, on_raft_closed);
        goto err_after_raft;
    }
    pthread_mutex_lock(&r->mu);
    while (!r->started)
        pthread_cond_wait(&r->cv, &r->mu);
    rc = r->start_rc;
    pthread_mutex_unlock(&r->mu);
    if (rc != 0) {
        pthread_join(r->thread, NULL);
        rc = cs_errorf(err, CS_EIO, "replica %" PRIu64 ": %s", r->id, r->start_msg);
        goto err_after_raft;
    }
    *out = r;
    return CS_OK;

err_after_handles:
    uv_close((uv_handle_t *)&r->wake, on_closed_handle);
    uv_close((uv_handle_t *)&r->check, on_closed_handle);
err_after_raft:
    start_unwind(r);
    return rc;
err_after_fsm:
    cs_replica_fsm_free(r->fsm);
err_after_alloc:
    free(r->initial.v);
    free(r);
    return rc;
}

void cs_replica_stop(cs_replica *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    uv_async_send(&r->wake);
    pthread_join(r->thread, NULL);
    uv_loop_close(&r->loop);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    cs_replica_fsm_free(r->fsm);
    cs_rafttls_free(r->tls);
    free(r->initial.v);
    free(r);
}

cs_store *cs_replica_store(cs_replica *r) { return fsm_store(r->fsm); }

/* Queue an entry (from raft_malloc: freed here on failure) for the leader
 * to append; the proposer's callback, if any, gets the result. */
static int queue_entry(cs_replica *r, call_kind kind, void *base, size_t len, cs_propose_cb cb,
                       void *arg, cs_error *err)
{
    call *k = calloc(1, sizeof *k);
    if (k == NULL) {
        raft_free(base);
        return cs_errorf(err, CS_ENOMEM, "proposing: out of memory");
    }
    *k = (call){.kind = kind, .r = r, .buf = {base, len}, .cb = cb, .arg = arg};
    if (!enqueue(r, k)) {
        call_free(k);
        return cs_errorf(err, CS_EUNAVAIL, "proposing: the replica is stopping");
    }
    return CS_OK;
}

int cs_replica_propose(cs_replica *r, const cs_command *const *cmds, size_t n, cs_propose_cb cb,
                       void *arg, cs_error *err)
{
    if (atomic_load(&r->role) != CS_ROLE_LEADER)
        return cs_errorf(err, CS_ENOTLEADER, "replica %" PRIu64 " is not the leader", r->id);
    void *base;
    size_t len;
    CS_TRY(cs_replica_entry_commands(cmds, n, &base, &len, err));
    return queue_entry(r, CALL_PROPOSE, base, len, cb, arg, err);
}

int cs_replica_propose_compact(cs_replica *r, uint64_t floor, cs_error *err)
{
    if (atomic_load(&r->role) != CS_ROLE_LEADER)
        return cs_errorf(err, CS_ENOTLEADER, "replica %" PRIu64 " is not the leader", r->id);
    void *base;
    size_t len;
    CS_TRY(cs_replica_entry_compact(floor, &base, &len, err));
    return queue_entry(r, CALL_ENTRY, base, len, NULL, NULL, err);
}

int cs_replica_status_get(cs_replica *r, cs_replica_status *st, cs_error *err)
{
    /* From a hook, on the loop thread itself: waiting would never end. */
    if (pthread_equal(pthread_self(), r->loop_thread)) {
        fill_status(r, st);
        return CS_OK;
    }
    /* Filled on the loop thread into the call itself, so that a waiter
     * that gave up leaves nothing of its own to the loop. */
    call *c = calloc(1, sizeof *c);
    if (c == NULL)
        return cs_errorf(err, CS_ENOMEM, "status: out of memory");
    c->kind = CALL_STATUS;
    return call_wait(r, c, 60000, "status", st, err);
}

int cs_replica_wait_applied(cs_replica *r, uint64_t index, uint32_t timeout_ms, cs_error *err)
{
    struct timespec dl;
    deadline_in(&dl, timeout_ms);
    pthread_mutex_lock(&r->mu);
    while (r->applied < index && !r->stopping) {
        if (pthread_cond_timedwait(&r->cv, &r->mu, &dl) == ETIMEDOUT)
            break;
    }
    uint64_t got = r->applied;
    pthread_mutex_unlock(&r->mu);
    if (got >= index)
        return CS_OK;
    return cs_errorf(err, CS_EUNAVAIL,
                     "replica %" PRIu64 " has applied index %" PRIu64 ", not yet %" PRIu64
                     " (waited %u ms)",
                     r->id, got, index, timeout_ms);
}

/* A membership change `kind` (of member `m`, copied, for an add; else of
 * `id`), handed to the loop and waited for (call_wait). */
static int membership_call(cs_replica *r, call_kind kind, const cs_member *m, uint64_t id,
                           uint32_t timeout_ms, const char *what, cs_error *err)
{
    call *c = calloc(1, sizeof *c);
    if (c == NULL)
        return cs_errorf(err, CS_ENOMEM, "%s: out of memory", what);
    c->kind = kind;
    c->id = id;
    if (m != NULL)
        c->member = *m;
    return call_wait(r, c, timeout_ms, what, NULL, err);
}

int cs_replica_add(cs_replica *r, const cs_member *m, uint32_t timeout_ms, cs_error *err)
{
    if (m->id == 0 || memchr(m->listen, '\0', sizeof m->listen) == NULL ||
        memchr(m->raft, '\0', sizeof m->raft) == NULL || m->listen[0] == '\0' ||
        m->raft[0] == '\0')
        return cs_errorf(err, CS_EINVAL, "add: a member needs an id above 0 and both addresses");
    return membership_call(r, CALL_ADD, m, m->id, timeout_ms, "add", err);
}

int cs_replica_remove(cs_replica *r, uint64_t id, uint32_t timeout_ms, cs_error *err)
{
    return membership_call(r, CALL_REMOVE, NULL, id, timeout_ms, "remove", err);
}

int cs_replica_transfer(cs_replica *r, uint64_t id, uint32_t timeout_ms, cs_error *err)
{
    return membership_call(r, CALL_TRANSFER, NULL, id, timeout_ms, "transfer", err);
}
