/* Image references, written from the Docker reference grammar:
 *
 *   reference  := name [ ":" tag ] [ "@" digest ]
 *   name       := [ domain "/" ] path
 *   domain     := host [ ":" port ]          host: DNS name, or [IPv6]
 *   path       := component ( "/" component )*
 *   component  := [a-z0-9]+ ( separator [a-z0-9]+ )*
 *   separator  := "." | "_" | "__" | "-"+
 *   tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
 *
 * The first component is a domain only when it looks like one ('.' or ':'
 * in it, a bracketed IPv6 literal, or "localhost"); otherwise the whole name
 * is a path on docker.io. */
#include "image/reference.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/digest.h"

#define DOCKER_DOMAIN  "docker.io"
#define DOCKER_LEGACY  "index.docker.io"
#define DOCKER_LIBRARY "library/"
#define TAG_MAX        128
#define QUOTE_MAX      96 /* bytes of hostile text shown in a message */
#define QUOTE_BUF      (QUOTE_MAX * 4 + 8)
#define REASON_BUF     (QUOTE_BUF * 2 + 256)

/* Renders untrusted bytes for a message: quoted, printable ASCII as is,
 * anything else as \xNN, cut after QUOTE_MAX bytes with "...". */
static void quote(char *out, const char *s, size_t n)
{
    size_t o = 0;
    out[o++] = '"';
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
    out[o++] = '"';
    if (n > QUOTE_MAX) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static bool is_word(char c)
{
    return is_alnum(c) || c == '_';
}

static void describe_char(char *out, size_t outsz, char c)
{
    unsigned char u = (unsigned char)c;
    if (u > 0x20 && u < 0x7f && u != '\'')
        snprintf(out, outsz, "'%c'", c);
    else
        snprintf(out, outsz, "byte 0x%02x", u);
}

/* Checks one path component; on failure writes the reason. */
static bool check_component(const char *c, size_t n, char *why, size_t whysz)
{
    char q[QUOTE_BUF];
    quote(q, c, n);
    if (!is_lower_alnum(c[0]) || !is_lower_alnum(c[n - 1])) {
        for (size_t i = 0; i < n; i++) {
            if (!is_lower_alnum(c[i]) && c[i] != '.' && c[i] != '_' && c[i] != '-') {
                char d[16];
                describe_char(d, sizeof(d), c[i]);
                snprintf(why, whysz, "invalid character %s in repository name", d);
                return false;
            }
        }
        snprintf(why, whysz, "path component %s must start and end with a lowercase letter or digit", q);
        return false;
    }
    size_t i = 0;
    while (i < n) {
        if (is_lower_alnum(c[i])) {
            i++;
            continue;
        }
        size_t s = i;
        while (i < n && (c[i] == '.' || c[i] == '_' || c[i] == '-'))
            i++;
        if (i == s) {
            char d[16];
            describe_char(d, sizeof(d), c[i]);
            snprintf(why, whysz, "invalid character %s in repository name", d);
            return false;
        }
        size_t sl = i - s;
        bool ok = (sl == 1) || (sl == 2 && c[s] == '_' && c[s + 1] == '_') ||
                  (strspn(c + s, "-") >= sl); /* only dashes, any count */
        if (!ok) {
            char sq[QUOTE_BUF];
            quote(sq, c + s, sl);
            snprintf(why, whysz, "invalid separator %s in path component %s (use '.', '_', '__' or dashes)", sq, q);
            return false;
        }
    }
    return true;
}

static bool check_path(const char *p, size_t n, char *why, size_t whysz)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] >= 'A' && p[i] <= 'Z') {
            snprintf(why, whysz, "repository name must be lowercase");
            return false;
        }
    }
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && p[i] != '/')
            continue;
        if (i == start) {
            snprintf(why, whysz, "empty path component in repository name");
            return false;
        }
        if (!check_component(p + start, i - start, why, whysz))
            return false;
        start = i + 1;
    }
    return true;
}

static bool check_port(const char *p, size_t n, char *why, size_t whysz)
{
    if (n == 0) {
        snprintf(why, whysz, "empty port after ':' in registry host");
        return false;
    }
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9' || i >= 5) {
            char q[QUOTE_BUF];
            quote(q, p, n);
            snprintf(why, whysz, "invalid port %s in registry host", q);
            return false;
        }
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v == 0 || v > 65535) {
        snprintf(why, whysz, "port %u out of range in registry host", v);
        return false;
    }
    return true;
}

static bool check_domain(const char *d, size_t n, char *why, size_t whysz)
{
    char q[QUOTE_BUF];
    quote(q, d, n);
    if (d[0] == '[') {
        const char *close = memchr(d, ']', n);
        size_t in = close ? (size_t)(close - d - 1) : 0;
        char addr[INET6_ADDRSTRLEN + 1];
        struct in6_addr a6;
        if (!close || in == 0 || in >= sizeof(addr)) {
            snprintf(why, whysz, "invalid IPv6 registry host %s", q);
            return false;
        }
        memcpy(addr, d + 1, in);
        addr[in] = '\0';
        if (strspn(addr, "0123456789abcdefABCDEF:.") != in || inet_pton(AF_INET6, addr, &a6) != 1) {
            snprintf(why, whysz, "invalid IPv6 registry host %s", q);
            return false;
        }
        size_t rest = n - in - 2;
        if (rest == 0)
            return true;
        if (close[1] != ':') {
            snprintf(why, whysz, "invalid registry host %s: junk after the IPv6 address", q);
            return false;
        }
        return check_port(close + 2, rest - 1, why, whysz);
    }
    const char *colon = memchr(d, ':', n);
    size_t hl = colon ? (size_t)(colon - d) : n;
    if (hl == 0) {
        snprintf(why, whysz, "registry host %s has a port but no host name", q);
        return false;
    }
    size_t start = 0;
    for (size_t i = 0; i <= hl; i++) {
        if (i < hl && d[i] != '.') {
            if (!is_alnum(d[i]) && d[i] != '-') {
                char c[16];
                describe_char(c, sizeof(c), d[i]);
                snprintf(why, whysz, "invalid character %s in registry host %s", c, q);
                return false;
            }
            continue;
        }
        if (i == start || d[start] == '-' || d[i - 1] == '-') {
            snprintf(why, whysz, "invalid registry host %s (labels are letters, digits and inner dashes)", q);
            return false;
        }
        start = i + 1;
    }
    return colon ? check_port(colon + 1, n - hl - 1, why, whysz) : true;
}

static bool check_tag(const char *t, size_t n)
{
    if (n == 0 || n > TAG_MAX || !is_word(t[0]))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!is_word(t[i]) && t[i] != '.' && t[i] != '-')
            return false;
    return true;
}

static bool all_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

void image_ref_free(struct image_ref *r)
{
    if (!r)
        return;
    free(r->domain);
    free(r->path);
    free(r->tag);
    free(r->digest);
    memset(r, 0, sizeof(*r));
}

int image_ref_parse(const char *text, struct image_ref *out, err_t *err)
{
    char q[QUOTE_BUF], why[REASON_BUF];
    memset(out, 0, sizeof(*out));
    if (!text)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "invalid reference: empty (none given)");
    size_t len = strnlen(text, IMAGE_REF_INPUT_MAX + 1);
    quote(q, text, len);
#define FAIL(...)                                                                                                      \
    do {                                                                                                               \
        snprintf(why, sizeof(why), __VA_ARGS__);                                                                       \
        goto fail;                                                                                                     \
    } while (0)
    if (len == 0)
        FAIL("empty");
    if (len > IMAGE_REF_INPUT_MAX)
        FAIL("name too long (more than %d bytes)", IMAGE_REF_INPUT_MAX);
    if (len == 64 && all_lower_hex(text, len))
        FAIL("a 64-character hex string is an image ID, not a name");
    if (digest_valid(text))
        FAIL("a bare digest is an image ID, not a name (write name@digest)");

    /* '@' cannot occur in a name or tag, so the first one starts the digest. */
    const char *at = memchr(text, '@', len);
    size_t nt_len = at ? (size_t)(at - text) : len;
    if (at) {
        const char *dg = at + 1;
        size_t dl = len - nt_len - 1;
        if (dl == 0)
            FAIL("empty digest after '@'");
        char dq[QUOTE_BUF];
        quote(dq, dg, dl);
        if (!digest_valid(dg))
            FAIL("invalid digest %s (want sha256:<64 hex> or sha512:<128 hex>, lowercase)", dq);
    }

    /* A ':' after the last '/' starts the tag; one before it is a port. */
    const char *colon = NULL, *slash = NULL;
    for (size_t i = 0; i < nt_len; i++) {
        if (text[i] == ':')
            colon = text + i;
        else if (text[i] == '/')
            slash = text + i;
    }
    if (colon && slash && colon < slash)
        colon = NULL;
    if (colon && !slash && text[0] == '[')
        colon = NULL; /* "[::1]" alone: a host without a path, reported below */
    size_t name_len = colon ? (size_t)(colon - text) : nt_len;
    if (colon) {
        const char *tg = colon + 1;
        size_t tl = nt_len - name_len - 1;
        if (tl == 0)
            FAIL("empty tag after ':'");
        char tq[QUOTE_BUF];
        quote(tq, tg, tl);
        if (!check_tag(tg, tl))
            FAIL("invalid tag %s (letters, digits, '_', '.', '-'; at most %d, not starting with '.' or '-')", tq,
                 TAG_MAX);
    }
    if (name_len == 0)
        FAIL("empty repository name");

    /* Domain or first path component? */
    const char *first_slash = memchr(text, '/', name_len);
    const char *domain = DOCKER_DOMAIN, *path = text;
    size_t domain_len = strlen(DOCKER_DOMAIN), path_len = name_len;
    bool explicit_domain = false;
    if (first_slash) {
        size_t fl = (size_t)(first_slash - text);
        if (memchr(text, '.', fl) || memchr(text, ':', fl) || (fl == 9 && memcmp(text, "localhost", 9) == 0) ||
            (fl > 0 && text[0] == '[')) {
            explicit_domain = true;
            domain = text;
            domain_len = fl;
            path = first_slash + 1;
            path_len = name_len - fl - 1;
        }
    } else if (text[0] == '[') {
        FAIL("registry host without a repository path");
    }
    if (explicit_domain) {
        if (!check_domain(domain, domain_len, why, sizeof(why)))
            goto fail;
        if (domain_len == strlen(DOCKER_LEGACY) && memcmp(domain, DOCKER_LEGACY, domain_len) == 0) {
            domain = DOCKER_DOMAIN;
            domain_len = strlen(DOCKER_DOMAIN);
        }
    }
    if (path_len == 0)
        FAIL("empty repository path after the registry host");
    if (!check_path(path, path_len, why, sizeof(why)))
        goto fail;

    bool is_docker = domain_len == strlen(DOCKER_DOMAIN) && memcmp(domain, DOCKER_DOMAIN, domain_len) == 0;
    bool add_library = is_docker && !memchr(path, '/', path_len);
    size_t full = domain_len + 1 + (add_library ? strlen(DOCKER_LIBRARY) : 0) + path_len;
    if (full > IMAGE_REF_NAME_MAX)
        FAIL("name too long (%zu characters, at most %d)", full, IMAGE_REF_NAME_MAX);
#undef FAIL

    struct image_ref r = {0};
    r.domain = strndup(domain, domain_len);
    if (add_library) {
        if (asprintf(&r.path, "%s%.*s", DOCKER_LIBRARY, (int)path_len, path) < 0)
            r.path = NULL;
    } else {
        r.path = strndup(path, path_len);
    }
    if (colon)
        r.tag = strndup(colon + 1, nt_len - name_len - 1);
    else if (!at)
        r.tag = strdup("latest");
    if (at)
        r.digest = strdup(at + 1);
    if (!r.domain || !r.path || (!r.tag && (colon || !at)) || (!r.digest && at)) {
        image_ref_free(&r);
        return err_set(err, ERR_RESOURCE_EXHAUSTED, ENOMEM, "parsing reference %s: out of memory", q);
    }
    *out = r;
    return 0;

fail:
    return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "invalid reference %s: %s", q, why);
}

static char *format_ref(const char *domain, const char *path, const char *tag, const char *digest)
{
    char *s = NULL;
    if (asprintf(&s, "%s%s%s%s%s%s%s", domain ? domain : "", domain ? "/" : "", path, tag ? ":" : "", tag ? tag : "",
                 digest ? "@" : "", digest ? digest : "") < 0)
        return NULL;
    return s;
}

char *image_ref_string(const struct image_ref *r)
{
    if (!r || !r->domain || !r->path)
        return NULL;
    return format_ref(r->domain, r->path, r->tag, r->digest);
}

char *image_ref_name(const struct image_ref *r)
{
    if (!r || !r->domain || !r->path)
        return NULL;
    return format_ref(r->domain, r->path, NULL, NULL);
}

char *image_ref_familiar(const struct image_ref *r)
{
    if (!r || !r->domain || !r->path)
        return NULL;
    if (strcmp(r->domain, DOCKER_DOMAIN) != 0)
        return format_ref(r->domain, r->path, r->tag, r->digest);
    const char *path = r->path;
    size_t ll = strlen(DOCKER_LIBRARY);
    if (strncmp(path, DOCKER_LIBRARY, ll) == 0 && !strchr(path + ll, '/'))
        path += ll;
    return format_ref(NULL, path, r->tag, r->digest);
}
