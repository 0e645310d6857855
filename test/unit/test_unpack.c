/* Layer unpacking: layers are built in memory with libarchive's writer
 * (compressed here with zlib/libzstd), unpacked into fresh directories under
 * /tmp and inspected with lstat/readlink/lgetxattr. Every hostile layer is
 * unpacked next to a sibling "outside" directory (must stay empty) and an
 * "etc/passwd" victim (must stay as it was), the places an escape would
 * write. Runs as root (devices, ownership, trusted.* xattrs). */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "image/unpack.h"
#include "util/cleanup.h"
#include "util/digest.h"
#include "util/log.h"
#include "unit.h"

#define PASSWD      "root:x:0:0:root:/root:/bin/sh\n"
#define T_DEFAULT   1000000000
#define OPAQUE_NAME "trusted.overlay.opaque"

/* ---- byte buffers, compression ------------------------------------------- */

struct buf {
    unsigned char *data;
    size_t len, cap;
};

static void buf_append(struct buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *d = realloc(b->data, cap);
        if (!d)
            abort();
        b->data = d;
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
}

static struct buf buf_copy(const struct buf *src)
{
    struct buf b = {0};
    buf_append(&b, src->data, src->len);
    return b;
}

static void buf_free(struct buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

static struct buf gzip_of(const void *p, size_t n)
{
    struct buf b = {0};
    z_stream zs = {0};
    if (deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort();
    size_t cap = deflateBound(&zs, (uLong)n) + 64;
    b.data = malloc(cap);
    b.cap = cap;
    zs.next_in = (Bytef *)p;
    zs.avail_in = (uInt)n;
    zs.next_out = b.data;
    zs.avail_out = (uInt)cap;
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
        abort();
    b.len = cap - zs.avail_out;
    deflateEnd(&zs);
    return b;
}

static struct buf zstd_of(const void *p, size_t n)
{
    struct buf b = {0};
    size_t cap = ZSTD_compressBound(n);
    b.data = malloc(cap);
    b.cap = cap;
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 3);
    size_t r = ZSTD_compress2(c, b.data, cap, p, n);
    if (ZSTD_isError(r))
        abort();
    b.len = r;
    ZSTD_freeCCtx(c);
    return b;
}

/* ---- building tars ---------------------------------------------------------- */

struct tar {
    struct archive *w;
    struct buf out;
};

static la_ssize_t tar_write_cb(struct archive *a, void *client, const void *data, size_t n)
{
    (void)a;
    buf_append(client, data, n);
    return (la_ssize_t)n;
}

static void tar_begin(struct tar *t)
{
    memset(t, 0, sizeof(*t));
    t->w = archive_write_new();
    archive_write_set_format_pax_restricted(t->w);
    if (archive_write_open(t->w, &t->out, NULL, tar_write_cb, NULL) != ARCHIVE_OK)
        abort();
}

/* The tar bytes; the 10 KiB record padding libarchive adds is part of them. */
static struct buf tar_end(struct tar *t)
{
    archive_write_close(t->w);
    archive_write_free(t->w);
    return t->out;
}

static struct archive_entry *ent(const char *path, unsigned type, unsigned perm)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, path);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, perm);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    archive_entry_set_mtime(e, T_DEFAULT, 0);
    archive_entry_set_size(e, 0);
    return e;
}

/* Writes and frees e; data only for regular files. */
static void tar_put(struct tar *t, struct archive_entry *e, const void *data, size_t len)
{
    if (data)
        archive_entry_set_size(e, (la_int64_t)len);
    int r = archive_write_header(t->w, e);
    CHECK_MSG(r >= ARCHIVE_WARN, "writing tar header %s: %s", archive_entry_pathname(e), archive_error_string(t->w));
    if (data && len)
        CHECK_MSG(archive_write_data(t->w, data, len) == (la_ssize_t)len, "writing tar data");
    archive_entry_free(e);
}

static void tar_file(struct tar *t, const char *path, const char *content, unsigned perm)
{
    tar_put(t, ent(path, AE_IFREG, perm), content, strlen(content));
}

static void tar_dir(struct tar *t, const char *path, unsigned perm)
{
    tar_put(t, ent(path, AE_IFDIR, perm), NULL, 0);
}

static void tar_symlink(struct tar *t, const char *path, const char *target)
{
    struct archive_entry *e = ent(path, AE_IFLNK, 0777);
    archive_entry_set_symlink(e, target);
    tar_put(t, e, NULL, 0);
}

static void tar_hardlink(struct tar *t, const char *path, const char *target)
{
    struct archive_entry *e = ent(path, AE_IFREG, 0644);
    archive_entry_set_hardlink(e, target);
    tar_put(t, e, NULL, 0);
}

/* ---- fixtures ----------------------------------------------------------------- */

/* root/dest is where layers go; root/outside and root/etc/passwd are what an
 * escape would hit. */
struct fx {
    char root[64];
    char dest[128], outside[128], etc[128], passwd[160];
    int destfd;
};

static bool write_file(const char *path, const char *content, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return false;
    bool ok = write(fd, content, strlen(content)) == (ssize_t)strlen(content);
    close(fd);
    return ok && chmod(path, mode) == 0;
}

static bool fx_init(struct fx *f)
{
    memset(f, 0, sizeof(*f));
    f->destfd = -1;
    strcpy(f->root, "/tmp/edgecri-unpack-XXXXXX");
    if (!mkdtemp(f->root)) {
        UNIT_FAIL("mkdtemp: %s", strerror(errno));
        return false;
    }
    snprintf(f->dest, sizeof(f->dest), "%s/dest", f->root);
    snprintf(f->outside, sizeof(f->outside), "%s/outside", f->root);
    snprintf(f->etc, sizeof(f->etc), "%s/etc", f->root);
    snprintf(f->passwd, sizeof(f->passwd), "%s/etc/passwd", f->root);
    bool ok = mkdir(f->dest, 0755) == 0 && mkdir(f->outside, 0755) == 0 && mkdir(f->etc, 0755) == 0 &&
              write_file(f->passwd, PASSWD, 0644);
    if (ok)
        f->destfd = open(f->dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK_MSG(ok && f->destfd >= 0, "setting up %s: %s", f->root, strerror(errno));
    return f->destfd >= 0;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void fx_free(struct fx *f)
{
    if (f->destfd >= 0)
        close(f->destfd);
    if (f->root[0] && nftw(f->root, rm_cb, 16, FTW_DEPTH | FTW_PHYS) != 0)
        UNIT_FAIL("removing %s: %s", f->root, strerror(errno));
}

/* Fresh, empty destination for the next layer in the same fixture. */
static void fx_reset_dest(struct fx *f)
{
    close(f->destfd);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dest);
    CHECK(system(cmd) == 0);
    CHECK(mkdir(f->dest, 0755) == 0);
    f->destfd = open(f->dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static const char *join(char *buf, const char *a, const char *b)
{
    snprintf(buf, PATH_MAX, "%s/%s", a, b);
    return buf;
}
#define DP(f, rel) join((char[PATH_MAX]){0}, (f)->dest, (rel))

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static int count_fds(void)
{
    return count_entries("/proc/self/fd");
}

static ssize_t read_all(const char *path, char *out, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    size_t len = 0;
    ssize_t n;
    while (len < cap && (n = read(fd, out + len, cap - len)) > 0)
        len += (size_t)n;
    close(fd);
    return (ssize_t)len;
}

static bool file_is(const char *path, const char *content)
{
    char got[4096];
    ssize_t n = read_all(path, got, sizeof(got));
    return n == (ssize_t)strlen(content) && memcmp(got, content, (size_t)n) == 0;
}

/* Nothing escaped: outside is empty, the victim is as it was, and the test
 * root holds nothing but its three directories. */
static void check_untouched(const struct fx *f, const char *what)
{
    CHECK_MSG(count_entries(f->outside) == 0, "%s: %s is not empty", what, f->outside);
    CHECK_MSG(count_entries(f->root) == 3, "%s: %s has new entries", what, f->root);
    CHECK_MSG(count_entries(f->etc) == 1, "%s: %s has new entries", what, f->etc);
    struct stat st;
    CHECK_MSG(lstat(f->passwd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0644 && st.st_nlink == 1 &&
                  st.st_uid == 0,
              "%s: %s was changed", what, f->passwd);
    CHECK_MSG(file_is(f->passwd, PASSWD), "%s: %s content changed", what, f->passwd);
    char v[8];
    CHECK_MSG(lgetxattr(f->etc, OPAQUE_NAME, v, sizeof(v)) < 0 && errno == ENODATA, "%s: %s was marked opaque", what,
              f->etc);
}

static int blob_fd(const void *data, size_t len)
{
    int fd = memfd_create("layer", MFD_CLOEXEC);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len || lseek(fd, 0, SEEK_SET) != 0)
        abort();
    return fd;
}

/* Unpacks blob into f->dest and checks no descriptor leaked, whatever the
 * outcome. */
static int unpack(struct fx *f, const struct buf *blob, enum layer_compression c, const struct unpack_limits *lim,
                  struct unpack_result *res, err_t *err)
{
    int fd = blob_fd(blob->data, blob->len);
    int before = count_fds();
    int r = layer_unpack(fd, c, f->destfd, lim, res, err);
    CHECK_MSG(count_fds() == before, "descriptors leaked: %d before, %d after", before, count_fds());
    CHECK_MSG((r == 0) == (err->code == ERR_OK), "result %d with error state %d", r, err->code);
    CHECK_MSG(r == 0 || (err->msg && *err->msg), "failure without a message");
    close(fd);
    return r;
}

/* The layer must be refused as invalid, naming `entry`, and nothing may
 * have escaped. */
static void expect_refused(struct fx *f, const char *what, const struct buf *tar, const struct unpack_limits *lim,
                           const char *entry)
{
    err_t err = ERR_INIT;
    struct unpack_result res;
    int r = unpack(f, tar, LAYER_COMPRESSION_NONE, lim, &res, &err);
    CHECK_MSG(r < 0, "%s: layer was accepted", what);
    CHECK_MSG(err.code == ERR_INVALID_ARGUMENT, "%s: code %s (%s)", what, err_code_name(err.code),
              err.msg ? err.msg : "");
    char quoted[PATH_MAX + 4];
    snprintf(quoted, sizeof(quoted), "\"%s\"", entry);
    CHECK_MSG(err.msg && strstr(err.msg, quoted), "%s: message \"%s\" does not name %s", what, err.msg ? err.msg : "",
              quoted);
    check_untouched(f, what);
    err_clear(&err);
}

/* Builds a tar with `build`, expects it refused naming `entry`. */
typedef void (*build_fn)(struct tar *t, const struct fx *f);

static void refused_case(const char *what, build_fn build, const struct unpack_limits *lim, const char *entry)
{
    struct fx f;
    if (!fx_init(&f))
        return;
    struct tar t;
    tar_begin(&t);
    build(&t, &f);
    struct buf tar = tar_end(&t);
    /* entry may be a format with the fixture root in it. */
    char name[PATH_MAX];
    snprintf(name, sizeof(name), entry, f.root);
    expect_refused(&f, what, &tar, lim, name);
    buf_free(&tar);
    fx_free(&f);
}

static bool is_dir_0755_root(const struct fx *f, const char *rel)
{
    struct stat st;
    return lstat(DP(f, rel), &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0755 && st.st_uid == 0 &&
           st.st_gid == 0;
}

static bool has_xattr(const char *path, const char *name, const void *value, size_t len)
{
    char got[256];
    ssize_t n = lgetxattr(path, name, got, sizeof(got));
    return n == (ssize_t)len && memcmp(got, value, len) == 0;
}

static bool lacks_xattr(const char *path, const char *name)
{
    char got[256];
    return lgetxattr(path, name, got, sizeof(got)) < 0 && errno == ENODATA;
}

/* ---- the regular content of a layer ----------------------------------------- */

/* struct vfs_cap_data, revision 2, effective, permitted = CAP_NET_RAW. */
static const unsigned char cap_net_raw[20] = {0x01, 0, 0, 0x02, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};

static void test_entries(void)
{
    struct fx f;
    if (!fx_init(&f))
        return;
    static char big[300 * 1024];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + (i * 7 + i / 1000) % 26);

    struct tar t;
    tar_begin(&t);
    struct archive_entry *e;

    e = ent("./etc/", AE_IFDIR, 0751);
    archive_entry_set_mtime(e, 1500000000, 0);
    tar_put(&t, e, NULL, 0);

    e = ent("./etc/passwd", AE_IFREG, 0640);
    archive_entry_set_uid(e, 1234);
    archive_entry_set_gid(e, 5678);
    archive_entry_set_mtime(e, 1600000000, 250000000);
    archive_entry_xattr_add_entry(e, "user.note", "hello", 5); /* also makes it pax, which keeps the ns */
    tar_put(&t, e, "root:x:0:0\n", 11);

    e = ent("etc/nested/", AE_IFDIR, 0700);
    archive_entry_set_mtime(e, 1400000000, 0);
    archive_entry_set_uid(e, 42);
    tar_put(&t, e, NULL, 0);
    tar_file(&t, "etc/nested/f", "nested\n", 0644);

    e = ent("bin/su", AE_IFREG, 04755);
    archive_entry_set_uid(e, 1000); /* chown after chmod would drop the bit */
    tar_put(&t, e, "su", 2);
    e = ent("bin/sg", AE_IFREG, 02711);
    archive_entry_set_gid(e, 50);
    tar_put(&t, e, "sg", 2);
    tar_dir(&t, "tmp", 01777);

    e = ent("etc/abs", AE_IFLNK, 0777);
    archive_entry_set_symlink(e, "/etc/passwd");
    archive_entry_set_uid(e, 7);
    archive_entry_set_gid(e, 8);
    archive_entry_set_mtime(e, 1300000000, 0);
    tar_put(&t, e, NULL, 0);
    tar_symlink(&t, "etc/rel", "../bin/su");
    tar_symlink(&t, "etc/dangling", "../../../nowhere");
    tar_hardlink(&t, "bin/su2", "bin/su");
    tar_hardlink(&t, "bin/su3", "./bin//su");

    e = ent("dev/null", AE_IFCHR, 0666);
    archive_entry_set_rdevmajor(e, 1);
    archive_entry_set_rdevminor(e, 3);
    tar_put(&t, e, NULL, 0);
    e = ent("dev/loop0", AE_IFBLK, 0660);
    archive_entry_set_rdevmajor(e, 7);
    archive_entry_set_rdevminor(e, 0);
    archive_entry_set_gid(e, 6);
    tar_put(&t, e, NULL, 0);
    e = ent("run/fifo", AE_IFIFO, 0620);
    archive_entry_set_uid(e, 3);
    tar_put(&t, e, NULL, 0);

    e = ent("bin/ping", AE_IFREG, 0755);
    archive_entry_xattr_add_entry(e, "security.capability", cap_net_raw, sizeof(cap_net_raw));
    archive_entry_xattr_add_entry(e, "user.mime", "app", 3);
    archive_entry_xattr_add_entry(e, "trusted.overlay.redirect", "/etc", 4);
    archive_entry_xattr_add_entry(e, "trusted.x", "1", 1);
    archive_entry_xattr_add_entry(e, "user.overlay.opaque", "y", 1);
    archive_entry_xattr_add_entry(e, "security.selinux", "system_u:object_r:bin_t:s0", 26);
    tar_put(&t, e, "ping", 4);
    e = ent("plantdir/", AE_IFDIR, 0755);
    archive_entry_xattr_add_entry(e, OPAQUE_NAME, "y", 1);
    archive_entry_xattr_add_entry(e, "user.dir", "d", 1);
    tar_put(&t, e, NULL, 0);

    tar_file(&t, "a/b/c/deep", "deep", 0600);
    tar_file(&t, "empty", "", 0644);
    tar_put(&t, ent("big", AE_IFREG, 0644), big, sizeof(big));
    tar_file(&t, "name\xff\x01", "odd", 0644);

    /* sparse: 1 MiB with two 4 KiB extents, ending in a hole */
    e = ent("sparse", AE_IFREG, 0644);
    archive_entry_set_size(e, 1 << 20);
    archive_entry_sparse_add_entry(e, 0, 4096);
    archive_entry_sparse_add_entry(e, 65536, 4096);
    CHECK(archive_write_header(t.w, e) == ARCHIVE_OK);
    /* the writer takes the logical content and keeps only the extents */
    static char sdata[69632];
    memset(sdata, 's', 4096);
    memset(sdata + 65536, 's', 4096);
    CHECK(archive_write_data(t.w, sdata, sizeof(sdata)) == (la_ssize_t)sizeof(sdata));
    archive_entry_free(e);

    struct buf tar = tar_end(&t);
    err_t err = ERR_INIT;
    struct unpack_result res;
    log_set_level(LOG_LEVEL_DEBUG); /* the dropped attributes are logged */
    int r = unpack(&f, &tar, LAYER_COMPRESSION_NONE, NULL, &res, &err);
    log_set_level(LOG_LEVEL_INFO);
    CHECK_MSG(r == 0, "unpack: %s", err.msg ? err.msg : "");
    err_clear(&err);

    struct stat st;
    char buf[PATH_MAX];
    CHECK(file_is(DP(&f, "etc/passwd"), "root:x:0:0\n"));
    CHECK(lstat(DP(&f, "etc/passwd"), &st) == 0);
    CHECK_EQ_INT(st.st_mode, S_IFREG | 0640);
    CHECK_EQ_INT(st.st_uid, 1234);
    CHECK_EQ_INT(st.st_gid, 5678);
    CHECK_EQ_INT(st.st_mtim.tv_sec, 1600000000);
    CHECK_EQ_INT(st.st_mtim.tv_nsec, 250000000);
    CHECK(has_xattr(DP(&f, "etc/passwd"), "user.note", "hello", 5));

    /* directory times survive the entries created in them afterwards */
    CHECK(lstat(DP(&f, "etc"), &st) == 0);
    CHECK_EQ_INT(st.st_mode, S_IFDIR | 0751);
    CHECK_EQ_INT(st.st_mtim.tv_sec, 1500000000);
    CHECK(lstat(DP(&f, "etc/nested"), &st) == 0);
    CHECK_EQ_INT(st.st_mode, S_IFDIR | 0700);
    CHECK_EQ_INT(st.st_uid, 42);
    CHECK_EQ_INT(st.st_mtim.tv_sec, 1400000000);
    CHECK(file_is(DP(&f, "etc/nested/f"), "nested\n"));

    CHECK(lstat(DP(&f, "bin/su"), &st) == 0);
    CHECK_EQ_INT(st.st_mode, S_IFREG | 04755);
    CHECK_EQ_INT(st.st_uid, 1000);
    CHECK_EQ_INT(st.st_nlink, 3);
    ino_t su_ino = st.st_ino;
    CHECK(lstat(DP(&f, "bin/sg"), &st) == 0);
    CHECK_EQ_INT(st.st_mode, S_IFREG | 02711);
    CHECK_EQ_INT(st.st_gid, 50);
    CHECK(lstat(DP(&f, "tmp"), &st) == 0);
    CHECK_EQ_INT(st.st_mode, S_IFDIR | 01777);

    CHECK(lstat(DP(&f, "etc/abs"), &st) == 0 && S_ISLNK(st.st_mode));
    CHECK_EQ_INT(st.st_uid, 7);
    CHECK_EQ_INT(st.st_gid, 8);
    CHECK_EQ_INT(st.st_mtim.tv_sec, 1300000000);
    ssize_t n = readlink(DP(&f, "etc/abs"), buf, sizeof(buf) - 1);
    buf[n < 0 ? 0 : n] = '\0';
    CHECK_STREQ(buf, "/etc/passwd");
    n = readlink(DP(&f, "etc/rel"), buf, sizeof(buf) - 1);
    buf[n < 0 ? 0 : n] = '\0';
    CHECK_STREQ(buf, "../bin/su");
    n = readlink(DP(&f, "etc/dangling"), buf, sizeof(buf) - 1);
    buf[n < 0 ? 0 : n] = '\0';
    CHECK_STREQ(buf, "../../../nowhere");

    CHECK(lstat(DP(&f, "bin/su2"), &st) == 0 && st.st_ino == su_ino);
    CHECK(lstat(DP(&f, "bin/su3"), &st) == 0 && st.st_ino == su_ino);

    CHECK(lstat(DP(&f, "dev/null"), &st) == 0);
    CHECK_EQ_INT(st.st_mode, S_IFCHR | 0666);
    CHECK(major(st.st_rdev) == 1 && minor(st.st_rdev) == 3);
    CHECK(lstat(DP(&f, "dev/loop0"), &st) == 0);
    CHECK_EQ_INT(st.st_mode, S_IFBLK | 0660);
    CHECK(major(st.st_rdev) == 7 && minor(st.st_rdev) == 0);
    CHECK_EQ_INT(st.st_gid, 6);
    CHECK(lstat(DP(&f, "run/fifo"), &st) == 0);
    CHECK_EQ_INT(st.st_mode, S_IFIFO | 0620);
    CHECK_EQ_INT(st.st_uid, 3);
    CHECK(is_dir_0755_root(&f, "dev"));
    CHECK(is_dir_0755_root(&f, "run"));

    CHECK(has_xattr(DP(&f, "bin/ping"), "security.capability", cap_net_raw, sizeof(cap_net_raw)));
    CHECK(has_xattr(DP(&f, "bin/ping"), "user.mime", "app", 3));
    CHECK(lacks_xattr(DP(&f, "bin/ping"), "trusted.overlay.redirect"));
    CHECK(lacks_xattr(DP(&f, "bin/ping"), "trusted.x"));
    CHECK(lacks_xattr(DP(&f, "bin/ping"), "user.overlay.opaque"));
    CHECK(lstat(DP(&f, "bin/ping"), &st) == 0);
    CHECK_EQ_INT(st.st_mode, S_IFREG | 0755);
    CHECK(lacks_xattr(DP(&f, "plantdir"), OPAQUE_NAME));
    CHECK(has_xattr(DP(&f, "plantdir"), "user.dir", "d", 1));

    CHECK(is_dir_0755_root(&f, "a"));
    CHECK(is_dir_0755_root(&f, "a/b"));
    CHECK(is_dir_0755_root(&f, "a/b/c"));
    CHECK(file_is(DP(&f, "a/b/c/deep"), "deep"));
    CHECK(lstat(DP(&f, "empty"), &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0);
    static char got[sizeof(big) + 1];
    CHECK(read_all(DP(&f, "big"), got, sizeof(got)) == (ssize_t)sizeof(big) && memcmp(got, big, sizeof(big)) == 0);
    CHECK(file_is(DP(&f, "name\xff\x01"), "odd"));

    CHECK(lstat(DP(&f, "sparse"), &st) == 0);
    CHECK_EQ_INT(st.st_size, 1 << 20);
    static char sgot[1 << 20];
    CHECK(read_all(DP(&f, "sparse"), sgot, sizeof(sgot)) == 1 << 20);
    for (size_t i = 0; i < sizeof(sgot); i++)
        if ((sgot[i] == 's') != (i < 4096 || (i >= 65536 && i < 69632))) {
            UNIT_FAIL("sparse differs at %zu: %d", i, sgot[i]);
            break;
        }
    CHECK(sgot[0] == 's' && sgot[4095] == 's' && sgot[4096] == 0 && sgot[65535] == 0 && sgot[65536] == 's' &&
          sgot[69631] == 's' && sgot[69632] == 0 && sgot[(1 << 20) - 1] == 0);

    /* 11 + 7 + 2 + 2 + 4 + 4 + 4 + 300 KiB + 3 + 1 MiB */
    CHECK_EQ_U64(res.bytes, 11 + 7 + 2 + 2 + 4 + 4 + 3 + sizeof(big) + (1 << 20));
    /* etc, passwd, nested, f, bin(implicit), su, sg, tmp, abs, rel, dangling, su2, su3, dev(implicit), null,
     * loop0, run(implicit), fifo, ping, plantdir, a, b, c (implicit), deep, empty, big, odd, sparse */
    CHECK_EQ_U64(res.inodes, 28);
    char want[DIGEST_MAX_LEN + 1];
    digest_buffer(DIGEST_SHA256, tar.data, tar.len, want);
    CHECK_STREQ(res.diff_id, want);

    buf_free(&tar);
    fx_free(&f);
}

/* "./" is the layer root; its metadata applies to the destination itself. */
static void test_root_entry(void)
{
    struct fx f;
    if (!fx_init(&f))
        return;
    struct tar t;
    tar_begin(&t);
    struct archive_entry *e = ent("./", AE_IFDIR, 0711);
    archive_entry_set_mtime(e, 1234567890, 0);
    tar_put(&t, e, NULL, 0);
    tar_file(&t, "./x", "x", 0644);
    struct buf tar = tar_end(&t);
    err_t err = ERR_INIT;
    struct unpack_result res;
    CHECK_OK(unpack(&f, &tar, LAYER_COMPRESSION_NONE, NULL, &res, &err));
    struct stat st;
    CHECK(stat(f.dest, &st) == 0);
    CHECK_EQ_INT(st.st_mode, S_IFDIR | 0711);
    CHECK_EQ_INT(st.st_mtim.tv_sec, 1234567890);
    CHECK(file_is(DP(&f, "x"), "x"));
    CHECK_EQ_U64(res.inodes, 1);
    err_clear(&err);
    buf_free(&tar);

    /* "." as anything else is refused */
    fx_reset_dest(&f);
    tar_begin(&t);
    tar_file(&t, ".", "x", 0644);
    tar = tar_end(&t);
    expect_refused(&f, "regular file named .", &tar, NULL, ".");
    buf_free(&tar);
    fx_free(&f);
}

static void test_whiteouts(void)
{
    struct fx f;
    if (!fx_init(&f))
        return;
    struct tar t;
    tar_begin(&t);
    tar_dir(&t, "wd", 0755);
    tar_file(&t, "wd/.wh.gone", "", 0644);
    tar_file(&t, "wd/replaced", "earlier", 0644);
    tar_file(&t, "wd/.wh.replaced", "", 0644);
    tar_file(&t, "implicit/.wh.x", "", 0644);
    tar_dir(&t, "o", 0700);
    tar_file(&t, "o/.wh..wh..opq", "", 0644);
    tar_file(&t, "o/kept", "k", 0644);
    tar_file(&t, "p/q/.wh..wh..opq", "", 0644);
    tar_file(&t, "o/.wh..wh.plnk", "", 0644);
    tar_dir(&t, ".wh..wh.plnk", 0700);
    tar_file(&t, ".wh..wh.plnk/1234.5678", "aufs", 0644);
    struct buf tar = tar_end(&t);

    err_t err = ERR_INIT;
    struct unpack_result res;
    int r = unpack(&f, &tar, LAYER_COMPRESSION_NONE, NULL, &res, &err);
    CHECK_MSG(r == 0, "unpack: %s", err.msg ? err.msg : "");
    err_clear(&err);

    const char *wh[] = {"wd/gone", "wd/replaced", "implicit/x"};
    for (size_t i = 0; i < ARRAY_SIZE(wh); i++) {
        struct stat st;
        CHECK_MSG(lstat(DP(&f, wh[i]), &st) == 0 && st.st_mode == S_IFCHR && st.st_rdev == makedev(0, 0) &&
                      st.st_uid == 0 && st.st_gid == 0,
                  "%s is not a 0/0 whiteout device", wh[i]);
    }
    CHECK(lstat(DP(&f, "wd/.wh.gone"), &(struct stat){0}) < 0 && errno == ENOENT);
    CHECK(is_dir_0755_root(&f, "implicit"));
    CHECK(has_xattr(DP(&f, "o"), OPAQUE_NAME, "y", 1));
    CHECK(lstat(DP(&f, "o/.wh..wh..opq"), &(struct stat){0}) < 0 && errno == ENOENT);
    CHECK(file_is(DP(&f, "o/kept"), "k"));
    CHECK(is_dir_0755_root(&f, "p/q"));
    CHECK(has_xattr(DP(&f, "p/q"), OPAQUE_NAME, "y", 1));
    CHECK(lacks_xattr(DP(&f, "p"), OPAQUE_NAME));
    CHECK(lacks_xattr(DP(&f, "wd"), OPAQUE_NAME));
    CHECK(lstat(DP(&f, "o/.wh..wh.plnk"), &(struct stat){0}) < 0 && errno == ENOENT);
    CHECK(lstat(DP(&f, ".wh..wh.plnk"), &(struct stat){0}) < 0 && errno == ENOENT);
    CHECK_EQ_U64(res.inodes, 10); /* wd, gone, replaced (file, then whiteout), implicit, x, o, kept, p, q */
    buf_free(&tar);

    /* whiteouts of "." or ".." are refused */
    const char *bad[] = {".wh...", "d/.wh..", ".wh."};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        fx_reset_dest(&f);
        tar_begin(&t);
        tar_file(&t, bad[i], "", 0644);
        tar = tar_end(&t);
        expect_refused(&f, bad[i], &tar, NULL, bad[i]);
        buf_free(&tar);
    }
    fx_free(&f);
}

/* An entry replaces an earlier one of the same name without following it. */
static void test_replace(void)
{
    struct fx f;
    if (!fx_init(&f))
        return;
    char abs_passwd[PATH_MAX];
    snprintf(abs_passwd, sizeof(abs_passwd), "%s", f.passwd);
    struct tar t;
    tar_begin(&t);
    tar_symlink(&t, "v1", "../etc/passwd");
    tar_file(&t, "v1", "new1", 0644);
    tar_symlink(&t, "v2", abs_passwd);
    tar_file(&t, "v2", "new2", 0600);
    tar_file(&t, "real", "real", 0644);
    tar_symlink(&t, "v3", "../etc/passwd");
    tar_hardlink(&t, "v3", "real");
    tar_symlink(&t, "v4", "../outside");
    tar_dir(&t, "v4", 0755);
    tar_file(&t, "v4/in", "in", 0644);
    tar_symlink(&t, "v5", "../etc/passwd");
    tar_put(&t, ent("v5", AE_IFIFO, 0644), NULL, 0);
    tar_symlink(&t, "v6", "../outside");
    tar_symlink(&t, "v6", "elsewhere");
    tar_file(&t, "twice", "first", 0644);
    tar_file(&t, "twice", "second", 0644);
    tar_dir(&t, "wasdir", 0755);
    tar_file(&t, "wasdir", "file now", 0644);
    tar_file(&t, "wasfile", "x", 0644);
    tar_dir(&t, "wasfile", 0710);
    struct buf tar = tar_end(&t);

    err_t err = ERR_INIT;
    struct unpack_result res;
    int r = unpack(&f, &tar, LAYER_COMPRESSION_NONE, NULL, &res, &err);
    CHECK_MSG(r == 0, "unpack: %s", err.msg ? err.msg : "");
    err_clear(&err);
    check_untouched(&f, "replacing symlinks");
    struct stat st, st2;
    CHECK(file_is(DP(&f, "v1"), "new1"));
    CHECK(file_is(DP(&f, "v2"), "new2"));
    CHECK(lstat(DP(&f, "v2"), &st) == 0 && st.st_mode == (S_IFREG | 0600));
    CHECK(lstat(DP(&f, "v3"), &st) == 0 && lstat(DP(&f, "real"), &st2) == 0 && st.st_ino == st2.st_ino);
    CHECK(lstat(DP(&f, "v4"), &st) == 0 && S_ISDIR(st.st_mode));
    CHECK(file_is(DP(&f, "v4/in"), "in"));
    CHECK(lstat(DP(&f, "v5"), &st) == 0 && S_ISFIFO(st.st_mode));
    char buf[64];
    ssize_t n = readlink(DP(&f, "v6"), buf, sizeof(buf) - 1);
    buf[n < 0 ? 0 : n] = '\0';
    CHECK_STREQ(buf, "elsewhere");
    CHECK(file_is(DP(&f, "twice"), "second"));
    CHECK(file_is(DP(&f, "wasdir"), "file now"));
    CHECK(lstat(DP(&f, "wasfile"), &st) == 0 && st.st_mode == (S_IFDIR | 0710));
    buf_free(&tar);

    /* a non-empty directory is not silently thrown away */
    fx_reset_dest(&f);
    tar_begin(&t);
    tar_file(&t, "d/f", "f", 0644);
    tar_file(&t, "d", "file", 0644);
    tar = tar_end(&t);
    expect_refused(&f, "file over non-empty dir", &tar, NULL, "d");
    buf_free(&tar);
    fx_free(&f);
}

/* ---- diff_id and compression ------------------------------------------------- */

static struct buf sample_tar(size_t big_len)
{
    struct tar t;
    tar_begin(&t);
    tar_dir(&t, "dir", 0755);
    tar_file(&t, "dir/hello", "hello world\n", 0644);
    if (big_len) {
        char *big = malloc(big_len);
        uint32_t x = 12345;
        for (size_t i = 0; i < big_len; i++) {
            /* half compressible, half noise: long matches and literal runs */
            x = x * 1103515245 + 12345;
            big[i] = (i / 4096) % 2 ? (char)(x >> 24) : (char)('A' + i % 3);
        }
        tar_put(&t, ent("dir/big", AE_IFREG, 0644), big, big_len);
        free(big);
    }
    tar_symlink(&t, "dir/link", "hello");
    return tar_end(&t);
}

static void check_layer(const char *what, const struct buf *blob, enum layer_compression c, const struct buf *tar,
                        size_t big_len)
{
    struct fx f;
    if (!fx_init(&f))
        return;
    err_t err = ERR_INIT;
    struct unpack_result res;
    int r = unpack(&f, blob, c, NULL, &res, &err);
    CHECK_MSG(r == 0, "%s: %s", what, err.msg ? err.msg : "");
    char want[DIGEST_MAX_LEN + 1];
    digest_buffer(DIGEST_SHA256, tar->data, tar->len, want);
    CHECK_MSG(r == 0 && strcmp(res.diff_id, want) == 0, "%s: diff_id %s, want %s", what, res.diff_id, want);
    CHECK_MSG(file_is(DP(&f, "dir/hello"), "hello world\n"), "%s: dir/hello", what);
    struct stat st;
    CHECK_MSG(lstat(DP(&f, "dir/link"), &st) == 0 && S_ISLNK(st.st_mode), "%s: dir/link", what);
    if (big_len)
        CHECK_MSG(lstat(DP(&f, "dir/big"), &st) == 0 && (size_t)st.st_size == big_len, "%s: dir/big", what);
    CHECK_MSG(res.bytes == 12 + big_len, "%s: bytes %llu", what, (unsigned long long)res.bytes);
    CHECK_MSG(res.inodes == (big_len ? 4u : 3u), "%s: inodes %llu", what, (unsigned long long)res.inodes);
    err_clear(&err);
    fx_free(&f);
}

static void test_diff_id(void)
{
    for (int pass = 0; pass < 2; pass++) {
        size_t big_len = pass ? 3 * 1024 * 1024 + 17 : 0;
        struct buf tar = sample_tar(big_len);
        struct buf gz = gzip_of(tar.data, tar.len), zs = zstd_of(tar.data, tar.len);

        check_layer("none", &tar, LAYER_COMPRESSION_NONE, &tar, big_len);
        check_layer("gzip", &gz, LAYER_COMPRESSION_GZIP, &tar, big_len);
        check_layer("zstd", &zs, LAYER_COMPRESSION_ZSTD, &tar, big_len);
        check_layer("detect none", &tar, LAYER_COMPRESSION_DETECT, &tar, big_len);
        check_layer("detect gzip", &gz, LAYER_COMPRESSION_DETECT, &tar, big_len);
        check_layer("detect zstd", &zs, LAYER_COMPRESSION_DETECT, &tar, big_len);

        /* two gzip members / two zstd frames, split mid-header */
        size_t cut = 700;
        struct buf g1 = gzip_of(tar.data, cut), g2 = gzip_of(tar.data + cut, tar.len - cut);
        struct buf gg = buf_copy(&g1);
        buf_append(&gg, g2.data, g2.len);
        check_layer("two gzip members", &gg, LAYER_COMPRESSION_GZIP, &tar, big_len);
        check_layer("detect two gzip members", &gg, LAYER_COMPRESSION_DETECT, &tar, big_len);
        struct buf z1 = zstd_of(tar.data, cut), z2 = zstd_of(tar.data + cut, tar.len - cut);
        struct buf zz = buf_copy(&z1);
        buf_append(&zz, z2.data, z2.len);
        check_layer("two zstd frames", &zz, LAYER_COMPRESSION_ZSTD, &tar, big_len);

        /* extra zero blocks after the end of the archive are covered too */
        struct buf padded = buf_copy(&tar);
        static const char zeros[8192];
        buf_append(&padded, zeros, sizeof(zeros));
        struct buf gpad = gzip_of(padded.data, padded.len);
        check_layer("padded gzip", &gpad, LAYER_COMPRESSION_GZIP, &padded, big_len);
        check_layer("padded none", &padded, LAYER_COMPRESSION_NONE, &padded, big_len);

        buf_free(&tar);
        buf_free(&gz);
        buf_free(&zs);
        buf_free(&g1);
        buf_free(&g2);
        buf_free(&gg);
        buf_free(&z1);
        buf_free(&z2);
        buf_free(&zz);
        buf_free(&padded);
        buf_free(&gpad);
    }
}

/* Reading starts at the descriptor's offset (a blob after a header, say). */
static void test_blob_offset(void)
{
    struct fx f;
    if (!fx_init(&f))
        return;
    struct buf tar = sample_tar(0);
    struct buf gz = gzip_of(tar.data, tar.len);
    struct buf blob = {0};
    buf_append(&blob, "JUNKJUNK", 8);
    buf_append(&blob, gz.data, gz.len);
    int fd = blob_fd(blob.data, blob.len);
    CHECK(lseek(fd, 8, SEEK_SET) == 8);
    err_t err = ERR_INIT;
    struct unpack_result res;
    CHECK_OK(layer_unpack(fd, LAYER_COMPRESSION_DETECT, f.destfd, NULL, &res, &err));
    char want[DIGEST_MAX_LEN + 1];
    digest_buffer(DIGEST_SHA256, tar.data, tar.len, want);
    CHECK_STREQ(res.diff_id, want);
    close(fd);
    err_clear(&err);
    buf_free(&tar);
    buf_free(&gz);
    buf_free(&blob);
    fx_free(&f);
}

/* A source that hands out a few bytes per call (a blob arriving in pieces)
 * and can fail at a given offset (a cancelled download). */
struct trickle {
    const unsigned char *data;
    size_t len, pos, fail_at;
    unsigned calls;
};

static ssize_t trickle_read(void *ctx, void *buf, size_t len)
{
    struct trickle *t = ctx;
    if (t->pos >= t->fail_at)
        return -ECANCELED;
    size_t n = 1 + t->calls++ % 3;
    if (n > len)
        n = len;
    if (n > t->len - t->pos)
        n = t->len - t->pos;
    if (n > t->fail_at - t->pos)
        n = t->fail_at - t->pos;
    memcpy(buf, t->data + t->pos, n);
    t->pos += n;
    return (ssize_t)n;
}

static void test_source(void)
{
    struct buf tar = sample_tar(0);
    struct buf gz = gzip_of(tar.data, tar.len), zs = zstd_of(tar.data, tar.len);
    char want[DIGEST_MAX_LEN + 1];
    digest_buffer(DIGEST_SHA256, tar.data, tar.len, want);
    const struct buf *blobs[] = {&tar, &gz, &zs};
    for (size_t i = 0; i < ARRAY_SIZE(blobs); i++) {
        struct fx f;
        if (!fx_init(&f))
            break;
        struct trickle t = {blobs[i]->data, blobs[i]->len, 0, SIZE_MAX, 0};
        const struct unpack_source src = {trickle_read, &t};
        err_t err = ERR_INIT;
        struct unpack_result res;
        CHECK_OK(layer_unpack_from(&src, LAYER_COMPRESSION_DETECT, f.destfd, NULL, &res, &err));
        CHECK_STREQ(res.diff_id, want);
        CHECK(t.pos == blobs[i]->len);
        err_clear(&err);
        fx_free(&f);

        /* A failing source fails the unpack with its errno. */
        if (!fx_init(&f))
            break;
        t = (struct trickle){blobs[i]->data, blobs[i]->len, 0, blobs[i]->len / 2, 0};
        CHECK(layer_unpack_from(&src, LAYER_COMPRESSION_DETECT, f.destfd, NULL, &res, &err) < 0);
        CHECK_MSG(err.msg && strstr(err.msg, "reading layer blob"), "message: %s", err.msg ? err.msg : "(none)");
        err_clear(&err);
        fx_free(&f);
    }
    buf_free(&tar);
    buf_free(&gz);
    buf_free(&zs);
}

static void test_empty_layers(void)
{
    struct fx f;
    if (!fx_init(&f))
        return;
    static const unsigned char zeros[1024];
    struct buf z = {0};
    buf_append(&z, zeros, sizeof(zeros));
    struct buf gz = gzip_of(zeros, sizeof(zeros));
    struct buf nothing = {0};
    struct buf gz_nothing = gzip_of("", 0);
    struct {
        const char *what;
        struct buf *blob;
        enum layer_compression c;
        const void *raw;
        size_t raw_len;
    } cases[] = {
        {"1024 zero bytes", &z, LAYER_COMPRESSION_NONE, zeros, sizeof(zeros)},
        {"gzip of 1024 zero bytes", &gz, LAYER_COMPRESSION_DETECT, zeros, sizeof(zeros)},
        {"empty blob", &nothing, LAYER_COMPRESSION_DETECT, "", 0},
        {"gzip of nothing", &gz_nothing, LAYER_COMPRESSION_GZIP, "", 0},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        fx_reset_dest(&f);
        err_t err = ERR_INIT;
        struct unpack_result res;
        int r = unpack(&f, cases[i].blob, cases[i].c, NULL, &res, &err);
        CHECK_MSG(r == 0, "%s: %s", cases[i].what, err.msg ? err.msg : "");
        char want[DIGEST_MAX_LEN + 1];
        digest_buffer(DIGEST_SHA256, cases[i].raw, cases[i].raw_len, want);
        CHECK_MSG(strcmp(res.diff_id, want) == 0, "%s: diff_id %s", cases[i].what, res.diff_id);
        CHECK_MSG(res.inodes == 0 && res.bytes == 0, "%s: counts", cases[i].what);
        CHECK_MSG(count_entries(f.dest) == 0, "%s: dest not empty", cases[i].what);
        err_clear(&err);
    }
    buf_free(&z);
    buf_free(&gz);
    buf_free(&gz_nothing);
    fx_free(&f);
}

/* The layer must fail with ERR_INVALID_ARGUMENT and a message containing
 * `needle`. */
static void expect_bad_blob(const char *what, const struct buf *blob, enum layer_compression c, const char *needle)
{
    struct fx f;
    if (!fx_init(&f))
        return;
    err_t err = ERR_INIT;
    struct unpack_result res;
    int r = unpack(&f, blob, c, NULL, &res, &err);
    CHECK_MSG(r < 0, "%s: accepted", what);
    CHECK_MSG(err.code == ERR_INVALID_ARGUMENT, "%s: code %s (%s)", what, err_code_name(err.code),
              err.msg ? err.msg : "");
    CHECK_MSG(err.msg && strstr(err.msg, needle), "%s: message \"%s\" lacks \"%s\"", what, err.msg ? err.msg : "",
              needle);
    check_untouched(&f, what);
    err_clear(&err);
    fx_free(&f);
}

static void test_corrupt(void)
{
    struct buf tar = sample_tar(200 * 1024);
    struct buf gz = gzip_of(tar.data, tar.len), zs = zstd_of(tar.data, tar.len);

    struct buf b = buf_copy(&gz);
    b.data[b.len - 6] ^= 0x55; /* CRC32 */
    expect_bad_blob("gzip crc", &b, LAYER_COMPRESSION_GZIP, "corrupt gzip data in layer");
    buf_free(&b);
    b = buf_copy(&gz);
    b.data[2] = 7; /* compression method */
    expect_bad_blob("gzip method", &b, LAYER_COMPRESSION_GZIP, "corrupt gzip data in layer");
    buf_free(&b);
    b = buf_copy(&gz);
    buf_append(&b, "garbage", 7);
    expect_bad_blob("gzip trailing garbage", &b, LAYER_COMPRESSION_GZIP, "corrupt gzip data in layer");
    buf_free(&b);
    b = buf_copy(&gz);
    for (size_t i = 100; i < 140; i++)
        b.data[i] = (unsigned char)(i * 37);
    expect_bad_blob("gzip body", &b, LAYER_COMPRESSION_DETECT, "layer");
    buf_free(&b);
    expect_bad_blob("zstd as gzip", &zs, LAYER_COMPRESSION_GZIP, "corrupt gzip data in layer");
    expect_bad_blob("gzip as zstd", &gz, LAYER_COMPRESSION_ZSTD, "corrupt zstd data in layer");
    expect_bad_blob("gzip as plain tar", &gz, LAYER_COMPRESSION_NONE, "reading layer tar");

    b = buf_copy(&zs);
    b.data[b.len - 2] ^= 0x55; /* content checksum */
    expect_bad_blob("zstd checksum", &b, LAYER_COMPRESSION_ZSTD, "corrupt zstd data in layer");
    buf_free(&b);
    b = buf_copy(&zs);
    b.data[0] ^= 0x01; /* magic */
    expect_bad_blob("zstd magic", &b, LAYER_COMPRESSION_ZSTD, "corrupt zstd data in layer");
    buf_free(&b);

    /* truncated */
    b = buf_copy(&gz);
    b.len /= 2;
    expect_bad_blob("gzip half", &b, LAYER_COMPRESSION_GZIP, "truncated gzip data in layer");
    b.len = gz.len - 3;
    expect_bad_blob("gzip without trailer end", &b, LAYER_COMPRESSION_DETECT, "truncated gzip data in layer");
    b.len = 0;
    expect_bad_blob("gzip empty", &b, LAYER_COMPRESSION_GZIP, "truncated gzip data in layer");
    buf_free(&b);
    b = buf_copy(&zs);
    b.len /= 2;
    expect_bad_blob("zstd half", &b, LAYER_COMPRESSION_ZSTD, "truncated zstd data in layer");
    b.len = zs.len - 1;
    expect_bad_blob("zstd last byte", &b, LAYER_COMPRESSION_DETECT, "truncated zstd data in layer");
    buf_free(&b);
    b = buf_copy(&tar);
    b.len = 2048 + 5000; /* headers of dir, dir/hello, its data, header of dir/big, then inside its data */
    expect_bad_blob("tar mid-file", &b, LAYER_COMPRESSION_NONE, "reading layer tar");
    buf_free(&b);
    b = buf_copy(&tar);
    b.len = 512 + 200; /* inside a header */
    expect_bad_blob("tar mid-header", &b, LAYER_COMPRESSION_NONE, "reading layer tar");
    buf_free(&b);
    b = buf_copy(&tar);
    b.data[512 + 148] ^= 0x01; /* second header's checksum */
    expect_bad_blob("tar checksum", &b, LAYER_COMPRESSION_NONE, "reading layer tar");
    buf_free(&b);
    expect_bad_blob("not a tar", &(struct buf){(unsigned char *)"hello, this is not a tar archive at all", 39, 0},
                    LAYER_COMPRESSION_NONE, "reading layer tar");

    buf_free(&tar);
    buf_free(&gz);
    buf_free(&zs);
}

/* The diff_id must cover what follows the archive, but not unboundedly. */
static void test_trailer(void)
{
    struct buf tar = sample_tar(0);
    size_t big = 17 << 20;
    unsigned char *zeros = calloc(1, big);
    struct buf padded = buf_copy(&tar);
    buf_append(&padded, zeros, big);
    free(zeros);
    struct buf gz = gzip_of(padded.data, padded.len);
    expect_bad_blob("17 MiB after the archive", &gz, LAYER_COMPRESSION_GZIP, "follow the end of the tar archive");
    /* garbage (not zeros) after the archive is hashed like anything else */
    struct buf junk = buf_copy(&tar);
    buf_append(&junk, "not a tar block", 15);
    check_layer("junk after the archive", &junk, LAYER_COMPRESSION_NONE, &junk, 0);
    buf_free(&tar);
    buf_free(&padded);
    buf_free(&gz);
    buf_free(&junk);
}

static void *unpack_thread(void *arg)
{
    struct buf *gz = arg;
    struct fx f;
    if (!fx_init(&f))
        return NULL;
    err_t err = ERR_INIT;
    struct unpack_result *res = calloc(1, sizeof(*res));
    int fd = blob_fd(gz->data, gz->len);
    if (layer_unpack(fd, LAYER_COMPRESSION_DETECT, f.destfd, NULL, res, &err) < 0 ||
        !file_is(DP(&f, "dir/hello"), "hello world\n"))
        res->diff_id[0] = '\0';
    close(fd);
    err_clear(&err);
    fx_free(&f);
    return res;
}

/* Layers unpack in thread-pool threads, several at once. */
static void test_concurrent(void)
{
    struct buf tar = sample_tar(1 << 20);
    struct buf gz = gzip_of(tar.data, tar.len);
    char want[DIGEST_MAX_LEN + 1];
    digest_buffer(DIGEST_SHA256, tar.data, tar.len, want);
    pthread_t th[6];
    for (size_t i = 0; i < ARRAY_SIZE(th); i++)
        CHECK(pthread_create(&th[i], NULL, unpack_thread, &gz) == 0);
    for (size_t i = 0; i < ARRAY_SIZE(th); i++) {
        void *ret = NULL;
        pthread_join(th[i], &ret);
        struct unpack_result *res = ret;
        CHECK_MSG(res && strcmp(res->diff_id, want) == 0, "thread %zu: diff_id %s", i, res ? res->diff_id : "-");
        free(res);
    }
    buf_free(&tar);
    buf_free(&gz);
}

static void test_dest_not_empty(void)
{
    struct fx f;
    if (!fx_init(&f))
        return;
    CHECK(write_file(DP(&f, "already"), "x", 0644));
    struct buf tar = sample_tar(0);
    err_t err = ERR_INIT;
    struct unpack_result res;
    CHECK(unpack(&f, &tar, LAYER_COMPRESSION_NONE, NULL, &res, &err) < 0);
    CHECK_EQ_INT(err.code, ERR_FAILED_PRECONDITION);
    CHECK_CONTAINS(err.msg, "not empty");
    CHECK_EQ_INT(count_entries(f.dest), 1);
    err_clear(&err);
    fx_reset_dest(&f);
    CHECK(unpack(&f, &tar, (enum layer_compression)7, NULL, &res, &err) < 0);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(err.msg, "unknown compression");
    err_clear(&err);
    buf_free(&tar);
    fx_free(&f);
}

/* ---- hostile layers --------------------------------------------------------- */

static void b_abs(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_file(t, "ok", "fine", 0644);
    tar_file(t, "/abs", "x", 0644);
}

static void b_abs_outside(struct tar *t, const struct fx *f)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/pwned", f->outside);
    tar_file(t, p, "x", 0644);
}

static void b_abs_passwd(struct tar *t, const struct fx *f)
{
    tar_file(t, f->passwd, "pwned", 0644);
}

static void b_dotdot(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_file(t, "../x", "x", 0644);
}

static void b_dotdot_outside(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_file(t, "../outside/x", "x", 0644);
}

static void b_dotdot_deep(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_dir(t, "a", 0755);
    tar_file(t, "a/../../x", "x", 0644);
}

static void b_dotdot_passwd(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_file(t, "a/../../etc/passwd", "pwned", 0644);
}

static void b_dotdot_dir(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_dir(t, "./..", 0777);
}

static void b_symlink_rel(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_symlink(t, "evil", "../outside");
    tar_file(t, "evil/f", "x", 0644);
}

static void b_symlink_abs(struct tar *t, const struct fx *f)
{
    tar_symlink(t, "evil", f->outside);
    tar_file(t, "evil/f", "x", 0644);
}

static void b_symlink_etc(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_symlink(t, "evil", "../etc");
    tar_file(t, "evil/passwd", "pwned", 0644);
}

static void b_symlink_updir(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_dir(t, "d", 0755);
    tar_symlink(t, "d/evil", "../..");
    tar_file(t, "d/evil/etc/passwd", "pwned", 0644);
}

static void b_symlink_deep(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_symlink(t, "evil", "../outside");
    tar_file(t, "evil/a/b/c", "x", 0644);
}

static void b_symlink_mkdir(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_symlink(t, "evil", "../outside");
    tar_dir(t, "evil/sub", 0755);
}

static void b_symlink_chain(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_dir(t, "real", 0755);
    tar_symlink(t, "real/up", "../../outside");
    tar_symlink(t, "hop", "real/up");
    tar_file(t, "hop/x", "x", 0644);
}

static void b_symlink_dev(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_symlink(t, "evil", "../outside");
    struct archive_entry *e = ent("evil/null", AE_IFCHR, 0666);
    archive_entry_set_rdevmajor(e, 1);
    archive_entry_set_rdevminor(e, 3);
    tar_put(t, e, NULL, 0);
}

static void b_symlink_whiteout(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_symlink(t, "evil", "../etc");
    tar_file(t, "evil/.wh.passwd", "", 0644);
}

static void b_symlink_opaque(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_symlink(t, "evil", "../etc");
    tar_file(t, "evil/.wh..wh..opq", "", 0644);
}

static void b_symlink_symlink(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_symlink(t, "evil", "../outside");
    tar_symlink(t, "evil/link", "/etc/shadow");
}

static void b_link_dotdot(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_hardlink(t, "x", "../etc/passwd");
}

static void b_link_outside(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_hardlink(t, "x", "../outside/f");
}

static void b_link_abs(struct tar *t, const struct fx *f)
{
    tar_hardlink(t, "x", f->passwd);
}

static void b_link_through_symlink(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_symlink(t, "evil", "../etc");
    tar_hardlink(t, "x", "evil/passwd");
}

static void b_link_missing(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_file(t, "present", "p", 0644);
    tar_hardlink(t, "x", "absent");
}

static void b_link_dir(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_dir(t, "d", 0755);
    tar_hardlink(t, "x", "d");
}

static void b_link_into_symlink_dir(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_file(t, "f", "f", 0644);
    tar_symlink(t, "evil", "../outside");
    tar_hardlink(t, "evil/x", "f");
}

static void b_empty_name(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_file(t, "", "x", 0644);
}

static void b_parent_is_file(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_file(t, "file", "x", 0644);
    tar_file(t, "file/child", "x", 0644);
}

static void b_bad_owner(struct tar *t, const struct fx *f)
{
    (void)f;
    struct archive_entry *e = ent("owned", AE_IFREG, 04755);
    archive_entry_set_uid(e, 4294967295LL); /* (uid_t)-1: chown would keep root */
    tar_put(t, e, "x", 1);
}

/* Policy, not only containment: a symlink that stays inside the layer is not
 * followed either, and ".." is refused even where it would stay inside. */
static void test_inside_paths(void)
{
    struct {
        const char *what, *entry, *needle;
    } cases[] = {
        {"through internal symlink", "alias/f", "\"alias\" is or goes through a symlink"},
        {"through internal symlink, implicit dirs", "alias/x/y", "\"alias/x\" is or goes through a symlink"},
        {"dotdot staying inside", "real/../inside", "\"..\" in path"},
        {"hard link through internal symlink", "h", "\"alias/g\" is or goes through a symlink"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct fx f;
        if (!fx_init(&f))
            return;
        struct tar t;
        tar_begin(&t);
        tar_dir(&t, "real", 0755);
        tar_file(&t, "real/g", "g", 0644);
        tar_symlink(&t, "alias", "real");
        if (i == 3)
            tar_hardlink(&t, "h", "alias/g");
        else
            tar_file(&t, cases[i].entry, "x", 0644);
        struct buf tar = tar_end(&t);
        err_t err = ERR_INIT;
        struct unpack_result res;
        CHECK_MSG(unpack(&f, &tar, LAYER_COMPRESSION_NONE, NULL, &res, &err) < 0, "%s: accepted", cases[i].what);
        CHECK_MSG(err.code == ERR_INVALID_ARGUMENT, "%s: code %s", cases[i].what, err_code_name(err.code));
        CHECK_MSG(err.msg && strstr(err.msg, cases[i].entry), "%s: %s", cases[i].what, err.msg ? err.msg : "");
        CHECK_MSG(err.msg && strstr(err.msg, cases[i].needle), "%s: \"%s\" lacks %s", cases[i].what,
                  err.msg ? err.msg : "", cases[i].needle);
        CHECK_MSG(count_entries(DP(&f, "real")) == 1, "%s: something was created in real/", cases[i].what);
        CHECK_MSG(count_entries(f.dest) == 2, "%s: something was created in dest", cases[i].what);
        check_untouched(&f, cases[i].what);
        err_clear(&err);
        buf_free(&tar);
        fx_free(&f);
    }
}

static void b_self_link(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_file(t, "f", "content", 0644);
    tar_hardlink(t, "f", "./f");
}

static void b_self_link_missing(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_hardlink(t, "g", "g");
}

static void test_self_link(void)
{
    struct fx f;
    if (!fx_init(&f))
        return;
    struct tar t;
    tar_begin(&t);
    b_self_link(&t, &f);
    struct buf tar = tar_end(&t);
    err_t err = ERR_INIT;
    struct unpack_result res;
    CHECK_OK(unpack(&f, &tar, LAYER_COMPRESSION_NONE, NULL, &res, &err));
    CHECK(file_is(DP(&f, "f"), "content"));
    err_clear(&err);
    buf_free(&tar);
    fx_free(&f);
    refused_case("hard link to itself, missing", b_self_link_missing, NULL, "g");
}

static void test_hostile(void)
{
    refused_case("absolute path", b_abs, NULL, "/abs");
    refused_case("absolute path into outside", b_abs_outside, NULL, "%s/outside/pwned");
    refused_case("absolute path onto passwd", b_abs_passwd, NULL, "%s/etc/passwd");
    refused_case("../x", b_dotdot, NULL, "../x");
    refused_case("../outside/x", b_dotdot_outside, NULL, "../outside/x");
    refused_case("a/../../x", b_dotdot_deep, NULL, "a/../../x");
    refused_case("a/../../etc/passwd", b_dotdot_passwd, NULL, "a/../../etc/passwd");
    refused_case("./.. directory", b_dotdot_dir, NULL, "./../"); /* the writer adds the slash */
    refused_case("write through relative symlink", b_symlink_rel, NULL, "evil/f");
    refused_case("write through absolute symlink", b_symlink_abs, NULL, "evil/f");
    refused_case("write through symlink to etc", b_symlink_etc, NULL, "evil/passwd");
    refused_case("write through symlink to ../..", b_symlink_updir, NULL, "d/evil/etc/passwd");
    refused_case("implicit dirs through symlink", b_symlink_deep, NULL, "evil/a/b/c");
    refused_case("mkdir through symlink", b_symlink_mkdir, NULL, "evil/sub/");
    refused_case("symlink chain", b_symlink_chain, NULL, "hop/x");
    refused_case("device through symlink", b_symlink_dev, NULL, "evil/null");
    refused_case("whiteout through symlink", b_symlink_whiteout, NULL, "evil/.wh.passwd");
    refused_case("opaque marker through symlink", b_symlink_opaque, NULL, "evil/.wh..wh..opq");
    refused_case("symlink through symlink", b_symlink_symlink, NULL, "evil/link");
    refused_case("hard link to ../etc/passwd", b_link_dotdot, NULL, "x");
    refused_case("hard link to ../outside/f", b_link_outside, NULL, "x");
    refused_case("hard link to absolute path", b_link_abs, NULL, "x");
    refused_case("hard link through symlink", b_link_through_symlink, NULL, "x");
    refused_case("hard link to missing file", b_link_missing, NULL, "x");
    refused_case("hard link to directory", b_link_dir, NULL, "x");
    refused_case("hard link created through symlink", b_link_into_symlink_dir, NULL, "evil/x");
    refused_case("empty name", b_empty_name, NULL, "");
    refused_case("parent is a file", b_parent_is_file, NULL, "file/child");
    refused_case("uid -1", b_bad_owner, NULL, "owned");
}

/* ---- limits ------------------------------------------------------------------ */

static void b_sizes(struct tar *t, const struct fx *f)
{
    (void)f;
    char data[101];
    memset(data, 'x', sizeof(data));
    tar_put(t, ent("exact", AE_IFREG, 0644), data, 100);
    tar_put(t, ent("over", AE_IFREG, 0644), data, 101);
}

static void b_three(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_file(t, "e1", "1", 0644);
    tar_dir(t, "e2", 0755);
    tar_symlink(t, "e3", "e1");
}

static void b_four(struct tar *t, const struct fx *f)
{
    b_three(t, f);
    tar_file(t, "e4", "4", 0644);
}

static void b_total(struct tar *t, const struct fx *f)
{
    (void)f;
    char data[60];
    memset(data, 'x', sizeof(data));
    tar_put(t, ent("t1", AE_IFREG, 0644), data, 60);
    tar_put(t, ent("t2", AE_IFREG, 0644), data, 60);
    tar_put(t, ent("t3", AE_IFREG, 0644), data, 60);
}

static char name50[51], name51[52], target51[52];

static void b_path_ok(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_file(t, name50, "x", 0644);
}

static void b_path_long(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_file(t, name50, "x", 0644);
    tar_file(t, name51, "x", 0644);
}

static void b_symlink_target_long(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_symlink(t, "s", target51);
}

static void b_hardlink_target_long(struct tar *t, const struct fx *f)
{
    (void)f;
    tar_hardlink(t, "h", target51);
}

/* Builds with `build` and expects success under `lim`. */
static void accepted_case(const char *what, build_fn build, const struct unpack_limits *lim)
{
    struct fx f;
    if (!fx_init(&f))
        return;
    struct tar t;
    tar_begin(&t);
    build(&t, &f);
    struct buf tar = tar_end(&t);
    err_t err = ERR_INIT;
    struct unpack_result res;
    int r = unpack(&f, &tar, LAYER_COMPRESSION_NONE, lim, &res, &err);
    CHECK_MSG(r == 0, "%s: %s", what, err.msg ? err.msg : "");
    err_clear(&err);
    buf_free(&tar);
    fx_free(&f);
}

static void test_limits(void)
{
    struct unpack_limits lim = UNPACK_LIMITS_DEFAULT;
    lim.max_entry_size = 100;
    refused_case("entry over max_entry_size", b_sizes, &lim, "over");

    lim = (struct unpack_limits)UNPACK_LIMITS_DEFAULT;
    lim.max_entries = 3;
    accepted_case("exactly max_entries", b_three, &lim);
    refused_case("more than max_entries", b_four, &lim, "e4");

    lim = (struct unpack_limits)UNPACK_LIMITS_DEFAULT;
    lim.max_total_size = 150;
    refused_case("total over max_total_size", b_total, &lim, "t3");
    lim.max_total_size = 180;
    accepted_case("total at max_total_size", b_total, &lim);

    memset(name50, 'n', 50);
    memcpy(name51, name50, 50);
    name51[49] = '/';
    name51[50] = 'x';
    memset(target51, 't', 51);
    lim = (struct unpack_limits)UNPACK_LIMITS_DEFAULT;
    lim.max_path_len = 50;
    accepted_case("path at max_path_len", b_path_ok, &lim);
    refused_case("path over max_path_len", b_path_long, &lim, name51);
    refused_case("symlink target over max_path_len", b_symlink_target_long, &lim, "s");
    refused_case("hard link target over max_path_len", b_hardlink_target_long, &lim, "h");

    CHECK_EQ_U64(((struct unpack_limits)UNPACK_LIMITS_DEFAULT).max_entry_size, 8ULL << 30);
    CHECK_EQ_U64(((struct unpack_limits)UNPACK_LIMITS_DEFAULT).max_total_size, 32ULL << 30);
    CHECK_EQ_U64(((struct unpack_limits)UNPACK_LIMITS_DEFAULT).max_entries, 1000000);
    CHECK_EQ_U64(((struct unpack_limits)UNPACK_LIMITS_DEFAULT).max_path_len, 4096);
}

/* A 10 MiB entry claimed by a 40-byte gzip: refused by its header, before
 * any of it is inflated. */
static void test_bomb_header(void)
{
    struct fx f;
    if (!fx_init(&f))
        return;
    struct tar t;
    tar_begin(&t);
    char *big = calloc(1, 10 << 20);
    tar_put(&t, ent("bomb", AE_IFREG, 0644), big, 10 << 20);
    free(big);
    struct buf tar = tar_end(&t);
    struct buf gz = gzip_of(tar.data, tar.len);
    struct unpack_limits lim = UNPACK_LIMITS_DEFAULT;
    lim.max_entry_size = 1 << 20;
    err_t err = ERR_INIT;
    struct unpack_result res;
    CHECK(unpack(&f, &gz, LAYER_COMPRESSION_GZIP, &lim, &res, &err) < 0);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(err.msg, "\"bomb\"");
    CHECK(lstat(DP(&f, "bomb"), &(struct stat){0}) < 0);
    err_clear(&err);
    buf_free(&tar);
    buf_free(&gz);
    fx_free(&f);
}

/* ---- fuzz --------------------------------------------------------------------- */

static uint32_t rng_state = 0x2545F491;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static struct buf fuzz_seed_tar(const struct fx *f)
{
    struct tar t;
    tar_begin(&t);
    tar_dir(&t, "d", 0755);
    tar_file(&t, "d/file", "some content here", 0644);
    tar_symlink(&t, "evil", "../outside");
    tar_symlink(&t, "abs", f->outside);
    tar_symlink(&t, "etcl", "../etc");
    tar_file(&t, "evilx/f", "would be outside with one byte changed", 0644);
    tar_file(&t, "etclx/passwd", "pwned", 0644);
    tar_hardlink(&t, "d/link", "d/file");
    tar_file(&t, "d/.wh.gone", "", 0644);
    tar_file(&t, "d/.wh..wh..opq", "", 0644);
    struct archive_entry *e = ent("d/caps", AE_IFREG, 04755);
    archive_entry_xattr_add_entry(e, "security.capability", cap_net_raw, sizeof(cap_net_raw));
    archive_entry_xattr_add_entry(e, "trusted.overlay.opaque", "y", 1);
    tar_put(&t, e, "c", 1);
    e = ent("dev/null", AE_IFCHR, 0666);
    archive_entry_set_rdevmajor(e, 1);
    archive_entry_set_rdevminor(e, 3);
    tar_put(&t, e, NULL, 0);
    return tar_end(&t);
}

/* Recomputes the ustar checksums so mutated headers reach the parser. */
static void fix_checksums(struct buf *tar)
{
    size_t off = 0;
    while (off + 512 <= tar->len) {
        unsigned char *h = tar->data + off;
        bool zero = true;
        for (int i = 0; i < 512 && zero; i++)
            zero = h[i] == 0;
        if (zero)
            return;
        memset(h + 148, ' ', 8);
        unsigned sum = 0;
        for (int i = 0; i < 512; i++)
            sum += h[i];
        char ck[8];
        snprintf(ck, sizeof(ck), "%06o", sum & 0777777);
        memcpy(h + 148, ck, 7);
        char sz[13];
        memcpy(sz, h + 124, 12);
        sz[12] = '\0';
        char *end;
        unsigned long long size = strtoull(sz, &end, 8);
        if (size > tar->len)
            return;
        off += 512 + ((size + 511) / 512) * 512;
    }
}

static const unsigned char interesting[] = {'/', '.', 0, '1', '2', '3', '4', '5', '6', 'x', 0xff, '7', '0', 'L', 'K'};

static void mutate(struct buf *b, size_t limit)
{
    int n = 1 + (int)(rng() % 6);
    for (int i = 0; i < n; i++) {
        size_t pos = rng() % (limit ? limit : 1);
        b->data[pos] = rng() % 2 ? interesting[rng() % sizeof(interesting)] : (unsigned char)rng();
    }
}

static void test_fuzz(void)
{
    struct fx f;
    if (!fx_init(&f))
        return;
    struct buf seed = fuzz_seed_tar(&f);
    struct buf seed_gz = gzip_of(seed.data, seed.len);
    /* the seed itself is fine */
    {
        err_t err = ERR_INIT;
        struct unpack_result res;
        CHECK_OK(unpack(&f, &seed_gz, LAYER_COMPRESSION_GZIP, NULL, &res, &err));
        err_clear(&err);
        check_untouched(&f, "fuzz seed");
    }
    int accepted = 0, refused = 0;
    for (int round = 0; round < 400; round++) {
        struct buf blob;
        if (round < 200) {
            /* the compressed bytes */
            blob = buf_copy(&seed_gz);
            mutate(&blob, blob.len);
        } else {
            /* the tar, then compressed: reaches the tar parser and the
             * unpacker with hostile names, types, sizes, links */
            struct buf tar = buf_copy(&seed);
            size_t used = tar.len;
            while (used > 512 && tar.data[used - 1] == 0)
                used--;
            mutate(&tar, used + 512);
            fix_checksums(&tar);
            blob = gzip_of(tar.data, tar.len);
            buf_free(&tar);
        }
        fx_reset_dest(&f);
        err_t err = ERR_INIT;
        struct unpack_result res;
        int r = unpack(&f, &blob, LAYER_COMPRESSION_DETECT, NULL, &res, &err);
        if (r == 0)
            accepted++;
        else
            refused++;
        char what[32];
        snprintf(what, sizeof(what), "fuzz round %d", round);
        check_untouched(&f, what);
        err_clear(&err);
        buf_free(&blob);
    }
    CHECK_MSG(refused > 0, "no mutation was refused");
    printf("fuzz: %d accepted, %d refused\n", accepted, refused);
    buf_free(&seed);
    buf_free(&seed_gz);
    fx_free(&f);
}

static void test_media_types(void)
{
    CHECK_EQ_INT(layer_compression_from_media_type("application/vnd.oci.image.layer.v1.tar"), LAYER_COMPRESSION_NONE);
    CHECK_EQ_INT(layer_compression_from_media_type("application/vnd.oci.image.layer.v1.tar+gzip"),
                 LAYER_COMPRESSION_GZIP);
    CHECK_EQ_INT(layer_compression_from_media_type("application/vnd.oci.image.layer.v1.tar+zstd"),
                 LAYER_COMPRESSION_ZSTD);
    CHECK_EQ_INT(layer_compression_from_media_type("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"),
                 LAYER_COMPRESSION_GZIP);
    CHECK_EQ_INT(layer_compression_from_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip"),
                 LAYER_COMPRESSION_GZIP);
    CHECK_EQ_INT(layer_compression_from_media_type("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"),
                 LAYER_COMPRESSION_GZIP);
    CHECK_EQ_INT(layer_compression_from_media_type("application/vnd.docker.image.rootfs.diff.tar.zstd"),
                 LAYER_COMPRESSION_ZSTD);
    CHECK_EQ_INT(layer_compression_from_media_type("Application/VND.OCI.image.layer.v1.tar+GZIP ; x=y"),
                 LAYER_COMPRESSION_GZIP);
    CHECK_EQ_INT(layer_compression_from_media_type("application/vnd.oci.image.layer.v1.tar+gzipx"),
                 LAYER_COMPRESSION_DETECT);
    CHECK_EQ_INT(layer_compression_from_media_type("application/octet-stream"), LAYER_COMPRESSION_DETECT);
    CHECK_EQ_INT(layer_compression_from_media_type(""), LAYER_COMPRESSION_DETECT);
    CHECK_EQ_INT(layer_compression_from_media_type(NULL), LAYER_COMPRESSION_DETECT);
}

int main(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_unpack needs root (devices, ownership, trusted.* xattrs)\n");
        return 1;
    }
    RUN(test_entries);
    RUN(test_root_entry);
    RUN(test_whiteouts);
    RUN(test_replace);
    RUN(test_diff_id);
    RUN(test_blob_offset);
    RUN(test_source);
    RUN(test_empty_layers);
    RUN(test_corrupt);
    RUN(test_trailer);
    RUN(test_concurrent);
    RUN(test_dest_not_empty);
    RUN(test_hostile);
    RUN(test_inside_paths);
    RUN(test_self_link);
    RUN(test_limits);
    RUN(test_bomb_header);
    RUN(test_fuzz);
    RUN(test_media_types);
    return unit_summary();
}
