#include "registry/auth_challenge.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>

#include "util/cleanup.h"

/* --- WWW-Authenticate (RFC 7235 section 4.1, RFC 9110 section 11) ------- */

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_token68_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("-._~+/", c) != NULL);
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

struct cursor {
    const char *s;
    size_t pos, len;
};

static void skip_ows(struct cursor *c)
{
    while (c->pos < c->len && is_ows(c->s[c->pos]))
        c->pos++;
}

static size_t token_len(const struct cursor *c)
{
    size_t n = 0;
    while (c->pos + n < c->len && is_tchar((unsigned char)c->s[c->pos + n]))
        n++;
    return n;
}

/* A quoted-string at the cursor (on its opening quote), unescaped into a new
 * string. Control characters other than HTAB are refused, as RFC 9110's
 * qdtext and quoted-pair do. */
static int quoted_string(struct cursor *c, char **out, err_t *err)
{
    size_t start = c->pos++;
    _cleanup_free_ char *v = malloc(c->len - start + 1);
    if (!v)
        return err_sys(err, ENOMEM, "parsing WWW-Authenticate");
    size_t o = 0;
    while (c->pos < c->len) {
        unsigned char ch = (unsigned char)c->s[c->pos];
        if (ch == '"') {
            c->pos++;
            v[o] = '\0';
            *out = steal_pointer(&v);
            return 0;
        }
        if (ch == '\\') {
            if (++c->pos >= c->len)
                break;
            ch = (unsigned char)c->s[c->pos];
        }
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                           "WWW-Authenticate: control character in the quoted string at offset %zu", start);
        v[o++] = (char)ch;
        c->pos++;
    }
    return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                   "WWW-Authenticate: the quoted string at offset %zu is not terminated", start);
}

/* One challenge as read; only the picked one keeps its values. */
struct parsed {
    enum auth_scheme scheme;
    char *values[4]; /* realm, service, scope, error */
};

static const char *const param_names[4] = {"realm", "service", "scope", "error"};

static void parsed_clear(struct parsed *p)
{
    for (size_t i = 0; i < ARRAY_SIZE(p->values); i++) {
        free(p->values[i]);
        p->values[i] = NULL;
    }
}

/* Schemes seen that we do not speak, for the error message. */
struct others {
    char text[160];
    size_t len;
};

static void others_add(struct others *o, const char *name, size_t n)
{
    if (o->len + n + 6 >= sizeof(o->text)) {
        if (o->len + 4 < sizeof(o->text) && !strstr(o->text, "..."))
            o->len += (size_t)snprintf(o->text + o->len, sizeof(o->text) - o->len, "%s...", o->len ? ", " : "");
        return;
    }
    o->len += (size_t)snprintf(o->text + o->len, sizeof(o->text) - o->len, "%s%.*s", o->len ? ", " : "", (int)n, name);
}

/* Reads the parameters after a scheme up to the next challenge (left at the
 * cursor) or the end. `keep` is where to store realm & co, or NULL to check
 * the syntax only. */
static int read_params(struct cursor *c, struct parsed *keep, err_t *err)
{
    bool first = true;
    for (;;) {
        skip_ows(c);
        if (c->pos >= c->len)
            return 0;
        if (c->s[c->pos] == ',') {
            c->pos++;
            first = false;
            continue;
        }
        if (first) {
            /* token68 ("Negotiate abc==") may only follow the scheme: its
             * characters, '=' padding, then the end or a comma. We use none,
             * so it is skipped. "realm=x" is not one: a value follows. */
            size_t t = c->pos;
            while (t < c->len && is_token68_char((unsigned char)c->s[t]))
                t++;
            if (t > c->pos) {
                struct cursor rest = {c->s, t, c->len};
                while (rest.pos < c->len && c->s[rest.pos] == '=')
                    rest.pos++;
                skip_ows(&rest);
                if (rest.pos >= c->len || c->s[rest.pos] == ',') {
                    c->pos = rest.pos;
                    first = false;
                    continue;
                }
            }
        }
        size_t name_at = c->pos, n = token_len(c);
        if (n == 0)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "WWW-Authenticate: unexpected character at offset %zu",
                           c->pos);
        struct cursor look = {c->s, c->pos + n, c->len};
        skip_ows(&look);
        bool has_eq = look.pos < c->len && c->s[look.pos] == '=';
        if (!has_eq)
            return 0; /* a new challenge starts here */
        c->pos = look.pos + 1;
        skip_ows(c);
        char *value = NULL;
        if (c->pos < c->len && c->s[c->pos] == '"') {
            int r = quoted_string(c, &value, err);
            if (r < 0)
                return r;
        } else {
            size_t vn = token_len(c);
            if (vn == 0)
                return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                               "WWW-Authenticate: parameter at offset %zu has no value", name_at);
            value = strndup(c->s + c->pos, vn);
            if (!value)
                return err_sys(err, ENOMEM, "parsing WWW-Authenticate");
            c->pos += vn;
        }
        first = false;
        bool stored = false;
        for (size_t i = 0; keep && i < ARRAY_SIZE(param_names); i++) {
            if (strlen(param_names[i]) != n || strncasecmp(c->s + name_at, param_names[i], n) != 0)
                continue;
            if (keep->values[i]) {
                free(value);
                return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "WWW-Authenticate: parameter %s is given twice",
                               param_names[i]);
            }
            keep->values[i] = value;
            stored = true;
        }
        if (!stored)
            free(value);
        /* After a parameter: the end, or a comma. */
        skip_ows(c);
        if (c->pos < c->len && c->s[c->pos] != ',')
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                           "WWW-Authenticate: expected ',' after the parameter at offset %zu", name_at);
    }
}

void auth_challenge_free(struct auth_challenge *c)
{
    if (!c)
        return;
    free(c->realm);
    free(c->service);
    free(c->scope);
    free(c->error);
    memset(c, 0, sizeof(*c));
}

int auth_challenge_parse(const char *header, struct auth_challenge *out, err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (!header)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "WWW-Authenticate: no header");
    size_t len = strnlen(header, AUTH_CHALLENGE_HEADER_MAX + 1);
    if (len > AUTH_CHALLENGE_HEADER_MAX)
        return err_set(err, ERR_INVALID_ARGUMENT, E2BIG, "WWW-Authenticate: header is longer than %d bytes",
                       AUTH_CHALLENGE_HEADER_MAX);

    struct cursor c = {header, 0, len};
    struct parsed bearer = {0}, basic = {0};
    struct others others = {0};
    int r = 0;
    size_t challenges = 0;
    for (;;) {
        skip_ows(&c);
        while (c.pos < len && (c.s[c.pos] == ',' || is_ows(c.s[c.pos])))
            c.pos++;
        if (c.pos >= len)
            break;
        size_t n = token_len(&c);
        if (n == 0) {
            r = err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                        "WWW-Authenticate: expected an authentication scheme at offset %zu", c.pos);
            break;
        }
        const char *name = c.s + c.pos;
        c.pos += n;
        /* A scheme is followed by the end, a comma, or spaces then its
         * parameters. */
        if (c.pos < len && c.s[c.pos] != ',' && !is_ows(c.s[c.pos])) {
            r = err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "WWW-Authenticate: unexpected character at offset %zu",
                        c.pos);
            break;
        }
        challenges++;
        struct parsed *keep = NULL;
        if (n == 6 && strncasecmp(name, "bearer", 6) == 0) {
            if (bearer.scheme == AUTH_SCHEME_UNKNOWN) {
                bearer.scheme = AUTH_SCHEME_BEARER;
                keep = &bearer;
            }
        } else if (n == 5 && strncasecmp(name, "basic", 5) == 0) {
            if (basic.scheme == AUTH_SCHEME_UNKNOWN) {
                basic.scheme = AUTH_SCHEME_BASIC;
                keep = &basic;
            }
        } else {
            others_add(&others, name, n);
        }
        r = read_params(&c, keep, err);
        if (r < 0)
            break;
    }
    if (r == 0 && challenges == 0)
        r = err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "WWW-Authenticate: no challenge in the header");
    if (r == 0 && !bearer.scheme && !basic.scheme) {
        /* Scheme names are tchar tokens: safe to quote. */
        r = err_set(err, ERR_UNIMPLEMENTED, EOPNOTSUPP,
                    "WWW-Authenticate: no supported authentication scheme (offered: %s; supported: Bearer, Basic)",
                    others.text);
    }
    if (r == 0) {
        struct parsed *p = bearer.scheme ? &bearer : &basic;
        out->scheme = p->scheme;
        out->realm = steal_pointer(&p->values[0]);
        out->service = steal_pointer(&p->values[1]);
        out->scope = steal_pointer(&p->values[2]);
        out->error = steal_pointer(&p->values[3]);
    }
    parsed_clear(&bearer);
    parsed_clear(&basic);
    return r;
}

/* --- token URL ----------------------------------------------------------- */

struct buf {
    char *p;
    size_t len, cap;
    bool failed;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* RFC 3986 percent-encoding of everything but the unreserved characters, so
 * "repository:library/busybox:pull" becomes "repository%3Alibrary%2Fbusybox%3Apull". */
static void buf_add_encoded(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char ch = *p;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
            ch == '.' || ch == '_' || ch == '~') {
            buf_add(b, (const char *)p, 1);
        } else {
            char esc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            buf_add(b, esc, 3);
        }
    }
}

/* An absolute http(s) URL with a host and nothing a token request must not
 * carry; returns NULL or what is wrong. */
static const char *realm_check(const char *realm)
{
    size_t len = strlen(realm);
    if (len == 0)
        return "is empty";
    if (len > 2048)
        return "is longer than 2048 characters";
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)realm[i];
        if (ch <= 0x20 || ch >= 0x7f)
            return "contains whitespace, control or non-ASCII characters";
    }
    const char *rest;
    if (strncasecmp(realm, "https://", 8) == 0)
        rest = realm + 8;
    else if (strncasecmp(realm, "http://", 7) == 0)
        rest = realm + 7;
    else
        return "is not an http or https URL";
    size_t host_len = strcspn(rest, "/?#");
    if (host_len == 0 || rest[0] == ':')
        return "has no host";
    if (memchr(rest, '@', host_len))
        return "holds credentials (user@host)";
    if (strchr(rest, '#'))
        return "has a fragment";
    return NULL;
}

int auth_token_url(const struct auth_challenge *c, const char *const *scopes, size_t n_scopes, char **out, err_t *err)
{
    *out = NULL;
    if (!c || c->scheme != AUTH_SCHEME_BEARER)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "token request: the challenge is not a Bearer challenge");
    if (!c->realm)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "token request: the Bearer challenge has no realm");
    const char *why = realm_check(c->realm);
    if (why)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "token request: the realm %s", why);

    struct buf b = {0};
    buf_add(&b, c->realm, strlen(c->realm));
    const char *q = strchr(c->realm, '?');
    /* The separator before the next parameter: '?' first, '&' after, none
     * when the realm already ends with one. */
    char last = c->realm[strlen(c->realm) - 1];
    bool need_sep = !q || (last != '?' && last != '&');
    char sep = q ? '&' : '?';
    if (c->service && *c->service) {
        if (need_sep)
            buf_add(&b, &sep, 1);
        buf_add(&b, "service=", 8);
        buf_add_encoded(&b, c->service);
        need_sep = true, sep = '&';
    }
    for (size_t i = 0; i < n_scopes; i++) {
        if (!scopes || !scopes[i] || !*scopes[i])
            continue;
        if (need_sep)
            buf_add(&b, &sep, 1);
        buf_add(&b, "scope=", 6);
        buf_add_encoded(&b, scopes[i]);
        need_sep = true, sep = '&';
    }
    if (b.failed) {
        free(b.p);
        return err_sys(err, ENOMEM, "building the token request URL");
    }
    *out = b.p;
    return 0;
}

/* --- token answer -------------------------------------------------------- */

static bool token_printable(const char *t)
{
    for (; *t; t++)
        if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
            return false;
    return true;
}

int auth_token_response_parse(const uint8_t *data, size_t len, char **token, int64_t *expires_in, err_t *err)
{
    *token = NULL;
    *expires_in = AUTH_TOKEN_LIFETIME_MIN;
    if (!data || len == 0)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "token answer: empty");
    if (len > AUTH_TOKEN_RESPONSE_MAX)
        return err_set(err, ERR_INVALID_ARGUMENT, EMSGSIZE, "token answer: larger than %d bytes",
                       AUTH_TOKEN_RESPONSE_MAX);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        /* jansson's text names the position and the problem, not the data. */
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "token answer: invalid JSON at line %d column %d: %s",
                       jerr.line, jerr.column, jerr.text);
    int r = 0;
    const char *t = NULL;
    if (!json_is_object(root)) {
        r = err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "token answer: not a JSON object");
        goto out;
    }
    const char *const names[] = {"token", "access_token"};
    for (size_t i = 0; i < ARRAY_SIZE(names) && !t; i++) {
        json_t *v = json_object_get(root, names[i]);
        if (!v || json_is_null(v))
            continue;
        if (!json_is_string(v)) {
            r = err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "token answer: \"%s\" is not a string", names[i]);
            goto out;
        }
        if (json_string_length(v) > 0)
            t = json_string_value(v);
    }
    if (!t) {
        r = err_set(err, ERR_UNAUTHENTICATED, EINVAL, "token answer: no \"token\" or \"access_token\"");
        goto out;
    }
    if (strlen(t) > AUTH_TOKEN_MAX) {
        r = err_set(err, ERR_INVALID_ARGUMENT, EMSGSIZE, "token answer: the token is longer than %d bytes",
                    AUTH_TOKEN_MAX);
        goto out;
    }
    if (!token_printable(t)) {
        /* It becomes "Authorization: Bearer <token>": CR, LF or spaces
         * there would let the server forge headers in our requests. */
        r = err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                    "token answer: the token contains spaces, control or non-ASCII characters");
        goto out;
    }

    int64_t lifetime = AUTH_TOKEN_LIFETIME_MIN;
    json_t *e = json_object_get(root, "expires_in");
    if (e && json_is_integer(e)) {
        json_int_t v = json_integer_value(e);
        lifetime = v < AUTH_TOKEN_LIFETIME_MIN   ? AUTH_TOKEN_LIFETIME_MIN
                   : v > AUTH_TOKEN_LIFETIME_MAX ? AUTH_TOKEN_LIFETIME_MAX
                                                 : (int64_t)v;
    } else if (e && json_is_real(e)) {
        double v = json_real_value(e);
        lifetime = !(v >= AUTH_TOKEN_LIFETIME_MIN) ? AUTH_TOKEN_LIFETIME_MIN
                   : v > AUTH_TOKEN_LIFETIME_MAX   ? AUTH_TOKEN_LIFETIME_MAX
                                                   : (int64_t)v;
    } else if (e && !json_is_null(e)) {
        r = err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "token answer: \"expires_in\" is not a number");
        goto out;
    }

    *token = strdup(t);
    if (!*token) {
        r = err_sys(err, ENOMEM, "token answer");
        goto out;
    }
    *expires_in = lifetime;
out:
    json_decref(root);
    return r;
}
