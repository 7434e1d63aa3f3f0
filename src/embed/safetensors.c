/* safetensors: see safetensors.h. */
#include "embed/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/mem.h"

struct reel_safetensors {
    char *path;
    void *map;
    uint64_t size;
    reel_st_tensor *t;
    uint32_t n;
    char *names; /* all tensor names, NUL-separated */
};

static const struct {
    const char *name;
    uint32_t size;
} DTYPES[] = {
    [REEL_ST_BOOL] = {"BOOL", 1}, [REEL_ST_U8] = {"U8", 1},
    [REEL_ST_I8] = {"I8", 1},     [REEL_ST_I16] = {"I16", 2},
    [REEL_ST_U16] = {"U16", 2},   [REEL_ST_F16] = {"F16", 2},
    [REEL_ST_BF16] = {"BF16", 2}, [REEL_ST_I32] = {"I32", 4},
    [REEL_ST_U32] = {"U32", 4},   [REEL_ST_F32] = {"F32", 4},
    [REEL_ST_I64] = {"I64", 8},   [REEL_ST_U64] = {"U64", 8},
    [REEL_ST_F64] = {"F64", 8},
};
#define N_DTYPES (sizeof DTYPES / sizeof DTYPES[0])

const char *reel_st_dtype_name(reel_st_dtype t)
{
    return (unsigned)t < N_DTYPES ? DTYPES[t].name : "?";
}

uint32_t reel_st_dtype_size(reel_st_dtype t)
{
    return (unsigned)t < N_DTYPES ? DTYPES[t].size : 0;
}

static int parse_dtype(const char *s, reel_st_dtype *out)
{
    for (uint32_t i = 0; i < N_DTYPES; i++)
        if (!strcmp(s, DTYPES[i].name)) {
            *out = (reel_st_dtype)i;
            return 0;
        }
    return -1;
}

static int by_begin(const void *a, const void *b)
{
    const reel_st_tensor *x = *(const reel_st_tensor *const *)a;
    const reel_st_tensor *y = *(const reel_st_tensor *const *)b;
    return (x->data > y->data) - (x->data < y->data);
}

/* One tensor's record: fills t (name set by the caller). */
static int parse_tensor(const char *path, const char *name, json_t *v,
                        const uint8_t *base, uint64_t data_len,
                        reel_st_tensor *t, reel_diag *d)
{
    if (!json_is_object(v))
        return reel_diag_fail(d, REEL_EFORMAT, "%s: tensor '%s': not an object",
                              path, name);
    json_t *dt = json_object_get(v, "dtype");
    json_t *sh = json_object_get(v, "shape");
    json_t *off = json_object_get(v, "data_offsets");
    if (!json_is_string(dt) || !json_is_array(sh) || !json_is_array(off) ||
        json_array_size(off) != 2)
        return reel_diag_fail(d, REEL_EFORMAT,
                              "%s: tensor '%s': needs \"dtype\", \"shape\" and "
                              "\"data_offsets\": [begin, end]",
                              path, name);
    if (parse_dtype(json_string_value(dt), &t->dtype))
        return reel_diag_fail(d, REEL_EFORMAT,
                              "%s: tensor '%s': unknown dtype '%s'", path, name,
                              json_string_value(dt));
    size_t nd = json_array_size(sh);
    if (nd > REEL_SAFETENSORS_MAX_DIMS)
        return reel_diag_fail(d, REEL_EFORMAT,
                              "%s: tensor '%s': %zu dimensions (at most %u)",
                              path, name, nd, REEL_SAFETENSORS_MAX_DIMS);
    t->ndim = (uint32_t)nd;
    uint64_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        json_t *e = json_array_get(sh, i);
        if (!json_is_integer(e) || json_integer_value(e) < 0)
            return reel_diag_fail(
                d, REEL_EFORMAT,
                "%s: tensor '%s': shape entries must be integers >= 0", path,
                name);
        uint64_t s = (uint64_t)json_integer_value(e);
        t->shape[i] = s;
        if (s && numel > UINT64_MAX / s)
            return reel_diag_fail(d, REEL_EFORMAT,
                                  "%s: tensor '%s': shape overflows", path,
                                  name);
        numel *= s;
    }
    t->numel = numel;
    json_t *b = json_array_get(off, 0), *e = json_array_get(off, 1);
    if (!json_is_integer(b) || !json_is_integer(e) ||
        json_integer_value(b) < 0 ||
        json_integer_value(e) < json_integer_value(b))
        return reel_diag_fail(d, REEL_EFORMAT,
                              "%s: tensor '%s': bad data_offsets", path, name);
    uint64_t begin = (uint64_t)json_integer_value(b),
             end = (uint64_t)json_integer_value(e);
    if (end > data_len)
        return reel_diag_fail(
            d, REEL_EFORMAT,
            "%s: tensor '%s': data_offsets end %llu past the data (%llu "
            "bytes; truncated file?)",
            path, name, (unsigned long long)end, (unsigned long long)data_len);
    uint32_t es = DTYPES[t->dtype].size;
    if (numel > UINT64_MAX / es || numel * es != end - begin)
        return reel_diag_fail(
            d, REEL_EFORMAT,
            "%s: tensor '%s': %llu bytes for %llu elements of %s", path, name,
            (unsigned long long)(end - begin), (unsigned long long)numel,
            DTYPES[t->dtype].name);
    t->data = base + begin;
    t->nbytes = end - begin;
    return 0;
}

int reel_safetensors_open(const char *path, reel_safetensors **out,
                          reel_diag *d)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return reel_diag_fail(d, errno == ENOENT ? REEL_ENOENT : REEL_EIO,
                              "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb)) {
        close(fd);
        return reel_diag_fail(d, REEL_EIO, "cannot stat %s", path);
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (size < 8) {
        close(fd);
        return reel_diag_fail(
            d, REEL_EFORMAT, "%s: %llu bytes, too short for a safetensors file",
            path, (unsigned long long)size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return reel_diag_fail(d, REEL_EIO, "cannot map %s: %s", path,
                              strerror(errno));
    reel_safetensors *st = reel_xcalloc(1, sizeof *st);
    st->path = reel_xstrndup(path, strlen(path));
    st->map = map;
    st->size = size;
    int rc = 0;
    json_t *root = NULL;
    const uint8_t *p = map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | p[i];
    if (hlen < 2 || hlen > REEL_SAFETENSORS_MAX_HEADER || hlen > size - 8) {
        rc = reel_diag_fail(
            d, REEL_EFORMAT,
            "%s: header length %llu does not fit (file %llu bytes; not a "
            "safetensors file?)",
            path, (unsigned long long)hlen, (unsigned long long)size);
        goto fail;
    }
    json_error_t je;
    root = json_loadb((const char *)p + 8, hlen, JSON_REJECT_DUPLICATES, &je);
    if (!root || !json_is_object(root)) {
        rc = reel_diag_fail(d, REEL_EFORMAT,
                            "%s: header is not a JSON object%s%s", path,
                            root ? "" : ": ", root ? "" : je.text);
        goto fail;
    }
    size_t n = json_object_size(root);
    if (json_object_get(root, "__metadata__"))
        n--;
    if (n > UINT32_MAX / 2) {
        rc = reel_diag_fail(d, REEL_EFORMAT, "%s: too many tensors", path);
        goto fail;
    }
    st->t = reel_xcalloc(n ? n : 1, sizeof *st->t);
    size_t names_len = 0;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) names_len += strlen(key) + 1;
    st->names = reel_xmalloc(names_len ? names_len : 1);
    char *np = st->names;
    const uint8_t *base = p + 8 + hlen;
    uint64_t data_len = size - 8 - hlen;
    json_object_foreach(root, key, v)
    {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(v)) {
                rc = reel_diag_fail(d, REEL_EFORMAT,
                                    "%s: __metadata__ is not an object", path);
                goto fail;
            }
            continue;
        }
        reel_st_tensor *t = &st->t[st->n];
        size_t kl = strlen(key);
        memcpy(np, key, kl + 1);
        t->name = np;
        np += kl + 1;
        rc = parse_tensor(path, key, v, base, data_len, t, d);
        if (rc)
            goto fail;
        st->n++;
    }
    /* No two tensors may share bytes. */
    if (st->n > 1) {
        const reel_st_tensor **s = reel_xmalloc(st->n * sizeof *s);
        for (uint32_t i = 0; i < st->n; i++)
            s[i] = &st->t[i];
        qsort(s, st->n, sizeof *s, by_begin);
        for (uint32_t i = 1; i < st->n; i++) {
            const uint8_t *prev_end =
                (const uint8_t *)s[i - 1]->data + s[i - 1]->nbytes;
            if ((const uint8_t *)s[i]->data < prev_end && s[i]->nbytes &&
                s[i - 1]->nbytes) {
                rc = reel_diag_fail(d, REEL_EFORMAT,
                                    "%s: tensors '%s' and '%s' overlap", path,
                                    s[i - 1]->name, s[i]->name);
                free(s);
                goto fail;
            }
        }
        free(s);
    }
    json_decref(root);
    *out = st;
    return 0;
fail:
    json_decref(root);
    reel_safetensors_close(st);
    return rc;
}

void reel_safetensors_close(reel_safetensors *st)
{
    if (!st)
        return;
    if (st->map)
        munmap(st->map, st->size);
    free(st->t);
    free(st->names);
    free(st->path);
    free(st);
}

uint32_t reel_safetensors_count(const reel_safetensors *st)
{
    return st->n;
}

const reel_st_tensor *reel_safetensors_at(const reel_safetensors *st,
                                          uint32_t i)
{
    if (i >= st->n)
        return NULL;
    return &st->t[i];
}

const reel_st_tensor *reel_safetensors_find(const reel_safetensors *st,
                                            const char *name)
{
    for (uint32_t i = 0; i < st->n; i++)
        if (!strcmp(st->t[i].name, name))
            return &st->t[i];
    return NULL;
}

const char *reel_safetensors_path(const reel_safetensors *st)
{
    return st->path;
}

float reel_st_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    float f;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24 */
        f = ldexpf((float)man, -24);
        return sign ? -f : f;
    }
    uint32_t bits;
    if (exp == 31)
        bits = sign | 0x7f800000u | (man << 13);
    else
        bits = sign | ((exp + 112) << 23) | (man << 13);
    memcpy(&f, &bits, 4);
    return f;
}

float reel_st_bf16_to_f32(uint16_t b)
{
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int reel_safetensors_to_f32(const reel_st_tensor *t, float *out)
{
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case REEL_ST_F32:
        memcpy(out, p, t->numel * 4);
        return 0;
    case REEL_ST_F16:
    case REEL_ST_BF16:
        for (uint64_t i = 0; i < t->numel; i++) {
            uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
            out[i] = t->dtype == REEL_ST_F16 ? reel_st_f16_to_f32(h)
                                             : reel_st_bf16_to_f32(h);
        }
        return 0;
    default:
        return REEL_EUNSUPPORTED;
    }
}
