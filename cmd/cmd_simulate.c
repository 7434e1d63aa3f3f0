/*
 * reel simulate: the closed loop (docs/simulate.md). The synthetic users
 * of a `reel synth` directory ask a running `reel serve` for
 * recommendations, respond to each list as the ground truth says
 * (reel_truth_sample, the same draws the simulator made) and send the
 * events back, so each next list reflects what they just did.
 *
 * Time: a run lasts --minutes simulated minutes. In each minute user u
 * starts Poisson(lambda_u) sessions at uniform times, lambda_u = --rate x
 * activity_u / (mean activity of the simulated users): the truth's
 * heavy-tailed activity, scaled so that a user averages --rate sessions a
 * minute. A session is one list, then another with probability
 * SESSION_CONTINUE, each asked for once the previous list's events were
 * acknowledged. --speed paces session starts against the real clock.
 *
 * Determinism: every random draw comes from streams of --seed: the sample
 * of users, one schedule stream per simulated minute (every user's
 * sessions in it), one behaviour stream per user (their responses and
 * session lengths, in the order of their sessions). A user's sessions run
 * one at a time, in start order, whatever thread takes them, so the draws
 * depend only on the seed and on the lists the server answered.
 *
 * Threads: --concurrency workers, each with its own keep-alive
 * connection, take sessions from the current minute's schedule in time
 * order (skipping users with a session in flight); the main thread waits
 * for signals, draws progress and prints the summary.
 */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"
#include "base/progress.h"
#include "base/rng.h"
#include "cmd.h"
#include "data/dataset.h"
#include "data/synth.h"
#include "httpc.h"

static const char *const CMD = "simulate";

/* docs/synth.md, `session_continue`: the probability of another list in
 * the session. synth.h has no getter for the model's parameters, and
 * `reel synth` always writes this default. */
#define SESSION_CONTINUE 0.55
/* A session never asks for more lists than this (a guard, not a model
 * term: 0.55^64 is negligible). */
#define MAX_LISTS 64
/* Items read from one answer (the server caps k at 100). */
#define MAX_ITEMS 100
/* Stop when this many requests in a row failed: the server is down or
 * refuses everything (a missing token, say). */
#define MAX_FAILS_IN_A_ROW 25
/* Error messages printed during a run; later ones are only counted. */
#define MAX_PRINTED 5
/* Experiment arms tallied (32 experiments x 16 arms on the server). */
#define MAX_ARMS 512
/* Memory for the per-user counts of all arms together. */
#define USER_STATS_BYTES (512u << 20)

/* Random stream families (reel_rng_seed2's stream argument). */
#define STREAM_SAMPLE (1ull << 40)
#define STREAM_SCHEDULE (2ull << 40)
#define STREAM_BEHAVIOUR (3ull << 40)

struct opts {
    const char *server, *data, *token;
    uint64_t users;
    double minutes, speed, rate, timeout_s;
    uint64_t seed;
    uint32_t k, concurrency;
    int sample, json;
};

/* What the simulated users did, and what went wrong (one per worker,
 * summed at the end). */
struct tally {
    uint64_t sessions, requests, lists_empty, personalized, cold_start,
        other_source, impressions, clicks, plays, watches, skips, likes, shares,
        unknown_videos, events_sent, events_accepted, events_rejected;
    double watch_s;
    uint64_t err_transport, err_4xx, err_5xx, err_answer;
};

/* One (experiment, arm) as the simulator saw it. Per user (by slot):
 * impressions, clicked impressions and watch seconds, for the user-level
 * tests (NULL when they would not fit in USER_STATS_BYTES). */
struct arm {
    char *exp, *name;
    uint64_t users, requests, impressions, clicks, plays, watches;
    double watch_s;
    uint8_t *seen; /* a bit per simulated user */
    uint32_t *u_imp, *u_clicks;
    double *u_watch;
};

/* A session: when (simulated minutes from the start) and whose. */
struct entry {
    double t;
    uint32_t slot; /* index into sim.user */
};

struct sim {
    struct opts o;
    const reel_truth *truth;
    const reel_dataset *ds;
    const reel_users *us;
    uint32_t n;        /* simulated users */
    uint32_t *user;    /* their dataset numbers */
    double *lambda;    /* sessions per simulated minute */
    reel_rng *behave;  /* one stream per simulated user */
    double real_start; /* reel_clock_mono() at the start */

    /* The schedule: the current minute's sessions in time order. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct entry *sched;
    uint8_t *claimed;
    size_t n_sched, cap_sched, cursor;
    uint64_t minute, n_minutes;
    uint8_t *busy; /* per slot: a session in flight */

    /* Stop between lists (a signal, a hopeless server); cancel in-flight
     * requests (a second signal). */
    atomic_int stop, cancel, interrupted;
    atomic_int fails_in_a_row, printed, printed_kinds;
    char abort_reason[512];
    int aborted;

    /* Progress (tty: a progress line may be on stderr). */
    int tty;
    atomic_uint_fast64_t p_requests, p_events, p_errors;
    _Atomic double p_simtime;
    atomic_int running;

    /* Experiments. */
    pthread_mutex_t xmu;
    struct arm arm[MAX_ARMS];
    uint32_t n_arms;
    size_t user_stats_bytes;

    struct tally total;
};

/* ------------------------------------------------------------- options */

static void help(FILE *out)
{
    fprintf(out,
            "usage: reel simulate --server URL --data DIR --users N "
            "--minutes M\n"
            "                     [--seed S] [--k 10] [--concurrency C] "
            "[--speed X]\n"
            "                     [--rate R] [--sample] [--token T] "
            "[--timeout S] [--json]\n"
            "\n"
            "Closed-loop simulation: the synthetic users of a `reel synth` "
            "directory\nask the server at URL (which serves DIR) for "
            "recommendations, click and\nwatch as their ground truth "
            "(DIR/truth.reel) says, and send the events\nback with the "
            "answer's request_id; each next list reflects what they did.\n"
            "\n"
            "  --server URL       the server, http://HOST:PORT\n"
            "  --data DIR         the synth directory the server serves\n"
            "  --users N          simulated users: the first N of the "
            "dataset\n"
            "  --sample           a seeded random sample of N users instead\n"
            "  --minutes M        simulated minutes (> 0)\n"
            "  --rate R           mean sessions per user per simulated "
            "minute,\n"
            "                     spread by the users' true activity "
            "(default 1)\n"
            "  --seed S           random seed (default 1)\n"
            "  --k K              items asked for per list, 1..100 "
            "(default 10)\n"
            "  --concurrency C    parallel users, each with its own "
            "connection,\n"
            "                     1..256 (default 4)\n"
            "  --speed X          simulated minutes per real minute; 0 or "
            "max: as\n"
            "                     fast as the server answers (default 1)\n"
            "  --token T          bearer token for POST /v1/events "
            "(or REEL_TOKEN)\n"
            "  --timeout S        seconds per request (default 10)\n"
            "  --json             the summary as one JSON object\n"
            "  -h, --help         this help\n"
            "\n"
            "The summary counts requests, impressions, clicks, CTR, watch "
            "seconds per\nimpression and errors, per experiment arm too when "
            "the answers name\nexperiments. SIGINT stops the run after the "
            "lists in flight and prints\nthe summary (a second SIGINT "
            "cancels them).\n"
            "\n"
            "Exit status: 0 success (or stopped by a signal), 1 runtime "
            "error (the\nserver cannot be reached, or the run was stopped "
            "because every request\nfailed), 2 usage error.\n");
}

static int parse_opts(int argc, char **argv, struct opts *o, int *done)
{
    enum {
        O_SERVER = 256,
        O_DATA,
        O_USERS,
        O_MINUTES,
        O_SEED,
        O_K,
        O_CONC,
        O_SPEED,
        O_RATE,
        O_SAMPLE,
        O_TOKEN,
        O_TIMEOUT,
        O_JSON
    };
    static const struct option longopts[] = {
        {"server", required_argument, 0, O_SERVER},
        {"data", required_argument, 0, O_DATA},
        {"users", required_argument, 0, O_USERS},
        {"minutes", required_argument, 0, O_MINUTES},
        {"seed", required_argument, 0, O_SEED},
        {"k", required_argument, 0, O_K},
        {"concurrency", required_argument, 0, O_CONC},
        {"speed", required_argument, 0, O_SPEED},
        {"rate", required_argument, 0, O_RATE},
        {"sample", no_argument, 0, O_SAMPLE},
        {"token", required_argument, 0, O_TOKEN},
        {"timeout", required_argument, 0, O_TIMEOUT},
        {"json", no_argument, 0, O_JSON},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    *o = (struct opts){.seed = 1,
                       .k = 10,
                       .concurrency = 4,
                       .speed = 1.0,
                       .rate = 1.0,
                       .timeout_s = 10.0};
    *done = 0;
    uint64_t x;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            help(stdout);
            *done = 1;
            return REEL_EXIT_OK;
        case O_SERVER:
            o->server = optarg;
            break;
        case O_DATA:
            o->data = optarg;
            break;
        case O_USERS:
            if (reel_cmd_parse_u64(optarg, 1, REEL_SYNTH_MAX_USERS, &x))
                return reel_cmd_usage_error(
                    CMD, "--users must be a number in 1..%d, not '%s'",
                    REEL_SYNTH_MAX_USERS, optarg);
            o->users = x;
            break;
        case O_MINUTES:
            if (reel_cmd_parse_double(optarg, 0, 1e6, &o->minutes) ||
                !(o->minutes > 0))
                return reel_cmd_usage_error(
                    CMD, "--minutes must be a number in (0, 1e6], not '%s'",
                    optarg);
            break;
        case O_SEED:
            if (reel_cmd_parse_u64(optarg, 0, UINT64_MAX, &o->seed))
                return reel_cmd_usage_error(
                    CMD, "--seed must be an unsigned number, not '%s'", optarg);
            break;
        case O_K:
            if (reel_cmd_parse_u64(optarg, 1, MAX_ITEMS, &x))
                return reel_cmd_usage_error(
                    CMD, "--k must be a number in 1..%d, not '%s'", MAX_ITEMS,
                    optarg);
            o->k = (uint32_t)x;
            break;
        case O_CONC:
            if (reel_cmd_parse_u64(optarg, 1, 256, &x))
                return reel_cmd_usage_error(
                    CMD, "--concurrency must be a number in 1..256, not '%s'",
                    optarg);
            o->concurrency = (uint32_t)x;
            break;
        case O_SPEED:
            if (!strcmp(optarg, "max"))
                o->speed = 0;
            else if (reel_cmd_parse_double(optarg, 0, 1e9, &o->speed))
                return reel_cmd_usage_error(
                    CMD,
                    "--speed must be 'max' or a number >= 0 (simulated "
                    "minutes per real minute), not '%s'",
                    optarg);
            break;
        case O_RATE:
            if (reel_cmd_parse_double(optarg, 0, 1000, &o->rate) ||
                !(o->rate > 0))
                return reel_cmd_usage_error(
                    CMD, "--rate must be a number in (0, 1000], not '%s'",
                    optarg);
            break;
        case O_SAMPLE:
            o->sample = 1;
            break;
        case O_TOKEN:
            o->token = optarg;
            break;
        case O_TIMEOUT:
            if (reel_cmd_parse_double(optarg, 0, 3600, &o->timeout_s) ||
                !(o->timeout_s > 0))
                return reel_cmd_usage_error(
                    CMD,
                    "--timeout must be a number of seconds in (0, 3600], "
                    "not '%s'",
                    optarg);
            break;
        case O_JSON:
            o->json = 1;
            break;
        case ':':
            return reel_cmd_usage_error(CMD, "option '%s' needs a value",
                                        argv[optind - 1]);
        default:
            return reel_cmd_usage_error(CMD, "unknown option '%s'",
                                        argv[optind - 1]);
        }
    }
    if (optind < argc)
        return reel_cmd_usage_error(CMD, "unexpected argument '%s'",
                                    argv[optind]);
    if (!o->server)
        return reel_cmd_usage_error(CMD, "--server URL is required");
    if (!o->data)
        return reel_cmd_usage_error(CMD, "--data DIR is required");
    if (!o->users)
        return reel_cmd_usage_error(CMD, "--users N is required");
    if (!(o->minutes > 0))
        return reel_cmd_usage_error(CMD, "--minutes M is required");
    /* A minute's schedule is held in memory (16 bytes a session). */
    if ((double)o->users * o->rate > 1e7)
        return reel_cmd_usage_error(
            CMD, "--users x --rate is more than 1e7 sessions a minute");
    if (!o->token) {
        const char *t = getenv("REEL_TOKEN");
        if (t && *t)
            o->token = t;
    }
    reel_httpc_url u;
    reel_diag d;
    reel_diag_clear(&d);
    if (reel_httpc_url_parse(o->server, &u, &d))
        return reel_cmd_usage_error(CMD, "%s", d.msg);
    return REEL_EXIT_OK;
}

/* ------------------------------------------------------------- errors */

/* Prints one of the first few errors of a run. */
/* What a message is about: the first of each kind is always printed
 * (a run's first errors may all be of one kind). */
enum note_kind { N_HTTP, N_ANSWER, N_REFUSED, N_OTHER };

static void note(struct sim *s, enum note_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note(struct sim *s, enum note_kind kind, const char *fmt, ...)
{
    int first = !(atomic_fetch_or(&s->printed_kinds, 1 << kind) & 1 << kind);
    int k = atomic_fetch_add(&s->printed, 1);
    if (k >= MAX_PRINTED && !first)
        return;
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%sreel %s: %s%s\n", s->tty ? "\r\x1b[K" : "", CMD, msg,
            k == MAX_PRINTED - 1 ? " (further errors are only counted)" : "");
}

static void failed(struct sim *s, const char *what)
{
    atomic_fetch_add(&s->p_errors, 1);
    int n = atomic_fetch_add(&s->fails_in_a_row, 1) + 1;
    if (n >= MAX_FAILS_IN_A_ROW) {
        pthread_mutex_lock(&s->mu);
        if (!s->aborted && !atomic_load(&s->stop)) {
            s->aborted = 1;
            snprintf(s->abort_reason, sizeof s->abort_reason,
                     "stopped: the last %d requests failed (the last: %s)",
                     MAX_FAILS_IN_A_ROW, what);
        }
        atomic_store(&s->stop, 1);
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
}

static void succeeded(struct sim *s)
{
    atomic_store(&s->fails_in_a_row, 0);
}

/* The first line of an error body, for messages. */
static void excerpt(const char *body, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < cap && n < 200; i++) {
        char ch = body[i];
        if (ch == '\n' || ch == '\r')
            break;
        out[n++] = (ch >= ' ' && ch < 0x7f) ? ch : '?';
    }
    out[n] = '\0';
}

/* Counts and reports a failed exchange; rc is httpc's answer. */
static void exchange_failed(struct sim *s, struct tally *t, const char *what,
                            int rc, const reel_httpc_resp *resp,
                            const reel_diag *d)
{
    char msg[600];
    if (rc == REEL_ECANCELED)
        return; /* the run is being stopped: not the server's fault */
    if (rc) {
        t->err_transport++;
        snprintf(msg, sizeof msg, "%s: %s", what, d->msg);
    } else {
        char ex[256];
        excerpt(resp->body, resp->len, ex, sizeof ex);
        if (resp->status >= 500)
            t->err_5xx++;
        else if (resp->status >= 400)
            t->err_4xx++;
        else
            t->err_answer++;
        snprintf(msg, sizeof msg, "%s: the server answered %d %s%s", what,
                 resp->status, ex,
                 resp->status == 401 ? " (give the server's token with "
                                       "--token)"
                                     : "");
    }
    note(s, N_HTTP, "%s", msg);
    failed(s, msg);
}

/* ------------------------------------------------------------ schedule */

static int entry_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return (x->slot > y->slot) - (x->slot < y->slot);
}

/* Fills the schedule with minute m's sessions (under s->mu, or before the
 * workers start). */
static void plan_minute(struct sim *s, uint64_t m)
{
    double frac = s->o.minutes - (double)m;
    if (frac > 1)
        frac = 1;
    reel_rng r;
    reel_rng_seed2(&r, s->o.seed, STREAM_SCHEDULE | m);
    s->n_sched = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        uint64_t k = reel_rng_poisson(&r, s->lambda[i] * frac);
        for (uint64_t j = 0; j < k; j++) {
            REEL_GROW(s->sched, s->cap_sched, s->n_sched + 1);
            s->sched[s->n_sched++] =
                (struct entry){(double)m + frac * reel_rng_uniform(&r), i};
        }
    }
    /* By time, then slot: a total order, so the plan is the seed's. */
    qsort(s->sched, s->n_sched, sizeof *s->sched, entry_cmp);
    free(s->claimed);
    s->claimed = reel_xcalloc(s->n_sched ? s->n_sched : 1, 1);
    s->cursor = 0;
    s->minute = m;
}

/* Takes the earliest session not yet taken whose user has none in flight
 * (so each user's sessions run in order). 1 with it in *e; 0 when the run
 * is over or stopped. */
static int claim(struct sim *s, struct entry *e)
{
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (atomic_load(&s->stop))
            break;
        while (s->cursor < s->n_sched && s->claimed[s->cursor])
            s->cursor++;
        if (s->cursor == s->n_sched) {
            if (s->minute + 1 >= s->n_minutes)
                break;
            plan_minute(s, s->minute + 1);
            continue;
        }
        for (size_t i = s->cursor; i < s->n_sched; i++) {
            uint32_t slot = s->sched[i].slot;
            if (s->claimed[i] || s->busy[slot])
                continue;
            s->claimed[i] = 1;
            s->busy[slot] = 1;
            *e = s->sched[i];
            if (e->t > atomic_load(&s->p_simtime))
                atomic_store(&s->p_simtime, e->t);
            pthread_mutex_unlock(&s->mu);
            return 1;
        }
        /* Every session left is of a user with one in flight. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void release(struct sim *s, uint32_t slot)
{
    pthread_mutex_lock(&s->mu);
    s->busy[slot] = 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Waits until simulated time t is due on the real clock; 0 if the run
 * was stopped meanwhile. */
static int pace(struct sim *s, double t)
{
    if (s->o.speed <= 0)
        return !atomic_load(&s->stop);
    double due = s->real_start + t * 60.0 / s->o.speed;
    for (;;) {
        if (atomic_load(&s->stop))
            return 0;
        double left = due - reel_clock_mono();
        if (left <= 0)
            return 1;
        if (left > 0.1)
            left = 0.1;
        struct timespec ts = {0, (long)(left * 1e9)};
        nanosleep(&ts, NULL);
    }
}

/* --------------------------------------------------------- experiments */

/* The arm (exp, name), added when new; -1 when the table is full. */
static int arm_find(struct sim *s, const char *exp, const char *name)
{
    for (uint32_t i = 0; i < s->n_arms; i++)
        if (!strcmp(s->arm[i].exp, exp) && !strcmp(s->arm[i].name, name))
            return (int)i;
    if (s->n_arms == MAX_ARMS)
        return -1;
    struct arm *a = &s->arm[s->n_arms];
    memset(a, 0, sizeof *a);
    a->exp = reel_xstrndup(exp, strlen(exp));
    a->name = reel_xstrndup(name, strlen(name));
    a->seen = reel_xcalloc((size_t)s->n / 8 + 1, 1);
    size_t need = (size_t)s->n * (2 * sizeof(uint32_t) + sizeof(double));
    if (s->user_stats_bytes + need <= USER_STATS_BYTES) {
        s->user_stats_bytes += need;
        a->u_imp = reel_xcalloc(s->n, sizeof *a->u_imp);
        a->u_clicks = reel_xcalloc(s->n, sizeof *a->u_clicks);
        a->u_watch = reel_xcalloc(s->n, sizeof *a->u_watch);
    }
    return (int)s->n_arms++;
}

/* Counts an answer served under the arms its "experiments" names; their
 * numbers into arms[] (at most MAX_ARMS). */
static uint32_t arms_served(struct sim *s, const json_t *exps, uint32_t slot,
                            int *arms)
{
    if (!json_is_array(exps))
        return 0;
    uint32_t n = 0;
    pthread_mutex_lock(&s->xmu);
    for (size_t i = 0; i < json_array_size(exps) && n < MAX_ARMS; i++) {
        const json_t *x = json_array_get(exps, i);
        const char *e = json_string_value(json_object_get(x, "name"));
        const char *a = json_string_value(json_object_get(x, "arm"));
        if (!e || !a || strlen(e) > 64 || strlen(a) > 64)
            continue;
        int k = arm_find(s, e, a);
        if (k < 0)
            continue;
        struct arm *ar = &s->arm[k];
        ar->requests++;
        if (!(ar->seen[slot / 8] & (1u << (slot % 8)))) {
            ar->seen[slot / 8] |= (uint8_t)(1u << (slot % 8));
            ar->users++;
        }
        arms[n++] = k;
    }
    pthread_mutex_unlock(&s->xmu);
    return n;
}

/* --------------------------------------------------------------- a list */

struct worker {
    struct sim *s;
    reel_httpc *c;
    struct tally t;
    reel_buf body;
    int arms[MAX_ARMS];
    pthread_t th;
};

static void event(reel_buf *b, int *first, const char *user, size_t ulen,
                  const char *video, size_t vlen, int type, const char *rid,
                  double watch_s)
{
    if (!*first)
        reel_buf_putc(b, ',');
    *first = 0;
    reel_buf_puts(b, "{\"user\":");
    reel_buf_json_string(b, user, ulen);
    reel_buf_puts(b, ",\"video\":");
    reel_buf_json_string(b, video, vlen);
    reel_buf_printf(b, ",\"type\":\"%s\"", reel_event_type_name(type));
    if (rid) {
        reel_buf_puts(b, ",\"request_id\":");
        reel_buf_json_string(b, rid, strlen(rid));
    }
    if (!isnan(watch_s))
        reel_buf_printf(b, ",\"watch_s\":%.3f", watch_s);
    reel_buf_putc(b, '}');
}

/* One list: ask, respond, send the events. 0, or -1 when an exchange
 * failed (counted and reported; the session ends). */
static int one_list(struct worker *w, uint32_t slot)
{
    struct sim *s = w->s;
    struct tally *t = &w->t;
    uint32_t u = s->user[slot];
    size_t ulen;
    const char *uid = reel_strs_get(&s->us->id, u, &ulen);
    char esc[3 * REEL_MAX_ID_LEN + 1], path[3 * REEL_MAX_ID_LEN + 64],
        what[REEL_MAX_ID_LEN + 64];
    if (reel_httpc_escape(uid, ulen, esc, sizeof esc))
        return -1; /* cannot happen: ids are bounded */
    snprintf(path, sizeof path, "/v1/users/%s/recommendations?k=%u", esc,
             s->o.k);
    snprintf(what, sizeof what, "GET recommendations of %.*s",
             (int)(ulen > 64 ? 64 : ulen), uid);
    reel_httpc_resp resp;
    reel_diag d;
    reel_diag_clear(&d);
    int rc = reel_httpc_request(w->c, "GET", path, NULL, 0, &resp, &d);
    if (rc || resp.status != 200) {
        exchange_failed(s, t, what, rc, &resp, &d);
        return -1;
    }
    json_error_t je;
    json_t *root = json_loadb(resp.body, resp.len, 0, &je);
    const json_t *items = json_object_get(root, "items");
    if (!json_is_array(items)) {
        t->err_answer++;
        note(s, N_ANSWER, "%s: the answer is not a recommendation list (%s)",
             what, root ? "no \"items\" array" : je.text);
        failed(s, what);
        json_decref(root);
        return -1;
    }
    const char *rid = json_string_value(json_object_get(root, "request_id"));
    const char *src = json_string_value(json_object_get(root, "source"));
    size_t n = json_array_size(items);
    if (n > MAX_ITEMS)
        n = MAX_ITEMS;
    const char *vid[MAX_ITEMS];
    size_t vlen[MAX_ITEMS];
    reel_truth_outcome out[MAX_ITEMS];
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_object_get(json_array_get(items, i), "video");
        if (!json_is_string(v)) {
            t->err_answer++;
            note(s, N_ANSWER, "%s: item %zu of the answer has no \"video\"",
                 what, i);
            failed(s, what);
            json_decref(root);
            return -1;
        }
        vid[i] = json_string_value(v);
        vlen[i] = json_string_length(v);
    }
    if (src && !strcmp(src, "personalized"))
        t->personalized++;
    else if (src && !strcmp(src, "cold-start"))
        t->cold_start++;
    else
        t->other_source++;
    t->requests++;
    atomic_fetch_add(&s->p_requests, 1);
    uint32_t n_arms =
        arms_served(s, json_object_get(root, "experiments"), slot, w->arms);
    if (!n) {
        t->lists_empty++;
        succeeded(s);
        json_decref(root);
        return 0;
    }
    /* The user looks at every position, top to bottom (docs/synth.md). */
    reel_rng *r = &s->behave[slot];
    for (size_t i = 0; i < n; i++) {
        uint32_t v = reel_dataset_find_video(s->ds, vid[i], vlen[i]);
        if (v == REEL_NONE) {
            /* Added at run time: no ground truth, so never chosen. */
            t->unknown_videos++;
            memset(&out[i], 0, sizeof out[i]);
            continue;
        }
        reel_truth_sample(s->truth, u, v, (uint32_t)i, r, &out[i]);
    }
    reel_buf *b = &w->body;
    reel_buf_reset(b);
    reel_buf_putc(b, '[');
    int first = 1;
    uint64_t n_ev = 0, clicks = 0, plays = 0, watches = 0, skips = 0, likes = 0,
             shares = 0;
    double watch_s = 0;
    for (size_t i = 0; i < n; i++, n_ev++)
        event(b, &first, uid, ulen, vid[i], vlen[i], REEL_EV_IMPRESSION, rid,
              NAN);
    for (size_t i = 0; i < n; i++) {
        const reel_truth_outcome *o = &out[i];
        if (!o->click)
            continue;
        clicks++;
        event(b, &first, uid, ulen, vid[i], vlen[i], REEL_EV_CLICK, rid, NAN);
        n_ev++;
        if (o->play) {
            plays++;
            watches++;
            watch_s += o->watch_s;
            event(b, &first, uid, ulen, vid[i], vlen[i], REEL_EV_PLAY, rid,
                  NAN);
            event(b, &first, uid, ulen, vid[i], vlen[i], REEL_EV_WATCH, rid,
                  o->watch_s);
            n_ev += 2;
        }
        if (o->skip) {
            skips++;
            event(b, &first, uid, ulen, vid[i], vlen[i], REEL_EV_SKIP, rid,
                  o->watch_s);
            n_ev++;
        }
        if (o->like) {
            likes++;
            event(b, &first, uid, ulen, vid[i], vlen[i], REEL_EV_LIKE, rid,
                  NAN);
            n_ev++;
        }
        if (o->share) {
            shares++;
            event(b, &first, uid, ulen, vid[i], vlen[i], REEL_EV_SHARE, rid,
                  NAN);
            n_ev++;
        }
    }
    reel_buf_putc(b, ']');
    json_decref(root);

    snprintf(what, sizeof what, "POST /v1/events of %.*s",
             (int)(ulen > 64 ? 64 : ulen), uid);
    t->events_sent += n_ev;
    rc = reel_httpc_request(w->c, "POST", "/v1/events", b->data, b->len, &resp,
                            &d);
    if (rc || resp.status != 202) {
        exchange_failed(s, t, what, rc, &resp, &d);
        return -1;
    }
    succeeded(s);
    atomic_fetch_add(&s->p_events, n_ev);
    root = json_loadb(resp.body, resp.len, 0, &je);
    const json_t *acc = json_object_get(root, "accepted");
    const json_t *rej = json_object_get(root, "rejected");
    if (!json_is_integer(acc) || !json_is_array(rej)) {
        t->err_answer++;
        note(s, N_ANSWER,
             "%s: the 202 answer lacks \"accepted\" or \"rejected\"", what);
        t->events_accepted += n_ev;
    } else {
        t->events_accepted += (uint64_t)json_integer_value(acc);
        t->events_rejected += json_array_size(rej);
        if (json_array_size(rej)) {
            const char *e = json_string_value(
                json_object_get(json_array_get(rej, 0), "error"));
            note(s, N_REFUSED,
                 "%s: the server refused %zu of %llu events (the first: "
                 "%s)",
                 what, json_array_size(rej), (unsigned long long)n_ev,
                 e ? e : "?");
        }
    }
    json_decref(root);
    t->impressions += n;
    t->clicks += clicks;
    t->plays += plays;
    t->watches += watches;
    t->watch_s += watch_s;
    t->skips += skips;
    t->likes += likes;
    t->shares += shares;
    if (n_arms) {
        pthread_mutex_lock(&s->xmu);
        for (uint32_t i = 0; i < n_arms; i++) {
            struct arm *a = &s->arm[w->arms[i]];
            a->impressions += n;
            a->clicks += clicks;
            a->plays += plays;
            a->watches += watches;
            a->watch_s += watch_s;
            if (a->u_imp) {
                a->u_imp[slot] += (uint32_t)n;
                a->u_clicks[slot] += (uint32_t)clicks;
                a->u_watch[slot] += watch_s;
            }
        }
        pthread_mutex_unlock(&s->xmu);
    }
    return 0;
}

static void session(struct worker *w, uint32_t slot)
{
    struct sim *s = w->s;
    w->t.sessions++;
    for (int l = 0; l < MAX_LISTS; l++) {
        if (atomic_load(&s->stop) || one_list(w, slot))
            return;
        if (!(reel_rng_uniform(&s->behave[slot]) < SESSION_CONTINUE))
            return;
    }
}

static void *work(void *arg)
{
    struct worker *w = arg;
    struct sim *s = w->s;
    struct entry e;
    while (claim(s, &e)) {
        if (pace(s, e.t))
            session(w, e.slot);
        release(s, e.slot);
    }
    atomic_fetch_sub(&s->running, 1);
    return NULL;
}

static void tally_add(struct tally *a, const struct tally *b)
{
    a->sessions += b->sessions;
    a->requests += b->requests;
    a->lists_empty += b->lists_empty;
    a->personalized += b->personalized;
    a->cold_start += b->cold_start;
    a->other_source += b->other_source;
    a->impressions += b->impressions;
    a->clicks += b->clicks;
    a->plays += b->plays;
    a->watches += b->watches;
    a->skips += b->skips;
    a->likes += b->likes;
    a->shares += b->shares;
    a->unknown_videos += b->unknown_videos;
    a->events_sent += b->events_sent;
    a->events_accepted += b->events_accepted;
    a->events_rejected += b->events_rejected;
    a->watch_s += b->watch_s;
    a->err_transport += b->err_transport;
    a->err_4xx += b->err_4xx;
    a->err_5xx += b->err_5xx;
    a->err_answer += b->err_answer;
}

static uint64_t errors_of(const struct tally *t)
{
    return t->err_transport + t->err_4xx + t->err_5xx + t->err_answer;
}

/* ------------------------------------------------------------- progress */

struct prog {
    int enabled, drawn;
    double last;
};

static void progress(struct sim *s, struct prog *p, int force)
{
    if (!p->enabled)
        return;
    double now = reel_clock_mono(), el = now - s->real_start;
    if (!force && (el < 1.0 || now - p->last < 0.1))
        return;
    double st = atomic_load(&s->p_simtime);
    uint64_t rq = atomic_load(&s->p_requests), ev = atomic_load(&s->p_events),
             er = atomic_load(&s->p_errors);
    char a[16], b[16], c[16];
    reel_progress_human((double)rq, a, sizeof a);
    reel_progress_human((double)ev, b, sizeof b);
    reel_progress_human(el > 0 ? (double)rq / el : 0, c, sizeof c);
    double eta = s->o.speed > 0 ? (s->o.minutes - st) * 60.0 / s->o.speed
                 : st > 0       ? el * (s->o.minutes - st) / st
                                : 0;
    if (eta < 0)
        eta = 0;
    fprintf(stderr,
            "\rsimulate: %.1f/%g min, %s requests, %s events, %s req/s, "
            "%llu errors, ETA %.0fs\x1b[K",
            st, s->o.minutes, a, b, c, (unsigned long long)er, eta);
    fflush(stderr);
    p->drawn = 1;
    p->last = now;
}

/* ----------------------------------------------------------- statistics */

/* The simulator's own tests of an arm against the control. The server's
 * tests take impressions as independent; users are what experiments
 * assign, and they differ (some click far more, some make far more
 * requests), so the simulator also tests with users as the independent
 * units: CTR and watch seconds per impression are ratios sum(x) / sum(y)
 * over the arm's users, with the delta-method variance
 * (var x - 2 R cov(x, y) + R^2 var y) / (n mean(y)^2). */
struct ratio {
    double n, sx, sy, sxx, syy, sxy;
};

static struct ratio ratio_of(const struct sim *s, const struct arm *a,
                             int watch)
{
    struct ratio r = {0};
    for (uint32_t i = 0; i < s->n; i++) {
        if (!(a->seen[i / 8] & (1u << (i % 8))))
            continue;
        double x = watch ? a->u_watch[i] : (double)a->u_clicks[i];
        double y = (double)a->u_imp[i];
        r.n++;
        r.sx += x;
        r.sy += y;
        r.sxx += x * x;
        r.syy += y * y;
        r.sxy += x * y;
    }
    return r;
}

static int ratio_var(const struct ratio *r, double *value, double *var)
{
    if (r->n < 2 || r->sy <= 0)
        return -1;
    double m = r->n;
    double R = r->sx / r->sy, my = r->sy / m;
    double vx = (r->sxx - r->sx * r->sx / m) / (m - 1);
    double vy = (r->syy - r->sy * r->sy / m) / (m - 1);
    double cxy = (r->sxy - r->sx * r->sy / m) / (m - 1);
    *value = R;
    *var = (vx - 2 * R * cxy + R * R * vy) / (m * my * my);
    return 0;
}

static double p_normal(double z)
{
    return erfc(fabs(z) / sqrt(2.0));
}

/* Two-sided p of the difference b - a of two ratios (users independent). */
static double delta_p(const struct ratio *a, const struct ratio *b,
                      double *diff)
{
    double ra, va, rb, vb;
    *diff = NAN;
    if (ratio_var(a, &ra, &va) || ratio_var(b, &rb, &vb))
        return NAN;
    *diff = rb - ra;
    double se = sqrt(va + vb);
    return se > 0 ? p_normal(*diff / se) : NAN;
}

/* Two-sided p of the pooled two-proportion z-test (impressions
 * independent), as the server computes it. */
static double ztest_p(uint64_t x1, uint64_t n1, uint64_t x2, uint64_t n2)
{
    if (!n1 || !n2)
        return NAN;
    double p = (double)(x1 + x2) / (double)(n1 + n2);
    double se = sqrt(p * (1 - p) * (1.0 / (double)n1 + 1.0 / (double)n2));
    return se > 0
               ? p_normal(((double)x2 / (double)n2 - (double)x1 / (double)n1) /
                          se)
               : NAN;
}

/* An arm's tests against the control arm c. */
struct vs {
    double ctr_diff, ctr_p_imp, ctr_p_users, watch_diff, watch_p_users;
};

static struct vs vs_control(const struct sim *s, const struct arm *c,
                            const struct arm *a)
{
    struct vs v = {NAN, NAN, NAN, NAN, NAN};
    if (c->impressions && a->impressions)
        v.ctr_diff = (double)a->clicks / (double)a->impressions -
                     (double)c->clicks / (double)c->impressions;
    v.ctr_p_imp = ztest_p(c->clicks, c->impressions, a->clicks, a->impressions);
    if (c->u_imp && a->u_imp) {
        struct ratio rc = ratio_of(s, c, 0), ra = ratio_of(s, a, 0);
        v.ctr_p_users = delta_p(&rc, &ra, &v.ctr_diff);
        rc = ratio_of(s, c, 1);
        ra = ratio_of(s, a, 1);
        v.watch_p_users = delta_p(&rc, &ra, &v.watch_diff);
    }
    return v;
}

/* The control arm of experiment `name`: the server's "control" when it
 * said, else the first arm seen. */
static int control_of(const struct sim *s, const char *name, const json_t *srv)
{
    const char *c = json_string_value(
        json_object_get(json_object_get(srv, name), "control"));
    int first = -1;
    for (uint32_t i = 0; i < s->n_arms; i++) {
        if (strcmp(s->arm[i].exp, name))
            continue;
        if (first < 0)
            first = (int)i;
        if (c && !strcmp(s->arm[i].name, c))
            return (int)i;
    }
    return first;
}

static json_t *real_or_null(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

/* -------------------------------------------------------------- summary */

static json_t *ratio(double a, double b)
{
    return b > 0 ? json_real(a / b) : json_null();
}

/* The server's view of each experiment seen (GET /v1/experiments/NAME),
 * an object by name; NULL entries when it could not be read. */
static json_t *server_experiments(struct sim *s)
{
    json_t *all = json_object();
    if (!s->n_arms)
        return all;
    reel_httpc_opts ho = reel_httpc_opts_default();
    ho.timeout_s = s->o.timeout_s;
    ho.cancel = &s->cancel;
    reel_httpc *c = NULL;
    reel_diag d;
    reel_diag_clear(&d);
    if (reel_httpc_open(s->o.server, &ho, &c, &d))
        return all;
    for (uint32_t i = 0; i < s->n_arms; i++) {
        const char *name = s->arm[i].exp;
        if (json_object_get(all, name))
            continue;
        char esc[3 * 64 + 1], path[256];
        json_t *got = NULL;
        if (!reel_httpc_escape(name, strlen(name), esc, sizeof esc)) {
            snprintf(path, sizeof path, "/v1/experiments/%s", esc);
            reel_httpc_resp resp;
            if (!reel_httpc_request(c, "GET", path, NULL, 0, &resp, &d) &&
                resp.status == 200)
                got = json_loadb(resp.body, resp.len, 0, NULL);
        }
        json_object_set_new(all, name, got ? got : json_null());
    }
    reel_httpc_close(c);
    return all;
}

/* The server's arm `name` of experiment object x, or NULL. */
static const json_t *server_arm(const json_t *x, const char *name)
{
    const json_t *arms = json_object_get(x, "arms");
    for (size_t i = 0; i < json_array_size(arms); i++) {
        const json_t *a = json_array_get(arms, i);
        const char *n = json_string_value(json_object_get(a, "name"));
        if (n && !strcmp(n, name))
            return a;
    }
    return NULL;
}

static json_t *summary_json(struct sim *s, double secs, const json_t *srv)
{
    const struct tally *t = &s->total;
    json_t *o = json_pack(
        "{s:s, s:s, s:I, s:I, s:i, s:f, s:f, s:f, s:i, s:f, s:b, s:o}",
        "server", s->o.server, "data", s->o.data, "seed", (json_int_t)s->o.seed,
        "users", (json_int_t)s->n, "k", (int)s->o.k, "minutes", s->o.minutes,
        "minutes_done", atomic_load(&s->p_simtime), "rate", s->o.rate,
        "concurrency", (int)s->o.concurrency, "seconds", secs, "interrupted",
        atomic_load(&s->interrupted), "stopped",
        s->aborted ? json_string(s->abort_reason) : json_null());
    json_object_set_new(o, "speed",
                        s->o.speed > 0 ? json_real(s->o.speed)
                                       : json_string("max"));
    json_object_set_new(o, "sessions", json_integer((json_int_t)t->sessions));
    json_object_set_new(o, "requests", json_integer((json_int_t)t->requests));
    json_object_set_new(o, "impressions",
                        json_integer((json_int_t)t->impressions));
    json_object_set_new(o, "clicks", json_integer((json_int_t)t->clicks));
    json_object_set_new(o, "plays", json_integer((json_int_t)t->plays));
    json_object_set_new(o, "watches", json_integer((json_int_t)t->watches));
    json_object_set_new(o, "skips", json_integer((json_int_t)t->skips));
    json_object_set_new(o, "likes", json_integer((json_int_t)t->likes));
    json_object_set_new(o, "shares", json_integer((json_int_t)t->shares));
    json_object_set_new(o, "ctr",
                        ratio((double)t->clicks, (double)t->impressions));
    json_object_set_new(o, "watch_s", json_real(t->watch_s));
    json_object_set_new(o, "watch_s_per_impression",
                        ratio(t->watch_s, (double)t->impressions));
    json_object_set_new(o, "answers",
                        json_pack("{s:I, s:I, s:I, s:I, s:I}", "personalized",
                                  (json_int_t)t->personalized, "cold_start",
                                  (json_int_t)t->cold_start, "other",
                                  (json_int_t)t->other_source, "empty",
                                  (json_int_t)t->lists_empty, "unknown_videos",
                                  (json_int_t)t->unknown_videos));
    json_object_set_new(o, "events",
                        json_pack("{s:I, s:I, s:I}", "sent",
                                  (json_int_t)t->events_sent, "accepted",
                                  (json_int_t)t->events_accepted, "rejected",
                                  (json_int_t)t->events_rejected));
    json_object_set_new(o, "errors",
                        json_pack("{s:I, s:I, s:I, s:I, s:I}", "total",
                                  (json_int_t)errors_of(t), "transport",
                                  (json_int_t)t->err_transport, "http_4xx",
                                  (json_int_t)t->err_4xx, "http_5xx",
                                  (json_int_t)t->err_5xx, "bad_answer",
                                  (json_int_t)t->err_answer));
    json_t *xs = json_array();
    for (uint32_t i = 0; i < s->n_arms; i++) {
        const char *name = s->arm[i].exp;
        json_t *x = NULL;
        for (size_t j = 0; j < json_array_size(xs); j++)
            if (!strcmp(json_string_value(
                            json_object_get(json_array_get(xs, j), "name")),
                        name))
                x = json_array_get(xs, j);
        if (!x) {
            const json_t *sv = json_object_get(srv, name);
            x = json_pack("{s:s, s:[], s:O}", "name", name, "arms", "server",
                          sv ? sv : json_null());
            json_array_append_new(xs, x);
        }
        const struct arm *a = &s->arm[i];
        int c = control_of(s, name, srv);
        json_t *vs = json_null();
        if (c >= 0 && (uint32_t)c != i) {
            struct vs v = vs_control(s, &s->arm[c], a);
            vs = json_pack("{s:o, s:o, s:o, s:o, s:o}", "ctr_diff",
                           real_or_null(v.ctr_diff), "ctr_p_impressions",
                           real_or_null(v.ctr_p_imp), "ctr_p_users",
                           real_or_null(v.ctr_p_users), "watch_diff",
                           real_or_null(v.watch_diff), "watch_p_users",
                           real_or_null(v.watch_p_users));
        }
        json_array_append_new(
            json_object_get(x, "arms"),
            json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:f, s:o, "
                      "s:o}",
                      "name", a->name, "users", (json_int_t)a->users,
                      "requests", (json_int_t)a->requests, "impressions",
                      (json_int_t)a->impressions, "clicks",
                      (json_int_t)a->clicks, "plays", (json_int_t)a->plays,
                      "watches", (json_int_t)a->watches, "ctr",
                      ratio((double)a->clicks, (double)a->impressions),
                      "watch_s", a->watch_s, "watch_s_per_impression",
                      ratio(a->watch_s, (double)a->impressions), "vs_control",
                      vs));
    }
    json_object_set_new(o, "experiments", xs);
    return o;
}

static double num(const json_t *v)
{
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* A p-value for the table, "-" when there is none. */
static void pstr(double p, char *out, size_t cap)
{
    if (isfinite(p))
        snprintf(out, cap, "%.3g", p);
    else
        snprintf(out, cap, "-");
}

static void summary_text(struct sim *s, double secs, const json_t *srv)
{
    const struct tally *t = &s->total;
    double imp = (double)t->impressions;
    char speed[32];
    if (s->o.speed > 0)
        snprintf(speed, sizeof speed, "speed %g", s->o.speed);
    else
        snprintf(speed, sizeof speed, "max speed");
    printf("simulate: %u users, %.2f of %g simulated minutes in %.1f s (%s), "
           "%u connections, seed %llu%s\n",
           s->n, atomic_load(&s->p_simtime), s->o.minutes, secs, speed,
           s->o.concurrency, (unsigned long long)s->o.seed,
           atomic_load(&s->interrupted) ? " (interrupted)" : "");
    printf("  sessions %llu, requests %llu, impressions %llu, clicks %llu "
           "(CTR %.2f%%), plays %llu\n",
           (unsigned long long)t->sessions, (unsigned long long)t->requests,
           (unsigned long long)t->impressions, (unsigned long long)t->clicks,
           imp > 0 ? 100.0 * (double)t->clicks / imp : 0.0,
           (unsigned long long)t->plays);
    printf("  watched %.0f s in %llu watches (%.2f s per impression); likes "
           "%llu, shares %llu, skips %llu\n",
           t->watch_s, (unsigned long long)t->watches,
           imp > 0 ? t->watch_s / imp : 0.0, (unsigned long long)t->likes,
           (unsigned long long)t->shares, (unsigned long long)t->skips);
    printf(
        "  answers: %llu personalized, %llu cold-start, %llu other, %llu "
        "empty; %llu unknown videos shown\n",
        (unsigned long long)t->personalized, (unsigned long long)t->cold_start,
        (unsigned long long)t->other_source, (unsigned long long)t->lists_empty,
        (unsigned long long)t->unknown_videos);
    printf("  events: %llu sent, %llu accepted, %llu rejected; errors %llu "
           "(transport %llu, 4xx %llu, 5xx %llu, bad answers %llu)\n",
           (unsigned long long)t->events_sent,
           (unsigned long long)t->events_accepted,
           (unsigned long long)t->events_rejected,
           (unsigned long long)errors_of(t),
           (unsigned long long)t->err_transport, (unsigned long long)t->err_4xx,
           (unsigned long long)t->err_5xx, (unsigned long long)t->err_answer);
    if (s->aborted)
        printf("  %s\n", s->abort_reason);
    for (uint32_t i = 0; i < s->n_arms; i++) {
        const char *name = s->arm[i].exp;
        int shown = 0;
        for (uint32_t j = 0; j < i; j++)
            shown |= !strcmp(s->arm[j].exp, name);
        if (shown)
            continue;
        const json_t *sv = json_object_get(srv, name);
        printf("  experiment %s (simulator | server):\n", name);
        printf("    %-16s %8s %9s %11s %8s %7s %9s | %9s %11s %8s %7s %9s "
               "%8s %8s\n",
               "arm", "users", "requests", "impressions", "clicks", "CTR%",
               "watch/imp", "requests", "impressions", "clicks", "CTR%",
               "watch/imp", "p(CTR)", "p(watch)");
        for (uint32_t j = i; j < s->n_arms; j++) {
            const struct arm *a = &s->arm[j];
            if (strcmp(a->exp, name))
                continue;
            double ai = (double)a->impressions;
            printf("    %-16.16s %8llu %9llu %11llu %8llu %7.3f %9.3f |",
                   a->name, (unsigned long long)a->users,
                   (unsigned long long)a->requests,
                   (unsigned long long)a->impressions,
                   (unsigned long long)a->clicks,
                   ai > 0 ? 100.0 * (double)a->clicks / ai : 0.0,
                   ai > 0 ? a->watch_s / ai : 0.0);
            const json_t *sa = server_arm(sv, a->name);
            if (!sa) {
                printf(" (not on the server)\n");
                continue;
            }
            const json_t *vs = json_object_get(sa, "vs_control");
            char pc[16], pw[16];
            pstr(num(json_object_get(vs, "ctr_p")), pc, sizeof pc);
            pstr(num(json_object_get(vs, "watch_p")), pw, sizeof pw);
            printf(" %9.0f %11.0f %8.0f %7.3f %9.3f %8s %8s\n",
                   num(json_object_get(sa, "requests")),
                   num(json_object_get(sa, "impressions")),
                   num(json_object_get(sa, "clicks")),
                   100.0 * num(json_object_get(json_object_get(sa, "ctr"),
                                               "value")),
                   num(json_object_get(
                       json_object_get(sa, "watch_s_per_impression"), "value")),
                   pc, pw);
        }
        int c = control_of(s, name, srv);
        for (uint32_t j = i; c >= 0 && j < s->n_arms; j++) {
            if (strcmp(s->arm[j].exp, name) || j == (uint32_t)c)
                continue;
            struct vs v = vs_control(s, &s->arm[c], &s->arm[j]);
            printf("    simulator: %s vs %s: CTR %+.3f points (p %.3g with "
                   "impressions independent, %.3g with users), watch/imp "
                   "%+.3f s (p %.3g with users)\n",
                   s->arm[j].name, s->arm[c].name, 100.0 * v.ctr_diff,
                   v.ctr_p_imp, v.ctr_p_users, v.watch_diff, v.watch_p_users);
        }
    }
}

/* ----------------------------------------------------------------- main */

/* Checks that the server answers and serves this catalogue. */
static int check_server(struct sim *s)
{
    reel_httpc_opts ho = reel_httpc_opts_default();
    ho.timeout_s = s->o.timeout_s;
    reel_httpc *c = NULL;
    reel_diag d;
    reel_diag_clear(&d);
    int rc = reel_httpc_open(s->o.server, &ho, &c, &d);
    if (rc)
        return reel_cmd_fail(CMD, "%s", d.msg);
    reel_httpc_resp resp;
    rc = reel_httpc_request(c, "GET", "/healthz", NULL, 0, &resp, &d);
    if (rc) {
        reel_httpc_close(c);
        return reel_cmd_fail(CMD, "the server %s cannot be reached: %s",
                             s->o.server, d.msg);
    }
    if (resp.status != 200) {
        reel_httpc_close(c);
        return reel_cmd_fail(CMD,
                             "%s answered %d to GET /healthz: is it reel "
                             "serve?",
                             s->o.server, resp.status);
    }
    const reel_videos *vs = reel_dataset_videos(s->ds);
    if (vs->n) {
        size_t len;
        const char *id = reel_strs_get(&vs->id, 0, &len);
        char esc[3 * REEL_MAX_ID_LEN + 1], path[3 * REEL_MAX_ID_LEN + 32];
        reel_httpc_escape(id, len, esc, sizeof esc);
        snprintf(path, sizeof path, "/v1/videos/%s", esc);
        rc = reel_httpc_request(c, "GET", path, NULL, 0, &resp, &d);
        if (rc || resp.status != 200) {
            int st = rc ? 0 : resp.status;
            reel_httpc_close(c);
            if (rc)
                return reel_cmd_fail(CMD, "%s", d.msg);
            return reel_cmd_fail(CMD,
                                 "%s answered %d for video '%s' of %s: "
                                 "does it serve %s?",
                                 s->o.server, st, id, s->o.data, s->o.data);
        }
    }
    reel_httpc_close(c);
    return REEL_EXIT_OK;
}

/* The simulated users (the first N or a seeded sample) and their rates. */
static void pick_users(struct sim *s)
{
    uint32_t nu = reel_dataset_users(s->ds)->n;
    s->user = reel_xmalloc((size_t)s->n * sizeof *s->user);
    if (s->o.sample) {
        uint32_t *all = reel_xmalloc((size_t)nu * sizeof *all);
        for (uint32_t i = 0; i < nu; i++)
            all[i] = i;
        reel_rng r;
        reel_rng_seed2(&r, s->o.seed, STREAM_SAMPLE);
        for (uint32_t i = 0; i < s->n; i++) { /* a partial Fisher-Yates */
            uint32_t j = i + (uint32_t)reel_rng_below(&r, nu - i);
            uint32_t x = all[i];
            all[i] = all[j];
            all[j] = x;
        }
        memcpy(s->user, all, (size_t)s->n * sizeof *s->user);
        free(all);
    } else {
        for (uint32_t i = 0; i < s->n; i++)
            s->user[i] = i;
    }
    s->lambda = reel_xmalloc((size_t)s->n * sizeof *s->lambda);
    s->behave = reel_xmalloc((size_t)s->n * sizeof *s->behave);
    double sum = 0;
    for (uint32_t i = 0; i < s->n; i++)
        sum += s->lambda[i] = reel_truth_activity(s->truth, s->user[i]);
    double mean = sum / s->n;
    for (uint32_t i = 0; i < s->n; i++) {
        s->lambda[i] = mean > 0 ? s->o.rate * s->lambda[i] / mean : s->o.rate;
        reel_rng_seed2(&s->behave[i], s->o.seed, STREAM_BEHAVIOUR | s->user[i]);
    }
}

static int run(struct sim *s)
{
    int rc = check_server(s);
    if (rc)
        return rc;
    pick_users(s);
    s->busy = reel_xcalloc(s->n, 1);
    s->n_minutes = (uint64_t)ceil(s->o.minutes);
    plan_minute(s, 0);

    sigset_t sigs, old;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, &old);

    const char *force = getenv("REEL_PROGRESS");
    s->tty = force ? !strcmp(force, "1") : isatty(STDERR_FILENO);
    uint32_t nw = s->o.concurrency;
    struct worker *w = reel_xcalloc(nw, sizeof *w);
    reel_httpc_opts ho = reel_httpc_opts_default();
    ho.timeout_s = s->o.timeout_s;
    ho.token = s->o.token;
    ho.cancel = &s->cancel;
    s->real_start = reel_clock_mono();
    uint32_t started = 0;
    for (uint32_t i = 0; i < nw; i++) {
        reel_diag d;
        reel_diag_clear(&d);
        w[i].s = s;
        reel_buf_init(&w[i].body);
        if (reel_httpc_open(s->o.server, &ho, &w[i].c, &d)) {
            note(s, N_OTHER, "%s", d.msg);
            break;
        }
        atomic_fetch_add(&s->running, 1);
        if (pthread_create(&w[i].th, NULL, work, &w[i])) {
            atomic_fetch_sub(&s->running, 1);
            reel_httpc_close(w[i].c);
            w[i].c = NULL;
            note(s, N_OTHER, "cannot start a thread");
            break;
        }
        started++;
    }
    if (started < nw) {
        atomic_store(&s->stop, 1);
        s->aborted = 1;
        snprintf(s->abort_reason, sizeof s->abort_reason,
                 "stopped: could not start the workers");
    }

    struct prog p = {0};
    p.enabled = s->tty;
    p.last = s->real_start;
    while (atomic_load(&s->running) > 0) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        int sig = sigtimedwait(&sigs, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM) {
            if (atomic_load(&s->stop) && atomic_load(&s->interrupted)) {
                atomic_store(&s->cancel, 1);
            } else {
                atomic_store(&s->interrupted, 1);
                pthread_mutex_lock(&s->mu);
                atomic_store(&s->stop, 1);
                pthread_cond_broadcast(&s->cv);
                pthread_mutex_unlock(&s->mu);
                fprintf(stderr,
                        "%sreel %s: stopping after the lists in flight "
                        "(again to cancel them)\n",
                        s->tty ? "\r\x1b[K" : "", CMD);
            }
        }
        progress(s, &p, 0);
    }
    for (uint32_t i = 0; i < started; i++)
        pthread_join(w[i].th, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (p.drawn) {
        fputs("\r\x1b[K", stderr);
        fflush(stderr);
    }
    double secs = reel_clock_mono() - s->real_start;
    if (!atomic_load(&s->stop) && !s->aborted)
        atomic_store(&s->p_simtime, s->o.minutes);
    for (uint32_t i = 0; i < nw; i++) {
        tally_add(&s->total, &w[i].t);
        reel_httpc_close(w[i].c);
        reel_buf_free(&w[i].body);
    }
    free(w);

    atomic_store(&s->cancel, 0);
    json_t *srv = server_experiments(s);
    if (s->o.json) {
        json_t *o = summary_json(s, secs, srv);
        char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10));
        if (text)
            puts(text);
        free(text);
        json_decref(o);
    } else {
        summary_text(s, secs, srv);
    }
    json_decref(srv);
    fflush(stdout);
    if (s->aborted)
        return reel_cmd_fail(CMD, "%s", s->abort_reason);
    if (!s->total.requests && errors_of(&s->total))
        return reel_cmd_fail(CMD, "no request succeeded");
    return REEL_EXIT_OK;
}

int reel_cmd_simulate(int argc, char **argv)
{
    struct sim *s = reel_xcalloc(1, sizeof *s);
    int done, rc = parse_opts(argc, argv, &s->o, &done);
    if (rc || done) {
        free(s);
        return rc;
    }
    reel_dataset *ds = NULL;
    reel_truth *truth = NULL;
    reel_diag d;
    reel_diag_clear(&d);
    if (reel_dataset_open(s->o.data, &ds, &d)) {
        rc = reel_cmd_fail_diag(CMD, &d);
        goto out;
    }
    if (reel_truth_open(s->o.data, &truth, &d)) {
        char msg[1024];
        reel_diag_format(&d, msg, sizeof msg);
        rc = reel_cmd_fail(CMD,
                           "%s (simulate needs the ground truth that `reel "
                           "synth` writes next to its dataset)",
                           msg);
        goto out;
    }
    if (reel_truth_check_dataset(truth, ds, &d)) {
        rc = reel_cmd_fail_diag(CMD, &d);
        goto out;
    }
    s->ds = ds;
    s->truth = truth;
    s->us = reel_dataset_users(ds);
    if (s->o.users > s->us->n) {
        rc = reel_cmd_usage_error(CMD, "--users %llu: %s has only %u users",
                                  (unsigned long long)s->o.users, s->o.data,
                                  s->us->n);
        goto out;
    }
    s->n = (uint32_t)s->o.users;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_mutex_init(&s->xmu, NULL);
    rc = run(s);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->xmu);
out:
    for (uint32_t i = 0; i < s->n_arms; i++) {
        free(s->arm[i].exp);
        free(s->arm[i].name);
        free(s->arm[i].seen);
        free(s->arm[i].u_imp);
        free(s->arm[i].u_clicks);
        free(s->arm[i].u_watch);
    }
    free(s->user);
    free(s->lambda);
    free(s->behave);
    free(s->busy);
    free(s->sched);
    free(s->claimed);
    free(s);
    reel_truth_close(truth);
    reel_dataset_close(ds);
    return rc;
}
