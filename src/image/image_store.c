#include "image/image_store.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/reference.h"
#include "util/cleanup.h"
#include "util/digest.h"
#include "util/fs.h"
#include "util/log.h"

#define IMAGES_FILE_MAX (64u << 20)

struct image_store {
    struct image_record *images;
    size_t n, cap;
    struct persist_file *file;
};

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void image_record_free(struct image_record *r)
{
    if (!r)
        return;
    free(r->id);
    strv_free(r->repo_tags, r->n_repo_tags);
    strv_free(r->repo_digests, r->n_repo_digests);
    free(r->manifest_digest);
    strv_free(r->chain_ids, r->n_layers);
    free(r->user);
    memset(r, 0, sizeof(*r));
}

/* --- JSON ------------------------------------------------------------------ */

static json_t *strv_json(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static int strv_from_json(json_t *a, char ***out, size_t *n)
{
    if (!json_is_array(a))
        return -EINVAL;
    size_t len = json_array_size(a);
    char **v = calloc(len ? len : 1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < len; i++) {
        const char *s = json_string_value(json_array_get(a, i));
        if (!s || !(v[i] = strdup(s))) {
            strv_free(v, i);
            return -EINVAL;
        }
    }
    *out = v;
    *n = len;
    return 0;
}

static char *serialize(const struct image_store *s)
{
    json_t *list = json_array();
    for (size_t i = 0; i < s->n; i++) {
        const struct image_record *r = &s->images[i];
        json_array_append_new(list, json_pack("{s:s, s:o, s:o, s:s, s:o, s:I, s:s, s:b, s:I}", "id", r->id, "repoTags",
                                              strv_json(r->repo_tags, r->n_repo_tags), "repoDigests",
                                              strv_json(r->repo_digests, r->n_repo_digests), "manifestDigest",
                                              r->manifest_digest, "chainIds", strv_json(r->chain_ids, r->n_layers),
                                              "size", (json_int_t)r->size, "user", r->user ? r->user : "", "pinned",
                                              r->pinned, "pulledAt", (json_int_t)r->pulled_at));
    }
    json_t *doc = json_pack("{s:i, s:o}", "version", 1, "images", list);
    char *text = doc ? json_dumps(doc, JSON_INDENT(1)) : NULL;
    json_decref(doc);
    return text;
}

static int parse_record(json_t *o, struct image_record *r)
{
    const char *id, *md, *user;
    json_t *tags, *digests, *chains;
    json_int_t size, pulled;
    int pinned;
    if (json_unpack(o, "{s:s, s:o, s:o, s:s, s:o, s:I, s:s, s:b, s:I}", "id", &id, "repoTags", &tags, "repoDigests",
                    &digests, "manifestDigest", &md, "chainIds", &chains, "size", &size, "user", &user, "pinned",
                    &pinned, "pulledAt", &pulled) < 0 ||
        !digest_valid(id) || !digest_valid(md) || size < 0)
        return -EINVAL;
    memset(r, 0, sizeof(*r));
    r->id = strdup(id);
    r->manifest_digest = strdup(md);
    r->user = strdup(user);
    r->size = (uint64_t)size;
    r->pinned = pinned;
    r->pulled_at = pulled;
    if (!r->id || !r->manifest_digest || !r->user || strv_from_json(tags, &r->repo_tags, &r->n_repo_tags) < 0 ||
        strv_from_json(digests, &r->repo_digests, &r->n_repo_digests) < 0 ||
        strv_from_json(chains, &r->chain_ids, &r->n_layers) < 0) {
        image_record_free(r);
        return -EINVAL;
    }
    for (size_t i = 0; i < r->n_layers; i++)
        if (!digest_valid(r->chain_ids[i])) {
            image_record_free(r);
            return -EINVAL;
        }
    return 0;
}

static int grow(struct image_store *s)
{
    if (s->n < s->cap)
        return 0;
    size_t cap = s->cap ? s->cap * 2 : 16;
    struct image_record *v = realloc(s->images, cap * sizeof(*v));
    if (!v)
        return -ENOMEM;
    s->images = v;
    s->cap = cap;
    return 0;
}

int image_store_open(const char *root, struct image_store **out, err_t *err)
{
    struct image_store *s = calloc(1, sizeof(*s));
    _cleanup_free_ char *path = NULL;
    if (!s || asprintf(&path, "%s/images.json", root) < 0 || !(s->file = persist_file_new(path, 0600))) {
        image_store_free(s);
        return err_sys(err, ENOMEM, "opening the image store");
    }
    _cleanup_free_ char *text = NULL;
    size_t len;
    err_t rerr = ERR_INIT;
    if (fs_read_file(path, IMAGES_FILE_MAX, &text, &len, &rerr) < 0) {
        int e = rerr.errnum;
        if (e == ENOENT) {
            err_clear(&rerr);
            *out = s;
            return 0;
        }
        err_move(err, &rerr);
        image_store_free(s);
        return -e;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *list = doc ? json_object_get(doc, "images") : NULL;
    if (!json_is_array(list)) {
        json_decref(doc);
        image_store_free(s);
        return err_set(err, ERR_DATA_LOSS, EINVAL, "%s is damaged (%s); refusing to start without the image records",
                       path, doc ? "no image list" : jerr.text);
    }
    for (size_t i = 0; i < json_array_size(list); i++) {
        struct image_record r;
        if (parse_record(json_array_get(list, i), &r) < 0) {
            log_warn("%s: skipping damaged image record %zu", path, i);
            continue;
        }
        if (grow(s) < 0) {
            image_record_free(&r);
            json_decref(doc);
            image_store_free(s);
            return err_sys(err, ENOMEM, "loading %s", path);
        }
        s->images[s->n++] = r;
    }
    json_decref(doc);
    *out = s;
    return 0;
}

void image_store_free(struct image_store *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        image_record_free(&s->images[i]);
    free(s->images);
    persist_file_free(s->file);
    free(s);
}

size_t image_store_count(const struct image_store *s)
{
    return s->n;
}

const struct image_record *image_store_at(const struct image_store *s, size_t i)
{
    return i < s->n ? &s->images[i] : NULL;
}

static bool strv_has(char *const *v, size_t n, const char *x)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], x) == 0)
            return true;
    return false;
}

static struct image_record *find_id(const struct image_store *s, const char *id)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->images[i].id, id) == 0)
            return &s->images[i];
    return NULL;
}

const struct image_record *image_store_lookup(const struct image_store *s, const char *text)
{
    if (!text || !*text)
        return NULL;
    if (digest_valid(text))
        return find_id(s, text);
    if (strlen(text) == 64 && strspn(text, "0123456789abcdef") == 64) {
        char id[72];
        snprintf(id, sizeof(id), "sha256:%s", text);
        return find_id(s, id);
    }
    struct image_ref ref;
    err_t err = ERR_INIT;
    if (image_ref_parse(text, &ref, &err) < 0) {
        err_clear(&err);
        return NULL;
    }
    _cleanup_free_ char *name = image_ref_name(&ref);
    _cleanup_free_ char *key = NULL;
    bool by_digest = ref.digest != NULL;
    int n = by_digest ? asprintf(&key, "%s@%s", name, ref.digest) : asprintf(&key, "%s:%s", name, ref.tag);
    image_ref_free(&ref);
    if (n < 0)
        return NULL;
    for (size_t i = 0; i < s->n; i++) {
        const struct image_record *r = &s->images[i];
        if (by_digest ? strv_has(r->repo_digests, r->n_repo_digests, key) : strv_has(r->repo_tags, r->n_repo_tags, key))
            return r;
    }
    return NULL;
}

static void strv_remove(char **v, size_t *n, const char *x)
{
    for (size_t i = 0; i < *n;) {
        if (strcmp(v[i], x) == 0) {
            free(v[i]);
            memmove(&v[i], &v[i + 1], (*n - i - 1) * sizeof(*v));
            (*n)--;
        } else {
            i++;
        }
    }
}

static int strv_add(char ***v, size_t *n, const char *x)
{
    if (strv_has(*v, *n, x))
        return 0;
    char **nv = realloc(*v, (*n + 1) * sizeof(**v));
    if (!nv)
        return -ENOMEM;
    *v = nv;
    if (!(nv[*n] = strdup(x)))
        return -ENOMEM;
    (*n)++;
    return 0;
}

static void drop_at(struct image_store *s, size_t i)
{
    image_record_free(&s->images[i]);
    memmove(&s->images[i], &s->images[i + 1], (s->n - i - 1) * sizeof(*s->images));
    s->n--;
}

static void save(struct image_store *s, persist_done_fn done, void *data)
{
    _cleanup_free_ char *text = serialize(s);
    if (!text) {
        if (done) {
            err_t e = ERR_INIT;
            err_sys(&e, ENOMEM, "saving the image records");
            done(data, &e);
            err_clear(&e);
        }
        return;
    }
    persist_file_write(s->file, text, strlen(text), done, data);
}

void image_store_add(struct image_store *s, struct image_record *rec, persist_done_fn done, void *data)
{
    /* Tags move: take this image's tags away from every other image. */
    for (size_t t = 0; t < rec->n_repo_tags; t++)
        for (size_t i = 0; i < s->n; i++)
            if (strcmp(s->images[i].id, rec->id) != 0)
                strv_remove(s->images[i].repo_tags, &s->images[i].n_repo_tags, rec->repo_tags[t]);
    for (size_t i = 0; i < s->n;) {
        struct image_record *r = &s->images[i];
        if (strcmp(r->id, rec->id) != 0 && r->n_repo_tags == 0 && r->n_repo_digests == 0)
            drop_at(s, i);
        else
            i++;
    }
    struct image_record *existing = find_id(s, rec->id);
    int r = 0;
    if (existing) {
        for (size_t t = 0; t < rec->n_repo_tags && r == 0; t++)
            r = strv_add(&existing->repo_tags, &existing->n_repo_tags, rec->repo_tags[t]);
        for (size_t t = 0; t < rec->n_repo_digests && r == 0; t++)
            r = strv_add(&existing->repo_digests, &existing->n_repo_digests, rec->repo_digests[t]);
        existing->pulled_at = rec->pulled_at;
        image_record_free(rec);
    } else if ((r = grow(s)) == 0) {
        s->images[s->n++] = *rec;
        memset(rec, 0, sizeof(*rec));
    } else {
        image_record_free(rec);
    }
    if (r < 0) {
        if (done) {
            err_t e = ERR_INIT;
            err_sys(&e, -r, "registering the image");
            done(data, &e);
            err_clear(&e);
        }
        return;
    }
    save(s, done, data);
}

bool image_store_remove(struct image_store *s, const char *id, persist_done_fn done, void *data)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->images[i].id, id) == 0) {
            drop_at(s, i);
            save(s, done, data);
            return true;
        }
    }
    return false;
}

bool image_store_uses_layer(const struct image_store *s, const char *chain_id)
{
    for (size_t i = 0; i < s->n; i++)
        if (strv_has(s->images[i].chain_ids, s->images[i].n_layers, chain_id))
            return true;
    return false;
}

bool image_store_busy(const struct image_store *s)
{
    return persist_file_busy(s->file);
}
