/* cellctl_table.h — aligned text tables for cellctl's `get`, `describe` and
 * `watch`: cells are added row by row, column widths are computed when the
 * table is printed, and lines can be cut at a terminal's width so that
 * `watch` never wraps (a wrapped line would break its redraw in place).
 */
#ifndef CELLCTL_TABLE_H
#define CELLCTL_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cellstate/error.h"

typedef struct ctl_table {
    uint32_t ncols;
    char **cells; /* row-major, the header first; each malloc'd */
    size_t ncells, cap;
    uint64_t right; /* bit i: column i is right-aligned (numbers) */
} ctl_table;

/* Start a table with `ncols` (≤ 64) columns named by `headers` (copied). A
 * header starting with '>' is right-aligned (the '>' is not printed).
 * CS_ENOMEM; on any result ctl_table_free is safe. */
int ctl_table_init(ctl_table *t, uint32_t ncols, const char *const *headers, cs_error *err);

/* Append one cell, printf-style; rows fill left to right, then wrap. */
int ctl_table_cellf(ctl_table *t, cs_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Rows added so far (the header not counted). */
size_t ctl_table_rows(const ctl_table *t);

/* Print the header and the rows, columns three spaces apart, the last
 * column not padded. `width` > 0 cuts each line at that many bytes. */
void ctl_table_print(const ctl_table *t, FILE *f, size_t width);

void ctl_table_free(ctl_table *t);

#endif
