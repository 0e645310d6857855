#include "streaming/http_head.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c);
}

/* The head ends at the first CRLFCRLF (a bare LF line end is tolerated as
 * Go's server does). Returns the length including it, or 0. */
static size_t head_end(const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (i + 1 < len && buf[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

void http_head_free(struct http_head *h)
{
    free(h->storage);
    memset(h, 0, sizeof(*h));
}

static char *trim(char *s, char *end)
{
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *end = '\0';
    return s;
}

int http_head_parse(const char *buf, size_t len, size_t max, struct http_head *out)
{
    memset(out, 0, sizeof(*out));
    size_t n = head_end(buf, len < max ? len : max);
    if (n == 0)
        return len >= max ? HTTP_HEAD_TOO_LARGE : HTTP_HEAD_INCOMPLETE;
    if (memchr(buf, '\0', n))
        return HTTP_HEAD_BAD;
    char *s = malloc(n + 1);
    if (!s)
        return HTTP_HEAD_BAD;
    memcpy(s, buf, n);
    s[n] = '\0';
    out->storage = s;
    char *line = s, *end = s + n;
    int no = 0;
    while (line < end) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl)
            goto bad;
        char *le = nl;
        if (le > line && le[-1] == '\r')
            le--;
        if (memchr(line, '\r', (size_t)(le - line)))
            goto bad;
        *le = '\0';
        if (no == 0) {
            /* METHOD SP target SP HTTP/1.x */
            char *sp1 = strchr(line, ' ');
            char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
            if (!sp1 || !sp2 || strchr(sp2 + 1, ' ') || sp1 == line || sp2 == sp1 + 1)
                goto bad;
            *sp1 = *sp2 = '\0';
            for (char *c = line; *c; c++)
                if (!is_tchar(*c))
                    goto bad;
            if (strncmp(sp2 + 1, "HTTP/1.", 7) != 0 || (sp2[8] != '0' && sp2[8] != '1') || sp2[9])
                goto bad;
            out->method = line;
            out->minor_version = sp2[8] - '0';
            char *target = sp1 + 1;
            if (target[0] != '/')
                goto bad;
            for (char *c = target; *c; c++)
                if ((unsigned char)*c <= ' ' || *c == 0x7f)
                    goto bad;
            char *q = strchr(target, '?');
            out->query = "";
            if (q) {
                *q = '\0';
                out->query = q + 1;
            }
            out->path = target;
        } else if (le == line) {
            break; /* the blank line */
        } else {
            if (*line == ' ' || *line == '\t')
                goto bad; /* obsolete line folding */
            char *colon = strchr(line, ':');
            if (!colon || colon == line)
                goto bad;
            for (char *c = line; c < colon; c++)
                if (!is_tchar(*c))
                    goto bad;
            if (out->n_fields == HTTP_HEAD_MAX_FIELDS)
                goto bad;
            *colon = '\0';
            out->fields[out->n_fields].name = line;
            out->fields[out->n_fields].value = trim(colon + 1, le);
            out->n_fields++;
        }
        line = nl + 1;
        no++;
    }
    out->head_len = n;
    return (int)n;
bad:
    http_head_free(out);
    return HTTP_HEAD_BAD;
}

const char *http_head_get(const struct http_head *h, const char *name)
{
    for (size_t i = 0; i < h->n_fields; i++)
        if (strcasecmp(h->fields[i].name, name) == 0)
            return h->fields[i].value;
    return NULL;
}

bool http_head_each_token(const struct http_head *h, const char *name,
                          bool (*fn)(void *data, const char *tok, size_t len), void *data)
{
    for (size_t i = 0; i < h->n_fields; i++) {
        if (strcasecmp(h->fields[i].name, name) != 0)
            continue;
        const char *p = h->fields[i].value;
        while (*p) {
            const char *e = strchr(p, ',');
            if (!e)
                e = p + strlen(p);
            const char *a = p, *b = e;
            while (a < b && (*a == ' ' || *a == '\t'))
                a++;
            while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
                b--;
            if (b > a && fn(data, a, (size_t)(b - a)))
                return true;
            p = *e ? e + 1 : e;
        }
    }
    return false;
}

static bool token_eq(void *data, const char *tok, size_t len)
{
    const char *want = data;
    return strlen(want) == len && strncasecmp(want, tok, len) == 0;
}

bool http_head_has_token(const struct http_head *h, const char *name, const char *token)
{
    return http_head_each_token(h, name, token_eq, (void *)token);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes [s, e) into buf; false when it does not fit or is bad. */
static bool unescape(const char *s, const char *e, char *buf, size_t bufsize)
{
    size_t o = 0;
    while (s < e) {
        char c = *s++;
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (e - s < 2 || hexval(s[0]) < 0 || hexval(s[1]) < 0)
                return false;
            c = (char)(hexval(s[0]) * 16 + hexval(s[1]));
            s += 2;
        }
        if (o + 1 >= bufsize)
            return false;
        buf[o++] = c;
    }
    buf[o] = '\0';
    return true;
}

bool http_query_next(const char *query, const char *key, size_t *pos, char *buf, size_t bufsize)
{
    size_t klen = strlen(key);
    const char *p = query + *pos;
    while (*p) {
        const char *e = strchr(p, '&');
        if (!e)
            e = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(e - p));
        const char *kend = eq ? eq : e;
        *pos = (size_t)(*e ? e + 1 - query : e - query);
        if ((size_t)(kend - p) == klen && strncmp(p, key, klen) == 0 && unescape(eq ? eq + 1 : e, e, buf, bufsize))
            return true;
        p = query + *pos;
    }
    return false;
}
