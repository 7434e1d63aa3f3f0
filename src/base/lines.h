/*
 * lines: reads a text file line by line, and CSV records on top of it.
 *
 * Lines are returned without their terminator ("\n" or "\r\n"), as views
 * valid until the next call, with their 1-based number for error messages.
 * A line longer than the reader's limit is an error (REEL_ETOOBIG), never a
 * reason to allocate without bound. The path "-" reads standard input.
 *
 * reel_csv_next() parses one RFC 4180 record (comma-separated, fields
 * optionally in double quotes with "" as an escaped quote, quoted fields
 * may span lines); the fields are views valid until the next call.
 * Thread rules: one thread per reader.
 */
#ifndef REEL_BASE_LINES_H
#define REEL_BASE_LINES_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

typedef struct reel_lines reel_lines;

typedef struct reel_field {
    const char *p;
    size_t len;
} reel_field;

enum { REEL_LINES_DEFAULT_MAX = 1 << 20 };

/* max_line 0 means REEL_LINES_DEFAULT_MAX. `path` is borrowed and must
 * outlive the reader (diags point at it, so keep it longer still). */
int reel_lines_open(const char *path, size_t max_line, reel_lines **out,
                    reel_diag *d);
void reel_lines_close(reel_lines *r);

/* 1 with a line, 0 at end of file, or a negative error (diag says where). */
int reel_lines_next(reel_lines *r, const char **line, size_t *len,
                    reel_diag *d);
/* Number of the line last returned (1-based). */
uint64_t reel_lines_lineno(const reel_lines *r);
/* Bytes consumed so far and the file's size (0 when unknown): progress. */
uint64_t reel_lines_offset(const reel_lines *r);
uint64_t reel_lines_size(const reel_lines *r);
const char *reel_lines_path(const reel_lines *r);

/* 1 with a record (at most max_fields fields, *n_fields set), 0 at end of
 * file, or a negative error. `sep` is the separator (',' for CSV). */
int reel_csv_next(reel_lines *r, char sep, reel_field *fields,
                  size_t max_fields, size_t *n_fields, reel_diag *d);

/* Splits a line on a separator without quoting rules (tab or pipe files);
 * returns the number of fields, or max_fields + 1 if there are more. */
size_t reel_split(const char *line, size_t len, char sep, reel_field *fields,
                  size_t max_fields);

#endif
