#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/image_config.h"
#include "util/digest.h"
#include "unit.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

#define DIFF0 "sha256:3d24ee258efc3bfe4066a1a9fb83febf6dc0b1548dfe896161533668281c9f4f"
#define DIFF1 "sha256:a9fb83febf6dc0b1548dfe896161533668281c9f4f3d24ee258efc3bfe4066a1"
#define DIFF2 "sha256:1548dfe896161533668281c9f4f3d24ee258efc3bfe4066a1a9fb83febf6dc0b"
/* Chain IDs of DIFF0..2, computed outside this project (Python hashlib). */
#define CHAIN1 "sha256:9ede357f504983281499be9a5a3428842fd92f4e2dcc2ca8ed657e5c321f8517"
#define CHAIN2 "sha256:e08b298f336dcec44df97715bb5eb4184ef6fe170826342b1a4d21d754f0cd2c"

/* What `docker inspect`-era busybox configs look like: Docker's format with
 * nulls for unset lists, container_config, history. */
static const char busybox[] =
    "{\"architecture\":\"amd64\",\"config\":{\"Hostname\":\"\",\"Domainname\":\"\",\"User\":\"\","
    "\"AttachStdin\":false,\"AttachStdout\":false,\"AttachStderr\":false,\"Tty\":false,\"OpenStdin\":false,"
    "\"StdinOnce\":false,\"Env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"],"
    "\"Cmd\":[\"sh\"],\"Image\":\"sha256:b6e8ad7ec2c3a3e5a6b1c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8\","
    "\"Volumes\":null,\"WorkingDir\":\"\",\"Entrypoint\":null,\"OnBuild\":null,\"Labels\":null},"
    "\"container\":\"1a2b3c\",\"container_config\":{\"Hostname\":\"1a2b3c\",\"Cmd\":[\"/bin/sh\",\"-c\","
    "\"#(nop) \",\"CMD [\\\"sh\\\"]\"],\"Labels\":{}},\"created\":\"2023-07-18T23:19:33.655005962Z\","
    "\"docker_version\":\"20.10.23\",\"history\":[{\"created\":\"2023-07-18T23:19:33.538571854Z\","
    "\"created_by\":\"/bin/sh -c #(nop) ADD file:7e9002edaafd4e4579b65c8f0aaabde1aeb7fd3f8d95579f7fd3443cef785fd1 in"
    " / \"},{\"created\":\"2023-07-18T23:19:33.655005962Z\",\"created_by\":\"/bin/sh -c #(nop)  CMD [\\\"sh\\\"]\","
    "\"empty_layer\":true}],\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" DIFF0 "\"]}}";

/* An application image in OCI form, the way buildkit writes it. */
static const char app[] = "{\n"
                          "  \"created\": \"2024-03-01T10:00:00Z\",\n"
                          "  \"architecture\": \"arm64\",\n"
                          "  \"variant\": \"v8\",\n"
                          "  \"os\": \"linux\",\n"
                          "  \"config\": {\n"
                          "    \"User\": \"1000:1000\",\n"
                          "    \"ExposedPorts\": {\"8080/tcp\": {}, \"9090/udp\": {}},\n"
                          "    \"Env\": [\"PATH=/usr/local/bin:/usr/bin:/bin\", \"APP_ENV=production\", "
                          "\"GREETING=h\xc3\xa9llo w\\u00f6rld\", \"EMPTY=\"],\n"
                          "    \"Entrypoint\": [\"/usr/local/bin/app\", \"--config\", \"/etc/app/config.yaml\"],\n"
                          "    \"Cmd\": [\"serve\"],\n"
                          "    \"Volumes\": {\"/var/lib/app\": {}, \"/tmp/cache\": {}},\n"
                          "    \"WorkingDir\": \"/srv/app\",\n"
                          "    \"Labels\": {\n"
                          "      \"org.opencontainers.image.source\": \"https://example.com/app\",\n"
                          "      \"org.opencontainers.image.version\": \"1.2.3\",\n"
                          "      \"maintainer\": \"\"\n"
                          "    },\n"
                          "    \"StopSignal\": \"SIGTERM\",\n"
                          "    \"ArgsEscaped\": true,\n"
                          "    \"Healthcheck\": {\"Test\": [\"CMD\", \"/healthz\"], \"Interval\": 30000000000}\n"
                          "  },\n"
                          "  \"rootfs\": {\n"
                          "    \"type\": \"layers\",\n"
                          "    \"diff_ids\": [\"" DIFF0 "\", \"" DIFF1 "\", \"" DIFF2 "\"]\n"
                          "  },\n"
                          "  \"history\": [{\"created_by\": \"COPY . /srv/app\", \"comment\": \"buildkit\"}]\n"
                          "}\n";

/* The minimum the spec requires. */
static const char minimal[] = "{\"architecture\":\"riscv64\",\"os\":\"linux\","
                              "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";

static int parse(const char *json, struct image_config *c, err_t *err)
{
    return image_config_parse((const uint8_t *)json, strlen(json), c, err);
}

static char *replace(const char *base, const char *from, const char *to)
{
    const char *p = strstr(base, from);
    if (!p) {
        UNIT_FAIL("fixture lacks \"%s\"", from);
        return strdup(base);
    }
    char *s = NULL;
    if (asprintf(&s, "%.*s%s%s", (int)(p - base), base, to, p + strlen(from)) < 0)
        abort();
    return s;
}

static bool printable(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

static bool is_zero(const struct image_config *c)
{
    static const struct image_config zero;
    return memcmp(c, &zero, sizeof(zero)) == 0;
}

static void expect_fail_(int line, const char *json, size_t len, const char *needle)
{
    struct image_config c;
    memset(&c, 0x5a, sizeof(c));
    err_t err = ERR_INIT;
    int r = image_config_parse((const uint8_t *)json, len, &c, &err);
    unit_checks++;
    if (r != -EINVAL || err.code != ERR_INVALID_ARGUMENT) {
        UNIT_FAIL("line %d: expected INVALID_ARGUMENT, got %d (%s)", line, r, err.msg ? err.msg : "");
        if (r == 0)
            image_config_free(&c);
    } else if (!err.msg || !strstr(err.msg, needle) || !printable(err.msg) ||
               strncmp(err.msg, "invalid image config: ", 22) != 0) {
        UNIT_FAIL("line %d: message \"%s\" lacks \"%s\"", line, err.msg ? err.msg : "(null)", needle);
    } else if (!is_zero(&c)) {
        UNIT_FAIL("line %d: output not cleared on failure", line);
    }
    err_clear(&err);
}
#define EXPECT_FAIL(json, needle)        expect_fail_(__LINE__, json, strlen(json), needle)
#define EXPECT_FAIL_LEN(json, n, needle) expect_fail_(__LINE__, json, n, needle)

static void expect_fail_sub_(int line, const char *base, const char *from, const char *to, const char *needle)
{
    char *s = replace(base, from, to);
    expect_fail_(line, s, strlen(s), needle);
    free(s);
}
#define EXPECT_FAIL_SUB(base, from, to, needle) expect_fail_sub_(__LINE__, base, from, to, needle)

/* Parses base with one substitution, expecting success; the caller frees. */
static bool parse_sub_(int line, const char *base, const char *from, const char *to, struct image_config *c)
{
    char *s = replace(base, from, to);
    err_t err = ERR_INIT;
    int r = parse(s, c, &err);
    CHECK_MSG(r == 0, "line %d: %s", line, err.msg ? err.msg : "");
    err_clear(&err);
    free(s);
    return r == 0;
}
#define PARSE_SUB(base, from, to, c) parse_sub_(__LINE__, base, from, to, c)

static void test_busybox(void)
{
    struct image_config c;
    err_t err = ERR_INIT;
    CHECK_OK(parse(busybox, &c, &err));
    CHECK_STREQ(c.architecture, "amd64");
    CHECK_STREQ(c.os, "linux");
    CHECK(c.variant == NULL);
    CHECK_STREQ(c.created, "2023-07-18T23:19:33.655005962Z");
    CHECK(c.user == NULL); /* "" is unset */
    CHECK(c.working_dir == NULL);
    CHECK(c.stop_signal == NULL);
    CHECK_EQ_INT(c.n_env, 1);
    CHECK_STREQ(c.env[0], "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    CHECK(c.cmd_set);
    CHECK_EQ_INT(c.n_cmd, 1);
    CHECK_STREQ(c.cmd[0], "sh");
    CHECK(!c.entrypoint_set);
    CHECK_EQ_INT(c.n_entrypoint, 0);
    CHECK(c.entrypoint == NULL);
    CHECK_EQ_INT(c.n_labels, 0);
    CHECK_EQ_INT(c.n_volumes, 0);
    CHECK_EQ_INT(c.n_exposed_ports, 0);
    CHECK_EQ_INT(c.n_diff_ids, 1);
    CHECK_STREQ(c.diff_ids[0], DIFF0);
    image_config_free(&c);
    CHECK(is_zero(&c));
    image_config_free(&c); /* twice is harmless */
    image_config_free(NULL);
    err_clear(&err);
}

static void test_app(void)
{
    struct image_config c;
    err_t err = ERR_INIT;
    CHECK_OK(parse(app, &c, &err));
    CHECK_STREQ(c.architecture, "arm64");
    CHECK_STREQ(c.variant, "v8");
    CHECK_STREQ(c.user, "1000:1000");
    CHECK_EQ_INT(c.n_env, 4);
    CHECK_STREQ(c.env[1], "APP_ENV=production");
    CHECK_STREQ(c.env[2], "GREETING=h\xc3\xa9llo w\xc3\xb6rld");
    CHECK_STREQ(c.env[3], "EMPTY=");
    CHECK(c.entrypoint_set);
    CHECK_EQ_INT(c.n_entrypoint, 3);
    CHECK_STREQ(c.entrypoint[0], "/usr/local/bin/app");
    CHECK_STREQ(c.entrypoint[2], "/etc/app/config.yaml");
    CHECK(c.cmd_set);
    CHECK_EQ_INT(c.n_cmd, 1);
    CHECK_STREQ(c.cmd[0], "serve");
    CHECK_STREQ(c.working_dir, "/srv/app");
    CHECK_STREQ(c.stop_signal, "SIGTERM");
    CHECK_EQ_INT(c.n_labels, 3);
    CHECK_STREQ(c.labels_keys[0], "org.opencontainers.image.source");
    CHECK_STREQ(c.labels_values[0], "https://example.com/app");
    CHECK_STREQ(c.labels_keys[1], "org.opencontainers.image.version");
    CHECK_STREQ(c.labels_values[1], "1.2.3");
    CHECK_STREQ(c.labels_keys[2], "maintainer");
    CHECK_STREQ(c.labels_values[2], ""); /* label values keep "" */
    CHECK_EQ_INT(c.n_exposed_ports, 2);
    CHECK_STREQ(c.exposed_ports[0], "8080/tcp");
    CHECK_STREQ(c.exposed_ports[1], "9090/udp");
    CHECK_EQ_INT(c.n_volumes, 2);
    CHECK_STREQ(c.volumes[0], "/var/lib/app");
    CHECK_STREQ(c.volumes[1], "/tmp/cache");
    CHECK_EQ_INT(c.n_diff_ids, 3);
    CHECK_STREQ(c.diff_ids[2], DIFF2);
    image_config_free(&c);

    CHECK_OK(parse(minimal, &c, &err));
    CHECK_STREQ(c.architecture, "riscv64");
    CHECK_EQ_INT(c.n_diff_ids, 0);
    CHECK(c.diff_ids == NULL);
    CHECK(!c.cmd_set && !c.entrypoint_set);
    CHECK(c.env == NULL && c.created == NULL);
    image_config_free(&c);
    err_clear(&err);
}

static void test_null_vs_empty(void)
{
    struct image_config c;
    /* Cmd: [] is set and empty; null and absent are unset. */
    if (PARSE_SUB(app, "\"Cmd\": [\"serve\"]", "\"Cmd\": []", &c)) {
        CHECK(c.cmd_set);
        CHECK_EQ_INT(c.n_cmd, 0);
        CHECK(c.entrypoint_set);
        image_config_free(&c);
    }
    if (PARSE_SUB(app, "\"Cmd\": [\"serve\"]", "\"Cmd\": null", &c)) {
        CHECK(!c.cmd_set);
        CHECK_EQ_INT(c.n_cmd, 0);
        image_config_free(&c);
    }
    if (PARSE_SUB(app, "\"Cmd\": [\"serve\"],", "", &c)) {
        CHECK(!c.cmd_set);
        image_config_free(&c);
    }
    if (PARSE_SUB(app, "\"Entrypoint\": [\"/usr/local/bin/app\", \"--config\", \"/etc/app/config.yaml\"]",
                  "\"Entrypoint\": []", &c)) {
        CHECK(c.entrypoint_set);
        CHECK_EQ_INT(c.n_entrypoint, 0);
        CHECK(c.entrypoint == NULL);
        image_config_free(&c);
    }
    if (PARSE_SUB(app, "\"Entrypoint\": [\"/usr/local/bin/app\", \"--config\", \"/etc/app/config.yaml\"]",
                  "\"Entrypoint\": null", &c)) {
        CHECK(!c.entrypoint_set);
        image_config_free(&c);
    }
    /* Entries that are empty strings are kept ([""] is not []). */
    if (PARSE_SUB(app, "\"Cmd\": [\"serve\"]", "\"Cmd\": [\"\"]", &c)) {
        CHECK(c.cmd_set);
        CHECK_EQ_INT(c.n_cmd, 1);
        CHECK_STREQ(c.cmd[0], "");
        image_config_free(&c);
    }
    /* config: null, {} and absent: nothing set */
    static const char *const no_config[] = {"\"config\": null, \"x\": {", "\"config\": {}, \"x\": {", "\"x\": {"};
    for (size_t i = 0; i < N_ELEMS(no_config); i++) {
        if (PARSE_SUB(app, "\"config\": {", no_config[i], &c)) {
            CHECK(!c.cmd_set && !c.entrypoint_set);
            CHECK(c.user == NULL && c.env == NULL && c.working_dir == NULL);
            CHECK_EQ_INT(c.n_labels + c.n_volumes + c.n_exposed_ports + c.n_env, 0);
            CHECK_EQ_INT(c.n_diff_ids, 3);
            image_config_free(&c);
        }
    }
}

static void test_nulls(void)
{
    static const char nulls[] = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"variant\":null,\"created\":null,"
                                "\"config\":{\"User\":null,\"Env\":null,\"Entrypoint\":null,\"Cmd\":null,"
                                "\"WorkingDir\":null,\"StopSignal\":null,\"Labels\":null,\"ExposedPorts\":null,"
                                "\"Volumes\":null},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" DIFF0 "\"]}}";
    struct image_config c;
    err_t err = ERR_INIT;
    CHECK_OK(parse(nulls, &c, &err));
    CHECK(c.variant == NULL && c.created == NULL && c.user == NULL && c.env == NULL && c.working_dir == NULL);
    CHECK(!c.cmd_set && !c.entrypoint_set);
    CHECK_EQ_INT(c.n_labels + c.n_exposed_ports + c.n_volumes, 0);
    image_config_free(&c);
    err_clear(&err);
}

static void test_rootfs(void)
{
    EXPECT_FAIL_SUB(minimal, ",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}", "", "rootfs is missing");
    EXPECT_FAIL_SUB(minimal, "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}", "\"rootfs\":null",
                    "rootfs is missing");
    EXPECT_FAIL_SUB(minimal, "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}", "\"rootfs\":[]",
                    "rootfs must be an object");
    EXPECT_FAIL_SUB(minimal, "\"type\":\"layers\",", "", "rootfs.type is missing");
    EXPECT_FAIL_SUB(minimal, "\"type\":\"layers\"", "\"type\":\"layer\"", "rootfs.type is \"layer\", want \"layers\"");
    EXPECT_FAIL_SUB(minimal, "\"type\":\"layers\"", "\"type\":\"Layers\"", "want \"layers\"");
    EXPECT_FAIL_SUB(minimal, "\"type\":\"layers\"", "\"type\":\"\"", "want \"layers\"");
    EXPECT_FAIL_SUB(minimal, "\"type\":\"layers\"", "\"type\":5", "rootfs.type must be a string");
    EXPECT_FAIL_SUB(minimal, "\"type\":\"layers\"", "\"type\":null", "rootfs.type must be a string");
    EXPECT_FAIL_SUB(minimal, ",\"diff_ids\":[]", "", "rootfs.diff_ids is missing");
    EXPECT_FAIL_SUB(minimal, "\"diff_ids\":[]", "\"diff_ids\":null", "rootfs.diff_ids is missing");
    EXPECT_FAIL_SUB(minimal, "\"diff_ids\":[]", "\"diff_ids\":\"" DIFF0 "\"",
                    "rootfs.diff_ids must be an array of digests");
    EXPECT_FAIL_SUB(minimal, "\"diff_ids\":[]", "\"diff_ids\":{}", "must be an array");
    EXPECT_FAIL_SUB(minimal, "\"diff_ids\":[]", "\"diff_ids\":[5]", "rootfs.diff_ids[0] must be a string");
    EXPECT_FAIL_SUB(minimal, "\"diff_ids\":[]", "\"diff_ids\":[\"" DIFF0 "\",null]",
                    "rootfs.diff_ids[1] must be a string");

    static const char *const bad[] = {
        "",
        "sha256:",
        "sha256:abc",
        "3d24ee258efc3bfe4066a1a9fb83febf6dc0b1548dfe896161533668281c9f4f",
        "sha256:3D24EE258EFC3BFE4066A1A9FB83FEBF6DC0B1548DFE896161533668281C9F4F",
        "sha256:3d24ee258efc3bfe4066a1a9fb83febf6dc0b1548dfe896161533668281c9f4f ",
        "sha256:3d24ee258efc3bfe4066a1a9fb83febf6dc0b1548dfe896161533668281c9f4",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "sha256:../../etc",
    };
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        char to[300];
        snprintf(to, sizeof(to), "\"diff_ids\":[\"" DIFF0 "\",\"%s\"]", bad[i]);
        EXPECT_FAIL_SUB(minimal, "\"diff_ids\":[]", to, "rootfs.diff_ids[1]");
        EXPECT_FAIL_SUB(minimal, "\"diff_ids\":[]", to, "is not a valid digest");
    }
    EXPECT_FAIL_SUB(minimal, "\"diff_ids\":[]", "\"diff_ids\":[\"sha256:\\u001b]0;pwned\\u0007\"]",
                    "\"sha256:\\x1b]0;pwned\\x07\" is not a valid digest");

    /* 1000 layers is the limit */
    for (size_t n = 1000; n <= 1001; n++) {
        size_t cap = 128 + n * 80;
        char *s = malloc(cap);
        size_t o = (size_t)snprintf(s, cap,
                                    "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":"
                                    "{\"type\":\"layers\",\"diff_ids\":[");
        for (size_t i = 0; i < n; i++) {
            char d[DIGEST_MAX_LEN + 1];
            digest_buffer(DIGEST_SHA256, &i, sizeof(i), d);
            o += (size_t)snprintf(s + o, cap - o, "%s\"%s\"", i ? "," : "", d);
        }
        snprintf(s + o, cap - o, "]}}");
        if (n == 1000) {
            struct image_config c;
            err_t err = ERR_INIT;
            CHECK_OK(parse(s, &c, &err));
            CHECK_EQ_INT(c.n_diff_ids, 1000);
            char **chain = NULL;
            CHECK_OK(image_config_chain_ids(&c, &chain, &err));
            CHECK(chain && digest_valid(chain[999]));
            image_config_free_strv(chain, c.n_diff_ids);
            image_config_free(&c);
            err_clear(&err);
        } else {
            EXPECT_FAIL(s, "rootfs.diff_ids has 1001 entries (at most 1000)");
        }
        free(s);
    }
}

static void test_wrong_types(void)
{
    /* required platform fields */
    EXPECT_FAIL_SUB(minimal, "\"architecture\":\"riscv64\",", "", "architecture is missing");
    EXPECT_FAIL_SUB(minimal, "\"architecture\":\"riscv64\"", "\"architecture\":null", "architecture is missing");
    EXPECT_FAIL_SUB(minimal, "\"architecture\":\"riscv64\"", "\"architecture\":\"\"", "architecture is empty");
    EXPECT_FAIL_SUB(minimal, "\"architecture\":\"riscv64\"", "\"architecture\":64", "architecture must be a string");
    EXPECT_FAIL_SUB(minimal, "\"os\":\"linux\",", "", "os is missing");
    EXPECT_FAIL_SUB(minimal, "\"os\":\"linux\"", "\"os\":[\"linux\"]", "os must be a string");
    EXPECT_FAIL_SUB(minimal, "\"os\":\"linux\"", "\"os\":\"linux\",\"variant\":7", "variant must be a string");
    EXPECT_FAIL_SUB(minimal, "\"os\":\"linux\"", "\"os\":\"linux\",\"created\":1700000000", "created must be a string");
    char longv[300];
    memset(longv, 'v', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    char to[400];
    snprintf(to, sizeof(to), "\"os\":\"linux\",\"variant\":\"%s\"", longv);
    EXPECT_FAIL_SUB(minimal, "\"os\":\"linux\"", to, "variant is too long");

    /* config and its fields */
    EXPECT_FAIL_SUB(app, "\"config\": {", "\"config\": [], \"x\": {", "config must be an object or null");
    EXPECT_FAIL_SUB(app, "\"config\": {", "\"config\": \"sh\", \"x\": {", "config must be an object or null");
    EXPECT_FAIL_SUB(app, "\"User\": \"1000:1000\"", "\"User\": 1000", "config.User must be a string");
    EXPECT_FAIL_SUB(app, "\"User\": \"1000:1000\"", "\"User\": {\"uid\": 1000}", "config.User must be a string");
    EXPECT_FAIL_SUB(app, "\"Env\": [", "\"Env\": \"PATH=/bin\", \"x\": [", "config.Env must be an array of strings");
    EXPECT_FAIL_SUB(app, "\"Env\": [", "\"Env\": [1, ", "config.Env[0] must be a string");
    EXPECT_FAIL_SUB(app, "\"EMPTY=\"]", "\"EMPTY=\", null]", "config.Env[4] must be a string");
    EXPECT_FAIL_SUB(app, "\"Cmd\": [\"serve\"]", "\"Cmd\": \"serve\"",
                    "config.Cmd must be an array of strings or null");
    EXPECT_FAIL_SUB(app, "\"Cmd\": [\"serve\"]", "\"Cmd\": [null]", "config.Cmd[0] must be a string");
    EXPECT_FAIL_SUB(app, "\"Cmd\": [\"serve\"]", "\"Cmd\": [[\"serve\"]]", "config.Cmd[0] must be a string");
    EXPECT_FAIL_SUB(app, "\"Cmd\": [\"serve\"]", "\"Cmd\": {}", "config.Cmd must be an array");
    EXPECT_FAIL_SUB(app, "\"Cmd\": [\"serve\"]", "\"Cmd\": false", "config.Cmd must be an array");
    EXPECT_FAIL_SUB(app, "\"Entrypoint\": [\"/usr/local/bin/app\"", "\"Entrypoint\": [\"/usr/local/bin/app\", 5",
                    "config.Entrypoint[1] must be a string");
    EXPECT_FAIL_SUB(app, "\"WorkingDir\": \"/srv/app\"", "\"WorkingDir\": [\"/srv\"]",
                    "config.WorkingDir must be a string");
    EXPECT_FAIL_SUB(app, "\"StopSignal\": \"SIGTERM\"", "\"StopSignal\": 15", "config.StopSignal must be a string");
    EXPECT_FAIL_SUB(app, "\"Labels\": {", "\"Labels\": [], \"x\": {", "config.Labels must be an object or null");
    EXPECT_FAIL_SUB(app, "\"maintainer\": \"\"", "\"maintainer\": 5", "config.Labels[\"maintainer\"] must be a string");
    EXPECT_FAIL_SUB(app, "\"maintainer\": \"\"", "\"maintainer\": null", "config.Labels[\"maintainer\"]");
    EXPECT_FAIL_SUB(app, "\"maintainer\": \"\"", "\"ma\\u001bintainer\": {}",
                    "config.Labels[\"ma\\x1bintainer\"] must be a string");
    EXPECT_FAIL_SUB(app, "\"ExposedPorts\": {", "\"ExposedPorts\": [\"8080/tcp\"], \"x\": {",
                    "config.ExposedPorts must be an object or null");
    EXPECT_FAIL_SUB(app, "\"Volumes\": {", "\"Volumes\": \"/data\", \"x\": {", "config.Volumes must be an object");

    /* not an object, empty, nonsense */
    EXPECT_FAIL("[]", "not a JSON object");
    EXPECT_FAIL("", "empty");
    EXPECT_FAIL_LEN(NULL, 0, "empty");
    EXPECT_FAIL("null", "not valid JSON");
    EXPECT_FAIL("{", "not valid JSON at line 1");
    EXPECT_FAIL("{}", "architecture is missing");
}

static void test_hostile(void)
{
    /* duplicate keys anywhere */
    EXPECT_FAIL_SUB(app, "\"os\": \"linux\",", "\"os\": \"linux\", \"os\": \"windows\",", "duplicate object key");
    EXPECT_FAIL_SUB(app, "\"Cmd\": [\"serve\"],", "\"Cmd\": [\"serve\"], \"Cmd\": [\"sh\"],", "duplicate");
    EXPECT_FAIL_SUB(app, "\"maintainer\": \"\"", "\"maintainer\": \"\", \"maintainer\": \"x\"", "duplicate");
    EXPECT_FAIL_SUB(app, "\"type\": \"layers\",", "\"type\": \"layers\", \"type\": \"layers\",", "duplicate");
    EXPECT_FAIL_SUB(app, "\"comment\": \"buildkit\"", "\"comment\": \"a\", \"comment\": \"b\"", "duplicate");

    /* trailing garbage, truncation */
    char *s = NULL;
    if (asprintf(&s, "%s}", app) < 0)
        abort();
    EXPECT_FAIL(s, "not valid JSON");
    free(s);
    EXPECT_FAIL_LEN(app, strlen(app) - 3, "not valid JSON");

    /* encoding: invalid UTF-8, NUL, raw control characters */
    EXPECT_FAIL_SUB(app, "\"APP_ENV=production\"", "\"APP_ENV=\xff\"", "not valid JSON");
    EXPECT_FAIL_SUB(app, "\"APP_ENV=production\"", "\"APP_ENV=\xc0\xaf\"", "not valid JSON"); /* overlong '/' */
    EXPECT_FAIL_SUB(app, "\"APP_ENV=production\"", "\"APP_ENV=a\\u0000b\"", "not valid JSON");
    EXPECT_FAIL_SUB(app, "\"1000:1000\"", "\"1000\\u0000:0\"", "not valid JSON");
    EXPECT_FAIL_SUB(app, "\"maintainer\": \"\"", "\"main\\u0000tainer\": \"\"", "not valid JSON");
    EXPECT_FAIL_SUB(app, "\"APP_ENV=production\"", "\"APP_ENV=a\tb\"", "not valid JSON");
    EXPECT_FAIL_SUB(app, "\"APP_ENV=production\"", "\"\\ud800\"", "not valid JSON"); /* lone surrogate */

    /* deep nesting in an ignored field */
    size_t depth = 20000;
    char *nest = malloc(depth * 2 + 1);
    memset(nest, '[', depth);
    memset(nest + depth, ']', depth);
    nest[depth * 2] = '\0';
    char *to = NULL;
    if (asprintf(&to, "\"history\": %s, \"x\":", nest) < 0)
        abort();
    EXPECT_FAIL_SUB(app, "\"history\":", to, "not valid JSON");
    free(to);
    free(nest);

    /* size limit: 8 MiB is fine, one more byte is not */
    size_t n = IMAGE_CONFIG_MAX_SIZE;
    char *big = malloc(n + 1);
    size_t l = strlen(app);
    memcpy(big, app, l);
    memset(big + l, '\n', n + 1 - l);
    struct image_config c;
    err_t err = ERR_INIT;
    CHECK_OK(image_config_parse((const uint8_t *)big, n, &c, &err));
    image_config_free(&c);
    EXPECT_FAIL_LEN(big, n + 1, "8388609 bytes is too large (at most 8388608)");
    free(big);

    /* A huge but legal config (many env entries) stays within its lists' bounds. */
    size_t cap = 64 + 10001 * 12;
    char *e = malloc(cap);
    for (size_t count = 10000; count <= 10001; count++) {
        size_t o = (size_t)snprintf(e, cap, "\"Env\": [");
        for (size_t i = 0; i < count; i++)
            o += (size_t)snprintf(e + o, cap - o, "%s\"V%zu=1\"", i ? "," : "", i);
        snprintf(e + o, cap - o, "], \"x\": [");
        if (count == 10000) {
            if (PARSE_SUB(app, "\"Env\": [", e, &c)) {
                CHECK_EQ_INT(c.n_env, 10000);
                CHECK_STREQ(c.env[9999], "V9999=1");
                image_config_free(&c);
            }
        } else {
            EXPECT_FAIL_SUB(app, "\"Env\": [", e, "config.Env has 10001 entries (at most 10000)");
        }
    }
    free(e);
    err_clear(&err);
}

static void test_chain_ids(void)
{
    struct image_config c;
    err_t err = ERR_INIT;
    char **chain = NULL;

    /* Against values computed outside the project. */
    CHECK_OK(parse(app, &c, &err));
    CHECK_OK(image_config_chain_ids(&c, &chain, &err));
    CHECK(chain != NULL);
    if (chain) {
        CHECK_STREQ(chain[0], DIFF0);
        CHECK_STREQ(chain[1], CHAIN1);
        CHECK_STREQ(chain[2], CHAIN2);
    }

    /* And recomputed here from the definition with digest_buffer. */
    char expect[DIGEST_MAX_LEN + 1], joined[2 * DIGEST_MAX_LEN + 2];
    snprintf(joined, sizeof(joined), "%s %s", DIFF0, DIFF1);
    digest_buffer(DIGEST_SHA256, joined, strlen(joined), expect);
    CHECK_STREQ(chain ? chain[1] : NULL, expect);
    snprintf(joined, sizeof(joined), "%s %s", expect, DIFF2);
    digest_buffer(DIGEST_SHA256, joined, strlen(joined), expect);
    CHECK_STREQ(chain ? chain[2] : NULL, expect);
    image_config_free_strv(chain, c.n_diff_ids);
    image_config_free(&c);

    /* One layer: the chain ID is the diff ID. */
    CHECK_OK(parse(busybox, &c, &err));
    CHECK_OK(image_config_chain_ids(&c, &chain, &err));
    CHECK_STREQ(chain ? chain[0] : NULL, DIFF0);
    image_config_free_strv(chain, c.n_diff_ids);
    image_config_free(&c);

    /* No layers: nothing. */
    CHECK_OK(parse(minimal, &c, &err));
    chain = (char **)&c; /* must be overwritten */
    CHECK_OK(image_config_chain_ids(&c, &chain, &err));
    CHECK(chain == NULL);
    image_config_free(&c);

    /* The same diff twice gives distinct chain IDs (layer order matters). */
    if (PARSE_SUB(app, "\"" DIFF1 "\"", "\"" DIFF0 "\"", &c)) {
        CHECK_OK(image_config_chain_ids(&c, &chain, &err));
        CHECK(chain && strcmp(chain[0], chain[1]) != 0 && strcmp(chain[1], chain[2]) != 0);
        image_config_free_strv(chain, c.n_diff_ids);
        image_config_free(&c);
    }

    /* A sha512 diff ID still chains with sha256, per the spec's definition. */
    const char *d512 = "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318"
                       "d2877eec2f63b931bd47417a81a538327af927da3e";
    char *ids[] = {(char *)DIFF0, (char *)d512};
    struct image_config manual = {.diff_ids = ids, .n_diff_ids = 2};
    CHECK_OK(image_config_chain_ids(&manual, &chain, &err));
    snprintf(joined, sizeof(joined), "%s %s", DIFF0, d512);
    digest_buffer(DIGEST_SHA256, joined, strlen(joined), expect);
    CHECK_STREQ(chain ? chain[1] : NULL, expect);
    image_config_free_strv(chain, 2);

    /* A config built by hand with a bad diff ID is refused, not hashed. */
    char *bad[] = {(char *)DIFF0, (char *)"sha256:nope"};
    manual.diff_ids = bad;
    chain = NULL;
    CHECK(image_config_chain_ids(&manual, &chain, &err) == -EINVAL);
    CHECK(chain == NULL);
    CHECK_CONTAINS(err.msg, "diff_ids[1] \"sha256:nope\" is not a valid digest");
    char *nul[] = {NULL};
    manual.diff_ids = nul;
    manual.n_diff_ids = 1;
    CHECK(image_config_chain_ids(&manual, &chain, &err) == -EINVAL);
    image_config_free_strv(NULL, 3);
    err_clear(&err);
}

int main(void)
{
    RUN(test_busybox);
    RUN(test_app);
    RUN(test_null_vs_empty);
    RUN(test_nulls);
    RUN(test_rootfs);
    RUN(test_wrong_types);
    RUN(test_hostile);
    RUN(test_chain_ids);
    return unit_summary();
}
