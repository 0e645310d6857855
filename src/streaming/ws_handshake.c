#include "streaming/ws_handshake.h"

#include <openssl/evp.h>
#include <string.h>

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

int ws_accept_key(const char *client_key, char out[WS_ACCEPT_LEN + 1])
{
    size_t n = strlen(client_key);
    unsigned char raw[64];
    /* 16 bytes base64-encode to 24 characters with "==" padding. */
    if (n != 24 || client_key[22] != '=' || client_key[23] != '=' ||
        EVP_DecodeBlock(raw, (const unsigned char *)client_key, (int)n) != 18)
        return -1;
    unsigned char buf[24 + sizeof(ws_guid)];
    memcpy(buf, client_key, 24);
    memcpy(buf + 24, ws_guid, sizeof(ws_guid) - 1);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(buf, 24 + sizeof(ws_guid) - 1, md, &md_len, EVP_sha1(), NULL) != 1 || md_len != 20)
        return -1;
    EVP_EncodeBlock((unsigned char *)out, md, (int)md_len);
    out[WS_ACCEPT_LEN] = '\0';
    return 0;
}

const char *ws_pick_protocol(const char *const *offered, size_t n_offered, const char *const *supported,
                             size_t n_supported)
{
    if (n_offered == 0)
        return "";
    for (size_t i = 0; i < n_offered; i++)
        for (size_t j = 0; j < n_supported; j++)
            if (strcmp(offered[i], supported[j]) == 0)
                return supported[j];
    return NULL;
}
