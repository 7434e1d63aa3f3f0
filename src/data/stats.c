#include "data/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/clock.h"
#include "base/mem.h"
#include "base/sort.h"

const double reel_stats_qlevels[REEL_STATS_NQ] = {0.0,  0.25, 0.5, 0.75,
                                                  0.90, 0.99, 1.0};

static const char *const qnames[REEL_STATS_NQ] = {"min", "p25", "p50", "p75",
                                                  "p90", "p99", "max"};

/* Quantiles by the nearest-rank method on sorted counts. */
static void dist_of(uint32_t *counts, uint32_t n, reel_dist *out)
{
    memset(out, 0, sizeof *out);
    if (n == 0)
        return;
    qsort(counts, n, sizeof *counts, reel_sort_cmp_u32);
    double sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        sum += counts[i];
        out->n_zero += counts[i] == 0;
    }
    out->mean = sum / n;
    for (int k = 0; k < REEL_STATS_NQ; k++) {
        double pos = reel_stats_qlevels[k] * (n - 1);
        out->q[k] = counts[(uint32_t)llround(pos)];
    }
}

void reel_stats_compute(const reel_dataset *ds, reel_stats *s)
{
    const reel_videos *v = reel_dataset_videos(ds);
    const reel_users *u = reel_dataset_users(ds);
    const reel_events *e = reel_dataset_events(ds);
    memset(s, 0, sizeof *s);
    s->n_videos = v->n;
    s->n_users = u->n;
    s->n_events = e->n;
    s->ts_min = e->n ? e->ts[0] : NAN;
    s->ts_max = e->n ? e->ts[e->n - 1] : NAN;
    s->n_categories = reel_dataset_dict(ds, REEL_DICT_CATEGORY)->n;

    uint32_t *per_user = reel_xcalloc(u->n ? u->n : 1, sizeof *per_user);
    uint32_t *per_video = reel_xcalloc(v->n ? v->n : 1, sizeof *per_video);
    uint64_t n_inter = 0;
    for (uint64_t i = 0; i < e->n; i++) {
        s->per_type[e->type[i]]++;
        /* An impression is something shown, not something done. */
        if (e->type[i] == REEL_EV_IMPRESSION)
            continue;
        per_user[e->user[i]]++;
        per_video[e->video[i]]++;
        n_inter++;
    }

    uint32_t nc = s->n_categories;
    uint64_t *cat_events = reel_xcalloc(nc ? nc : 1, sizeof *cat_events);
    uint32_t *cat_videos = reel_xcalloc(nc ? nc : 1, sizeof *cat_videos);
    for (uint32_t i = 0; i < v->n; i++) {
        if (v->cat_off[i + 1] == v->cat_off[i])
            continue;
        uint32_t c = v->cat[v->cat_off[i]];
        cat_videos[c]++;
        cat_events[c] += per_video[i];
    }
    /* Top categories by interactions, then by videos, then by id. */
    for (uint32_t k = 0; k < REEL_STATS_TOP && k < nc; k++) {
        uint32_t best = REEL_NONE;
        for (uint32_t c = 0; c < nc; c++) {
            if (cat_videos[c] == UINT32_MAX)
                continue;
            if (best == REEL_NONE || cat_events[c] > cat_events[best] ||
                (cat_events[c] == cat_events[best] &&
                 cat_videos[c] > cat_videos[best]))
                best = c;
        }
        if (best == REEL_NONE || cat_videos[best] == 0)
            break;
        s->top_cat[k] = best;
        s->top_cat_events[k] = cat_events[best];
        s->top_cat_videos[k] = cat_videos[best];
        cat_videos[best] = UINT32_MAX; /* taken */
        s->n_top = k + 1;
    }

    /* Density counts distinct (user, video) pairs among interactions. */
    if (n_inter && n_inter < UINT32_MAX) {
        uint64_t *keys = reel_xmalloc(n_inter * sizeof *keys);
        uint64_t m = 0;
        for (uint64_t i = 0; i < e->n; i++)
            if (e->type[i] != REEL_EV_IMPRESSION)
                keys[m++] = (uint64_t)e->user[i] << 32 | e->video[i];
        uint32_t *perm = reel_xmalloc(m * sizeof *perm);
        reel_sort_perm_u64(keys, (uint32_t)m, perm);
        uint64_t distinct = 0;
        for (uint64_t i = 0; i < m; i++)
            distinct += i == 0 || keys[perm[i]] != keys[perm[i - 1]];
        s->density = (double)distinct / ((double)u->n * (double)v->n);
        free(perm);
        free(keys);
    }
    dist_of(per_user, u->n, &s->per_user);
    dist_of(per_video, v->n, &s->per_video);
    free(per_user);
    free(per_video);
    free(cat_events);
    free(cat_videos);
}

static void fmt_date(double t, char *buf, size_t n)
{
    if (isnan(t)) {
        snprintf(buf, n, "-");
        return;
    }
    int y, m, d;
    reel_clock_to_civil(t, &y, &m, &d);
    snprintf(buf, n, "%04d-%02d-%02d", y, m, d);
}

static void print_dist(FILE *out, const char *label, const reel_dist *d)
{
    fprintf(out, "  %-10s", label);
    for (int k = 0; k < REEL_STATS_NQ; k++)
        fprintf(out, " %8.0f", d->q[k]);
    fprintf(out, " %9.1f %8llu\n", d->mean, (unsigned long long)d->n_zero);
}

void reel_stats_print(const reel_dataset *ds, const reel_stats *s, FILE *out)
{
    const reel_strs *cats = reel_dataset_dict(ds, REEL_DICT_CATEGORY);
    char a[16], b[16];
    fprintf(out, "source       %s\n", reel_dataset_meta(ds));
    fprintf(out, "videos       %u\nusers        %u\nevents       %llu\n",
            s->n_videos, s->n_users, (unsigned long long)s->n_events);
    fmt_date(s->ts_min, a, sizeof a);
    fmt_date(s->ts_max, b, sizeof b);
    if (s->n_events)
        fprintf(out, "time span    %s .. %s (%.1f days)\n", a, b,
                (s->ts_max - s->ts_min) / 86400.0);
    fprintf(out, "categories   %u\n", s->n_categories);
    fprintf(out, "density      %.4f%% of user x video pairs\n",
            100.0 * s->density);
    fprintf(out, "\nevents by type\n");
    for (int t = 0; t < REEL_EV__COUNT; t++)
        if (s->per_type[t])
            fprintf(out, "  %-10s %12llu  %5.1f%%\n", reel_event_type_name(t),
                    (unsigned long long)s->per_type[t],
                    100.0 * (double)s->per_type[t] / (double)s->n_events);
    if (s->n_top) {
        fprintf(out, "\ntop categories (primary)   videos  interactions\n");
        for (uint32_t k = 0; k < s->n_top; k++)
            fprintf(out, "  %-22s %10u  %12llu\n",
                    reel_strs_get(cats, s->top_cat[k], NULL),
                    s->top_cat_videos[k],
                    (unsigned long long)s->top_cat_events[k]);
    }
    fprintf(out, "\ninteractions (all events but impressions)\n  %-10s", "per");
    for (int k = 0; k < REEL_STATS_NQ; k++)
        fprintf(out, " %8s", qnames[k]);
    fprintf(out, " %9s %8s\n", "mean", "none");
    print_dist(out, "user", &s->per_user);
    print_dist(out, "video", &s->per_video);
}

static json_t *dist_json(const reel_dist *d)
{
    json_t *o = json_object();
    for (int k = 0; k < REEL_STATS_NQ; k++)
        json_object_set_new(o, qnames[k], json_real(d->q[k]));
    json_object_set_new(o, "mean", json_real(d->mean));
    json_object_set_new(o, "none", json_integer((json_int_t)d->n_zero));
    return o;
}

void reel_stats_print_json(const reel_dataset *ds, const reel_stats *s,
                           FILE *out)
{
    const reel_strs *cats = reel_dataset_dict(ds, REEL_DICT_CATEGORY);
    json_t *o = json_object();
    json_t *meta = json_loads(reel_dataset_meta(ds), 0, NULL);
    json_object_set_new(o, "meta", meta ? meta : json_object());
    json_object_set_new(o, "videos", json_integer(s->n_videos));
    json_object_set_new(o, "users", json_integer(s->n_users));
    json_object_set_new(o, "events", json_integer((json_int_t)s->n_events));
    json_object_set_new(o, "ts_min",
                        s->n_events ? json_real(s->ts_min) : json_null());
    json_object_set_new(o, "ts_max",
                        s->n_events ? json_real(s->ts_max) : json_null());
    json_object_set_new(o, "categories", json_integer(s->n_categories));
    json_object_set_new(o, "density", json_real(s->density));
    json_t *types = json_object();
    for (int t = 0; t < REEL_EV__COUNT; t++)
        json_object_set_new(types, reel_event_type_name(t),
                            json_integer((json_int_t)s->per_type[t]));
    json_object_set_new(o, "events_by_type", types);
    json_t *top = json_array();
    for (uint32_t k = 0; k < s->n_top; k++) {
        json_t *c = json_object();
        json_object_set_new(
            c, "category",
            json_string(reel_strs_get(cats, s->top_cat[k], NULL)));
        json_object_set_new(c, "videos", json_integer(s->top_cat_videos[k]));
        json_object_set_new(c, "interactions",
                            json_integer((json_int_t)s->top_cat_events[k]));
        json_array_append_new(top, c);
    }
    json_object_set_new(o, "top_categories", top);
    json_object_set_new(o, "interactions_per_user", dist_json(&s->per_user));
    json_object_set_new(o, "interactions_per_video", dist_json(&s->per_video));
    json_dumpf(o, out, JSON_COMPACT | JSON_REAL_PRECISION(10));
    fputc('\n', out);
    json_decref(o);
}
