/*
 * secfile: reel's container file, a header, named sections, and a table.
 *
 * Every binary file reel writes (dataset, ground truth, later vectors and
 * indexes) is a secfile: named, typed, 64-byte aligned sections, each with
 * a CRC-32C, listed in a checksummed table at the end of the file. The
 * byte layout is specified in docs/formats/secfile.md.
 *
 * Writing streams sections one after another into a temporary file next to
 * the destination; reel_secfile_writer_commit() writes the table and the
 * header, fsyncs, renames over the destination and fsyncs the directory, so
 * a reader sees the old file or the new one, never half of one. A writer
 * that is freed without commit removes its temporary file.
 *
 * Reading maps the whole file read-only; sections are views into the map,
 * valid until reel_secfile_close(). reel_secfile_open() validates the
 * header, the table, every section's bounds and alignment and (unless
 * REEL_SECFILE_NOVERIFY) every section's checksum, and explains a refusal
 * in the diag. Thread rules: a writer belongs to one thread; an open file
 * is read-only and may be shared by any number of threads.
 */
#ifndef REEL_BASE_SECFILE_H
#define REEL_BASE_SECFILE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define REEL_SECFILE_NAME_MAX 31

enum reel_sectype {
    REEL_SEC_BYTES = 0,
    REEL_SEC_U8 = 1,
    REEL_SEC_I16 = 2,
    REEL_SEC_U32 = 3,
    REEL_SEC_U64 = 4,
    REEL_SEC_F32 = 5,
    REEL_SEC_F64 = 6,
    REEL_SEC_I32 = 7,
    REEL_SEC_I8 = 8,
    REEL_SEC_U16 = 9,
};

/* Size in bytes of one element of the type (1 for BYTES). */
size_t reel_sectype_size(enum reel_sectype t);

typedef struct reel_section {
    const char *name; /* points into the table */
    enum reel_sectype type;
    uint64_t count;   /* elements */
    uint64_t length;  /* bytes */
    const void *data; /* 64-byte aligned view into the map */
} reel_section;

typedef struct reel_secfile_writer reel_secfile_writer;
typedef struct reel_secfile reel_secfile;

/* `kind` (at most 15 bytes, e.g. "dataset") names what the file holds and
 * is checked by readers. */
int reel_secfile_writer_open(const char *path, const char *kind,
                             reel_secfile_writer **out, reel_diag *d);
/* Writes one section; names are unique and at most 31 bytes. */
int reel_secfile_writer_add(reel_secfile_writer *w, const char *name,
                            enum reel_sectype type, const void *data,
                            uint64_t count);
/* Streams a section in pieces: begin, any number of appends, end. */
int reel_secfile_writer_begin(reel_secfile_writer *w, const char *name,
                              enum reel_sectype type);
int reel_secfile_writer_append(reel_secfile_writer *w, const void *data,
                               uint64_t bytes);
int reel_secfile_writer_end(reel_secfile_writer *w);
/* Bytes written so far (for progress). */
uint64_t reel_secfile_writer_pos(const reel_secfile_writer *w);
/* Finishes and publishes the file atomically; frees the writer. */
int reel_secfile_writer_commit(reel_secfile_writer *w, reel_diag *d);
/* Abandons the file (removes the temporary file); NULL is fine. */
void reel_secfile_writer_free(reel_secfile_writer *w);

/* NOVERIFY skips the sections' checksums (structure is still checked).
 * WRITABLE maps the file copy-on-write: the reader may change sections in
 * memory (an index taking online updates); the file never changes. */
enum { REEL_SECFILE_NOVERIFY = 1, REEL_SECFILE_WRITABLE = 2 };

/* A writable view of a section (only with REEL_SECFILE_WRITABLE). */
void *reel_secfile_mutable(const reel_secfile *f, const reel_section *s);

int reel_secfile_open(const char *path, const char *kind, int flags,
                      reel_secfile **out, reel_diag *d);
void reel_secfile_close(reel_secfile *f);

uint32_t reel_secfile_count(const reel_secfile *f);
const reel_section *reel_secfile_at(const reel_secfile *f, uint32_t i);
/* The named section, or NULL when the file has none of that name. */
const reel_section *reel_secfile_find(const reel_secfile *f, const char *name);
/* Like find, but a missing section or one of another type, or whose count
 * is not `count` (unless count is UINT64_MAX), is REEL_ECORRUPT with a
 * message naming the section. */
int reel_secfile_need(const reel_secfile *f, const char *name,
                      enum reel_sectype type, uint64_t count,
                      const reel_section **out, reel_diag *d);
uint64_t reel_secfile_size(const reel_secfile *f);

#endif
