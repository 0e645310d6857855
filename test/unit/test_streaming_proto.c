/* The small protocol pieces of the streaming server: the HTTP request head,
 * single-use tokens, the WebSocket accept key and subprotocol choice, and
 * the status kubelet's clients decode at the end of a command. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "streaming/http_head.h"
#include "streaming/rc_status.h"
#include "streaming/tokens.h"
#include "streaming/ws_handshake.h"
#include "unit.h"

static void test_http_head(void)
{
    const char *req = "POST /exec/abc?command=sh&port=80,81&port=90 HTTP/1.1\r\n"
                      "Host: 127.0.0.1:1234\r\n"
                      "Connection: keep-alive, Upgrade\r\n"
                      "Upgrade: SPDY/3.1\r\n"
                      "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
                      "X-Stream-Protocol-Version: v3.channel.k8s.io, channel.k8s.io\r\n"
                      "\r\n"
                      "\x80\x03"; /* a SPDY frame right behind */
    struct http_head h;
    int n = http_head_parse(req, strlen(req), 16384, &h);
    CHECK_EQ_INT(n, (int)strlen(req) - 2);
    CHECK_STREQ(h.method, "POST");
    CHECK_STREQ(h.path, "/exec/abc");
    CHECK_STREQ(h.query, "command=sh&port=80,81&port=90");
    CHECK_STREQ(http_head_get(&h, "upgrade"), "SPDY/3.1");
    CHECK(http_head_has_token(&h, "Connection", "upgrade"));
    CHECK(!http_head_has_token(&h, "Connection", "close"));
    CHECK(http_head_has_token(&h, "X-Stream-Protocol-Version", "channel.k8s.io"));
    size_t pos = 0;
    char v[64];
    CHECK(http_query_next(h.query, "port", &pos, v, sizeof(v)));
    CHECK_STREQ(v, "80,81");
    CHECK(http_query_next(h.query, "port", &pos, v, sizeof(v)));
    CHECK_STREQ(v, "90");
    CHECK(!http_query_next(h.query, "port", &pos, v, sizeof(v)));
    http_head_free(&h);

    /* Incomplete, too large, malformed. */
    CHECK_EQ_INT(http_head_parse("GET / HTTP/1.1\r\nHost: x\r\n", 25, 16384, &h), HTTP_HEAD_INCOMPLETE);
    char big[300];
    memset(big, 'a', sizeof(big));
    CHECK_EQ_INT(http_head_parse(big, sizeof(big), 256, &h), HTTP_HEAD_TOO_LARGE);
    const char *bad[] = {
        "GET /x HTTP/2.0\r\n\r\n",
        "GET  /x HTTP/1.1\r\n\r\n",
        "GET x HTTP/1.1\r\n\r\n",
        "GET /x HTTP/1.1\r\nNo colon\r\n\r\n",
        "GET /x HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
        "GET /x HTTP/1.1\r\nBad Name: b\r\n\r\n",
        "GET /x HTTP/1.1\r\nA: b\rc\r\n\r\n",
        "G(T /x HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_MSG(http_head_parse(bad[i], strlen(bad[i]), 16384, &h) == HTTP_HEAD_BAD, "accepted: %s", bad[i]);
    char nul[] = "GET /x HTTP/1.1\r\nA: \0\r\n\r\n";
    CHECK_EQ_INT(http_head_parse(nul, sizeof(nul) - 1, 16384, &h), HTTP_HEAD_BAD);
    /* 65 fields are one too many. */
    char many[4096] = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 65; i++)
        strcat(many, "A: b\r\n");
    strcat(many, "\r\n");
    CHECK_EQ_INT(http_head_parse(many, strlen(many), 16384, &h), HTTP_HEAD_BAD);
}

static struct stream_request *req(enum stream_kind kind)
{
    struct stream_request *r = calloc(1, sizeof(*r));
    r->kind = kind;
    r->id = strdup("c1");
    return r;
}

static void test_tokens(void)
{
    err_t err = ERR_INIT;
    struct tokens *t = tokens_new(2, 60000);
    char a[TOKEN_LEN + 1], b[TOKEN_LEN + 1], c[TOKEN_LEN + 1];
    CHECK_EQ_INT(tokens_add(t, req(STREAM_EXEC), 1000, a, &err), 0);
    CHECK_EQ_INT(strlen(a), TOKEN_LEN);
    CHECK(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == TOKEN_LEN);
    CHECK_EQ_INT(tokens_add(t, req(STREAM_PORTFORWARD), 1000, b, &err), 0);
    CHECK(strcmp(a, b) != 0);
    /* Full. */
    CHECK(tokens_add(t, req(STREAM_EXEC), 1000, c, &err) < 0);
    CHECK_EQ_INT(err.code, ERR_RESOURCE_EXHAUSTED);
    err_clear(&err);
    /* Single use. */
    struct stream_request *r = tokens_take(t, STREAM_EXEC, a, 2000);
    CHECK(r && r->kind == STREAM_EXEC);
    stream_request_free(r);
    CHECK(tokens_take(t, STREAM_EXEC, a, 2000) == NULL);
    /* The wrong verb spends the token. */
    CHECK(tokens_take(t, STREAM_EXEC, b, 2000) == NULL);
    CHECK(tokens_take(t, STREAM_PORTFORWARD, b, 2000) == NULL);
    /* Expiry. */
    CHECK_EQ_INT(tokens_add(t, req(STREAM_ATTACH), 1000, c, &err), 0);
    CHECK_EQ_INT(tokens_pending(t, 60999), 1);
    CHECK(tokens_take(t, STREAM_ATTACH, c, 61000) == NULL);
    CHECK_EQ_INT(tokens_pending(t, 61000), 0);
    CHECK(tokens_take(t, STREAM_ATTACH, "short", 0) == NULL);
    tokens_free(t);
}

static void test_websocket_handshake(void)
{
    char out[WS_ACCEPT_LEN + 1];
    /* The example of RFC 6455 section 1.3. */
    CHECK_EQ_INT(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
    CHECK_STREQ(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    CHECK(ws_accept_key("short", out) < 0);
    CHECK(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=!", out) < 0);
    const char *sup[] = {"v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"};
    const char *offer1[] = {"v4.channel.k8s.io", "v5.channel.k8s.io"};
    CHECK_STREQ(ws_pick_protocol(offer1, 2, sup, 3), "v4.channel.k8s.io");
    const char *offer2[] = {"base64.channel.k8s.io"};
    CHECK(ws_pick_protocol(offer2, 1, sup, 3) == NULL);
    CHECK_STREQ(ws_pick_protocol(NULL, 0, sup, 3), "");
}

static void test_status(void)
{
    size_t len;
    char *s = rc_status_encode(4, RC_SUCCESS, 0, NULL, &len);
    CHECK_STREQ(s, "{\"metadata\":{},\"status\":\"Success\"}");
    free(s);
    s = rc_status_encode(4, RC_EXIT_CODE, 3, "error executing command [sh -c exit 3], exit code 3", &len);
    CHECK_STREQ(s, "{\"metadata\":{},\"status\":\"Failure\",\"message\":\"command terminated with non-zero exit code: "
                   "error executing command [sh -c exit 3], exit code 3\",\"reason\":\"NonZeroExitCode\",\"details\":"
                   "{\"causes\":[{\"reason\":\"ExitCode\",\"message\":\"3\"}]}}");
    free(s);
    s = rc_status_encode(5, RC_INTERNAL, 0, "no such file", &len);
    json_t *o = json_loads(s, 0, NULL);
    CHECK(o != NULL);
    CHECK_STREQ(json_string_value(json_object_get(o, "reason")), "InternalError");
    CHECK_EQ_INT(json_integer_value(json_object_get(o, "code")), 500);
    json_decref(o);
    free(s);
    /* v1-v3: plain text, nothing on success. */
    s = rc_status_encode(3, RC_SUCCESS, 0, NULL, &len);
    CHECK_EQ_INT(len, 0);
    free(s);
    s = rc_status_encode(2, RC_EXIT_CODE, 3, "x", &len);
    CHECK_STREQ(s, "command terminated with non-zero exit code: x");
    free(s);
}

int main(void)
{
    RUN(test_http_head);
    RUN(test_tokens);
    RUN(test_websocket_handshake);
    RUN(test_status);
    return unit_summary();
}
