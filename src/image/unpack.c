/* Layer unpacking: decompress + hash (layer_stream), parse with libarchive's
 * tar reader, create every entry fd-relative to the destination (unpacker).
 * See unpack.h for why it is built this way. */
#include "image/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "util/cleanup.h"
#include "util/log.h"

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452 /* the same number on every architecture */
#endif

#define IN_BUF_SIZE  (64 * 1024)
#define OUT_BUF_SIZE (128 * 1024)

/* What may follow the tar's end-of-archive blocks. Tar writers pad to their
 * record size (10 KiB for GNU tar) and nothing more; the diff_id has to cover
 * it, but a layer must not make us inflate gigabytes of junk to compute it. */
#define TRAILER_MAX (16 * 1024 * 1024)

#define WHITEOUT_PREFIX ".wh."
#define WHITEOUT_META   ".wh..wh."
#define WHITEOUT_OPAQUE ".wh..wh..opq"

/* ---- quoting names for messages ---------------------------------------- */

/* Entry names end up in logs and gRPC statuses: escape what is not printable
 * ASCII and cut very long names, so a message is always one short line. */
#define QUOTE_MAX  200
#define QUOTE_SIZE (QUOTE_MAX * 4 + 8)

static const char *quote_into(char *buf, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, i = 0;
    if (!s)
        s = "";
    for (; s[i] && i < QUOTE_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        } else {
            buf[o++] = (char)c;
        }
    }
    if (s[i]) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

/* The buffer lives until the end of the enclosing block: fine for an argument. */
#define Q(s) quote_into((char[QUOTE_SIZE]){0}, (s))

/* Refuses the whole layer because of what one entry holds. */
static int refuse(err_t *err, const char *entry, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(err_t *err, const char *entry, const char *fmt, ...)
{
    char *why = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&why, fmt, ap) < 0)
        why = NULL;
    va_end(ap);
    int r = err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "refusing layer entry \"%s\": %s", Q(entry),
                    why ? why : "invalid entry");
    free(why);
    return r;
}

/* A system call failed on an entry: "creating file "a/b" in layer: ENOSPC". */
static int fail_sys(err_t *err, int errnum, const char *doing, const char *entry)
{
    return err_sys(err, errnum, "%s \"%s\" in layer", doing, Q(entry));
}

/* ---- decompressing and hashing ----------------------------------------- */

/* Turns the blob into the uncompressed tar stream, hashing every byte handed
 * out: what libarchive parses and what the diff_id covers are the same bytes. */
struct layer_stream {
    const struct unpack_source *src;
    enum layer_compression comp; /* resolved: never DETECT */
    unsigned char *in;
    size_t in_pos, in_len;
    bool in_eof;
    unsigned char *out;
    /* The decompressor stopped because `out` was full, so it may hold more
     * output even when there is no more input. */
    bool out_full;
    z_stream zs;
    bool zs_ready;
    bool gz_in_member, gz_seen_member;
    ZSTD_DStream *zds;
    size_t zstd_hint; /* last ZSTD_decompressStream result: 0 at a frame boundary */
    bool zstd_seen_input;
    bool done, failed;
    struct digester *dig;
    uint64_t total;
    err_t err; /* why the stream failed: the libarchive callback cannot carry it */
};

static ssize_t stream_fail(struct layer_stream *s, enum err_code code, int errnum, const char *msg, const char *detail)
{
    if (detail)
        err_set(&s->err, code, errnum, "%s: %s", msg, detail);
    else
        err_set(&s->err, code, errnum, "%s", msg);
    s->failed = true;
    return -1;
}

/* 1 when input is buffered, 0 at the end of the blob, -1 on error. */
static int stream_fill(struct layer_stream *s)
{
    if (s->in_pos < s->in_len)
        return 1;
    if (s->in_eof)
        return 0;
    ssize_t n = s->src->read(s->src->ctx, s->in, IN_BUF_SIZE);
    if (n < 0) {
        err_sys(&s->err, (int)-n, "reading layer blob");
        s->failed = true;
        return -1;
    }
    s->in_pos = 0;
    s->in_len = (size_t)n;
    if (n == 0)
        s->in_eof = true;
    return n > 0;
}

static ssize_t stream_emit(struct layer_stream *s, const void **buf, const void *data, size_t len)
{
    digester_update(s->dig, data, len);
    s->total += len;
    *buf = data;
    return (ssize_t)len;
}

static ssize_t stream_read_none(struct layer_stream *s, const void **buf)
{
    int r = stream_fill(s);
    if (r <= 0)
        return r;
    const unsigned char *p = s->in + s->in_pos;
    size_t n = s->in_len - s->in_pos;
    s->in_pos = s->in_len;
    return stream_emit(s, buf, p, n);
}

static ssize_t stream_read_gzip(struct layer_stream *s, const void **buf)
{
    for (;;) {
        if (!s->gz_in_member) {
            /* Between members: more input means another member (pigz and
             * friends concatenate them); the end of the blob is the end. */
            int r = stream_fill(s);
            if (r < 0)
                return -1;
            if (r == 0) {
                if (!s->gz_seen_member)
                    return stream_fail(s, ERR_INVALID_ARGUMENT, EINVAL, "truncated gzip data in layer: empty blob",
                                       NULL);
                return 0;
            }
            if (s->gz_seen_member && inflateReset(&s->zs) != Z_OK)
                return stream_fail(s, ERR_INTERNAL, EINVAL, "resetting the gzip decoder", NULL);
            s->gz_in_member = s->gz_seen_member = true;
        }
        if (s->in_pos == s->in_len && !s->out_full) {
            int r = stream_fill(s);
            if (r < 0)
                return -1;
            if (r == 0)
                return stream_fail(s, ERR_INVALID_ARGUMENT, EINVAL, "truncated gzip data in layer", NULL);
        }
        s->zs.next_in = s->in + s->in_pos;
        s->zs.avail_in = (uInt)(s->in_len - s->in_pos);
        s->zs.next_out = s->out;
        s->zs.avail_out = OUT_BUF_SIZE;
        int ret = inflate(&s->zs, Z_NO_FLUSH);
        s->in_pos = s->in_len - s->zs.avail_in;
        size_t produced = OUT_BUF_SIZE - s->zs.avail_out;
        s->out_full = s->zs.avail_out == 0;
        if (ret == Z_STREAM_END) {
            s->gz_in_member = false;
        } else if (ret == Z_BUF_ERROR && s->zs.avail_in == 0) {
            s->out_full = false; /* nothing was pending after all: needs input */
        } else if (ret != Z_OK) {
            if (ret == Z_MEM_ERROR)
                return stream_fail(s, ERR_RESOURCE_EXHAUSTED, ENOMEM, "decompressing gzip layer", "out of memory");
            return stream_fail(s, ERR_INVALID_ARGUMENT, EINVAL, "corrupt gzip data in layer",
                               s->zs.msg ? s->zs.msg : "invalid stream");
        }
        if (produced)
            return stream_emit(s, buf, s->out, produced);
    }
}

static ssize_t stream_read_zstd(struct layer_stream *s, const void **buf)
{
    for (;;) {
        if (s->in_pos == s->in_len && !s->out_full) {
            int r = stream_fill(s);
            if (r < 0)
                return -1;
            if (r == 0) {
                if (!s->zstd_seen_input)
                    return stream_fail(s, ERR_INVALID_ARGUMENT, EINVAL, "truncated zstd data in layer: empty blob",
                                       NULL);
                if (s->zstd_hint != 0)
                    return stream_fail(s, ERR_INVALID_ARGUMENT, EINVAL, "truncated zstd data in layer", NULL);
                return 0;
            }
        }
        s->zstd_seen_input = true;
        ZSTD_inBuffer ib = {s->in, s->in_len, s->in_pos};
        ZSTD_outBuffer ob = {s->out, OUT_BUF_SIZE, 0};
        size_t ret = ZSTD_decompressStream(s->zds, &ob, &ib);
        if (ZSTD_isError(ret))
            return stream_fail(s, ERR_INVALID_ARGUMENT, EINVAL, "corrupt zstd data in layer", ZSTD_getErrorName(ret));
        s->in_pos = ib.pos;
        s->zstd_hint = ret;
        s->out_full = ob.pos == ob.size;
        if (ob.pos)
            return stream_emit(s, buf, s->out, ob.pos);
    }
}

/* Up to OUT_BUF_SIZE bytes of the uncompressed stream; 0 at its end, -1 on
 * error (s->err says why, and every later call fails too). */
static ssize_t stream_read(struct layer_stream *s, const void **buf)
{
    if (s->failed)
        return -1;
    if (s->done)
        return 0;
    ssize_t n;
    switch (s->comp) {
    case LAYER_COMPRESSION_GZIP:
        n = stream_read_gzip(s, buf);
        break;
    case LAYER_COMPRESSION_ZSTD:
        n = stream_read_zstd(s, buf);
        break;
    default:
        n = stream_read_none(s, buf);
        break;
    }
    if (n == 0)
        s->done = true;
    return n;
}

/* Reads until `want` bytes are buffered or the blob ends (for sniffing). */
static int stream_peek(struct layer_stream *s, size_t want, err_t *err)
{
    while (s->in_len < want && !s->in_eof) {
        ssize_t n = s->src->read(s->src->ctx, s->in + s->in_len, IN_BUF_SIZE - s->in_len);
        if (n < 0)
            return err_sys(err, (int)-n, "reading layer blob");
        if (n == 0)
            s->in_eof = true;
        s->in_len += (size_t)n;
    }
    return 0;
}

static int stream_init(struct layer_stream *s, const struct unpack_source *src, enum layer_compression comp, err_t *err)
{
    s->src = src;
    s->in = malloc(IN_BUF_SIZE);
    s->out = malloc(OUT_BUF_SIZE);
    s->dig = digester_new(DIGEST_SHA256);
    if (!s->in || !s->out || !s->dig)
        return err_sys(err, ENOMEM, "allocating layer buffers");

    if (comp == LAYER_COMPRESSION_DETECT) {
        static const unsigned char gzip_magic[] = {0x1f, 0x8b}, zstd_magic[] = {0x28, 0xb5, 0x2f, 0xfd};
        int r = stream_peek(s, sizeof(zstd_magic), err);
        if (r < 0)
            return r;
        if (s->in_len >= sizeof(gzip_magic) && memcmp(s->in, gzip_magic, sizeof(gzip_magic)) == 0)
            comp = LAYER_COMPRESSION_GZIP;
        else if (s->in_len >= sizeof(zstd_magic) && memcmp(s->in, zstd_magic, sizeof(zstd_magic)) == 0)
            comp = LAYER_COMPRESSION_ZSTD;
        else
            comp = LAYER_COMPRESSION_NONE;
    }
    s->comp = comp;

    if (comp == LAYER_COMPRESSION_GZIP) {
        /* 16 + MAX_WBITS: gzip framing only, so a raw zlib stream is corrupt. */
        int ret = inflateInit2(&s->zs, 16 + MAX_WBITS);
        if (ret != Z_OK)
            return err_set(err, ret == Z_MEM_ERROR ? ERR_RESOURCE_EXHAUSTED : ERR_INTERNAL, ENOMEM,
                           "initializing the gzip decoder");
        s->zs_ready = true;
    } else if (comp == LAYER_COMPRESSION_ZSTD) {
        /* The default window limit (128 MiB) bounds the decoder's memory. */
        s->zds = ZSTD_createDStream();
        if (!s->zds || ZSTD_isError(ZSTD_initDStream(s->zds)))
            return err_sys(err, ENOMEM, "initializing the zstd decoder");
    }
    return 0;
}

static void stream_free(struct layer_stream *s)
{
    if (s->zs_ready)
        inflateEnd(&s->zs);
    ZSTD_freeDStream(s->zds);
    digester_free(s->dig);
    free(s->in);
    free(s->out);
    err_clear(&s->err);
}

static la_ssize_t tar_read_cb(struct archive *a, void *client, const void **buf)
{
    struct layer_stream *s = client;
    ssize_t n = stream_read(s, buf);
    if (n < 0) {
        archive_set_error(a, s->err.errnum ? s->err.errnum : EIO, "%s", s->err.msg ? s->err.msg : "read error");
        return ARCHIVE_FATAL;
    }
    return n;
}

/* ---- creating entries ---------------------------------------------------- */

struct dir_time {
    char *path; /* cleaned, "" for the layer root */
    struct timespec ts[2];
    size_t depth, seq;
};

struct unpacker {
    int dest;
    struct unpack_limits lim;
    struct archive *a;
    struct layer_stream *s;
    uint64_t entries, declared, bytes, inodes;

    /* The directory the current entry goes into. Tar streams list a
     * directory's files together, so this saves re-resolving the same path.
     * It is only ever the parent of the entry being created, and entries only
     * remove their own name inside it, so it never points at a removed
     * directory. */
    char *parent_path;
    int parent_fd;
    bool parent_owned;

    /* Directory times are set last: creating the contents changes them. */
    struct dir_time *dirs;
    size_t ndirs, cap_dirs;

    uint64_t xattrs_dropped;
    char *first_dropped;
};

static int openat2_beneath(int dirfd, const char *path, int flags, int *out)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
    };
    for (int tries = 0;; tries++) {
        long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
        if (fd >= 0) {
            *out = (int)fd;
            return 0;
        }
        /* EAGAIN: a concurrent rename raced the lookup; retrying is safe. */
        if ((errno != EAGAIN && errno != EINTR) || tries >= 16)
            return -errno;
    }
}

/* An error from resolving `path` (a parent directory or a hard link target)
 * beneath the destination. */
static int resolve_error(err_t *err, int errnum, const char *entry, const char *what, const char *path)
{
    switch (errnum) {
    case ELOOP:
        return refuse(err, entry, "%s \"%s\" is or goes through a symlink", what, Q(path));
    case ENOTDIR:
        return refuse(err, entry, "%s \"%s\" is or goes through something that is not a directory", what, Q(path));
    case EXDEV:
        return refuse(err, entry, "%s \"%s\" crosses a mount point", what, Q(path));
    case ENOENT:
        return refuse(err, entry, "%s \"%s\" does not exist in this layer", what, Q(path));
    default:
        return err_sys(err, errnum, "opening %s \"%s\" of layer entry \"%s\"", what, Q(path), Q(entry));
    }
}

static int chmod_nofollow(int dirfd, const char *name, mode_t mode)
{
    if (syscall(SYS_fchmodat2, dirfd, name, mode, AT_SYMLINK_NOFOLLOW) == 0)
        return 0;
    if (errno != ENOSYS && errno != EPERM)
        return -1;
    /* Before Linux 6.6 (or under a seccomp filter that does not know
     * fchmodat2): only used on nodes we have just created with mknodat/mkdirat
     * in a directory nobody else writes, so the name cannot be a symlink. */
    return fchmodat(dirfd, name, mode, 0);
}

/* Walks `parent` one component at a time from the destination, creating the
 * directories tar streams often leave out (0755, root-owned, as the
 * container would expect of an implicit directory). */
static int make_parents(struct unpacker *u, const char *parent, const char *entry, int *out, err_t *err)
{
    _cleanup_free_ char *copy = strdup(parent);
    if (!copy)
        return err_sys(err, ENOMEM, "resolving parent of layer entry \"%s\"", Q(entry));
    _cleanup_close_ int cur = -1;
    int at = u->dest;
    char *save = NULL;
    for (char *comp = strtok_r(copy, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
        int nfd = -1;
        int r = openat2_beneath(at, comp, O_PATH | O_DIRECTORY, &nfd);
        if (r == -ENOENT) {
            if (mkdirat(at, comp, 0755) == 0) {
                u->inodes++;
                if (fchownat(at, comp, 0, 0, AT_SYMLINK_NOFOLLOW) < 0 || chmod_nofollow(at, comp, 0755) < 0)
                    return fail_sys(err, errno, "setting up implicit parent directory of", entry);
            } else if (errno != EEXIST) {
                return fail_sys(err, errno, "creating implicit parent directory of", entry);
            }
            r = openat2_beneath(at, comp, O_PATH | O_DIRECTORY, &nfd);
        }
        if (r < 0)
            return resolve_error(err, -r, entry, "parent directory", parent);
        if (cur >= 0)
            close(cur);
        cur = nfd;
        at = cur;
    }
    *out = steal_fd(&cur);
    return 0;
}

static void drop_parent(struct unpacker *u)
{
    if (u->parent_owned && u->parent_fd >= 0)
        close(u->parent_fd);
    free(u->parent_path);
    u->parent_path = NULL;
    u->parent_fd = -1;
    u->parent_owned = false;
}

/* The directory `parent` (cleaned, relative) as an O_PATH fd, created when
 * missing; the fd stays owned by the unpacker. */
static int get_parent(struct unpacker *u, const char *parent, const char *entry, int *out, err_t *err)
{
    if (u->parent_path && strcmp(u->parent_path, parent) == 0) {
        *out = u->parent_fd;
        return 0;
    }
    drop_parent(u);
    char *copy = strdup(parent);
    if (!copy)
        return err_sys(err, ENOMEM, "resolving parent of layer entry \"%s\"", Q(entry));
    int fd = u->dest;
    bool owned = false;
    if (*parent) {
        int r = openat2_beneath(u->dest, parent, O_PATH | O_DIRECTORY, &fd);
        if (r == -ENOENT)
            r = make_parents(u, parent, entry, &fd, err);
        else if (r < 0)
            r = resolve_error(err, -r, entry, "parent directory", parent);
        if (r < 0) {
            free(copy);
            return r;
        }
        owned = true;
    }
    u->parent_path = copy;
    u->parent_fd = fd;
    u->parent_owned = owned;
    *out = fd;
    return 0;
}

/* An entry replaces whatever an earlier entry of this layer put at its name;
 * unlinking (never opening) the old one means a symlink there is not
 * followed. */
static int remove_existing(int pfd, const char *name, const char *entry, err_t *err)
{
    if (unlinkat(pfd, name, 0) == 0 || errno == ENOENT)
        return 0;
    if (errno == EISDIR) {
        if (unlinkat(pfd, name, AT_REMOVEDIR) == 0)
            return 0;
        if (errno == ENOTEMPTY || errno == EEXIST)
            return refuse(err, entry, "replaces a directory that is not empty");
    }
    return fail_sys(err, errno, "removing the earlier", entry);
}

/* Splits "a/b/c" in place into "a/b" and "c" ("" and "c" for "c"). */
static void split_path(char *path, const char **parent, const char **base)
{
    char *slash = strrchr(path, '/');
    if (slash) {
        *slash = '\0';
        *parent = path;
        *base = slash + 1;
    } else {
        *parent = "";
        *base = path;
    }
}

/* The relative path with "./" prefixes, empty and "." components removed.
 * Absolute paths and ".." are refused, not cleaned: no honest layer holds
 * them, and guessing what they meant is how extraction bugs start. */
static int clean_path(struct unpacker *u, const char *raw, const char *entry, const char *what, char **out, err_t *err)
{
    if (!raw || !*raw)
        return refuse(err, entry, "empty %s", what);
    size_t len = strlen(raw);
    if (len > u->lim.max_path_len)
        return refuse(err, entry, "%s is %zu bytes, longer than the limit of %u", what, len, u->lim.max_path_len);
    if (raw[0] == '/')
        return refuse(err, entry, "absolute %s \"%s\"", what, Q(raw));
    char *c = malloc(len + 1);
    if (!c)
        return err_sys(err, ENOMEM, "reading layer entry \"%s\"", Q(entry));
    size_t o = 0;
    for (const char *p = raw; *p;) {
        const char *end = strchrnul(p, '/');
        size_t n = (size_t)(end - p);
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            free(c);
            return refuse(err, entry, "\"..\" in %s \"%s\"", what, Q(raw));
        }
        if (n > 0 && !(n == 1 && p[0] == '.')) {
            if (o)
                c[o++] = '/';
            memcpy(c + o, p, n);
            o += n;
        }
        p = *end ? end + 1 : end;
    }
    c[o] = '\0';
    *out = c;
    return 0;
}

static void entry_times(struct archive_entry *e, struct timespec ts[2])
{
    long ns = archive_entry_mtime_nsec(e);
    ts[1].tv_sec = archive_entry_mtime(e);
    ts[1].tv_nsec = ns >= 0 && ns < 1000000000 ? ns : 0;
    if (archive_entry_atime_is_set(e)) {
        ns = archive_entry_atime_nsec(e);
        ts[0].tv_sec = archive_entry_atime(e);
        ts[0].tv_nsec = ns >= 0 && ns < 1000000000 ? ns : 0;
    } else {
        ts[0] = ts[1];
    }
}

static void note_dropped_xattr(struct unpacker *u, const char *xname, const char *entry)
{
    u->xattrs_dropped++;
    if (!u->first_dropped && asprintf(&u->first_dropped, "%s on \"%s\"", Q(xname), Q(entry)) < 0)
        u->first_dropped = NULL;
}

/* File capabilities and user.* are what images legitimately carry. The rest
 * is refused because it steers the host, not the container: trusted.* is
 * read by overlayfs (a planted trusted.overlay.redirect or .opaque would
 * rewrite the merged view), user.overlay.* is the same under overlayfs's
 * userxattr option, and security.selinux labels are the host policy's to
 * assign. */
static bool xattr_allowed(const char *xname)
{
    if (strcmp(xname, "security.capability") == 0)
        return true;
    return strncmp(xname, "user.", 5) == 0 && strncmp(xname, "user.overlay.", 13) != 0;
}

/* fd < 0: the entry is a symlink, device or FIFO, which cannot be opened to
 * set attributes (and user.* is not allowed on them anyway). */
static int apply_xattrs(struct unpacker *u, int fd, struct archive_entry *e, const char *entry, err_t *err)
{
    if (archive_entry_xattr_reset(e) == 0)
        return 0;
    const char *xname;
    const void *value;
    size_t size;
    while (archive_entry_xattr_next(e, &xname, &value, &size) == ARCHIVE_OK) {
        if (!xname)
            continue;
        if (fd >= 0 && xattr_allowed(xname)) {
            if (fsetxattr(fd, xname, value, size, 0) == 0)
                continue;
            int errnum = errno;
            if (errnum != ENOTSUP || strncmp(xname, "user.", 5) != 0)
                return err_sys(err, errnum, "setting extended attribute %s on \"%s\" in layer", Q(xname), Q(entry));
        }
        if (strcmp(xname, "security.selinux") != 0)
            note_dropped_xattr(u, xname, entry);
    }
    return 0;
}

/* Owner first: chown clears setuid/setgid, so the mode must come after. */
static int apply_owner_mode(int fd, struct archive_entry *e, const char *entry, err_t *err)
{
    if (fchown(fd, (uid_t)archive_entry_uid(e), (gid_t)archive_entry_gid(e)) < 0)
        return fail_sys(err, errno, "setting owner of", entry);
    if (fchmod(fd, archive_entry_perm(e) & 07777) < 0)
        return fail_sys(err, errno, "setting mode of", entry);
    return 0;
}

/* When libarchive fails, our stream's reason (corrupt gzip…) comes first. */
static int archive_failure(struct unpacker *u, const char *entry, err_t *err)
{
    if (u->s->failed) {
        int errnum = u->s->err.errnum;
        err_move(err, &u->s->err);
        return errnum > 0 ? -errnum : -EINVAL;
    }
    int errnum = archive_errno(u->a);
    const char *msg = archive_error_string(u->a);
    if (errnum == ENOMEM)
        return err_sys(err, ENOMEM, "reading layer tar");
    if (entry)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "reading layer tar at entry \"%s\": %s", Q(entry),
                       msg ? msg : "unknown error");
    return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "reading layer tar: %s", msg ? msg : "unknown error");
}

static int write_data(struct unpacker *u, int fd, uint64_t size, const char *entry, err_t *err)
{
    uint64_t end = 0;
    for (;;) {
        const void *buf;
        size_t len;
        la_int64_t off;
        int r = archive_read_data_block(u->a, &buf, &len, &off);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) /* ARCHIVE_RETRY too: damaged data is not retried */
            return archive_failure(u, entry, err);
        if (off < 0 || (uint64_t)off > size || len > size - (uint64_t)off)
            return refuse(err, entry, "data beyond its declared size");
        const char *p = buf;
        uint64_t at = (uint64_t)off;
        while (len > 0) {
            ssize_t n = pwrite(fd, p, len, (off_t)at);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return fail_sys(err, errno, "writing", entry);
            p += n;
            len -= (size_t)n;
            at += (uint64_t)n;
        }
        if (at > end)
            end = at;
    }
    /* A sparse file may end in a hole. */
    if (end < size && ftruncate(fd, (off_t)size) < 0)
        return fail_sys(err, errno, "extending", entry);
    return 0;
}

static int unpack_file(struct unpacker *u, struct archive_entry *e, int pfd, const char *base, const char *entry,
                       uint64_t size, err_t *err)
{
    int r = remove_existing(pfd, base, entry, err);
    if (r < 0)
        return r;
    /* O_EXCL: a name that reappeared since the unlink is never followed. */
    _cleanup_close_ int fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return fail_sys(err, errno, "creating file", entry);
    u->inodes++;
    r = write_data(u, fd, size, entry, err);
    if (r < 0)
        return r;
    u->bytes += size;
    /* Writing and chown both clear security.capability: attributes go last. */
    r = apply_owner_mode(fd, e, entry, err);
    if (r < 0)
        return r;
    r = apply_xattrs(u, fd, e, entry, err);
    if (r < 0)
        return r;
    struct timespec ts[2];
    entry_times(e, ts);
    if (futimens(fd, ts) < 0)
        return fail_sys(err, errno, "setting times of", entry);
    return 0;
}

static int record_dir_time(struct unpacker *u, const char *path, struct archive_entry *e, const char *entry, err_t *err)
{
    if (u->ndirs == u->cap_dirs) {
        size_t cap = u->cap_dirs ? u->cap_dirs * 2 : 64;
        struct dir_time *d = reallocarray(u->dirs, cap, sizeof(*d));
        if (!d)
            return err_sys(err, ENOMEM, "recording directory \"%s\" of layer", Q(entry));
        u->dirs = d;
        u->cap_dirs = cap;
    }
    struct dir_time *d = &u->dirs[u->ndirs];
    d->path = strdup(path);
    if (!d->path)
        return err_sys(err, ENOMEM, "recording directory \"%s\" of layer", Q(entry));
    entry_times(e, d->ts);
    d->depth = *path ? 1 : 0;
    for (const char *p = path; *p; p++)
        d->depth += *p == '/';
    d->seq = u->ndirs++;
    return 0;
}

/* base "" is the layer root itself ("./" in the tar). */
static int unpack_dir(struct unpacker *u, struct archive_entry *e, int pfd, const char *base, const char *path,
                      const char *entry, err_t *err)
{
    _cleanup_close_ int fd = -1;
    if (!*base) {
        fd = openat(u->dest, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } else {
        /* An existing directory (implicit, or listed twice) keeps its
         * contents; anything else at the name is replaced. */
        if (mkdirat(pfd, base, 0700) == 0) {
            u->inodes++;
        } else if (errno != EEXIST) {
            return fail_sys(err, errno, "creating directory", entry);
        } else {
            struct stat st;
            if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return fail_sys(err, errno, "inspecting", entry);
            if (!S_ISDIR(st.st_mode)) {
                if (unlinkat(pfd, base, 0) < 0)
                    return fail_sys(err, errno, "removing the earlier", entry);
                if (mkdirat(pfd, base, 0700) < 0)
                    return fail_sys(err, errno, "creating directory", entry);
                u->inodes++;
            }
        }
        fd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0)
        return fail_sys(err, errno, "opening directory", entry);
    int r = apply_owner_mode(fd, e, entry, err);
    if (r < 0)
        return r;
    r = apply_xattrs(u, fd, e, entry, err);
    if (r < 0)
        return r;
    return record_dir_time(u, path, e, entry, err);
}

static int unpack_symlink(struct unpacker *u, struct archive_entry *e, int pfd, const char *base, const char *entry,
                          err_t *err)
{
    /* The target is stored as written: pointing anywhere is fine, it is only
     * resolved inside the container's root. Following it here is what the
     * resolve flags and NOFOLLOW prevent. */
    const char *target = archive_entry_symlink(e);
    if (!target || !*target)
        return refuse(err, entry, "symlink without a target");
    size_t len = strlen(target);
    if (len > u->lim.max_path_len)
        return refuse(err, entry, "symlink target is %zu bytes, longer than the limit of %u", len, u->lim.max_path_len);
    int r = remove_existing(pfd, base, entry, err);
    if (r < 0)
        return r;
    if (symlinkat(target, pfd, base) < 0)
        return fail_sys(err, errno, "creating symlink", entry);
    u->inodes++;
    if (fchownat(pfd, base, (uid_t)archive_entry_uid(e), (gid_t)archive_entry_gid(e), AT_SYMLINK_NOFOLLOW) < 0)
        return fail_sys(err, errno, "setting owner of", entry);
    r = apply_xattrs(u, -1, e, entry, err);
    if (r < 0)
        return r;
    struct timespec ts[2];
    entry_times(e, ts);
    if (utimensat(pfd, base, ts, AT_SYMLINK_NOFOLLOW) < 0)
        return fail_sys(err, errno, "setting times of", entry);
    return 0;
}

static int unpack_node(struct unpacker *u, struct archive_entry *e, mode_t type, int pfd, const char *base,
                       const char *entry, err_t *err)
{
    int r = remove_existing(pfd, base, entry, err);
    if (r < 0)
        return r;
    dev_t dev = type == AE_IFIFO ? 0 : makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
    if (mknodat(pfd, base, type, dev) < 0)
        return fail_sys(err, errno, type == AE_IFIFO ? "creating FIFO" : "creating device", entry);
    u->inodes++;
    if (fchownat(pfd, base, (uid_t)archive_entry_uid(e), (gid_t)archive_entry_gid(e), AT_SYMLINK_NOFOLLOW) < 0)
        return fail_sys(err, errno, "setting owner of", entry);
    if (chmod_nofollow(pfd, base, archive_entry_perm(e) & 07777) < 0)
        return fail_sys(err, errno, "setting mode of", entry);
    r = apply_xattrs(u, -1, e, entry, err);
    if (r < 0)
        return r;
    struct timespec ts[2];
    entry_times(e, ts);
    if (utimensat(pfd, base, ts, AT_SYMLINK_NOFOLLOW) < 0)
        return fail_sys(err, errno, "setting times of", entry);
    return 0;
}

/* A hard link may only point at something this layer already created: the
 * destination started empty, so "exists beneath dest without going through a
 * symlink" is exactly that. */
static int unpack_hardlink(struct unpacker *u, const char *target_raw, const char *path, const char *parent,
                           const char *base, const char *entry, err_t *err)
{
    _cleanup_free_ char *target = NULL;
    int r = clean_path(u, target_raw, entry, "hard link target", &target, err);
    if (r < 0)
        return r;
    if (!*target)
        return refuse(err, entry, "hard link to the layer root");
    if (strcmp(target, path) == 0) {
        /* A link to itself: nothing to do if it is there. */
        struct stat st;
        int pfd;
        r = get_parent(u, parent, entry, &pfd, err);
        if (r < 0)
            return r;
        if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
            return resolve_error(err, errno, entry, "hard link target", target_raw);
        return 0;
    }
    _cleanup_free_ char *tcopy = strdup(target);
    if (!tcopy)
        return err_sys(err, ENOMEM, "reading layer entry \"%s\"", Q(entry));
    const char *tparent, *tbase;
    split_path(tcopy, &tparent, &tbase);
    _cleanup_close_ int tfd_owned = -1;
    int tfd = u->dest;
    if (*tparent) {
        r = openat2_beneath(u->dest, tparent, O_PATH | O_DIRECTORY, &tfd_owned);
        if (r < 0)
            return resolve_error(err, -r, entry, "hard link target", target_raw);
        tfd = tfd_owned;
    }
    struct stat st;
    if (fstatat(tfd, tbase, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return resolve_error(err, errno, entry, "hard link target", target_raw);
    if (S_ISDIR(st.st_mode))
        return refuse(err, entry, "hard link to directory \"%s\"", Q(target_raw));

    int pfd;
    r = get_parent(u, parent, entry, &pfd, err);
    if (r < 0)
        return r;
    r = remove_existing(pfd, base, entry, err);
    if (r < 0)
        return r;
    /* No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself. */
    if (linkat(tfd, tbase, pfd, base, 0) < 0)
        return fail_sys(err, errno, "creating hard link", entry);
    u->inodes++;
    return 0;
}

/* ".wh.NAME" hides NAME of the lower layers; overlayfs spells that as a 0/0
 * character device. ".wh..wh..opq" hides everything below its directory;
 * overlayfs spells that as trusted.overlay.opaque=y. Other ".wh..wh." names
 * are aufs bookkeeping with no meaning here. */
static int unpack_whiteout(struct unpacker *u, const char *parent, const char *base, const char *entry, err_t *err)
{
    if (strncmp(base, WHITEOUT_META, strlen(WHITEOUT_META)) == 0 && strcmp(base, WHITEOUT_OPAQUE) != 0)
        return 0;
    const char *name = base + strlen(WHITEOUT_PREFIX);
    bool opaque = strcmp(base, WHITEOUT_OPAQUE) == 0;
    if (!opaque && (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strchr(name, '/')))
        return refuse(err, entry, "invalid whiteout");

    int pfd;
    int r = get_parent(u, parent, entry, &pfd, err);
    if (r < 0)
        return r;
    if (opaque) {
        _cleanup_close_ int dfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
            return fail_sys(err, errno, "opening the directory of opaque marker", entry);
        if (fsetxattr(dfd, "trusted.overlay.opaque", "y", 1, 0) < 0)
            return fail_sys(err, errno, "marking directory opaque for", entry);
        return 0;
    }
    r = remove_existing(pfd, name, entry, err);
    if (r < 0)
        return r;
    if (mknodat(pfd, name, S_IFCHR | 0, makedev(0, 0)) < 0)
        return fail_sys(err, errno, "creating whiteout device for", entry);
    u->inodes++;
    if (fchownat(pfd, name, 0, 0, AT_SYMLINK_NOFOLLOW) < 0 || chmod_nofollow(pfd, name, 0) < 0)
        return fail_sys(err, errno, "setting up whiteout device for", entry);
    return 0;
}

static int unpack_entry(struct unpacker *u, struct archive_entry *e, err_t *err)
{
    const char *raw = archive_entry_pathname(e);
    const char *entry = raw ? raw : "";
    _cleanup_free_ char *path = NULL;
    int r = clean_path(u, raw, entry, "path", &path, err);
    if (r < 0)
        return r;

    la_int64_t ssize = archive_entry_size(e);
    if (ssize < 0)
        return refuse(err, entry, "negative size");
    uint64_t size = (uint64_t)ssize;
    if (size > u->lim.max_entry_size)
        return refuse(err, entry, "%" PRIu64 " bytes, more than the limit of %" PRIu64 " for one entry", size,
                      u->lim.max_entry_size);
    u->declared += size;
    if (u->declared > u->lim.max_total_size)
        return refuse(err, entry, "takes the layer over its size limit of %" PRIu64 " bytes", u->lim.max_total_size);

    /* (uid_t)-1 would mean "leave unchanged" to chown: the file would stay root's. */
    la_int64_t uid = archive_entry_uid(e), gid = archive_entry_gid(e);
    if (uid < 0 || uid >= (la_int64_t)UINT32_MAX || gid < 0 || gid >= (la_int64_t)UINT32_MAX)
        return refuse(err, entry, "invalid owner %lld:%lld", (long long)uid, (long long)gid);

    _cleanup_free_ char *split = strdup(path);
    if (!split)
        return err_sys(err, ENOMEM, "reading layer entry \"%s\"", Q(entry));
    const char *parent, *base;
    split_path(split, &parent, &base);

    const char *hardlink = archive_entry_hardlink(e);
    mode_t type = archive_entry_filetype(e);

    if (!*base) {
        if (hardlink || type != AE_IFDIR)
            return refuse(err, entry, "the layer root can only be a directory");
        return unpack_dir(u, e, u->dest, "", "", entry, err);
    }
    /* aufs keeps its own bookkeeping under top-level ".wh..wh.*" directories
     * (hard link targets in .wh..wh.plnk); none of it belongs in the tree. */
    if (*parent && strncmp(path, WHITEOUT_META, strlen(WHITEOUT_META)) == 0)
        return 0;
    if (strncmp(base, WHITEOUT_PREFIX, strlen(WHITEOUT_PREFIX)) == 0)
        return unpack_whiteout(u, parent, base, entry, err);
    if (hardlink)
        return unpack_hardlink(u, hardlink, path, parent, base, entry, err);

    switch (type) {
    case AE_IFREG:
    case AE_IFDIR:
    case AE_IFLNK:
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO:
        break;
    case AE_IFSOCK:
        return 0; /* a socket in a tar is a leftover of the build, not content */
    default:
        return refuse(err, entry, "unsupported entry type 0%o", (unsigned)type);
    }

    int pfd;
    r = get_parent(u, parent, entry, &pfd, err);
    if (r < 0)
        return r;
    switch (type) {
    case AE_IFREG:
        return unpack_file(u, e, pfd, base, entry, size, err);
    case AE_IFDIR:
        return unpack_dir(u, e, pfd, base, path, entry, err);
    case AE_IFLNK:
        return unpack_symlink(u, e, pfd, base, entry, err);
    default:
        return unpack_node(u, e, type, pfd, base, entry, err);
    }
}

static int dir_time_cmp(const void *a, const void *b)
{
    const struct dir_time *x = a, *y = b;
    if (x->depth != y->depth)
        return x->depth > y->depth ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Deepest first, and for one directory listed twice the later entry last. */
static int apply_dir_times(struct unpacker *u, err_t *err)
{
    if (u->ndirs == 0)
        return 0;
    qsort(u->dirs, u->ndirs, sizeof(*u->dirs), dir_time_cmp);
    for (size_t i = 0; i < u->ndirs; i++) {
        const struct dir_time *d = &u->dirs[i];
        _cleanup_close_ int fd = -1;
        if (*d->path) {
            int r = openat2_beneath(u->dest, d->path, O_RDONLY | O_DIRECTORY, &fd);
            /* Replaced by a later entry of the layer: its times are that entry's. */
            if (r == -ENOENT || r == -ENOTDIR || r == -ELOOP)
                continue;
            if (r < 0)
                return fail_sys(err, -r, "opening directory", d->path);
        } else {
            fd = openat(u->dest, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (fd < 0)
                return fail_sys(err, errno, "opening directory", ".");
        }
        if (futimens(fd, d->ts) < 0)
            return fail_sys(err, errno, "setting times of", *d->path ? d->path : ".");
    }
    return 0;
}

static int check_empty(int dest, err_t *err)
{
    int fd = openat(dest, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return err_sys(err, errno, "opening the layer directory");
    _cleanup_closedir_ DIR *d = fdopendir(fd);
    if (!d) {
        int errnum = errno;
        close(fd);
        return err_sys(err, errnum, "reading the layer directory");
    }
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            return err_set(err, ERR_FAILED_PRECONDITION, ENOTEMPTY, "unpacking layer: destination is not empty");
    }
    if (errno)
        return err_sys(err, errno, "reading the layer directory");
    return 0;
}

/* Reads the rest of the stream after the tar's end so the diff_id covers all
 * of it, as the digest in the image config does. */
static int drain(struct unpacker *u, err_t *err)
{
    uint64_t trailer = 0;
    for (;;) {
        const void *buf;
        ssize_t n = stream_read(u->s, &buf);
        if (n < 0)
            return archive_failure(u, NULL, err);
        if (n == 0)
            return 0;
        trailer += (uint64_t)n;
        if (trailer > TRAILER_MAX)
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL,
                           "refusing layer: more than %d bytes follow the end of the tar archive", TRAILER_MAX);
    }
}

/* libarchive could not read a header. An empty stream is an empty layer (as
 * Go's archive/tar reads it), which libarchive's tar reader does not
 * recognize as a tar. */
static int header_failure(struct unpacker *u, bool at_start, err_t *err)
{
    if (at_start && !u->s->failed && u->s->done && u->s->total == 0)
        return 0;
    return archive_failure(u, NULL, err);
}

static int read_entries(struct unpacker *u, err_t *err)
{
    if (archive_read_open(u->a, u->s, NULL, tar_read_cb, NULL) != ARCHIVE_OK)
        return header_failure(u, true, err);
    for (bool at_start = true;; at_start = false) {
        struct archive_entry *e;
        int r = archive_read_next_header(u->a, &e);
        if (r == ARCHIVE_EOF)
            return 0;
        /* ARCHIVE_WARN: names libarchive could not convert to the locale's
         * charset; it keeps their bytes, which is what we want. Anything
         * else, ARCHIVE_RETRY after a damaged header included, ends the
         * layer: skipping what we cannot read would apply half of it. */
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
            return header_failure(u, at_start, err);
        if (++u->entries > u->lim.max_entries) {
            const char *name = archive_entry_pathname(e);
            return refuse(err, name ? name : "", "more than %" PRIu64 " entries in the layer", u->lim.max_entries);
        }
        r = unpack_entry(u, e, err);
        if (r < 0)
            return r;
    }
}

static int unpack_all(struct unpacker *u, err_t *err)
{
    int r = read_entries(u, err);
    if (r < 0)
        return r;
    r = drain(u, err);
    if (r < 0)
        return r;
    return apply_dir_times(u, err);
}

ssize_t unpack_fd_source_read(void *ctx, void *buf, size_t len)
{
    ssize_t n;
    do
        n = read(*(int *)ctx, buf, len);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

int layer_unpack(int blob_fd, enum layer_compression compression, int dest_dirfd, const struct unpack_limits *limits,
                 struct unpack_result *result, err_t *err)
{
    const struct unpack_source src = {unpack_fd_source_read, &blob_fd};
    return layer_unpack_from(&src, compression, dest_dirfd, limits, result, err);
}

int layer_unpack_from(const struct unpack_source *src, enum layer_compression compression, int dest_dirfd,
                      const struct unpack_limits *limits, struct unpack_result *result, err_t *err)
{
    static const struct unpack_limits defaults = UNPACK_LIMITS_DEFAULT;
    memset(result, 0, sizeof(*result));
    if ((unsigned)compression > LAYER_COMPRESSION_ZSTD)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "unpacking layer: unknown compression %d", (int)compression);
    int r = check_empty(dest_dirfd, err);
    if (r < 0)
        return r;

    struct layer_stream s = {0};
    struct unpacker u = {
        .dest = dest_dirfd,
        .lim = limits ? *limits : defaults,
        .s = &s,
        .parent_fd = -1,
    };
    r = stream_init(&s, src, compression, err);
    if (r >= 0) {
        u.a = archive_read_new();
        if (!u.a || archive_read_support_format_tar(u.a) != ARCHIVE_OK)
            r = err_sys(err, ENOMEM, "initializing the tar reader");
    }
    if (r >= 0)
        r = unpack_all(&u, err);
    if (r >= 0) {
        digester_final(s.dig, result->diff_id);
        result->bytes = u.bytes;
        result->inodes = u.inodes;
    }

    if (u.xattrs_dropped)
        log_debug("unpacking layer: dropped %" PRIu64 " extended attributes a layer may not set (first: %s)",
                  u.xattrs_dropped, u.first_dropped ? u.first_dropped : "?");
    if (u.a)
        archive_read_free(u.a);
    drop_parent(&u);
    for (size_t i = 0; i < u.ndirs; i++)
        free(u.dirs[i].path);
    free(u.dirs);
    free(u.first_dropped);
    stream_free(&s);
    return r < 0 ? r : 0;
}

enum layer_compression layer_compression_from_media_type(const char *media_type)
{
    static const struct {
        const char *type;
        enum layer_compression compression;
    } known[] = {
        {"application/vnd.oci.image.layer.v1.tar", LAYER_COMPRESSION_NONE},
        {"application/vnd.oci.image.layer.v1.tar+gzip", LAYER_COMPRESSION_GZIP},
        {"application/vnd.oci.image.layer.v1.tar+zstd", LAYER_COMPRESSION_ZSTD},
        {"application/vnd.oci.image.layer.nondistributable.v1.tar", LAYER_COMPRESSION_NONE},
        {"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", LAYER_COMPRESSION_GZIP},
        {"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", LAYER_COMPRESSION_ZSTD},
        {"application/vnd.docker.image.rootfs.diff.tar", LAYER_COMPRESSION_NONE},
        {"application/vnd.docker.image.rootfs.diff.tar.gzip", LAYER_COMPRESSION_GZIP},
        {"application/vnd.docker.image.rootfs.diff.tar.zstd", LAYER_COMPRESSION_ZSTD},
        {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", LAYER_COMPRESSION_GZIP},
    };
    if (!media_type)
        return LAYER_COMPRESSION_DETECT;
    /* Media types are case-insensitive and may carry parameters. */
    size_t len = strcspn(media_type, ";");
    while (len && (media_type[len - 1] == ' ' || media_type[len - 1] == '\t'))
        len--;
    for (size_t i = 0; i < ARRAY_SIZE(known); i++)
        if (strlen(known[i].type) == len && strncasecmp(media_type, known[i].type, len) == 0)
            return known[i].compression;
    return LAYER_COMPRESSION_DETECT;
}
