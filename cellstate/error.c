/* error.c — the error table and message helpers (see error.h). */
#include "cellstate/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *cs_strerror(int code)
{
    switch (code) {
#define CS_ERROR_CASE(name, value, text) \
    case value:                          \
        return text;
        CS_ERROR_TABLE(CS_ERROR_CASE)
#undef CS_ERROR_CASE
    default:
        return "unknown error";
    }
}

const char *cs_error_name(int code)
{
    switch (code) {
#define CS_ERROR_NAME(name, value, text) \
    case value:                          \
        return &(#name)[3]; /* past "CS_" */
        CS_ERROR_TABLE(CS_ERROR_NAME)
#undef CS_ERROR_NAME
    default:
        return "unknown";
    }
}

int cs_errorf(cs_error *err, int code, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->code = code;
    return code;
}

int cs_error_wrap(cs_error *err, int code, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    char prefix[CS_ERROR_MSG_SIZE];
    char old[CS_ERROR_MSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    if (err->code == CS_OK)
        err->code = code;
    /* A long chain of context is cut at the buffer's end, on purpose. */
    const char *inner = old[0] != '\0' ? old : cs_strerror(err->code);
    if (snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, inner) < 0)
        err->msg[0] = '\0';
    return err->code;
}

void cs_error_clear(cs_error *err)
{
    if (err == NULL)
        return;
    err->code = CS_OK;
    err->msg[0] = '\0';
}
