/* experiment: see experiment.h. */
#include "reco/experiment.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/strs.h"
#include "data/dataset.h"

enum {
    P_HISTORY_N = 1 << 0,
    P_DECAY = 1 << 1,
    P_CANDIDATES = 1 << 2,
    P_MAX_PER_CAT = 1 << 3,
    P_FRESH = 1 << 4,
    P_FRESH_HL = 1 << 5,
    P_RANKER = 1 << 6,
};

/* Per user of an arm: impressions, clicks, watch seconds (users are the
 * units the arms were randomised by). Open addressing by user hash (0:
 * empty). */
struct ustat {
    uint64_t h;
    uint32_t n, c;
    double w;
};

struct uset {
    struct ustat *u;
    uint64_t cap, n;
    /* sums over users of n, c, w, their squares and the cross products
     * with n, kept as the counts change */
    double sn, sc, sw, snn, scc, sww, snc, snw;
};

struct arm {
    char name[REEL_EXP_NAME_MAX + 1];
    double share, cum;
    unsigned set;     /* P_* */
    reel_reco_opts o; /* the overridden values */
    int ranker;       /* REEL_RECO_RANKER_* */
    uint64_t requests, impressions, clicks, watches;
    double watch_sum, watch_sq;
    struct uset users;
};

struct exp {
    char name[REEL_EXP_NAME_MAX + 1];
    uint32_t n_arms, control;
    struct arm arm[REEL_EXP_MAX_ARMS];
    double started_at;
    uint64_t epoch; /* answers served at or after this epoch count */
    char *canon;    /* the arms as canonical JSON, to spot a changed put */
};

/* One remembered answer: 4 ways per bucket, the oldest replaced. */
struct served {
    uint64_t rid, user, epoch, seq;
};

struct reel_experiments {
    pthread_mutex_t mu;
    struct exp *e[REEL_EXP_MAX]; /* sorted by name */
    uint32_t n;
    uint64_t epoch; /* bumped by every put that starts counts */
    struct served *cache;
    uint64_t mask; /* buckets - 1 */
    uint64_t seq;
};

enum { WAYS = 4 };

static uint64_t fnv1a(const void *p, size_t n, uint64_t h)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

#define FNV_OFFSET 0xcbf29ce484222325ull

/* Users and request ids in the tables (0 marks an empty slot). */
static uint64_t hash_str(const char *s)
{
    uint64_t h = reel_hash_bytes(s, strlen(s));
    return h ? h : 1;
}

int reel_experiments_new(uint32_t attribution, reel_experiments **out)
{
    *out = NULL;
    if (attribution < 1 || attribution > 100000000)
        return REEL_EINVAL;
    reel_experiments *x = reel_xcalloc(1, sizeof *x);
    pthread_mutex_init(&x->mu, NULL);
    uint64_t buckets = 1;
    while (buckets * WAYS < attribution)
        buckets <<= 1;
    x->mask = buckets - 1;
    x->cache = reel_xcalloc(buckets * WAYS, sizeof *x->cache);
    *out = x;
    return 0;
}

static void exp_free(struct exp *e)
{
    if (!e)
        return;
    for (uint32_t i = 0; i < e->n_arms; i++)
        free(e->arm[i].users.u);
    free(e->canon);
    free(e);
}

void reel_experiments_free(reel_experiments *x)
{
    if (!x)
        return;
    for (uint32_t i = 0; i < x->n; i++)
        exp_free(x->e[i]);
    free(x->cache);
    pthread_mutex_destroy(&x->mu);
    free(x);
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > REEL_EXP_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int num_in(json_t *v, double lo, double hi, int lo_open, double *out)
{
    if (!json_is_number(v))
        return -1;
    double d = json_number_value(v);
    if (!isfinite(d) || d > hi || (lo_open ? d <= lo : d < lo))
        return -1;
    *out = d;
    return 0;
}

static int int_in(json_t *v, uint64_t lo, uint64_t hi, uint32_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)lo ||
        json_integer_value(v) > (json_int_t)hi)
        return -1;
    *out = (uint32_t)json_integer_value(v);
    return 0;
}

static int parse_params(json_t *p, struct arm *a, reel_diag *d)
{
    if (!p || json_is_null(p))
        return 0;
    if (!json_is_object(p))
        return reel_diag_fail(d, REEL_EINVAL,
                              "arm '%s': params must be an object", a->name);
    const char *k;
    json_t *v;
    double x = 0;
    json_object_foreach(p, k, v)
    {
        int bad = 0;
        if (!strcmp(k, "history_n")) {
            bad = int_in(v, 1, 32, &a->o.history_n), a->set |= P_HISTORY_N;
        } else if (!strcmp(k, "recency_decay")) {
            bad = num_in(v, 0, 1, 1, &x), a->o.recency_decay = (float)x,
            a->set |= P_DECAY;
        } else if (!strcmp(k, "candidates")) {
            bad = int_in(v, 1, REEL_EXP_MAX_CANDIDATES, &a->o.candidates);
            a->set |= P_CANDIDATES;
        } else if (!strcmp(k, "max_per_category")) {
            bad = int_in(v, 0, 10000, &a->o.max_per_category),
            a->set |= P_MAX_PER_CAT;
        } else if (!strcmp(k, "fresh_boost")) {
            bad = num_in(v, 0, 1000, 0, &a->o.fresh_boost), a->set |= P_FRESH;
        } else if (!strcmp(k, "fresh_half_life_s")) {
            bad = num_in(v, 1, 315360000, 0, &a->o.fresh_half_life_s),
            a->set |= P_FRESH_HL;
        } else if (!strcmp(k, "ranker")) {
            const char *s = json_string_value(v);
            static const char *const names[] = {"model", "none", "xgboost",
                                                "mlp"};
            bad = 1;
            for (int i = 0; s && i < 4; i++)
                if (!strcmp(s, names[i]))
                    a->ranker = i, bad = 0;
            a->set |= P_RANKER;
        } else {
            return reel_diag_fail(
                d, REEL_EINVAL,
                "arm '%s': unknown parameter '%s' (history_n, recency_decay, "
                "candidates, max_per_category, fresh_boost, "
                "fresh_half_life_s, ranker)",
                a->name, k);
        }
        if (bad)
            return reel_diag_fail(d, REEL_EINVAL,
                                  "arm '%s': parameter '%s' out of range "
                                  "(docs/API.md)",
                                  a->name, k);
    }
    return 0;
}

/* Parses the body into e (not yet registered). */
static int parse_exp(const char *name, const json_t *body, struct exp *e,
                     reel_diag *d)
{
    if (!name_ok(name))
        return reel_diag_fail(
            d, REEL_EINVAL,
            "experiment names are 1..64 characters of A-Z a-z 0-9 . _ -");
    snprintf(e->name, sizeof e->name, "%s", name);
    if (!json_is_object(body))
        return reel_diag_fail(d, REEL_EINVAL, "the body must be a JSON object");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v)
    {
        if (strcmp(k, "arms") && strcmp(k, "control") && strcmp(k, "name"))
            return reel_diag_fail(d, REEL_EINVAL,
                                  "unknown field '%s' (arms, control)", k);
    }
    json_t *arms = json_object_get(body, "arms");
    if (!json_is_array(arms) || json_array_size(arms) < 2 ||
        json_array_size(arms) > REEL_EXP_MAX_ARMS)
        return reel_diag_fail(d, REEL_EINVAL,
                              "\"arms\" must be an array of 2..%d arms",
                              REEL_EXP_MAX_ARMS);
    e->n_arms = (uint32_t)json_array_size(arms);
    double total = 0;
    for (uint32_t i = 0; i < e->n_arms; i++) {
        json_t *a = json_array_get(arms, i);
        struct arm *ar = &e->arm[i];
        if (!json_is_object(a))
            return reel_diag_fail(d, REEL_EINVAL, "arm %u is not an object", i);
        json_object_foreach(a, k, v)
        {
            if (strcmp(k, "name") && strcmp(k, "share") && strcmp(k, "params"))
                return reel_diag_fail(
                    d, REEL_EINVAL,
                    "arm %u: unknown field '%s' (name, share, params)", i, k);
        }
        const char *an = json_string_value(json_object_get(a, "name"));
        if (!an || !name_ok(an))
            return reel_diag_fail(d, REEL_EINVAL,
                                  "arm %u: \"name\" must be 1..64 characters "
                                  "of A-Z a-z 0-9 . _ -",
                                  i);
        snprintf(ar->name, sizeof ar->name, "%s", an);
        for (uint32_t j = 0; j < i; j++)
            if (!strcmp(e->arm[j].name, an))
                return reel_diag_fail(d, REEL_EINVAL, "two arms are named '%s'",
                                      an);
        if (num_in(json_object_get(a, "share"), 0, 1, 1, &ar->share))
            return reel_diag_fail(d, REEL_EINVAL,
                                  "arm '%s': \"share\" must be in (0, 1]", an);
        total += ar->share;
        ar->cum = total;
        int rc = parse_params(json_object_get(a, "params"), ar, d);
        if (rc)
            return rc;
    }
    if (fabs(total - 1) > 1e-6)
        return reel_diag_fail(d, REEL_EINVAL,
                              "the shares add up to %.9g, not 1", total);
    e->arm[e->n_arms - 1].cum = 1.0;
    e->control = 0;
    json_t *c = json_object_get(body, "control");
    if (c && !json_is_null(c)) {
        const char *cn = json_string_value(c);
        uint32_t i = 0;
        while (cn && i < e->n_arms && strcmp(e->arm[i].name, cn))
            i++;
        if (!cn || i == e->n_arms)
            return reel_diag_fail(d, REEL_EINVAL,
                                  "\"control\" must name one of the arms");
        e->control = i;
    }
    json_t *canon = json_pack("{s:O, s:s}", "arms", arms, "control",
                              e->arm[e->control].name);
    e->canon = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(canon);
    return 0;
}

static int find(const reel_experiments *x, const char *name, uint32_t *at)
{
    uint32_t lo = 0, hi = x->n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        int c = strcmp(x->e[mid]->name, name);
        if (!c) {
            *at = mid;
            return 1;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *at = lo;
    return 0;
}

int reel_experiments_put(reel_experiments *x, const char *name,
                         const json_t *body, double now, int *created,
                         reel_diag *d)
{
    *created = 0;
    struct exp *e = reel_xcalloc(1, sizeof *e);
    int rc = parse_exp(name, body, e, d);
    if (rc) {
        exp_free(e);
        return rc;
    }
    pthread_mutex_lock(&x->mu);
    uint32_t at;
    if (find(x, name, &at)) {
        struct exp *old = x->e[at];
        if (!strcmp(old->canon, e->canon)) {
            exp_free(e); /* the same arms: the counts go on */
        } else {
            e->started_at = now;
            e->epoch = ++x->epoch;
            x->e[at] = e;
            exp_free(old);
        }
    } else if (x->n == REEL_EXP_MAX) {
        rc = reel_diag_fail(d, REEL_ETOOBIG,
                            "at most %d experiments run at once", REEL_EXP_MAX);
        exp_free(e);
    } else {
        e->started_at = now;
        e->epoch = ++x->epoch;
        memmove(&x->e[at + 1], &x->e[at], (x->n - at) * sizeof *x->e);
        x->e[at] = e;
        x->n++;
        *created = 1;
    }
    pthread_mutex_unlock(&x->mu);
    return rc;
}

int reel_experiments_delete(reel_experiments *x, const char *name)
{
    pthread_mutex_lock(&x->mu);
    uint32_t at;
    int rc = REEL_ENOENT;
    if (find(x, name, &at)) {
        exp_free(x->e[at]);
        memmove(&x->e[at], &x->e[at + 1], (x->n - at - 1) * sizeof *x->e);
        x->n--;
        rc = 0;
    }
    pthread_mutex_unlock(&x->mu);
    return rc;
}

uint32_t reel_experiments_count(reel_experiments *x)
{
    pthread_mutex_lock(&x->mu);
    uint32_t n = x->n;
    pthread_mutex_unlock(&x->mu);
    return n;
}

/* splitmix64's finalizer: FNV-1a alone barely moves its top bits when
 * only the last bytes differ (user ids "u1", "u2", ...). */
static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t arm_of(const struct exp *e, const char *user)
{
    uint64_t h = fnv1a(e->name, strlen(e->name) + 1, FNV_OFFSET);
    h = mix(fnv1a(user, strlen(user), h));
    double u = (double)(h >> 11) * 0x1.0p-53; /* [0, 1) */
    for (uint32_t i = 0; i < e->n_arms; i++)
        if (u < e->arm[i].cum)
            return i;
    return e->n_arms - 1;
}

void reel_experiments_assign(reel_experiments *x, const char *user,
                             const reel_reco_opts *base, reel_exp_assignment *a,
                             reel_reco_opts *opts)
{
    *opts = *base;
    unsigned done = 0;
    a->n = 0;
    pthread_mutex_lock(&x->mu);
    for (uint32_t i = 0; i < x->n; i++) {
        const struct exp *e = x->e[i];
        const struct arm *ar = &e->arm[arm_of(e, user)];
        snprintf(a->e[a->n].name, sizeof a->e[a->n].name, "%s", e->name);
        snprintf(a->e[a->n].arm, sizeof a->e[a->n].arm, "%s", ar->name);
        a->n++;
        unsigned s = ar->set & ~done;
        if (s & P_HISTORY_N)
            opts->history_n = ar->o.history_n;
        if (s & P_DECAY)
            opts->recency_decay = ar->o.recency_decay;
        if (s & P_CANDIDATES)
            opts->candidates = ar->o.candidates;
        if (s & P_MAX_PER_CAT)
            opts->max_per_category = ar->o.max_per_category;
        if (s & P_FRESH)
            opts->fresh_boost = ar->o.fresh_boost;
        if (s & P_FRESH_HL)
            opts->fresh_half_life_s = ar->o.fresh_half_life_s;
        if (s & P_RANKER)
            opts->ranker = (uint8_t)ar->ranker;
        done |= ar->set;
    }
    pthread_mutex_unlock(&x->mu);
}

/* The user's entry, added when missing. */
static struct ustat *uset_get(struct uset *s, uint64_t h)
{
    if (2 * (s->n + 1) > s->cap) {
        uint64_t cap = s->cap ? 2 * s->cap : 64;
        struct ustat *nu = reel_xcalloc(cap, sizeof *nu);
        for (uint64_t i = 0; i < s->cap; i++)
            if (s->u[i].h) {
                uint64_t j = s->u[i].h & (cap - 1);
                while (nu[j].h)
                    j = (j + 1) & (cap - 1);
                nu[j] = s->u[i];
            }
        free(s->u);
        s->u = nu;
        s->cap = cap;
    }
    uint64_t j = h & (s->cap - 1);
    while (s->u[j].h) {
        if (s->u[j].h == h)
            return &s->u[j];
        j = (j + 1) & (s->cap - 1);
    }
    s->u[j] = (struct ustat){.h = h};
    s->n++;
    return &s->u[j];
}

static void add_impression(struct uset *s, struct ustat *u)
{
    s->sn += 1, s->snn += 2.0 * u->n + 1, s->snc += u->c, s->snw += u->w;
    u->n++;
}

static void add_click(struct uset *s, struct ustat *u)
{
    s->sc += 1, s->scc += 2.0 * u->c + 1, s->snc += u->n;
    u->c++;
}

static void add_watch(struct uset *s, struct ustat *u, double x)
{
    s->sw += x, s->sww += 2 * u->w * x + x * x, s->snw += u->n * x;
    u->w += x;
}

/* By name, under the lock; NULL when it no longer runs. */
static struct exp *exp_named(reel_experiments *x, const char *name)
{
    uint32_t at;
    return find(x, name, &at) ? x->e[at] : NULL;
}

static uint32_t arm_named(const struct exp *e, const char *arm)
{
    for (uint32_t i = 0; i < e->n_arms; i++)
        if (!strcmp(e->arm[i].name, arm))
            return i;
    return UINT32_MAX;
}

void reel_experiments_served(reel_experiments *x, const char *rid,
                             const char *user, const reel_exp_assignment *a)
{
    if (!a->n)
        return;
    uint64_t uh = hash_str(user);
    pthread_mutex_lock(&x->mu);
    for (uint32_t i = 0; i < a->n; i++) {
        struct exp *e = exp_named(x, a->e[i].name);
        uint32_t k = e ? arm_named(e, a->e[i].arm) : UINT32_MAX;
        if (k == UINT32_MAX)
            continue;
        e->arm[k].requests++;
        uset_get(&e->arm[k].users, uh);
    }
    uint64_t rh = hash_str(rid);
    struct served *b = &x->cache[(rh & x->mask) * WAYS];
    uint32_t victim = 0;
    for (uint32_t w = 1; w < WAYS; w++)
        if (b[w].seq < b[victim].seq)
            victim = w;
    b[victim] = (struct served){rh, uh, x->epoch, ++x->seq};
    pthread_mutex_unlock(&x->mu);
}

void reel_experiments_event(reel_experiments *x, const char *rid, int type,
                            double watch_s, const char *user)
{
    if (!rid || !*rid)
        return;
    uint64_t rh = hash_str(rid), uh = hash_str(user);
    pthread_mutex_lock(&x->mu);
    const struct served *b = &x->cache[(rh & x->mask) * WAYS], *hit = NULL;
    for (uint32_t w = 0; w < WAYS; w++)
        if (b[w].seq && b[w].rid == rh && b[w].user == uh)
            hit = &b[w];
    for (uint32_t i = 0; hit && i < x->n; i++) {
        struct exp *e = x->e[i];
        if (e->epoch > hit->epoch)
            continue; /* started (or changed) after the answer was served */
        struct arm *ar = &e->arm[arm_of(e, user)];
        struct ustat *u = uset_get(&ar->users, uh);
        if (type == REEL_EV_IMPRESSION) {
            ar->impressions++;
            add_impression(&ar->users, u);
        } else if (type == REEL_EV_CLICK) {
            ar->clicks++;
            add_click(&ar->users, u);
        }
        if ((type == REEL_EV_WATCH || type == REEL_EV_PLAY) &&
            isfinite(watch_s) && watch_s > 0) {
            ar->watches++;
            ar->watch_sum += watch_s;
            ar->watch_sq += watch_s * watch_s;
            add_watch(&ar->users, u, watch_s);
        }
    }
    pthread_mutex_unlock(&x->mu);
}

/* ---- statistics ---- */

static const double Z95 = 1.959963984540054;

reel_exp_ci reel_exp_wilson(uint64_t s, uint64_t n)
{
    if (!n)
        return (reel_exp_ci){NAN, NAN, NAN};
    double p = (double)s / (double)n, z2 = Z95 * Z95, dn = (double)n;
    double den = 1 + z2 / dn;
    double mid = (p + z2 / (2 * dn)) / den;
    double half = Z95 * sqrt(p * (1 - p) / dn + z2 / (4 * dn * dn)) / den;
    return (reel_exp_ci){p, mid - half, mid + half};
}

double reel_exp_ztest(uint64_t x1, uint64_t n1, uint64_t x2, uint64_t n2)
{
    if (!n1 || !n2)
        return NAN;
    double p1 = (double)x1 / (double)n1, p2 = (double)x2 / (double)n2;
    double p = (double)(x1 + x2) / (double)(n1 + n2);
    double se = sqrt(p * (1 - p) * (1.0 / (double)n1 + 1.0 / (double)n2));
    if (!(se > 0))
        return NAN;
    return erfc(fabs(p1 - p2) / se / sqrt(2.0));
}

/* The continued fraction of the incomplete beta function (modified Lentz),
 * valid for x < (a + 1) / (a + b + 2). */
static double beta_cf(double a, double b, double x)
{
    const double tiny = 1e-300;
    double c = 1, d = 1 - (a + b) * x / (a + 1);
    d = fabs(d) < tiny ? tiny : d;
    d = 1 / d;
    double f = d;
    for (int m = 1; m <= 500; m++) {
        double m2 = 2.0 * m;
        double num = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
        d = 1 + num * d;
        d = fabs(d) < tiny ? tiny : d;
        c = 1 + num / c;
        c = fabs(c) < tiny ? tiny : c;
        d = 1 / d;
        f *= d * c;
        num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
        d = 1 + num * d;
        d = fabs(d) < tiny ? tiny : d;
        c = 1 + num / c;
        c = fabs(c) < tiny ? tiny : c;
        d = 1 / d;
        double step = d * c;
        f *= step;
        if (fabs(step - 1) < 1e-15)
            break;
    }
    return f;
}

/* I_x(a, b), the regularized incomplete beta function. */
static double ibeta(double a, double b, double x)
{
    if (x <= 0)
        return 0;
    if (x >= 1)
        return 1;
    double lfront =
        lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    if (x < (a + 1) / (a + b + 2))
        return exp(lfront) * beta_cf(a, b, x) / a;
    return 1 - exp(lfront) * beta_cf(b, a, 1 - x) / b;
}

double reel_exp_student_cdf(double t, double df)
{
    double tail = 0.5 * ibeta(df / 2, 0.5, df / (df + t * t)); /* P(T > |t|) */
    return t >= 0 ? 1 - tail : tail;
}

double reel_exp_welch(uint64_t n1, double s1, double ss1, uint64_t n2,
                      double s2, double ss2)
{
    if (n1 < 2 || n2 < 2)
        return NAN;
    double m1 = s1 / (double)n1, m2 = s2 / (double)n2;
    double v1 = (ss1 - (double)n1 * m1 * m1) / (double)(n1 - 1);
    double v2 = (ss2 - (double)n2 * m2 * m2) / (double)(n2 - 1);
    v1 = v1 > 0 ? v1 : 0, v2 = v2 > 0 ? v2 : 0;
    double a = v1 / (double)n1, b = v2 / (double)n2, se2 = a + b;
    if (!(se2 > 0))
        return NAN;
    double t = (m1 - m2) / sqrt(se2);
    double df =
        se2 * se2 / (a * a / (double)(n1 - 1) + b * b / (double)(n2 - 1));
    return ibeta(df / 2, 0.5, df / (df + t * t));
}

double reel_exp_delta_var(uint64_t m, double sn, double sy, double snn,
                          double syy, double sny)
{
    if (m < 2 || !(sn > 0))
        return NAN;
    double dm = (double)m, r = sy / sn, nbar = sn / dm;
    double vy = (syy - sy * sy / dm) / (dm - 1);
    double vn = (snn - sn * sn / dm) / (dm - 1);
    double cv = (sny - sn * sy / dm) / (dm - 1);
    double v = (vy - 2 * r * cv + r * r * vn) / (dm * nbar * nbar);
    return v > 0 ? v : 0;
}

/* Clicks (watch: watch seconds) per impression, users as the units: the
 * ratio of their sums and its delta-method variance. */
struct ratio {
    double r, var;
    uint64_t m;
};

static struct ratio ratio_of(const struct arm *a, int watch)
{
    const struct uset *s = &a->users;
    double sy = watch ? s->sw : s->sc, syy = watch ? s->sww : s->scc,
           sny = watch ? s->snw : s->snc;
    struct ratio q = {s->sn > 0 ? sy / s->sn : NAN, NAN, s->n};
    q.var = reel_exp_delta_var(s->n, s->sn, sy, s->snn, syy, sny);
    return q;
}

static reel_exp_ci ratio_ci(struct ratio q)
{
    double half = Z95 * sqrt(q.var);
    return (reel_exp_ci){q.r, q.r - half, q.r + half};
}

/* Two-sided p of the difference: normal (CTR) or Student's t with
 * Welch-Satterthwaite degrees of freedom over the users (watch time). */
static double ratio_p(struct ratio a, struct ratio b, int welch)
{
    double v = a.var + b.var;
    if (!(v > 0) || !isfinite(a.r) || !isfinite(b.r))
        return NAN;
    double t = (a.r - b.r) / sqrt(v);
    if (!welch)
        return erfc(fabs(t) / sqrt(2.0));
    double df =
        v * v /
        (a.var * a.var / (double)(a.m - 1) + b.var * b.var / (double)(b.m - 1));
    return 2 * reel_exp_student_cdf(-fabs(t), df);
}

static json_t *num(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static json_t *ci_json(reel_exp_ci c)
{
    return json_pack("{s:o, s:[o, o]}", "value", num(c.value), "ci95",
                     num(c.lo), num(c.hi));
}

static json_t *exp_json(const struct exp *e)
{
    json_t *arms = json_array();
    const struct arm *c = &e->arm[e->control];
    struct ratio cc = ratio_of(c, 0), cw = ratio_of(c, 1);
    for (uint32_t i = 0; i < e->n_arms; i++) {
        const struct arm *a = &e->arm[i];
        struct ratio ac = ratio_of(a, 0), aw = ratio_of(a, 1);
        json_t *o = json_pack(
            "{s:s, s:f, s:I, s:I, s:I, s:I, s:o, s:o}", "name", a->name,
            "share", a->share, "users", (json_int_t)a->users.n, "requests",
            (json_int_t)a->requests, "impressions", (json_int_t)a->impressions,
            "clicks", (json_int_t)a->clicks, "ctr", ci_json(ratio_ci(ac)),
            "watch_s_per_impression", ci_json(ratio_ci(aw)));
        if (i != e->control)
            json_object_set_new(
                o, "vs_control",
                json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "ctr_diff",
                          num(ac.r - cc.r), "ctr_p", num(ratio_p(ac, cc, 0)),
                          "watch_diff", num(aw.r - cw.r), "watch_p",
                          num(ratio_p(aw, cw, 1)), "ctr_p_impressions",
                          num(reel_exp_ztest(a->clicks, a->impressions,
                                             c->clicks, c->impressions)),
                          "watch_p_impressions",
                          num(reel_exp_welch(a->impressions, a->watch_sum,
                                             a->watch_sq, c->impressions,
                                             c->watch_sum, c->watch_sq))));
        json_array_append_new(arms, o);
    }
    return json_pack("{s:s, s:s, s:f, s:o}", "name", e->name, "control",
                     e->arm[e->control].name, "started_at", e->started_at,
                     "arms", arms);
}

json_t *reel_experiments_json(reel_experiments *x, const char *name, int *rc)
{
    *rc = 0;
    pthread_mutex_lock(&x->mu);
    json_t *out;
    if (name) {
        struct exp *e = exp_named(x, name);
        out = e ? exp_json(e) : NULL;
        if (!e)
            *rc = REEL_ENOENT;
    } else {
        out = json_array();
        for (uint32_t i = 0; i < x->n; i++)
            json_array_append_new(out, exp_json(x->e[i]));
    }
    pthread_mutex_unlock(&x->mu);
    return out;
}
