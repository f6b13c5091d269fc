/* error.h — cellsched's error codes and the error record every layer fills.
 *
 * Every function that can fail returns an int: 0 (CS_OK) on success, one of
 * the CS_E* codes below otherwise. Functions that take a `cs_error *` also
 * write a sentence naming the problem into it ("task 42: unknown job 7"), so
 * that a daemon can send it back to whoever asked. Codes and their fixed
 * descriptions come from one X-macro table so that they cannot drift apart.
 */
#ifndef CS_ERROR_H
#define CS_ERROR_H

#include <stddef.h>

#define CS_ERROR_TABLE(X)                                                        \
    X(CS_OK, 0, "success")                                                       \
    X(CS_ENOMEM, 1, "out of memory")                                             \
    X(CS_EIO, 2, "storage error")                                                \
    X(CS_ECORRUPT, 3, "corrupt record")                                          \
    X(CS_ESCHEMA, 4, "schema version mismatch")                                  \
    X(CS_EINVAL, 5, "invalid argument")                                          \
    X(CS_ENOTFOUND, 6, "not found")                                              \
    X(CS_EEXIST, 7, "already exists")                                            \
    X(CS_ECOMPACTED, 8, "version is behind the log floor")                       \
    X(CS_EFULL, 9, "store is full")                                              \
    X(CS_EPROTO, 10, "protocol error")                                           \
    X(CS_ETOOBIG, 11, "too large")                                               \
    X(CS_ESTATE, 12, "not allowed in the current state")                        \
    X(CS_ENOTLEADER, 13, "not the leader")                                      \
    X(CS_EUNAVAIL, 14, "unavailable")                                           \
    X(CS_EPERM, 15, "permission denied")

enum {
#define CS_ERROR_ENUM(name, value, text) name = value,
    CS_ERROR_TABLE(CS_ERROR_ENUM)
#undef CS_ERROR_ENUM
};

/* The largest code of the table: a decoder of a peer's code takes 0 .. this. */
#define CS_ECODE_MAX CS_EPERM

#define CS_ERROR_MSG_SIZE 256

/* The last error of an operation: its code and a sentence with context. */
typedef struct cs_error {
    int code;
    char msg[CS_ERROR_MSG_SIZE];
} cs_error;

/* The fixed description of a code; "unknown error" for a code outside the
 * table. The string is static: never freed. */
const char *cs_strerror(int code);

/* The code's name as docs/protocol.md spells it, without the CS_ prefix:
 * "EINVAL", "ENOTFOUND"; "OK" for CS_OK, "unknown" for a code outside the
 * table (a label a metric can carry: server/metrics.c). Static. */
const char *cs_error_name(int code);

/* Record `code` and a printf-style message in `err` (which may be NULL) and
 * return `code`, so that callers can write `return cs_errorf(err, ...)`. */
int cs_errorf(cs_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix the message already in `err` with more context ("commit: " + msg).
 * Returns err->code, or `code` when err is NULL. */
int cs_error_wrap(cs_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reset `err` to CS_OK with an empty message. NULL is allowed. */
void cs_error_clear(cs_error *err);

/* Return from the enclosing function with `call`'s code unless it is CS_OK
 * (for functions that return a cs error code, the message already set). */
#define CS_TRY(call)          \
    do {                      \
        int cs_try_ = (call); \
        if (cs_try_ != CS_OK) \
            return cs_try_;   \
    } while (0)

#endif
