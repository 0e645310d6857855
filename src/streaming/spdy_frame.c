#include "streaming/spdy_frame.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Header blocks of a stream session are tiny (a few short headers); this
 * bounds what one block may claim to hold. */
#define MAX_PAIRS 128

/* --- the dictionary ------------------------------------------------------- *
 * The SPDY/3 specification (draft 3, section 2.6.10.1) seeds both zlib
 * contexts with a fixed dictionary: a run of header names and common values,
 * each preceded by its length as a 32-bit big-endian integer, followed by a
 * run of plain text (status codes and reasons, dates, content types). It is
 * written here as those two parts; the bytes are assembled once. zlib checks
 * the dictionary's Adler-32 against the peer's stream header, so a single
 * wrong byte makes every header block fail to inflate. */
static const char *const dict_words[] = {
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
};

static const char dict_text[] =
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information"
    "204 No Content"
    "301 Moved Permanently"
    "400 Bad Request"
    "401 Unauthorized"
    "403 Forbidden"
    "404 Not Found"
    "500 Internal Server Error"
    "501 Not Implemented"
    "503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,public"
    "private"
    "max-age="
    "gzip,deflate,sdch"
    "charset=utf-8"
    "charset=iso-8859-1,utf-,*,enq=0.";

#define DICT_MAX 1500
static uint8_t dict[DICT_MAX];
static size_t dict_len;

const uint8_t *spdy_dictionary(size_t *len)
{
    if (!dict_len) {
        size_t n = 0;
        for (size_t i = 0; i < sizeof(dict_words) / sizeof(dict_words[0]); i++) {
            size_t w = strlen(dict_words[i]);
            dict[n++] = (uint8_t)(w >> 24);
            dict[n++] = (uint8_t)(w >> 16);
            dict[n++] = (uint8_t)(w >> 8);
            dict[n++] = (uint8_t)w;
            memcpy(dict + n, dict_words[i], w);
            n += w;
        }
        memcpy(dict + n, dict_text, sizeof(dict_text) - 1);
        dict_len = n + sizeof(dict_text) - 1;
    }
    *len = dict_len;
    return dict;
}

/* --- integers ------------------------------------------------------------- */

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t get24(const uint8_t *p)
{
    return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* --- parsing ------------------------------------------------------------ */

void spdy_parser_init(struct spdy_parser *p, size_t max_control)
{
    memset(p, 0, sizeof(*p));
    p->max_control = max_control;
}

size_t spdy_parse(struct spdy_parser *p, const uint8_t *buf, size_t len, struct spdy_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    if (p->in_data) {
        /* The rest (or the next piece) of a data frame. */
        size_t take = len < p->data_left ? len : p->data_left;
        if (take == 0 && p->data_left > 0) {
            ev->kind = SPDY_EV_NEED_MORE;
            return 0;
        }
        ev->kind = SPDY_EV_DATA;
        ev->stream_id = p->data_stream;
        ev->data = buf;
        ev->len = take;
        p->data_left -= (uint32_t)take;
        if (p->data_left == 0) {
            ev->fin = p->data_flags & SPDY_FLAG_FIN;
            p->in_data = false;
        }
        return take;
    }
    if (len < SPDY_HEADER_LEN) {
        ev->kind = SPDY_EV_NEED_MORE;
        return 0;
    }
    uint8_t flags = buf[4];
    uint32_t length = get24(buf + 5);
    if (!(buf[0] & 0x80)) {
        uint32_t sid = get32(buf) & 0x7fffffff;
        if (sid == 0) {
            ev->kind = SPDY_EV_ERROR;
            ev->error = "data frame on stream 0";
            return 0;
        }
        if (flags & ~SPDY_FLAG_FIN) {
            ev->kind = SPDY_EV_ERROR;
            ev->error = "data frame with unknown flags";
            return 0;
        }
        p->in_data = true;
        p->data_stream = sid;
        p->data_left = length;
        p->data_flags = flags;
        if (length == 0) {
            /* An empty frame (typically a bare FIN) is delivered at once. */
            ev->kind = SPDY_EV_DATA;
            ev->stream_id = sid;
            ev->data = buf + SPDY_HEADER_LEN;
            ev->fin = flags & SPDY_FLAG_FIN;
            p->in_data = false;
        } else {
            /* The header alone: the payload comes as the following events. */
            ev->kind = SPDY_EV_DATA;
            ev->stream_id = sid;
            ev->data = buf + SPDY_HEADER_LEN;
            ev->len = 0;
        }
        return SPDY_HEADER_LEN;
    }
    if (length > p->max_control) {
        ev->kind = SPDY_EV_ERROR;
        ev->error = "control frame too large";
        return 0;
    }
    if (len < SPDY_HEADER_LEN + (size_t)length) {
        ev->kind = SPDY_EV_NEED_MORE;
        return 0;
    }
    ev->kind = SPDY_EV_CONTROL;
    ev->version = (uint16_t)(((buf[0] & 0x7f) << 8) | buf[1]);
    ev->type = (uint16_t)((buf[2] << 8) | buf[3]);
    ev->flags = flags;
    ev->data = buf + SPDY_HEADER_LEN;
    ev->len = length;
    return SPDY_HEADER_LEN + (size_t)length;
}

int spdy_parse_syn_stream(const uint8_t *p, size_t len, uint32_t *stream_id, uint32_t *assoc, uint8_t *priority,
                          const uint8_t **block, size_t *block_len)
{
    if (len < 10)
        return -1;
    *stream_id = get32(p) & 0x7fffffff;
    *assoc = get32(p + 4) & 0x7fffffff;
    *priority = p[8] >> 5;
    *block = p + 10;
    *block_len = len - 10;
    return *stream_id ? 0 : -1;
}

int spdy_parse_stream_block(const uint8_t *p, size_t len, uint32_t *stream_id, const uint8_t **block, size_t *block_len)
{
    if (len < 4)
        return -1;
    *stream_id = get32(p) & 0x7fffffff;
    *block = p + 4;
    *block_len = len - 4;
    return *stream_id ? 0 : -1;
}

int spdy_parse_rst_stream(const uint8_t *p, size_t len, uint32_t *stream_id, uint32_t *status)
{
    if (len != 8)
        return -1;
    *stream_id = get32(p) & 0x7fffffff;
    *status = get32(p + 4);
    return *stream_id && *status ? 0 : -1;
}

int spdy_parse_ping(const uint8_t *p, size_t len, uint32_t *id)
{
    if (len != 4)
        return -1;
    *id = get32(p);
    return 0;
}

int spdy_parse_goaway(const uint8_t *p, size_t len, uint32_t *last_good, uint32_t *status)
{
    /* SPDY/2 peers send 4 bytes (no status); accept both. */
    if (len != 8 && len != 4)
        return -1;
    *last_good = get32(p) & 0x7fffffff;
    *status = len == 8 ? get32(p + 4) : 0;
    return 0;
}

int spdy_parse_window_update(const uint8_t *p, size_t len, uint32_t *stream_id, uint32_t *delta)
{
    if (len != 8)
        return -1;
    *stream_id = get32(p) & 0x7fffffff;
    *delta = get32(p + 4) & 0x7fffffff;
    return *delta ? 0 : -1;
}

int spdy_parse_settings(const uint8_t *p, size_t len, uint32_t *n_entries)
{
    if (len < 4)
        return -1;
    *n_entries = get32(p);
    return (uint64_t)*n_entries * 8 == len - 4 ? 0 : -1;
}

/* --- zlib --------------------------------------------------------------- */

int spdy_zlib_init(struct spdy_zlib *z)
{
    memset(z, 0, sizeof(*z));
    if (inflateInit(&z->in) != Z_OK)
        return -1;
    z->in_ready = true;
    /* A small window and memory level: header blocks are a few hundred
     * bytes, and every session pays for this state. */
    if (deflateInit2(&z->out, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 11, 4, Z_DEFAULT_STRATEGY) != Z_OK) {
        spdy_zlib_free(z);
        return -1;
    }
    z->out_ready = true;
    size_t dlen;
    const uint8_t *d = spdy_dictionary(&dlen);
    if (deflateSetDictionary(&z->out, d, (uInt)dlen) != Z_OK) {
        spdy_zlib_free(z);
        return -1;
    }
    return 0;
}

void spdy_zlib_free(struct spdy_zlib *z)
{
    if (z->in_ready)
        inflateEnd(&z->in);
    if (z->out_ready)
        deflateEnd(&z->out);
    z->in_ready = z->out_ready = false;
}

static int inflate_block(struct spdy_zlib *z, const uint8_t *block, size_t len, uint8_t *out, size_t max_out,
                         size_t *out_len, const char **why)
{
    z_stream *s = &z->in;
    s->next_in = (Bytef *)block;
    s->avail_in = (uInt)len;
    s->next_out = out;
    s->avail_out = (uInt)max_out;
    while (s->avail_in > 0) {
        int r = inflate(s, Z_SYNC_FLUSH);
        if (r == Z_NEED_DICT) {
            size_t dlen;
            const uint8_t *d = spdy_dictionary(&dlen);
            if (inflateSetDictionary(s, d, (uInt)dlen) != Z_OK) {
                *why = "header block compressed with another dictionary";
                return -1;
            }
            continue;
        }
        if (r == Z_BUF_ERROR && s->avail_out == 0) {
            *why = "header block too large";
            return -1;
        }
        if (r != Z_OK) {
            *why = "header block does not inflate";
            return -1;
        }
        if (s->avail_out == 0 && s->avail_in > 0) {
            *why = "header block too large";
            return -1;
        }
    }
    *out_len = max_out - s->avail_out;
    return 0;
}

void spdy_headers_free(struct spdy_headers *h)
{
    free(h->h);
    free(h->storage);
    memset(h, 0, sizeof(*h));
}

int spdy_headers_decode(struct spdy_zlib *z, const uint8_t *block, size_t len, size_t max_out, struct spdy_headers *out,
                        const char **why)
{
    memset(out, 0, sizeof(*out));
    uint8_t *raw = malloc(max_out ? max_out : 1);
    size_t n;
    if (!raw) {
        *why = "out of memory";
        return -1;
    }
    if (inflate_block(z, block, len, raw, max_out, &n, why) < 0) {
        free(raw);
        return -1;
    }
    const uint8_t *p = raw, *end = raw + n;
    if (end - p < 4) {
        free(raw);
        *why = "header block without a pair count";
        return -1;
    }
    uint32_t pairs = get32(p);
    p += 4;
    /* Each pair takes at least 8 bytes: a count beyond that is a lie. */
    if (pairs > MAX_PAIRS || (uint64_t)pairs * 8 > (uint64_t)(end - p)) {
        free(raw);
        *why = "header block with an impossible pair count";
        return -1;
    }
    /* Names and values are copied with a NUL after each: at most the
     * inflated size plus two bytes per pair. */
    out->h = calloc(pairs ? pairs : 1, sizeof(*out->h));
    out->storage = malloc(n + 2 * (size_t)pairs + 1);
    if (!out->h || !out->storage) {
        free(raw);
        spdy_headers_free(out);
        *why = "out of memory";
        return -1;
    }
    char *s = out->storage;
    for (uint32_t i = 0; i < pairs; i++) {
        uint32_t nl, vl;
        if (end - p < 4 || (nl = get32(p)) > (uint32_t)(end - p - 4) || nl == 0)
            goto bad;
        p += 4;
        const uint8_t *name = p;
        p += nl;
        if (end - p < 4 || (vl = get32(p)) > (uint32_t)(end - p - 4))
            goto bad;
        p += 4;
        const uint8_t *value = p;
        p += vl;
        if (memchr(name, 0, nl))
            goto bad;
        out->h[i].name = s;
        memcpy(s, name, nl);
        s[nl] = '\0';
        s += nl + 1;
        out->h[i].value = s;
        memcpy(s, value, vl);
        s[vl] = '\0';
        out->h[i].value_len = vl;
        s += vl + 1;
        out->n++;
    }
    if (p != end)
        goto bad;
    free(raw);
    return 0;
bad:
    free(raw);
    spdy_headers_free(out);
    *why = "malformed name/value pair";
    return -1;
}

const char *spdy_headers_get(const struct spdy_headers *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcasecmp(h->h[i].name, name) == 0)
            return h->h[i].value;
    return NULL;
}

/* --- building ----------------------------------------------------------- */

int spdy_buf_reserve(struct spdy_buf *b, size_t more)
{
    if (b->cap - b->len >= more)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < more)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

void spdy_buf_free(struct spdy_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

static void put_control_header(uint8_t *p, uint16_t type, uint8_t flags, uint32_t len)
{
    p[0] = 0x80;
    p[1] = SPDY_VERSION;
    p[2] = (uint8_t)(type >> 8);
    p[3] = (uint8_t)type;
    p[4] = flags;
    p[5] = (uint8_t)(len >> 16);
    p[6] = (uint8_t)(len >> 8);
    p[7] = (uint8_t)len;
}

void spdy_put_data_header(uint8_t out[SPDY_HEADER_LEN], uint32_t stream_id, uint8_t flags, uint32_t len)
{
    put32(out, stream_id & 0x7fffffff);
    out[4] = flags;
    out[5] = (uint8_t)(len >> 16);
    out[6] = (uint8_t)(len >> 8);
    out[7] = (uint8_t)len;
}

/* Appends the compressed name/value block for kv to b. */
static int deflate_block(struct spdy_zlib *z, struct spdy_buf *b, const struct spdy_kv *kv, size_t n)
{
    size_t raw_len = 4;
    for (size_t i = 0; i < n; i++)
        raw_len += 8 + strlen(kv[i].name) + strlen(kv[i].value);
    uint8_t *raw = malloc(raw_len);
    if (!raw)
        return -1;
    uint8_t *p = raw;
    put32(p, (uint32_t)n);
    p += 4;
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(kv[i].name), vl = strlen(kv[i].value);
        put32(p, (uint32_t)nl);
        memcpy(p + 4, kv[i].name, nl);
        p += 4 + nl;
        put32(p, (uint32_t)vl);
        memcpy(p + 4, kv[i].value, vl);
        p += 4 + vl;
    }
    z_stream *s = &z->out;
    s->next_in = raw;
    s->avail_in = (uInt)raw_len;
    int r = Z_OK;
    do {
        if (spdy_buf_reserve(b, raw_len + 64) < 0) {
            free(raw);
            return -1;
        }
        s->next_out = b->p + b->len;
        s->avail_out = (uInt)(b->cap - b->len);
        r = deflate(s, Z_SYNC_FLUSH);
        b->len = b->cap - s->avail_out;
    } while (r == Z_OK && (s->avail_in > 0 || s->avail_out == 0));
    free(raw);
    return r == Z_OK || r == Z_BUF_ERROR ? 0 : -1;
}

static int block_frame(struct spdy_zlib *z, struct spdy_buf *b, uint16_t type, uint8_t flags, const uint8_t *prefix,
                       size_t prefix_len, const struct spdy_kv *kv, size_t n)
{
    size_t start = b->len;
    if (spdy_buf_reserve(b, SPDY_HEADER_LEN + prefix_len) < 0)
        return -1;
    b->len += SPDY_HEADER_LEN;
    memcpy(b->p + b->len, prefix, prefix_len);
    b->len += prefix_len;
    if (deflate_block(z, b, kv, n) < 0) {
        b->len = start;
        return -1;
    }
    put_control_header(b->p + start, type, flags, (uint32_t)(b->len - start - SPDY_HEADER_LEN));
    return 0;
}

int spdy_build_block_frame(struct spdy_zlib *z, struct spdy_buf *b, uint16_t type, uint8_t flags, uint32_t stream_id,
                           const struct spdy_kv *kv, size_t n)
{
    uint8_t prefix[4];
    put32(prefix, stream_id & 0x7fffffff);
    return block_frame(z, b, type, flags, prefix, sizeof(prefix), kv, n);
}

int spdy_build_syn_stream(struct spdy_zlib *z, struct spdy_buf *b, uint8_t flags, uint32_t stream_id,
                          const struct spdy_kv *kv, size_t n)
{
    uint8_t prefix[10] = {0};
    put32(prefix, stream_id & 0x7fffffff);
    return block_frame(z, b, SPDY_SYN_STREAM, flags, prefix, sizeof(prefix), kv, n);
}

static int fixed_frame(struct spdy_buf *b, uint16_t type, const uint8_t *payload, size_t len)
{
    if (spdy_buf_reserve(b, SPDY_HEADER_LEN + len) < 0)
        return -1;
    put_control_header(b->p + b->len, type, 0, (uint32_t)len);
    memcpy(b->p + b->len + SPDY_HEADER_LEN, payload, len);
    b->len += SPDY_HEADER_LEN + len;
    return 0;
}

int spdy_build_rst_stream(struct spdy_buf *b, uint32_t stream_id, uint32_t status)
{
    uint8_t p[8];
    put32(p, stream_id & 0x7fffffff);
    put32(p + 4, status);
    return fixed_frame(b, SPDY_RST_STREAM, p, sizeof(p));
}

int spdy_build_ping(struct spdy_buf *b, uint32_t id)
{
    uint8_t p[4];
    put32(p, id);
    return fixed_frame(b, SPDY_PING, p, sizeof(p));
}

int spdy_build_goaway(struct spdy_buf *b, uint32_t last_good, uint32_t status)
{
    uint8_t p[8];
    put32(p, last_good & 0x7fffffff);
    put32(p + 4, status);
    return fixed_frame(b, SPDY_GOAWAY, p, sizeof(p));
}

int spdy_build_window_update(struct spdy_buf *b, uint32_t stream_id, uint32_t delta)
{
    uint8_t p[8];
    put32(p, stream_id & 0x7fffffff);
    put32(p + 4, delta & 0x7fffffff);
    return fixed_frame(b, SPDY_WINDOW_UPDATE, p, sizeof(p));
}
