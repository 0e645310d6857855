#include "runtime/identity.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/openat2.h>

#include "util/cleanup.h"

/* (uid_t)-1 means "unchanged" to setresuid(2) and chown(2), so it is never an
 * id a process can be given. */
#define ID_MAX UINT32_C(4294967294)

/* An image's passwd and group are a few KiB; anything near a MiB is hostile. */
#define IMAGE_FILE_MAX ((size_t)1 << 20)

/* Longer lines are skipped. 64 KiB holds a group listing thousands of
 * members, far beyond any real image, and keeps one line's cost bounded. */
#define LINE_MAX_BYTES ((size_t)64 << 10)

/* The kernel's NGROUPS_MAX (setgroups(2) refuses more). */
#define GROUPS_MAX 65536

struct image_file {
    const char *path; /* "/etc/passwd": for messages, and (without the '/') the path under the root */
    char *data;       /* NUL-terminated; NULL when the image has no such file */
    size_t len;
    bool loaded;
};

static void image_file_freep(struct image_file *f)
{
    free(f->data);
    f->data = NULL;
}
#define _cleanup_image_file_ __attribute__((cleanup(image_file_freep)))

static int open_in_root(int rootfd, const char *rel, int *out)
{
    /* RESOLVE_IN_ROOT: absolute symlinks and ".." resolve as if rootfd were
     * "/", so an image's etc/passwd -> /etc/shadow names the image's own
     * (usually missing) file, never the host's. O_NONBLOCK: a FIFO planted
     * as etc/passwd must not hang the open. */
    struct open_how how = {
        .flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    for (int tries = 0;; tries++) {
        long fd = syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
        if (fd >= 0) {
            *out = (int)fd;
            return 0;
        }
        /* EAGAIN: a concurrent rename raced the lookup; retrying is safe. */
        if ((errno != EAGAIN && errno != EINTR) || tries >= 16)
            return -errno;
    }
}

/* Loads f once. A missing file (or a missing/non-directory etc) is not an
 * error: images with numeric users often have neither file. */
static int load_file(int rootfd, struct image_file *f, err_t *err)
{
    if (f->loaded)
        return 0;
    _cleanup_close_ int fd = -1;
    int r = open_in_root(rootfd, f->path + 1, &fd);
    if (r == -ENOENT || r == -ENOTDIR) {
        f->loaded = true;
        return 0;
    }
    if (r < 0)
        return err_sys(err, -r, "opening %s in the container's root filesystem", f->path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return err_sys(err, errno, "stat %s in the container's root filesystem", f->path);
    if (!S_ISREG(st.st_mode))
        return err_set(err, ERR_FAILED_PRECONDITION, EINVAL,
                       "%s in the container's root filesystem is not a regular file", f->path);
    if (st.st_size < 0 || (uint64_t)st.st_size > IMAGE_FILE_MAX)
        return err_set(err, ERR_FAILED_PRECONDITION, EFBIG,
                       "%s in the container's root filesystem is larger than %zu bytes", f->path, IMAGE_FILE_MAX);

    /* The size is only a hint: the file may grow while we read it. */
    size_t cap = (size_t)st.st_size + 1, len = 0;
    _cleanup_free_ char *buf = malloc(cap + 1);
    if (!buf)
        return err_sys(err, ENOMEM, "reading %s", f->path);
    for (;;) {
        if (len == cap) {
            if (len > IMAGE_FILE_MAX)
                break;
            size_t ncap = cap * 2 > IMAGE_FILE_MAX + 1 ? IMAGE_FILE_MAX + 1 : cap * 2;
            char *nbuf = realloc(buf, ncap + 1);
            if (!nbuf)
                return err_sys(err, ENOMEM, "reading %s", f->path);
            buf = nbuf;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return err_sys(err, errno, "reading %s in the container's root filesystem", f->path);
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > IMAGE_FILE_MAX)
        return err_set(err, ERR_FAILED_PRECONDITION, EFBIG,
                       "%s in the container's root filesystem is larger than %zu bytes", f->path, IMAGE_FILE_MAX);
    /* A NUL would make C string handling and what the container's libc sees
     * disagree; such a file is not one we can trust any line of. */
    if (memchr(buf, '\0', len))
        return err_set(err, ERR_FAILED_PRECONDITION, EINVAL,
                       "%s in the container's root filesystem contains a NUL byte", f->path);
    buf[len] = '\0';
    f->data = steal_pointer(&buf);
    f->len = len;
    f->loaded = true;
    return 0;
}

/* ---- colon-separated records ---- */

struct field {
    const char *s;
    size_t len;
};

struct cursor {
    const char *p, *end;
};

/* Splits the next usable line into at most `max` fields and returns how many
 * it has; 0 at the end. Blank lines, comments, NIS "+"/"-" entries, overlong
 * lines and lines with more than `max` fields are skipped. */
static size_t next_record(struct cursor *c, struct field *f, size_t max)
{
    while (c->p < c->end) {
        const char *line = c->p;
        const char *nl = memchr(line, '\n', (size_t)(c->end - line));
        const char *eol = nl ? nl : c->end;
        c->p = nl ? nl + 1 : c->end;
        if (eol > line && eol[-1] == '\r')
            eol--;
        size_t len = (size_t)(eol - line);
        if (len == 0 || len > LINE_MAX_BYTES || line[0] == '#' || line[0] == '+' || line[0] == '-')
            continue;
        size_t n = 0;
        const char *s = line;
        for (;;) {
            if (n == max) {
                n = 0;
                break;
            }
            const char *colon = memchr(s, ':', (size_t)(eol - s));
            f[n].s = s;
            f[n].len = (size_t)((colon ? colon : eol) - s);
            n++;
            if (!colon)
                break;
            s = colon + 1;
        }
        if (n > 0)
            return n;
    }
    return 0;
}

static bool field_eq(const struct field *f, const char *s)
{
    size_t n = strlen(s);
    return f->len == n && memcmp(f->s, s, n) == 0;
}

/* Plain decimal (no sign, no spaces) within 0..ID_MAX. */
static bool parse_id_n(const char *s, size_t len, uint32_t *out)
{
    if (len == 0 || len > 10)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > ID_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

struct pwent {
    struct field name, home;
    uint32_t uid, gid;
};

/* The first passwd entry named `name`, or (name NULL) with uid `uid`. */
static bool passwd_lookup(const struct image_file *f, const char *name, uint32_t uid, struct pwent *out)
{
    if (!f->data)
        return false;
    struct cursor c = {f->data, f->data + f->len};
    struct field fl[7];
    size_t n;
    while ((n = next_record(&c, fl, ARRAY_SIZE(fl))) > 0) {
        uint32_t u, g;
        if (n < 4 || fl[0].len == 0 || !parse_id_n(fl[2].s, fl[2].len, &u) || !parse_id_n(fl[3].s, fl[3].len, &g))
            continue;
        if (name ? !field_eq(&fl[0], name) : u != uid)
            continue;
        out->name = fl[0];
        out->home = n >= 6 ? fl[5] : (struct field){"", 0};
        out->uid = u;
        out->gid = g;
        return true;
    }
    return false;
}

/* group(5) lines: name:password:gid[:member,member...] */
static bool group_record(struct cursor *c, struct field fl[4], uint32_t *gid)
{
    size_t n;
    while ((n = next_record(c, fl, 4)) > 0) {
        if (n < 3 || fl[0].len == 0 || !parse_id_n(fl[2].s, fl[2].len, gid))
            continue;
        if (n == 3)
            fl[3] = (struct field){"", 0};
        return true;
    }
    return false;
}

static bool group_lookup(const struct image_file *f, const char *name, uint32_t *gid)
{
    if (!f->data)
        return false;
    struct cursor c = {f->data, f->data + f->len};
    struct field fl[4];
    while (group_record(&c, fl, gid))
        if (field_eq(&fl[0], name))
            return true;
    return false;
}

static bool members_include(const struct field *list, const char *user)
{
    const char *p = list->s, *end = list->s + list->len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        struct field m = {p, (size_t)(e - p)};
        if (field_eq(&m, user))
            return true;
        p = comma ? comma + 1 : end;
    }
    return false;
}

/* Appends the gid of every group listing `user` as a member. The caller
 * sized `gids` for at least count_groups() more entries. */
static size_t group_memberships(const struct image_file *f, const char *user, uint32_t *gids)
{
    size_t n = 0;
    if (!f->data)
        return 0;
    struct cursor c = {f->data, f->data + f->len};
    struct field fl[4];
    uint32_t gid;
    while (group_record(&c, fl, &gid))
        if (members_include(&fl[3], user))
            gids[n++] = gid;
    return n;
}

static size_t count_groups(const struct image_file *f)
{
    size_t n = 0;
    if (!f->data)
        return 0;
    struct cursor c = {f->data, f->data + f->len};
    struct field fl[4];
    uint32_t gid;
    while (group_record(&c, fl, &gid))
        n++;
    return n;
}

/* ---- the groups list ---- */

struct slot {
    uint32_t gid;
    size_t pos;
};

static int cmp_slot(const void *a, const void *b)
{
    const struct slot *x = a, *y = b;
    if (x->gid != y->gid)
        return x->gid < y->gid ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Removes duplicates from gids[0..n) keeping each first occurrence in place
 * order; returns the new count. O(n log n): the list can be 65536 long. */
static int dedupe(uint32_t *gids, size_t n, size_t *out_n)
{
    if (n < 2) {
        *out_n = n;
        return 0;
    }
    _cleanup_free_ struct slot *slots = calloc(n, sizeof(*slots));
    _cleanup_free_ bool *drop = calloc(n, sizeof(*drop));
    if (!slots || !drop)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        slots[i] = (struct slot){gids[i], i};
    qsort(slots, n, sizeof(*slots), cmp_slot);
    for (size_t i = 1; i < n; i++)
        if (slots[i].gid == slots[i - 1].gid)
            drop[slots[i].pos] = true;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!drop[i])
            gids[k++] = gids[i];
    *out_n = k;
    return 0;
}

/* ---- resolution ---- */

static bool id_in_range(int64_t v)
{
    return v >= 0 && (uint64_t)v <= ID_MAX;
}

/* The image's User split into its user and (optional) group parts. */
static int split_image_user(const char *spec, char **user, char **group, err_t *err)
{
    const char *colon = strchr(spec, ':');
    if (colon && strchr(colon + 1, ':'))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "image user \"%s\": more than one ':'", spec);
    if (colon == spec)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "image user \"%s\": empty user", spec);
    if (colon && !colon[1])
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "image user \"%s\": empty group", spec);
    *user = colon ? strndup(spec, (size_t)(colon - spec)) : strdup(spec);
    *group = colon ? strdup(colon + 1) : NULL;
    if (!*user || (colon && !*group))
        return err_sys(err, ENOMEM, "image user \"%s\"", spec);
    return 0;
}

int identity_resolve(int rootfd, const struct identity_request *req, struct identity *out, err_t *err)
{
    memset(out, 0, sizeof(*out));
    const char *image_user = req->image_user ? req->image_user : "";
    const char *run_as_username = req->run_as_username ? req->run_as_username : "";

    if (req->has_run_as_group && !req->has_run_as_user && !run_as_username[0])
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "RunAsGroup is set without RunAsUser");
    if (req->has_run_as_user && !id_in_range(req->run_as_user))
        return err_set(err, ERR_INVALID_ARGUMENT, ERANGE, "RunAsUser %" PRId64 " is out of range (0-%" PRIu32 ")",
                       req->run_as_user, ID_MAX);
    if (req->has_run_as_group && !id_in_range(req->run_as_group))
        return err_set(err, ERR_INVALID_ARGUMENT, ERANGE, "RunAsGroup %" PRId64 " is out of range (0-%" PRIu32 ")",
                       req->run_as_group, ID_MAX);
    if (req->policy != SUPPLEMENTAL_MERGE && req->policy != SUPPLEMENTAL_STRICT)
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "unknown supplemental groups policy %d", (int)req->policy);
    /* Checked before anything is sized from it: a list this long cannot
     * fit even if it repeats itself. */
    if (req->n_supplemental_groups > GROUPS_MAX)
        return err_set(err, ERR_INVALID_ARGUMENT, E2BIG, "%zu supplemental groups requested, at most %d are allowed",
                       req->n_supplemental_groups, GROUPS_MAX);
    for (size_t i = 0; i < req->n_supplemental_groups; i++)
        if (!id_in_range(req->supplemental_groups[i]))
            return err_set(err, ERR_INVALID_ARGUMENT, ERANGE,
                           "supplemental group %" PRId64 " is out of range (0-%" PRIu32 ")",
                           req->supplemental_groups[i], ID_MAX);

    _cleanup_image_file_ struct image_file passwd = {.path = "/etc/passwd"};
    _cleanup_image_file_ struct image_file group = {.path = "/etc/group"};

    /* Who: a uid, or a name to find; and the image's group part when the
     * user comes from the image (a CRI user never takes the image's group). */
    uint32_t uid = 0;
    const char *by_name = NULL;
    _cleanup_free_ char *image_name = NULL, *image_group = NULL;
    if (req->has_run_as_user) {
        uid = (uint32_t)req->run_as_user;
    } else if (run_as_username[0]) {
        by_name = run_as_username;
    } else if (image_user[0]) {
        int r = split_image_user(image_user, &image_name, &image_group, err);
        if (r < 0)
            return r;
        if (!all_digits(image_name))
            by_name = image_name;
        else if (!parse_id_n(image_name, strlen(image_name), &uid))
            return err_set(err, ERR_INVALID_ARGUMENT, ERANGE, "image user \"%s\": uid out of range (0-%" PRIu32 ")",
                           image_user, ID_MAX);
    }

    int r = load_file(rootfd, &passwd, err);
    if (r < 0)
        return r;
    struct pwent pw;
    bool found;
    if (by_name) {
        found = passwd_lookup(&passwd, by_name, 0, &pw);
        if (!found)
            return err_set(err, ERR_INVALID_ARGUMENT, ENOENT,
                           passwd.data ? "user \"%s\" not found in the image's /etc/passwd"
                                       : "user \"%s\" not found: the image has no /etc/passwd",
                           by_name);
        uid = pw.uid;
    } else {
        found = passwd_lookup(&passwd, NULL, uid, &pw);
    }

    uint32_t gid = found ? pw.gid : 0;
    if (req->has_run_as_group) {
        gid = (uint32_t)req->run_as_group;
    } else if (image_group) {
        if (all_digits(image_group)) {
            if (!parse_id_n(image_group, strlen(image_group), &gid))
                return err_set(err, ERR_INVALID_ARGUMENT, ERANGE, "image user \"%s\": gid out of range (0-%" PRIu32 ")",
                               image_user, ID_MAX);
        } else {
            r = load_file(rootfd, &group, err);
            if (r < 0)
                return r;
            if (!group_lookup(&group, image_group, &gid))
                return err_set(err, ERR_INVALID_ARGUMENT, ENOENT,
                               group.data ? "group \"%s\" not found in the image's /etc/group"
                                          : "group \"%s\" not found: the image has no /etc/group",
                               image_group);
        }
    }

    _cleanup_free_ char *username = found ? strndup(pw.name.s, pw.name.len) : strdup("");
    _cleanup_free_ char *home = found && pw.home.len ? strndup(pw.home.s, pw.home.len) : strdup("/");
    if (!username || !home)
        return err_sys(err, ENOMEM, "resolving the container's user");

    bool merge = req->policy == SUPPLEMENTAL_MERGE && username[0];
    if (merge) {
        r = load_file(rootfd, &group, err);
        if (r < 0)
            return r;
    }
    /* At most 1 + every group line + the request: bounded by the 1 MiB
     * file and the check above. */
    size_t max = 1 + (merge ? count_groups(&group) : 0) + req->n_supplemental_groups;
    _cleanup_free_ uint32_t *gids = malloc(max * sizeof(*gids));
    if (!gids)
        return err_sys(err, ENOMEM, "resolving the container's groups");
    size_t n = 0;
    gids[n++] = gid;
    if (merge)
        n += group_memberships(&group, username, gids + n);
    for (size_t i = 0; i < req->n_supplemental_groups; i++)
        gids[n++] = (uint32_t)req->supplemental_groups[i];
    r = dedupe(gids, n, &n);
    if (r < 0)
        return err_sys(err, -r, "resolving the container's groups");
    if (n > GROUPS_MAX)
        return err_set(err, ERR_INVALID_ARGUMENT, E2BIG, "the container would have %zu groups, at most %d are allowed",
                       n, GROUPS_MAX);

    out->groups = malloc(n * sizeof(*out->groups));
    if (!out->groups)
        return err_sys(err, ENOMEM, "resolving the container's groups");
    for (size_t i = 0; i < n; i++)
        out->groups[i] = (gid_t)gids[i];
    out->n_groups = n;
    out->uid = (uid_t)uid;
    out->gid = (gid_t)gid;
    out->username = steal_pointer(&username);
    out->home = steal_pointer(&home);
    return 0;
}

void identity_free(struct identity *id)
{
    if (!id)
        return;
    free(id->groups);
    free(id->username);
    free(id->home);
    memset(id, 0, sizeof(*id));
}
