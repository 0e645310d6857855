/* Image references ("busybox", "ghcr.io/org/app:1.2@sha256:…") parsed with
 * the Docker reference grammar and normalized the way Docker and containerd
 * do: a name without a registry is on docker.io, a single-component name on
 * docker.io is under "library/", and "latest" is the tag only when neither a
 * tag nor a digest is given. */
#pragma once

#include "util/error.h"

#define IMAGE_REF_NAME_MAX  255  /* domain + "/" + path */
#define IMAGE_REF_INPUT_MAX 1024 /* longer text is refused before any parsing */

struct image_ref {
    char *domain; /* "docker.io", "localhost:5000", "[::1]:5000" */
    char *path;   /* "library/busybox" */
    char *tag;    /* NULL when digest-only */
    char *digest; /* NULL or "sha256:…" */
};

/* Parses and normalizes `text`. On failure `out` is left zeroed and `err`
 * says what is wrong (ERR_INVALID_ARGUMENT), e.g.
 * `invalid reference "Busybox": repository name must be lowercase`.
 * A bare 64-hex image ID (or "sha256:<hex>") is refused: IDs are not names,
 * the caller resolves them. */
int image_ref_parse(const char *text, struct image_ref *out, err_t *err);

/* "docker.io/library/busybox:latest", "host/p@sha256:…", "host/p:t@sha256:…".
 * Heap strings; NULL on allocation failure or an unparsed ref. */
char *image_ref_string(const struct image_ref *r);

/* "docker.io/library/busybox" */
char *image_ref_name(const struct image_ref *r);

/* The short form for humans, as `docker images` shows it: "busybox:latest",
 * "user/app@sha256:…", "ghcr.io/o/a:1". */
char *image_ref_familiar(const struct image_ref *r);

/* Frees the strings and zeroes the struct; safe on a zeroed or freed ref. */
void image_ref_free(struct image_ref *r);
