/* fuzz_http.c — the request target of cellstated's HTTP API as the gateway
 * reads it (gw_req_parse and gw_blocking, http/api.h): the path split into
 * segments before each is %-decoded, the query into decoded parameters,
 * ?index and ?wait. Whatever a client sends after the method: every input
 * is refused with an error or parsed, never a crash or a leak. A parsed
 * target, written again with every byte %-escaped that could be read
 * otherwise, must parse to the same segments and parameters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/api.h"
#include "tests/fuzz/fuzz.h"

/* s, %-escaped but for letters and digits, appended to m. */
static void escape(FILE *m, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))
            fputc(*p, m);
        else
            fprintf(m, "%%%02X", *p);
}

static bool same(const gw_req *a, const gw_req *b)
{
    if (a->nseg != b->nseg || a->nparams != b->nparams)
        return false;
    for (size_t i = 0; i < a->nseg; i++)
        if (strcmp(a->seg[i], b->seg[i]) != 0)
            return false;
    for (size_t i = 0; i < a->nparams; i++)
        if (strcmp(a->params[i].key, b->params[i].key) != 0 ||
            strcmp(a->params[i].value, b->params[i].value) != 0)
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* nng hands the gateway a C string: a NUL ends the target. */
    char *uri = strndup((const char *)data, size);
    if (uri == NULL)
        return 0;
    gw_req q = {.method = "GET"}, back = {.method = "GET"};
    cs_error err = {0};
    if (gw_req_parse(uri, &q, &err) == CS_OK) {
        bool blocking;
        uint64_t index;
        uint32_t wait_ms;
        if (gw_blocking(&q, &blocking, &index, &wait_ms, &err) == CS_OK && blocking)
            fz_require(wait_ms > 0 || gw_req_param(&q, "wait") != NULL,
                       "a blocking query without ?wait waits the default");
        char *text = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&text, &len);
        fz_require(m != NULL, "memory for the target");
        for (size_t i = 0; i < q.nseg; i++) {
            fputc('/', m);
            escape(m, q.seg[i]);
        }
        for (size_t i = 0; i < q.nparams; i++) {
            fputc(i ? '&' : '?', m);
            escape(m, q.params[i].key);
            fputc('=', m);
            escape(m, q.params[i].value);
        }
        fclose(m);
        fz_require(gw_req_parse(text, &back, &err) == CS_OK, "a written target parses");
        fz_require(same(&q, &back), "a written target parses to the same segments and parameters");
        free(text);
    }
    gw_req_free(&q);
    gw_req_free(&back);
    free(uri);
    return 0;
}
