#include "base/progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"

void reel_progress_human(double x, char *buf, unsigned size)
{
    if (x >= 1e9)
        snprintf(buf, size, "%.2fG", x / 1e9);
    else if (x >= 1e6)
        snprintf(buf, size, "%.2fM", x / 1e6);
    else if (x >= 1e4)
        snprintf(buf, size, "%.1fk", x / 1e3);
    else
        snprintf(buf, size, "%.0f", x);
}

void reel_progress_start(reel_progress *p, const char *label, const char *unit,
                         uint64_t total)
{
    const char *force = getenv("REEL_PROGRESS");
    p->label = label;
    p->unit = unit ? unit : "";
    p->total = total;
    atomic_store(&p->done, 0);
    p->start = reel_clock_mono();
    p->last_draw = p->start;
    p->enabled = force ? !strcmp(force, "1") : isatty(STDERR_FILENO);
    p->drawn = 0;
}

static void draw(reel_progress *p, double now)
{
    uint64_t done = atomic_load_explicit(&p->done, memory_order_relaxed);
    double el = now - p->start;
    double rate = el > 0 ? (double)done / el : 0.0;
    char d[16], t[16], r[16], line[160];
    reel_progress_human((double)done, d, sizeof d);
    reel_progress_human(rate, r, sizeof r);
    if (p->total) {
        reel_progress_human((double)p->total, t, sizeof t);
        double pct = 100.0 * (double)done / (double)p->total;
        double eta =
            rate > 0
                ? (double)(p->total - (done < p->total ? done : p->total)) /
                      rate
                : 0;
        snprintf(line, sizeof line,
                 "\r%s: %s/%s %s (%.1f%%) %s/s ETA %.0fs\x1b[K", p->label, d, t,
                 p->unit, pct > 100 ? 100.0 : pct, r, eta);
    } else {
        snprintf(line, sizeof line, "\r%s: %s %s %s/s %.0fs\x1b[K", p->label, d,
                 p->unit, r, el);
    }
    fputs(line, stderr);
    fflush(stderr);
    p->drawn = 1;
    p->last_draw = now;
}

void reel_progress_set(reel_progress *p, uint64_t done)
{
    atomic_store_explicit(&p->done, done, memory_order_relaxed);
    reel_progress_tick(p);
}

void reel_progress_add(reel_progress *p, uint64_t n)
{
    atomic_fetch_add_explicit(&p->done, n, memory_order_relaxed);
}

void reel_progress_tick(reel_progress *p)
{
    if (!p->enabled)
        return;
    double now = reel_clock_mono();
    /* Commands shorter than a second never draw. */
    if (now - p->start < 1.0 || now - p->last_draw < 0.1)
        return;
    draw(p, now);
}

void reel_progress_finish(reel_progress *p)
{
    if (p->enabled && p->drawn) {
        fputs("\r\x1b[K", stderr);
        fflush(stderr);
    }
    p->drawn = 0;
}
