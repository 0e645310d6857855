/* The registry token flow (distribution's "token authentication"): a 401
 * answer carries WWW-Authenticate challenges (RFC 7235); for Bearer, the
 * client asks the realm for a token with service= and scope= parameters and
 * retries with "Authorization: Bearer <token>". Everything here parses what a
 * remote server sent, so every input is bounded and checked, and a token that
 * could break the header it is later put in is refused. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* Largest WWW-Authenticate header value parsed. */
#define AUTH_CHALLENGE_HEADER_MAX (8 * 1024)
/* Largest token endpoint answer parsed. */
#define AUTH_TOKEN_RESPONSE_MAX (1024 * 1024)
/* Largest token accepted (real ones are a few KiB of JWT). */
#define AUTH_TOKEN_MAX (64 * 1024)
/* Token lifetime bounds in seconds: the distribution spec's minimum (and
 * default), and a ceiling that keeps a cache's arithmetic far from overflow. */
#define AUTH_TOKEN_LIFETIME_MIN 60
#define AUTH_TOKEN_LIFETIME_MAX (24 * 3600)

enum auth_scheme { AUTH_SCHEME_UNKNOWN, AUTH_SCHEME_BASIC, AUTH_SCHEME_BEARER };

struct auth_challenge {
    enum auth_scheme scheme;
    char *realm, *service, *scope, *error; /* NULL when absent */
};

/* Parses a WWW-Authenticate value. A header may hold several challenges
 * ("Bearer realm=...,service=..., Basic realm=..."): the first Bearer one is
 * picked, else the first Basic one. Parameters are tokens or quoted strings
 * with backslash escapes; names are case-insensitive; unknown ones are
 * ignored; a known one given twice in the picked challenge is an error.
 * A header with only other schemes fails with -EOPNOTSUPP (ERR_UNIMPLEMENTED)
 * naming them; a malformed one with -EINVAL. On error `out` is left empty. */
int auth_challenge_parse(const char *header, struct auth_challenge *out, err_t *err);
void auth_challenge_free(struct auth_challenge *c);

/* The token request URL of a Bearer challenge: realm?service=...&scope=...
 * (or realm&... when the realm has a query already), values percent-encoded
 * except RFC 3986's unreserved characters, one scope= per scope (empty scopes
 * skipped). The realm must be an absolute http(s) URL without credentials or
 * fragment. The caller frees *out. */
int auth_token_url(const struct auth_challenge *c, const char *const *scopes, size_t n_scopes, char **out, err_t *err);

/* Parses a token endpoint's JSON answer: "token", or "access_token" when
 * "token" is absent or empty; "expires_in" in seconds (default and minimum
 * 60 per the distribution spec, capped at AUTH_TOKEN_LIFETIME_MAX);
 * "issued_at" and anything else ignored. The token must be printable ASCII
 * without spaces (it goes into an HTTP header). The caller frees *token.
 * Messages never contain the token. */
int auth_token_response_parse(const uint8_t *data, size_t len, char **token, int64_t *expires_in, err_t *err);
