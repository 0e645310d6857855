/* Registry manifests: OCI image index / Docker manifest list (one entry per
 * platform) and OCI image manifest / Docker image manifest v2 schema 2 (a
 * config blob and layer blobs). Parsed with jansson, validated as hostile
 * input: schema 1, foreign layers and non-image artifacts are refused with a
 * message saying so. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define MANIFEST_MAX_SIZE      (4u << 20)
#define MANIFEST_MAX_LAYERS    1000
#define MANIFEST_MAX_MANIFESTS 1000
#define MANIFEST_MAX_URLS      16

#define MEDIA_TYPE_OCI_INDEX       "application/vnd.oci.image.index.v1+json"
#define MEDIA_TYPE_OCI_MANIFEST    "application/vnd.oci.image.manifest.v1+json"
#define MEDIA_TYPE_OCI_CONFIG      "application/vnd.oci.image.config.v1+json"
#define MEDIA_TYPE_DOCKER_LIST     "application/vnd.docker.distribution.manifest.list.v2+json"
#define MEDIA_TYPE_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MEDIA_TYPE_DOCKER_CONFIG   "application/vnd.docker.container.image.v1+json"

enum manifest_kind {
    MANIFEST_OCI_INDEX,
    MANIFEST_DOCKER_LIST,
    MANIFEST_OCI,
    MANIFEST_DOCKER_V2,
};

struct platform {
    char *os, *architecture, *variant, *os_version;
};

struct descriptor {
    char *media_type;
    char *digest;
    int64_t size;
    struct platform platform; /* index entries */
    bool has_platform;
    char **urls;
    size_t n_urls;
};

struct manifest {
    enum manifest_kind kind;
    char *media_type;
    struct descriptor config; /* image manifests */
    struct descriptor *layers;
    size_t n_layers;
    struct descriptor *manifests; /* indexes */
    size_t n_manifests;
};

/* Parses a manifest response. content_type is the Content-Type header (may
 * be NULL or generic such as application/json); the body's mediaType is
 * authoritative when present, and both must agree when both name a manifest
 * type. Errors are ERR_INVALID_ARGUMENT (-EINVAL), or ERR_RESOURCE_EXHAUSTED
 * (-ENOMEM). On failure `out` is zeroed. */
int manifest_parse(const char *content_type, const uint8_t *data, size_t len, struct manifest *out, err_t *err);

/* Frees and zeroes; safe on a zeroed or freed manifest. */
void manifest_free(struct manifest *m);

/* The Accept header for manifest requests: both index types and both image
 * manifest types, never schema 1. */
const char *manifest_accept_header(void);

/* The node's platform: os "linux", architecture from uname(2) mapped to
 * GOARCH names (x86_64→amd64, aarch64→arm64/v8, armv7l→arm/v7, …). The
 * strings are static: do not free. */
struct platform platform_host(void);

/* The GOARCH name and variant for a uname machine string ("aarch64" →
 * arm64/v8); architecture is NULL for a machine it does not know. Static
 * strings. platform_host() is this applied to uname(2). */
struct platform platform_from_machine(const char *machine);

/* Picks the best image manifest of an index (OCI index or Docker list) for
 * `want`: same os and architecture, then the closest variant (arm64 without
 * a variant is v8; arm/v7 takes v7, then v6, then v5; amd64 ignores variants
 * unless both sides name one). Entries that are not image manifests or have
 * no platform are never picked. ERR_NOT_FOUND names the platform and lists
 * what the index offers. */
const struct descriptor *manifest_select_platform(const struct manifest *index, const struct platform *want,
                                                  err_t *err);

/* Layer media types we can unpack: OCI tar, tar+gzip, tar+zstd, Docker
 * rootfs.diff.tar.gzip. The nondistributable (OCI) and foreign (Docker)
 * variants are layers too, but manifest_parse refuses them when they carry
 * urls (they would be fetched from outside the registry). */
bool media_type_is_layer(const char *mt);
