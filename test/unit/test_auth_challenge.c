#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/auth_challenge.h"
#include "util/cleanup.h"
#include "unit.h"

/* Expected parse: scheme and the four values (NULL when absent). */
struct want {
    enum auth_scheme scheme;
    const char *realm, *service, *scope, *error;
};

static bool streq_null(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void expect_parse(const char *header, struct want w)
{
    struct auth_challenge c;
    err_t err = ERR_INIT;
    int r = auth_challenge_parse(header, &c, &err);
    CHECK_MSG(r == 0, "parsing [%s]: %s", header, err.msg ? err.msg : "");
    if (r == 0) {
        CHECK_MSG(c.scheme == w.scheme, "[%s]: scheme %d, not %d", header, c.scheme, w.scheme);
        CHECK_MSG(streq_null(c.realm, w.realm), "[%s]: realm [%s], not [%s]", header, c.realm ? c.realm : "(null)",
                  w.realm ? w.realm : "(null)");
        CHECK_MSG(streq_null(c.service, w.service), "[%s]: service [%s], not [%s]", header,
                  c.service ? c.service : "(null)", w.service ? w.service : "(null)");
        CHECK_MSG(streq_null(c.scope, w.scope), "[%s]: scope [%s], not [%s]", header, c.scope ? c.scope : "(null)",
                  w.scope ? w.scope : "(null)");
        CHECK_MSG(streq_null(c.error, w.error), "[%s]: error [%s], not [%s]", header, c.error ? c.error : "(null)",
                  w.error ? w.error : "(null)");
    }
    auth_challenge_free(&c);
    CHECK(c.realm == NULL && c.scheme == AUTH_SCHEME_UNKNOWN);
    auth_challenge_free(&c); /* twice is harmless */
    err_clear(&err);
}

/* The parse fails with `errnum` and a message holding `want`. */
static void expect_fail(const char *header, int errnum, const char *want)
{
    struct auth_challenge c;
    err_t err = ERR_INIT;
    int r = auth_challenge_parse(header, &c, &err);
    CHECK_MSG(r == -errnum, "parsing [%s]: %d, not %d (%s)", header ? header : "(null)", r, -errnum,
              err.msg ? err.msg : "");
    CHECK(c.scheme == AUTH_SCHEME_UNKNOWN && !c.realm && !c.service && !c.scope && !c.error);
    CHECK_MSG(err.msg && strstr(err.msg, want), "parsing [%s]: message [%s] lacks [%s]", header ? header : "(null)",
              err.msg ? err.msg : "(null)", want);
    CHECK_MSG(err.msg && !strchr(err.msg, '\n') && !strchr(err.msg, '\r'), "message has a line break");
    err_clear(&err);
}

#define HUB_REALM "https://auth.docker.io/token"

static void test_docker_hub(void)
{
    expect_parse(
        "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
        "scope=\"repository:library/busybox:pull\"",
        (struct want){AUTH_SCHEME_BEARER, HUB_REALM, "registry.docker.io", "repository:library/busybox:pull", NULL});
    /* GitHub's and distribution's answers to a push without rights. */
    expect_parse("Bearer realm=\"https://ghcr.io/token\",service=\"ghcr.io\",scope=\"repository:o/r:pull,push\","
                 "error=\"insufficient_scope\"",
                 (struct want){AUTH_SCHEME_BEARER, "https://ghcr.io/token", "ghcr.io", "repository:o/r:pull,push",
                               "insufficient_scope"});
    /* A scope with several actions and several resources (space-separated). */
    expect_parse("Bearer realm=\"https://r/t\",scope=\"repository:a:pull repository:b:pull\"",
                 (struct want){AUTH_SCHEME_BEARER, "https://r/t", NULL, "repository:a:pull repository:b:pull", NULL});
}

static void test_variants(void)
{
    /* Unquoted token values. */
    expect_parse("Bearer realm=\"https://r.example/token\",service=registry.example,scope=x",
                 (struct want){AUTH_SCHEME_BEARER, "https://r.example/token", "registry.example", "x", NULL});
    expect_parse("Bearer service=reg,realm=\"https://r\"",
                 (struct want){AUTH_SCHEME_BEARER, "https://r", "reg", NULL, NULL});
    /* Escaped quotes and backslashes in quoted strings. */
    expect_parse("Bearer realm=\"https://r/\\\"q\\\"\",service=\"a\\\\b\",scope=\"\\x\"",
                 (struct want){AUTH_SCHEME_BEARER, "https://r/\"q\"", "a\\b", "x", NULL});
    /* Empty quoted value, and a comma inside quotes. */
    expect_parse("Bearer realm=\"\",service=\"a,b\"", (struct want){AUTH_SCHEME_BEARER, "", "a,b", NULL, NULL});
    /* Extra spaces and tabs everywhere RFC 7235 allows them (BWS around '='). */
    expect_parse("   Bearer    realm = \"https://r\" ,\t service=\t\"s\"  ,scope= \"p\"   ",
                 (struct want){AUTH_SCHEME_BEARER, "https://r", "s", "p", NULL});
    /* Empty list elements. */
    expect_parse(",, Bearer realm=\"https://r\",,, service=\"s\",,",
                 (struct want){AUTH_SCHEME_BEARER, "https://r", "s", NULL, NULL});
    /* Scheme and parameter names are case-insensitive. */
    expect_parse("bEaReR REALM=\"https://r\",Service=\"s\",SCOPE=\"p\",Error=\"e\"",
                 (struct want){AUTH_SCHEME_BEARER, "https://r", "s", "p", "e"});
    expect_parse("BASIC Realm=\"x\"", (struct want){AUTH_SCHEME_BASIC, "x", NULL, NULL, NULL});
    /* Unknown parameters are ignored, quoted or not. */
    expect_parse("Bearer foo=bar,realm=\"https://r\",x-extra=\"a \\\" b\",charset=UTF-8",
                 (struct want){AUTH_SCHEME_BEARER, "https://r", NULL, NULL, NULL});
    /* No parameters at all. */
    expect_parse("Bearer", (struct want){AUTH_SCHEME_BEARER, NULL, NULL, NULL, NULL});
    expect_parse("Basic", (struct want){AUTH_SCHEME_BASIC, NULL, NULL, NULL, NULL});
    /* obs-text (bytes >= 0x80) in a quoted string is kept. */
    expect_parse("Basic realm=\"caf\xc3\xa9\"", (struct want){AUTH_SCHEME_BASIC, "caf\xc3\xa9", NULL, NULL, NULL});
}

static void test_multiple_challenges(void)
{
    struct want bearer = {AUTH_SCHEME_BEARER, "https://r", "s", NULL, NULL};
    expect_parse("Bearer realm=\"https://r\",service=\"s\", Basic realm=\"b\"", bearer);
    expect_parse("Basic realm=\"b\", Bearer realm=\"https://r\",service=\"s\"", bearer);
    expect_parse("Basic realm=\"b\",Bearer realm=\"https://r\",service=\"s\"", bearer);
    expect_parse("Basic, Bearer realm=\"https://r\", service=\"s\"", bearer);
    /* Unknown schemes, with token68 or parameters, are skipped. */
    expect_parse("Negotiate, Bearer realm=\"https://r\",service=\"s\"", bearer);
    expect_parse("Negotiate YIIBhgYGKwYBBQUCoIIBejCCAXag==, Bearer realm=\"https://r\",service=\"s\"", bearer);
    expect_parse("Digest realm=\"d\", nonce=\"n\", qop=\"auth\", Bearer realm=\"https://r\", service=\"s\"", bearer);
    expect_parse("Basic realm=\"b\", Digest realm=\"d\", nonce=\"abc\"",
                 (struct want){AUTH_SCHEME_BASIC, "b", NULL, NULL, NULL});
    /* The first of each kind is the one used. */
    expect_parse("Bearer realm=\"https://one\", Bearer realm=\"https://two\"",
                 (struct want){AUTH_SCHEME_BEARER, "https://one", NULL, NULL, NULL});
    /* token68 right after a scheme. */
    expect_parse("Basic dXNlcjpwYXNz", (struct want){AUTH_SCHEME_BASIC, NULL, NULL, NULL, NULL});
    expect_parse("Basic dXNlcjpwYQ==, Bearer realm=\"https://r\", service=\"s\"", bearer);
}

static void test_unsupported_and_garbage(void)
{
    /* Only schemes we do not speak: EOPNOTSUPP naming them. */
    expect_fail("Negotiate", EOPNOTSUPP, "Negotiate");
    expect_fail("Digest realm=\"d\", nonce=\"n\", NTLM", EOPNOTSUPP, "Digest, NTLM");
    expect_fail("AWS4-HMAC-SHA256 Credential=x", EOPNOTSUPP, "AWS4-HMAC-SHA256");
    struct auth_challenge c;
    err_t err = ERR_INIT;
    CHECK_EQ_INT(auth_challenge_parse("Mutual x=y", &c, &err), -EOPNOTSUPP);
    CHECK_EQ_INT(err.code, ERR_UNIMPLEMENTED);
    err_clear(&err);

    /* Malformed. */
    expect_fail(NULL, EINVAL, "no header");
    expect_fail("", EINVAL, "no challenge");
    expect_fail("   \t ", EINVAL, "no challenge");
    expect_fail(",,,", EINVAL, "no challenge");
    expect_fail("=", EINVAL, "offset 0");
    expect_fail("\"Bearer\"", EINVAL, "offset 0");
    expect_fail("Bearer realm=\"https://r\" service=\"s\"", EINVAL, "expected ','");
    expect_fail("Bearer realm=\"https://r\"x", EINVAL, "expected ','");
    expect_fail("Bearer realm=https://r", EINVAL, "expected ','"); /* ':' and '/' are not token chars */
    expect_fail("Bearer =x", EINVAL, "offset 7");
    expect_fail("Bearer realm=\"a\",=x", EINVAL, "offset 17");
    expect_fail("Bearer service=s, realm=, scope=x", EINVAL, "no value");
    expect_fail("Bearer realm=\"a\", service=", EINVAL, "no value");
    expect_fail("Bearer realm=\"x\"\x01", EINVAL, "expected ','");
    expect_fail("Bearer\x01 realm=\"x\"", EINVAL, "unexpected character at offset 6");
    expect_fail("Bearer realm=\"x\ny\"", EINVAL, "control character");
    expect_fail("Bearer realm=\"x\",\r\n service=\"y\"", EINVAL, "offset");
    expect_fail("Bearer realm=\"https://a\",realm=\"https://b\"", EINVAL, "realm is given twice");
    expect_fail("Bearer realm=\"https://a\",REALM=\"https://b\"", EINVAL, "realm is given twice");
    expect_fail("B\xc3\xa9"
                "arer realm=\"x\"",
                EINVAL, "offset 1");
    /* Unterminated quoted strings, with and without a dangling escape. */
    expect_fail("Bearer realm=\"https://auth.docker.io/token", EINVAL, "not terminated");
    expect_fail("Bearer realm=\"https://r\",service=\"abc\\\"", EINVAL, "not terminated");
    expect_fail("Bearer realm=\"abc\\", EINVAL, "not terminated");
    expect_fail("Bearer realm=\"", EINVAL, "not terminated");
}

static void test_length_limit(void)
{
    /* 10 KiB: refused. */
    size_t n = 10 * 1024;
    char *h = malloc(n + 1);
    memset(h, 'a', n);
    memcpy(h, "Bearer realm=\"", 14);
    h[n - 1] = '"';
    h[n] = '\0';
    expect_fail(h, E2BIG, "longer than 8192 bytes");
    /* Exactly 8 KiB is parsed (a long unknown parameter pads it). */
    const char *head = "Bearer realm=\"https://r\",pad=\"";
    n = AUTH_CHALLENGE_HEADER_MAX;
    memset(h, 'p', n);
    memcpy(h, head, strlen(head));
    h[n - 1] = '"';
    h[n] = '\0';
    expect_parse(h, (struct want){AUTH_SCHEME_BEARER, "https://r", NULL, NULL, NULL});
    /* One more byte is refused. */
    char *h2 = malloc(n + 2);
    memcpy(h2, h, n - 1);
    h2[n - 1] = 'p';
    h2[n] = '"';
    h2[n + 1] = '\0';
    expect_fail(h2, E2BIG, "longer than");
    free(h2);
    free(h);

    /* Many tiny challenges and parameters up to the limit: no trouble. */
    h = malloc(AUTH_CHALLENGE_HEADER_MAX + 1);
    size_t o = 0;
    while (o + 8 < AUTH_CHALLENGE_HEADER_MAX)
        o += (size_t)sprintf(h + o, "X a=b, ");
    h[o] = '\0';
    expect_fail(h, EOPNOTSUPP, "...");
    free(h);
}

/* Every prefix and random changes of a real header: parse or fail cleanly. */
static void test_mangled(void)
{
    static const char base[] = "Basic realm=\"b\", Bearer realm=\"https://auth.docker.io/token\",service=\"registry."
                               "docker.io\",scope=\"repository:library/busybox:pull\", Negotiate abc==";
    size_t len = strlen(base);
    char buf[sizeof(base)];
    unsigned ok = 0, bad = 0, seed = 7;
    static const char junk[] = "\"\\,= \t;:/abc\x01\x7f\xff";
    for (size_t cut = 0; cut <= len; cut++) {
        memcpy(buf, base, cut);
        buf[cut] = '\0';
        struct auth_challenge c;
        err_t err = ERR_INIT;
        if (auth_challenge_parse(buf, &c, &err) == 0)
            ok++;
        else {
            bad++;
            CHECK(err.msg != NULL);
        }
        auth_challenge_free(&c);
        err_clear(&err);
    }
    for (int round = 0; round < 20000; round++) {
        memcpy(buf, base, len + 1);
        for (int k = 0; k < 3; k++) {
            seed = seed * 1103515245 + 12345;
            size_t at = (seed >> 8) % len;
            seed = seed * 1103515245 + 12345;
            buf[at] = junk[(seed >> 8) % (sizeof(junk) - 1)];
        }
        struct auth_challenge c;
        err_t err = ERR_INIT;
        if (auth_challenge_parse(buf, &c, &err) == 0) {
            ok++;
            char *url = NULL;
            const char *scope = "repository:x:pull";
            if (auth_token_url(&c, &scope, 1, &url, &err) == 0)
                free(url);
        } else {
            bad++;
            CHECK(err.msg != NULL);
        }
        auth_challenge_free(&c);
        err_clear(&err);
    }
    CHECK(ok > 0 && bad > 0);
}

static void expect_url(const char *header, const char *const *scopes, size_t n, const char *want)
{
    struct auth_challenge c;
    err_t err = ERR_INIT;
    int r = auth_challenge_parse(header, &c, &err);
    CHECK_MSG(r == 0, "parsing [%s]: %s", header, err.msg ? err.msg : "");
    char *url = NULL;
    r = auth_token_url(&c, scopes, n, &url, &err);
    CHECK_MSG(r == 0, "token URL of [%s]: %s", header, err.msg ? err.msg : "");
    CHECK_MSG(url && strcmp(url, want) == 0, "token URL of [%s]:\n  %s\nnot\n  %s", header, url ? url : "(null)", want);
    free(url);
    auth_challenge_free(&c);
    err_clear(&err);
}

static void expect_url_fail(const struct auth_challenge *c, const char *want)
{
    char *url = (char *)"untouched";
    err_t err = ERR_INIT;
    const char *scope = "repository:a:pull";
    CHECK_EQ_INT(auth_token_url(c, &scope, 1, &url, &err), -EINVAL);
    CHECK(url == NULL);
    CHECK_MSG(err.msg && strstr(err.msg, want), "message [%s] lacks [%s]", err.msg ? err.msg : "(null)", want);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    err_clear(&err);
}

static void test_token_url(void)
{
    const char *hub = "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
                      "scope=\"repository:library/busybox:pull\"";
    const char *one[] = {"repository:library/busybox:pull"};
    expect_url(hub, one, 1,
               "https://auth.docker.io/token?service=registry.docker.io&scope=repository%3Alibrary%2Fbusybox%3Apull");
    /* Several scopes: repeated scope= parameters; ',' and ' ' encoded. */
    const char *two[] = {"repository:team/app:pull,push", "repository:library/busybox:pull"};
    expect_url(hub, two, 2,
               "https://auth.docker.io/token?service=registry.docker.io"
               "&scope=repository%3Ateam%2Fapp%3Apull%2Cpush&scope=repository%3Alibrary%2Fbusybox%3Apull");
    /* Everything outside RFC 3986's unreserved set is encoded. */
    const char *odd[] = {"a b&c=d?e#f+g%h~i-j_k.l\xc3\xa9"};
    expect_url("Bearer realm=\"https://r/t\",service=\"my service/x\"", odd, 1,
               "https://r/t?service=my%20service%2Fx&scope=a%20b%26c%3Dd%3Fe%23f%2Bg%25h~i-j_k.l%C3%A9");
    /* Realms with a query already, or ending in '?' or '&'. */
    expect_url("Bearer realm=\"https://r/t?client=edgecri\",service=\"s\"", one, 1,
               "https://r/t?client=edgecri&service=s&scope=repository%3Alibrary%2Fbusybox%3Apull");
    expect_url("Bearer realm=\"https://r/t?\",service=\"s\"", NULL, 0, "https://r/t?service=s");
    expect_url("Bearer realm=\"https://r/t?a=b&\",service=\"s\"", NULL, 0, "https://r/t?a=b&service=s");
    /* No service: scopes only; nothing at all: the realm. */
    expect_url("Bearer realm=\"https://r/t\"", one, 1, "https://r/t?scope=repository%3Alibrary%2Fbusybox%3Apull");
    expect_url("Bearer realm=\"https://r/t\"", NULL, 0, "https://r/t");
    expect_url("Bearer realm=\"HTTP://127.0.0.1:5001/auth\",service=\"\"", NULL, 0, "HTTP://127.0.0.1:5001/auth");
    /* Empty and NULL scopes are skipped. */
    const char *holes[] = {"", NULL, "x"};
    expect_url("Bearer realm=\"http://r:8080/t\",service=\"s\"", holes, 3, "http://r:8080/t?service=s&scope=x");

    /* Refused realms and challenges. */
    struct auth_challenge c = {.scheme = AUTH_SCHEME_BEARER};
    const char *bad[][2] = {
        {"ftp://r/t", "not an http or https URL"},
        {"/token", "not an http or https URL"},
        {"auth.docker.io/token", "not an http or https URL"},
        {"https://", "has no host"},
        {"https:///token", "has no host"},
        {"https://:443/token", "has no host"},
        {"https://user:pw@r/t", "credentials"},
        {"https://r/t#frag", "fragment"},
        {"https://r/t oken", "whitespace"},
        {"https://r/t\r\nX-Evil: 1", "control"},
        {"", "empty"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        c.realm = (char *)bad[i][0];
        expect_url_fail(&c, bad[i][1]);
    }
    c.realm = NULL;
    expect_url_fail(&c, "no realm");
    c.scheme = AUTH_SCHEME_BASIC;
    c.realm = (char *)"https://r/t";
    expect_url_fail(&c, "not a Bearer challenge");
    expect_url_fail(NULL, "not a Bearer challenge");
    /* A credential-bearing realm is not echoed. */
    c.scheme = AUTH_SCHEME_BEARER;
    c.realm = (char *)"https://user:S3cr3t@r/t";
    char *url = NULL;
    err_t err = ERR_INIT;
    CHECK(auth_token_url(&c, NULL, 0, &url, &err) < 0);
    CHECK(err.msg && !strstr(err.msg, "S3cr3t"));
    err_clear(&err);
}

static int parse_json(const char *json, char **token, int64_t *expires, err_t *err)
{
    return auth_token_response_parse((const uint8_t *)json, strlen(json), token, expires, err);
}

static void expect_token(const char *json, const char *want, int64_t want_expires)
{
    char *token = NULL;
    int64_t expires = -1;
    err_t err = ERR_INIT;
    int r = parse_json(json, &token, &expires, &err);
    CHECK_MSG(r == 0, "[%s]: %s", json, err.msg ? err.msg : "");
    CHECK_MSG(token && strcmp(token, want) == 0, "[%s]: token [%s]", json, token ? token : "(null)");
    CHECK_MSG(expires == want_expires, "[%s]: expires_in %lld, not %lld", json, (long long)expires,
              (long long)want_expires);
    free(token);
    err_clear(&err);
}

static void expect_token_fail(const char *json, size_t len, const char *want, const char *secret)
{
    char *token = (char *)"untouched";
    int64_t expires = -1;
    err_t err = ERR_INIT;
    int r = auth_token_response_parse((const uint8_t *)json, len, &token, &expires, &err);
    CHECK_MSG(r < 0, "[%.*s] accepted", (int)(len > 80 ? 80 : len), json);
    CHECK(token == NULL);
    CHECK_MSG(err.msg && strstr(err.msg, want), "[%.*s]: message [%s] lacks [%s]", (int)(len > 80 ? 80 : len), json,
              err.msg ? err.msg : "(null)", want);
    if (secret)
        CHECK_MSG(err.msg && !strstr(err.msg, secret), "message [%s] holds the token", err.msg ? err.msg : "");
    err_clear(&err);
}

static void test_token_response(void)
{
    expect_token("{\"token\":\"abc.def.ghi\",\"expires_in\":300,\"issued_at\":\"2024-01-01T00:00:00Z\"}", "abc.def.ghi",
                 300);
    expect_token("{\"access_token\":\"xyz\"}", "xyz", 60);
    /* Docker Hub sends both; "token" wins. */
    expect_token("{\"token\":\"t1\",\"access_token\":\"t2\",\"expires_in\":300}", "t1", 300);
    expect_token("{\"token\":\"\",\"access_token\":\"t2\"}", "t2", 60);
    expect_token("{\"token\":null,\"access_token\":\"t2\"}", "t2", 60);
    /* Lifetimes: minimum 60 s, default 60 s, capped, reals truncated. */
    expect_token("{\"token\":\"t\",\"expires_in\":10}", "t", 60);
    expect_token("{\"token\":\"t\",\"expires_in\":0}", "t", 60);
    expect_token("{\"token\":\"t\",\"expires_in\":-5}", "t", 60);
    expect_token("{\"token\":\"t\",\"expires_in\":60}", "t", 60);
    expect_token("{\"token\":\"t\",\"expires_in\":61}", "t", 61);
    expect_token("{\"token\":\"t\",\"expires_in\":9223372036854775807}", "t", AUTH_TOKEN_LIFETIME_MAX);
    expect_token("{\"token\":\"t\",\"expires_in\":3600.9}", "t", 3600);
    expect_token("{\"token\":\"t\",\"expires_in\":1e300}", "t", AUTH_TOKEN_LIFETIME_MAX);
    expect_token("{\"token\":\"t\",\"expires_in\":-1e300}", "t", 60);
    expect_token("{\"token\":\"t\",\"expires_in\":null}", "t", 60);
    expect_token("  {\"refresh_token\":\"r\",\"token\":\"t\",\"scope\":\"x\"}\n", "t", 60);

    expect_token_fail("", 0, "empty", NULL);
    expect_token_fail("{}", 2, "no \"token\" or \"access_token\"", NULL);
    expect_token_fail("{\"token\":\"\"}", 12, "no \"token\"", NULL);
    expect_token_fail("{\"token\":42}", 12, "\"token\" is not a string", NULL);
    expect_token_fail("{\"access_token\":[\"a\"]}", 22, "\"access_token\" is not a string", NULL);
    expect_token_fail("[\"token\"]", 9, "not a JSON object", NULL);
    expect_token_fail("\"tok\"", 5, "invalid JSON", NULL); /* jansson wants an object or array */
    expect_token_fail("{\"token\":\"t\"", 12, "invalid JSON", NULL);
    expect_token_fail("{\"token\":\"t\"} trailing", 22, "invalid JSON", NULL);
    expect_token_fail("{\"token\":\"a\",\"token\":\"b\"}", 25, "invalid JSON", NULL);
    expect_token_fail("{\"token\":\"t\",\"expires_in\":\"300\"}", 32, "\"expires_in\" is not a number", NULL);
    expect_token_fail("{\"token\":\"t\\u0000x\"}", 20, "invalid JSON", NULL);
    expect_token_fail("{\"token\":\"t\"}\0", 14, "invalid JSON", NULL);
    /* Tokens that would break the Authorization header are refused, and
     * never quoted. */
    expect_token_fail("{\"token\":\"S3cr3t\\r\\nX-Evil: 1\"}", 31, "control", "S3cr3t");
    expect_token_fail("{\"token\":\"S3cr3t token\"}", 24, "spaces", "S3cr3t");
    expect_token_fail("{\"token\":\"S3cr3t\\u00e9\"}", 24, "non-ASCII", "S3cr3t");

    /* Size limits: 1 MiB + 1 refused; a 64 KiB + 1 token refused. */
    size_t big = AUTH_TOKEN_RESPONSE_MAX + 1;
    char *json = malloc(big + 1);
    memset(json, ' ', big);
    memcpy(json, "{\"token\":\"t\"}", 13);
    json[big] = '\0';
    expect_token_fail(json, big, "larger than 1048576 bytes", NULL);
    char *token;
    int64_t expires;
    err_t err = ERR_INIT;
    CHECK_OK(auth_token_response_parse((const uint8_t *)json, big - 1, &token, &expires, &err));
    free(token);
    size_t tlen = AUTH_TOKEN_MAX + 1;
    size_t o = (size_t)sprintf(json, "{\"token\":\"");
    memset(json + o, 'A', tlen);
    o += tlen;
    o += (size_t)sprintf(json + o, "\"}");
    expect_token_fail(json, o, "longer than 65536 bytes", "AAAAAAAA");
    /* Deep nesting is refused by the parser, without a crash. */
    o = 0;
    for (size_t i = 0; i < 500000; i++)
        json[o++] = '[';
    expect_token_fail(json, o, "invalid JSON", NULL);
    free(json);
    CHECK(auth_token_response_parse(NULL, 5, &token, &expires, &err) < 0);
    err_clear(&err);
}

int main(void)
{
    RUN(test_docker_hub);
    RUN(test_variants);
    RUN(test_multiple_challenges);
    RUN(test_unsupported_and_garbage);
    RUN(test_length_limit);
    RUN(test_mangled);
    RUN(test_token_url);
    RUN(test_token_response);
    return unit_summary();
}
