/*
 * bench_clip: CLIP's towers in reel (src/embed/clip) on a checkpoint that
 * bench/clip/torch_clip.py wrote (ViT-B/32 sizes, random weights), and this
 * CPU's float32 FMA peak, measured.
 *
 *   bench_clip DIR THREADS
 *
 * Prints one JSON line: images/s at batch 1 and 8, 77-token texts/s at
 * batch 8 (best of 3 runs of about 2 s each), the FMA peak in GFLOP/s for
 * THREADS threads (independent fused multiply-adds on 16-float vectors,
 * AVX-512 when the CPU has it, else AVX2), and the largest difference to
 * torch's embeddings of the same inputs when DIR holds them.
 */
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "embed/clip.h"

static void *slurp(const char *dir, const char *name, size_t want)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    if (!f)
        return NULL;
    void *b = malloc(want);
    size_t n = fread(b, 1, want, f);
    fclose(f);
    if (n != want) {
        free(b);
        return NULL;
    }
    return b;
}

enum { FMA_ITERS = 200000000 / 16 };

/* 12 independent chains in registers (more than latency x throughput). */
#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

__attribute__((target("avx512f"))) static float fma512(void)
{
    __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
#define DECL(i) __m512 a##i = _mm512_set1_ps((float)i);
#define STEP(i) a##i = _mm512_fmadd_ps(a##i, m, c);
#define SUM(i) s = _mm512_add_ps(s, a##i);
    CHAINS(DECL)
    for (long it = 0; it < FMA_ITERS; it++) {
        CHAINS(STEP)
        __asm__ volatile("" ::: "memory");
    }
    __m512 s = _mm512_setzero_ps();
    CHAINS(SUM)
    return _mm512_reduce_add_ps(s);
#undef DECL
#undef STEP
#undef SUM
}

__attribute__((target("avx2,fma"))) static float fma256(void)
{
    __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
#define DECL(i) __m256 a##i = _mm256_set1_ps((float)i);
#define STEP(i) a##i = _mm256_fmadd_ps(a##i, m, c);
#define SUM(i) s = _mm256_add_ps(s, a##i);
    CHAINS(DECL)
    for (long it = 0; it < FMA_ITERS * 2; it++) {
        CHAINS(STEP)
        __asm__ volatile("" ::: "memory");
    }
    __m256 s = _mm256_setzero_ps();
    CHAINS(SUM)
    float o[8];
    _mm256_storeu_ps(o, s);
    return o[0];
#undef DECL
#undef STEP
#undef SUM
}

static volatile float sink;
static void *fma_thread(void *arg)
{
    sink = __builtin_cpu_supports("avx512f") ? fma512() : fma256();
    return arg;
}

/* GFLOP/s over `threads` threads: 2 flops per lane per FMA. */
static double fma_peak(int threads)
{
    double flops = 2.0 * 16 * 12 * (double)FMA_ITERS * threads, best = 0;
    for (int r = 0; r < 3; r++) {
        pthread_t t[8];
        double t0 = reel_clock_mono();
        for (int i = 0; i < threads; i++)
            pthread_create(&t[i], NULL, fma_thread, NULL);
        for (int i = 0; i < threads; i++)
            pthread_join(t[i], NULL);
        double g = flops / (reel_clock_mono() - t0) / 1e9;
        best = g > best ? g : best;
    }
    return best;
}

typedef void (*fn)(void *);
struct job {
    const reel_clip_weights *w;
    const float *px;
    const int32_t *ids;
    const uint32_t *len;
    uint32_t n;
    float *out;
};
static void run_img(void *a)
{
    struct job *j = a;
    reel_clip_image_embed(j->w, j->px, j->n, j->out);
}
static void run_txt(void *a)
{
    struct job *j = a;
    reel_clip_text_embed(j->w, j->ids, j->len, 77, j->n, 49407, j->out);
}

/* seconds per call, best of 3 runs of about 2/3 s each */
static double best(fn f, void *a)
{
    f(a);
    double b = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = reel_clock_mono(), dt;
        long n = 0;
        do {
            f(a);
            n++;
            dt = reel_clock_mono() - t0;
        } while (dt < 0.67);
        b = dt / n < b ? dt / n : b;
    }
    return b;
}

static double maxdiff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabs((double)a[i] - b[i]) > m ? fabs((double)a[i] - b[i]) : m;
    return m;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench_clip DIR THREADS\n");
        return 2;
    }
    const char *dir = argv[1];
    int threads = atoi(argv[2]);
    reel_clip_weights *w;
    reel_diag d;
    reel_diag_clear(&d);
    if (reel_clip_weights_open(dir, &w, &d)) {
        fprintf(stderr, "bench_clip: %s\n", d.msg);
        return 1;
    }
    float *px = slurp(dir, "px8.f32", 8 * 3 * 224 * 224 * 4);
    int32_t *ids = slurp(dir, "ids8.i32", 8 * 77 * 4);
    if (!px || !ids) {
        fprintf(stderr, "bench_clip: %s lacks px8.f32 or ids8.i32\n", dir);
        return 1;
    }
    uint32_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = 77;
    float out[8 * 512];
    reel_clip_set_threads(threads);
    struct job j = {w, px, ids, len, 1, out};
    double b1 = best(run_img, &j);
    j.n = 8;
    double b8 = best(run_img, &j);
    double t8 = best(run_txt, &j);
    /* agreement with torch on the same two inputs, when it wrote them */
    double di = -1, dt = -1;
    float *ti = slurp(dir, "torch_img2.f32", 2 * 512 * 4),
          *tt = slurp(dir, "torch_txt2.f32", 2 * 512 * 4);
    if (ti && tt) {
        reel_clip_image_embed(w, px, 2, out);
        di = maxdiff(out, ti, 2 * 512);
        reel_clip_text_embed(w, ids, len, 77, 2, 49407, out);
        dt = maxdiff(out, tt, 2 * 512);
    }
    printf("{\"threads\": %d, \"image_b1\": %.3f, \"image_b8\": %.3f, "
           "\"text_b8\": %.3f, "
           "\"fma_gflops\": %.1f, \"max_diff_image\": %.3g, \"max_diff_text\": "
           "%.3g}\n",
           threads, 1 / b1, 8 / b8, 8 / t8, fma_peak(threads), di, dt);
    free(ti), free(tt), free(px), free(ids);
    reel_clip_weights_free(w);
    return 0;
}
