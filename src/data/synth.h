/*
 * synth: a streaming-service simulator that writes a realistic dataset.
 *
 * A generative model (documented in docs/synth.md): users with
 * demographics and latent tastes over categories and languages; videos with
 * categories, languages, durations, types and power-law popularity;
 * sessions over days in which lists of videos are shown (impressions), some
 * are clicked and played, watched for a time that depends on the user's
 * affinity and the video's duration, skipped, liked or shared.
 *
 * The output is deterministic for a seed (whatever the thread count): each
 * user is simulated from its own random stream and the events are handed to
 * the dataset builder in user order. The ground truth (each user's true
 * tastes and activity, each video's latent attributes, and the model's
 * coefficients) is kept in DIR/truth.reel (docs/formats/truth.md). The
 * truth file *is* the model: the simulator decides every click, watch,
 * like and share with reel_truth_sample(), which later closed-loop
 * simulations call on an opened truth file to ask "what would this user
 * do with this video at this position".
 *
 * Ownership: reel_truth_open() maps the file and every getter reads from
 * the map until reel_truth_close(). Thread rules: reel_synth_run() starts
 * opts.threads worker threads itself and joins them before it returns; an
 * open reel_truth is read-only and may be shared by any number of threads
 * (each brings its own reel_rng to reel_truth_sample()).
 */
#ifndef REEL_DATA_SYNTH_H
#define REEL_DATA_SYNTH_H

#include <stdint.h>

#include "base/err.h"
#include "base/rng.h"
#include "data/dataset.h"

#define REEL_TRUTH_FILE "truth.reel"

/* Bounds reel_synth_run() enforces (REEL_ERANGE beyond them). The builder
 * holds fewer than 2^32 events and a user-day makes ~16 on average, hence
 * the bound on users x days. */
enum {
    REEL_SYNTH_MAX_USERS = 10000000,
    REEL_SYNTH_MAX_VIDEOS = 20000000,
    REEL_SYNTH_MAX_DAYS = 3660,
    REEL_SYNTH_MAX_THREADS = 256,
};
#define REEL_SYNTH_MAX_USER_DAYS 150000000ULL

typedef struct reel_synth_opts {
    uint32_t n_users;
    uint32_t n_videos;
    uint32_t days;
    uint64_t seed;
    double start_ts; /* Unix time of the first simulated day (00:00 UTC) */
    int threads;     /* 0: number of CPUs */
} reel_synth_opts;

/* Defaults: 1,000 users, 2,000 videos, 30 days, seed 42, start
 * 2024-01-01, threads 0. */
reel_synth_opts reel_synth_opts_default(void);

/* What a finished run produced (for the command's summary line). */
typedef struct reel_synth_stats {
    uint64_t n_events;
    uint64_t n_by_type[REEL_EV__COUNT];
    uint64_t n_lists; /* recommendation requests (lists shown) */
} reel_synth_stats;

/* Simulates and writes DIR/dataset.reel and DIR/truth.reel (DIR is created
 * when missing). Options out of the bounds above are REEL_ERANGE. Shows
 * progress on a terminal. */
int reel_synth_run(const reel_synth_opts *o, const char *dir, reel_diag *d);
/* The same, and fills *stats (which may be NULL) with what was written. */
int reel_synth_run_stats(const reel_synth_opts *o, const char *dir,
                         reel_synth_stats *stats, reel_diag *d);

/* ------------------------------------------------------------- truth */

typedef struct reel_truth reel_truth;

/* Opens DIR/truth.reel, checking every section's type and count against
 * the shape it declares and every value's range; a damaged or mismatched
 * file is REEL_ECORRUPT (or REEL_EVERSION) with the reason in d. */
int reel_truth_open(const char *dir, reel_truth **out, reel_diag *d);
void reel_truth_close(reel_truth *t);

/* Checks that the truth describes this dataset (same users, videos and
 * durations); REEL_ECORRUPT with the first difference in d otherwise. */
int reel_truth_check_dataset(const reel_truth *t, const reel_dataset *ds,
                             reel_diag *d);

uint32_t reel_truth_n_users(const reel_truth *t);
uint32_t reel_truth_n_videos(const reel_truth *t);
/* The seed the truth was generated with. */
uint64_t reel_truth_seed(const reel_truth *t);
/* The user's mean number of sessions per day. */
double reel_truth_activity(const reel_truth *t, uint32_t user);

/* The user's true affinity to the video in [0, 1] (taste match: language
 * x (categories, latent style)). Indexes are the dataset's. */
double reel_truth_affinity(const reel_truth *t, uint32_t user, uint32_t video);

/* The true probability that `user` clicks `video` when it is shown at list
 * position `pos` (0-based), indexes as in the dataset. */
double reel_truth_click_prob(const reel_truth *t, uint32_t user, uint32_t video,
                             uint32_t pos);

/* The expected fraction of the video watched once it plays, in (0, 1). */
double reel_truth_watch_frac(const reel_truth *t, uint32_t user,
                             uint32_t video);

/* What a user did with one shown video. */
typedef struct reel_truth_outcome {
    int click, play, skip, like, share;
    double watch_frac; /* 0 unless play */
    double watch_s;    /* watch_frac x duration, <= duration */
} reel_truth_outcome;

/* Draws the user's response to `video` shown at `pos`: a click with
 * probability reel_truth_click_prob(), then a play, a watch fraction from
 * a Beta around reel_truth_watch_frac(), a skip when it is short, a like
 * and a share. The simulator uses exactly this, so a closed-loop
 * simulation with the same rng stream sees the same behaviour. */
void reel_truth_sample(const reel_truth *t, uint32_t user, uint32_t video,
                       uint32_t pos, reel_rng *r, reel_truth_outcome *out);

#endif
