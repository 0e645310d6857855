/* Registry mirrors, credentials and TLS settings, read from
 * /etc/edgecri/registries.yaml in k3s's registries.yaml format so a k3s
 * node's file can be reused unchanged:
 *
 *   mirrors:
 *     docker.io:                      # or "*": every registry without its own entry
 *       endpoint: ["https://mirror.example.com:5000", "http://10.0.0.5:5000/v2"]
 *       rewrite:
 *         "^library/(.*)": "mirrored/library/$1"
 *   configs:
 *     "mirror.example.com:5000":      # or "*": every host without its own entry
 *       auth: {username: u, password: p}   # or auth: base64("u:p"), or token /
 *                                          # identity_token / identitytoken
 *       tls: {ca_file: /x.pem, cert_file: /c.pem, key_file: /k.pem, insecure_skip_verify: false}
 *
 * Unlike k3s, unknown keys are errors (naming file:line and the key): a typo
 * on an edge node should stop the daemon, not silently pull from the
 * internet. Empty values (`ca_file:` as in k3s's documented template) mean
 * "not set", as they do for k3s. Secrets never appear in any message. */
#pragma once

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"

#define REGISTRIES_CONFIG_DEFAULT_PATH "/etc/edgecri/registries.yaml"

struct registry_auth {
    char *username;
    char *password;
    char *auth;           /* base64("username:password") as written; username and password are filled from it */
    char *identity_token; /* OAuth2 refresh token (keys token, identity_token or identitytoken) */
};

struct registry_tls {
    char *ca_file;
    char *cert_file;
    char *key_file;
    bool insecure_skip_verify;
};

struct registry_host_config {
    char *host; /* "mirror.example.com:5000", "10.0.0.5", "*"; lowercase */
    struct registry_auth auth;
    bool has_auth;
    struct registry_tls tls;
    bool has_tls;
};

struct registry_rewrite {
    char *pattern;     /* POSIX extended regex, unanchored */
    char *replacement; /* $1..$9 (or ${1}), $0 the whole match, $$ a literal '$' */
    regex_t re;
};

struct registry_mirror {
    char *registry;   /* "docker.io" or "*"; lowercase */
    char **endpoints; /* normalized: scheme://host[:port][/prefix], no trailing "/v2" or "/" */
    size_t n_endpoints;
    struct registry_rewrite *rewrites; /* in file order; the first that matches and gives a valid path wins */
    size_t n_rewrites;
};

struct registries_config {
    struct registry_mirror *mirrors;
    size_t n_mirrors;
    struct registry_host_config *configs;
    size_t n_configs;
};

/* Reads the file; a missing file is an empty configuration. On error `out` is
 * left empty and `err` names the file, line and key. */
int registries_config_load(const char *path, struct registries_config *out, err_t *err);

/* Same from text in memory; `name` stands for the file name in messages. */
int registries_config_load_text(const char *name, const char *text, size_t len, struct registries_config *out,
                                err_t *err);

/* Frees everything and leaves `c` empty; safe to call twice. */
void registries_config_free(struct registries_config *c);

struct registry_endpoint {
    char *url;  /* "https://mirror.example.com:5000": scheme://host[:port][/prefix], never a trailing "/v2" or "/" */
    char *host; /* "mirror.example.com:5000", for registries_host_config() and logs */
    char *repository; /* the path to request at this endpoint, after rewrites */
    bool is_mirror;   /* a server other than the registry itself */
    bool plain_http;
};

/* The endpoints to try, in order, for `registry` ("docker.io",
 * "localhost:5000", "[::1]:5000") and `repository` ("library/busybox"): the
 * endpoints of the registry's own mirror entry (or of "*" when it has none),
 * each with the entry's rewrites applied, then the registry's default
 * endpoint unless the list already holds it: "https://registry-1.docker.io"
 * for docker.io, "http://<registry>" for localhost, 127.0.0.0/8 and ::1 (as
 * containerd does), "https://<registry>" for any other. As k3s documents,
 * rewrites never apply to the default endpoint, also where it is listed among
 * the mirror endpoints. `c` may be NULL (no configuration). */
int registries_endpoints(const struct registries_config *c, const char *registry, const char *repository,
                         struct registry_endpoint **out, size_t *n, err_t *err);
void registry_endpoints_free(struct registry_endpoint *e, size_t n);

/* Config for an endpoint host: an exact "host:port" entry first, then the
 * bare host without its port; for "registry-1.docker.io" (docker.io's default
 * endpoint) then a "docker.io" entry; last the "*" entry. NULL when none
 * applies. Hosts compare case-insensitively. */
const struct registry_host_config *registries_host_config(const struct registries_config *c, const char *host);
