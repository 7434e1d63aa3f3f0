/*
 * err: the one list of error codes in reel.
 *
 * Every function that can fail returns int: 0 on success or one of the
 * negative REEL_E* codes below. The numbers are stable (they may appear in
 * logs and exit paths), so new codes are appended, never renumbered.
 * reel_strerror() never fails and returns a static string.
 *
 * reel_diag carries a human-readable location for errors in outside input
 * (a file name, a line, a message), filled by parsers that accept one.
 * Thread rules: none; every function here is reentrant.
 */
#ifndef REEL_BASE_ERR_H
#define REEL_BASE_ERR_H

#include <stdint.h>

#define REEL_ERRORS(X)                                                         \
    X(NOMEM, 1, "out of memory")                                               \
    X(INVAL, 2, "invalid argument")                                            \
    X(IO, 3, "input/output error")                                             \
    X(FORMAT, 4, "malformed input")                                            \
    X(CORRUPT, 5, "file is corrupt")                                           \
    X(VERSION, 6, "unsupported format version")                                \
    X(NOENT, 7, "no such file or item")                                        \
    X(EXISTS, 8, "already exists")                                             \
    X(RANGE, 9, "value out of range")                                          \
    X(TOOBIG, 10, "input exceeds a limit")                                     \
    X(UNSUPPORTED, 11, "not supported")                                        \
    X(BUSY, 12, "resource busy")                                               \
    X(TIMEOUT, 13, "timed out")                                                \
    X(UNAVAILABLE, 14, "service unavailable")                                  \
    X(CANCELED, 15, "canceled")

enum {
    REEL_OK = 0,
#define REEL__ERR_ENUM(name, num, msg) REEL_E##name = -(num),
    REEL_ERRORS(REEL__ERR_ENUM)
#undef REEL__ERR_ENUM
};

/* A static description of an error code; unknown codes get a generic text. */
const char *reel_strerror(int err);

/* The symbolic name of an error code ("REEL_EFORMAT"), or "REEL_E?". */
const char *reel_errname(int err);

/*
 * Where outside input went wrong. `file` is borrowed and must outlive the
 * struct; `line` is 1-based (0: no line); `msg` is always NUL-terminated.
 */
typedef struct reel_diag {
    const char *file;
    uint64_t line;
    char msg[256];
} reel_diag;

/* Clears a diag; safe on NULL. */
void reel_diag_clear(reel_diag *d);

/* Formats a message into d (NULL is allowed and ignored). Returns `err` so
 * parsers can write `return reel_diag_fail(d, REEL_EFORMAT, "...")`. */
int reel_diag_fail(reel_diag *d, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes "file:line: msg" (or the parts that are set) into buf. */
void reel_diag_format(const reel_diag *d, char *buf, uint64_t size);

#endif
