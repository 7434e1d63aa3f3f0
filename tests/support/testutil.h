/*
 * testutil: what reel's cmocka tests share: a fresh temporary directory
 * per test, files written from strings, and recursive removal.
 */
#ifndef REEL_TESTUTIL_H
#define REEL_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* A new empty directory under $TMPDIR (or /tmp); caller frees the path
 * and removes the directory with test_rmtree(). */
char *test_tmpdir(void);
void test_rmtree(const char *path);
/* Writes `text` to dir/name; returns the path (caller frees). */
char *test_write_file(const char *dir, const char *name, const char *text);
/* dir/name as a new string (caller frees). */
char *test_path(const char *dir, const char *name);

#endif
