#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *reel_strerror(int err)
{
    switch (err) {
    case REEL_OK:
        return "success";
#define X(name, num, msg)                                                      \
    case REEL_E##name:                                                         \
        return msg;
        REEL_ERRORS(X)
#undef X
    }
    return "unknown error";
}

const char *reel_errname(int err)
{
    switch (err) {
    case REEL_OK:
        return "REEL_OK";
#define X(name, num, msg)                                                      \
    case REEL_E##name:                                                         \
        return "REEL_E" #name;
        REEL_ERRORS(X)
#undef X
    }
    return "REEL_E?";
}

void reel_diag_clear(reel_diag *d)
{
    if (!d)
        return;
    d->file = NULL;
    d->line = 0;
    d->msg[0] = '\0';
}

int reel_diag_fail(reel_diag *d, int err, const char *fmt, ...)
{
    if (d) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->msg, sizeof d->msg, fmt, ap);
        va_end(ap);
    }
    return err;
}

void reel_diag_format(const reel_diag *d, char *buf, uint64_t size)
{
    if (size == 0)
        return;
    const char *msg = d->msg[0] ? d->msg : "error";
    if (d->file && d->line)
        snprintf(buf, size, "%s:%llu: %s", d->file, (unsigned long long)d->line,
                 msg);
    else if (d->file)
        snprintf(buf, size, "%s: %s", d->file, msg);
    else
        snprintf(buf, size, "%s", msg);
}
