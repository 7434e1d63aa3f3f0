/*
 * progress: "done / total, rate, ETA" on a terminal for long commands.
 *
 * Draws on stderr only when stderr is a terminal (or REEL_PROGRESS=1 forces
 * it, for tests), at most ten times a second, and erases its line when
 * finished; when not on a terminal it prints nothing. A total of 0 means
 * unknown (then only done and rate are shown). Thread rules: one thread
 * calls update; reel_progress_add() may be called from any thread.
 */
#ifndef REEL_BASE_PROGRESS_H
#define REEL_BASE_PROGRESS_H

#include <stdatomic.h>
#include <stdint.h>

typedef struct reel_progress {
    const char *label;
    const char *unit;
    uint64_t total;
    _Atomic uint64_t done;
    double start;
    double last_draw;
    int enabled;
    int drawn;
} reel_progress;

/* `label` and `unit` are borrowed (string literals in practice). */
void reel_progress_start(reel_progress *p, const char *label, const char *unit,
                         uint64_t total);
void reel_progress_set(reel_progress *p, uint64_t done);
void reel_progress_add(reel_progress *p, uint64_t n);
/* Redraws if a tenth of a second passed since the last draw. */
void reel_progress_tick(reel_progress *p);
void reel_progress_finish(reel_progress *p);

/* Formats "12.3k", "4.5M" into buf (at least 16 bytes). */
void reel_progress_human(double x, char *buf, unsigned size);

#endif
