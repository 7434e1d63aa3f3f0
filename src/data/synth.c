/*
 * The streaming-service simulator (model: docs/synth.md) and its ground
 * truth file (layout: docs/formats/truth.md).
 *
 * The run has four phases: the catalogue (one random stream, in video
 * order), the users' profiles (one stream per user), their behaviour (one
 * more stream per user, simulated by worker threads a block of users at a
 * time) and writing. A worker sorts its block by time (stably); the main
 * thread hands finished blocks to the dataset builder in block order, so
 * the builder sees the same events in the same order whatever the number
 * of threads, and its stable sort by time makes the file bytes a function
 * of the options alone.
 */
#include "data/synth.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/progress.h"
#include "base/secfile.h"
#include "base/sort.h"
#include "base/strs.h"

#define TRUTH_KIND "truth"
#define TRUTH_VERSION 1u
#define DAY 86400.0

enum {
    DIM = 8,       /* latent style dimensions */
    MAX_VCATS = 3, /* categories of one video */
    MAX_TRUTH_CATS = 255,
    MAX_TRUTH_LANGS = 255,
    MAX_TRUTH_DIM = 64,
    MAX_LIST = 64,     /* the largest list size the model accepts */
    RECENT = 32,       /* videos a user played lately, kept out of lists */
    BLOCK = 256,       /* users per unit of parallel work */
    TRIES = 16,        /* draws per list slot before giving it up */
    MAX_SESSIONS = 48, /* per user and day */
    N_TYPES = 4,
};

/* Random stream families (reel_rng_seed2's stream = family | index), so the
 * catalogue, a user's profile and a user's behaviour never share numbers. */
#define STREAM_CATALOGUE (1ULL << 40)
#define STREAM_PROFILE (2ULL << 40)
#define STREAM_BEHAVIOUR (3ULL << 40)

/* ============================================================ the model */

/* The coefficients of the behaviour model, persisted in the truth file's
 * "params" section in this order (docs/formats/truth.md), so the order and
 * meaning of existing entries never change. */
enum param {
    P_CLICK_BIAS,
    P_CLICK_AFFINITY,
    P_CLICK_QUALITY,
    P_POS_DECAY,
    P_AFF_CATEGORY,
    P_AFF_PRIMARY,
    P_PLAY_PROB,
    P_WATCH_BIAS,
    P_WATCH_AFFINITY,
    P_WATCH_QUALITY,
    P_WATCH_CONC,
    P_WATCH_MOVIE,
    P_WATCH_EPISODE,
    P_WATCH_SHORT,
    P_WATCH_LIVE,
    P_SKIP_FRAC,
    P_LIKE_BIAS,
    P_LIKE_AFFINITY,
    P_LIKE_QUALITY,
    P_LIKE_WATCH,
    P_SHARE_BIAS,
    P_SHARE_AFFINITY,
    P_SHARE_QUALITY,
    P_SHARE_WATCH,
    P_LIST_SIZE,
    P_MIX_POPULAR,
    P_MIX_TASTE,
    P_FRESH_DAYS,
    P_SESSION_CONTINUE,
    P__COUNT
};

static const struct param_def {
    const char *name;
    double def, lo, hi; /* default and the range a truth file may hold */
} params[P__COUNT] = {
    [P_CLICK_BIAS] = {"click_bias", -3.6, -50, 50},
    [P_CLICK_AFFINITY] = {"click_affinity", 4.5, -50, 50},
    [P_CLICK_QUALITY] = {"click_quality", 0.5, -50, 50},
    [P_POS_DECAY] = {"pos_decay", 0.6, 0, 10},
    [P_AFF_CATEGORY] = {"affinity_category", 0.7, 0, 1},
    [P_AFF_PRIMARY] = {"affinity_primary", 0.6, 0, 1},
    [P_PLAY_PROB] = {"play_prob", 0.95, 0, 1},
    [P_WATCH_BIAS] = {"watch_bias", -1.8, -50, 50},
    [P_WATCH_AFFINITY] = {"watch_affinity", 3.0, -50, 50},
    [P_WATCH_QUALITY] = {"watch_quality", 0.5, -50, 50},
    [P_WATCH_CONC] = {"watch_concentration", 2.0, 0.01, 1000},
    [P_WATCH_MOVIE] = {"watch_movie", -0.4, -50, 50},
    [P_WATCH_EPISODE] = {"watch_episode", 0.0, -50, 50},
    [P_WATCH_SHORT] = {"watch_short", 1.2, -50, 50},
    [P_WATCH_LIVE] = {"watch_live", -0.8, -50, 50},
    [P_SKIP_FRAC] = {"skip_frac", 0.1, 0, 1},
    [P_LIKE_BIAS] = {"like_bias", -6.5, -50, 50},
    [P_LIKE_AFFINITY] = {"like_affinity", 2.0, -50, 50},
    [P_LIKE_QUALITY] = {"like_quality", 0.8, -50, 50},
    [P_LIKE_WATCH] = {"like_watch", 2.0, -50, 50},
    [P_SHARE_BIAS] = {"share_bias", -9.0, -50, 50},
    [P_SHARE_AFFINITY] = {"share_affinity", 2.5, -50, 50},
    [P_SHARE_QUALITY] = {"share_quality", 1.0, -50, 50},
    [P_SHARE_WATCH] = {"share_watch", 1.5, -50, 50},
    [P_LIST_SIZE] = {"list_size", 10, 1, MAX_LIST},
    [P_MIX_POPULAR] = {"mix_popular", 0.4, 0, 1},
    [P_MIX_TASTE] = {"mix_taste", 0.45, 0, 1},
    [P_FRESH_DAYS] = {"fresh_days", 14, 0, 3660},
    [P_SESSION_CONTINUE] = {"session_continue", 0.55, 0, 0.99},
};

struct reel_truth {
    reel_secfile *f; /* NULL for the simulator's own truth in memory */
    void *mem[24];   /* arrays owned by an in-memory truth */
    int n_mem;
    uint32_t n_users, n_videos, n_cats, n_langs, dim;
    uint64_t seed;
    double p[P__COUNT];
    double pos_bias[MAX_LIST];
    const float *u_cat, *u_lang, *u_style, *u_bias, *u_act;
    const float *v_quality, *v_style, *v_dur, *v_pop;
    const uint8_t *v_lang, *v_type, *v_cat;
    const uint32_t *v_cat_off;
};

static double sigmoid(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

static double clamp01(double x)
{
    return x < 0.0 ? 0.0 : x > 1.0 ? 1.0 : x;
}

/* Examination probability of list position pos: (1 + pos)^-decay. */
static double pos_bias(const reel_truth *t, uint32_t pos)
{
    if (pos < MAX_LIST)
        return t->pos_bias[pos];
    return exp(-t->p[P_POS_DECAY] * log(1.0 + (double)pos));
}

static void truth_derive(reel_truth *t)
{
    for (uint32_t k = 0; k < MAX_LIST; k++)
        t->pos_bias[k] = exp(-t->p[P_POS_DECAY] * log(1.0 + (double)k));
}

static double affinity(const reel_truth *t, uint32_t u, uint32_t v)
{
    const float *uc = t->u_cat + (size_t)u * t->n_cats;
    uint32_t a = t->v_cat_off[v], b = t->v_cat_off[v + 1];
    double cat = uc[t->v_cat[a]];
    if (b - a > 1) {
        /* The primary category counts most; the others share the rest. */
        double prim = t->p[P_AFF_PRIMARY];
        double rest = (1.0 - prim) / (double)(b - a - 1);
        cat *= prim;
        for (uint32_t k = a + 1; k < b; k++)
            cat += rest * uc[t->v_cat[k]];
    }
    const float *us = t->u_style + (size_t)u * t->dim;
    const float *vs = t->v_style + (size_t)v * t->dim;
    double dot = 0.0;
    for (uint32_t k = 0; k < t->dim; k++)
        dot += (double)us[k] * (double)vs[k];
    double style = clamp01(0.5 * (1.0 + dot));
    double wc = t->p[P_AFF_CATEGORY];
    double lang = t->u_lang[(size_t)u * t->n_langs + t->v_lang[v]];
    return clamp01(lang * (wc * cat + (1.0 - wc) * style));
}

static double click_prob(const reel_truth *t, uint32_t u, uint32_t v,
                         uint32_t pos, double aff)
{
    double x = t->p[P_CLICK_BIAS] + t->p[P_CLICK_AFFINITY] * aff +
               t->p[P_CLICK_QUALITY] * t->v_quality[v] + t->u_bias[u];
    return pos_bias(t, pos) * sigmoid(x);
}

static double watch_mean(const reel_truth *t, uint32_t u, uint32_t v,
                         double aff)
{
    double x = t->p[P_WATCH_BIAS] + t->p[P_WATCH_AFFINITY] * aff +
               t->p[P_WATCH_QUALITY] * t->v_quality[v] +
               t->p[P_WATCH_MOVIE + t->v_type[v]];
    return sigmoid(x);
}

uint32_t reel_truth_n_users(const reel_truth *t)
{
    return t->n_users;
}

uint32_t reel_truth_n_videos(const reel_truth *t)
{
    return t->n_videos;
}

uint64_t reel_truth_seed(const reel_truth *t)
{
    return t->seed;
}

double reel_truth_activity(const reel_truth *t, uint32_t user)
{
    assert(user < t->n_users);
    return t->u_act[user];
}

double reel_truth_affinity(const reel_truth *t, uint32_t user, uint32_t video)
{
    assert(user < t->n_users && video < t->n_videos);
    return affinity(t, user, video);
}

double reel_truth_click_prob(const reel_truth *t, uint32_t user, uint32_t video,
                             uint32_t pos)
{
    assert(user < t->n_users && video < t->n_videos);
    return click_prob(t, user, video, pos, affinity(t, user, video));
}

double reel_truth_watch_frac(const reel_truth *t, uint32_t user, uint32_t video)
{
    assert(user < t->n_users && video < t->n_videos);
    return watch_mean(t, user, video, affinity(t, user, video));
}

void reel_truth_sample(const reel_truth *t, uint32_t user, uint32_t video,
                       uint32_t pos, reel_rng *r, reel_truth_outcome *out)
{
    assert(user < t->n_users && video < t->n_videos);
    *out = (reel_truth_outcome){0};
    double aff = affinity(t, user, video);
    if (!(reel_rng_uniform(r) < click_prob(t, user, video, pos, aff)))
        return;
    out->click = 1;
    if (!(reel_rng_uniform(r) < t->p[P_PLAY_PROB]))
        return;
    out->play = 1;
    double m = watch_mean(t, user, video, aff), k = t->p[P_WATCH_CONC];
    /* Beta(k m, k (1 - m)) has mean m; both gammas can underflow to 0 for
     * tiny shapes, and then the mean is the honest answer. */
    double x = reel_rng_gamma(r, k * m), y = reel_rng_gamma(r, k * (1.0 - m));
    double frac = x + y > 0.0 ? clamp01(x / (x + y)) : m;
    out->watch_frac = frac;
    out->watch_s = frac * (double)t->v_dur[video];
    out->skip = frac < t->p[P_SKIP_FRAC];
    double q = t->v_quality[video];
    double pl = sigmoid(t->p[P_LIKE_BIAS] + t->p[P_LIKE_AFFINITY] * aff +
                        t->p[P_LIKE_QUALITY] * q + t->p[P_LIKE_WATCH] * frac);
    double ps = sigmoid(t->p[P_SHARE_BIAS] + t->p[P_SHARE_AFFINITY] * aff +
                        t->p[P_SHARE_QUALITY] * q + t->p[P_SHARE_WATCH] * frac);
    out->like = reel_rng_uniform(r) < pl;
    out->share = reel_rng_uniform(r) < ps;
}

/* ======================================================= vocabularies */

enum { N_CATS = 20 };

static const char *const cat_names[N_CATS] = {
    "action",      "adventure", "animation", "comedy",   "crime",
    "documentary", "drama",     "family",    "fantasy",  "history",
    "horror",      "music",     "mystery",   "news",     "reality",
    "romance",     "science",   "sports",    "thriller", "travel",
};
enum {
    CAT_ANIMATION = 2,
    CAT_DOCUMENTARY = 5,
    CAT_FAMILY = 7,
    CAT_HISTORY = 9,
    CAT_MUSIC = 11,
    CAT_NEWS = 13,
    CAT_SPORTS = 17,
};
/* Share of the catalogue whose primary category this is. */
static const double cat_weight[N_CATS] = {
    .07, .04, .06, .09, .05, .06, .09, .04, .03, .02,
    .04, .06, .03, .05, .05, .05, .03, .06, .05, .03,
};

enum { N_LANGS = 12, LANG_EN = 0 };
static const char *const lang_names[N_LANGS] = {
    "en", "es", "hi", "pt", "fr", "de", "ja", "ko", "it", "tr", "ar", "zh",
};
/* Share of the catalogue in each language. */
static const double lang_weight[N_LANGS] = {
    .40, .12, .08, .06, .05, .05, .06, .06, .03, .03, .03, .03,
};

static const struct country {
    const char *code;
    double weight;  /* share of users */
    uint8_t lang;   /* native language */
    double tz;      /* UTC offset in hours */
    double english; /* typical affinity to English for non-English natives */
} countries[] = {
    {"US", .28, 0, -5, 1},    {"GB", .07, 0, 0, 1},    {"CA", .04, 0, -5, 1},
    {"IN", .12, 2, 5.5, .85}, {"BR", .08, 3, -3, .45}, {"MX", .06, 1, -6, .5},
    {"ES", .04, 1, 1, .5},    {"DE", .06, 5, 1, .6},   {"FR", .06, 4, 1, .5},
    {"JP", .05, 6, 9, .35},   {"KR", .04, 7, 9, .4},   {"IT", .03, 8, 1, .5},
    {"TR", .03, 9, 3, .45},   {"EG", .02, 10, 2, .45}, {"TW", .02, 11, 8, .5},
};
enum { N_COUNTRIES = sizeof countries / sizeof countries[0] };

enum { T_MOVIE = 0, T_EPISODE = 1, T_SHORT = 2, T_LIVE = 3 };
static const char *const type_names[N_TYPES] = {"movie", "episode", "short",
                                                "live"};
static const double type_weight[N_TYPES] = {.12, .33, .45, .10};

/* Relative session starts by local hour: a morning bump, lunch, and the
 * evening peak at 20-21h. */
static const double hour_weight[24] = {
    2.0, 1.2, 0.7, 0.4, 0.3, 0.4, 0.8, 1.3, 1.5, 1.5, 1.6, 1.8,
    2.4, 2.3, 2.0, 2.1, 2.6, 3.3, 4.3, 5.6, 6.6, 6.6, 5.2, 3.3,
};

static const char *const genders[] = {"female", "male", "nonbinary"};

static const char *const adjs[] = {
    "Silent",   "Broken",  "Hidden", "Golden",   "Last",     "Lost",
    "Midnight", "Crimson", "Wild",   "Frozen",   "Secret",   "Endless",
    "Distant",  "Burning", "Quiet",  "Electric", "Northern", "Hollow",
    "Brave",    "Little",  "Final",  "Savage",   "Gentle",   "Restless",
    "Velvet",   "Iron",    "Paper",  "Neon",     "Bitter",   "Sweet",
    "Dark",     "Bright",  "Fallen", "Rising",   "Sacred",   "Stolen",
    "Empty",    "Hungry",  "Lucky",  "Scarlet",
};
static const char *const nouns[] = {
    "River",      "Kingdom", "Garden",   "Promise",  "Shadow",  "Storm",
    "Harbor",     "Engine",  "Mirror",   "Island",   "Letter",  "Empire",
    "Road",       "Witness", "Signal",   "Frontier", "Circus",  "Orchard",
    "Lighthouse", "Winter",  "Summer",   "Heart",    "Machine", "Crown",
    "Forest",     "Desert",  "Horizon",  "Ocean",    "Station", "Detective",
    "Dragon",     "Ghost",   "Mountain", "Castle",   "Comet",   "Village",
    "Melody",     "Voyage",  "Planet",   "Bridge",
};
static const char *const places[] = {
    "Lisbon", "Tokyo",  "Cairo",    "Berlin", "Havana", "Mumbai", "Oslo",
    "Seoul",  "Naples", "Lagos",    "Denver", "Lima",   "Kyoto",  "Paris",
    "Austin", "Dublin", "Istanbul", "Manila", "Quebec", "Sydney",
};
static const char *const hooks[] = {
    "explained",  "in 60 seconds",     "gone wrong", "you need to see",
    "challenge",  "behind the scenes", "reaction",   "tutorial",
    "highlights", "bloopers",
};
static const char *const tag_names[] = {
    "4k",         "hdr",       "award-winning", "true-story",      "classic",
    "subtitled",  "dubbed",    "original",      "binge-worthy",    "feel-good",
    "dark",       "slow-burn", "fast-paced",    "family-friendly", "indie",
    "remastered",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define PICK(r, a) ((a)[reel_rng_below((r), COUNT(a))])

/* Samples an index from n weights by a linear scan (small n only). */
static uint32_t pick_weighted(reel_rng *r, const double *w, uint32_t n)
{
    double sum = 0.0;
    for (uint32_t i = 0; i < n; i++)
        sum += w[i];
    double x = reel_rng_uniform(r) * sum;
    for (uint32_t i = 0; i < n; i++) {
        if (x < w[i])
            return i;
        x -= w[i];
    }
    return n - 1;
}

/* A unit vector with a uniformly random direction. */
static void random_unit(reel_rng *r, float *out, uint32_t dim)
{
    double v[MAX_TRUTH_DIM], norm = 0.0;
    for (uint32_t k = 0; k < dim; k++) {
        v[k] = reel_rng_normal(r);
        norm += v[k] * v[k];
    }
    norm = sqrt(norm);
    for (uint32_t k = 0; k < dim; k++)
        out[k] = norm > 0.0 ? (float)(v[k] / norm) : (k == 0);
}

/* =========================================================== simulation */

/* An alias table (Vose, built by reel_alias_build) repacked so that one
 * draw reads one slot holding both outcomes as video ids: the catalogue's
 * tables are too large for the cache, and a draw is then one miss. */
struct vslot {
    float prob;
    uint32_t self, other;
};

struct vsampler {
    uint32_t n;
    struct vslot *slot;
};

/* Set in a sampler's video id when the video is published after the
 * window starts, so only those draws look up their publication time (most
 * of the catalogue is older, and each lookup is a cache miss). Video
 * indexes stay below REEL_SYNTH_MAX_VIDEOS < 2^31. */
#define LATE 0x80000000u
_Static_assert(REEL_SYNTH_MAX_VIDEOS < LATE, "LATE is a free bit");

/* Weights w[0..n) of videos ids[0..n) (NULL: the ids are 0..n); each id
 * gets LATE when pub[id] > start. */
static void vsampler_build(struct vsampler *vs, const double *w,
                           const uint32_t *ids, uint32_t n, const double *pub,
                           double start)
{
    reel_alias a;
    int rc = reel_alias_build(&a, w, n);
    assert(rc == 0);
    (void)rc;
    vs->n = n;
    vs->slot = reel_xmalloc((size_t)n * sizeof *vs->slot);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t x = ids ? ids[i] : i, y = ids ? ids[a.alias[i]] : a.alias[i];
        vs->slot[i] = (struct vslot){.prob = a.prob[i],
                                     .self = x | (pub[x] > start ? LATE : 0),
                                     .other = y | (pub[y] > start ? LATE : 0)};
    }
    reel_alias_free(&a);
}

/* The same arithmetic as reel_alias_sample. */
static uint32_t vsampler_draw(const struct vsampler *vs, reel_rng *r)
{
    uint64_t x = reel_rng_u64(r);
    const struct vslot *s = &vs->slot[((x >> 32) * vs->n) >> 32];
    float u = (float)(x & 0xffffff) * 0x1.0p-24f;
    return u < s->prob ? s->self : s->other;
}

static void vsampler_free(struct vsampler *vs)
{
    free(vs->slot);
    vs->slot = NULL;
    vs->n = 0;
}

/* One generated event before it reaches the builder. */
struct sev {
    double ts;
    uint32_t user, video, req;
    float watch;
    uint8_t type;
};

struct block {
    struct sev *ev;
    size_t n, cap;
    uint64_t n_lists;
    int done;
};

/* Everything the workers read; nothing in it changes once they start. */
struct sim {
    uint64_t seed;
    uint32_t n_users, n_videos, days;
    double start, end;
    reel_truth *t;
    /* catalogue */
    double *pub;         /* published_at per video */
    struct vsampler pop; /* all videos by popularity */
    /* Videos by (primary category, language) by popularity, and the
     * popularity mass of each pair and of each category. */
    struct vsampler by_cl[N_CATS * N_LANGS];
    double mass_cl[N_CATS * N_LANGS], mass_c[N_CATS];
    uint32_t *fresh; /* videos sorted by published_at */
    double *fresh_pub;
    /* users */
    uint8_t *country;
    double *signup;
    reel_alias hour;
};

static void emit(struct block *blk, double ts, uint32_t u, uint32_t v, int type,
                 double watch, uint32_t req)
{
    REEL_GROW(blk->ev, blk->cap, blk->n + 1);
    blk->ev[blk->n++] = (struct sev){.ts = ts,
                                     .user = u,
                                     .video = v,
                                     .req = req,
                                     .watch = (float)watch,
                                     .type = (uint8_t)type};
}

struct user_state {
    uint32_t u;
    reel_rng r;
    /* Cumulative weights of (category, language) pairs for taste slots:
     * taste x language affinity x the pair's share of its category. */
    double taste_cdf[N_CATS * N_LANGS];
    uint32_t recent[RECENT]; /* a ring */
    uint32_t n_recent, recent_head;
    uint32_t n_req;
};

static int contains(const uint32_t *a, uint32_t n, uint32_t v)
{
    for (uint32_t i = 0; i < n; i++)
        if (a[i] == v)
            return 1;
    return 0;
}

enum { SLOT_POPULAR, SLOT_TASTE, SLOT_FRESH };

static uint32_t draw(const struct sim *s, struct user_state *us, int kind,
                     double t)
{
    if (kind == SLOT_TASTE) {
        const double *cdf = us->taste_cdf;
        double x = reel_rng_uniform(&us->r) * cdf[N_CATS * N_LANGS - 1];
        uint32_t lo = 0, hi = N_CATS * N_LANGS - 1;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (cdf[mid] > x)
                hi = mid;
            else
                lo = mid + 1;
        }
        if (!s->by_cl[lo].n)
            return REEL_NONE;
        return vsampler_draw(&s->by_cl[lo], &us->r);
    }
    if (kind == SLOT_FRESH) {
        /* Uniform among the videos published in the last fresh_days. */
        double lo_t = t - s->t->p[P_FRESH_DAYS] * DAY;
        uint32_t lo = 0, hi = s->n_videos;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (s->fresh_pub[mid] < lo_t)
                lo = mid + 1;
            else
                hi = mid;
        }
        uint32_t a = lo;
        hi = s->n_videos;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (s->fresh_pub[mid] <= t)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == a)
            return REEL_NONE;
        /* Published by t by construction: no LATE mark needed. */
        return s->fresh[a + reel_rng_below(&us->r, lo - a)];
    }
    return vsampler_draw(&s->pop, &us->r);
}

/* Fills list[] with up to list_size distinct videos published by time t
 * that the user has not played lately; returns how many. draw() returns
 * ids that may carry LATE. */
static uint32_t make_list(const struct sim *s, struct user_state *us, double t,
                          uint32_t *list)
{
    const reel_truth *tr = s->t;
    uint32_t size = (uint32_t)tr->p[P_LIST_SIZE], n = 0;
    for (uint32_t slot = 0; slot < size; slot++) {
        double x = reel_rng_uniform(&us->r);
        int kind = x < tr->p[P_MIX_POPULAR] ? SLOT_POPULAR
                   : x < tr->p[P_MIX_POPULAR] + tr->p[P_MIX_TASTE] ? SLOT_TASTE
                                                                   : SLOT_FRESH;
        for (int k = 0; k < TRIES; k++) {
            uint32_t v = draw(s, us, kind, t);
            if (v == REEL_NONE) {
                kind = SLOT_POPULAR;
                continue;
            }
            if (v & LATE) {
                v &= ~LATE;
                if (s->pub[v] > t)
                    continue;
            }
            if (contains(list, n, v) || contains(us->recent, us->n_recent, v))
                continue;
            list[n++] = v;
            break;
        }
    }
    return n;
}

/* Simulates one session from time t0; returns when the user left. */
static double session(const struct sim *s, struct user_state *us,
                      struct block *blk, double t0)
{
    const reel_truth *tr = s->t;
    uint32_t u = us->u, list[MAX_LIST];
    double t = t0, cur = t0;
    for (;;) {
        uint32_t n = make_list(s, us, t, list);
        uint32_t req = us->n_req++;
        blk->n_lists += n > 0;
        /* The truth's columns are scattered over a large catalogue: ask for
         * all the list's lines at once rather than miss one at a time. */
        for (uint32_t pos = 0; pos < n; pos++) {
            uint32_t v = list[pos];
            __builtin_prefetch(&tr->v_cat_off[v]);
            __builtin_prefetch(&tr->v_style[(size_t)v * tr->dim]);
            __builtin_prefetch(&tr->v_lang[v]);
            __builtin_prefetch(&tr->v_quality[v]);
        }
        for (uint32_t pos = 0; pos < n; pos++)
            emit(blk, t, u, list[pos], REEL_EV_IMPRESSION, NAN, req);
        /* The user reads the list, then opens the items that appeal, in
         * list order, returning to the list after each. */
        cur = t + 2.0 + reel_rng_exponential(&us->r, 1.0 / 6.0);
        for (uint32_t pos = 0; pos < n; pos++) {
            reel_truth_outcome o;
            uint32_t v = list[pos];
            reel_truth_sample(tr, u, v, pos, &us->r, &o);
            if (!o.click)
                continue;
            emit(blk, cur, u, v, REEL_EV_CLICK, NAN, req);
            if (!o.play) {
                cur += 2.0 + reel_rng_exponential(&us->r, 1.0 / 5.0);
                continue;
            }
            double ps = cur + 1.0 + 2.0 * reel_rng_uniform(&us->r);
            double we = ps + o.watch_s;
            emit(blk, ps, u, v, REEL_EV_PLAY, NAN, req);
            emit(blk, we, u, v, REEL_EV_WATCH, o.watch_s, req);
            if (o.skip)
                emit(blk, we, u, v, REEL_EV_SKIP, o.watch_s, req);
            if (o.like)
                emit(blk, we + 1.0 + 4.0 * reel_rng_uniform(&us->r), u, v,
                     REEL_EV_LIKE, NAN, req);
            if (o.share)
                emit(blk, we + 2.0 + 10.0 * reel_rng_uniform(&us->r), u, v,
                     REEL_EV_SHARE, NAN, req);
            us->recent[us->recent_head++ % RECENT] = v;
            if (us->n_recent < RECENT)
                us->n_recent++;
            cur = we + 3.0 + reel_rng_exponential(&us->r, 1.0 / 10.0);
        }
        if (!(reel_rng_uniform(&us->r) < tr->p[P_SESSION_CONTINUE]))
            break;
        t = cur + reel_rng_exponential(&us->r, 1.0 / 15.0);
        if (t >= s->end)
            break;
    }
    return cur;
}

/* Weekends see a quarter more sessions than weekdays, and a week averages
 * the user's activity: 5 w + 2 (1.25 w) = 7. */
static double weekday_factor(double day0)
{
    long n = (long)floor(day0 / DAY);
    long dow = ((n + 4) % 7 + 7) % 7; /* 0 Sunday; 1970-01-01 was Thursday */
    double w = 7.0 / 7.5;
    return dow == 0 || dow == 6 ? 1.25 * w : w;
}

static void sim_user(const struct sim *s, uint32_t u, struct block *blk)
{
    const reel_truth *tr = s->t;
    struct user_state us = {.u = u};
    reel_rng_seed2(&us.r, s->seed, STREAM_BEHAVIOUR | u);
    const float *uc = tr->u_cat + (size_t)u * tr->n_cats;
    const float *ul = tr->u_lang + (size_t)u * tr->n_langs;
    /* P(category c, language l) = taste_c x lang_l x mass(c, l) / mass(c),
     * the law of "pick a category by taste, a video of it by popularity,
     * keep it with probability lang", without the rejections. */
    double acc = 0.0;
    for (uint32_t c = 0; c < N_CATS; c++)
        for (uint32_t l = 0; l < N_LANGS; l++) {
            uint32_t k = c * N_LANGS + l;
            if (s->mass_c[c] > 0.0)
                acc += (double)uc[c] * (double)ul[l] * s->mass_cl[k] /
                       s->mass_c[c];
            us.taste_cdf[k] = acc;
        }
    double act = tr->u_act[u], tz = countries[s->country[u]].tz * 3600.0;
    double lo = s->signup[u] > s->start ? s->signup[u] : s->start;
    double busy = -INFINITY, starts[MAX_SESSIONS];
    /* Local days -1 and `days` reach into the window across time zones. */
    for (long d = -1; d <= (long)s->days; d++) {
        double day0 = s->start + (double)d * DAY;
        uint64_t n = reel_rng_poisson(&us.r, act * weekday_factor(day0));
        if (n > MAX_SESSIONS)
            n = MAX_SESSIONS;
        for (uint64_t i = 0; i < n; i++) {
            double h = (double)reel_alias_sample(&s->hour, &us.r);
            double x = day0 + (h + reel_rng_uniform(&us.r)) * 3600.0 - tz;
            uint64_t j = i;
            for (; j > 0 && starts[j - 1] > x; j--)
                starts[j] = starts[j - 1];
            starts[j] = x;
        }
        for (uint64_t i = 0; i < n; i++) {
            double x = starts[i];
            if (x < busy)
                x = busy + 60.0 + reel_rng_exponential(&us.r, 1.0 / 600.0);
            if (x < lo || x >= s->end)
                continue;
            busy = session(s, &us, blk, x);
        }
    }
}

/* Sorts a block's events by time, stably. The builder sorts the whole run
 * by time when it writes; handing it a few hundred sorted runs instead of
 * user-ordered events turns its random gathers over tens of millions of
 * events into a walk along each run (measured: writing 50M events took
 * half the time), and the sorting happens here in parallel. Ties keep
 * generation order, so a list's impressions stay together in position
 * order. */
static void sort_block(struct block *blk)
{
    size_t n = blk->n;
    if (n < 2)
        return;
    assert(n < UINT32_MAX);
    double *keys = reel_xmalloc(n * sizeof *keys);
    uint32_t *perm = reel_xmalloc(n * sizeof *perm);
    struct sev *out = reel_xmalloc(n * sizeof *out);
    for (size_t i = 0; i < n; i++)
        keys[i] = blk->ev[i].ts;
    reel_sort_perm_f64(keys, (uint32_t)n, perm);
    for (size_t i = 0; i < n; i++)
        out[i] = blk->ev[perm[i]];
    free(blk->ev);
    blk->ev = out;
    blk->cap = n;
    free(keys);
    free(perm);
}

struct pool {
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    const struct sim *s;
    struct block *blocks;
    uint32_t n_blocks, next, consumed, window;
    int stop;
};

static void *worker(void *arg)
{
    struct pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        /* Workers stay within a window of the block the main thread
         * consumes next, so memory holds a few blocks, not the run. */
        while (!p->stop && p->next < p->n_blocks &&
               p->next >= p->consumed + p->window)
            pthread_cond_wait(&p->cv_work, &p->mu);
        if (p->stop || p->next >= p->n_blocks)
            break;
        uint32_t k = p->next++;
        pthread_mutex_unlock(&p->mu);
        struct block *blk = &p->blocks[k];
        uint32_t a = k * BLOCK, b = a + BLOCK;
        if (b > p->s->n_users)
            b = p->s->n_users;
        for (uint32_t u = a; u < b; u++)
            sim_user(p->s, u, blk);
        sort_block(blk);
        pthread_mutex_lock(&p->mu);
        blk->done = 1;
        pthread_cond_broadcast(&p->cv_done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Writes x in decimal at p; returns the number of digits. */
static int put_u32(char *p, uint32_t x)
{
    char tmp[10];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + x % 10);
        x /= 10;
    } while (x);
    for (int i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

/* "r<user>-<list number>", unique over the run. The main thread formats
 * tens of millions of these, hence no printf. */
static int request_id(char *buf, uint32_t user, uint32_t req)
{
    int n = 0;
    buf[n++] = 'r';
    n += put_u32(buf + n, user);
    buf[n++] = '-';
    n += put_u32(buf + n, req);
    buf[n] = '\0';
    return n;
}

/* Hands one block's events to the builder. */
static int consume(reel_dsbuild *b, const struct block *blk,
                   reel_synth_stats *st, reel_diag *d)
{
    char req[32];
    for (size_t i = 0; i < blk->n; i++) {
        const struct sev *e = &blk->ev[i];
        request_id(req, e->user, e->req);
        reel_event_rec rec = reel_event_rec_empty();
        rec.user = e->user;
        rec.video = e->video;
        rec.type = e->type;
        rec.ts = e->ts;
        if (e->type == REEL_EV_WATCH || e->type == REEL_EV_SKIP)
            rec.watch_s = e->watch;
        rec.request_id = req;
        int rc = reel_dsbuild_add_event(b, &rec, d);
        if (rc)
            return rc;
        st->n_by_type[e->type]++;
    }
    st->n_events += blk->n;
    st->n_lists += blk->n_lists;
    return 0;
}

static int simulate(const struct sim *s, int threads, reel_dsbuild *b,
                    reel_synth_stats *st, reel_diag *d)
{
    struct pool p = {.s = s};
    p.n_blocks = (s->n_users + BLOCK - 1) / BLOCK;
    p.window = 2 * (uint32_t)threads + 2;
    p.blocks = reel_xcalloc(p.n_blocks ? p.n_blocks : 1, sizeof *p.blocks);
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv_work, NULL);
    pthread_cond_init(&p.cv_done, NULL);
    pthread_t *th = reel_xcalloc((size_t)threads, sizeof *th);
    int n_th = 0, rc = 0;
    for (; n_th < threads; n_th++)
        if (pthread_create(&th[n_th], NULL, worker, &p))
            break;
    if (n_th == 0) {
        rc = reel_diag_fail(d, REEL_EIO, "cannot start a worker thread");
        goto out;
    }
    reel_progress pg;
    reel_progress_start(&pg, "simulating", "users", s->n_users);
    uint32_t reserve_at = p.n_blocks / 20;
    for (uint32_t k = 0; k < p.n_blocks; k++) {
        struct block *blk = &p.blocks[k];
        pthread_mutex_lock(&p.mu);
        while (!blk->done)
            pthread_cond_wait(&p.cv_done, &p.mu);
        pthread_mutex_unlock(&p.mu);
        uint32_t users_done = (k + 1) * BLOCK;
        if (users_done > s->n_users)
            users_done = s->n_users;
        if (k == reserve_at) {
            /* Users are independent draws, so the first few percent tell
             * the total within a few percent: size the builder once
             * instead of letting it double. */
            double per_user = (double)(st->n_events + blk->n) / users_done;
            reel_dsbuild_reserve_events(
                b, (uint64_t)(1.08 * per_user * (s->n_users - users_done)) +
                       blk->n);
        }
        rc = consume(b, blk, st, d);
        free(blk->ev);
        blk->ev = NULL;
        pthread_mutex_lock(&p.mu);
        p.consumed = k + 1;
        if (rc)
            p.stop = 1;
        pthread_cond_broadcast(&p.cv_work);
        pthread_mutex_unlock(&p.mu);
        if (rc)
            break;
        reel_progress_set(&pg, users_done);
    }
    reel_progress_finish(&pg);
out:
    for (int i = 0; i < n_th; i++)
        pthread_join(th[i], NULL);
    for (uint32_t k = 0; k < p.n_blocks; k++)
        free(p.blocks[k].ev);
    free(p.blocks);
    free(th);
    pthread_mutex_destroy(&p.mu);
    pthread_cond_destroy(&p.cv_work);
    pthread_cond_destroy(&p.cv_done);
    return rc;
}

/* ============================================================ catalogue */

static void make_title(reel_rng *r, int type, uint32_t cat, char *buf,
                       size_t size)
{
    switch (type) {
    case T_MOVIE:
        switch (reel_rng_below(r, 5)) {
        case 0:
            snprintf(buf, size, "The %s %s", PICK(r, adjs), PICK(r, nouns));
            break;
        case 1:
            snprintf(buf, size, "%s of %s", PICK(r, nouns), PICK(r, places));
            break;
        case 2:
            snprintf(buf, size, "%s %s", PICK(r, adjs), PICK(r, nouns));
            break;
        case 3:
            snprintf(buf, size, "A %s in %s", PICK(r, nouns), PICK(r, places));
            break;
        default:
            snprintf(buf, size, "The %s and the %s", PICK(r, nouns),
                     PICK(r, nouns));
        }
        break;
    case T_EPISODE: {
        const char *a = PICK(r, adjs), *n = PICK(r, nouns);
        unsigned season = 1 + (unsigned)reel_rng_below(r, 8);
        unsigned ep = 1 + (unsigned)reel_rng_below(r, 12);
        snprintf(buf, size, "%s %s S%uE%u", a, n, season, ep);
        break;
    }
    case T_SHORT:
        switch (reel_rng_below(r, 3)) {
        case 0:
            snprintf(buf, size, "%s %s %s", PICK(r, adjs), PICK(r, nouns),
                     PICK(r, hooks));
            break;
        case 1:
            snprintf(buf, size, "Top %u %s moments",
                     3 + (unsigned)reel_rng_below(r, 8), cat_names[cat]);
            break;
        default:
            snprintf(buf, size, "%s in %s #shorts", PICK(r, nouns),
                     PICK(r, places));
        }
        break;
    default:
        if (cat == CAT_SPORTS) {
            /* Two different places: the second is drawn from the others. */
            uint64_t n = COUNT(places), i = reel_rng_below(r, n);
            uint64_t j = (i + 1 + reel_rng_below(r, n - 1)) % n;
            snprintf(buf, size, "LIVE: %s vs %s", places[i], places[j]);
        } else if (cat == CAT_NEWS) {
            snprintf(buf, size, "LIVE: %s Evening News", PICK(r, places));
        } else if (cat == CAT_MUSIC) {
            snprintf(buf, size, "LIVE: %s %s in Concert", PICK(r, adjs),
                     PICK(r, nouns));
        } else {
            snprintf(buf, size, "LIVE: %s %s Night", PICK(r, adjs),
                     PICK(r, nouns));
        }
    }
}

/* Seconds, rounded to whole seconds, by type (docs/synth.md). */
static double make_duration(reel_rng *r, int type)
{
    double x, lo, hi;
    switch (type) {
    case T_MOVIE:
        x = 105 * 60 * exp(0.2 * reel_rng_normal(r));
        lo = 60 * 60, hi = 210 * 60;
        break;
    case T_EPISODE:
        x = (reel_rng_uniform(r) < 0.45 ? 22 + 3 * reel_rng_normal(r)
                                        : 45 + 8 * reel_rng_normal(r)) *
            60;
        lo = 10 * 60, hi = 75 * 60;
        break;
    case T_SHORT:
        x = 35 * exp(0.6 * reel_rng_normal(r));
        lo = 5, hi = 180;
        break;
    default:
        x = 2 * 3600 * exp(0.4 * reel_rng_normal(r));
        lo = 20 * 60, hi = 6 * 3600;
    }
    x = x < lo ? lo : x > hi ? hi : x;
    return floor(x + 0.5);
}

/* Arrays of an in-memory truth, freed by reel_truth_close. */
static void *talloc(reel_truth *t, size_t n, size_t size)
{
    assert(t->n_mem < (int)COUNT(t->mem));
    void *p = reel_xcalloc(n ? n : 1, size);
    t->mem[t->n_mem++] = p;
    return p;
}

static int make_catalogue(struct sim *s, reel_dsbuild *b, reel_diag *d)
{
    reel_truth *t = s->t;
    uint32_t nv = s->n_videos;
    reel_rng r;
    reel_rng_seed2(&r, s->seed, STREAM_CATALOGUE);
    float *quality = talloc(t, nv, sizeof(float));
    float *style = talloc(t, (size_t)nv * DIM, sizeof(float));
    float *dur = talloc(t, nv, sizeof(float));
    float *pop = talloc(t, nv, sizeof(float));
    uint8_t *lang = talloc(t, nv, 1), *type = talloc(t, nv, 1);
    uint32_t *cat_off = talloc(t, (size_t)nv + 1, sizeof(uint32_t));
    uint8_t *cat = talloc(t, (size_t)nv * MAX_VCATS, 1);
    t->v_quality = quality, t->v_style = style, t->v_dur = dur;
    t->v_pop = pop, t->v_lang = lang, t->v_type = type;
    t->v_cat_off = cat_off, t->v_cat = cat;
    s->pub = reel_xmalloc((size_t)nv * sizeof *s->pub);

    /* Popularity is Zipf(1) over a random ranking; quality leans on it
     * (popular videos tend to be good) with correlation 0.4. */
    uint32_t *rank = reel_xmalloc((size_t)nv * sizeof *rank);
    for (uint32_t v = 0; v < nv; v++)
        rank[v] = v;
    reel_rng_shuffle(&r, rank, nv, sizeof *rank);
    double mean = 0.0, m2 = 0.0;
    for (uint32_t k = 1; k <= nv; k++)
        mean += log((double)k);
    mean /= nv;
    for (uint32_t k = 1; k <= nv; k++)
        m2 += (log((double)k) - mean) * (log((double)k) - mean);
    double sd = nv > 1 ? sqrt(m2 / nv) : 1.0;

    reel_progress pg;
    reel_progress_start(&pg, "catalogue", "videos", nv);
    static const uint32_t live_cats[] = {CAT_SPORTS, CAT_NEWS, CAT_MUSIC};
    static const double live_w[] = {4, 3, 2};
    static const double extra_w[] = {.45, .35, .20};
    double start = s->start, span = (double)s->days * DAY;
    uint32_t n_cat = 0;
    int rc = 0;
    for (uint32_t v = 0; v < nv; v++) {
        int ty = (int)pick_weighted(&r, type_weight, N_TYPES);
        uint32_t cats[MAX_VCATS], nc = 1;
        if (ty == T_LIVE && reel_rng_uniform(&r) < 0.9)
            cats[0] = live_cats[pick_weighted(&r, live_w, 3)];
        else
            cats[0] = pick_weighted(&r, cat_weight, N_CATS);
        uint32_t extra = ty == T_SHORT ? reel_rng_uniform(&r) < 0.2
                                       : pick_weighted(&r, extra_w, 3);
        for (uint32_t k = 0; k < 8 && nc < 1 + extra; k++) {
            uint32_t c = pick_weighted(&r, cat_weight, N_CATS);
            if (!contains(cats, nc, c))
                cats[nc++] = c;
        }
        uint32_t lg = pick_weighted(&r, lang_weight, N_LANGS);
        double du = make_duration(&r, ty);
        double before = ty == T_LIVE ? 0.3 : 0.8, pub;
        if (reel_rng_uniform(&r) < before) {
            double u = reel_rng_uniform(&r);
            pub = start - DAY * (1.0 + 3650.0 * u * u * u);
        } else {
            pub = start + span * reel_rng_uniform(&r);
        }
        double z = (mean - log((double)rank[v] + 1.0)) / sd;
        quality[v] = (float)(0.4 * z + 0.9165 * reel_rng_normal(&r));
        pop[v] = (float)(1.0 / ((double)rank[v] + 1.0));
        random_unit(&r, style + (size_t)v * DIM, DIM);
        char title[160], id[24];
        make_title(&r, ty, cats[0], title, sizeof title);
        const char *tags[3];
        uint32_t n_tags = (uint32_t)reel_rng_below(&r, 4), nt = 0;
        for (uint32_t k = 0; k < n_tags; k++) {
            const char *tg = PICK(&r, tag_names);
            int dup = 0;
            for (uint32_t j = 0; j < nt; j++)
                dup |= tags[j] == tg;
            if (!dup)
                tags[nt++] = tg;
        }
        const char *cat_str[MAX_VCATS];
        for (uint32_t k = 0; k < nc; k++) {
            cat_str[k] = cat_names[cats[k]];
            cat[n_cat++] = (uint8_t)cats[k];
        }
        cat_off[v + 1] = n_cat;
        lang[v] = (uint8_t)lg;
        type[v] = (uint8_t)ty;
        dur[v] = (float)du;
        s->pub[v] = pub;
        snprintf(id, sizeof id, "v%u", v);
        reel_video_rec rec = reel_video_rec_empty();
        rec.id = id;
        rec.title = title;
        rec.language = lang_names[lg];
        rec.type = type_names[ty];
        rec.categories = cat_str;
        rec.n_categories = nc;
        rec.tags = tags;
        rec.n_tags = nt;
        rec.duration_s = du;
        rec.published_at = pub;
        uint32_t idx;
        if ((rc = reel_dsbuild_add_video(b, &rec, &idx, d)))
            break;
        assert(idx == v);
        if ((v & 4095) == 0)
            reel_progress_set(&pg, v);
    }
    reel_progress_finish(&pg);
    free(rank);
    if (rc)
        return rc;

    double *w = reel_xmalloc((size_t)nv * sizeof *w);
    uint32_t *ids = reel_xmalloc((size_t)nv * sizeof *ids);
    for (uint32_t v = 0; v < nv; v++)
        w[v] = pop[v];
    vsampler_build(&s->pop, w, NULL, nv, s->pub, s->start);
    /* Group the videos by (primary category, language), keeping video
     * order inside a group, with a counting sort. */
    uint32_t start_cl[N_CATS * N_LANGS + 1] = {0};
    for (uint32_t v = 0; v < nv; v++)
        start_cl[cat[cat_off[v]] * N_LANGS + lang[v] + 1]++;
    for (uint32_t k = 0; k < N_CATS * N_LANGS; k++)
        start_cl[k + 1] += start_cl[k];
    uint32_t fill[N_CATS * N_LANGS];
    memcpy(fill, start_cl, sizeof fill);
    for (uint32_t v = 0; v < nv; v++)
        ids[fill[cat[cat_off[v]] * N_LANGS + lang[v]]++] = v;
    for (uint32_t k = 0; k < N_CATS * N_LANGS; k++) {
        uint32_t a = start_cl[k], n = start_cl[k + 1] - a;
        double mass = 0.0;
        for (uint32_t i = 0; i < n; i++) {
            w[i] = pop[ids[a + i]];
            mass += w[i];
        }
        s->mass_cl[k] = mass;
        s->mass_c[k / N_LANGS] += mass;
        if (n)
            vsampler_build(&s->by_cl[k], w, ids + a, n, s->pub, s->start);
    }
    free(w);
    free(ids);
    s->fresh = reel_xmalloc((size_t)nv * sizeof *s->fresh);
    s->fresh_pub = reel_xmalloc((size_t)nv * sizeof *s->fresh_pub);
    reel_sort_perm_f64(s->pub, nv, s->fresh);
    for (uint32_t k = 0; k < nv; k++)
        s->fresh_pub[k] = s->pub[s->fresh[k]];
    return 0;
}

/* ================================================================ users */

/* Session-level constants (docs/synth.md): mean sessions per user-day and
 * the spread of log activity. */
#define ACTIVITY_MEAN 0.6
#define ACTIVITY_SIGMA 1.0
#define ACTIVITY_MAX 24.0
/* Events per list (impressions plus what follows them) as measured, to
 * guess the size of a run before simulating it. */
#define EVENTS_PER_LIST 12.5
/* Peak memory per event (mostly the dataset builder's), measured at 50M. */
#define BYTES_PER_EVENT 85.0

static int make_users(struct sim *s, reel_dsbuild *b, double *sessions,
                      reel_diag *d)
{
    reel_truth *t = s->t;
    uint32_t nu = s->n_users;
    float *ucat = talloc(t, (size_t)nu * N_CATS, sizeof(float));
    float *ulang = talloc(t, (size_t)nu * N_LANGS, sizeof(float));
    float *ustyle = talloc(t, (size_t)nu * DIM, sizeof(float));
    float *bias = talloc(t, nu, sizeof(float));
    float *act = talloc(t, nu, sizeof(float));
    t->u_cat = ucat, t->u_lang = ulang, t->u_style = ustyle;
    t->u_bias = bias, t->u_act = act;
    s->country = reel_xmalloc(nu ? nu : 1);
    s->signup = reel_xmalloc((size_t)(nu ? nu : 1) * sizeof *s->signup);
    double cw[N_COUNTRIES];
    for (uint32_t k = 0; k < N_COUNTRIES; k++)
        cw[k] = countries[k].weight;
    double mu = log(ACTIVITY_MEAN) - 0.5 * ACTIVITY_SIGMA * ACTIVITY_SIGMA;
    double span = (double)s->days * DAY, total = 0.0;
    for (uint32_t u = 0; u < nu; u++) {
        reel_rng r;
        reel_rng_seed2(&r, s->seed, STREAM_PROFILE | u);
        double a = 13.0 + floor(7.0 * reel_rng_gamma(&r, 3.0));
        int age = a > 90.0 ? 90 : (int)a;
        double g = reel_rng_uniform(&r);
        const char *gender = g < .49   ? genders[0]
                             : g < .97 ? genders[1]
                             : g < .98 ? genders[2]
                                       : NULL;
        uint32_t cn = pick_weighted(&r, cw, N_COUNTRIES);
        const struct country *cc = &countries[cn];
        double signup;
        if (reel_rng_uniform(&r) < 0.85) {
            double x = reel_rng_uniform(&r);
            signup = s->start - 1.0 - 5 * 365 * DAY * x * x;
        } else {
            signup = s->start + span * reel_rng_uniform(&r);
        }

        /* Tastes: a sparse Dirichlet over categories, a little of the
         * catalogue's mix, and age leanings; scaled so the favourite is 1. */
        double th[N_CATS], mx = 0.0;
        reel_rng_dirichlet(&r, 0.25, th, N_CATS);
        for (uint32_t c = 0; c < N_CATS; c++)
            th[c] = 0.85 * th[c] + 0.15 * cat_weight[c];
        if (age < 18) {
            th[CAT_ANIMATION] *= 3, th[CAT_FAMILY] *= 3;
        } else if (age > 50) {
            th[CAT_NEWS] *= 2, th[CAT_DOCUMENTARY] *= 2, th[CAT_HISTORY] *= 2;
        }
        for (uint32_t c = 0; c < N_CATS; c++)
            mx = th[c] > mx ? th[c] : mx;
        for (uint32_t c = 0; c < N_CATS; c++)
            ucat[(size_t)u * N_CATS + c] = (float)(th[c] / mx);
        /* Languages: native 1, English by country, the rest mostly near 0
         * with the occasional fan (anime, k-drama). */
        float *ul = ulang + (size_t)u * N_LANGS;
        for (uint32_t l = 0; l < N_LANGS; l++) {
            double x = reel_rng_uniform(&r);
            ul[l] = (float)(0.5 * x * x * x * x);
        }
        if (cc->lang != LANG_EN) {
            double e = cc->english * (0.6 + 0.6 * reel_rng_uniform(&r));
            ul[LANG_EN] = (float)(e > 1.0 ? 1.0 : e);
        }
        ul[cc->lang] = 1.0f;
        random_unit(&r, ustyle + (size_t)u * DIM, DIM);
        bias[u] = (float)(0.4 * reel_rng_normal(&r));
        double ac = exp(mu + ACTIVITY_SIGMA * reel_rng_normal(&r));
        act[u] = (float)(ac > ACTIVITY_MAX ? ACTIVITY_MAX : ac);
        s->country[u] = (uint8_t)cn;
        s->signup[u] = signup;
        double from = signup > s->start ? signup : s->start;
        total += act[u] * (s->start + span - from) / DAY;

        char id[24];
        snprintf(id, sizeof id, "u%u", u);
        reel_user_rec rec = reel_user_rec_empty();
        rec.id = id;
        rec.age = age;
        rec.gender = gender;
        rec.country = cc->code;
        rec.signed_up_at = signup;
        uint32_t idx;
        int rc = reel_dsbuild_add_user(b, &rec, &idx, d);
        if (rc)
            return rc;
        assert(idx == u);
    }
    *sessions = total;
    return reel_alias_build(&s->hour, hour_weight, 24);
}

/* ================================================================ truth */

static int put_names(reel_secfile_writer *w, const char *name,
                     const char *const *names, uint32_t n)
{
    uint64_t offs[256];
    char bytes[4096];
    uint64_t len = 0;
    assert(n < COUNT(offs));
    offs[0] = 0;
    for (uint32_t i = 0; i < n; i++) {
        size_t l = strlen(names[i]) + 1;
        assert(len + l <= sizeof bytes);
        memcpy(bytes + len, names[i], l);
        len += l;
        offs[i + 1] = len;
    }
    char off_name[40];
    snprintf(off_name, sizeof off_name, "%s.off", name);
    int rc = reel_secfile_writer_add(w, off_name, REEL_SEC_U64, offs,
                                     (uint64_t)n + 1);
    return rc ? rc
              : reel_secfile_writer_add(w, name, REEL_SEC_BYTES, bytes, len);
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = reel_xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Writes DIR/truth.reel; adds the bytes of each section to pg. */
static int truth_write(const reel_truth *t, const char *dir, reel_progress *pg,
                       reel_diag *d)
{
    char *path = join(dir, REEL_TRUTH_FILE);
    reel_secfile_writer *w = NULL;
    int rc = reel_secfile_writer_open(path, TRUTH_KIND, &w, d);
    free(path);
    if (rc)
        return rc;
    uint64_t nu = t->n_users, nv = t->n_videos;
    uint64_t shape[8] = {TRUTH_VERSION, nu,      nv,     t->n_cats,
                         t->n_langs,    N_TYPES, t->dim, t->seed};
    const struct {
        const char *name;
        enum reel_sectype type;
        const void *data;
        uint64_t count;
    } secs[] = {
        {"shape", REEL_SEC_U64, shape, 8},
        {"params", REEL_SEC_F64, t->p, P__COUNT},
        {"user.cat", REEL_SEC_F32, t->u_cat, nu * t->n_cats},
        {"user.lang", REEL_SEC_F32, t->u_lang, nu * t->n_langs},
        {"user.style", REEL_SEC_F32, t->u_style, nu * t->dim},
        {"user.bias", REEL_SEC_F32, t->u_bias, nu},
        {"user.activity", REEL_SEC_F32, t->u_act, nu},
        {"video.quality", REEL_SEC_F32, t->v_quality, nv},
        {"video.style", REEL_SEC_F32, t->v_style, nv * t->dim},
        {"video.duration", REEL_SEC_F32, t->v_dur, nv},
        {"video.popularity", REEL_SEC_F32, t->v_pop, nv},
        {"video.language", REEL_SEC_U8, t->v_lang, nv},
        {"video.type", REEL_SEC_U8, t->v_type, nv},
        {"video.cat.off", REEL_SEC_U32, t->v_cat_off, nv + 1},
        {"video.cat", REEL_SEC_U8, t->v_cat, t->v_cat_off[nv]},
    };
    if ((rc = put_names(w, "dict.category", cat_names, N_CATS)) ||
        (rc = put_names(w, "dict.language", lang_names, N_LANGS)) ||
        (rc = put_names(w, "dict.vtype", type_names, N_TYPES)))
        goto fail;
    for (size_t i = 0; i < COUNT(secs); i++) {
        rc = reel_secfile_writer_add(w, secs[i].name, secs[i].type,
                                     secs[i].data, secs[i].count);
        if (rc)
            goto fail;
        reel_progress_add(pg, secs[i].count * reel_sectype_size(secs[i].type));
        reel_progress_tick(pg);
    }
    return reel_secfile_writer_commit(w, d);
fail:
    reel_secfile_writer_free(w);
    return reel_diag_fail(d, rc, "cannot write %s/%s: %s", dir, REEL_TRUTH_FILE,
                          reel_strerror(rc));
}

static int need(const reel_truth *t, const char *name, enum reel_sectype type,
                uint64_t count, const void **out, reel_diag *d)
{
    const reel_section *s;
    int rc = reel_secfile_need(t->f, name, type, count, &s, d);
    if (rc == 0)
        *out = s->data;
    return rc;
}

static int check_f32(const char *name, const float *x, uint64_t n, double lo,
                     double hi, reel_diag *d)
{
    for (uint64_t i = 0; i < n; i++)
        if (!(x[i] >= lo && x[i] <= hi))
            return reel_diag_fail(d, REEL_ECORRUPT,
                                  "section '%s': value %g at %llu is outside "
                                  "[%g, %g]",
                                  name, (double)x[i], (unsigned long long)i, lo,
                                  hi);
    return 0;
}

static int check_u8(const char *name, const uint8_t *x, uint64_t n,
                    uint32_t limit, reel_diag *d)
{
    for (uint64_t i = 0; i < n; i++)
        if (x[i] >= limit)
            return reel_diag_fail(d, REEL_ECORRUPT,
                                  "section '%s': id %u at %llu is not below "
                                  "%u",
                                  name, x[i], (unsigned long long)i, limit);
    return 0;
}

static int check_names(const reel_truth *t, const char *name, uint64_t n,
                       reel_diag *d)
{
    char off_name[40];
    snprintf(off_name, sizeof off_name, "%s.off", name);
    const reel_section *so, *sb;
    int rc;
    if ((rc = reel_secfile_need(t->f, off_name, REEL_SEC_U64, n + 1, &so, d)) ||
        (rc =
             reel_secfile_need(t->f, name, REEL_SEC_BYTES, UINT64_MAX, &sb, d)))
        return rc;
    const uint64_t *off = so->data;
    const char *bytes = sb->data;
    if (off[0] != 0 || off[n] != sb->length)
        return reel_diag_fail(d, REEL_ECORRUPT, "section '%s' is inconsistent",
                              name);
    for (uint64_t i = 0; i < n; i++)
        if (off[i + 1] <= off[i] || off[i + 1] > sb->length ||
            bytes[off[i + 1] - 1] != '\0')
            return reel_diag_fail(d, REEL_ECORRUPT,
                                  "section '%s': name %llu is malformed", name,
                                  (unsigned long long)i);
    return 0;
}

static int truth_load(reel_truth *t, reel_diag *d)
{
    const uint64_t *shape;
    const double *par;
    int rc;
    if ((rc = need(t, "shape", REEL_SEC_U64, 8, (const void **)&shape, d)))
        return rc;
    if (shape[0] != TRUTH_VERSION)
        return reel_diag_fail(d, REEL_EVERSION,
                              "truth version %llu (this reel reads %u)",
                              (unsigned long long)shape[0], TRUTH_VERSION);
    if (shape[1] >= REEL_NONE || shape[2] >= REEL_NONE || shape[3] < 1 ||
        shape[3] > MAX_TRUTH_CATS || shape[4] < 1 ||
        shape[4] > MAX_TRUTH_LANGS || shape[5] != N_TYPES || shape[6] < 1 ||
        shape[6] > MAX_TRUTH_DIM)
        return reel_diag_fail(d, REEL_ECORRUPT,
                              "section 'shape' holds impossible sizes");
    t->n_users = (uint32_t)shape[1];
    t->n_videos = (uint32_t)shape[2];
    t->n_cats = (uint32_t)shape[3];
    t->n_langs = (uint32_t)shape[4];
    t->dim = (uint32_t)shape[6];
    t->seed = shape[7];
    if ((rc =
             need(t, "params", REEL_SEC_F64, P__COUNT, (const void **)&par, d)))
        return rc;
    for (int i = 0; i < P__COUNT; i++) {
        if (!(par[i] >= params[i].lo && par[i] <= params[i].hi))
            return reel_diag_fail(
                d, REEL_ECORRUPT, "parameter %s = %g is outside [%g, %g]",
                params[i].name, par[i], params[i].lo, params[i].hi);
        t->p[i] = par[i];
    }
    if (t->p[P_LIST_SIZE] != floor(t->p[P_LIST_SIZE]) ||
        t->p[P_MIX_POPULAR] + t->p[P_MIX_TASTE] > 1.0)
        return reel_diag_fail(d, REEL_ECORRUPT,
                              "parameters list_size or mix_* are malformed");
    truth_derive(t);
    uint64_t nu = t->n_users, nv = t->n_videos;
    if ((rc = check_names(t, "dict.category", t->n_cats, d)) ||
        (rc = check_names(t, "dict.language", t->n_langs, d)) ||
        (rc = check_names(t, "dict.vtype", N_TYPES, d)) ||
        (rc = need(t, "user.cat", REEL_SEC_F32, nu * t->n_cats,
                   (const void **)&t->u_cat, d)) ||
        (rc = need(t, "user.lang", REEL_SEC_F32, nu * t->n_langs,
                   (const void **)&t->u_lang, d)) ||
        (rc = need(t, "user.style", REEL_SEC_F32, nu * t->dim,
                   (const void **)&t->u_style, d)) ||
        (rc = need(t, "user.bias", REEL_SEC_F32, nu, (const void **)&t->u_bias,
                   d)) ||
        (rc = need(t, "user.activity", REEL_SEC_F32, nu,
                   (const void **)&t->u_act, d)) ||
        (rc = need(t, "video.quality", REEL_SEC_F32, nv,
                   (const void **)&t->v_quality, d)) ||
        (rc = need(t, "video.style", REEL_SEC_F32, nv * t->dim,
                   (const void **)&t->v_style, d)) ||
        (rc = need(t, "video.duration", REEL_SEC_F32, nv,
                   (const void **)&t->v_dur, d)) ||
        (rc = need(t, "video.popularity", REEL_SEC_F32, nv,
                   (const void **)&t->v_pop, d)) ||
        (rc = need(t, "video.language", REEL_SEC_U8, nv,
                   (const void **)&t->v_lang, d)) ||
        (rc = need(t, "video.type", REEL_SEC_U8, nv, (const void **)&t->v_type,
                   d)) ||
        (rc = need(t, "video.cat.off", REEL_SEC_U32, nv + 1,
                   (const void **)&t->v_cat_off, d)))
        return rc;
    const uint32_t *off = t->v_cat_off;
    if (off[0] != 0)
        return reel_diag_fail(d, REEL_ECORRUPT,
                              "section 'video.cat.off' does not start at 0");
    for (uint64_t v = 0; v < nv; v++)
        if (off[v + 1] <= off[v] || off[v + 1] - off[v] > MAX_TRUTH_CATS)
            return reel_diag_fail(d, REEL_ECORRUPT,
                                  "section 'video.cat.off': video %llu has "
                                  "%d categories",
                                  (unsigned long long)v,
                                  (int)(off[v + 1] - off[v]));
    if ((rc = need(t, "video.cat", REEL_SEC_U8, off[nv],
                   (const void **)&t->v_cat, d)) ||
        (rc = check_u8("video.cat", t->v_cat, off[nv], t->n_cats, d)) ||
        (rc = check_u8("video.language", t->v_lang, nv, t->n_langs, d)) ||
        (rc = check_u8("video.type", t->v_type, nv, N_TYPES, d)) ||
        (rc = check_f32("user.cat", t->u_cat, nu * t->n_cats, 0, 1, d)) ||
        (rc = check_f32("user.lang", t->u_lang, nu * t->n_langs, 0, 1, d)) ||
        (rc = check_f32("user.style", t->u_style, nu * t->dim, -1, 1, d)) ||
        (rc = check_f32("user.bias", t->u_bias, nu, -50, 50, d)) ||
        (rc = check_f32("user.activity", t->u_act, nu, 0, 1000, d)) ||
        (rc = check_f32("video.quality", t->v_quality, nv, -50, 50, d)) ||
        (rc = check_f32("video.style", t->v_style, nv * t->dim, -1, 1, d)) ||
        (rc = check_f32("video.duration", t->v_dur, nv, 0, 1e9, d)) ||
        (rc = check_f32("video.popularity", t->v_pop, nv, 0, 1e30, d)))
        return rc;
    return 0;
}

int reel_truth_open(const char *dir, reel_truth **out, reel_diag *d)
{
    *out = NULL;
    char *path = join(dir, REEL_TRUTH_FILE);
    reel_truth *t = reel_xcalloc(1, sizeof *t);
    int rc = reel_secfile_open(path, TRUTH_KIND, 0, &t->f, d);
    if (rc == 0 && (rc = truth_load(t, d)) && d) {
        char msg[sizeof d->msg];
        memcpy(msg, d->msg, sizeof msg);
        reel_diag_fail(d, rc, "%s: %s", path, msg);
    }
    free(path);
    if (rc) {
        reel_truth_close(t);
        return rc;
    }
    *out = t;
    return 0;
}

void reel_truth_close(reel_truth *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n_mem; i++)
        free(t->mem[i]);
    reel_secfile_close(t->f);
    free(t);
}

int reel_truth_check_dataset(const reel_truth *t, const reel_dataset *ds,
                             reel_diag *d)
{
    const reel_users *us = reel_dataset_users(ds);
    const reel_videos *vs = reel_dataset_videos(ds);
    if (us->n != t->n_users || vs->n != t->n_videos)
        return reel_diag_fail(d, REEL_ECORRUPT,
                              "the truth describes %u users and %u videos, "
                              "the dataset has %u and %u",
                              t->n_users, t->n_videos, us->n, vs->n);
    for (uint32_t v = 0; v < vs->n; v++)
        if (memcmp(&vs->duration_s[v], &t->v_dur[v], sizeof(float)))
            return reel_diag_fail(d, REEL_ECORRUPT,
                                  "video %u lasts %g s in the dataset but %g s "
                                  "in the truth",
                                  v, (double)vs->duration_s[v],
                                  (double)t->v_dur[v]);
    return 0;
}

/* ============================================================== the run */

reel_synth_opts reel_synth_opts_default(void)
{
    return (reel_synth_opts){.n_users = 1000,
                             .n_videos = 2000,
                             .days = 30,
                             .seed = 42,
                             .start_ts = reel_clock_from_civil(2024, 1, 1),
                             .threads = 0};
}

static int check_opts(const reel_synth_opts *o, reel_diag *d)
{
    if (o->n_users < 1 || o->n_users > REEL_SYNTH_MAX_USERS)
        return reel_diag_fail(d, REEL_ERANGE, "users must be in 1..%d",
                              REEL_SYNTH_MAX_USERS);
    if (o->n_videos < 1 || o->n_videos > REEL_SYNTH_MAX_VIDEOS)
        return reel_diag_fail(d, REEL_ERANGE, "videos must be in 1..%d",
                              REEL_SYNTH_MAX_VIDEOS);
    if (o->days < 1 || o->days > REEL_SYNTH_MAX_DAYS)
        return reel_diag_fail(d, REEL_ERANGE, "days must be in 1..%d",
                              REEL_SYNTH_MAX_DAYS);
    if ((uint64_t)o->n_users * o->days > REEL_SYNTH_MAX_USER_DAYS)
        return reel_diag_fail(d, REEL_ERANGE,
                              "users x days must be at most %llu (the "
                              "dataset holds fewer than 2^32 events)",
                              REEL_SYNTH_MAX_USER_DAYS);
    if (o->threads < 0 || o->threads > REEL_SYNTH_MAX_THREADS)
        return reel_diag_fail(d, REEL_ERANGE, "threads must be in 0..%d",
                              REEL_SYNTH_MAX_THREADS);
    /* 1900-01-01 .. 2100-01-01 */
    if (!(o->start_ts >= -2208988800.0 && o->start_ts <= 4102444800.0))
        return reel_diag_fail(d, REEL_ERANGE,
                              "the start must be between 1900 and 2100");
    return 0;
}

static void sim_free(struct sim *s)
{
    free(s->pub);
    vsampler_free(&s->pop);
    for (int k = 0; k < N_CATS * N_LANGS; k++)
        vsampler_free(&s->by_cl[k]);
    free(s->fresh);
    free(s->fresh_pub);
    free(s->country);
    free(s->signup);
    reel_alias_free(&s->hour);
    reel_truth_close(s->t);
}

int reel_synth_run(const reel_synth_opts *o, const char *dir, reel_diag *d)
{
    return reel_synth_run_stats(o, dir, NULL, d);
}

int reel_synth_run_stats(const reel_synth_opts *o, const char *dir,
                         reel_synth_stats *stats, reel_diag *d)
{
    reel_synth_stats st = {0};
    int rc = check_opts(o, d);
    if (rc)
        return rc;
    /* Fail on an unusable directory before minutes of simulation. */
    if (mkdir(dir, 0755) && errno != EEXIST)
        return reel_diag_fail(d, REEL_EIO, "cannot create %s: %s", dir,
                              strerror(errno));
    if (access(dir, W_OK))
        return reel_diag_fail(d, REEL_EIO, "cannot write in %s: %s", dir,
                              strerror(errno));
    int threads = o->threads;
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n < 1 ? 1 : n > 64 ? 64 : (int)n;
    }

    struct sim s = {.seed = o->seed,
                    .n_users = o->n_users,
                    .n_videos = o->n_videos,
                    .days = o->days,
                    .start = o->start_ts,
                    .end = o->start_ts + (double)o->days * DAY};
    reel_truth *t = s.t = reel_xcalloc(1, sizeof *t);
    t->n_users = o->n_users, t->n_videos = o->n_videos;
    t->n_cats = N_CATS, t->n_langs = N_LANGS, t->dim = DIM;
    t->seed = o->seed;
    for (int i = 0; i < P__COUNT; i++)
        t->p[i] = params[i].def;
    truth_derive(t);

    reel_dsbuild *b;
    reel_dsbuild_new(&b);
    int y, m, dd;
    reel_clock_to_civil(o->start_ts, &y, &m, &dd);
    char meta[256];
    snprintf(meta, sizeof meta,
             "{\"source\": \"synth\", \"model\": %u, \"seed\": %llu, "
             "\"users\": %u, \"videos\": %u, \"days\": %u, "
             "\"start\": \"%04d-%02d-%02d\"}",
             TRUTH_VERSION, (unsigned long long)o->seed, o->n_users,
             o->n_videos, o->days, y, m, dd);
    reel_dsbuild_set_meta(b, meta);

    double sessions = 0, t0 = reel_clock_mono();
    if ((rc = make_catalogue(&s, b, d)))
        goto out;
    double t1 = reel_clock_mono();
    if ((rc = make_users(&s, b, &sessions, d)))
        goto out;
    double lists = sessions / (1.0 - t->p[P_SESSION_CONTINUE]);
    uint64_t guess = (uint64_t)(EVENTS_PER_LIST * lists);
    /* Refuse a run that cannot fit rather than abort on allocation after
     * minutes of work: the builder needs ~85 bytes per event at its peak. */
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    double need = (double)guess * BYTES_PER_EVENT, have = 0;
    if (pages > 0 && page > 0)
        have = (double)pages * (double)page;
    if (have > 0 && need > have) {
        rc = reel_diag_fail(d, REEL_ETOOBIG,
                            "about %.0f million events need about %.1f GiB "
                            "of memory, more than this machine's %.1f GiB",
                            guess / 1e6, need / (1 << 30), have / (1 << 30));
        goto out;
    }
    double t2 = reel_clock_mono();
    if ((rc = simulate(&s, threads, b, &st, d)))
        goto out;
    double t3 = reel_clock_mono();
    reel_log_debug("synth: catalogue %.1f s, users %.1f s, simulation %.1f s "
                   "(%d threads), %llu events (model guessed %llu)",
                   t1 - t0, t2 - t1, t3 - t2, threads,
                   (unsigned long long)st.n_events, (unsigned long long)guess);

    /* The old truth goes first, so a failure part way never leaves a
     * truth next to a dataset it did not generate. The dataset's writer
     * draws its own progress; the truth's counts bytes. */
    char *old = join(dir, REEL_TRUTH_FILE);
    if (unlink(old) && errno != ENOENT)
        rc = reel_diag_fail(d, REEL_EIO, "cannot replace %s: %s", old,
                            strerror(errno));
    free(old);
    if (rc == 0)
        rc = reel_dsbuild_write(b, dir, d);
    if (rc == 0) {
        uint64_t truth_bytes =
            (uint64_t)o->n_users * (N_CATS + N_LANGS + DIM + 2) * 4 +
            (uint64_t)o->n_videos * (DIM * 4 + 20);
        reel_progress pg;
        reel_progress_start(&pg, "writing truth", "bytes", truth_bytes);
        rc = truth_write(t, dir, &pg, d);
        reel_progress_finish(&pg);
    }
    reel_log_debug("synth: writing %.1f s", reel_clock_mono() - t3);
out:
    reel_dsbuild_free(b);
    sim_free(&s);
    if (rc == 0 && stats)
        *stats = st;
    return rc;
}
