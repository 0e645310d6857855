/* A pod's user namespace (CRI UserNamespace with mode POD, Kubernetes'
 * hostUsers: false): the uid and gid mappings, checked before anything is
 * made, and the helpers that turn them into what the kernel takes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "api.pb-c.h"
#include "util/error.h"

/* The kernel takes up to 340 lines, in one write of at most a page: 64
 * lines of three 10-digit numbers always fit, and Kubernetes sends one. */
#define USERNS_MAX_MAPPINGS 64

struct userns_range {
    uint32_t container_id; /* first id inside */
    uint32_t host_id;      /* first id on the host */
    uint32_t length;
};

struct userns_map {
    struct userns_range uids[USERNS_MAX_MAPPINGS], gids[USERNS_MAX_MAPPINGS];
    size_t n_uids, n_gids;
};

/* Checks one side's ranges as the kernel would refuse them, and more:
 * 1..USERNS_MAX_MAPPINGS ranges, each non-empty, neither end past
 * 2^32 - 1 (the kernel keeps (uid_t)-1 invalid), no two overlapping
 * inside or on the host, and container id 0 mapped (the container's root
 * must be someone). `what` ("uid"/"gid") names the side in errors, which
 * are ERR_INVALID_ARGUMENT. */
int userns_check_ranges(const struct userns_range *r, size_t n, const char *what, err_t *err);

/* Both sides. */
int userns_check(const struct userns_map *m, err_t *err);

/* "<container> <host> <length>\n" per range, for /proc/<pid>/uid_map;
 * caller frees. NULL on ENOMEM. */
char *userns_map_text(const struct userns_range *r, size_t n);

/* The host id of `id` inside; false when it is not mapped. */
bool userns_to_host(const struct userns_range *r, size_t n, uint32_t id, uint32_t *host);

/* Whether two ranges lists map exactly the same ids the same way (order
 * may differ). */
bool userns_ranges_equal(const struct userns_range *a, size_t na, const struct userns_range *b, size_t nb);

/* {"uids": [[container, host, length]…], "gids": […]} for the pod record,
 * and back (checked again: a record is input too). */
json_t *userns_to_json(const struct userns_map *m);
int userns_from_json(const json_t *j, struct userns_map *out, err_t *err);

/* CRI's IDMapping list as ranges (not checked yet: userns_check_ranges). */
int userns_ranges_from_cri(Runtime__V1__IDMapping *const *m, size_t n, struct userns_range *out, size_t *n_out,
                           const char *what, err_t *err);

/* CRI's UserNamespace (may be NULL) as a checked map: *out NULL for the
 * host's (mode NODE, or none given), a malloc'ed map for mode POD;
 * CONTAINER and TARGET are UNIMPLEMENTED (as in containerd), bad mappings
 * INVALID_ARGUMENT. */
int userns_from_cri(const Runtime__V1__UserNamespace *u, struct userns_map **out, err_t *err);
