/* The clone3 spawn engine and the pidfd watcher, with real namespaces,
 * mounts and identities (the tests run as root). A root filesystem is made
 * from the host's busybox-static in a temporary directory. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "runtime/process.h"
#include "runtime/spawn.h"
#include "unit.h"
#include "util/cleanup.h"
#include "util/fs.h"

static char root[64];

static void make_rootfs(void)
{
    snprintf(root, sizeof(root), "/tmp/edgecri-spawn-XXXXXX");
    CHECK(mkdtemp(root) != NULL);
    CHECK_OK(chmod(root, 0755));
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "mkdir -p %s/bin %s/proc %s/dev %s/tmp && cp /bin/busybox %s/bin/ && "
             "for a in sh cat echo id ls true false sleep grep; do ln -s busybox %s/bin/$a; done",
             root, root, root, root, root, root);
    CHECK_EQ_INT(system(cmd), 0);
}

struct result {
    bool done;
    bool ok;
    char msg[512];
    bool exited;
    struct process_exit exit;
};

static void on_spawned(void *data, struct spawn_child *c, const err_t *err)
{
    (void)c;
    struct result *r = data;
    r->done = true;
    r->ok = err == NULL;
    if (err)
        snprintf(r->msg, sizeof(r->msg), "%s", err->msg ? err->msg : "?");
}

static void on_exit_cb(void *data, const struct process_exit *e)
{
    struct result *r = data;
    r->exited = true;
    r->exit = *e;
}

static void run_until(uv_loop_t *loop, bool *flag)
{
    for (int i = 0; i < 5000 && !*flag; i++)
        uv_run(loop, UV_RUN_ONCE);
}

/* Runs `script` with busybox sh in the rootfs; returns its stdout. */
static int run_plan(struct spawn_plan *plan, char *out, size_t out_len, struct result *r)
{
    uv_loop_t *loop = uv_default_loop();
    int p[2];
    CHECK_OK(pipe2(p, O_CLOEXEC));
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    plan->stdio[0] = devnull;
    plan->stdio[1] = p[1];
    plan->stdio[2] = p[1];
    struct spawn_child *c = NULL;
    err_t err = ERR_INIT;
    memset(r, 0, sizeof(*r));
    int rc = spawn_start(loop, plan, &c, &err);
    CHECK_MSG(rc == 0, "spawn_start: %s", err.msg ? err.msg : "");
    err_clear(&err);
    close(p[1]);
    if (rc < 0) {
        close(p[0]);
        close(devnull);
        return rc;
    }
    CHECK_OK(spawn_release(c, on_spawned, r, &err));
    run_until(loop, &r->done);
    struct process_watch *w = process_watch_start(loop, spawn_take_pidfd(c), spawn_pid(c), true, on_exit_cb, r, &err);
    CHECK(w != NULL);
    run_until(loop, &r->exited);
    size_t got = 0;
    ssize_t n;
    while (got + 1 < out_len && (n = read(p[0], out + got, out_len - got - 1)) > 0)
        got += (size_t)n;
    out[got] = '\0';
    close(p[0]);
    close(devnull);
    spawn_child_free(c);
    uv_run(loop, UV_RUN_NOWAIT);
    return 0;
}

static void base_plan(struct spawn_plan *plan, const char *const *argv)
{
    static const char *const env[] = {"PATH=/bin", "HOME=/", NULL};
    static const char *const paths[] = {"/bin/sh", NULL};
    memset(plan, 0, sizeof(*plan));
    plan->cgroup_fd = -1;
    plan->pidns_fd = -1;
    plan->exec_fd = -1;
    plan->argv = argv;
    plan->envp = env;
    plan->exec_paths = paths;
}

static void test_container_like(void)
{
    static const struct spawn_op ops[] = {
        {.kind = SPAWN_OP_MOUNT,
         .source = "proc",
         .target = "/proc",
         .fstype = "proc",
         .flags = MS_NOSUID | MS_NODEV | MS_NOEXEC},
        {.kind = SPAWN_OP_MOUNT,
         .source = "tmpfs",
         .target = "/dev",
         .fstype = "tmpfs",
         .data = "mode=755,size=1m",
         .flags = MS_NOSUID},
        {.kind = SPAWN_OP_MKNOD, .target = "/dev/null", .mode = S_IFCHR | 0666, .dev = 0},
        {.kind = SPAWN_OP_SYMLINK, .source = "/proc/self/fd", .target = "/dev/fd"},
        {.kind = SPAWN_OP_MKDIR, .target = "/data/deep/dir"},
        {.kind = SPAWN_OP_BIND,
         .source = "/etc/hostname",
         .target = "/etc/hostname",
         .flags = MS_RDONLY,
         .create_file = true},
        {.kind = SPAWN_OP_MASK, .target = "/proc/kcore", .optional = true},
        {.kind = SPAWN_OP_MASK, .target = "/proc/does-not-exist", .optional = true},
        {.kind = SPAWN_OP_READONLY, .target = "/proc/sys"},
    };
    struct spawn_op local[ARRAY_SIZE(ops)];
    memcpy(local, ops, sizeof(ops));
    local[2].dev = makedev(1, 3);
    static const char *const argv[] = {
        "sh", "-c",
        "echo pid=$$; echo host=$(cat /proc/sys/kernel/hostname); ls -d /data/deep/dir; "
        "test -c /dev/null && echo null-ok; readlink /dev/fd; cat /proc/kcore | wc -c; "
        "echo x > /proc/sys/kernel/hostname 2>/dev/null || echo sys-ro; echo x >> /etc/hostname 2>/dev/null || echo "
        "hostname-ro; id -u; pwd; exit 3",
        NULL};
    struct spawn_plan plan;
    base_plan(&plan, argv);
    plan.clone_flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC;
    plan.hostname = "spawned";
    plan.rootfs = root;
    plan.ops = local;
    plan.n_ops = ARRAY_SIZE(local);
    plan.cwd = "/data";
    plan.set_identity = true;
    plan.uid = 1234;
    plan.gid = 1234;
    char out[4096];
    struct result r;
    CHECK_OK(run_plan(&plan, out, sizeof(out), &r));
    CHECK_MSG(r.ok, "spawn failed: %s", r.msg);
    CHECK(r.exited && r.exit.known);
    CHECK_EQ_INT(r.exit.code, 3);
    CHECK_CONTAINS(out, "pid=1\n");
    CHECK_CONTAINS(out, "host=spawned\n");
    CHECK_CONTAINS(out, "/data/deep/dir\n");
    CHECK_CONTAINS(out, "null-ok\n");
    CHECK_CONTAINS(out, "/proc/self/fd\n");
    CHECK_CONTAINS(out, "\n0\n"); /* masked kcore reads empty */
    CHECK_CONTAINS(out, "sys-ro\n");
    CHECK_CONTAINS(out, "hostname-ro\n");
    CHECK_CONTAINS(out, "1234\n/data\n");
    /* Nothing leaked onto the host. */
    struct stat st;
    CHECK(stat("/data/deep/dir", &st) < 0);
}

static void test_join_pid_namespace(void)
{
    /* Entering an existing PID namespace (as ExecSync does for a container
     * with its own): the child runs inside it, and later children of ours
     * are back in our namespace. The namespace's init is a sleeping child
     * of ours; the spawned process is its pid 2. */
    int ready[2];
    CHECK_OK(pipe(ready));
    pid_t init = syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, NULL, NULL, NULL, NULL);
    if (init == 0) {
        close(ready[0]);
        if (write(ready[1], "x", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    CHECK(init > 0);
    close(ready[1]);
    char b;
    CHECK(read(ready[0], &b, 1) == 1);
    close(ready[0]);
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/ns/pid", init);
    int nsfd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(nsfd >= 0);
    static const char *const argv[] = {"sh", "-c", "echo pid=$$", NULL};
    struct spawn_plan plan;
    base_plan(&plan, argv);
    plan.pidns_fd = nsfd;
    char out[256];
    struct result r;
    CHECK_OK(run_plan(&plan, out, sizeof(out), &r));
    CHECK_MSG(r.ok, "spawn failed: %s", r.msg);
    CHECK(r.exited && r.exit.known && r.exit.code == 0);
    CHECK_CONTAINS(out, "pid=2\n");
    /* The next child is in our namespace again. */
    base_plan(&plan, argv);
    CHECK_OK(run_plan(&plan, out, sizeof(out), &r));
    CHECK(r.exited && r.exit.known && r.exit.code == 0);
    CHECK(strstr(out, "pid=2\n") == NULL && strstr(out, "pid=1\n") == NULL);
    close(nsfd);
    kill(init, SIGKILL);
    waitpid(init, NULL, 0);
}

static void test_exec_failures_are_reported(void)
{
    static const char *const argv[] = {"nonexistent-binary", NULL};
    static const char *const paths[] = {"/bin/nonexistent-binary", "/usr/bin/nonexistent-binary", NULL};
    struct spawn_plan plan;
    base_plan(&plan, argv);
    plan.exec_paths = paths;
    plan.clone_flags = CLONE_NEWNS;
    plan.rootfs = root;
    char out[256];
    struct result r;
    CHECK_OK(run_plan(&plan, out, sizeof(out), &r));
    CHECK(!r.ok);
    CHECK_CONTAINS(r.msg, "executing");
    CHECK_CONTAINS(r.msg, "No such file or directory");
    CHECK(r.exited && r.exit.code == 127);

    /* A working directory that does not exist. */
    static const char *const argv2[] = {"sh", "-c", "true", NULL};
    base_plan(&plan, argv2);
    plan.clone_flags = CLONE_NEWNS;
    plan.rootfs = root;
    plan.cwd = "/no/such/dir";
    CHECK_OK(run_plan(&plan, out, sizeof(out), &r));
    CHECK(!r.ok);
    CHECK_CONTAINS(r.msg, "working directory /no/such/dir");
}

static void test_hostile_symlink_cannot_redirect_a_mount(void)
{
    /* The image plants /evil -> /etc on the host; a bind mount onto
     * /evil/target must land inside the rootfs (at <root>/etc/target),
     * never on the host's /etc. */
    char link[512];
    snprintf(link, sizeof(link), "%s/evil", root);
    CHECK_OK(symlink("/etc", link));
    static const struct spawn_op ops[] = {
        {.kind = SPAWN_OP_BIND, .source = "/etc/hostname", .target = "/evil/edgecri-planted", .create_file = true},
    };
    static const char *const argv[] = {"sh", "-c", "cat /evil/edgecri-planted >/dev/null && echo mounted", NULL};
    struct spawn_plan plan;
    base_plan(&plan, argv);
    plan.clone_flags = CLONE_NEWNS;
    plan.rootfs = root;
    plan.ops = ops;
    plan.n_ops = 1;
    char out[256];
    struct result r;
    CHECK_OK(run_plan(&plan, out, sizeof(out), &r));
    CHECK_MSG(r.ok, "%s", r.msg);
    CHECK_CONTAINS(out, "mounted");
    struct stat st;
    CHECK_MSG(stat("/etc/edgecri-planted", &st) < 0, "a file was created on the host's /etc");
    char inside[512];
    snprintf(inside, sizeof(inside), "%s/etc/edgecri-planted", root);
    CHECK(stat(inside, &st) == 0);
    unlink(link);
}

static void test_caps_and_no_new_privs(void)
{
    static const char *const argv[] = {"sh", "-c", "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status", NULL};
    struct spawn_plan plan;
    base_plan(&plan, argv);
    plan.clone_flags = CLONE_NEWNS | CLONE_NEWPID;
    plan.rootfs = root;
    static const struct spawn_op ops[] = {
        {.kind = SPAWN_OP_MOUNT, .source = "proc", .target = "/proc", .fstype = "proc"},
    };
    plan.ops = ops;
    plan.n_ops = 1;
    plan.set_caps = true;
    plan.cap_bounding = plan.cap_effective = plan.cap_permitted = (1ULL << 0) | (1ULL << 10); /* chown, net_bind */
    plan.no_new_privs = true;
    char out[1024];
    struct result r;
    CHECK_OK(run_plan(&plan, out, sizeof(out), &r));
    CHECK_MSG(r.ok, "%s", r.msg);
    CHECK_CONTAINS(out, "CapEff:\t0000000000000401");
    CHECK_CONTAINS(out, "CapBnd:\t0000000000000401");
    CHECK_CONTAINS(out, "NoNewPrivs:\t1");
}

static void test_hold_and_adopt(void)
{
    uv_loop_t *loop = uv_default_loop();
    struct spawn_plan plan;
    static const char *const argv[] = {"unused", NULL};
    base_plan(&plan, argv);
    plan.clone_flags = CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC;
    plan.hostname = "held";
    static const char *const sp[] = {"net/ipv4/ip_forward"};
    static const char *const sv[] = {"1"};
    plan.sysctl_paths = sp;
    plan.sysctl_values = sv;
    plan.n_sysctls = 1;
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    plan.stdio[0] = plan.stdio[1] = plan.stdio[2] = devnull;
    plan.hold = true;
    struct spawn_child *c;
    err_t err = ERR_INIT;
    CHECK_OK(spawn_start(loop, &plan, &c, &err));
    struct result r = {0};
    CHECK_OK(spawn_release(c, on_spawned, &r, &err));
    run_until(loop, &r.done);
    CHECK_MSG(r.ok, "%s", r.msg);
    /* While held, its namespaces can be captured. */
    char path[64], link_here[64], link_host[64];
    snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)spawn_pid(c));
    ssize_t n = readlink(path, link_here, sizeof(link_here) - 1);
    CHECK(n > 0);
    link_here[n > 0 ? n : 0] = '\0';
    n = readlink("/proc/self/ns/net", link_host, sizeof(link_host) - 1);
    link_host[n > 0 ? n : 0] = '\0';
    CHECK(strcmp(link_here, link_host) != 0);
    int netns = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(netns >= 0);
    spawn_end_hold(c);
    struct process_watch *w = process_watch_start(loop, spawn_take_pidfd(c), spawn_pid(c), true, on_exit_cb, &r, &err);
    CHECK(w != NULL);
    run_until(loop, &r.exited);
    CHECK(r.exit.known && r.exit.code == 0);
    spawn_child_free(c);
    /* The namespace outlives the holder while referenced; the sysctl is in it. */
    pid_t pid = fork();
    if (pid == 0) {
        if (setns(netns, CLONE_NEWNET) < 0)
            _exit(10);
        int fd = open("/proc/sys/net/ipv4/ip_forward", O_RDONLY);
        char v = 0;
        if (fd < 0 || read(fd, &v, 1) != 1)
            _exit(11);
        _exit(v == '1' ? 0 : 12);
    }
    int st;
    waitpid(pid, &st, 0);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "netns sysctl check: status %d", st);
    close(netns);
    close(devnull);
    uv_run(loop, UV_RUN_NOWAIT);
}

static void test_adopted_exit_status(void)
{
    /* A process that is not our child (a grandchild whose parent exits):
     * its status still reaches us through the pidfd when the kernel keeps
     * it (6.15+), as after an edgecri restart. */
    uv_loop_t *loop = uv_default_loop();
    /* p carries the grandchild's pid up; go tells it to exit once we hold
     * its pidfd (two pipes: one shared pipe would let the grandchild eat
     * the pid bytes). */
    int p[2], go[2];
    CHECK_OK(pipe(p));
    CHECK_OK(pipe(go));
    pid_t mid = fork();
    if (mid == 0) {
        pid_t g = fork();
        if (g == 0) {
            char b;
            close(p[1]);
            close(go[1]);
            if (read(go[0], &b, 1) < 0)
                _exit(1);
            usleep(100 * 1000);
            _exit(42);
        }
        if (write(p[1], &g, sizeof(g)) < 0)
            _exit(1);
        _exit(0);
    }
    close(p[1]);
    close(go[0]);
    pid_t g = 0;
    CHECK(read(p[0], &g, sizeof(g)) == sizeof(g));
    waitpid(mid, NULL, 0);
    close(p[0]);
    int pidfd = -1;
    err_t err = ERR_INIT;
    CHECK_OK(process_adopt(g, process_start_time(g), &pidfd, &err));
    /* A wrong start time is a different process. */
    int other = -1;
    CHECK(process_adopt(g, process_start_time(g) + 1, &other, &err) == -ESRCH);
    err_clear(&err);
    CHECK(write(go[1], "x", 1) == 1);
    close(go[1]);
    struct result r = {0};
    struct process_watch *w = process_watch_start(loop, pidfd, g, false, on_exit_cb, &r, &err);
    CHECK(w != NULL);
    run_until(loop, &r.exited);
    CHECK(r.exited);
    /* Unreaped (zombie) or reaped with PIDFD_INFO_EXIT: known either way
     * on this kernel. */
    CHECK_MSG(r.exit.known && r.exit.code == 42, "adopted exit: known=%d code=%d", r.exit.known, r.exit.code);
}

int main(void)
{
    err_t err = ERR_INIT;
    CHECK_OK(spawn_init(&err));
    /* Orphans (the adopted test) are reaped by init, not by this test. */
    make_rootfs();
    RUN(test_container_like);
    RUN(test_join_pid_namespace);
    RUN(test_exec_failures_are_reported);
    RUN(test_hostile_symlink_cannot_redirect_a_mount);
    RUN(test_caps_and_no_new_privs);
    RUN(test_hold_and_adopt);
    RUN(test_adopted_exit_status);
    fs_remove_tree(root, NULL);
    uv_loop_close(uv_default_loop());
    return unit_summary();
}
