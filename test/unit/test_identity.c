#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/identity.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "unit.h"

/* ---- fake root filesystems ---- */

struct root {
    char dir[64];
    int fd;
};

static void root_make(struct root *r)
{
    snprintf(r->dir, sizeof(r->dir), "/tmp/edgecri-identity-XXXXXX");
    if (!mkdtemp(r->dir)) {
        perror("mkdtemp");
        exit(2);
    }
    r->fd = open(r->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (r->fd < 0) {
        perror("open root");
        exit(2);
    }
}

static void root_free(struct root *r)
{
    err_t err = ERR_INIT;
    close(r->fd);
    if (fs_remove_tree(r->dir, &err) < 0)
        fprintf(stderr, "removing %s: %s\n", r->dir, err.msg);
    err_clear(&err);
}

/* Writes root/rel (parents created), or a file at an absolute host path when
 * r is NULL. */
static void put_file(const struct root *r, const char *rel, const void *data, size_t len)
{
    char path[512], dir[512];
    snprintf(path, sizeof(path), "%s/%s", r ? r->dir : "", rel);
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        err_t err = ERR_INIT;
        if (fs_mkdir_p(dir, 0755, &err) < 0) {
            fprintf(stderr, "mkdir %s: %s\n", dir, err.msg);
            exit(2);
        }
    }
    FILE *f = fopen(path, "w");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
}

static void put_text(const struct root *r, const char *rel, const char *text)
{
    put_file(r, rel, text, strlen(text));
}

static void put_symlink(const struct root *r, const char *rel, const char *target)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", r->dir, rel);
    if (symlink(target, path) < 0) {
        perror(path);
        exit(2);
    }
}

static void make_dir(const struct root *r, const char *rel)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", r->dir, rel);
    err_t err = ERR_INIT;
    if (fs_mkdir_p(path, 0755, &err) < 0) {
        fprintf(stderr, "mkdir %s: %s\n", path, err.msg);
        exit(2);
    }
}

/* busybox-like files with the junk real and hostile images carry. */
static const char passwd_text[] = "root:x:0:0:root:/root:/bin/sh\n"
                                  "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
                                  "bin:x:2:2:bin:/bin:/bin/false\n"
                                  "# a comment line\n"
                                  "\n"
                                  "   \n"
                                  "+nisuser::4000:4000:::\n"
                                  "-nisdrop::4001:4001:::\n"
                                  "+\n"
                                  "a line without colons\n"
                                  "bad:x:notanumber:0::/bad:/bin/sh\n"
                                  "badgid:x:4100:-1::/bad:/bin/sh\n"
                                  "neg:x:-5:0::/neg:/bin/sh\n"
                                  "toobig:x:4294967295:0::/big:/bin/sh\n"
                                  "huge:x:99999999999:0::/big:/bin/sh\n"
                                  "short:x:1500\n"
                                  "extra:x:1600:1600:a:/b:/bin/sh:more\n"
                                  ":x:1700:1700::/noname:/bin/sh\n"
                                  "nobody:x:65534:65534:nobody:/home:/bin/false\n"
                                  "edge:x:1000:1000:Edge User,,,:/home/edge:/bin/sh\n"
                                  "nohome:x:1001:1001:no home::/bin/sh\n"
                                  "fourfields:x:1002:1003\n"
                                  "dup:x:2000:2000::/first:/bin/sh\n"
                                  "dup:x:2001:2001::/second:/bin/sh\n"
                                  "samegid:x:2002:1000::/home/samegid:/bin/sh\n"
                                  "crlf:x:3000:3000::/home/crlf:/bin/sh\r\n"
                                  "max:x:4294967294:4294967294::/max:/bin/sh\n"
                                  "last:x:3001:3001::/home/last:/bin/sh"; /* no final newline */

static const char group_text[] = "root:x:0:root\n"
                                 "daemon:x:1:root,daemon\n"
                                 "bin:x:2:root,bin,daemon\n"
                                 "# comment:x:5:edge\n"
                                 "+:::edge\n"
                                 "+nisgroup:x:6:edge\n"
                                 "-nisgroup:x:7:edge\n"
                                 "audio:x:29:edge\n"
                                 "video:x:44:pi,edge,other\n"
                                 "staff:x:50:\n"
                                 "badgid:x:abc:edge\n"
                                 "neggid:x:-3:edge\n"
                                 "withspace:x:77: edge\n"
                                 "edgelike:x:78:edgeuser,xedge,edg\n"
                                 "fiveflds:x:79:edge:more\n"
                                 "emptymembers:x:80:,,edge,,\n"
                                 "threefields:x:81\n"
                                 "edge:x:1000:\n"
                                 "crlfgrp:x:90:edge\r\n"
                                 "users:x:100:other,edge\n"
                                 "dupgid:x:44:edge\n"
                                 "nogroup:x:65534:\n"
                                 "tail:x:91:edge"; /* no final newline */

/* edge's memberships, in file order (duplicate gid 44 collapses into video). */
#define EDGE_GROUPS 29, 44, 80, 90, 100, 91

static void busybox_root(struct root *r)
{
    root_make(r);
    put_text(r, "etc/passwd", passwd_text);
    put_text(r, "etc/group", group_text);
}

/* ---- expectations ---- */

static struct identity_request req_init(void)
{
    return (struct identity_request){.image_user = "", .run_as_username = ""};
}

static void check_groups(const struct identity *id, const gid_t *want, size_t n, int line)
{
    bool same = id->n_groups == n;
    for (size_t i = 0; same && i < n; i++)
        same = id->groups[i] == want[i];
    unit_checks++;
    if (!same) {
        char got[512] = "", exp[512] = "";
        size_t gl = 0, el = 0;
        for (size_t i = 0; i < id->n_groups && gl < sizeof(got) - 16; i++)
            gl += (size_t)snprintf(got + gl, sizeof(got) - gl, "%s%u", i ? "," : "", (unsigned)id->groups[i]);
        for (size_t i = 0; i < n && el < sizeof(exp) - 16; i++)
            el += (size_t)snprintf(exp + el, sizeof(exp) - el, "%s%u", i ? "," : "", (unsigned)want[i]);
        UNIT_FAIL("line %d: groups [%s], want [%s]", line, got, exp);
    }
}

/* Resolves expecting success and checks every field. */
static void expect_identity(int rootfd, const struct identity_request *req, uid_t uid, gid_t gid, const char *username,
                            const char *home, const gid_t *groups, size_t n_groups, int line)
{
    struct identity id;
    err_t err = ERR_INIT;
    int r = identity_resolve(rootfd, req, &id, &err);
    CHECK_MSG(r == 0, "line %d: identity_resolve failed: %d %s", line, r, err.msg ? err.msg : "");
    if (r == 0) {
        CHECK_MSG(err.msg == NULL, "line %d: error message left on success", line);
        CHECK_MSG(id.uid == uid, "line %d: uid %u, want %u", line, (unsigned)id.uid, (unsigned)uid);
        CHECK_MSG(id.gid == gid, "line %d: gid %u, want %u", line, (unsigned)id.gid, (unsigned)gid);
        CHECK_MSG(id.username && strcmp(id.username, username) == 0, "line %d: username \"%s\", want \"%s\"", line,
                  id.username ? id.username : "(null)", username);
        CHECK_MSG(id.home && strcmp(id.home, home) == 0, "line %d: home \"%s\", want \"%s\"", line,
                  id.home ? id.home : "(null)", home);
        check_groups(&id, groups, n_groups, line);
        identity_free(&id);
        CHECK_MSG(id.groups == NULL && id.username == NULL && id.home == NULL && id.n_groups == 0,
                  "line %d: identity_free left data", line);
        identity_free(&id); /* twice is harmless */
    }
    err_clear(&err);
}

#define GIDS(...) ((const gid_t[]){__VA_ARGS__}), (sizeof((const gid_t[]){__VA_ARGS__}) / sizeof(gid_t))
#define EXPECT(fd, req, uid, gid, name, home, ...)                                                                     \
    expect_identity((fd), (req), (uid), (gid), (name), (home), GIDS(__VA_ARGS__), __LINE__)

static void expect_error(int rootfd, const struct identity_request *req, enum err_code code, const char *needle,
                         int line)
{
    struct identity id;
    memset(&id, 0x5a, sizeof(id));
    err_t err = ERR_INIT;
    int r = identity_resolve(rootfd, req, &id, &err);
    CHECK_MSG(r < 0, "line %d: expected an error containing \"%s\", got uid %u gid %u", line, needle, (unsigned)id.uid,
              (unsigned)id.gid);
    if (r < 0) {
        CHECK_MSG(err.code == code, "line %d: code %s, want %s (%s)", line, err_code_name(err.code),
                  err_code_name(code), err.msg ? err.msg : "");
        CHECK_MSG(err.msg && strstr(err.msg, needle), "line %d: message \"%s\" lacks \"%s\"", line,
                  err.msg ? err.msg : "(null)", needle);
        CHECK_MSG(id.groups == NULL && id.username == NULL && id.home == NULL && id.n_groups == 0,
                  "line %d: output not left empty on error", line);
        identity_free(&id);
    } else {
        identity_free(&id);
    }
    err_clear(&err);
}
#define EXPECT_ERROR(fd, req, code, needle) expect_error((fd), (req), (code), (needle), __LINE__)

static struct identity_request image(const char *user)
{
    struct identity_request q = req_init();
    q.image_user = user;
    return q;
}

/* ---- tests ---- */

static void test_default_user(void)
{
    struct root r;
    busybox_root(&r);
    struct identity_request q = req_init();
    EXPECT(r.fd, &q, 0, 0, "root", "/root", 0, 1, 2);
    q.image_user = NULL;
    q.run_as_username = NULL;
    EXPECT(r.fd, &q, 0, 0, "root", "/root", 0, 1, 2);
    q.policy = SUPPLEMENTAL_STRICT;
    EXPECT(r.fd, &q, 0, 0, "root", "/root", 0);
    root_free(&r);
}

static void test_image_user(void)
{
    struct root r;
    busybox_root(&r);
    struct identity_request q;

    q = image("edge");
    EXPECT(r.fd, &q, 1000, 1000, "edge", "/home/edge", 1000, EDGE_GROUPS);
    q = image("1000");
    EXPECT(r.fd, &q, 1000, 1000, "edge", "/home/edge", 1000, EDGE_GROUPS);
    q = image("01000"); /* still the number 1000 */
    EXPECT(r.fd, &q, 1000, 1000, "edge", "/home/edge", 1000, EDGE_GROUPS);
    q = image("root");
    EXPECT(r.fd, &q, 0, 0, "root", "/root", 0, 1, 2);
    q = image("daemon");
    EXPECT(r.fd, &q, 1, 1, "daemon", "/usr/sbin", 1, 2);
    q = image("nobody");
    EXPECT(r.fd, &q, 65534, 65534, "nobody", "/home", 65534);

    /* The image's group part is the primary gid; memberships still merge. */
    q = image("edge:staff");
    EXPECT(r.fd, &q, 1000, 50, "edge", "/home/edge", 50, EDGE_GROUPS);
    q = image("edge:44");
    EXPECT(r.fd, &q, 1000, 44, "edge", "/home/edge", 44, 29, 80, 90, 100, 91);
    q = image("1000:50");
    EXPECT(r.fd, &q, 1000, 50, "edge", "/home/edge", 50, EDGE_GROUPS);
    q = image("1000:staff");
    EXPECT(r.fd, &q, 1000, 50, "edge", "/home/edge", 50, EDGE_GROUPS);
    q = image("root:video");
    EXPECT(r.fd, &q, 0, 44, "root", "/root", 44, 0, 1, 2);
    q = image("edge:7777"); /* a numeric gid need not exist */
    EXPECT(r.fd, &q, 1000, 7777, "edge", "/home/edge", 7777, EDGE_GROUPS);

    /* A numeric user the image does not know. */
    q = image("4242");
    EXPECT(r.fd, &q, 4242, 0, "", "/", 0);
    q = image("4242:4243");
    EXPECT(r.fd, &q, 4242, 4243, "", "/", 4243);
    q = image("4242:staff");
    EXPECT(r.fd, &q, 4242, 50, "", "/", 50);
    q = image("4294967294");
    EXPECT(r.fd, &q, 4294967294u, 4294967294u, "max", "/max", 4294967294u);
    q = image("0:0");
    EXPECT(r.fd, &q, 0, 0, "root", "/root", 0, 1, 2);

    /* Names the image does not have, and malformed specs. */
    q = image("ghost");
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "\"ghost\"");
    q = image("ghost:staff");
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "\"ghost\"");
    q = image("edge:nogrp");
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "\"nogrp\"");
    q = image("1000:nogrp");
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "\"nogrp\"");
    q = image("Edge"); /* names are case-sensitive */
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "\"Edge\"");
    q = image("edge ");
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "\"edge \"");
    q = image("a:b:c");
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "a:b:c");
    q = image(":50");
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "empty user");
    q = image("edge:");
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "empty group");
    q = image(":");
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "\":\"");
    q = image("4294967295");
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "out of range");
    q = image("99999999999");
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "out of range");
    q = image("edge:4294967295");
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "out of range");
    q = image("-1"); /* not a number: a name, and not there */
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "\"-1\"");
    root_free(&r);
}

static void test_parsing(void)
{
    struct root r;
    busybox_root(&r);
    struct identity_request q;

    q = image("dup"); /* the first entry wins */
    EXPECT(r.fd, &q, 2000, 2000, "dup", "/first", 2000);
    q = image("2001"); /* the second is still found by uid */
    EXPECT(r.fd, &q, 2001, 2001, "dup", "/second", 2001);
    q = image("crlf");
    EXPECT(r.fd, &q, 3000, 3000, "crlf", "/home/crlf", 3000);
    q = image("last");
    EXPECT(r.fd, &q, 3001, 3001, "last", "/home/last", 3001);
    q = image("nohome");
    EXPECT(r.fd, &q, 1001, 1001, "nohome", "/", 1001);
    q = image("fourfields");
    EXPECT(r.fd, &q, 1002, 1003, "fourfields", "/", 1003);
    q = image("samegid"); /* primary gid 1000 is group "edge"; samegid is in no list */
    EXPECT(r.fd, &q, 2002, 1000, "samegid", "/home/samegid", 1000);

    /* Skipped lines define nobody. */
    static const char *const skipped[] = {"nisuser", "+nisuser", "nisdrop", "-nisdrop", "bad",   "badgid",
                                          "neg",     "toobig",   "huge",    "short",    "extra", "# a comment line"};
    for (size_t i = 0; i < ARRAY_SIZE(skipped); i++) {
        q = image(skipped[i]);
        expect_error(r.fd, &q, ERR_INVALID_ARGUMENT, skipped[i], __LINE__);
    }
    q = image("4000");
    EXPECT(r.fd, &q, 4000, 0, "", "/", 0);
    q = image("1500");
    EXPECT(r.fd, &q, 1500, 0, "", "/", 0);
    q = image("1600");
    EXPECT(r.fd, &q, 1600, 0, "", "/", 0);
    q = image("1700"); /* the nameless line */
    EXPECT(r.fd, &q, 1700, 0, "", "/", 0);
    q = image("4100");
    EXPECT(r.fd, &q, 4100, 0, "", "/", 0);

    /* Groups from skipped lines cannot be named either. */
    static const char *const bad_groups[] = {"badgid", "neggid", "fiveflds", "nisgroup", "+nisgroup"};
    for (size_t i = 0; i < ARRAY_SIZE(bad_groups); i++) {
        char spec[64];
        snprintf(spec, sizeof(spec), "edge:%s", bad_groups[i]);
        q = image(spec);
        expect_error(r.fd, &q, ERR_INVALID_ARGUMENT, bad_groups[i], __LINE__);
    }
    q = image("edge:threefields"); /* three fields is a valid group line */
    EXPECT(r.fd, &q, 1000, 81, "edge", "/home/edge", 81, EDGE_GROUPS);
    q = image("edge:crlfgrp");
    EXPECT(r.fd, &q, 1000, 90, "edge", "/home/edge", 90, 29, 44, 80, 100, 91);
    root_free(&r);
}

static void test_long_lines(void)
{
    struct root r;
    root_make(&r);
    /* A line past the 64 KiB bound is skipped, and the line after it still
     * parses. */
    size_t pad = 70 << 10;
    size_t cap = 2 * pad + 4096;
    char *pw = malloc(cap), *gr = malloc(cap);
    size_t n = (size_t)snprintf(pw, cap, "root:x:0:0:root:/root:/bin/sh\nlonguser:x:5000:5000:");
    memset(pw + n, 'g', pad);
    n += pad;
    n += (size_t)snprintf(pw + n, cap - n, ":/home/long:/bin/sh\nafter:x:5001:5001::/after:/bin/sh\n");
    put_file(&r, "etc/passwd", pw, n);

    n = (size_t)snprintf(gr, cap, "biglist:x:999:");
    for (size_t i = 0; n < pad; i++)
        n += (size_t)snprintf(gr + n, cap - n, "member%zu,", i);
    n += (size_t)snprintf(gr + n, cap - n, "after\nsmall:x:998:after\n");
    put_file(&r, "etc/group", gr, n);
    free(pw);
    free(gr);

    struct identity_request q = image("longuser");
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "longuser");
    q = image("5000");
    EXPECT(r.fd, &q, 5000, 0, "", "/", 0);
    q = image("after");
    EXPECT(r.fd, &q, 5001, 5001, "after", "/after", 5001, 998);
    q = image("after:biglist");
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "biglist");
    root_free(&r);
}

static void test_run_as(void)
{
    struct root r;
    busybox_root(&r);
    struct identity_request q;

    /* run_as_user wins over the image user, its group part included. */
    q = image("root:staff");
    q.has_run_as_user = true;
    q.run_as_user = 1000;
    EXPECT(r.fd, &q, 1000, 1000, "edge", "/home/edge", 1000, EDGE_GROUPS);
    q = image("edge:staff");
    q.has_run_as_user = true;
    q.run_as_user = 0;
    EXPECT(r.fd, &q, 0, 0, "root", "/root", 0, 1, 2);
    q = image("ghost"); /* the image user is not even looked at */
    q.has_run_as_user = true;
    q.run_as_user = 1;
    EXPECT(r.fd, &q, 1, 1, "daemon", "/usr/sbin", 1, 2);
    q = req_init();
    q.has_run_as_user = true;
    q.run_as_user = 5555;
    EXPECT(r.fd, &q, 5555, 0, "", "/", 0);
    q.run_as_user = 4294967294;
    EXPECT(r.fd, &q, 4294967294u, 4294967294u, "max", "/max", 4294967294u);

    /* run_as_user wins over run_as_username. */
    q = req_init();
    q.has_run_as_user = true;
    q.run_as_user = 1000;
    q.run_as_username = "root";
    EXPECT(r.fd, &q, 1000, 1000, "edge", "/home/edge", 1000, EDGE_GROUPS);
    q.run_as_username = "ghost";
    EXPECT(r.fd, &q, 1000, 1000, "edge", "/home/edge", 1000, EDGE_GROUPS);

    /* run_as_username wins over the image user. */
    q = image("root:video");
    q.run_as_username = "edge";
    EXPECT(r.fd, &q, 1000, 1000, "edge", "/home/edge", 1000, EDGE_GROUPS);
    q = req_init();
    q.run_as_username = "nobody";
    EXPECT(r.fd, &q, 65534, 65534, "nobody", "/home", 65534);
    q = image("edge");
    q.run_as_username = "ghost";
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "\"ghost\"");
    q = req_init();
    q.run_as_username = "1000"; /* a name, never a number */
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "\"1000\"");

    /* run_as_group. */
    q = req_init();
    q.has_run_as_user = true;
    q.run_as_user = 1000;
    q.has_run_as_group = true;
    q.run_as_group = 50;
    EXPECT(r.fd, &q, 1000, 50, "edge", "/home/edge", 50, EDGE_GROUPS);
    q.run_as_group = 0;
    EXPECT(r.fd, &q, 1000, 0, "edge", "/home/edge", 0, EDGE_GROUPS);
    q = image("edge:staff"); /* wins over the image's group too */
    q.has_run_as_user = true;
    q.run_as_user = 1000;
    q.has_run_as_group = true;
    q.run_as_group = 6000;
    EXPECT(r.fd, &q, 1000, 6000, "edge", "/home/edge", 6000, EDGE_GROUPS);
    q = req_init();
    q.run_as_username = "edge";
    q.has_run_as_group = true;
    q.run_as_group = 44;
    EXPECT(r.fd, &q, 1000, 44, "edge", "/home/edge", 44, 29, 80, 90, 100, 91);
    q = req_init();
    q.has_run_as_user = true;
    q.run_as_user = 7000;
    q.has_run_as_group = true;
    q.run_as_group = 7001;
    EXPECT(r.fd, &q, 7000, 7001, "", "/", 7001);

    /* RunAsGroup without a CRI user fails, whatever the image says. */
    q = req_init();
    q.has_run_as_group = true;
    q.run_as_group = 50;
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "RunAsGroup is set without RunAsUser");
    q.image_user = "edge";
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "RunAsGroup is set without RunAsUser");
    q.image_user = "edge:staff";
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "RunAsGroup is set without RunAsUser");

    /* Ranges. */
    static const int64_t bad_ids[] = {-1, -4294967296LL, 4294967295LL, 4294967296LL, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < ARRAY_SIZE(bad_ids); i++) {
        q = req_init();
        q.has_run_as_user = true;
        q.run_as_user = bad_ids[i];
        expect_error(r.fd, &q, ERR_INVALID_ARGUMENT, "RunAsUser", __LINE__);
        q.run_as_user = 1000;
        q.has_run_as_group = true;
        q.run_as_group = bad_ids[i];
        expect_error(r.fd, &q, ERR_INVALID_ARGUMENT, "RunAsGroup", __LINE__);
        q.has_run_as_group = false;
        q.supplemental_groups = &bad_ids[i];
        q.n_supplemental_groups = 1;
        expect_error(r.fd, &q, ERR_INVALID_ARGUMENT, "supplemental group", __LINE__);
    }
    root_free(&r);
}

static void test_supplemental(void)
{
    struct root r;
    busybox_root(&r);
    struct identity_request q;
    const int64_t sup[] = {44, 7, 7, 1000, 8, 29, 0};

    q = req_init();
    q.has_run_as_user = true;
    q.run_as_user = 1000;
    q.supplemental_groups = sup;
    q.n_supplemental_groups = ARRAY_SIZE(sup);
    EXPECT(r.fd, &q, 1000, 1000, "edge", "/home/edge", 1000, EDGE_GROUPS, 7, 8, 0);
    q.policy = SUPPLEMENTAL_STRICT;
    EXPECT(r.fd, &q, 1000, 1000, "edge", "/home/edge", 1000, 44, 7, 8, 29, 0);
    q.n_supplemental_groups = 0;
    EXPECT(r.fd, &q, 1000, 1000, "edge", "/home/edge", 1000);

    /* Strict drops the image's groups for a user given by the image too. */
    q = image("edge:staff");
    q.policy = SUPPLEMENTAL_STRICT;
    EXPECT(r.fd, &q, 1000, 50, "edge", "/home/edge", 50);
    q.supplemental_groups = sup;
    q.n_supplemental_groups = 2;
    EXPECT(r.fd, &q, 1000, 50, "edge", "/home/edge", 50, 44, 7);

    /* A numeric user the image does not know has no image groups. */
    q = image("4242");
    q.supplemental_groups = sup;
    q.n_supplemental_groups = ARRAY_SIZE(sup);
    EXPECT(r.fd, &q, 4242, 0, "", "/", 0, 44, 7, 1000, 8, 29);

    q = req_init();
    q.policy = (enum supplemental_policy)7;
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "policy");
    root_free(&r);
}

static void test_group_limit(void)
{
    struct root r;
    busybox_root(&r);
    size_t n = 65537;
    int64_t *sup = malloc(n * sizeof(*sup));
    struct identity id;
    err_t err = ERR_INIT;

    /* 65536 distinct groups, the primary among them: exactly the limit. */
    for (size_t i = 0; i < n; i++)
        sup[i] = (int64_t)i;
    struct identity_request q = req_init();
    q.policy = SUPPLEMENTAL_STRICT;
    q.supplemental_groups = sup;
    q.n_supplemental_groups = 65536;
    int rc = identity_resolve(r.fd, &q, &id, &err);
    CHECK_OK(rc);
    if (rc == 0) {
        CHECK_EQ_INT(id.n_groups, 65536);
        CHECK_EQ_INT(id.groups[0], 0);
        CHECK_EQ_INT(id.groups[65535], 65535);
        identity_free(&id);
    }
    err_clear(&err);

    /* The primary outside them: one too many. */
    q.supplemental_groups = sup + 1;
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "65537 groups");

    /* With merge, the image's groups count too (root is in 0, 1, 2). */
    q.policy = SUPPLEMENTAL_MERGE;
    q.supplemental_groups = sup + 3;
    q.n_supplemental_groups = 65534;
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "65537 groups");
    q.n_supplemental_groups = 65533;
    rc = identity_resolve(r.fd, &q, &id, &err);
    CHECK_OK(rc);
    if (rc == 0) {
        CHECK_EQ_INT(id.n_groups, 65536);
        identity_free(&id);
    }
    err_clear(&err);

    /* Duplicates do not count. */
    for (size_t i = 0; i < 65536; i++)
        sup[i] = (int64_t)(i % 10);
    q.supplemental_groups = sup;
    q.n_supplemental_groups = 65536;
    EXPECT(r.fd, &q, 0, 0, "root", "/root", 0, 1, 2, 3, 4, 5, 6, 7, 8, 9);

    /* More entries than could ever fit. */
    q.n_supplemental_groups = 65537;
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "65537 supplemental groups");
    free(sup);
    root_free(&r);
}

static void test_missing_files(void)
{
    struct root r;
    struct identity_request q;

    /* No etc at all: numeric ids only. */
    root_make(&r);
    q = req_init();
    EXPECT(r.fd, &q, 0, 0, "", "/", 0);
    q = image("1000:1000");
    EXPECT(r.fd, &q, 1000, 1000, "", "/", 1000);
    q = image("edge");
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "no /etc/passwd");
    q = image("1000:staff");
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "no /etc/group");
    q = req_init();
    q.run_as_username = "edge";
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "\"edge\"");
    root_free(&r);

    /* etc is a file. */
    root_make(&r);
    put_text(&r, "etc", "root:x:0:0:root:/root:/bin/sh\n");
    q = image("1000");
    EXPECT(r.fd, &q, 1000, 0, "", "/", 0);
    root_free(&r);

    /* passwd without group: no image groups. */
    root_make(&r);
    put_text(&r, "etc/passwd", passwd_text);
    q = image("edge");
    EXPECT(r.fd, &q, 1000, 1000, "edge", "/home/edge", 1000);
    q = image("edge:staff");
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "no /etc/group");
    root_free(&r);

    /* group without passwd. */
    root_make(&r);
    put_text(&r, "etc/group", group_text);
    q = image("1000:staff");
    EXPECT(r.fd, &q, 1000, 50, "", "/", 50);
    root_free(&r);

    /* Empty files. */
    root_make(&r);
    put_text(&r, "etc/passwd", "");
    put_text(&r, "etc/group", "");
    q = req_init();
    EXPECT(r.fd, &q, 0, 0, "", "/", 0);
    q = image("edge");
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "not found in the image's /etc/passwd");
    root_free(&r);

    /* Not a root directory fd at all. */
    q = req_init();
    EXPECT_ERROR(-1, &q, ERR_INTERNAL, "/etc/passwd");
}

/* A file outside the root that a naive resolution of the image's symlinks
 * would read. */
static const char host_passwd[] = "hacker:x:0:0:hacker:/hacked:/bin/sh\n"
                                  "root:x:0:0:pwned:/pwned:/bin/sh\n"
                                  "edge:x:0:0::/pwned:/bin/sh\n";
static const char host_group[] = "hackers:x:0:edge,root\n";

static void check_host_reachable(const struct root *r, const char *rel)
{
    /* Makes sure the test means something: followed from the host, the
     * link does reach the host file. */
    char path[512], buf[16] = "";
    snprintf(path, sizeof(path), "%s/%s", r->dir, rel);
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "host-side open of %s failed", path);
    if (f) {
        CHECK_MSG(fread(buf, 1, 6, f) == 6 && memcmp(buf, "hacker", 6) == 0, "%s does not reach the host file", path);
        fclose(f);
    }
}

static void test_hostile_symlinks(void)
{
    struct root host, r;
    root_make(&host);
    put_text(&host, "passwd", host_passwd);
    put_text(&host, "group", host_group);
    char target[256], gtarget[256];
    struct identity_request q;

    /* Absolute symlinks resolve inside the root, where nothing is. */
    root_make(&r);
    make_dir(&r, "etc");
    snprintf(target, sizeof(target), "%s/passwd", host.dir);
    snprintf(gtarget, sizeof(gtarget), "%s/group", host.dir);
    put_symlink(&r, "etc/passwd", target);
    put_symlink(&r, "etc/group", gtarget);
    check_host_reachable(&r, "etc/passwd");
    q = req_init();
    EXPECT(r.fd, &q, 0, 0, "", "/", 0);
    q = image("hacker");
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "no /etc/passwd");
    q = image("edge");
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "no /etc/passwd");
    q = image("1000:hackers");
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "no /etc/group");
    root_free(&r);

    /* Relative symlinks climbing out with ../ stop at the root. */
    root_make(&r);
    make_dir(&r, "etc");
    snprintf(target, sizeof(target), "../../../../../../../../..%s/passwd", host.dir);
    snprintf(gtarget, sizeof(gtarget), "../../../../../../../../..%s/group", host.dir);
    put_symlink(&r, "etc/passwd", target);
    put_symlink(&r, "etc/group", gtarget);
    check_host_reachable(&r, "etc/passwd");
    q = image("hacker");
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "no /etc/passwd");
    q = image("0");
    EXPECT(r.fd, &q, 0, 0, "", "/", 0);
    root_free(&r);

    /* A symlinked etc directory pointing at the host's. */
    root_make(&r);
    put_symlink(&r, "etc", host.dir);
    q = image("hacker");
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "no /etc/passwd");
    root_free(&r);

    /* The same links are followed when their target is inside the root:
     * the root is a jail, not a ban on symlinks. */
    root_make(&r);
    put_text(&r, "srv/passwd.real", passwd_text);
    put_text(&r, "srv/group.real", group_text);
    make_dir(&r, "etc");
    put_symlink(&r, "etc/passwd", "/srv/passwd.real");
    put_symlink(&r, "etc/group", "../../../../srv/group.real");
    q = image("edge:staff");
    EXPECT(r.fd, &q, 1000, 50, "edge", "/home/edge", 50, EDGE_GROUPS);
    root_free(&r);

    /* Loops fail instead of spinning. */
    root_make(&r);
    make_dir(&r, "etc");
    put_symlink(&r, "etc/passwd", "../../../etc/passwd");
    q = image("1000");
    EXPECT_ERROR(r.fd, &q, ERR_INVALID_ARGUMENT, "/etc/passwd");
    root_free(&r);

    /* A /proc path in a link is the root's own /proc, never ours. */
    root_make(&r);
    make_dir(&r, "etc");
    put_symlink(&r, "etc/passwd", "/proc/self/root/etc/passwd");
    make_dir(&r, "proc");
    q = image("1000");
    EXPECT(r.fd, &q, 1000, 0, "", "/", 0); /* the root's own (empty) /proc */
    root_free(&r);

    root_free(&host);
}

static void alarm_handler(int sig)
{
    (void)sig;
    static const char msg[] = "test_identity: identity_resolve blocked on a FIFO\n";
    if (write(2, msg, sizeof(msg) - 1) < 0) {
    }
    _exit(1);
}

static void test_hostile_files(void)
{
    struct root r;
    struct identity_request q;

    /* passwd is a directory. */
    root_make(&r);
    make_dir(&r, "etc/passwd");
    q = image("1000");
    EXPECT_ERROR(r.fd, &q, ERR_FAILED_PRECONDITION, "not a regular file");
    root_free(&r);

    /* passwd is a FIFO nobody writes to: must not block. */
    root_make(&r);
    make_dir(&r, "etc");
    char path[512];
    snprintf(path, sizeof(path), "%s/etc/passwd", r.dir);
    CHECK_OK(mkfifo(path, 0644) < 0 ? -errno : 0);
    signal(SIGALRM, alarm_handler);
    alarm(10);
    q = image("1000");
    EXPECT_ERROR(r.fd, &q, ERR_FAILED_PRECONDITION, "not a regular file");
    alarm(0);
    root_free(&r);

    /* group is a FIFO: only fails when the group file is needed. */
    root_make(&r);
    put_text(&r, "etc/passwd", passwd_text);
    snprintf(path, sizeof(path), "%s/etc/group", r.dir);
    CHECK_OK(mkfifo(path, 0644) < 0 ? -errno : 0);
    alarm(10);
    q = image("edge");
    EXPECT_ERROR(r.fd, &q, ERR_FAILED_PRECONDITION, "/etc/group");
    q.policy = SUPPLEMENTAL_STRICT;
    EXPECT(r.fd, &q, 1000, 1000, "edge", "/home/edge", 1000);
    alarm(0);
    root_free(&r);

    /* 2 MiB passwd. */
    root_make(&r);
    size_t big = 2 << 20;
    char *data = malloc(big);
    memset(data, '#', big);
    for (size_t i = 79; i < big; i += 80)
        data[i] = '\n';
    put_file(&r, "etc/passwd", data, big);
    q = image("1000");
    EXPECT_ERROR(r.fd, &q, ERR_FAILED_PRECONDITION, "larger than");
    root_free(&r);

    /* Exactly 1 MiB is fine, and a user on its last line is found; one byte
     * more is not. */
    root_make(&r);
    size_t limit = 1 << 20;
    static const char tail[] = "edge:x:1000:1000::/home/edge:/bin/sh\n";
    memcpy(data + limit - strlen(tail), tail, strlen(tail));
    data[limit - strlen(tail) - 1] = '\n';
    put_file(&r, "etc/passwd", data, limit);
    q = image("edge");
    q.policy = SUPPLEMENTAL_STRICT;
    EXPECT(r.fd, &q, 1000, 1000, "edge", "/home/edge", 1000);
    put_file(&r, "etc/passwd", data, limit + 1);
    EXPECT_ERROR(r.fd, &q, ERR_FAILED_PRECONDITION, "larger than");
    root_free(&r);
    free(data);

    /* NUL bytes anywhere reject the whole file. */
    root_make(&r);
    static const char nul_passwd[] = "root:x:0:0:root:/root:/bin/sh\nedge:x:1000:1000::/home/edge:/bin/sh\n"
                                     "ev\0il:x:0:0::/:/bin/sh\n";
    put_file(&r, "etc/passwd", nul_passwd, sizeof(nul_passwd) - 1);
    q = image("edge");
    EXPECT_ERROR(r.fd, &q, ERR_FAILED_PRECONDITION, "NUL");
    q = image("1000");
    EXPECT_ERROR(r.fd, &q, ERR_FAILED_PRECONDITION, "NUL");
    root_free(&r);

    root_make(&r);
    static const char nul_group[] = "staff:x:50:\0edge\n";
    put_text(&r, "etc/passwd", passwd_text);
    put_file(&r, "etc/group", nul_group, sizeof(nul_group) - 1);
    q = image("edge:staff");
    EXPECT_ERROR(r.fd, &q, ERR_FAILED_PRECONDITION, "/etc/group");
    q = image("edge:50");
    q.policy = SUPPLEMENTAL_STRICT; /* group not read: fine */
    EXPECT(r.fd, &q, 1000, 50, "edge", "/home/edge", 50);
    root_free(&r);
}

int main(void)
{
    RUN(test_default_user);
    RUN(test_image_user);
    RUN(test_parsing);
    RUN(test_long_lines);
    RUN(test_run_as);
    RUN(test_supplemental);
    RUN(test_group_limit);
    RUN(test_missing_files);
    RUN(test_hostile_symlinks);
    RUN(test_hostile_files);
    return unit_summary();
}
