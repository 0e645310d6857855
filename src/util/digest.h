/* Content digests as OCI writes them: "sha256:<64 hex>" or
 * "sha512:<128 hex>", and a streaming hasher for either. Everything that
 * enters the content store is checked against one of these before it is
 * trusted. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DIGEST_MAX_LEN (7 + 128) /* "sha512:" + hex, without the NUL */

enum digest_algo {
    DIGEST_SHA256,
    DIGEST_SHA512,
};

/* Strict syntax check: known algorithm, exact length, lowercase hex. */
bool digest_valid(const char *digest);

/* Algorithm of a valid digest; -1 when invalid. */
int digest_algo_of(const char *digest);

/* The hex part of a valid digest ("sha256:ab…" → "ab…"); NULL when invalid. */
const char *digest_hex(const char *digest);

struct digester;

struct digester *digester_new(enum digest_algo algo);
void digester_update(struct digester *d, const void *data, size_t len);
/* Writes "algo:hex" into out (DIGEST_MAX_LEN + 1 bytes); the digester can
 * not be updated afterwards. */
void digester_final(struct digester *d, char *out);
void digester_free(struct digester *d);

/* One-shot: digest of a buffer. */
void digest_buffer(enum digest_algo algo, const void *data, size_t len, char *out);
