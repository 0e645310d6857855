#include "image/layers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/digest.h"
#include "util/fs.h"

#define LAYER_JSON_MAX 4096

struct layer_store {
    char *dir; /* <root>/layers */
    char *tmp; /* <root>/layers/.tmp */
};

int layer_store_open(const char *root, struct layer_store **out, err_t *err)
{
    struct layer_store *s = calloc(1, sizeof(*s));
    if (!s || asprintf(&s->dir, "%s/layers", root) < 0 || asprintf(&s->tmp, "%s/layers/.tmp", root) < 0) {
        layer_store_free(s);
        return err_sys(err, ENOMEM, "opening the layer store");
    }
    int r = fs_remove_tree(s->tmp, err);
    if (r == 0)
        r = fs_mkdir_p(s->tmp, 0700, err);
    if (r < 0) {
        layer_store_free(s);
        return r;
    }
    *out = s;
    return 0;
}

void layer_store_free(struct layer_store *s)
{
    if (!s)
        return;
    free(s->dir);
    free(s->tmp);
    free(s);
}

static char *layer_dir(const struct layer_store *s, const char *chain_id)
{
    const char *hex = digest_hex(chain_id);
    char *p = NULL;
    if (!hex || asprintf(&p, "%s/%s", s->dir, hex) < 0)
        return NULL;
    return p;
}

bool layer_exists(const struct layer_store *s, const char *chain_id)
{
    _cleanup_free_ char *d = layer_dir(s, chain_id);
    _cleanup_free_ char *j = NULL;
    struct stat st;
    return d && asprintf(&j, "%s/layer.json", d) >= 0 && stat(j, &st) == 0;
}

char *layer_fs_path(const struct layer_store *s, const char *chain_id)
{
    _cleanup_free_ char *d = layer_dir(s, chain_id);
    char *p = NULL;
    if (!d || asprintf(&p, "%s/fs", d) < 0)
        return NULL;
    return p;
}

static int write_info(int dirfd, const struct layer_info *info, err_t *err)
{
    json_t *o =
        json_pack("{s:s, s:s, s:I, s:I, s:I}", "chainId", info->chain_id, "diffId", info->diff_id, "bytes",
                  (json_int_t)info->bytes, "inodes", (json_int_t)info->inodes, "createdAt", (json_int_t)time(NULL));
    _cleanup_free_ char *text = o ? json_dumps(o, JSON_SORT_KEYS) : NULL;
    json_decref(o);
    if (!text)
        return err_sys(err, ENOMEM, "writing layer.json");
    _cleanup_close_ int fd = openat(dirfd, "layer.json", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return err_sys(err, errno, "creating layer.json");
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len)
        return err_sys(err, errno ? errno : EIO, "writing layer.json");
    return 0;
}

int layer_create(const struct layer_store *s, const char *chain_id, const char *diff_id, const char *blob_path,
                 const char *media_type, const struct unpack_limits *limits, struct layer_info *info, err_t *err)
{
    if (layer_exists(s, chain_id))
        return layer_read_info(s, chain_id, info, err);
    _cleanup_close_ int blob = open(blob_path, O_RDONLY | O_CLOEXEC);
    if (blob < 0)
        return err_sys(err, errno, "opening %s", blob_path);
    const struct unpack_source src = {unpack_fd_source_read, &blob};
    return layer_create_from(s, chain_id, diff_id, &src, media_type, limits, info, err);
}

int layer_create_from(const struct layer_store *s, const char *chain_id, const char *diff_id,
                      const struct unpack_source *src, const char *media_type, const struct unpack_limits *limits,
                      struct layer_info *info, err_t *err)
{
    if (layer_exists(s, chain_id))
        return layer_read_info(s, chain_id, info, err);
    _cleanup_free_ char *final = layer_dir(s, chain_id);
    _cleanup_free_ char *work = NULL;
    if (!final || asprintf(&work, "%s/XXXXXX", s->tmp) < 0 || !mkdtemp(work))
        return err_sys(err, errno ? errno : ENOMEM, "creating a directory to unpack %s", chain_id);

    int r;
    _cleanup_close_ int fsfd = -1;
    _cleanup_close_ int wfd = open(work, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (wfd < 0) {
        r = err_sys(err, errno, "opening %s", work);
        goto fail;
    }
    if (mkdirat(wfd, "fs", 0755) < 0) {
        r = err_sys(err, errno, "creating %s/fs", work);
        goto fail;
    }
    fsfd = openat(wfd, "fs", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fsfd < 0) {
        r = err_sys(err, errno, "opening %s/fs", work);
        goto fail;
    }
    struct unpack_result res;
    r = layer_unpack_from(src, layer_compression_from_media_type(media_type), fsfd, limits, &res, err);
    if (r < 0) {
        err_wrap(err, "unpacking layer %s", diff_id);
        goto fail;
    }
    if (strcmp(res.diff_id, diff_id) != 0) {
        r = err_set(err, ERR_DATA_LOSS, EIO,
                    "layer content does not match the image config: its diff_id is %s, the config says %s", res.diff_id,
                    diff_id);
        goto fail;
    }
    *info = (struct layer_info){.bytes = res.bytes, .inodes = res.inodes};
    snprintf(info->chain_id, sizeof(info->chain_id), "%s", chain_id);
    snprintf(info->diff_id, sizeof(info->diff_id), "%s", diff_id);
    /* Everything unpacked must be on disk before the layer becomes visible:
     * one syncfs is far cheaper than an fsync per file. */
    if ((r = write_info(wfd, info, err)) < 0)
        goto fail;
    if (syncfs(wfd) < 0) {
        r = err_sys(err, errno, "syncing layer %s", chain_id);
        goto fail;
    }
    if (rename(work, final) < 0) {
        if (errno == EEXIST || errno == ENOTEMPTY) {
            /* Someone else made it meanwhile: theirs is as good as ours. */
            fs_remove_tree(work, NULL);
            return layer_read_info(s, chain_id, info, err);
        }
        r = err_sys(err, errno, "renaming %s to %s", work, final);
        goto fail;
    }
    int dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;

fail:
    fs_remove_tree(work, NULL);
    return r;
}

int layer_read_info(const struct layer_store *s, const char *chain_id, struct layer_info *info, err_t *err)
{
    _cleanup_free_ char *d = layer_dir(s, chain_id);
    _cleanup_free_ char *path = NULL;
    if (!d || asprintf(&path, "%s/layer.json", d) < 0)
        return err_sys(err, ENOMEM, "reading layer %s", chain_id);
    _cleanup_free_ char *text = NULL;
    size_t len;
    int r = fs_read_file(path, LAYER_JSON_MAX, &text, &len, err);
    if (r < 0)
        return r;
    json_error_t jerr;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    const char *cid = NULL, *did = NULL;
    json_int_t bytes = 0, inodes = 0;
    if (!o ||
        json_unpack(o, "{s:s, s:s, s:I, s:I}", "chainId", &cid, "diffId", &did, "bytes", &bytes, "inodes", &inodes) <
            0 ||
        strcmp(cid, chain_id) != 0 || !digest_valid(did) || bytes < 0 || inodes < 0) {
        json_decref(o);
        return err_set(err, ERR_DATA_LOSS, EINVAL, "%s is damaged", path);
    }
    snprintf(info->chain_id, sizeof(info->chain_id), "%s", cid);
    snprintf(info->diff_id, sizeof(info->diff_id), "%s", did);
    info->bytes = (uint64_t)bytes;
    info->inodes = (uint64_t)inodes;
    json_decref(o);
    return 0;
}

int layer_remove(const struct layer_store *s, const char *chain_id, err_t *err)
{
    _cleanup_free_ char *d = layer_dir(s, chain_id);
    if (!d)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "invalid chain id \"%s\"", chain_id);
    /* Rename out of sight first, so a crash mid-removal never leaves a
     * half-deleted layer under its real name. */
    _cleanup_free_ char *trash = NULL;
    if (asprintf(&trash, "%s/rm-%s", s->tmp, digest_hex(chain_id)) < 0)
        return err_sys(err, ENOMEM, "removing layer %s", chain_id);
    if (rename(d, trash) < 0)
        return errno == ENOENT ? 0 : err_sys(err, errno, "removing layer %s", chain_id);
    return fs_remove_tree(trash, err);
}

int layer_list(const struct layer_store *s, char ***chain_ids, size_t *n, err_t *err)
{
    _cleanup_closedir_ DIR *d = opendir(s->dir);
    if (!d)
        return err_sys(err, errno, "reading %s", s->dir);
    char **v = NULL;
    size_t len = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char id[DIGEST_MAX_LEN + 1];
        snprintf(id, sizeof(id), "sha256:%.64s", de->d_name);
        if (strlen(de->d_name) != 64 || !digest_valid(id))
            continue;
        if (len == cap) {
            cap = cap ? cap * 2 : 16;
            char **nv = realloc(v, cap * sizeof(*v));
            if (!nv)
                goto oom;
            v = nv;
        }
        if (!(v[len] = strdup(id)))
            goto oom;
        len++;
    }
    *chain_ids = v;
    *n = len;
    return 0;
oom:
    for (size_t i = 0; i < len; i++)
        free(v[i]);
    free(v);
    return err_sys(err, ENOMEM, "listing layers");
}
