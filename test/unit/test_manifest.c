#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "registry/manifest.h"
#include "util/digest.h"
#include "unit.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* A digest from an 8-hex-digit pattern, for readable fixtures. */
#define D(x) "sha256:" x x x x x x x x

#define D_AMD64  "sha256:5861314d7fccb39c2192173240eab44fa35ca66426201ca2acd0630a6258dd51"
#define D_ARM64  "sha256:f69162950f235e3cdbbad33f1f912d1a504be90d8a37d002c735d6f3e3882265"
#define D_ARMV7  "sha256:5ba6c8710dd1369ce61603ab9b7a81b25f92d4a9f74956ab72a7ea75884f07ee"
#define D_CONFIG "sha256:b79606fb3afea5bd1609ed40b622142f1c98125abcfe89a76a661b0e8e343910"
#define D_LAYER1 "sha256:77ea7eee3d80b1a38f83906dd3048e2689457eb90e18a7d12f839c5ae37106a2"
#define D_LAYER2 "sha256:95cf1a2e1698fe3ca1fcc3f653119146b271d0b62e487ec264441e886a11bd06"
#define D_ATTEST "sha256:bcc7930764b9b7a8b9bbd0161b568e869466d0c4efaee8006a56f3e8e6d82b69"

/* Shaped like `docker buildx` output for busybox: platforms plus an
 * attestation manifest for each. */
static const char oci_index[] =
    "{\n"
    "  \"schemaVersion\": 2,\n"
    "  \"mediaType\": \"application/vnd.oci.image.index.v1+json\",\n"
    "  \"manifests\": [\n"
    "    {\"mediaType\": \"application/vnd.oci.image.manifest.v1+json\", \"digest\": \"" D_AMD64 "\",\n"
    "     \"size\": 610, \"platform\": {\"architecture\": \"amd64\", \"os\": \"linux\"}},\n"
    "    {\"mediaType\": \"application/vnd.oci.image.manifest.v1+json\", \"digest\": \"" D(
        "0000a505") "\",\n"
                    "     \"size\": 610, \"platform\": {\"architecture\": \"arm\", \"os\": \"linux\", \"variant\": "
                    "\"v5\"}},\n"
                    "    {\"mediaType\": \"application/vnd.oci.image.manifest.v1+json\", \"digest\": \"" D(
                        "0000a606") "\",\n"
                                    "     \"size\": 610, \"platform\": {\"architecture\": \"arm\", \"os\": \"linux\", "
                                    "\"variant\": \"v6\"}},\n"
                                    "    {\"mediaType\": \"application/vnd.oci.image.manifest.v1+json\", \"digest\": "
                                    "\"" D_ARMV7 "\",\n"
                                    "     \"size\": 610, \"platform\": {\"architecture\": \"arm\", \"os\": \"linux\", "
                                    "\"variant\": \"v7\"}},\n"
                                    "    {\"mediaType\": \"application/vnd.oci.image.manifest.v1+json\", \"digest\": "
                                    "\"" D_ARM64 "\",\n"
                                    "     \"size\": 610, \"platform\": {\"architecture\": \"arm64\", \"os\": "
                                    "\"linux\", \"variant\": \"v8\"}},\n"
                                    "    {\"mediaType\": \"application/vnd.oci.image.manifest.v1+json\", \"digest\": "
                                    "\"" D(
                                        "00003860") "\",\n"
                                                    "     \"size\": 610, \"platform\": {\"architecture\": \"386\", "
                                                    "\"os\": \"linux\"}},\n"
                                                    "    {\"mediaType\": "
                                                    "\"application/vnd.oci.image.manifest.v1+json\", \"digest\": \"" D(
                                                        "0000ffc4") "\",\n"
                                                                    "     \"size\": 610, \"platform\": "
                                                                    "{\"architecture\": \"ppc64le\", \"os\": "
                                                                    "\"linux\"}},\n"
                                                                    "    {\"mediaType\": "
                                                                    "\"application/vnd.oci.image.manifest.v1+json\", "
                                                                    "\"digest\": \"" D(
                                                                        "00005390") "\",\n"
                                                                                    "     \"size\": 610, \"platform\": "
                                                                                    "{\"architecture\": \"s390x\", "
                                                                                    "\"os\": \"linux\"}},\n"
                                                                                    "    {\"mediaType\": "
                                                                                    "\"application/"
                                                                                    "vnd.oci.image.manifest.v1+json\", "
                                                                                    "\"digest\": \"" D_ATTEST "\",\n"
                                                                                    "     \"size\": 839, "
                                                                                    "\"annotations\": "
                                                                                    "{\"vnd.docker.reference.digest\": "
                                                                                    "\"" D_AMD64 "\",\n"
                                                                                    "       "
                                                                                    "\"vnd.docker.reference.type\": "
                                                                                    "\"attestation-manifest\"},\n"
                                                                                    "     \"platform\": "
                                                                                    "{\"architecture\": \"unknown\", "
                                                                                    "\"os\": \"unknown\"}}\n"
                                                                                    "  ]\n"
                                                                                    "}\n";

/* A Docker manifest list with a Windows entry the way Docker Hub serves
 * them (os.version, features). */
static const char docker_list[] =
    "{\n"
    "   \"schemaVersion\": 2,\n"
    "   \"mediaType\": \"application/vnd.docker.distribution.manifest.list.v2+json\",\n"
    "   \"manifests\": [\n"
    "      {\n"
    "         \"mediaType\": \"application/vnd.docker.distribution.manifest.v2+json\",\n"
    "         \"size\": 528,\n"
    "         \"digest\": \"" D_AMD64 "\",\n"
    "         \"platform\": {\"architecture\": \"amd64\", \"os\": \"linux\"}\n"
    "      },\n"
    "      {\n"
    "         \"mediaType\": \"application/vnd.docker.distribution.manifest.v2+json\",\n"
    "         \"size\": 528,\n"
    "         \"digest\": \"" D_ARM64 "\",\n"
    "         \"platform\": {\"architecture\": \"arm64\", \"os\": \"linux\", \"variant\": \"v8\"}\n"
    "      },\n"
    "      {\n"
    "         \"mediaType\": \"application/vnd.docker.distribution.manifest.v2+json\",\n"
    "         \"size\": 1161,\n"
    "         \"digest\": \"" D(
        "0000abcd") "\",\n"
                    "         \"platform\": {\"architecture\": \"amd64\", \"os\": \"windows\",\n"
                    "                      \"os.version\": \"10.0.17763.5329\", \"features\": [\"win32k\"]}\n"
                    "      }\n"
                    "   ]\n"
                    "}";

static const char docker_v2[] = "{\n"
                                "   \"schemaVersion\": 2,\n"
                                "   \"mediaType\": \"application/vnd.docker.distribution.manifest.v2+json\",\n"
                                "   \"config\": {\n"
                                "      \"mediaType\": \"application/vnd.docker.container.image.v1+json\",\n"
                                "      \"size\": 1457,\n"
                                "      \"digest\": \"" D_CONFIG "\"\n"
                                "   },\n"
                                "   \"layers\": [\n"
                                "      {\n"
                                "         \"mediaType\": \"application/vnd.docker.image.rootfs.diff.tar.gzip\",\n"
                                "         \"size\": 2152262,\n"
                                "         \"digest\": \"" D_LAYER1 "\"\n"
                                "      }\n"
                                "   ]\n"
                                "}";

static const char oci_manifest[] =
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
    "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" D_CONFIG "\",\"size\":7023},"
    "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"" D_LAYER1 "\","
    "\"size\":32654},"
    "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+zstd\",\"digest\":\"" D_LAYER2 "\",\"size\":16724,"
    "\"annotations\":{\"org.opencontainers.image.title\":\"l2\"}},"
    "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"" D(
        "0000cccc") "\",\"size\":73109}],"
                    "\"annotations\":{\"com.example.key1\":\"value1\",\"org.opencontainers.image.created\":\"2024-01-"
                    "02T03:04:05Z\"}}";

static int parse(const char *ct, const char *json, struct manifest *m, err_t *err)
{
    return manifest_parse(ct, (const uint8_t *)json, strlen(json), m, err);
}

/* `base` with the first `from` replaced by `to` (the fixture must contain it). */
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

static void expect_fail_(int line, const char *ct, const char *json, size_t len, const char *needle)
{
    struct manifest m;
    memset(&m, 0x5a, sizeof(m));
    err_t err = ERR_INIT;
    int r = manifest_parse(ct, (const uint8_t *)json, len, &m, &err);
    unit_checks++;
    if (r != -EINVAL || err.code != ERR_INVALID_ARGUMENT) {
        UNIT_FAIL("line %d: expected INVALID_ARGUMENT, got %d (code %d, %s)", line, r, err.code,
                  err.msg ? err.msg : "");
        if (r == 0)
            manifest_free(&m);
    } else if (!err.msg || !strstr(err.msg, needle) || !printable(err.msg) ||
               strncmp(err.msg, "invalid manifest: ", 18) != 0) {
        UNIT_FAIL("line %d: message \"%s\" lacks \"%s\"", line, err.msg ? err.msg : "(null)", needle);
    } else if (m.layers || m.manifests || m.media_type || m.config.digest || m.n_layers || m.n_manifests) {
        UNIT_FAIL("line %d: output not cleared on failure", line);
    }
    err_clear(&err);
}
#define EXPECT_FAIL(ct, json, needle)        expect_fail_(__LINE__, ct, json, strlen(json), needle)
#define EXPECT_FAIL_LEN(ct, json, n, needle) expect_fail_(__LINE__, ct, json, n, needle)

/* Like EXPECT_FAIL on a copy of `base` with one substitution. */
static void expect_fail_sub_(int line, const char *base, const char *from, const char *to, const char *needle)
{
    char *s = replace(base, from, to);
    expect_fail_(line, NULL, s, strlen(s), needle);
    free(s);
}
#define EXPECT_FAIL_SUB(base, from, to, needle) expect_fail_sub_(__LINE__, base, from, to, needle)

static void expect_ok_sub_(int line, const char *base, const char *from, const char *to)
{
    char *s = replace(base, from, to);
    struct manifest m;
    err_t err = ERR_INIT;
    int r = parse(NULL, s, &m, &err);
    CHECK_MSG(r == 0, "line %d: %s", line, err.msg ? err.msg : "");
    if (r == 0)
        manifest_free(&m);
    err_clear(&err);
    free(s);
}
#define EXPECT_OK_SUB(base, from, to) expect_ok_sub_(__LINE__, base, from, to)

static void test_oci_index(void)
{
    struct manifest m;
    err_t err = ERR_INIT;
    CHECK_OK(parse("application/vnd.oci.image.index.v1+json", oci_index, &m, &err));
    CHECK_EQ_INT(m.kind, MANIFEST_OCI_INDEX);
    CHECK_STREQ(m.media_type, MEDIA_TYPE_OCI_INDEX);
    CHECK_EQ_INT(m.n_manifests, 9);
    CHECK_EQ_INT(m.n_layers, 0);
    CHECK(m.layers == NULL && m.config.digest == NULL);
    CHECK_STREQ(m.manifests[0].digest, D_AMD64);
    CHECK_STREQ(m.manifests[0].media_type, MEDIA_TYPE_OCI_MANIFEST);
    CHECK_EQ_INT(m.manifests[0].size, 610);
    CHECK(m.manifests[0].has_platform);
    CHECK_STREQ(m.manifests[0].platform.os, "linux");
    CHECK_STREQ(m.manifests[0].platform.architecture, "amd64");
    CHECK(m.manifests[0].platform.variant == NULL);
    CHECK(m.manifests[0].platform.os_version == NULL);
    CHECK_STREQ(m.manifests[3].platform.variant, "v7");
    CHECK_STREQ(m.manifests[4].platform.architecture, "arm64");
    CHECK_STREQ(m.manifests[8].platform.os, "unknown");
    CHECK_EQ_INT(m.manifests[8].size, 839);
    manifest_free(&m);
    CHECK(m.manifests == NULL && m.n_manifests == 0 && m.media_type == NULL);
    manifest_free(&m); /* twice is harmless */

    /* Without a header, and without mediaType in the body: the shape says index. */
    CHECK_OK(parse(NULL, oci_index, &m, &err));
    CHECK_EQ_INT(m.kind, MANIFEST_OCI_INDEX);
    manifest_free(&m);
    char *s = replace(oci_index, "\"mediaType\": \"application/vnd.oci.image.index.v1+json\",", "");
    CHECK_OK(parse(NULL, s, &m, &err));
    CHECK_EQ_INT(m.kind, MANIFEST_OCI_INDEX);
    CHECK_STREQ(m.media_type, MEDIA_TYPE_OCI_INDEX);
    manifest_free(&m);
    CHECK_OK(parse(MEDIA_TYPE_DOCKER_LIST, s, &m, &err)); /* the header decides */
    CHECK_EQ_INT(m.kind, MANIFEST_DOCKER_LIST);
    manifest_free(&m);
    free(s);

    /* An empty index is valid. */
    CHECK_OK(
        parse(NULL, "{\"schemaVersion\":2,\"mediaType\":\"" MEDIA_TYPE_OCI_INDEX "\",\"manifests\":[]}", &m, &err));
    CHECK_EQ_INT(m.n_manifests, 0);
    manifest_free(&m);
    err_clear(&err);
}

static void test_docker_list(void)
{
    struct manifest m;
    err_t err = ERR_INIT;
    CHECK_OK(parse("application/vnd.docker.distribution.manifest.list.v2+json", docker_list, &m, &err));
    CHECK_EQ_INT(m.kind, MANIFEST_DOCKER_LIST);
    CHECK_STREQ(m.media_type, MEDIA_TYPE_DOCKER_LIST);
    CHECK_EQ_INT(m.n_manifests, 3);
    CHECK_STREQ(m.manifests[1].platform.variant, "v8");
    CHECK_STREQ(m.manifests[2].platform.os, "windows");
    CHECK_STREQ(m.manifests[2].platform.os_version, "10.0.17763.5329");
    CHECK_EQ_INT(m.manifests[2].size, 1161);
    CHECK_STREQ(m.manifests[2].media_type, MEDIA_TYPE_DOCKER_MANIFEST);
    manifest_free(&m);
    err_clear(&err);
}

static void test_docker_v2(void)
{
    struct manifest m;
    err_t err = ERR_INIT;
    CHECK_OK(parse("application/vnd.docker.distribution.manifest.v2+json", docker_v2, &m, &err));
    CHECK_EQ_INT(m.kind, MANIFEST_DOCKER_V2);
    CHECK_STREQ(m.media_type, MEDIA_TYPE_DOCKER_MANIFEST);
    CHECK_STREQ(m.config.media_type, MEDIA_TYPE_DOCKER_CONFIG);
    CHECK_STREQ(m.config.digest, D_CONFIG);
    CHECK_EQ_INT(m.config.size, 1457);
    CHECK(!m.config.has_platform);
    CHECK_EQ_INT(m.n_layers, 1);
    CHECK_STREQ(m.layers[0].media_type, "application/vnd.docker.image.rootfs.diff.tar.gzip");
    CHECK_STREQ(m.layers[0].digest, D_LAYER1);
    CHECK_EQ_INT(m.layers[0].size, 2152262);
    CHECK_EQ_INT(m.layers[0].n_urls, 0);
    CHECK_EQ_INT(m.n_manifests, 0);
    manifest_free(&m);
    err_clear(&err);
}

static void test_oci_manifest(void)
{
    struct manifest m;
    err_t err = ERR_INIT;
    CHECK_OK(parse("application/vnd.oci.image.manifest.v1+json", oci_manifest, &m, &err));
    CHECK_EQ_INT(m.kind, MANIFEST_OCI);
    CHECK_STREQ(m.media_type, MEDIA_TYPE_OCI_MANIFEST);
    CHECK_STREQ(m.config.media_type, MEDIA_TYPE_OCI_CONFIG);
    CHECK_EQ_INT(m.config.size, 7023);
    CHECK_EQ_INT(m.n_layers, 3);
    CHECK_STREQ(m.layers[1].media_type, "application/vnd.oci.image.layer.v1.tar+zstd");
    CHECK_STREQ(m.layers[2].media_type, "application/vnd.oci.image.layer.v1.tar");
    CHECK_STREQ(m.layers[2].digest, D("0000cccc"));
    CHECK_EQ_INT(m.layers[2].size, 73109);
    manifest_free(&m);

    /* Early OCI manifests had no mediaType: config + layers say manifest. */
    char *s = replace(oci_manifest, "\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",", "");
    CHECK_OK(parse(NULL, s, &m, &err));
    CHECK_EQ_INT(m.kind, MANIFEST_OCI);
    manifest_free(&m);
    CHECK_OK(parse("application/json", s, &m, &err));
    CHECK_EQ_INT(m.kind, MANIFEST_OCI);
    manifest_free(&m);
    CHECK_OK(parse(MEDIA_TYPE_DOCKER_MANIFEST, s, &m, &err));
    CHECK_EQ_INT(m.kind, MANIFEST_DOCKER_V2);
    manifest_free(&m);
    free(s);

    /* No layers at all is an (odd) valid image. */
    s = replace(oci_manifest, "\"layers\":[", "\"layers\":[],\"x\":[");
    CHECK_OK(parse(NULL, s, &m, &err));
    CHECK_EQ_INT(m.n_layers, 0);
    CHECK(m.layers == NULL);
    manifest_free(&m);
    free(s);

    /* Unknown fields are ignored (the spec says so). */
    s = replace(oci_manifest, "\"annotations\":{\"com",
                "\"subject\":{\"mediaType\":\"x/y\",\"digest\":\"" D_ATTEST "\",\"size\":1},"
                "\"artifactType\":null,\"extra\":[1,{\"a\":[]}],\"annotations\":{\"com");
    CHECK_OK(parse(NULL, s, &m, &err));
    manifest_free(&m);
    free(s);
    err_clear(&err);
}

static void test_content_type(void)
{
    struct manifest m;
    err_t err = ERR_INIT;
    static const char *const generic[] = {
        NULL,
        "",
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/octet-stream",
        "binary/octet-stream",
        "text/html",
        "  application/vnd.docker.distribution.manifest.v2+json  ",
        "Application/VND.Docker.Distribution.Manifest.V2+JSON; charset=utf-8",
        "application/vnd.docker.distribution.manifest.v2+json;q=0.9",
    };
    for (size_t i = 0; i < N_ELEMS(generic); i++) {
        int r = parse(generic[i], docker_v2, &m, &err);
        CHECK_MSG(r == 0, "content type \"%s\": %s", generic[i] ? generic[i] : "(null)", err.msg ? err.msg : "");
        if (r == 0) {
            CHECK_EQ_INT(m.kind, MANIFEST_DOCKER_V2);
            manifest_free(&m);
        }
    }
    err_clear(&err);

    /* Both specific and different. */
    EXPECT_FAIL(MEDIA_TYPE_OCI_INDEX, docker_v2,
                "Content-Type \"application/vnd.oci.image.index.v1+json\" does not match the mediaType "
                "\"application/vnd.docker.distribution.manifest.v2+json\" in the body");
    EXPECT_FAIL(MEDIA_TYPE_OCI_MANIFEST, docker_v2, "does not match");
    EXPECT_FAIL(MEDIA_TYPE_DOCKER_LIST, oci_index, "does not match");
    EXPECT_FAIL(MEDIA_TYPE_DOCKER_MANIFEST, oci_manifest, "does not match");
    EXPECT_FAIL(MEDIA_TYPE_OCI_MANIFEST, oci_index, "does not match");
    /* A registry media type we do not support. */
    EXPECT_FAIL("application/vnd.oci.artifact.manifest.v1+json", oci_manifest,
                "Content-Type \"application/vnd.oci.artifact.manifest.v1+json\" is not a supported manifest");
    EXPECT_FAIL("application/vnd.docker.container.image.v1+json", docker_v2, "not a supported manifest");
    char longct[600];
    memset(longct, 'x', sizeof(longct) - 1);
    longct[sizeof(longct) - 1] = '\0';
    EXPECT_FAIL(longct, docker_v2, "is not a manifest media type");
    /* Body media types that are not manifests. */
    EXPECT_FAIL_SUB(docker_v2, "\"application/vnd.docker.distribution.manifest.v2+json\"",
                    "\"application/vnd.docker.container.image.v1+json\"", "(that is a blob)");
    EXPECT_FAIL_SUB(docker_v2, "\"application/vnd.docker.distribution.manifest.v2+json\"",
                    "\"application/vnd.oci.artifact.manifest.v1+json\"",
                    "mediaType \"application/vnd.oci.artifact.manifest.v1+json\" is not a supported manifest type");
    EXPECT_FAIL_SUB(docker_v2, "\"application/vnd.docker.distribution.manifest.v2+json\"", "7", "mediaType must be");
    EXPECT_FAIL_SUB(docker_v2, "\"application/vnd.docker.distribution.manifest.v2+json\"", "\"\"",
                    "mediaType is empty");
    EXPECT_FAIL_SUB(docker_v2, "\"application/vnd.docker.distribution.manifest.v2+json\"", "\"a b\"",
                    "is not a media type");
    /* Neither mediaType nor a recognizable shape. */
    EXPECT_FAIL(NULL, "{\"schemaVersion\":2}", "neither an index");
    EXPECT_FAIL(NULL, "{\"schemaVersion\":2,\"manifests\":[],\"config\":{}}", "neither an index");
}

static void test_schema1(void)
{
    static const char signed_v1[] = "{\n"
                                    "   \"schemaVersion\": 1,\n"
                                    "   \"name\": \"library/busybox\",\n"
                                    "   \"tag\": \"latest\",\n"
                                    "   \"architecture\": \"amd64\",\n"
                                    "   \"fsLayers\": [{\"blobSum\": \"" D_LAYER1 "\"}],\n"
                                    "   \"history\": [{\"v1Compatibility\": \"{}\"}],\n"
                                    "   \"signatures\": [{\"header\": {\"alg\": \"ES256\"}, \"signature\": \"x\","
                                    " \"protected\": \"y\"}]\n"
                                    "}";
    const char *msg = "schema 1 manifests are not supported (deprecated by Docker); push the image with a current "
                      "client";
    EXPECT_FAIL("application/vnd.docker.distribution.manifest.v1+prettyjws", signed_v1, msg);
    EXPECT_FAIL("application/vnd.docker.distribution.manifest.v1+json", signed_v1, msg);
    EXPECT_FAIL("application/vnd.docker.distribution.manifest.v1+prettyjws", "not even json", msg);
    EXPECT_FAIL(NULL, signed_v1, msg);
    EXPECT_FAIL("application/json", signed_v1, msg);
    EXPECT_FAIL(MEDIA_TYPE_DOCKER_MANIFEST, signed_v1, msg);
    EXPECT_FAIL_SUB(docker_v2, "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.docker.distribution.manifest.v1+json", msg);
    EXPECT_FAIL_SUB(docker_v2, "\"schemaVersion\": 2", "\"schemaVersion\": 1", msg);
}

static void test_missing_and_wrong_types(void)
{
    /* schemaVersion */
    EXPECT_FAIL_SUB(docker_v2, "\"schemaVersion\": 2,", "", "schemaVersion is missing");
    EXPECT_FAIL_SUB(docker_v2, "\"schemaVersion\": 2", "\"schemaVersion\": \"2\"", "schemaVersion must be an integer");
    EXPECT_FAIL_SUB(docker_v2, "\"schemaVersion\": 2", "\"schemaVersion\": 2.0", "schemaVersion must be an integer");
    EXPECT_FAIL_SUB(docker_v2, "\"schemaVersion\": 2", "\"schemaVersion\": 3", "unsupported schemaVersion 3");
    EXPECT_FAIL_SUB(docker_v2, "\"schemaVersion\": 2", "\"schemaVersion\": -2", "unsupported schemaVersion -2");
    EXPECT_FAIL_SUB(docker_v2, "\"schemaVersion\": 2", "\"schemaVersion\": null", "schemaVersion must be");

    /* config */
    EXPECT_FAIL(NULL, "{\"schemaVersion\":2,\"mediaType\":\"" MEDIA_TYPE_DOCKER_MANIFEST "\",\"layers\":[]}",
                "image manifest has no \"config\"");
    EXPECT_FAIL_SUB(docker_v2, "\"config\": {", "\"config\": 5, \"x\": {", "config must be an object");
    EXPECT_FAIL_SUB(docker_v2, "\"config\": {", "\"config\": null, \"x\": {", "config must be an object");
    EXPECT_FAIL_SUB(docker_v2, "\"mediaType\": \"application/vnd.docker.container.image.v1+json\",", "",
                    "config.mediaType is missing");
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 1457,", "", "config.size is missing");
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 1457,\n      \"digest\": \"" D_CONFIG "\"", "\"size\": 1457",
                    "config.digest is missing");

    /* layers */
    EXPECT_FAIL(NULL,
                "{\"schemaVersion\":2,\"mediaType\":\"" MEDIA_TYPE_DOCKER_MANIFEST "\",\"config\":{\"mediaType\":"
                "\"" MEDIA_TYPE_DOCKER_CONFIG "\",\"digest\":\"" D_CONFIG "\",\"size\":1}}",
                "image manifest has no \"layers\" list");
    EXPECT_FAIL_SUB(docker_v2, "\"layers\": [", "\"layers\": {}, \"x\": [", "\"layers\" must be an array");
    EXPECT_FAIL_SUB(docker_v2, "\"layers\": [", "\"layers\": null, \"x\": [", "\"layers\" must be an array");
    EXPECT_FAIL_SUB(docker_v2, "\"layers\": [", "\"layers\": [\"" D_LAYER2 "\",", "layers[0] must be an object");
    EXPECT_FAIL_SUB(docker_v2, "\"layers\": [", "\"layers\": [{},", "layers[0].mediaType is missing");
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 2152262,", "", "layers[0].size is missing");
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 2152262", "\"size\": \"2152262\"", "layers[0].size must be an integer");
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 2152262", "\"size\": 1.5", "layers[0].size must be an integer");
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 2152262", "\"size\": true", "must be an integer");
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 2152262", "\"size\": null", "must be an integer");
    EXPECT_FAIL_SUB(docker_v2, "\"digest\": \"" D_LAYER1 "\"", "\"digest\": 5", "layers[0].digest must be a string");
    EXPECT_FAIL_SUB(docker_v2, "\"digest\": \"" D_LAYER1 "\"", "\"digest\": [\"" D_LAYER1 "\"]",
                    "layers[0].digest must be a string");

    /* index entries */
    EXPECT_FAIL(NULL, "{\"schemaVersion\":2,\"mediaType\":\"" MEDIA_TYPE_OCI_INDEX "\"}",
                "index has no \"manifests\" list");
    EXPECT_FAIL(NULL, "{\"schemaVersion\":2,\"mediaType\":\"" MEDIA_TYPE_OCI_INDEX "\",\"manifests\":{}}",
                "\"manifests\" must be an array");
    EXPECT_FAIL(NULL, "{\"schemaVersion\":2,\"mediaType\":\"" MEDIA_TYPE_OCI_INDEX "\",\"manifests\":[null]}",
                "manifests[0] must be an object");
    EXPECT_FAIL_SUB(oci_index, "\"architecture\": \"amd64\", \"os\": \"linux\"", "\"os\": \"linux\"",
                    "manifests[0].platform.architecture is missing");
    EXPECT_FAIL_SUB(oci_index, "\"architecture\": \"amd64\", \"os\": \"linux\"", "\"architecture\": \"amd64\"",
                    "manifests[0].platform.os is missing");
    EXPECT_FAIL_SUB(oci_index, "\"architecture\": \"amd64\"", "\"architecture\": 64",
                    "manifests[0].platform.architecture must be a string");
    EXPECT_FAIL_SUB(oci_index, "\"architecture\": \"amd64\"", "\"architecture\": \"\"",
                    "manifests[0].platform.architecture is empty");
    EXPECT_FAIL_SUB(oci_index, "\"variant\": \"v7\"", "\"variant\": [\"v7\"]",
                    "manifests[3].platform.variant must be a string");
    EXPECT_FAIL_SUB(docker_list, "\"os.version\": \"10.0.17763.5329\"", "\"os.version\": 10",
                    "manifests[2].platform.os.version must be a string");
    EXPECT_FAIL_SUB(oci_index, "\"platform\": {\"architecture\": \"amd64\", \"os\": \"linux\"}", "\"platform\": 5",
                    "manifests[0].platform must be an object");
    char longarch[300];
    memset(longarch, 'a', sizeof(longarch) - 1);
    longarch[sizeof(longarch) - 1] = '\0';
    char to[400];
    snprintf(to, sizeof(to), "\"architecture\": \"%s\"", longarch);
    EXPECT_FAIL_SUB(oci_index, "\"architecture\": \"amd64\"", to, "platform.architecture is too long");
    /* platform: null is the same as none */
    EXPECT_OK_SUB(oci_index, "\"platform\": {\"architecture\": \"amd64\", \"os\": \"linux\"}", "\"platform\": null");

    /* urls */
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 2152262", "\"size\": 2152262, \"urls\": \"http://x\"",
                    "layers[0].urls must be an array of strings");
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 2152262", "\"size\": 2152262, \"urls\": [1]",
                    "layers[0].urls[0] must be a string");
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 2152262",
                    "\"size\": 2152262, \"urls\": [\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\","
                    "\"11\",\"12\",\"13\",\"14\",\"15\",\"16\",\"17\"]",
                    "layers[0].urls has 17 entries (at most 16)");

    /* not an object at all */
    EXPECT_FAIL(NULL, "[]", "not a JSON object");
    EXPECT_FAIL(NULL, "\"manifest\"", "not valid JSON"); /* jansson wants an object or array */
    EXPECT_FAIL(NULL, "2", "not valid JSON");
    EXPECT_FAIL(NULL, "null", "not valid JSON");
    EXPECT_FAIL(NULL, "", "empty body");
    EXPECT_FAIL_LEN(NULL, NULL, 0, "empty body");
    EXPECT_FAIL(NULL, "   ", "not valid JSON");
    EXPECT_FAIL(NULL, "{", "not valid JSON at line 1");
}

static void test_numbers_and_digests(void)
{
    /* sizes: 0 .. 2^53-1 */
    EXPECT_OK_SUB(docker_v2, "\"size\": 2152262", "\"size\": 0");
    EXPECT_OK_SUB(docker_v2, "\"size\": 2152262", "\"size\": 9007199254740991");
    EXPECT_OK_SUB(docker_v2, "\"size\": 2152262", "\"size\": -0");
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 2152262", "\"size\": 9007199254740992", "layers[0].size is too large");
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 2152262", "\"size\": 9223372036854775807", "is too large");
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 2152262", "\"size\": 99999999999999999999999", "not valid JSON");
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 2152262", "\"size\": -1", "layers[0].size is negative (-1)");
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 1457", "\"size\": -9223372036854775808", "config.size is negative");
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 2152262", "\"size\": 1e3", "must be an integer");
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 2152262", "\"size\": 1e400", "not valid JSON");
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 2152262", "\"size\": NaN", "not valid JSON");
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 2152262", "\"size\": 0x10", "not valid JSON");
    EXPECT_FAIL_SUB(oci_index, "\"size\": 610", "\"size\": -610", "manifests[0].size is negative");

    /* digests everywhere */
    static const char *const bad_digests[] = {
        "",
        "sha256:",
        "sha256:abc",
        "sha256:77EA7EEE3D80B1A38F83906DD3048E2689457EB90E18A7D12F839C5AE37106A2",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "77ea7eee3d80b1a38f83906dd3048e2689457eb90e18a7d12f839c5ae37106a2",
        "sha256:77ea7eee3d80b1a38f83906dd3048e2689457eb90e18a7d12f839c5ae37106a2 ",
        "sha256:77ea7eee3d80b1a38f83906dd3048e2689457eb90e18a7d12f839c5ae37106a22",
        "sha512:77ea7eee3d80b1a38f83906dd3048e2689457eb90e18a7d12f839c5ae37106a2",
        "sha256:../../../../etc/passwd",
    };
    for (size_t i = 0; i < N_ELEMS(bad_digests); i++) {
        char to[200];
        snprintf(to, sizeof(to), "\"%s\"", bad_digests[i]);
        const char *want = bad_digests[i][0] ? "is not a valid digest" : "is empty";
        EXPECT_FAIL_SUB(docker_v2, "\"" D_LAYER1 "\"", to, "layers[0].digest");
        EXPECT_FAIL_SUB(docker_v2, "\"" D_LAYER1 "\"", to, want);
        EXPECT_FAIL_SUB(docker_v2, "\"" D_CONFIG "\"", to, "config.digest");
        EXPECT_FAIL_SUB(oci_index, "\"" D_ARMV7 "\"", to, "manifests[3].digest");
    }
    /* Hostile bytes in a digest are escaped in the message, and long ones cut. */
    char big[2000];
    memset(big, 'f', sizeof(big));
    memcpy(big, "\"sha256:", 8);
    big[sizeof(big) - 2] = '"';
    big[sizeof(big) - 1] = '\0';
    EXPECT_FAIL_SUB(docker_v2, "\"" D_LAYER1 "\"", big, "layers[0].digest is too long");
    EXPECT_FAIL_SUB(docker_v2, "\"" D_LAYER1 "\"", "\"sha256:\\u001b[31mred\"", "\"sha256:\\x1b[31mred\"");
}

static void test_media_types(void)
{
    /* Artifacts are not images. */
    EXPECT_FAIL_SUB(oci_manifest, MEDIA_TYPE_OCI_CONFIG, "application/vnd.cncf.helm.config.v1+json",
                    "not a container image: config media type \"application/vnd.cncf.helm.config.v1+json\"");
    EXPECT_FAIL_SUB(oci_manifest, MEDIA_TYPE_OCI_CONFIG, "application/vnd.oci.empty.v1+json", "Helm chart");
    EXPECT_FAIL_SUB(oci_manifest, MEDIA_TYPE_OCI_CONFIG, "application/vnd.dev.cosign.simplesigning.v1+json",
                    "not a container image");
    EXPECT_FAIL_SUB(oci_manifest, MEDIA_TYPE_OCI_CONFIG, "application/vnd.oci.image.layer.v1.tar",
                    "not a container image");
    /* Either config type goes with either manifest type. */
    EXPECT_OK_SUB(oci_manifest, MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_DOCKER_CONFIG);
    EXPECT_OK_SUB(docker_v2, MEDIA_TYPE_DOCKER_CONFIG, MEDIA_TYPE_OCI_CONFIG);

    /* Unknown layer types are named. */
    EXPECT_FAIL_SUB(oci_manifest, "application/vnd.oci.image.layer.v1.tar+zstd",
                    "application/vnd.oci.image.layer.v1.tar+bzip2",
                    "layers[1] has unsupported media type \"application/vnd.oci.image.layer.v1.tar+bzip2\"");
    EXPECT_FAIL_SUB(oci_manifest, "application/vnd.oci.image.layer.v1.tar+gzip",
                    "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                    "layers[0] has unsupported media type \"application/vnd.cncf.helm.chart.content.v1.tar+gzip\"");
    EXPECT_FAIL_SUB(docker_v2, "application/vnd.docker.image.rootfs.diff.tar.gzip", "application/octet-stream",
                    "unsupported media type");
    EXPECT_FAIL_SUB(docker_v2, "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "application/vnd.docker.image.rootfs.diff.tar.gzip ", "is not a media type");
    /* Docker and OCI layers mixed: fine. */
    EXPECT_OK_SUB(docker_v2, "application/vnd.docker.image.rootfs.diff.tar.gzip",
                  "application/vnd.oci.image.layer.v1.tar+zstd");

    /* Foreign layers: refused when they point outside the registry. */
    static const char *const foreign[] = {
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    };
    for (size_t i = 0; i < N_ELEMS(foreign); i++) {
        char *s = replace(docker_v2, "application/vnd.docker.image.rootfs.diff.tar.gzip", foreign[i]);
        EXPECT_FAIL_SUB(s, "\"size\": 2152262",
                        "\"size\": 2152262, \"urls\": [\"https://mcr.microsoft.com/v2/windows/servercore/blobs/"
                        "sha256:77ea\"]",
                        "foreign layers (Windows base images) are not supported");
        EXPECT_OK_SUB(s, "\"size\": 2152262", "\"size\": 2152262, \"urls\": []");
        EXPECT_OK_SUB(s, "\"size\": 2152262", "\"size\": 2152262, \"urls\": null");
        free(s);
    }
    /* A plain layer with urls keeps them (the registry still has the blob). */
    char *s = replace(docker_v2, "\"size\": 2152262", "\"size\": 2152262, \"urls\": [\"https://a/b\", \"https://c\"]");
    struct manifest m;
    err_t err = ERR_INIT;
    CHECK_OK(parse(NULL, s, &m, &err));
    CHECK_EQ_INT(m.layers[0].n_urls, 2);
    CHECK_STREQ(m.layers[0].urls[1], "https://c");
    manifest_free(&m);
    free(s);
    err_clear(&err);

    /* media_type_is_layer */
    static const struct {
        const char *mt;
        bool layer;
    } t[] = {
        {"application/vnd.oci.image.layer.v1.tar", true},
        {"application/vnd.oci.image.layer.v1.tar+gzip", true},
        {"application/vnd.oci.image.layer.v1.tar+zstd", true},
        {"application/vnd.docker.image.rootfs.diff.tar.gzip", true},
        {"application/vnd.oci.image.layer.nondistributable.v1.tar", true},
        {"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", true},
        {"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", true},
        {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", true},
        {"application/vnd.oci.image.layer.v1.tar+bzip2", false},
        {"application/vnd.oci.image.config.v1+json", false},
        {"application/vnd.docker.container.image.v1+json", false},
        {"application/vnd.oci.image.manifest.v1+json", false},
        {"application/vnd.oci.image.layer.v1.tar+gzip ", false},
        {"APPLICATION/VND.OCI.IMAGE.LAYER.V1.TAR", false},
        {"application/vnd.oci.image.layer.v1", false},
        {"", false},
        {NULL, false},
    };
    for (size_t i = 0; i < N_ELEMS(t); i++)
        CHECK_MSG(media_type_is_layer(t[i].mt) == t[i].layer, "media_type_is_layer(\"%s\")",
                  t[i].mt ? t[i].mt : "(null)");

    /* Accept header */
    const char *a = manifest_accept_header();
    CHECK_CONTAINS(a, MEDIA_TYPE_OCI_INDEX);
    CHECK_CONTAINS(a, MEDIA_TYPE_OCI_MANIFEST);
    CHECK_CONTAINS(a, MEDIA_TYPE_DOCKER_LIST);
    CHECK_CONTAINS(a, MEDIA_TYPE_DOCKER_MANIFEST);
    CHECK(!strstr(a, "distribution.manifest.v1") && !strstr(a, "prettyjws"));
    CHECK(!strchr(a, '\n') && !strchr(a, '\r'));
}

/* {"schemaVersion":2,"mediaType":"…","config":…,"layers":[n layers]} */
static char *many_layers(size_t n)
{
    size_t cap = 256 + n * 200;
    char *s = malloc(cap);
    size_t o = (size_t)snprintf(s, cap,
                                "{\"schemaVersion\":2,\"mediaType\":\"" MEDIA_TYPE_OCI_MANIFEST "\","
                                "\"config\":{\"mediaType\":\"" MEDIA_TYPE_OCI_CONFIG "\",\"digest\":\"" D_CONFIG
                                "\",\"size\":1},\"layers\":[");
    for (size_t i = 0; i < n; i++) {
        char d[DIGEST_MAX_LEN + 1];
        digest_buffer(DIGEST_SHA256, &i, sizeof(i), d);
        o += (size_t)snprintf(s + o, cap - o,
                              "%s{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
                              "\"digest\":\"%s\",\"size\":%zu}",
                              i ? "," : "", d, i);
    }
    snprintf(s + o, cap - o, "]}");
    return s;
}

static char *many_manifests(size_t n)
{
    size_t cap = 256 + n * 260;
    char *s = malloc(cap);
    size_t o =
        (size_t)snprintf(s, cap, "{\"schemaVersion\":2,\"mediaType\":\"" MEDIA_TYPE_OCI_INDEX "\",\"manifests\":[");
    for (size_t i = 0; i < n; i++) {
        char d[DIGEST_MAX_LEN + 1];
        digest_buffer(DIGEST_SHA256, &i, sizeof(i), d);
        o += (size_t)snprintf(s + o, cap - o,
                              "%s{\"mediaType\":\"" MEDIA_TYPE_OCI_MANIFEST "\",\"digest\":\"%s\",\"size\":%zu,"
                              "\"platform\":{\"os\":\"plan9\",\"architecture\":\"arch%zu\"}}",
                              i ? "," : "", d, i, i);
    }
    snprintf(s + o, cap - o, "]}");
    return s;
}

static void test_limits(void)
{
    struct manifest m;
    err_t err = ERR_INIT;
    char *s = many_layers(1000);
    CHECK_OK(parse(NULL, s, &m, &err));
    CHECK_EQ_INT(m.n_layers, 1000);
    CHECK_EQ_INT(m.layers[999].size, 999);
    manifest_free(&m);
    free(s);
    s = many_layers(1001);
    EXPECT_FAIL(NULL, s, "image has 1001 layers (at most 1000)");
    free(s);
    s = many_layers(2000);
    EXPECT_FAIL(NULL, s, "image has 2000 layers (at most 1000)");
    free(s);
    s = many_manifests(1000);
    CHECK_OK(parse(NULL, s, &m, &err));
    CHECK_EQ_INT(m.n_manifests, 1000);
    manifest_free(&m);
    free(s);
    s = many_manifests(1001);
    EXPECT_FAIL(NULL, s, "index lists 1001 manifests (at most 1000)");
    free(s);

    /* 4 MiB exactly (padded with blanks) is fine; one byte more is not. */
    size_t n = MANIFEST_MAX_SIZE;
    char *big = malloc(n + 2);
    size_t l = strlen(docker_v2);
    memcpy(big, docker_v2, l);
    memset(big + l, ' ', n + 1 - l);
    big[n + 1] = '\0';
    CHECK_OK(manifest_parse(NULL, (const uint8_t *)big, n, &m, &err));
    manifest_free(&m);
    EXPECT_FAIL_LEN(NULL, big, n + 1, "4194305 bytes is too large (at most 4194304)");
    free(big);
    err_clear(&err);
}

static void test_hostile_json(void)
{
    /* duplicate keys, top level and nested */
    EXPECT_FAIL_SUB(docker_v2, "\"schemaVersion\": 2,", "\"schemaVersion\": 2, \"schemaVersion\": 2,",
                    "duplicate object key");
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 2152262", "\"size\": 2152262, \"size\": 1", "duplicate object key");
    EXPECT_FAIL_SUB(docker_v2, "\"config\": {", "\"annotations\": {\"a\":1,\"a\":2}, \"config\": {",
                    "duplicate object key");
    EXPECT_FAIL_SUB(oci_index, "\"os\": \"linux\"", "\"os\": \"linux\", \"os\": \"windows\"", "duplicate");

    /* trailing garbage */
    char *s = NULL;
    if (asprintf(&s, "%s x", docker_v2) < 0)
        abort();
    EXPECT_FAIL(NULL, s, "not valid JSON");
    free(s);
    if (asprintf(&s, "%s%s", docker_v2, docker_v2) < 0)
        abort();
    EXPECT_FAIL(NULL, s, "not valid JSON");
    free(s);
    if (asprintf(&s, "%s\n\t \r\n", docker_v2) < 0) /* trailing blanks are fine */
        abort();
    struct manifest m;
    err_t err = ERR_INIT;
    CHECK_OK(parse(NULL, s, &m, &err));
    manifest_free(&m);
    free(s);
    /* a NUL after the document: the length counts, not the C string */
    size_t l = strlen(docker_v2);
    char buf[4096];
    memcpy(buf, docker_v2, l);
    buf[l] = '\0';
    memcpy(buf + l + 1, "junk", 4);
    EXPECT_FAIL_LEN(NULL, buf, l + 5, "not valid JSON");
    /* truncated */
    EXPECT_FAIL_LEN(NULL, docker_v2, l - 1, "not valid JSON");
    EXPECT_FAIL_LEN(NULL, docker_v2, l / 2, "not valid JSON");

    /* non-UTF-8, NUL escapes, control characters */
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 2152262", "\"size\": 2152262, \"x\": \"\xff\xfe\"", "not valid JSON");
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 2152262", "\"size\": 2152262, \"x\": \"\xc3\x28\"", "not valid JSON");
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 2152262", "\"size\": 2152262, \"x\": \"\xed\xa0\x80\"", "not valid JSON");
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 2152262", "\"size\": 2152262 \xff", "not valid JSON");
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 2152262", "\"size\": 2152262, \"x\": \"a\\u0000b\"", "not valid JSON");
    EXPECT_FAIL_SUB(docker_v2, "\"size\": 2152262", "\"size\": 2152262, \"x\": \"a\nb\"", "not valid JSON");
    EXPECT_FAIL_SUB(oci_index, "\"variant\": \"v7\"", "\"variant\": \"v\\u0000\"", "not valid JSON");
    EXPECT_FAIL(NULL, "\xef\xbb\xbf{}", "not valid JSON"); /* BOM */
    /* valid non-ASCII is fine where free text is allowed, and escaped in messages */
    EXPECT_OK_SUB(docker_v2, "\"size\": 2152262", "\"size\": 2152262, \"x\": \"h\xc3\xa9llo \\u2603\"");
    EXPECT_FAIL_SUB(oci_manifest, MEDIA_TYPE_OCI_CONFIG, "application/vnd.h\xc3\xa9lm", "is not a media type");

    /* deep nesting, inside an ignored field and as the whole document */
    size_t depth = 100000;
    char *deep = malloc(depth * 2 + 64);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    EXPECT_FAIL_LEN(NULL, deep, depth * 2, "not valid JSON");
    free(deep);
    /* {"a":{"a":…}} unclosed, 50000 deep */
    size_t od = 50000;
    deep = malloc(od * 5 + 1);
    for (size_t i = 0; i < od; i++)
        memcpy(deep + i * 5, "{\"a\":", 5);
    EXPECT_FAIL_LEN(NULL, deep, od * 5, "not valid JSON");
    free(deep);
    size_t d2 = 3000;
    char *nest = malloc(d2 * 2 + 1);
    memset(nest, '[', d2);
    memset(nest + d2, ']', d2);
    nest[d2 * 2] = '\0';
    char *to = NULL;
    if (asprintf(&to, "\"extra\": %s, \"config\": {", nest) < 0)
        abort();
    EXPECT_FAIL_SUB(docker_v2, "\"config\": {", to, "not valid JSON");
    free(to);
    free(nest);
    err_clear(&err);
}

/* Junk must never crash and always produce a printable message. */
static uint64_t rng_state = 0x2545f4914f6cdd1dULL;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_mutations(void)
{
    const char *bases[] = {docker_v2, oci_manifest, oci_index, docker_list};
    int ok = 0, failed = 0, bad_messages = 0;
    for (int iter = 0; iter < 20000; iter++) {
        const char *b = bases[iter % 4];
        size_t n = strlen(b);
        char *s = malloc(n + 1);
        memcpy(s, b, n + 1);
        int edits = 1 + (int)(rng() % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = rng() % n;
            switch (rng() % 4) {
            case 0:
                s[at] = (char)(rng() % 256);
                break;
            case 1:
                s[at] = "{}[]\",:0-9e\\ "[rng() % 14];
                break;
            case 2:
                n = at; /* truncate */
                break;
            default:
                s[at] = (char)('0' + rng() % 10);
                break;
            }
            if (n == 0)
                n = 1;
        }
        struct manifest m;
        err_t err = ERR_INIT;
        static const char *const cts[] = {NULL, MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_DOCKER_MANIFEST, "text/html"};
        if (manifest_parse(cts[rng() % 4], (const uint8_t *)s, n, &m, &err) == 0) {
            ok++;
            manifest_free(&m);
        } else {
            failed++;
            if (!err.msg || !printable(err.msg) || strlen(err.msg) > 2000)
                bad_messages++;
        }
        err_clear(&err);
        free(s);
    }
    CHECK(ok > 0);
    CHECK(failed > 0);
    CHECK_EQ_INT(bad_messages, 0);
}

/* ---- platforms */

static void test_platform_host(void)
{
    static const struct {
        const char *machine, *arch, *variant;
    } t[] = {
        {"x86_64", "amd64", NULL},
        {"amd64", "amd64", NULL},
        {"aarch64", "arm64", "v8"},
        {"arm64", "arm64", "v8"},
        {"armv7l", "arm", "v7"},
        {"armv7", "arm", "v7"},
        {"armv6l", "arm", "v6"},
        {"armv5tel", "arm", "v5"},
        {"armv5tejl", "arm", "v5"},
        {"armv8l", "arm", "v8"},
        {"i686", "386", NULL},
        {"i386", "386", NULL},
        {"i586", "386", NULL},
        {"ppc64le", "ppc64le", NULL},
        {"s390x", "s390x", NULL},
        {"riscv64", "riscv64", NULL},
        {"loongarch64", "loong64", NULL},
        {"ppc64", "ppc64", NULL},
        {"sparc64", NULL, NULL},
        {"", NULL, NULL},
        {"x86_64 ", NULL, NULL},
    };
    for (size_t i = 0; i < N_ELEMS(t); i++) {
        struct platform p = platform_from_machine(t[i].machine);
        CHECK_STREQ(p.os, "linux");
        CHECK_MSG((!p.architecture && !t[i].arch) ||
                      (p.architecture && t[i].arch && strcmp(p.architecture, t[i].arch) == 0),
                  "%s: architecture %s", t[i].machine, p.architecture ? p.architecture : "(null)");
        CHECK_MSG((!p.variant && !t[i].variant) || (p.variant && t[i].variant && strcmp(p.variant, t[i].variant) == 0),
                  "%s: variant %s", t[i].machine, p.variant ? p.variant : "(null)");
    }
    struct platform p = platform_from_machine(NULL);
    CHECK(p.architecture == NULL);

    struct utsname u;
    CHECK(uname(&u) == 0);
    struct platform h = platform_host(), known = platform_from_machine(u.machine);
    CHECK_STREQ(h.os, "linux");
    CHECK(h.architecture && *h.architecture);
    CHECK_STREQ(h.architecture, known.architecture ? known.architecture : u.machine);
    CHECK(platform_host().architecture == h.architecture); /* static, computed once */
}

/* An index of "os/arch[/variant]" entries, digests numbered by position. */
static void build_index(struct manifest *m, const char *const *plats, size_t n)
{
    char *s = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&s, &len);
    fprintf(f, "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":[", MEDIA_TYPE_OCI_INDEX);
    for (size_t i = 0; i < n; i++) {
        char os[64] = "", arch[64] = "", var[64] = "";
        sscanf(plats[i], "%63[^/]/%63[^/]/%63s", os, arch, var);
        char d[DIGEST_MAX_LEN + 1];
        digest_buffer(DIGEST_SHA256, plats[i], strlen(plats[i]), d);
        fprintf(f, "%s{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu,", i ? "," : "",
                strcmp(os, "nested") == 0 ? MEDIA_TYPE_OCI_INDEX : MEDIA_TYPE_OCI_MANIFEST, d, i);
        if (strcmp(os, "none") != 0) {
            fprintf(f, "\"platform\":{\"os\":\"%s\",\"architecture\":\"%s\"", strcmp(os, "nested") ? os : "linux",
                    arch);
            if (var[0])
                fprintf(f, ",\"variant\":\"%s\"", var);
            fprintf(f, "}");
        } else {
            fprintf(f, "\"annotations\":{}");
        }
        fprintf(f, "}");
    }
    fprintf(f, "]}");
    fclose(f);
    err_t err = ERR_INIT;
    int r = parse(NULL, s, m, &err);
    CHECK_MSG(r == 0, "build_index: %s", err.msg ? err.msg : "");
    err_clear(&err);
    free(s);
}

/* Selects `want` ("os/arch[/variant]") from the index of `plats`: expect
 * the entry at `pick` (its position), or -1 for none. */
static void expect_pick_(int line, const char *const *plats, size_t n, const char *want, int pick)
{
    struct manifest m;
    build_index(&m, plats, n);
    char os[64] = "", arch[64] = "", var[64] = "";
    sscanf(want, "%63[^/]/%63[^/]/%63s", os, arch, var);
    struct platform w = {.os = os, .architecture = arch, .variant = var[0] ? var : NULL};
    err_t err = ERR_INIT;
    const struct descriptor *d = manifest_select_platform(&m, &w, &err);
    int got = d ? (int)(d - m.manifests) : -1;
    CHECK_MSG(got == pick, "line %d: want %s: picked %d, expected %d (%s)", line, want, got, pick,
              err.msg ? err.msg : "");
    if (!d) {
        CHECK_MSG(err.code == ERR_NOT_FOUND, "line %d: code %d", line, err.code);
        CHECK_MSG(err.msg && strstr(err.msg, want), "line %d: message \"%s\" does not name %s", line,
                  err.msg ? err.msg : "", want);
    }
    err_clear(&err);
    manifest_free(&m);
}
#define EXPECT_PICK(plats, want, pick) expect_pick_(__LINE__, plats, N_ELEMS(plats), want, pick)

static void test_select_platform(void)
{
    static const char *const busybox[] = {
        "linux/amd64", "linux/arm/v5",  "linux/arm/v6", "linux/arm/v7",    "linux/arm64/v8",
        "linux/386",   "linux/ppc64le", "linux/s390x",  "unknown/unknown",
    };
    EXPECT_PICK(busybox, "linux/amd64", 0);
    EXPECT_PICK(busybox, "linux/arm64", 4);
    EXPECT_PICK(busybox, "linux/arm64/v8", 4);
    EXPECT_PICK(busybox, "linux/arm/v7", 3);
    EXPECT_PICK(busybox, "linux/arm/v6", 2);
    EXPECT_PICK(busybox, "linux/arm/v5", 1);
    EXPECT_PICK(busybox, "linux/arm", 3); /* arm without variant means v7 */
    EXPECT_PICK(busybox, "linux/arm/7", 3);
    EXPECT_PICK(busybox, "linux/arm/v8", 3); /* 32-bit on a v8 CPU: v7 */
    EXPECT_PICK(busybox, "linux/386", 5);
    EXPECT_PICK(busybox, "linux/s390x", 7);
    EXPECT_PICK(busybox, "LINUX/amd64", 0);
    EXPECT_PICK(busybox, "linux/x86_64", 0); /* aliases on our side too */
    EXPECT_PICK(busybox, "linux/aarch64", 4);
    EXPECT_PICK(busybox, "linux/riscv64", -1);
    EXPECT_PICK(busybox, "windows/amd64", -1);
    EXPECT_PICK(busybox, "linux/arm64/v9", 4); /* a v9 CPU runs v8 */
    EXPECT_PICK(busybox, "linux/amd64/v3", 0);

    /* arm fallbacks go v7 → v6 → v5, whatever the index order */
    static const char *const arm_v5_v6[] = {"linux/arm/v5", "linux/arm/v6"};
    EXPECT_PICK(arm_v5_v6, "linux/arm/v7", 1);
    EXPECT_PICK(arm_v5_v6, "linux/arm/v6", 1);
    EXPECT_PICK(arm_v5_v6, "linux/arm/v5", 0);
    static const char *const arm_v5[] = {"linux/amd64", "linux/arm/v5"};
    EXPECT_PICK(arm_v5, "linux/arm/v7", 1);
    EXPECT_PICK(arm_v5, "linux/arm/v6", 1);
    static const char *const arm_v7[] = {"linux/arm/v7", "linux/arm64"};
    EXPECT_PICK(arm_v7, "linux/arm/v6", -1); /* never newer than the CPU */
    EXPECT_PICK(arm_v7, "linux/arm/v5", -1);
    EXPECT_PICK(arm_v7, "linux/arm64/v8", 1); /* arm64 without variant is v8 */
    EXPECT_PICK(arm_v7, "linux/arm64", 1);
    static const char *const arm_novariant[] = {"linux/arm", "linux/arm/v6"};
    EXPECT_PICK(arm_novariant, "linux/arm/v7", 0);
    EXPECT_PICK(arm_novariant, "linux/arm/v6", 1);
    static const char *const arm_v8_32[] = {"linux/arm/v6", "linux/arm/v8", "linux/arm/v7"};
    EXPECT_PICK(arm_v8_32, "linux/arm/v8", 1);
    EXPECT_PICK(arm_v8_32, "linux/arm/v7", 2);
    static const char *const arm64_digit[] = {"linux/arm64/8"};
    EXPECT_PICK(arm64_digit, "linux/arm64/v8", 0);
    static const char *const arm64_v9[] = {"linux/arm64/v9"};
    EXPECT_PICK(arm64_v9, "linux/arm64/v8", -1);
    EXPECT_PICK(arm64_v9, "linux/arm64/v9", 0);

    /* amd64: variants matter only when both sides have one */
    static const char *const amd64_levels[] = {"linux/amd64/v3", "linux/amd64", "linux/amd64/v2"};
    EXPECT_PICK(amd64_levels, "linux/amd64", 1);
    EXPECT_PICK(amd64_levels, "linux/amd64/v2", 2);
    EXPECT_PICK(amd64_levels, "linux/amd64/v3", 0);
    EXPECT_PICK(amd64_levels, "linux/amd64/v4", 1);
    static const char *const amd64_v2[] = {"linux/amd64/v2"};
    EXPECT_PICK(amd64_v2, "linux/amd64", 0);
    EXPECT_PICK(amd64_v2, "linux/amd64/v3", -1);

    /* Aliases in the index, first match wins among equals */
    static const char *const aliases[] = {"linux/x86_64", "linux/aarch64", "linux/armhf", "linux/amd64"};
    EXPECT_PICK(aliases, "linux/amd64", 0);
    EXPECT_PICK(aliases, "linux/arm64/v8", 1);
    EXPECT_PICK(aliases, "linux/arm/v7", 2);

    /* Entries without a platform and nested indexes are never picked. */
    static const char *const odd[] = {"none/x", "nested/amd64", "linux/arm64"};
    EXPECT_PICK(odd, "linux/amd64", -1);
    EXPECT_PICK(odd, "linux/arm64", 2);

    /* Windows only */
    static const char *const win[] = {"windows/amd64"};
    EXPECT_PICK(win, "linux/amd64", -1);
}

static void test_select_errors(void)
{
    struct manifest m;
    err_t err = ERR_INIT;
    CHECK_OK(parse(NULL, docker_list, &m, &err));
    struct platform w = {.os = "linux", .architecture = "riscv64"};
    CHECK(manifest_select_platform(&m, &w, &err) == NULL);
    CHECK_EQ_INT(err.code, ERR_NOT_FOUND);
    CHECK_STREQ(err.msg, "no image for platform linux/riscv64 in the index; it offers linux/amd64, linux/arm64/v8, "
                         "windows/amd64 (10.0.17763.5329)");
    struct platform w2 = {.os = "linux", .architecture = "arm", .variant = "v6"};
    CHECK(manifest_select_platform(&m, &w2, &err) == NULL);
    CHECK_CONTAINS(err.msg, "no image for platform linux/arm/v6 in the index");
    const struct descriptor *d = manifest_select_platform(&m, &(struct platform){"linux", "amd64", NULL, NULL}, &err);
    CHECK(d == &m.manifests[0]);
    manifest_free(&m);

    /* Not an index */
    CHECK_OK(parse(NULL, docker_v2, &m, &err));
    CHECK(manifest_select_platform(&m, &w, &err) == NULL);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(err.msg, "not an index");
    manifest_free(&m);
    CHECK(manifest_select_platform(NULL, &w, &err) == NULL);

    /* Empty index, and one with only attestations without platform */
    CHECK_OK(parse(NULL, "{\"schemaVersion\":2,\"manifests\":[]}", &m, &err));
    CHECK(manifest_select_platform(&m, &w, &err) == NULL);
    CHECK_CONTAINS(err.msg, "it offers no image manifest with a platform");
    manifest_free(&m);

    /* A huge index gives a bounded message */
    char *s = many_manifests(1000);
    CHECK_OK(parse(NULL, s, &m, &err));
    free(s);
    CHECK(manifest_select_platform(&m, &w, &err) == NULL);
    CHECK(err.msg && strlen(err.msg) < 1200);
    CHECK_CONTAINS(err.msg, "plan9/arch0, plan9/arch1");
    CHECK_CONTAINS(err.msg, " and 976 more");
    manifest_free(&m);

    /* Hostile platform strings are escaped */
    CHECK_OK(parse(NULL,
                   "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"" MEDIA_TYPE_OCI_MANIFEST
                   "\",\"digest\":\"" D_AMD64 "\",\"size\":1,\"platform\":{\"os\":\"li\\u001bnux\","
                   "\"architecture\":\"\\u00e9\"}}]}",
                   &m, &err));
    CHECK(manifest_select_platform(&m, &w, &err) == NULL);
    CHECK_CONTAINS(err.msg, "li\\x1bnux/\\xc3\\xa9");
    CHECK(printable(err.msg));
    manifest_free(&m);

    /* want with missing fields */
    CHECK_OK(parse(NULL, docker_list, &m, &err));
    struct platform empty = {0};
    CHECK(manifest_select_platform(&m, &empty, &err) == NULL);
    CHECK_CONTAINS(err.msg, "no image for platform ?/?");
    manifest_free(&m);
    err_clear(&err);
}

int main(void)
{
    RUN(test_oci_index);
    RUN(test_docker_list);
    RUN(test_docker_v2);
    RUN(test_oci_manifest);
    RUN(test_content_type);
    RUN(test_schema1);
    RUN(test_missing_and_wrong_types);
    RUN(test_numbers_and_digests);
    RUN(test_media_types);
    RUN(test_limits);
    RUN(test_hostile_json);
    RUN(test_mutations);
    RUN(test_platform_host);
    RUN(test_select_platform);
    RUN(test_select_errors);
    return unit_summary();
}
