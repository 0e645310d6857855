#include "runtime/userns.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t range_end(uint32_t first, uint32_t length)
{
    return (uint64_t)first + length; /* one past the last id */
}

static bool overlap(uint32_t a, uint32_t alen, uint32_t b, uint32_t blen)
{
    return (uint64_t)a < range_end(b, blen) && (uint64_t)b < range_end(a, alen);
}

int userns_check_ranges(const struct userns_range *r, size_t n, const char *what, err_t *err)
{
    if (n == 0)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "user namespace: no %s mappings", what);
    if (n > USERNS_MAX_MAPPINGS)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "user namespace: %zu %s mappings (at most %d)", n, what,
                       USERNS_MAX_MAPPINGS);
    bool root = false;
    for (size_t i = 0; i < n; i++) {
        if (r[i].length == 0)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "user namespace: %s mapping %zu has length 0", what, i);
        if (range_end(r[i].container_id, r[i].length) > UINT32_MAX || range_end(r[i].host_id, r[i].length) > UINT32_MAX)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "user namespace: %s mapping %u %u %u goes past %u", what,
                           r[i].container_id, r[i].host_id, r[i].length, UINT32_MAX - 1);
        for (size_t k = 0; k < i; k++) {
            if (overlap(r[i].container_id, r[i].length, r[k].container_id, r[k].length))
                return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                               "user namespace: %s mappings %zu and %zu overlap inside the container", what, k, i);
            if (overlap(r[i].host_id, r[i].length, r[k].host_id, r[k].length))
                return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                               "user namespace: %s mappings %zu and %zu overlap on the host", what, k, i);
        }
        if (r[i].container_id == 0)
            root = true;
    }
    if (!root)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "user namespace: container %s 0 is not mapped", what);
    return 0;
}

int userns_check(const struct userns_map *m, err_t *err)
{
    int r = userns_check_ranges(m->uids, m->n_uids, "uid", err);
    if (r == 0)
        r = userns_check_ranges(m->gids, m->n_gids, "gid", err);
    return r;
}

char *userns_map_text(const struct userns_range *r, size_t n)
{
    char *buf = malloc(n * 33 + 1);
    if (!buf)
        return NULL;
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(buf + len, "%u %u %u\n", r[i].container_id, r[i].host_id, r[i].length);
    return buf;
}

bool userns_to_host(const struct userns_range *r, size_t n, uint32_t id, uint32_t *host)
{
    for (size_t i = 0; i < n; i++)
        if (id >= r[i].container_id && (uint64_t)id < range_end(r[i].container_id, r[i].length)) {
            *host = r[i].host_id + (id - r[i].container_id);
            return true;
        }
    return false;
}

static bool contains(const struct userns_range *r, size_t n, const struct userns_range *x)
{
    for (size_t i = 0; i < n; i++)
        if (r[i].container_id == x->container_id && r[i].host_id == x->host_id && r[i].length == x->length)
            return true;
    return false;
}

bool userns_ranges_equal(const struct userns_range *a, size_t na, const struct userns_range *b, size_t nb)
{
    /* Checked lists have no duplicates, so equal counts and a ⊆ b suffice. */
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (!contains(b, nb, &a[i]))
            return false;
    return true;
}

static json_t *ranges_to_json(const struct userns_range *r, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(
            a, json_pack("[I,I,I]", (json_int_t)r[i].container_id, (json_int_t)r[i].host_id, (json_int_t)r[i].length));
    return a;
}

json_t *userns_to_json(const struct userns_map *m)
{
    return json_pack("{s:o,s:o}", "uids", ranges_to_json(m->uids, m->n_uids), "gids",
                     ranges_to_json(m->gids, m->n_gids));
}

static int ranges_from_json(const json_t *a, struct userns_range *r, size_t *n, const char *what, err_t *err)
{
    if (!json_is_array(a) || json_array_size(a) > USERNS_MAX_MAPPINGS)
        return err_set(err, ERR_DATA_LOSS, EINVAL, "user namespace record: \"%ss\" is not a list of mappings", what);
    *n = json_array_size(a);
    for (size_t i = 0; i < *n; i++) {
        const json_t *e = json_array_get(a, i);
        json_int_t v[3];
        for (size_t k = 0; k < 3; k++) {
            const json_t *x = json_array_get(e, k);
            v[k] = json_is_integer(x) ? json_integer_value(x) : -1;
            if (json_array_size(e) != 3 || v[k] < 0 || v[k] > UINT32_MAX)
                return err_set(err, ERR_DATA_LOSS, EINVAL, "user namespace record: %s mapping %zu is malformed", what,
                               i);
        }
        r[i] = (struct userns_range){(uint32_t)v[0], (uint32_t)v[1], (uint32_t)v[2]};
    }
    return 0;
}

int userns_from_json(const json_t *j, struct userns_map *out, err_t *err)
{
    memset(out, 0, sizeof(*out));
    int r = ranges_from_json(json_object_get(j, "uids"), out->uids, &out->n_uids, "uid", err);
    if (r == 0)
        r = ranges_from_json(json_object_get(j, "gids"), out->gids, &out->n_gids, "gid", err);
    if (r == 0)
        r = userns_check(out, err);
    return r;
}

int userns_ranges_from_cri(Runtime__V1__IDMapping *const *m, size_t n, struct userns_range *out, size_t *n_out,
                           const char *what, err_t *err)
{
    if (n > USERNS_MAX_MAPPINGS)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "user namespace: %zu %s mappings (at most %d)", n, what,
                       USERNS_MAX_MAPPINGS);
    for (size_t i = 0; i < n; i++)
        out[i] = (struct userns_range){m[i]->container_id, m[i]->host_id, m[i]->length};
    *n_out = n;
    return 0;
}

int userns_from_cri(const Runtime__V1__UserNamespace *u, struct userns_map **out, err_t *err)
{
    *out = NULL;
    if (!u || u->mode == RUNTIME__V1__NAMESPACE_MODE__NODE) {
        if (u && (u->n_uids || u->n_gids))
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                           "user namespace mode NODE (the host's) takes no uid or gid mappings");
        return 0;
    }
    if (u->mode != RUNTIME__V1__NAMESPACE_MODE__POD)
        return err_set(err, ERR_UNIMPLEMENTED, ENOTSUP,
                       "user namespace mode %d is not supported (POD and NODE are, as in containerd)", (int)u->mode);
    struct userns_map *m = calloc(1, sizeof(*m));
    if (!m)
        return err_sys(err, ENOMEM, "user namespace");
    int r = userns_ranges_from_cri(u->uids, u->n_uids, m->uids, &m->n_uids, "uid", err);
    if (r == 0)
        r = userns_ranges_from_cri(u->gids, u->n_gids, m->gids, &m->n_gids, "gid", err);
    if (r == 0)
        r = userns_check(m, err);
    if (r < 0) {
        free(m);
        return r;
    }
    *out = m;
    return 0;
}
