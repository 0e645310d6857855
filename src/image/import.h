/* Image tarballs for air-gapped nodes: an OCI image layout (`skopeo copy
 * oci-archive:`, `nerdctl save`, `ctr images export`) or a `docker save`
 * archive, optionally gzip/zstd/xz-compressed. The tarball is read once in
 * the thread pool; every blob in it goes to the content store (checked
 * against its digest when the archive names one), then each image is
 * registered through the same pipeline as a pull. Nothing from the archive
 * is written anywhere but the content store, by digest, so hostile paths in
 * it have nowhere to go. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "image/images.h"
#include "util/error.h"

struct imported_image {
    const char *id;
    const char *const *repo_tags;
    size_t n_repo_tags;
};

struct image_import;

typedef void (*image_import_progress_fn)(void *data, const char *line);
typedef void (*image_import_done_fn)(void *data, const struct imported_image *images, size_t n, const err_t *err);

/* Imports `path`; progress lines as it goes, `done` at the end. */
struct image_import *image_import_start(struct images *imgs, const char *path, image_import_progress_fn progress,
                                        image_import_done_fn done, void *data, err_t *err);
/* The caller is gone: no more callbacks (the import itself completes). */
void image_import_detach(struct image_import *imp);

/* Imports, one after another, the tarballs (*.tar, *.tar.gz, *.tgz,
 * *.tar.zst, *.tar.xz) in `dir` that were not imported before with the same
 * size and modification time; what was imported is remembered in
 * `state_path`. Errors are logged; nothing waits for it. */
void image_import_dir(struct images *imgs, const char *dir, const char *state_path);
/* The import directory's state file: busy while a write is on its way;
 * freed at exit. */
bool image_import_dir_busy(void);
void image_import_dir_shutdown(void);
