/* Unit tests of src/reco/experiment: assignment (sticky, shares,
 * independent experiments), parameter overrides, attribution, resets, the
 * statistics against tabulated values and brute force. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "data/dataset.h"
#include "reco/experiment.h"

static json_t *body(const char *text)
{
    json_error_t je;
    json_t *b = json_loads(text, 0, &je);
    if (!b)
        fail_msg("bad test JSON: %s", je.text);
    return b;
}

static int put(reel_experiments *x, const char *name, const char *text,
               reel_diag *d)
{
    json_t *b = body(text);
    int created;
    reel_diag_clear(d);
    int rc = reel_experiments_put(x, name, b, 1000, &created, d);
    json_decref(b);
    return rc;
}

static uint32_t arm_index(const reel_exp_assignment *a, const char *exp,
                          const char *const *arms)
{
    for (uint32_t i = 0; i < a->n; i++)
        if (!strcmp(a->e[i].name, exp))
            for (uint32_t k = 0; arms[k]; k++)
                if (!strcmp(a->e[i].arm, arms[k]))
                    return k;
    fail_msg("%s: no arm", exp);
    return 0;
}

static void assignment_is_sticky_split_and_independent(void **state)
{
    reel_experiments *x;
    reel_diag d;
    assert_int_equal(reel_experiments_new(1000, &x), 0);
    assert_int_equal(
        put(x, "a",
            "{\"arms\": [{\"name\": \"c\", \"share\": 0.2}, {\"name\": "
            "\"t\", \"share\": 0.8}]}",
            &d),
        0);
    assert_int_equal(
        put(x, "b",
            "{\"arms\": [{\"name\": \"x\", \"share\": 0.5}, {\"name\": "
            "\"y\", \"share\": 0.5}]}",
            &d),
        0);
    static const char *const aa[] = {"c", "t", NULL}, *const bb[] = {"x", "y",
                                                                     NULL};
    reel_reco_opts base = reel_reco_opts_default(), o;
    reel_exp_assignment as, again;
    uint32_t n = 40000, count[2][2] = {{0}};
    char user[32];
    for (uint32_t i = 0; i < n; i++) {
        snprintf(user, sizeof user, "u%u", i);
        reel_experiments_assign(x, user, &base, &as, &o);
        reel_experiments_assign(x, user, &base, &again, &o);
        assert_int_equal(as.n, 2);
        assert_int_equal(again.n, as.n);
        for (uint32_t k = 0; k < as.n; k++) {
            assert_string_equal(as.e[k].name, again.e[k].name);
            assert_string_equal(as.e[k].arm, again.e[k].arm);
        }
        count[arm_index(&as, "a", aa)][arm_index(&as, "b", bb)]++;
    }
    /* shares within 4 standard deviations, and the joint table the
     * product of the margins (chi-square with 1 degree of freedom) */
    double pa = (double)(count[0][0] + count[0][1]) / n;
    double pb = (double)(count[0][0] + count[1][0]) / n;
    assert_true(fabs(pa - 0.2) < 4 * sqrt(0.2 * 0.8 / n));
    assert_true(fabs(pb - 0.5) < 4 * sqrt(0.25 / n));
    double chi = 0;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            double e = n * (i ? 1 - pa : pa) * (j ? 1 - pb : pb);
            chi += (count[i][j] - e) * (count[i][j] - e) / e;
        }
    assert_true(chi < 10.8); /* p = 0.001 */
    reel_experiments_free(x);
}

static void overrides_merge_in_name_order(void **state)
{
    reel_experiments *x;
    reel_diag d;
    assert_int_equal(reel_experiments_new(10, &x), 0);
    /* every user in arm "only" of both: one share of 1 is not allowed, so
     * shares 0.999999999 and a tiny second arm */
    assert_int_equal(put(x, "z-late",
                         "{\"arms\": [{\"name\": \"only\", \"share\": "
                         "0.9999999, \"params\": "
                         "{\"candidates\": 77, \"history_n\": 3}}, {\"name\": "
                         "\"rare\", \"share\": "
                         "0.0000001}]}",
                         &d),
                     0);
    assert_int_equal(
        put(x, "a-early",
            "{\"arms\": [{\"name\": \"only\", \"share\": 0.9999999, "
            "\"params\": "
            "{\"candidates\": 500, \"ranker\": \"none\", \"recency_decay\": "
            "0.5, "
            "\"max_per_category\": 2, \"fresh_boost\": 0.25, "
            "\"fresh_half_life_s\": 3600}}, {\"name\": \"rare\", \"share\": "
            "0.0000001}]}",
            &d),
        0);
    reel_reco_opts base = reel_reco_opts_default(), o;
    reel_exp_assignment as;
    reel_experiments_assign(x, "someone", &base, &as, &o);
    assert_int_equal(as.n, 2);
    assert_string_equal(as.e[0].name, "a-early");
    assert_int_equal(o.candidates, 500); /* a-early wins */
    assert_int_equal(o.history_n, 3);    /* only z-late sets it */
    assert_true(o.recency_decay == 0.5f);
    assert_int_equal(o.max_per_category, 2);
    assert_true(o.fresh_boost == 0.25 && o.fresh_half_life_s == 3600);
    assert_int_equal(o.ranker, REEL_RECO_RANKER_NONE);
    reel_experiments_free(x);
}

static void bad_bodies_are_refused(void **state)
{
    reel_experiments *x;
    reel_diag d;
    assert_int_equal(reel_experiments_new(10, &x), 0);
    const char *bad[][3] = {
        {"ok", "[]", "must be a JSON object"},
        {"ok", "{\"arms\": [{\"name\": \"a\", \"share\": 1}]}", "2..16"},
        {"ok",
         "{\"arms\": [{\"name\": \"a\", \"share\": 0.5}, {\"name\": \"a\", "
         "\"share\": 0.5}]}",
         "two arms"},
        {"ok",
         "{\"arms\": [{\"name\": \"a\", \"share\": 0.5}, {\"name\": \"b\", "
         "\"share\": 0.4}]}",
         "add up"},
        {"ok",
         "{\"arms\": [{\"name\": \"a\", \"share\": 0}, {\"name\": \"b\", "
         "\"share\": 1}]}",
         "share"},
        {"ok",
         "{\"arms\": [{\"name\": \"a\", \"share\": 0.5, \"params\": "
         "{\"candidates\": 5000}}, "
         "{\"name\": \"b\", \"share\": 0.5}]}",
         "out of range"},
        {"ok",
         "{\"arms\": [{\"name\": \"a\", \"share\": 0.5, \"params\": "
         "{\"colour\": 1}}, {\"name\": "
         "\"b\", \"share\": 0.5}]}",
         "unknown parameter 'colour'"},
        {"ok",
         "{\"arms\": [{\"name\": \"a\", \"share\": 0.5, \"params\": "
         "{\"ranker\": \"magic\"}}, "
         "{\"name\": \"b\", \"share\": 0.5}]}",
         "out of range"},
        {"ok",
         "{\"arms\": [{\"name\": \"a\", \"share\": 0.5}, {\"name\": \"b\", "
         "\"share\": 0.5}], "
         "\"control\": \"c\"}",
         "control"},
        {"ok", "{\"arms\": [], \"extra\": 1}", "unknown field 'extra'"},
        {"bad name!", "{}", "experiment names"},
        {"", "{}", "experiment names"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(put(x, bad[i][0], bad[i][1], &d), REEL_EINVAL);
        if (!strstr(d.msg, bad[i][2]))
            fail_msg("case %zu: '%s'", i, d.msg);
    }
    assert_int_equal(reel_experiments_count(x), 0);
    char name[16];
    for (int i = 0; i < REEL_EXP_MAX; i++) {
        snprintf(name, sizeof name, "e%02d", i);
        assert_int_equal(put(x, name,
                             "{\"arms\": [{\"name\": \"a\", \"share\": 0.5}, "
                             "{\"name\": \"b\", "
                             "\"share\": 0.5}]}",
                             &d),
                         0);
    }
    assert_int_equal(
        put(x, "one-more",
            "{\"arms\": [{\"name\": \"a\", \"share\": 0.5}, {\"name\": \"b\", "
            "\"share\": 0.5}]}",
            &d),
        REEL_ETOOBIG);
    assert_int_equal(reel_experiments_delete(x, "e05"), 0);
    assert_int_equal(reel_experiments_delete(x, "e05"), REEL_ENOENT);
    assert_int_equal(reel_experiments_count(x), REEL_EXP_MAX - 1);
    reel_experiments_free(x);
}

static json_t *arm_json(json_t *e, const char *arm)
{
    json_t *arms = json_object_get(e, "arms");
    for (size_t i = 0; i < json_array_size(arms); i++)
        if (!strcmp(json_string_value(
                        json_object_get(json_array_get(arms, i), "name")),
                    arm))
            return json_array_get(arms, i);
    fail_msg("no arm %s", arm);
    return NULL;
}

static long long count_of(json_t *e, const char *arm, const char *what)
{
    return json_integer_value(json_object_get(arm_json(e, arm), what));
}

static void attribution_counts_the_arm_served(void **state)
{
    reel_experiments *x;
    reel_diag d;
    assert_int_equal(reel_experiments_new(100, &x), 0);
    const char *spec =
        "{\"arms\": [{\"name\": \"c\", \"share\": 0.5}, {\"name\": \"t\", "
        "\"share\": 0.5}], \"control\": \"t\"}";
    assert_int_equal(put(x, "e", spec, &d), 0);
    reel_reco_opts base = reel_reco_opts_default(), o;
    reel_exp_assignment as;
    char user[16], rid[16], arm_of[8][REEL_EXP_NAME_MAX + 1];
    for (int i = 0; i < 8; i++) {
        snprintf(user, sizeof user, "user%d", i);
        snprintf(rid, sizeof rid, "r%d", i);
        reel_experiments_assign(x, user, &base, &as, &o);
        snprintf(arm_of[i], sizeof arm_of[i], "%s", as.e[0].arm);
        reel_experiments_served(x, rid, user, &as);
        reel_experiments_served(x, rid, user,
                                &as); /* a second answer, same id */
        for (int k = 0; k < 3; k++)
            reel_experiments_event(x, rid, REEL_EV_IMPRESSION, NAN, user);
        reel_experiments_event(x, rid, REEL_EV_CLICK, NAN, user);
        reel_experiments_event(x, rid, REEL_EV_WATCH, 30.0 * (i + 1), user);
        /* not counted: another user's event with this id, an unknown id */
        reel_experiments_event(x, rid, REEL_EV_CLICK, NAN, "intruder");
        reel_experiments_event(x, "nope", REEL_EV_CLICK, NAN, user);
    }
    int rc;
    json_t *e = reel_experiments_json(x, "e", &rc);
    assert_non_null(e);
    long long want_users[2] = {0}, want_w[2] = {0};
    for (int i = 0; i < 8; i++) {
        int k = !strcmp(arm_of[i], "t");
        want_users[k]++;
        want_w[k] += 30 * (i + 1);
    }
    for (int k = 0; k < 2; k++) {
        const char *arm = k ? "t" : "c";
        assert_int_equal(count_of(e, arm, "users"), want_users[k]);
        assert_int_equal(count_of(e, arm, "requests"), 2 * want_users[k]);
        assert_int_equal(count_of(e, arm, "impressions"), 3 * want_users[k]);
        assert_int_equal(count_of(e, arm, "clicks"), want_users[k]);
        if (want_users[k]) {
            double w = json_real_value(json_object_get(
                json_object_get(arm_json(e, arm), "watch_s_per_impression"),
                "value"));
            assert_true(fabs(w - (double)want_w[k] / (3.0 * want_users[k])) <
                        1e-9);
        }
    }
    /* the control named is "t": "c" carries the comparison */
    assert_non_null(json_object_get(arm_json(e, "c"), "vs_control"));
    assert_null(json_object_get(arm_json(e, "t"), "vs_control"));
    json_decref(e);
    /* the same arms again: counts kept; other arms: counts start again,
     * and answers served before do not count */
    assert_int_equal(put(x, "e", spec, &d), 0);
    e = reel_experiments_json(x, "e", &rc);
    assert_int_equal(count_of(e, arm_of[0], "impressions") > 0, 1);
    json_decref(e);
    assert_int_equal(
        put(x, "e",
            "{\"arms\": [{\"name\": \"c\", \"share\": 0.3}, {\"name\": \"t\", "
            "\"share\": 0.7}]}",
            &d),
        0);
    reel_experiments_event(x, "r0", REEL_EV_IMPRESSION, NAN, "user0");
    e = reel_experiments_json(x, "e", &rc);
    assert_int_equal(
        count_of(e, "c", "impressions") + count_of(e, "t", "impressions"), 0);
    json_decref(e);
    assert_null(reel_experiments_json(x, "gone", &rc));
    assert_int_equal(rc, REEL_ENOENT);
    reel_experiments_free(x);
}

static void statistics_agree_with_tables(void **state)
{
    /* Student's t: two-sided 5% points (df 1, 10, 30) and the normal limit */
    assert_true(fabs(reel_exp_student_cdf(12.706, 1) - 0.975) < 1e-4);
    assert_true(fabs(reel_exp_student_cdf(2.228, 10) - 0.975) < 1e-4);
    assert_true(fabs(reel_exp_student_cdf(2.042, 30) - 0.975) < 1e-4);
    assert_true(fabs(reel_exp_student_cdf(-1.959964, 1e7) - 0.025) < 1e-5);
    assert_true(fabs(reel_exp_student_cdf(0, 5) - 0.5) < 1e-12);
    /* Wilson: 0 of 10, 5 of 10 (tabulated), 50 of 100 */
    reel_exp_ci w = reel_exp_wilson(0, 10);
    assert_true(w.value == 0 && fabs(w.lo) < 1e-12 &&
                fabs(w.hi - 0.2775) < 1e-4);
    w = reel_exp_wilson(5, 10);
    assert_true(fabs(w.lo - 0.2366) < 1e-4 && fabs(w.hi - 0.7634) < 1e-4);
    assert_true(isnan(reel_exp_wilson(0, 0).value));
    /* z-test: 60/100 against 40/100: z = 2.828, p = 0.00468 */
    assert_true(fabs(reel_exp_ztest(60, 100, 40, 100) - 0.004678) < 1e-5);
    assert_true(fabs(reel_exp_ztest(50, 100, 50, 100) - 1) < 1e-12);
    /* Welch against a direct computation from the samples */
    double a[] = {12, 15, 11, 19, 14, 13, 18},
           b[] = {22, 17, 25, 19, 21, 30, 24, 20, 26};
    double s1 = 0, q1 = 0, s2 = 0, q2 = 0;
    for (int i = 0; i < 7; i++)
        s1 += a[i], q1 += a[i] * a[i];
    for (int i = 0; i < 9; i++)
        s2 += b[i], q2 += b[i] * b[i];
    double m1 = s1 / 7, m2 = s2 / 9, v1 = 0, v2 = 0;
    for (int i = 0; i < 7; i++)
        v1 += (a[i] - m1) * (a[i] - m1) / 6;
    for (int i = 0; i < 9; i++)
        v2 += (b[i] - m2) * (b[i] - m2) / 8;
    double se2 = v1 / 7 + v2 / 9, t = (m1 - m2) / sqrt(se2);
    double df = se2 * se2 / ((v1 / 7) * (v1 / 7) / 6 + (v2 / 9) * (v2 / 9) / 8);
    double p = 2 * reel_exp_student_cdf(-fabs(t), df);
    assert_true(fabs(reel_exp_welch(7, s1, q1, 9, s2, q2) - p) < 1e-10);
    assert_true(p > 0.0001 && p < 0.001); /* t = -4.63, df = 13.99 */
    assert_true(isnan(reel_exp_welch(1, 1, 1, 5, 5, 5)));
    /* the delta method from running sums against its linearised form,
     * sum((c_i - R n_i)^2) / (nbar^2 m (m - 1)) */
    double n_i[] = {3, 10, 1, 7, 0, 12, 5}, c_i[] = {1, 2, 0, 3, 0, 1, 4};
    double sn = 0, sc = 0, snn = 0, scc = 0, snc = 0;
    for (int i = 0; i < 7; i++) {
        sn += n_i[i], sc += c_i[i], snn += n_i[i] * n_i[i];
        scc += c_i[i] * c_i[i], snc += n_i[i] * c_i[i];
    }
    double R = sc / sn, nbar = sn / 7, lin = 0;
    for (int i = 0; i < 7; i++)
        lin += (c_i[i] - R * n_i[i]) * (c_i[i] - R * n_i[i]);
    lin /= nbar * nbar * 7 * 6;
    assert_true(fabs(reel_exp_delta_var(7, sn, sc, snn, scc, snc) - lin) <
                1e-12);
    assert_true(isnan(reel_exp_delta_var(1, 1, 1, 1, 1, 1)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(assignment_is_sticky_split_and_independent),
        cmocka_unit_test(overrides_merge_in_name_order),
        cmocka_unit_test(bad_bodies_are_refused),
        cmocka_unit_test(attribution_counts_the_arm_served),
        cmocka_unit_test(statistics_agree_with_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
