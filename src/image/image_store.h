/* The images edgecri knows: one record per image (keyed by its ID, the
 * config digest) with its names (repo tags and repo digests) and layer
 * chain. All records live in one file, <root>/images.json, rewritten
 * atomically on every change, so an image is either fully registered or not
 * at all; a pull registers its image only after every layer is on disk.
 *
 * A tag names one image: adding it to an image takes it from any other. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"
#include "util/persist.h"

struct image_record {
    char *id; /* "sha256:…" of the config */
    char **repo_tags;
    size_t n_repo_tags;
    char **repo_digests;
    size_t n_repo_digests;
    char *manifest_digest; /* the platform manifest */
    char **chain_ids;      /* bottom layer first */
    size_t n_layers;
    uint64_t size; /* bytes of its layers on disk */
    char *user;    /* the config's User, "" when unset */
    bool pinned;
    int64_t pulled_at; /* unix seconds */
};

struct image_store;

/* (blocking) Loads <root>/images.json (a missing file is an empty store). */
int image_store_open(const char *root, struct image_store **out, err_t *err);
void image_store_free(struct image_store *s);

size_t image_store_count(const struct image_store *s);
const struct image_record *image_store_at(const struct image_store *s, size_t i);

/* Finds an image by ID ("sha256:…" or the bare hex), by a reference that is
 * one of its tags or digests (normalized first: "busybox" finds
 * docker.io/library/busybox:latest), or NULL. */
const struct image_record *image_store_lookup(const struct image_store *s, const char *text);

/* Adds rec (taken over; *rec is zeroed) or merges its names into the image
 * with the same ID; its tags are taken from other images, and an image left
 * without any name is dropped. `done` runs once the change is on disk. */
void image_store_add(struct image_store *s, struct image_record *rec, persist_done_fn done, void *data);

/* Removes an image and all its names; `done` once on disk. False if there
 * is no image with that ID (done is not called then). */
bool image_store_remove(struct image_store *s, const char *id, persist_done_fn done, void *data);

/* Whether any image uses the layer chain. */
bool image_store_uses_layer(const struct image_store *s, const char *chain_id);

bool image_store_busy(const struct image_store *s);

void image_record_free(struct image_record *r);
