#include "cri/grpc_wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

int grpc_wire_parse_single(const uint8_t *body, size_t len, size_t limit, struct grpc_message_view *out, err_t *err)
{
    if (len == 0)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "the request carries no message");
    if (len < GRPC_PREFIX_SIZE)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "truncated message prefix (%zu of 5 bytes)", len);
    if (body[0] > 1)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "invalid message flags 0x%02x", body[0]);
    size_t msg_len = (size_t)body[1] << 24 | (size_t)body[2] << 16 | (size_t)body[3] << 8 | (size_t)body[4];
    if (msg_len > limit)
        return err_set(err, ERR_RESOURCE_EXHAUSTED, EMSGSIZE, "received message larger than max (%zu vs. %zu)", msg_len,
                       limit);
    if (msg_len > len - GRPC_PREFIX_SIZE)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "truncated message: prefix announces %zu bytes, %zu arrived",
                       msg_len, len - GRPC_PREFIX_SIZE);
    if (msg_len < len - GRPC_PREFIX_SIZE)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                       "%zu bytes after the request message; this RPC takes exactly one message",
                       len - GRPC_PREFIX_SIZE - msg_len);
    out->compressed = body[0] == 1;
    out->data = body + GRPC_PREFIX_SIZE;
    out->len = msg_len;
    return 0;
}

void grpc_wire_put_prefix(uint8_t *dst, size_t len)
{
    dst[0] = 0;
    dst[1] = (uint8_t)(len >> 24);
    dst[2] = (uint8_t)(len >> 16);
    dst[3] = (uint8_t)(len >> 8);
    dst[4] = (uint8_t)len;
}

int grpc_wire_gunzip(const uint8_t *data, size_t len, size_t limit, uint8_t **out, size_t *out_len, err_t *err)
{
    z_stream zs = {0};
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
        return err_set(err, ERR_INTERNAL, ENOMEM, "initializing gzip decompression");

    size_t cap = len * 4 + 64 < limit ? len * 4 + 64 : limit;
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf) {
        inflateEnd(&zs);
        return err_set(err, ERR_RESOURCE_EXHAUSTED, ENOMEM, "no memory to decompress the message");
    }
    zs.next_in = (Bytef *)data;
    zs.avail_in = (uInt)len;
    size_t produced = 0;
    int zr;
    for (;;) {
        if (produced == cap) {
            if (cap >= limit) {
                /* Output is at the limit; one more byte would exceed it. */
                uint8_t probe;
                zs.next_out = &probe;
                zs.avail_out = 1;
                zr = inflate(&zs, Z_NO_FLUSH);
                if (zr == Z_STREAM_END && zs.avail_out == 1)
                    break;
                inflateEnd(&zs);
                free(buf);
                if (zs.avail_out == 0) /* it produced the byte too many */
                    return err_set(err, ERR_RESOURCE_EXHAUSTED, EMSGSIZE,
                                   "decompressed message larger than max (%zu bytes)", limit);
                if (zr == Z_OK || zr == Z_BUF_ERROR)
                    return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "corrupt gzip message: truncated stream");
                return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "corrupt gzip message: %s",
                               zs.msg ? zs.msg : "bad data");
            }
            size_t ncap = cap * 2 < limit ? cap * 2 : limit;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                inflateEnd(&zs);
                free(buf);
                return err_set(err, ERR_RESOURCE_EXHAUSTED, ENOMEM, "no memory to decompress the message");
            }
            buf = nb;
            cap = ncap;
        }
        zs.next_out = buf + produced;
        zs.avail_out = (uInt)(cap - produced);
        zr = inflate(&zs, Z_NO_FLUSH);
        produced = cap - zs.avail_out;
        if (zr == Z_STREAM_END)
            break;
        if (zr != Z_OK && !(zr == Z_BUF_ERROR && zs.avail_out == 0)) {
            inflateEnd(&zs);
            free(buf);
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "corrupt gzip message: %s",
                           zs.msg ? zs.msg : "truncated stream");
        }
        if (zs.avail_in == 0 && zs.avail_out != 0) {
            inflateEnd(&zs);
            free(buf);
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "corrupt gzip message: truncated stream");
        }
    }
    if (zs.avail_in != 0) {
        inflateEnd(&zs);
        free(buf);
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "corrupt gzip message: %u bytes after the gzip stream",
                       zs.avail_in);
    }
    inflateEnd(&zs);
    *out = buf;
    *out_len = produced;
    return 0;
}

bool grpc_wire_encoding_supported(const char *value, size_t len)
{
    return (len == 8 && strncasecmp(value, "identity", 8) == 0) || (len == 4 && strncasecmp(value, "gzip", 4) == 0);
}

int grpc_wire_parse_timeout(const char *value, size_t len, uint64_t *out_ns)
{
    if (len < 2 || len > 9)
        return -EINVAL;
    uint64_t n = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (value[i] < '0' || value[i] > '9')
            return -EINVAL;
        n = n * 10 + (uint64_t)(value[i] - '0');
    }
    uint64_t unit;
    switch (value[len - 1]) {
    case 'H':
        unit = 3600ULL * 1000000000ULL;
        break;
    case 'M':
        unit = 60ULL * 1000000000ULL;
        break;
    case 'S':
        unit = 1000000000ULL;
        break;
    case 'm':
        unit = 1000000ULL;
        break;
    case 'u':
        unit = 1000ULL;
        break;
    case 'n':
        unit = 1;
        break;
    default:
        return -EINVAL;
    }
    /* 8 digits of hours is ~1.1e4 years: saturate instead of wrapping. */
    *out_ns = n > UINT64_MAX / unit ? UINT64_MAX : n * unit;
    return 0;
}

char *grpc_wire_percent_encode(const char *msg)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
        n += (*p < 0x20 || *p > 0x7e || *p == '%') ? 3 : 1;
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        if (*p < 0x20 || *p > 0x7e || *p == '%') {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        } else {
            *o++ = (char)*p;
        }
    }
    *o = '\0';
    return out;
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

char *grpc_wire_percent_decode(const char *msg)
{
    char *out = malloc(strlen(msg) + 1), *o = out;
    if (!out)
        return NULL;
    for (const char *p = msg; *p; p++) {
        int hi, lo;
        if (*p == '%' && (hi = hexval(p[1])) >= 0 && (lo = hexval(p[2])) >= 0) {
            *o++ = (char)(hi << 4 | lo);
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return out;
}
