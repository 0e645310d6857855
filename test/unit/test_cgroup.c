/* cgroup manager tests: (a) fake v1 and v2 trees of plain files, checking
 * exactly what is written; (b) the real hierarchy of this machine (as root):
 * limits, attach, populated, destroy killing, an OOM kill, and the v2
 * clone3(CLONE_INTO_CGROUP) path on whatever cgroup2 tree is mounted. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/cgroup.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "unit.h"

#define MiB (1024LL * 1024LL)

/* ---- helpers ---------------------------------------------------------------- */

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (!s)
        abort();
    snprintf(s, n, "%s/%s", a, b);
    return s;
}

/* Writes root/rel (creating its directory). */
static void put(const char *root, const char *rel, const char *content)
{
    char *p = path_join(root, rel);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    err_t err = ERR_INIT;
    if (fs_mkdir_p(p, 0755, &err) < 0)
        UNIT_FAIL("mkdir %s: %s", p, err.msg);
    err_clear(&err);
    *slash = '/';
    FILE *f = fopen(p, "w");
    if (!f) {
        UNIT_FAIL("creating %s: %s", p, strerror(errno));
    } else {
        fputs(content, f);
        fclose(f);
    }
    free(p);
}

/* Contents of root/rel, or "(missing)"; a few rotating buffers so two can
 * be compared in one check. */
static const char *get(const char *root, const char *rel)
{
    static char bufs[4][4096];
    static int next;
    char *b = bufs[next++ % 4];
    char *p = path_join(root, rel);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    free(p);
    if (fd < 0)
        return "(missing)";
    ssize_t n = read(fd, b, sizeof(bufs[0]) - 1);
    close(fd);
    b[n > 0 ? n : 0] = '\0';
    return b;
}

static bool exists(const char *root, const char *rel)
{
    char *p = path_join(root, rel);
    struct stat st;
    bool r = stat(p, &st) == 0;
    free(p);
    return r;
}

static char *make_tmp(void)
{
    char *d = strdup("/tmp/edgecri-test-cgroup-XXXXXX");
    if (!d || !mkdtemp(d))
        abort();
    return d;
}

static void remove_tmp(char *d)
{
    err_t err = ERR_INIT;
    if (fs_remove_tree(d, &err) < 0)
        UNIT_FAIL("removing %s: %s", d, err.msg);
    err_clear(&err);
    free(d);
}

#define CHECK_ERR(expr, errp, want_code, needle)                                                                       \
    do {                                                                                                               \
        int r_ = (expr);                                                                                               \
        CHECK_MSG(r_ < 0, "%s succeeded, expected an error", #expr);                                                   \
        CHECK_EQ_INT((errp)->code, want_code);                                                                         \
        CHECK_CONTAINS((errp)->msg, needle);                                                                           \
        err_clear(errp);                                                                                               \
    } while (0)

/* A v2 cgroup directory with the interface files the code reads or writes. */
static void v2_cg(const char *root, const char *rel)
{
    static const char *const files[][2] = {
        {"cgroup.controllers", "cpuset cpu io memory hugetlb pids\n"},
        {"cgroup.subtree_control", ""},
        {"cgroup.procs", ""},
        {"cgroup.events", "populated 0\nfrozen 0\n"},
        {"cpu.max", "max 100000\n"},
        {"cpu.weight", "100\n"},
        {"cpuset.cpus", ""},
        {"cpuset.mems", ""},
        {"memory.max", "max\n"},
        {"memory.swap.max", "max\n"},
        {"memory.high", "max\n"},
        {"memory.events", "low 0\nhigh 0\nmax 4\noom 3\noom_kill 3\noom_group_kill 0\n"},
        {"pids.max", "max\n"},
        {"hugetlb.2MB.max", "max\n"},
        {"hugetlb.1GB.max", "max\n"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        char rel2[512];
        snprintf(rel2, sizeof(rel2), "%s/%s", rel, files[i][0]);
        put(root, rel2, files[i][1]);
    }
}

/* A v1 cgroup in every fake hierarchy (cpu and cpuacct co-mounted). */
static void v1_cg(const char *root, const char *rel)
{
    static const char *const files[][3] = {
        {"cpu,cpuacct", "cpu.shares", "1024\n"},
        {"cpu,cpuacct", "cpu.cfs_period_us", "100000\n"},
        {"cpu,cpuacct", "cpu.cfs_quota_us", "-1\n"},
        {"cpu,cpuacct", "cpuacct.usage", "0\n"},
        {"cpu,cpuacct", "cgroup.procs", ""},
        {"cpuset", "cpuset.cpus", ""},
        {"cpuset", "cpuset.mems", ""},
        {"cpuset", "cgroup.procs", ""},
        {"memory", "memory.limit_in_bytes", "9223372036854771712\n"},
        {"memory", "memory.memsw.limit_in_bytes", "9223372036854771712\n"},
        {"memory", "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"},
        {"memory", "cgroup.procs", ""},
        {"pids", "pids.max", "max\n"},
        {"pids", "cgroup.procs", ""},
        {"hugetlb", "hugetlb.2MB.limit_in_bytes", "9223372036854771712\n"},
        {"hugetlb", "hugetlb.1GB.limit_in_bytes", "9223372036854771712\n"},
        {"hugetlb", "cgroup.procs", ""},
    };
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        char rel2[512];
        snprintf(rel2, sizeof(rel2), "%s%s/%s", files[i][0], rel, files[i][1]);
        put(root, rel2, files[i][2]);
    }
}

static struct cgroup_manager *fake(enum cgroup_version v, const char *root, enum cgroup_driver_kind d)
{
    struct cgroup_manager *m = NULL;
    err_t err = ERR_INIT;
    int r = cgroup_manager_new_at(v, root, d, &m, &err);
    CHECK_MSG(r == 0, "cgroup_manager_new_at(%s): %s", root, err.msg ? err.msg : "");
    err_clear(&err);
    if (!m)
        abort();
    return m;
}

/* ---- (a) paths ---------------------------------------------------------------- */

static void expect_pod(struct cgroup_manager *m, const char *parent, const char *pod_id, const char *want)
{
    err_t err = ERR_INIT;
    char *out = NULL;
    int r = cgroup_pod_path(m, parent, pod_id, &out, &err);
    CHECK_MSG(r == 0, "pod path of \"%s\": %s", parent ? parent : "(null)", err.msg ? err.msg : "");
    CHECK_STREQ(out, want);
    free(out);
    err_clear(&err);
}

static void expect_bad_pod(struct cgroup_manager *m, const char *parent, const char *pod_id, const char *needle)
{
    err_t err = ERR_INIT;
    char *out = NULL;
    int r = cgroup_pod_path(m, parent, pod_id, &out, &err);
    CHECK_MSG(r == -EINVAL, "pod path of \"%s\" gave %d (%s), want -EINVAL", parent, r, out ? out : "");
    CHECK_MSG(out == NULL, "pod path of \"%s\" set an output on failure", parent);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(err.msg, needle);
    free(out);
    err_clear(&err);
}

static void test_paths_cgroupfs(void)
{
    char *root = make_tmp();
    struct cgroup_manager *m = fake(CGROUP_V2, root, CGROUP_DRIVER_KIND_CGROUPFS);
    err_t err = ERR_INIT;
    expect_pod(m, "/kubepods/burstable/pod1234", "p1", "/kubepods/burstable/pod1234");
    expect_pod(m, "/kubepods/podabc", NULL, "/kubepods/podabc");
    expect_pod(m, "", "3f2a", "/edgecri/3f2a");
    expect_pod(m, NULL, "3f-2a", "/edgecri/3f-2a");
    expect_bad_pod(m, "kubepods/burstable", "p", "is kubelet using the systemd driver?");
    expect_bad_pod(m, "kubepods-burstable-pod1.slice", "p", "not an absolute");
    expect_bad_pod(m, "/kubepods/../etc", "p", "\"..\" component");
    expect_bad_pod(m, "/kubepods/./x", "p", "\".\" component");
    expect_bad_pod(m, "/kubepods//x", "p", "empty path component");
    expect_bad_pod(m, "/kubepods/x/", "p", "empty path component");
    expect_bad_pod(m, "/", "p", "root cgroup");
    expect_bad_pod(m, "/kube\npods", "p", "control character");
    expect_bad_pod(m, "", "", "pod id is empty");
    expect_bad_pod(m, "", "../x", "pod id \"../x\"");
    expect_bad_pod(m, "", "a/b", "not allowed");
    expect_bad_pod(m, "", ".hidden", "starts with '.'");

    char *c = NULL;
    CHECK_OK(cgroup_container_path(m, "/kubepods/burstable/pod1", "c0ffee", &c, &err));
    CHECK_STREQ(c, "/kubepods/burstable/pod1/c0ffee");
    free(c);
    c = NULL;
    CHECK_ERR(cgroup_container_path(m, "/kubepods/pod1", "../../x", &c, &err), &err, ERR_INVALID_ARGUMENT,
              "container id");
    CHECK_ERR(cgroup_container_path(m, "kubepods/pod1", "abc", &c, &err), &err, ERR_INVALID_ARGUMENT,
              "pod cgroup path");
    CHECK_ERR(cgroup_container_path(m, "/kubepods/pod1", "", &c, &err), &err, ERR_INVALID_ARGUMENT,
              "container id is empty");
    CHECK(c == NULL);
    cgroup_manager_free(m);
    remove_tmp(root);
}

static void test_paths_systemd(void)
{
    char *root = make_tmp();
    struct cgroup_manager *m = fake(CGROUP_V2, root, CGROUP_DRIVER_KIND_SYSTEMD);
    err_t err = ERR_INIT;
    expect_pod(m, "kubepods-burstable-pod0a1b_2c3d.slice", "p",
               "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b_2c3d.slice");
    expect_pod(m, "kubepods-podabc.slice", "p", "/kubepods.slice/kubepods-podabc.slice");
    expect_pod(m, "kubepods.slice", "p", "/kubepods.slice");
    expect_pod(m, "a-b-c-d.slice", "p", "/a.slice/a-b.slice/a-b-c.slice/a-b-c-d.slice");
    expect_pod(m, "", "3f2a", "/edgecri.slice/edgecri-3f2a.slice");
    expect_bad_pod(m, "", "3f-2a", "a '-' in a slice name nests it");
    expect_bad_pod(m, "-.slice", "p", "root slice");
    expect_bad_pod(m, "/kubepods/burstable/pod1", "p", "is kubelet using the cgroupfs driver?");
    expect_bad_pod(m, "kubepods-burstable", "p", "ending in .slice");
    expect_bad_pod(m, ".slice", "p", "ending in .slice");
    expect_bad_pod(m, "-kubepods.slice", "p", "not a valid slice name");
    expect_bad_pod(m, "kubepods-.slice", "p", "not a valid slice name");
    expect_bad_pod(m, "kube--pods.slice", "p", "not a valid slice name");
    expect_bad_pod(m, "kube pods.slice", "p", "not allowed in a systemd unit name");
    char longname[300];
    memset(longname, 'a', 260);
    strcpy(longname + 260, ".slice");
    expect_bad_pod(m, longname, "p", "longer than systemd's");

    char *c = NULL;
    CHECK_OK(cgroup_container_path(m, "/kubepods.slice/kubepods-pod1.slice", "c0ffee", &c, &err));
    CHECK_STREQ(c, "/kubepods.slice/kubepods-pod1.slice/edgecri-c0ffee.scope");
    free(c);
    cgroup_manager_free(m);
    remove_tmp(root);
}

/* ---- (a) fake v2 ---------------------------------------------------------------- */

static const char *const all_enabled = "+cpuset +cpu +io +memory +hugetlb +pids";

static void test_v2_create(void)
{
    char *root = make_tmp();
    struct cgroup_manager *m = fake(CGROUP_V2, root, CGROUP_DRIVER_KIND_SYSTEMD);
    err_t err = ERR_INIT;
    CHECK_EQ_INT(cgroup_manager_version(m), CGROUP_V2);
    char *pod = NULL, *ctr = NULL;
    CHECK_OK(cgroup_pod_path(m, "kubepods-burstable-pod42.slice", "x", &pod, &err));
    CHECK_OK(cgroup_container_path(m, pod, "c1", &ctr, &err));
    /* What the kernel would create on mkdir: every level's files. One level
     * offers fewer controllers, another has some enabled already. */
    v2_cg(root, "");
    v2_cg(root, "/kubepods.slice");
    v2_cg(root, "/kubepods.slice/kubepods-burstable.slice");
    v2_cg(root, pod);
    v2_cg(root, ctr);
    put(root, "kubepods.slice/cgroup.subtree_control", "cpu memory\n");
    put(root, "kubepods.slice/kubepods-burstable.slice/cgroup.controllers", "cpu memory pids\n");

    struct cgroup_hugepage_limit huge[] = {{"2MB", 4 * MiB}, {"1GB", 1024 * MiB}};
    struct cgroup_resources res = {
        .cpu_period = 100000,
        .cpu_quota = 50000,
        .cpu_shares = 1024,
        .cpuset_cpus = "0-1,3",
        .cpuset_mems = "0",
        .memory_limit = 64 * MiB,
        .memory_swap_limit = 96 * MiB,
        .pids_limit = 50,
        .hugepages = huge,
        .n_hugepages = 2,
    };
    int r = cgroup_create(m, pod, &res, &err);
    CHECK_MSG(r == 0, "create %s: %s", pod, err.msg ? err.msg : "");
    err_clear(&err);
    char rel[512];
#define AT(file) (snprintf(rel, sizeof(rel), "%s/%s", pod, file), rel)
    CHECK_STREQ(get(root, AT("cpu.max")), "50000 100000");
    CHECK_STREQ(get(root, AT("cpu.weight")), "39");
    CHECK_STREQ(get(root, AT("cpuset.cpus")), "0-1,3");
    CHECK_STREQ(get(root, AT("cpuset.mems")), "0");
    CHECK_STREQ(get(root, AT("memory.max")), "67108864");
    CHECK_STREQ(get(root, AT("memory.swap.max")), "33554432");
    CHECK_STREQ(get(root, AT("pids.max")), "50");
    CHECK_STREQ(get(root, AT("hugetlb.2MB.max")), "4194304");
    CHECK_STREQ(get(root, AT("hugetlb.1GB.max")), "1073741824");
    CHECK_STREQ(get(root, AT("memory.high")), "max\n"); /* untouched */
    /* Controllers enabled top-down in every ancestor, not in the pod. */
    CHECK_STREQ(get(root, "cgroup.subtree_control"), all_enabled);
    CHECK_STREQ(get(root, "kubepods.slice/cgroup.subtree_control"), "+cpuset +io +hugetlb +pids");
    CHECK_STREQ(get(root, "kubepods.slice/kubepods-burstable.slice/cgroup.subtree_control"), "+cpu +memory +pids");
    CHECK_STREQ(get(root, AT("cgroup.subtree_control")), "");

    /* The container below enables them in the pod; no resources at all. */
    CHECK_OK(cgroup_create(m, ctr, NULL, &err));
    CHECK_STREQ(get(root, AT("cgroup.subtree_control")), all_enabled);
    snprintf(rel, sizeof(rel), "%s/cgroup.subtree_control", ctr);
    CHECK_STREQ(get(root, rel), "");

    /* Idempotent: the same again leaves the same values. */
    put(root, "cgroup.subtree_control", "cpuset cpu io memory hugetlb pids\n");
    CHECK_OK(cgroup_create(m, pod, &res, &err));
    CHECK_STREQ(get(root, "cgroup.subtree_control"), "cpuset cpu io memory hugetlb pids\n"); /* nothing to add */
    CHECK_STREQ(get(root, AT("cpu.max")), "50000 100000");
    CHECK_STREQ(get(root, AT("memory.swap.max")), "33554432");

    /* A cgroup created from nothing: mkdir -p makes the directories; the
     * kernel would add their files, a plain tree lacks them. */
    CHECK_ERR(cgroup_create(m, "/fresh/a", &(struct cgroup_resources){.pids_limit = 5}, &err), &err, ERR_NOT_FOUND,
              "fresh/cgroup.controllers");
    CHECK(exists(root, "fresh/a"));

    free(pod);
    free(ctr);
    cgroup_manager_free(m);
    remove_tmp(root);
#undef AT
}

static void set_and_read(struct cgroup_manager *m, const char *root, const struct cgroup_resources *res,
                         const char *file, const char *want)
{
    err_t err = ERR_INIT;
    int r = cgroup_update(m, "/c", res, &err);
    CHECK_MSG(r == 0, "update for %s: %s", file, err.msg ? err.msg : "");
    err_clear(&err);
    char rel[128];
    snprintf(rel, sizeof(rel), "c/%s", file);
    const char *got = get(root, rel);
    CHECK_MSG(strcmp(got, want) == 0, "%s: \"%s\", want \"%s\"", file, got, want);
}

static void test_v2_conversions(void)
{
    char *root = make_tmp();
    struct cgroup_manager *m = fake(CGROUP_V2, root, CGROUP_DRIVER_KIND_CGROUPFS);
    err_t err = ERR_INIT;
    v2_cg(root, "");
    v2_cg(root, "/c");

    static const struct {
        int64_t shares;
        const char *weight;
    } weights[] = {{2, "1"}, {1024, "39"}, {262144, "10000"}, {1, "1"}, {512, "20"}, {1000000, "10000"}};
    for (size_t i = 0; i < ARRAY_SIZE(weights); i++)
        set_and_read(m, root, &(struct cgroup_resources){.cpu_shares = weights[i].shares}, "cpu.weight",
                     weights[i].weight);

    set_and_read(m, root, &(struct cgroup_resources){.cpu_quota = -1, .cpu_period = 100000}, "cpu.max", "max 100000");
    set_and_read(m, root, &(struct cgroup_resources){.cpu_quota = 25000, .cpu_period = 50000}, "cpu.max",
                 "25000 50000");
    set_and_read(m, root, &(struct cgroup_resources){.cpu_quota = 20000}, "cpu.max", "20000");
    set_and_read(m, root, &(struct cgroup_resources){.cpu_quota = -1}, "cpu.max", "max");
    /* Only a period: the quota cpu.max holds stays. */
    put(root, "c/cpu.max", "30000 100000\n");
    set_and_read(m, root, &(struct cgroup_resources){.cpu_period = 50000}, "cpu.max", "30000 50000");
    put(root, "c/cpu.max", "max 100000\n");
    set_and_read(m, root, &(struct cgroup_resources){.cpu_period = 20000}, "cpu.max", "max 20000");

    /* Swap: CRI gives memory+swap, v2 wants swap alone. */
    set_and_read(m, root, &(struct cgroup_resources){.memory_limit = 64 * MiB, .memory_swap_limit = 64 * MiB},
                 "memory.swap.max", "0");
    CHECK_STREQ(get(root, "c/memory.max"), "67108864");
    set_and_read(m, root, &(struct cgroup_resources){.memory_limit = 10 * MiB, .memory_swap_limit = -1},
                 "memory.swap.max", "max");
    set_and_read(m, root, &(struct cgroup_resources){.memory_limit = -1}, "memory.max", "max");
    set_and_read(m, root, &(struct cgroup_resources){.pids_limit = -1}, "pids.max", "max");
    set_and_read(m, root, &(struct cgroup_resources){.pids_limit = 7}, "pids.max", "7");

    /* Unified keys: raw writes, applied after the typed ones. */
    const char *keys[] = {"memory.high", "memory.max"};
    const char *vals[] = {"1000000", "2000000"};
    set_and_read(m, root,
                 &(struct cgroup_resources){
                     .memory_limit = 5 * MiB, .unified_keys = keys, .unified_values = vals, .n_unified = 2},
                 "memory.high", "1000000");
    CHECK_STREQ(get(root, "c/memory.max"), "2000000");

    /* Refusals write nothing: every check comes before the first write. */
    put(root, "c/memory.max", "max\n");
    static const struct {
        const char *key, *needle;
        enum err_code code;
    } bad[] = {
        {"../memory.max", "is not a file name", ERR_INVALID_ARGUMENT},
        {"a/b", "is not a file name", ERR_INVALID_ARGUMENT},
        {"..", "is not a file name", ERR_INVALID_ARGUMENT},
        {".", "is not a file name", ERR_INVALID_ARGUMENT},
        {"", "is not a file name", ERR_INVALID_ARGUMENT},
        {"cgroup.procs", "core cgroup file", ERR_INVALID_ARGUMENT},
        {"cgroup.kill", "core cgroup file", ERR_INVALID_ARGUMENT},
        {"memory.nonexistent", "not an interface file", ERR_INVALID_ARGUMENT},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        const char *k[] = {bad[i].key};
        const char *v[] = {"1"};
        struct cgroup_resources res = {.memory_limit = 1 * MiB, .unified_keys = k, .unified_values = v, .n_unified = 1};
        int r = cgroup_update(m, "/c", &res, &err);
        CHECK_MSG(r < 0, "unified key \"%s\" was accepted", bad[i].key);
        CHECK_EQ_INT(err.code, bad[i].code);
        CHECK_CONTAINS(err.msg, bad[i].needle);
        err_clear(&err);
    }
    const char *k1[] = {"memory.high"};
    CHECK_ERR(cgroup_update(m, "/c",
                            &(struct cgroup_resources){.unified_keys = k1, .unified_values = NULL, .n_unified = 1},
                            &err),
              &err, ERR_INVALID_ARGUMENT, "without keys or values");
    CHECK_STREQ(get(root, "c/memory.max"), "max\n");

    /* Invalid values. */
    CHECK_ERR(
        cgroup_update(m, "/c", &(struct cgroup_resources){.memory_limit = 64 * MiB, .memory_swap_limit = MiB}, &err),
        &err, ERR_INVALID_ARGUMENT, "below the memory limit");
    CHECK_ERR(cgroup_update(m, "/c", &(struct cgroup_resources){.memory_swap_limit = MiB}, &err), &err,
              ERR_INVALID_ARGUMENT, "needs a memory limit");
    CHECK_ERR(cgroup_update(m, "/c", &(struct cgroup_resources){.cpu_quota = -2}, &err), &err, ERR_INVALID_ARGUMENT,
              "cpu quota");
    CHECK_ERR(cgroup_update(m, "/c", &(struct cgroup_resources){.pids_limit = -5}, &err), &err, ERR_INVALID_ARGUMENT,
              "pids limit");
    CHECK_ERR(cgroup_update(m, "/c", &(struct cgroup_resources){.cpuset_cpus = "0-3\n+cpu"}, &err), &err,
              ERR_INVALID_ARGUMENT, "not a CPU list");
    CHECK_STREQ(get(root, "c/memory.max"), "max\n");

    /* Hugepages: sizes as CRI spells them; an unknown size is missing. */
    struct cgroup_hugepage_limit hp[] = {{"2MB", 2 * MiB}, {"16GB", 0}};
    CHECK_ERR(cgroup_update(m, "/c", &(struct cgroup_resources){.hugepages = hp, .n_hugepages = 2}, &err), &err,
              ERR_FAILED_PRECONDITION, "hugetlb.16GB.max does not exist");
    CHECK_STREQ(get(root, "c/hugetlb.2MB.max"), "max\n"); /* checked before written */
    struct cgroup_hugepage_limit bad_hp[] = {{"2M", 1}};
    CHECK_ERR(cgroup_update(m, "/c", &(struct cgroup_resources){.hugepages = bad_hp, .n_hugepages = 1}, &err), &err,
              ERR_INVALID_ARGUMENT, "hugepage size \"2M\"");
    struct cgroup_hugepage_limit bad_hp2[] = {{"../2MB", 1}};
    CHECK_ERR(cgroup_update(m, "/c", &(struct cgroup_resources){.hugepages = bad_hp2, .n_hugepages = 1}, &err), &err,
              ERR_INVALID_ARGUMENT, "hugepage size");

    /* Unavailable controllers fail only when a value for them is asked. */
    char *p = path_join(root, "c/memory.swap.max");
    unlink(p);
    free(p);
    p = path_join(root, "c/hugetlb.2MB.max");
    unlink(p);
    free(p);
    CHECK_ERR(
        cgroup_update(m, "/c", &(struct cgroup_resources){.memory_limit = MiB, .memory_swap_limit = 2 * MiB}, &err),
        &err, ERR_FAILED_PRECONDITION, "swap accounting is not enabled");
    CHECK_ERR(cgroup_update(m, "/c", &(struct cgroup_resources){.hugepages = hp, .n_hugepages = 1}, &err), &err,
              ERR_FAILED_PRECONDITION, "hugetlb");
    set_and_read(m, root, &(struct cgroup_resources){.memory_limit = 3 * MiB}, "memory.max", "3145728");
    p = path_join(root, "c/cpu.max");
    unlink(p);
    free(p);
    CHECK_ERR(cgroup_update(m, "/c", &(struct cgroup_resources){.cpu_period = 1000}, &err), &err,
              ERR_FAILED_PRECONDITION, "the cpu controller is not available");
    CHECK_ERR(cgroup_update(m, "/c", &(struct cgroup_resources){.cpu_quota = 1000}, &err), &err,
              ERR_FAILED_PRECONDITION, "the cpu controller is not available");

    /* Update of a cgroup that does not exist; the root and bad paths. */
    CHECK_ERR(cgroup_update(m, "/nope", &(struct cgroup_resources){.pids_limit = 1}, &err), &err, ERR_NOT_FOUND,
              "/nope");
    CHECK_ERR(cgroup_update(m, "/", &(struct cgroup_resources){.pids_limit = 1}, &err), &err, ERR_INVALID_ARGUMENT,
              "root cgroup");
    CHECK_ERR(cgroup_create(m, "/a/../../etc", NULL, &err), &err, ERR_INVALID_ARGUMENT, "\"..\" component");
    CHECK_ERR(cgroup_destroy(m, "/", &err), &err, ERR_INVALID_ARGUMENT, "root cgroup");
    cgroup_manager_free(m);
    remove_tmp(root);
}

static void test_v2_processes(void)
{
    char *root = make_tmp();
    struct cgroup_manager *m = fake(CGROUP_V2, root, CGROUP_DRIVER_KIND_CGROUPFS);
    err_t err = ERR_INIT;
    v2_cg(root, "");
    v2_cg(root, "/pod/c");
    CHECK_OK(cgroup_attach(m, "/pod/c", 4242, &err));
    CHECK_STREQ(get(root, "pod/c/cgroup.procs"), "4242");
    CHECK_ERR(cgroup_attach(m, "/pod/c", 0, &err), &err, ERR_INVALID_ARGUMENT, "not a process id");
    CHECK_ERR(cgroup_attach(m, "/pod/none", 1, &err), &err, ERR_NOT_FOUND, "/pod/none/cgroup.procs");

    bool pop = true;
    CHECK_OK(cgroup_populated(m, "/pod/c", &pop, &err));
    CHECK(!pop);
    put(root, "pod/c/cgroup.events", "populated 1\nfrozen 0\n");
    CHECK_OK(cgroup_populated(m, "/pod/c", &pop, &err));
    CHECK(pop);
    CHECK_ERR(cgroup_populated(m, "/pod/none", &pop, &err), &err, ERR_NOT_FOUND, "cgroup.events");

    uint64_t n = 0;
    CHECK_OK(cgroup_oom_kills(m, "/pod/c", &n, &err));
    CHECK_EQ_U64(n, 3);
    put(root, "pod/c/memory.events", "low 0\nhigh 0\n");
    CHECK_ERR(cgroup_oom_kills(m, "/pod/c", &n, &err), &err, ERR_UNIMPLEMENTED, "no oom_kill counter");
    char *p = path_join(root, "pod/c/memory.events");
    unlink(p);
    free(p);
    CHECK_ERR(cgroup_oom_kills(m, "/pod/c", &n, &err), &err, ERR_FAILED_PRECONDITION,
              "memory controller is not enabled");

    int fd = cgroup_open_v2(m, "/pod/c", &err);
    CHECK_MSG(fd >= 0, "cgroup_open_v2: %d %s", fd, err.msg ? err.msg : "");
    if (fd >= 0)
        close(fd);
    CHECK_ERR(cgroup_open_v2(m, "/pod/none", &err), &err, ERR_NOT_FOUND, "/pod/none");

    char *f = cgroup_file(m, "/pod/c", "memory", "memory.stat");
    char *want = path_join(root, "pod/c/memory.stat");
    CHECK_STREQ(f, want);
    free(f);
    free(want);
    f = cgroup_file(m, "/", NULL, "cpu.stat");
    want = path_join(root, "cpu.stat");
    CHECK_STREQ(f, want);
    free(f);
    free(want);
    CHECK(cgroup_file(m, "/pod/../x", "memory", "memory.stat") == NULL);
    CHECK(cgroup_file(m, "/pod", "memory", "../memory.stat") == NULL);

    /* Destroying what does not exist is fine. */
    CHECK_OK(cgroup_destroy(m, "/pod/none", &err));
    CHECK_OK(cgroup_destroy(m, "/never/was", &err));
    cgroup_manager_free(m);
    remove_tmp(root);
}

/* ---- (a) fake v1 ---------------------------------------------------------------- */

static void test_v1_create(void)
{
    char *root = make_tmp();
    err_t err = ERR_INIT;
    v1_cg(root, "");
    v1_cg(root, "/kubepods");
    v1_cg(root, "/kubepods/burstable");
    v1_cg(root, "/kubepods/burstable/pod1");
    put(root, "cpuset/cpuset.cpus", "0-3\n");
    put(root, "cpuset/cpuset.mems", "0\n");
    put(root, "cpuset/kubepods/cpuset.cpus", "0-2\n"); /* set: kept */
    put(root, "unified/cgroup.procs", "");
    struct cgroup_manager *m = fake(CGROUP_V1, root, CGROUP_DRIVER_KIND_CGROUPFS);
    CHECK_EQ_INT(cgroup_manager_version(m), CGROUP_V1);

    struct cgroup_hugepage_limit huge[] = {{"2MB", 8 * MiB}};
    struct cgroup_resources res = {
        .cpu_period = 100000,
        .cpu_quota = 150000,
        .cpu_shares = 512,
        .memory_limit = 64 * MiB,
        .memory_swap_limit = 128 * MiB,
        .pids_limit = 50,
        .hugepages = huge,
        .n_hugepages = 1,
    };
    const char *pod = "/kubepods/burstable/pod1";
    int r = cgroup_create(m, pod, &res, &err);
    CHECK_MSG(r == 0, "create: %s", err.msg ? err.msg : "");
    err_clear(&err);
    CHECK_STREQ(get(root, "cpu,cpuacct/kubepods/burstable/pod1/cpu.shares"), "512");
    CHECK_STREQ(get(root, "cpu,cpuacct/kubepods/burstable/pod1/cpu.cfs_period_us"), "100000");
    CHECK_STREQ(get(root, "cpu,cpuacct/kubepods/burstable/pod1/cpu.cfs_quota_us"), "150000");
    CHECK_STREQ(get(root, "memory/kubepods/burstable/pod1/memory.limit_in_bytes"), "67108864");
    CHECK_STREQ(get(root, "memory/kubepods/burstable/pod1/memory.memsw.limit_in_bytes"), "134217728");
    CHECK_STREQ(get(root, "pids/kubepods/burstable/pod1/pids.max"), "50");
    CHECK_STREQ(get(root, "hugetlb/kubepods/burstable/pod1/hugetlb.2MB.limit_in_bytes"), "8388608");
    CHECK_STREQ(get(root, "hugetlb/kubepods/burstable/pod1/hugetlb.1GB.limit_in_bytes"), "9223372036854771712\n");
    /* Empty cpusets filled from the parent, level by level. */
    CHECK_STREQ(get(root, "cpuset/kubepods/cpuset.cpus"), "0-2\n");
    CHECK_STREQ(get(root, "cpuset/kubepods/cpuset.mems"), "0");
    CHECK_STREQ(get(root, "cpuset/kubepods/burstable/cpuset.cpus"), "0-2");
    CHECK_STREQ(get(root, "cpuset/kubepods/burstable/pod1/cpuset.cpus"), "0-2");
    CHECK_STREQ(get(root, "cpuset/kubepods/burstable/pod1/cpuset.mems"), "0");
    /* The hybrid layout's cgroup2 tree gets the cgroup too. */
    CHECK(exists(root, "unified/kubepods/burstable/pod1"));

    /* Quota -1 is v1's "unlimited"; an explicit cpuset wins. */
    res = (struct cgroup_resources){.cpu_quota = -1,
                                    .cpuset_cpus = "1",
                                    .cpuset_mems = "0",
                                    .pids_limit = -1,
                                    .memory_limit = -1,
                                    .memory_swap_limit = -1};
    CHECK_OK(cgroup_update(m, pod, &res, &err));
    CHECK_STREQ(get(root, "cpu,cpuacct/kubepods/burstable/pod1/cpu.cfs_quota_us"), "-1");
    CHECK_STREQ(get(root, "cpu,cpuacct/kubepods/burstable/pod1/cpu.cfs_period_us"), "100000");
    CHECK_STREQ(get(root, "cpuset/kubepods/burstable/pod1/cpuset.cpus"), "1");
    CHECK_STREQ(get(root, "pids/kubepods/burstable/pod1/pids.max"), "max");
    CHECK_STREQ(get(root, "memory/kubepods/burstable/pod1/memory.limit_in_bytes"), "-1");
    CHECK_STREQ(get(root, "memory/kubepods/burstable/pod1/memory.memsw.limit_in_bytes"), "-1");

    /* Unified keys are v2 only. */
    const char *k[] = {"memory.high"}, *v[] = {"1"};
    CHECK_ERR(
        cgroup_update(m, pod, &(struct cgroup_resources){.unified_keys = k, .unified_values = v, .n_unified = 1}, &err),
        &err, ERR_INVALID_ARGUMENT, "this node uses cgroup v1");

    /* No swap accounting: memsw absent, an error only when asked for. */
    char *p = path_join(root, "memory/kubepods/burstable/pod1/memory.memsw.limit_in_bytes");
    unlink(p);
    free(p);
    CHECK_ERR(
        cgroup_update(m, pod, &(struct cgroup_resources){.memory_limit = MiB, .memory_swap_limit = 2 * MiB}, &err),
        &err, ERR_FAILED_PRECONDITION, "swap accounting is not enabled");
    CHECK_STREQ(get(root, "memory/kubepods/burstable/pod1/memory.limit_in_bytes"), "-1"); /* untouched */
    CHECK_OK(cgroup_update(m, pod, &(struct cgroup_resources){.memory_limit = 2 * MiB}, &err));
    CHECK_STREQ(get(root, "memory/kubepods/burstable/pod1/memory.limit_in_bytes"), "2097152");
    struct cgroup_hugepage_limit big[] = {{"1GB", 0}, {"16GB", 0}};
    CHECK_ERR(cgroup_update(m, pod, &(struct cgroup_resources){.hugepages = big, .n_hugepages = 2}, &err), &err,
              ERR_FAILED_PRECONDITION, "hugetlb.16GB.limit_in_bytes does not exist");
    CHECK_STREQ(get(root, "hugetlb/kubepods/burstable/pod1/hugetlb.1GB.limit_in_bytes"), "9223372036854771712\n");

    /* Processes: attached in every hierarchy, the cgroup2 one included. */
    put(root, "unified/kubepods/burstable/pod1/cgroup.procs", "");
    CHECK_OK(cgroup_attach(m, pod, 777, &err));
    static const char *const hier[] = {"cpu,cpuacct", "cpuset", "memory", "pids", "hugetlb", "unified"};
    for (size_t i = 0; i < ARRAY_SIZE(hier); i++) {
        char rel[256];
        snprintf(rel, sizeof(rel), "%s%s/cgroup.procs", hier[i], pod);
        const char *got = get(root, rel);
        CHECK_MSG(strcmp(got, "777") == 0, "%s: \"%s\"", rel, got);
    }
    int fd = cgroup_open_v2(m, pod, &err);
    CHECK_EQ_INT(fd, -ENOTSUP);
    CHECK_CONTAINS(err.msg, "cgroup v1");
    err_clear(&err);

    /* populated looks at the memory hierarchy, descendants included. */
    bool pop = true;
    put(root, "memory/kubepods/burstable/pod1/cgroup.procs", "");
    CHECK_OK(cgroup_populated(m, "/kubepods", &pop, &err));
    CHECK(!pop);
    put(root, "memory/kubepods/burstable/pod1/cgroup.procs", "12\n13\n");
    CHECK_OK(cgroup_populated(m, "/kubepods", &pop, &err));
    CHECK(pop);
    CHECK_ERR(cgroup_populated(m, "/kubepods/none", &pop, &err), &err, ERR_NOT_FOUND, "/kubepods/none");

    uint64_t n = 0;
    CHECK_OK(cgroup_oom_kills(m, pod, &n, &err));
    CHECK_EQ_U64(n, 2);

    char *f = cgroup_file(m, pod, "cpuacct", "cpuacct.usage");
    char *want = path_join(root, "cpu,cpuacct/kubepods/burstable/pod1/cpuacct.usage");
    CHECK_STREQ(f, want);
    free(f);
    free(want);
    CHECK(cgroup_file(m, pod, "rdma", "rdma.max") == NULL);
    CHECK(cgroup_file(m, pod, "cpu,cpuacct", "x") == NULL);
    CHECK(cgroup_file(m, pod, NULL, "x") == NULL);
    cgroup_manager_free(m);

    /* Without a hugetlb (or any) hierarchy for a requested value. */
    char *h = path_join(root, "hugetlb");
    CHECK_OK(fs_remove_tree(h, &err));
    free(h);
    m = fake(CGROUP_V1, root, CGROUP_DRIVER_KIND_CGROUPFS);
    CHECK_ERR(cgroup_update(m, pod, &(struct cgroup_resources){.hugepages = huge, .n_hugepages = 1}, &err), &err,
              ERR_FAILED_PRECONDITION, "no hugetlb cgroup hierarchy is mounted");
    CHECK_OK(cgroup_update(m, pod, &(struct cgroup_resources){.pids_limit = 9}, &err));
    CHECK_STREQ(get(root, "pids/kubepods/burstable/pod1/pids.max"), "9");
    cgroup_manager_free(m);

    /* A hybrid node with hugetlb bound to the cgroup2 tree: enabled down the
     * tree there and limited with v2's file names. */
    static const char *const levels[] = {"unified", "unified/kubepods", "unified/kubepods/burstable",
                                         "unified/kubepods/burstable/pod1"};
    for (size_t i = 0; i < ARRAY_SIZE(levels); i++) {
        char rel[256];
        snprintf(rel, sizeof(rel), "%s/cgroup.controllers", levels[i]);
        put(root, rel, "hugetlb\n");
        snprintf(rel, sizeof(rel), "%s/cgroup.subtree_control", levels[i]);
        put(root, rel, "");
        snprintf(rel, sizeof(rel), "%s/hugetlb.2MB.max", levels[i]);
        put(root, rel, "max\n");
    }
    m = fake(CGROUP_V1, root, CGROUP_DRIVER_KIND_CGROUPFS);
    r = cgroup_create(m, pod, &(struct cgroup_resources){.hugepages = huge, .n_hugepages = 1}, &err);
    CHECK_MSG(r == 0, "create with hugetlb on cgroup2: %s", err.msg ? err.msg : "");
    err_clear(&err);
    CHECK_STREQ(get(root, "unified/kubepods/burstable/pod1/hugetlb.2MB.max"), "8388608");
    CHECK_STREQ(get(root, "unified/cgroup.subtree_control"), "+hugetlb");
    CHECK_STREQ(get(root, "unified/kubepods/burstable/cgroup.subtree_control"), "+hugetlb");
    CHECK_STREQ(get(root, "unified/kubepods/burstable/pod1/cgroup.subtree_control"), "");
    f = cgroup_file(m, pod, "hugetlb", "hugetlb.2MB.max");
    want = path_join(root, "unified/kubepods/burstable/pod1/hugetlb.2MB.max");
    CHECK_STREQ(f, want);
    free(f);
    free(want);
    f = cgroup_file(m, pod, "memory", "memory.stat"); /* v1-bound stays v1 */
    want = path_join(root, "memory/kubepods/burstable/pod1/memory.stat");
    CHECK_STREQ(f, want);
    free(f);
    free(want);
    cgroup_manager_free(m);

    CHECK_ERR(cgroup_manager_new_at(CGROUP_V1, "/nonexistent-edgecri", 0, &m, &err), &err, ERR_NOT_FOUND,
              "/nonexistent-edgecri");
    CHECK_ERR(cgroup_manager_new_at(CGROUP_V2, root, 7, &m, &err), &err, ERR_INVALID_ARGUMENT, "cgroup driver");
    remove_tmp(root);
}

/* ---- (b) the real machine ------------------------------------------------------- */

static char *rand_top(void)
{
    unsigned v = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, &v, sizeof(v)) != sizeof(v))
        v = (unsigned)time(NULL) ^ (unsigned)getpid();
    if (fd >= 0)
        close(fd);
    char *s = NULL;
    if (asprintf(&s, "/edgecri-test-%08x", v) < 0)
        abort();
    return s;
}

static bool proc_cgroup_has(pid_t pid, const char *needle)
{
    char p[64], buf[4096];
    snprintf(p, sizeof(p), "/proc/%d/cgroup", (int)pid);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    /* Each line ends right after the path. */
    char want[512];
    snprintf(want, sizeof(want), "%s\n", needle);
    return strstr(buf, want) != NULL;
}

static bool file_is(struct cgroup_manager *m, const char *cg, const char *ctl, const char *file, const char *want)
{
    char *p = cgroup_file(m, cg, ctl, file);
    const char *got = p ? get("", p + 1) : "(no file)";
    free(p);
    char trimmed[4096];
    snprintf(trimmed, sizeof(trimmed), "%s", got);
    trimmed[strcspn(trimmed, "\n")] = '\0';
    if (strcmp(trimmed, want) == 0)
        return true;
    UNIT_FAIL("%s %s of %s: \"%s\", want \"%s\"", ctl, file, cg, trimmed, want);
    return false;
}

/* Kills and reaps a test child the test did not already reap. */
static void reap(pid_t *pid)
{
    if (*pid > 0) {
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
        *pid = -1;
    }
}

static void real_cleanup(struct cgroup_manager *m, const char *top)
{
    err_t err = ERR_INIT;
    if (cgroup_destroy(m, top, &err) < 0)
        UNIT_FAIL("cleanup of %s: %s", top, err.msg);
    err_clear(&err);
}

/* Where this layout keeps cgroup `cg` of the hierarchy with `ctl`. */
static bool cg_dir_exists(struct cgroup_manager *m, const char *cg, const char *ctl)
{
    char *p = cgroup_file(m, cg, ctl, "cgroup.procs");
    struct stat st;
    bool r = p && stat(p, &st) == 0;
    free(p);
    return r;
}

static void test_real_detect(void)
{
    struct cgroup_manager *m = NULL;
    err_t err = ERR_INIT;
    int r = cgroup_manager_new(CGROUP_DRIVER_KIND_CGROUPFS, &m, &err);
    CHECK_MSG(r == 0, "cgroup_manager_new: %s", err.msg ? err.msg : "");
    err_clear(&err);
    if (!m)
        return;
    /* Pure v2 has the unified tree at /sys/fs/cgroup; the hybrid layout a
     * tmpfs with one directory per v1 hierarchy. */
    struct stat st;
    bool pure_v2 = stat("/sys/fs/cgroup/cgroup.controllers", &st) == 0;
    CHECK_EQ_INT(cgroup_manager_version(m), pure_v2 ? CGROUP_V2 : CGROUP_V1);
    printf("cgroup layout: %s\n", pure_v2 ? "v2" : "v1 (hybrid)");
    char *f = cgroup_file(m, "/", "memory", pure_v2 ? "memory.stat" : "memory.limit_in_bytes");
    CHECK_MSG(f && stat(f, &st) == 0, "memory root file %s", f ? f : "(null)");
    free(f);
    cgroup_manager_free(m);
}

static void test_real_limits(void)
{
    struct cgroup_manager *m = NULL;
    err_t err = ERR_INIT;
    if (cgroup_manager_new(CGROUP_DRIVER_KIND_CGROUPFS, &m, &err) < 0) {
        UNIT_FAIL("cgroup_manager_new: %s", err.msg);
        err_clear(&err);
        return;
    }
    bool v1 = cgroup_manager_version(m) == CGROUP_V1;
    char *top = rand_top(), *pod = path_join(top, "pod"), *ctr = path_join(pod, "ctr");
    pid_t child = -1;
    struct cgroup_resources res = {
        .memory_limit = 64 * MiB, .pids_limit = 50, .cpu_quota = 50000, .cpu_period = 100000, .cpu_shares = 512};
    int r = cgroup_create(m, pod, NULL, &err);
    CHECK_MSG(r == 0, "create %s: %s", pod, err.msg ? err.msg : "");
    err_clear(&err);
    r = cgroup_create(m, ctr, &res, &err);
    CHECK_MSG(r == 0, "create %s: %s", ctr, err.msg ? err.msg : "");
    err_clear(&err);
    if (r < 0)
        goto out;
    CHECK_OK(cgroup_create(m, ctr, &res, &err)); /* idempotent */
    err_clear(&err);
    if (v1) {
        file_is(m, ctr, "memory", "memory.limit_in_bytes", "67108864");
        file_is(m, ctr, "pids", "pids.max", "50");
        file_is(m, ctr, "cpu", "cpu.cfs_quota_us", "50000");
        file_is(m, ctr, "cpu", "cpu.cfs_period_us", "100000");
        file_is(m, ctr, "cpu", "cpu.shares", "512");
        /* Filled from the root so tasks can join. */
        char *rootcpus = cgroup_file(m, "/", "cpuset", "cpuset.cpus");
        char want[256];
        snprintf(want, sizeof(want), "%s", rootcpus ? get("", rootcpus + 1) : "");
        want[strcspn(want, "\n")] = '\0';
        free(rootcpus);
        file_is(m, ctr, "cpuset", "cpuset.cpus", want);
    } else {
        file_is(m, ctr, "memory", "memory.max", "67108864");
        file_is(m, ctr, "pids", "pids.max", "50");
        file_is(m, ctr, "cpu", "cpu.max", "50000 100000");
        file_is(m, ctr, "cpu", "cpu.weight", "20");
    }

    int sync_pipe[2];
    if (pipe2(sync_pipe, O_CLOEXEC) < 0)
        abort();
    child = fork();
    if (child == 0) {
        char c;
        close(sync_pipe[1]);
        if (read(sync_pipe[0], &c, 1) < 0)
            _exit(3);
        for (;;)
            pause();
    }
    close(sync_pipe[0]);
    r = cgroup_attach(m, ctr, child, &err);
    CHECK_MSG(r == 0, "attach: %s", err.msg ? err.msg : "");
    err_clear(&err);
    char needle[512];
    if (v1) {
        snprintf(needle, sizeof(needle), ":memory:%s", ctr);
        CHECK_MSG(proc_cgroup_has(child, needle), "child not in %s", needle);
        snprintf(needle, sizeof(needle), ":pids:%s", ctr);
        CHECK_MSG(proc_cgroup_has(child, needle), "child not in %s", needle);
        snprintf(needle, sizeof(needle), ":cpuset:%s", ctr);
        CHECK_MSG(proc_cgroup_has(child, needle), "child not in %s", needle);
        struct stat st;
        if (stat("/sys/fs/cgroup/unified/cgroup.procs", &st) == 0) {
            snprintf(needle, sizeof(needle), "0::%s", ctr);
            CHECK_MSG(proc_cgroup_has(child, needle), "child not in the hybrid cgroup2 tree at %s", ctr);
        }
    } else {
        snprintf(needle, sizeof(needle), "0::%s", ctr);
        CHECK_MSG(proc_cgroup_has(child, needle), "child not in %s", needle);
    }
    if (write(sync_pipe[1], "x", 1) != 1)
        UNIT_FAIL("releasing the child");
    close(sync_pipe[1]);

    bool pop = false;
    CHECK_OK(cgroup_populated(m, ctr, &pop, &err));
    CHECK(pop);
    pop = false;
    CHECK_OK(cgroup_populated(m, top, &pop, &err)); /* descendants count */
    CHECK(pop);
    err_clear(&err);

    /* Raising then lowering memory together with memsw: the kernel wants
     * memsw >= memory at every instant, so the order flips. */
    char *memsw = cgroup_file(m, ctr, "memory", v1 ? "memory.memsw.limit_in_bytes" : "memory.swap.max");
    struct stat st;
    bool swap = memsw && stat(memsw, &st) == 0;
    free(memsw);
    if (swap) {
        r = cgroup_update(m, ctr, &(struct cgroup_resources){.memory_limit = 64 * MiB, .memory_swap_limit = 64 * MiB},
                          &err);
        CHECK_MSG(r == 0, "update: %s", err.msg ? err.msg : "");
        err_clear(&err);
        r = cgroup_update(m, ctr, &(struct cgroup_resources){.memory_limit = 256 * MiB, .memory_swap_limit = 512 * MiB},
                          &err);
        CHECK_MSG(r == 0, "raising memory: %s", err.msg ? err.msg : "");
        err_clear(&err);
        file_is(m, ctr, "memory", v1 ? "memory.limit_in_bytes" : "memory.max", "268435456");
        file_is(m, ctr, "memory", v1 ? "memory.memsw.limit_in_bytes" : "memory.swap.max",
                v1 ? "536870912" : "268435456");
        r = cgroup_update(m, ctr, &(struct cgroup_resources){.memory_limit = 32 * MiB, .memory_swap_limit = 32 * MiB},
                          &err);
        CHECK_MSG(r == 0, "lowering memory: %s", err.msg ? err.msg : "");
        err_clear(&err);
        file_is(m, ctr, "memory", v1 ? "memory.limit_in_bytes" : "memory.max", "33554432");
        file_is(m, ctr, "memory", v1 ? "memory.memsw.limit_in_bytes" : "memory.swap.max", v1 ? "33554432" : "0");
    } else {
        printf("no swap accounting: memory+swap ordering not exercised\n");
    }
    /* Hugepages, wherever this node binds hugetlb (v1, the hybrid cgroup2
     * tree, or v2) and if it has 2MB pages. */
    char *h1 = cgroup_file(m, ctr, "hugetlb", "hugetlb.2MB.limit_in_bytes");
    char *h2 = cgroup_file(m, ctr, "hugetlb", "hugetlb.2MB.max");
    const char *hname = h1 && stat(h1, &st) == 0   ? "hugetlb.2MB.limit_in_bytes"
                        : h2 && stat(h2, &st) == 0 ? "hugetlb.2MB.max"
                                                   : NULL;
    free(h1);
    free(h2);
    if (hname) {
        struct cgroup_hugepage_limit hp[] = {{"2MB", 8 * MiB}};
        r = cgroup_update(m, ctr, &(struct cgroup_resources){.hugepages = hp, .n_hugepages = 1}, &err);
        CHECK_MSG(r == 0, "hugepages: %s", err.msg ? err.msg : "");
        err_clear(&err);
        file_is(m, ctr, "hugetlb", hname, "8388608");
        printf("hugetlb limit set through %s\n", hname);
    } else {
        printf("no hugetlb controller with 2MB pages here: real hugepage limits not exercised\n");
    }
    r = cgroup_update(m, ctr, &(struct cgroup_resources){.pids_limit = 60, .cpu_quota = -1}, &err);
    CHECK_MSG(r == 0, "update: %s", err.msg ? err.msg : "");
    err_clear(&err);
    file_is(m, ctr, "pids", "pids.max", "60");
    file_is(m, ctr, "cpu", v1 ? "cpu.cfs_quota_us" : "cpu.max", v1 ? "-1" : "max 100000");

    /* Destroying the top kills the child and removes everything below. */
    r = cgroup_destroy(m, top, &err);
    CHECK_MSG(r == 0, "destroy: %s", err.msg ? err.msg : "");
    err_clear(&err);
    int status = 0;
    pid_t w = waitpid(child, &status, 0);
    CHECK_EQ_INT(w, child);
    CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %#x, want SIGKILL", status);
    child = -1;
    static const char *const ctls[] = {"memory", "pids", "cpu", "cpuset", "freezer", "devices"};
    for (size_t i = 0; i < ARRAY_SIZE(ctls); i++)
        CHECK_MSG(!cg_dir_exists(m, top, ctls[i]), "%s of %s still exists", ctls[i], top);
    if (v1) {
        char *u = path_join("/sys/fs/cgroup/unified", top + 1);
        CHECK_MSG(stat(u, &st) < 0 && errno == ENOENT, "%s still exists", u);
        free(u);
    }
    CHECK_ERR(cgroup_populated(m, top, &pop, &err), &err, ERR_NOT_FOUND, top);
    CHECK_OK(cgroup_destroy(m, top, &err)); /* gone already: fine */
out:
    reap(&child);
    real_cleanup(m, top);
    free(ctr);
    free(pod);
    free(top);
    cgroup_manager_free(m);
}

static void test_real_oom(void)
{
    struct cgroup_manager *m = NULL;
    err_t err = ERR_INIT;
    if (cgroup_manager_new(CGROUP_DRIVER_KIND_CGROUPFS, &m, &err) < 0) {
        UNIT_FAIL("cgroup_manager_new: %s", err.msg);
        err_clear(&err);
        return;
    }
    bool v1 = cgroup_manager_version(m) == CGROUP_V1;
    char *top = rand_top(), *ctr = path_join(top, "oom");
    pid_t child = -1;
    int r = cgroup_create(m, ctr, NULL, &err);
    CHECK_MSG(r == 0, "create %s: %s", ctr, err.msg ? err.msg : "");
    err_clear(&err);
    if (r < 0)
        goto out;
    /* No swap to escape to, when the kernel accounts it. */
    char *sw = cgroup_file(m, ctr, "memory", v1 ? "memory.memsw.limit_in_bytes" : "memory.swap.max");
    struct stat st;
    bool swap = sw && stat(sw, &st) == 0;
    free(sw);
    struct cgroup_resources res = {.memory_limit = 16 * MiB, .memory_swap_limit = swap ? 16 * MiB : 0};
    r = cgroup_update(m, ctr, &res, &err);
    CHECK_MSG(r == 0, "limit %s: %s", ctr, err.msg ? err.msg : "");
    err_clear(&err);
    if (r < 0)
        goto out;
    uint64_t before = 99;
    CHECK_OK(cgroup_oom_kills(m, ctr, &before, &err));
    CHECK_EQ_U64(before, 0);
    err_clear(&err);

    int sync_pipe[2];
    if (pipe2(sync_pipe, O_CLOEXEC) < 0)
        abort();
    child = fork();
    if (child == 0) {
        char c;
        close(sync_pipe[1]);
        if (read(sync_pipe[0], &c, 1) != 1)
            _exit(3);
        size_t len = 64 * MiB;
        char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            _exit(4);
        for (size_t i = 0; i < len; i += 4096)
            p[i] = 1;
        _exit(0);
    }
    close(sync_pipe[0]);
    r = cgroup_attach(m, ctr, child, &err);
    CHECK_MSG(r == 0, "attach: %s", err.msg ? err.msg : "");
    err_clear(&err);
    if (r < 0) {
        close(sync_pipe[1]);
        goto out; /* the child dies of EOF, never allocating outside the cgroup */
    }
    if (write(sync_pipe[1], "x", 1) != 1)
        UNIT_FAIL("releasing the child");
    close(sync_pipe[1]);
    int status = 0;
    CHECK_EQ_INT(waitpid(child, &status, 0), child);
    child = -1;
    CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %#x, want an OOM SIGKILL", status);
    uint64_t kills = 0;
    r = cgroup_oom_kills(m, ctr, &kills, &err);
    CHECK_MSG(r == 0, "oom kills: %s", err.msg ? err.msg : "");
    err_clear(&err);
    CHECK_MSG(kills >= 1, "oom_kill is %" PRIu64, kills);
out:
    reap(&child);
    real_cleanup(m, top);
    CHECK(!cg_dir_exists(m, top, "memory"));
    free(ctr);
    free(top);
    cgroup_manager_free(m);
}

/* The v2 code on a real cgroup2 tree: the whole one on a v2 machine, the
 * controller-less unified tree on a hybrid one. */
static void test_real_v2_tree(void)
{
    struct cgroup_manager *m = NULL;
    err_t err = ERR_INIT;
    if (cgroup_manager_new(CGROUP_DRIVER_KIND_CGROUPFS, &m, &err) < 0) {
        UNIT_FAIL("cgroup_manager_new: %s", err.msg);
        err_clear(&err);
        return;
    }
    bool hybrid = false;
    if (cgroup_manager_version(m) == CGROUP_V1) {
        cgroup_manager_free(m);
        m = NULL;
        struct stat st;
        if (stat("/sys/fs/cgroup/unified/cgroup.procs", &st) < 0) {
            printf("no cgroup2 tree mounted: the real v2 test has nothing to run on\n");
            return;
        }
        m = fake(CGROUP_V2, "/sys/fs/cgroup/unified", CGROUP_DRIVER_KIND_CGROUPFS);
        hybrid = true;
    }
    char *top = rand_top(), *ctr = path_join(top, "c");
    pid_t child = -1;
    int fd = -1;
    int r = cgroup_create(m, ctr, NULL, &err);
    CHECK_MSG(r == 0, "create %s: %s", ctr, err.msg ? err.msg : "");
    err_clear(&err);
    if (r < 0)
        goto out;
    if (hybrid) /* a value for a controller this tree lacks: refused clearly */
        CHECK_ERR(cgroup_update(m, ctr, &(struct cgroup_resources){.memory_limit = 64 * MiB}, &err), &err,
                  ERR_FAILED_PRECONDITION, "the memory controller is not available");
    fd = cgroup_open_v2(m, ctr, &err);
    CHECK_MSG(fd >= 0, "open_v2: %s", err.msg ? err.msg : "");
    err_clear(&err);
    if (fd < 0)
        goto out;
    struct clone_args args = {.flags = CLONE_INTO_CGROUP, .exit_signal = SIGCHLD, .cgroup = (uint64_t)fd};
    long c = syscall(SYS_clone3, &args, sizeof(args));
    if (c == 0) {
        for (;;)
            pause();
    }
    CHECK_MSG(c > 0, "clone3: %s", strerror(errno));
    if (c <= 0)
        goto out;
    child = (pid_t)c;
    char needle[512];
    snprintf(needle, sizeof(needle), "0::%s", ctr);
    CHECK_MSG(proc_cgroup_has(child, needle), "clone3 child not in %s", needle);
    bool pop = false;
    CHECK_OK(cgroup_populated(m, ctr, &pop, &err));
    CHECK(pop);
    pop = false;
    CHECK_OK(cgroup_populated(m, top, &pop, &err));
    CHECK(pop);
    err_clear(&err);
    /* cgroup.kill on the top kills the child below it. */
    r = cgroup_destroy(m, top, &err);
    CHECK_MSG(r == 0, "destroy: %s", err.msg ? err.msg : "");
    err_clear(&err);
    int status = 0;
    CHECK_EQ_INT(waitpid(child, &status, 0), child);
    child = -1;
    CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %#x, want SIGKILL", status);
    CHECK(!cg_dir_exists(m, top, NULL));
out:
    if (fd >= 0)
        close(fd);
    reap(&child);
    real_cleanup(m, top);
    free(ctr);
    free(top);
    cgroup_manager_free(m);
}

int main(void)
{
    RUN(test_paths_cgroupfs);
    RUN(test_paths_systemd);
    RUN(test_v2_create);
    RUN(test_v2_conversions);
    RUN(test_v2_processes);
    RUN(test_v1_create);
    if (geteuid() != 0) {
        UNIT_FAIL("the real-cgroup tests need root");
        return unit_summary();
    }
    RUN(test_real_detect);
    RUN(test_real_limits);
    RUN(test_real_oom);
    RUN(test_real_v2_tree);
    return unit_summary();
}
