#include "image/import.h"

#include <archive.h>
#include <dirent.h>
#include <sys/stat.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/content.h"
#include "image/reference.h"
#include "registry/manifest.h"
#include "util/cleanup.h"
#include "util/digest.h"
#include "util/fs.h"
#include "util/persist.h"
#include "util/log.h"

#define META_MAX    (4u << 20) /* index.json, manifest.json, oci-layout */
#define ENTRIES_MAX 200000
#define READ_BLOCK  (256 * 1024)

/* A file of the archive that went into the content store. */
struct stored_file {
    char *path;
    char digest[DIGEST_MAX_LEN + 1];
    int64_t size;
    unsigned char magic[4];
};

struct import_item {
    uint8_t *manifest;
    size_t len;
    char **names;
    size_t n_names;
    bool repo_digests;
};

struct image_import {
    struct images *imgs;
    char *path;
    image_import_progress_fn progress;
    image_import_done_fn done;
    void *data;
    bool detached;

    /* filled by the scan (pool thread) */
    struct stored_file *files;
    size_t n_files;
    char *index_json;
    size_t index_len;
    char *docker_json;
    size_t docker_len;
    uint64_t blobs_stored, bytes_stored;
    struct import_item *items;
    size_t n_items;
    err_t err;

    /* registration (loop thread) */
    size_t next;
    char **ids;
};

/* --- scan (blocking) ---------------------------------------------------------- */

static const char *clean_name(const char *name)
{
    while (name[0] == '.' && name[1] == '/')
        name += 2;
    while (*name == '/')
        name++;
    return name;
}

static int read_small(struct archive *a, int64_t size, size_t max, char **out, size_t *len, const char *name,
                      err_t *err)
{
    if (size < 0 || (uint64_t)size > max)
        return err_set(err, ERR_INVALID_ARGUMENT, EFBIG, "%s in the archive is larger than %zu bytes", name, max);
    char *buf = malloc((size_t)size + 1);
    if (!buf)
        return err_sys(err, ENOMEM, "reading %s", name);
    size_t got = 0;
    while (got < (size_t)size) {
        la_ssize_t n = archive_read_data(a, buf + got, (size_t)size - got);
        if (n <= 0) {
            free(buf);
            return err_set(err, ERR_INVALID_ARGUMENT, EIO, "reading %s from the archive: %s", name,
                           n < 0 ? archive_error_string(a) : "truncated");
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}

static struct stored_file *add_file(struct image_import *imp, const char *path)
{
    struct stored_file *v = realloc(imp->files, (imp->n_files + 1) * sizeof(*v));
    if (!v)
        return NULL;
    imp->files = v;
    struct stored_file *f = &v[imp->n_files];
    memset(f, 0, sizeof(*f));
    if (!(f->path = strdup(path)))
        return NULL;
    imp->n_files++;
    return f;
}

/* blobs/<algo>/<hex>: the archive names the digest; the store checks it. */
static int store_named_blob(struct image_import *imp, struct archive *a, struct stored_file *f, err_t *err)
{
    struct content_store *cs = images_content(imp->imgs);
    if (content_blob_exists(cs, f->digest)) {
        _cleanup_free_ char *p = content_blob_path(cs, f->digest);
        FILE *fp = p ? fopen(p, "re") : NULL;
        if (fp) {
            size_t n = fread(f->magic, 1, sizeof(f->magic), fp);
            (void)n;
            fclose(fp);
        }
        return archive_read_data_skip(a) == ARCHIVE_OK
                   ? 0
                   : err_set(err, ERR_INVALID_ARGUMENT, EIO, "reading %s: %s", f->path, archive_error_string(a));
    }
    struct content_ingest *in = NULL;
    int r = content_ingest_open(cs, f->digest, f->size, &in, err);
    if (r < 0)
        return r;
    /* An earlier partial download of the same blob is of no use here. */
    if (content_ingest_offset(in) > 0 && (r = content_ingest_reset(in, err)) < 0)
        goto out;
    uint8_t *buf = malloc(READ_BLOCK);
    if (!buf) {
        r = err_sys(err, ENOMEM, "importing %s", f->path);
        goto out;
    }
    size_t total = 0;
    for (;;) {
        la_ssize_t n = archive_read_data(a, buf, READ_BLOCK);
        if (n < 0) {
            r = err_set(err, ERR_INVALID_ARGUMENT, EIO, "reading %s: %s", f->path, archive_error_string(a));
            break;
        }
        if (n == 0)
            break;
        if (total < sizeof(f->magic))
            memcpy(f->magic + total, buf, (size_t)n < sizeof(f->magic) - total ? (size_t)n : sizeof(f->magic) - total);
        total += (size_t)n;
        if ((r = content_ingest_write(in, buf, (size_t)n, err)) < 0)
            break;
    }
    free(buf);
    if (r == 0 && (r = content_ingest_commit(in, err)) < 0)
        err_wrap(err, "%s in the archive", f->path);
    if (r == 0) {
        imp->blobs_stored++;
        imp->bytes_stored += total;
    }
out:
    content_ingest_close(in, r < 0);
    return r;
}

/* A docker-save file (config JSON, layer.tar) whose digest is its content's. */
static int store_unnamed(struct image_import *imp, struct archive *a, struct stored_file *f, err_t *err)
{
    struct content_store *cs = images_content(imp->imgs);
    _cleanup_free_ char *tmp = NULL;
    int fd = content_open_temp(cs, &tmp, err);
    if (fd < 0)
        return fd;
    struct digester *d = digester_new(DIGEST_SHA256);
    uint8_t *buf = malloc(READ_BLOCK);
    int r = 0;
    if (!d || !buf)
        r = err_sys(err, ENOMEM, "importing %s", f->path);
    size_t total = 0;
    while (r == 0) {
        la_ssize_t n = archive_read_data(a, buf, READ_BLOCK);
        if (n < 0) {
            r = err_set(err, ERR_INVALID_ARGUMENT, EIO, "reading %s: %s", f->path, archive_error_string(a));
            break;
        }
        if (n == 0)
            break;
        if (total < sizeof(f->magic))
            memcpy(f->magic + total, buf, (size_t)n < sizeof(f->magic) - total ? (size_t)n : sizeof(f->magic) - total);
        digester_update(d, buf, (size_t)n);
        for (la_ssize_t off = 0; off < n && r == 0;) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            if (w < 0 && errno != EINTR)
                r = err_sys(err, errno, "writing %s", tmp);
            else if (w > 0)
                off += w;
        }
        total += (size_t)n;
    }
    free(buf);
    if (r == 0) {
        digester_final(d, f->digest);
        f->size = (int64_t)total;
        if (content_blob_exists(cs, f->digest)) {
            unlink(tmp);
        } else if ((r = content_adopt(cs, fd, tmp, f->digest, err)) == 0) {
            imp->blobs_stored++;
            imp->bytes_stored += total;
        }
    }
    if (r < 0)
        unlink(tmp);
    digester_free(d);
    close(fd);
    return r;
}

static bool is_docker_file(const char *name)
{
    size_t n = strlen(name);
    if (n > 10 && strcmp(name + n - 10, "/layer.tar") == 0)
        return true;
    /* <64 hex>.json: a config (the old docker save layout) */
    return n == 69 && strcmp(name + 64, ".json") == 0 && strspn(name, "0123456789abcdef") == 64;
}

static int scan_archive(struct image_import *imp, err_t *err)
{
    struct archive *a = archive_read_new();
    if (!a)
        return err_sys(err, ENOMEM, "reading %s", imp->path);
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    int r = 0;
    if (archive_read_open_filename(a, imp->path, READ_BLOCK) != ARCHIVE_OK) {
        r = err_set(err, ERR_INVALID_ARGUMENT, errno ? errno : EIO, "opening %s: %s", imp->path,
                    archive_error_string(a));
        archive_read_free(a);
        return r;
    }
    struct archive_entry *e;
    size_t entries = 0;
    int ar;
    while (r == 0 && (ar = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        if (++entries > ENTRIES_MAX) {
            r = err_set(err, ERR_INVALID_ARGUMENT, E2BIG, "%s has more than %d entries", imp->path, ENTRIES_MAX);
            break;
        }
        if (archive_entry_filetype(e) != AE_IFREG)
            continue;
        const char *name = clean_name(archive_entry_pathname(e) ? archive_entry_pathname(e) : "");
        int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
        char digest[DIGEST_MAX_LEN + 8];
        if (strcmp(name, "index.json") == 0) {
            free(imp->index_json);
            r = read_small(a, size, META_MAX, &imp->index_json, &imp->index_len, name, err);
        } else if (strcmp(name, "manifest.json") == 0) {
            free(imp->docker_json);
            r = read_small(a, size, META_MAX, &imp->docker_json, &imp->docker_len, name, err);
        } else if (strncmp(name, "blobs/", 6) == 0 && strlen(name) < sizeof(digest) + 6) {
            snprintf(digest, sizeof(digest), "%s", name + 6);
            char *slash = strchr(digest, '/');
            if (!slash)
                continue;
            *slash = ':';
            if (!digest_valid(digest) || size < 0)
                continue;
            struct stored_file *f = add_file(imp, name);
            if (!f) {
                r = err_sys(err, ENOMEM, "importing %s", imp->path);
                break;
            }
            memcpy(f->digest, digest, strlen(digest) + 1); /* digest_valid bounds it */
            f->size = size;
            r = store_named_blob(imp, a, f, err);
        } else if (is_docker_file(name)) {
            struct stored_file *f = add_file(imp, name);
            r = f ? store_unnamed(imp, a, f, err) : err_sys(err, ENOMEM, "importing %s", imp->path);
        }
    }
    if (r == 0 && ar != ARCHIVE_EOF)
        r = err_set(err, ERR_INVALID_ARGUMENT, EIO, "reading %s: %s", imp->path,
                    archive_error_string(a) ? archive_error_string(a) : "not a tar archive");
    archive_read_free(a);
    return r;
}

static const struct stored_file *find_file(const struct image_import *imp, const char *path)
{
    path = clean_name(path);
    for (size_t i = 0; i < imp->n_files; i++)
        if (strcmp(imp->files[i].path, path) == 0)
            return &imp->files[i];
    return NULL;
}

static int add_item(struct image_import *imp, uint8_t *manifest, size_t len, bool repo_digests, err_t *err)
{
    struct import_item *v = realloc(imp->items, (imp->n_items + 1) * sizeof(*v));
    if (!v) {
        free(manifest);
        return err_sys(err, ENOMEM, "importing %s", imp->path);
    }
    imp->items = v;
    v[imp->n_items++] = (struct import_item){.manifest = manifest, .len = len, .repo_digests = repo_digests};
    return 0;
}

static void item_add_name(struct import_item *it, const char *name)
{
    struct image_ref ref;
    if (!name || image_ref_parse(name, &ref, NULL) < 0)
        return;
    image_ref_free(&ref);
    char **v = realloc(it->names, (it->n_names + 1) * sizeof(*v));
    if (!v)
        return;
    it->names = v;
    if ((v[it->n_names] = strdup(name)))
        it->n_names++;
}

/* OCI layout: index.json lists the images, named by annotations. */
static int items_from_index(struct image_import *imp, err_t *err)
{
    json_error_t jerr;
    json_t *doc = json_loadb(imp->index_json, imp->index_len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *list = doc ? json_object_get(doc, "manifests") : NULL;
    if (!json_is_array(list)) {
        json_decref(doc);
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s: index.json has no manifest list", imp->path);
    }
    int r = 0;
    for (size_t i = 0; i < json_array_size(list) && r == 0; i++) {
        json_t *m = json_array_get(list, i);
        const char *digest = json_string_value(json_object_get(m, "digest"));
        if (!digest_valid(digest)) {
            r = err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s: index.json entry %zu has no valid digest", imp->path,
                        i);
            break;
        }
        uint8_t *body = NULL;
        size_t len = 0;
        if ((r = content_read_blob(images_content(imp->imgs), digest, META_MAX, &body, &len, err)) < 0) {
            err_wrap(err, "%s: manifest %s", imp->path, digest);
            break;
        }
        if ((r = add_item(imp, body, len, true, err)) < 0)
            break;
        json_t *ann = json_object_get(m, "annotations");
        const char *full = json_string_value(json_object_get(ann, "io.containerd.image.name"));
        const char *ref = json_string_value(json_object_get(ann, "org.opencontainers.image.ref.name"));
        struct import_item *it = &imp->items[imp->n_items - 1];
        if (full)
            item_add_name(it, full);
        /* ref.name is often a bare tag ("1.35"): a name only if it is a
         * whole reference. */
        else if (ref && (strchr(ref, '/') || strchr(ref, ':')))
            item_add_name(it, ref);
    }
    json_decref(doc);
    return r;
}

static const char *layer_media_type(const unsigned char *m)
{
    if (m[0] == 0x1f && m[1] == 0x8b)
        return "application/vnd.oci.image.layer.v1.tar+gzip";
    if (m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd)
        return "application/vnd.oci.image.layer.v1.tar+zstd";
    return "application/vnd.oci.image.layer.v1.tar";
}

static json_t *descriptor_json(const char *media_type, const struct stored_file *f)
{
    return json_pack("{s:s, s:s, s:I}", "mediaType", media_type, "digest", f->digest, "size", (json_int_t)f->size);
}

/* docker save: manifest.json names config and layer files; we write the
 * OCI manifest the archive does not have. */
static int items_from_docker(struct image_import *imp, err_t *err)
{
    json_error_t jerr;
    json_t *doc = json_loadb(imp->docker_json, imp->docker_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_array(doc)) {
        json_decref(doc);
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s: manifest.json is not a list of images", imp->path);
    }
    int r = 0;
    for (size_t i = 0; i < json_array_size(doc) && r == 0; i++) {
        json_t *m = json_array_get(doc, i);
        const char *cfg_path = json_string_value(json_object_get(m, "Config"));
        json_t *layers = json_object_get(m, "Layers");
        const struct stored_file *cfg = cfg_path ? find_file(imp, cfg_path) : NULL;
        if (!cfg || !json_is_array(layers)) {
            r = err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s: manifest.json entry %zu: config %s is missing",
                        imp->path, i, cfg_path ? cfg_path : "(none)");
            break;
        }
        json_t *ls = json_array();
        for (size_t k = 0; k < json_array_size(layers) && r == 0; k++) {
            const char *lp = json_string_value(json_array_get(layers, k));
            const struct stored_file *lf = lp ? find_file(imp, lp) : NULL;
            if (!lf)
                r = err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s: layer %s is missing from the archive", imp->path,
                            lp ? lp : "(none)");
            else
                json_array_append_new(ls, descriptor_json(layer_media_type(lf->magic), lf));
        }
        if (r < 0) {
            json_decref(ls);
            break;
        }
        json_t *man = json_pack("{s:i, s:s, s:o, s:o}", "schemaVersion", 2, "mediaType", MEDIA_TYPE_OCI_MANIFEST,
                                "config", descriptor_json(MEDIA_TYPE_OCI_CONFIG, cfg), "layers", ls);
        char *text = man ? json_dumps(man, JSON_COMPACT) : NULL;
        json_decref(man);
        if (!text || (r = add_item(imp, (uint8_t *)text, strlen(text), false, err)) < 0) {
            if (!text)
                r = err_sys(err, ENOMEM, "importing %s", imp->path);
            break;
        }
        json_t *tags = json_object_get(m, "RepoTags");
        for (size_t k = 0; json_is_array(tags) && k < json_array_size(tags); k++)
            item_add_name(&imp->items[imp->n_items - 1], json_string_value(json_array_get(tags, k)));
    }
    json_decref(doc);
    return r;
}

static void scan_work(void *data)
{
    struct image_import *imp = data;
    if (scan_archive(imp, &imp->err) < 0)
        return;
    if (imp->index_json)
        items_from_index(imp, &imp->err);
    else if (imp->docker_json)
        items_from_docker(imp, &imp->err);
    else
        err_set(&imp->err, ERR_INVALID_ARGUMENT, EINVAL,
                "%s is not an image archive: it has neither index.json (OCI layout) nor manifest.json (docker save)",
                imp->path);
}

/* --- registration (loop) -------------------------------------------------------- */

static void import_free(struct image_import *imp)
{
    for (size_t i = 0; i < imp->n_files; i++)
        free(imp->files[i].path);
    free(imp->files);
    for (size_t i = 0; i < imp->n_items; i++) {
        free(imp->items[i].manifest);
        for (size_t k = 0; k < imp->items[i].n_names; k++)
            free(imp->items[i].names[k]);
        free(imp->items[i].names);
    }
    free(imp->items);
    for (size_t i = 0; imp->ids && i < imp->n_items; i++)
        free(imp->ids[i]);
    free(imp->ids);
    free(imp->index_json);
    free(imp->docker_json);
    free(imp->path);
    err_clear(&imp->err);
    free(imp);
}

static void progress(struct image_import *imp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void progress(struct image_import *imp, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    log_info("import %s: %s", imp->path, line);
    if (!imp->detached && imp->progress)
        imp->progress(imp->data, line);
}

struct blob_sweep {
    struct images *imgs;
    char **digests;
    size_t n;
};

static void sweep_work(void *data)
{
    struct blob_sweep *w = data;
    for (size_t i = 0; i < w->n; i++)
        content_delete_blob(images_content(w->imgs), w->digests[i], NULL);
}

static void sweep_done(void *data, int status)
{
    (void)status;
    struct blob_sweep *w = data;
    for (size_t i = 0; i < w->n; i++)
        free(w->digests[i]);
    free(w->digests);
    free(w);
}

/* Blobs the archive brought that no image needs now (layers already
 * unpacked, other platforms, a failed import) go, or they would stay for
 * good. */
static void sweep_unneeded(struct image_import *imp)
{
    struct blob_sweep *w = calloc(1, sizeof(*w));
    if (!w || !(w->digests = calloc(imp->n_files ? imp->n_files : 1, sizeof(char *)))) {
        free(w);
        return;
    }
    w->imgs = imp->imgs;
    for (size_t i = 0; i < imp->n_files; i++)
        if (digest_valid(imp->files[i].digest) && !images_blob_needed(imp->imgs, imp->files[i].digest))
            if ((w->digests[w->n] = strdup(imp->files[i].digest)))
                w->n++;
    if (w->n == 0 || images_queue_work(imp->imgs, sweep_work, sweep_done, w) < 0)
        sweep_done(w, 0);
}

static void finish(struct image_import *imp, const err_t *err)
{
    sweep_unneeded(imp);
    if (!imp->detached) {
        struct imported_image *out = calloc(imp->n_items ? imp->n_items : 1, sizeof(*out));
        size_t n = 0;
        for (size_t i = 0; out && !err && i < imp->n_items; i++) {
            const struct image_record *r = images_lookup(imp->imgs, imp->ids[i]);
            if (!r)
                continue;
            out[n].id = r->id;
            out[n].repo_tags = (const char *const *)r->repo_tags;
            out[n].n_repo_tags = r->n_repo_tags;
            n++;
        }
        imp->done(imp->data, out, n, err);
        free(out);
    }
    import_free(imp);
}

static void register_next(struct image_import *imp);

static void item_registered(void *data, const char *image_id, const err_t *err)
{
    struct image_import *imp = data;
    if (err) {
        finish(imp, err);
        return;
    }
    imp->ids[imp->next] = strdup(image_id);
    imp->next++;
    register_next(imp);
}

static void register_next(struct image_import *imp)
{
    if (imp->next == imp->n_items) {
        progress(imp, "imported %zu image%s", imp->n_items, imp->n_items == 1 ? "" : "s");
        finish(imp, NULL);
        return;
    }
    struct import_item *it = &imp->items[imp->next];
    progress(imp, "registering image %zu of %zu%s%s", imp->next + 1, imp->n_items, it->n_names ? ": " : "",
             it->n_names ? it->names[0] : "");
    err_t err = ERR_INIT;
    if (images_register_local(imp->imgs, it->manifest, it->len, (const char *const *)it->names, it->n_names,
                              it->repo_digests, item_registered, imp, &err) < 0) {
        finish(imp, &err);
        err_clear(&err);
    }
}

static void scan_done(void *data, int status)
{
    struct image_import *imp = data;
    if (status < 0 && !imp->err.msg)
        err_sys(&imp->err, -status, "importing %s", imp->path);
    if (imp->err.msg) {
        err_t e = ERR_INIT;
        err_move(&e, &imp->err);
        finish(imp, &e);
        err_clear(&e);
        return;
    }
    progress(imp, "stored %llu new blob%s (%.1f MiB); %zu image%s in the archive",
             (unsigned long long)imp->blobs_stored, imp->blobs_stored == 1 ? "" : "s",
             (double)imp->bytes_stored / 1048576.0, imp->n_items, imp->n_items == 1 ? "" : "s");
    imp->ids = calloc(imp->n_items ? imp->n_items : 1, sizeof(char *));
    if (!imp->ids) {
        err_t e = ERR_INIT;
        err_sys(&e, ENOMEM, "importing %s", imp->path);
        finish(imp, &e);
        err_clear(&e);
        return;
    }
    register_next(imp);
}

struct image_import *image_import_start(struct images *imgs, const char *path, image_import_progress_fn progress_fn,
                                        image_import_done_fn done, void *data, err_t *err)
{
    if (images_stopping(imgs)) {
        err_set(err, ERR_UNAVAILABLE, ESHUTDOWN, "edgecri is shutting down");
        return NULL;
    }
    if (!path || path[0] != '/') {
        err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "import: \"%s\" is not an absolute path", path ? path : "");
        return NULL;
    }
    struct image_import *imp = calloc(1, sizeof(*imp));
    if (!imp || !(imp->path = strdup(path))) {
        free(imp);
        err_sys(err, ENOMEM, "importing %s", path);
        return NULL;
    }
    imp->imgs = imgs;
    imp->progress = progress_fn;
    imp->done = done;
    imp->data = data;
    progress(imp, "reading the archive");
    int r = images_queue_work(imgs, scan_work, scan_done, imp);
    if (r < 0) {
        import_free(imp);
        err_sys(err, -r, "importing %s", path);
        return NULL;
    }
    return imp;
}

void image_import_detach(struct image_import *imp)
{
    if (imp)
        imp->detached = true;
}

/* --- the import directory ---------------------------------------------------- */

struct dir_import {
    struct images *imgs;
    json_t *state; /* { "<file>": "<size>:<mtime>" } */
    struct persist_file *state_file;
    char **paths, **stamps;
    size_t n, next;
};

static void dir_import_next(struct dir_import *di);

static void dir_state_saved(void *data, const err_t *err)
{
    (void)data;
    if (err)
        log_warn("import directory: %s", err->msg);
}

static void dir_item_done(void *data, const struct imported_image *images, size_t n, const err_t *err)
{
    (void)images;
    struct dir_import *di = data;
    const char *path = di->paths[di->next];
    if (err) {
        log_error("importing %s: %s", path, err->msg);
    } else {
        log_info("imported %s (%zu image%s)", path, n, n == 1 ? "" : "s");
        json_object_set_new(di->state, strrchr(path, '/') + 1, json_string(di->stamps[di->next]));
        char *text = json_dumps(di->state, JSON_SORT_KEYS | JSON_INDENT(1));
        if (text)
            persist_file_write(di->state_file, text, strlen(text), dir_state_saved, NULL);
        free(text);
    }
    di->next++;
    dir_import_next(di);
}

static void dir_import_free(struct dir_import *di)
{
    for (size_t i = 0; i < di->n; i++) {
        free(di->paths[i]);
        free(di->stamps[i]);
    }
    free(di->paths);
    free(di->stamps);
    json_decref(di->state);
    /* The last state write may still run: the persist file keeps itself
     * until it is done (it is freed with the process otherwise). */
    di->state_file = NULL;
    free(di);
}

static void dir_import_next(struct dir_import *di)
{
    while (di->next < di->n) {
        err_t err = ERR_INIT;
        if (image_import_start(di->imgs, di->paths[di->next], NULL, dir_item_done, di, &err))
            return;
        log_error("importing %s: %s", di->paths[di->next], err.msg);
        err_clear(&err);
        di->next++;
    }
    dir_import_free(di);
}

static bool is_tarball(const char *name)
{
    static const char *const exts[] = {".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.xz"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
        size_t e = strlen(exts[i]);
        if (n > e && strcmp(name + n - e, exts[i]) == 0)
            return true;
    }
    return false;
}

static struct persist_file *dir_state_file;

void image_import_dir(struct images *imgs, const char *dir, const char *state_path)
{
    _cleanup_closedir_ DIR *d = opendir(dir);
    if (!d) {
        if (errno != ENOENT)
            log_warn("import directory %s: %s", dir, strerror(errno));
        return;
    }
    struct dir_import *di = calloc(1, sizeof(*di));
    if (!di)
        return;
    di->imgs = imgs;
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    json_error_t jerr;
    di->state = fs_read_file(state_path, 1u << 20, &text, &len, NULL) == 0 ? json_loadb(text, len, 0, &jerr) : NULL;
    if (!json_is_object(di->state)) {
        json_decref(di->state);
        di->state = json_object();
    }
    if (!dir_state_file)
        dir_state_file = persist_file_new(state_path, 0600);
    di->state_file = dir_state_file;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || !is_tarball(de->d_name))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
            continue;
        char stamp[64];
        snprintf(stamp, sizeof(stamp), "%lld:%lld", (long long)st.st_size, (long long)st.st_mtime);
        const char *seen = json_string_value(json_object_get(di->state, de->d_name));
        if (seen && strcmp(seen, stamp) == 0)
            continue;
        char **p = realloc(di->paths, (di->n + 1) * sizeof(char *));
        char **s = p ? realloc(di->stamps, (di->n + 1) * sizeof(char *)) : NULL;
        if (p)
            di->paths = p;
        if (s)
            di->stamps = s;
        if (!p || !s || asprintf(&di->paths[di->n], "%s/%s", dir, de->d_name) < 0)
            break;
        di->stamps[di->n] = strdup(stamp);
        di->n++;
    }
    if (di->n)
        log_info("import directory %s: %zu new tarball%s", dir, di->n, di->n == 1 ? "" : "s");
    dir_import_next(di);
}

void image_import_dir_shutdown(void)
{
    persist_file_free(dir_state_file);
    dir_state_file = NULL;
}

bool image_import_dir_busy(void)
{
    return dir_state_file && persist_file_busy(dir_state_file);
}
