#include "runtime/rootfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/cleanup.h"

#ifndef FSCONFIG_SET_STRING
#define FSCONFIG_SET_STRING 1
#endif
#ifndef FSCONFIG_SET_FLAG
#define FSCONFIG_SET_FLAG 0
#endif
#ifndef FSCONFIG_CMD_CREATE
#define FSCONFIG_CMD_CREATE 6
#endif

static int fsconfig_str(int fd, const char *key, const char *value)
{
    return (int)syscall(SYS_fsconfig, fd, FSCONFIG_SET_STRING, key, value, 0);
}

/* The new API: one lowerdir+ per layer, top first. */
static int mount_new_api(const char *const *lowers, size_t n, const char *upper, const char *work, const char *target,
                         err_t *err)
{
    _cleanup_close_ int fs = (int)syscall(SYS_fsopen, "overlay", 1 /* FSOPEN_CLOEXEC */);
    if (fs < 0)
        return -errno;
    for (size_t i = n; i-- > 0;)
        if (fsconfig_str(fs, "lowerdir+", lowers[i]) < 0)
            return -errno; /* EINVAL: a kernel without lowerdir+ (< 6.8) */
    if (fsconfig_str(fs, "upperdir", upper) < 0 || fsconfig_str(fs, "workdir", work) < 0)
        return err_sys(err, errno, "configuring overlay for %s", target);
    /* index=off: our layers are never shared by two mounts at once in a way
     * that needs hardlink indexing, and it avoids the "upper fs is in use"
     * trap when an upper dir is mounted again after a crash. */
    fsconfig_str(fs, "index", "off");
    if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        return err_sys(err, errno, "creating the overlay for %s", target);
    _cleanup_close_ int mnt = (int)syscall(SYS_fsmount, fs, 1 /* FSMOUNT_CLOEXEC */, 0);
    if (mnt < 0)
        return err_sys(err, errno, "mounting the overlay for %s", target);
    if (syscall(SYS_move_mount, mnt, "", AT_FDCWD, target, 0x4 /* MOVE_MOUNT_F_EMPTY_PATH */) < 0)
        return err_sys(err, errno, "attaching the overlay at %s", target);
    return 0;
}

int rootfs_mount(const char *const *lowers, size_t n_lowers, const char *empty_dir, const char *upper, const char *work,
                 const char *target, err_t *err)
{
    const char *only[1] = {empty_dir};
    if (n_lowers == 0) {
        lowers = only;
        n_lowers = 1;
    }
    err_t e = ERR_INIT;
    int r = mount_new_api(lowers, n_lowers, upper, work, target, &e);
    if (r == 0)
        return 0;
    if (e.msg) {
        err_move(err, &e);
        return r;
    }
    /* Fallback: the classic option string (top layer first). */
    size_t len = 64 + strlen(upper) + strlen(work);
    for (size_t i = 0; i < n_lowers; i++)
        len += strlen(lowers[i]) + 1;
    if (len > 4000)
        return err_set(err, ERR_FAILED_PRECONDITION, E2BIG,
                       "mounting %s: %zu layers do not fit mount(2)'s options on this kernel (needs 6.8 for more)",
                       target, n_lowers);
    _cleanup_free_ char *opts = malloc(len);
    if (!opts)
        return err_sys(err, ENOMEM, "mounting %s", target);
    size_t o = (size_t)sprintf(opts, "lowerdir=");
    for (size_t i = n_lowers; i-- > 0;)
        o += (size_t)sprintf(opts + o, "%s%s", lowers[i], i ? ":" : "");
    sprintf(opts + o, ",upperdir=%s,workdir=%s,index=off", upper, work);
    if (mount("overlay", target, "overlay", 0, opts) < 0)
        return err_sys(err, errno, "mounting the overlay at %s", target);
    return 0;
}

void rootfs_unmount(const char *target)
{
    if (target)
        umount2(target, MNT_DETACH);
}

static int idmapped_layer(const char *lower, int userns_fd, const char *at, err_t *err)
{
    if (mkdir(at, 0700) < 0 && errno != EEXIST)
        return err_sys(err, errno, "creating %s", at);
    _cleanup_close_ int tree = (int)syscall(SYS_open_tree, AT_FDCWD, lower, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (tree < 0)
        return err_sys(err, errno, "cloning layer %s", lower);
    struct mount_attr ma = {.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY, .userns_fd = (uint64_t)userns_fd};
    if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &ma, sizeof(ma)) < 0)
        return err_sys(err, errno, "idmapping layer %s (the file system must support idmapped mounts)", lower);
    if (syscall(SYS_move_mount, tree, "", AT_FDCWD, at, MOVE_MOUNT_F_EMPTY_PATH) < 0)
        return err_sys(err, errno, "attaching the idmapped layer at %s", at);
    return 0;
}

int rootfs_mount_idmapped(const char *const *lowers, size_t n_lowers, int userns_fd, const char *scratch,
                          const char *upper, const char *work, const char *target, err_t *err)
{
    if (mkdir(scratch, 0700) < 0 && errno != EEXIST)
        return err_sys(err, errno, "creating %s", scratch);
    char **mapped = calloc(n_lowers ? n_lowers : 1, sizeof(char *));
    if (!mapped)
        return err_sys(err, ENOMEM, "mounting %s", target);
    size_t made = 0;
    int r = 0;
    for (; made < n_lowers && r == 0; made++) {
        if (asprintf(&mapped[made], "%s/%zu", scratch, made) < 0) {
            mapped[made] = NULL;
            r = err_sys(err, ENOMEM, "mounting %s", target);
            break;
        }
        r = idmapped_layer(lowers[made], userns_fd, mapped[made], err);
    }
    if (r == 0)
        r = rootfs_mount((const char *const *)mapped, n_lowers, NULL, upper, work, target, err);
    for (size_t i = 0; i < made; i++) {
        if (mapped[i]) {
            umount2(mapped[i], MNT_DETACH);
            rmdir(mapped[i]);
        }
        free(mapped[i]);
    }
    free(mapped);
    rmdir(scratch);
    return r;
}
