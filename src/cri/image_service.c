/* The CRI ImageService: PullImage, ImageStatus, ListImages, StreamImages,
 * RemoveImage and ImageFsInfo, on top of the image service (src/image). */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cri/cri.h"
#include "daemon/daemon.h"
#include "image/images.h"
#include "image/reference.h"
#include "util/cleanup.h"
#include "util/log.h"

/* Images per message of StreamImages. */
#define STREAM_BATCH 100

/* --- Image messages ----------------------------------------------------------- */

struct image_msg {
    Runtime__V1__Image img;
    Runtime__V1__Int64Value uid;
    Runtime__V1__ImageSpec spec;
};

/* A numeric User (or "uid:gid") becomes uid, anything else username, as
 * kubelet's runAsNonRoot check expects. */
static void fill_user(struct image_msg *m, const char *user)
{
    if (!user || !*user)
        return;
    char name[256];
    snprintf(name, sizeof(name), "%s", user);
    name[strcspn(name, ":")] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(name, &end, 10);
    if (*name && !*end && errno == 0 && v >= 0) {
        m->uid.value = v;
        m->img.uid = &m->uid;
    } else {
        /* The name part only: "app:staff" runs as user "app". */
        m->img.username = strndup(user, strcspn(user, ":"));
    }
}

static void image_msg_init(struct image_msg *m, const struct image_record *r)
{
    Runtime__V1__Image img = RUNTIME__V1__IMAGE__INIT;
    Runtime__V1__Int64Value uid = RUNTIME__V1__INT64_VALUE__INIT;
    Runtime__V1__ImageSpec spec = RUNTIME__V1__IMAGE_SPEC__INIT;
    m->img = img;
    m->uid = uid;
    m->spec = spec;
    m->img.id = r->id;
    m->img.n_repo_tags = r->n_repo_tags;
    m->img.repo_tags = r->repo_tags;
    m->img.n_repo_digests = r->n_repo_digests;
    m->img.repo_digests = r->repo_digests;
    m->img.size = r->size ? r->size : 1; /* CRI: must be > 0 */
    m->img.pinned = r->pinned;
    m->spec.image = r->id;
    m->img.spec = &m->spec;
    fill_user(m, r->user);
}

static void image_msg_free(struct image_msg *m)
{
    if (m->img.username && m->img.username != protobuf_c_empty_string)
        free(m->img.username);
}

static struct images *images_of(struct grpc_call *call)
{
    struct edgecri *d = grpc_call_userdata(call);
    return d->images;
}

static const char *spec_image(const Runtime__V1__ImageSpec *spec)
{
    return spec && spec->image ? spec->image : "";
}

/* --- PullImage ------------------------------------------------------------ */

struct pull_call {
    struct grpc_call *call;
    struct images_pull_waiter *waiter;
};

static void pull_done(void *data, const char *image_id, const err_t *err)
{
    struct pull_call *pc = data;
    Runtime__V1__PullImageResponse resp = RUNTIME__V1__PULL_IMAGE_RESPONSE__INIT;
    resp.image_ref = (char *)image_id;
    grpc_call_finish(pc->call, &resp.base, err);
    free(pc);
}

static void pull_cancelled(struct grpc_call *call, void *data)
{
    struct pull_call *pc = data;
    images_pull_detach(pc->waiter);
    grpc_call_finish(call, NULL, NULL);
    free(pc);
}

static char *dup_nonempty(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

/* AuthConfig → credentials; `auth` is base64 "user:pass" and only used when
 * no explicit username is given. */
static int creds_from_auth(const Runtime__V1__AuthConfig *a, struct registry_credentials *c, err_t *err)
{
    memset(c, 0, sizeof(*c));
    if (!a)
        return 0;
    c->username = dup_nonempty(a->username);
    c->password = dup_nonempty(a->password);
    c->identity_token = dup_nonempty(a->identity_token);
    c->registry_token = dup_nonempty(a->registry_token);
    c->server_address = dup_nonempty(a->server_address);
    if (!c->username && a->auth && *a->auth) {
        size_t len = strlen(a->auth);
        _cleanup_free_ char *dec = malloc(len + 1);
        size_t n = 0;
        if (dec && len <= 8192) {
            /* Standard base64 without a library dependency here: small and
             * strict, refusing anything that is not base64. */
            static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            uint32_t acc = 0;
            int bits = 0;
            for (size_t i = 0; i < len && a->auth[i] != '='; i++) {
                const char *p = strchr(tbl, a->auth[i]);
                if (!p || !a->auth[i]) {
                    registry_credentials_free(c);
                    return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "PullImage: auth.auth is not valid base64");
                }
                acc = acc << 6 | (uint32_t)(p - tbl);
                bits += 6;
                if (bits >= 8) {
                    bits -= 8;
                    dec[n++] = (char)(acc >> bits & 0xff);
                }
            }
            dec[n] = '\0';
        }
        char *colon = dec ? memchr(dec, ':', n) : NULL;
        if (!colon || memchr(dec, '\0', n)) {
            registry_credentials_free(c);
            return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "PullImage: auth.auth must encode \"user:password\"");
        }
        *colon = '\0';
        c->username = strdup(dec);
        c->password = strdup(colon + 1);
    }
    return 0;
}

void cri_pull_image(struct grpc_call *call, const ProtobufCMessage *request)
{
    const Runtime__V1__PullImageRequest *req = (const Runtime__V1__PullImageRequest *)request;
    const char *ref = spec_image(req->image);
    if (!*ref) {
        grpc_call_fail(call, ERR_INVALID_ARGUMENT, "PullImage: image.image is empty");
        return;
    }
    _cleanup_err_ err_t err = ERR_INIT;
    struct registry_credentials creds;
    if (creds_from_auth(req->auth, &creds, &err) < 0) {
        grpc_call_finish(call, NULL, &err);
        return;
    }
    struct pull_call *pc = calloc(1, sizeof(*pc));
    if (!pc) {
        registry_credentials_free(&creds);
        grpc_call_fail(call, ERR_RESOURCE_EXHAUSTED, "PullImage: out of memory");
        return;
    }
    pc->call = call;
    pc->waiter = images_pull(images_of(call), ref, &creds, pull_done, NULL, pc, &err);
    registry_credentials_free(&creds);
    if (!pc->waiter) {
        free(pc);
        grpc_call_finish(call, NULL, &err);
        return;
    }
    grpc_call_on_cancel(call, pull_cancelled, pc);
}

/* --- ImageStatus, ListImages, StreamImages ----------------------------------- */

void cri_image_status(struct grpc_call *call, const ProtobufCMessage *request)
{
    const Runtime__V1__ImageStatusRequest *req = (const Runtime__V1__ImageStatusRequest *)request;
    struct images *imgs = images_of(call);
    Runtime__V1__ImageStatusResponse resp = RUNTIME__V1__IMAGE_STATUS_RESPONSE__INIT;
    const char *text = spec_image(req->image);
    if (!*text) {
        grpc_call_fail(call, ERR_INVALID_ARGUMENT, "ImageStatus: image.image is empty");
        return;
    }
    const struct image_record *r = images_lookup(imgs, text);
    /* An unknown image is not an error: kubelet expects an empty answer. */
    if (!r) {
        grpc_call_finish(call, &resp.base, NULL);
        return;
    }
    struct image_msg m;
    image_msg_init(&m, r);
    resp.image = &m.img;

    Runtime__V1__ImageStatusResponse__InfoEntry entry = RUNTIME__V1__IMAGE_STATUS_RESPONSE__INFO_ENTRY__INIT;
    Runtime__V1__ImageStatusResponse__InfoEntry *entries[] = {&entry};
    _cleanup_free_ char *info = NULL;
    if (req->verbose) {
        size_t len = 0;
        const char *cfg = images_config_json(imgs, r->id, &len);
        json_error_t jerr;
        json_t *config = cfg ? json_loadb(cfg, len, 0, &jerr) : json_null();
        json_t *chains = json_array();
        for (size_t i = 0; i < r->n_layers; i++)
            json_array_append_new(chains, json_string(r->chain_ids[i]));
        json_t *o =
            json_pack("{s:s, s:s, s:o, s:I, s:o}", "imageId", r->id, "manifestDigest", r->manifest_digest, "chainIds",
                      chains, "pulledAt", (json_int_t)r->pulled_at, "config", config ? config : json_null());
        info = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (info) {
            entry.key = (char *)"info";
            entry.value = info;
            resp.n_info = 1;
            resp.info = entries;
        }
    }
    grpc_call_finish(call, &resp.base, NULL);
    image_msg_free(&m);
}

/* The images a filter selects: one (by name or ID) or all. */
static size_t select_images(struct images *imgs, const Runtime__V1__ImageFilter *filter,
                            const struct image_record ***out)
{
    const char *want = filter && filter->image ? spec_image(filter->image) : "";
    if (*want) {
        const struct image_record *r = images_lookup(imgs, want);
        if (!r)
            return 0;
        *out = malloc(sizeof(**out));
        if (!*out)
            return 0;
        (*out)[0] = r;
        return 1;
    }
    size_t n = images_count(imgs);
    *out = malloc((n ? n : 1) * sizeof(**out));
    if (!*out)
        return 0;
    for (size_t i = 0; i < n; i++)
        (*out)[i] = images_at(imgs, i);
    return n;
}

static void send_images(struct grpc_call *call, const Runtime__V1__ImageFilter *filter, bool streaming)
{
    struct images *imgs = images_of(call);
    _cleanup_free_ const struct image_record **sel = NULL;
    size_t n = select_images(imgs, filter, &sel);
    _cleanup_free_ struct image_msg *msgs = calloc(n ? n : 1, sizeof(*msgs));
    _cleanup_free_ Runtime__V1__Image **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    if (!msgs || !ptrs) {
        grpc_call_fail(call, ERR_RESOURCE_EXHAUSTED, "out of memory listing images");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        image_msg_init(&msgs[i], sel[i]);
        ptrs[i] = &msgs[i].img;
    }
    if (!streaming) {
        Runtime__V1__ListImagesResponse resp = RUNTIME__V1__LIST_IMAGES_RESPONSE__INIT;
        resp.n_images = n;
        resp.images = ptrs;
        grpc_call_finish(call, &resp.base, NULL);
    } else {
        for (size_t off = 0; off < n; off += STREAM_BATCH) {
            Runtime__V1__StreamImagesResponse resp = RUNTIME__V1__STREAM_IMAGES_RESPONSE__INIT;
            resp.n_images = n - off < STREAM_BATCH ? n - off : STREAM_BATCH;
            resp.images = ptrs + off;
            if (grpc_call_send(call, &resp.base) < 0)
                break;
        }
        grpc_call_finish(call, NULL, NULL);
    }
    for (size_t i = 0; i < n; i++)
        image_msg_free(&msgs[i]);
}

void cri_list_images(struct grpc_call *call, const ProtobufCMessage *request)
{
    send_images(call, ((const Runtime__V1__ListImagesRequest *)request)->filter, false);
}

void cri_stream_images(struct grpc_call *call, const ProtobufCMessage *request)
{
    send_images(call, ((const Runtime__V1__StreamImagesRequest *)request)->filter, true);
}

/* --- RemoveImage --------------------------------------------------------------- */

static void removed(void *data, const err_t *err)
{
    Runtime__V1__RemoveImageResponse resp = RUNTIME__V1__REMOVE_IMAGE_RESPONSE__INIT;
    grpc_call_finish(data, &resp.base, err);
}

void cri_remove_image(struct grpc_call *call, const ProtobufCMessage *request)
{
    const Runtime__V1__RemoveImageRequest *req = (const Runtime__V1__RemoveImageRequest *)request;
    const char *text = spec_image(req->image);
    if (!*text) {
        grpc_call_fail(call, ERR_INVALID_ARGUMENT, "RemoveImage: image.image is empty");
        return;
    }
    log_info("removing image %s", text);
    /* Idempotent: an image that is already gone is removed. */
    if (!images_remove(images_of(call), text, removed, call))
        removed(call, NULL);
}

/* --- ImageFsInfo ------------------------------------------------------------------ */

static void usage_measured(void *data, const struct images_usage *u, const err_t *err)
{
    struct grpc_call *call = data;
    if (err) {
        grpc_call_finish(call, NULL, err);
        return;
    }
    Runtime__V1__FilesystemIdentifier id = RUNTIME__V1__FILESYSTEM_IDENTIFIER__INIT;
    Runtime__V1__UInt64Value bytes = RUNTIME__V1__UINT64_VALUE__INIT;
    Runtime__V1__UInt64Value inodes = RUNTIME__V1__UINT64_VALUE__INIT;
    Runtime__V1__FilesystemUsage fs = RUNTIME__V1__FILESYSTEM_USAGE__INIT;
    id.mountpoint = u->mountpoint;
    bytes.value = u->bytes;
    inodes.value = u->inodes;
    fs.timestamp = (int64_t)u->timestamp_ns;
    fs.fs_id = &id;
    fs.used_bytes = &bytes;
    fs.inodes_used = &inodes;
    Runtime__V1__FilesystemUsage *list[] = {&fs};
    Runtime__V1__ImageFsInfoResponse resp = RUNTIME__V1__IMAGE_FS_INFO_RESPONSE__INIT;
    resp.n_image_filesystems = 1;
    resp.image_filesystems = list;
    grpc_call_finish(call, &resp.base, NULL);
}

void cri_image_fs_info(struct grpc_call *call, const ProtobufCMessage *request)
{
    (void)request;
    int r = images_usage(images_of(call), usage_measured, call);
    if (r < 0)
        grpc_call_fail(call, ERR_RESOURCE_EXHAUSTED, "ImageFsInfo: %s", strerror(-r));
}
