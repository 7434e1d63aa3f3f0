/*
 * bench_load: how long opening a dataset with N events takes (the issue's
 * budget: 10M events in about a second), against numpy loading the same
 * columns from .npy files in the same run (bench/load_peer.py).
 *
 *   bench_load DIR [N_EVENTS]   writes DIR/dataset.reel and .npy files under
 *                               DIR/npy, then times reel_dataset_open and
 *                               one pass over the event columns.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/clock.h"
#include "base/rng.h"
#include "data/dataset.h"

static void write_npy(const char *dir, const char *name, const char *descr,
                      const void *data, size_t elem, uint64_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    char hdr[128];
    int len = snprintf(hdr, sizeof hdr,
                       "{'descr': '%s', 'fortran_order': False, 'shape': "
                       "(%llu,), }",
                       descr, (unsigned long long)n);
    /* Pad so magic (6) + version (2) + length (2) + header is 64-aligned. */
    int total = 10 + len + 1;
    int padn = (64 - total % 64) % 64;
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    uint16_t hl = (uint16_t)(len + padn + 1);
    fwrite(&hl, 2, 1, f);
    fwrite(hdr, 1, (size_t)len, f);
    for (int i = 0; i < padn; i++)
        fputc(' ', f);
    fputc('\n', f);
    fwrite(data, elem, n, f);
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_load DIR [N_EVENTS]\n");
        return 2;
    }
    const char *dir = argv[1];
    uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 10000000ULL;
    uint32_t nu = 100000, nv = 50000;
    reel_dsbuild *b;
    reel_dsbuild_new(&b);
    char id[32];
    for (uint32_t i = 0; i < nv; i++) {
        snprintf(id, sizeof id, "v%u", i);
        reel_dsbuild_video_ref(b, id, strlen(id));
    }
    for (uint32_t i = 0; i < nu; i++) {
        snprintf(id, sizeof id, "u%u", i);
        reel_dsbuild_user_ref(b, id, strlen(id));
    }
    reel_rng r;
    reel_rng_seed(&r, 1);
    reel_dsbuild_reserve_events(b, n);
    reel_diag d;
    for (uint64_t i = 0; i < n; i++) {
        reel_event_rec e = reel_event_rec_empty();
        e.user = (uint32_t)reel_rng_below(&r, nu);
        e.video = (uint32_t)reel_rng_below(&r, nv);
        e.type = (int)reel_rng_below(&r, REEL_EV__COUNT);
        e.ts = 1.7e9 + reel_rng_uniform(&r) * 86400.0 * 90;
        e.watch_s = reel_rng_uniform(&r) * 3600;
        if (reel_dsbuild_add_event(b, &e, &d))
            return 1;
    }
    double t0 = reel_clock_mono();
    if (reel_dsbuild_write(b, dir, &d)) {
        fprintf(stderr, "%s\n", d.msg);
        return 1;
    }
    double t_write = reel_clock_mono() - t0;
    reel_dsbuild_free(b);

    /* Open: map + validate + CRC every section, then touch every event
     * column once (sum), which is what a consumer pays. */
    double best = INFINITY, best_nocheck = INFINITY;
    double sink = 0;
    for (int rep = 0; rep < 5; rep++) {
        t0 = reel_clock_mono();
        reel_dataset *ds;
        if (reel_dataset_open(dir, &ds, &d)) {
            fprintf(stderr, "%s\n", d.msg);
            return 1;
        }
        double t_open = reel_clock_mono() - t0;
        const reel_events *e = reel_dataset_events(ds);
        for (uint64_t i = 0; i < e->n; i++)
            sink += e->ts[i] + e->user[i] + e->video[i] + e->type[i] +
                    e->watch_s[i];
        double t = reel_clock_mono() - t0;
        if (t < best)
            best = t;
        if (t_open < best_nocheck)
            best_nocheck = t_open;
        if (rep == 4) {
            char npy[4096];
            snprintf(npy, sizeof npy, "%s/npy", dir);
            mkdir(npy, 0755);
            write_npy(npy, "ts", "<f8", e->ts, 8, e->n);
            write_npy(npy, "user", "<u4", e->user, 4, e->n);
            write_npy(npy, "video", "<u4", e->video, 4, e->n);
            write_npy(npy, "type", "|u1", e->type, 1, e->n);
            write_npy(npy, "watch", "<f4", e->watch_s, 4, e->n);
            write_npy(npy, "rating", "<f4", e->rating, 4, e->n);
        }
        reel_dataset_close(ds);
    }
    struct stat st;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, REEL_DATASET_FILE);
    stat(path, &st);
    printf("{\"events\": %llu, \"file_mb\": %.1f, \"write_s\": %.3f, "
           "\"open_s\": %.3f, \"open_and_scan_s\": %.3f, \"sink\": %.0f}\n",
           (unsigned long long)n, st.st_size / 1e6, t_write, best_nocheck, best,
           fmod(sink, 10));
    return 0;
}
