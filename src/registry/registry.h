/* The OCI distribution client: given an image reference, talk to its
 * registry — through the mirrors of registries.yaml first, then the registry
 * itself — for manifests and blobs. It handles the parts every request
 * shares: endpoint order and fallback, the Bearer/Basic auth handshake driven
 * by WWW-Authenticate, token caching, retries with backoff, and resuming an
 * interrupted blob with a Range request. It verifies nothing about content
 * beyond transport; callers check digests before they trust a byte. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "util/error.h"

struct registries_config;
struct registry_client;
struct registry_session;
struct registry_fetch;

/* Credentials from the CRI AuthConfig of a PullImage request. They apply to
 * the image's own registry, and to a mirror only when server_address names
 * that mirror. Never logged. */
struct registry_credentials {
    char *username, *password;
    char *identity_token; /* OAuth2 refresh token */
    char *registry_token; /* a ready bearer token */
    char *server_address;
};

void registry_credentials_free(struct registry_credentials *c);

struct registry_limits {
    long connect_timeout_ms;
    long low_speed_bytes, low_speed_secs;
    int max_attempts; /* per endpoint, for a request that makes no progress */
};

struct registry_client *registry_client_new(uv_loop_t *loop, err_t *err);
void registry_client_free(struct registry_client *c);
/* Replaces the registries.yaml configuration (takes ownership of cfg);
 * sessions already running keep the endpoints they resolved. */
void registry_client_set_config(struct registry_client *c, struct registries_config *cfg);
void registry_client_set_limits(struct registry_client *c, const struct registry_limits *limits);

/* A session serves one image: its endpoint list and auth state. `registry`
 * is the reference's domain ("docker.io"), `repository` its path. */
struct registry_session *registry_session_new(struct registry_client *c, const char *registry, const char *repository,
                                              const struct registry_credentials *creds, err_t *err);
/* Cancels whatever the session still has running (no callbacks). */
void registry_session_free(struct registry_session *s);
/* "docker.io/library/busybox" — for messages. */
const char *registry_session_name(const struct registry_session *s);

/* Fetches a manifest by tag or digest. body is what the registry sent (at
 * most 4 MiB); content_type its Content-Type. The endpoint that answers
 * becomes the first one tried for this session's blobs. */
typedef void (*registry_manifest_cb)(void *data, const char *content_type, const uint8_t *body, size_t len,
                                     const char *endpoint, const err_t *err);
struct registry_fetch *registry_get_manifest(struct registry_session *s, const char *tag_or_digest,
                                             registry_manifest_cb cb, void *data, err_t *err);

struct registry_blob_callbacks {
    /* Bytes in order, starting at the offset asked for (or at 0 after
     * on_restart). Return <0 to abort. */
    int (*on_data)(void *data, const uint8_t *buf, size_t len);
    /* The server ignored the Range request (or a retry moved to an endpoint
     * that did): drop what you have, bytes start again from 0. Return <0 to
     * abort. */
    int (*on_restart)(void *data);
    /* Once, unless cancelled. `endpoint` is where the blob came from. */
    void (*on_done)(void *data, const char *endpoint, const err_t *err);
};

/* Fetches a blob from `offset` on; `first_endpoint` skips the endpoints
 * before it (to move away from one that served corrupt bytes). */
struct registry_fetch *registry_get_blob(struct registry_session *s, const char *digest, uint64_t offset,
                                         size_t first_endpoint, const struct registry_blob_callbacks *cb, void *data,
                                         err_t *err);

/* How many endpoints the session has, and which one a URL belongs to
 * (SIZE_MAX if none) — to pick the next one after a corrupt blob. */
size_t registry_session_endpoints(const struct registry_session *s);
size_t registry_session_endpoint_index(const struct registry_session *s, const char *endpoint);

/* Stops a fetch; its callbacks do not run afterwards. */
void registry_fetch_cancel(struct registry_fetch *f);
