/*
 * clock: time in seconds as doubles.
 *
 * reel_clock_mono() is for measuring durations; reel_clock_wall() is Unix
 * time, the unit of every timestamp in reel (events' ts, published_at).
 * Thread rules: any thread.
 */
#ifndef REEL_BASE_CLOCK_H
#define REEL_BASE_CLOCK_H

#include <stddef.h>

double reel_clock_mono(void);
double reel_clock_wall(void);

/* Unix time of 00:00:00 UTC on the given civil date (proleptic Gregorian). */
double reel_clock_from_civil(int year, int month, int day);

/* Splits Unix time into a UTC civil date. */
void reel_clock_to_civil(double t, int *year, int *month, int *day);

/*
 * Parses a time given as text: RFC 3339 ("2024-05-01T12:30:00Z", with an
 * optional fraction and a Z or +hh:mm offset), a date ("2024-05-01",
 * midnight UTC), or a decimal number of Unix seconds. 0 or REEL_EFORMAT.
 */
int reel_clock_parse(const char *s, size_t len, double *out);

#endif
