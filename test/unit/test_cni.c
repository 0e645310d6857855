/* CNI plugins driven on a real libuv loop.
 *
 * Two kinds of plugins: a fake one (a python script written into a temporary
 * bin dir, behaving as its configuration says and logging every call with
 * its environment and stdin) for the protocol details and the failures; and
 * the real containernetworking plugins of /usr/lib/cni for pod networking.
 *
 * Isolation: when run as root, main() first moves the whole test process into
 * a network and mount namespace of its own (unshare, before any thread
 * exists), with a fresh sysfs and loopback up. That private namespace plays
 * the host: every bridge, veth and iptables rule the plugins create lives
 * there and disappears with the process, and pod namespaces are bind mounts
 * that only this mount namespace sees. Nothing touches the real host network;
 * traffic stays between the test's own namespaces and its loopback. Each test
 * still removes what it made and checks that it is gone. Without root, the
 * real-plugin tests are skipped. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "net/cni.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "unit.h"

#define REAL_BIN "/usr/lib/cni"

static uv_loop_t loop;
static char tmpdir[64];  /* everything on disk: confs, bins, caches, IPAM stores */
static char nsdir[64];   /* /run/edgecri-test-XXXXXX: the pod namespaces */
static bool private_net; /* the test runs in its own network namespace */
static int links_at_start;
static int env_counter;

/* ---- helpers ---- */

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    CHECK_MSG(fd >= 0, "creating %s: %s", path, strerror(errno));
    if (fd < 0)
        return;
    size_t len = strlen(text);
    CHECK_MSG(write(fd, text, len) == (ssize_t)len, "writing %s", path);
    close(fd);
    chmod(path, mode);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&cmd, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    int st = system(cmd);
    free(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Output of a shell command (stderr included). */
static char *sh_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *sh_out(const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&cmd, fmt, ap);
    va_end(ap);
    if (n < 0)
        return strdup("");
    char *full = NULL;
    if (asprintf(&full, "%s 2>&1", cmd) < 0)
        full = NULL;
    free(cmd);
    FILE *f = full ? popen(full, "r") : NULL;
    free(full);
    size_t cap = 4096, len = 0;
    char *buf = calloc(1, cap);
    if (!f)
        return buf;
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len < 1024) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    buf[len] = '\0';
    pclose(f);
    return buf;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Alive and not a zombie. */
static bool proc_alive(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* Every "plugin child" pair a hanging fake plugin recorded is dead. */
static void check_pidfile_dead(const char *pidfile)
{
    usleep(100000);
    FILE *f = fopen(pidfile, "r");
    CHECK(f != NULL);
    if (!f)
        return;
    int p1, p2, pairs = 0;
    while (fscanf(f, "%d %d", &p1, &p2) == 2) {
        pairs++;
        CHECK_MSG(!proc_alive(p1), "plugin %d still alive", p1);
        CHECK_MSG(!proc_alive(p2), "plugin's child %d still alive", p2);
    }
    fclose(f);
    CHECK(pairs > 0);
}

/* ---- a test environment: its own dirs ---- */

struct env {
    char dir[256], conf[PATH_MAX], bin[PATH_MAX], cache[PATH_MAX], ipam[PATH_MAX], log[PATH_MAX];
    const char *bins[2];
    struct cni *c;
};

/* The fake plugin: does what the "fake" object of its configuration says,
 * and logs each call (plugin name, command, CNI_* environment, stdin). */
static const char fake_plugin[] =
    "#!/usr/bin/python3\n"
    "import json, os, sys, time, subprocess\n"
    "name = os.path.basename(sys.argv[0])\n"
    "data = sys.stdin.read()\n"
    "conf = json.loads(data) if data else {}\n"
    "cmd = os.environ.get('CNI_COMMAND', '')\n"
    "b = conf.get('fake', {})\n"
    "if b.get('log'):\n"
    "    with open(b['log'], 'a') as f:\n"
    "        env = {k: v for k, v in os.environ.items() if k.startswith('CNI_')}\n"
    "        f.write(json.dumps({'plugin': name, 'cmd': cmd, 'env': env, 'conf': conf}) + '\\n')\n"
    "if cmd in b.get('on', ['ADD', 'DEL', 'CHECK']):\n"
    "    if b.get('hang'):\n"
    "        p = subprocess.Popen(['sleep', '300'])\n"
    "        with open(b['pidfile'], 'a') as f:\n"
    "            f.write('%d %d\\n' % (os.getpid(), p.pid))\n"
    "        time.sleep(300)\n"
    "    if b.get('flood'):\n"
    "        sys.stdout.write('x' * (2 << 20))\n"
    "        sys.stdout.flush()\n"
    "        sys.exit(0)\n"
    "    if 'stderr' in b:\n"
    "        sys.stderr.write(b['stderr'])\n"
    "    if 'raw' in b:\n"
    "        sys.stdout.write(b['raw'])\n"
    "        sys.exit(b.get('exit', 0))\n"
    "    if 'fail' in b:\n"
    "        sys.stdout.write(json.dumps(b['fail']))\n"
    "        sys.exit(b.get('exit', 1))\n"
    "    if b.get('exit'):\n"
    "        sys.exit(b['exit'])\n"
    "if cmd == 'ADD':\n"
    "    res = b.get('result') or conf.get('prevResult') or {'cniVersion': conf.get('cniVersion'), 'ips': []}\n"
    "    sys.stdout.write(json.dumps(res))\n";

static const char *const fake_names[] = {"fakea", "fakeb", "fakec", "fakefail", "fakehang"};

static void env_init(struct env *e, const char *name)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "%s/%02d-%s", tmpdir, env_counter++, name);
    snprintf(e->conf, sizeof(e->conf), "%s/net.d", e->dir);
    snprintf(e->bin, sizeof(e->bin), "%s/bin", e->dir);
    snprintf(e->cache, sizeof(e->cache), "%s/cache", e->dir);
    snprintf(e->ipam, sizeof(e->ipam), "%s/ipam", e->dir);
    snprintf(e->log, sizeof(e->log), "%s/calls.jsonl", e->dir);
    err_t err = ERR_INIT;
    CHECK_OK(fs_mkdir_p(e->conf, 0755, &err));
    CHECK_OK(fs_mkdir_p(e->bin, 0755, &err));
    err_clear(&err);
    for (size_t i = 0; i < ARRAY_SIZE(fake_names); i++) {
        char p[PATH_MAX + 32];
        snprintf(p, sizeof(p), "%s/%s", e->bin, fake_names[i]);
        write_file(p, fake_plugin, 0755);
    }
    e->bins[0] = e->bin;
    e->bins[1] = REAL_BIN;
}

static struct cni *env_cni(struct env *e, size_t n_bins, uint64_t timeout_ms)
{
    struct cni_options o = {.conf_dir = e->conf,
                            .bin_dirs = e->bins,
                            .n_bin_dirs = n_bins,
                            .cache_dir = e->cache,
                            .timeout_ms = timeout_ms};
    err_t err = ERR_INIT;
    struct cni *c = NULL;
    int r = cni_new(&loop, &o, &c, &err);
    CHECK_MSG(r == 0, "cni_new: %s", err.msg ? err.msg : "");
    err_clear(&err);
    e->c = c;
    return c;
}

static void env_conf(struct env *e, const char *file, json_t *doc)
{
    char p[PATH_MAX + 64];
    snprintf(p, sizeof(p), "%s/%s", e->conf, file);
    char *text = json_dumps(doc, JSON_INDENT(1));
    write_file(p, text, 0644);
    free(text);
    json_decref(doc);
}

/* The calls the fake plugins logged, as a JSON array. */
static json_t *read_log(struct env *e)
{
    json_t *arr = json_array();
    FILE *f = fopen(e->log, "r");
    if (!f)
        return arr;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *o = json_loads(line, 0, NULL);
        if (o)
            json_array_append_new(arr, o);
    }
    free(line);
    fclose(f);
    return arr;
}

/* "fakea:ADD fakeb:ADD ..." */
static char *log_summary(struct env *e)
{
    json_t *arr = read_log(e);
    size_t cap = 4096;
    char *s = calloc(1, cap);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        size_t len = strlen(s);
        snprintf(s + len, cap - len, "%s%s:%s", len ? " " : "", json_string_value(json_object_get(v, "plugin")),
                 json_string_value(json_object_get(v, "cmd")));
    }
    json_decref(arr);
    return s;
}

static void clear_log(struct env *e)
{
    unlink(e->log);
}

/* ---- waiting for an operation ---- */

struct outcome {
    int calls;
    bool ok;
    enum err_code code;
    char *msg;
    struct cni_result *res;
};

static void on_done(void *data, const struct cni_result *res, const err_t *err)
{
    struct outcome *o = data;
    o->calls++;
    o->ok = err == NULL;
    if (err) {
        o->code = err->code;
        o->msg = strdup(err->msg ? err->msg : "");
    }
    if (res)
        o->res = cni_result_dup(res);
}

static void outcome_clear(struct outcome *o)
{
    free(o->msg);
    cni_result_free(o->res);
    memset(o, 0, sizeof(*o));
}

enum op { ADD, DEL, CHECK_OP };

/* Runs one operation to its end; returns whether it succeeded. */
static bool run_op(struct cni *c, enum op op, const struct cni_request *req, struct outcome *o)
{
    outcome_clear(o);
    err_t err = ERR_INIT;
    int r = op == ADD   ? cni_add(c, req, on_done, o, &err)
            : op == DEL ? cni_del(c, req, on_done, o, &err)
                        : cni_check(c, req, on_done, o, &err);
    if (r < 0) {
        o->msg = strdup(err.msg ? err.msg : "");
        o->code = err.code;
        err_clear(&err);
        return false;
    }
    CHECK_EQ_INT(o->calls, 0); /* never from inside the call */
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(o->calls, 1);
    return o->ok;
}

#define EXPECT_OK(c, op, req, o)                                                                                       \
    do {                                                                                                               \
        bool ok_ = run_op(c, op, req, o);                                                                              \
        CHECK_MSG(ok_, "%s failed: %s", #op, (o)->msg ? (o)->msg : "");                                                \
    } while (0)

/* ---- pod network namespaces ---- */

static void netns_path(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", nsdir, name);
}

/* A fresh network namespace kept alive by a bind mount at nsdir/name. */
static bool netns_create(const char *name)
{
    char path[PATH_MAX];
    netns_path(path, sizeof(path), name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    close(fd);
    pid_t pid = fork();
    if (pid == 0) {
        if (unshare(CLONE_NEWNET) < 0 || mount("/proc/self/ns/net", path, NULL, MS_BIND, NULL) < 0)
            _exit(1);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void netns_delete(const char *name)
{
    char path[PATH_MAX];
    netns_path(path, sizeof(path), name);
    umount2(path, MNT_DETACH);
    unlink(path);
}

/* ---- configurations ---- */

static json_t *fake_plugin_conf(struct env *e, const char *type)
{
    return json_pack("{s:s, s:{s:s}}", "type", type, "fake", "log", e->log);
}

static json_t *fake_list(const char *version, const char *name, json_t *plugins)
{
    return json_pack("{s:s, s:s, s:o}", "cniVersion", version, "name", name, "plugins", plugins);
}

/* A 1.0.0 result with a host-side gateway address, IPv6 listed first. */
static json_t *sample_result(void)
{
    return json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s, s:s}], s:[{s:s, s:i}, {s:s, s:i, s:s}, {s:s, s:i}]}",
                     "cniVersion", "1.0.0", "interfaces", "name", "br0", "mac", "aa:aa:aa:aa:aa:aa", "name", "eth0",
                     "mac", "0a:58:0a:01:02:03", "sandbox", "/proc/self/ns/net", "ips", "address", "fd00::5/64",
                     "interface", 1, "address", "10.1.2.3/24", "interface", 1, "gateway", "10.1.2.1", "address",
                     "10.1.2.1/24", "interface", 0);
}

static struct cni_request fake_req(const char *id)
{
    return (struct cni_request){.container_id = id,
                                .netns = "/proc/self/ns/net",
                                .ifname = "eth0",
                                .pod_name = "web",
                                .pod_namespace = "default",
                                .pod_uid = "uid-1"};
}

/* ---- tests: configuration ---- */

static void test_config_dir(void)
{
    struct env e;
    env_init(&e, "confdir");
    struct cni *c = env_cni(&e, 1, 0);
    if (!c)
        return;
    char *why = NULL;
    CHECK(!cni_ready(c, &why));
    char expect[PATH_MAX + 128];
    snprintf(expect, sizeof(expect), "no CNI configuration in %s and no pod CIDR for the built-in network", e.conf);
    CHECK_STREQ(why, expect);
    free(why);
    CHECK_STREQ(cni_network_name(c), "");

    /* Lexical order; a .conf holds one plugin and is wrapped. */
    env_conf(&e, "10-b.conflist", fake_list("1.0.0", "netb", json_pack("[o]", fake_plugin_conf(&e, "fakea"))));
    json_t *single = fake_plugin_conf(&e, "fakeb");
    json_object_set_new(single, "cniVersion", json_string("1.0.0"));
    json_object_set_new(single, "name", json_string("neta"));
    env_conf(&e, "05-a.conf", single);
    err_t err = ERR_INIT;
    CHECK_OK(cni_reload(c, &err));
    CHECK_STREQ(cni_network_name(c), "neta");
    char p[PATH_MAX + 64];
    snprintf(p, sizeof(p), "%s/05-a.conf", e.conf);
    CHECK_STREQ(cni_network_file(c), p);
    CHECK(cni_ready(c, &why));
    CHECK(why == NULL);

    /* The single plugin runs as a list of one, with name/cniVersion. */
    struct cni_request req = fake_req("conf1");
    struct outcome o = {0};
    EXPECT_OK(c, ADD, &req, &o);
    json_t *calls = read_log(&e);
    CHECK_EQ_INT(json_array_size(calls), 1);
    json_t *conf = json_object_get(json_array_get(calls, 0), "conf");
    CHECK_STREQ(json_string_value(json_object_get(conf, "name")), "neta");
    CHECK_STREQ(json_string_value(json_object_get(conf, "type")), "fakeb");
    json_decref(calls);
    EXPECT_OK(c, DEL, &req, &o);
    clear_log(&e);

    /* Files that cannot be used are skipped with a warning, hidden files and
     * other extensions ignored; a FIFO must not hang the reload. */
    snprintf(p, sizeof(p), "%s/00-dir.conf", e.conf);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/00-fifo.conflist", e.conf);
    CHECK_OK(mkfifo(p, 0644) < 0 ? -errno : 0);
    snprintf(p, sizeof(p), "%s/01-bad.conflist", e.conf);
    write_file(p, "{ this is not json", 0644);
    snprintf(p, sizeof(p), "%s/02-dup.conflist", e.conf);
    write_file(p, "{\"cniVersion\":\"1.0.0\",\"name\":\"a\",\"name\":\"b\",\"plugins\":[{\"type\":\"fakea\"}]}", 0644);
    env_conf(&e, "03-path.conflist", fake_list("1.0.0", "pathnet", json_pack("[{s:s}]", "type", "../fakea")));
    env_conf(&e, "03-dots.conflist", fake_list("1.0.0", "dotnet", json_pack("[{s:s}]", "type", "..")));
    env_conf(&e, "04-old.conflist", fake_list("0.2.0", "oldnet", json_pack("[{s:s}]", "type", "fakea")));
    env_conf(&e, "04-noplugins.conflist", json_pack("{s:s, s:s}", "cniVersion", "1.0.0", "name", "empty"));
    env_conf(&e, "04-single.conflist",
             json_pack("{s:s, s:s, s:s}", "cniVersion", "1.0.0", "name", "single", "type", "fakea"));
    env_conf(&e, ".00-hidden.conflist", fake_list("1.0.0", "hidden", json_pack("[{s:s}]", "type", "fakea")));
    env_conf(&e, "00-other.txt", fake_list("1.0.0", "txt", json_pack("[{s:s}]", "type", "fakea")));
    double t0 = now_s();
    CHECK_OK(cni_reload(c, &err));
    CHECK(now_s() - t0 < 2.0);
    CHECK_STREQ(cni_network_name(c), "neta");

    /* A .json file and a symlink to a regular file are fine. */
    env_conf(&e, "00-x.json", fake_list("1.0.0", "jsonnet", json_pack("[{s:s}]", "type", "fakea")));
    CHECK_OK(cni_reload(c, &err));
    CHECK_STREQ(cni_network_name(c), "jsonnet");
    char target[PATH_MAX + 64];
    snprintf(target, sizeof(target), "%s/elsewhere.conflist", e.dir);
    write_file(target, "{\"cniVersion\":\"0.4.0\",\"name\":\"linked\",\"plugins\":[{\"type\":\"fakea\"}]}", 0644);
    snprintf(p, sizeof(p), "%s/00-link.conflist", e.conf);
    CHECK_OK(symlink(target, p) < 0 ? -errno : 0);
    /* No explicit reload: the directory changed, cni_ready notices. */
    CHECK(cni_ready(c, NULL));
    CHECK_STREQ(cni_network_name(c), "linked");

    /* The chosen file edited in place is noticed too. */
    write_file(target, "{\"cniVersion\":\"0.4.0\",\"name\":\"linked2\",\"plugins\":[{\"type\":\"fakea\"}]}", 0644);
    CHECK_STREQ(cni_network_name(c), "linked2");

    /* Only unusable files: not ready, and the reason names them; the
     * built-in network does not stand in for a broken configuration. */
    unlink(p);
    snprintf(p, sizeof(p), "%s/00-x.json", e.conf);
    unlink(p);
    snprintf(p, sizeof(p), "%s/05-a.conf", e.conf);
    unlink(p);
    snprintf(p, sizeof(p), "%s/10-b.conflist", e.conf);
    unlink(p);
    CHECK_OK(cni_reload(c, &err));
    CHECK_OK(cni_set_default_network(c, "10.123.99.0/24", &err));
    CHECK(!cni_ready(c, &why));
    CHECK_CONTAINS(why, "no usable CNI configuration in");
    CHECK_CONTAINS(why, "00-dir.conf: ");
    CHECK_CONTAINS(why, "not a regular file");
    CHECK_CONTAINS(why, "00-fifo.conflist");
    CHECK_CONTAINS(why, "01-bad.conflist: line 1");
    free(why);
    CHECK_STREQ(cni_network_name(c), "");
    CHECK(cni_add(c, &req, on_done, &o, &err) < 0);
    CHECK_CONTAINS(err.msg, "no usable CNI configuration");
    err_clear(&err);

    /* Each unusable file, on its own, says why. */
    const struct {
        const char *file, *why;
    } cases[] = {
        {"01-bad.conflist", "line 1"},
        {"02-dup.conflist", "duplicate"},
        {"03-dots.conflist", "not a plain file name"},
        {"03-path.conflist", "not a plain file name"},
        {"04-noplugins.conflist", "no \"plugins\" list"},
        {"04-old.conflist", "cniVersion \"0.2.0\" is not supported"},
        {"04-single.conflist", "no \"plugins\" list"},
    };
    snprintf(p, sizeof(p), "%s/00-dir.conf", e.conf);
    rmdir(p);
    snprintf(p, sizeof(p), "%s/00-fifo.conflist", e.conf);
    unlink(p);
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        CHECK_OK(cni_reload(c, &err));
        CHECK(!cni_ready(c, &why));
        char first[256];
        snprintf(first, sizeof(first), "(skipped %s: ", cases[i].file);
        CHECK_CONTAINS(why, first);
        CHECK_CONTAINS(why, cases[i].why);
        free(why);
        snprintf(p, sizeof(p), "%s/%s", e.conf, cases[i].file);
        unlink(p);
    }
    /* Now empty (but for the hidden and .txt files): the built-in network. */
    CHECK_OK(cni_reload(c, &err));
    CHECK_STREQ(cni_network_name(c), "edgecri");
    cni_free(c);
    outcome_clear(&o);
}

static void test_default_network(void)
{
    struct env e;
    env_init(&e, "default");
    e.bins[0] = REAL_BIN;
    struct cni *c = env_cni(&e, 1, 0);
    if (!c)
        return;
    err_t err = ERR_INIT;
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/default.conflist", e.cache);

    CHECK_OK(cni_set_default_network(c, "", &err));
    CHECK(!cni_ready(c, NULL));
    CHECK(!exists(path));

    CHECK_OK(cni_set_default_network(c, "10.123.50.0/24", &err));
    char *why = NULL;
    bool ready = cni_ready(c, &why);
    CHECK_MSG(ready, "not ready: %s", why ? why : "");
    free(why);
    CHECK_STREQ(cni_network_name(c), "edgecri");
    CHECK_STREQ(cni_network_file(c), path);
    json_error_t jerr;
    json_t *d = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    CHECK(d != NULL);
    char ipam[PATH_MAX + 16];
    snprintf(ipam, sizeof(ipam), "%s/ipam", e.cache);
    const char *v, *name, *br, *ptype, *ltype, *itype, *sub, *dst, *dir;
    int gw, masq, hairpin, pm;
    json_t *ranges = NULL;
    int r = json_unpack_ex(d, &jerr, 0,
                           "{s:s, s:s, s:[{s:s, s:s, s:b, s:b, s:b, s:{s:s, s:o, s:[{s:s}], s:s}}, "
                           "{s:s, s:{s:b}}, {s:s}]}",
                           "cniVersion", &v, "name", &name, "plugins", "type", &ptype, "bridge", &br, "isGateway", &gw,
                           "ipMasq", &masq, "hairpinMode", &hairpin, "ipam", "type", &itype, "ranges", &ranges,
                           "routes", "dst", &dst, "dataDir", &dir, "type", &ptype, "capabilities", "portMappings", &pm,
                           "type", &ltype);
    CHECK_MSG(r == 0, "default network: %s", jerr.text);
    if (r == 0) {
        CHECK_STREQ(v, "1.0.0");
        CHECK_STREQ(name, "edgecri");
        CHECK_STREQ(br, "edgecri0");
        CHECK(gw && masq && hairpin && pm);
        CHECK_STREQ(itype, "host-local");
        CHECK_STREQ(dir, ipam);
        CHECK_STREQ(ptype, "portmap");
        CHECK_STREQ(ltype, "loopback");
        CHECK_STREQ(dst, "0.0.0.0/0");
        CHECK_EQ_INT(json_array_size(ranges), 1);
        sub = json_string_value(json_object_get(json_array_get(json_array_get(ranges, 0), 0), "subnet"));
        CHECK_STREQ(sub, "10.123.50.0/24");
    }
    json_decref(d);

    /* Dual stack: one range set and one default route per family. */
    CHECK_OK(cni_set_default_network(c, "10.123.50.0/24, fd00:123:50::/64", &err));
    d = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    json_t *ip = json_object_get(json_array_get(json_object_get(d, "plugins"), 0), "ipam");
    ranges = json_object_get(ip, "ranges");
    CHECK_EQ_INT(json_array_size(ranges), 2);
    CHECK_STREQ(json_string_value(json_object_get(json_array_get(json_array_get(ranges, 1), 0), "subnet")),
                "fd00:123:50::/64");
    CHECK_STREQ(json_string_value(json_object_get(json_array_get(json_object_get(ip, "routes"), 1), "dst")), "::/0");
    json_decref(d);

    /* Bad lists are refused and leave the network as it was. */
    CHECK(cni_set_default_network(c, "10.123.50.0", &err) < 0);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    err_clear(&err);
    CHECK(cni_set_default_network(c, "10.1.0.0/16,10.2.0.0/16", &err) < 0);
    CHECK_CONTAINS(err.msg, "two IPv4");
    err_clear(&err);
    CHECK(cni_set_default_network(c, "10.1.0.0/33", &err) < 0);
    err_clear(&err);
    CHECK_STREQ(cni_network_name(c), "edgecri");

    /* A configuration file wins over the built-in network. */
    env_conf(&e, "10-mine.conflist", fake_list("1.0.0", "mine", json_pack("[{s:s}]", "type", "loopback")));
    CHECK_STREQ(cni_network_name(c), "mine");
    snprintf(path, sizeof(path), "%s/10-mine.conflist", e.conf);
    unlink(path);
    CHECK_STREQ(cni_network_name(c), "edgecri");

    /* Plugins missing: not ready, the reason names the plugin and the path. */
    struct env e2;
    env_init(&e2, "default-nobins");
    struct cni *c2 = env_cni(&e2, 1, 0);
    if (c2) {
        CHECK_OK(cni_set_default_network(c2, "10.123.51.0/24", &err));
        CHECK(!cni_ready(c2, &why));
        char expect[PATH_MAX + 64];
        snprintf(expect, sizeof(expect), "plugin bridge not found in %s", e2.bin);
        CHECK_CONTAINS(why, expect);
        free(why);
        cni_free(c2);
    }

    /* An empty CIDR removes the network and its file. */
    CHECK_OK(cni_set_default_network(c, "", &err));
    snprintf(path, sizeof(path), "%s/default.conflist", e.cache);
    CHECK(!exists(path));
    CHECK(!cni_ready(c, &why));
    CHECK_CONTAINS(why, "no pod CIDR");
    free(why);
    cni_free(c);
}

/* ---- tests: the protocol, with fake plugins ---- */

static json_t *find_call(json_t *calls, const char *plugin, const char *cmd, int nth)
{
    size_t i;
    json_t *v;
    json_array_foreach(calls, i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "plugin")), plugin) == 0 &&
            strcmp(json_string_value(json_object_get(v, "cmd")), cmd) == 0 && nth-- == 0)
            return v;
    }
    return NULL;
}

static void test_fake_chain(void)
{
    struct env e;
    env_init(&e, "chain");
    json_t *a = fake_plugin_conf(&e, "fakea");
    json_object_set_new(json_object_get(a, "fake"), "result", sample_result());
    json_object_set_new(
        a, "capabilities",
        json_pack("{s:b, s:b, s:b, s:b, s:b}", "portMappings", 1, "bandwidth", 1, "ips", 1, "other", 1, "mac", 0));
    json_object_set_new(a, "runtimeConfig", json_pack("{s:i}", "stale", 1));
    json_object_set_new(a, "prevResult", json_pack("{s:i}", "stale", 1));
    json_object_set_new(a, "name", json_string("ignored"));
    json_t *b = fake_plugin_conf(&e, "fakeb");
    json_object_set_new(b, "capabilities", json_pack("{s:b}", "portMappings", 0));
    env_conf(&e, "10-chain.conflist", fake_list("1.0.0", "chainnet", json_pack("[o, o]", a, b)));
    struct cni *c = env_cni(&e, 1, 0);
    if (!c)
        return;

    struct cni_port_mapping pms[] = {
        {8080, 80, "tcp", NULL}, {0, 81, "tcp", NULL}, {9090, 90, "UDP", "127.0.0.1"}, {7070, 70, NULL, ""}};
    struct cni_bandwidth bw = {.ingress_rate = 1000000, .egress_burst = 2048};
    const char *ips[] = {"10.1.2.3"};
    struct cni_request req = fake_req("c0ffee01");
    req.port_mappings = pms;
    req.n_port_mappings = ARRAY_SIZE(pms);
    req.bandwidth = &bw;
    req.ips = ips;
    req.n_ips = 1;
    struct outcome o = {0};
    EXPECT_OK(c, ADD, &req, &o);
    CHECK(o.res != NULL);
    if (o.res) {
        CHECK_EQ_INT(o.res->n_ips, 2);
        if (o.res->n_ips == 2) {
            CHECK_STREQ(o.res->ips[0], "10.1.2.3"); /* v4 first, no prefix, host side left out */
            CHECK_STREQ(o.res->ips[1], "fd00::5");
        }
        CHECK_STREQ(o.res->interface_mac, "0a:58:0a:01:02:03");
        json_t *raw = json_loads(o.res->raw_json, 0, NULL);
        json_t *sample = sample_result();
        CHECK(json_equal(raw, sample));
        json_decref(raw);
        json_decref(sample);
    }

    char *sum = log_summary(&e);
    CHECK_STREQ(sum, "fakea:ADD fakeb:ADD");
    free(sum);
    json_t *calls = read_log(&e);
    json_t *ca = find_call(calls, "fakea", "ADD", 0), *cb = find_call(calls, "fakeb", "ADD", 0);
    json_t *env = json_object_get(ca, "env");
    CHECK_STREQ(json_string_value(json_object_get(env, "CNI_COMMAND")), "ADD");
    CHECK_STREQ(json_string_value(json_object_get(env, "CNI_CONTAINERID")), "c0ffee01");
    CHECK_STREQ(json_string_value(json_object_get(env, "CNI_NETNS")), "/proc/self/ns/net");
    CHECK_STREQ(json_string_value(json_object_get(env, "CNI_IFNAME")), "eth0");
    CHECK_STREQ(json_string_value(json_object_get(env, "CNI_PATH")), e.bin);
    CHECK_STREQ(json_string_value(json_object_get(env, "CNI_ARGS")),
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=c0ffee01;"
                "K8S_POD_UID=uid-1");
    json_t *conf = json_object_get(ca, "conf");
    CHECK_STREQ(json_string_value(json_object_get(conf, "name")), "chainnet");
    CHECK_STREQ(json_string_value(json_object_get(conf, "cniVersion")), "1.0.0");
    CHECK(json_object_get(conf, "capabilities") == NULL);
    CHECK(json_object_get(conf, "prevResult") == NULL);
    json_t *rc = json_object_get(conf, "runtimeConfig");
    json_t *want =
        json_pack("{s:[{s:i, s:i, s:s}, {s:i, s:i, s:s, s:s}, {s:i, s:i, s:s}], s:{s:i, s:i}, s:[s]}", "portMappings",
                  "hostPort", 8080, "containerPort", 80, "protocol", "tcp", "hostPort", 9090, "containerPort", 90,
                  "protocol", "udp", "hostIP", "127.0.0.1", "hostPort", 7070, "containerPort", 70, "protocol", "tcp",
                  "bandwidth", "ingressRate", 1000000, "egressBurst", 2048, "ips", "10.1.2.3");
    char *got = json_dumps(rc, JSON_SORT_KEYS | JSON_COMPACT);
    CHECK_MSG(json_equal(rc, want), "runtimeConfig %s", got ? got : "(none)");
    free(got);
    json_decref(want);
    conf = json_object_get(cb, "conf");
    CHECK(json_object_get(conf, "runtimeConfig") == NULL); /* it asked for nothing */
    CHECK(json_object_get(conf, "capabilities") == NULL);
    json_t *sample = sample_result();
    CHECK(json_equal(json_object_get(conf, "prevResult"), sample));
    json_decref(calls);

    char cache[PATH_MAX + 64];
    snprintf(cache, sizeof(cache), "%s/results/c0ffee01@eth0.json", e.cache);
    CHECK(exists(cache));

    /* The cache outlives the agent: a new instance finds it. */
    cni_free(c);
    c = env_cni(&e, 1, 0);
    if (!c)
        return;

    /* CHECK: in order, with the cached result and the same runtimeConfig. */
    clear_log(&e);
    EXPECT_OK(c, CHECK_OP, &req, &o);
    sum = log_summary(&e);
    CHECK_STREQ(sum, "fakea:CHECK fakeb:CHECK");
    free(sum);
    calls = read_log(&e);
    conf = json_object_get(find_call(calls, "fakea", "CHECK", 0), "conf");
    CHECK(json_equal(json_object_get(conf, "prevResult"), sample));
    CHECK(json_object_get(json_object_get(conf, "runtimeConfig"), "portMappings") != NULL);
    json_decref(calls);

    /* DEL: reverse order, cached result as prevResult, cache removed. A
     * configuration change in between does not matter: DEL uses what ADD used. */
    char p[PATH_MAX + 64];
    snprintf(p, sizeof(p), "%s/10-chain.conflist", e.conf);
    unlink(p);
    env_conf(&e, "20-other.conflist", fake_list("1.0.0", "othernet", json_pack("[o]", fake_plugin_conf(&e, "fakec"))));
    clear_log(&e);
    struct cni_request del = {.container_id = "c0ffee01", .ifname = "eth0", .netns = "/proc/self/ns/net"};
    EXPECT_OK(c, DEL, &del, &o);
    CHECK(o.res == NULL);
    sum = log_summary(&e);
    CHECK_STREQ(sum, "fakeb:DEL fakea:DEL");
    free(sum);
    calls = read_log(&e);
    conf = json_object_get(find_call(calls, "fakeb", "DEL", 0), "conf");
    CHECK(json_equal(json_object_get(conf, "prevResult"), sample));
    CHECK_STREQ(json_string_value(json_object_get(conf, "name")), "chainnet");
    CHECK_STREQ(
        json_string_value(json_object_get(json_object_get(find_call(calls, "fakea", "DEL", 0), "env"), "CNI_ARGS")),
        "IgnoreUnknown=1");
    json_decref(calls);
    CHECK(!exists(cache));

    /* DEL again: no cache, the current network without prevResult. */
    clear_log(&e);
    EXPECT_OK(c, DEL, &del, &o);
    sum = log_summary(&e);
    CHECK_STREQ(sum, "fakec:DEL");
    free(sum);
    calls = read_log(&e);
    CHECK(json_object_get(json_object_get(find_call(calls, "fakec", "DEL", 0), "conf"), "prevResult") == NULL);
    json_decref(calls);

    /* A netns path that is no namespace any more (unmounted: a plain file
     * left behind) goes out as an empty CNI_NETNS. */
    clear_log(&e);
    del.netns = "/etc/hostname";
    EXPECT_OK(c, DEL, &del, &o);
    calls = read_log(&e);
    CHECK_STREQ(
        json_string_value(json_object_get(json_object_get(find_call(calls, "fakec", "DEL", 0), "env"), "CNI_NETNS")),
        "");
    json_decref(calls);
    del.netns = "/proc/self/ns/net";

    /* A damaged cache entry: DEL falls back to the current network and
     * removes it; CHECK reports it missing. */
    write_file(cache, "{\"version\":1,\"containerId\":\"c0ffee01\",", 0600);
    CHECK(!run_op(c, CHECK_OP, &req, &o));
    CHECK_EQ_INT(o.code, ERR_NOT_FOUND);
    write_file(cache, "{\"version\":1,\"containerId\":\"other\",\"ifName\":\"eth0\",\"config\":{},\"result\":{}}",
               0600);
    clear_log(&e);
    EXPECT_OK(c, DEL, &del, &o);
    sum = log_summary(&e);
    CHECK_STREQ(sum, "fakec:DEL");
    free(sum);
    CHECK(!exists(cache));

    /* CHECK without an ADD. */
    CHECK(!run_op(c, CHECK_OP, &req, &o));
    CHECK_EQ_INT(o.code, ERR_NOT_FOUND);

    /* A DEL with no network at all succeeds without running anything. */
    snprintf(p, sizeof(p), "%s/20-other.conflist", e.conf);
    unlink(p);
    clear_log(&e);
    EXPECT_OK(c, DEL, &del, &o);
    CHECK(!exists(e.log));

    json_decref(sample);
    outcome_clear(&o);
    cni_free(c);
}

static void test_bad_requests(void)
{
    struct env e;
    env_init(&e, "badreq");
    env_conf(&e, "10.conflist", fake_list("1.0.0", "n", json_pack("[o]", fake_plugin_conf(&e, "fakea"))));
    struct cni *c = env_cni(&e, 1, 0);
    if (!c)
        return;
    struct outcome o = {0};
    struct cni_request r = fake_req("x");
    const char *bad_ids[] = {"", "-x", "a/b", "a b", "../x", "a;b"};
    for (size_t i = 0; i < ARRAY_SIZE(bad_ids); i++) {
        r.container_id = bad_ids[i];
        CHECK_MSG(!run_op(c, ADD, &r, &o) && o.code == ERR_INVALID_ARGUMENT, "id \"%s\" accepted", bad_ids[i]);
    }
    r = fake_req("x");
    const char *bad_ifs[] = {"", ".", "..", "a/b", "a:b", "a b", "0123456789abcdef"};
    for (size_t i = 0; i < ARRAY_SIZE(bad_ifs); i++) {
        r.ifname = bad_ifs[i];
        CHECK_MSG(!run_op(c, ADD, &r, &o) && o.code == ERR_INVALID_ARGUMENT, "ifname \"%s\" accepted", bad_ifs[i]);
    }
    r = fake_req("x");
    r.pod_name = "a;b=c";
    CHECK(!run_op(c, ADD, &r, &o));
    CHECK_CONTAINS(o.msg, "K8S_POD_NAME");
    r = fake_req("x");
    r.netns = "relative/ns";
    CHECK(!run_op(c, ADD, &r, &o));
    r.netns = "/etc/hostname"; /* not a namespace */
    CHECK(!run_op(c, ADD, &r, &o));
    CHECK_CONTAINS(o.msg, "not a network namespace");
    r = fake_req("x");
    struct cni_port_mapping pm = {70000, 80, "tcp", NULL};
    r.port_mappings = &pm;
    r.n_port_mappings = 1;
    CHECK(!run_op(c, ADD, &r, &o));
    pm = (struct cni_port_mapping){80, 80, "icmp", NULL};
    CHECK(!run_op(c, ADD, &r, &o));
    pm = (struct cni_port_mapping){80, 80, "tcp", "not-an-ip"};
    CHECK(!run_op(c, ADD, &r, &o));
    r = fake_req("x");
    const char *ips[] = {"10.0.0.300"};
    r.ips = ips;
    r.n_ips = 1;
    CHECK(!run_op(c, ADD, &r, &o));
    CHECK(!exists(e.log)); /* nothing ran */
    outcome_clear(&o);
    cni_free(c);
}

static void test_versions(void)
{
    struct env e;
    env_init(&e, "versions");
    struct cni *c = env_cni(&e, 1, 0);
    if (!c)
        return;
    struct outcome o = {0};
    struct cni_request req = fake_req("v1");
    err_t err = ERR_INIT;
    char p[PATH_MAX + 64];
    snprintf(p, sizeof(p), "%s/10.conflist", e.conf);

    /* 0.4.0: "version" in each address, checked against the address. */
    json_t *a = fake_plugin_conf(&e, "fakea");
    json_object_set_new(json_object_get(a, "fake"), "result",
                        json_pack("{s:s, s:[{s:s, s:s, s:s}], s:[{s:s, s:s, s:i}]}", "cniVersion", "0.4.0",
                                  "interfaces", "name", "eth0", "mac", "02:00:00:00:00:01", "sandbox", "/x", "ips",
                                  "version", "4", "address", "192.168.7.9/24", "interface", 0));
    env_conf(&e, "10.conflist", fake_list("0.4.0", "v040", json_pack("[o]", a)));
    CHECK_OK(cni_reload(c, &err));
    EXPECT_OK(c, ADD, &req, &o);
    if (o.res) {
        CHECK_EQ_INT(o.res->n_ips, 1);
        CHECK_STREQ(o.res->ips[0], "192.168.7.9");
        CHECK_STREQ(o.res->interface_mac, "02:00:00:00:00:01");
    }
    clear_log(&e);
    EXPECT_OK(c, CHECK_OP, &req, &o);
    char *sum = log_summary(&e);
    CHECK_STREQ(sum, "fakea:CHECK");
    free(sum);
    EXPECT_OK(c, DEL, &req, &o);
    json_t *calls = read_log(&e);
    CHECK(json_object_get(json_object_get(find_call(calls, "fakea", "DEL", 0), "conf"), "prevResult") != NULL);
    json_decref(calls);

    /* 0.3.1: no CHECK (success without running), no prevResult on DEL. */
    a = fake_plugin_conf(&e, "fakea");
    json_object_set_new(
        json_object_get(a, "fake"), "result",
        json_pack("{s:s, s:[{s:s, s:s}]}", "cniVersion", "0.3.1", "ips", "version", "6", "address", "fd00::9/64"));
    env_conf(&e, "10.conflist", fake_list("0.3.1", "v031", json_pack("[o]", a)));
    CHECK_OK(cni_reload(c, &err));
    EXPECT_OK(c, ADD, &req, &o);
    if (o.res) {
        CHECK_EQ_INT(o.res->n_ips, 1);
        CHECK_STREQ(o.res->ips[0], "fd00::9");
        CHECK(o.res->interface_mac == NULL);
    }
    clear_log(&e);
    EXPECT_OK(c, CHECK_OP, &req, &o);
    CHECK(!exists(e.log));
    EXPECT_OK(c, DEL, &req, &o);
    calls = read_log(&e);
    json_t *del = find_call(calls, "fakea", "DEL", 0);
    CHECK(del != NULL);
    CHECK(json_object_get(json_object_get(del, "conf"), "prevResult") == NULL);
    json_decref(calls);

    /* disableCheck: CHECK runs nothing. */
    json_t *list = fake_list("1.0.0", "nocheck", json_pack("[o]", fake_plugin_conf(&e, "fakea")));
    json_object_set_new(list, "disableCheck", json_true());
    env_conf(&e, "10.conflist", list);
    CHECK_OK(cni_reload(c, &err));
    EXPECT_OK(c, ADD, &req, &o);
    clear_log(&e);
    EXPECT_OK(c, CHECK_OP, &req, &o);
    CHECK(!exists(e.log));
    EXPECT_OK(c, DEL, &req, &o);

    /* Results in other versions, or malformed, fail the ADD (and undo it). */
    const char *bad_results[] = {
        "{\"cniVersion\":\"0.2.0\",\"ip4\":{\"ip\":\"10.0.0.2/24\"}}",
        "{\"cniVersion\":\"1.1.0\",\"ips\":[]}",
        "{\"ips\":[]}",
        "{\"cniVersion\":\"0.4.0\",\"ips\":[{\"version\":\"6\",\"address\":\"10.0.0.2/24\"}]}",
        "{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"10.0.0.2\"}]}",
        "{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"10.0.0.2/24\",\"interface\":3}]}",
        "{\"cniVersion\":\"1.0.0\",\"ips\":{}}",
        "{\"cniVersion\":\"1.0.0\",\"ips\":[],\"ips\":[]}",
        "[1,2,3]",
        "not json at all",
        "",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad_results); i++) {
        a = fake_plugin_conf(&e, "fakea");
        json_object_set_new(json_object_get(a, "fake"), "raw", json_string(bad_results[i]));
        json_object_set_new(json_object_get(a, "fake"), "on", json_pack("[s]", "ADD"));
        env_conf(&e, "10.conflist", fake_list("1.0.0", "bad", json_pack("[o]", a)));
        CHECK_OK(cni_reload(c, &err));
        clear_log(&e);
        bool ok = run_op(c, ADD, &req, &o);
        CHECK_MSG(!ok, "result %s accepted", bad_results[i]);
        CHECK_CONTAINS(o.msg, "fakea");
        sum = log_summary(&e);
        CHECK_MSG(strcmp(sum, "fakea:ADD fakea:DEL") == 0, "result %s: calls %s", bad_results[i], sum);
        free(sum);
    }
    char cache[PATH_MAX + 64];
    snprintf(cache, sizeof(cache), "%s/results/v1@eth0.json", e.cache);
    CHECK(!exists(cache));
    outcome_clear(&o);
    cni_free(c);
}

static void test_plugin_failures(void)
{
    struct env e;
    env_init(&e, "failures");
    struct cni *c = env_cni(&e, 2, 1000);
    if (!c)
        return;
    struct outcome o = {0};
    struct cni_request req = fake_req("f1");
    err_t err = ERR_INIT;

    /* A CNI error: its msg and details in the message; the plugins run so
     * far (the failing one too) are DELeted in reverse; later ones never run. */
    json_t *fail = fake_plugin_conf(&e, "fakefail");
    json_object_set_new(json_object_get(fail, "fake"), "fail",
                        json_pack("{s:s, s:i, s:s, s:s}", "cniVersion", "1.0.0", "code", 7, "msg", "boom happened",
                                  "details", "the long details"));
    json_object_set_new(json_object_get(fail, "fake"), "on", json_pack("[s]", "ADD"));
    env_conf(&e, "10.conflist",
             fake_list("1.0.0", "failnet",
                       json_pack("[o, o, o]", fake_plugin_conf(&e, "fakea"), fail, fake_plugin_conf(&e, "fakec"))));
    CHECK_OK(cni_reload(c, &err));
    CHECK(!run_op(c, ADD, &req, &o));
    CHECK_CONTAINS(o.msg, "fakefail");
    CHECK_CONTAINS(o.msg, "boom happened");
    CHECK_CONTAINS(o.msg, "the long details");
    CHECK_CONTAINS(o.msg, "code 7");
    CHECK_CONTAINS(o.msg, "failnet");
    char *sum = log_summary(&e);
    CHECK_STREQ(sum, "fakea:ADD fakefail:ADD fakefail:DEL fakea:DEL");
    free(sum);
    json_t *calls = read_log(&e);
    /* The rollback's DEL gets the result so far as prevResult. */
    CHECK(json_object_get(json_object_get(find_call(calls, "fakea", "DEL", 0), "conf"), "prevResult") != NULL);
    json_decref(calls);
    char cache[PATH_MAX + 64];
    snprintf(cache, sizeof(cache), "%s/results/f1@eth0.json", e.cache);
    CHECK(!exists(cache));

    /* No CNI error object: stderr says why. */
    fail = fake_plugin_conf(&e, "fakefail");
    json_object_set_new(json_object_get(fail, "fake"), "stderr", json_string("something\nbroke\tbadly\n"));
    json_object_set_new(json_object_get(fail, "fake"), "exit", json_integer(2));
    json_object_set_new(json_object_get(fail, "fake"), "on", json_pack("[s]", "ADD"));
    env_conf(&e, "10.conflist", fake_list("1.0.0", "failnet", json_pack("[o]", fail)));
    CHECK_OK(cni_reload(c, &err));
    CHECK(!run_op(c, ADD, &req, &o));
    CHECK_CONTAINS(o.msg, "exit status 2");
    CHECK_CONTAINS(o.msg, "something broke badly");

    /* Undoing fails too: both are reported. */
    fail = fake_plugin_conf(&e, "fakefail");
    json_object_set_new(json_object_get(fail, "fake"), "fail",
                        json_pack("{s:i, s:s}", "code", 100, "msg", "always broken"));
    env_conf(&e, "10.conflist", fake_list("1.0.0", "failnet", json_pack("[o]", fail)));
    CHECK_OK(cni_reload(c, &err));
    CHECK(!run_op(c, ADD, &req, &o));
    CHECK_CONTAINS(o.msg, "always broken");
    CHECK_CONTAINS(o.msg, "undoing it also failed");

    /* DEL errors: "not found" kinds are success, others stop the DEL and
     * keep the cache for the next try. */
    CHECK(!exists(cache));
    const char *nf[][2] = {{"3", "container gone"}, {"100", "Link not found"}, {"100", "no such file or directory"}};
    for (size_t i = 0; i < ARRAY_SIZE(nf); i++) {
        fail = fake_plugin_conf(&e, "fakefail");
        json_object_set_new(json_object_get(fail, "fake"), "fail",
                            json_pack("{s:i, s:s}", "code", atoi(nf[i][0]), "msg", nf[i][1]));
        env_conf(&e, "10.conflist", fake_list("1.0.0", "delnet", json_pack("[o]", fail)));
        CHECK_OK(cni_reload(c, &err));
        clear_log(&e);
        EXPECT_OK(c, DEL, &req, &o); /* no cache: the current network */
        sum = log_summary(&e);
        CHECK_STREQ(sum, "fakefail:DEL");
        free(sum);
    }
    /* Re-ADD with the good network, then DEL with a failing network: the
     * cached configuration is used, so the DEL succeeds. */
    env_conf(&e, "10.conflist", fake_list("1.0.0", "delnet", json_pack("[o]", fake_plugin_conf(&e, "fakea"))));
    CHECK_OK(cni_reload(c, &err));
    EXPECT_OK(c, ADD, &req, &o);
    fail = fake_plugin_conf(&e, "fakefail");
    json_object_set_new(json_object_get(fail, "fake"), "fail",
                        json_pack("{s:i, s:s}", "code", 5, "msg", "disk on fire"));
    env_conf(&e, "10.conflist", fake_list("1.0.0", "delnet2", json_pack("[o]", fail)));
    CHECK_OK(cni_reload(c, &err));
    EXPECT_OK(c, DEL, &req, &o);
    CHECK(!exists(cache));
    /* Now a real DEL failure (no cache, current failing network). */
    CHECK(!run_op(c, DEL, &req, &o));
    CHECK_CONTAINS(o.msg, "disk on fire");
    /* A failing DEL keeps the cache. */
    fail = fake_plugin_conf(&e, "fakefail");
    json_object_set_new(json_object_get(fail, "fake"), "fail",
                        json_pack("{s:i, s:s}", "code", 5, "msg", "disk on fire"));
    json_object_set_new(json_object_get(fail, "fake"), "on", json_pack("[s]", "DEL"));
    env_conf(&e, "10.conflist", fake_list("1.0.0", "delnet3", json_pack("[o]", fail)));
    CHECK_OK(cni_reload(c, &err));
    EXPECT_OK(c, ADD, &req, &o);
    CHECK(!run_op(c, DEL, &req, &o));
    CHECK(exists(cache));
    unlink(cache);

    /* A plugin that hangs (and started a child holding its output): killed
     * with its process group at the 1 s timeout. */
    char pidfile[PATH_MAX + 16];
    snprintf(pidfile, sizeof(pidfile), "%s/hang.pid", e.dir);
    json_t *hang = fake_plugin_conf(&e, "fakehang");
    json_object_set_new(json_object_get(hang, "fake"), "hang", json_true());
    json_object_set_new(json_object_get(hang, "fake"), "pidfile", json_string(pidfile));
    json_object_set_new(json_object_get(hang, "fake"), "on", json_pack("[s]", "ADD"));
    env_conf(&e, "10.conflist",
             fake_list("1.0.0", "hangnet", json_pack("[o, o]", fake_plugin_conf(&e, "fakea"), hang)));
    CHECK_OK(cni_reload(c, &err));
    clear_log(&e);
    double t0 = now_s();
    CHECK(!run_op(c, ADD, &req, &o));
    double took = now_s() - t0;
    CHECK_MSG(took >= 0.9 && took < 5.0, "timeout took %.2f s", took);
    CHECK_EQ_INT(o.code, ERR_DEADLINE_EXCEEDED);
    CHECK_CONTAINS(o.msg, "fakehang");
    CHECK_CONTAINS(o.msg, "did not finish within 1000 ms");
    sum = log_summary(&e);
    CHECK_STREQ(sum, "fakea:ADD fakehang:ADD fakehang:DEL fakea:DEL");
    free(sum);
    check_pidfile_dead(pidfile);

    /* Endless output: cut at 1 MiB and reported. */
    json_t *flood = fake_plugin_conf(&e, "fakea");
    json_object_set_new(json_object_get(flood, "fake"), "flood", json_true());
    json_object_set_new(json_object_get(flood, "fake"), "on", json_pack("[s]", "ADD"));
    env_conf(&e, "10.conflist", fake_list("1.0.0", "floodnet", json_pack("[o]", flood)));
    CHECK_OK(cni_reload(c, &err));
    CHECK(!run_op(c, ADD, &req, &o));
    CHECK_CONTAINS(o.msg, "printed more than 1048576 bytes");

    /* A plugin missing from the bin dirs: not ready, ADD refused at once. */
    env_conf(&e, "10.conflist",
             fake_list("1.0.0", "missing", json_pack("[o, {s:s}]", fake_plugin_conf(&e, "fakea"), "type", "nosuch")));
    CHECK_OK(cni_reload(c, &err));
    char *why = NULL;
    CHECK(!cni_ready(c, &why));
    char expect[PATH_MAX + 64];
    snprintf(expect, sizeof(expect), "plugin nosuch not found in %s:%s", e.bin, REAL_BIN);
    CHECK_CONTAINS(why, expect);
    free(why);
    clear_log(&e);
    CHECK(!run_op(c, ADD, &req, &o));
    CHECK_CONTAINS(o.msg, expect);
    CHECK_EQ_INT(o.calls, 0);
    CHECK(!exists(e.log));
    /* ... and an IPAM plugin missing as well. */
    env_conf(&e, "10.conflist",
             fake_list("1.0.0", "missing", json_pack("[{s:s, s:{s:s}}]", "type", "fakea", "ipam", "type", "noipam")));
    CHECK(!cni_ready(c, &why));
    CHECK_CONTAINS(why, "plugin noipam not found");
    free(why);

    outcome_clear(&o);
    cni_free(c);
}

/* The result cannot be cached: the ADD is undone, not left half-made. */
static void test_cache_failure(void)
{
    struct env e;
    env_init(&e, "cachefail");
    env_conf(&e, "10.conflist",
             fake_list("1.0.0", "cachenet",
                       json_pack("[o, o]", fake_plugin_conf(&e, "fakea"), fake_plugin_conf(&e, "fakeb"))));
    struct cni *c = env_cni(&e, 1, 0);
    if (!c)
        return;
    char cache[PATH_MAX + 64];
    snprintf(cache, sizeof(cache), "%s/results/cf1@eth0.json", e.cache);
    err_t err = ERR_INIT;
    CHECK_OK(fs_mkdir_p(cache, 0700, &err)); /* a directory where the file goes */
    struct cni_request req = fake_req("cf1");
    struct outcome o = {0};
    CHECK(!run_op(c, ADD, &req, &o));
    CHECK_CONTAINS(o.msg, "caching the result");
    char *sum = log_summary(&e);
    CHECK_STREQ(sum, "fakea:ADD fakeb:ADD fakeb:DEL fakea:DEL");
    free(sum);
    rmdir(cache);

    /* Nor can its directory be made: nothing runs at all. */
    char results[PATH_MAX + 16];
    snprintf(results, sizeof(results), "%s/results", e.cache);
    rmdir(results);
    write_file(results, "", 0600);
    clear_log(&e);
    CHECK(!run_op(c, ADD, &req, &o));
    CHECK_CONTAINS(o.msg, "preparing the result cache");
    CHECK(!exists(e.log));
    outcome_clear(&o);
    cni_free(c);
}

/* Operations on one attachment run one at a time, in order. */
static void on_done_order(void *data, const struct cni_result *res, const err_t *err)
{
    (void)res;
    char *order = data;
    strcat(order, err ? "E" : "o");
}

static void test_serialization(void)
{
    struct env e;
    env_init(&e, "serial");
    env_conf(&e, "10.conflist", fake_list("1.0.0", "sernet", json_pack("[o]", fake_plugin_conf(&e, "fakea"))));
    struct cni *c = env_cni(&e, 1, 0);
    if (!c)
        return;
    struct cni_request req = fake_req("s1");
    struct cni_request other = fake_req("s2");
    char order[16] = "";
    err_t err = ERR_INIT;
    CHECK_OK(cni_add(c, &req, on_done_order, order, &err));
    CHECK_OK(cni_del(c, &req, on_done_order, order, &err));
    CHECK_OK(cni_add(c, &other, on_done_order, order, &err));
    CHECK_OK(cni_check(c, &req, on_done_order, order, &err)); /* after the DEL: nothing cached */
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(strlen(order), 4);
    char *sum = log_summary(&e);
    /* s1's ADD before its DEL; s2 in parallel, anywhere. */
    json_t *calls = read_log(&e);
    size_t i;
    json_t *v;
    int add1 = -1, del1 = -1;
    json_array_foreach(calls, i, v)
    {
        const char *id = json_string_value(json_object_get(json_object_get(v, "env"), "CNI_CONTAINERID"));
        const char *cmd = json_string_value(json_object_get(v, "cmd"));
        if (strcmp(id, "s1") == 0 && strcmp(cmd, "ADD") == 0)
            add1 = (int)i;
        if (strcmp(id, "s1") == 0 && strcmp(cmd, "DEL") == 0)
            del1 = (int)i;
    }
    CHECK_MSG(add1 >= 0 && del1 > add1, "order: %s", sum);
    CHECK(strchr(order, 'E') != NULL); /* the CHECK found no cache */
    json_decref(calls);
    free(sum);
    struct outcome o = {0};
    EXPECT_OK(c, DEL, &other, &o);
    outcome_clear(&o);
    cni_free(c);
}

/* cni_free with a plugin running: killed, no callback. */
static void test_free_while_running(void)
{
    struct env e;
    env_init(&e, "free");
    char pidfile[PATH_MAX + 16];
    snprintf(pidfile, sizeof(pidfile), "%s/hang.pid", e.dir);
    json_t *hang = fake_plugin_conf(&e, "fakehang");
    json_object_set_new(json_object_get(hang, "fake"), "hang", json_true());
    json_object_set_new(json_object_get(hang, "fake"), "pidfile", json_string(pidfile));
    env_conf(&e, "10.conflist", fake_list("1.0.0", "hangnet", json_pack("[o]", hang)));
    struct cni *c = env_cni(&e, 1, 60000);
    if (!c)
        return;
    struct cni_request req = fake_req("h1");
    struct cni_request req2 = fake_req("h2");
    struct outcome o = {0}, o2 = {0}, o3 = {0};
    err_t err = ERR_INIT;
    CHECK_OK(cni_add(c, &req, on_done, &o, &err));
    CHECK_OK(cni_del(c, &req, on_done, &o2, &err));  /* waiting behind the ADD */
    CHECK_OK(cni_add(c, &req2, on_done, &o3, &err)); /* its pool job may be in flight */
    double t0 = now_s();
    while (!exists(pidfile) && now_s() - t0 < 10) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(10000);
    }
    CHECK(exists(pidfile));
    usleep(50000); /* let the pidfile be complete */
    cni_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_MSG(now_s() - t0 < 10, "cni_free took %.1f s", now_s() - t0);
    CHECK_EQ_INT(o.calls + o2.calls + o3.calls, 0);
    check_pidfile_dead(pidfile);
    outcome_clear(&o);
}

/* ---- tests: real plugins, in the test's own namespaces ---- */

static void make_bridge_name(char *out, size_t len, char tag)
{
    snprintf(out, len, "ect%d%c", (int)(getpid() % 100000), tag);
}

static json_t *bridge_plugin(const char *bridge, json_t *ranges, const char *datadir)
{
    return json_pack("{s:s, s:s, s:b, s:{s:s, s:o, s:s}}", "type", "bridge", "bridge", bridge, "isGateway", 1, "ipam",
                     "type", "host-local", "ranges", ranges, "dataDir", datadir);
}

static int count_links(const char *type)
{
    char *out = sh_out("ip -o link show type %s | wc -l", type);
    int n = atoi(out);
    free(out);
    return n;
}

static bool ip_in_ns(const char *ns, const char *ip)
{
    char path[PATH_MAX];
    netns_path(path, sizeof(path), ns);
    char *out = sh_out("nsenter --net=%s ip addr show eth0", path);
    char needle[80];
    snprintf(needle, sizeof(needle), " %s/", ip);
    bool found = strstr(out, needle) != NULL;
    free(out);
    return found;
}

static bool ping(const char *from_ns, const char *ip)
{
    char path[PATH_MAX];
    netns_path(path, sizeof(path), from_ns);
    return sh("nsenter --net=%s busybox ping %s -c1 -W2 %s >/dev/null 2>&1", path, strchr(ip, ':') ? "-6" : "", ip) ==
           0;
}

static bool ipam_has(struct env *e, const char *net, const char *ip)
{
    char p[PATH_MAX + 128];
    snprintf(p, sizeof(p), "%s/%s/%s", e->ipam, net, ip);
    return exists(p);
}

/* Connects to 127.0.0.1:port and reads what the pod's server sends. */
static bool fetch_localhost(int port, char *buf, size_t len)
{
    double t0 = now_s();
    while (now_s() - t0 < 8) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int r = connect(s, (struct sockaddr *)&a, sizeof(a));
        if (r < 0 && errno == EINPROGRESS) {
            struct pollfd pfd = {.fd = s, .events = POLLOUT};
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            if (poll(&pfd, 1, 2000) == 1 && getsockopt(s, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
                r = 0;
        }
        if (r == 0) {
            size_t got = 0;
            struct pollfd pfd = {.fd = s, .events = POLLIN};
            while (got + 1 < len && poll(&pfd, 1, 3000) == 1) {
                ssize_t n = read(s, buf + got, len - 1 - got);
                if (n <= 0)
                    break;
                got += (size_t)n;
            }
            buf[got] = '\0';
            close(s);
            if (got)
                return true;
        } else {
            close(s);
        }
        usleep(100000);
    }
    return false;
}

static pid_t start_server(const char *ns, int port)
{
    char path[PATH_MAX], nsarg[PATH_MAX + 16], script[512];
    netns_path(path, sizeof(path), ns);
    snprintf(nsarg, sizeof(nsarg), "--net=%s", path);
    snprintf(script, sizeof(script),
             "import socket\n"
             "s = socket.socket()\n"
             "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
             "s.bind(('0.0.0.0', %d))\n"
             "s.listen(4)\n"
             "s.settimeout(20)\n"
             "c, peer = s.accept()\n"
             "c.sendall(b'hello-from-pod')\n"
             "c.close()\n",
             port);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/usr/bin/nsenter", "nsenter", nsarg, "/usr/bin/python3", "-c", script, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void stop_process(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static void test_real_bridge(void)
{
    if (!private_net) {
        printf("test_real_bridge: skipped (needs root for private namespaces)\n");
        return;
    }
    struct env e;
    env_init(&e, "bridge");
    char br[16];
    make_bridge_name(br, sizeof(br), 'a');
    json_t *plugins = json_pack("[o, {s:s, s:{s:b}}, {s:s}]",
                                bridge_plugin(br, json_pack("[[{s:s}]]", "subnet", "10.123.10.0/24"), e.ipam), "type",
                                "portmap", "capabilities", "portMappings", 1, "type", "loopback");
    env_conf(&e, "10-pods.conflist", fake_list("1.0.0", "podnet", plugins));
    struct cni *c = env_cni(&e, 2, 0);
    if (!c)
        return;
    CHECK(cni_ready(c, NULL));
    int veths0 = count_links("veth");
    CHECK(netns_create("pod1"));
    CHECK(netns_create("pod2"));
    char ns1[PATH_MAX], ns2[PATH_MAX];
    netns_path(ns1, sizeof(ns1), "pod1");
    netns_path(ns2, sizeof(ns2), "pod2");

    struct cni_port_mapping pm = {18080, 8080, "tcp", "127.0.0.1"};
    struct cni_request r1 = {.container_id = "realpod1",
                             .netns = ns1,
                             .ifname = "eth0",
                             .pod_name = "one",
                             .pod_namespace = "default",
                             .pod_uid = "u1",
                             .port_mappings = &pm,
                             .n_port_mappings = 1};
    struct cni_request r2 = {.container_id = "realpod2", .netns = ns2, .ifname = "eth0", .pod_name = "two"};
    struct outcome o1 = {0}, o2 = {0}, o = {0};
    EXPECT_OK(c, ADD, &r1, &o1);
    EXPECT_OK(c, ADD, &r2, &o2);
    const char *ip1 = o1.res && o1.res->n_ips == 1 ? o1.res->ips[0] : "";
    const char *ip2 = o2.res && o2.res->n_ips == 1 ? o2.res->ips[0] : "";
    CHECK_MSG(strncmp(ip1, "10.123.10.", 10) == 0, "pod1 IP \"%s\"", ip1);
    CHECK_MSG(strncmp(ip2, "10.123.10.", 10) == 0, "pod2 IP \"%s\"", ip2);
    CHECK(strcmp(ip1, ip2) != 0);
    CHECK(o1.res && o1.res->interface_mac && strlen(o1.res->interface_mac) == 17);
    CHECK(ip_in_ns("pod1", ip1));
    CHECK(ip_in_ns("pod2", ip2));
    CHECK(ipam_has(&e, "podnet", ip1));
    CHECK(ipam_has(&e, "podnet", ip2));
    CHECK_EQ_INT(count_links("veth"), veths0 + 2);
    /* The loopback plugin brought lo up inside. */
    char *lo = sh_out("nsenter --net=%s ip -o link show lo", ns1);
    CHECK_CONTAINS(lo, "UP");
    free(lo);

    CHECK_MSG(ping("pod1", ip2), "pod1 cannot ping %s", ip2);
    CHECK_MSG(ping("pod2", ip1), "pod2 cannot ping %s", ip1);

    /* 127.0.0.1:18080 on the "host" reaches the pod's port 8080: portmap's
     * DNAT in OUTPUT, with its SNAT (default on) masquerading the 127.0.0.1
     * source and setting route_localnet on the bridge itself. */
    pid_t srv = start_server("pod1", 8080);
    char buf[64] = "";
    CHECK_MSG(fetch_localhost(18080, buf, sizeof(buf)), "no answer on 127.0.0.1:18080");
    CHECK_STREQ(buf, "hello-from-pod");
    stop_process(srv);
    char *rl = sh_out("cat /proc/sys/net/ipv4/conf/%s/route_localnet", br);
    CHECK_MSG(atoi(rl) == 1, "route_localnet on %s: %s", br, rl);
    free(rl);

    /* CHECK (1.0.0) with the real plugins. The portmap of Debian 12 fails
     * CHECK for an IPv4-only pod, looking for IPv6 rules it never made
     * (containernetworking/plugins#819); the plugin's error must then come
     * through. A chain without portmap passes CHECK in the dual-stack and
     * 0.4.0 tests below. */
    bool checked = run_op(c, CHECK_OP, &r1, &o);
    CHECK_MSG(checked || (strstr(o.msg, "plugin portmap (CHECK, network podnet)") && strstr(o.msg, "ipv6")),
              "CHECK: %s", o.msg);

    /* DEL: IP back in host-local's store, veth gone, port rules gone. */
    char *rules = sh_out("iptables-save -t nat | grep -c realpod1");
    CHECK_MSG(atoi(rules) > 0, "no portmap rules for realpod1: %s", rules);
    free(rules);
    struct cni_request d1 = {.container_id = "realpod1", .netns = ns1, .ifname = "eth0"};
    EXPECT_OK(c, DEL, &d1, &o);
    CHECK(!ipam_has(&e, "podnet", ip1));
    CHECK(ipam_has(&e, "podnet", ip2));
    CHECK_EQ_INT(count_links("veth"), veths0 + 1);
    rules = sh_out("iptables-save | grep -c realpod1");
    CHECK_MSG(atoi(rules) == 0, "rules left for realpod1: %s", rules);
    free(rules);
    char *addr = sh_out("nsenter --net=%s ip -o addr show", ns1);
    CHECK(strstr(addr, ip1) == NULL);
    free(addr);
    EXPECT_OK(c, DEL, &d1, &o); /* twice */
    CHECK(!run_op(c, CHECK_OP, &r1, &o));
    CHECK_EQ_INT(o.code, ERR_NOT_FOUND);

    /* DEL after the namespace is gone: an empty CNI_NETNS, still a success. */
    netns_delete("pod2");
    struct cni_request d2 = {.container_id = "realpod2", .netns = ns2, .ifname = "eth0"};
    EXPECT_OK(c, DEL, &d2, &o);
    CHECK(!ipam_has(&e, "podnet", ip2));
    double t0 = now_s();
    while (count_links("veth") != veths0 && now_s() - t0 < 5)
        usleep(50000); /* the kernel tears the namespace down asynchronously */
    CHECK_EQ_INT(count_links("veth"), veths0);
    EXPECT_OK(c, DEL, &d2, &o);

    netns_delete("pod1");
    CHECK_EQ_INT(sh("ip link del %s", br), 0); /* bridges outlive DEL by design */
    CHECK(sh("ip link show %s >/dev/null 2>&1", br) != 0);
    outcome_clear(&o);
    outcome_clear(&o1);
    outcome_clear(&o2);
    cni_free(c);
}

/* A real chain whose last plugin fails: the bridge's veth and IP are undone. */
static void test_real_rollback(void)
{
    if (!private_net) {
        printf("test_real_rollback: skipped (needs root)\n");
        return;
    }
    struct env e;
    env_init(&e, "rollback");
    char br[16];
    make_bridge_name(br, sizeof(br), 'b');
    json_t *fail = fake_plugin_conf(&e, "fakefail");
    json_object_set_new(json_object_get(fail, "fake"), "fail",
                        json_pack("{s:i, s:s, s:s}", "code", 7, "msg", "refusing this pod", "details", "by design"));
    json_object_set_new(json_object_get(fail, "fake"), "on", json_pack("[s]", "ADD"));
    json_t *plugins =
        json_pack("[o, o]", bridge_plugin(br, json_pack("[[{s:s}]]", "subnet", "10.123.11.0/24"), e.ipam), fail);
    env_conf(&e, "10-fail.conflist", fake_list("1.0.0", "failnet", plugins));
    struct cni *c = env_cni(&e, 2, 0);
    if (!c)
        return;
    int veths0 = count_links("veth");
    CHECK(netns_create("rb1"));
    char ns[PATH_MAX];
    netns_path(ns, sizeof(ns), "rb1");
    struct cni_request r = {.container_id = "rollback1", .netns = ns, .ifname = "eth0"};
    struct outcome o = {0};
    CHECK(!run_op(c, ADD, &r, &o));
    CHECK_CONTAINS(o.msg, "refusing this pod: by design");
    CHECK_EQ_INT(count_links("veth"), veths0);
    char *addr = sh_out("nsenter --net=%s ip -o link show", ns);
    CHECK(strstr(addr, "eth0") == NULL);
    free(addr);
    char *n = sh_out("ls %s/failnet 2>/dev/null | grep -c '^10\\.'", e.ipam);
    CHECK_MSG(atoi(n) == 0, "host-local still holds %s address(es)", n);
    free(n);
    netns_delete("rb1");
    sh("ip link del %s 2>/dev/null", br);
    outcome_clear(&o);
    cni_free(c);
}

/* A .conf (single plugin) in 0.4.0: its result format, CHECK and DEL. */
static void test_real_conf_040(void)
{
    if (!private_net) {
        printf("test_real_conf_040: skipped (needs root)\n");
        return;
    }
    struct env e;
    env_init(&e, "conf040");
    char br[16];
    make_bridge_name(br, sizeof(br), 'c');
    json_t *p = json_pack("{s:s, s:s, s:s, s:s, s:b, s:{s:s, s:s, s:s}}", "cniVersion", "0.4.0", "name", "net040",
                          "type", "bridge", "bridge", br, "isGateway", 1, "ipam", "type", "host-local", "subnet",
                          "10.123.12.0/24", "dataDir", e.ipam);
    env_conf(&e, "50-single.conf", p);
    e.bins[0] = REAL_BIN;
    struct cni *c = env_cni(&e, 1, 0);
    if (!c)
        return;
    CHECK(netns_create("c040"));
    char ns[PATH_MAX];
    netns_path(ns, sizeof(ns), "c040");
    struct cni_request r = {.container_id = "conf040", .netns = ns, .ifname = "eth0"};
    struct outcome o = {0};
    EXPECT_OK(c, ADD, &r, &o);
    CHECK(o.res && o.res->n_ips == 1 && strncmp(o.res->ips[0], "10.123.12.", 10) == 0);
    CHECK(o.res && o.res->raw_json && strstr(o.res->raw_json, "\"0.4.0\"") && strstr(o.res->raw_json, "\"version\""));
    if (o.res && o.res->n_ips)
        CHECK(ip_in_ns("c040", o.res->ips[0]));
    EXPECT_OK(c, CHECK_OP, &r, &o);
    EXPECT_OK(c, DEL, &r, &o);
    char *n = sh_out("ls %s/net040 | grep -c '^10\\.'", e.ipam);
    CHECK_EQ_INT(atoi(n), 0);
    free(n);
    netns_delete("c040");
    CHECK_EQ_INT(sh("ip link del %s", br), 0);
    outcome_clear(&o);
    cni_free(c);
}

/* v4+v6 host-local ranges; IPv6 only on the test's own bridge. */
static void test_real_dual_stack(void)
{
    if (!private_net) {
        printf("test_real_dual_stack: skipped (needs root)\n");
        return;
    }
    struct env e;
    env_init(&e, "dual");
    char br[16];
    make_bridge_name(br, sizeof(br), 'd');
    json_t *ranges = json_pack("[[{s:s}], [{s:s}]]", "subnet", "10.123.20.0/24", "subnet", "fd00:123:20::/64");
    env_conf(
        &e, "10-dual.conflist",
        fake_list("1.0.0", "dualnet", json_pack("[o, {s:s}]", bridge_plugin(br, ranges, e.ipam), "type", "loopback")));
    struct cni *c = env_cni(&e, 2, 0);
    if (!c)
        return;
    CHECK(netns_create("d1"));
    CHECK(netns_create("d2"));
    char ns1[PATH_MAX], ns2[PATH_MAX];
    netns_path(ns1, sizeof(ns1), "d1");
    netns_path(ns2, sizeof(ns2), "d2");
    struct cni_request r1 = {.container_id = "dual1", .netns = ns1, .ifname = "eth0"};
    struct cni_request r2 = {.container_id = "dual2", .netns = ns2, .ifname = "eth0"};
    struct outcome o1 = {0}, o2 = {0}, o = {0};
    EXPECT_OK(c, ADD, &r1, &o1);
    EXPECT_OK(c, ADD, &r2, &o2);
    bool two = o1.res && o1.res->n_ips == 2 && o2.res && o2.res->n_ips == 2;
    CHECK(two);
    if (two) {
        CHECK(strncmp(o1.res->ips[0], "10.123.20.", 10) == 0);
        CHECK(strncmp(o1.res->ips[1], "fd00:123:20::", 13) == 0);
        CHECK(ip_in_ns("d1", o1.res->ips[1]));
        CHECK(ping("d1", o2.res->ips[0]));
        CHECK_MSG(ping("d1", o2.res->ips[1]), "no IPv6 ping to %s", o2.res->ips[1]);
        CHECK(ipam_has(&e, "dualnet", o1.res->ips[1]));
    }
    EXPECT_OK(c, CHECK_OP, &r1, &o);
    EXPECT_OK(c, DEL, &r1, &o);
    EXPECT_OK(c, DEL, &r2, &o);
    if (two) {
        CHECK(!ipam_has(&e, "dualnet", o1.res->ips[0]));
        CHECK(!ipam_has(&e, "dualnet", o1.res->ips[1]));
        CHECK(!ipam_has(&e, "dualnet", o2.res->ips[1]));
    }
    netns_delete("d1");
    netns_delete("d2");
    CHECK_EQ_INT(sh("ip link del %s", br), 0);
    outcome_clear(&o);
    outcome_clear(&o1);
    outcome_clear(&o2);
    cni_free(c);
}

/* ---- setup ---- */

/* Moves the process into network and mount namespaces of its own (see the
 * top of the file). Must run before any thread exists. */
static bool enter_private_namespaces(void)
{
    if (geteuid() != 0)
        return false;
    if (unshare(CLONE_NEWNET | CLONE_NEWNS) < 0) {
        fprintf(stderr, "unshare: %s (real-plugin tests skipped)\n", strerror(errno));
        return false;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 || mount("sysfs", "/sys", "sysfs", 0, NULL) < 0) {
        fprintf(stderr, "private mounts: %s (real-plugin tests skipped)\n", strerror(errno));
        return false;
    }
    return system("ip link set lo up") == 0 && access("/usr/bin/nsenter", X_OK) == 0 &&
           access(REAL_BIN "/bridge", X_OK) == 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    private_net = enter_private_namespaces();
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/edgecri-cni-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(nsdir, sizeof(nsdir), "/run/edgecri-test-XXXXXX");
    if (private_net && !mkdtemp(nsdir)) {
        perror("mkdtemp /run");
        private_net = false;
    }
    uv_loop_init(&loop);
    if (private_net) {
        char *links = sh_out("ip -o link show | wc -l");
        links_at_start = atoi(links);
        free(links);
    }

    RUN(test_config_dir);
    RUN(test_default_network);
    RUN(test_fake_chain);
    RUN(test_bad_requests);
    RUN(test_versions);
    RUN(test_plugin_failures);
    RUN(test_cache_failure);
    RUN(test_serialization);
    RUN(test_free_while_running);
    RUN(test_real_bridge);
    RUN(test_real_rollback);
    RUN(test_real_conf_040);
    RUN(test_real_dual_stack);

    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_OK(uv_loop_close(&loop));

    if (private_net) {
        /* Everything made is gone: no pod namespace, veth or test bridge. */
        char *links = sh_out("ip -o link show | wc -l");
        CHECK_MSG(atoi(links) == links_at_start, "%d links at the start, %d now", links_at_start, atoi(links));
        free(links);
        char *nss = sh_out("ls -A %s | wc -l", nsdir);
        CHECK_MSG(atoi(nss) == 0, "%s namespaces left", nss);
        free(nss);
        CHECK_OK(rmdir(nsdir) < 0 ? -errno : 0);
        /* portmap keeps its shared CNI-HOSTPORT-* chains after the last DEL;
         * they are in this private namespace, which dies with us, but remove
         * them anyway so the check below is exact. */
        sh("for t in iptables ip6tables; do for tb in nat filter mangle; do $t -t $tb -F; $t -t $tb -X; done; done");
        char *rules = sh_out("(iptables-save; ip6tables-save) | grep -c '^-A'");
        CHECK_MSG(atoi(rules) == 0, "%s iptables rules left", rules);
        free(rules);
    }
    err_t err = ERR_INIT;
    CHECK_OK(fs_remove_tree(tmpdir, &err));
    err_clear(&err);
    return unit_summary();
}
