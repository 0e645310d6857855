#include "registry/registries_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "util/cleanup.h"
#include "util/log.h"

/* A registries file is a few hundred bytes; anything near this is a mistake
 * or an attack on the parser. */
#define REGISTRIES_FILE_MAX (1024 * 1024)

/* Bounds on what one file may declare: far above any real file, low enough
 * that the linear lookups and duplicate checks stay cheap. */
#define MIRRORS_MAX     1024
#define CONFIGS_MAX     1024
#define ENDPOINTS_MAX   64
#define REWRITES_MAX    64
#define ENDPOINT_MAX    2048 /* characters in an endpoint URL */
#define HOST_MAX        261  /* "host:port" or "[v6]:port" */
#define REPOSITORY_MAX  1024 /* a repository path before and after rewrites */
#define KEY_MAX         1024 /* any mapping key */
#define PATTERN_MAX     1024
#define REPLACEMENT_MAX 1024
#define SECRET_MAX      8192 /* username, password, auth, token */
#define FILE_PATH_MAX   4096
/* glibc expands counted repetitions at compile time, so "((a{255}){255}){255}"
 * costs gigabytes; the product of all counts in a pattern stays below this. */
#define REPEAT_PRODUCT_MAX 1024
/* Compiled regexes stay in memory for the daemon's life and glibc's are big
 * (about 8 KiB for "^library/(.*)", 570 KiB for "[a-z0-9]{1,255}"), so the
 * whole file shares one budget: a few MiB at worst. */
#define REWRITES_FILE_MAX      256
#define PATTERN_BYTES_FILE_MAX (16 * 1024)
#define REPEAT_FILE_MAX        2048

#define DOCKER_IO         "docker.io"
#define DOCKER_IO_DEFAULT "registry-1.docker.io"

/* --- small string helpers (ASCII only: hosts and paths are not localized) -- */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_alnum(char c)
{
    return is_digit(c) || is_alpha(c);
}

static bool is_lower_alnum(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z');
}

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static void lowercase(char *s, size_t n)
{
    for (size_t i = 0; i < n && s[i]; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            s[i] = (char)(s[i] - 'A' + 'a');
}

/* `s` made safe to quote in a message: printable ASCII kept, quotes,
 * backslashes and everything else escaped, cut short with "..." so hostile
 * input can neither flood nor garble the message. */
static const char *printable(const char *s, char *buf, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        char rep[4];
        size_t k = 0;
        if (c == '"' || c == '\\') {
            rep[k++] = '\\';
            rep[k++] = (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            rep[k++] = (char)c;
        } else {
            rep[k++] = '\\';
            rep[k++] = 'x';
            rep[k++] = hex[c >> 4];
            rep[k++] = hex[c & 15];
        }
        if (o + k + 4 > n) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(buf + o, rep, k);
        o += k;
    }
    buf[o] = '\0';
    return buf;
}

#define PRINTABLE(s) printable((s), (char[80]){0}, 80)

/* --- hosts, URLs, repository paths --------------------------------------- */

static bool port_valid(const char *s, size_t len)
{
    if (len == 0 || len > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]))
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    return v >= 1 && v <= 65535;
}

/* Length of the host part of "host[:port]" ("[::1]" keeps its brackets). */
static size_t bare_host_len(const char *s, size_t len)
{
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        return close ? (size_t)(close - s) + 1 : len;
    }
    const char *colon = memchr(s, ':', len);
    return colon ? (size_t)(colon - s) : len;
}

/* "host[:port]" as a registry name or URL authority: a DNS name or IPv4
 * address, or an IPv6 address in brackets, then an optional port 1-65535. */
static bool host_valid(const char *s, size_t len)
{
    if (len == 0 || len > HOST_MAX)
        return false;
    size_t i = 0;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        char addr[INET6_ADDRSTRLEN];
        struct in6_addr a6;
        if (!close)
            return false;
        size_t inner = (size_t)(close - s) - 1;
        if (inner == 0 || inner >= sizeof(addr))
            return false;
        memcpy(addr, s + 1, inner);
        addr[inner] = '\0';
        if (inet_pton(AF_INET6, addr, &a6) != 1)
            return false;
        i = inner + 2;
    } else {
        size_t label = 0;
        for (; i < len && s[i] != ':'; i++) {
            char c = s[i];
            if (c == '.') {
                if (label == 0 || s[i - 1] == '-')
                    return false;
                label = 0;
            } else if (is_alnum(c) || c == '-' || c == '_') {
                if (label == 0 && c == '-')
                    return false;
                if (++label > 63)
                    return false;
            } else {
                return false;
            }
        }
        if (label == 0 || s[i - 1] == '-')
            return false;
    }
    if (i == len)
        return true;
    return s[i] == ':' && port_valid(s + i + 1, len - i - 1);
}

/* localhost, 127.0.0.0/8 and ::1 (with or without a port): registries that
 * containerd, and so k3s users, reach over plain http by default. */
static bool host_is_loopback(const char *host)
{
    size_t n = bare_host_len(host, strlen(host));
    char buf[HOST_MAX + 1];
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, host, n);
    buf[n] = '\0';
    if (strcasecmp(buf, "localhost") == 0)
        return true;
    struct in_addr a4;
    if (inet_pton(AF_INET, buf, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    if (buf[0] == '[' && n > 2) {
        buf[n - 1] = '\0';
        if (inet_pton(AF_INET6, buf + 1, &a6) == 1)
            return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    }
    return false;
}

/* A repository path as registries accept it (a simplification of the
 * distribution grammar): lowercase components of [a-z0-9._-] that start and
 * end with a letter or digit, joined by single slashes. This also keeps "."
 * and ".." out of request paths. */
static bool repository_valid(const char *s, size_t len)
{
    if (len == 0 || len > REPOSITORY_MAX)
        return false;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '/') {
            if (i == start || !is_lower_alnum(s[start]) || !is_lower_alnum(s[i - 1]))
                return false;
            start = i + 1;
        } else if (!is_lower_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-') {
            return false;
        }
    }
    return true;
}

static bool path_char_valid(char c)
{
    return is_alnum(c) || strchr("-._~!$&'()*+,;=:@", c) != NULL;
}

/* Checks an endpoint URL and stores its normal form in *out: lowercase scheme
 * and host, no trailing "/" or "/v2". Returns NULL, or what is wrong with it
 * (never quoting the URL, which may hold credentials). */
static const char *endpoint_normalize(const char *s, size_t len, char **out)
{
    *out = NULL;
    if (len == 0)
        return "is empty";
    if (len > ENDPOINT_MAX)
        return "is longer than 2048 characters";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f)
            return "contains whitespace or control characters";
        if (c >= 0x80)
            return "contains non-ASCII characters (write an international host name in its xn-- form)";
    }
    const char *sep = memmem(s, len, "://", 3);
    if (!sep)
        return "has no scheme (write https://host[:port] or http://host[:port])";
    size_t scheme_len = (size_t)(sep - s);
    if (!(scheme_len == 5 && strncasecmp(s, "https", 5) == 0) && !(scheme_len == 4 && strncasecmp(s, "http", 4) == 0))
        return "has a scheme other than http or https";
    const char *a = sep + 3, *end = s + len;
    if (memchr(a, '?', (size_t)(end - a)))
        return "has a query (\"?...\"), which a registry endpoint cannot use";
    if (memchr(a, '#', (size_t)(end - a)))
        return "has a fragment (\"#...\"), which a registry endpoint cannot use";
    const char *slash = memchr(a, '/', (size_t)(end - a));
    const char *a_end = slash ? slash : end;
    if (memchr(a, '@', (size_t)(a_end - a)))
        return "holds credentials (user@host); put them under configs.<host>.auth instead";
    if (!host_valid(a, (size_t)(a_end - a)))
        return "has no valid host[:port]";

    /* "/v2" (the API root k3s users often write) and trailing slashes go;
     * any other path is a prefix the API lives under. */
    size_t plen = (size_t)(end - a_end);
    while (plen > 0 && a_end[plen - 1] == '/')
        plen--;
    if (plen >= 3 && memcmp(a_end + plen - 3, "/v2", 3) == 0)
        plen -= 3;
    while (plen > 0 && a_end[plen - 1] == '/')
        plen--;
    for (size_t i = 0; i < plen;) {
        /* a_end[i] is '/': one segment up to the next '/'. */
        size_t j = i + 1;
        while (j < plen && a_end[j] != '/') {
            if (a_end[j] == '%') {
                if (j + 2 >= plen || !is_hex(a_end[j + 1]) || !is_hex(a_end[j + 2]))
                    return "has a malformed percent-escape in its path";
                j += 3;
                continue;
            }
            if (!path_char_valid(a_end[j]))
                return "has a character in its path that must be percent-encoded";
            j++;
        }
        size_t seg = j - i - 1;
        if (seg == 0)
            return "has an empty segment (\"//\") in its path";
        if ((seg == 1 && a_end[i + 1] == '.') || (seg == 2 && a_end[i + 1] == '.' && a_end[i + 2] == '.'))
            return "has a \".\" or \"..\" segment in its path";
        i = j;
    }

    size_t host_len = (size_t)(a_end - a);
    char *u = malloc(scheme_len + 3 + host_len + plen + 1);
    if (!u)
        return "could not be stored (out of memory)";
    char *p = u;
    memcpy(p, s, scheme_len);
    lowercase(p, scheme_len);
    p += scheme_len;
    memcpy(p, "://", 3);
    p += 3;
    memcpy(p, a, host_len);
    lowercase(p, host_len);
    p += host_len;
    memcpy(p, a_end, plen);
    p[plen] = '\0';
    *out = u;
    return NULL;
}

/* "host[:port]" of a normalized URL, as a new string. */
static char *url_host(const char *url)
{
    const char *a = strstr(url, "://");
    a = a ? a + 3 : url;
    return strndup(a, strcspn(a, "/"));
}

/* --- rewrites ------------------------------------------------------------ */

/* What of Go's regexp syntax (which k3s users write) would mean something
 * else, or nothing, to POSIX ERE; and what makes glibc's regcomp blow up.
 * Returns NULL or why the pattern is refused. */
static const char *pattern_check(const char *p, size_t len, unsigned long *repeat)
{
    static const char escape_msg[] =
        "uses a backslash before a letter or digit (like \\d, \\w or \\1), which POSIX extended regular "
        "expressions do not have; write a bracket expression such as [0-9] or [a-z0-9_]";
    static const char lazy_msg[] = "uses a lazy or possessive quantifier (like *? or +?), which POSIX extended "
                                   "regular expressions do not have";
    if (len == 0)
        return "is empty";
    if (len > PATTERN_MAX)
        return "is longer than 1024 characters";
    unsigned long product = 1;
    *repeat = 1;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (c == '[') {
            /* A bracket expression: a leading ']' (after an optional '^') is
             * literal, and [:class:], [.coll.] and [=equiv=] nest. */
            size_t j = i + 1;
            if (j < len && p[j] == '^')
                j++;
            if (j < len && p[j] == ']')
                j++;
            for (; j < len && p[j] != ']'; j++) {
                if (p[j] == '\\' && j + 1 < len && is_alnum(p[j + 1]))
                    return escape_msg;
                if (p[j] == '[' && j + 1 < len && strchr(":.=", p[j + 1])) {
                    const char *close = NULL;
                    for (size_t k = j + 2; k + 1 < len; k++)
                        if (p[k] == p[j + 1] && p[k + 1] == ']') {
                            close = p + k;
                            break;
                        }
                    if (!close)
                        return NULL; /* unterminated: regcomp says so */
                    j = (size_t)(close - p) + 1;
                }
            }
            i = j;
            continue;
        }
        if (c == '\\') {
            if (i + 1 < len && is_alnum(p[i + 1]))
                return escape_msg;
            i++;
            continue;
        }
        if (c == '(' && i + 1 < len && p[i + 1] == '?')
            return "uses a (?...) group, which POSIX extended regular expressions do not have";
        if ((c == '*' || c == '+' || c == '?') && i + 1 < len && (p[i + 1] == '?' || p[i + 1] == '+'))
            return lazy_msg;
        if (c == '{') {
            /* "{n}", "{n,}", "{n,m}" or glibc's "{,m}"; anything else is
             * regcomp's to judge. */
            unsigned long n = 0, m = 0;
            size_t j = i + 1, digits = 0;
            while (j < len && is_digit(p[j])) { /* saturating: "{0000001000}" is 1000 */
                n = n > 1000000 ? n : n * 10 + (unsigned long)(p[j] - '0');
                j++;
                digits++;
            }
            if (digits == 0 && (j >= len || p[j] != ','))
                continue;
            if (j < len && p[j] == ',') {
                j++;
                while (j < len && is_digit(p[j])) {
                    m = m > 1000000 ? m : m * 10 + (unsigned long)(p[j] - '0');
                    j++;
                }
            }
            if (j >= len || p[j] != '}')
                continue;
            unsigned long bound = m > n ? m : n;
            if (bound > REPEAT_PRODUCT_MAX)
                return "repeats too much (a counted repetition may not exceed 1024)";
            product *= bound ? bound : 1;
            if (product > REPEAT_PRODUCT_MAX)
                return "repeats too much (its counted repetitions multiply to more than 1024)";
            if (j + 1 < len && (p[j + 1] == '?' || p[j + 1] == '+'))
                return lazy_msg;
            i = j;
        }
    }
    *repeat = product;
    return NULL;
}

/* Checks "$1", "${1}", "$0" and "$$" in a replacement against the number of
 * groups; any other '$' is an error (Go would read "$name" as a named group). */
static int replacement_check(const char *r, size_t n_groups, char *why, size_t why_len)
{
    for (size_t i = 0; r[i]; i++) {
        if (r[i] != '$')
            continue;
        char next = r[i + 1];
        unsigned group;
        if (next == '$') {
            i++;
            continue;
        } else if (is_digit(next)) {
            group = (unsigned)(next - '0');
            i++;
        } else if (next == '{' && is_digit(r[i + 2]) && r[i + 3] == '}') {
            group = (unsigned)(r[i + 2] - '0');
            i += 3;
        } else {
            snprintf(why, why_len,
                     "has a '$' at offset %zu that is not $1..$9, ${1}..${9} or $$ (a literal '$' is written $$)", i);
            return -EINVAL;
        }
        if (group > n_groups) {
            snprintf(why, why_len, "refers to group $%u but the pattern has %zu group%s", group, n_groups,
                     n_groups == 1 ? "" : "s");
            return -EINVAL;
        }
    }
    return 0;
}

struct outbuf {
    char *p;
    size_t len, cap;
    bool overflow;
};

static void out_append(struct outbuf *o, const char *s, size_t n)
{
    if (o->overflow || n > o->cap - o->len) {
        o->overflow = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void expand(struct outbuf *o, const char *repl, const char *in, size_t base, const regmatch_t *m)
{
    for (size_t i = 0; repl[i] && !o->overflow; i++) {
        if (repl[i] != '$') {
            out_append(o, repl + i, 1);
            continue;
        }
        unsigned g;
        if (repl[i + 1] == '$') {
            out_append(o, "$", 1);
            i++;
            continue;
        } else if (is_digit(repl[i + 1])) {
            g = (unsigned)(repl[i + 1] - '0');
            i++;
        } else { /* "${N}", validated at load */
            g = (unsigned)(repl[i + 2] - '0');
            i += 3;
        }
        if (m[g].rm_so >= 0 && m[g].rm_eo >= m[g].rm_so)
            out_append(o, in + base + (size_t)m[g].rm_so, (size_t)(m[g].rm_eo - m[g].rm_so));
    }
}

/* Replaces every non-overlapping match in `in` (as Go's ReplaceAllString,
 * which k3s uses: an empty match right after a match does not count). Returns
 * 1 with the result in `out`, 0 when nothing matched, -1 when the result is
 * not a valid repository path. */
static int rewrite_apply(const struct registry_rewrite *rw, const char *in, char *out, size_t out_size)
{
    size_t len = strlen(in), pos = 0, last_end = SIZE_MAX;
    struct outbuf o = {.p = out, .cap = out_size - 1};
    bool matched = false;
    regmatch_t m[10];
    while (pos <= len && !o.overflow) {
        if (regexec(&rw->re, in + pos, ARRAY_SIZE(m), m, pos ? REG_NOTBOL : 0) != 0)
            break;
        size_t ms = pos + (size_t)m[0].rm_so, me = pos + (size_t)m[0].rm_eo;
        if (ms == me && ms == last_end) {
            if (pos >= len)
                break;
            out_append(&o, in + pos, 1);
            pos++;
            continue;
        }
        matched = true;
        out_append(&o, in + pos, ms - pos);
        expand(&o, rw->replacement, in, pos, m);
        last_end = me;
        if (me > ms) {
            pos = me;
        } else if (me < len) {
            out_append(&o, in + me, 1);
            pos = me + 1;
        } else {
            pos = len + 1;
        }
    }
    if (!matched)
        return 0;
    if (pos < len)
        out_append(&o, in + pos, len - pos);
    if (o.overflow)
        return -1;
    out[o.len] = '\0';
    return repository_valid(out, o.len) ? 1 : -1;
}

/* --- freeing ------------------------------------------------------------- */

static void mirror_free(struct registry_mirror *m)
{
    free(m->registry);
    for (size_t i = 0; i < m->n_endpoints; i++)
        free(m->endpoints[i]);
    free(m->endpoints);
    for (size_t i = 0; i < m->n_rewrites; i++) {
        free(m->rewrites[i].pattern);
        free(m->rewrites[i].replacement);
        regfree(&m->rewrites[i].re);
    }
    free(m->rewrites);
}

/* Credentials are wiped before their memory goes back to the allocator. */
static void free_secret(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static void host_config_free(struct registry_host_config *h)
{
    free(h->host);
    free(h->auth.username);
    free_secret(h->auth.password);
    free_secret(h->auth.auth);
    free_secret(h->auth.identity_token);
    free(h->tls.ca_file);
    free(h->tls.cert_file);
    free(h->tls.key_file);
}

void registries_config_free(struct registries_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_mirrors; i++)
        mirror_free(&c->mirrors[i]);
    free(c->mirrors);
    for (size_t i = 0; i < c->n_configs; i++)
        host_config_free(&c->configs[i]);
    free(c->configs);
    memset(c, 0, sizeof(*c));
}

/* --- YAML ----------------------------------------------------------------
 * The event API, as config.c: aliases are refused (a tree with aliases can be
 * exponentially large to walk), every event carries the line a message should
 * point at, and a value of the wrong shape is refused where it starts, so no
 * nesting is ever walked that the format does not have. */

struct reader {
    yaml_parser_t parser;
    const char *name;
    err_t *err;
    struct registries_config *cfg;
    /* Spent of the file's regex budget. */
    size_t rewrites, pattern_bytes;
    unsigned long repeat;
};

static int fail(struct reader *y, size_t line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(struct reader *y, size_t line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *what = NULL;
    if (vasprintf(&what, fmt, ap) < 0)
        what = NULL;
    va_end(ap);
    return err_set(y->err, ERR_INVALID_ARGUMENT, EINVAL, "%s:%zu: %s", y->name, line, what ? what : "invalid");
}

static int nomem(struct reader *y, size_t line)
{
    return err_sys(y->err, ENOMEM, "%s:%zu", y->name, line);
}

static int next_event(struct reader *y, yaml_event_t *ev)
{
    if (yaml_parser_parse(&y->parser, ev))
        return 0;
    const yaml_parser_t *p = &y->parser;
    if (p->context && p->context_mark.line != p->problem_mark.line)
        return err_set(y->err, ERR_INVALID_ARGUMENT, EINVAL, "%s:%zu: invalid YAML: %s (%s on line %zu)", y->name,
                       p->problem_mark.line + 1, p->problem ? p->problem : "parse error", p->context,
                       p->context_mark.line + 1);
    return err_set(y->err, ERR_INVALID_ARGUMENT, EINVAL, "%s:%zu: invalid YAML: %s", y->name, p->problem_mark.line + 1,
                   p->problem ? p->problem : "parse error");
}

static bool scalar_is_null(const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    return ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (ev->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
            strcmp(v, "NULL") == 0);
}

enum node_kind { NODE_NULL, NODE_SCALAR, NODE_MAPPING, NODE_SEQUENCE };

static const char *kind_name(enum node_kind k)
{
    return k == NODE_MAPPING ? "a mapping" : k == NODE_SEQUENCE ? "a list" : "a single value";
}

/* Starts reading the value of `key` (declared on `line`). A mapping or list
 * start is consumed and the caller reads its contents; a scalar is left in
 * *ev for the caller to use and delete (for NODE_NULL too). */
static int value_start(struct reader *y, const char *key, size_t line, yaml_event_t *ev, enum node_kind *kind)
{
    int r = next_event(y, ev);
    if (r < 0)
        return r;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        if (strlen((const char *)ev->data.scalar.value) != ev->data.scalar.length) {
            yaml_event_delete(ev);
            return fail(y, line, "key %s: the value contains a NUL byte", key);
        }
        *kind = scalar_is_null(ev) ? NODE_NULL : NODE_SCALAR;
        return 0;
    case YAML_MAPPING_START_EVENT:
        yaml_event_delete(ev);
        *kind = NODE_MAPPING;
        return 0;
    case YAML_SEQUENCE_START_EVENT:
        yaml_event_delete(ev);
        *kind = NODE_SEQUENCE;
        return 0;
    case YAML_ALIAS_EVENT:
        yaml_event_delete(ev);
        return fail(y, line, "key %s: YAML aliases are not supported", key);
    default:
        yaml_event_delete(ev);
        return fail(y, line, "key %s: unexpected YAML structure", key);
    }
}

/* The next key of the mapping `where`: 1 with a copy in *key and its line,
 * 0 at the end of the mapping. */
static int next_key(struct reader *y, const char *where, char **key, size_t *line)
{
    yaml_event_t ev;
    int r = next_event(y, &ev);
    if (r < 0)
        return r;
    *line = ev.start_mark.line + 1;
    if (ev.type == YAML_MAPPING_END_EVENT) {
        yaml_event_delete(&ev);
        return 0;
    }
    if (ev.type != YAML_SCALAR_EVENT) {
        yaml_event_delete(&ev);
        return fail(y, *line, "in %s: keys must be plain strings", where);
    }
    size_t len = ev.data.scalar.length;
    if (strlen((const char *)ev.data.scalar.value) != len) {
        yaml_event_delete(&ev);
        return fail(y, *line, "in %s: a key contains a NUL byte", where);
    }
    if (len > KEY_MAX) {
        yaml_event_delete(&ev);
        return fail(y, *line, "in %s: a key is longer than %d characters", where, KEY_MAX);
    }
    *key = strndup((const char *)ev.data.scalar.value, len);
    yaml_event_delete(&ev);
    if (!*key)
        return nomem(y, *line);
    return 1;
}

static int wrong_kind(struct reader *y, size_t line, const char *key, enum node_kind got, const char *want)
{
    return fail(y, line, "key %s takes %s, not %s", key, want, kind_name(got));
}

/* A string value: NULL stays unset, as does "" (k3s's zero value). Never
 * quotes the value: it may be a secret. */
static int read_string(struct reader *y, const char *key, size_t line, size_t max, char **dst)
{
    yaml_event_t ev;
    enum node_kind kind;
    int r = value_start(y, key, line, &ev, &kind);
    if (r < 0)
        return r;
    if (kind == NODE_MAPPING || kind == NODE_SEQUENCE)
        return wrong_kind(y, line, key, kind, "a single value");
    size_t len = ev.data.scalar.length;
    if (kind == NODE_SCALAR && len > max) {
        yaml_event_delete(&ev);
        return fail(y, line, "key %s: the value is longer than %zu bytes", key, max);
    }
    if (kind == NODE_SCALAR && len > 0) {
        *dst = strndup((const char *)ev.data.scalar.value, len);
        if (!*dst) {
            yaml_event_delete(&ev);
            return nomem(y, line);
        }
    }
    yaml_event_delete(&ev);
    return 0;
}

static int read_path(struct reader *y, const char *key, size_t line, char **dst)
{
    int r = read_string(y, key, line, FILE_PATH_MAX - 1, dst);
    if (r < 0 || !*dst)
        return r;
    if ((*dst)[0] != '/')
        return fail(y, line, "key %s: \"%s\" is not an absolute path", key, PRINTABLE(*dst));
    return 0;
}

/* YAML 1.1 booleans, as k3s's YAML library reads them; null is false. */
static int read_bool(struct reader *y, const char *key, size_t line, bool *dst)
{
    static const char *const yes[] = {"true", "yes", "on", "y"};
    static const char *const no[] = {"false", "no", "off", "n"};
    yaml_event_t ev;
    enum node_kind kind;
    int r = value_start(y, key, line, &ev, &kind);
    if (r < 0)
        return r;
    if (kind == NODE_MAPPING || kind == NODE_SEQUENCE)
        return wrong_kind(y, line, key, kind, "true or false");
    const char *v = (const char *)ev.data.scalar.value;
    r = 0;
    if (kind == NODE_NULL) {
        *dst = false;
        goto out;
    }
    for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *dst = true;
            goto out;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *dst = false;
            goto out;
        }
    }
    r = fail(y, line, "key %s: \"%s\" is not a boolean (true or false)", key, PRINTABLE(v));
out:
    yaml_event_delete(&ev);
    return r;
}

/* "parent.child" for messages; cut short (never overflowing) when absurdly long. */
static void key_join(char *buf, size_t n, const char *parent, const char *child)
{
    if (snprintf(buf, n, "%s.%s", parent, child) >= (int)n)
        memcpy(buf + n - 4, "...", 4);
}

static int unknown_key(struct reader *y, size_t line, const char *where, const char *key, const char *expected)
{
    return fail(y, line, "unknown key %s%s%s (expected %s)", where ? where : "", where ? "." : "", PRINTABLE(key),
                expected);
}

static int given_twice(struct reader *y, size_t line, const char *key)
{
    return fail(y, line, "key %s is given twice", key);
}

/* "mirrors" or "configs" entry names: a registry host[:port], or "*". */
static int check_host_key(struct reader *y, size_t line, const char *section, const char *key)
{
    if (strcmp(key, "*") == 0 || host_valid(key, strlen(key)))
        return 0;
    if (strstr(key, "://"))
        return fail(y, line, "key %s.\"%s\": write the registry as host[:port], without a scheme", section,
                    PRINTABLE(key));
    return fail(y, line,
                "key %s.\"%s\": not a registry host[:port] (like docker.io or registry.example.com:5000) or \"*\"",
                section, PRINTABLE(key));
}

static int read_endpoint(struct reader *y, struct registry_mirror *m, const char *key, size_t index, size_t line,
                         const yaml_event_t *ev)
{
    if (m->n_endpoints >= ENDPOINTS_MAX)
        return fail(y, line, "key %s: more than %d endpoints", key, ENDPOINTS_MAX);
    char *url;
    const char *why = endpoint_normalize((const char *)ev->data.scalar.value, ev->data.scalar.length, &url);
    if (why)
        return fail(y, line, "key %s[%zu]: the endpoint %s", key, index, why);
    char **grown = realloc(m->endpoints, (m->n_endpoints + 1) * sizeof(*grown));
    if (!grown) {
        free(url);
        return nomem(y, line);
    }
    m->endpoints = grown;
    m->endpoints[m->n_endpoints++] = url;
    return 0;
}

static int read_endpoints(struct reader *y, struct registry_mirror *m, const char *key, size_t line)
{
    yaml_event_t ev;
    enum node_kind kind;
    int r = value_start(y, key, line, &ev, &kind);
    if (r < 0)
        return r;
    if (kind == NODE_NULL || kind == NODE_SCALAR) {
        /* One URL without the list brackets means what it says. */
        if (kind == NODE_SCALAR)
            r = read_endpoint(y, m, key, 0, line, &ev);
        yaml_event_delete(&ev);
        return r;
    }
    if (kind == NODE_MAPPING)
        return wrong_kind(y, line, key, kind, "a list of URLs");
    for (size_t index = 0;; index++) {
        r = next_event(y, &ev);
        if (r < 0)
            return r;
        size_t item_line = ev.start_mark.line + 1;
        switch (ev.type) {
        case YAML_SEQUENCE_END_EVENT:
            yaml_event_delete(&ev);
            return 0;
        case YAML_SCALAR_EVENT:
            if (strlen((const char *)ev.data.scalar.value) != ev.data.scalar.length)
                r = fail(y, item_line, "key %s[%zu]: the value contains a NUL byte", key, index);
            else if (scalar_is_null(&ev))
                r = fail(y, item_line, "key %s[%zu] is empty", key, index);
            else
                r = read_endpoint(y, m, key, index, item_line, &ev);
            break;
        case YAML_ALIAS_EVENT:
            r = fail(y, item_line, "key %s[%zu]: YAML aliases are not supported", key, index);
            break;
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
            r = fail(y, item_line, "key %s[%zu] must be a URL, not %s", key, index,
                     ev.type == YAML_MAPPING_START_EVENT ? "a mapping" : "a list");
            break;
        default:
            r = fail(y, item_line, "key %s[%zu]: unexpected YAML structure", key, index);
            break;
        }
        yaml_event_delete(&ev);
        if (r < 0)
            return r;
    }
}

static int read_rewrite(struct reader *y, struct registry_mirror *m, const char *key, size_t line, char *pattern)
{
    _cleanup_free_ char *owned_pattern = pattern;
    char path[KEY_MAX + 128];
    snprintf(path, sizeof(path), "%s.\"%s\"", key, PRINTABLE(pattern));
    for (size_t i = 0; i < m->n_rewrites; i++)
        if (strcmp(m->rewrites[i].pattern, pattern) == 0)
            return given_twice(y, line, path);
    if (m->n_rewrites >= REWRITES_MAX)
        return fail(y, line, "key %s: more than %d rewrites", key, REWRITES_MAX);
    unsigned long repeat;
    const char *why = pattern_check(pattern, strlen(pattern), &repeat);
    if (why)
        return fail(y, line, "key %s: the regular expression %s", path, why);
    if (y->rewrites + 1 > REWRITES_FILE_MAX || y->pattern_bytes + strlen(pattern) > PATTERN_BYTES_FILE_MAX ||
        y->repeat + repeat > REPEAT_FILE_MAX)
        return fail(y, line,
                    "key %s: the file's rewrites are too many or too large together (at most %d rewrites, %d "
                    "characters of patterns and %d counted repetitions in all)",
                    path, REWRITES_FILE_MAX, PATTERN_BYTES_FILE_MAX, REPEAT_FILE_MAX);

    _cleanup_free_ char *replacement = NULL;
    yaml_event_t ev;
    enum node_kind kind;
    int r = value_start(y, path, line, &ev, &kind);
    if (r < 0)
        return r;
    if (kind == NODE_MAPPING || kind == NODE_SEQUENCE)
        return wrong_kind(y, line, path, kind, "a replacement string");
    if (kind == NODE_NULL) {
        yaml_event_delete(&ev);
        return fail(y, line, "key %s needs a replacement (write \"\" to delete what matches)", path);
    }
    if (ev.data.scalar.length > REPLACEMENT_MAX) {
        yaml_event_delete(&ev);
        return fail(y, line, "key %s: the replacement is longer than %d characters", path, REPLACEMENT_MAX);
    }
    replacement = strndup((const char *)ev.data.scalar.value, ev.data.scalar.length);
    yaml_event_delete(&ev);
    if (!replacement)
        return nomem(y, line);

    regex_t re;
    int rc = regcomp(&re, pattern, REG_EXTENDED);
    if (rc != 0) {
        char msg[256];
        regerror(rc, &re, msg, sizeof(msg));
        return fail(y, line, "key %s: invalid regular expression: %s", path, msg);
    }
    char why_buf[160];
    if (replacement_check(replacement, re.re_nsub, why_buf, sizeof(why_buf)) < 0) {
        regfree(&re);
        return fail(y, line, "key %s: the replacement %s", path, why_buf);
    }
    struct registry_rewrite *grown = realloc(m->rewrites, (m->n_rewrites + 1) * sizeof(*grown));
    if (!grown) {
        regfree(&re);
        return nomem(y, line);
    }
    m->rewrites = grown;
    y->rewrites++;
    y->pattern_bytes += strlen(pattern);
    y->repeat += repeat;
    m->rewrites[m->n_rewrites++] = (struct registry_rewrite){
        .pattern = steal_pointer(&owned_pattern),
        .replacement = steal_pointer(&replacement),
        .re = re,
    };
    return 0;
}

static int read_rewrites(struct reader *y, struct registry_mirror *m, const char *key, size_t line)
{
    yaml_event_t ev;
    enum node_kind kind;
    int r = value_start(y, key, line, &ev, &kind);
    if (r < 0)
        return r;
    if (kind == NODE_NULL || kind == NODE_SCALAR) {
        yaml_event_delete(&ev);
        if (kind == NODE_NULL)
            return 0;
    }
    if (kind != NODE_MAPPING)
        return wrong_kind(y, line, key, kind, "a mapping of regular expression to replacement");
    for (;;) {
        char *pattern;
        size_t pline;
        r = next_key(y, key, &pattern, &pline);
        if (r <= 0)
            return r;
        r = read_rewrite(y, m, key, pline, pattern);
        if (r < 0)
            return r;
    }
}

static int read_mirror(struct reader *y, size_t index, const char *key, size_t line)
{
    yaml_event_t ev;
    enum node_kind kind;
    int r = value_start(y, key, line, &ev, &kind);
    if (r < 0)
        return r;
    if (kind == NODE_NULL || kind == NODE_SCALAR) {
        yaml_event_delete(&ev);
        if (kind == NODE_NULL)
            return 0;
    }
    if (kind != NODE_MAPPING)
        return wrong_kind(y, line, key, kind, "a mapping (endpoint, rewrite)");
    bool seen_endpoint = false, seen_rewrite = false;
    for (;;) {
        _cleanup_free_ char *name = NULL;
        size_t kline;
        r = next_key(y, key, &name, &kline);
        if (r <= 0)
            return r;
        char path[KEY_MAX + 64];
        key_join(path, sizeof(path), key, name);
        struct registry_mirror *m = &y->cfg->mirrors[index];
        if (strcmp(name, "endpoint") == 0) {
            if (seen_endpoint)
                return given_twice(y, kline, path);
            seen_endpoint = true;
            r = read_endpoints(y, m, path, kline);
        } else if (strcmp(name, "rewrite") == 0) {
            if (seen_rewrite)
                return given_twice(y, kline, path);
            seen_rewrite = true;
            r = read_rewrites(y, m, path, kline);
        } else {
            r = unknown_key(y, kline, key, name, "endpoint or rewrite");
        }
        if (r < 0)
            return r;
    }
}

static int read_mirrors(struct reader *y, size_t line)
{
    yaml_event_t ev;
    enum node_kind kind;
    int r = value_start(y, "mirrors", line, &ev, &kind);
    if (r < 0)
        return r;
    if (kind == NODE_NULL || kind == NODE_SCALAR) {
        yaml_event_delete(&ev);
        if (kind == NODE_NULL)
            return 0;
    }
    if (kind != NODE_MAPPING)
        return wrong_kind(y, line, "mirrors", kind, "a mapping of registry names");
    struct registries_config *c = y->cfg;
    for (;;) {
        _cleanup_free_ char *name = NULL;
        size_t kline;
        r = next_key(y, "mirrors", &name, &kline);
        if (r <= 0)
            return r;
        r = check_host_key(y, kline, "mirrors", name);
        if (r < 0)
            return r;
        lowercase(name, SIZE_MAX);
        char path[KEY_MAX + 64];
        snprintf(path, sizeof(path), "mirrors.\"%s\"", name);
        for (size_t i = 0; i < c->n_mirrors; i++)
            if (strcmp(c->mirrors[i].registry, name) == 0)
                return given_twice(y, kline, path);
        if (c->n_mirrors >= MIRRORS_MAX)
            return fail(y, kline, "key mirrors: more than %d registries", MIRRORS_MAX);
        struct registry_mirror *grown = realloc(c->mirrors, (c->n_mirrors + 1) * sizeof(*grown));
        if (!grown)
            return nomem(y, kline);
        c->mirrors = grown;
        c->mirrors[c->n_mirrors] = (struct registry_mirror){.registry = steal_pointer(&name)};
        r = read_mirror(y, c->n_mirrors++, path, kline);
        if (r < 0)
            return r;
    }
}

/* base64 (standard alphabet, padding optional) into `out` (at least
 * len / 4 * 3 + 3 bytes); -1 when it is not base64. */
static ssize_t base64_decode(const char *in, size_t len, unsigned char *out)
{
    while (len > 0 && in[len - 1] == '=')
        len--;
    if (len % 4 == 1)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        int v = c >= 'A' && c <= 'Z'   ? c - 'A'
                : c >= 'a' && c <= 'z' ? c - 'a' + 26
                : is_digit(c)          ? c - '0' + 52
                : c == '+'             ? 62
                : c == '/'             ? 63
                                       : -1;
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        if (i % 4 == 3) {
            out[o++] = (unsigned char)(acc >> 16);
            out[o++] = (unsigned char)(acc >> 8);
            out[o++] = (unsigned char)acc;
            acc = 0;
        }
    }
    if (len % 4 == 2) {
        out[o++] = (unsigned char)(acc >> 4);
    } else if (len % 4 == 3) {
        out[o++] = (unsigned char)(acc >> 10);
        out[o++] = (unsigned char)(acc >> 2);
    }
    return (ssize_t)o;
}

/* Checks the auth section as a whole and fills username and password from
 * `auth`. Messages name keys, never values. */
static int finish_auth(struct reader *y, struct registry_auth *a, const char *key, size_t auth_line,
                       size_t username_line, size_t password_line)
{
    if (a->auth) {
        size_t len = strlen(a->auth);
        _cleanup_free_ unsigned char *raw = malloc(len / 4 * 3 + 4);
        if (!raw)
            return nomem(y, auth_line);
        ssize_t n = base64_decode(a->auth, len, raw);
        const char *why = NULL;
        char *colon = NULL;
        if (n < 0)
            why = "is not valid base64";
        else if (memchr(raw, '\0', (size_t)n))
            why = "decodes to text with a NUL byte";
        else if (!(colon = memchr(raw, ':', (size_t)n)) || colon == (char *)raw)
            why = "does not decode to \"username:password\"";
        if (why) {
            if (n > 0)
                explicit_bzero(raw, (size_t)n);
            return fail(y, auth_line, "key %s.auth %s", key, why);
        }
        char *user = strndup((char *)raw, (size_t)(colon - (char *)raw));
        char *pass = strndup(colon + 1, (size_t)n - (size_t)(colon - (char *)raw) - 1);
        explicit_bzero(raw, (size_t)n);
        if (!user || !pass) {
            free(user);
            free_secret(pass);
            return nomem(y, auth_line);
        }
        bool disagree =
            (a->username && strcmp(a->username, user) != 0) || (a->password && strcmp(a->password, pass) != 0);
        if (!a->username)
            a->username = steal_pointer(&user);
        if (!a->password)
            a->password = steal_pointer(&pass);
        free(user);
        free_secret(pass);
        if (disagree)
            return fail(y, auth_line, "key %s.auth disagrees with the username or password given next to it", key);
    }
    if (a->password && !a->username)
        return fail(y, password_line, "key %s.password is given without a username", key);
    if (a->username && strchr(a->username, ':'))
        return fail(y, username_line,
                    "key %s.username must not contain ':' (HTTP basic authentication cannot carry it)", key);
    return 0;
}

static int read_auth(struct reader *y, struct registry_host_config *h, const char *key, size_t line)
{
    yaml_event_t ev;
    enum node_kind kind;
    int r = value_start(y, key, line, &ev, &kind);
    if (r < 0)
        return r;
    if (kind == NODE_NULL || kind == NODE_SCALAR) {
        yaml_event_delete(&ev); /* never quoted: it may be a secret */
        if (kind == NODE_NULL)
            return 0;
    }
    if (kind != NODE_MAPPING)
        return wrong_kind(y, line, key, kind, "a mapping (username, password, auth, token)");
    struct registry_auth *a = &h->auth;
    bool seen[4] = {false};
    size_t lines[4] = {line, line, line, line};
    const char *token_key = NULL;
    for (;;) {
        _cleanup_free_ char *name = NULL;
        size_t kline;
        r = next_key(y, key, &name, &kline);
        if (r < 0)
            return r;
        if (r == 0)
            break;
        char path[KEY_MAX + 64];
        key_join(path, sizeof(path), key, name);
        int field;
        char **dst;
        if (strcmp(name, "username") == 0) {
            field = 0, dst = &a->username;
        } else if (strcmp(name, "password") == 0) {
            field = 1, dst = &a->password;
        } else if (strcmp(name, "auth") == 0) {
            field = 2, dst = &a->auth;
        } else if (strcmp(name, "identity_token") == 0 || strcmp(name, "identitytoken") == 0 ||
                   strcmp(name, "token") == 0) {
            /* k3s documents "token"; its YAML struct says identity_token;
             * containerd's TOML says identitytoken. All are the same. */
            field = 3, dst = &a->identity_token;
            if (seen[3] && strcmp(token_key, name) != 0)
                return fail(y, kline, "key %s: the identity token is given twice (as %s and %s)", path, token_key,
                            name);
            token_key = name[0] == 't' ? "token" : name[8] == '_' ? "identity_token" : "identitytoken";
        } else {
            return unknown_key(y, kline, key, name, "username, password, auth, token or identity_token");
        }
        if (seen[field])
            return given_twice(y, kline, path);
        seen[field] = true;
        lines[field] = kline;
        r = read_string(y, path, kline, SECRET_MAX, dst);
        if (r < 0)
            return r;
    }
    r = finish_auth(y, a, key, lines[2], lines[0], lines[1]);
    if (r < 0)
        return r;
    h->has_auth = a->username || a->password || a->auth || a->identity_token;
    return 0;
}

static int read_tls(struct reader *y, struct registry_host_config *h, const char *key, size_t line)
{
    yaml_event_t ev;
    enum node_kind kind;
    int r = value_start(y, key, line, &ev, &kind);
    if (r < 0)
        return r;
    if (kind == NODE_NULL || kind == NODE_SCALAR) {
        yaml_event_delete(&ev);
        if (kind == NODE_NULL)
            return 0;
    }
    if (kind != NODE_MAPPING)
        return wrong_kind(y, line, key, kind, "a mapping (ca_file, cert_file, key_file, insecure_skip_verify)");
    struct registry_tls *t = &h->tls;
    bool seen[4] = {false}, insecure_set = false;
    size_t cert_line = line, key_line = line;
    for (;;) {
        _cleanup_free_ char *name = NULL;
        size_t kline;
        r = next_key(y, key, &name, &kline);
        if (r < 0)
            return r;
        if (r == 0)
            break;
        char path[KEY_MAX + 64];
        key_join(path, sizeof(path), key, name);
        int field;
        if (strcmp(name, "ca_file") == 0)
            field = 0;
        else if (strcmp(name, "cert_file") == 0)
            field = 1, cert_line = kline;
        else if (strcmp(name, "key_file") == 0)
            field = 2, key_line = kline;
        else if (strcmp(name, "insecure_skip_verify") == 0)
            field = 3;
        else
            return unknown_key(y, kline, key, name, "ca_file, cert_file, key_file or insecure_skip_verify");
        if (seen[field])
            return given_twice(y, kline, path);
        seen[field] = true;
        switch (field) {
        case 0:
            r = read_path(y, path, kline, &t->ca_file);
            break;
        case 1:
            r = read_path(y, path, kline, &t->cert_file);
            break;
        case 2:
            r = read_path(y, path, kline, &t->key_file);
            break;
        default:
            r = read_bool(y, path, kline, &t->insecure_skip_verify);
            insecure_set = true;
            break;
        }
        if (r < 0)
            return r;
    }
    if (t->cert_file && !t->key_file)
        return fail(y, cert_line, "key %s.cert_file is given without key_file (a client certificate needs its key)",
                    key);
    if (t->key_file && !t->cert_file)
        return fail(y, key_line, "key %s.key_file is given without cert_file (a client key needs its certificate)",
                    key);
    h->has_tls = t->ca_file || t->cert_file || t->key_file || insecure_set;
    return 0;
}

static int read_host_config(struct reader *y, size_t index, const char *key, size_t line)
{
    yaml_event_t ev;
    enum node_kind kind;
    int r = value_start(y, key, line, &ev, &kind);
    if (r < 0)
        return r;
    if (kind == NODE_NULL || kind == NODE_SCALAR) {
        yaml_event_delete(&ev);
        if (kind == NODE_NULL)
            return 0;
    }
    if (kind != NODE_MAPPING)
        return wrong_kind(y, line, key, kind, "a mapping (auth, tls)");
    bool seen_auth = false, seen_tls = false;
    for (;;) {
        _cleanup_free_ char *name = NULL;
        size_t kline;
        r = next_key(y, key, &name, &kline);
        if (r <= 0)
            return r;
        char path[KEY_MAX + 64];
        key_join(path, sizeof(path), key, name);
        struct registry_host_config *h = &y->cfg->configs[index];
        if (strcmp(name, "auth") == 0) {
            if (seen_auth)
                return given_twice(y, kline, path);
            seen_auth = true;
            r = read_auth(y, h, path, kline);
        } else if (strcmp(name, "tls") == 0) {
            if (seen_tls)
                return given_twice(y, kline, path);
            seen_tls = true;
            r = read_tls(y, h, path, kline);
        } else {
            r = unknown_key(y, kline, key, name, "auth or tls");
        }
        if (r < 0)
            return r;
    }
}

static int read_configs(struct reader *y, size_t line)
{
    yaml_event_t ev;
    enum node_kind kind;
    int r = value_start(y, "configs", line, &ev, &kind);
    if (r < 0)
        return r;
    if (kind == NODE_NULL || kind == NODE_SCALAR) {
        yaml_event_delete(&ev);
        if (kind == NODE_NULL)
            return 0;
    }
    if (kind != NODE_MAPPING)
        return wrong_kind(y, line, "configs", kind, "a mapping of registry hosts");
    struct registries_config *c = y->cfg;
    for (;;) {
        _cleanup_free_ char *name = NULL;
        size_t kline;
        r = next_key(y, "configs", &name, &kline);
        if (r <= 0)
            return r;
        r = check_host_key(y, kline, "configs", name);
        if (r < 0)
            return r;
        lowercase(name, SIZE_MAX);
        char path[KEY_MAX + 64];
        snprintf(path, sizeof(path), "configs.\"%s\"", name);
        for (size_t i = 0; i < c->n_configs; i++)
            if (strcmp(c->configs[i].host, name) == 0)
                return given_twice(y, kline, path);
        if (c->n_configs >= CONFIGS_MAX)
            return fail(y, kline, "key configs: more than %d hosts", CONFIGS_MAX);
        struct registry_host_config *grown = realloc(c->configs, (c->n_configs + 1) * sizeof(*grown));
        if (!grown)
            return nomem(y, kline);
        c->configs = grown;
        c->configs[c->n_configs] = (struct registry_host_config){.host = steal_pointer(&name)};
        r = read_host_config(y, c->n_configs++, path, kline);
        if (r < 0)
            return r;
    }
}

static int read_root(struct reader *y)
{
    bool seen_mirrors = false, seen_configs = false;
    for (;;) {
        _cleanup_free_ char *name = NULL;
        size_t line;
        int r = next_key(y, "the top level", &name, &line);
        if (r <= 0)
            return r;
        if (strcmp(name, "mirrors") == 0) {
            if (seen_mirrors)
                return given_twice(y, line, "mirrors");
            seen_mirrors = true;
            r = read_mirrors(y, line);
        } else if (strcmp(name, "configs") == 0) {
            if (seen_configs)
                return given_twice(y, line, "configs");
            seen_configs = true;
            r = read_configs(y, line);
        } else {
            r = unknown_key(y, line, NULL, name, "mirrors or configs");
        }
        if (r < 0)
            return r;
    }
}

static int read_yaml(struct reader *y, const char *text, size_t len)
{
    if (!yaml_parser_initialize(&y->parser))
        return err_sys(y->err, ENOMEM, "%s: initializing the YAML parser", y->name);
    yaml_parser_set_input_string(&y->parser, (const unsigned char *)text, len);

    int r = 0, documents = 0;
    for (bool done = false; !done && r == 0;) {
        yaml_event_t ev;
        r = next_event(y, &ev);
        if (r < 0)
            break;
        size_t line = ev.start_mark.line + 1;
        switch (ev.type) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++documents > 1)
                r = fail(y, line, "only one YAML document is allowed");
            break;
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_MAPPING_START_EVENT:
            r = read_root(y);
            break;
        case YAML_SCALAR_EVENT:
            /* An empty document (only comments, or "~") configures nothing. */
            if (!scalar_is_null(&ev))
                r = fail(y, line, "the registries configuration must be a mapping (mirrors, configs)");
            break;
        case YAML_ALIAS_EVENT:
            r = fail(y, line, "YAML aliases are not supported");
            break;
        default:
            r = fail(y, line, "the registries configuration must be a mapping (mirrors, configs)");
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&y->parser);
    return r;
}

int registries_config_load_text(const char *name, const char *text, size_t len, struct registries_config *out,
                                err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (len > REGISTRIES_FILE_MAX)
        return err_set(err, ERR_INVALID_ARGUMENT, EFBIG, "%s: registries configuration is larger than %d bytes", name,
                       REGISTRIES_FILE_MAX);
    if (len > 0 && memchr(text, '\0', len))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s: registries configuration contains a NUL byte", name);
    struct reader y = {.name = name, .err = err, .cfg = out};
    int r = read_yaml(&y, text, len);
    if (r < 0)
        registries_config_free(out);
    return r;
}

int registries_config_load(const char *path, struct registries_config *out, err_t *err)
{
    memset(out, 0, sizeof(*out));
    /* O_NONBLOCK: a FIFO planted at the path must not hang the daemon in open(). */
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return err_sys(err, errno, "reading registries configuration %s", path);
    }
    struct stat st;
    if (fstat(fd, &st) < 0)
        return err_sys(err, errno, "reading registries configuration %s", path);
    if (!S_ISREG(st.st_mode))
        return err_set(err, ERR_INVALID_ARGUMENT, S_ISDIR(st.st_mode) ? EISDIR : EINVAL,
                       "reading registries configuration %s: %s", path,
                       S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
    _cleanup_free_ char *text = malloc(REGISTRIES_FILE_MAX + 1);
    if (!text)
        return err_sys(err, ENOMEM, "reading registries configuration %s", path);
    size_t len = 0;
    while (len <= REGISTRIES_FILE_MAX) {
        ssize_t n = read(fd, text + len, REGISTRIES_FILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            explicit_bzero(text, len);
            return err_sys(err, e, "reading registries configuration %s", path);
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    int r = registries_config_load_text(path, text, len, out, err);
    explicit_bzero(text, len); /* it held the credentials */
    return r;
}

/* --- lookups ------------------------------------------------------------- */

static const struct registry_mirror *find_mirror(const struct registries_config *c, const char *registry)
{
    if (!c)
        return NULL;
    for (size_t i = 0; i < c->n_mirrors; i++)
        if (strcasecmp(c->mirrors[i].registry, registry) == 0)
            return &c->mirrors[i];
    return NULL;
}

static const struct registry_host_config *find_config(const struct registries_config *c, const char *host, size_t n)
{
    for (size_t i = 0; i < c->n_configs; i++)
        if (strlen(c->configs[i].host) == n && strncasecmp(c->configs[i].host, host, n) == 0)
            return &c->configs[i];
    return NULL;
}

const struct registry_host_config *registries_host_config(const struct registries_config *c, const char *host)
{
    if (!c || !host || !*host)
        return NULL;
    size_t len = strlen(host);
    const struct registry_host_config *h = find_config(c, host, len);
    size_t bare = bare_host_len(host, len);
    if (!h && bare < len)
        h = find_config(c, host, bare);
    if (!h && bare == strlen(DOCKER_IO_DEFAULT) && strncasecmp(host, DOCKER_IO_DEFAULT, bare) == 0)
        h = find_config(c, DOCKER_IO, strlen(DOCKER_IO));
    if (!h)
        h = find_config(c, "*", 1);
    return h;
}

void registry_endpoints_free(struct registry_endpoint *e, size_t n)
{
    if (!e)
        return;
    for (size_t i = 0; i < n; i++) {
        free(e[i].url);
        free(e[i].host);
        free(e[i].repository);
    }
    free(e);
}

static int add_endpoint(struct registry_endpoint *list, size_t *n, const char *url, const char *host,
                        const char *repository, bool is_mirror, bool plain_http)
{
    struct registry_endpoint *e = &list[*n];
    e->url = strdup(url);
    e->host = strdup(host);
    e->repository = strdup(repository);
    e->is_mirror = is_mirror;
    e->plain_http = plain_http;
    (*n)++; /* counted even when half-built, so the caller's free sees it */
    return e->url && e->host && e->repository ? 0 : -ENOMEM;
}

/* The repository path the mirror's rewrites give: the first rewrite that
 * matches and yields a valid path wins; otherwise `repository` unchanged. */
static void rewrite_repository(const struct registry_mirror *m, const char *repository, char *out, size_t out_size)
{
    for (size_t i = 0; i < m->n_rewrites; i++) {
        int r = rewrite_apply(&m->rewrites[i], repository, out, out_size);
        if (r > 0)
            return;
        if (r < 0)
            log_warn("registries: rewrite \"%s\" of mirror %s does not turn %s into a valid repository path; "
                     "keeping it unchanged",
                     m->rewrites[i].pattern, m->registry, repository);
    }
    snprintf(out, out_size, "%s", repository);
}

int registries_endpoints(const struct registries_config *c, const char *registry, const char *repository,
                         struct registry_endpoint **out, size_t *n, err_t *err)
{
    *out = NULL;
    *n = 0;
    if (!registry || !host_valid(registry, strlen(registry)))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "registry \"%s\" is not a valid host[:port]",
                       registry ? PRINTABLE(registry) : "(null)");
    if (!repository || !repository_valid(repository, strlen(repository)))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "repository \"%s\" of registry %s is not a valid path",
                       repository ? PRINTABLE(repository) : "(null)", registry);

    char reg[HOST_MAX + 1];
    snprintf(reg, sizeof(reg), "%s", registry);
    lowercase(reg, sizeof(reg));
    bool is_docker_io = strcmp(reg, DOCKER_IO) == 0;
    const char *default_host = is_docker_io ? DOCKER_IO_DEFAULT : reg;
    bool default_http = host_is_loopback(reg);
    char default_url[HOST_MAX + 16];
    snprintf(default_url, sizeof(default_url), "%s://%s", default_http ? "http" : "https", default_host);

    const struct registry_mirror *m = find_mirror(c, reg);
    if (!m)
        m = find_mirror(c, "*");
    size_t max = (m ? m->n_endpoints : 0) + 1;
    struct registry_endpoint *list = calloc(max, sizeof(*list));
    if (!list)
        return err_sys(err, ENOMEM, "listing endpoints of %s", reg);

    char rewritten[REPOSITORY_MAX + 1];
    if (m)
        rewrite_repository(m, repository, rewritten, sizeof(rewritten));
    size_t count = 0;
    bool have_default = false;
    int r = 0;
    for (size_t i = 0; m && i < m->n_endpoints && r == 0; i++) {
        const char *url = m->endpoints[i];
        bool dup = false;
        for (size_t j = 0; j < count; j++)
            dup = dup || strcmp(list[j].url, url) == 0;
        if (dup)
            continue;
        if (strcmp(url, default_url) == 0) {
            /* The registry itself, listed among its mirrors: no rewrites. */
            r = add_endpoint(list, &count, default_url, default_host, repository, false, default_http);
            have_default = true;
            continue;
        }
        _cleanup_free_ char *host = url_host(url);
        if (!host) {
            r = -ENOMEM;
            break;
        }
        bool itself = strcasecmp(host, reg) == 0 || strcasecmp(host, default_host) == 0;
        r = add_endpoint(list, &count, url, host, rewritten, !itself, strncmp(url, "http://", 7) == 0);
    }
    if (r == 0 && !have_default)
        r = add_endpoint(list, &count, default_url, default_host, repository, false, default_http);
    if (r < 0) {
        registry_endpoints_free(list, count);
        return err_sys(err, -r, "listing endpoints of %s", reg);
    }
    *out = list;
    *n = count;
    return 0;
}
