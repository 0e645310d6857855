#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry/registries_config.h"
#include "util/cleanup.h"
#include "util/log.h"
#include "unit.h"

#define NAME "reg.yaml"

static int load(struct registries_config *c, const char *text, err_t *err)
{
    return registries_config_load_text(NAME, text, strlen(text), c, err);
}

static const struct registry_mirror *mirror(const struct registries_config *c, const char *registry)
{
    for (size_t i = 0; i < c->n_mirrors; i++)
        if (strcmp(c->mirrors[i].registry, registry) == 0)
            return &c->mirrors[i];
    return NULL;
}

/* The brief's example, verbatim in shape. */
static const char full_example[] = "mirrors:\n"
                                   "  docker.io:\n"
                                   "    endpoint:\n"
                                   "      - \"https://mirror.example.com:5000\"\n"
                                   "      - \"http://10.0.0.5:5000/v2\"   # a trailing /v2 path is accepted\n"
                                   "    rewrite:\n"
                                   "      \"^library/(.*)\": \"mirrored/library/$1\"\n"
                                   "  \"*\":                               # every registry without its own entry\n"
                                   "    endpoint: [\"https://catch-all.example.com\"]\n"
                                   "configs:\n"
                                   "  \"mirror.example.com:5000\":\n"
                                   "    auth:\n"
                                   "      username: user\n"
                                   "      password: pass\n"
                                   "    tls:\n"
                                   "      ca_file: /etc/ssl/mirror-ca.pem\n"
                                   "      cert_file: /etc/ssl/client.pem\n"
                                   "      key_file: /etc/ssl/client-key.pem\n"
                                   "      insecure_skip_verify: true\n";

static void test_full_example(void)
{
    struct registries_config c;
    err_t err = ERR_INIT;
    CHECK_OK(load(&c, full_example, &err));
    CHECK(err.msg == NULL);
    CHECK_EQ_U64(c.n_mirrors, 2);
    const struct registry_mirror *m = mirror(&c, "docker.io");
    CHECK(m != NULL);
    if (m) {
        CHECK_EQ_U64(m->n_endpoints, 2);
        CHECK_STREQ(m->endpoints[0], "https://mirror.example.com:5000");
        CHECK_STREQ(m->endpoints[1], "http://10.0.0.5:5000");
        CHECK_EQ_U64(m->n_rewrites, 1);
        if (m->n_rewrites == 1) {
            CHECK_STREQ(m->rewrites[0].pattern, "^library/(.*)");
            CHECK_STREQ(m->rewrites[0].replacement, "mirrored/library/$1");
        }
    }
    m = mirror(&c, "*");
    CHECK(m != NULL);
    if (m) {
        CHECK_EQ_U64(m->n_endpoints, 1);
        CHECK_STREQ(m->endpoints[0], "https://catch-all.example.com");
        CHECK_EQ_U64(m->n_rewrites, 0);
    }
    CHECK_EQ_U64(c.n_configs, 1);
    if (c.n_configs == 1) {
        const struct registry_host_config *h = &c.configs[0];
        CHECK_STREQ(h->host, "mirror.example.com:5000");
        CHECK(h->has_auth);
        CHECK_STREQ(h->auth.username, "user");
        CHECK_STREQ(h->auth.password, "pass");
        CHECK(h->auth.auth == NULL);
        CHECK(h->auth.identity_token == NULL);
        CHECK(h->has_tls);
        CHECK_STREQ(h->tls.ca_file, "/etc/ssl/mirror-ca.pem");
        CHECK_STREQ(h->tls.cert_file, "/etc/ssl/client.pem");
        CHECK_STREQ(h->tls.key_file, "/etc/ssl/client-key.pem");
        CHECK(h->tls.insecure_skip_verify);
    }
    registries_config_free(&c);
    CHECK(c.mirrors == NULL && c.n_mirrors == 0 && c.configs == NULL && c.n_configs == 0);
    registries_config_free(&c); /* twice is harmless */
    registries_config_free(NULL);
}

/* The shape k3s users have on their nodes: k3s's documented template with
 * its empty values and comments, several registries, the "token" and base64
 * "auth" spellings, a plain-http private registry listing itself. */
static const char k3s_file[] = "---\n"
                               "mirrors:\n"
                               "  docker.io:\n"
                               "    endpoint:\n"
                               "      - \"https://registry.example.com:5000\"\n"
                               "    rewrite:\n"
                               "      \"^rancher/(.*)\": \"mirrorproject/rancher-images/$1\"\n"
                               "  registry.example.com:5000:\n"
                               "    endpoint:\n"
                               "      - http://registry.example.com:5000\n"
                               "  quay.io:\n"
                               "  gcr.io: {}\n"
                               "configs:\n"
                               "  \"registry.example.com:5000\":\n"
                               "    auth:\n"
                               "      username: xxxxxx # this is the registry username\n"
                               "      password: xxxxxx # this is the registry password\n"
                               "    tls:\n"
                               "      cert_file: # path to the cert file used in the registry\n"
                               "      key_file:  # path to the key file used in the registry\n"
                               "      ca_file:   # path to the ca file used in the registry\n"
                               "  harbor.example.com:\n"
                               "    auth:\n"
                               "      auth: dXNlcjpwYXNzOndpdGg6Y29sb25z\n" /* user:pass:with:colons */
                               "  ghcr.io:\n"
                               "    auth:\n"
                               "      token: refresh-token-value\n"
                               "  \"10.0.0.5:5000\":\n"
                               "    tls:\n"
                               "      insecure_skip_verify: True\n"
                               "  other.example.com:\n"
                               "    auth:\n"
                               "      identitytoken: tok2\n"
                               "  third.example.com:\n"
                               "    auth:\n"
                               "      identity_token: tok3\n"
                               "      username: robot\n"
                               "    tls:\n"
                               "      insecure_skip_verify: false\n"
                               "...\n";

static const struct registry_host_config *config_exact(const struct registries_config *c, const char *host)
{
    for (size_t i = 0; i < c->n_configs; i++)
        if (strcmp(c->configs[i].host, host) == 0)
            return &c->configs[i];
    return NULL;
}

static void test_k3s_file(void)
{
    struct registries_config c;
    err_t err = ERR_INIT;
    int r = load(&c, k3s_file, &err);
    CHECK_MSG(r == 0, "k3s file: %s", err.msg ? err.msg : "");
    if (r < 0) {
        err_clear(&err);
        return;
    }
    CHECK_EQ_U64(c.n_mirrors, 4);
    const struct registry_mirror *m = mirror(&c, "quay.io");
    CHECK(m && m->n_endpoints == 0 && m->n_rewrites == 0);
    m = mirror(&c, "gcr.io");
    CHECK(m && m->n_endpoints == 0);
    m = mirror(&c, "registry.example.com:5000");
    CHECK(m && m->n_endpoints == 1 && strcmp(m->endpoints[0], "http://registry.example.com:5000") == 0);

    const struct registry_host_config *h = config_exact(&c, "registry.example.com:5000");
    CHECK(h && h->has_auth && !h->has_tls);
    if (h) {
        CHECK_STREQ(h->auth.username, "xxxxxx");
        CHECK(h->tls.ca_file == NULL && h->tls.cert_file == NULL && h->tls.key_file == NULL);
    }
    h = config_exact(&c, "harbor.example.com");
    CHECK(h && h->has_auth);
    if (h) {
        CHECK_STREQ(h->auth.auth, "dXNlcjpwYXNzOndpdGg6Y29sb25z");
        CHECK_STREQ(h->auth.username, "user");
        CHECK_STREQ(h->auth.password, "pass:with:colons");
    }
    h = config_exact(&c, "ghcr.io");
    CHECK(h && h->has_auth && h->auth.identity_token && strcmp(h->auth.identity_token, "refresh-token-value") == 0);
    CHECK(h && h->auth.username == NULL && h->auth.password == NULL);
    h = config_exact(&c, "10.0.0.5:5000");
    CHECK(h && !h->has_auth && h->has_tls && h->tls.insecure_skip_verify);
    h = config_exact(&c, "other.example.com");
    CHECK(h && h->auth.identity_token && strcmp(h->auth.identity_token, "tok2") == 0);
    h = config_exact(&c, "third.example.com");
    CHECK(h && h->auth.identity_token && strcmp(h->auth.identity_token, "tok3") == 0);
    CHECK(h && h->auth.username && strcmp(h->auth.username, "robot") == 0);
    CHECK(h && h->has_tls && !h->tls.insecure_skip_verify);
    registries_config_free(&c);

    /* Flow style, booleans in YAML 1.1 spellings, uppercase hosts (stored
     * lowercase), an endpoint given as one string, matching auth and
     * username/password given together. */
    r = load(&c,
             "{mirrors: {Docker.IO: {endpoint: 'HTTPS://Mirror.Example.com/'}},\n"
             " configs: {\"A.example\": {tls: {insecure_skip_verify: yes}},\n"
             "           b.example: {tls: {insecure_skip_verify: off}},\n"
             "           c.example: {auth: {auth: 'dXNlcjpwYXNz', username: user, password: pass}}}}\n",
             &err);
    CHECK_MSG(r == 0, "flow file: %s", err.msg ? err.msg : "");
    if (r == 0) {
        m = mirror(&c, "docker.io");
        CHECK(m && m->n_endpoints == 1 && strcmp(m->endpoints[0], "https://mirror.example.com") == 0);
        h = config_exact(&c, "a.example");
        CHECK(h && h->tls.insecure_skip_verify);
        h = config_exact(&c, "b.example");
        CHECK(h && h->has_tls && !h->tls.insecure_skip_verify);
        h = config_exact(&c, "c.example");
        CHECK(h && h->auth.username && strcmp(h->auth.password, "pass") == 0);
        registries_config_free(&c);
    }
    err_clear(&err);
}

static void expect_empty(const char *text)
{
    struct registries_config c;
    err_t err = ERR_INIT;
    int r = load(&c, text, &err);
    CHECK_MSG(r == 0, "loading \"%s\": %s", text, err.msg ? err.msg : "");
    CHECK_MSG(c.n_mirrors == 0 && c.n_configs == 0, "\"%s\" is not empty", text);
    registries_config_free(&c);
    err_clear(&err);
}

static void test_empty(void)
{
    expect_empty("");
    expect_empty("# only a comment\n");
    expect_empty("---\n");
    expect_empty("---\n...\n");
    expect_empty("~\n");
    expect_empty("{}\n");
    expect_empty("mirrors:\nconfigs:\n");
    expect_empty("mirrors: {}\nconfigs: {}\n");
    expect_empty("mirrors: ~\nconfigs: null\n");
}

/* Every error case: the message must hold each of the `want` strings (the
 * file:line and the key at least). */
struct bad_case {
    const char *text;
    const char *want[3];
};

static const struct bad_case bad_cases[] = {
    /* unknown keys, at every level */
    {"mirror:\n  docker.io: {}\n", {"reg.yaml:1: ", "unknown key mirror ", "expected mirrors or configs"}},
    {"mirrors:\n  docker.io:\n    endpoints: [\"https://m\"]\n",
     {"reg.yaml:3: ", "unknown key mirrors.\"docker.io\".endpoints", "expected endpoint or rewrite"}},
    {"configs:\n  h:\n    tsl: {}\n", {"reg.yaml:3: ", "unknown key configs.\"h\".tsl", "auth or tls"}},
    {"configs:\n  h:\n    auth:\n      pasword: x\n", {"reg.yaml:4: ", "unknown key configs.\"h\".auth.pasword"}},
    {"configs:\n  h:\n    tls:\n      insecure: true\n", {"reg.yaml:4: ", "unknown key configs.\"h\".tls.insecure"}},
    {"mirrors:\n  \"https://docker.io\": {}\n", {"reg.yaml:2: ", "mirrors.\"https://docker.io\"", "without a scheme"}},
    {"mirrors:\n  \"bad host\": {}\n", {"reg.yaml:2: ", "mirrors.\"bad host\"", "not a registry host"}},
    {"configs:\n  \"h:99999\": {}\n", {"reg.yaml:2: ", "configs.\"h:99999\""}},
    {"configs:\n  \"::1\": {}\n", {"reg.yaml:2: ", "configs.\"::1\""}},
    {"mirrors:\n  [a]: {}\n", {"reg.yaml:2: ", "keys must be plain strings"}},
    /* endpoints */
    {"mirrors:\n  docker.io:\n    endpoint:\n      - https://ok.example\n      - ftp://m.example\n",
     {"reg.yaml:5: ", "mirrors.\"docker.io\".endpoint[1]", "scheme other than http or https"}},
    {"mirrors:\n  docker.io:\n    endpoint: [\"mirror.example.com:5000\"]\n",
     {"reg.yaml:3: ", "endpoint[0]", "has no scheme"}},
    {"mirrors:\n  docker.io:\n    endpoint: [\"https://m.example/v2?x=1\"]\n", {"reg.yaml:3: ", "has a query"}},
    {"mirrors:\n  docker.io:\n    endpoint: [\"https://m.example/#top\"]\n", {"reg.yaml:3: ", "has a fragment"}},
    {"mirrors:\n  docker.io:\n    endpoint: [\"https://m.exa mple\"]\n", {"reg.yaml:3: ", "whitespace"}},
    {"mirrors:\n  docker.io:\n    endpoint: [\"https://m.example\\t\"]\n", {"reg.yaml:3: ", "control characters"}},
    {"mirrors:\n  docker.io:\n    endpoint: [\"https://m\\u00e9.example\"]\n", {"reg.yaml:3: ", "non-ASCII"}},
    {"mirrors:\n  docker.io:\n    endpoint: [\"https://\"]\n", {"reg.yaml:3: ", "no valid host"}},
    {"mirrors:\n  docker.io:\n    endpoint: [\"https://:5000\"]\n", {"reg.yaml:3: ", "no valid host"}},
    {"mirrors:\n  docker.io:\n    endpoint: [\"https://m.example:0\"]\n", {"reg.yaml:3: ", "no valid host"}},
    {"mirrors:\n  docker.io:\n    endpoint: [\"https://m.example:65536\"]\n", {"reg.yaml:3: ", "no valid host"}},
    {"mirrors:\n  docker.io:\n    endpoint: [\"https://[::1\"]\n", {"reg.yaml:3: ", "no valid host"}},
    {"mirrors:\n  docker.io:\n    endpoint: [\"https://-bad.example\"]\n", {"reg.yaml:3: ", "no valid host"}},
    {"mirrors:\n  docker.io:\n    endpoint: [\"https://m.example/a//b\"]\n", {"reg.yaml:3: ", "empty segment"}},
    {"mirrors:\n  docker.io:\n    endpoint: [\"https://m.example/a/../b\"]\n", {"reg.yaml:3: ", "\"..\" segment"}},
    {"mirrors:\n  docker.io:\n    endpoint: [\"https://m.example/a%zz\"]\n", {"reg.yaml:3: ", "percent-escape"}},
    {"mirrors:\n  docker.io:\n    endpoint: [\"https://m.example/a<b\"]\n", {"reg.yaml:3: ", "percent-encoded"}},
    {"mirrors:\n  docker.io:\n    endpoint:\n      -\n", {"reg.yaml:4: ", "endpoint[0] is empty"}},
    {"mirrors:\n  docker.io:\n    endpoint:\n      - {url: x}\n", {"reg.yaml:4: ", "endpoint[0] must be a URL"}},
    {"mirrors:\n  docker.io:\n    endpoint: {a: b}\n", {"reg.yaml:3: ", "endpoint takes a list of URLs"}},
    /* rewrites */
    {"mirrors:\n  docker.io:\n    rewrite:\n      \"^lib(\": \"x\"\n",
     {"reg.yaml:4: ", "mirrors.\"docker.io\".rewrite.\"^lib(\"", "invalid regular expression"}},
    {"mirrors:\n  docker.io:\n    rewrite:\n      \"^v\\\\d+/(.*)\": \"$1\"\n", {"reg.yaml:4: ", "[0-9]"}},
    {"mirrors:\n  docker.io:\n    rewrite:\n      \"(?i)^lib/(.*)\": \"$1\"\n", {"reg.yaml:4: ", "(?...)"}},
    {"mirrors:\n  docker.io:\n    rewrite:\n      \"^(.*?)/x\": \"$1\"\n", {"reg.yaml:4: ", "lazy"}},
    {"mirrors:\n  docker.io:\n    rewrite:\n      \"((a{100}){100})\": \"x\"\n", {"reg.yaml:4: ", "repeats too much"}},
    {"mirrors:\n  docker.io:\n    rewrite:\n      \"((a{,40}){,40})\": \"x\"\n", {"reg.yaml:4: ", "repeats too much"}},
    {"mirrors:\n  docker.io:\n    rewrite:\n      \"a{0000002000}\": \"x\"\n", {"reg.yaml:4: ", "repeats too much"}},
    {"mirrors:\n  docker.io:\n    rewrite:\n      \"^(.*)$\": \"x/$name\"\n", {"reg.yaml:4: ", "$$"}},
    {"mirrors:\n  docker.io:\n    rewrite:\n      \"^(.*)$\": \"x/$2\"\n",
     {"reg.yaml:4: ", "refers to group $2 but the pattern has 1 group"}},
    {"mirrors:\n  docker.io:\n    rewrite:\n      \"^(.*)$\":\n", {"reg.yaml:4: ", "needs a replacement"}},
    {"mirrors:\n  docker.io:\n    rewrite:\n      \"\": \"x\"\n", {"reg.yaml:4: ", "is empty"}},
    {"mirrors:\n  docker.io:\n    rewrite: [\"^a\", \"b\"]\n", {"reg.yaml:3: ", "rewrite takes a mapping"}},
    /* tls */
    {"configs:\n  h:\n    tls:\n      ca_file: certs/ca.pem\n",
     {"reg.yaml:4: ", "configs.\"h\".tls.ca_file", "not an absolute path"}},
    {"configs:\n  h:\n    tls:\n      cert_file: /c.pem\n",
     {"reg.yaml:4: ", "configs.\"h\".tls.cert_file is given without key_file"}},
    {"configs:\n  h:\n    tls:\n      key_file: /k.pem\n", {"reg.yaml:4: ", "key_file is given without cert_file"}},
    {"configs:\n  h:\n    tls:\n      insecure_skip_verify: maybe\n",
     {"reg.yaml:4: ", "tls.insecure_skip_verify", "not a boolean"}},
    {"configs:\n  h:\n    tls:\n      ca_file: [/a, /b]\n", {"reg.yaml:4: ", "takes a single value, not a list"}},
    /* auth */
    {"configs:\n  h:\n    auth:\n      password: p\n",
     {"reg.yaml:4: ", "configs.\"h\".auth.password is given without a username"}},
    {"configs:\n  h:\n    auth:\n      username: \"a:b\"\n", {"reg.yaml:4: ", "username must not contain ':'"}},
    {"configs:\n  h:\n    auth:\n      token: t1\n      identity_token: t2\n",
     {"reg.yaml:5: ", "identity token is given twice"}},
    {"configs:\n  h:\n    auth: {username: u}\n    auth: {username: v}\n",
     {"reg.yaml:4: ", "key configs.\"h\".auth is given twice"}},
    /* duplicates */
    {"mirrors: {}\nmirrors: {}\n", {"reg.yaml:2: ", "key mirrors is given twice"}},
    {"mirrors:\n  docker.io: {}\n  Docker.io: {}\n", {"reg.yaml:3: ", "key mirrors.\"docker.io\" is given twice"}},
    {"mirrors:\n  docker.io:\n    endpoint: []\n    endpoint: []\n",
     {"reg.yaml:4: ", "mirrors.\"docker.io\".endpoint is given twice"}},
    {"mirrors:\n  docker.io:\n    rewrite:\n      \"^a\": b\n      \"^a\": c\n",
     {"reg.yaml:5: ", "rewrite.\"^a\" is given twice"}},
    {"configs:\n  h.example: {}\n  \"H.example\": {}\n", {"reg.yaml:3: ", "configs.\"h.example\" is given twice"}},
    /* YAML features and shapes refused */
    {"mirrors:\n  docker.io: &m\n    endpoint: [\"https://m\"]\n  quay.io: *m\n",
     {"reg.yaml:4: ", "mirrors.\"quay.io\"", "aliases are not supported"}},
    {"mirrors: {}\n---\nconfigs: {}\n", {"reg.yaml:2: ", "only one YAML document"}},
    {"- mirrors\n", {"reg.yaml:1: ", "must be a mapping"}},
    {"just text\n", {"reg.yaml:1: ", "must be a mapping"}},
    {"mirrors:\n  - docker.io\n", {"reg.yaml:1: ", "key mirrors takes a mapping of registry names"}},
    {"mirrors:\n  docker.io: [https://m]\n", {"reg.yaml:2: ", "key mirrors.\"docker.io\" takes a mapping"}},
    {"mirrors:\n  docker.io:\n    endpoint: [\"https://m\"\n", {"reg.yaml:", "invalid YAML"}},
    {"mirrors:\n\tdocker.io: {}\n", {"reg.yaml:2: ", "invalid YAML"}},
    {"configs:\n  h:\n    tls:\n      ca_file: \"/a\\0b\"\n", {"reg.yaml:4: ", "NUL byte"}},
};

static void test_errors(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++) {
        const struct bad_case *b = &bad_cases[i];
        struct registries_config c;
        err_t err = ERR_INIT;
        int r = load(&c, b->text, &err);
        CHECK_MSG(r < 0, "case %zu accepted:\n%s", i, b->text);
        if (r >= 0) {
            registries_config_free(&c);
            continue;
        }
        CHECK_MSG(c.n_mirrors == 0 && c.mirrors == NULL && c.n_configs == 0 && c.configs == NULL,
                  "case %zu: output not left empty", i);
        CHECK_MSG(err.code == ERR_INVALID_ARGUMENT, "case %zu: code %d", i, err.code);
        for (size_t k = 0; k < ARRAY_SIZE(b->want) && b->want[k]; k++)
            CHECK_MSG(err.msg && strstr(err.msg, b->want[k]), "case %zu: \"%s\" lacks \"%s\"", i,
                      err.msg ? err.msg : "(null)", b->want[k]);
        err_clear(&err);
    }
}

static void test_limits(void)
{
    struct registries_config c;
    err_t err = ERR_INIT;

    /* Over 1 MiB is refused before parsing; a NUL byte too. */
    size_t big = 1024 * 1024 + 1;
    char *text = malloc(big);
    memset(text, '#', big);
    CHECK_EQ_INT(registries_config_load_text(NAME, text, big, &c, &err), -EFBIG);
    CHECK_CONTAINS(err.msg, "larger than 1048576 bytes");
    /* Exactly 1 MiB of comment is fine. */
    CHECK_OK(registries_config_load_text(NAME, text, big - 1, &c, &err));
    registries_config_free(&c);
    free(text);
    CHECK(registries_config_load_text(NAME, "mirrors: {}\n\0", 13, &c, &err) < 0);
    CHECK_CONTAINS(err.msg, "NUL byte");

    /* 65 endpoints are too many; 64 are fine. */
    char *t = malloc(65 * 64 + 128);
    for (int n = 64; n <= 65; n++) {
        size_t o = (size_t)sprintf(t, "mirrors:\n  docker.io:\n    endpoint:\n");
        for (int i = 0; i < n; i++)
            o += (size_t)sprintf(t + o, "      - https://m%d.example\n", i);
        int r = load(&c, t, &err);
        if (n == 64) {
            CHECK_OK(r);
            registries_config_free(&c);
        } else {
            CHECK(r < 0);
            CHECK_CONTAINS(err.msg, "reg.yaml:68: ");
            CHECK_CONTAINS(err.msg, "more than 64 endpoints");
        }
    }
    free(t);

    /* The regex budget is per file: 256 rewrites spread over mirrors... */
    t = malloc(64 * 1024);
    size_t o2 = (size_t)sprintf(t, "mirrors:\n");
    for (int m = 0; m < 5; m++) {
        o2 += (size_t)sprintf(t + o2, "  m%d.example:\n    rewrite:\n", m);
        for (int i = 0; i < 60; i++)
            o2 += (size_t)sprintf(t + o2, "      \"^a%d/\": \"b/\"\n", i);
    }
    CHECK(load(&c, t, &err) < 0);
    CHECK_CONTAINS(err.msg, "reg.yaml:268: "); /* the 257th: line 4 + 62 * 4 + 16 */
    CHECK_CONTAINS(err.msg, "at most 256 rewrites");
    /* ...and 2048 counted repetitions in all. */
    CHECK_OK(load(&c, "mirrors:\n  a.example:\n    rewrite:\n      \"x{1000}\": y\n      \"z{1000}\": y\n", &err));
    registries_config_free(&c);
    CHECK(load(&c,
               "mirrors:\n  a.example:\n    rewrite:\n      \"x{1000}\": y\n      \"z{1000}\": y\n"
               "  b.example:\n    rewrite:\n      \"w{100}\": y\n",
               &err) < 0);
    CHECK_CONTAINS(err.msg, "reg.yaml:8: ");
    CHECK_CONTAINS(err.msg, "counted repetitions in all");
    free(t);

    /* An endpoint of 2049 characters is refused; 2048 is fine. */
    char url[2100], doc[2300];
    for (size_t len = 2048; len <= 2049; len++) {
        strcpy(url, "https://m.example/");
        size_t o = strlen(url);
        while (o < len)
            url[o++] = 'a';
        url[len] = '\0';
        snprintf(doc, sizeof(doc), "mirrors:\n  docker.io:\n    endpoint: [\"%s\"]\n", url);
        int r = load(&c, doc, &err);
        if (len == 2048) {
            CHECK_OK(r);
            registries_config_free(&c);
        } else {
            CHECK(r < 0);
            CHECK_CONTAINS(err.msg, "longer than 2048");
        }
    }

    /* Deeply nested flow collections stop at the first wrong shape. */
    size_t depth = 100000;
    char *deep = malloc(depth * 2 + 32);
    size_t o = (size_t)sprintf(deep, "mirrors: ");
    for (size_t i = 0; i < depth; i++)
        deep[o++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[o++] = ']';
    deep[o] = '\0';
    CHECK(load(&c, deep, &err) < 0);
    CHECK_CONTAINS(err.msg, "key mirrors takes a mapping");
    free(deep);

    /* A long unknown key is quoted cut short and escaped. */
    char key[1100];
    key[0] = '"';
    memset(key + 1, 'k', 1000);
    memcpy(key + 4, "\\x01", 4);
    strcpy(key + 1001, "\": 1\n");
    CHECK(load(&c, key, &err) < 0);
    CHECK_CONTAINS(err.msg, "unknown key kkk\\x01kkk");
    CHECK_CONTAINS(err.msg, "...");
    CHECK(strlen(err.msg) < 200);
    err_clear(&err);
}

/* Credentials never appear in a message, whatever is wrong. */
static void test_secrets_not_in_messages(void)
{
    static const char *const cases[] = {
        /* base64 that is not base64 */
        "configs:\n  h:\n    auth:\n      auth: \"S3cr3tPa55!!\"\n",
        /* base64 of "S3cr3tPa55" (no colon) */
        "configs:\n  h:\n    auth:\n      auth: UzNjcjN0UGE1NQ==\n",
        /* base64 of "u:S3cr3tPa55" disagreeing with the password given */
        "configs:\n  h:\n    auth:\n      auth: dTpTM2NyM3RQYTU1\n      username: u\n      password: other\n",
        /* a password without username */
        "configs:\n  h:\n    auth:\n      password: S3cr3tPa55\n",
        /* auth given as a plain value instead of a mapping */
        "configs:\n  h:\n    auth: S3cr3tPa55\n",
        /* a password given as a list */
        "configs:\n  h:\n    auth:\n      username: u\n      password: [S3cr3tPa55]\n",
        /* credentials in an endpoint URL */
        "mirrors:\n  docker.io:\n    endpoint: [\"https://user:S3cr3tPa55@m.example\"]\n",
        /* a token given twice */
        "configs:\n  h:\n    auth:\n      token: S3cr3tPa55\n      identitytoken: S3cr3tPa55\n",
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct registries_config c;
        err_t err = ERR_INIT;
        int r = load(&c, cases[i], &err);
        CHECK_MSG(r < 0, "secret case %zu accepted", i);
        if (r == 0) {
            registries_config_free(&c);
            continue;
        }
        CHECK_MSG(err.msg && strstr(err.msg, "reg.yaml:"), "secret case %zu: %s", i, err.msg ? err.msg : "");
        CHECK_MSG(err.msg && !strstr(err.msg, "S3cr3tPa55") && !strstr(err.msg, "UzNjcjN0UGE1NQ") &&
                      !strstr(err.msg, "dTpTM2NyM3RQYTU1"),
                  "secret case %zu leaks the secret: %s", i, err.msg ? err.msg : "");
        err_clear(&err);
    }
}

struct want_ep {
    const char *url, *host, *repository;
    bool is_mirror, plain_http;
};

/* registries_endpoints() gives exactly `want`, in order. */
static void check_endpoints(const struct registries_config *c, const char *registry, const char *repository,
                            const struct want_ep *want, size_t n_want)
{
    struct registry_endpoint *e = NULL;
    size_t n = 99;
    err_t err = ERR_INIT;
    int r = registries_endpoints(c, registry, repository, &e, &n, &err);
    CHECK_MSG(r == 0, "endpoints of %s/%s: %s", registry, repository, err.msg ? err.msg : "");
    CHECK_MSG(n == n_want, "endpoints of %s/%s: %zu, not %zu", registry, repository, n, n_want);
    for (size_t i = 0; r == 0 && i < n && i < n_want; i++) {
        CHECK_MSG(strcmp(e[i].url, want[i].url) == 0, "%s/%s [%zu]: url %s, not %s", registry, repository, i, e[i].url,
                  want[i].url);
        CHECK_MSG(strcmp(e[i].host, want[i].host) == 0, "%s/%s [%zu]: host %s, not %s", registry, repository, i,
                  e[i].host, want[i].host);
        CHECK_MSG(strcmp(e[i].repository, want[i].repository) == 0, "%s/%s [%zu]: repository %s, not %s", registry,
                  repository, i, e[i].repository, want[i].repository);
        CHECK_MSG(e[i].is_mirror == want[i].is_mirror, "%s/%s [%zu]: is_mirror %d", registry, repository, i,
                  e[i].is_mirror);
        CHECK_MSG(e[i].plain_http == want[i].plain_http, "%s/%s [%zu]: plain_http %d", registry, repository, i,
                  e[i].plain_http);
    }
    registry_endpoints_free(e, n);
    err_clear(&err);
}

#define CHECK_ENDPOINTS(c, reg, repo, ...)                                                                             \
    do {                                                                                                               \
        const struct want_ep w_[] = {__VA_ARGS__};                                                                     \
        check_endpoints((c), (reg), (repo), w_, ARRAY_SIZE(w_));                                                       \
    } while (0)

static void test_default_endpoints(void)
{
    struct registries_config empty = {0};
    /* With no configuration (NULL or empty): only the default endpoint. */
    CHECK_ENDPOINTS(NULL, "docker.io", "library/busybox",
                    {"https://registry-1.docker.io", "registry-1.docker.io", "library/busybox", false, false});
    CHECK_ENDPOINTS(&empty, "docker.io", "library/busybox",
                    {"https://registry-1.docker.io", "registry-1.docker.io", "library/busybox", false, false});
    CHECK_ENDPOINTS(NULL, "localhost:5000", "app", {"http://localhost:5000", "localhost:5000", "app", false, true});
    CHECK_ENDPOINTS(NULL, "localhost", "app", {"http://localhost", "localhost", "app", false, true});
    CHECK_ENDPOINTS(NULL, "LocalHost:5000", "app", {"http://localhost:5000", "localhost:5000", "app", false, true});
    CHECK_ENDPOINTS(NULL, "127.0.0.1:5000", "app", {"http://127.0.0.1:5000", "127.0.0.1:5000", "app", false, true});
    CHECK_ENDPOINTS(NULL, "127.4.5.6", "a/b", {"http://127.4.5.6", "127.4.5.6", "a/b", false, true});
    CHECK_ENDPOINTS(NULL, "[::1]:5000", "app", {"http://[::1]:5000", "[::1]:5000", "app", false, true});
    CHECK_ENDPOINTS(NULL, "[::1]", "app", {"http://[::1]", "[::1]", "app", false, true});
    CHECK_ENDPOINTS(NULL, "myreg.example", "team/app",
                    {"https://myreg.example", "myreg.example", "team/app", false, false});
    CHECK_ENDPOINTS(NULL, "myreg.example:8443", "app",
                    {"https://myreg.example:8443", "myreg.example:8443", "app", false, false});
    /* Not loopback: these stay on https. */
    CHECK_ENDPOINTS(NULL, "128.0.0.1", "app", {"https://128.0.0.1", "128.0.0.1", "app", false, false});
    CHECK_ENDPOINTS(NULL, "localhost.example.com", "app",
                    {"https://localhost.example.com", "localhost.example.com", "app", false, false});
    CHECK_ENDPOINTS(NULL, "[::2]:5000", "app", {"https://[::2]:5000", "[::2]:5000", "app", false, false});
    CHECK_ENDPOINTS(NULL, "10.0.0.1:5000", "app", {"https://10.0.0.1:5000", "10.0.0.1:5000", "app", false, false});

    /* Hostile or malformed arguments are refused with a message. */
    static const char *const bad_registries[] = {"", "https://docker.io", "bad host", "a/b", "h:0", "::1", "[zz]:1"};
    static const char *const bad_repositories[] = {
        "", "Library/busybox", "../etc", "a//b", "/a", "a/", "a/./b", "a/-b", "a b", "a\nb", "a%2fb"};
    struct registry_endpoint *e;
    size_t n;
    err_t err = ERR_INIT;
    for (size_t i = 0; i < ARRAY_SIZE(bad_registries); i++) {
        CHECK_MSG(registries_endpoints(NULL, bad_registries[i], "app", &e, &n, &err) == -EINVAL,
                  "registry \"%s\" accepted", bad_registries[i]);
        CHECK(e == NULL && n == 0);
        CHECK_CONTAINS(err.msg, "registry");
        CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    }
    for (size_t i = 0; i < ARRAY_SIZE(bad_repositories); i++) {
        CHECK_MSG(registries_endpoints(NULL, "docker.io", bad_repositories[i], &e, &n, &err) == -EINVAL,
                  "repository \"%s\" accepted", bad_repositories[i]);
        CHECK_CONTAINS(err.msg, "repository");
    }
    /* A control character in the argument is escaped in the message. */
    CHECK(registries_endpoints(NULL, "docker.io", "a\nb", &e, &n, &err) < 0);
    CHECK(err.msg && !strchr(err.msg, '\n'));
    CHECK(registries_endpoints(NULL, NULL, "app", &e, &n, &err) < 0);
    CHECK(registries_endpoints(NULL, "docker.io", NULL, &e, &n, &err) < 0);
    char long_repo[1100];
    memset(long_repo, 'a', 1025);
    long_repo[1025] = '\0';
    CHECK(registries_endpoints(NULL, "docker.io", long_repo, &e, &n, &err) < 0);
    long_repo[1024] = '\0';
    CHECK_OK(registries_endpoints(NULL, "docker.io", long_repo, &e, &n, &err));
    registry_endpoints_free(e, n);
    err_clear(&err);
}

static void test_mirror_endpoints(void)
{
    struct registries_config c;
    err_t err = ERR_INIT;
    CHECK_OK(load(&c, full_example, &err));

    /* docker.io: its own mirrors with the rewrite, then the default. */
    CHECK_ENDPOINTS(
        &c, "docker.io", "library/busybox",
        {"https://mirror.example.com:5000", "mirror.example.com:5000", "mirrored/library/busybox", true, false},
        {"http://10.0.0.5:5000", "10.0.0.5:5000", "mirrored/library/busybox", true, true},
        {"https://registry-1.docker.io", "registry-1.docker.io", "library/busybox", false, false});
    /* A path the rewrite does not match stays as it is. */
    CHECK_ENDPOINTS(&c, "docker.io", "rancher/pause",
                    {"https://mirror.example.com:5000", "mirror.example.com:5000", "rancher/pause", true, false},
                    {"http://10.0.0.5:5000", "10.0.0.5:5000", "rancher/pause", true, true},
                    {"https://registry-1.docker.io", "registry-1.docker.io", "rancher/pause", false, false});
    /* Registries without their own entry get "*"; case does not matter. */
    CHECK_ENDPOINTS(&c, "quay.io", "coreos/etcd",
                    {"https://catch-all.example.com", "catch-all.example.com", "coreos/etcd", true, false},
                    {"https://quay.io", "quay.io", "coreos/etcd", false, false});
    CHECK_ENDPOINTS(
        &c, "DOCKER.IO", "library/busybox",
        {"https://mirror.example.com:5000", "mirror.example.com:5000", "mirrored/library/busybox", true, false},
        {"http://10.0.0.5:5000", "10.0.0.5:5000", "mirrored/library/busybox", true, true},
        {"https://registry-1.docker.io", "registry-1.docker.io", "library/busybox", false, false});
    CHECK_ENDPOINTS(&c, "localhost:5000", "app",
                    {"https://catch-all.example.com", "catch-all.example.com", "app", true, false},
                    {"http://localhost:5000", "localhost:5000", "app", false, true});
    registries_config_free(&c);

    /* An entry of its own, even without endpoints, shadows "*"; the default
     * already listed is not added again, gets no rewrite and keeps its place;
     * duplicate endpoints are tried once; a listed endpoint on the registry's
     * own host is not a mirror; a path prefix is kept. */
    CHECK_OK(load(&c,
                  "mirrors:\n"
                  "  \"*\":\n"
                  "    endpoint: [\"https://star.example\"]\n"
                  "  quay.io: {}\n"
                  "  docker.io:\n"
                  "    endpoint:\n"
                  "      - https://registry-1.docker.io/v2/\n"
                  "      - https://m.example/cache/docker/v2\n"
                  "      - https://M.example/cache/docker\n"
                  "    rewrite:\n"
                  "      \"^library/\": \"lib/\"\n"
                  "  reg.example:5000:\n"
                  "    endpoint: [\"http://reg.example:5000\"]\n",
                  &err));
    CHECK_ENDPOINTS(&c, "quay.io", "a/b", {"https://quay.io", "quay.io", "a/b", false, false});
    CHECK_ENDPOINTS(&c, "docker.io", "library/alpine",
                    {"https://registry-1.docker.io", "registry-1.docker.io", "library/alpine", false, false},
                    {"https://m.example/cache/docker", "m.example", "lib/alpine", true, false});
    CHECK_ENDPOINTS(&c, "reg.example:5000", "app", {"http://reg.example:5000", "reg.example:5000", "app", false, true},
                    {"https://reg.example:5000", "reg.example:5000", "app", false, false});
    registries_config_free(&c);
    err_clear(&err);
}

static void test_rewrites(void)
{
    struct registries_config c;
    err_t err = ERR_INIT;
    int r = load(&c,
                 "mirrors:\n"
                 "  groups.example:\n"
                 "    endpoint: [\"https://m.example\"]\n"
                 "    rewrite:\n"
                 "      \"^([a-z]+)/([a-z]+)$\": \"$2/$1/${1}x\"\n"
                 "  dollar.example:\n"
                 "    endpoint: [\"https://m.example\"]\n"
                 "    rewrite:\n"
                 "      \"^(.*)$\": \"a$$b/$1\"\n" /* "$" is not valid in a path: skipped */
                 "  whole.example:\n"
                 "    endpoint: [\"https://m.example\"]\n"
                 "    rewrite:\n"
                 "      \"^.*$\": \"mirror/$0\"\n"
                 "  order.example:\n"
                 "    endpoint: [\"https://m.example\"]\n"
                 "    rewrite:\n"
                 "      \"^x/(.*)\": \"BAD/$1\"\n"  /* invalid result: skipped for the next */
                 "      \"^x/(.*)\": \"good/$1\"\n" /* a duplicate pattern... */
                 ,
                 &err);
    CHECK(r < 0); /* ...is an error */
    CHECK_CONTAINS(err.msg, "reg.yaml:18: ");
    CHECK_CONTAINS(err.msg, "is given twice");

    r = load(&c,
             "mirrors:\n"
             "  groups.example:\n"
             "    endpoint: [\"https://m.example\"]\n"
             "    rewrite:\n"
             "      \"^([a-z]+)/([a-z]+)$\": \"$2/$1/${1}x\"\n"
             "  dollar.example:\n"
             "    endpoint: [\"https://m.example\"]\n"
             "    rewrite:\n"
             "      \"^(.*)$\": \"a$$b/$1\"\n"
             "  whole.example:\n"
             "    endpoint: [\"https://m.example\"]\n"
             "    rewrite:\n"
             "      \"^.*$\": \"mirror/$0\"\n"
             "  order.example:\n"
             "    endpoint: [\"https://m.example\"]\n"
             "    rewrite:\n"
             "      \"^x/(.*)\": \"BAD/$1\"\n"
             "      \"^x/([a-z]*)\": \"good/$1\"\n"
             "      \"^x/\": \"never/\"\n"
             "  all.example:\n"
             "    endpoint: [\"https://m.example\"]\n"
             "    rewrite:\n"
             "      \"_\": \"-\"\n"
             "  empty.example:\n"
             "    endpoint: [\"https://m.example\"]\n"
             "    rewrite:\n"
             "      \"x*\": \"z\"\n"
             "  prefix.example:\n"
             "    endpoint: [\"https://m.example\"]\n"
             "    rewrite:\n"
             "      \"^\": \"proxy/\"\n"
             "  strip.example:\n"
             "    endpoint: [\"https://m.example\"]\n"
             "    rewrite:\n"
             "      \"^library/\": \"\"\n"
             "      \"^(.*)/(.*)$\": \"$1//$2\"\n"
             "  brackets.example:\n"
             "    endpoint: [\"https://m.example\"]\n"
             "    rewrite:\n"
             "      \"^([[:alpha:]]+)[.]v[0-9]{1,3}/(.*)\": \"$1/$2\"\n"
             "  long.example:\n"
             "    endpoint: [\"https://m.example\"]\n"
             "    rewrite:\n"
             "      \"(.)\": \"$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1$1\"\n",
             &err);
    CHECK_MSG(r == 0, "rewrites: %s", err.msg ? err.msg : "");
    if (r < 0) {
        err_clear(&err);
        return;
    }
    log_set_level(LOG_LEVEL_ERROR); /* skipped rewrites warn */
#define MIRRORED(reg, in, out)                                                                                         \
    CHECK_ENDPOINTS(&c, reg, in, {"https://m.example", "m.example", out, true, false},                                 \
                    {"https://" reg, reg, in, false, false})
    MIRRORED("groups.example", "team/app", "app/team/teamx");
    MIRRORED("groups.example", "a/b/c", "a/b/c"); /* no match */
    MIRRORED("dollar.example", "app", "app");     /* "a$b/app" is not a path: original kept */
    MIRRORED("whole.example", "team/app", "mirror/team/app");
    MIRRORED("order.example", "x/app", "good/app");       /* first valid result wins */
    MIRRORED("order.example", "x/app.v2", "good/app.v2"); /* "good/app" + the unmatched ".v2" */
    MIRRORED("all.example", "a_b_c/d_e", "a-b-c/d-e");    /* every match replaced */
    MIRRORED("empty.example", "ab", "zazbz");             /* empty matches as Go's ReplaceAll */
    MIRRORED("empty.example", "axxb", "zazbz");
    MIRRORED("prefix.example", "library/busybox", "proxy/library/busybox");
    MIRRORED("strip.example", "library/busybox", "busybox");
    MIRRORED("strip.example", "team/app", "team/app"); /* "team//app" is invalid: skipped */
    MIRRORED("brackets.example", "app.v12/x", "app/x");
    MIRRORED("long.example", "ab", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    /* A result over 1024 characters is not a path: original kept. */
    char repo[64];
    memset(repo, 'a', 30);
    repo[30] = '\0';
    MIRRORED("long.example", repo, repo);
#undef MIRRORED
    log_set_level(LOG_LEVEL_INFO);
    registries_config_free(&c);
    err_clear(&err);
}

static void test_host_config(void)
{
    struct registries_config c;
    err_t err = ERR_INIT;
    CHECK_OK(load(&c,
                  "configs:\n"
                  "  \"mirror.example.com:5000\": {auth: {username: port}}\n"
                  "  mirror.example.com: {auth: {username: bare}}\n"
                  "  other.example.com: {auth: {username: other}}\n"
                  "  docker.io: {auth: {username: hub}}\n"
                  "  \"[::1]\": {tls: {insecure_skip_verify: true}}\n",
                  &err));
#define USER_OF(host) (registries_host_config(&c, host) ? registries_host_config(&c, host)->auth.username : "(none)")
    CHECK_STREQ(USER_OF("mirror.example.com:5000"), "port");
    CHECK_STREQ(USER_OF("Mirror.Example.COM:5000"), "port");
    CHECK_STREQ(USER_OF("mirror.example.com:6000"), "bare"); /* no entry for this port: the bare host's */
    CHECK_STREQ(USER_OF("mirror.example.com"), "bare");
    CHECK_STREQ(USER_OF("other.example.com:443"), "other");
    CHECK_STREQ(USER_OF("registry-1.docker.io"), "hub"); /* docker.io's default endpoint */
    CHECK_STREQ(USER_OF("registry-1.docker.io:443"), "hub");
    CHECK_STREQ(USER_OF("docker.io"), "hub");
    CHECK(registries_host_config(&c, "index.docker.io") == NULL);
    CHECK(registries_host_config(&c, "example.com") == NULL);
    CHECK(registries_host_config(&c, "mirror.example.co") == NULL);
    CHECK(registries_host_config(&c, "") == NULL);
    CHECK(registries_host_config(&c, NULL) == NULL);
    CHECK(registries_host_config(NULL, "docker.io") == NULL);
    const struct registry_host_config *h = registries_host_config(&c, "[::1]:5000");
    CHECK(h && h->tls.insecure_skip_verify);
    registries_config_free(&c);

    /* "*" applies to every host without its own entry. */
    CHECK_OK(load(&c,
                  "configs:\n"
                  "  \"*\": {tls: {ca_file: /etc/ssl/corp.pem}}\n"
                  "  private.example: {auth: {username: me}}\n",
                  &err));
    h = registries_host_config(&c, "anything.example:5000");
    CHECK(h && h->tls.ca_file && strcmp(h->tls.ca_file, "/etc/ssl/corp.pem") == 0);
    h = registries_host_config(&c, "private.example");
    CHECK(h && h->auth.username && strcmp(h->auth.username, "me") == 0 && h->tls.ca_file == NULL);
    registries_config_free(&c);
#undef USER_OF

    /* An endpoint's host from registries_endpoints() finds its config. */
    CHECK_OK(load(&c, full_example, &err));
    struct registry_endpoint *e;
    size_t n;
    CHECK_OK(registries_endpoints(&c, "docker.io", "library/busybox", &e, &n, &err));
    CHECK(n == 3);
    if (n == 3) {
        h = registries_host_config(&c, e[0].host);
        CHECK(h && h->auth.password && strcmp(h->auth.password, "pass") == 0);
        CHECK(registries_host_config(&c, e[1].host) == NULL);
        CHECK(registries_host_config(&c, e[2].host) == NULL);
    }
    registry_endpoints_free(e, n);
    registries_config_free(&c);
    err_clear(&err);
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "we");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

static void test_load_file(void)
{
    char dir[] = "/tmp/edgecri-unit-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256], fifo[256];
    snprintf(path, sizeof(path), "%s/registries.yaml", dir);
    snprintf(fifo, sizeof(fifo), "%s/fifo.yaml", dir);
    struct registries_config c;
    err_t err = ERR_INIT;

    /* Missing: an empty configuration. */
    CHECK_OK(registries_config_load(path, &c, &err));
    CHECK(c.n_mirrors == 0 && c.n_configs == 0);
    registries_config_free(&c);

    write_file(path, full_example, strlen(full_example));
    CHECK_OK(registries_config_load(path, &c, &err));
    CHECK_EQ_U64(c.n_mirrors, 2);
    CHECK_EQ_U64(c.n_configs, 1);
    registries_config_free(&c);

    /* Errors name the real path and line. */
    write_file(path, "mirrors: {}\nconfig: {}\n", 23);
    CHECK(registries_config_load(path, &c, &err) < 0);
    char where[300];
    snprintf(where, sizeof(where), "%s:2: unknown key config", path);
    CHECK_CONTAINS(err.msg, where);

    /* Over 1 MiB. */
    size_t big = 1024 * 1024 + 10;
    char *text = malloc(big);
    memset(text, '\n', big);
    write_file(path, text, big);
    free(text);
    CHECK_EQ_INT(registries_config_load(path, &c, &err), -EFBIG);

    /* A directory, and a FIFO (which must not block). */
    CHECK(registries_config_load(dir, &c, &err) < 0);
    CHECK_CONTAINS(err.msg, "is a directory");
    CHECK(mkfifo(fifo, 0600) == 0);
    CHECK(registries_config_load(fifo, &c, &err) < 0);
    CHECK_CONTAINS(err.msg, "not a regular file");

    /* A path below a file. */
    char below[300];
    snprintf(below, sizeof(below), "%s/registries.yaml/x", dir);
    CHECK(registries_config_load(below, &c, &err) < 0);
    CHECK_CONTAINS(err.msg, below);

    unlink(fifo);
    unlink(path);
    rmdir(dir);
    err_clear(&err);
}

/* Hostile input: every prefix of real files, and random byte changes, must
 * load or fail cleanly (the sanitizer build checks for leaks and overruns). */
static void test_mangled_input(void)
{
    const char *const files[] = {full_example, k3s_file};
    size_t loaded = 0, failed = 0;
    for (size_t f = 0; f < ARRAY_SIZE(files); f++) {
        size_t len = strlen(files[f]);
        char *copy = malloc(len + 1);
        for (size_t cut = 0; cut <= len; cut++) {
            memcpy(copy, files[f], cut);
            struct registries_config c;
            err_t err = ERR_INIT;
            if (registries_config_load_text(NAME, copy, cut, &c, &err) == 0) {
                loaded++;
                registries_config_free(&c);
            } else {
                failed++;
                CHECK_MSG(err.msg && strncmp(err.msg, "reg.yaml:", 9) == 0, "cut %zu: %s", cut,
                          err.msg ? err.msg : "(null)");
            }
            err_clear(&err);
        }
        unsigned seed = 12345;
        static const char junk[] = "\"'[]{}:,-*&!|>%@#\\\n\t $/(){}?+.^x\x01\xff";
        for (int round = 0; round < 3000; round++) {
            memcpy(copy, files[f], len + 1);
            for (int k = 0; k < 3; k++) {
                seed = seed * 1103515245 + 12345;
                size_t at = (seed >> 8) % len;
                seed = seed * 1103515245 + 12345;
                copy[at] = junk[(seed >> 8) % (sizeof(junk) - 1)];
            }
            struct registries_config c;
            err_t err = ERR_INIT;
            if (registries_config_load_text(NAME, copy, len, &c, &err) == 0) {
                loaded++;
                /* Whatever loaded must resolve without trouble. */
                struct registry_endpoint *e;
                size_t n;
                if (registries_endpoints(&c, "docker.io", "library/busybox", &e, &n, &err) == 0)
                    registry_endpoints_free(e, n);
                registries_host_config(&c, "mirror.example.com:5000");
                registries_config_free(&c);
            } else {
                failed++;
                CHECK_MSG(err.msg != NULL, "mangled input failed without a message");
            }
            err_clear(&err);
        }
        free(copy);
    }
    CHECK(loaded > 0 && failed > 0);
}

int main(void)
{
    RUN(test_full_example);
    RUN(test_k3s_file);
    RUN(test_empty);
    RUN(test_errors);
    RUN(test_limits);
    RUN(test_secrets_not_in_messages);
    RUN(test_default_endpoints);
    RUN(test_mirror_endpoints);
    RUN(test_rewrites);
    RUN(test_host_config);
    RUN(test_load_file);
    log_set_level(LOG_LEVEL_ERROR);
    RUN(test_mangled_input);
    return unit_summary();
}
