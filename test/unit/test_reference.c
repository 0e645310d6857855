#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/reference.h"
#include "unit.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

#define HEX64 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define D256  "sha256:" HEX64
#define D512                                                                                                           \
    "sha512:"                                                                                                          \
    "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81" \
    "a538327af927da3e"
#define D256UP "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"

static bool str_eq_null(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool ref_eq(const struct image_ref *a, const struct image_ref *b)
{
    return str_eq_null(a->domain, b->domain) && str_eq_null(a->path, b->path) && str_eq_null(a->tag, b->tag) &&
           str_eq_null(a->digest, b->digest);
}

static bool printable(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

struct norm_case {
    const char *in;
    const char *domain, *path, *tag, *digest;
    const char *string, *familiar;
};

static const struct norm_case norm[] = {
    {"busybox", "docker.io", "library/busybox", "latest", NULL, "docker.io/library/busybox:latest", "busybox:latest"},
    {"busybox:1.36", "docker.io", "library/busybox", "1.36", NULL, "docker.io/library/busybox:1.36", "busybox:1.36"},
    {"library/busybox", "docker.io", "library/busybox", "latest", NULL, "docker.io/library/busybox:latest",
     "busybox:latest"},
    {"docker.io/busybox", "docker.io", "library/busybox", "latest", NULL, "docker.io/library/busybox:latest",
     "busybox:latest"},
    {"docker.io/library/busybox:latest", "docker.io", "library/busybox", "latest", NULL,
     "docker.io/library/busybox:latest", "busybox:latest"},
    {"index.docker.io/busybox", "docker.io", "library/busybox", "latest", NULL, "docker.io/library/busybox:latest",
     "busybox:latest"},
    {"index.docker.io/library/busybox:musl", "docker.io", "library/busybox", "musl", NULL,
     "docker.io/library/busybox:musl", "busybox:musl"},
    {"index.docker.io/user/app:v1", "docker.io", "user/app", "v1", NULL, "docker.io/user/app:v1", "user/app:v1"},
    {"user/app", "docker.io", "user/app", "latest", NULL, "docker.io/user/app:latest", "user/app:latest"},
    {"docker.io/library/a/b", "docker.io", "library/a/b", "latest", NULL, "docker.io/library/a/b:latest",
     "library/a/b:latest"},
    {"a/b/c/d", "docker.io", "a/b/c/d", "latest", NULL, "docker.io/a/b/c/d:latest", "a/b/c/d:latest"},
    {"busybox@" D256, "docker.io", "library/busybox", NULL, D256, "docker.io/library/busybox@" D256, "busybox@" D256},
    {"busybox:1.36@" D256, "docker.io", "library/busybox", "1.36", D256, "docker.io/library/busybox:1.36@" D256,
     "busybox:1.36@" D256},
    {"ghcr.io/org/app@" D512, "ghcr.io", "org/app", NULL, D512, "ghcr.io/org/app@" D512, "ghcr.io/org/app@" D512},
    {"localhost/foo", "localhost", "foo", "latest", NULL, "localhost/foo:latest", "localhost/foo:latest"},
    {"localhost:5000/foo/bar:tag", "localhost:5000", "foo/bar", "tag", NULL, "localhost:5000/foo/bar:tag",
     "localhost:5000/foo/bar:tag"},
    /* no '/': "localhost" is a name on docker.io and ":5000" its tag */
    {"localhost", "docker.io", "library/localhost", "latest", NULL, "docker.io/library/localhost:latest",
     "localhost:latest"},
    {"localhost:5000", "docker.io", "library/localhost", "5000", NULL, "docker.io/library/localhost:5000",
     "localhost:5000"},
    {"foo.com", "docker.io", "library/foo.com", "latest", NULL, "docker.io/library/foo.com:latest", "foo.com:latest"},
    {"example.com/foo", "example.com", "foo", "latest", NULL, "example.com/foo:latest", "example.com/foo:latest"},
    {"Example.COM/foo", "Example.COM", "foo", "latest", NULL, "Example.COM/foo:latest", "Example.COM/foo:latest"},
    {"example.com:443/a/b/c:v1.2.3-rc.1_x", "example.com:443", "a/b/c", "v1.2.3-rc.1_x", NULL,
     "example.com:443/a/b/c:v1.2.3-rc.1_x", "example.com:443/a/b/c:v1.2.3-rc.1_x"},
    {"registry-1.docker.io/library/x", "registry-1.docker.io", "library/x", "latest", NULL,
     "registry-1.docker.io/library/x:latest", "registry-1.docker.io/library/x:latest"},
    {"192.168.1.10:5000/x", "192.168.1.10:5000", "x", "latest", NULL, "192.168.1.10:5000/x:latest",
     "192.168.1.10:5000/x:latest"},
    {"[::1]:5000/foo", "[::1]:5000", "foo", "latest", NULL, "[::1]:5000/foo:latest", "[::1]:5000/foo:latest"},
    {"[::1]/foo", "[::1]", "foo", "latest", NULL, "[::1]/foo:latest", "[::1]/foo:latest"},
    {"[2001:db8::1]:5000/ns/img:t@" D256, "[2001:db8::1]:5000", "ns/img", "t", D256,
     "[2001:db8::1]:5000/ns/img:t@" D256, "[2001:db8::1]:5000/ns/img:t@" D256},
    {"[::ffff:192.168.0.1]:65535/x", "[::ffff:192.168.0.1]:65535", "x", "latest", NULL,
     "[::ffff:192.168.0.1]:65535/x:latest", "[::ffff:192.168.0.1]:65535/x:latest"},
    {"quay.io/a__b/c-d/e---f/g.h/i_j:TAG_1", "quay.io", "a__b/c-d/e---f/g.h/i_j", "TAG_1", NULL,
     "quay.io/a__b/c-d/e---f/g.h/i_j:TAG_1", "quay.io/a__b/c-d/e---f/g.h/i_j:TAG_1"},
    {"x:_tag", "docker.io", "library/x", "_tag", NULL, "docker.io/library/x:_tag", "x:_tag"},
    {"0", "docker.io", "library/0", "latest", NULL, "docker.io/library/0:latest", "0:latest"},
    {"my-registry.local:5000/team/app:2024.01.02", "my-registry.local:5000", "team/app", "2024.01.02", NULL,
     "my-registry.local:5000/team/app:2024.01.02", "my-registry.local:5000/team/app:2024.01.02"},
    {"k8s.gcr.io/pause:3.9", "k8s.gcr.io", "pause", "3.9", NULL, "k8s.gcr.io/pause:3.9", "k8s.gcr.io/pause:3.9"},
};

static void test_normalize(void)
{
    for (size_t i = 0; i < N_ELEMS(norm); i++) {
        const struct norm_case *c = &norm[i];
        struct image_ref r;
        err_t err = ERR_INIT;
        int ret = image_ref_parse(c->in, &r, &err);
        CHECK_MSG(ret == 0, "parse \"%s\": %d %s", c->in, ret, err.msg ? err.msg : "");
        err_clear(&err);
        if (ret != 0)
            continue;
        CHECK_MSG(str_eq_null(r.domain, c->domain), "\"%s\": domain %s", c->in, r.domain);
        CHECK_MSG(str_eq_null(r.path, c->path), "\"%s\": path %s", c->in, r.path);
        CHECK_MSG(str_eq_null(r.tag, c->tag), "\"%s\": tag %s", c->in, r.tag ? r.tag : "(null)");
        CHECK_MSG(str_eq_null(r.digest, c->digest), "\"%s\": digest %s", c->in, r.digest ? r.digest : "(null)");
        char *s = image_ref_string(&r), *f = image_ref_familiar(&r), *n = image_ref_name(&r);
        CHECK_STREQ(s, c->string);
        CHECK_STREQ(f, c->familiar);
        char want_name[512];
        snprintf(want_name, sizeof(want_name), "%s/%s", c->domain, c->path);
        CHECK_STREQ(n, want_name);

        /* Round trips: the full and the familiar forms parse back to the same. */
        struct image_ref r2, r3;
        CHECK_OK(image_ref_parse(s, &r2, &err));
        CHECK_MSG(ref_eq(&r, &r2), "\"%s\" does not round-trip through \"%s\"", c->in, s);
        CHECK_OK(image_ref_parse(f, &r3, &err));
        CHECK_MSG(ref_eq(&r, &r3), "\"%s\" does not round-trip through \"%s\"", c->in, f);
        image_ref_free(&r2);
        image_ref_free(&r3);
        free(s);
        free(f);
        free(n);
        image_ref_free(&r);
        CHECK(r.domain == NULL && r.path == NULL && r.tag == NULL && r.digest == NULL);
        image_ref_free(&r); /* twice is harmless */
        err_clear(&err);
    }
}

static void test_lengths(void)
{
    char buf[2048];
    struct image_ref r;
    err_t err = ERR_INIT;

    /* docker.io/library/ + 237 = 255: the longest name. */
    memset(buf, 'a', 237);
    buf[237] = '\0';
    CHECK_OK(image_ref_parse(buf, &r, &err));
    char *n = image_ref_name(&r);
    CHECK_EQ_INT(strlen(n), 255);
    free(n);
    image_ref_free(&r);

    memset(buf, 'a', 238);
    buf[238] = '\0';
    CHECK(image_ref_parse(buf, &r, &err) == -EINVAL);
    CHECK_CONTAINS(err.msg, "name too long (256 characters, at most 255)");

    /* With an explicit domain nothing is added. */
    memcpy(buf, "example.com/", 12);
    memset(buf + 12, 'b', 243);
    buf[255] = '\0';
    CHECK_OK(image_ref_parse(buf, &r, &err));
    image_ref_free(&r);
    memset(buf + 12, 'b', 244);
    buf[256] = '\0';
    CHECK(image_ref_parse(buf, &r, &err) == -EINVAL);
    CHECK_CONTAINS(err.msg, "name too long");

    /* Tags up to 128 characters; the tag does not count in the name. */
    memcpy(buf, "example.com/", 12);
    memset(buf + 12, 'b', 243);
    buf[255] = ':';
    memset(buf + 256, 'T', 128);
    buf[384] = '\0';
    CHECK_OK(image_ref_parse(buf, &r, &err));
    CHECK_EQ_INT(strlen(r.tag), 128);
    image_ref_free(&r);
    buf[384] = 'T';
    buf[385] = '\0';
    CHECK(image_ref_parse(buf, &r, &err) == -EINVAL);
    CHECK_CONTAINS(err.msg, "invalid tag");

    /* Many components. */
    size_t o = 0;
    for (int i = 0; i < 100; i++) {
        buf[o++] = 'a';
        buf[o++] = '/';
    }
    buf[o - 1] = '\0';
    CHECK_OK(image_ref_parse(buf, &r, &err));
    image_ref_free(&r);

    /* Huge input is refused before parsing, and the message stays short. */
    size_t big = 4 << 20;
    char *huge = malloc(big + 1);
    memset(huge, 'a', big);
    huge[big] = '\0';
    CHECK(image_ref_parse(huge, &r, &err) == -EINVAL);
    CHECK_CONTAINS(err.msg, "name too long");
    CHECK(err.msg && strlen(err.msg) < 400);
    CHECK(r.domain == NULL && r.path == NULL);
    memset(huge, 0xff, big);
    CHECK(image_ref_parse(huge, &r, &err) == -EINVAL);
    CHECK(err.msg && strlen(err.msg) < 600 && printable(err.msg));
    free(huge);
    err_clear(&err);
}

struct bad_case {
    const char *in;
    const char *msg; /* a part of the message */
};

static const struct bad_case bad[] = {
    /* empty and missing parts */
    {"", "invalid reference \"\": empty"},
    {":", "empty tag"},
    {":tag", "empty repository name"},
    {"@", "empty digest"},
    {"@" D256, "empty repository name"},
    {":tag@" D256, "empty repository name"},
    {"busybox:", "empty tag after ':'"},
    {"busybox@", "empty digest after '@'"},
    {"busybox:@" D256, "empty tag"},
    {"busybox:latest@", "empty digest"},
    {"example.com/foo:", "empty tag"},
    /* case */
    {"Busybox", "invalid reference \"Busybox\": repository name must be lowercase"},
    {"busyBox:latest", "repository name must be lowercase"},
    {"library/Busybox", "must be lowercase"},
    {"docker.io/Library/busybox", "must be lowercase"},
    {"FOO/bar", "must be lowercase"},
    {"example.com/Foo", "must be lowercase"},
    /* empty components */
    {"foo//bar", "empty path component"},
    {"/foo", "empty path component"},
    {"foo/", "empty path component"},
    {"//", "empty path component"},
    {"/", "empty path component"},
    {"docker.io//foo", "empty path component"},
    {"docker.io/", "empty repository path"},
    {"localhost:5000/", "empty repository path"},
    {"example.com/foo/", "empty path component"},
    /* separators */
    {"-foo", "must start and end with a lowercase letter or digit"},
    {"foo-", "must start and end"},
    {".foo", "must start and end"},
    {"foo.", "must start and end"},
    {"_foo", "must start and end"},
    {"foo_", "must start and end"},
    {"a/-b", "path component \"-b\""},
    {"foo..bar", "invalid separator \"..\""},
    {"foo___bar", "invalid separator \"___\""},
    {"foo._bar", "invalid separator"},
    {"foo-.bar", "invalid separator"},
    {"foo.-bar", "invalid separator"},
    {"foo_-bar", "invalid separator"},
    {"foo-_bar", "invalid separator"},
    /* characters */
    {"foo bar", "invalid character byte 0x20"},
    {" foo", "invalid character"},
    {"foo ", "invalid character"},
    {"foo\tbar", "invalid character byte 0x09"},
    {"foo\nbar", "invalid character"},
    {"foo!bar", "invalid character '!'"},
    {"foo$", "invalid character '$'"},
    {"f\xc3\xb6o", "invalid character byte 0xc3"},
    {"\xff\xfe", "invalid character byte 0xff"},
    {"foo\x01", "invalid character byte 0x01"},
    {"foo:bar:baz", "invalid character ':'"},
    {"foo/bar:baz/qux", "invalid character ':'"},
    {"foo#bar", "invalid character '#'"},
    {"foo/../bar", "must start and end"},
    {"./foo", "invalid registry host"},
    /* domains and ports */
    {":5000/foo", "port but no host"},
    {"localhost:/foo", "empty port"},
    {"localhost:abc/foo", "invalid port"},
    {"localhost:99999/foo", "out of range"},
    {"localhost:0/foo", "out of range"},
    {"localhost:123456/foo", "invalid port"},
    {"localhost:-1/foo", "invalid port"},
    {"localhost:5000:6000/foo", "invalid port"},
    {"-example.com/foo", "invalid registry host"},
    {"example-.com/foo", "invalid registry host"},
    {"exa_mple.com/foo", "invalid character '_' in registry host"},
    {"example..com/foo", "invalid registry host"},
    {".example.com/foo", "invalid registry host"},
    {"example.com./foo", "invalid registry host"},
    {"ex ample.com/foo", "invalid character"},
    {"[::1/foo", "invalid IPv6"},
    {"[]/foo", "invalid IPv6"},
    {"[zz::1]/foo", "invalid IPv6"},
    {"[1.2.3.4]/foo", "invalid IPv6"},
    {"[fe80::1%eth0]:5000/foo", "invalid IPv6"},
    {"[::1]x/foo", "junk after the IPv6"},
    {"[::1]:/foo", "empty port"},
    {"[::1]:99999/foo", "out of range"},
    {"[::1]", "without a repository path"},
    {"[::1]:5000", "without a repository path"},
    /* tags */
    {"busybox:-tag", "invalid tag \"-tag\""},
    {"busybox:.tag", "invalid tag"},
    {"busybox:tag!", "invalid tag"},
    {"busybox:ta g", "invalid tag"},
    {"busybox:t\xc3\xa4g", "invalid tag \"t\\xc3\\xa4g\""},
    {"busybox:latest:latest", "invalid character ':'"},
    /* digests */
    {"busybox@sha256:abc", "invalid digest \"sha256:abc\""},
    {"busybox@" D256UP, "invalid digest"},
    {"busybox@md5:d41d8cd98f00b204e9800998ecf8427e", "invalid digest"},
    {"busybox@" D256 "@" D256, "invalid digest"},
    {"busybox@" D256 ":tag", "invalid digest"},
    {"busybox@" HEX64, "invalid digest"},
    {"busybox@sha256:" HEX64 " ", "invalid digest"},
    /* image IDs are not names */
    {HEX64, "image ID"},
    {D256, "image ID"},
    {D512, "image ID"},
};

static void test_invalid(void)
{
    CHECK_MSG(N_ELEMS(bad) >= 60, "only %zu invalid cases", N_ELEMS(bad));
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        struct image_ref r;
        memset(&r, 0x5a, sizeof(r)); /* parse must clear it */
        err_t err = ERR_INIT;
        int ret = image_ref_parse(bad[i].in, &r, &err);
        CHECK_MSG(ret == -EINVAL, "\"%s\" accepted (%d): %s %s %s", bad[i].in, ret, r.domain ? r.domain : "",
                  r.path ? r.path : "", r.tag ? r.tag : "");
        if (ret == 0) {
            image_ref_free(&r);
            continue;
        }
        CHECK_MSG(err.code == ERR_INVALID_ARGUMENT, "\"%s\": code %d", bad[i].in, err.code);
        CHECK_MSG(err.msg && strstr(err.msg, bad[i].msg), "\"%s\": message \"%s\" lacks \"%s\"", bad[i].in,
                  err.msg ? err.msg : "(null)", bad[i].msg);
        CHECK_MSG(err.msg && strncmp(err.msg, "invalid reference ", 18) == 0, "\"%s\": message \"%s\"", bad[i].in,
                  err.msg ? err.msg : "(null)");
        CHECK_MSG(printable(err.msg), "\"%s\": unprintable message", bad[i].in);
        CHECK(r.domain == NULL && r.path == NULL && r.tag == NULL && r.digest == NULL);
        err_clear(&err);
    }

    struct image_ref r;
    err_t err = ERR_INIT;
    CHECK(image_ref_parse(NULL, &r, &err) == -EINVAL);
    CHECK_CONTAINS(err.msg, "empty");
    err_clear(&err);
    CHECK(image_ref_parse("Busybox", &r, NULL) == -EINVAL); /* no error object: still fine */
}

static void test_accessors_on_empty(void)
{
    struct image_ref r = {0};
    CHECK(image_ref_string(&r) == NULL);
    CHECK(image_ref_name(&r) == NULL);
    CHECK(image_ref_familiar(&r) == NULL);
    CHECK(image_ref_string(NULL) == NULL);
    image_ref_free(NULL);
    image_ref_free(&r);
}

/* xorshift: deterministic junk. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_junk(void)
{
    /* Mostly-grammatical alphabets find more corner cases than pure noise. */
    static const char alphabet[] = "abcz09AZ.-_:/@[]%# \x01\x7f\x80\xff";
    char buf[300];
    int accepted = 0, rejected = 0, round_trip_failures = 0, bad_messages = 0;
    for (int iter = 0; iter < 200000; iter++) {
        size_t n = rng() % (iter % 4 == 0 ? 280 : 24);
        bool noise = iter % 5 == 0;
        for (size_t i = 0; i < n; i++) {
            char c;
            if (noise) {
                c = (char)(rng() % 255 + 1);
            } else {
                c = alphabet[rng() % (sizeof(alphabet) - 1)];
            }
            buf[i] = c;
        }
        buf[n] = '\0';
        if (iter % 7 == 0 && n > 8) {
            /* sometimes a real digest */
            size_t at = rng() % (n - 1);
            snprintf(buf + at, sizeof(buf) - at, "@%s", D256);
        }
        struct image_ref r;
        err_t err = ERR_INIT;
        if (image_ref_parse(buf, &r, &err) == 0) {
            accepted++;
            char *s = image_ref_string(&r);
            struct image_ref r2;
            if (!s || image_ref_parse(s, &r2, NULL) != 0) {
                round_trip_failures++;
            } else {
                if (!ref_eq(&r, &r2))
                    round_trip_failures++;
                image_ref_free(&r2);
            }
            free(s);
            image_ref_free(&r);
        } else {
            rejected++;
            if (!err.msg || !printable(err.msg) || strlen(err.msg) > 1200)
                bad_messages++;
        }
        err_clear(&err);
    }
    CHECK(accepted > 0);
    CHECK(rejected > 0);
    CHECK_EQ_INT(round_trip_failures, 0);
    CHECK_EQ_INT(bad_messages, 0);
}

int main(void)
{
    RUN(test_normalize);
    RUN(test_lengths);
    RUN(test_invalid);
    RUN(test_accessors_on_empty);
    RUN(test_junk);
    return unit_summary();
}
