/* container_spec: how the image config and the CRI ContainerConfig become a
 * process (argv, env, cwd, PATH candidates) and an ordered mount plan, with
 * containerd's CRI plugin as the reference for every rule.
 *
 * Tests named fixed_* are the differences from containerd these tests found
 * (each was a failing test first); they guard against the old behaviour. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "runtime/container_spec.h"
#include "util/cleanup.h"
#include "util/error.h"
#include "util/fs.h"
#include "unit.h"

/* ---- helpers: string vectors ---- */

/* A static char *[] for a message or image field (static: it outlives the
 * do-while block a compound literal would be scoped to). */
#define SETV(field, nfield, ...)                                                                                       \
    do {                                                                                                               \
        static char *v_[] = {__VA_ARGS__};                                                                             \
        (field) = v_;                                                                                                  \
        (nfield) = ARRAY_SIZE(v_);                                                                                     \
    } while (0)

/* `got` (n entries, NULL-terminated) equals the NULL-terminated `want`;
 * otherwise `why` says where they differ. */
static bool strv_equal(char *const *got, size_t n, const char *const *want, char *why, size_t len)
{
    size_t n_want = 0;
    while (want[n_want])
        n_want++;
    if (!got) {
        snprintf(why, len, "got NULL, want %zu entries", n_want);
        return false;
    }
    if (got[n]) {
        snprintf(why, len, "entry %zu (the count) is \"%s\", not the NULL terminator", n, got[n]);
        return false;
    }
    for (size_t i = 0; i < n || i < n_want; i++) {
        const char *g = i < n ? got[i] : NULL, *w = i < n_want ? want[i] : NULL;
        if (!g || !w || strcmp(g, w) != 0) {
            snprintf(why, len, "entry %zu: got \"%s\", want \"%s\" (%zu vs %zu entries)", i, g ? g : "(none)",
                     w ? w : "(none)", n, n_want);
            return false;
        }
    }
    return true;
}

#define CHECK_STRV(got, n, ...)                                                                                        \
    do {                                                                                                               \
        char why_[512];                                                                                                \
        CHECK_MSG(strv_equal((got), (n), (const char *const[]){__VA_ARGS__, NULL}, why_, sizeof(why_)), "%s: %s",      \
                  #got, why_);                                                                                         \
    } while (0)

/* The value of KEY in a "K=V" list, or NULL. */
static const char *env_val(char *const *env, const char *key)
{
    size_t k = strlen(key);
    for (size_t i = 0; env && env[i]; i++)
        if (strncmp(env[i], key, k) == 0 && env[i][k] == '=')
            return env[i] + k + 1;
    return NULL;
}

/* Entries whose key (text before '=', or all of it) is KEY. */
static int env_count(char *const *env, const char *key)
{
    size_t k = strlen(key);
    int n = 0;
    for (size_t i = 0; env && env[i]; i++)
        if (strncmp(env[i], key, k) == 0 && (env[i][k] == '=' || env[i][k] == '\0'))
            n++;
    return n;
}

static int env_pos(char *const *env, const char *key)
{
    size_t k = strlen(key);
    for (size_t i = 0; env && env[i]; i++)
        if (strncmp(env[i], key, k) == 0 && env[i][k] == '=')
            return (int)i;
    return -1;
}

static Runtime__V1__KeyValue kv(const char *key, const char *value)
{
    Runtime__V1__KeyValue e = RUNTIME__V1__KEY_VALUE__INIT;
    e.key = (char *)key;
    e.value.data = (uint8_t *)value;
    e.value.len = value ? strlen(value) : 0;
    return e;
}

static bool spec_is_zero(const struct process_spec *p)
{
    return !p->argv && !p->argc && !p->env && !p->n_env && !p->cwd && !p->exec_paths;
}

/* The hostname and home every process-spec test uses unless it is about them. */
static int make_spec(const struct image_config *img, const Runtime__V1__ContainerConfig *cfg, struct process_spec *p,
                     err_t *err)
{
    return container_process_spec(img, cfg, "web-0", "/root", p, err);
}

/* ---- argv: image Entrypoint/Cmd against CRI command/args ---- */

static void image_ep_cmd(struct image_config *img)
{
    memset(img, 0, sizeof(*img));
    SETV(img->entrypoint, img->n_entrypoint, "/ep", "--ep-flag");
    SETV(img->cmd, img->n_cmd, "cmd1", "cmd2");
    img->entrypoint_set = img->cmd_set = true;
}

static void test_argv_image_only(void)
{
    struct image_config img;
    image_ep_cmd(&img);
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    struct process_spec p;
    err_t err = ERR_INIT;
    CHECK_OK(make_spec(&img, &cfg, &p, &err));
    CHECK_STRV(p.argv, p.argc, "/ep", "--ep-flag", "cmd1", "cmd2");
    process_spec_free(&p);
    CHECK(spec_is_zero(&p));

    /* Only a Cmd: it is the whole command line. */
    img.entrypoint = NULL, img.n_entrypoint = 0, img.entrypoint_set = false;
    CHECK_OK(make_spec(&img, &cfg, &p, &err));
    CHECK_STRV(p.argv, p.argc, "cmd1", "cmd2");
    process_spec_free(&p);

    /* Only an Entrypoint. */
    image_ep_cmd(&img);
    img.cmd = NULL, img.n_cmd = 0;
    CHECK_OK(make_spec(&img, &cfg, &p, &err));
    CHECK_STRV(p.argv, p.argc, "/ep", "--ep-flag");
    process_spec_free(&p);
    err_clear(&err);
}

static void test_argv_args_replace_cmd(void)
{
    struct image_config img;
    image_ep_cmd(&img);
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    SETV(cfg.args, cfg.n_args, "arg1", "arg2");
    struct process_spec p;
    err_t err = ERR_INIT;
    CHECK_OK(make_spec(&img, &cfg, &p, &err));
    CHECK_STRV(p.argv, p.argc, "/ep", "--ep-flag", "arg1", "arg2");
    process_spec_free(&p);

    /* No Entrypoint: args alone are the command line, the image's Cmd is gone. */
    img.entrypoint = NULL, img.n_entrypoint = 0;
    CHECK_OK(make_spec(&img, &cfg, &p, &err));
    CHECK_STRV(p.argv, p.argc, "arg1", "arg2");
    CHECK_STRV(p.exec_paths, 6, "/usr/local/sbin/arg1", "/usr/local/bin/arg1", "/usr/sbin/arg1", "/usr/bin/arg1",
               "/sbin/arg1", "/bin/arg1");
    process_spec_free(&p);
    err_clear(&err);
}

static void test_argv_command_replaces_entrypoint_and_cmd(void)
{
    struct image_config img;
    image_ep_cmd(&img);
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    SETV(cfg.command, cfg.n_command, "/bin/app", "-v");
    struct process_spec p;
    err_t err = ERR_INIT;
    CHECK_OK(make_spec(&img, &cfg, &p, &err));
    CHECK_STRV(p.argv, p.argc, "/bin/app", "-v");
    CHECK_STRV(p.exec_paths, 1, "/bin/app");
    process_spec_free(&p);
    err_clear(&err);
}

static void test_argv_command_and_args(void)
{
    struct image_config img;
    image_ep_cmd(&img);
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    SETV(cfg.command, cfg.n_command, "sh", "-c");
    SETV(cfg.args, cfg.n_args, "echo hi", "");
    struct process_spec p;
    err_t err = ERR_INIT;
    CHECK_OK(make_spec(&img, &cfg, &p, &err));
    /* An empty argument after argv[0] is kept as is. */
    CHECK_STRV(p.argv, p.argc, "sh", "-c", "echo hi", "");
    process_spec_free(&p);

    /* No image config at all (img NULL): the request alone. */
    CHECK_OK(make_spec(NULL, &cfg, &p, &err));
    CHECK_STRV(p.argv, p.argc, "sh", "-c", "echo hi", "");
    CHECK_STREQ(p.cwd, "/");
    process_spec_free(&p);
    err_clear(&err);
}

static void test_argv_errors(void)
{
    Runtime__V1__ContainerMetadata md = RUNTIME__V1__CONTAINER_METADATA__INIT;
    md.name = "web";
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    cfg.metadata = &md;
    struct image_config img = {0};
    struct process_spec p;
    err_t err = ERR_INIT;

    /* Neither the image nor the request gives a command. */
    CHECK_EQ_INT(make_spec(&img, &cfg, &p, &err), -EINVAL);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(err.msg, "container web");
    CHECK_CONTAINS(err.msg, "no command");
    CHECK(spec_is_zero(&p));
    err_clear(&err);
    CHECK_EQ_INT(make_spec(NULL, &cfg, &p, &err), -EINVAL);
    err_clear(&err);

    /* An explicitly empty Entrypoint and Cmd ([]) are no command either. */
    img.entrypoint_set = img.cmd_set = true;
    CHECK_EQ_INT(make_spec(&img, &cfg, &p, &err), -EINVAL);
    err_clear(&err);

    /* argv[0] empty: from the request... */
    SETV(cfg.command, cfg.n_command, "", "x");
    CHECK_EQ_INT(make_spec(&img, &cfg, &p, &err), -EINVAL);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    CHECK(spec_is_zero(&p));
    err_clear(&err);
    cfg.command = NULL, cfg.n_command = 0;

    /* ...or from args when the image has no Entrypoint. */
    SETV(img.cmd, img.n_cmd, "ok");
    SETV(cfg.args, cfg.n_args, "");
    CHECK_EQ_INT(make_spec(&img, &cfg, &p, &err), -EINVAL);
    err_clear(&err);

    /* No metadata: the message still forms (with an empty name). */
    cfg.metadata = NULL;
    CHECK_EQ_INT(make_spec(&img, &cfg, &p, &err), -EINVAL);
    CHECK_CONTAINS(err.msg, "no command");
    err_clear(&err);
}

/* ---- environment ---- */

static void test_env_merge_order(void)
{
    struct image_config img;
    image_ep_cmd(&img);
    img.entrypoint = NULL, img.n_entrypoint = 0;
    SETV(img.env, img.n_env, "PATH=/img/bin", "A=1", "B=2", "C=3");
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    Runtime__V1__KeyValue e1 = kv("B", "20"), e2 = kv("D", "4"), e3 = kv("A", "10");
    Runtime__V1__KeyValue *envs[] = {&e1, &e2, &e3};
    cfg.envs = envs, cfg.n_envs = ARRAY_SIZE(envs);
    struct process_spec p;
    err_t err = ERR_INIT;
    CHECK_OK(make_spec(&img, &cfg, &p, &err));
    /* The image's order, request values in place, new keys after; then the
     * runtime's own HOSTNAME and HOME. */
    CHECK_STRV(p.env, p.n_env, "PATH=/img/bin", "A=10", "B=20", "C=3", "D=4", "HOSTNAME=web-0", "HOME=/root");
    /* PATH lookup uses the merged PATH. */
    CHECK_STRV(p.exec_paths, 1, "/img/bin/cmd1");
    process_spec_free(&p);
    err_clear(&err);
}

static void test_env_path_default(void)
{
    struct image_config img;
    image_ep_cmd(&img);
    SETV(img.env, img.n_env, "LANG=C.UTF-8");
    img.entrypoint = NULL, img.n_entrypoint = 0;
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    struct process_spec p;
    err_t err = ERR_INIT;
    CHECK_OK(make_spec(&img, &cfg, &p, &err));
    CHECK_STREQ(env_val(p.env, "PATH"), DEFAULT_PATH_ENV + 5);
    CHECK_EQ_INT(env_count(p.env, "PATH"), 1);
    CHECK_EQ_INT(env_pos(p.env, "LANG"), 0);
    CHECK_STRV(p.exec_paths, 6, "/usr/local/sbin/cmd1", "/usr/local/bin/cmd1", "/usr/sbin/cmd1", "/usr/bin/cmd1",
               "/sbin/cmd1", "/bin/cmd1");
    process_spec_free(&p);

    /* The request's PATH wins over the image's, and no default is added. */
    SETV(img.env, img.n_env, "PATH=/img");
    Runtime__V1__KeyValue e = kv("PATH", "/req:/req2");
    Runtime__V1__KeyValue *envs[] = {&e};
    cfg.envs = envs, cfg.n_envs = 1;
    CHECK_OK(make_spec(&img, &cfg, &p, &err));
    CHECK_STREQ(env_val(p.env, "PATH"), "/req:/req2");
    CHECK_EQ_INT(env_count(p.env, "PATH"), 1);
    CHECK_STRV(p.exec_paths, 2, "/req/cmd1", "/req2/cmd1");
    process_spec_free(&p);

    /* A key that only starts with PATH is not PATH. */
    SETV(img.env, img.n_env, "PATHEXT=/x", "MYPATH=/y");
    cfg.n_envs = 0;
    CHECK_OK(make_spec(&img, &cfg, &p, &err));
    CHECK_STREQ(env_val(p.env, "PATH"), DEFAULT_PATH_ENV + 5);
    CHECK_STREQ(env_val(p.env, "PATHEXT"), "/x");
    process_spec_free(&p);
    err_clear(&err);
}

static void test_env_hostname_term_home(void)
{
    struct image_config img;
    image_ep_cmd(&img);
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    struct process_spec p;
    err_t err = ERR_INIT;

    /* No TTY: no TERM. */
    CHECK_OK(container_process_spec(&img, &cfg, "pod-a", "/home/app", &p, &err));
    CHECK_STREQ(env_val(p.env, "HOSTNAME"), "pod-a");
    CHECK_STREQ(env_val(p.env, "HOME"), "/home/app");
    CHECK(env_val(p.env, "TERM") == NULL);
    process_spec_free(&p);

    /* TTY: TERM=xterm; no hostname: no HOSTNAME; no home: HOME=/. */
    cfg.tty = true;
    CHECK_OK(container_process_spec(&img, &cfg, NULL, NULL, &p, &err));
    CHECK_STREQ(env_val(p.env, "TERM"), "xterm");
    CHECK_EQ_INT(env_count(p.env, "HOSTNAME"), 0);
    CHECK_STREQ(env_val(p.env, "HOME"), "/");
    process_spec_free(&p);
    CHECK_OK(container_process_spec(&img, &cfg, "", "", &p, &err));
    CHECK_EQ_INT(env_count(p.env, "HOSTNAME"), 0);
    CHECK_STREQ(env_val(p.env, "HOME"), "/");
    process_spec_free(&p);

    /* The image's values win over the runtime's defaults... */
    SETV(img.env, img.n_env, "HOSTNAME=img-host", "TERM=vt100", "HOME=/img-home");
    CHECK_OK(container_process_spec(&img, &cfg, "pod-a", "/home/app", &p, &err));
    CHECK_STRV(p.env, p.n_env, "HOSTNAME=img-host", "TERM=vt100", "HOME=/img-home", DEFAULT_PATH_ENV);
    process_spec_free(&p);

    /* ...and the request's win over both. */
    Runtime__V1__KeyValue e1 = kv("HOME", "/req-home"), e2 = kv("TERM", "dumb"), e3 = kv("HOSTNAME", "req");
    Runtime__V1__KeyValue *envs[] = {&e1, &e2, &e3};
    cfg.envs = envs, cfg.n_envs = ARRAY_SIZE(envs);
    CHECK_OK(container_process_spec(&img, &cfg, "pod-a", "/home/app", &p, &err));
    CHECK_STRV(p.env, p.n_env, "HOSTNAME=req", "TERM=dumb", "HOME=/req-home", DEFAULT_PATH_ENV);
    process_spec_free(&p);
    err_clear(&err);
}

static void test_env_values(void)
{
    struct image_config img;
    image_ep_cmd(&img);
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    /* An empty value with a non-NULL pointer (the {0, NULL} form kubelet's
     * empty values decode to is tested in fixed_empty_env_value_null_data). */
    Runtime__V1__KeyValue empty = kv("EMPTY", "");
    Runtime__V1__KeyValue eq = kv("EQ", "a=b=c"), sp = kv("SP", " spaced value\n"), dup1 = kv("DUP", "first"),
                          dup2 = kv("DUP", "second");
    Runtime__V1__KeyValue *envs[] = {&empty, &eq, &sp, &dup1, &dup2};
    cfg.envs = envs, cfg.n_envs = ARRAY_SIZE(envs);
    struct process_spec p;
    err_t err = ERR_INIT;
    CHECK_OK(make_spec(&img, &cfg, &p, &err));
    CHECK_STREQ(env_val(p.env, "EMPTY"), "");
    CHECK_STREQ(env_val(p.env, "EQ"), "a=b=c");
    CHECK_STREQ(env_val(p.env, "SP"), " spaced value\n");
    /* The same key twice: one entry, the last value, the first position. */
    CHECK_EQ_INT(env_count(p.env, "DUP"), 1);
    CHECK_STREQ(env_val(p.env, "DUP"), "second");
    CHECK_EQ_INT(env_pos(p.env, "DUP"), 3);
    process_spec_free(&p);

    /* bytes: a value is its length, not up to a NUL. */
    static const uint8_t raw[] = {'x', 'y', 'z'};
    Runtime__V1__KeyValue nonterm = RUNTIME__V1__KEY_VALUE__INIT;
    nonterm.key = "RAW";
    nonterm.value.data = (uint8_t *)raw;
    nonterm.value.len = 2;
    Runtime__V1__KeyValue *envs2[] = {&nonterm};
    cfg.envs = envs2, cfg.n_envs = 1;
    CHECK_OK(make_spec(&img, &cfg, &p, &err));
    CHECK_STREQ(env_val(p.env, "RAW"), "xy");
    process_spec_free(&p);
    err_clear(&err);
}

static void test_env_errors(void)
{
    struct image_config img;
    image_ep_cmd(&img);
    Runtime__V1__ContainerMetadata md = RUNTIME__V1__CONTAINER_METADATA__INIT;
    md.name = "c1";
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    cfg.metadata = &md;
    struct process_spec p;
    err_t err = ERR_INIT;
    Runtime__V1__KeyValue ok = kv("OK", "1"), bad;
    Runtime__V1__KeyValue *envs[] = {&ok, &bad};
    cfg.envs = envs, cfg.n_envs = 2;

    const char *bad_keys[] = {"", "A=B", "="};
    for (size_t i = 0; i < ARRAY_SIZE(bad_keys); i++) {
        bad = kv(bad_keys[i], "v");
        CHECK_MSG(make_spec(&img, &cfg, &p, &err) == -EINVAL, "key \"%s\" accepted", bad_keys[i]);
        CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
        CHECK_CONTAINS(err.msg, "container c1");
        CHECK_CONTAINS(err.msg, "invalid environment variable name");
        CHECK(spec_is_zero(&p));
        err_clear(&err);
    }
    /* A NULL key (never from the decoder, but not a crash). */
    bad = kv("X", "v");
    bad.key = NULL;
    CHECK_EQ_INT(make_spec(&img, &cfg, &p, &err), -EINVAL);
    err_clear(&err);

    /* A NUL inside a value cannot go into an environment string. */
    static const uint8_t nul[] = {'a', 0, 'b'};
    bad = kv("NUL", NULL);
    bad.value.data = (uint8_t *)nul;
    bad.value.len = sizeof(nul);
    CHECK_EQ_INT(make_spec(&img, &cfg, &p, &err), -EINVAL);
    CHECK_CONTAINS(err.msg, "environment variable NUL contains NUL");
    CHECK(spec_is_zero(&p));
    err_clear(&err);
}

/* ---- working directory ---- */

static void test_working_dir(void)
{
    struct image_config img;
    image_ep_cmd(&img);
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    struct process_spec p;
    err_t err = ERR_INIT;

    CHECK_OK(make_spec(&img, &cfg, &p, &err));
    CHECK_STREQ(p.cwd, "/");
    process_spec_free(&p);

    img.working_dir = "/img/wd";
    CHECK_OK(make_spec(&img, &cfg, &p, &err));
    CHECK_STREQ(p.cwd, "/img/wd");
    process_spec_free(&p);

    /* The request's, when not empty, wins. */
    cfg.working_dir = "/req/wd";
    CHECK_OK(make_spec(&img, &cfg, &p, &err));
    CHECK_STREQ(p.cwd, "/req/wd");
    process_spec_free(&p);
    cfg.working_dir = "";
    CHECK_OK(make_spec(&img, &cfg, &p, &err));
    CHECK_STREQ(p.cwd, "/img/wd");
    process_spec_free(&p);
    cfg.working_dir = NULL;
    CHECK_OK(make_spec(&img, &cfg, &p, &err));
    CHECK_STREQ(p.cwd, "/img/wd");
    process_spec_free(&p);

    /* A relative one (from either side) is refused, as runc refuses it. */
    cfg.working_dir = "app";
    CHECK_EQ_INT(make_spec(&img, &cfg, &p, &err), -EINVAL);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(err.msg, "\"app\" is not absolute");
    CHECK(spec_is_zero(&p));
    err_clear(&err);
    cfg.working_dir = "";
    img.working_dir = "rel/wd";
    CHECK_EQ_INT(make_spec(&img, &cfg, &p, &err), -EINVAL);
    CHECK_CONTAINS(err.msg, "rel/wd");
    err_clear(&err);
}

/* ---- PATH candidates ---- */

static size_t strv_len(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

static void free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static void test_exec_candidates(void)
{
    char **c;
    /* A '/' anywhere: used as is (relative ones against the cwd). */
    c = exec_candidates("/bin/sh", NULL);
    CHECK_STRV(c, 1, "/bin/sh");
    free_strv(c);
    c = exec_candidates("./run", (char *[]){"PATH=/x", NULL});
    CHECK_STRV(c, 1, "./run");
    free_strv(c);

    /* No environment, or no PATH in it: the default PATH. */
    c = exec_candidates("sh", NULL);
    CHECK_STRV(c, 6, "/usr/local/sbin/sh", "/usr/local/bin/sh", "/usr/sbin/sh", "/usr/bin/sh", "/sbin/sh", "/bin/sh");
    free_strv(c);

    /* Empty entries mean the working directory, in their place. */
    c = exec_candidates("sh", (char *[]){"A=1", "PATH=/a::/b:", NULL});
    CHECK_STRV(c, 4, "/a/sh", "./sh", "/b/sh", "./sh");
    free_strv(c);

    /* PATH set but empty: only the working directory. */
    c = exec_candidates("sh", (char *[]){"PATH=", NULL});
    CHECK_STRV(c, 1, "./sh");
    free_strv(c);

    /* "PATH" with no '=' and "PATHX=" are not a PATH. */
    c = exec_candidates("sh", (char *[]){"PATH", "PATHX=/nope", NULL});
    CHECK_EQ_INT(strv_len(c), 6);
    CHECK_STREQ(c ? c[0] : NULL, "/usr/local/sbin/sh");
    free_strv(c);

    /* A hostile PATH: many entries, long ones. */
    size_t n = 5000, len = n * 3 + 5000 + 6;
    char *path = malloc(len);
    CHECK(path != NULL);
    if (path) {
        char *w = path + sprintf(path, "PATH=");
        for (size_t i = 0; i < n; i++)
            w += sprintf(w, "/d:");
        memset(w, 'x', 4999);
        w[-1] = ':', w[0] = '/', w[4999] = '\0';
        c = exec_candidates("prog", (char *[]){path, NULL});
        CHECK_EQ_INT(strv_len(c), n + 1);
        CHECK_STREQ(c ? c[0] : NULL, "/d/prog");
        CHECK(c && strlen(c[n]) == 4999 + strlen("/prog"));
        free_strv(c);
        free(path);
    }
}

/* ---- ExecSync's spec ---- */

static void test_exec_spec(void)
{
    struct image_config img;
    image_ep_cmd(&img);
    SETV(img.env, img.n_env, "PATH=/opt/bin:/bin", "APP=1");
    img.working_dir = "/srv";
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    struct process_spec ctr, x;
    err_t err = ERR_INIT;
    CHECK_OK(make_spec(&img, &cfg, &ctr, &err));

    char *cmd[] = {"cat", "/etc/hostname", NULL};
    CHECK_OK(container_exec_spec(&ctr, cmd, 2, &x, &err));
    CHECK_STRV(x.argv, x.argc, "cat", "/etc/hostname");
    CHECK_STRV(x.env, x.n_env, "PATH=/opt/bin:/bin", "APP=1", "HOSTNAME=web-0", "HOME=/root");
    CHECK_STREQ(x.cwd, "/srv");
    CHECK_STRV(x.exec_paths, 2, "/opt/bin/cat", "/bin/cat");
    /* Deep copies: the exec spec outlives the container's. */
    CHECK(x.env && ctr.env && x.env[0] != ctr.env[0]);
    CHECK(x.cwd != ctr.cwd);
    process_spec_free(&ctr);
    CHECK_STREQ(x.env ? x.env[1] : NULL, "APP=1");
    CHECK_STREQ(x.cwd, "/srv");
    process_spec_free(&x);

    /* Only n_cmd entries are taken. */
    CHECK_OK(make_spec(&img, &cfg, &ctr, &err));
    CHECK_OK(container_exec_spec(&ctr, cmd, 1, &x, &err));
    CHECK_STRV(x.argv, x.argc, "cat");
    process_spec_free(&x);

    /* An absolute argv[0] is not looked up. */
    char *abs_cmd[] = {"/usr/bin/env"};
    CHECK_OK(container_exec_spec(&ctr, abs_cmd, 1, &x, &err));
    CHECK_STRV(x.exec_paths, 1, "/usr/bin/env");
    process_spec_free(&x);

    /* Nothing to run. */
    CHECK_EQ_INT(container_exec_spec(&ctr, cmd, 0, &x, &err), -EINVAL);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    CHECK(spec_is_zero(&x));
    err_clear(&err);
    char *empty[] = {"", "x"};
    CHECK_EQ_INT(container_exec_spec(&ctr, empty, 2, &x, &err), -EINVAL);
    CHECK(spec_is_zero(&x));
    err_clear(&err);
    char *null0[] = {NULL};
    CHECK_EQ_INT(container_exec_spec(&ctr, null0, 1, &x, &err), -EINVAL);
    err_clear(&err);
    process_spec_free(&ctr);

    /* A container spec without cwd: "/". */
    struct process_spec bare = {0};
    char *benv[] = {"PATH=/b", NULL};
    bare.env = benv, bare.n_env = 1;
    CHECK_OK(container_exec_spec(&bare, cmd, 1, &x, &err));
    CHECK_STREQ(x.cwd, "/");
    CHECK_STRV(x.exec_paths, 1, "/b/cat");
    process_spec_free(&x);
    err_clear(&err);
}

/* ---- hostile sizes for the process spec ---- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_process_spec_huge(void)
{
    enum { N_ARGS = 20000, N_ENVS = 2000, BIG = 1 << 20 };
    struct image_config img;
    image_ep_cmd(&img);
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    char **args = calloc(N_ARGS, sizeof(char *));
    char *bigarg = malloc(BIG);
    Runtime__V1__KeyValue *kvs = calloc(N_ENVS, sizeof(*kvs));
    Runtime__V1__KeyValue **envs = calloc(N_ENVS, sizeof(*envs));
    char(*keys)[16] = calloc(N_ENVS, 16);
    if (!args || !bigarg || !kvs || !envs || !keys) {
        CHECK(!"out of memory in the test");
        goto out;
    }
    memset(bigarg, 'a', BIG - 1);
    bigarg[BIG - 1] = '\0';
    for (size_t i = 0; i < N_ARGS; i++)
        args[i] = i == N_ARGS / 2 ? bigarg : "x";
    for (size_t i = 0; i < N_ENVS; i++) {
        snprintf(keys[i], 16, "K%zu", i);
        kvs[i] = kv(keys[i], "value");
        envs[i] = &kvs[i];
    }
    cfg.args = args, cfg.n_args = N_ARGS;
    cfg.envs = envs, cfg.n_envs = N_ENVS;
    struct process_spec p;
    err_t err = ERR_INIT;
    double t0 = now();
    CHECK_OK(make_spec(&img, &cfg, &p, &err));
    double dt = now() - t0;
    CHECK_MSG(dt < 2.0, "%d args and %d env vars took %.2f s", N_ARGS, N_ENVS, dt);
    CHECK_EQ_INT(p.argc, 2 + N_ARGS);
    CHECK(p.argv && strlen(p.argv[2 + N_ARGS / 2]) == BIG - 1);
    /* PATH, HOSTNAME and HOME come after the request's. */
    CHECK_EQ_INT(p.n_env, N_ENVS + 3);
    CHECK_STREQ(env_val(p.env, "K1999"), "value");
    CHECK_EQ_INT(env_pos(p.env, "K0"), 0);
    process_spec_free(&p);
    err_clear(&err);
out:
    free(args);
    free(bigarg);
    free(kvs);
    free(envs);
    free(keys);
}

/* ---- mount plan fixtures ---- */

struct fixture {
    char dir[PATH_MAX]; /* real path of a temporary directory */
    char vol[PATH_MAX], sub[PATH_MAX], file[PATH_MAX], link[PATH_MAX], dangling[PATH_MAX];
};

static struct fixture fx;

static void fixture_path(char *out, const char *name)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", fx.dir, name);
    if (n < 0 || n >= PATH_MAX) {
        fprintf(stderr, "fixture path %s/%s too long\n", fx.dir, name);
        exit(2);
    }
}

static void fixture_make(void)
{
    char tmpl[] = "/tmp/edgecri-cspec-XXXXXX";
    if (!mkdtemp(tmpl) || !realpath(tmpl, fx.dir)) {
        perror("mkdtemp");
        exit(2);
    }
    fixture_path(fx.vol, "vol");
    fixture_path(fx.sub, "vol/sub");
    fixture_path(fx.file, "file");
    fixture_path(fx.link, "link");
    fixture_path(fx.dangling, "dangling");
    int fd;
    if (mkdir(fx.vol, 0755) < 0 || mkdir(fx.sub, 0755) < 0 ||
        (fd = open(fx.file, O_CREAT | O_WRONLY | O_CLOEXEC, 0644)) < 0 || close(fd) < 0 ||
        symlink("vol", fx.link) < 0 || symlink("nowhere", fx.dangling) < 0) {
        perror("fixture");
        exit(2);
    }
}

static void fixture_free(void)
{
    err_t err = ERR_INIT;
    if (fs_remove_tree(fx.dir, &err) < 0)
        fprintf(stderr, "removing %s: %s\n", fx.dir, err.msg);
    err_clear(&err);
}

static Runtime__V1__Mount bind_mount(const char *host, const char *ctr)
{
    Runtime__V1__Mount m = RUNTIME__V1__MOUNT__INIT;
    m.host_path = (char *)host;
    m.container_path = (char *)ctr;
    return m;
}

static struct mount_inputs pod_inputs(const Runtime__V1__ContainerConfig *cfg)
{
    return (struct mount_inputs){
        .cfg = cfg,
        .resolv_conf = "/run/pod/resolv.conf",
        .hosts = "/run/pod/hosts",
        .hostname = "/run/pod/hostname",
        .shm = "/run/pod/shm",
        .cgroup_version = 2,
    };
}

static int op_index(const struct mount_plan *p, enum spawn_op_kind kind, const char *target)
{
    for (size_t i = 0; i < p->n_ops; i++)
        if (p->ops[i].kind == kind && p->ops[i].target && strcmp(p->ops[i].target, target) == 0)
            return (int)i;
    return -1;
}

static const struct spawn_op *find_op(const struct mount_plan *p, enum spawn_op_kind kind, const char *target)
{
    int i = op_index(p, kind, target);
    return i < 0 ? NULL : &p->ops[i];
}

static size_t count_kind(const struct mount_plan *p, enum spawn_op_kind kind)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_ops; i++)
        n += p->ops[i].kind == kind;
    return n;
}

static size_t count_target(const struct mount_plan *p, const char *target)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_ops; i++)
        n += p->ops[i].target && strcmp(p->ops[i].target, target) == 0;
    return n;
}

static bool plan_is_zero(const struct mount_plan *p)
{
    return !p->ops && !p->n_ops && !p->owned && !p->n_owned;
}

#define NSE (MS_NOSUID | MS_NODEV | MS_NOEXEC)

/* ---- the default plan ---- */

static void test_plan_default_sequence(void)
{
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    struct mount_inputs in = pod_inputs(&cfg);
    struct mount_plan p;
    err_t err = ERR_INIT;
    CHECK_OK(container_mount_plan(&in, &p, &err));

    static const struct {
        enum spawn_op_kind kind;
        const char *target;
    } want[] = {
        {SPAWN_OP_MOUNT, "/proc"},
        {SPAWN_OP_MOUNT, "/dev"},
        {SPAWN_OP_MKNOD, "/dev/null"},
        {SPAWN_OP_MKNOD, "/dev/zero"},
        {SPAWN_OP_MKNOD, "/dev/full"},
        {SPAWN_OP_MKNOD, "/dev/random"},
        {SPAWN_OP_MKNOD, "/dev/urandom"},
        {SPAWN_OP_MKNOD, "/dev/tty"},
        {SPAWN_OP_SYMLINK, "/dev/fd"},
        {SPAWN_OP_SYMLINK, "/dev/stdin"},
        {SPAWN_OP_SYMLINK, "/dev/stdout"},
        {SPAWN_OP_SYMLINK, "/dev/stderr"},
        {SPAWN_OP_SYMLINK, "/dev/ptmx"},
        {SPAWN_OP_SYMLINK, "/dev/core"},
        {SPAWN_OP_MOUNT, "/dev/pts"},
        {SPAWN_OP_BIND, "/dev/shm"},
        {SPAWN_OP_MOUNT, "/dev/mqueue"},
        {SPAWN_OP_MOUNT, "/sys"},
        {SPAWN_OP_MOUNT, "/sys/fs/cgroup"},
        {SPAWN_OP_BIND, "/etc/hostname"},
        {SPAWN_OP_BIND, "/etc/hosts"},
        {SPAWN_OP_BIND, "/etc/resolv.conf"},
        {SPAWN_OP_MASK, "/proc/acpi"},
        {SPAWN_OP_MASK, "/proc/asound"},
        {SPAWN_OP_MASK, "/proc/kcore"},
        {SPAWN_OP_MASK, "/proc/keys"},
        {SPAWN_OP_MASK, "/proc/latency_stats"},
        {SPAWN_OP_MASK, "/proc/timer_list"},
        {SPAWN_OP_MASK, "/proc/timer_stats"},
        {SPAWN_OP_MASK, "/proc/sched_debug"},
        {SPAWN_OP_MASK, "/proc/scsi"},
        {SPAWN_OP_MASK, "/sys/firmware"},
        {SPAWN_OP_MASK, "/sys/devices/virtual/powercap"},
        {SPAWN_OP_READONLY, "/proc/bus"},
        {SPAWN_OP_READONLY, "/proc/fs"},
        {SPAWN_OP_READONLY, "/proc/irq"},
        {SPAWN_OP_READONLY, "/proc/sys"},
        {SPAWN_OP_READONLY, "/proc/sysrq-trigger"},
    };
    CHECK_EQ_INT(p.n_ops, ARRAY_SIZE(want));
    for (size_t i = 0; i < ARRAY_SIZE(want) && i < p.n_ops; i++)
        CHECK_MSG(p.ops[i].kind == want[i].kind && p.ops[i].target && strcmp(p.ops[i].target, want[i].target) == 0,
                  "op %zu: kind %d target %s, want kind %d target %s", i, (int)p.ops[i].kind,
                  p.ops[i].target ? p.ops[i].target : "(null)", (int)want[i].kind, want[i].target);

    const struct spawn_op *o;
    if ((o = find_op(&p, SPAWN_OP_MOUNT, "/proc"))) {
        CHECK_STREQ(o->fstype, "proc");
        CHECK_EQ_U64(o->flags, NSE);
    }
    if ((o = find_op(&p, SPAWN_OP_MOUNT, "/dev"))) {
        CHECK_STREQ(o->fstype, "tmpfs");
        CHECK_STREQ(o->data, "mode=755,size=65536k");
        CHECK_EQ_U64(o->flags, MS_NOSUID | MS_STRICTATIME);
    }
    if ((o = find_op(&p, SPAWN_OP_MKNOD, "/dev/null"))) {
        CHECK_EQ_U64(o->mode, S_IFCHR | 0666);
        CHECK_EQ_U64(o->dev, makedev(1, 3));
    }
    if ((o = find_op(&p, SPAWN_OP_MKNOD, "/dev/tty")))
        CHECK_EQ_U64(o->dev, makedev(5, 0));
    if ((o = find_op(&p, SPAWN_OP_SYMLINK, "/dev/ptmx")))
        CHECK_STREQ(o->source, "pts/ptmx");
    if ((o = find_op(&p, SPAWN_OP_SYMLINK, "/dev/stderr")))
        CHECK_STREQ(o->source, "/proc/self/fd/2");
    if ((o = find_op(&p, SPAWN_OP_MOUNT, "/dev/pts"))) {
        CHECK_STREQ(o->fstype, "devpts");
        CHECK_STREQ(o->data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
        CHECK_EQ_U64(o->flags, MS_NOSUID | MS_NOEXEC);
    }
    if ((o = find_op(&p, SPAWN_OP_BIND, "/dev/shm"))) {
        CHECK_STREQ(o->source, "/run/pod/shm");
        CHECK(o->recursive);
        CHECK_EQ_U64(o->flags, 0);
    }
    if ((o = find_op(&p, SPAWN_OP_MOUNT, "/dev/mqueue"))) {
        CHECK_STREQ(o->fstype, "mqueue");
        CHECK_EQ_U64(o->flags, NSE);
    }
    if ((o = find_op(&p, SPAWN_OP_MOUNT, "/sys"))) {
        CHECK_STREQ(o->fstype, "sysfs");
        CHECK_EQ_U64(o->flags, NSE | MS_RDONLY);
    }
    if ((o = find_op(&p, SPAWN_OP_MOUNT, "/sys/fs/cgroup"))) {
        CHECK_STREQ(o->fstype, "cgroup2");
        CHECK_EQ_U64(o->flags, NSE | MS_RDONLY);
    }
    /* The pod's files: writable unless the rootfs is read-only, files. */
    if ((o = find_op(&p, SPAWN_OP_BIND, "/etc/resolv.conf"))) {
        CHECK_STREQ(o->source, "/run/pod/resolv.conf");
        CHECK(o->create_file);
        CHECK_EQ_U64(o->flags, 0);
    }
    /* Masks and read-only paths are optional (a kernel may lack them). */
    for (size_t i = 0; i < p.n_ops; i++)
        if (p.ops[i].kind == SPAWN_OP_MASK || p.ops[i].kind == SPAWN_OP_READONLY)
            CHECK_MSG(p.ops[i].optional, "%s is not optional", p.ops[i].target);
    mount_plan_free(&p);
    CHECK(plan_is_zero(&p));
    err_clear(&err);
}

static void test_plan_readonly_rootfs_and_pod_files(void)
{
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    struct mount_inputs in = pod_inputs(&cfg);
    in.readonly_rootfs = true;
    struct mount_plan p;
    err_t err = ERR_INIT;
    CHECK_OK(container_mount_plan(&in, &p, &err));
    const char *files[] = {"/etc/hostname", "/etc/hosts", "/etc/resolv.conf"};
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        const struct spawn_op *o = find_op(&p, SPAWN_OP_BIND, files[i]);
        CHECK_MSG(o && o->flags == MS_RDONLY, "%s not read-only with a read-only rootfs", files[i]);
    }
    mount_plan_free(&p);

    /* A pod without some of its files (host network: no hosts file...). */
    in = pod_inputs(&cfg);
    in.hosts = NULL, in.resolv_conf = NULL;
    CHECK_OK(container_mount_plan(&in, &p, &err));
    CHECK(find_op(&p, SPAWN_OP_BIND, "/etc/hostname") != NULL);
    CHECK_EQ_INT(count_target(&p, "/etc/hosts"), 0);
    CHECK_EQ_INT(count_target(&p, "/etc/resolv.conf"), 0);
    mount_plan_free(&p);

    /* kubelet's own /etc/hosts replaces the pod's. */
    Runtime__V1__Mount m = bind_mount(fx.file, "/etc/hosts");
    Runtime__V1__Mount *mounts[] = {&m};
    cfg.mounts = mounts, cfg.n_mounts = 1;
    in = pod_inputs(&cfg);
    CHECK_OK(container_mount_plan(&in, &p, &err));
    CHECK_EQ_INT(count_target(&p, "/etc/hosts"), 1);
    const struct spawn_op *o = find_op(&p, SPAWN_OP_BIND, "/etc/hosts");
    CHECK_STREQ(o ? o->source : NULL, fx.file);
    CHECK(find_op(&p, SPAWN_OP_BIND, "/etc/hostname") != NULL);
    mount_plan_free(&p);
    err_clear(&err);
}

static void test_plan_privileged(void)
{
    Runtime__V1__LinuxContainerSecurityContext sc = RUNTIME__V1__LINUX_CONTAINER_SECURITY_CONTEXT__INIT;
    SETV(sc.masked_paths, sc.n_masked_paths, "/proc/kcore");
    SETV(sc.readonly_paths, sc.n_readonly_paths, "/proc/sys");
    sc.privileged = true;
    Runtime__V1__LinuxContainerConfig lc = RUNTIME__V1__LINUX_CONTAINER_CONFIG__INIT;
    lc.security_context = &sc;
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    cfg.linux = &lc;
    struct mount_inputs in = pod_inputs(&cfg);
    in.privileged = true;
    struct mount_plan p;
    err_t err = ERR_INIT;
    CHECK_OK(container_mount_plan(&in, &p, &err));
    /* Every host device: /dev is the host's, nothing is created in it. */
    const struct spawn_op *o = find_op(&p, SPAWN_OP_BIND, "/dev");
    CHECK(o && o->recursive && o->source && strcmp(o->source, "/dev") == 0);
    CHECK(find_op(&p, SPAWN_OP_MOUNT, "/dev") == NULL);
    CHECK_EQ_INT(count_kind(&p, SPAWN_OP_MKNOD), 0);
    CHECK_EQ_INT(count_kind(&p, SPAWN_OP_SYMLINK), 0);
    /* Writable /sys and cgroups, no masked or read-only paths (even asked). */
    o = find_op(&p, SPAWN_OP_MOUNT, "/sys");
    CHECK(o && o->flags == NSE);
    o = find_op(&p, SPAWN_OP_MOUNT, "/sys/fs/cgroup");
    CHECK(o && o->flags == NSE);
    CHECK_EQ_INT(count_kind(&p, SPAWN_OP_MASK), 0);
    CHECK_EQ_INT(count_kind(&p, SPAWN_OP_READONLY), 0);
    /* devpts, shm, mqueue are still there. */
    CHECK(find_op(&p, SPAWN_OP_MOUNT, "/dev/pts") != NULL);
    CHECK(find_op(&p, SPAWN_OP_BIND, "/dev/shm") != NULL);
    CHECK(find_op(&p, SPAWN_OP_MOUNT, "/dev/mqueue") != NULL);
    /* /dev comes before what is mounted inside it. */
    CHECK(op_index(&p, SPAWN_OP_BIND, "/dev") < op_index(&p, SPAWN_OP_MOUNT, "/dev/pts"));
    mount_plan_free(&p);
    err_clear(&err);
}

static void test_plan_cgroup_v1(void)
{
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    static const char *const names[] = {"cpu,cpuacct", "memory", "pids"};
    static const char *const opts[] = {"cpu,cpuacct", "memory", "pids"};
    struct mount_inputs in = pod_inputs(&cfg);
    in.cgroup_version = 1;
    in.v1_names = names, in.v1_options = opts, in.n_v1 = ARRAY_SIZE(names);
    struct mount_plan p;
    err_t err = ERR_INIT;
    CHECK_OK(container_mount_plan(&in, &p, &err));
    const struct spawn_op *o = find_op(&p, SPAWN_OP_MOUNT, "/sys/fs/cgroup");
    CHECK(o && o->fstype && strcmp(o->fstype, "tmpfs") == 0 && o->flags == NSE);
    CHECK_STREQ(o ? o->data : NULL, "mode=755");
    o = find_op(&p, SPAWN_OP_MOUNT, "/sys/fs/cgroup/cpu,cpuacct");
    CHECK(o && o->flags == (NSE | MS_RDONLY));
    CHECK_STREQ(o ? o->fstype : NULL, "cgroup");
    CHECK_STREQ(o ? o->data : NULL, "cpu,cpuacct");
    o = find_op(&p, SPAWN_OP_MOUNT, "/sys/fs/cgroup/pids");
    CHECK_STREQ(o ? o->data : NULL, "pids");
    int tmpfs = op_index(&p, SPAWN_OP_MOUNT, "/sys/fs/cgroup"),
        mem = op_index(&p, SPAWN_OP_MOUNT, "/sys/fs/cgroup/memory"),
        ro = op_index(&p, SPAWN_OP_READONLY, "/sys/fs/cgroup");
    /* The tmpfs, the hierarchies in it, then the tmpfs made read-only. */
    CHECK(tmpfs >= 0 && tmpfs < mem && mem < ro);
    CHECK(ro >= 0 && !p.ops[ro].optional);
    mount_plan_free(&p);

    /* Privileged: writable hierarchies, no read-only step. */
    in.privileged = true;
    CHECK_OK(container_mount_plan(&in, &p, &err));
    o = find_op(&p, SPAWN_OP_MOUNT, "/sys/fs/cgroup/memory");
    CHECK(o && o->flags == NSE);
    CHECK(find_op(&p, SPAWN_OP_READONLY, "/sys/fs/cgroup") == NULL);
    mount_plan_free(&p);

    /* No hierarchies: just the tmpfs. */
    in.privileged = false, in.n_v1 = 0, in.v1_names = NULL, in.v1_options = NULL;
    CHECK_OK(container_mount_plan(&in, &p, &err));
    CHECK_EQ_INT(count_target(&p, "/sys/fs/cgroup"), 2);
    mount_plan_free(&p);
    err_clear(&err);
}

/* ---- CRI mounts ---- */

static void test_plan_cri_binds(void)
{
    Runtime__V1__Mount dir = bind_mount(fx.vol, "/data"), file = bind_mount(fx.file, "/etc/app.conf"),
                       link = bind_mount(fx.link, "/linked"), ro = bind_mount(fx.sub, "/ro");
    file.readonly = true;
    ro.readonly = true;
    Runtime__V1__Mount *mounts[] = {&dir, &file, &link, &ro};
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    cfg.mounts = mounts, cfg.n_mounts = ARRAY_SIZE(mounts);
    struct mount_inputs in = pod_inputs(&cfg);
    struct mount_plan p;
    err_t err = ERR_INIT;
    CHECK_OK(container_mount_plan(&in, &p, &err));

    const struct spawn_op *o = find_op(&p, SPAWN_OP_BIND, "/data");
    CHECK(o != NULL);
    if (o) {
        CHECK_STREQ(o->source, fx.vol);
        CHECK(o->recursive);
        CHECK(!o->create_file);
        CHECK(!o->recursive_readonly);
        CHECK_EQ_U64(o->flags, 0);
        CHECK_EQ_U64(o->propagation, MS_PRIVATE | MS_REC);
    }
    o = find_op(&p, SPAWN_OP_BIND, "/etc/app.conf");
    CHECK(o && o->create_file && o->flags == MS_RDONLY);
    /* A host symlink is resolved on the host. */
    o = find_op(&p, SPAWN_OP_BIND, "/linked");
    CHECK_STREQ(o ? o->source : NULL, fx.vol);
    CHECK(o && !o->create_file);
    o = find_op(&p, SPAWN_OP_BIND, "/ro");
    CHECK(o && o->flags == MS_RDONLY && !o->recursive_readonly && o->recursive);

    /* After the pod's files, shallow paths first (request order among
     * equals), before the masks. */
    int resolv = op_index(&p, SPAWN_OP_BIND, "/etc/resolv.conf"), first = op_index(&p, SPAWN_OP_BIND, "/data"),
        last = op_index(&p, SPAWN_OP_BIND, "/etc/app.conf"), mask = op_index(&p, SPAWN_OP_MASK, "/proc/acpi");
    CHECK(resolv >= 0 && resolv < first);
    CHECK(first >= 0 && op_index(&p, SPAWN_OP_BIND, "/linked") == first + 1);
    CHECK(op_index(&p, SPAWN_OP_BIND, "/ro") == first + 2 && last == first + 3);
    CHECK(last < mask);
    mount_plan_free(&p);
    err_clear(&err);
}

static void test_plan_propagation_and_rro(void)
{
    Runtime__V1__Mount priv = bind_mount(fx.vol, "/p"), slave = bind_mount(fx.vol, "/s"),
                       shared = bind_mount(fx.vol, "/b"), rro = bind_mount(fx.vol, "/rro");
    priv.propagation = RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_PRIVATE;
    slave.propagation = RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_HOST_TO_CONTAINER;
    shared.propagation = RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_BIDIRECTIONAL;
    rro.readonly = rro.recursive_read_only = true;
    Runtime__V1__Mount *mounts[] = {&priv, &slave, &shared, &rro};
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    cfg.mounts = mounts, cfg.n_mounts = ARRAY_SIZE(mounts);
    struct mount_inputs in = pod_inputs(&cfg);
    struct mount_plan p;
    err_t err = ERR_INIT;
    CHECK_OK(container_mount_plan(&in, &p, &err));
    const struct spawn_op *o = find_op(&p, SPAWN_OP_BIND, "/p");
    CHECK(o && o->propagation == (MS_PRIVATE | MS_REC));
    o = find_op(&p, SPAWN_OP_BIND, "/s");
    CHECK(o && o->propagation == (MS_SLAVE | MS_REC));
    o = find_op(&p, SPAWN_OP_BIND, "/b");
    CHECK(o && o->propagation == (MS_SHARED | MS_REC));
    o = find_op(&p, SPAWN_OP_BIND, "/rro");
    CHECK(o && o->recursive_readonly && o->flags == MS_RDONLY && o->recursive);
    mount_plan_free(&p);

    /* recursive_read_only without readonly. */
    rro.readonly = false;
    CHECK_EQ_INT(container_mount_plan(&in, &p, &err), -EINVAL);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(err.msg, "mount /rro: recursive_read_only needs readonly");
    CHECK(plan_is_zero(&p));
    err_clear(&err);
    rro.readonly = true;

    /* An unknown propagation value. */
    shared.propagation = (Runtime__V1__MountPropagation)42;
    CHECK_EQ_INT(container_mount_plan(&in, &p, &err), -EINVAL);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(err.msg, "mount /b: unknown propagation 42");
    CHECK(plan_is_zero(&p));
    err_clear(&err);
    shared.propagation = (Runtime__V1__MountPropagation)-1;
    CHECK_EQ_INT(container_mount_plan(&in, &p, &err), -EINVAL);
    CHECK(plan_is_zero(&p));
    err_clear(&err);
}

static void test_plan_unsupported(void)
{
    Runtime__V1__ImageSpec is = RUNTIME__V1__IMAGE_SPEC__INIT;
    is.image = "docker.io/library/busybox:latest";
    Runtime__V1__Mount img = RUNTIME__V1__MOUNT__INIT;
    img.container_path = "/img";
    img.image = &is;
    Runtime__V1__Mount *mounts[] = {&img};
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    cfg.mounts = mounts, cfg.n_mounts = 1;
    struct mount_inputs in = pod_inputs(&cfg);
    struct mount_plan p;
    err_t err = ERR_INIT;
    CHECK_EQ_INT(container_mount_plan(&in, &p, &err), -ENOTSUP);
    CHECK_EQ_INT(err.code, ERR_UNIMPLEMENTED);
    CHECK_CONTAINS(err.msg, "mount /img: image volumes");
    CHECK(plan_is_zero(&p));
    err_clear(&err);

    /* An ImageSpec with no image is a plain bind. */
    is.image = "";
    img.host_path = fx.vol;
    CHECK_OK(container_mount_plan(&in, &p, &err));
    CHECK(find_op(&p, SPAWN_OP_BIND, "/img") != NULL);
    mount_plan_free(&p);

    /* Idmapped mounts, by uid or gid mappings. */
    Runtime__V1__IDMapping map = RUNTIME__V1__IDMAPPING__INIT;
    map.host_id = 100000, map.length = 65536;
    Runtime__V1__IDMapping *maps[] = {&map};
    img.image = NULL;
    img.uidmappings = maps, img.n_uidmappings = 1;
    CHECK(container_mount_plan(&in, &p, &err) < 0);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT); /* the pod has no user namespace */
    CHECK_CONTAINS(err.msg, "idmapped");
    CHECK(plan_is_zero(&p));
    err_clear(&err);
    img.uidmappings = NULL, img.n_uidmappings = 0;
    img.gidmappings = maps, img.n_gidmappings = 1;
    CHECK(container_mount_plan(&in, &p, &err) < 0);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    err_clear(&err);

    /* With the pod's user namespace: the pod's mappings make an idmapped
     * bind through its fd; other mappings are refused. */
    struct userns_map pod_map = {.uids = {{0, 100000, 65536}}, .n_uids = 1, .gids = {{0, 100000, 65536}}, .n_gids = 1};
    in.userns = &pod_map;
    in.userns_fd = 42;
    img.uidmappings = maps, img.n_uidmappings = 1;
    CHECK_OK(container_mount_plan(&in, &p, &err));
    const struct spawn_op *op = find_op(&p, SPAWN_OP_BIND, "/img");
    CHECK(op && op->idmap_userns_fd == 42);
    /* /dev and /dev/pts belong to the container's root and tty group */
    op = find_op(&p, SPAWN_OP_MOUNT, "/dev");
    CHECK(op && op->data && strstr(op->data, "uid=100000,gid=100000"));
    op = find_op(&p, SPAWN_OP_MOUNT, "/dev/pts");
    CHECK(op && op->data && strstr(op->data, "gid=100005"));
    op = find_op(&p, SPAWN_OP_BIND, "/etc/hosts");
    CHECK(op && op->idmap_userns_fd == 0);
    mount_plan_free(&p);
    map.host_id = 200000;
    CHECK(container_mount_plan(&in, &p, &err) < 0);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(err.msg, "differ");
    err_clear(&err);
    map.host_id = 100000;
    img.uidmappings = NULL, img.n_uidmappings = 0;
    CHECK(container_mount_plan(&in, &p, &err) < 0); /* gids only: uids differ (none) */
    err_clear(&err);
    in.userns = NULL;
    in.userns_fd = 0;
    img.gidmappings = NULL, img.n_gidmappings = 0;
}

static void test_plan_bad_paths(void)
{
    Runtime__V1__Mount m = bind_mount(fx.vol, "/ok");
    Runtime__V1__Mount good = bind_mount(fx.vol, "/first");
    Runtime__V1__Mount *mounts[] = {&good, &m};
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    cfg.mounts = mounts, cfg.n_mounts = 2;
    struct mount_inputs in = pod_inputs(&cfg);
    struct mount_plan p;
    err_t err = ERR_INIT;

    char toolong[PATH_MAX + 8];
    toolong[0] = '/';
    memset(toolong + 1, 'a', PATH_MAX);
    toolong[PATH_MAX] = '\0'; /* strlen == PATH_MAX */
    const char *bad_ctr[] = {"", "data", "./data", "/..", "/a/..", "/a/../etc", "/../x", "/a/b/../../..", toolong};
    for (size_t i = 0; i < ARRAY_SIZE(bad_ctr); i++) {
        m.container_path = (char *)bad_ctr[i];
        int r = container_mount_plan(&in, &p, &err);
        CHECK_MSG(r == -EINVAL && err.code == ERR_INVALID_ARGUMENT, "container path \"%.40s\": %d %s", bad_ctr[i], r,
                  err.msg ? err.msg : "");
        CHECK_CONTAINS(err.msg, "mount 1: container path");
        CHECK(plan_is_zero(&p)); /* the first mount's op was freed too */
        err_clear(&err);
    }
    m.container_path = NULL;
    CHECK_EQ_INT(container_mount_plan(&in, &p, &err), -EINVAL);
    CHECK(plan_is_zero(&p));
    err_clear(&err);

    /* Dots that are not a ".." component are names. */
    const char *odd_ok[] = {"/a..b", "/..a", "/a/b..", "/...", "/a/.b"};
    for (size_t i = 0; i < ARRAY_SIZE(odd_ok); i++) {
        m.container_path = (char *)odd_ok[i];
        CHECK_MSG(container_mount_plan(&in, &p, &err) == 0, "container path \"%s\" refused: %s", odd_ok[i],
                  err.msg ? err.msg : "");
        CHECK(find_op(&p, SPAWN_OP_BIND, odd_ok[i]) != NULL);
        mount_plan_free(&p);
        err_clear(&err);
    }
    /* A long but legal target. */
    toolong[PATH_MAX - 1] = '\0';
    m.container_path = toolong;
    CHECK_OK(container_mount_plan(&in, &p, &err));
    mount_plan_free(&p);
    m.container_path = "/ok";

    /* Host paths: absolute, existing. */
    const char *bad_host[] = {"", "relative/dir", "vol"};
    for (size_t i = 0; i < ARRAY_SIZE(bad_host); i++) {
        m.host_path = (char *)bad_host[i];
        CHECK_EQ_INT(container_mount_plan(&in, &p, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "is not absolute");
        CHECK(plan_is_zero(&p));
        err_clear(&err);
    }
    m.host_path = NULL;
    CHECK_EQ_INT(container_mount_plan(&in, &p, &err), -EINVAL);
    err_clear(&err);
    char missing[PATH_MAX];
    fixture_path(missing, "missing");
    m.host_path = missing;
    CHECK_EQ_INT(container_mount_plan(&in, &p, &err), -ENOENT);
    CHECK_EQ_INT(err.code, ERR_NOT_FOUND);
    CHECK_CONTAINS(err.msg, "mount /ok: host path");
    CHECK(plan_is_zero(&p));
    err_clear(&err);
    m.host_path = fx.dangling;
    CHECK_EQ_INT(container_mount_plan(&in, &p, &err), -ENOENT);
    CHECK(plan_is_zero(&p));
    err_clear(&err);
    /* ".." in a host path is the host's business: resolved, then used. */
    char dotdot[PATH_MAX];
    fixture_path(dotdot, "vol/sub/../sub");
    m.host_path = dotdot;
    CHECK_OK(container_mount_plan(&in, &p, &err));
    const struct spawn_op *o = find_op(&p, SPAWN_OP_BIND, "/ok");
    CHECK_STREQ(o ? o->source : NULL, fx.sub);
    mount_plan_free(&p);
    err_clear(&err);
}

static void test_plan_devices(void)
{
    struct stat st;
    if (stat("/dev/null", &st) < 0 || !S_ISCHR(st.st_mode)) {
        fprintf(stderr, "test_plan_devices: no /dev/null character device, skipped\n");
        return;
    }
    char devlink[PATH_MAX];
    fixture_path(devlink, "nulllink");
    if (symlink("/dev/null", devlink) < 0 && errno != EEXIST) {
        perror("symlink");
        return;
    }
    Runtime__V1__Device rw = RUNTIME__V1__DEVICE__INIT, r = RUNTIME__V1__DEVICE__INIT, def = RUNTIME__V1__DEVICE__INIT,
                        linked = RUNTIME__V1__DEVICE__INIT;
    rw.host_path = "/dev/null", rw.container_path = "/dev/xrw", rw.permissions = "rw";
    r.host_path = "/dev/null", r.container_path = "/dev/xr", r.permissions = "rm";
    def.host_path = "/dev/null", def.container_path = "/dev/xdef"; /* permissions "" */
    linked.host_path = devlink, linked.container_path = "/dev/xlink", linked.permissions = "w";
    Runtime__V1__Device *devs[] = {&rw, &r, &def, &linked};
    Runtime__V1__Mount m = bind_mount(fx.vol, "/data");
    Runtime__V1__Mount *mounts[] = {&m};
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    cfg.devices = devs, cfg.n_devices = ARRAY_SIZE(devs);
    cfg.mounts = mounts, cfg.n_mounts = 1;
    struct mount_inputs in = pod_inputs(&cfg);
    struct mount_plan p;
    err_t err = ERR_INIT;
    CHECK_OK(container_mount_plan(&in, &p, &err));
    const struct spawn_op *o = find_op(&p, SPAWN_OP_BIND, "/dev/xrw");
    CHECK(o && o->flags == 0 && o->create_file && !o->recursive);
    CHECK_STREQ(o ? o->source : NULL, "/dev/null");
    o = find_op(&p, SPAWN_OP_BIND, "/dev/xr");
    CHECK(o && o->flags == MS_RDONLY);
    o = find_op(&p, SPAWN_OP_BIND, "/dev/xdef");
    CHECK(o && o->flags == 0);
    o = find_op(&p, SPAWN_OP_BIND, "/dev/xlink");
    CHECK(o && o->flags == 0);
    CHECK_STREQ(o ? o->source : NULL, "/dev/null");
    /* Devices after the CRI mounts, after /dev itself. */
    CHECK(op_index(&p, SPAWN_OP_BIND, "/data") < op_index(&p, SPAWN_OP_BIND, "/dev/xrw"));
    CHECK(op_index(&p, SPAWN_OP_MOUNT, "/dev") < op_index(&p, SPAWN_OP_BIND, "/dev/xrw"));
    mount_plan_free(&p);

    /* Errors: bad permissions, not a device, bad paths, missing. */
    rw.permissions = "rwx";
    CHECK_EQ_INT(container_mount_plan(&in, &p, &err), -EINVAL);
    CHECK_CONTAINS(err.msg, "device /dev/xrw: invalid permissions \"rwx\"");
    CHECK(plan_is_zero(&p));
    err_clear(&err);
    rw.permissions = "rw";
    def.host_path = fx.file;
    CHECK_EQ_INT(container_mount_plan(&in, &p, &err), -EINVAL);
    CHECK_CONTAINS(err.msg, "is not a device node");
    CHECK(plan_is_zero(&p));
    err_clear(&err);
    def.host_path = fx.vol;
    CHECK_EQ_INT(container_mount_plan(&in, &p, &err), -EINVAL);
    err_clear(&err);
    def.host_path = "/dev/null";
    const char *bad_ctr[] = {"", "dev/x", "/dev/../etc/passwd"};
    for (size_t i = 0; i < ARRAY_SIZE(bad_ctr); i++) {
        def.container_path = (char *)bad_ctr[i];
        CHECK_EQ_INT(container_mount_plan(&in, &p, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "device 2: invalid paths");
        CHECK(plan_is_zero(&p));
        err_clear(&err);
    }
    def.container_path = "/dev/xdef";
    def.host_path = "dev/null";
    CHECK_EQ_INT(container_mount_plan(&in, &p, &err), -EINVAL);
    err_clear(&err);
    def.host_path = "/dev/edgecri-no-such-device";
    CHECK_EQ_INT(container_mount_plan(&in, &p, &err), -ENOENT);
    CHECK_EQ_INT(err.code, ERR_NOT_FOUND);
    CHECK(plan_is_zero(&p));
    err_clear(&err);
}

static void test_plan_masked_readonly_paths(void)
{
    Runtime__V1__LinuxContainerSecurityContext sc = RUNTIME__V1__LINUX_CONTAINER_SECURITY_CONTEXT__INIT;
    Runtime__V1__LinuxContainerConfig lc = RUNTIME__V1__LINUX_CONTAINER_CONFIG__INIT;
    lc.security_context = &sc;
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    cfg.linux = &lc;
    struct mount_inputs in = pod_inputs(&cfg);
    struct mount_plan p;
    err_t err = ERR_INIT;

    /* A security context with empty lists: containerd's defaults. */
    CHECK_OK(container_mount_plan(&in, &p, &err));
    CHECK_EQ_INT(count_kind(&p, SPAWN_OP_MASK), 11);
    CHECK_EQ_INT(count_kind(&p, SPAWN_OP_READONLY), 5);
    mount_plan_free(&p);

    /* The request's lists replace the defaults; unclean entries are dropped. */
    SETV(sc.masked_paths, sc.n_masked_paths, "/proc/kcore", "relative", "/proc/../etc/shadow", "", "/sys/firmware");
    SETV(sc.readonly_paths, sc.n_readonly_paths, "/proc/sys", "/x/..", "/proc/sysrq-trigger");
    CHECK_OK(container_mount_plan(&in, &p, &err));
    CHECK_EQ_INT(count_kind(&p, SPAWN_OP_MASK), 2);
    CHECK_EQ_INT(count_kind(&p, SPAWN_OP_READONLY), 2);
    CHECK(op_index(&p, SPAWN_OP_MASK, "/proc/kcore") < op_index(&p, SPAWN_OP_MASK, "/sys/firmware"));
    CHECK(find_op(&p, SPAWN_OP_MASK, "/proc/acpi") == NULL);
    CHECK(find_op(&p, SPAWN_OP_READONLY, "/proc/bus") == NULL);
    const struct spawn_op *o = find_op(&p, SPAWN_OP_READONLY, "/proc/sysrq-trigger");
    CHECK(o && o->optional);
    /* Masks last, read-only paths after them. */
    CHECK(op_index(&p, SPAWN_OP_MASK, "/sys/firmware") < op_index(&p, SPAWN_OP_READONLY, "/proc/sys"));
    CHECK_EQ_INT(op_index(&p, SPAWN_OP_READONLY, "/proc/sysrq-trigger"), (int)p.n_ops - 1);
    mount_plan_free(&p);

    /* Only masked paths given: read-only paths keep the defaults. */
    sc.readonly_paths = NULL, sc.n_readonly_paths = 0;
    CHECK_OK(container_mount_plan(&in, &p, &err));
    CHECK_EQ_INT(count_kind(&p, SPAWN_OP_MASK), 2);
    CHECK_EQ_INT(count_kind(&p, SPAWN_OP_READONLY), 5);
    mount_plan_free(&p);

    /* A linux config without a security context: defaults. */
    lc.security_context = NULL;
    CHECK_OK(container_mount_plan(&in, &p, &err));
    CHECK_EQ_INT(count_kind(&p, SPAWN_OP_MASK), 11);
    mount_plan_free(&p);
    err_clear(&err);

    size_t n = 0;
    for (const char *const *d = default_masked_paths; *d; d++)
        n++;
    CHECK_EQ_INT(n, 11);
    n = 0;
    for (const char *const *d = default_readonly_paths; *d; d++)
        n++;
    CHECK_EQ_INT(n, 5);
}

/* The plan owns its strings: the inputs may go away. */
static void test_plan_owns_strings(void)
{
    char *ctr = strdup("/owned/target"), *host = strdup(fx.vol), *hosts = strdup("/run/pod/hosts-x"),
         *shm = strdup("/run/pod/shm-x"), *mask = strdup("/proc/owned");
    Runtime__V1__Mount m = bind_mount(host, ctr);
    Runtime__V1__Mount *mounts[] = {&m};
    Runtime__V1__LinuxContainerSecurityContext sc = RUNTIME__V1__LINUX_CONTAINER_SECURITY_CONTEXT__INIT;
    sc.masked_paths = &mask, sc.n_masked_paths = 1;
    Runtime__V1__LinuxContainerConfig lc = RUNTIME__V1__LINUX_CONTAINER_CONFIG__INIT;
    lc.security_context = &sc;
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    cfg.mounts = mounts, cfg.n_mounts = 1;
    cfg.linux = &lc;
    static const char *const names[] = {"memory"};
    char *opt = strdup("memory");
    const char *opts[] = {opt};
    struct mount_inputs in = pod_inputs(&cfg);
    in.hosts = hosts, in.shm = shm;
    in.cgroup_version = 1, in.v1_names = names, in.v1_options = opts, in.n_v1 = 1;
    struct mount_plan p;
    err_t err = ERR_INIT;
    CHECK_OK(container_mount_plan(&in, &p, &err));
    memset(ctr, 'X', strlen(ctr));
    memset(hosts, 'X', strlen(hosts));
    free(ctr), free(host), free(hosts), free(shm), free(mask), free(opt);
    CHECK(find_op(&p, SPAWN_OP_BIND, "/owned/target") != NULL);
    const struct spawn_op *o = find_op(&p, SPAWN_OP_BIND, "/etc/hosts");
    CHECK_STREQ(o ? o->source : NULL, "/run/pod/hosts-x");
    o = find_op(&p, SPAWN_OP_BIND, "/dev/shm");
    CHECK_STREQ(o ? o->source : NULL, "/run/pod/shm-x");
    CHECK(find_op(&p, SPAWN_OP_MASK, "/proc/owned") != NULL);
    o = find_op(&p, SPAWN_OP_MOUNT, "/sys/fs/cgroup/memory");
    CHECK_STREQ(o ? o->data : NULL, "memory");
    /* Every string an op points to is one the plan owns (or NULL). */
    for (size_t i = 0; i < p.n_ops; i++) {
        const char *s[] = {p.ops[i].source, p.ops[i].target, p.ops[i].fstype, p.ops[i].data};
        for (size_t j = 0; j < ARRAY_SIZE(s); j++) {
            bool owned = !s[j];
            for (size_t k = 0; !owned && k < p.n_owned; k++)
                owned = s[j] == p.owned[k];
            CHECK_MSG(owned, "op %zu field %zu (\"%s\") is not owned by the plan", i, j, s[j]);
        }
    }
    mount_plan_free(&p);
    err_clear(&err);
}

static void test_plan_huge(void)
{
    enum { N = 1000 };
    Runtime__V1__Mount *ms = calloc(N, sizeof(*ms));
    Runtime__V1__Mount **mounts = calloc(N, sizeof(*mounts));
    char(*targets)[32] = calloc(N, 32);
    char **masked = calloc(N, sizeof(char *));
    if (!ms || !mounts || !targets || !masked) {
        CHECK(!"out of memory in the test");
        goto out;
    }
    for (size_t i = 0; i < N; i++) {
        snprintf(targets[i], 32, "/m/%zu", i);
        ms[i] = bind_mount(fx.vol, targets[i]);
        mounts[i] = &ms[i];
        masked[i] = targets[i];
    }
    Runtime__V1__LinuxContainerSecurityContext sc = RUNTIME__V1__LINUX_CONTAINER_SECURITY_CONTEXT__INIT;
    sc.masked_paths = masked, sc.n_masked_paths = N;
    Runtime__V1__LinuxContainerConfig lc = RUNTIME__V1__LINUX_CONTAINER_CONFIG__INIT;
    lc.security_context = &sc;
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    cfg.mounts = mounts, cfg.n_mounts = N;
    cfg.linux = &lc;
    struct mount_inputs in = pod_inputs(&cfg);
    struct mount_plan p;
    err_t err = ERR_INIT;
    double t0 = now();
    CHECK_OK(container_mount_plan(&in, &p, &err));
    double dt = now() - t0;
    CHECK_MSG(dt < 2.0, "%d mounts took %.2f s", N, dt);
    CHECK_EQ_INT(count_kind(&p, SPAWN_OP_MASK), N);
    CHECK_EQ_INT(count_kind(&p, SPAWN_OP_BIND), N + 4); /* + shm and the pod's three files */
    CHECK(find_op(&p, SPAWN_OP_BIND, "/m/999") != NULL);
    mount_plan_free(&p);

    /* The last one bad: everything planned so far is freed. */
    ms[N - 1].container_path = "/m/../x";
    CHECK_EQ_INT(container_mount_plan(&in, &p, &err), -EINVAL);
    CHECK_CONTAINS(err.msg, "mount 999");
    CHECK(plan_is_zero(&p));
    err_clear(&err);
out:
    free(ms);
    free(mounts);
    free(targets);
    free(masked);
}

/* ==== Differences from containerd found by these tests, now fixed ==== */

/* containerd (WithProcessArgs, like moby) resets an image Entrypoint of
 * exactly [""] — what `ENTRYPOINT [""]` or `--entrypoint ""` leaves in an
 * image to clear a base image's entrypoint — so the Cmd alone runs.
 * edgecri puts "" in argv[0] and refuses the container ("no command"). */
static void fixed_entrypoint_empty_string_is_reset(void)
{
    struct image_config img = {0};
    SETV(img.entrypoint, img.n_entrypoint, "");
    SETV(img.cmd, img.n_cmd, "/bin/sh", "-c", "true");
    img.entrypoint_set = img.cmd_set = true;
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    struct process_spec p;
    err_t err = ERR_INIT;
    int r = make_spec(&img, &cfg, &p, &err);
    CHECK_MSG(r == 0, "Entrypoint [\"\"] + Cmd: want argv [/bin/sh -c true], got %d (%s)", r, err.msg ? err.msg : "");
    if (r == 0)
        CHECK_STRV(p.argv, p.argc, "/bin/sh", "-c", "true");
    process_spec_free(&p);
    err_clear(&err);

    /* With args, likewise: the args alone. */
    SETV(cfg.args, cfg.n_args, "/bin/echo", "hi");
    r = make_spec(&img, &cfg, &p, &err);
    CHECK_MSG(r == 0, "Entrypoint [\"\"] + args: want argv [/bin/echo hi], got %d (%s)", r, err.msg ? err.msg : "");
    if (r == 0)
        CHECK_STRV(p.argv, p.argc, "/bin/echo", "hi");
    process_spec_free(&p);
    err_clear(&err);
}

/* containerd's WithMounts sorts the CRI mounts (sort.Stable) by the number
 * of path components of their container path, "so that high level mounts
 * don't shadow other mounts". kubelet sends volume mounts in the pod spec's
 * order, so volumeMounts [/data/cache, /data] work on containerd; edgecri
 * binds them in request order and /data then hides /data/cache. */
static void fixed_mounts_sorted_by_depth(void)
{
    Runtime__V1__Mount deep = bind_mount(fx.sub, "/data/cache"), top = bind_mount(fx.vol, "/data"),
                       other = bind_mount(fx.vol, "/other");
    Runtime__V1__Mount *mounts[] = {&deep, &top, &other};
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    cfg.mounts = mounts, cfg.n_mounts = ARRAY_SIZE(mounts);
    struct mount_inputs in = pod_inputs(&cfg);
    struct mount_plan p;
    err_t err = ERR_INIT;
    CHECK_OK(container_mount_plan(&in, &p, &err));
    int i_deep = op_index(&p, SPAWN_OP_BIND, "/data/cache"), i_top = op_index(&p, SPAWN_OP_BIND, "/data"),
        i_other = op_index(&p, SPAWN_OP_BIND, "/other");
    CHECK_MSG(i_top >= 0 && i_top < i_deep, "/data (op %d) must be bound before /data/cache (op %d)", i_top, i_deep);
    /* Stable: same depth keeps the request's order. */
    CHECK_MSG(i_top < i_other && i_other < i_deep, "want /data, /other, /data/cache; got ops %d, %d, %d", i_top,
              i_other, i_deep);
    mount_plan_free(&p);
    err_clear(&err);
}

/* containerd, CRI-O and cri-dockerd refuse recursive_read_only unless the
 * propagation is PRIVATE (an rro mount cannot be a shared or slave one; the
 * CRI field's own comment says "readonly is also true and propagation is
 * PRIVATE"). edgecri accepts rro with HOST_TO_CONTAINER or BIDIRECTIONAL. */
static void fixed_rro_needs_private_propagation(void)
{
    Runtime__V1__Mount m = bind_mount(fx.vol, "/rro");
    m.readonly = m.recursive_read_only = true;
    Runtime__V1__Mount *mounts[] = {&m};
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    cfg.mounts = mounts, cfg.n_mounts = 1;
    struct mount_inputs in = pod_inputs(&cfg);
    struct mount_plan p;
    err_t err = ERR_INIT;
    Runtime__V1__MountPropagation props[] = {RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_HOST_TO_CONTAINER,
                                             RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_BIDIRECTIONAL};
    for (size_t i = 0; i < ARRAY_SIZE(props); i++) {
        m.propagation = props[i];
        int r = container_mount_plan(&in, &p, &err);
        CHECK_MSG(r == -EINVAL && err.code == ERR_INVALID_ARGUMENT,
                  "recursive_read_only with propagation %d: want INVALID_ARGUMENT, got %d", (int)props[i], r);
        if (r == 0)
            mount_plan_free(&p);
        err_clear(&err);
    }
}

/* An image Env entry without '=' ("FOO") means "unset FOO" to containerd
 * (oci.WithEnv → replaceOrAppendEnvValues drops it and any earlier FOO=).
 * edgecri copies the bare "FOO" into the environment, and a bare "PATH"
 * also stops the default PATH from being set while exec_candidates ignores
 * it (the process gets no PATH but is looked up in the default one). */
static void fixed_image_env_without_equals(void)
{
    struct image_config img;
    image_ep_cmd(&img);
    SETV(img.env, img.n_env, "KEEP=1", "BARE", "PATH");
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    struct process_spec p;
    err_t err = ERR_INIT;
    CHECK_OK(make_spec(&img, &cfg, &p, &err));
    for (size_t i = 0; p.env && p.env[i]; i++)
        CHECK_MSG(strchr(p.env[i], '='), "environment entry \"%s\" has no '='", p.env[i]);
    CHECK_STREQ(env_val(p.env, "KEEP"), "1");
    process_spec_free(&p);
    err_clear(&err);
}

/* An env var with an empty value (`value: ""` in a pod) is not on the wire
 * at all in proto3, so the decoded KeyValue.value is {0, NULL};
 * container_process_spec then calls memchr(NULL, '\0', 0), which is
 * undefined behaviour (glibc declares memchr's pointer nonnull). The check
 * below passes in a plain build; the failure is UBSan's report in
 * build-asan: "container_spec.c:190:13: runtime error: null pointer passed
 * as argument 1, which is declared to never be null" (and an abort under
 * `meson test`, which sets UBSAN_OPTIONS=halt_on_error=1). */
static void fixed_empty_env_value_null_data(void)
{
    struct image_config img;
    image_ep_cmd(&img);
    Runtime__V1__KeyValue empty = RUNTIME__V1__KEY_VALUE__INIT;
    empty.key = "EMPTY";
    Runtime__V1__KeyValue *envs[] = {&empty};
    Runtime__V1__ContainerConfig cfg = RUNTIME__V1__CONTAINER_CONFIG__INIT;
    cfg.envs = envs, cfg.n_envs = 1;
    struct process_spec p;
    err_t err = ERR_INIT;
    CHECK_OK(make_spec(&img, &cfg, &p, &err));
    CHECK_STREQ(env_val(p.env, "EMPTY"), "");
    process_spec_free(&p);
    err_clear(&err);
}

int main(void)
{
    fixture_make();
    RUN(test_argv_image_only);
    RUN(test_argv_args_replace_cmd);
    RUN(test_argv_command_replaces_entrypoint_and_cmd);
    RUN(test_argv_command_and_args);
    RUN(test_argv_errors);
    RUN(test_env_merge_order);
    RUN(test_env_path_default);
    RUN(test_env_hostname_term_home);
    RUN(test_env_values);
    RUN(test_env_errors);
    RUN(test_working_dir);
    RUN(test_exec_candidates);
    RUN(test_exec_spec);
    RUN(test_process_spec_huge);
    RUN(test_plan_default_sequence);
    RUN(test_plan_readonly_rootfs_and_pod_files);
    RUN(test_plan_privileged);
    RUN(test_plan_cgroup_v1);
    RUN(test_plan_cri_binds);
    RUN(test_plan_propagation_and_rro);
    RUN(test_plan_unsupported);
    RUN(test_plan_bad_paths);
    RUN(test_plan_devices);
    RUN(test_plan_masked_readonly_paths);
    RUN(test_plan_owns_strings);
    RUN(test_plan_huge);
    RUN(fixed_entrypoint_empty_string_is_reset);
    RUN(fixed_mounts_sorted_by_depth);
    RUN(fixed_rro_needs_private_propagation);
    RUN(fixed_image_env_without_equals);
    RUN(fixed_empty_env_value_null_data);
    fixture_free();
    return unit_summary();
}
