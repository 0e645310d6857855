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

/* The same with every lower layer seen through an idmapped mount of the
 * user namespace `userns_fd` (a pod with hostUsers: false): the layers'
 * files, owned by the host's root on disk, show as owned by the
 * container's root. The idmapped layer mounts are made under `scratch`
 * (created, then emptied again): overlayfs keeps its own references to
 * them, so they are detached as soon as it is mounted and nothing but the
 * overlay stays mounted. */
int rootfs_mount_idmapped(const char *const *lowers, size_t n_lowers, int userns_fd, const char *scratch,
                          const char *upper, const char *work, const char *target, err_t *err);
