/* Unit tests of src/base: errors, buffers, arena, rng, crc, strings,
 * sorting, time parsing, line and CSV reading. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/crc.h"
#include "base/err.h"
#include "base/lines.h"
#include "base/rng.h"
#include "base/sort.h"
#include "base/strs.h"

static void errors_have_names_and_messages(void **state)
{
    (void)state;
    assert_string_equal(reel_errname(REEL_EFORMAT), "REEL_EFORMAT");
    assert_string_equal(reel_strerror(REEL_ENOMEM), "out of memory");
    assert_string_equal(reel_strerror(-999), "unknown error");
    reel_diag d;
    reel_diag_clear(&d);
    d.file = "x.jsonl";
    d.line = 7;
    assert_int_equal(reel_diag_fail(&d, REEL_EFORMAT, "bad %s", "thing"),
                     REEL_EFORMAT);
    char msg[128];
    reel_diag_format(&d, msg, sizeof msg);
    assert_string_equal(msg, "x.jsonl:7: bad thing");
}

/* JSON strings: escapes, UTF-8 kept, any other byte as Latin-1. */
static void buf_writes_json_strings(void **state)
{
    (void)state;
    reel_buf b;
    reel_buf_init(&b);
    static const char in[] = "a\"b\\c\n\x7f caf\xc3\xa9 \xe9t\xe9 \xc3 "
                             "\xed\xa0\x80 \xf0\x9f\x8e\xac";
    reel_buf_json_string(&b, in, sizeof in - 1);
    static const char want[] = "\"a\\\"b\\\\c\\u000a\\u007f caf\xc3\xa9 "
                               "\\u00e9t\\u00e9 \\u00c3 \\u00ed\\u00a0\\u0080 "
                               "\xf0\x9f\x8e\xac\"";
    assert_int_equal(b.len, sizeof want - 1);
    assert_memory_equal(b.data, want, sizeof want - 1);
    unsigned char over[] = {0xc0, 0xaf}; /* an overlong '/' */
    assert_int_equal(reel_utf8_seq(over, 2), 0);
    assert_int_equal(reel_utf8_seq((const unsigned char *)"\xc3\xa9", 1), 0);
    assert_int_equal(reel_utf8_seq((const unsigned char *)"\xc3\xa9", 2), 2);
    reel_buf_free(&b);
}

static void buf_grows_and_formats(void **state)
{
    (void)state;
    reel_buf b = REEL_BUF_INIT;
    for (int i = 0; i < 1000; i++)
        reel_buf_printf(&b, "%d,", i);
    assert_int_equal(strlen(b.data), b.len);
    assert_memory_equal(b.data, "0,1,2,", 6);
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    reel_buf_reset(&b);
    reel_buf_printf(&b, "%s!", big);
    assert_int_equal(b.len, 600);
    assert_int_equal(b.data[599], '!');
    reel_buf_free(&b);
}

static void arena_aligns_and_resets(void **state)
{
    (void)state;
    reel_arena a;
    reel_arena_init(&a, 1024);
    for (int i = 0; i < 100; i++) {
        void *p = reel_arena_alloc(&a, 1 + i * 7, 16);
        assert_int_equal((uintptr_t)p % 16, 0);
        memset(p, 0xab, 1 + i * 7);
    }
    void *big = reel_arena_alloc(&a, 100000, 64);
    memset(big, 1, 100000);
    char *s = reel_arena_strndup(&a, "hello world", 5);
    assert_string_equal(s, "hello");
    reel_arena_reset(&a);
    assert_non_null(reel_arena_alloc(&a, 10, 8));
    reel_arena_free(&a);
}

static void rng_is_deterministic_and_uniform(void **state)
{
    (void)state;
    reel_rng a, b;
    reel_rng_seed(&a, 42);
    reel_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++)
        assert_true(reel_rng_u64(&a) == reel_rng_u64(&b));
    reel_rng_seed2(&a, 42, 1);
    reel_rng_seed2(&b, 42, 2);
    assert_true(reel_rng_u64(&a) != reel_rng_u64(&b));
    /* below(n) covers every value about equally. */
    uint32_t hist[10] = {0};
    for (int i = 0; i < 100000; i++)
        hist[reel_rng_below(&a, 10)]++;
    for (int k = 0; k < 10; k++)
        assert_true(hist[k] > 9500 && hist[k] < 10500);
}

/* Sample means of the distributions against their exact means, with a
 * tolerance of several standard errors. */
static void rng_distributions_have_their_means(void **state)
{
    (void)state;
    reel_rng r;
    reel_rng_seed(&r, 7);
    enum { N = 200000 };
    double sn = 0, sn2 = 0, sg = 0, sb = 0, sp = 0, sp2 = 0, se = 0;
    for (int i = 0; i < N; i++) {
        double x = reel_rng_normal(&r);
        sn += x;
        sn2 += x * x;
        sg += reel_rng_gamma(&r, 0.5);
        sb += reel_rng_beta(&r, 2.0, 5.0);
        sp += (double)reel_rng_poisson(&r, 3.5);
        sp2 += (double)reel_rng_poisson(&r, 250.0);
        se += reel_rng_exponential(&r, 2.0);
    }
    assert_true(fabs(sn / N) < 0.01);
    assert_true(fabs(sn2 / N - 1.0) < 0.02);
    assert_true(fabs(sg / N - 0.5) < 0.01);
    assert_true(fabs(sb / N - 2.0 / 7.0) < 0.005);
    assert_true(fabs(sp / N - 3.5) < 0.02);
    assert_true(fabs(sp2 / N - 250.0) < 0.2);
    assert_true(fabs(se / N - 0.5) < 0.005);
    double w[5];
    reel_rng_dirichlet(&r, 0.3, w, 5);
    double sum = 0;
    for (int i = 0; i < 5; i++)
        sum += w[i];
    assert_true(fabs(sum - 1.0) < 1e-12);
}

static void alias_samples_its_weights(void **state)
{
    (void)state;
    double w[4] = {1, 0, 3, 6};
    reel_alias al;
    assert_int_equal(reel_alias_build(&al, w, 4), 0);
    reel_rng r;
    reel_rng_seed(&r, 1);
    uint32_t hist[4] = {0};
    for (int i = 0; i < 100000; i++)
        hist[reel_alias_sample(&al, &r)]++;
    assert_int_equal(hist[1], 0);
    assert_true(abs((int)hist[0] - 10000) < 600);
    assert_true(abs((int)hist[2] - 30000) < 900);
    assert_true(abs((int)hist[3] - 60000) < 900);
    reel_alias_free(&al);
    double zero[2] = {0, 0};
    assert_int_equal(reel_alias_build(&al, zero, 2), REEL_EINVAL);
}

/* The hardware CRC (fast path) and the table CRC (slow twin) agree on
 * every length and alignment, and on the standard check value. */
static void crc32c_fast_and_slow_agree(void **state)
{
    (void)state;
    assert_int_equal(reel_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(reel_crc32c_sw(0, "123456789", 9), 0xE3069283u);
    unsigned char data[1031];
    reel_rng r;
    reel_rng_seed(&r, 3);
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)reel_rng_u64(&r);
    for (size_t off = 0; off < 9; off++)
        for (size_t len = 0; len + off <= sizeof data; len += 37)
            assert_int_equal(reel_crc32c(0, data + off, len),
                             reel_crc32c_sw(0, data + off, len));
    /* Feeding in pieces equals feeding at once. */
    uint32_t c = reel_crc32c(0, data, 500);
    c = reel_crc32c(c, data + 500, sizeof data - 500);
    assert_int_equal(c, reel_crc32c(0, data, sizeof data));
}

static void intern_gives_dense_ids(void **state)
{
    (void)state;
    reel_intern in;
    reel_intern_init(&in);
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "user-%d", i);
        int is_new;
        assert_int_equal(reel_intern_put(&in, key, strlen(key), &is_new), i);
        assert_true(is_new);
    }
    for (int i = 0; i < 5000; i += 7) {
        snprintf(key, sizeof key, "user-%d", i);
        int is_new;
        assert_int_equal(reel_intern_put(&in, key, strlen(key), &is_new), i);
        assert_false(is_new);
        assert_int_equal(reel_intern_find(&in, key, strlen(key)), i);
    }
    assert_int_equal(reel_intern_find(&in, "nobody", 6), REEL_NONE);
    reel_strs v = reel_intern_view(&in);
    size_t len;
    assert_string_equal(reel_strs_get(&v, 42, &len), "user-42");
    assert_int_equal(len, 7);
    /* An index over the same view finds the same ids. */
    reel_strindex ix;
    reel_strindex_build(&ix, &v);
    assert_int_equal(reel_strindex_find(&ix, &v, "user-4999", 9), 4999);
    reel_strindex_free(&ix);
    reel_intern_free(&in);
}

struct kv {
    double key;
    uint32_t idx;
};

static int cmp_kv(const void *a, const void *b)
{
    const struct kv *x = a, *y = b;
    if (x->key < y->key)
        return -1;
    if (x->key > y->key)
        return 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* The radix sort (fast path) matches a stable qsort (slow twin). */
static void radix_sort_matches_stable_qsort(void **state)
{
    (void)state;
    enum { N = 50000 };
    double *keys = malloc(N * sizeof *keys);
    struct kv *ref = malloc(N * sizeof *ref);
    uint32_t *perm = malloc(N * sizeof *perm);
    reel_rng r;
    reel_rng_seed(&r, 11);
    for (uint32_t i = 0; i < N; i++) {
        /* Many ties, negatives and a wide range. */
        keys[i] = (double)((int64_t)reel_rng_below(&r, 2000) - 1000) * 1e6 +
                  (reel_rng_below(&r, 3) ? 0.25 : 0.0);
        ref[i].key = keys[i];
        ref[i].idx = i;
    }
    reel_sort_perm_f64(keys, N, perm);
    qsort(ref, N, sizeof *ref, cmp_kv);
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(perm[i], ref[i].idx);
    free(keys);
    free(ref);
    free(perm);
}

static void times_parse_in_every_documented_form(void **state)
{
    (void)state;
    double t;
    assert_int_equal(reel_clock_parse("2024-01-02", 10, &t), 0);
    assert_true(t == 1704153600.0);
    assert_int_equal(reel_clock_parse("2024-01-02T03:04:05Z", 20, &t), 0);
    assert_true(t == 1704153600.0 + 3 * 3600 + 4 * 60 + 5);
    assert_int_equal(reel_clock_parse("2024-01-02T03:04:05.5+01:00", 27, &t),
                     0);
    assert_true(t == 1704153600.0 + 2 * 3600 + 4 * 60 + 5.5);
    assert_int_equal(reel_clock_parse("1700000000.25", 13, &t), 0);
    assert_true(t == 1700000000.25);
    assert_int_equal(reel_clock_parse("2024-02-30", 10, &t), REEL_EFORMAT);
    assert_int_equal(reel_clock_parse("2024-01-02T03:04", 16, &t),
                     REEL_EFORMAT);
    assert_int_equal(reel_clock_parse("yesterday", 9, &t), REEL_EFORMAT);
    int y, m, d;
    reel_clock_to_civil(reel_clock_from_civil(1999, 12, 31), &y, &m, &d);
    assert_int_equal(y, 1999);
    assert_int_equal(m, 12);
    assert_int_equal(d, 31);
}

static void lines_report_numbers_and_limits(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    char *p = test_write_file(dir, "a.txt", "one\r\ntwo\n\nfour");
    reel_lines *in;
    reel_diag d;
    assert_int_equal(reel_lines_open(p, 0, &in, &d), 0);
    const char *line;
    size_t len;
    assert_int_equal(reel_lines_next(in, &line, &len, &d), 1);
    assert_string_equal(line, "one");
    assert_int_equal(reel_lines_next(in, &line, &len, &d), 1);
    assert_string_equal(line, "two");
    assert_int_equal(reel_lines_next(in, &line, &len, &d), 1);
    assert_int_equal(len, 0);
    assert_int_equal(reel_lines_next(in, &line, &len, &d), 1);
    assert_string_equal(line, "four");
    assert_int_equal(reel_lines_lineno(in), 4);
    assert_int_equal(reel_lines_next(in, &line, &len, &d), 0);
    reel_lines_close(in);

    char *q = test_write_file(dir, "long.txt", "short\n0123456789abcdef\n");
    assert_int_equal(reel_lines_open(q, 8, &in, &d), 0);
    assert_int_equal(reel_lines_next(in, &line, &len, &d), 1);
    assert_int_equal(reel_lines_next(in, &line, &len, &d), REEL_ETOOBIG);
    assert_int_equal(d.line, 2);
    reel_lines_close(in);
    assert_int_equal(reel_lines_open("/nonexistent/x", 0, &in, &d),
                     REEL_ENOENT);
    free(p);
    free(q);
    test_rmtree(dir);
    free(dir);
}

static void csv_handles_quotes_and_reports_lines(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    char *p = test_write_file(dir, "a.csv",
                              "id,title,genres\n"
                              "1,\"Matrix, The (1999)\",Action|Sci-Fi\n"
                              "2,\"Say \"\"Hi\"\"\",\n"
                              "3,\"two\nlines\",Drama\n"
                              "4,\"open,Drama\n");
    reel_lines *in;
    reel_diag d;
    reel_field f[8];
    size_t n;
    assert_int_equal(reel_lines_open(p, 0, &in, &d), 0);
    assert_int_equal(reel_csv_next(in, ',', f, 8, &n, &d), 1);
    assert_int_equal(n, 3);
    assert_int_equal(reel_csv_next(in, ',', f, 8, &n, &d), 1);
    assert_int_equal(n, 3);
    assert_int_equal(f[1].len, strlen("Matrix, The (1999)"));
    assert_memory_equal(f[1].p, "Matrix, The (1999)", f[1].len);
    assert_int_equal(reel_csv_next(in, ',', f, 8, &n, &d), 1);
    assert_int_equal(n, 3);
    assert_memory_equal(f[1].p, "Say \"Hi\"", f[1].len);
    assert_int_equal(f[2].len, 0);
    assert_int_equal(reel_csv_next(in, ',', f, 8, &n, &d), 1);
    assert_memory_equal(f[1].p, "two\nlines", f[1].len);
    assert_int_equal(d.line, 4);
    assert_int_equal(reel_csv_next(in, ',', f, 8, &n, &d), REEL_EFORMAT);
    assert_int_equal(d.line, 6);
    assert_non_null(strstr(d.msg, "unterminated"));
    reel_lines_close(in);
    reel_field s[4];
    assert_int_equal(reel_split("a|b||c", 6, '|', s, 4), 4);
    assert_int_equal(s[2].len, 0);
    assert_int_equal(reel_split("a|b|c", 5, '|', s, 2), 3);
    free(p);
    test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(errors_have_names_and_messages),
        cmocka_unit_test(buf_grows_and_formats),
        cmocka_unit_test(buf_writes_json_strings),
        cmocka_unit_test(arena_aligns_and_resets),
        cmocka_unit_test(rng_is_deterministic_and_uniform),
        cmocka_unit_test(rng_distributions_have_their_means),
        cmocka_unit_test(alias_samples_its_weights),
        cmocka_unit_test(crc32c_fast_and_slow_agree),
        cmocka_unit_test(intern_gives_dense_ids),
        cmocka_unit_test(radix_sort_matches_stable_qsort),
        cmocka_unit_test(times_parse_in_every_documented_form),
        cmocka_unit_test(lines_report_numbers_and_limits),
        cmocka_unit_test(csv_handles_quotes_and_reports_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
