/* Unit tests of cmd/httpc (the HTTP client of `reel simulate`) against a
 * scripted server on 127.0.0.1 in this process: URLs and escaping,
 * keep-alive and reconnection, the retry of an idempotent request on a
 * connection the server dropped, and every refusal (chunked, too large,
 * truncated, not HTTP, silent server, cancel, nothing listening). */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpc.h"

/* What the server does with the request it just read. */
enum act {
    REPLY,       /* write `reply`, keep the connection */
    REPLY_CLOSE, /* write `reply`, then close */
    DROP,        /* close without answering */
    SILENT,      /* answer nothing; wait until the client hangs up */
};

struct step {
    enum act act;
    const char *reply;
};

struct fake {
    int lfd;
    char url[64];
    const struct step *steps;
    size_t n_steps;
    int accepts;
    atomic_int closes; /* connections this side has closed */
    char last[8192];   /* the last request's head and body */
    pthread_t th;
};

/* Reads one request (head, then a Content-Length body) into f->last; 0 at
 * EOF. */
static int read_request(struct fake *f, int fd)
{
    size_t n = 0;
    size_t need = 0;
    for (;;) {
        if (n >= sizeof f->last - 1)
            return 0;
        ssize_t r = read(fd, f->last + n, sizeof f->last - 1 - n);
        if (r <= 0)
            return 0;
        n += (size_t)r;
        f->last[n] = '\0';
        char *end = strstr(f->last, "\r\n\r\n");
        if (!end)
            continue;
        size_t head = (size_t)(end - f->last) + 4;
        const char *cl = strstr(f->last, "Content-Length: ");
        need = head + (cl && cl < end ? strtoul(cl + 16, NULL, 10) : 0);
        if (n >= need)
            return 1;
    }
}

static void write_all(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void *serve(void *arg)
{
    struct fake *f = arg;
    size_t i = 0;
    while (i < f->n_steps) {
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        f->accepts++;
        int open = 1;
        while (open && i < f->n_steps) {
            if (!read_request(f, fd)) {
                open = 0;
                break;
            }
            const struct step *s = &f->steps[i++];
            switch (s->act) {
            case REPLY:
                write_all(fd, s->reply);
                break;
            case REPLY_CLOSE:
                write_all(fd, s->reply);
                open = 0;
                break;
            case DROP:
                open = 0;
                break;
            case SILENT: {
                char b[256];
                while (read(fd, b, sizeof b) > 0)
                    ;
                open = 0;
                break;
            }
            }
        }
        close(fd);
        atomic_fetch_add(&f->closes, 1);
    }
    return NULL;
}

/* Waits (2 s at most) until the fake has closed n connections. */
static void wait_closes(struct fake *f, int n)
{
    for (int i = 0; i < 2000 && atomic_load(&f->closes) < n; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    assert_true(atomic_load(&f->closes) >= n);
}

static void fake_start(struct fake *f, const struct step *steps, size_t n)
{
    memset(f, 0, sizeof *f);
    f->steps = steps;
    f->n_steps = n;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(f->lfd, 8), 0);
    socklen_t len = sizeof a;
    getsockname(f->lfd, (struct sockaddr *)&a, &len);
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%u",
             (unsigned)ntohs(a.sin_port));
    assert_int_equal(pthread_create(&f->th, NULL, serve, f), 0);
}

static void fake_stop(struct fake *f)
{
    shutdown(f->lfd, SHUT_RDWR);
    pthread_join(f->th, NULL);
    close(f->lfd);
}

static reel_httpc *client(const struct fake *f, double timeout)
{
    reel_httpc_opts o = reel_httpc_opts_default();
    o.timeout_s = timeout;
    o.max_body = 1000;
    o.token = "t0k";
    reel_httpc *c = NULL;
    reel_diag d;
    reel_diag_clear(&d);
    assert_int_equal(reel_httpc_open(f->url, &o, &c, &d), 0);
    return c;
}

static char *ok(const char *body)
{
    static char buf[8][256];
    static int k;
    char *o = buf[k++ % 8];
    snprintf(o, 256,
             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    return o;
}

/* ---------------------------------------------------------------- URLs */

static void urls_parse_and_refuse(void **state)
{
    (void)state;
    reel_httpc_url u;
    reel_diag d;
    assert_int_equal(reel_httpc_url_parse("http://127.0.0.1:8080", &u, &d), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_string_equal(u.port, "8080");
    assert_string_equal(u.prefix, "");
    assert_int_equal(reel_httpc_url_parse("HTTP://localhost/api/v/", &u, &d),
                     0);
    assert_string_equal(u.host, "localhost");
    assert_string_equal(u.port, "80");
    assert_string_equal(u.prefix, "/api/v");
    assert_int_equal(reel_httpc_url_parse("[::1]:9000", &u, &d), 0);
    assert_string_equal(u.host, "::1");
    assert_string_equal(u.port, "9000");
    assert_int_equal(reel_httpc_url_parse("https://x", &u, &d),
                     REEL_EUNSUPPORTED);
    assert_non_null(strstr(d.msg, "https"));
    const char *bad[] = {"",           "ftp://x",     "http://",
                         "http://:80", "http://x:0",  "http://x:65536",
                         "http://x:",  "http://a@b",  "http://x/a?b",
                         "http://x y", "http://[::1", "http://x:8a"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        reel_diag_clear(&d);
        assert_int_equal(reel_httpc_url_parse(bad[i], &u, &d), REEL_EINVAL);
        assert_true(d.msg[0] != '\0');
    }
}

static void escape_encodes_everything_but_unreserved(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(
        reel_httpc_escape("u/7 \xc3\xa9~a-b_c.d", 14, out, sizeof out), 0);
    assert_string_equal(out, "u%2F7%20%C3%A9~a-b_c.d");
    assert_int_equal(reel_httpc_escape("abc", 3, out, 3), REEL_ETOOBIG);
    assert_int_equal(reel_httpc_escape("abc", 3, out, 4), 0);
    assert_int_equal(reel_httpc_escape("/", 1, out, 3), REEL_ETOOBIG);
}

/* ---------------------------------------------------------- exchanges */

static void keep_alive_reuses_one_connection(void **state)
{
    (void)state;
    struct step s[] = {{REPLY, ok("{\"a\":1}")}, {REPLY, ok("[2]")}};
    struct fake f;
    fake_start(&f, s, 2);
    reel_httpc *c = client(&f, 5);
    reel_httpc_resp r;
    reel_diag d;
    assert_int_equal(reel_httpc_request(c, "GET", "/x", NULL, 0, &r, &d), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 7);
    assert_string_equal(r.body, "{\"a\":1}");
    assert_non_null(strstr(f.last, "GET /x HTTP/1.1\r\n"));
    assert_non_null(strstr(f.last, "Authorization: Bearer t0k\r\n"));
    assert_int_equal(
        reel_httpc_request(c, "POST", "/e", "{\"q\":1}", 7, &r, &d), 0);
    assert_string_equal(r.body, "[2]");
    assert_non_null(strstr(f.last, "Content-Length: 7\r\n"));
    assert_non_null(strstr(f.last, "\r\n\r\n{\"q\":1}"));
    assert_int_equal(reel_httpc_connects(c), 1);
    reel_httpc_close(c);
    fake_stop(&f);
    assert_int_equal(f.accepts, 1);
}

static void connection_close_reconnects(void **state)
{
    (void)state;
    struct step s[] = {
        {REPLY, "HTTP/1.1 404 Not Found\r\nConnection: close\r\n"
                "Content-Length: 2\r\n\r\nno"},
        {REPLY_CLOSE, ok("1")}, /* closes without saying so */
        {REPLY, "HTTP/1.0 204 No Content\r\n\r\n"},
        {REPLY, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
                "Content-Length: 2\r\n\r\nok"},
    };
    struct fake f;
    fake_start(&f, s, 4);
    reel_httpc *c = client(&f, 5);
    reel_httpc_resp r;
    reel_diag d;
    assert_int_equal(reel_httpc_request(c, "GET", "/a", NULL, 0, &r, &d), 0);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "no");
    assert_int_equal(reel_httpc_request(c, "GET", "/b", NULL, 0, &r, &d), 0);
    assert_string_equal(r.body, "1");
    /* The server closed that one silently: the next request sees it
     * (once the close has happened: a close racing with the next request
     * is a dropped request, see below). */
    wait_closes(&f, 2);
    assert_int_equal(reel_httpc_request(c, "POST", "/c", "x", 1, &r, &d), 0);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.len, 0);
    /* HTTP/1.0 without keep-alive: closed after the answer. */
    assert_int_equal(reel_httpc_request(c, "GET", "/d", NULL, 0, &r, &d), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok");
    assert_int_equal(reel_httpc_connects(c), 4);
    reel_httpc_close(c);
    fake_stop(&f);
}

static void dropped_get_is_retried_once_post_is_not(void **state)
{
    (void)state;
    struct step s[] = {
        {REPLY, ok("1")}, {DROP, NULL}, {REPLY, ok("2")}, {DROP, NULL}};
    struct fake f;
    fake_start(&f, s, 4);
    reel_httpc *c = client(&f, 5);
    reel_httpc_resp r;
    reel_diag d;
    assert_int_equal(reel_httpc_request(c, "GET", "/a", NULL, 0, &r, &d), 0);
    /* Dropped after the request was read: retried on a new connection. */
    assert_int_equal(reel_httpc_request(c, "GET", "/b", NULL, 0, &r, &d), 0);
    assert_string_equal(r.body, "2");
    assert_int_equal(reel_httpc_connects(c), 2);
    /* The server may have acted on a POST: the failure is reported. */
    reel_diag_clear(&d);
    assert_int_equal(reel_httpc_request(c, "POST", "/c", "x", 1, &r, &d),
                     REEL_EUNAVAILABLE);
    assert_non_null(strstr(d.msg, "without answering"));
    reel_httpc_close(c);
    fake_stop(&f);
}

static void bad_answers_are_refused_with_reasons(void **state)
{
    (void)state;
    static char big_head[20000];
    memcpy(big_head, "HTTP/1.1 200 OK\r\nX: ", 20);
    memset(big_head + 20, 'a', sizeof big_head - 30);
    memcpy(big_head + sizeof big_head - 10, "\r\n\r\n", 5);
    struct {
        const char *reply;
        int rc;
        const char *msg;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
         "0\r\n\r\n",
         REEL_EUNSUPPORTED, "chunked"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n", REEL_ETOOBIG,
         "larger than 1000"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
         REEL_ETOOBIG, "larger"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", REEL_EFORMAT,
         "after 3 of 10"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
         REEL_EFORMAT, "two different"},
        {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", REEL_EFORMAT,
         "malformed Content-Length"},
        {"SSH-2.0-OpenSSH\r\n\r\n", REEL_EFORMAT, "not HTTP"},
        {"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", REEL_EFORMAT, "header line"},
        {"HTTP/1.1 200 OK\r\nContent-Le", REEL_EFORMAT, "middle"},
        {big_head, REEL_ETOOBIG, "headers longer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct step s[] = {{REPLY_CLOSE, cases[i].reply}};
        struct fake f;
        fake_start(&f, s, 1);
        reel_httpc *c = client(&f, 5);
        reel_httpc_resp r;
        reel_diag d;
        reel_diag_clear(&d);
        int rc = reel_httpc_request(c, "GET", "/", NULL, 0, &r, &d);
        if (rc != cases[i].rc || !strstr(d.msg, cases[i].msg))
            fail_msg("case %zu: rc %d, message '%s'", i, rc, d.msg);
        reel_httpc_close(c);
        fake_stop(&f);
    }
}

static void body_without_length_runs_to_close_within_bound(void **state)
{
    (void)state;
    struct step s[] = {{REPLY_CLOSE, "HTTP/1.1 200 OK\r\n\r\nall of it"}};
    struct fake f;
    fake_start(&f, s, 1);
    reel_httpc *c = client(&f, 5);
    reel_httpc_resp r;
    reel_diag d;
    assert_int_equal(reel_httpc_request(c, "GET", "/", NULL, 0, &r, &d), 0);
    assert_string_equal(r.body, "all of it");
    reel_httpc_close(c);
    fake_stop(&f);
}

static void silent_server_times_out_and_cancel_stops(void **state)
{
    (void)state;
    struct step s[] = {{SILENT, NULL}, {SILENT, NULL}};
    struct fake f;
    fake_start(&f, s, 2);
    reel_httpc *c = client(&f, 0.2);
    reel_httpc_resp r;
    reel_diag d;
    reel_diag_clear(&d);
    assert_int_equal(reel_httpc_request(c, "GET", "/", NULL, 0, &r, &d),
                     REEL_ETIMEOUT);
    assert_non_null(strstr(d.msg, "no answer within"));
    reel_httpc_close(c);

    atomic_int cancel = 1;
    reel_httpc_opts o = reel_httpc_opts_default();
    o.cancel = &cancel;
    assert_int_equal(reel_httpc_open(f.url, &o, &c, &d), 0);
    reel_diag_clear(&d);
    assert_int_equal(reel_httpc_request(c, "GET", "/", NULL, 0, &r, &d),
                     REEL_ECANCELED);
    reel_httpc_close(c);
    fake_stop(&f);
}

static void nothing_listening_is_unavailable(void **state)
{
    (void)state;
    struct fake f;
    struct step s[] = {{DROP, NULL}};
    fake_start(&f, s, 1);
    char url[64];
    memcpy(url, f.url, sizeof url);
    /* Connect once so the thread ends, then the port is closed. */
    reel_httpc *c = client(&f, 5);
    reel_httpc_resp r;
    reel_diag d;
    reel_httpc_request(c, "POST", "/", "", 0, &r, &d);
    reel_httpc_close(c);
    fake_stop(&f);
    reel_httpc_opts o = reel_httpc_opts_default();
    assert_int_equal(reel_httpc_open(url, &o, &c, &d), 0);
    reel_diag_clear(&d);
    assert_int_equal(reel_httpc_request(c, "GET", "/", NULL, 0, &r, &d),
                     REEL_EUNAVAILABLE);
    assert_non_null(strstr(d.msg, "cannot connect"));
    reel_httpc_close(c);
}

static void bad_arguments_are_refused(void **state)
{
    (void)state;
    reel_httpc_opts o = reel_httpc_opts_default();
    reel_httpc *c = NULL;
    reel_diag d;
    o.token = "a\r\nX: y";
    assert_int_equal(reel_httpc_open("http://127.0.0.1:1", &o, &c, &d),
                     REEL_EINVAL);
    o = reel_httpc_opts_default();
    o.timeout_s = 0;
    assert_int_equal(reel_httpc_open("http://127.0.0.1:1", &o, &c, &d),
                     REEL_EINVAL);
    o = reel_httpc_opts_default();
    assert_int_equal(reel_httpc_open("http://127.0.0.1:1", &o, &c, &d), 0);
    reel_httpc_resp r;
    assert_int_equal(reel_httpc_request(c, "GET", "no-slash", NULL, 0, &r, &d),
                     REEL_EINVAL);
    assert_int_equal(reel_httpc_request(c, "GET", "/a b", NULL, 0, &r, &d),
                     REEL_EINVAL);
    reel_httpc_close(c);
    reel_httpc_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(urls_parse_and_refuse),
        cmocka_unit_test(escape_encodes_everything_but_unreserved),
        cmocka_unit_test(keep_alive_reuses_one_connection),
        cmocka_unit_test(connection_close_reconnects),
        cmocka_unit_test(dropped_get_is_retried_once_post_is_not),
        cmocka_unit_test(bad_answers_are_refused_with_reasons),
        cmocka_unit_test(body_without_length_runs_to_close_within_bound),
        cmocka_unit_test(silent_server_times_out_and_cancel_stops),
        cmocka_unit_test(nothing_listening_is_unavailable),
        cmocka_unit_test(bad_arguments_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
