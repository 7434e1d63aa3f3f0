/* Unit tests of the MovieLens importer (src/data/import_movielens.c): both
 * layouts, title cleaning, tags, error locations, skipping, round trips
 * through the dataset file, and garbage that must not crash it. */
#include "testutil.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/lines.h"
#include "base/log.h"
#include "base/rng.h"
#include "data/dataset.h"
#include "data/import.h"

/* ------------------------------------------------------------- helpers */

static void put(const char *dir, const char *name, const char *text)
{
    free(test_write_file(dir, name, text));
}

/* Imports dir into a new builder (*out, caller frees). */
static int import(const char *dir, int skip_bad, reel_import_report *r,
                  reel_diag *d, reel_dsbuild **out)
{
    reel_dsbuild_new(out);
    reel_import_opts o = {.skip_bad = skip_bad};
    return reel_import_movielens(*out, dir, &o, r, d);
}

/* Writes the builder under dir/out and opens it again. */
static reel_dataset *round_trip(reel_dsbuild *b, const char *dir)
{
    char *out = test_path(dir, "out");
    reel_diag d;
    assert_int_equal(reel_dsbuild_write(b, out, &d), 0);
    reel_dataset *ds = NULL;
    assert_int_equal(reel_dataset_open(out, &ds, &d), 0);
    free(out);
    return ds;
}

static uint32_t video(const reel_dataset *ds, const char *id)
{
    uint32_t i = reel_dataset_find_video(ds, id, strlen(id));
    assert_int_not_equal(i, REEL_NONE);
    return i;
}

static const char *title(const reel_dataset *ds, const char *id)
{
    return reel_strs_get(&reel_dataset_videos(ds)->title, video(ds, id), NULL);
}

/* The video's categories (or tags) joined with '|' into buf. */
static const char *joined(const reel_dataset *ds, const char *id, int tags,
                          reel_buf *buf)
{
    const reel_videos *v = reel_dataset_videos(ds);
    const reel_strs *dict =
        reel_dataset_dict(ds, tags ? REEL_DICT_TAG : REEL_DICT_CATEGORY);
    const uint32_t *off = tags ? v->tag_off : v->cat_off;
    const uint32_t *ids = tags ? v->tag : v->cat;
    uint32_t i = video(ds, id);
    reel_buf_reset(buf);
    reel_buf_puts(buf, "");
    for (uint32_t k = off[i]; k < off[i + 1]; k++) {
        if (k > off[i])
            reel_buf_putc(buf, '|');
        reel_buf_puts(buf, reel_strs_get(dict, ids[k], NULL));
    }
    return buf->data;
}

static const char *dict_of(const reel_dataset *ds, enum reel_dict k,
                           uint32_t id)
{
    return id == REEL_NONE ? NULL
                           : reel_strs_get(reel_dataset_dict(ds, k), id, NULL);
}

/* The small ml-latest fixture the tests share. */
static void write_latest(const char *dir)
{
    put(dir, "movies.csv",
        "movieId,title,genres\r\n"
        "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\r\n"
        "11,\"American President, The (1995)\",Comedy|Drama|Romance\r\n"
        "29,\"City of Lost Children, The (Cit\xc3\xa9 des enfants perdus, "
        "La) (1995)\",Adventure|Drama\r\n"
        "31,\"\"\"Great Performances\"\" Cats (1998)\",Musical\r\n"
        "40,Babylon 5,(no genres listed)\r\n");
    put(dir, "ratings.csv",
        "userId,movieId,rating,timestamp\n"
        "1,31,2.5,1260759144\n"
        "1,1,4.0,1260759179\n"
        "7,11,5,964982703\n"
        "7,29,0.5,964982224\n");
    put(dir, "tags.csv",
        "userId,movieId,tag,timestamp\n"
        "1,1,Pixar,1139045764\n"
        "2,1,  Funny ,1139045765\n"
        "2,1,pixar,1139045766\n"
        "3,29,\"dark, weird\",1139045767\n"
        "3,29,\xc3\x89PIQUE,1139045768\n");
}

/* ml-100k's files; u.item's title bytes are Latin-1 (0xE9 is é). */
static void write_100k(const char *dir)
{
    put(dir, "u.item",
        "1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/"
        "title-exact?Toy%20Story%20(1995)|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0"
        "|0|0\n"
        "2|Mis\xe9rables, Les (1995)|15-Mar-1996||http://x|0|0|0|0|0|0|0|0|1"
        "|0|0|0|0|0|0|0|0|1|0\n"
        "3|Four Rooms (1995)||||0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0\n"
        "267|unknown||||1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n");
    put(dir, "u.user",
        "1|24|M|technician|85711\n"
        "2|53|F|other|94043\n");
    put(dir, "u.data",
        "1\t1\t5\t874965758\n"
        "2\t2\t3\t876893171\n"
        "1\t3\t4\t878542960\n"
        "2\t267\t1\t876893172\n");
}

/* --------------------------------------------------------------- tests */

static void detect_tells_the_layouts_apart(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    assert_int_equal(reel_movielens_detect(dir), REEL_ML_NONE);
    put(dir, "u.data", "");
    put(dir, "u.item", "");
    assert_int_equal(reel_movielens_detect(dir), REEL_ML_NONE);
    put(dir, "u.user", "");
    assert_int_equal(reel_movielens_detect(dir), REEL_ML_100K);
    put(dir, "ratings.csv", "");
    assert_int_equal(reel_movielens_detect(dir), REEL_ML_100K);
    put(dir, "movies.csv", "");
    assert_int_equal(reel_movielens_detect(dir), REEL_ML_LATEST);
    char *missing = test_path(dir, "nope");
    assert_int_equal(reel_movielens_detect(missing), REEL_ML_NONE);
    free(missing);
    test_rmtree(dir);
    free(dir);
}

static void a_directory_without_movielens_is_refused(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    put(dir, "ratings.csv", "userId,movieId,rating,timestamp\n");
    reel_dsbuild *b;
    reel_diag d;
    assert_int_equal(import(dir, 0, NULL, &d, &b), REEL_ENOENT);
    assert_non_null(strstr(d.msg, "no MovieLens data"));
    reel_dsbuild_free(b);
    test_rmtree(dir);
    free(dir);
}

static void latest_layout_round_trips(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    write_latest(dir);
    reel_dsbuild *b;
    reel_diag d;
    reel_import_report r = {0};
    assert_int_equal(import(dir, 0, &r, &d, &b), 0);
    assert_int_equal(r.n_lines, 5 + 4 + 5);
    assert_int_equal(r.n_added, 5 + 4 + 5);
    assert_int_equal(r.n_skipped, 0);
    assert_int_equal(reel_dsbuild_n_videos(b), 5);
    assert_int_equal(reel_dsbuild_n_users(b), 2);
    assert_int_equal(reel_dsbuild_n_events(b), 4);
    reel_dataset *ds = round_trip(b, dir);
    reel_buf buf = REEL_BUF_INIT;

    const reel_videos *v = reel_dataset_videos(ds);
    assert_string_equal(title(ds, "1"), "Toy Story");
    assert_string_equal(title(ds, "11"), "The American President");
    assert_string_equal(title(ds, "29"), "The City of Lost Children "
                                         "(La Cit\xc3\xa9 des enfants "
                                         "perdus)");
    assert_string_equal(title(ds, "31"), "\"Great Performances\" Cats");
    assert_string_equal(title(ds, "40"), "Babylon 5");
    assert_string_equal(joined(ds, "1", 0, &buf),
                        "Adventure|Animation|Children|Comedy|Fantasy");
    assert_string_equal(joined(ds, "11", 0, &buf), "Comedy|Drama|Romance");
    assert_string_equal(joined(ds, "40", 0, &buf), "");
    assert_true(v->published_at[video(ds, "1")] ==
                reel_clock_from_civil(1995, 1, 1));
    assert_true(v->published_at[video(ds, "31")] ==
                reel_clock_from_civil(1998, 1, 1));
    assert_true(isnan(v->published_at[video(ds, "40")]));
    for (uint32_t i = 0; i < v->n; i++)
        assert_string_equal(dict_of(ds, REEL_DICT_VTYPE, v->type[i]), "movie");

    /* Tags: lowercased, trimmed, de-duplicated, most applied first. */
    assert_string_equal(joined(ds, "1", 1, &buf), "pixar|funny");
    assert_string_equal(joined(ds, "29", 1, &buf), "dark, weird|\xc3\xa9pique");
    assert_string_equal(joined(ds, "11", 1, &buf), "");

    /* Events come back sorted by time with their ratings. */
    const reel_events *e = reel_dataset_events(ds);
    const reel_users *u = reel_dataset_users(ds);
    assert_int_equal(e->n, 4);
    static const struct {
        const char *user, *movie;
        double ts;
        float rating;
    } want[] = {
        {"7", "29", 964982224, 0.5f},
        {"7", "11", 964982703, 5.0f},
        {"1", "31", 1260759144, 2.5f},
        {"1", "1", 1260759179, 4.0f},
    };
    for (int k = 0; k < 4; k++) {
        assert_true(e->ts[k] == want[k].ts);
        assert_true(e->rating[k] == want[k].rating);
        assert_int_equal(e->type[k], REEL_EV_RATING);
        assert_true(isnan(e->watch_s[k]));
        assert_string_equal(reel_strs_get(&u->id, e->user[k], NULL),
                            want[k].user);
        assert_string_equal(reel_strs_get(&v->id, e->video[k], NULL),
                            want[k].movie);
    }
    json_error_t jerr;
    json_t *meta = json_loads(reel_dataset_meta(ds), 0, &jerr);
    assert_non_null(meta);
    assert_string_equal(json_string_value(json_object_get(meta, "source")),
                        "movielens-latest");
    json_decref(meta);

    reel_buf_free(&buf);
    reel_dataset_close(ds);
    reel_dsbuild_free(b);
    test_rmtree(dir);
    free(dir);
}

static void classic_100k_layout_round_trips(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    write_100k(dir);
    reel_dsbuild *b;
    reel_diag d;
    reel_import_report r = {0};
    assert_int_equal(import(dir, 0, &r, &d, &b), 0);
    assert_int_equal(r.n_lines, 4 + 2 + 4);
    assert_int_equal(r.n_added, 4 + 2 + 4);
    reel_dataset *ds = round_trip(b, dir);
    reel_buf buf = REEL_BUF_INIT;
    const reel_videos *v = reel_dataset_videos(ds);
    assert_int_equal(v->n, 4);

    /* Latin-1 became UTF-8; the article moved to the front. */
    assert_string_equal(title(ds, "2"), "Les Mis\xc3\xa9rables");
    assert_string_equal(title(ds, "1"), "Toy Story");
    assert_string_equal(title(ds, "267"), "unknown");
    assert_string_equal(joined(ds, "1", 0, &buf),
                        "Animation|Children's|Comedy");
    assert_string_equal(joined(ds, "2", 0, &buf), "Drama|War");
    assert_string_equal(joined(ds, "3", 0, &buf), "Thriller");
    /* The genre "unknown" means no genre. */
    assert_string_equal(joined(ds, "267", 0, &buf), "");
    /* The release date wins; the title's year when there is none. */
    assert_true(v->published_at[video(ds, "2")] ==
                reel_clock_from_civil(1996, 3, 15));
    assert_true(v->published_at[video(ds, "3")] ==
                reel_clock_from_civil(1995, 1, 1));
    assert_true(isnan(v->published_at[video(ds, "267")]));

    const reel_users *u = reel_dataset_users(ds);
    assert_int_equal(u->n, 2);
    uint32_t u2 = reel_dataset_find_user(ds, "2", 1);
    assert_int_not_equal(u2, REEL_NONE);
    assert_int_equal(u->age[u2], 53);
    assert_string_equal(dict_of(ds, REEL_DICT_GENDER, u->gender[u2]), "F");
    assert_string_equal(dict_of(ds, REEL_DICT_OCCUPATION, u->occupation[u2]),
                        "other");
    assert_string_equal(dict_of(ds, REEL_DICT_ZIP, u->zip[u2]), "94043");

    const reel_events *e = reel_dataset_events(ds);
    assert_int_equal(e->n, 4);
    assert_true(e->ts[0] == 874965758);
    assert_true(e->rating[0] == 5.0f);
    assert_string_equal(reel_strs_get(&v->id, e->video[0], NULL), "1");
    assert_true(e->ts[3] == 878542960);
    assert_true(e->rating[3] == 4.0f);
    assert_string_equal(reel_strs_get(&v->id, e->video[3], NULL), "3");
    for (int k = 0; k < 4; k++)
        assert_int_equal(e->type[k], REEL_EV_RATING);
    assert_non_null(strstr(reel_dataset_meta(ds), "\"movielens-100k\""));

    reel_buf_free(&buf);
    reel_dataset_close(ds);
    reel_dsbuild_free(b);
    test_rmtree(dir);
    free(dir);
}

static void genre_file_names_the_100k_flags(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    /* Out of order, a trailing blank line as in the real file, and an
     * item already converted to UTF-8 (kept as it is). */
    put(dir, "u.genre", "Bravo|1\nAlpha|0\nunknown|2\n\n");
    put(dir, "u.item",
        "5|Cit\xc3\xa9, La (2001)|||url|1|1|0\n"
        "6|Nothing (2002)|||url|0|0|1\n");
    put(dir, "u.user", "9|30|M|writer|12345\n");
    put(dir, "u.data", "9\t5\t3\t100\n");
    reel_dsbuild *b;
    reel_diag d;
    assert_int_equal(import(dir, 0, NULL, &d, &b), 0);
    reel_dataset *ds = round_trip(b, dir);
    reel_buf buf = REEL_BUF_INIT;
    assert_string_equal(joined(ds, "5", 0, &buf), "Alpha|Bravo");
    assert_string_equal(joined(ds, "6", 0, &buf), "");
    assert_string_equal(title(ds, "5"), "La Cit\xc3\xa9");
    reel_buf_free(&buf);
    reel_dataset_close(ds);
    reel_dsbuild_free(b);
    test_rmtree(dir);
    free(dir);
}

static void titles_are_cleaned(void **state)
{
    (void)state;
    static const struct {
        const char *raw, *clean;
        int year; /* 0: none */
    } cases[] = {
        {"Matrix, The (1999)", "The Matrix", 1999},
        {"American President, The (1995)", "The American President", 1995},
        {"Boy Called Hate, A (1995)", "A Boy Called Hate", 1995},
        {"Innocent Man, An (1989)", "An Innocent Man", 1989},
        {"Mis\xc3\xa9rables, Les (1995)", "Les Mis\xc3\xa9rables", 1995},
        {"Atalante, L' (1934)", "L'Atalante", 1934},
        {"Postman, The (Postino, Il) (1994)", "The Postman (Il Postino)", 1994},
        {"Laberinto del fauno, El (2006)", "El Laberinto del fauno", 2006},
        {"Boot, Das (1981)", "Das Boot", 1981},
        {"Himmel \xc3\xbc"
         "ber Berlin, Der (1987)",
         "Der Himmel \xc3\xbc"
         "ber Berlin",
         1987},
        {"Blechtrommel, Die (1979)", "Die Blechtrommel", 1979},
        {"Dernier m\xc3\xa9tro, Le (1980)", "Le Dernier m\xc3\xa9tro", 1980},
        {"Haine, La (1995)", "La Haine", 1995},
        {"Seven (a.k.a. Se7en) (1995)", "Seven (a.k.a. Se7en)", 1995},
        {"Enigma of Kaspar Hauser, The (a.k.a. Mystery of Kaspar Hauser, "
         "The) (1974)",
         "The Enigma of Kaspar Hauser (a.k.a. The Mystery of Kaspar Hauser)",
         1974},
        {"Librarian, The: The Curse of the Judas Chalice (2008)",
         "The Librarian: The Curse of the Judas Chalice", 2008},
        {"Good, the Bad and the Ugly, The (Buono, il brutto, il cattivo, "
         "Il) (1966)",
         "The Good, the Bad and the Ugly (Il Buono, il brutto, il cattivo)",
         1966},
        /* Nested parentheses: not simple, the alternative stays as is. */
        {"Odd One (Other (Thing), The) (2001)", "Odd One (Other (Thing), The)",
         2001},
        {"(500) Days of Summer (2009)", "(500) Days of Summer", 2009},
        {"1984 (1984)", "1984", 1984},
        {"  Jumanji (1995)  ", "Jumanji", 1995},
        {"Fawlty Towers (1975-1979)", "Fawlty Towers", 1975},
        {"Babylon 5", "Babylon 5", 0},
        {"Spider Baby or, The Maddest Story Ever Told (1968)",
         "Spider Baby or, The Maddest Story Ever Told", 1968},
        {"Nothing, Then", "Nothing, Then", 0},
        {"", "", 0},
    };
    size_t n = sizeof cases / sizeof *cases;
    char *dir = test_tmpdir();
    reel_buf movies = REEL_BUF_INIT;
    reel_buf_puts(&movies, "movieId,title,genres\n");
    for (size_t k = 0; k < n; k++) {
        reel_buf_printf(&movies, "%zu,\"", k + 1);
        for (const char *p = cases[k].raw; *p; p++) {
            if (*p == '"')
                reel_buf_putc(&movies, '"');
            reel_buf_putc(&movies, *p);
        }
        reel_buf_puts(&movies, "\",Drama\n");
    }
    put(dir, "movies.csv", movies.data);
    put(dir, "ratings.csv", "userId,movieId,rating,timestamp\n");
    reel_dsbuild *b;
    reel_diag d;
    assert_int_equal(import(dir, 0, NULL, &d, &b), 0);
    reel_dataset *ds = round_trip(b, dir);
    const reel_videos *v = reel_dataset_videos(ds);
    for (size_t k = 0; k < n; k++) {
        char id[16];
        snprintf(id, sizeof id, "%zu", k + 1);
        const char *got = title(ds, id);
        if (strcmp(got, cases[k].clean))
            fail_msg("\"%s\" -> \"%s\", want \"%s\"", cases[k].raw, got,
                     cases[k].clean);
        double pub = v->published_at[video(ds, id)];
        if (cases[k].year)
            assert_true(pub == reel_clock_from_civil(cases[k].year, 1, 1));
        else
            assert_true(isnan(pub));
    }
    reel_buf_free(&movies);
    reel_dataset_close(ds);
    reel_dsbuild_free(b);
    test_rmtree(dir);
    free(dir);
}

static void tags_are_ranked_and_bounded(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    put(dir, "movies.csv", "movieId,title,genres\n1,One (2000),Drama\n");
    put(dir, "ratings.csv", "userId,movieId,rating,timestamp\n");
    reel_buf tags = REEL_BUF_INIT;
    reel_buf_puts(&tags, "userId,movieId,tag,timestamp\n");
    for (int k = 0; k < REEL_MAX_LIST + 44; k++)
        reel_buf_printf(&tags, "1,1,tag%03d,1\n", k);
    for (int k = 0; k < 3; k++)
        reel_buf_puts(&tags, "2,1,Popular,2\n");
    /* Longer than a tag may be: ignored, not an error. */
    reel_buf_puts(&tags, "2,1,");
    for (int k = 0; k < REEL_MAX_WORD_LEN + 1; k++)
        reel_buf_putc(&tags, 'x');
    reel_buf_puts(&tags, ",3\n");
    put(dir, "tags.csv", tags.data);
    reel_dsbuild *b;
    reel_diag d;
    reel_import_report r = {0};
    assert_int_equal(import(dir, 0, &r, &d, &b), 0);
    assert_int_equal(r.n_skipped, 0);
    reel_dataset *ds = round_trip(b, dir);
    const reel_videos *v = reel_dataset_videos(ds);
    const reel_strs *dict = reel_dataset_dict(ds, REEL_DICT_TAG);
    assert_int_equal(v->tag_off[1] - v->tag_off[0], REEL_MAX_LIST);
    assert_string_equal(reel_strs_get(dict, v->tag[0], NULL), "popular");
    assert_string_equal(reel_strs_get(dict, v->tag[1], NULL), "tag000");
    assert_string_equal(reel_strs_get(dict, v->tag[REEL_MAX_LIST - 1], NULL),
                        "tag254");
    reel_buf_free(&tags);
    reel_dataset_close(ds);
    reel_dsbuild_free(b);
    test_rmtree(dir);
    free(dir);
}

/* One malformed input and where and how it must be reported. */
typedef struct bad_case {
    int latest;         /* which fixture to start from */
    const char *file;   /* the file to replace */
    const char *text;   /* its new content */
    int err;            /* the error expected */
    const char *where;  /* the file named by the diag */
    uint64_t line;      /* and its line */
    const char *reason; /* a substring of the message */
} bad_case;

static const bad_case bad_cases[] = {
    {1, "ratings.csv",
     "userId,movieId,rating,timestamp\n1,1,4.0,1\n1,11,6.0,2\n", REEL_ERANGE,
     "ratings.csv", 3, "outside 0..5"},
    {1, "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0e0,1\n",
     REEL_EFORMAT, "ratings.csv", 2, "not a number"},
    {1, "ratings.csv", "userId,movieId,rating,timestamp\n1,1,-1,1\n",
     REEL_EFORMAT, "ratings.csv", 2, "not a number"},
    {1, "ratings.csv",
     "userId,movieId,rating,timestamp\n1,1,4.0,1\n\n1,999,4.0,1\n",
     REEL_EFORMAT, "ratings.csv", 4, "movieId 999 is not in movies.csv"},
    {1, "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0\n",
     REEL_EFORMAT, "ratings.csv", 2, "expected 4 fields"},
    {1, "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,1,9\n",
     REEL_EFORMAT, "ratings.csv", 2, "found 5"},
    {1, "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,-5\n",
     REEL_EFORMAT, "ratings.csv", 2, "timestamp \"-5\""},
    {1, "ratings.csv", "userId,movieId,rating,timestamp\nu1,1,4.0,5\n",
     REEL_EFORMAT, "ratings.csv", 2, "userId \"u1\" is not an integer"},
    {1, "ratings.csv", "user,movie,rating,time\n1,1,4.0,5\n", REEL_EFORMAT,
     "ratings.csv", 1, "expected the header"},
    {1, "ratings.csv", "", REEL_EFORMAT, "ratings.csv", 1, "empty file"},
    {1, "movies.csv",
     "movieId,title,genres\n1,\"Two\nLines (1995)\",Drama\n"
     "5,\"Broken (1995),Drama\n6,Fine (1995),Drama\n",
     REEL_EFORMAT, "movies.csv", 4, "unterminated"},
    {1, "movies.csv",
     "movieId,title,genres\n1,\"Two\nLines (1995)\",Drama\n"
     "5,\"Broken\" (1995),Drama\n",
     REEL_EFORMAT, "movies.csv", 4, "closing quote"},
    {1, "movies.csv", "movieId,title,genres\n1,A (1995),Drama\n1,B,Drama\n",
     REEL_EEXISTS, "movies.csv", 3, "repeats the movie of line 2"},
    {1, "movies.csv", "movieId,title,genres\n1,A (1995)\n", REEL_EFORMAT,
     "movies.csv", 2, "expected 3 fields"},
    {1, "tags.csv", "userId,movieId,tag,timestamp\n1,1,ok,1\n1,77,x,1\n",
     REEL_EFORMAT, "tags.csv", 3, "movieId 77 is not in movies.csv"},
    {0, "u.data", "1\t1\t5\t874965758\n2\t2\t3\n", REEL_EFORMAT, "u.data", 2,
     "expected 4 tab-separated fields"},
    {0, "u.data", "1\t1\t5.5\t874965758\n", REEL_ERANGE, "u.data", 1,
     "outside 0..5"},
    {0, "u.data", "1\t12\t5\t874965758\n", REEL_EFORMAT, "u.data", 1,
     "item 12 is not in u.item"},
    {0, "u.item",
     "1|Toy (1995)|32-Jan-1995||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n",
     REEL_EFORMAT, "u.item", 1, "release date \"32-Jan-1995\""},
    {0, "u.item", "1|Toy (1995)|01-Jan-1995||u|0|0|0\n", REEL_EFORMAT, "u.item",
     1, "expected 24 fields"},
    {0, "u.item",
     "1|Toy (1995)|01-Jan-1995||u|0|0|0|2|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n",
     REEL_EFORMAT, "u.item", 1, "genre flag 4 is \"2\""},
    {0, "u.user", "1|24|M|technician|85711\n2|old|F|other|94043\n", REEL_ERANGE,
     "u.user", 2, "age \"old\""},
    {0, "u.user", "1|24|M|technician|85711\n1|25|M|technician|85711\n",
     REEL_EEXISTS, "u.user", 2, "duplicate user"},
    {0, "u.genre", "Alpha|0\nGamma|2\n", REEL_EFORMAT, "u.genre", 0,
     "no genre has index 1"},
    {0, "u.genre", "Alpha|0\nBeta|x\n", REEL_EFORMAT, "u.genre", 2,
     "genre index \"x\""},
};

static void malformed_input_names_file_line_and_reason(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof bad_cases / sizeof *bad_cases; k++) {
        const bad_case *c = &bad_cases[k];
        char *dir = test_tmpdir();
        if (c->latest)
            write_latest(dir);
        else
            write_100k(dir);
        put(dir, c->file, c->text);
        reel_dsbuild *b;
        reel_diag d;
        int rc = import(dir, 0, NULL, &d, &b);
        char where[PATH_MAX];
        snprintf(where, sizeof where, "%s/%s", dir, c->where);
        if (rc != c->err || !d.file || strcmp(d.file, where) ||
            d.line != c->line || !strstr(d.msg, c->reason))
            fail_msg("case %zu: got %s at %s:%llu: %s; want %s at %s:%llu: "
                     "...%s...",
                     k, reel_errname(rc), d.file ? d.file : "(null)",
                     (unsigned long long)d.line, d.msg, reel_errname(c->err),
                     where, (unsigned long long)c->line, c->reason);
        reel_dsbuild_free(b);
        /* Without a diag or a report the same error comes back. */
        reel_dsbuild_new(&b);
        assert_int_equal(reel_import_movielens(b, dir, NULL, NULL, NULL),
                         c->err);
        reel_dsbuild_free(b);
        test_rmtree(dir);
        free(dir);
    }
}

static void runaway_quote_is_reported_where_it_opens(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    write_latest(dir);
    reel_buf text = REEL_BUF_INIT;
    reel_buf_puts(&text, "userId,movieId,rating,timestamp\n1,1,4.0,1\n"
                         "1,\"1,4.0,2\n");
    while (text.len < 2 * REEL_LINES_DEFAULT_MAX)
        reel_buf_puts(&text, "1,1,4.0,3\n");
    put(dir, "ratings.csv", text.data);
    for (int skip = 0; skip < 2; skip++) {
        reel_dsbuild *b;
        reel_diag d;
        assert_int_equal(import(dir, skip, NULL, &d, &b), REEL_ETOOBIG);
        assert_non_null(strstr(d.file, "ratings.csv"));
        assert_int_equal(d.line, 3);
        assert_non_null(strstr(d.msg, "unbalanced quote"));
        reel_dsbuild_free(b);
    }
    reel_buf_free(&text);
    test_rmtree(dir);
    free(dir);
}

static void skip_bad_counts_and_keeps_the_good_lines(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    write_latest(dir);
    put(dir, "movies.csv",
        "movieId,title,genres\n"
        "1,Toy Story (1995),Animation\n"
        "2,Broken (1995)\n"
        "3,\"Bad\" quote,Drama\n"
        "4,Four (1995),Drama\n");
    put(dir, "ratings.csv",
        "userId,movieId,rating,timestamp\n"
        "1,1,4.0,100\n"
        "1,2,4.0,101\n" /* its movie was skipped */
        "1,4,9,102\n"   /* out of range */
        "x,4,3,103\n"   /* bad user */
        "2,4,3.5,104\n"
        "2,4,3.5\n" /* too few fields */
        "3,1,1,105\n");
    put(dir, "tags.csv",
        "userId,movieId,tag,timestamp\n"
        "1,1,fun,1\n"
        "1,9,lost,1\n");
    reel_dsbuild *b;
    reel_diag d;
    /* The report is added to, so one report can span several imports. */
    reel_import_report r = {.n_lines = 100, .n_added = 90, .n_skipped = 10};
    assert_int_equal(import(dir, 1, &r, &d, &b), 0);
    assert_int_equal(r.n_lines, 100 + 4 + 7 + 2);
    assert_int_equal(r.n_skipped, 10 + 2 + 4 + 1);
    assert_int_equal(r.n_added, 90 + 2 + 3 + 1);
    assert_int_equal(reel_dsbuild_n_videos(b), 2);
    assert_int_equal(reel_dsbuild_n_events(b), 3);
    assert_int_equal(reel_dsbuild_n_users(b), 3);
    reel_dataset *ds = round_trip(b, dir);
    const reel_events *e = reel_dataset_events(ds);
    assert_true(e->ts[0] == 100 && e->ts[1] == 104 && e->ts[2] == 105);
    assert_true(e->rating[1] == 3.5f);
    reel_dataset_close(ds);
    reel_dsbuild_free(b);
    test_rmtree(dir);
    free(dir);
}

static void meta_names_the_source_and_escapes_the_path(void **state)
{
    (void)state;
    char *base = test_tmpdir();
    char *dir = test_path(base, "we\"ird\\na\tme");
    assert_int_equal(mkdir(dir, 0755), 0);
    write_latest(dir);
    reel_dsbuild *b;
    reel_diag d;
    assert_int_equal(import(dir, 0, NULL, &d, &b), 0);
    reel_dataset *ds = round_trip(b, dir);
    json_error_t jerr;
    json_t *meta = json_loads(reel_dataset_meta(ds), 0, &jerr);
    if (!meta)
        fail_msg("meta is not JSON: %s (%s)", reel_dataset_meta(ds), jerr.text);
    char *real = realpath(dir, NULL);
    assert_non_null(real);
    assert_string_equal(json_string_value(json_object_get(meta, "path")), real);
    assert_string_equal(json_string_value(json_object_get(meta, "source")),
                        "movielens-latest");
    free(real);
    json_decref(meta);
    reel_dataset_close(ds);
    reel_dsbuild_free(b);
    test_rmtree(base);
    free(dir);
    free(base);
}

/* Random bytes from an alphabet rich in separators, quotes, digits and
 * non-ASCII; the importer must fail cleanly or skip, never crash. */
static void garbage(reel_rng *rng, reel_buf *out, size_t n)
{
    static const char alphabet[] = "0123456789,,,||\t\t\"\"\n\n\r.-( )abcXYZ";
    reel_buf_reset(out);
    for (size_t i = 0; i < n; i++) {
        uint64_t x = reel_rng_below(rng, 10);
        if (x == 0)
            reel_buf_putc(out, (char)reel_rng_below(rng, 256));
        else
            reel_buf_putc(out,
                          alphabet[reel_rng_below(rng, sizeof alphabet - 1)]);
    }
}

static void garbage_never_crashes(void **state)
{
    (void)state;
    /* Hundreds of skipped lines would bury the other tests' output. */
    reel_log_set_level(REEL_LOG_ERROR);
    reel_rng rng;
    reel_rng_seed(&rng, 20240601);
    reel_buf text = REEL_BUF_INIT, file = REEL_BUF_INIT;
    static const char *const latest[] = {"movies.csv", "ratings.csv",
                                         "tags.csv"};
    static const char *const headers[] = {"movieId,title,genres\n",
                                          "userId,movieId,rating,timestamp\n",
                                          "userId,movieId,tag,timestamp\n"};
    static const char *const classic[] = {"u.item", "u.user", "u.data",
                                          "u.genre"};
    for (int iter = 0; iter < 60; iter++) {
        char *dir = test_tmpdir();
        int is_latest = iter % 2 == 0;
        if (is_latest)
            write_latest(dir);
        else
            write_100k(dir);
        size_t which = (size_t)reel_rng_below(&rng, is_latest ? 3 : 4);
        garbage(&rng, &text, 1 + (size_t)reel_rng_below(&rng, 3000));
        reel_buf_reset(&file);
        /* Mostly keep the header so the garbage reaches the records. */
        if (is_latest && reel_rng_below(&rng, 4))
            reel_buf_puts(&file, headers[which]);
        reel_buf_append(&file, text.data, text.len);
        const char *name = is_latest ? latest[which] : classic[which];
        char *path = test_path(dir, name);
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(file.data, 1, file.len, f), file.len);
        assert_int_equal(fclose(f), 0);
        free(path);
        for (int skip = 0; skip < 2; skip++) {
            reel_dsbuild *b;
            reel_diag d;
            reel_import_report r = {0};
            int rc = import(dir, skip, &r, &d, &b);
            if (rc) {
                assert_true(rc < 0);
                assert_non_null(d.file);
                assert_true(d.msg[0] != '\0');
            } else {
                assert_int_equal(r.n_lines, r.n_added + r.n_skipped);
                reel_dataset *ds = round_trip(b, dir);
                reel_dataset_close(ds);
            }
            reel_dsbuild_free(b);
        }
        test_rmtree(dir);
        free(dir);
    }
    reel_buf_free(&text);
    reel_buf_free(&file);
    reel_log_set_level(REEL_LOG_WARN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(detect_tells_the_layouts_apart),
        cmocka_unit_test(a_directory_without_movielens_is_refused),
        cmocka_unit_test(latest_layout_round_trips),
        cmocka_unit_test(classic_100k_layout_round_trips),
        cmocka_unit_test(genre_file_names_the_100k_flags),
        cmocka_unit_test(titles_are_cleaned),
        cmocka_unit_test(tags_are_ranked_and_bounded),
        cmocka_unit_test(malformed_input_names_file_line_and_reason),
        cmocka_unit_test(runaway_quote_is_reported_where_it_opens),
        cmocka_unit_test(skip_bad_counts_and_keeps_the_good_lines),
        cmocka_unit_test(meta_names_the_source_and_escapes_the_path),
        cmocka_unit_test(garbage_never_crashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
