/* CRI log files: real files under a fresh /tmp directory, read back and
 * parsed line by line. The full-disk test mounts a 64 KiB tmpfs (runs as
 * root). The performance test prints its time and asserts only the content. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/crilog.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "unit.h"

#define MAXC CRILOG_MAX_CONTENT
/* "<time> stdout F " */
#define HEADER_LEN_FOR_TEST (CRILOG_TIME_LEN + 10)

static const struct timespec T1 = {1795428000, 123456789}; /* 2026-11-23T10:00:00.123456789Z */
static const struct timespec T2 = {1795428001, 5};
static const struct timespec T3 = {1795428002, 999999999};

/* ---- helpers --------------------------------------------------------------- */

static char *make_dir(void)
{
    char tmpl[] = "/tmp/test-crilog-XXXXXX";
    if (!mkdtemp(tmpl)) {
        UNIT_FAIL("mkdtemp: %s", strerror(errno));
        exit(1);
    }
    return strdup(tmpl);
}

static void remove_dir(char *dir)
{
    err_t err = ERR_INIT;
    if (fs_remove_tree(dir, &err) < 0)
        UNIT_FAIL("removing %s: %s", dir, err.msg);
    err_clear(&err);
    free(dir);
}

static char *join(const char *dir, const char *name)
{
    char *p;
    if (asprintf(&p, "%s/%s", dir, name) < 0)
        exit(1);
    return p;
}

/* A log file read back: every line parsed (content points into buf). */
struct parsed {
    char *buf;
    size_t len;
    struct crilog_record *recs;
    size_t n;
    size_t bad;        /* lines crilog_parse_line refused */
    size_t bad_at;     /* byte offset of the first refused line */
    bool ends_in_line; /* the file ends with a newline (or is empty) */
};

static void parsed_free(struct parsed *p)
{
    free(p->buf);
    free(p->recs);
    memset(p, 0, sizeof(*p));
}

static struct parsed read_log(const char *path)
{
    struct parsed p = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        UNIT_FAIL("open %s: %s", path, strerror(errno));
        return p;
    }
    struct stat st;
    fstat(fd, &st);
    p.buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, p.buf + got, (size_t)st.st_size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    p.len = got;
    size_t cap = 0;
    for (size_t i = 0; i < got;) {
        char *nl = memchr(p.buf + i, '\n', got - i);
        size_t end = nl ? (size_t)(nl - p.buf) + 1 : got;
        if (p.n == cap) {
            cap = cap ? cap * 2 : 64;
            p.recs = realloc(p.recs, cap * sizeof(*p.recs));
        }
        if (crilog_parse_line(p.buf + i, end - i, &p.recs[p.n]) == 0 && nl)
            p.n++;
        else if (p.bad++ == 0)
            p.bad_at = i;
        i = end;
    }
    p.ends_in_line = got == 0 || p.buf[got - 1] == '\n';
    return p;
}

static bool same_time(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

static bool rec_is(const struct crilog_record *r, enum crilog_stream s, bool partial, const char *content,
                   size_t content_len)
{
    return r->stream == s && r->partial == partial && r->content_len == content_len &&
           memcmp(r->content, content, content_len) == 0;
}
#define REC_IS(r, s, partial, str) rec_is((r), (s), (partial), (str), strlen(str))

/* The stream's output as kubelet rebuilds it: contents joined, a newline
 * after each F. */
static uint8_t *reassemble(const struct parsed *p, enum crilog_stream s, size_t *len)
{
    size_t total = 0;
    for (size_t i = 0; i < p->n; i++)
        if (p->recs[i].stream == s)
            total += p->recs[i].content_len + !p->recs[i].partial;
    uint8_t *out = malloc(total + 1), *o = out;
    for (size_t i = 0; i < p->n; i++) {
        if (p->recs[i].stream != s)
            continue;
        memcpy(o, p->recs[i].content, p->recs[i].content_len);
        o += p->recs[i].content_len;
        if (!p->recs[i].partial)
            *o++ = '\n';
    }
    *len = total;
    return out;
}

static int wr(struct crilog *l, enum crilog_stream s, const void *data, size_t len, const struct timespec *t)
{
    err_t err = ERR_INIT;
    int r = crilog_write(l, s, data, len, t, &err);
    if (r < 0 && !err.msg)
        UNIT_FAIL("crilog_write failed without a message");
    err_clear(&err);
    return r;
}
#define WR(l, s, str, t) wr((l), (s), (str), strlen(str), (t))

static int fl(struct crilog *l, enum crilog_stream s, const struct timespec *t)
{
    err_t err = ERR_INIT;
    int r = crilog_flush(l, s, t, &err);
    err_clear(&err);
    return r;
}

static struct crilog *open_log(const char *path)
{
    struct crilog *l = NULL;
    err_t err = ERR_INIT;
    int r = crilog_open(path, &l, &err);
    CHECK_MSG(r == 0, "crilog_open %s: %s", path, err.msg ? err.msg : "");
    err_clear(&err);
    return l;
}

/* Closes the log and checks the file against what it counted and the
 * format: every line parses, the file ends at a record boundary. */
static struct parsed close_and_read(struct crilog *l, const char *path)
{
    uint64_t bytes = crilog_bytes(l);
    crilog_close(l);
    struct parsed p = read_log(path);
    CHECK_EQ_U64(p.len, bytes);
    CHECK_EQ_U64(p.bad, 0);
    CHECK(p.ends_in_line);
    size_t too_long = 0;
    for (size_t i = 0; i < p.n; i++)
        too_long += p.recs[i].content_len > MAXC;
    CHECK_EQ_U64(too_long, 0);
    return p;
}

/* ---- timestamps and parsing ---------------------------------------------- */

static void test_format_time(void)
{
    char buf[40];
    CHECK_EQ_U64(crilog_format_time(&T1, buf, sizeof(buf)), CRILOG_TIME_LEN);
    CHECK_STREQ(buf, "2026-11-23T10:00:00.123456789Z");
    crilog_format_time(&T2, buf, sizeof(buf));
    CHECK_STREQ(buf, "2026-11-23T10:00:01.000000005Z");
    crilog_format_time(&(struct timespec){0, 0}, buf, sizeof(buf));
    CHECK_STREQ(buf, "1970-01-01T00:00:00.000000000Z");
    crilog_format_time(&(struct timespec){951868799, 999999999}, buf, sizeof(buf));
    CHECK_STREQ(buf, "2000-02-29T23:59:59.999999999Z");
    crilog_format_time(&(struct timespec){-1, 500000000}, buf, sizeof(buf));
    CHECK_STREQ(buf, "1969-12-31T23:59:59.500000000Z");
    /* RFC 3339 has four-digit years: out-of-range clocks are clamped. */
    crilog_format_time(&(struct timespec){253402300800LL * 4, 0}, buf, sizeof(buf));
    CHECK_STREQ(buf, "9999-12-31T23:59:59.999999999Z");
    crilog_format_time(&(struct timespec){-62167219200LL - 1, 7}, buf, sizeof(buf));
    CHECK_STREQ(buf, "0000-01-01T00:00:00.000000000Z");
    /* Too small a buffer: nothing, but a terminated string. */
    char small[CRILOG_TIME_LEN];
    memset(small, 'x', sizeof(small));
    CHECK_EQ_U64(crilog_format_time(&T1, small, sizeof(small)), 0);
    CHECK_EQ_INT(small[0], '\0');
    CHECK_EQ_U64(crilog_format_time(&T1, buf, CRILOG_TIME_LEN + 1), CRILOG_TIME_LEN);

    /* Round trip over a spread of times, checked against the C library. */
    uint64_t x = 88172645463325252ULL;
    int bad = 0;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        struct timespec t = {(time_t)(x % 253402300800ULL) - (i % 2 ? 62167219200LL : 0),
                             (long)((x >> 20) % 1000000000)};
        char line[128];
        size_t n = crilog_format_time(&t, line, sizeof(line));
        struct tm tm;
        gmtime_r(&t.tv_sec, &tm);
        char want[64];
        snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, t.tv_nsec);
        bool same = n == CRILOG_TIME_LEN && strcmp(line, want) == 0;
        memcpy(line + n, " stdout F x", 12);
        struct crilog_record rec;
        if (!same) {
            if (bad++ < 5)
                UNIT_FAIL("time %lld.%09ld: got %.*s want %s", (long long)t.tv_sec, t.tv_nsec, (int)n, line, want);
        } else if (crilog_parse_line(line, strlen(line), &rec) != 0 || !same_time(&rec.time, &t)) {
            if (bad++ < 5)
                UNIT_FAIL("time %s does not parse back to %lld.%09ld", line, (long long)t.tv_sec, t.tv_nsec);
        }
    }
    CHECK_EQ_INT(bad, 0);
}

static int parse(const char *line, struct crilog_record *rec)
{
    return crilog_parse_line(line, strlen(line), rec);
}

static void test_parse_line(void)
{
    struct crilog_record r;
    CHECK_OK(parse("2026-11-23T10:00:00.123456789Z stdout F hello world\n", &r));
    CHECK(same_time(&r.time, &T1));
    CHECK(REC_IS(&r, CRILOG_STDOUT, false, "hello world"));
    CHECK_OK(parse("2026-11-23T10:00:00.123456789Z stderr P  two  spaces ", &r));
    CHECK(REC_IS(&r, CRILOG_STDERR, true, " two  spaces "));
    CHECK_OK(parse("2026-11-23T10:00:00.123456789Z stdout F ", &r));
    CHECK(REC_IS(&r, CRILOG_STDOUT, false, ""));
    CHECK_OK(parse("2026-11-23T10:00:00.123456789Z stdout F \n", &r));
    CHECK(REC_IS(&r, CRILOG_STDOUT, false, ""));
    CHECK_OK(parse("2026-11-23T10:00:00.123456789Z stdout F a\r\n", &r));
    CHECK(REC_IS(&r, CRILOG_STDOUT, false, "a\r"));
    const char nul[] = "2026-11-23T10:00:00.123456789Z stdout F a\0b\n";
    CHECK_OK(crilog_parse_line(nul, sizeof(nul) - 1, &r));
    CHECK(rec_is(&r, CRILOG_STDOUT, false, "a\0b", 3));

    /* RFC3339Nano as Go writes it elsewhere: trimmed fraction, none, offsets. */
    CHECK_OK(parse("2026-11-23T10:00:00.5Z stdout F x", &r));
    CHECK(r.time.tv_sec == T1.tv_sec && r.time.tv_nsec == 500000000);
    CHECK_OK(parse("2026-11-23T10:00:00Z stdout F x", &r));
    CHECK(r.time.tv_sec == T1.tv_sec && r.time.tv_nsec == 0);
    CHECK_OK(parse("2026-11-23T11:30:00.123456789+01:30 stdout F x", &r));
    CHECK(same_time(&r.time, &T1));
    CHECK_OK(parse("2026-11-23T05:00:00.123456789-05:00 stdout F x", &r));
    CHECK(same_time(&r.time, &T1));
    CHECK_OK(parse("2000-02-29T23:59:59.999999999Z stdout F x", &r));
    CHECK(r.time.tv_sec == 951868799 && r.time.tv_nsec == 999999999);
    /* Further tags after ':' are for forward compatibility. */
    CHECK_OK(parse("2026-11-23T10:00:00.123456789Z stdout P:future:tags content", &r));
    CHECK(REC_IS(&r, CRILOG_STDOUT, true, "content"));

    static const char *const bad[] = {
        "",
        "\n",
        "2026-11-23T10:00:00.123456789Z",
        "2026-11-23T10:00:00.123456789Z stdout",
        "2026-11-23T10:00:00.123456789Z stdout F",   /* kubelet needs the space after the tag */
        "2026-11-23T10:00:00.123456789Z stdout F\n", /* likewise */
        "2026-11-23T10:00:00.123456789Z stdin F x",
        "2026-11-23T10:00:00.123456789Z STDOUT F x",
        "2026-11-23T10:00:00.123456789Z stdout X x",
        "2026-11-23T10:00:00.123456789Z stdout FP x",
        "2026-11-23T10:00:00.123456789Z stdout f x",
        "2026-11-23T10:00:00.123456789Z stdout F: x",
        "2026-11-23T10:00:00.123456789Z  stdout F x",
        "2026-11-23T10:00:00.123456789Z stdout  F x",
        " 2026-11-23T10:00:00.123456789Z stdout F x",
        "2026-11-23T10:00:00.123456789Z stdout F two\nlines",
        "2026-11-23T10:00:00.123456789Z stdout F x\n\n",
        "2026-11-23T10:00:00.1234567891Z stdout F x", /* more than nanoseconds */
        "2026-11-23T10:00:00.Z stdout F x",
        "2026-11-23T10:00:00.123456789 stdout F x",
        "2026-11-23T10:00:00.123456789z stdout F x",
        "2026-11-23t10:00:00.123456789Z stdout F x",
        "2026-11-23 10:00:00.123456789Z stdout F x",
        "2026-13-23T10:00:00.123456789Z stdout F x",
        "2026-00-23T10:00:00.123456789Z stdout F x",
        "2026-11-31T10:00:00.123456789Z stdout F x",
        "2026-02-29T10:00:00.123456789Z stdout F x",
        "1900-02-29T10:00:00.123456789Z stdout F x",
        "2026-11-23T24:00:00.123456789Z stdout F x",
        "2026-11-23T10:60:00.123456789Z stdout F x",
        "2026-11-23T10:00:60.123456789Z stdout F x",
        "2026-11-23T10:00:00.123456789+0100 stdout F x",
        "2026-11-23T10:00:00.123456789+24:00 stdout F x",
        "26-11-23T10:00:00.123456789Z stdout F x",
        "2026-1-23T10:00:00.123456789Z stdout F x",
        "+026-11-23T10:00:00.123456789Z stdout F x",
        "2026-11-23T10:00:00,123456789Z stdout F x",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        CHECK_MSG(parse(bad[i], &r) == -EINVAL, "accepted \"%s\"", bad[i]);
}

/* ---- records --------------------------------------------------------------- */

static void test_single_line(void)
{
    char *dir = make_dir(), *path = join(dir, "0.log");
    struct crilog *l = open_log(path);
    struct stat st;
    CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0077 & ~0040) == 0);
    CHECK_EQ_U64(crilog_bytes(l), 0);
    CHECK_OK(WR(l, CRILOG_STDOUT, "hello world\n", &T1));
    CHECK_EQ_U64(crilog_bytes(l), 52);
    struct parsed p = close_and_read(l, path);
    CHECK_EQ_U64(p.n, 1);
    CHECK(p.len == 52 && memcmp(p.buf, "2026-11-23T10:00:00.123456789Z stdout F hello world\n", 52) == 0);
    parsed_free(&p);

    /* Opening again appends. */
    l = open_log(path);
    CHECK_OK(WR(l, CRILOG_STDERR, "second\n", &T2));
    crilog_close(l);
    p = read_log(path);
    CHECK_EQ_U64(p.n, 2);
    CHECK(p.n == 2 && REC_IS(&p.recs[1], CRILOG_STDERR, false, "second") && same_time(&p.recs[1].time, &T2));
    parsed_free(&p);
    free(path);
    remove_dir(dir);
}

static void test_several_lines(void)
{
    char *dir = make_dir(), *path = join(dir, "0.log");
    struct crilog *l = open_log(path);
    CHECK_OK(WR(l, CRILOG_STDOUT, "one\ntwo\nthree\nfour", &T1));
    CHECK_OK(WR(l, CRILOG_STDOUT, "\n", &T2));
    struct parsed p = close_and_read(l, path);
    CHECK_EQ_U64(p.n, 4);
    if (p.n == 4) {
        CHECK(REC_IS(&p.recs[0], CRILOG_STDOUT, false, "one") && same_time(&p.recs[0].time, &T1));
        CHECK(REC_IS(&p.recs[1], CRILOG_STDOUT, false, "two") && same_time(&p.recs[1].time, &T1));
        CHECK(REC_IS(&p.recs[2], CRILOG_STDOUT, false, "three") && same_time(&p.recs[2].time, &T1));
        /* Completed by the second call: its time. */
        CHECK(REC_IS(&p.recs[3], CRILOG_STDOUT, false, "four") && same_time(&p.recs[3].time, &T2));
    }
    parsed_free(&p);
    free(path);
    remove_dir(dir);
}

static void test_byte_at_a_time(void)
{
    char *dir = make_dir(), *path = join(dir, "0.log");
    struct crilog *l = open_log(path);
    const char *text = "first line\n\nsecond line\nno newline at the end";
    int bad = 0;
    for (size_t i = 0; text[i]; i++)
        bad += wr(l, CRILOG_STDOUT, text + i, 1, &T1) != 0;
    CHECK_EQ_INT(bad, 0);
    CHECK_OK(wr(l, CRILOG_STDOUT, "", 0, &T1)); /* an empty read changes nothing */
    CHECK_OK(wr(l, CRILOG_STDOUT, NULL, 0, &T1));
    CHECK_OK(fl(l, CRILOG_STDOUT, &T2));
    struct parsed p = close_and_read(l, path);
    CHECK_EQ_U64(p.n, 4);
    if (p.n == 4) {
        CHECK(REC_IS(&p.recs[0], CRILOG_STDOUT, false, "first line"));
        CHECK(REC_IS(&p.recs[1], CRILOG_STDOUT, false, ""));
        CHECK(REC_IS(&p.recs[2], CRILOG_STDOUT, false, "second line"));
        CHECK(REC_IS(&p.recs[3], CRILOG_STDOUT, true, "no newline at the end"));
        CHECK(same_time(&p.recs[3].time, &T2));
    }
    parsed_free(&p);

    /* A 40 KiB line one byte at a time: 16 KiB P records, then the rest F. */
    l = open_log(path);
    CHECK(truncate(path, 0) == 0);
    size_t n = 40 * 1024;
    uint8_t *line = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        line[i] = (uint8_t)('a' + i % 26);
    line[n] = '\n';
    bad = 0;
    for (size_t i = 0; i <= n; i++)
        bad += wr(l, CRILOG_STDERR, line + i, 1, &T1) != 0;
    CHECK_EQ_INT(bad, 0);
    p = close_and_read(l, path);
    CHECK_EQ_U64(p.n, 3);
    if (p.n == 3) {
        CHECK(rec_is(&p.recs[0], CRILOG_STDERR, true, (char *)line, MAXC));
        CHECK(rec_is(&p.recs[1], CRILOG_STDERR, true, (char *)line + MAXC, MAXC));
        CHECK(rec_is(&p.recs[2], CRILOG_STDERR, false, (char *)line + 2 * MAXC, n - 2 * MAXC));
    }
    parsed_free(&p);
    free(line);
    free(path);
    remove_dir(dir);
}

static void test_crlf_and_empty_lines(void)
{
    char *dir = make_dir(), *path = join(dir, "0.log");
    struct crilog *l = open_log(path);
    CHECK_OK(WR(l, CRILOG_STDOUT, "dos\r\n\r\n\n\nend\r", &T1));
    CHECK_OK(WR(l, CRILOG_STDOUT, "\n", &T1));
    CHECK_OK(WR(l, CRILOG_STDERR, "\n", &T1));
    struct parsed p = close_and_read(l, path);
    CHECK_EQ_U64(p.n, 6);
    if (p.n == 6) {
        CHECK(REC_IS(&p.recs[0], CRILOG_STDOUT, false, "dos\r"));
        CHECK(REC_IS(&p.recs[1], CRILOG_STDOUT, false, "\r"));
        CHECK(REC_IS(&p.recs[2], CRILOG_STDOUT, false, ""));
        CHECK(REC_IS(&p.recs[3], CRILOG_STDOUT, false, ""));
        CHECK(REC_IS(&p.recs[4], CRILOG_STDOUT, false, "end\r"));
        CHECK(REC_IS(&p.recs[5], CRILOG_STDERR, false, ""));
    }
    /* The empty record still has the space after its tag (kubelet needs it). */
    CHECK(strstr(p.buf, "Z stderr F \n") != NULL);
    parsed_free(&p);
    free(path);
    remove_dir(dir);
}

static void test_interleaved(void)
{
    char *dir = make_dir(), *path = join(dir, "0.log");
    struct crilog *l = open_log(path);
    CHECK_OK(WR(l, CRILOG_STDOUT, "out-a", &T1));
    CHECK_OK(WR(l, CRILOG_STDERR, "err-a", &T1));
    CHECK_OK(WR(l, CRILOG_STDOUT, "-out-b\nout-c", &T2));
    CHECK_OK(WR(l, CRILOG_STDERR, "-err-b\n", &T2));
    CHECK_OK(WR(l, CRILOG_STDERR, "err-c\n", &T3));
    CHECK_OK(WR(l, CRILOG_STDOUT, "\n", &T3));
    struct parsed p = close_and_read(l, path);
    CHECK_EQ_U64(p.n, 4);
    if (p.n == 4) {
        CHECK(REC_IS(&p.recs[0], CRILOG_STDOUT, false, "out-a-out-b") && same_time(&p.recs[0].time, &T2));
        CHECK(REC_IS(&p.recs[1], CRILOG_STDERR, false, "err-a-err-b") && same_time(&p.recs[1].time, &T2));
        CHECK(REC_IS(&p.recs[2], CRILOG_STDERR, false, "err-c") && same_time(&p.recs[2].time, &T3));
        CHECK(REC_IS(&p.recs[3], CRILOG_STDOUT, false, "out-c") && same_time(&p.recs[3].time, &T3));
    }
    parsed_free(&p);
    free(path);
    remove_dir(dir);
}

static void test_long_line(void)
{
    char *dir = make_dir(), *path = join(dir, "0.log");
    size_t n = 1 << 20;
    uint8_t *line = malloc(n + 1);
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        line[i] = (uint8_t)(x >> 56);
        if (line[i] == '\n')
            line[i] = ' ';
    }
    line[n] = '\n';

    /* In one chunk, and in odd-sized chunks that straddle the 16 KiB
     * boundaries: the same 64 records either way. */
    for (int mode = 0; mode < 2; mode++) {
        struct crilog *l = open_log(path);
        if (mode == 0) {
            CHECK_OK(wr(l, CRILOG_STDOUT, line, n + 1, &T1));
        } else {
            size_t step = 10007;
            for (size_t i = 0; i <= n; i += step)
                CHECK_OK(wr(l, CRILOG_STDOUT, line + i, i + step <= n + 1 ? step : n + 1 - i, &T1));
        }
        struct parsed p = close_and_read(l, path);
        CHECK_EQ_U64(p.n, 64);
        size_t bad = 0;
        for (size_t i = 0; i < p.n; i++)
            bad += p.recs[i].content_len != MAXC || p.recs[i].partial != (i < 63);
        CHECK_EQ_U64(bad, 0);
        size_t len;
        uint8_t *back = reassemble(&p, CRILOG_STDOUT, &len);
        CHECK(len == n + 1 && memcmp(back, line, n + 1) == 0);
        free(back);
        parsed_free(&p);
        CHECK(unlink(path) == 0);
    }
    free(line);
    free(path);
    remove_dir(dir);
}

static void test_exact_16k(void)
{
    char *dir = make_dir(), *path = join(dir, "0.log");
    uint8_t *line = malloc(MAXC + 2);
    memset(line, 'x', MAXC + 2);
    line[MAXC] = '\n';

    /* Exactly 16 KiB then its newline: one F record, however it arrives. */
    struct crilog *l = open_log(path);
    CHECK_OK(wr(l, CRILOG_STDOUT, line, MAXC + 1, &T1));
    CHECK_OK(wr(l, CRILOG_STDOUT, line, MAXC, &T1));
    CHECK_OK(wr(l, CRILOG_STDOUT, "\n", 1, &T2));
    CHECK_OK(wr(l, CRILOG_STDOUT, line, MAXC - 1, &T1));
    CHECK_OK(wr(l, CRILOG_STDOUT, line, 1, &T1));
    CHECK_OK(wr(l, CRILOG_STDOUT, "\n", 1, &T2));
    /* One byte more: a full P record and a 1-byte F. */
    line[MAXC] = 'y';
    line[MAXC + 1] = '\n';
    CHECK_OK(wr(l, CRILOG_STDOUT, line, MAXC + 2, &T1));
    CHECK_OK(wr(l, CRILOG_STDOUT, line, MAXC, &T1));
    CHECK_OK(wr(l, CRILOG_STDOUT, "y\n", 2, &T3));
    /* A full buffer flushed is a P record; the newline then ends the line
     * with an empty F. */
    CHECK_OK(wr(l, CRILOG_STDOUT, line, MAXC, &T1));
    CHECK_OK(fl(l, CRILOG_STDOUT, &T2));
    CHECK_OK(wr(l, CRILOG_STDOUT, "\n", 1, &T3));
    struct parsed p = close_and_read(l, path);
    CHECK_EQ_U64(p.n, 9);
    if (p.n == 9) {
        for (int i = 0; i < 3; i++)
            CHECK_MSG(rec_is(&p.recs[i], CRILOG_STDOUT, false, (char *)line, MAXC), "record %d", i);
        CHECK(same_time(&p.recs[1].time, &T2));
        CHECK(rec_is(&p.recs[3], CRILOG_STDOUT, true, (char *)line, MAXC));
        CHECK(REC_IS(&p.recs[4], CRILOG_STDOUT, false, "y"));
        CHECK(rec_is(&p.recs[5], CRILOG_STDOUT, true, (char *)line, MAXC));
        CHECK(REC_IS(&p.recs[6], CRILOG_STDOUT, false, "y") && same_time(&p.recs[6].time, &T3));
        /* the full P waited for the next byte, so it has that call's time */
        CHECK(same_time(&p.recs[5].time, &T3));
        CHECK(rec_is(&p.recs[7], CRILOG_STDOUT, true, (char *)line, MAXC) && same_time(&p.recs[7].time, &T2));
        CHECK(REC_IS(&p.recs[8], CRILOG_STDOUT, false, ""));
    }
    parsed_free(&p);
    free(line);
    free(path);
    remove_dir(dir);
}

static void test_binary(void)
{
    char *dir = make_dir(), *path = join(dir, "0.log");
    uint8_t data[300];
    size_t n = 0;
    for (int c = 0; c < 256; c++)
        if (c != '\n')
            data[n++] = (uint8_t)c;
    data[n++] = '\n';
    memcpy(data + n, "\0\0\0\n", 4);
    n += 4;
    struct crilog *l = open_log(path);
    CHECK_OK(wr(l, CRILOG_STDERR, data, n, &T1));
    struct parsed p = close_and_read(l, path);
    CHECK_EQ_U64(p.n, 2);
    size_t len;
    uint8_t *back = reassemble(&p, CRILOG_STDERR, &len);
    CHECK(len == n && memcmp(back, data, n) == 0);
    free(back);
    parsed_free(&p);
    free(path);
    remove_dir(dir);
}

static void test_end(void)
{
    /* At stream end the unterminated rest is a full (F) record, as
     * containerd writes it; an empty buffer writes nothing. */
    char *dir = make_dir(), *path = join(dir, "0.log");
    struct crilog *l = open_log(path);
    err_t err = ERR_INIT;
    CHECK_OK(crilog_end(l, CRILOG_STDOUT, &T1, &err));
    CHECK_EQ_U64(crilog_bytes(l), 0);
    CHECK_OK(WR(l, CRILOG_STDOUT, "one\npartial", &T1));
    CHECK_OK(crilog_end(l, CRILOG_STDOUT, &T2, &err));
    CHECK_OK(crilog_end(l, CRILOG_STDOUT, &T2, &err));
    struct parsed p = close_and_read(l, path);
    CHECK_EQ_U64(p.n, 2);
    if (p.n == 2) {
        CHECK(REC_IS(&p.recs[0], CRILOG_STDOUT, false, "one"));
        CHECK(REC_IS(&p.recs[1], CRILOG_STDOUT, false, "partial") && same_time(&p.recs[1].time, &T2));
    }
    parsed_free(&p);
    free(path);
    remove_dir(dir);
}

static void test_flush(void)
{
    char *dir = make_dir(), *path = join(dir, "0.log");
    struct crilog *l = open_log(path);
    CHECK_OK(fl(l, CRILOG_STDOUT, &T1)); /* nothing buffered: nothing written */
    CHECK_EQ_U64(crilog_bytes(l), 0);
    CHECK_OK(WR(l, CRILOG_STDOUT, "$ ", &T1));
    CHECK_OK(WR(l, CRILOG_STDERR, "warn", &T1));
    CHECK_EQ_U64(crilog_bytes(l), 0);
    CHECK_OK(fl(l, CRILOG_STDOUT, &T2));
    uint64_t after_flush = crilog_bytes(l);
    CHECK_EQ_U64(after_flush, 43);
    CHECK_OK(fl(l, CRILOG_STDOUT, &T2)); /* twice: the second has nothing */
    CHECK_EQ_U64(crilog_bytes(l), after_flush);
    CHECK_OK(WR(l, CRILOG_STDOUT, "ls\nmore", &T3));
    CHECK_OK(fl(l, CRILOG_STDERR, &T3));
    CHECK_OK(fl(l, CRILOG_STDOUT, &T3));
    err_t err = ERR_INIT;
    CHECK(crilog_flush(l, (enum crilog_stream)2, &T3, &err) == -EINVAL);
    CHECK_CONTAINS(err.msg, "0.log");
    err_clear(&err);
    CHECK(crilog_write(l, (enum crilog_stream) - 1, (const uint8_t *)"x\n", 2, &T3, &err) == -EINVAL);
    err_clear(&err);
    struct parsed p = close_and_read(l, path);
    CHECK_EQ_U64(p.n, 4);
    if (p.n == 4) {
        CHECK(REC_IS(&p.recs[0], CRILOG_STDOUT, true, "$ ") && same_time(&p.recs[0].time, &T2));
        CHECK(REC_IS(&p.recs[1], CRILOG_STDOUT, false, "ls") && same_time(&p.recs[1].time, &T3));
        CHECK(REC_IS(&p.recs[2], CRILOG_STDERR, true, "warn"));
        CHECK(REC_IS(&p.recs[3], CRILOG_STDOUT, true, "more"));
    }
    size_t len;
    uint8_t *back = reassemble(&p, CRILOG_STDOUT, &len);
    CHECK(len == 9 && memcmp(back, "$ ls\nmore", 9) == 0);
    free(back);
    parsed_free(&p);
    free(path);
    remove_dir(dir);
}

static void test_reopen(void)
{
    char *dir = make_dir(), *path = join(dir, "0.log"), *rotated = join(dir, "0.log.20261123-100000");
    struct crilog *l = open_log(path);
    CHECK_OK(WR(l, CRILOG_STDOUT, "before rotation\npending ", &T1));
    CHECK_OK(WR(l, CRILOG_STDERR, "err pending ", &T1));
    /* kubelet renames the file, then asks for a reopen. */
    CHECK(rename(path, rotated) == 0);
    CHECK_OK(WR(l, CRILOG_STDOUT, "still old\n", &T1)); /* until the reopen: the renamed file */
    err_t err = ERR_INIT;
    CHECK_OK(crilog_reopen(l, &err));
    CHECK_EQ_U64(crilog_bytes(l), 0);
    CHECK_OK(WR(l, CRILOG_STDERR, "continued\n", &T2));
    CHECK_OK(WR(l, CRILOG_STDOUT, "after\n", &T2));

    /* A failed reopen keeps writing to the open file (kubelet renames the
     * rotated file back and tries again). */
    char *moved = join(dir, "moved.log");
    CHECK(rename(path, moved) == 0);
    CHECK(symlink("moved.log", path) == 0);
    CHECK(crilog_reopen(l, &err) == -ELOOP);
    CHECK_CONTAINS(err.msg, path);
    err_clear(&err);
    CHECK_OK(WR(l, CRILOG_STDOUT, "kept\n", &T3));
    CHECK(unlink(path) == 0);
    CHECK(rename(moved, path) == 0);

    struct parsed p = close_and_read(l, path);
    CHECK_EQ_U64(p.n, 3);
    if (p.n == 3) {
        CHECK(REC_IS(&p.recs[0], CRILOG_STDERR, false, "err pending continued"));
        CHECK(REC_IS(&p.recs[1], CRILOG_STDOUT, false, "after"));
        CHECK(REC_IS(&p.recs[2], CRILOG_STDOUT, false, "kept"));
    }
    parsed_free(&p);
    p = read_log(rotated);
    CHECK_EQ_U64(p.bad, 0);
    CHECK_EQ_U64(p.n, 2);
    if (p.n == 2) {
        CHECK(REC_IS(&p.recs[0], CRILOG_STDOUT, false, "before rotation"));
        CHECK(REC_IS(&p.recs[1], CRILOG_STDOUT, false, "pending still old"));
    }
    parsed_free(&p);
    free(moved);
    free(rotated);
    free(path);
    remove_dir(dir);
}

static void test_open_refusals(void)
{
    char *dir = make_dir(), *target = join(dir, "target.log"), *link = join(dir, "0.log");
    err_t err = ERR_INIT;
    struct crilog *l = NULL;

    CHECK(symlink("target.log", link) == 0);
    CHECK(crilog_open(link, &l, &err) == -ELOOP);
    CHECK(l == NULL);
    CHECK_CONTAINS(err.msg, link);
    CHECK_CONTAINS(err.msg, "symbolic link");
    CHECK(access(target, F_OK) < 0); /* the link's target was not created */
    err_clear(&err);

    char *missing = join(dir, "nodir/0.log");
    CHECK(crilog_open(missing, &l, &err) == -ENOENT);
    CHECK_CONTAINS(err.msg, missing);
    CHECK_EQ_INT(err.code, ERR_NOT_FOUND);
    err_clear(&err);

    /* A FIFO would block the writer: refused without blocking. */
    char *fifo = join(dir, "fifo.log");
    CHECK(mkfifo(fifo, 0600) == 0);
    CHECK(crilog_open(fifo, &l, &err) < 0);
    CHECK(err.msg != NULL);
    err_clear(&err);
    CHECK(crilog_open(dir, &l, &err) < 0); /* a directory */
    err_clear(&err);
    CHECK(crilog_open("", &l, &err) == -EINVAL);
    err_clear(&err);
    crilog_close(NULL);

    free(fifo);
    free(missing);
    free(target);
    free(link);
    remove_dir(dir);
}

/* ---- a full file system ------------------------------------------------------ */

static void test_full_filesystem(void)
{
    char *dir = make_dir(), *mnt = join(dir, "mnt");
    CHECK(mkdir(mnt, 0755) == 0);
    if (mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755") < 0) {
        if (errno == EPERM) {
            fprintf(stderr, "test_full_filesystem: skipped, mounting tmpfs needs root\n");
        } else {
            UNIT_FAIL("mount tmpfs on %s: %s", mnt, strerror(errno));
        }
        free(mnt);
        remove_dir(dir);
        return;
    }
    char *path = join(mnt, "0.log"), *filler = join(mnt, "filler");
    struct crilog *l = open_log(path);

    /* Fill the file system. */
    int fd = open(filler, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    static char page[4096];
    off_t filled = 0;
    for (;;) {
        ssize_t w = write(fd, page, sizeof(page));
        if (w <= 0)
            break;
        filled += w;
    }
    CHECK(errno == ENOSPC);
    CHECK(filled > 0 && filled <= 64 * 1024 && filled % 4096 == 0);

    err_t err = ERR_INIT;
    CHECK(crilog_write(l, CRILOG_STDOUT, (const uint8_t *)"lost\n", 5, &T1, &err) == -ENOSPC);
    CHECK_EQ_INT(err.code, ERR_RESOURCE_EXHAUSTED);
    CHECK_CONTAINS(err.msg, path);
    CHECK_CONTAINS(err.msg, "No space left");
    err_clear(&err);
    CHECK_EQ_U64(crilog_bytes(l), 0);
    CHECK_OK(WR(l, CRILOG_STDERR, "err-start ", &T1)); /* buffered: no write needed */

    /* One page free: a chunk of many records fills it and fails halfway
     * through a record. */
    CHECK(ftruncate(fd, filled - 4096) == 0);
    char chunk[120 * 64 + 1];
    for (int i = 0; i < 120; i++)
        snprintf(chunk + i * 64, 65, "line %03d %054d\n", i, i);
    CHECK(crilog_write(l, CRILOG_STDOUT, (const uint8_t *)chunk, strlen(chunk), &T1, &err) == -ENOSPC);
    err_clear(&err);
    uint64_t torn_at = crilog_bytes(l);
    CHECK_EQ_U64(torn_at, 4096);
    CHECK(WR(l, CRILOG_STDERR, "err-more\n", &T2) == -ENOSPC); /* dropped, the line state moves on */
    CHECK_OK(WR(l, CRILOG_STDOUT, "out-start ", &T2));
    CHECK(fl(l, CRILOG_STDERR, &T2) == 0); /* nothing pending after the dropped record */
    CHECK_EQ_U64(crilog_bytes(l), torn_at);

    /* Space comes back: writing works again, on a line of its own. */
    close(fd);
    CHECK(unlink(filler) == 0);
    CHECK_OK(WR(l, CRILOG_STDOUT, "out-end\n", &T3));
    CHECK_OK(WR(l, CRILOG_STDERR, "err-after\n", &T3));
    uint64_t bytes = crilog_bytes(l);
    crilog_close(l);

    struct parsed p = read_log(path);
    CHECK_EQ_U64(p.len, bytes);
    CHECK(p.ends_in_line);
    /* The records that fit, then the torn one (ended by a newline: it may
     * even parse, with its content cut), then the later records. */
    CHECK(p.len > 4096 && p.buf[4095] != '\n' && p.buf[4096] == '\n');
    CHECK(p.bad <= 1);
    size_t whole = 4096 / (HEADER_LEN_FOR_TEST + 64);
    CHECK(p.n >= whole + 2);
    if (p.n >= whole + 2) {
        for (size_t i = 0; i < whole; i++)
            CHECK_MSG(rec_is(&p.recs[i], CRILOG_STDOUT, false, chunk + i * 64, 63), "record %zu", i);
        CHECK(REC_IS(&p.recs[p.n - 2], CRILOG_STDOUT, false, "out-start out-end"));
        CHECK(REC_IS(&p.recs[p.n - 1], CRILOG_STDERR, false, "err-after"));
        CHECK(same_time(&p.recs[p.n - 1].time, &T3));
    }
    parsed_free(&p);

    CHECK(umount2(mnt, MNT_DETACH) == 0);
    free(filler);
    free(path);
    free(mnt);
    remove_dir(dir);
}

/* ---- performance sanity -------------------------------------------------------- */

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Output like real programs': mostly short lines, some empty, some long. */
static void fill_output(uint8_t *buf, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint64_t r = rng();
        size_t len = r % 1000 == 0 ? 20000 + r % 30000 : r % 160;
        for (size_t k = 0; k < len && i < n; k++)
            buf[i++] = (uint8_t)(' ' + (r >> (k % 48)) % 94);
        if (i < n)
            buf[i++] = '\n';
    }
}

static void test_performance(void)
{
    char *dir = make_dir(), *path = join(dir, "0.log");
    size_t half = 50u << 20;
    uint8_t *out = malloc(half), *errs = malloc(half);
    fill_output(out, half);
    fill_output(errs, half);
    struct crilog *l = open_log(path);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t io = 0, ie = 0;
    int failed = 0;
    while (io < half || ie < half) {
        uint64_t r = rng();
        bool use_out = (r & 1) ? io < half : ie >= half;
        size_t *pos = use_out ? &io : &ie;
        size_t n = 1 + (r >> 8) % 65536; /* what one read() of a pipe brings */
        if (n > half - *pos)
            n = half - *pos;
        struct timespec now = {T1.tv_sec + (time_t)(*pos >> 20), (long)(r >> 40) % 1000000000};
        failed += wr(l, use_out ? CRILOG_STDOUT : CRILOG_STDERR, (use_out ? out : errs) + *pos, n, &now) != 0;
        *pos += n;
    }
    failed += fl(l, CRILOG_STDOUT, &T3) != 0;
    failed += fl(l, CRILOG_STDERR, &T3) != 0;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK_EQ_INT(failed, 0);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    uint64_t bytes = crilog_bytes(l);
    printf("performance: 100 MiB of mixed output -> %.1f MiB of log in %.3f s (%.0f MiB/s)\n",
           (double)bytes / (1 << 20), secs, 100 / secs);

    struct parsed p = close_and_read(l, path);
    size_t len;
    uint8_t *back = reassemble(&p, CRILOG_STDOUT, &len);
    CHECK(len == half && memcmp(back, out, half) == 0);
    free(back);
    back = reassemble(&p, CRILOG_STDERR, &len);
    CHECK(len == half && memcmp(back, errs, half) == 0);
    free(back);
    parsed_free(&p);
    free(out);
    free(errs);
    free(path);
    remove_dir(dir);
}

int main(void)
{
    RUN(test_format_time);
    RUN(test_parse_line);
    RUN(test_single_line);
    RUN(test_several_lines);
    RUN(test_byte_at_a_time);
    RUN(test_crlf_and_empty_lines);
    RUN(test_interleaved);
    RUN(test_long_line);
    RUN(test_exact_16k);
    RUN(test_binary);
    RUN(test_flush);
    RUN(test_end);
    RUN(test_reopen);
    RUN(test_open_refusals);
    RUN(test_full_filesystem);
    RUN(test_performance);
    return unit_summary();
}
