#include "rank/gbtree.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "base/mem.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX512 1
#else
#define HAVE_AVX512 0
#endif

enum {
    DENSE_MAX_DEPTH = 8, /* deeper trees use the breadth-first layout */
    BLOCK = 256,         /* rows scored per pass over the trees */
    PAD = 32,            /* slack after the slot arrays for vector loads */
};
#define DEFAULT_RIGHT 0x80000000u
#define FEATURE_MASK 0x7fffffffu

/* A node as loaded, in the file's numbering: what the naive twin walks and
 * TreeSHAP needs. */
typedef struct gnode {
    int32_t left, right; /* -1 on leaves */
    uint32_t feature;
    float value; /* the split's threshold, or the leaf's value */
    float cover; /* sum_hessian */
    float mean;  /* the subtree's expected value under the covers */
    uint8_t default_left;
} gnode;

typedef struct gtree {
    uint32_t node0; /* first node in g->nodes */
    uint32_t n_nodes;
    uint32_t depth;
    uint32_t dense;    /* 1: complete layout in feat/thr/leaf; 0: snodes */
    uint32_t off;      /* first split slot, or first snode */
    uint32_t leaf_off; /* first leaf slot (dense) */
} gtree;

/* The breadth-first layout of deep trees: the right child is left + 1, and
 * left is 0 on leaves (the root is nobody's child). */
typedef struct snode {
    uint32_t feature; /* | DEFAULT_RIGHT */
    float value;
    uint32_t left;
} snode;

struct reel_gbtree {
    uint32_t n_features, n_trees, max_depth;
    int sigmoid;
    float base_margin;
    char objective[32];
    gtree *trees;
    gnode *nodes;
    /* Complete trees: split slots (feature | DEFAULT_RIGHT, threshold) and
     * leaf slots, each tree's in breadth-first order. */
    uint32_t *feat;
    float *thr;
    float *leaf;
    snode *snodes;
};

/* The objectives reel can score: whether base_score is a probability (its
 * margin is the logit) and whether the output is sigmoid(margin). */
static const struct objective {
    const char *name;
    int logit_base, sigmoid;
} objectives[] = {
    {"binary:logistic", 1, 1}, {"reg:logistic", 1, 1},
    {"binary:logitraw", 1, 0}, {"reg:squarederror", 0, 0},
    {"reg:linear", 0, 0},      {"rank:pairwise", 0, 0},
    {"rank:ndcg", 0, 0},       {"rank:map", 0, 0},
};

/* ---- reading the JSON ---------------------------------------------- */

static int efmt(reel_diag *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int efmt(reel_diag *d, const char *fmt, ...)
{
    if (d) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->msg, sizeof d->msg, fmt, ap);
        va_end(ap);
    }
    return REEL_EFORMAT;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* o[key], which must exist and have type t. */
static int need(const json_t *o, const char *key, json_type t,
                const char *where, json_t **out, reel_diag *d)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return efmt(d, "%s: no \"%s\"", where, key);
    if (json_typeof(v) != t)
        return efmt(d, "%s: \"%s\" is %s", where, key, type_name(v));
    *out = v;
    return 0;
}

/* XGBoost writes its parameters as strings ("num_feature": "40",
 * "base_score": "5E-1"); a plain number is accepted too. */
static int strnum(const json_t *o, const char *key, const char *where,
                  double *out, reel_diag *d)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return efmt(d, "%s: no \"%s\"", where, key);
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (!s)
        return efmt(d, "%s: \"%s\" is %s", where, key, type_name(v));
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !isfinite(x))
        return efmt(d, "%s: \"%s\" is \"%.40s\", not a number", where, key, s);
    *out = x;
    return 0;
}

static int struint(const json_t *o, const char *key, const char *where,
                   uint64_t max, uint64_t *out, reel_diag *d)
{
    double x;
    int rc = strnum(o, key, where, &x, d);
    if (rc)
        return rc;
    if (!(x >= 0 && x <= (double)max && x == floor(x)))
        return efmt(d, "%s: \"%s\" is %g (an integer in 0..%llu)", where, key,
                    x, (unsigned long long)max);
    *out = (uint64_t)x;
    return 0;
}

/* The array t[key] with exactly n elements. */
static int need_array(const json_t *t, const char *key, size_t n,
                      const char *where, json_t **out, reel_diag *d)
{
    int rc = need(t, key, JSON_ARRAY, where, out, d);
    if (rc)
        return rc;
    if (json_array_size(*out) != n)
        return efmt(d, "%s: \"%s\" has %zu entries, num_nodes is %zu", where,
                    key, json_array_size(*out), n);
    return 0;
}

static int int_at(const json_t *a, size_t i, const char *key, const char *where,
                  int64_t lo, int64_t hi, int64_t *out, reel_diag *d)
{
    json_t *v = json_array_get(a, i);
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x >= lo && x <= hi) {
            *out = x;
            return 0;
        }
    } else if (json_is_boolean(v) && lo == 0 && hi == 1) {
        *out = json_is_true(v);
        return 0;
    }
    return efmt(d, "%s: %s[%zu] is not an integer in %lld..%lld", where, key, i,
                (long long)lo, (long long)hi);
}

static int float_at(const json_t *a, size_t i, const char *key,
                    const char *where, float *out, reel_diag *d)
{
    json_t *v = json_array_get(a, i);
    if (!json_is_number(v))
        return efmt(d, "%s: %s[%zu] is %s, not a number", where, key, i,
                    type_name(v));
    /* XGBoost prints each float32 in the shortest form that reads back to
     * it, so the nearest double rounds to the same float. */
    float x = (float)json_number_value(v);
    if (!isfinite(x))
        return efmt(d, "%s: %s[%zu] is not a finite float", where, key, i);
    *out = x;
    return 0;
}

/* The expected value of each subtree, weighted by the covers, in float32
 * and in the same order as libxgboost's FillNodeMeanValues, so TreeSHAP's
 * bias matches it. */
static float fill_mean(gnode *nd, int32_t i)
{
    gnode *n = &nd[i];
    if (n->left < 0) {
        n->mean = n->value;
        return n->mean;
    }
    float r = fill_mean(nd, n->left) * nd[n->left].cover;
    r += fill_mean(nd, n->right) * nd[n->right].cover;
    r /= n->cover;
    n->mean = r;
    return r;
}

typedef struct loader {
    reel_gbtree *g;
    size_t n_nodes, cap_nodes;
    uint8_t *seen;
    size_t cap_seen;
    int32_t *stack;
    uint32_t *sdepth;
    size_t cap_stack, cap_sdepth;
} loader;

/* Reads trees[k] into L->g->nodes and checks that the nodes reachable from
 * the root form a binary tree that libxgboost's predictor walks the way
 * the file says. Nodes nothing reaches are what XGBoost's pruner left
 * deleted; they are kept but never visited. */
static int load_tree(loader *L, const json_t *t, size_t k, reel_diag *d)
{
    reel_gbtree *g = L->g;
    char where[48];
    snprintf(where, sizeof where, "trees[%zu]", k);
    if (!json_is_object(t))
        return efmt(d, "%s is %s, not an object", where, type_name(t));
    json_t *tp, *id, *lc, *rc_, *si, *sc, *dl, *sh, *st;
    int rc;
    uint64_t n, tid;
    if ((rc = need(t, "tree_param", JSON_OBJECT, where, &tp, d)) ||
        (rc = struint(tp, "num_nodes", where, INT32_MAX, &n, d)))
        return rc;
    if (n == 0)
        return efmt(d, "%s: num_nodes is 0", where);
    if ((rc = need(t, "id", JSON_INTEGER, where, &id, d)))
        return rc;
    tid = (uint64_t)json_integer_value(id);
    if (json_integer_value(id) < 0 || tid >= g->n_trees)
        return efmt(d, "%s: id %lld is not in 0..%u", where,
                    (long long)json_integer_value(id), g->n_trees - 1);
    gtree *tr = &g->trees[tid];
    if (tr->n_nodes)
        return efmt(d, "%s: id %llu is used twice", where,
                    (unsigned long long)tid);
    if ((rc = need_array(t, "left_children", n, where, &lc, d)) ||
        (rc = need_array(t, "right_children", n, where, &rc_, d)) ||
        (rc = need_array(t, "split_indices", n, where, &si, d)) ||
        (rc = need_array(t, "split_conditions", n, where, &sc, d)) ||
        (rc = need_array(t, "default_left", n, where, &dl, d)) ||
        (rc = need_array(t, "sum_hessian", n, where, &sh, d)))
        return rc;
    st = json_object_get(t, "split_type");
    if (st && (!json_is_array(st) || json_array_size(st) != n))
        return efmt(d, "%s: \"split_type\" is not an array of num_nodes",
                    where);
    json_t *cn = json_object_get(t, "categories_nodes");
    if (cn && json_is_array(cn) && json_array_size(cn) > 0)
        return reel_diag_fail(d, REEL_EUNSUPPORTED,
                              "%s: categorical splits are not supported",
                              where);

    size_t node0 = L->n_nodes;
    REEL_GROW(g->nodes, L->cap_nodes, node0 + n);
    L->n_nodes += n;
    gnode *nd = g->nodes + node0;
    for (size_t i = 0; i < n; i++) {
        int64_t l, r, f, dflt;
        float v, c;
        if ((rc =
                 int_at(lc, i, "left_children", where, -1, INT32_MAX, &l, d)) ||
            (rc = int_at(rc_, i, "right_children", where, -1, INT32_MAX, &r,
                         d)) ||
            (rc =
                 int_at(si, i, "split_indices", where, 0, UINT32_MAX, &f, d)) ||
            (rc = int_at(dl, i, "default_left", where, 0, 1, &dflt, d)) ||
            (rc = float_at(sc, i, "split_conditions", where, &v, d)) ||
            (rc = float_at(sh, i, "sum_hessian", where, &c, d)))
            return rc;
        if (c < 0)
            return efmt(d, "%s: sum_hessian[%zu] is negative", where, i);
        nd[i] = (gnode){.left = (int32_t)l,
                        .right = (int32_t)r,
                        .feature = (uint32_t)f,
                        .value = v,
                        .cover = c,
                        .default_left = (uint8_t)dflt};
    }

    /* Walk from the root: every node is reached once, children are in
     * range and adjacent (libxgboost's predictor takes the right child to
     * be left + 1), splits are numerical on a known feature. */
    REEL_GROW(L->seen, L->cap_seen, n);
    memset(L->seen, 0, n);
    size_t top = 0;
    REEL_GROW(L->stack, L->cap_stack, 1);
    REEL_GROW(L->sdepth, L->cap_sdepth, 1);
    L->stack[top] = 0;
    L->sdepth[top++] = 0;
    uint32_t depth = 0, reached = 0;
    while (top) {
        top--;
        int32_t i = L->stack[top];
        uint32_t dep = L->sdepth[top];
        if (L->seen[i])
            return efmt(d,
                        "%s: node %d is reached twice (a cycle or a shared "
                        "child)",
                        where, i);
        L->seen[i] = 1;
        reached++;
        if (dep > depth)
            depth = dep;
        const gnode *x = &nd[i];
        if (x->left == -1 && x->right == -1)
            continue;
        if (x->left <= 0 || x->right <= 0 || (uint64_t)x->left >= n ||
            (uint64_t)x->right >= n)
            return efmt(d,
                        "%s: node %d has children %d and %d (valid: 1..%llu, "
                        "or both -1 for a leaf)",
                        where, i, x->left, x->right, (unsigned long long)n - 1);
        if (x->right != x->left + 1)
            return efmt(d,
                        "%s: node %d has children %d and %d; XGBoost's right "
                        "child is always left + 1",
                        where, i, x->left, x->right);
        if (x->feature >= g->n_features)
            return efmt(d,
                        "%s: node %d splits on feature %u, num_feature is %u",
                        where, i, x->feature, g->n_features);
        if (st) {
            int64_t type;
            if ((rc = int_at(st, (size_t)i, "split_type", where, 0, 255, &type,
                             d)))
                return rc;
            if (type != 0)
                return reel_diag_fail(
                    d, REEL_EUNSUPPORTED,
                    "%s: node %d is a categorical split (not supported)", where,
                    i);
        }
        if (!(x->cover > 0))
            return efmt(d, "%s: split node %d has sum_hessian 0", where, i);
        if (dep + 1 > REEL_GBTREE_MAX_DEPTH)
            return reel_diag_fail(d, REEL_EUNSUPPORTED,
                                  "%s: deeper than %d levels", where,
                                  REEL_GBTREE_MAX_DEPTH);
        REEL_GROW(L->stack, L->cap_stack, top + 2);
        REEL_GROW(L->sdepth, L->cap_sdepth, top + 2);
        L->stack[top] = x->right;
        L->sdepth[top++] = dep + 1;
        L->stack[top] = x->left;
        L->sdepth[top++] = dep + 1;
    }
    fill_mean(nd, 0);
    *tr = (gtree){.node0 = (uint32_t)node0,
                  .n_nodes = (uint32_t)n,
                  .depth = depth,
                  .dense = depth <= DENSE_MAX_DEPTH &&
                           (2u << depth) <= 16u * reached + 16u};
    if (depth > g->max_depth)
        g->max_depth = depth;
    return 0;
}

/* Writes the complete tree below original node i into split slot `slot`
 * at `level` of D; a leaf above level D fills every slot beneath it. */
static void fill_dense(const gnode *nd, int32_t i, uint32_t slot,
                       uint32_t level, uint32_t D, uint32_t *feat, float *thr,
                       float *leaf)
{
    if (level == D) {
        assert(nd[i].left < 0);
        leaf[slot - ((1u << D) - 1)] = nd[i].value;
        return;
    }
    int leafy = nd[i].left < 0;
    feat[slot] =
        leafy ? 0 : nd[i].feature | (nd[i].default_left ? 0 : DEFAULT_RIGHT);
    thr[slot] = leafy ? 0 : nd[i].value;
    fill_dense(nd, leafy ? i : nd[i].left, 2 * slot + 1, level + 1, D, feat,
               thr, leaf);
    fill_dense(nd, leafy ? i : nd[i].right, 2 * slot + 2, level + 1, D, feat,
               thr, leaf);
}

static void build_fast(reel_gbtree *g, int32_t *queue)
{
    size_t n_slots = 0, n_leaves = 0, n_sparse = 0;
    for (uint32_t k = 0; k < g->n_trees; k++) {
        gtree *t = &g->trees[k];
        if (t->dense) {
            t->off = (uint32_t)n_slots;
            t->leaf_off = (uint32_t)n_leaves;
            n_slots += (1u << t->depth) - 1;
            n_leaves += 1u << t->depth;
        } else {
            t->off = (uint32_t)n_sparse;
            n_sparse += t->n_nodes;
        }
    }
    g->feat = reel_xcalloc(n_slots + PAD, sizeof *g->feat);
    g->thr = reel_xcalloc(n_slots + PAD, sizeof *g->thr);
    g->leaf = reel_xcalloc(n_leaves + PAD, sizeof *g->leaf);
    g->snodes = reel_xcalloc(n_sparse + 1, sizeof *g->snodes);
    for (uint32_t k = 0; k < g->n_trees; k++) {
        gtree *t = &g->trees[k];
        const gnode *nd = g->nodes + t->node0;
        if (t->dense) {
            fill_dense(nd, 0, 0, 0, t->depth, g->feat + t->off, g->thr + t->off,
                       g->leaf + t->leaf_off);
            continue;
        }
        /* Breadth-first: a node's children are queued together, so they
         * get adjacent numbers. */
        snode *sn = g->snodes + t->off;
        size_t head = 0, tail = 1;
        queue[0] = 0;
        while (head < tail) {
            const gnode *x = &nd[queue[head]];
            snode *s = &sn[head++];
            if (x->left < 0) {
                *s = (snode){.feature = 0, .value = x->value, .left = 0};
                continue;
            }
            *s = (snode){.feature =
                             x->feature | (x->default_left ? 0 : DEFAULT_RIGHT),
                         .value = x->value,
                         .left = (uint32_t)tail};
            queue[tail++] = x->left;
            queue[tail++] = x->right;
        }
    }
}

static int parse_model(const json_t *root, reel_gbtree *g, reel_diag *d)
{
    int rc;
    json_t *ver, *learner, *lmp, *obj, *oname, *gb, *gbname, *model, *trees,
        *gmp;
    if (!json_is_object(root))
        return efmt(d, "the model is %s, not an object", type_name(root));
    if ((rc = need(root, "version", JSON_ARRAY, "model", &ver, d)))
        return rc;
    json_int_t major = json_integer_value(json_array_get(ver, 0));
    if (json_array_size(ver) < 2 || !json_is_integer(json_array_get(ver, 0)))
        return efmt(d, "model: \"version\" is not [major, minor, patch]");
    if (major < 1 || major > 2)
        return reel_diag_fail(d, REEL_EVERSION,
                              "XGBoost model version %lld (reel reads 1.x and "
                              "2.x)",
                              (long long)major);
    if ((rc = need(root, "learner", JSON_OBJECT, "model", &learner, d)) ||
        (rc = need(learner, "gradient_booster", JSON_OBJECT, "learner", &gb,
                   d)) ||
        (rc = need(gb, "name", JSON_STRING, "gradient_booster", &gbname, d)))
        return rc;
    const char *booster = json_string_value(gbname);
    if (strcmp(booster, "gbtree") != 0)
        return reel_diag_fail(d, REEL_EUNSUPPORTED,
                              "booster \"%.40s\" is not supported (only "
                              "\"gbtree\"%s)",
                              booster,
                              strcmp(booster, "dart") == 0
                                  ? "; DART scales and drops trees"
                                  : "");
    if ((rc = need(learner, "learner_model_param", JSON_OBJECT, "learner", &lmp,
                   d)) ||
        (rc = need(learner, "objective", JSON_OBJECT, "learner", &obj, d)) ||
        (rc = need(obj, "name", JSON_STRING, "objective", &oname, d)))
        return rc;
    const char *on = json_string_value(oname);
    const struct objective *ob = NULL;
    for (size_t i = 0; i < sizeof objectives / sizeof objectives[0]; i++)
        if (strcmp(on, objectives[i].name) == 0)
            ob = &objectives[i];
    if (!ob)
        return reel_diag_fail(d, REEL_EUNSUPPORTED,
                              "objective \"%.40s\" is not supported", on);
    snprintf(g->objective, sizeof g->objective, "%s", on);
    g->sigmoid = ob->sigmoid;

    uint64_t nf, ncls = 0, ntarget = 1;
    double bs;
    if ((rc = struint(lmp, "num_feature", "learner_model_param",
                      REEL_GBTREE_MAX_FEATURES, &nf, d)) ||
        (rc = strnum(lmp, "base_score", "learner_model_param", &bs, d)))
        return rc;
    if (nf == 0)
        return efmt(d, "learner_model_param: num_feature is 0");
    if (json_object_get(lmp, "num_class") &&
        (rc = struint(lmp, "num_class", "learner_model_param", UINT32_MAX,
                      &ncls, d)))
        return rc;
    if (json_object_get(lmp, "num_target") &&
        (rc = struint(lmp, "num_target", "learner_model_param", UINT32_MAX,
                      &ntarget, d)))
        return rc;
    if (ncls > 1 || ntarget > 1)
        return reel_diag_fail(d, REEL_EUNSUPPORTED,
                              "models with more than one output are not "
                              "supported (num_class %llu, num_target %llu)",
                              (unsigned long long)ncls,
                              (unsigned long long)ntarget);
    g->n_features = (uint32_t)nf;
    /* libxgboost keeps base_score as a float32 and moves it to margin space
     * in float32 (ProbToMargin); the same steps give the same bits. */
    float b = (float)bs;
    if (ob->logit_base) {
        if (!(b > 0.0f && b < 1.0f))
            return efmt(d,
                        "learner_model_param: base_score %g is not in (0, 1) "
                        "for %s",
                        bs, on);
        g->base_margin = -logf(1.0f / b - 1.0f);
    } else {
        g->base_margin = b;
    }

    if ((rc = need(gb, "model", JSON_OBJECT, "gradient_booster", &model, d)) ||
        (rc = need(model, "trees", JSON_ARRAY, "model", &trees, d)) ||
        (rc = need(model, "gbtree_model_param", JSON_OBJECT, "model", &gmp, d)))
        return rc;
    uint64_t nt;
    if ((rc =
             struint(gmp, "num_trees", "gbtree_model_param", 1u << 24, &nt, d)))
        return rc;
    if (nt != json_array_size(trees))
        return efmt(d, "model: num_trees is %llu but there are %zu trees",
                    (unsigned long long)nt, json_array_size(trees));
    if (json_object_get(gmp, "size_leaf_vector")) {
        uint64_t slv;
        if ((rc = struint(gmp, "size_leaf_vector", "gbtree_model_param",
                          UINT32_MAX, &slv, d)))
            return rc;
        if (slv > 1)
            return reel_diag_fail(d, REEL_EUNSUPPORTED,
                                  "vector leaves are not supported");
    }
    json_t *info = json_object_get(model, "tree_info");
    if (info) {
        if (!json_is_array(info) || json_array_size(info) != nt)
            return efmt(d, "model: tree_info is not an array of num_trees");
        for (size_t i = 0; i < nt; i++) {
            json_t *v = json_array_get(info, i);
            if (!json_is_integer(v))
                return efmt(d, "model: tree_info[%zu] is not an integer", i);
            if (json_integer_value(v) != 0)
                return reel_diag_fail(d, REEL_EUNSUPPORTED,
                                      "tree %zu belongs to output %lld: more "
                                      "than one output is not supported",
                                      i, (long long)json_integer_value(v));
        }
    }
    g->n_trees = (uint32_t)nt;
    g->trees = reel_xcalloc(nt ? nt : 1, sizeof *g->trees);
    loader L = {.g = g};
    for (size_t k = 0; k < nt && rc == 0; k++)
        rc = load_tree(&L, json_array_get(trees, k), k, d);
    if (rc == 0) {
        int32_t *queue = reel_xmalloc((L.cap_seen + 1) * sizeof *queue);
        build_fast(g, queue);
        free(queue);
    }
    free(L.seen);
    free(L.stack);
    free(L.sdepth);
    return rc;
}

int reel_gbtree_parse(const char *json, size_t len, reel_gbtree **out,
                      reel_diag *d)
{
    *out = NULL;
    if (len > REEL_GBTREE_MAX_FILE)
        return reel_diag_fail(d, REEL_ETOOBIG,
                              "model of %zu bytes (at most %llu)", len,
                              (unsigned long long)REEL_GBTREE_MAX_FILE);
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (d && je.line > 0)
            d->line = (uint64_t)je.line;
        return efmt(d, "not JSON: %s", je.text);
    }
    reel_gbtree *g = reel_xcalloc(1, sizeof *g);
    int rc = parse_model(root, g, d);
    json_decref(root);
    if (rc) {
        reel_gbtree_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

int reel_gbtree_load(const char *path, reel_gbtree **out, reel_diag *d)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return reel_diag_fail(d, errno == ENOENT ? REEL_ENOENT : REEL_EIO,
                              "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return reel_diag_fail(d, REEL_EIO, "%s is not a regular file", path);
    }
    if ((uint64_t)st.st_size > REEL_GBTREE_MAX_FILE) {
        close(fd);
        return reel_diag_fail(
            d, REEL_ETOOBIG, "%s: %lld bytes (a model is at most %llu)", path,
            (long long)st.st_size, (unsigned long long)REEL_GBTREE_MAX_FILE);
    }
    size_t size = (size_t)st.st_size, got = 0;
    char *buf = reel_xmalloc(size ? size : 1);
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = r < 0 ? errno : EIO;
            free(buf);
            close(fd);
            return reel_diag_fail(d, REEL_EIO, "cannot read %s: %s", path,
                                  strerror(e));
        }
        got += (size_t)r;
    }
    close(fd);
    int rc = reel_gbtree_parse(buf, size, out, d);
    free(buf);
    if (rc && d)
        d->file = path;
    return rc;
}

void reel_gbtree_free(reel_gbtree *g)
{
    if (!g)
        return;
    free(g->trees);
    free(g->nodes);
    free(g->feat);
    free(g->thr);
    free(g->leaf);
    free(g->snodes);
    free(g);
}

uint32_t reel_gbtree_n_features(const reel_gbtree *g)
{
    return g->n_features;
}

uint32_t reel_gbtree_n_trees(const reel_gbtree *g)
{
    return g->n_trees;
}

uint32_t reel_gbtree_max_depth(const reel_gbtree *g)
{
    return g->max_depth;
}

const char *reel_gbtree_objective(const reel_gbtree *g)
{
    return g->objective;
}

float reel_gbtree_base_margin(const reel_gbtree *g)
{
    return g->base_margin;
}

/* ---- scoring ------------------------------------------------------- */

/* libxgboost's sigmoid: 1 / (1 + e^-x), with the exponent capped so it
 * cannot overflow. */
static float sigmoid(float m)
{
    return 1.0f / (expf(fminf(-m, 88.7f)) + 1.0f);
}

/* 1 when a row goes right: x >= t, or the default direction for NAN. */
static inline uint32_t go_right(float v, float t, uint32_t f)
{
    return (uint32_t)(v >= t) | ((uint32_t)(v != v) & (f >> 31));
}

static void dense_scalar(const reel_gbtree *g, const gtree *t, const float *x,
                         size_t n, size_t stride, float *out)
{
    const uint32_t *feat = g->feat + t->off;
    const float *thr = g->thr + t->off, *leaf = g->leaf + t->leaf_off;
    const uint32_t D = t->depth, inner = (1u << D) - 1;
    size_t r = 0;
    /* Four rows at a time: four independent chains of loads. */
    for (; r + 4 <= n; r += 4) {
        const float *x0 = x + r * stride, *x1 = x0 + stride, *x2 = x1 + stride,
                    *x3 = x2 + stride;
        uint32_t i0 = 0, i1 = 0, i2 = 0, i3 = 0;
        for (uint32_t l = 0; l < D; l++) {
            uint32_t f0 = feat[i0], f1 = feat[i1], f2 = feat[i2], f3 = feat[i3];
            i0 = 2 * i0 + 1 + go_right(x0[f0 & FEATURE_MASK], thr[i0], f0);
            i1 = 2 * i1 + 1 + go_right(x1[f1 & FEATURE_MASK], thr[i1], f1);
            i2 = 2 * i2 + 1 + go_right(x2[f2 & FEATURE_MASK], thr[i2], f2);
            i3 = 2 * i3 + 1 + go_right(x3[f3 & FEATURE_MASK], thr[i3], f3);
        }
        out[r] += leaf[i0 - inner];
        out[r + 1] += leaf[i1 - inner];
        out[r + 2] += leaf[i2 - inner];
        out[r + 3] += leaf[i3 - inner];
    }
    for (; r < n; r++) {
        const float *row = x + r * stride;
        uint32_t i = 0;
        for (uint32_t l = 0; l < D; l++) {
            uint32_t f = feat[i];
            i = 2 * i + 1 + go_right(row[f & FEATURE_MASK], thr[i], f);
        }
        out[r] += leaf[i - inner];
    }
}

static void sparse_scalar(const reel_gbtree *g, const gtree *t, const float *x,
                          size_t n, size_t stride, float *out)
{
    const snode *sn = g->snodes + t->off;
    for (size_t r = 0; r < n; r++) {
        const float *row = x + r * stride;
        uint32_t i = 0;
        while (sn[i].left) {
            uint32_t f = sn[i].feature;
            i = sn[i].left + go_right(row[f & FEATURE_MASK], sn[i].value, f);
        }
        out[r] += sn[i].value;
    }
}

#if HAVE_AVX512
/* The SIMD kernel reads a block of rows transposed, feature-major (xt[f *
 * pitch + r]): the first levels of a tree test one feature per slot for
 * all rows, so 16 rows' values there are plain loads instead of gathers.
 * The block lives on the stack: at most XT_FLOATS floats. */
enum { U = 4, XT_FLOATS = 4096, XT_ROWS = 128 };

#define AVX512 __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline))

/* Slot values of level l (2^l slots from s) at each lane's index j within
 * the level: up to 64 slots come from registers by permutation, deeper
 * levels are gathered. */
INLINE AVX512 __m512i level_u32(uint32_t l, const uint32_t *s, __m512i j)
{
    if (l <= 4)
        return _mm512_permutexvar_epi32(j, _mm512_loadu_si512(s));
    if (l == 5)
        return _mm512_permutex2var_epi32(_mm512_loadu_si512(s), j,
                                         _mm512_loadu_si512(s + 16));
    if (l == 6)
        return _mm512_mask_blend_epi32(
            _mm512_test_epi32_mask(j, _mm512_set1_epi32(32)),
            _mm512_permutex2var_epi32(_mm512_loadu_si512(s), j,
                                      _mm512_loadu_si512(s + 16)),
            _mm512_permutex2var_epi32(_mm512_loadu_si512(s + 32), j,
                                      _mm512_loadu_si512(s + 48)));
    return _mm512_i32gather_epi32(j, s, 4);
}

INLINE AVX512 __m512 level_f32(uint32_t l, const float *s, __m512i j)
{
    return _mm512_castsi512_ps(level_u32(l, (const uint32_t *)(void *)s, j));
}

/* Column k of the block for the slot feature fl[k]. */
INLINE AVX512 __m512 col(const uint32_t *fl, uint32_t k, const float *xt,
                         uint32_t pitch)
{
    return _mm512_loadu_ps(xt + (size_t)(fl[k] & FEATURE_MASK) * pitch);
}

/* Of 2, 4, 8 or 16 columns from fl, each lane's by the low bits of j. */
INLINE AVX512 __m512 pick2(const uint32_t *fl, __m512i j, const float *xt,
                           uint32_t pitch)
{
    return _mm512_mask_blend_ps(_mm512_test_epi32_mask(j, _mm512_set1_epi32(1)),
                                col(fl, 0, xt, pitch), col(fl, 1, xt, pitch));
}

INLINE AVX512 __m512 pick4(const uint32_t *fl, __m512i j, const float *xt,
                           uint32_t pitch)
{
    return _mm512_mask_blend_ps(_mm512_test_epi32_mask(j, _mm512_set1_epi32(2)),
                                pick2(fl, j, xt, pitch),
                                pick2(fl + 2, j, xt, pitch));
}

INLINE AVX512 __m512 pick8(const uint32_t *fl, __m512i j, const float *xt,
                           uint32_t pitch)
{
    return _mm512_mask_blend_ps(_mm512_test_epi32_mask(j, _mm512_set1_epi32(4)),
                                pick4(fl, j, xt, pitch),
                                pick4(fl + 4, j, xt, pitch));
}

INLINE AVX512 __m512 pick16(const uint32_t *fl, __m512i j, const float *xt,
                            uint32_t pitch)
{
    return _mm512_mask_blend_ps(_mm512_test_epi32_mask(j, _mm512_set1_epi32(8)),
                                pick8(fl, j, xt, pitch),
                                pick8(fl + 8, j, xt, pitch));
}

/* The 16 rows' values of the features their nodes at level l test: for
 * the first levels a blend of whole columns, deeper a gather. */
INLINE AVX512 __m512 values(uint32_t l, const uint32_t *fl, __m512i f,
                            __m512i j, const float *xt, uint32_t pitch)
{
    switch (l) {
    case 0:
        return col(fl, 0, xt, pitch);
    case 1:
        return pick2(fl, j, xt, pitch);
    case 2:
        return pick4(fl, j, xt, pitch);
    case 3:
        return pick8(fl, j, xt, pitch);
    case 4:
        return pick16(fl, j, xt, pitch);
    default:
        break;
    }
    const __m512i lane =
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i fmask = _mm512_set1_epi32((int)FEATURE_MASK);
    __m512i at = _mm512_add_epi32(
        lane, _mm512_mullo_epi32(_mm512_and_si512(f, fmask),
                                 _mm512_set1_epi32((int)pitch)));
    return _mm512_i32gather_ps(at, xt, 4);
}

/* Scores rows [0, n) of a block (n a multiple of 16) from its transposed
 * copy xt, U groups of 16 rows at a time so that U independent chains are
 * in flight. j is each row's index within its level. The comparisons are
 * dense_scalar's, and each row adds the same leaf to the same sum, so the
 * results are the same bits. */
static AVX512 void dense_avx512(const reel_gbtree *g, const gtree *t,
                                const float *xt, uint32_t pitch, size_t n,
                                float *out)
{
    const uint32_t *feat = g->feat + t->off;
    const float *thr = g->thr + t->off, *leaf = g->leaf + t->leaf_off;
    const uint32_t D = t->depth;
    const __m512i one = _mm512_set1_epi32(1);
    const __m512i dright = _mm512_set1_epi32((int)DEFAULT_RIGHT);
    assert(n % 16 == 0);
    for (size_t r = 0; r < n;) {
        const size_t u_n = r + 16 * U <= n ? U : 1;
        __m512i j[U];
        for (size_t u = 0; u < U; u++)
            j[u] = _mm512_setzero_si512();
        for (uint32_t l = 0; l < D; l++) {
            const uint32_t first = (1u << l) - 1;
#pragma GCC unroll 4
            for (size_t u = 0; u < U; u++) {
                if (u >= u_n)
                    break;
                __m512i f = level_u32(l, feat + first, j[u]);
                __m512 th = level_f32(l, thr + first, j[u]);
                __m512 v =
                    values(l, feat + first, f, j[u], xt + r + 16 * u, pitch);
                __mmask16 ge = _mm512_cmp_ps_mask(v, th, _CMP_GE_OQ);
                __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
                __mmask16 dr = _mm512_test_epi32_mask(f, dright);
                __mmask16 right = (__mmask16)(ge | (nan & dr));
                j[u] = _mm512_add_epi32(j[u], j[u]);
                j[u] = _mm512_mask_add_epi32(j[u], right, j[u], one);
            }
        }
        for (size_t u = 0; u < u_n; u++) {
            __m512 lv = level_f32(D, leaf, j[u]);
            float *o = out + r + 16 * u;
            _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), lv));
        }
        r += 16 * u_n;
    }
}
#endif

/* Rows per transposed block for the SIMD kernel (a multiple of 16), or 0
 * when it does not apply: no AVX-512, or rows too wide for the block. */
static uint32_t simd_rows(const reel_gbtree *g)
{
#if HAVE_AVX512
    if (!__builtin_cpu_supports("avx512f"))
        return 0;
    uint32_t rows = (XT_FLOATS / g->n_features) & ~15u;
    return rows > XT_ROWS ? XT_ROWS : rows;
#else
    (void)g;
    return 0;
#endif
}

const char *reel_gbtree_kernel(void)
{
#if HAVE_AVX512
    if (__builtin_cpu_supports("avx512f"))
        return "avx512";
#endif
    return "scalar";
}

static void margin(const reel_gbtree *g, const float *x, size_t n_rows,
                   size_t stride, float *out, int simd)
{
    assert(stride >= g->n_features);
    const uint32_t pitch = simd ? simd_rows(g) : 0;
#if HAVE_AVX512
    const uint32_t nf = g->n_features;
    _Alignas(64) float xt[XT_FLOATS];
#endif
    const size_t block = pitch ? pitch : BLOCK;
    for (size_t b = 0; b < n_rows; b += block) {
        size_t m = n_rows - b < block ? n_rows - b : block;
        const size_t full = pitch ? m & ~(size_t)15 : 0;
        const float *xb = x + b * stride;
        float *o = out + b;
        for (size_t r = 0; r < m; r++)
            o[r] = g->base_margin;
#if HAVE_AVX512
        for (size_t r = 0; r < full; r++)
            for (uint32_t f = 0; f < nf; f++)
                xt[f * pitch + r] = xb[r * stride + f];
#endif
        for (uint32_t k = 0; k < g->n_trees; k++) {
            const gtree *t = &g->trees[k];
            if (!t->dense) {
                sparse_scalar(g, t, xb, m, stride, o);
                continue;
            }
#if HAVE_AVX512
            if (full)
                dense_avx512(g, t, xt, pitch, full, o);
#endif
            dense_scalar(g, t, xb + full * stride, m - full, stride, o + full);
        }
    }
}

static void transform(const reel_gbtree *g, float *out, size_t n)
{
    if (g->sigmoid)
        for (size_t i = 0; i < n; i++)
            out[i] = sigmoid(out[i]);
}

void reel_gbtree_predict_margin(const reel_gbtree *g, const float *x,
                                size_t n_rows, size_t stride, float *out)
{
    margin(g, x, n_rows, stride, out, 1);
}

void reel_gbtree_predict(const reel_gbtree *g, const float *x, size_t n_rows,
                         size_t stride, float *out)
{
    reel_gbtree_predict_margin(g, x, n_rows, stride, out);
    transform(g, out, n_rows);
}

void reel_gbtree_predict_scalar(const reel_gbtree *g, const float *x,
                                size_t n_rows, size_t stride, float *out)
{
    margin(g, x, n_rows, stride, out, 0);
    transform(g, out, n_rows);
}

void reel_gbtree_predict_naive(const reel_gbtree *g, const float *x,
                               size_t n_rows, size_t stride, float *out)
{
    assert(stride >= g->n_features);
    for (size_t r = 0; r < n_rows; r++) {
        const float *row = x + r * stride;
        float m = g->base_margin;
        for (uint32_t k = 0; k < g->n_trees; k++) {
            const gnode *nd = g->nodes + g->trees[k].node0;
            int32_t i = 0;
            while (nd[i].left >= 0) {
                float v = row[nd[i].feature];
                if (isnan(v))
                    i = nd[i].default_left ? nd[i].left : nd[i].right;
                else
                    i = v < nd[i].value ? nd[i].left : nd[i].right;
            }
            m += nd[i].value;
        }
        out[r] = m;
    }
    transform(g, out, n_rows);
}

/* ---- explanations: exact TreeSHAP ---------------------------------- */

/* One feature on the path from the root: the fraction of the cover that
 * flows through when the feature is unknown (zero) or known (one), and
 * the permutation weight. float32 throughout, in libxgboost's order of
 * operations, so the contributions agree with pred_contribs closely. */
typedef struct pelem {
    int feature;
    float zero, one, pweight;
} pelem;

static void extend_path(pelem *p, unsigned depth, float zero, float one,
                        int feature)
{
    p[depth] = (pelem){.feature = feature,
                       .zero = zero,
                       .one = one,
                       .pweight = depth == 0 ? 1.0f : 0.0f};
    for (int i = (int)depth - 1; i >= 0; i--) {
        p[i + 1].pweight +=
            one * p[i].pweight * (float)(i + 1) / (float)(depth + 1);
        p[i].pweight = zero * p[i].pweight * (float)(depth - (unsigned)i) /
                       (float)(depth + 1);
    }
}

static void unwind_path(pelem *p, unsigned depth, unsigned at)
{
    const float one = p[at].one, zero = p[at].zero;
    float next = p[depth].pweight;
    for (int i = (int)depth - 1; i >= 0; i--) {
        if (one != 0) {
            const float tmp = p[i].pweight;
            p[i].pweight = next * (float)(depth + 1) / ((float)(i + 1) * one);
            next = tmp - p[i].pweight * zero * (float)(depth - (unsigned)i) /
                             (float)(depth + 1);
        } else {
            p[i].pweight = (p[i].pweight * (float)(depth + 1)) /
                           (zero * (float)(depth - (unsigned)i));
        }
    }
    for (unsigned i = at; i < depth; i++) {
        p[i].feature = p[i + 1].feature;
        p[i].zero = p[i + 1].zero;
        p[i].one = p[i + 1].one;
    }
}

static float unwound_sum(const pelem *p, unsigned depth, unsigned at)
{
    const float one = p[at].one, zero = p[at].zero;
    float next = p[depth].pweight, total = 0;
    for (int i = (int)depth - 1; i >= 0; i--) {
        if (one != 0) {
            const float tmp =
                next * (float)(depth + 1) / ((float)(i + 1) * one);
            total += tmp;
            next = p[i].pweight -
                   tmp * zero *
                       ((float)(depth - (unsigned)i) / (float)(depth + 1));
        } else if (zero != 0) {
            total += (p[i].pweight / zero) /
                     ((float)(depth - (unsigned)i) / (float)(depth + 1));
        }
    }
    return total;
}

static void tree_shap(const gnode *nd, const float *row, float *phi,
                      int32_t node, unsigned depth, pelem *parent_path,
                      float parent_zero, float parent_one, int parent_feature)
{
    const gnode *x = &nd[node];
    pelem *path = parent_path + depth + 1;
    memcpy(path, parent_path, (depth + 1) * sizeof *path);
    extend_path(path, depth, parent_zero, parent_one, parent_feature);
    if (x->left < 0) {
        for (unsigned i = 1; i <= depth; i++) {
            const float w = unwound_sum(path, depth, i);
            phi[path[i].feature] += w * (path[i].one - path[i].zero) * x->value;
        }
        return;
    }
    const float v = row[x->feature];
    int32_t hot = isnan(v)       ? (x->default_left ? x->left : x->right)
                  : v < x->value ? x->left
                                 : x->right;
    int32_t cold = hot == x->left ? x->right : x->left;
    const float w = x->cover;
    const float hot_zero = nd[hot].cover / w, cold_zero = nd[cold].cover / w;
    float in_zero = 1, in_one = 1;
    /* A feature split on again: undo its earlier split and redo it here. */
    unsigned at = 0;
    for (; at <= depth; at++)
        if (path[at].feature == (int)x->feature)
            break;
    if (at != depth + 1) {
        in_zero = path[at].zero;
        in_one = path[at].one;
        unwind_path(path, depth, at);
        depth--;
    }
    tree_shap(nd, row, phi, hot, depth + 1, path, hot_zero * in_zero, in_one,
              (int)x->feature);
    tree_shap(nd, row, phi, cold, depth + 1, path, cold_zero * in_zero, 0,
              (int)x->feature);
}

void reel_gbtree_contrib(const reel_gbtree *g, const float *row, float *phi)
{
    const uint32_t nf = g->n_features;
    /* The unique paths of all recursion levels: depth + 2 of them, each at
     * most depth + 2 long. */
    size_t maxd = (size_t)g->max_depth + 2;
    size_t n_path = maxd * (maxd + 1) / 2;
    float *tphi =
        reel_xmalloc((nf + 1) * sizeof *tphi + n_path * sizeof(pelem));
    pelem *path = (pelem *)(void *)(tphi + nf + 1);
    _Static_assert(sizeof(pelem) % sizeof(float) == 0, "pelem alignment");
    memset(phi, 0, (nf + 1) * sizeof *phi);
    memset(path, 0, sizeof *path);
    for (uint32_t k = 0; k < g->n_trees; k++) {
        const gnode *nd = g->nodes + g->trees[k].node0;
        memset(tphi, 0, (nf + 1) * sizeof *tphi);
        tphi[nf] += nd[0].mean;
        tree_shap(nd, row, tphi, 0, 0, path, 1, 1, -1);
        for (uint32_t i = 0; i <= nf; i++)
            phi[i] += tphi[i];
    }
    phi[nf] += g->base_margin;
    free(tphi);
}
