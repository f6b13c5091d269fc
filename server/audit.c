/* audit.c — the audit log (see audit.h). */
#include "server/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* cellstated links jansson for its HTTP API; a line read back is parsed
 * with it rather than by a parser of our own. */
#include <jansson.h>

#define AUDIT_FILE "audit.log"
#define AUDIT_OLD ".1"
/* An error is written to stderr at most this often. */
#define ERROR_LOG_MS 60000
/* A read takes a file this many bytes at a time from its end; a line is
 * at most about 2 KiB (every byte of a 255-byte target escaped as a
 * six-byte \u00hh), so a longer one is damage, skipped. */
#define READ_CHUNK (64u << 10)

struct cs_audit {
    pthread_mutex_t mu;
    char path[4096], old[4096]; /* DIR/audit.log, DIR/audit.log.1 */
    int fd;                     /* -1 after a failed reopen: tried again at the next flush */
    uint64_t size;              /* bytes in audit.log (mu) */
    uint64_t max_bytes;
    bool torn; /* the last append was cut short: the next starts a new line (mu) */
    bool logged;       /* an error was written to stderr, at logged_ms (mu) */
    int64_t logged_ms;
    _Atomic uint64_t errors;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read and write: cs_audit_open reads the last byte back. */
static int open_append(const char *path)
{
    return open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

int cs_audit_open(const char *dir, uint64_t max_bytes, cs_audit **out, cs_error *err)
{
    cs_audit *a = calloc(1, sizeof *a);
    if (a == NULL)
        return cs_errorf(err, CS_ENOMEM, "audit log: out of memory");
    int n = snprintf(a->path, sizeof a->path, "%s/" AUDIT_FILE, dir);
    int m = snprintf(a->old, sizeof a->old, "%s/" AUDIT_FILE AUDIT_OLD, dir);
    if (n < 0 || (size_t)n >= sizeof a->path || m < 0 || (size_t)m >= sizeof a->old) {
        free(a);
        return cs_errorf(err, CS_EINVAL, "audit log in %s: path too long", dir);
    }
    struct stat st;
    if ((a->fd = open_append(a->path)) < 0 || fstat(a->fd, &st) != 0) {
        int e = errno;
        if (a->fd >= 0)
            close(a->fd);
        free(a);
        return cs_errorf(err, CS_EIO, "audit log %s/" AUDIT_FILE ": %s", dir, strerror(e));
    }
    a->size = (uint64_t)st.st_size;
    /* A file that does not end its last line (a crash mid-append): the
     * first append starts a new one, so that only the torn line is lost. */
    char last = '\n';
    if (st.st_size > 0 && pread(a->fd, &last, 1, st.st_size - 1) != 1)
        last = '\n';
    a->torn = last != '\n';
    a->max_bytes = max_bytes;
    pthread_mutex_init(&a->mu, NULL);
    *out = a;
    return CS_OK;
}

void cs_audit_close(cs_audit *a)
{
    if (a == NULL)
        return;
    if (a->fd >= 0)
        close(a->fd);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

uint64_t cs_audit_errors(cs_audit *a) { return atomic_load(&a->errors); }

/* Count an error and tell stderr, unless it was told within the minute. */
static void fail(cs_audit *a, const char *what, int e)
{
    atomic_fetch_add(&a->errors, 1);
    int64_t now = mono_ms();
    if (a->logged && now - a->logged_ms < ERROR_LOG_MS)
        return;
    a->logged = true;
    a->logged_ms = now;
    fprintf(stderr,
            "cellstated: audit log %s: %s: %s (the cell's writes go on; "
            "cellsched_audit_errors_total counts such errors; said at most once a minute)\n",
            a->path, what, strerror(e));
}

/* ---- building entries ------------------------------------------------------------ */

void cs_audit_buf_init(cs_audit_buf *b) { memset(b, 0, sizeof *b); }

void cs_audit_buf_free(cs_audit_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static bool reserve(cs_audit_buf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (d == NULL)
        return false;
    b->data = d;
    b->cap = cap;
    return true;
}

/* The length of the UTF-8 character at s[0..n) (1..4), or 0 when it is
 * not one: a stray continuation byte, a truncated sequence, an overlong
 * form, a surrogate or a code point above U+10FFFF (RFC 3629). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

/* `s` as a JSON string, cut to `max` bytes of its text: quotes,
 * backslashes and control characters escaped, a byte that is not UTF-8
 * written as U+FFFD (a name may hold any bytes; the line must stay JSON). */
static void put_string(cs_audit_buf *b, const char *s, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strnlen(s, max);
    /* Cut before the character the bound falls in, not inside it. */
    if (n == max)
        while (n > 0 && (p[n] & 0xc0) == 0x80)
            n--;
    /* At most 6 bytes out for each byte in, and the quotes. */
    if (!reserve(b, n * 6 + 2)) {
        b->lost = true;
        return;
    }
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t len = utf8_len(p + i, n - i);
        if (len > 1) {
            memcpy(o, p + i, len);
            o += len;
            i += len;
            continue;
        }
        i++;
        if (len == 0) {
            memcpy(o, "\\ufffd", 6);
            o += 6;
        } else if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c == '\n') {
            *o++ = '\\', *o++ = 'n';
        } else if (c == '\r') {
            *o++ = '\\', *o++ = 'r';
        } else if (c == '\t') {
            *o++ = '\\', *o++ = 't';
        } else if (c < 0x20 || c == 0x7f) {
            o += sprintf(o, "\\u%04x", c);
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
}

static void put_text(cs_audit_buf *b, const char *s)
{
    size_t n = strlen(s);
    if (!reserve(b, n)) {
        b->lost = true;
        return;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

void cs_audit_add(cs_audit_buf *b, uint64_t time_ms, const char *who, const char *action,
                  const char *target, uint64_t version)
{
    size_t start = b->len;
    char num[64];
    snprintf(num, sizeof num, "{\"time\":%" PRIu64 ",\"who\":", time_ms);
    put_text(b, num);
    put_string(b, who, CS_AUDIT_WHO_MAX);
    put_text(b, ",\"action\":");
    put_string(b, action, CS_AUDIT_ACTION_MAX);
    put_text(b, ",\"target\":");
    put_string(b, target, CS_AUDIT_TARGET_MAX);
    snprintf(num, sizeof num, ",\"version\":%" PRIu64 "}\n", version);
    put_text(b, num);
    if (b->lost) {
        /* Out of memory midway: no half entry. */
        b->len = start;
        return;
    }
    b->n++;
}

/* ---- appending ------------------------------------------------------------------- */

/* audit.log becomes audit.log.1 and a new one is begun (mu held). */
static void rotate(cs_audit *a)
{
    if (rename(a->path, a->old) != 0) {
        fail(a, "renaming it to " AUDIT_FILE AUDIT_OLD, errno);
        return; /* appended to as it is, past the bound, until a rename works */
    }
    if (a->fd >= 0)
        close(a->fd);
    a->size = 0;
    a->torn = false;
    if ((a->fd = open_append(a->path)) < 0)
        fail(a, "opening it anew", errno);
}

void cs_audit_flush(cs_audit *a, cs_audit_buf *b)
{
    if (b->lost)
        atomic_fetch_add(&a->errors, 1);
    if (b->len == 0) {
        b->n = 0;
        b->lost = false;
        return;
    }
    pthread_mutex_lock(&a->mu);
    if (a->max_bytes != 0 && a->size > 0 && a->size + b->len > a->max_bytes)
        rotate(a);
    if (a->fd < 0 && (a->fd = open_append(a->path)) < 0) {
        fail(a, "opening it", errno);
        goto out;
    }
    /* One system call for the group: the line that a torn append left
     * open is ended by the same writev. */
    struct iovec iov[2] = {{(void *)"\n", 1}, {b->data, b->len}};
    struct iovec *v = a->torn ? iov : iov + 1;
    int nv = a->torn ? 2 : 1;
    size_t want = b->len + a->torn;
    ssize_t w = writev(a->fd, v, nv);
    if (w < 0) {
        fail(a, "appending", errno);
    } else {
        a->size += (uint64_t)w;
        a->torn = (size_t)w < want;
        if (a->torn)
            fail(a, "appending: cut short", EIO);
    }
out:
    pthread_mutex_unlock(&a->mu);
    b->len = 0;
    b->n = 0;
    b->lost = false;
}

/* ---- reading --------------------------------------------------------------------- */

typedef struct scan {
    const cs_audit_req *q;
    cs_arena *ar;
    cs_audit_entry *v; /* newest first; limit of them */
    uint32_t n;
    bool more, done;
    int rc;
    cs_error *err;
    /* The filters as cs_audit_add writes them ("action":"job.kill", and
     * "who":"agent: without its closing quote: escaping is done character
     * by character, so the escaped filter is a prefix of the escaped
     * principal it is a prefix of); empty when absent. */
    cs_audit_buf who, action;
} scan;

/* The line's time, read where cs_audit_add writes it, without parsing the
 * line; false for a line not of that form (parsed whole, or skipped). */
static bool quick_time(const char *line, size_t len, uint64_t *out)
{
    static const char head[] = "{\"time\":";
    size_t h = sizeof head - 1;
    if (len <= h || memcmp(line, head, h) != 0 || line[h] < '0' || line[h] > '9')
        return false;
    uint64_t t = 0;
    for (size_t i = h; i < len && line[i] >= '0' && line[i] <= '9' && t < UINT64_MAX / 10; i++)
        t = t * 10 + (uint64_t)(line[i] - '0');
    *out = t;
    return true;
}

/* Whether the line may match the filters: a line without their text is
 * passed over unparsed. Parsing (jansson) is most of a read's cost: a
 * filter that matches little otherwise parsed every line of both files
 * (3.6 s for 600,000 entries). */
static bool may_match(const scan *sc, const char *line, size_t len)
{
    return (sc->who.len == 0 || memmem(line, len, sc->who.data, sc->who.len) != NULL) &&
           (sc->action.len == 0 || memmem(line, len, sc->action.data, sc->action.len) != NULL);
}

static char *dup_str(cs_arena *ar, json_t *s)
{
    return cs_arena_strndup(ar, json_string_value(s), json_string_length(s));
}

/* One line, newest first: an entry that matches is kept. A line that is
 * not an entry is skipped. */
static void visit(scan *sc, const char *line, size_t len)
{
    uint64_t quick;
    if (quick_time(line, len, &quick)) {
        if (quick < sc->q->since) {
            sc->done = true;
            return;
        }
        if (!may_match(sc, line, len))
            return;
    }
    json_error_t je;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    json_t *t = json_object_get(o, "time"), *who = json_object_get(o, "who"),
           *act = json_object_get(o, "action"), *tgt = json_object_get(o, "target"),
           *ver = json_object_get(o, "version");
    if (!json_is_integer(t) || !json_is_string(who) || !json_is_string(act) ||
        !json_is_string(tgt) || !json_is_integer(ver) || json_integer_value(t) < 0 ||
        json_integer_value(ver) < 0)
        goto out;
    const cs_audit_req *q = sc->q;
    uint64_t time_ms = (uint64_t)json_integer_value(t);
    if (time_ms < q->since) {
        sc->done = true; /* everything further back is older still */
        goto out;
    }
    if ((q->who != NULL && !cs_audit_who_matches(json_string_value(who), q->who)) ||
        (q->action != NULL && strcmp(json_string_value(act), q->action) != 0))
        goto out;
    if (sc->n == q->limit) {
        sc->more = sc->done = true;
        goto out;
    }
    cs_audit_entry *e = &sc->v[sc->n];
    e->time_ms = time_ms;
    e->version = (uint64_t)json_integer_value(ver);
    if ((e->who = dup_str(sc->ar, who)) == NULL || (e->action = dup_str(sc->ar, act)) == NULL ||
        (e->target = dup_str(sc->ar, tgt)) == NULL) {
        sc->rc = cs_errorf(sc->err, CS_ENOMEM, "audit: out of memory");
        sc->done = true;
        goto out;
    }
    sc->n++;
out:
    json_decref(o);
}

/* Read bytes [off, off + len) of fd whole. */
static int read_at(int fd, char *buf, size_t len, off_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, buf + got, len - got, off + (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? errno : EIO;
        got += (size_t)r;
    }
    return 0;
}

/* The lines of fd's first `size` bytes, from the last to the first, to
 * visit() until it is done. Bytes after the last newline (an append in
 * progress, or torn) and a line longer than READ_CHUNK are skipped. */
static int scan_file(scan *sc, int fd, off_t size, const char *path, char *buf)
{
    bool dropping = true; /* skipping back to the end of a whole line */
    off_t end = size;
    while (end > 0 && !sc->done) {
        off_t start = end > (off_t)READ_CHUNK ? end - (off_t)READ_CHUNK : 0;
        size_t len = (size_t)(end - start);
        int e = read_at(fd, buf, len, start);
        if (e != 0)
            return cs_errorf(sc->err, CS_EIO, "audit: reading %s: %s", path, strerror(e));
        size_t stop = len; /* buf[0..stop) is left to read; buf[stop - 1] ends a line */
        if (dropping) {
            char *nl = memrchr(buf, '\n', stop);
            if (nl == NULL) {
                end = start;
                continue;
            }
            stop = (size_t)(nl - buf) + 1;
            dropping = false;
        }
        for (;;) {
            if (stop == 0 || sc->done) {
                end = start;
                break;
            }
            char *nl = stop >= 2 ? memrchr(buf, '\n', stop - 1) : NULL;
            if (nl != NULL) {
                size_t from = (size_t)(nl - buf) + 1;
                visit(sc, buf + from, stop - 1 - from);
                stop = from;
                continue;
            }
            if (start == 0) {
                visit(sc, buf, stop - 1);
                end = 0;
            } else if (stop == len) {
                /* No line starts in the whole chunk: too long to be an
                 * entry. */
                dropping = true;
                end = start;
            } else {
                end = start + (off_t)stop; /* the line begins before the chunk */
            }
            break;
        }
    }
    return sc->rc;
}

int cs_audit_read(cs_audit *a, const cs_audit_req *q, cs_arena *ar, cs_audit_entry **out,
                  uint32_t *n, bool *more, cs_error *err)
{
    scan sc = {.q = q, .ar = ar, .err = err};
    int rc = CS_OK;
    uint32_t limit = q->limit != 0 ? q->limit : CS_AUDIT_LIMIT_DEFAULT;
    cs_audit_req qq = *q;
    qq.limit = limit;
    sc.q = &qq;
    cs_audit_buf_init(&sc.who);
    cs_audit_buf_init(&sc.action);
    if (q->who != NULL) {
        put_text(&sc.who, "\"who\":");
        put_string(&sc.who, q->who, CS_AUDIT_WHO_MAX);
        sc.who.len--; /* a prefix: without the closing quote */
    }
    if (q->action != NULL) {
        put_text(&sc.action, "\"action\":");
        put_string(&sc.action, q->action, CS_AUDIT_ACTION_MAX);
    }
    if (sc.who.lost || sc.action.lost) {
        cs_audit_buf_free(&sc.who);
        cs_audit_buf_free(&sc.action);
        return cs_errorf(err, CS_ENOMEM, "audit: out of memory");
    }
    char *buf = malloc(READ_CHUNK);
    if (buf == NULL || (sc.v = cs_arena_alloc(ar, (size_t)limit * sizeof *sc.v)) == NULL) {
        free(buf);
        cs_audit_buf_free(&sc.who);
        cs_audit_buf_free(&sc.action);
        return cs_errorf(err, CS_ENOMEM, "audit: out of memory");
    }
    /* Both files as of one moment: a rotation (under mu) between the two
     * opens would have the read take the same entries twice. */
    const char *paths[2] = {a->path, a->old};
    int fds[2] = {-1, -1};
    off_t sizes[2] = {0, 0};
    pthread_mutex_lock(&a->mu);
    for (int i = 0; i < 2; i++) {
        struct stat st;
        fds[i] = open(paths[i], O_RDONLY | O_CLOEXEC);
        if (fds[i] < 0 && errno != ENOENT)
            rc = cs_errorf(err, CS_EIO, "audit: opening %s: %s", paths[i], strerror(errno));
        else if (fds[i] >= 0 && fstat(fds[i], &st) != 0)
            rc = cs_errorf(err, CS_EIO, "audit: %s: %s", paths[i], strerror(errno));
        else if (fds[i] >= 0 && S_ISREG(st.st_mode))
            sizes[i] = st.st_size;
        /* Anything but a file (a directory in its place) holds no entry. */
        if (rc != CS_OK)
            break;
    }
    pthread_mutex_unlock(&a->mu);
    for (int i = 0; i < 2 && rc == CS_OK && !sc.done; i++)
        if (fds[i] >= 0)
            rc = scan_file(&sc, fds[i], sizes[i], paths[i], buf);
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(buf);
    cs_audit_buf_free(&sc.who);
    cs_audit_buf_free(&sc.action);
    if (rc != CS_OK)
        return rc;
    /* Newest first as read; oldest first as answered. */
    for (uint32_t i = 0; i < sc.n / 2; i++) {
        cs_audit_entry t = sc.v[i];
        sc.v[i] = sc.v[sc.n - 1 - i];
        sc.v[sc.n - 1 - i] = t;
    }
    *out = sc.v;
    *n = sc.n;
    *more = sc.more;
    return CS_OK;
}
