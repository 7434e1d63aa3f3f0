/* Unit tests of the container format (docs/formats/secfile.md): round
 * trip, atomic publication, and refusal of damaged files. */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/secfile.h"

static char *make_file(const char *dir)
{
    char *path = test_path(dir, "f.reel");
    reel_secfile_writer *w;
    reel_diag d;
    assert_int_equal(reel_secfile_writer_open(path, "test", &w, &d), 0);
    uint32_t nums[1000];
    for (uint32_t i = 0; i < 1000; i++)
        nums[i] = i * 3;
    assert_int_equal(
        reel_secfile_writer_add(w, "nums", REEL_SEC_U32, nums, 1000), 0);
    assert_int_equal(
        reel_secfile_writer_add(w, "text", REEL_SEC_BYTES, "hello", 5), 0);
    assert_int_equal(reel_secfile_writer_begin(w, "stream", REEL_SEC_F64), 0);
    for (int i = 0; i < 10; i++) {
        double x = i * 0.5;
        assert_int_equal(reel_secfile_writer_append(w, &x, sizeof x), 0);
    }
    assert_int_equal(reel_secfile_writer_end(w), 0);
    assert_int_equal(reel_secfile_writer_add(w, "empty", REEL_SEC_U64, NULL, 0),
                     0);
    assert_int_equal(reel_secfile_writer_add(w, "nums", REEL_SEC_U32, nums, 1),
                     REEL_EEXISTS);
    assert_int_equal(reel_secfile_writer_commit(w, &d), 0);
    return path;
}

static void sections_round_trip_aligned(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    char *path = make_file(dir);
    reel_secfile *f;
    reel_diag d;
    assert_int_equal(reel_secfile_open(path, "test", 0, &f, &d), 0);
    assert_int_equal(reel_secfile_count(f), 4);
    const reel_section *s = reel_secfile_find(f, "nums");
    assert_non_null(s);
    assert_int_equal(s->count, 1000);
    assert_int_equal((uintptr_t)s->data % 64, 0);
    assert_int_equal(((const uint32_t *)s->data)[999], 2997);
    s = reel_secfile_find(f, "stream");
    assert_int_equal(s->count, 10);
    assert_true(((const double *)s->data)[9] == 4.5);
    assert_null(reel_secfile_find(f, "missing"));
    assert_int_equal(
        reel_secfile_need(f, "nums", REEL_SEC_F32, UINT64_MAX, &s, &d),
        REEL_ECORRUPT);
    assert_non_null(strstr(d.msg, "nums"));
    reel_secfile_close(f);
    /* Asking for another kind of file is refused by name. */
    assert_int_equal(reel_secfile_open(path, "dataset", 0, &f, &d),
                     REEL_EFORMAT);
    assert_non_null(strstr(d.msg, "expected a 'dataset'"));
    free(path);
    test_rmtree(dir);
    free(dir);
}

static void abandoned_writer_leaves_nothing(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    char *path = test_path(dir, "g.reel");
    reel_secfile_writer *w;
    reel_diag d;
    assert_int_equal(reel_secfile_writer_open(path, "test", &w, &d), 0);
    assert_int_equal(reel_secfile_writer_add(w, "a", REEL_SEC_U8, "x", 1), 0);
    reel_secfile_writer_free(w);
    struct stat st;
    assert_int_equal(stat(path, &st), -1);
    /* Only the destination would have been created: the dir is empty. */
    assert_int_equal(rmdir(dir), 0);
    free(path);
    free(dir);
}

static void corrupt(const char *path, long off, unsigned char x)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, off), 1);
    c ^= x;
    assert_int_equal(pwrite(fd, &c, 1, off), 1);
    close(fd);
}

static void damaged_files_are_refused_with_reasons(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    char *path = make_file(dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    reel_secfile *f;
    reel_diag d;

    /* A flipped bit in a section's data. */
    corrupt(path, 64 + 10, 0x01);
    assert_int_equal(reel_secfile_open(path, "test", 0, &f, &d), REEL_ECORRUPT);
    assert_non_null(strstr(d.msg, "'nums' checksum"));
    /* NOVERIFY skips data checksums but not structure. */
    assert_int_equal(
        reel_secfile_open(path, "test", REEL_SECFILE_NOVERIFY, &f, &d), 0);
    reel_secfile_close(f);
    corrupt(path, 64 + 10, 0x01);

    /* A truncated file. */
    assert_int_equal(truncate(path, st.st_size - 1), 0);
    assert_int_equal(reel_secfile_open(path, "test", 0, &f, &d), REEL_ECORRUPT);
    assert_non_null(strstr(d.msg, "truncated"));
    assert_int_equal(truncate(path, 10), 0);
    assert_int_equal(reel_secfile_open(path, "test", 0, &f, &d), REEL_ECORRUPT);

    /* A damaged header and table. */
    free(path);
    path = make_file(dir);
    corrupt(path, 9, 0x01);
    assert_int_equal(reel_secfile_open(path, "test", 0, &f, &d), REEL_ECORRUPT);
    assert_non_null(strstr(d.msg, "header"));
    free(path);
    path = make_file(dir);
    corrupt(path, st.st_size - 10, 0x40);
    assert_int_equal(reel_secfile_open(path, "test", 0, &f, &d), REEL_ECORRUPT);
    assert_non_null(strstr(d.msg, "table"));
    /* Not a reel file at all. */
    char *junk = test_write_file(dir, "junk",
                                 "this is not a reel file, no, "
                                 "it is just some text here, long "
                                 "enough to have a header.....");
    assert_int_equal(reel_secfile_open(junk, "test", 0, &f, &d), REEL_ECORRUPT);
    assert_non_null(strstr(d.msg, "magic"));
    assert_int_equal(reel_secfile_open("/nonexistent", "test", 0, &f, &d),
                     REEL_ENOENT);
    free(junk);
    free(path);
    test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sections_round_trip_aligned),
        cmocka_unit_test(abandoned_writer_leaves_nothing),
        cmocka_unit_test(damaged_files_are_refused_with_reasons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
