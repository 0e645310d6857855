/* The head of the one HTTP/1.1 request a streaming connection carries: the
 * request line and the header fields, up to the blank line. Strict and
 * bounded (it only has to accept what kubelet's, kubectl's and crictl's
 * clients send for an upgrade): no folded lines, no NULs or bare CRs, a
 * fixed maximum size and number of fields. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define HTTP_HEAD_MAX_FIELDS 64

struct http_field {
    const char *name, *value; /* NUL-terminated, value without surrounding blanks */
};

struct http_head {
    const char *method;
    const char *path;  /* the target up to '?' */
    const char *query; /* after '?', "" when none */
    int minor_version; /* HTTP/1.x */
    size_t n_fields;
    struct http_field fields[HTTP_HEAD_MAX_FIELDS];
    size_t head_len; /* bytes of the input the head took, blank line included */
    char *storage;
};

enum { HTTP_HEAD_INCOMPLETE = 0, HTTP_HEAD_BAD = -1, HTTP_HEAD_TOO_LARGE = -2 };

/* Returns the head length (> 0) when buf holds a whole head, or one of the
 * HTTP_HEAD_* codes. `max` bounds the head length. */
int http_head_parse(const char *buf, size_t len, size_t max, struct http_head *out);
void http_head_free(struct http_head *h);

/* First value of a field (case-insensitive name), or NULL. */
const char *http_head_get(const struct http_head *h, const char *name);
/* Whether a comma-separated field value list (in any field of that name)
 * holds `token` (case-insensitive), as in "Connection: keep-alive, Upgrade". */
bool http_head_has_token(const struct http_head *h, const char *name, const char *token);
/* Calls fn for each comma-separated element of every field named `name`,
 * trimmed, in order; stops when fn returns true and returns that. */
bool http_head_each_token(const struct http_head *h, const char *name,
                          bool (*fn)(void *data, const char *tok, size_t len), void *data);

/* Query parameters: each value of `key` in turn (percent-decoded into buf);
 * *pos starts at 0. Returns false when there are no more. */
bool http_query_next(const char *query, const char *key, size_t *pos, char *buf, size_t bufsize);
