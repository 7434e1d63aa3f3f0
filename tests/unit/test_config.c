/* Unit tests of src/api/config: the defaults are the engine's, every key
 * reaches its field, docs/serve.example.json holds every key at its
 * default, and each kind of error (file, size, syntax, duplicate, unknown
 * key, type, range) is refused with the file and the key path named and
 * the struct left as it was. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "api/config.h"
#include "reco/engine.h"

#ifndef REEL_SERVE_EXAMPLE
#error "REEL_SERVE_EXAMPLE (docs/serve.example.json) is set by CMake"
#endif

/* Field by field (the struct has padding, memcmp would not do). */
static void assert_config_equal(const reel_serve_config *a,
                                const reel_serve_config *b)
{
    assert_string_equal(a->host, b->host);
    assert_int_equal(a->port, b->port);
    assert_int_equal(a->threads, b->threads);
    assert_string_equal(a->token, b->token);
    assert_int_equal(a->max_k, b->max_k);
    assert_int_equal(a->fsync, b->fsync);
    assert_int_equal(a->fsync_ms, b->fsync_ms);
    assert_int_equal(a->reco.history_n, b->reco.history_n);
    assert_true(a->reco.recency_decay == b->reco.recency_decay);
    assert_int_equal(a->reco.candidates, b->reco.candidates);
    assert_int_equal(a->reco.max_per_category, b->reco.max_per_category);
    assert_true(a->reco.fresh_boost == b->reco.fresh_boost);
    assert_true(a->reco.fresh_half_life_s == b->reco.fresh_half_life_s);
    assert_true(a->cold_refresh_s == b->cold_refresh_s);
    assert_int_equal(a->cold_n, b->cold_n);
    assert_int_equal(a->cold_segment_min, b->cold_segment_min);
    assert_true(a->snapshot_every_s == b->snapshot_every_s);
    assert_int_equal(a->snapshot_every_events, b->snapshot_every_events);
}

/* A config where every field differs from its default. */
static void scrambled(reel_serve_config *c)
{
    reel_serve_config_init(c);
    snprintf(c->host, sizeof c->host, "%s", "0.0.0.0");
    c->port = 1;
    c->threads = 3;
    snprintf(c->token, sizeof c->token, "%s", "t");
    c->max_k = 7;
    c->fsync = REEL_WAL_SYNC_INTERVAL;
    c->fsync_ms = 99;
    c->reco.history_n = 3;
    c->reco.recency_decay = 0.5f;
    c->reco.candidates = 17;
    c->reco.max_per_category = 2;
    c->reco.fresh_boost = 0.25;
    c->reco.fresh_half_life_s = 60;
    c->cold_refresh_s = 1;
    c->cold_n = 9;
    c->cold_segment_min = 4;
    c->snapshot_every_s = 5;
    c->snapshot_every_events = 5;
}

/* Loads `text` as dir/serve.json into cfg; returns the error code and the
 * formatted diagnostic in msg. */
static int load_text(const char *text, reel_serve_config *cfg, char *msg,
                     size_t cap)
{
    char *dir = test_tmpdir();
    char *path = test_write_file(dir, "serve.json", text);
    reel_diag d;
    int rc = reel_serve_config_load(path, cfg, &d);
    msg[0] = '\0';
    if (rc) {
        /* The file name is the path given; print it as its base name. */
        assert_ptr_equal(d.file, path);
        d.file = "serve.json";
        reel_diag_format(&d, msg, cap);
    }
    /* Without a diag the same answer. */
    reel_serve_config other = *cfg;
    assert_int_equal(reel_serve_config_load(path, &other, NULL), rc);
    free(path);
    test_rmtree(dir);
    free(dir);
    return rc;
}

/* The error code and message of one file, with the struct unchanged. */
static void assert_refused(const char *text, int want_rc, const char *want)
{
    reel_serve_config cfg, before;
    reel_serve_config_init(&cfg);
    before = cfg;
    char msg[512];
    int rc = load_text(text, &cfg, msg, sizeof msg);
    if (rc != want_rc || strcmp(msg, want))
        fail_msg("%s: got %s '%s', want %s '%s'", text, reel_errname(rc), msg,
                 reel_errname(want_rc), want);
    assert_config_equal(&cfg, &before);
}

static void defaults_are_the_engines_and_the_command_lines(void **state)
{
    (void)state;
    reel_serve_config c;
    reel_serve_config_init(&c);
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, 8080);
    assert_int_equal(c.threads, 0);
    assert_string_equal(c.token, "");
    assert_int_equal(c.max_k, 100);
    assert_int_equal(c.snapshot_every_events, 1000000);
    assert_true(c.snapshot_every_s == 300);
    reel_engine_opts eo;
    reel_engine_opts_init(&eo);
    assert_int_equal(c.fsync, eo.sync);
    assert_int_equal(c.fsync_ms, eo.interval_ms);
    assert_true(c.cold_refresh_s == eo.cold_refresh_s);
    assert_int_equal(c.cold_n, eo.cold_n);
    assert_int_equal(c.cold_segment_min, eo.cold_segment_min);
    reel_serve_config e = c;
    e.reco = eo.reco;
    assert_config_equal(&c, &e);
    reel_reco_opts r = reel_reco_opts_default();
    assert_true(c.reco.recency_decay == 1 && r.recency_decay == 1);
    /* config.c's bound on max_k is the engine's. */
    assert_int_equal(REEL_ENGINE_MAX_K, 1000);
}

static void every_key_reaches_its_field(void **state)
{
    (void)state;
    reel_serve_config c, want;
    reel_serve_config_init(&c);
    scrambled(&want);
    char msg[512];
    assert_int_equal(load_text("{\"host\": \"0.0.0.0\", \"port\": 1, "
                               "\"threads\": 3, \"token\": \"t\", "
                               "\"max_k\": 7, \"fsync\": \"interval\", "
                               "\"fsync_ms\": 99,\n"
                               "\"reco\": {\"history_n\": 3, "
                               "\"recency_decay\": 0.5, \"candidates\": 17, "
                               "\"max_per_category\": 2, "
                               "\"fresh_boost\": 0.25, "
                               "\"fresh_half_life_s\": 60},\n"
                               "\"cold_start\": {\"refresh_s\": 1, "
                               "\"n\": 9, \"segment_min\": 4},\n"
                               "\"snapshot\": {\"every_s\": 5, "
                               "\"every_events\": 5}}\n",
                               &c, msg, sizeof msg),
                     0);
    assert_config_equal(&c, &want);
    /* And back: token null clears it; the bounds themselves are in range;
     * real-valued keys take integers. */
    assert_int_equal(load_text("{\"token\": null, \"port\": 65535, "
                               "\"threads\": 256, \"max_k\": 1000, "
                               "\"fsync\": \"always\", \"fsync_ms\": 60000, "
                               "\"reco\": {\"history_n\": 32, "
                               "\"recency_decay\": 1, \"candidates\": 10000, "
                               "\"fresh_half_life_s\": 315360000}, "
                               "\"cold_start\": {\"refresh_s\": 0, "
                               "\"n\": 100000}, \"snapshot\": {\"every_s\": 0, "
                               "\"every_events\": 1000000000000}}",
                               &c, msg, sizeof msg),
                     0);
    assert_string_equal(c.token, "");
    assert_int_equal(c.port, 65535);
    assert_int_equal(c.threads, 256);
    assert_int_equal(c.max_k, 1000);
    assert_int_equal(c.fsync, REEL_WAL_SYNC_ALWAYS);
    assert_int_equal(c.fsync_ms, 60000);
    assert_int_equal(c.reco.history_n, 32);
    assert_true(c.reco.recency_decay == 1);
    assert_int_equal(c.reco.candidates, 10000);
    assert_true(c.reco.fresh_half_life_s == 315360000);
    assert_true(c.cold_refresh_s == 0);
    assert_int_equal(c.cold_n, 100000);
    assert_true(c.snapshot_every_s == 0);
    assert_int_equal(c.snapshot_every_events, 1000000000000ull);
}

static void a_file_overlays_only_its_keys(void **state)
{
    (void)state;
    reel_serve_config c, want;
    scrambled(&c);
    want = c;
    char msg[512];
    assert_int_equal(load_text("{}", &c, msg, sizeof msg), 0);
    assert_config_equal(&c, &want);
    assert_int_equal(load_text("{\"reco\": {\"candidates\": 300}, "
                               "\"snapshot\": {}}",
                               &c, msg, sizeof msg),
                     0);
    want.reco.candidates = 300;
    assert_config_equal(&c, &want);
}

static void the_example_file_has_every_key_at_its_default(void **state)
{
    (void)state;
    reel_serve_config c, want;
    scrambled(&c);
    reel_serve_config_init(&want);
    reel_diag d;
    int rc = reel_serve_config_load(REEL_SERVE_EXAMPLE, &c, &d);
    if (rc) {
        char msg[512];
        reel_diag_format(&d, msg, sizeof msg);
        fail_msg("%s", msg);
    }
    assert_config_equal(&c, &want);
}

/* A syntax error at line:column; the words after it are jansson's (they
 * vary between its versions), so only a piece of them is checked. */
static void assert_syntax(const char *text, uint64_t line, int col,
                          const char *words)
{
    char *dir = test_tmpdir();
    char *path = test_write_file(dir, "serve.json", text);
    reel_serve_config c, before;
    reel_serve_config_init(&c);
    before = c;
    reel_diag d;
    assert_int_equal(reel_serve_config_load(path, &c, &d), REEL_EFORMAT);
    assert_ptr_equal(d.file, path);
    char want[64];
    snprintf(want, sizeof want, "column %d: ", col);
    if (d.line != line || strncmp(d.msg, want, strlen(want)) ||
        !strstr(d.msg, words))
        fail_msg("%s: got %llu '%s', want %llu '%s...%s...'", text,
                 (unsigned long long)d.line, d.msg, (unsigned long long)line,
                 want, words);
    assert_config_equal(&c, &before);
    free(path);
    test_rmtree(dir);
    free(dir);
}

static void syntax_errors_name_the_line_and_column(void **state)
{
    (void)state;
    /* jansson's column is that of the last character it read. */
    assert_syntax("{\n  \"port\": 80,\n  \"host\" \"x\"\n}\n", 3, 12,
                  "':' expected");
    assert_syntax("{\"port\": 80} x", 1, 14, "end of file expected");
    assert_syntax("{\"port\": 80,\n \"port\": 81}", 2, 7, "duplicate");
    assert_syntax("{\"port\": 123456789012345678901234567890}", 1, 39,
                  "too big");
    assert_syntax("", 1, 0, "expected");
}

static void unknown_keys_are_named_by_their_path(void **state)
{
    (void)state;
    assert_refused("{\"prot\": 80}", REEL_EINVAL,
                   "serve.json: \"prot\": unknown key");
    assert_refused("{\"reco\": {\"candidate\": 3}}", REEL_EINVAL,
                   "serve.json: \"reco.candidate\": unknown key");
    /* A group's key at the top level, and a top-level key in a group. */
    assert_refused("{\"candidates\": 3}", REEL_EINVAL,
                   "serve.json: \"candidates\": unknown key");
    assert_refused("{\"snapshot\": {\"port\": 3}}", REEL_EINVAL,
                   "serve.json: \"snapshot.port\": unknown key");
    assert_refused("{\"wal\": {}}", REEL_EINVAL,
                   "serve.json: \"wal\": unknown key");
}

static void wrong_types_are_named_by_their_path(void **state)
{
    (void)state;
    assert_refused("[]", REEL_EINVAL, "serve.json: must be a JSON object");
    assert_refused("{\"port\": \"80\"}", REEL_EINVAL,
                   "serve.json: \"port\": must be an integer");
    assert_refused("{\"port\": 80.0}", REEL_EINVAL,
                   "serve.json: \"port\": must be an integer");
    assert_refused("{\"snapshot\": {\"every_events\": 1e6}}", REEL_EINVAL,
                   "serve.json: \"snapshot.every_events\": must be an "
                   "integer");
    assert_refused("{\"reco\": {\"fresh_boost\": true}}", REEL_EINVAL,
                   "serve.json: \"reco.fresh_boost\": must be a number");
    assert_refused("{\"reco\": 3}", REEL_EINVAL,
                   "serve.json: \"reco\": must be an object");
    assert_refused("{\"cold_start\": null}", REEL_EINVAL,
                   "serve.json: \"cold_start\": must be an object");
    assert_refused("{\"fsync\": \"sometimes\"}", REEL_EINVAL,
                   "serve.json: \"fsync\": must be \"always\" or "
                   "\"interval\"");
    assert_refused("{\"fsync\": 1}", REEL_EINVAL,
                   "serve.json: \"fsync\": must be \"always\" or "
                   "\"interval\"");
    static const char *hosts[] = {"{\"host\": 3}", "{\"host\": \"\"}",
                                  "{\"host\": null}", "{\"host\": \"a\\nb\"}",
                                  "{\"host\": \"a\\u007fb\"}"};
    for (size_t i = 0; i < sizeof hosts / sizeof *hosts; i++)
        assert_refused(hosts[i], REEL_EINVAL,
                       "serve.json: \"host\": must be a string of 1..255 "
                       "bytes without control characters");
    char big[400];
    snprintf(big, sizeof big, "{\"token\": \"%0256d\"}", 0);
    const char *tokens[] = {"{\"token\": 3}", "{\"token\": \"\"}",
                            "{\"token\": \"a b\"}",
                            "{\"token\": \"caf\\u00e9\"}", big};
    for (size_t i = 0; i < sizeof tokens / sizeof *tokens; i++)
        assert_refused(tokens[i], REEL_EINVAL,
                       "serve.json: \"token\": must be null or a string of "
                       "1..255 visible ASCII characters");
    /* A NUL inside a string is jansson's to refuse. */
    reel_serve_config c;
    reel_serve_config_init(&c);
    char msg[512];
    assert_int_equal(
        load_text("{\"host\": \"a\\u0000b\"}", &c, msg, sizeof msg),
        REEL_EFORMAT);
}

static void out_of_range_values_name_the_key_and_the_range(void **state)
{
    (void)state;
    static const struct {
        const char *text, *msg;
    } cases[] = {
        {"{\"port\": 65536}", "\"port\": must be 0..65535"},
        {"{\"port\": -1}", "\"port\": must be 0..65535"},
        {"{\"threads\": 257}", "\"threads\": must be 0..256"},
        {"{\"max_k\": 0}", "\"max_k\": must be 1..1000"},
        {"{\"max_k\": 1001}", "\"max_k\": must be 1..1000"},
        {"{\"fsync_ms\": 0}", "\"fsync_ms\": must be 1..60000"},
        {"{\"reco\": {\"history_n\": 0}}", "\"reco.history_n\": must be 1..32"},
        {"{\"reco\": {\"history_n\": 33}}",
         "\"reco.history_n\": must be 1..32"},
        {"{\"reco\": {\"candidates\": 0}}",
         "\"reco.candidates\": must be 1..10000"},
        {"{\"reco\": {\"candidates\": 10001}}",
         "\"reco.candidates\": must be 1..10000"},
        {"{\"reco\": {\"max_per_category\": 10001}}",
         "\"reco.max_per_category\": must be 0..10000"},
        {"{\"reco\": {\"fresh_boost\": -0.5}}",
         "\"reco.fresh_boost\": must be 0..1000"},
        {"{\"reco\": {\"fresh_half_life_s\": 0.5}}",
         "\"reco.fresh_half_life_s\": must be 1..3.1536e+08"},
        {"{\"reco\": {\"recency_decay\": 0}}",
         "\"reco.recency_decay\": must be in (0, 1]"},
        {"{\"reco\": {\"recency_decay\": 1.01}}",
         "\"reco.recency_decay\": must be in (0, 1]"},
        {"{\"cold_start\": {\"refresh_s\": 86401}}",
         "\"cold_start.refresh_s\": must be 0..86400"},
        {"{\"cold_start\": {\"n\": 0}}", "\"cold_start.n\": must be 1..100000"},
        {"{\"snapshot\": {\"every_s\": -1}}",
         "\"snapshot.every_s\": must be 0..604800"},
        {"{\"snapshot\": {\"every_events\": 1000000000001}}",
         "\"snapshot.every_events\": must be 0..1000000000000"},
        {"{\"experiments\": {\"attribution_requests\": 0}}",
         "\"experiments.attribution_requests\": must be 1..100000000"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char want[256];
        snprintf(want, sizeof want, "serve.json: %s", cases[i].msg);
        assert_refused(cases[i].text, REEL_ERANGE, want);
    }
}

static void experiments_are_checked_as_a_put_would(void **state)
{
    (void)state;
    assert_refused(
        "{\"experiments\": {\"run\": {\"ab\": {\"arms\": [{\"name\": \"a\", "
        "\"share\": 0.5}, {\"name\": \"b\", \"share\": 0.4}]}}}}",
        REEL_EINVAL,
        "serve.json: \"experiments.run.ab\": the shares add up to 0.9, not 1");
    assert_refused(
        "{\"experiments\": {\"run\": []}}", REEL_EINVAL,
        "serve.json: \"experiments.run\": must be an object of experiments");
    reel_serve_config c;
    reel_serve_config_init(&c);
    char *dir = test_tmpdir();
    char *p = test_write_file(
        dir, "serve.json",
        "{\"experiments\": {\"run\": {\"ab\": {\"arms\": [{\"name\": "
        "\"a\", \"share\": 0.5}, {\"name\": \"b\", \"share\": 0.5, "
        "\"params\": {\"ranker\": \"none\"}}]}}}}");
    reel_diag d;
    assert_int_equal(reel_serve_config_load(p, &c, &d), 0);
    assert_non_null(strstr(c.experiments, "\"ab\""));
    assert_non_null(strstr(c.experiments, "\"ranker\":\"none\""));
    free(p);
    test_rmtree(dir);
    free(dir);
}

static void the_first_error_wins_and_nothing_is_applied(void **state)
{
    (void)state;
    /* Keys apply in file order; the good ones before the bad one are not
     * kept either. */
    assert_refused("{\"port\": 1, \"reco\": {\"candidates\": 5, "
                   "\"history_n\": 99}, \"prot\": 2}",
                   REEL_ERANGE,
                   "serve.json: \"reco.history_n\": must be 1..32");
}

static void files_are_checked_before_they_are_read(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    reel_serve_config c, before;
    reel_serve_config_init(&c);
    before = c;
    reel_diag d;
    char *missing = test_path(dir, "nope.json");
    assert_int_equal(reel_serve_config_load(missing, &c, &d), REEL_ENOENT);
    assert_ptr_equal(d.file, missing);
    assert_non_null(strstr(d.msg, "cannot open"));
    /* A directory, and a FIFO (which must not block waiting for a
     * writer). */
    assert_int_equal(reel_serve_config_load(dir, &c, &d), REEL_EINVAL);
    assert_string_equal(d.msg, "not a regular file");
    char *fifo = test_path(dir, "fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(reel_serve_config_load(fifo, &c, &d), REEL_EINVAL);
    /* Exactly the limit loads (valid JSON padded with blanks); one byte
     * more is refused by its size. */
    size_t lim = REEL_SERVE_CONFIG_MAX_BYTES;
    char *text = malloc(lim + 2);
    memset(text, ' ', lim + 1);
    memcpy(text, "{\"port\": 9}", 11);
    text[lim] = '\0';
    char *path = test_write_file(dir, "max.json", text);
    assert_int_equal(reel_serve_config_load(path, &c, &d), 0);
    assert_int_equal(c.port, 9);
    free(path);
    text[lim] = ' ';
    text[lim + 1] = '\0';
    path = test_write_file(dir, "big.json", text);
    c = before;
    assert_int_equal(reel_serve_config_load(path, &c, &d), REEL_ETOOBIG);
    assert_string_equal(d.msg,
                        "1048577 bytes; a config file is at most 1048576");
    assert_config_equal(&c, &before);
    free(path);
    free(text);
    free(fifo);
    free(missing);
    test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_are_the_engines_and_the_command_lines),
        cmocka_unit_test(every_key_reaches_its_field),
        cmocka_unit_test(a_file_overlays_only_its_keys),
        cmocka_unit_test(the_example_file_has_every_key_at_its_default),
        cmocka_unit_test(syntax_errors_name_the_line_and_column),
        cmocka_unit_test(unknown_keys_are_named_by_their_path),
        cmocka_unit_test(wrong_types_are_named_by_their_path),
        cmocka_unit_test(out_of_range_values_name_the_key_and_the_range),
        cmocka_unit_test(the_first_error_wins_and_nothing_is_applied),
        cmocka_unit_test(experiments_are_checked_as_a_put_would),
        cmocka_unit_test(files_are_checked_before_they_are_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
