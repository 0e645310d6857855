/* SPDY/3.1 framing, as kubelet's and kubectl's SPDY library speaks it: the
 * 8-byte frame headers, the control frames, and the name/value header blocks
 * compressed with zlib and the SPDY/3 dictionary (one compression context
 * per direction per connection).
 *
 * Pure code over byte buffers (no sockets), so the parser can be fed any
 * hostile input by the unit tests. Data frames are delivered in pieces as
 * their bytes arrive: a peer announcing a 16 MiB data frame never makes us
 * hold 16 MiB. Control frames must arrive whole and are bounded. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#define SPDY_VERSION       3
#define SPDY_HEADER_LEN    8
#define SPDY_MAX_FRAME_LEN 0xffffffu

enum spdy_type {
    SPDY_SYN_STREAM = 1,
    SPDY_SYN_REPLY = 2,
    SPDY_RST_STREAM = 3,
    SPDY_SETTINGS = 4,
    SPDY_PING = 6,
    SPDY_GOAWAY = 7,
    SPDY_HEADERS = 8,
    SPDY_WINDOW_UPDATE = 9,
    SPDY_CREDENTIAL = 10,
};

#define SPDY_FLAG_FIN            0x01
#define SPDY_FLAG_UNIDIRECTIONAL 0x02

/* RST_STREAM status codes */
enum spdy_rst {
    SPDY_PROTOCOL_ERROR = 1,
    SPDY_INVALID_STREAM = 2,
    SPDY_REFUSED_STREAM = 3,
    SPDY_UNSUPPORTED_VERSION = 4,
    SPDY_CANCEL = 5,
    SPDY_INTERNAL_ERROR = 6,
    SPDY_FLOW_CONTROL_ERROR = 7,
    SPDY_STREAM_IN_USE = 8,
    SPDY_STREAM_ALREADY_CLOSED = 9,
    SPDY_FRAME_TOO_LARGE = 11,
};

/* GOAWAY status codes */
enum spdy_goaway { SPDY_GOAWAY_OK = 0, SPDY_GOAWAY_PROTOCOL_ERROR = 1, SPDY_GOAWAY_INTERNAL_ERROR = 2 };

/* --- parsing ------------------------------------------------------------- */

struct spdy_parser {
    size_t max_control; /* largest control frame payload accepted */
    /* a data frame whose payload is still arriving */
    bool in_data;
    uint32_t data_stream;
    uint32_t data_left;
    uint8_t data_flags;
};

enum spdy_event_kind {
    SPDY_EV_NEED_MORE, /* nothing complete yet: feed more bytes */
    SPDY_EV_DATA,      /* a piece of a data frame's payload */
    SPDY_EV_CONTROL,   /* a whole control frame */
    SPDY_EV_ERROR,     /* malformed: the session must end */
};

struct spdy_event {
    enum spdy_event_kind kind;
    /* SPDY_EV_DATA: `fin` is set on the last piece of a frame with FLAG_FIN
     * (possibly an empty piece) */
    uint32_t stream_id;
    bool fin;
    /* SPDY_EV_CONTROL */
    uint16_t version, type;
    uint8_t flags;
    /* SPDY_EV_DATA and SPDY_EV_CONTROL: pointers into the fed buffer */
    const uint8_t *data;
    size_t len;
    const char *error; /* SPDY_EV_ERROR: why */
};

void spdy_parser_init(struct spdy_parser *p, size_t max_control);
/* Looks at buf[0..len) and reports one event; returns how many bytes the
 * event consumed (0 with SPDY_EV_NEED_MORE or SPDY_EV_ERROR). */
size_t spdy_parse(struct spdy_parser *p, const uint8_t *buf, size_t len, struct spdy_event *ev);

/* Fixed layouts of control payloads; each returns 0 or -1 when the payload
 * has the wrong size or invalid values. */
int spdy_parse_syn_stream(const uint8_t *p, size_t len, uint32_t *stream_id, uint32_t *assoc, uint8_t *priority,
                          const uint8_t **block, size_t *block_len);
int spdy_parse_stream_block(const uint8_t *p, size_t len, uint32_t *stream_id, const uint8_t **block,
                            size_t *block_len); /* SYN_REPLY, HEADERS */
int spdy_parse_rst_stream(const uint8_t *p, size_t len, uint32_t *stream_id, uint32_t *status);
int spdy_parse_ping(const uint8_t *p, size_t len, uint32_t *id);
int spdy_parse_goaway(const uint8_t *p, size_t len, uint32_t *last_good, uint32_t *status);
int spdy_parse_window_update(const uint8_t *p, size_t len, uint32_t *stream_id, uint32_t *delta);
int spdy_parse_settings(const uint8_t *p, size_t len, uint32_t *n_entries);

/* --- name/value header blocks --------------------------------------------- */

struct spdy_header {
    char *name;  /* NUL-terminated; names are lowercase on the wire */
    char *value; /* NUL-terminated at value_len; may hold NUL-separated values */
    size_t value_len;
};

struct spdy_headers {
    size_t n;
    struct spdy_header *h;
    char *storage;
};

struct spdy_zlib {
    z_stream in, out;
    bool in_ready, out_ready;
};

int spdy_zlib_init(struct spdy_zlib *z);
void spdy_zlib_free(struct spdy_zlib *z);

/* Inflates a header block (at most max_out bytes once inflated) and splits
 * it into pairs. Returns 0, or -1 with *why set: a broken block corrupts
 * the connection's compression state, so the session must end. */
int spdy_headers_decode(struct spdy_zlib *z, const uint8_t *block, size_t len, size_t max_out, struct spdy_headers *out,
                        const char **why);
void spdy_headers_free(struct spdy_headers *h);
/* The first value of `name` (case-insensitive), or NULL. */
const char *spdy_headers_get(const struct spdy_headers *h, const char *name);

/* --- building frames ------------------------------------------------------ */

/* A growable byte buffer the builders append to. */
struct spdy_buf {
    uint8_t *p;
    size_t len, cap;
};
int spdy_buf_reserve(struct spdy_buf *b, size_t more);
void spdy_buf_free(struct spdy_buf *b);

struct spdy_kv {
    const char *name, *value;
};

void spdy_put_data_header(uint8_t out[SPDY_HEADER_LEN], uint32_t stream_id, uint8_t flags, uint32_t len);
/* SYN_REPLY or HEADERS (type) with a compressed block; SYN_STREAM too when
 * assoc/priority matter (the client side, used by the tests). */
int spdy_build_block_frame(struct spdy_zlib *z, struct spdy_buf *b, uint16_t type, uint8_t flags, uint32_t stream_id,
                           const struct spdy_kv *kv, size_t n);
int spdy_build_syn_stream(struct spdy_zlib *z, struct spdy_buf *b, uint8_t flags, uint32_t stream_id,
                          const struct spdy_kv *kv, size_t n);
int spdy_build_rst_stream(struct spdy_buf *b, uint32_t stream_id, uint32_t status);
int spdy_build_ping(struct spdy_buf *b, uint32_t id);
int spdy_build_goaway(struct spdy_buf *b, uint32_t last_good, uint32_t status);
int spdy_build_window_update(struct spdy_buf *b, uint32_t stream_id, uint32_t delta);

/* The SPDY/3 header compression dictionary (built once, read-only). */
const uint8_t *spdy_dictionary(size_t *len);
