#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "cri/grpc_wire.h"
#include "unit.h"

/* --- grpc_wire_parse_single ------------------------------------------------ */

static void test_parse_single_errors(void)
{
    struct grpc_message_view v = {0};
    err_t err = ERR_INIT;
    int r;

    /* Empty body. */
    r = grpc_wire_parse_single((const uint8_t *)"", 0, 1024, &v, &err);
    CHECK_EQ_INT(r, -EINVAL);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(err.msg, "no message");
    err_clear(&err);

    /* Truncated prefix: 1 to 4 bytes. */
    static const uint8_t short_prefix[4] = {0, 0, 0, 0};
    for (size_t n = 1; n < GRPC_PREFIX_SIZE; n++) {
        r = grpc_wire_parse_single(short_prefix, n, 1024, &v, &err);
        CHECK_EQ_INT(r, -EINVAL);
        CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
        CHECK_CONTAINS(err.msg, "truncated message prefix");
        err_clear(&err);
    }

    /* Flags other than 0 and 1. */
    static const uint8_t bad_flags[] = {2, 0, 0, 0, 1, 'x'};
    r = grpc_wire_parse_single(bad_flags, sizeof(bad_flags), 1024, &v, &err);
    CHECK_EQ_INT(r, -EINVAL);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(err.msg, "0x02");
    err_clear(&err);
    static const uint8_t flags_ff[] = {0xff, 0, 0, 0, 0};
    r = grpc_wire_parse_single(flags_ff, sizeof(flags_ff), 1024, &v, &err);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(err.msg, "0xff");
    err_clear(&err);

    /* Announced length above the limit: RESOURCE_EXHAUSTED, even when the
     * bytes have not (all) arrived. */
    static const uint8_t too_big[] = {0, 0, 0, 4, 1}; /* 1025 bytes announced */
    r = grpc_wire_parse_single(too_big, sizeof(too_big), 1024, &v, &err);
    CHECK_EQ_INT(r, -EMSGSIZE);
    CHECK_EQ_INT(err.code, ERR_RESOURCE_EXHAUSTED);
    CHECK_CONTAINS(err.msg, "1025 vs. 1024");
    err_clear(&err);
    static const uint8_t huge[] = {0, 0xff, 0xff, 0xff, 0xff};
    r = grpc_wire_parse_single(huge, sizeof(huge), 16 << 20, &v, &err);
    CHECK_EQ_INT(err.code, ERR_RESOURCE_EXHAUSTED);
    CHECK_CONTAINS(err.msg, "4294967295");
    err_clear(&err);

    /* Truncated payload: 3 announced, 2 arrived. */
    static const uint8_t trunc[] = {0, 0, 0, 0, 3, 'a', 'b'};
    r = grpc_wire_parse_single(trunc, sizeof(trunc), 1024, &v, &err);
    CHECK_EQ_INT(r, -EINVAL);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(err.msg, "announces 3 bytes, 2 arrived");
    err_clear(&err);

    /* Bytes after the one message (a second message counts too). */
    static const uint8_t trailing[] = {0, 0, 0, 0, 1, 'a', 0, 0, 0, 0, 0};
    r = grpc_wire_parse_single(trailing, sizeof(trailing), 1024, &v, &err);
    CHECK_EQ_INT(r, -EINVAL);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(err.msg, "5 bytes after");
    err_clear(&err);
}

static void test_parse_single_ok(void)
{
    err_t err = ERR_INIT;
    struct grpc_message_view v = {.compressed = true};

    /* Zero-length message. */
    static const uint8_t empty[] = {0, 0, 0, 0, 0};
    CHECK_OK(grpc_wire_parse_single(empty, sizeof(empty), 1024, &v, &err));
    CHECK(!v.compressed);
    CHECK_EQ_INT(v.len, 0);
    CHECK(v.data == empty + GRPC_PREFIX_SIZE);
    CHECK(err.msg == NULL);

    /* Zero-length message with a zero limit. */
    CHECK_OK(grpc_wire_parse_single(empty, sizeof(empty), 0, &v, &err));
    CHECK_EQ_INT(v.len, 0);

    /* Exactly at the limit. */
    uint8_t body[GRPC_PREFIX_SIZE + 300];
    grpc_wire_put_prefix(body, 300);
    for (size_t i = 0; i < 300; i++)
        body[GRPC_PREFIX_SIZE + i] = (uint8_t)i;
    CHECK_OK(grpc_wire_parse_single(body, sizeof(body), 300, &v, &err));
    CHECK(!v.compressed);
    CHECK_EQ_INT(v.len, 300);
    CHECK(v.data == body + GRPC_PREFIX_SIZE);
    CHECK_EQ_INT(v.data[299], 299 & 0xff);

    /* One below the size: limit error. */
    CHECK_EQ_INT(grpc_wire_parse_single(body, sizeof(body), 299, &v, &err), -EMSGSIZE);
    CHECK_EQ_INT(err.code, ERR_RESOURCE_EXHAUSTED);
    err_clear(&err);

    /* Compressed flag. */
    static const uint8_t comp[] = {1, 0, 0, 0, 2, 'h', 'i'};
    CHECK_OK(grpc_wire_parse_single(comp, sizeof(comp), 1024, &v, &err));
    CHECK(v.compressed);
    CHECK_EQ_INT(v.len, 2);
    CHECK(memcmp(v.data, "hi", 2) == 0);
}

static void test_put_prefix(void)
{
    uint8_t p[GRPC_PREFIX_SIZE];
    memset(p, 0xaa, sizeof(p));
    grpc_wire_put_prefix(p, 0);
    CHECK(memcmp(p, "\0\0\0\0\0", 5) == 0);

    grpc_wire_put_prefix(p, 0x01020304);
    static const uint8_t want[] = {0, 1, 2, 3, 4};
    CHECK(memcmp(p, want, 5) == 0);

    grpc_wire_put_prefix(p, 0xffffffffu);
    static const uint8_t want_max[] = {0, 0xff, 0xff, 0xff, 0xff};
    CHECK(memcmp(p, want_max, 5) == 0);

    /* Round trip through the parser. */
    static const size_t lens[] = {0, 1, 255, 256, 65535, 65536, 70000};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        uint8_t *body = calloc(1, GRPC_PREFIX_SIZE + lens[i]);
        struct grpc_message_view v = {0};
        err_t err = ERR_INIT;
        grpc_wire_put_prefix(body, lens[i]);
        CHECK_OK(grpc_wire_parse_single(body, GRPC_PREFIX_SIZE + lens[i], 1 << 20, &v, &err));
        CHECK_EQ_INT(v.len, lens[i]);
        CHECK(!v.compressed);
        err_clear(&err);
        free(body);
    }
}

/* --- grpc_wire_gunzip ------------------------------------------------------- */

/* gzip-compresses `n` bytes of `data`, repeated `times` times. */
static uint8_t *gzip_repeat(const uint8_t *data, size_t n, size_t times, size_t *out_len)
{
    z_stream zs = {0};
    if (deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort();
    size_t cap = deflateBound(&zs, (uLong)(n * times)) + 64, len = 0;
    uint8_t *out = malloc(cap);
    if (!out)
        abort();
    for (size_t t = 0; t < times; t++) {
        zs.next_in = (Bytef *)data;
        zs.avail_in = (uInt)n;
        int flush = t + 1 == times ? Z_FINISH : Z_NO_FLUSH;
        do {
            zs.next_out = out + len;
            zs.avail_out = (uInt)(cap - len);
            int zr = deflate(&zs, flush);
            if (zr == Z_STREAM_ERROR)
                abort();
            len = cap - zs.avail_out;
        } while (zs.avail_in != 0 || (flush == Z_FINISH && zs.avail_out == 0));
    }
    deflateEnd(&zs);
    *out_len = len;
    return out;
}

static uint8_t *gzip(const uint8_t *data, size_t n, size_t *out_len)
{
    return gzip_repeat(data, n, 1, out_len);
}

/* Incompressible-looking bytes. */
static void fill_random(uint8_t *buf, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (uint8_t)(seed >> 16);
    }
}

static void test_gunzip_round_trip(void)
{
    static const size_t sizes[] = {1, 100, 4096, 100000, 1 << 20};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        uint8_t *plain = malloc(n);
        /* Half random, half text: both incompressible and compressible parts. */
        fill_random(plain, n / 2, (uint32_t)n);
        for (size_t j = n / 2; j < n; j++)
            plain[j] = (uint8_t) "edgecri "[j % 8];
        size_t zlen;
        uint8_t *z = gzip(plain, n, &zlen);
        uint8_t *out = NULL;
        size_t out_len = 0;
        err_t err = ERR_INIT;
        CHECK_OK(grpc_wire_gunzip(z, zlen, 16 << 20, &out, &out_len, &err));
        CHECK_EQ_INT(out_len, n);
        CHECK(out && memcmp(out, plain, n) == 0);
        CHECK(err.msg == NULL);
        free(out);
        free(z);
        free(plain);
    }

    /* An empty message compresses to a valid gzip stream too. */
    size_t zlen;
    uint8_t *z = gzip((const uint8_t *)"", 0, &zlen);
    uint8_t *out = NULL;
    size_t out_len = 99;
    err_t err = ERR_INIT;
    CHECK_OK(grpc_wire_gunzip(z, zlen, 1024, &out, &out_len, &err));
    CHECK_EQ_INT(out_len, 0);
    CHECK(out != NULL);
    free(out);
    free(z);
}

static void test_gunzip_limit(void)
{
    /* Compressible and incompressible data, each exactly at the limit and one
     * byte over it. */
    static const size_t sizes[] = {1, 1000, 65536, 300000};
    for (int random = 0; random < 2; random++) {
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            size_t n = sizes[i];
            uint8_t *plain = calloc(1, n + 1);
            if (random)
                fill_random(plain, n + 1, 7);
            size_t zlen;
            uint8_t *z = gzip(plain, n, &zlen);
            uint8_t *out = NULL;
            size_t out_len = 0;
            err_t err = ERR_INIT;
            CHECK_OK(grpc_wire_gunzip(z, zlen, n, &out, &out_len, &err));
            CHECK_EQ_INT(out_len, n);
            CHECK(out && memcmp(out, plain, n) == 0);
            free(out);
            free(z);
            err_clear(&err);

            z = gzip(plain, n + 1, &zlen);
            out = NULL;
            int r = grpc_wire_gunzip(z, zlen, n, &out, &out_len, &err);
            CHECK_EQ_INT(r, -EMSGSIZE);
            CHECK_EQ_INT(err.code, ERR_RESOURCE_EXHAUSTED);
            CHECK_CONTAINS(err.msg, "larger than max");
            CHECK(out == NULL);
            err_clear(&err);
            free(z);
            free(plain);
        }
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_gunzip_bomb(void)
{
    /* 64 MiB of zeros shrink to ~64 KiB; with a 1 MiB limit the inflater
     * must stop at the limit instead of inflating it all. */
    uint8_t *zeros = calloc(1, 1 << 20);
    size_t zlen;
    uint8_t *z = gzip_repeat(zeros, 1 << 20, 64, &zlen);
    free(zeros);
    CHECK(zlen < 256 * 1024);

    uint8_t *out = NULL;
    size_t out_len = 0;
    err_t err = ERR_INIT;
    double t0 = now_s();
    int r = grpc_wire_gunzip(z, zlen, 1 << 20, &out, &out_len, &err);
    double elapsed = now_s() - t0;
    CHECK_EQ_INT(r, -EMSGSIZE);
    CHECK_EQ_INT(err.code, ERR_RESOURCE_EXHAUSTED);
    CHECK(out == NULL);
    /* Inflating 1 MiB takes milliseconds, all 64 MiB far longer. */
    CHECK(elapsed < 0.5);
    err_clear(&err);
    free(z);
}

static void test_gunzip_corrupt(void)
{
    uint8_t plain[5000];
    fill_random(plain, sizeof(plain), 42);
    memcpy(plain + 2000, "a compressible stretch a compressible stretch a compressible stretch", 68);
    size_t zlen;
    uint8_t *z = gzip(plain, sizeof(plain), &zlen);
    uint8_t *bad = malloc(zlen + 16);
    uint8_t *out = NULL;
    size_t out_len = 0;
    err_t err = ERR_INIT;
    int r;

    /* Not gzip at all (bad magic). */
    memcpy(bad, z, zlen);
    bad[0] ^= 0xff;
    r = grpc_wire_gunzip(bad, zlen, 1 << 20, &out, &out_len, &err);
    CHECK_EQ_INT(r, -EINVAL);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(err.msg, "corrupt gzip message");
    CHECK(out == NULL);
    err_clear(&err);

    /* Damaged CRC in the trailer. */
    memcpy(bad, z, zlen);
    bad[zlen - 8] ^= 0x01;
    r = grpc_wire_gunzip(bad, zlen, 1 << 20, &out, &out_len, &err);
    CHECK_EQ_INT(r, -EINVAL);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    err_clear(&err);

    /* Damaged compressed data. */
    memcpy(bad, z, zlen);
    for (size_t i = 20; i < 40; i++)
        bad[i] ^= 0x5a;
    r = grpc_wire_gunzip(bad, zlen, 1 << 20, &out, &out_len, &err);
    CHECK_EQ_INT(r, -EINVAL);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    err_clear(&err);

    /* Truncated stream: at several cuts, including inside the trailer. */
    static const size_t cuts[] = {1, 4, 8, 100};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        r = grpc_wire_gunzip(z, zlen - cuts[i], 1 << 20, &out, &out_len, &err);
        CHECK_EQ_INT(r, -EINVAL);
        CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
        CHECK_CONTAINS(err.msg, "corrupt gzip message");
        CHECK(out == NULL);
        err_clear(&err);
    }
    r = grpc_wire_gunzip(z, 10, 1 << 20, &out, &out_len, &err); /* header only */
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    CHECK(r < 0);
    err_clear(&err);

    /* Trailing garbage after the gzip stream. */
    memcpy(bad, z, zlen);
    memcpy(bad + zlen, "garbage", 7);
    r = grpc_wire_gunzip(bad, zlen + 7, 1 << 20, &out, &out_len, &err);
    CHECK_EQ_INT(r, -EINVAL);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(err.msg, "7 bytes after the gzip stream");
    CHECK(out == NULL);
    err_clear(&err);

    /* Empty input. */
    r = grpc_wire_gunzip((const uint8_t *)"", 0, 1 << 20, &out, &out_len, &err);
    CHECK_EQ_INT(r, -EINVAL);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    CHECK(out == NULL);
    err_clear(&err);

    free(bad);
    free(z);
}

/* A truncated stream whose output so far already fills the limit is still a
 * corrupt stream, not an oversized one. */
static void test_gunzip_truncated_at_limit(void)
{
    uint8_t plain[1000];
    fill_random(plain, sizeof(plain), 3);
    size_t zlen;
    uint8_t *z = gzip(plain, sizeof(plain), &zlen);
    uint8_t *out = NULL;
    size_t out_len = 0;
    err_t err = ERR_INIT;
    /* Cut the 8-byte trailer (CRC32 and size): all 1000 bytes inflate. With
     * room to spare this is reported as a truncated stream... */
    int r = grpc_wire_gunzip(z, zlen - 8, sizeof(plain) + 1, &out, &out_len, &err);
    CHECK_EQ_INT(r, -EINVAL);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(err.msg, "truncated stream");
    CHECK(out == NULL);
    err_clear(&err);
    /* ...and so it must be when the output exactly fills the limit. */
    r = grpc_wire_gunzip(z, zlen - 8, sizeof(plain), &out, &out_len, &err);
    CHECK(r < 0);
    CHECK(out == NULL);
    /* A stream cut off exactly at the limit is corrupt, not too large. */
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    err_clear(&err);
    free(z);
}

/* --- headers ---------------------------------------------------------------- */

static void test_encoding_supported(void)
{
    CHECK(grpc_wire_encoding_supported("identity", 8));
    CHECK(grpc_wire_encoding_supported("gzip", 4));
    CHECK(grpc_wire_encoding_supported("GZIP", 4));
    CHECK(grpc_wire_encoding_supported("Identity", 8));
    CHECK(grpc_wire_encoding_supported("gzip, and more", 4)); /* only len bytes count */
    CHECK(!grpc_wire_encoding_supported("gzip", 3));
    CHECK(!grpc_wire_encoding_supported("gzipx", 5));
    CHECK(!grpc_wire_encoding_supported("deflate", 7));
    CHECK(!grpc_wire_encoding_supported("snappy", 6));
    CHECK(!grpc_wire_encoding_supported("", 0));
    CHECK(!grpc_wire_encoding_supported("identit", 7));
}

static int timeout(const char *s, uint64_t *ns)
{
    return grpc_wire_parse_timeout(s, strlen(s), ns);
}

static void test_parse_timeout(void)
{
    uint64_t ns = 0;
    CHECK_OK(timeout("2H", &ns));
    CHECK_EQ_U64(ns, 2ULL * 3600 * 1000000000ULL);
    CHECK_OK(timeout("3M", &ns));
    CHECK_EQ_U64(ns, 180ULL * 1000000000ULL);
    CHECK_OK(timeout("10S", &ns));
    CHECK_EQ_U64(ns, 10ULL * 1000000000ULL);
    CHECK_OK(timeout("250m", &ns));
    CHECK_EQ_U64(ns, 250ULL * 1000000ULL);
    CHECK_OK(timeout("7u", &ns));
    CHECK_EQ_U64(ns, 7000);
    CHECK_OK(timeout("5n", &ns));
    CHECK_EQ_U64(ns, 5);
    CHECK_OK(timeout("0S", &ns));
    CHECK_EQ_U64(ns, 0);
    CHECK_OK(timeout("00000001m", &ns)); /* 8 digits with leading zeros */
    CHECK_EQ_U64(ns, 1000000);

    /* 8 digits is the maximum. */
    CHECK_OK(timeout("99999999n", &ns));
    CHECK_EQ_U64(ns, 99999999);
    CHECK_OK(timeout("12345678S", &ns));
    CHECK_EQ_U64(ns, 12345678ULL * 1000000000ULL);
    /* 99999999 hours overflows 64-bit nanoseconds: saturate. */
    CHECK_OK(timeout("99999999H", &ns));
    CHECK_EQ_U64(ns, UINT64_MAX);
    CHECK_OK(timeout("99999999M", &ns)); /* ~6e18 ns: still fits */
    CHECK_EQ_U64(ns, 99999999ULL * 60 * 1000000000ULL);

    /* Only `len` bytes count. */
    CHECK_OK(grpc_wire_parse_timeout("5Sjunk", 2, &ns));
    CHECK_EQ_U64(ns, 5000000000ULL);

    /* Rejections leave *out_ns alone. */
    static const char *const bad[] = {
        "",           /* empty */
        "S",          /* no digits */
        "123456789S", /* 9 digits */
        "100",        /* missing unit */
        "10x",        /* bad unit */
        "10s",        /* units are case-sensitive: s is not S */
        "10h",        "1 S", "-1S", "+1S", "1.5S", "S1", "1SS",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ns = 4242;
        int r = timeout(bad[i], &ns);
        CHECK_MSG(r == -EINVAL, "grpc_wire_parse_timeout(\"%s\") = %d, want -EINVAL", bad[i], r);
        CHECK_MSG(ns == 4242, "grpc_wire_parse_timeout(\"%s\") wrote %llu", bad[i], (unsigned long long)ns);
    }
}

static void test_percent_encode(void)
{
    char *s;
    s = grpc_wire_percent_encode("plain ASCII text: ok! (1+1=2) ~`[]{}");
    CHECK_STREQ(s, "plain ASCII text: ok! (1+1=2) ~`[]{}");
    free(s);
    s = grpc_wire_percent_encode("");
    CHECK_STREQ(s, "");
    free(s);
    s = grpc_wire_percent_encode("100%");
    CHECK_STREQ(s, "100%25");
    free(s);
    s = grpc_wire_percent_encode("line1\nline2\r\t");
    CHECK_STREQ(s, "line1%0Aline2%0D%09");
    free(s);
    s = grpc_wire_percent_encode("caf\xc3\xa9");
    CHECK_STREQ(s, "caf%C3%A9");
    free(s);
    s = grpc_wire_percent_encode("\x7f\x01\xff \x7e");
    CHECK_STREQ(s, "%7F%01%FF ~");
    free(s);
}

static void test_percent_decode(void)
{
    char *s;
    s = grpc_wire_percent_decode("caf%C3%A9");
    CHECK_STREQ(s, "caf\xc3\xa9");
    free(s);
    s = grpc_wire_percent_decode("caf%c3%a9 100%25");
    CHECK_STREQ(s, "caf\xc3\xa9 100%");
    free(s);
    s = grpc_wire_percent_decode("no escapes");
    CHECK_STREQ(s, "no escapes");
    free(s);
    /* Invalid escapes stay as they are. */
    s = grpc_wire_percent_decode("%zz %4 %4g %g4 %");
    CHECK_STREQ(s, "%zz %4 %4g %g4 %");
    free(s);
    s = grpc_wire_percent_decode("%");
    CHECK_STREQ(s, "%");
    free(s);
    s = grpc_wire_percent_decode("50%%41");
    CHECK_STREQ(s, "50%A");
    free(s);
    s = grpc_wire_percent_decode("%2541"); /* decoded once only */
    CHECK_STREQ(s, "%41");
    free(s);
}

static void test_percent_round_trip(void)
{
    char all[256];
    for (int i = 1; i <= 255; i++)
        all[i - 1] = (char)i;
    all[255] = '\0';
    char *enc = grpc_wire_percent_encode(all);
    CHECK(enc != NULL);
    if (!enc)
        return;
    /* 0x20..0x7e except '%' stay (94 bytes), the other 161 become 3 bytes. */
    CHECK_EQ_INT(strlen(enc), 94 + 161 * 3);
    bool printable = true;
    for (const char *p = enc; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            printable = false;
    CHECK(printable);
    char *dec = grpc_wire_percent_decode(enc);
    CHECK_STREQ(dec, all);
    free(dec);
    free(enc);
}

int main(void)
{
    RUN(test_parse_single_errors);
    RUN(test_parse_single_ok);
    RUN(test_put_prefix);
    RUN(test_gunzip_round_trip);
    RUN(test_gunzip_limit);
    RUN(test_gunzip_bomb);
    RUN(test_gunzip_corrupt);
    RUN(test_gunzip_truncated_at_limit);
    RUN(test_encoding_supported);
    RUN(test_parse_timeout);
    RUN(test_percent_encode);
    RUN(test_percent_decode);
    RUN(test_percent_round_trip);
    return unit_summary();
}
