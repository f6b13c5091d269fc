/* cellctl_table.c — aligned text tables (see cellctl_table.h). */
#include "tools/cellctl_table.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define GAP 3

static int push(ctl_table *t, char *cell, cs_error *err)
{
    if (cell == NULL)
        return cs_errorf(err, CS_ENOMEM, "table: out of memory");
    if (t->ncells == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        char **c = realloc(t->cells, cap * sizeof *c);
        if (c == NULL) {
            free(cell);
            return cs_errorf(err, CS_ENOMEM, "table: out of memory");
        }
        t->cells = c;
        t->cap = cap;
    }
    t->cells[t->ncells++] = cell;
    return CS_OK;
}

int ctl_table_init(ctl_table *t, uint32_t ncols, const char *const *headers, cs_error *err)
{
    memset(t, 0, sizeof *t);
    t->ncols = ncols;
    for (uint32_t i = 0; i < ncols && i < 64; i++) {
        const char *h = headers[i];
        if (h[0] == '>') {
            t->right |= UINT64_C(1) << i;
            h++;
        }
        int rc = push(t, strdup(h), err);
        if (rc != CS_OK)
            return rc;
    }
    return CS_OK;
}

int ctl_table_cellf(ctl_table *t, cs_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cell = NULL;
    int n = vasprintf(&cell, fmt, ap);
    va_end(ap);
    return push(t, n < 0 ? NULL : cell, err);
}

size_t ctl_table_rows(const ctl_table *t)
{
    return t->ncols ? t->ncells / t->ncols - (t->ncells >= t->ncols) : 0;
}

void ctl_table_print(const ctl_table *t, FILE *f, size_t width)
{
    if (t->ncols == 0)
        return;
    size_t w[64] = {0};
    for (size_t i = 0; i < t->ncells; i++) {
        size_t n = strlen(t->cells[i]);
        if (n > w[i % t->ncols])
            w[i % t->ncols] = n;
    }
    char *line = NULL;
    size_t cap = 0;
    for (size_t row = 0; row * t->ncols < t->ncells; row++) {
        size_t len = 0;
        for (uint32_t col = 0; col < t->ncols && row * t->ncols + col < t->ncells; col++) {
            const char *cell = t->cells[row * t->ncols + col];
            size_t n = strlen(cell), pad = w[col] - n;
            bool last = col + 1 == t->ncols;
            size_t need = len + w[col] + GAP + 1;
            if (need > cap) {
                char *l = realloc(line, need * 2);
                if (l == NULL)
                    break;
                line = l;
                cap = need * 2;
            }
            if (t->right & (UINT64_C(1) << col)) {
                memset(line + len, ' ', pad);
                len += pad;
                pad = 0;
            }
            memcpy(line + len, cell, n);
            len += n;
            if (!last) {
                memset(line + len, ' ', pad + GAP);
                len += pad + GAP;
            }
        }
        while (len > 0 && line[len - 1] == ' ')
            len--;
        if (width > 0 && len > width)
            len = width;
        fprintf(f, "%.*s\n", (int)len, line ? line : "");
    }
    free(line);
}

void ctl_table_free(ctl_table *t)
{
    for (size_t i = 0; i < t->ncells; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}
