/* The image service: pulls images into the content and layer stores and keeps
 * the image records, all on the loop thread with blocking work (hashing what
 * a restart left, commits, unpacking) in the thread pool.
 *
 * Work is shared, never repeated: concurrent pulls of one reference join one
 * pull; a blob is downloaded once however many layers and pulls want it; a
 * layer chain is unpacked once and shared by every image that has it.
 * Downloads are bounded (max_concurrent_downloads) and each layer is
 * unpacked as soon as its blob is verified, in parallel with the downloads
 * of the others. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "image/image_config.h"
#include "image/image_store.h"
#include "image/unpack.h"
#include "registry/registry.h"
#include "util/error.h"

struct images;
struct images_pull_waiter;

struct images_options {
    const char *root;
    const char *registries_path; /* registries.yaml; missing is fine */
    unsigned max_concurrent_downloads;
    bool keep_layer_blobs; /* else a layer's compressed blob goes once unpacked */
    struct unpack_limits limits;
};

enum pull_layer_state {
    PULL_LAYER_WAITING,
    PULL_LAYER_DOWNLOADING,
    PULL_LAYER_UNPACKING,
    PULL_LAYER_DONE,
    PULL_LAYER_CACHED, /* already on disk */
};

struct pull_layer_progress {
    const char *digest;
    int64_t size;
    uint64_t done;
    enum pull_layer_state state;
};

struct pull_progress {
    const char *reference;
    size_t n_layers; /* 0 until the manifest is known */
    const struct pull_layer_progress *layers;
};

typedef void (*images_pull_done_fn)(void *data, const char *image_id, const err_t *err);
typedef void (*images_pull_progress_fn)(void *data, const struct pull_progress *progress);

/* (blocking) Opens the stores under opts->root and reads registries.yaml;
 * an invalid registries.yaml is an error. */
int images_open(uv_loop_t *loop, const struct images_options *opts, struct images **out, err_t *err);
void images_free(struct images *s);

/* Reads registries.yaml again (SIGHUP); on error the old one stays. */
int images_reload_registries(struct images *s, err_t *err);

/* Cancels the downloads still running; pulls end with UNAVAILABLE. */
void images_shutdown(struct images *s);
/* Whether images_shutdown was called. */
bool images_stopping(const struct images *s);
/* Whether work is still running in the thread pool or being persisted. */
bool images_busy(const struct images *s);

/* Pulls `reference` (any form image_ref_parse accepts). `done` gets the image
 * ID once the image is registered and on disk; `progress` (may be NULL) is
 * called as layers advance. */
struct images_pull_waiter *images_pull(struct images *s, const char *reference,
                                       const struct registry_credentials *creds, images_pull_done_fn done,
                                       images_pull_progress_fn progress, void *data, err_t *err);
/* The caller lost interest (client gone): no more callbacks. The pull itself
 * goes on, so a retry finds the work done. */
void images_pull_detach(struct images_pull_waiter *w);

/* Registers an image whose blobs are all in the content store already (an
 * import): `manifest` is its top-level manifest (an index picks the node's
 * platform), `names` the references to tag it with (may be none), and
 * `repo_digests` whether name@digest of that manifest is a real registry
 * digest (an OCI layout) or not (a manifest made up for `docker save`). `done`
 * gets the image ID. Layers missing from the store fail the registration. */
int images_register_local(struct images *s, const uint8_t *manifest, size_t len, const char *const *names,
                          size_t n_names, bool repo_digests, images_pull_done_fn done, void *data, err_t *err);

/* Runs blocking work in the pool, counted in images_busy() so shutdown
 * waits for it. */
int images_queue_work(struct images *s, void (*work)(void *), void (*done)(void *, int), void *data);

/* Whether a blob must stay: the config or manifest of an image, or a layer
 * blob kept by keep_layer_blobs or still waiting to be unpacked. Importers
 * drop what they stored that nothing needs. */
bool images_blob_needed(const struct images *s, const char *digest);

/* The content store, for importers that add blobs before registering. */
struct content_store *images_content(const struct images *s);

const struct image_record *images_lookup(const struct images *s, const char *text);
size_t images_count(const struct images *s);
const struct image_record *images_at(const struct images *s, size_t i);
/* The parsed config of a registered image (kept in memory). */
const struct image_config *images_config(const struct images *s, const char *image_id);
/* Its raw config JSON (for verbose status). */
const char *images_config_json(const struct images *s, const char *image_id, size_t *len);

/* Removes the image `text` names (all its tags and digests) and then, in the
 * background, the layers and blobs nothing else uses. `done` runs once the
 * record is gone from disk. Returns false when there is no such image. */
bool images_remove(struct images *s, const char *text, persist_done_fn done, void *data);

/* Containers using layers: the removal of layers asks this first. */
void images_set_layer_user(struct images *s, bool (*in_use)(void *data, const char *chain_id), void *data);
/* <root>/layers/<hex>/fs for a chain ID (caller frees). */
char *images_layer_path(const struct images *s, const char *chain_id);

struct images_usage {
    uint64_t bytes, inodes;
    char *mountpoint; /* where the store lives (root dir) */
    uint64_t timestamp_ns;
};
/* Measures the image filesystem usage in the pool; `done` on the loop. */
int images_usage(struct images *s, void (*done)(void *data, const struct images_usage *u, const err_t *err),
                 void *data);
