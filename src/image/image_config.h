/* The image configuration blob (OCI image-spec config.md; Docker's
 * application/vnd.docker.container.image.v1+json is the same document): the
 * defaults a container starts with (user, env, entrypoint, cmd, working dir…)
 * and the diff IDs of the unpacked layers. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define IMAGE_CONFIG_MAX_SIZE   (8u << 20)
#define IMAGE_CONFIG_MAX_LAYERS 1000  /* as many as a manifest may list */
#define IMAGE_CONFIG_MAX_ITEMS  10000 /* entries in any one list or map */

struct image_config {
    char *architecture, *os, *variant; /* architecture and os are required */
    char *created;                     /* RFC 3339 as written, or NULL */
    char *user;                        /* NULL when unset or "" */
    char **env;
    size_t n_env;
    char **entrypoint;
    size_t n_entrypoint;
    char **cmd;
    size_t n_cmd;
    char *working_dir; /* NULL when unset or "" */
    char *stop_signal; /* NULL when unset or "" */
    char **labels_keys, **labels_values;
    size_t n_labels;
    char **exposed_ports; /* "80/tcp" */
    size_t n_exposed_ports;
    char **volumes; /* "/data" */
    size_t n_volumes;
    char **diff_ids;
    size_t n_diff_ids;
    /* An array (even []) was given, as opposed to absent or null: merging
     * with a CRI request must tell "no Cmd" from "an empty Cmd". */
    bool cmd_set, entrypoint_set;
};

/* Parses the config JSON (at most IMAGE_CONFIG_MAX_SIZE bytes, duplicate
 * keys refused). rootfs.type must be "layers" and every diff_id a valid
 * digest. Strings are valid UTF-8 without NUL (jansson checks). On failure
 * `out` is zeroed and err says which field is wrong (ERR_INVALID_ARGUMENT). */
int image_config_parse(const uint8_t *data, size_t len, struct image_config *out, err_t *err);

/* Frees and zeroes; safe on a zeroed or freed config. */
void image_config_free(struct image_config *c);

/* Layer chain IDs per the OCI spec: chain[0] = diff_ids[0], chain[n] =
 * sha256(chain[n-1] + " " + diff_ids[n]). *out gets n_diff_ids strings (NULL
 * when there are none); free with image_config_free_strv. */
int image_config_chain_ids(const struct image_config *c, char ***out, err_t *err);

void image_config_free_strv(char **v, size_t n);
