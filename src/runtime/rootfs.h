/* A container's root filesystem: overlayfs over the image's layer
 * directories (shared, read-only) with an upper and work directory of its
 * own. Mounted with the new mount API (fsopen/fsconfig), where each lower
 * layer is its own "lowerdir+" parameter, so deep images are not limited by
 * the page-sized option string of mount(2); older kernels fall back to it. */
#pragma once

#include <stddef.h>

#include "util/error.h"

/* lowers: bottom layer first (image order). An image without layers gets
 * `empty_dir` as its only lower. */
int rootfs_mount(const char *const *lowers, size_t n_lowers, const char *empty_dir, const char *upper, const char *work,
                 const char *target, err_t *err);

/* Detaches the mount at `target` (a missing mount is fine). */
void rootfs_unmount(const char *target);
