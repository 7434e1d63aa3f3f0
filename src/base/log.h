/*
 * log: one-line diagnostics on stderr.
 *
 * The level comes from the REEL_LOG environment variable (error, warn,
 * info, debug; default info) the first time a message is logged, or from
 * reel_log_set_level(). Lines are written with a single write(2) so lines
 * from different threads do not interleave. Thread rules: any thread.
 */
#ifndef REEL_BASE_LOG_H
#define REEL_BASE_LOG_H

enum reel_log_level {
    REEL_LOG_ERROR = 0,
    REEL_LOG_WARN = 1,
    REEL_LOG_INFO = 2,
    REEL_LOG_DEBUG = 3,
};

void reel_log_set_level(enum reel_log_level level);
int reel_log_enabled(enum reel_log_level level);
void reel_log(enum reel_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define reel_log_error(...) reel_log(REEL_LOG_ERROR, __VA_ARGS__)
#define reel_log_warn(...) reel_log(REEL_LOG_WARN, __VA_ARGS__)
#define reel_log_info(...) reel_log(REEL_LOG_INFO, __VA_ARGS__)
#define reel_log_debug(...) reel_log(REEL_LOG_DEBUG, __VA_ARGS__)

#endif
