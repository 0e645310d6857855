/* Unpacked layers, one directory per layer under <root>/layers/<chain-hex>,
 * shared by every image that has that layer chain. A directory holds `fs/`
 * (what overlayfs stacks) and `layer.json` (what it is and what it costs).
 * A layer appears under its final name only once it is complete and on disk
 * (unpacked into <root>/layers/.tmp, synced, renamed), so a crash never
 * leaves a half-unpacked layer that looks whole. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image/unpack.h"
#include "util/error.h"

struct layer_store;

struct layer_info {
    char chain_id[DIGEST_MAX_LEN + 1];
    char diff_id[DIGEST_MAX_LEN + 1];
    uint64_t bytes;
    uint64_t inodes;
};

/* (blocking) Creates the directories and clears what an interrupted unpack
 * left in .tmp. */
int layer_store_open(const char *root, struct layer_store **out, err_t *err);
void layer_store_free(struct layer_store *s);

bool layer_exists(const struct layer_store *s, const char *chain_id);
/* <root>/layers/<hex>/fs; caller frees. */
char *layer_fs_path(const struct layer_store *s, const char *chain_id);

/* (blocking) Unpacks the blob at blob_path into a new layer for chain_id,
 * checking that its uncompressed content is diff_id. Succeeds at once if
 * the layer already exists. */
int layer_create(const struct layer_store *s, const char *chain_id, const char *diff_id, const char *blob_path,
                 const char *media_type, const struct unpack_limits *limits, struct layer_info *info, err_t *err);

/* (blocking) The same, reading the blob from src: the layer is renamed into
 * place only after src reported the end of the blob, so a source that holds
 * back its end until the blob is verified keeps unverified bytes out of the
 * store. */
int layer_create_from(const struct layer_store *s, const char *chain_id, const char *diff_id,
                      const struct unpack_source *src, const char *media_type, const struct unpack_limits *limits,
                      struct layer_info *info, err_t *err);

/* (blocking) Reads a layer's layer.json. */
int layer_read_info(const struct layer_store *s, const char *chain_id, struct layer_info *info, err_t *err);

/* (blocking) Removes a layer (a missing one is fine). */
int layer_remove(const struct layer_store *s, const char *chain_id, err_t *err);

/* (blocking) Chain IDs of every layer on disk (caller frees each and the
 * array). */
int layer_list(const struct layer_store *s, char ***chain_ids, size_t *n, err_t *err);
