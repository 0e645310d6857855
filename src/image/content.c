#include "image/content.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/digest.h"
#include "util/fs.h"

struct content_store {
    char *dir; /* <root>/content */
};

struct content_ingest {
    const struct content_store *store;
    char digest[DIGEST_MAX_LEN + 1];
    char *path;
    int fd;
    int64_t size;
    uint64_t offset;
    struct digester *hash;
};

int content_store_open(const char *root, struct content_store **out, err_t *err)
{
    struct content_store *s = calloc(1, sizeof(*s));
    if (!s || asprintf(&s->dir, "%s/content", root) < 0) {
        free(s);
        return err_sys(err, ENOMEM, "opening the content store");
    }
    static const char *const subdirs[] = {"blobs/sha256", "blobs/sha512", "ingest"};
    for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++) {
        _cleanup_free_ char *d = NULL;
        if (asprintf(&d, "%s/%s", s->dir, subdirs[i]) < 0) {
            content_store_free(s);
            return err_sys(err, ENOMEM, "opening the content store");
        }
        int r = fs_mkdir_p(d, 0700, err);
        if (r < 0) {
            content_store_free(s);
            return r;
        }
    }
    *out = s;
    return 0;
}

void content_store_free(struct content_store *s)
{
    if (!s)
        return;
    free(s->dir);
    free(s);
}

char *content_blob_path(const struct content_store *s, const char *digest)
{
    const char *hex = digest_hex(digest);
    if (!hex)
        return NULL;
    char *p = NULL;
    if (asprintf(&p, "%s/blobs/%.*s/%s", s->dir, (int)(hex - digest - 1), digest, hex) < 0)
        return NULL;
    return p;
}

bool content_blob_exists(const struct content_store *s, const char *digest)
{
    _cleanup_free_ char *p = content_blob_path(s, digest);
    struct stat st;
    return p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int content_read_blob(const struct content_store *s, const char *digest, size_t max, uint8_t **data, size_t *len,
                      err_t *err)
{
    _cleanup_free_ char *p = content_blob_path(s, digest);
    if (!p)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "invalid digest \"%s\"", digest);
    char *buf = NULL;
    int r = fs_read_file(p, max, &buf, len, err);
    if (r < 0)
        return r;
    char got[DIGEST_MAX_LEN + 1];
    digest_buffer((enum digest_algo)digest_algo_of(digest), buf, *len, got);
    if (strcmp(got, digest) != 0) {
        free(buf);
        return err_set(err, ERR_DATA_LOSS, EIO, "blob %s on disk has digest %s: the store is damaged", digest, got);
    }
    *data = (uint8_t *)buf;
    return 0;
}

int content_write_blob(const struct content_store *s, const char *digest, const uint8_t *data, size_t len, err_t *err)
{
    int algo = digest_algo_of(digest);
    if (algo < 0)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "invalid digest \"%s\"", digest);
    char got[DIGEST_MAX_LEN + 1];
    digest_buffer((enum digest_algo)algo, data, len, got);
    if (strcmp(got, digest) != 0)
        return err_set(err, ERR_DATA_LOSS, EIO, "content does not match its digest %s (it is %s)", digest, got);
    if (content_blob_exists(s, digest))
        return 0;
    _cleanup_free_ char *p = content_blob_path(s, digest);
    return fs_write_atomic(p, data, len, 0600, err);
}

int content_delete_blob(const struct content_store *s, const char *digest, err_t *err)
{
    _cleanup_free_ char *p = content_blob_path(s, digest);
    if (!p)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "invalid digest \"%s\"", digest);
    if (unlink(p) < 0 && errno != ENOENT)
        return err_sys(err, errno, "removing blob %s", digest);
    return 0;
}

static int usage_of_dir(const char *path, uint64_t *bytes, uint64_t *inodes, err_t *err)
{
    _cleanup_closedir_ DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : err_sys(err, errno, "reading %s", path);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
            *bytes += (uint64_t)st.st_blocks * 512;
            (*inodes)++;
        }
    }
    return 0;
}

int content_usage(const struct content_store *s, uint64_t *bytes, uint64_t *inodes, err_t *err)
{
    static const char *const subdirs[] = {"blobs/sha256", "blobs/sha512", "ingest"};
    *bytes = *inodes = 0;
    for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++) {
        _cleanup_free_ char *d = NULL;
        if (asprintf(&d, "%s/%s", s->dir, subdirs[i]) < 0)
            return err_sys(err, ENOMEM, "measuring the content store");
        int r = usage_of_dir(d, bytes, inodes, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* --- ingest ---------------------------------------------------------------- */

int content_ingest_open(const struct content_store *s, const char *digest, int64_t size, struct content_ingest **out,
                        err_t *err)
{
    int algo = digest_algo_of(digest);
    if (algo < 0)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "invalid digest \"%s\"", digest);
    if (size < 0)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "blob %s: invalid size %lld", digest, (long long)size);
    struct content_ingest *in = calloc(1, sizeof(*in));
    if (!in)
        return err_sys(err, ENOMEM, "downloading %s", digest);
    in->store = s;
    in->fd = -1;
    in->size = size;
    snprintf(in->digest, sizeof(in->digest), "%s", digest);
    in->hash = digester_new((enum digest_algo)algo);
    if (!in->hash || asprintf(&in->path, "%s/ingest/%.6s-%s", s->dir, digest, digest_hex(digest)) < 0) {
        content_ingest_close(in, false);
        return err_sys(err, ENOMEM, "downloading %s", digest);
    }
    in->fd = open(in->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (in->fd < 0) {
        int e = errno;
        content_ingest_close(in, false);
        return err_sys(err, e, "opening %s", in->path);
    }
    /* Resume: hash what an earlier attempt left, if it can be right. */
    struct stat st;
    if (fstat(in->fd, &st) < 0) {
        int e = errno;
        content_ingest_close(in, false);
        return err_sys(err, e, "inspecting %s", in->path);
    }
    if (st.st_size > size) {
        if (ftruncate(in->fd, 0) < 0) {
            int e = errno;
            content_ingest_close(in, true);
            return err_sys(err, e, "truncating %s", in->path);
        }
        st.st_size = 0;
    }
    uint8_t buf[64 * 1024];
    off_t pos = 0;
    while (pos < st.st_size) {
        ssize_t n = pread(in->fd, buf, sizeof(buf), pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        digester_update(in->hash, buf, (size_t)n);
        pos += n;
    }
    in->offset = (uint64_t)pos;
    if (lseek(in->fd, pos, SEEK_SET) < 0 || ftruncate(in->fd, pos) < 0) {
        int e = errno;
        content_ingest_close(in, true);
        return err_sys(err, e, "preparing %s", in->path);
    }
    *out = in;
    return 0;
}

uint64_t content_ingest_offset(const struct content_ingest *in)
{
    return in->offset;
}

int content_ingest_fd(const struct content_ingest *in)
{
    return in->fd;
}

int content_ingest_write(struct content_ingest *in, const uint8_t *data, size_t len, err_t *err)
{
    if (in->offset + len > (uint64_t)in->size)
        return err_set(err, ERR_DATA_LOSS, EFBIG, "blob %s is larger than the %lld bytes its descriptor says",
                       in->digest, (long long)in->size);
    digester_update(in->hash, data, len);
    const uint8_t *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(in->fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return err_sys(err, errno, "writing %s", in->path);
        p += n;
        left -= (size_t)n;
    }
    in->offset += len;
    return 0;
}

int content_ingest_reset(struct content_ingest *in, err_t *err)
{
    if (ftruncate(in->fd, 0) < 0 || lseek(in->fd, 0, SEEK_SET) < 0)
        return err_sys(err, errno, "truncating %s", in->path);
    digester_free(in->hash);
    in->hash = digester_new((enum digest_algo)digest_algo_of(in->digest));
    in->offset = 0;
    if (!in->hash)
        return err_sys(err, ENOMEM, "downloading %s", in->digest);
    return 0;
}

int content_ingest_commit(struct content_ingest *in, err_t *err)
{
    char got[DIGEST_MAX_LEN + 1];
    digester_final(in->hash, got);
    digester_free(in->hash);
    in->hash = NULL;
    if (in->offset != (uint64_t)in->size || strcmp(got, in->digest) != 0) {
        /* Delete now: these bytes must never be used, not even resumed. */
        unlink(in->path);
        if (in->offset != (uint64_t)in->size)
            return err_set(err, ERR_DATA_LOSS, EIO, "blob %s: got %llu bytes, expected %lld", in->digest,
                           (unsigned long long)in->offset, (long long)in->size);
        return err_set(err, ERR_DATA_LOSS, EIO, "blob %s: the content has digest %s; discarded", in->digest, got);
    }
    if (fsync(in->fd) < 0)
        return err_sys(err, errno, "syncing %s", in->path);
    _cleanup_free_ char *dst = content_blob_path(in->store, in->digest);
    if (!dst)
        return err_sys(err, ENOMEM, "committing %s", in->digest);
    if (rename(in->path, dst) < 0)
        return err_sys(err, errno, "renaming %s to %s", in->path, dst);
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", dst);
    *strrchr(dir, '/') = '\0';
    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0)
        return err_sys(err, errno, "syncing %s", dir);
    return 0;
}

void content_ingest_close(struct content_ingest *in, bool discard)
{
    if (!in)
        return;
    if (in->fd >= 0)
        close(in->fd);
    if (discard && in->path)
        unlink(in->path);
    digester_free(in->hash);
    free(in->path);
    free(in);
}

int content_open_temp(const struct content_store *s, char **path, err_t *err)
{
    char *p = NULL;
    if (asprintf(&p, "%s/ingest/tmp-XXXXXX", s->dir) < 0)
        return err_sys(err, ENOMEM, "creating a temporary file");
    int fd = mkostemp(p, O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        free(p);
        return err_sys(err, e, "creating a temporary file in %s/ingest", s->dir);
    }
    *path = p;
    return fd;
}

int content_adopt(const struct content_store *s, int fd, const char *path, const char *digest, err_t *err)
{
    _cleanup_free_ char *dst = content_blob_path(s, digest);
    if (!dst)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "invalid digest \"%s\"", digest);
    if (fsync(fd) < 0)
        return err_sys(err, errno, "syncing %s", path);
    if (rename(path, dst) < 0)
        return err_sys(err, errno, "renaming %s to %s", path, dst);
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", dst);
    *strrchr(dir, '/') = '\0';
    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0)
        return err_sys(err, errno, "syncing %s", dir);
    return 0;
}
