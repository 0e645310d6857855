#include "net/pod_cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/persist.h"

#define POD_CIDR_FILE_MAX 512

struct pod_cidr_store {
    char *value;
    struct persist_file *file;
};

static int parse_one(const char *item, int *family, char *canon, size_t canon_len, err_t *err)
{
    char addr[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(item, '/');
    if (!slash || (size_t)(slash - item) >= sizeof(addr))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "pod CIDR \"%s\" is not in address/prefix form", item);
    memcpy(addr, item, (size_t)(slash - item));
    addr[slash - item] = '\0';

    /* Digits only, no sign, space or leading zero: "/24", never "/+24" or "/024". */
    const char *digits = slash + 1;
    size_t nd = strspn(digits, "0123456789");
    if (nd == 0 || nd > 3 || digits[nd] != '\0' || (digits[0] == '0' && nd > 1))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "pod CIDR \"%s\": bad prefix length", item);
    unsigned prefix = (unsigned)strtoul(digits, NULL, 10); /* at most 999 */

    unsigned char bytes[16];
    size_t nbytes;
    if (inet_pton(AF_INET, addr, bytes) == 1) {
        *family = AF_INET;
        nbytes = 4;
    } else if (inet_pton(AF_INET6, addr, bytes) == 1) {
        *family = AF_INET6;
        nbytes = 16;
    } else {
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "pod CIDR \"%s\": \"%s\" is not an IP address", item, addr);
    }
    if (prefix > nbytes * 8)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "pod CIDR \"%s\": prefix /%u is longer than the address",
                       item, prefix);
    for (size_t bit = prefix; bit < nbytes * 8; bit++)
        if (bytes[bit / 8] & (0x80 >> (bit % 8)))
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                           "pod CIDR \"%s\": host bits are set (the network address is needed)", item);
    char text[INET6_ADDRSTRLEN];
    inet_ntop(*family, bytes, text, sizeof(text));
    snprintf(canon, canon_len, "%s/%u", text, prefix);
    return 0;
}

int pod_cidr_normalize(const char *text, char **out, err_t *err)
{
    if (strlen(text) > 256)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "pod CIDR list is too long");
    _cleanup_free_ char *copy = strdup(text);
    if (!copy)
        return err_sys(err, ENOMEM, "parsing pod CIDR");
    char result[2 * (INET6_ADDRSTRLEN + 8)] = "";
    bool have[2] = {false, false};
    /* strsep, not strtok: "a,,b" has an empty entry that must be refused. */
    char *rest = copy;
    if (strspn(copy, " ") == strlen(copy))
        rest = NULL; /* an empty list */
    for (char *item; (item = strsep(&rest, ",")) != NULL;) {
        while (*item == ' ')
            item++;
        char *e = item + strlen(item);
        while (e > item && e[-1] == ' ')
            *--e = '\0';
        if (!*item)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "pod CIDR list \"%s\" has an empty entry", text);
        int family = 0;
        char canon[INET6_ADDRSTRLEN + 8];
        int r = parse_one(item, &family, canon, sizeof(canon), err);
        if (r < 0)
            return r;
        int idx = family == AF_INET ? 0 : 1;
        if (have[idx])
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                           "pod CIDR list \"%s\" has two %s networks; at most one per family", text,
                           idx ? "IPv6" : "IPv4");
        have[idx] = true;
        if (*result)
            strcat(result, ",");
        strcat(result, canon);
    }
    *out = strdup(result);
    return *out ? 0 : err_sys(err, ENOMEM, "parsing pod CIDR");
}

struct pod_cidr_store *pod_cidr_store_open(const char *path)
{
    struct pod_cidr_store *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->file = persist_file_new(path, 0644);
    s->value = strdup("");
    if (!s->file || !s->value) {
        pod_cidr_store_free(s);
        return NULL;
    }
    _cleanup_free_ char *text = NULL;
    size_t len;
    err_t err = ERR_INIT;
    if (fs_read_file(path, POD_CIDR_FILE_MAX, &text, &len, &err) == 0) {
        text[strcspn(text, "\n")] = '\0';
        char *norm = NULL;
        if (pod_cidr_normalize(text, &norm, &err) == 0) {
            free(s->value);
            s->value = norm;
        } else {
            log_warn("ignoring %s: %s", path, err.msg);
        }
    } else if (err.errnum != ENOENT) {
        log_warn("ignoring %s: %s", path, err.msg);
    }
    err_clear(&err);
    return s;
}

void pod_cidr_store_free(struct pod_cidr_store *s)
{
    if (!s)
        return;
    persist_file_free(s->file);
    free(s->value);
    free(s);
}

const char *pod_cidr_get(const struct pod_cidr_store *s)
{
    return s->value;
}

bool pod_cidr_busy(const struct pod_cidr_store *s)
{
    return persist_file_busy(s->file);
}

void pod_cidr_set(struct pod_cidr_store *s, const char *normalized, void (*done)(void *, const err_t *), void *data)
{
    char *v = strdup(normalized);
    if (!v) {
        err_t e = ERR_INIT;
        err_sys(&e, ENOMEM, "setting the pod CIDR");
        done(data, &e);
        err_clear(&e);
        return;
    }
    free(s->value);
    s->value = v;
    char line[POD_CIDR_FILE_MAX];
    int n = snprintf(line, sizeof(line), "%s\n", v);
    persist_file_write(s->file, line, (size_t)n, done, data);
}
