#include "util/digest.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct digester {
    EVP_MD_CTX *ctx;
    enum digest_algo algo;
};

static const struct {
    const char *prefix;
    size_t hex_len;
} algos[] = {
    [DIGEST_SHA256] = {"sha256:", 64},
    [DIGEST_SHA512] = {"sha512:", 128},
};

int digest_algo_of(const char *digest)
{
    if (!digest)
        return -1;
    for (int a = 0; a < (int)(sizeof(algos) / sizeof(algos[0])); a++) {
        size_t pl = strlen(algos[a].prefix);
        if (strncmp(digest, algos[a].prefix, pl) != 0)
            continue;
        const char *hex = digest + pl;
        if (strlen(hex) != algos[a].hex_len)
            return -1;
        for (const char *p = hex; *p; p++)
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                return -1;
        return a;
    }
    return -1;
}

bool digest_valid(const char *digest)
{
    return digest_algo_of(digest) >= 0;
}

const char *digest_hex(const char *digest)
{
    int a = digest_algo_of(digest);
    return a < 0 ? NULL : digest + strlen(algos[a].prefix);
}

struct digester *digester_new(enum digest_algo algo)
{
    struct digester *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->algo = algo;
    d->ctx = EVP_MD_CTX_new();
    if (!d->ctx || !EVP_DigestInit_ex(d->ctx, algo == DIGEST_SHA512 ? EVP_sha512() : EVP_sha256(), NULL)) {
        digester_free(d);
        return NULL;
    }
    return d;
}

void digester_update(struct digester *d, const void *data, size_t len)
{
    EVP_DigestUpdate(d->ctx, data, len);
}

void digester_final(struct digester *d, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(d->ctx, md, &n);
    size_t off = (size_t)sprintf(out, "%s", algos[d->algo].prefix);
    for (unsigned i = 0; i < n; i++)
        off += (size_t)sprintf(out + off, "%02x", md[i]);
}

void digester_free(struct digester *d)
{
    if (!d)
        return;
    EVP_MD_CTX_free(d->ctx);
    free(d);
}

void digest_buffer(enum digest_algo algo, const void *data, size_t len, char *out)
{
    struct digester *d = digester_new(algo);
    if (!d) {
        out[0] = '\0';
        return;
    }
    digester_update(d, data, len);
    digester_final(d, out);
    digester_free(d);
}
