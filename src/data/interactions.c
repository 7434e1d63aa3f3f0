#include "data/interactions.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

int reel_event_is_positive(uint8_t type)
{
    return type != REEL_EV_IMPRESSION && type != REEL_EV_SKIP &&
           type < REEL_EV__COUNT;
}

void reel_inter_build(const reel_dataset *ds, const uint8_t *keep,
                      reel_inter *out)
{
    const reel_events *e = reel_dataset_events(ds);
    uint32_t nu = reel_dataset_users(ds)->n;
    memset(out, 0, sizeof *out);
    out->n_users = nu;
    out->n_items = reel_dataset_videos(ds)->n;
    out->off = reel_xcalloc((size_t)nu + 1, sizeof *out->off);
    /* Pass 1 counts, pass 2 fills; events are already in time order, so
     * each user's list comes out sorted. `last` drops immediate repeats. */
    uint32_t *last = reel_xmalloc((nu ? nu : 1) * sizeof *last);
    memset(last, 0xff, (nu ? nu : 1) * sizeof *last);
    for (uint64_t i = 0; i < e->n; i++) {
        if ((keep && !keep[i]) || !reel_event_is_positive(e->type[i]))
            continue;
        uint32_t u = e->user[i];
        if (last[u] == e->video[i])
            continue;
        last[u] = e->video[i];
        out->off[u + 1]++;
    }
    for (uint32_t u = 0; u < nu; u++)
        out->off[u + 1] += out->off[u];
    uint64_t total = out->off[nu];
    out->item = reel_xmalloc((total ? total : 1) * sizeof *out->item);
    out->ts = reel_xmalloc((total ? total : 1) * sizeof *out->ts);
    out->event = reel_xmalloc((total ? total : 1) * sizeof *out->event);
    uint64_t *at = reel_xmalloc(((size_t)nu + 1) * sizeof *at);
    memcpy(at, out->off, ((size_t)nu + 1) * sizeof *at);
    memset(last, 0xff, (nu ? nu : 1) * sizeof *last);
    for (uint64_t i = 0; i < e->n; i++) {
        if ((keep && !keep[i]) || !reel_event_is_positive(e->type[i]))
            continue;
        uint32_t u = e->user[i];
        if (last[u] == e->video[i])
            continue;
        last[u] = e->video[i];
        uint64_t k = at[u]++;
        out->item[k] = e->video[i];
        out->ts[k] = e->ts[i];
        out->event[k] = i;
    }
    free(at);
    free(last);
}

void reel_inter_free(reel_inter *x)
{
    if (!x)
        return;
    free(x->off);
    free(x->item);
    free(x->ts);
    free(x->event);
    memset(x, 0, sizeof *x);
}
