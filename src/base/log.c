#include "base/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_int level = -1;

static int current(void)
{
    int l = atomic_load_explicit(&level, memory_order_relaxed);
    if (l >= 0)
        return l;
    const char *env = getenv("REEL_LOG");
    l = REEL_LOG_INFO;
    if (env) {
        if (!strcmp(env, "error"))
            l = REEL_LOG_ERROR;
        else if (!strcmp(env, "warn"))
            l = REEL_LOG_WARN;
        else if (!strcmp(env, "debug"))
            l = REEL_LOG_DEBUG;
    }
    atomic_store_explicit(&level, l, memory_order_relaxed);
    return l;
}

void reel_log_set_level(enum reel_log_level l)
{
    atomic_store_explicit(&level, (int)l, memory_order_relaxed);
}

int reel_log_enabled(enum reel_log_level l)
{
    return (int)l <= current();
}

void reel_log(enum reel_log_level l, const char *fmt, ...)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    if (!reel_log_enabled(l))
        return;
    char line[1024];
    int n = snprintf(line, sizeof line, "reel: %s: ", names[l]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
