/* The node's pod CIDR(s), as kubelet hands them over in UpdateRuntimeConfig
 * ("10.244.1.0/24" or dual-stack "10.244.1.0/24,fd00:10:244:1::/64"). The
 * built-in pod network allocates from it. It is persisted under the root
 * directory, because kubelet sends it once and does not resend it when only
 * edgecri restarts. */
#pragma once

#include <stdbool.h>

#include "util/error.h"

struct pod_cidr_store;

/* Parses and normalizes a comma-separated CIDR list: at most one IPv4 and one
 * IPv6 network, prefix lengths in range, no host bits set. Returns a heap
 * string with the canonical form ("" for an empty list). */
int pod_cidr_normalize(const char *text, char **out, err_t *err);

/* Loads `path` if it exists (a corrupt file is reported and ignored). */
struct pod_cidr_store *pod_cidr_store_open(const char *path);
void pod_cidr_store_free(struct pod_cidr_store *s);

/* The current value, "" when none was ever set. */
const char *pod_cidr_get(const struct pod_cidr_store *s);

/* Sets the value now and persists it off the loop; `done(data, err)` runs on
 * the loop thread once a write holding this value (or a newer one) is on
 * disk. Writes never overlap and the newest value always lands last. */
void pod_cidr_set(struct pod_cidr_store *s, const char *normalized, void (*done)(void *data, const err_t *err),
                  void *data);

/* Whether a write is still in flight (shutdown waits for it). */
bool pod_cidr_busy(const struct pod_cidr_store *s);
