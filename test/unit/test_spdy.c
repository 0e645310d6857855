/* SPDY/3.1 framing: the dictionary, frames built and parsed back, header
 * blocks through two zlib contexts (ours and a peer's), data frames fed a
 * byte at a time, and hostile input that must fail cleanly. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "streaming/spdy_frame.h"
#include "unit.h"

static void test_dictionary(void)
{
    size_t len;
    const uint8_t *d = spdy_dictionary(&len);
    /* 65 length-prefixed words and the text run, as the specification
     * lists them; zlib identifies a dictionary by its Adler-32. */
    CHECK_EQ_INT(len, 1423);
    CHECK(memcmp(d, "\0\0\0\7options\0\0\0\4head", 15) == 0);
    CHECK(memcmp(d + len - 6, "enq=0.", 6) == 0);
    uLong a = adler32(0L, Z_NULL, 0);
    a = adler32(a, d, (uInt)len);
    CHECK_EQ_U64(a, 0xe3c6a7c2ul);
}

/* A second context pair plays the client: what one side deflates the other
 * must inflate, across several blocks sharing the compression state. */
static void test_header_blocks(void)
{
    struct spdy_zlib server, client;
    CHECK_EQ_INT(spdy_zlib_init(&server), 0);
    CHECK_EQ_INT(spdy_zlib_init(&client), 0);
    for (int round = 0; round < 3; round++) {
        struct spdy_kv kv[] = {{"streamtype", round == 0 ? "error" : "stdout"}, {"port", "8080"}, {"requestid", "7"}};
        struct spdy_buf b = {0};
        CHECK_EQ_INT(spdy_build_syn_stream(&client, &b, 0, (uint32_t)(1 + 2 * round), kv, 3), 0);
        struct spdy_parser p;
        spdy_parser_init(&p, 65536);
        struct spdy_event ev;
        size_t used = spdy_parse(&p, b.p, b.len, &ev);
        CHECK_EQ_INT(ev.kind, SPDY_EV_CONTROL);
        CHECK_EQ_INT(used, b.len);
        CHECK_EQ_INT(ev.type, SPDY_SYN_STREAM);
        CHECK_EQ_INT(ev.version, 3);
        uint32_t id, assoc;
        uint8_t prio;
        const uint8_t *block;
        size_t block_len;
        CHECK_EQ_INT(spdy_parse_syn_stream(ev.data, ev.len, &id, &assoc, &prio, &block, &block_len), 0);
        CHECK_EQ_INT(id, 1 + 2 * round);
        struct spdy_headers h;
        const char *why = NULL;
        CHECK_EQ_INT(spdy_headers_decode(&server, block, block_len, 65536, &h, &why), 0);
        CHECK_EQ_INT(h.n, 3);
        CHECK_STREQ(spdy_headers_get(&h, "streamtype"), round == 0 ? "error" : "stdout");
        CHECK_STREQ(spdy_headers_get(&h, "Port"), "8080");
        CHECK(spdy_headers_get(&h, "missing") == NULL);
        spdy_headers_free(&h);
        spdy_buf_free(&b);
    }
    /* An empty SYN_REPLY from the server decodes on the client. */
    struct spdy_buf b = {0};
    CHECK_EQ_INT(spdy_build_block_frame(&server, &b, SPDY_SYN_REPLY, 0, 5, NULL, 0), 0);
    uint32_t id;
    const uint8_t *block;
    size_t block_len;
    CHECK_EQ_INT(spdy_parse_stream_block(b.p + 8, b.len - 8, &id, &block, &block_len), 0);
    CHECK_EQ_INT(id, 5);
    struct spdy_headers h;
    const char *why = NULL;
    CHECK_EQ_INT(spdy_headers_decode(&client, block, block_len, 4096, &h, &why), 0);
    CHECK_EQ_INT(h.n, 0);
    spdy_headers_free(&h);
    spdy_buf_free(&b);
    spdy_zlib_free(&server);
    spdy_zlib_free(&client);
}

static void test_data_frames_piecewise(void)
{
    uint8_t frame[8 + 10];
    spdy_put_data_header(frame, 3, SPDY_FLAG_FIN, 10);
    memcpy(frame + 8, "0123456789", 10);
    struct spdy_parser p;
    spdy_parser_init(&p, 1024);
    /* One byte at a time, as a slow network delivers it. */
    char got[16] = "";
    size_t have = 0, got_len = 0;
    bool fin = false;
    uint8_t buf[32];
    for (size_t i = 0; i < sizeof(frame); i++) {
        buf[have++] = frame[i];
        struct spdy_event ev;
        size_t used;
        while ((used = spdy_parse(&p, buf, have, &ev)) > 0 || (ev.kind == SPDY_EV_DATA && ev.fin)) {
            CHECK_EQ_INT(ev.kind, SPDY_EV_DATA);
            CHECK_EQ_INT(ev.stream_id, 3);
            memcpy(got + got_len, ev.data, ev.len);
            got_len += ev.len;
            fin |= ev.fin;
            memmove(buf, buf + used, have - used);
            have -= used;
            if (used == 0)
                break;
        }
    }
    CHECK_EQ_INT(got_len, 10);
    CHECK(memcmp(got, "0123456789", 10) == 0);
    CHECK(fin);
    /* A bare FIN (empty frame) is one event. */
    spdy_put_data_header(frame, 5, SPDY_FLAG_FIN, 0);
    struct spdy_event ev;
    CHECK_EQ_INT(spdy_parse(&p, frame, 8, &ev), 8);
    CHECK(ev.kind == SPDY_EV_DATA && ev.fin && ev.len == 0 && ev.stream_id == 5);
}

static void test_fixed_frames(void)
{
    struct spdy_buf b = {0};
    CHECK_EQ_INT(spdy_build_rst_stream(&b, 7, SPDY_CANCEL), 0);
    CHECK_EQ_INT(spdy_build_ping(&b, 9), 0);
    CHECK_EQ_INT(spdy_build_goaway(&b, 11, SPDY_GOAWAY_OK), 0);
    CHECK_EQ_INT(spdy_build_window_update(&b, 1, 65536), 0);
    struct spdy_parser p;
    spdy_parser_init(&p, 1024);
    struct spdy_event ev;
    size_t off = 0, used;
    uint32_t a, c;
    used = spdy_parse(&p, b.p + off, b.len - off, &ev);
    CHECK(ev.kind == SPDY_EV_CONTROL && ev.type == SPDY_RST_STREAM);
    CHECK(spdy_parse_rst_stream(ev.data, ev.len, &a, &c) == 0 && a == 7 && c == SPDY_CANCEL);
    off += used;
    used = spdy_parse(&p, b.p + off, b.len - off, &ev);
    CHECK(ev.type == SPDY_PING && spdy_parse_ping(ev.data, ev.len, &a) == 0 && a == 9);
    off += used;
    used = spdy_parse(&p, b.p + off, b.len - off, &ev);
    CHECK(ev.type == SPDY_GOAWAY && spdy_parse_goaway(ev.data, ev.len, &a, &c) == 0 && a == 11 && c == 0);
    off += used;
    used = spdy_parse(&p, b.p + off, b.len - off, &ev);
    CHECK(ev.type == SPDY_WINDOW_UPDATE && spdy_parse_window_update(ev.data, ev.len, &a, &c) == 0 && a == 1 &&
          c == 65536);
    off += used;
    CHECK_EQ_INT(off, b.len);
    spdy_buf_free(&b);
}

static void test_hostile(void)
{
    struct spdy_parser p;
    spdy_parser_init(&p, 1024);
    struct spdy_event ev;
    /* A control frame claiming 16 MiB is refused before it is buffered. */
    uint8_t big[8] = {0x80, 3, 0, 1, 0, 0xff, 0xff, 0xff};
    CHECK_EQ_INT(spdy_parse(&p, big, 8, &ev), 0);
    CHECK_EQ_INT(ev.kind, SPDY_EV_ERROR);
    /* Data on stream 0, and unknown data flags. */
    uint8_t d0[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    spdy_parser_init(&p, 1024);
    spdy_parse(&p, d0, 8, &ev);
    CHECK_EQ_INT(ev.kind, SPDY_EV_ERROR);
    uint8_t df[8] = {0, 0, 0, 1, 0x80, 0, 0, 1};
    spdy_parse(&p, df, 8, &ev);
    CHECK_EQ_INT(ev.kind, SPDY_EV_ERROR);
    /* Wrong sizes of fixed frames. */
    uint32_t a, c;
    uint8_t z[16] = {0};
    CHECK(spdy_parse_rst_stream(z, 7, &a, &c) < 0);
    CHECK(spdy_parse_rst_stream(z, 8, &a, &c) < 0); /* stream 0, status 0 */
    CHECK(spdy_parse_ping(z, 5, &a) < 0);
    CHECK(spdy_parse_window_update(z, 8, &a, &c) < 0); /* delta 0 */
    CHECK(spdy_parse_settings(z, 4, &a) == 0 && a == 0);
    uint8_t s1[4] = {0, 0, 0, 9};
    CHECK(spdy_parse_settings(s1, 4, &a) < 0);

    /* Header blocks: garbage, a lying pair count, a zip bomb. */
    struct spdy_zlib zs;
    struct spdy_headers h;
    const char *why;
    spdy_zlib_init(&zs);
    uint8_t junk[32];
    memset(junk, 0x5a, sizeof(junk));
    CHECK(spdy_headers_decode(&zs, junk, sizeof(junk), 4096, &h, &why) < 0);
    spdy_zlib_free(&zs);

    struct spdy_zlib peer;
    spdy_zlib_init(&peer);
    spdy_zlib_init(&zs);
    /* 1 pair whose name claims 1000 bytes. */
    uint8_t raw[12] = {0, 0, 0, 1, 0, 0, 3, 0xe8, 'a', 'b', 'c', 'd'};
    uint8_t out[256];
    peer.out.next_in = raw;
    peer.out.avail_in = sizeof(raw);
    peer.out.next_out = out;
    peer.out.avail_out = sizeof(out);
    CHECK_EQ_INT(deflate(&peer.out, Z_SYNC_FLUSH), Z_OK);
    CHECK(spdy_headers_decode(&zs, out, sizeof(out) - peer.out.avail_out, 4096, &h, &why) < 0);
    spdy_zlib_free(&zs);
    spdy_zlib_free(&peer);

    spdy_zlib_init(&peer);
    spdy_zlib_init(&zs);
    uint8_t *zeros = calloc(1, 1 << 20);
    uint8_t *bomb = malloc(1 << 16);
    peer.out.next_in = zeros;
    peer.out.avail_in = 1 << 20;
    peer.out.next_out = bomb;
    peer.out.avail_out = 1 << 16;
    deflate(&peer.out, Z_SYNC_FLUSH);
    CHECK(spdy_headers_decode(&zs, bomb, (1 << 16) - peer.out.avail_out, 65536, &h, &why) < 0);
    free(zeros);
    free(bomb);
    spdy_zlib_free(&zs);
    spdy_zlib_free(&peer);
}

int main(void)
{
    RUN(test_dictionary);
    RUN(test_header_blocks);
    RUN(test_data_frames_piecewise);
    RUN(test_fixed_frames);
    RUN(test_hostile);
    return unit_summary();
}
