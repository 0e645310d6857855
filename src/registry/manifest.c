/* Registry manifests, written from the OCI image spec (image-index.md,
 * manifest.md, descriptor.md) and Docker's "Image Manifest V2, Schema 2".
 * Everything in the body is hostile: sizes, counts, digests and string
 * lengths are bounded and checked before anything else trusts them. */
#include "registry/manifest.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>

#include "util/cleanup.h"
#include "util/digest.h"

#define MEDIA_TYPE_SCHEMA1        "application/vnd.docker.distribution.manifest.v1+json"
#define MEDIA_TYPE_SCHEMA1_SIGNED "application/vnd.docker.distribution.manifest.v1+prettyjws"
#define MEDIA_TYPE_MAX            255
#define PLATFORM_FIELD_MAX        128
#define URL_MAX                   2048
#define MAX_SIZE_FIELD            ((int64_t)1 << 53) /* what every JSON reader represents exactly */
#define QUOTE_MAX                 96
#define QUOTE_BUF                 (QUOTE_MAX * 4 + 8)
#define OFFER_LIST_MAX            24 /* platforms named in a "not found" message */

#define SCHEMA1_MSG "schema 1 manifests are not supported (deprecated by Docker); push the image with a current client"

/* Renders untrusted bytes for a message: printable ASCII as is, anything
 * else as \xNN, cut after QUOTE_MAX bytes with "...". */
static void escape(char *out, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && i < QUOTE_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            out[o++] = (char)c;
        } else {
            o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
        }
    }
    if (n > QUOTE_MAX) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

/* The same in double quotes, for a NUL-terminated string. */
static void quote_str(char *out, const char *s)
{
    out[0] = '"';
    escape(out + 1, s, strnlen(s, QUOTE_MAX + 1));
    strcat(out, "\"");
}

static int invalid(err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int invalid(err_t *err, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return err_set(err, ERR_RESOURCE_EXHAUSTED, ENOMEM, "invalid manifest: out of memory");
    int r = err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "invalid manifest: %s", msg);
    free(msg);
    return r;
}

static int oom(err_t *err)
{
    return err_set(err, ERR_RESOURCE_EXHAUSTED, ENOMEM, "parsing manifest: out of memory");
}

static const char *const plain_layer_types[] = {
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
};

static const char *const foreign_layer_types[] = {
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
};

static bool in_list(const char *s, const char *const *list, size_t n)
{
    if (!s)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

static bool media_type_is_foreign_layer(const char *mt)
{
    return in_list(mt, foreign_layer_types, ARRAY_SIZE(foreign_layer_types));
}

bool media_type_is_layer(const char *mt)
{
    return in_list(mt, plain_layer_types, ARRAY_SIZE(plain_layer_types)) || media_type_is_foreign_layer(mt);
}

static bool media_type_is_image_config(const char *mt)
{
    return mt && (strcmp(mt, MEDIA_TYPE_OCI_CONFIG) == 0 || strcmp(mt, MEDIA_TYPE_DOCKER_CONFIG) == 0);
}

static bool media_type_is_image_manifest(const char *mt)
{
    return mt && (strcmp(mt, MEDIA_TYPE_OCI_MANIFEST) == 0 || strcmp(mt, MEDIA_TYPE_DOCKER_MANIFEST) == 0);
}

static const struct {
    const char *media_type;
    enum manifest_kind kind;
} kinds[] = {
    {MEDIA_TYPE_OCI_INDEX, MANIFEST_OCI_INDEX},
    {MEDIA_TYPE_DOCKER_LIST, MANIFEST_DOCKER_LIST},
    {MEDIA_TYPE_OCI_MANIFEST, MANIFEST_OCI},
    {MEDIA_TYPE_DOCKER_MANIFEST, MANIFEST_DOCKER_V2},
};

static int kind_of(const char *mt)
{
    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
        if (strcmp(mt, kinds[i].media_type) == 0)
            return (int)kinds[i].kind;
    return -1;
}

static const char *kind_media_type(enum manifest_kind k)
{
    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
        if (kinds[i].kind == k)
            return kinds[i].media_type;
    return "";
}

static bool kind_is_index(enum manifest_kind k)
{
    return k == MANIFEST_OCI_INDEX || k == MANIFEST_DOCKER_LIST;
}

static bool is_schema1(const char *mt)
{
    return strcmp(mt, MEDIA_TYPE_SCHEMA1) == 0 || strcmp(mt, MEDIA_TYPE_SCHEMA1_SIGNED) == 0;
}

const char *manifest_accept_header(void)
{
    return MEDIA_TYPE_OCI_INDEX ", " MEDIA_TYPE_OCI_MANIFEST ", " MEDIA_TYPE_DOCKER_LIST
                                ", " MEDIA_TYPE_DOCKER_MANIFEST;
}

/* The media type part of a Content-Type header, lowercased, without
 * parameters or surrounding blanks; "" when there is none. Returns false when
 * it does not fit (a hostile header). */
static bool content_type_essence(const char *ct, char *out, size_t outsz)
{
    out[0] = '\0';
    if (!ct)
        return true;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    if (n >= outsz)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = ct[i];
        out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    out[n] = '\0';
    return true;
}

/* ---- JSON helpers: each names the field it complains about. */

/* A JSON string that is non-empty, at most `max` bytes and NUL-free. */
static int get_string(json_t *v, const char *what, size_t max, const char **out, err_t *err)
{
    if (!json_is_string(v))
        return invalid(err, "%s must be a string", what);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0)
        return invalid(err, "%s is empty", what);
    if (n > max)
        return invalid(err, "%s is too long (%zu bytes, at most %zu)", what, n, max);
    if (strlen(s) != n)
        return invalid(err, "%s contains a NUL byte", what);
    *out = s;
    return 0;
}

static int dup_string(json_t *v, const char *what, size_t max, char **out, err_t *err)
{
    const char *s;
    int r = get_string(v, what, max, &s, err);
    if (r < 0)
        return r;
    *out = strdup(s);
    return *out ? 0 : oom(err);
}

/* Media types are RFC 6838 tokens: printable ASCII without blanks. */
static int get_media_type(json_t *v, const char *what, const char **out, err_t *err)
{
    int r = get_string(v, what, MEDIA_TYPE_MAX, out, err);
    if (r < 0)
        return r;
    for (const char *p = *out; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f) {
            char q[QUOTE_BUF];
            quote_str(q, *out);
            return invalid(err, "%s %s is not a media type", what, q);
        }
    }
    return 0;
}

static void platform_free(struct platform *p)
{
    free(p->os);
    free(p->architecture);
    free(p->variant);
    free(p->os_version);
    memset(p, 0, sizeof(*p));
}

static void descriptor_free(struct descriptor *d)
{
    free(d->media_type);
    free(d->digest);
    platform_free(&d->platform);
    for (size_t i = 0; i < d->n_urls; i++)
        free(d->urls[i]);
    free(d->urls);
    memset(d, 0, sizeof(*d));
}

static int parse_platform(json_t *o, const char *what, struct platform *p, err_t *err)
{
    char field[128];
    if (!json_is_object(o))
        return invalid(err, "%s.platform must be an object", what);
    static const struct {
        const char *key;
        size_t off;
        bool required;
    } fields[] = {
        {"architecture", offsetof(struct platform, architecture), true},
        {"os", offsetof(struct platform, os), true},
        {"variant", offsetof(struct platform, variant), false},
        {"os.version", offsetof(struct platform, os_version), false},
    };
    for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
        json_t *v = json_object_get(o, fields[i].key);
        snprintf(field, sizeof(field), "%s.platform.%s", what, fields[i].key);
        if (!v || json_is_null(v)) {
            if (fields[i].required)
                return invalid(err, "%s is missing", field);
            continue;
        }
        int r = dup_string(v, field, PLATFORM_FIELD_MAX, (char **)((char *)p + fields[i].off), err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* One descriptor (config, layer or index entry). `what` names it in
 * messages: "layers[3]". */
static int parse_descriptor(json_t *o, const char *what, bool index_entry, struct descriptor *d, err_t *err)
{
    char field[128], q[QUOTE_BUF];
    const char *s;
    int r;
    if (!json_is_object(o))
        return invalid(err, "%s must be an object", what);

    snprintf(field, sizeof(field), "%s.mediaType", what);
    json_t *v = json_object_get(o, "mediaType");
    if (!v)
        return invalid(err, "%s is missing", field);
    if ((r = get_media_type(v, field, &s, err)) < 0)
        return r;
    if (!(d->media_type = strdup(s)))
        return oom(err);

    snprintf(field, sizeof(field), "%s.digest", what);
    v = json_object_get(o, "digest");
    if (!v)
        return invalid(err, "%s is missing", field);
    if ((r = get_string(v, field, DIGEST_MAX_LEN + 64, &s, err)) < 0)
        return r;
    if (!digest_valid(s)) {
        quote_str(q, s);
        return invalid(err, "%s %s is not a valid digest (want sha256:<64 hex> or sha512:<128 hex>)", field, q);
    }
    if (!(d->digest = strdup(s)))
        return oom(err);

    snprintf(field, sizeof(field), "%s.size", what);
    v = json_object_get(o, "size");
    if (!v)
        return invalid(err, "%s is missing", field);
    if (!json_is_integer(v))
        return invalid(err, "%s must be an integer", field);
    json_int_t size = json_integer_value(v);
    if (size < 0)
        return invalid(err, "%s is negative (%lld)", field, (long long)size);
    if (size >= MAX_SIZE_FIELD)
        return invalid(err, "%s is too large (%lld, must be below 2^53)", field, (long long)size);
    d->size = (int64_t)size;

    v = json_object_get(o, "urls");
    if (v && !json_is_null(v)) {
        snprintf(field, sizeof(field), "%s.urls", what);
        if (!json_is_array(v))
            return invalid(err, "%s must be an array of strings", field);
        size_t n = json_array_size(v);
        if (n > MANIFEST_MAX_URLS)
            return invalid(err, "%s has %zu entries (at most %d)", field, n, MANIFEST_MAX_URLS);
        if (n > 0 && !(d->urls = calloc(n, sizeof(char *))))
            return oom(err);
        for (size_t i = 0; i < n; i++) {
            snprintf(field, sizeof(field), "%s.urls[%zu]", what, i);
            if ((r = dup_string(json_array_get(v, i), field, URL_MAX, &d->urls[i], err)) < 0)
                return r;
            d->n_urls++;
        }
    }

    if (index_entry) {
        v = json_object_get(o, "platform");
        if (v && !json_is_null(v)) {
            if ((r = parse_platform(v, what, &d->platform, err)) < 0)
                return r;
            d->has_platform = true;
        }
    }
    return 0;
}

static int parse_index(json_t *root, struct manifest *m, err_t *err)
{
    json_t *arr = json_object_get(root, "manifests");
    if (!arr)
        return invalid(err, "index has no \"manifests\" list");
    if (!json_is_array(arr))
        return invalid(err, "\"manifests\" must be an array");
    size_t n = json_array_size(arr);
    if (n > MANIFEST_MAX_MANIFESTS)
        return invalid(err, "index lists %zu manifests (at most %d)", n, MANIFEST_MAX_MANIFESTS);
    if (n > 0 && !(m->manifests = calloc(n, sizeof(*m->manifests))))
        return oom(err);
    for (size_t i = 0; i < n; i++) {
        char what[32];
        snprintf(what, sizeof(what), "manifests[%zu]", i);
        m->n_manifests++;
        int r = parse_descriptor(json_array_get(arr, i), what, true, &m->manifests[i], err);
        if (r < 0)
            return r;
    }
    return 0;
}

static int parse_image_manifest(json_t *root, struct manifest *m, err_t *err)
{
    char q[QUOTE_BUF];
    int r;
    json_t *cfg = json_object_get(root, "config");
    if (!cfg)
        return invalid(err, "image manifest has no \"config\"");
    if ((r = parse_descriptor(cfg, "config", false, &m->config, err)) < 0)
        return r;
    if (!media_type_is_image_config(m->config.media_type)) {
        quote_str(q, m->config.media_type);
        return invalid(err,
                       "not a container image: config media type %s is not an image config "
                       "(an OCI artifact such as a Helm chart or signature?)",
                       q);
    }

    json_t *arr = json_object_get(root, "layers");
    if (!arr)
        return invalid(err, "image manifest has no \"layers\" list");
    if (!json_is_array(arr))
        return invalid(err, "\"layers\" must be an array");
    size_t n = json_array_size(arr);
    if (n > MANIFEST_MAX_LAYERS)
        return invalid(err, "image has %zu layers (at most %d)", n, MANIFEST_MAX_LAYERS);
    if (n > 0 && !(m->layers = calloc(n, sizeof(*m->layers))))
        return oom(err);
    for (size_t i = 0; i < n; i++) {
        char what[32];
        snprintf(what, sizeof(what), "layers[%zu]", i);
        struct descriptor *d = &m->layers[i];
        m->n_layers++;
        if ((r = parse_descriptor(json_array_get(arr, i), what, false, d, err)) < 0)
            return r;
        quote_str(q, d->media_type);
        if (!media_type_is_layer(d->media_type))
            return invalid(err, "%s has unsupported media type %s", what, q);
        if (media_type_is_foreign_layer(d->media_type) && d->n_urls > 0)
            return invalid(err,
                           "%s (%s) must be fetched from outside the registry: foreign layers (Windows base images) "
                           "are not supported",
                           what, q);
    }
    return 0;
}

/* What the Content-Type header says: a manifest kind, or -1 when it says
 * nothing (absent, application/json, text/plain, octet-stream…). Registry
 * media types are application/vnd.*; one we do not support is refused. */
static int content_type_kind(const char *content_type, int *ct_kind, err_t *err)
{
    char ct[MEDIA_TYPE_MAX + 1], q[QUOTE_BUF];
    *ct_kind = -1;
    if (!content_type_essence(content_type, ct, sizeof(ct))) {
        quote_str(q, content_type);
        return invalid(err, "Content-Type %s is not a manifest media type", q);
    }
    if (strncmp(ct, "application/vnd.", 16) != 0)
        return 0;
    if (is_schema1(ct))
        return invalid(err, SCHEMA1_MSG);
    *ct_kind = kind_of(ct);
    if (*ct_kind < 0) {
        quote_str(q, ct);
        return invalid(err, "Content-Type %s is not a supported manifest media type", q);
    }
    return 0;
}

/* Decides the manifest kind from the header's kind and the body. */
static int decide_kind(int ct_kind, const char *content_type, json_t *root, enum manifest_kind *kind, err_t *err)
{
    char ct[MEDIA_TYPE_MAX + 1], q[QUOTE_BUF], q2[QUOTE_BUF];
    if (!content_type_essence(content_type, ct, sizeof(ct)))
        ct[0] = '\0';

    json_t *sv = json_object_get(root, "schemaVersion");
    if (!sv)
        return invalid(err, "schemaVersion is missing");
    if (!json_is_integer(sv))
        return invalid(err, "schemaVersion must be an integer");
    if (json_integer_value(sv) == 1)
        return invalid(err, SCHEMA1_MSG);
    if (json_integer_value(sv) != 2)
        return invalid(err, "unsupported schemaVersion %lld (want 2)", (long long)json_integer_value(sv));

    int body_kind = -1;
    json_t *mtv = json_object_get(root, "mediaType");
    if (mtv && !json_is_null(mtv)) {
        const char *mt;
        int r = get_media_type(mtv, "mediaType", &mt, err);
        if (r < 0)
            return r;
        if (is_schema1(mt))
            return invalid(err, SCHEMA1_MSG);
        body_kind = kind_of(mt);
        if (body_kind < 0) {
            quote_str(q, mt);
            return invalid(err, "mediaType %s is not a supported manifest type%s", q,
                           media_type_is_layer(mt) || media_type_is_image_config(mt) ? " (that is a blob)" : "");
        }
    }
    if (body_kind >= 0 && ct_kind >= 0 && body_kind != ct_kind) {
        quote_str(q, ct);
        quote_str(q2, kind_media_type((enum manifest_kind)body_kind));
        return invalid(err, "Content-Type %s does not match the mediaType %s in the body", q, q2);
    }
    if (body_kind >= 0) {
        *kind = (enum manifest_kind)body_kind;
    } else if (ct_kind >= 0) {
        *kind = (enum manifest_kind)ct_kind;
    } else {
        /* OCI made mediaType optional at first: tell by the shape. */
        bool has_manifests = json_object_get(root, "manifests") != NULL;
        bool has_config = json_object_get(root, "config") != NULL;
        if (has_manifests == has_config)
            return invalid(err, "no mediaType, and the body is neither an index (manifests) nor an image "
                                "manifest (config, layers)");
        *kind = has_manifests ? MANIFEST_OCI_INDEX : MANIFEST_OCI;
    }
    return 0;
}

void manifest_free(struct manifest *m)
{
    if (!m)
        return;
    free(m->media_type);
    descriptor_free(&m->config);
    for (size_t i = 0; i < m->n_layers; i++)
        descriptor_free(&m->layers[i]);
    free(m->layers);
    for (size_t i = 0; i < m->n_manifests; i++)
        descriptor_free(&m->manifests[i]);
    free(m->manifests);
    memset(m, 0, sizeof(*m));
}

int manifest_parse(const char *content_type, const uint8_t *data, size_t len, struct manifest *out, err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (!data || len == 0)
        return invalid(err, "empty body");
    if (len > MANIFEST_MAX_SIZE)
        return invalid(err, "%zu bytes is too large (at most %u)", len, MANIFEST_MAX_SIZE);
    /* The header first: a schema 1 body need not even be JSON we can read. */
    int ct_kind, r = content_type_kind(content_type, &ct_kind, err);
    if (r < 0)
        return r;

    json_error_t jerr;
    json_auto_t *root = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        char q[QUOTE_BUF];
        quote_str(q, jerr.text);
        return invalid(err, "not valid JSON at line %d column %d: %s", jerr.line, jerr.column, q);
    }
    if (!json_is_object(root))
        return invalid(err, "the body is not a JSON object");

    struct manifest m = {0};
    r = decide_kind(ct_kind, content_type, root, &m.kind, err);
    if (r < 0)
        return r;
    if (!(m.media_type = strdup(kind_media_type(m.kind))))
        return oom(err);
    r = kind_is_index(m.kind) ? parse_index(root, &m, err) : parse_image_manifest(root, &m, err);
    if (r < 0) {
        manifest_free(&m);
        return r;
    }
    *out = m;
    return 0;
}

/* ---- platforms */

struct arch_map {
    const char *machine; /* uname -m, or a prefix when it ends in '*' */
    const char *arch, *variant;
};

static const struct arch_map machines[] = {
    {"x86_64", "amd64", NULL},    {"amd64", "amd64", NULL},
    {"i386", "386", NULL},        {"i486", "386", NULL},
    {"i586", "386", NULL},        {"i686", "386", NULL},
    {"aarch64", "arm64", "v8"},   {"arm64", "arm64", "v8"},
    {"armv8*", "arm", "v8"}, /* 32-bit userland on a 64-bit CPU (armv8l) */
    {"armv7*", "arm", "v7"},      {"armv6*", "arm", "v6"},
    {"armv5*", "arm", "v5"},      {"ppc64le", "ppc64le", NULL},
    {"ppc64", "ppc64", NULL},     {"s390x", "s390x", NULL},
    {"riscv64", "riscv64", NULL}, {"loongarch64", "loong64", NULL},
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    {"mips64", "mips64le", NULL}, {"mips", "mipsle", NULL},
#else
    {"mips64", "mips64", NULL},   {"mips", "mips", NULL},
#endif
};

struct platform platform_from_machine(const char *machine)
{
    struct platform p = {.os = "linux"};
    if (!machine)
        return p;
    for (size_t i = 0; i < ARRAY_SIZE(machines); i++) {
        const char *m = machines[i].machine;
        size_t ml = strlen(m);
        bool match = m[ml - 1] == '*' ? strncmp(machine, m, ml - 1) == 0 : strcmp(machine, m) == 0;
        if (match) {
            p.architecture = (char *)machines[i].arch;
            p.variant = (char *)machines[i].variant;
            return p;
        }
    }
    return p;
}

static pthread_once_t host_once = PTHREAD_ONCE_INIT;
static struct platform host_platform;
static char host_machine[sizeof(((struct utsname *)0)->machine)];

static void host_init(void)
{
    struct utsname u;
    if (uname(&u) < 0)
        snprintf(u.machine, sizeof(u.machine), "unknown");
    host_platform = platform_from_machine(u.machine);
    if (!host_platform.architecture) {
        snprintf(host_machine, sizeof(host_machine), "%s", u.machine);
        host_platform.architecture = host_machine;
    }
}

struct platform platform_host(void)
{
    pthread_once(&host_once, host_init);
    return host_platform;
}

/* Architecture and variant as containerd normalizes them, so that an index
 * written with "x86_64" or "aarch64" still matches, and arm/arm64 always
 * carry their default variant. */
static void normalize_platform(const char *arch, const char *variant, const char **na, const char **nv)
{
    static const struct {
        const char *alias, *arch, *variant;
    } aliases[] = {
        {"x86_64", "amd64", NULL}, {"x86-64", "amd64", NULL}, {"aarch64", "arm64", NULL}, {"armhf", "arm", "v7"},
        {"armel", "arm", "v6"},    {"i386", "386", NULL},     {"i686", "386", NULL},
    };
    *na = arch ? arch : "";
    *nv = variant && *variant ? variant : NULL;
    for (size_t i = 0; i < ARRAY_SIZE(aliases); i++) {
        if (strcasecmp(*na, aliases[i].alias) == 0) {
            *na = aliases[i].arch;
            if (!*nv)
                *nv = aliases[i].variant;
            break;
        }
    }
    if (strcmp(*na, "arm") == 0 || strcmp(*na, "arm64") == 0) {
        static const char *const digits[] = {"v5", "v6", "v7", "v8"};
        if (*nv && (*nv)[0] >= '5' && (*nv)[0] <= '8' && (*nv)[1] == '\0')
            *nv = digits[(*nv)[0] - '5'];
        if (!*nv)
            *nv = strcmp(*na, "arm") == 0 ? "v7" : "v8";
    }
}

static bool str_eq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* How well entry platform `have` serves `want`: -1 not at all, 0 best. */
static int platform_rank(const struct platform *want, const struct platform *have)
{
    if (!want->os || !have->os || strcasecmp(want->os, have->os) != 0)
        return -1;
    const char *wa, *wv, *ha, *hv;
    normalize_platform(want->architecture, want->variant, &wa, &wv);
    normalize_platform(have->architecture, have->variant, &ha, &hv);
    if (!*wa || strcmp(wa, ha) != 0)
        return -1;
    if (strcmp(wa, "arm") == 0) {
        /* A v7 CPU runs v6 and v5 code: the newest the CPU supports wins. */
        static const char *const ladder[] = {"v8", "v7", "v6", "v5"};
        size_t start = ARRAY_SIZE(ladder);
        for (size_t i = 0; i < ARRAY_SIZE(ladder); i++)
            if (str_eq(wv, ladder[i]))
                start = i;
        if (start == ARRAY_SIZE(ladder))
            return str_eq(wv, hv) ? 0 : -1;
        for (size_t i = start; i < ARRAY_SIZE(ladder); i++)
            if (str_eq(hv, ladder[i]))
                return (int)(i - start);
        return -1;
    }
    if (strcmp(wa, "arm64") == 0) {
        if (str_eq(wv, hv))
            return 0;
        return str_eq(hv, "v8") ? 1 : -1; /* every arm64 CPU runs the v8 baseline */
    }
    /* amd64 and the rest: a variant only matters when both sides name one;
     * a generic entry is preferred over a specialized one we did not ask for. */
    if (wv && hv)
        return strcmp(wv, hv) == 0 ? 0 : -1;
    if (!wv && !hv)
        return 0;
    return 1;
}

static void append_platform(char **buf, size_t *len, size_t *cap, const struct platform *p)
{
    char q[4][QUOTE_BUF];
    const char *parts[4] = {p->os, p->architecture, p->variant, p->os_version};
    for (int i = 0; i < 4; i++) {
        q[i][0] = '\0';
        if (parts[i])
            escape(q[i], parts[i], strnlen(parts[i], QUOTE_MAX + 1));
    }
    char item[4 * QUOTE_BUF + 16];
    int n = snprintf(item, sizeof(item), "%s%s/%s%s%s%s%s%s", *len ? ", " : "", q[0], q[1], parts[2] ? "/" : "", q[2],
                     parts[3] ? " (" : "", q[3], parts[3] ? ")" : "");
    if (n < 0)
        return;
    if (*len + (size_t)n + 1 > *cap) {
        size_t nc = (*len + (size_t)n + 1) * 2;
        char *nb = realloc(*buf, nc);
        if (!nb)
            return;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, item, (size_t)n + 1);
    *len += (size_t)n;
}

const struct descriptor *manifest_select_platform(const struct manifest *index, const struct platform *want, err_t *err)
{
    if (!index || !kind_is_index(index->kind)) {
        err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "selecting a platform: the manifest is not an index");
        return NULL;
    }
    const struct descriptor *best = NULL;
    int best_rank = -1;
    for (size_t i = 0; i < index->n_manifests; i++) {
        const struct descriptor *d = &index->manifests[i];
        if (!d->has_platform || !media_type_is_image_manifest(d->media_type))
            continue;
        int rank = platform_rank(want, &d->platform);
        if (rank >= 0 && (best_rank < 0 || rank < best_rank)) {
            best = d;
            best_rank = rank;
        }
    }
    if (best)
        return best;

    _cleanup_free_ char *offers = NULL;
    size_t len = 0, cap = 0, listed = 0, more = 0;
    for (size_t i = 0; i < index->n_manifests; i++) {
        const struct descriptor *d = &index->manifests[i];
        if (!d->has_platform || !media_type_is_image_manifest(d->media_type))
            continue;
        if (listed++ < OFFER_LIST_MAX)
            append_platform(&offers, &len, &cap, &d->platform);
        else
            more++;
    }
    struct platform w = *want;
    if (!w.os)
        w.os = "?";
    if (!w.architecture)
        w.architecture = "?";
    _cleanup_free_ char *wanted = NULL;
    size_t wl = 0, wc = 0;
    append_platform(&wanted, &wl, &wc, &w);
    char more_s[48] = "";
    if (more)
        snprintf(more_s, sizeof(more_s), " and %zu more", more);
    err_set(err, ERR_NOT_FOUND, ENOENT, "no image for platform %s in the index; it offers %s%s", wanted ? wanted : "?",
            offers ? offers : "no image manifest with a platform", more_s);
    return NULL;
}
