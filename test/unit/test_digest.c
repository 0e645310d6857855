#include <stdlib.h>
#include <string.h>

#include "util/digest.h"
#include "unit.h"

#define EMPTY_SHA256 "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ABC_SHA256   "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define EMPTY_SHA512                                                                                                   \
    "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd"  \
    "47417a81a538327af927da3e"
#define ABC_SHA512                                                                                                     \
    "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423"  \
    "643ce80e2a9ac94fa54ca49f"
/* FIPS 180-2 test vector: one million 'a'. */
#define MILLION_A_SHA256 "sha256:cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
/* FIPS 180-2 two-block message. */
#define TWO_BLOCK     "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
#define TWO_BLOCK_256 "sha256:248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"

static void test_valid(void)
{
    CHECK(digest_valid(EMPTY_SHA256));
    CHECK(digest_valid(ABC_SHA256));
    CHECK(digest_valid(EMPTY_SHA512));
    CHECK(digest_valid(ABC_SHA512));
    CHECK(digest_valid("sha256:0000000000000000000000000000000000000000000000000000000000000000"));
    CHECK(digest_valid("sha256:abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdef0123"));
    CHECK_EQ_INT(strlen(EMPTY_SHA512), DIGEST_MAX_LEN);
}

static void test_invalid(void)
{
    static const char *const bad[] = {
        "",
        "sha256",
        "sha256:",
        "sha512:",
        ":e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        /* uppercase hex, uppercase algorithm */
        "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85A",
        "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        /* lengths */
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
        "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha256:"
        "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd"
        "47417a81a538327af927da3e",
        /* not hex */
        "sha256:g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85-",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85 ",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85\n",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85\xc3",
        /* blanks and separators */
        " sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 ",
        "sha256 :e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha256::e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha256+e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        /* algorithms we do not know */
        "sha384:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "blake3:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha256x:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_MSG(!digest_valid(bad[i]), "\"%s\" accepted", bad[i]);
        CHECK_MSG(digest_algo_of(bad[i]) == -1, "\"%s\" has an algorithm", bad[i]);
        CHECK_MSG(digest_hex(bad[i]) == NULL, "\"%s\" has hex", bad[i]);
    }
    CHECK(!digest_valid(NULL));
    CHECK_EQ_INT(digest_algo_of(NULL), -1);
    CHECK(digest_hex(NULL) == NULL);

    /* A huge string is just invalid. */
    size_t n = 1 << 20;
    char *big = malloc(n + 1);
    memcpy(big, "sha256:", 7);
    memset(big + 7, 'a', n - 7);
    big[n] = '\0';
    CHECK(!digest_valid(big));
    free(big);
}

static void test_algo_and_hex(void)
{
    CHECK_EQ_INT(digest_algo_of(EMPTY_SHA256), DIGEST_SHA256);
    CHECK_EQ_INT(digest_algo_of(EMPTY_SHA512), DIGEST_SHA512);
    const char *h = digest_hex(ABC_SHA256);
    CHECK(h == (const char *)ABC_SHA256 + 7);
    CHECK_STREQ(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK_EQ_INT(strlen(digest_hex(ABC_SHA512)), 128);
}

static void test_buffer_vectors(void)
{
    char out[DIGEST_MAX_LEN + 1];
    digest_buffer(DIGEST_SHA256, "", 0, out);
    CHECK_STREQ(out, EMPTY_SHA256);
    digest_buffer(DIGEST_SHA256, "abc", 3, out);
    CHECK_STREQ(out, ABC_SHA256);
    digest_buffer(DIGEST_SHA512, "", 0, out);
    CHECK_STREQ(out, EMPTY_SHA512);
    digest_buffer(DIGEST_SHA512, "abc", 3, out);
    CHECK_STREQ(out, ABC_SHA512);
    digest_buffer(DIGEST_SHA256, TWO_BLOCK, strlen(TWO_BLOCK), out);
    CHECK_STREQ(out, TWO_BLOCK_256);
    CHECK(digest_valid(out));

    /* Bytes, not C strings: a NUL inside the data counts. */
    char a[DIGEST_MAX_LEN + 1], b[DIGEST_MAX_LEN + 1];
    digest_buffer(DIGEST_SHA256, "a\0b", 3, a);
    digest_buffer(DIGEST_SHA256, "a", 1, b);
    CHECK(strcmp(a, b) != 0);
    CHECK(digest_valid(a));
}

static void test_streaming(void)
{
    size_t n = 1000000;
    char *data = malloc(n);
    memset(data, 'a', n);

    char one[DIGEST_MAX_LEN + 1], streamed[DIGEST_MAX_LEN + 1];
    digest_buffer(DIGEST_SHA256, data, n, one);
    CHECK_STREQ(one, MILLION_A_SHA256);

    /* Uneven chunks, including empty updates, give the same digest. */
    struct digester *d = digester_new(DIGEST_SHA256);
    CHECK(d != NULL);
    size_t off = 0, step = 1;
    while (off < n) {
        size_t c = step < n - off ? step : n - off;
        digester_update(d, data + off, c);
        digester_update(d, data + off, 0);
        off += c;
        step = step * 3 + 7;
    }
    digester_final(d, streamed);
    digester_free(d);
    CHECK_STREQ(streamed, MILLION_A_SHA256);

    /* Byte at a time for sha512. */
    d = digester_new(DIGEST_SHA512);
    CHECK(d != NULL);
    digester_update(d, "a", 1);
    digester_update(d, "b", 1);
    digester_update(d, "c", 1);
    digester_final(d, streamed);
    digester_free(d);
    CHECK_STREQ(streamed, ABC_SHA512);

    /* Two digesters at once do not share state. */
    struct digester *x = digester_new(DIGEST_SHA256), *y = digester_new(DIGEST_SHA256);
    digester_update(x, "ab", 2);
    digester_update(y, "", 0);
    digester_update(x, "c", 1);
    char dx[DIGEST_MAX_LEN + 1], dy[DIGEST_MAX_LEN + 1];
    digester_final(x, dx);
    digester_final(y, dy);
    CHECK_STREQ(dx, ABC_SHA256);
    CHECK_STREQ(dy, EMPTY_SHA256);
    digester_free(x);
    digester_free(y);

    digester_free(NULL); /* harmless */
    free(data);
}

int main(void)
{
    RUN(test_valid);
    RUN(test_invalid);
    RUN(test_algo_and_hex);
    RUN(test_buffer_vectors);
    RUN(test_streaming);
    return unit_summary();
}
