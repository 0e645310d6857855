/* The image layer unpacker: one OCI/Docker layer blob (a tar, optionally
 * gzip- or zstd-compressed) becomes a directory overlayfs can stack as a lower
 * layer.
 *
 * Layers come from registries, so every byte is hostile until proven
 * otherwise. Two things follow from that:
 *
 * - We decompress ourselves and hash the uncompressed stream while libarchive
 *   parses it, so the caller can compare the result's diff_id with the image
 *   config's rootfs.diff_ids before trusting the directory. A layer that lies
 *   about its content must not be able to poison the layer cache.
 * - Every file is created with fd-relative system calls anchored at the
 *   destination directory (openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
 *   for parents, *at(... NOFOLLOW) for the last component), so no path in the
 *   tar, and no symlink an earlier entry planted, can make us write outside
 *   it. Anything suspicious refuses the whole layer rather than being skipped:
 *   a half-applied layer is worse than none.
 *
 * Whiteouts (".wh.NAME", ".wh..wh..opq") are translated to what overlayfs
 * reads: a 0/0 character device and the trusted.overlay.opaque xattr.
 *
 * layer_unpack blocks for as long as the layer takes, so it runs in a
 * thread-pool thread; it keeps no global state and may run concurrently for
 * different destinations. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "util/digest.h"
#include "util/error.h"

enum layer_compression {
    LAYER_COMPRESSION_DETECT, /* sniff the magic bytes; neither gzip nor zstd → plain tar */
    LAYER_COMPRESSION_NONE,
    LAYER_COMPRESSION_GZIP, /* one or more concatenated gzip members (pigz, parallel compressors) */
    LAYER_COMPRESSION_ZSTD, /* one or more zstd frames */
};

/* Bounds on what a layer may make us create, so a small blob that inflates
 * into a huge tree (or a tar that simply lists millions of entries) fails
 * fast instead of filling the disk or the inode table of the node. */
struct unpack_limits {
    uint64_t max_entry_size; /* declared size of any single entry */
    uint64_t max_total_size; /* sum of the declared sizes of all entries */
    uint64_t max_entries;    /* tar headers, of any type */
    uint32_t max_path_len;   /* bytes in an entry name or link target */
};

#define UNPACK_LIMITS_DEFAULT                                                                                          \
    {                                                                                                                  \
        .max_entry_size = 8ULL << 30, .max_total_size = 32ULL << 30, .max_entries = 1000000, .max_path_len = 4096      \
    }

struct unpack_result {
    char diff_id[DIGEST_MAX_LEN + 1]; /* "sha256:…" of the whole uncompressed tar stream, trailing blocks included */
    uint64_t bytes;                   /* sum of the sizes of the regular files written */
    uint64_t inodes;                  /* filesystem entries created: files, directories (implicit parents
                                         included), symlinks, hard links, devices, FIFOs, whiteouts; an entry
                                         replacing an earlier one counts again */
};

/* Unpacks the blob read from blob_fd (from its current offset, to its end)
 * into the directory dest_dirfd, which must be empty (so that "exists" means
 * "created by this layer", which hard links rely on). limits NULL means
 * UNPACK_LIMITS_DEFAULT.
 *
 * Returns 0 and fills result, or a negative errno and err. Refused content
 * (unsafe paths, limits, corrupt or truncated data) is ERR_INVALID_ARGUMENT
 * with the offending entry's name in the message. On failure whatever was
 * already written stays in dest: the caller removes the whole directory. */
int layer_unpack(int blob_fd, enum layer_compression compression, int dest_dirfd, const struct unpack_limits *limits,
                 struct unpack_result *result, err_t *err);

/* Where layer_unpack_from reads the blob: `read` fills up to len bytes of
 * buf and returns how many, 0 at the end of the blob, or a negative errno
 * (which fails the unpack). It may block, which lets a caller feed the
 * unpacker a blob that is still downloading. */
struct unpack_source {
    ssize_t (*read)(void *ctx, void *buf, size_t len);
    void *ctx;
};
/* An unpack_source read callback over a file descriptor (ctx: an int *). */
ssize_t unpack_fd_source_read(void *ctx, void *buf, size_t len);

int layer_unpack_from(const struct unpack_source *src, enum layer_compression compression, int dest_dirfd,
                      const struct unpack_limits *limits, struct unpack_result *result, err_t *err);

/* The compression an OCI or Docker layer media type declares; unknown or
 * NULL → LAYER_COMPRESSION_DETECT, so a registry that labels layers oddly
 * still works (the diff_id check is what guards the content). */
enum layer_compression layer_compression_from_media_type(const char *media_type);
