#include "base/clock.h"

#include "base/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double reel_clock_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double reel_clock_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Days since 1970-01-01 for a civil date (Howard Hinnant's algorithm). */
static long days_from_civil(long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long)doe - 719468;
}

double reel_clock_from_civil(int year, int month, int day)
{
    return (double)days_from_civil(year, (unsigned)month, (unsigned)day) *
           86400.0;
}

void reel_clock_to_civil(double t, int *year, int *month, int *day)
{
    long z = (long)floor(t / 86400.0) + 719468;
    long era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long y = (long)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1;
    unsigned m = mp < 10 ? mp + 3 : mp - 9;
    *year = (int)(y + (m <= 2));
    *month = (int)m;
    *day = (int)d;
}

/* Reads exactly n digits at s[*i]; -1 when they are not all digits. */
static long digits(const char *s, size_t len, size_t *i, int n)
{
    long v = 0;
    for (int k = 0; k < n; k++, (*i)++) {
        if (*i >= len || s[*i] < '0' || s[*i] > '9')
            return -1;
        v = v * 10 + (s[*i] - '0');
    }
    return v;
}

static int days_in_month(long y, long m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 ? 28 + leap : dm[m - 1];
}

int reel_clock_parse(const char *s, size_t len, double *out)
{
    if (len == 0 || len > 64)
        return REEL_EFORMAT;
    char tmp[65];
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    /* A plain number is Unix seconds. */
    if (len < 4 || tmp[4] != '-') {
        char *end;
        double v = strtod(tmp, &end);
        if (*end || end == tmp || !isfinite(v))
            return REEL_EFORMAT;
        *out = v;
        return 0;
    }
    size_t i = 0;
    long y = digits(s, len, &i, 4);
    if (y < 0 || i >= len || s[i++] != '-')
        return REEL_EFORMAT;
    long mo = digits(s, len, &i, 2);
    if (mo < 1 || mo > 12 || i >= len || s[i++] != '-')
        return REEL_EFORMAT;
    long d = digits(s, len, &i, 2);
    if (d < 1 || d > days_in_month(y, mo))
        return REEL_EFORMAT;
    double t = reel_clock_from_civil((int)y, (int)mo, (int)d);
    if (i == len) {
        *out = t;
        return 0;
    }
    if (s[i] != 'T' && s[i] != 't' && s[i] != ' ')
        return REEL_EFORMAT;
    i++;
    long hh = digits(s, len, &i, 2);
    if (hh < 0 || hh > 23 || i >= len || s[i++] != ':')
        return REEL_EFORMAT;
    long mm = digits(s, len, &i, 2);
    if (mm < 0 || mm > 59)
        return REEL_EFORMAT;
    double sec = 0;
    if (i < len && s[i] == ':') {
        i++;
        long ss = digits(s, len, &i, 2);
        if (ss < 0 || ss > 60)
            return REEL_EFORMAT;
        sec = (double)ss;
        if (i < len && s[i] == '.') {
            i++;
            double scale = 0.1;
            size_t start = i;
            while (i < len && s[i] >= '0' && s[i] <= '9') {
                sec += (s[i] - '0') * scale;
                scale /= 10;
                i++;
            }
            if (i == start)
                return REEL_EFORMAT;
        }
    }
    t += (double)hh * 3600 + (double)mm * 60 + sec;
    if (i == len)
        return REEL_EFORMAT; /* a time of day needs its offset */
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        int sign = s[i++] == '+' ? 1 : -1;
        long oh = digits(s, len, &i, 2);
        if (oh < 0 || oh > 23 || i >= len || s[i++] != ':')
            return REEL_EFORMAT;
        long om = digits(s, len, &i, 2);
        if (om < 0 || om > 59)
            return REEL_EFORMAT;
        t -= sign * (double)(oh * 3600 + om * 60);
    } else {
        return REEL_EFORMAT;
    }
    if (i != len)
        return REEL_EFORMAT;
    *out = t;
    return 0;
}
