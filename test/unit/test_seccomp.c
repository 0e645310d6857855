/* Seccomp programs loaded for real: each case forks a child that sets
 * no_new_privs, loads the program with seccomp(2) as the container's child
 * will, makes one system call and exits with its errno, so the parent sees
 * what the kernel answered. Calls are chosen so that, allowed, they fail
 * harmlessly with an errno other than EPERM (a missing path, a bad magic
 * number, a pid that does not exist): a "control" run without the filter
 * proves that EPERM under the filter came from the filter. Needs root (the
 * controls) and x86_64 for the 32-bit compat checks. */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/seccomp.h"
#include "unit.h"

#define LOAD_FAILED 254 /* the child could not load the program */
#define PROBE_ODD   253 /* the probe returned something that is not an errno */

#define CAP(n) (1ULL << (n))
/* containerd's default capability set. */
#define DEFAULT_CAPS                                                                                                   \
    (CAP(CAP_CHOWN) | CAP(CAP_DAC_OVERRIDE) | CAP(CAP_FSETID) | CAP(CAP_FOWNER) | CAP(CAP_MKNOD) | CAP(CAP_NET_RAW) |  \
     CAP(CAP_SETGID) | CAP(CAP_SETUID) | CAP(CAP_SETFCAP) | CAP(CAP_SETPCAP) | CAP(CAP_NET_BIND_SERVICE) |             \
     CAP(CAP_SYS_CHROOT) | CAP(CAP_KILL) | CAP(CAP_AUDIT_WRITE))

#define MISSING_PATH "/nonexistent-edgecri-seccomp/x"
#define NO_SUCH_PID  0x3ffffff0

static bool is_root;

/* ---- running a probe under a program ---- */

/* >= 0: the errno the probe ended with (0: success); < 0: killed by -signal. */
static int run(const struct seccomp_program *p, int (*probe)(void))
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1000;
    if (pid == 0) {
        if (p) {
            struct sock_fprog fprog = {p->len, p->filter};
            if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
                syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0)
                _exit(LOAD_FAILED);
        }
        int r = probe();
        _exit(r >= 0 && r < PROBE_ODD ? r : PROBE_ODD);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1001;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return WIFSIGNALED(status) ? -WTERMSIG(status) : -1002;
}

static const char *outcome(int r, char *buf, size_t size)
{
    if (r == 0)
        snprintf(buf, size, "success");
    else if (r == LOAD_FAILED)
        snprintf(buf, size, "the program did not load");
    else if (r > 0)
        snprintf(buf, size, "%s (%d)", strerror(r), r);
    else
        snprintf(buf, size, "killed by signal %d", -r);
    return buf;
}

/* The probe ends with `want` under `p`. */
static void expect_at(int line, const struct seccomp_program *p, const char *pname, int (*probe)(void),
                      const char *probe_name, int want)
{
    char g[96], w[96];
    int got = run(p, probe);
    CHECK_MSG(got == want, "line %d: %s under %s: got %s, want %s", line, probe_name, pname, outcome(got, g, sizeof(g)),
              outcome(want, w, sizeof(w)));
}

/* The probe ends with `denied` under `p` but not without a filter: the
 * filter, not the kernel, said no. */
static void expect_denied_at(int line, const struct seccomp_program *p, const char *pname, int (*probe)(void),
                             const char *probe_name, int denied)
{
    char g[96];
    int control = run(NULL, probe);
    CHECK_MSG(control != denied && control >= 0,
              "line %d: %s without a filter: got %s, so the filter's answer proves "
              "nothing",
              line, probe_name, outcome(control, g, sizeof(g)));
    expect_at(line, p, pname, probe, probe_name, denied);
}

/* The filter lets the probe through: it ends as it does without a filter. */
static void expect_allowed_at(int line, const struct seccomp_program *p, const char *pname, int (*probe)(void),
                              const char *probe_name)
{
    char g[96];
    int control = run(NULL, probe);
    CHECK_MSG(control >= 0 && control != EPERM && control != LOAD_FAILED, "line %d: %s without a filter: got %s", line,
              probe_name, outcome(control, g, sizeof(g)));
    expect_at(line, p, pname, probe, probe_name, control);
}

#define EXPECT(p, probe, want)    expect_at(__LINE__, p, #p, probe, #probe, want)
#define EXPECT_DENIED(p, probe)   expect_denied_at(__LINE__, p, #p, probe, #probe, EPERM)
#define EXPECT_ERRNO(p, probe, e) expect_denied_at(__LINE__, p, #p, probe, #probe, e)
#define EXPECT_ALLOWED(p, probe)  expect_allowed_at(__LINE__, p, #p, probe, #probe)

/* ---- probes: return 0 or the errno ---- */

static int res(long r)
{
    return r < 0 ? errno : 0;
}

static int p_unshare_ns(void)
{
    return res(syscall(SYS_unshare, CLONE_NEWNS));
}

static int p_keyctl(void)
{
    return res(syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session keyring */, 0));
}

static int p_add_key(void)
{
    return res(syscall(SYS_add_key, "edgecri-no-such-key-type", "d", "x", 1, -2 /* process keyring */));
}

static int p_mount(void)
{
    return res(syscall(SYS_mount, "none", MISSING_PATH, "tmpfs", 0, NULL));
}

static int p_umount2(void)
{
    return res(syscall(SYS_umount2, MISSING_PATH, 0));
}

static int p_setns(void)
{
    return res(syscall(SYS_setns, -1, 0));
}

static int p_ptrace(void)
{
    return res(syscall(SYS_ptrace, 16 /* PTRACE_ATTACH */, NO_SUCH_PID, 0, 0));
}

static int p_kcmp(void)
{
    return res(syscall(SYS_kcmp, getpid(), NO_SUCH_PID, 0 /* KCMP_FILE */, 0, 0));
}

/* Bad magic numbers: EINVAL once CAP_SYS_BOOT is checked, never a reboot. */
static int p_reboot(void)
{
    return res(syscall(SYS_reboot, 0, 0, 0, NULL));
}

static int p_personality_query(void)
{
    return res(syscall(SYS_personality, 0xffffffffUL));
}

static int p_personality_linux32(void)
{
    return res(syscall(SYS_personality, (unsigned long)PER_LINUX32));
}

static int p_personality_no_aslr(void)
{
    return res(syscall(SYS_personality, (unsigned long)ADDR_NO_RANDOMIZE));
}

/* A size below the first version of struct clone_args: EINVAL, no child. */
static int p_clone3(void)
{
    static char args[128];
    return res(syscall(SYS_clone3, args, 0));
}

static int p_fork(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return errno;
    if (pid == 0)
        _exit(0);
    int status;
    if (waitpid(pid, &status, 0) < 0)
        return errno;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : PROBE_ODD;
}

static void *thread_main(void *arg)
{
    return arg;
}

/* glibc tries clone3 first and falls back to clone on ENOSYS. */
static int p_thread(void)
{
    pthread_t t;
    int r = pthread_create(&t, NULL, thread_main, NULL);
    if (r != 0)
        return r;
    return pthread_join(t, NULL);
}

static int p_clone_newuser(void)
{
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0)
        _exit(0);
    if (pid < 0)
        return errno;
    int status;
    return waitpid((pid_t)pid, &status, 0) < 0 ? errno : 0;
}

static int p_socket_inet(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return errno;
    close(fd);
    return 0;
}

static int p_socket_vsock(void)
{
    int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
    if (fd < 0)
        return errno;
    close(fd);
    return 0;
}

/* What any program does: files, pipes, memory, futexes, its pid. */
static int p_basic_io(void)
{
    char buf[256];
    int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    if (syscall(SYS_read, fd, buf, sizeof(buf)) <= 0)
        return errno ? errno : PROBE_ODD;
    close(fd);
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return errno;
    if (write(p[1], "x", 1) != 1 || read(p[0], buf, 1) != 1)
        return errno ? errno : PROBE_ODD;
    close(p[0]);
    close(p[1]);
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return errno;
    munmap(m, 4096);
    int word = 0;
    if (syscall(SYS_futex, &word, 1 /* FUTEX_WAKE */, 1, NULL, NULL, 0) < 0)
        return errno;
    if (syscall(SYS_getpid) <= 0)
        return PROBE_ODD;
    return 0;
}

static int p_execve(void)
{
    char *const argv[] = {"true", NULL}, *const envp[] = {NULL};
    execve("/bin/true", argv, envp);
    return errno;
}

/* Past every number libseccomp knows (457 is statmount on 6.8+). */
static int p_syscall_457(void)
{
    return res(syscall(457, NULL, NULL, 0, 0));
}

static int p_syscall_1000(void)
{
    return res(syscall(1000, 0, 0, 0));
}

static int p_set_mempolicy_home_node(void)
{
    return res(syscall(450, 0, 0, 0, 0));
}

static int p_clock_settime(void)
{
    struct timespec ts = {0, 0};
    return res(syscall(SYS_clock_settime, -1, &ts));
}

static int p_mkdir(void)
{
    return res(syscall(SYS_mkdir, MISSING_PATH, 0755));
}

static int p_mkdirat(void)
{
    return res(syscall(SYS_mkdirat, AT_FDCWD, MISSING_PATH, 0755));
}

static int p_rmdir(void)
{
    return res(syscall(SYS_rmdir, MISSING_PATH));
}

static int p_chdir(void)
{
    return res(syscall(SYS_chdir, MISSING_PATH));
}

static int p_getppid(void)
{
    return res(syscall(SYS_getppid));
}

#ifdef __x86_64__
/* A 32-bit system call from 64-bit code: the kernel runs it from the i386
 * table and seccomp sees AUDIT_ARCH_I386, as for a 32-bit binary. */
static long int80(long nr, long a, long b, long c)
{
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory", "r8", "r9", "r10", "r11");
    return ret;
}

/* Where the kernel cannot run 32-bit calls, int $0x80 faults: let the child
 * die of it plainly (a raw rt_sigaction, so a sanitizer's handler is
 * bypassed rather than reporting a crash). */
static long int80_or_die(long nr, long a, long b, long c)
{
    struct {
        void *handler;
        unsigned long flags;
        void *restorer;
        unsigned long mask;
    } dfl = {SIG_DFL, 0, NULL, 0};
    syscall(SYS_rt_sigaction, SIGSEGV, &dfl, NULL, sizeof(dfl.mask));
    return int80(nr, a, b, c);
}

static int int80_res(long r)
{
    return r < 0 && r > -4096 ? (int)-r : 0;
}

static int p_i386_getpid(void)
{
    return int80_res(int80_or_die(20, 0, 0, 0));
}

static int p_i386_keyctl(void)
{
    return int80_res(int80_or_die(288, 0, -3, 0));
}

static int p_i386_unshare(void)
{
    return int80_res(int80_or_die(310, CLONE_NEWNS, 0, 0));
}

static int p_i386_socket_vsock(void)
{
    long fd = int80_or_die(359, AF_VSOCK, SOCK_STREAM, 0);
    if (fd >= 0)
        close((int)fd);
    return int80_res(fd);
}

static int p_i386_socket_inet(void)
{
    long fd = int80_or_die(359, AF_INET, SOCK_STREAM, 0);
    if (fd >= 0)
        close((int)fd);
    return int80_res(fd);
}
#endif

/* ---- building ---- */

static struct seccomp_program build_default(uint64_t caps)
{
    struct seccomp_program p;
    err_t err = ERR_INIT;
    int r = seccomp_build_default(caps, &p, &err);
    CHECK_MSG(r == 0, "seccomp_build_default(%#llx): %d %s", (unsigned long long)caps, r, err.msg ? err.msg : "");
    CHECK_MSG(r != 0 || (p.filter && p.len > 0 && p.len <= BPF_MAXINSNS), "default program has %u instructions", p.len);
    err_clear(&err);
    return p;
}

static struct seccomp_program build_json_at(int line, const char *json, uint64_t caps)
{
    struct seccomp_program p;
    err_t err = ERR_INIT;
    int r = seccomp_build_from_json(json, strlen(json), caps, &p, &err);
    CHECK_MSG(r == 0 && p.filter && p.len > 0, "line %d: building %s: %d %s", line, json, r, err.msg ? err.msg : "");
    err_clear(&err);
    return p;
}
#define build_json(json, caps) build_json_at(__LINE__, json, caps)

/* What the program answers for one call, by a small interpreter for the
 * instructions libseccomp and the stub emit (UINT32_MAX on any other): how
 * the 32-bit tables are checked where the kernel cannot run 32-bit calls. */
#define BPF_UNKNOWN UINT32_MAX

static uint32_t bpf_answer(const struct seccomp_program *p, uint32_t arch, uint32_t nr, uint64_t arg0)
{
    struct seccomp_data d = {.nr = (int)nr, .arch = arch, .args = {arg0}};
    uint32_t a = 0;
    for (unsigned pc = 0; pc < p->len; pc++) {
        const struct sock_filter *f = &p->filter[pc];
        switch (f->code) {
        case BPF_LD | BPF_W | BPF_ABS:
            if (f->k % 4 || f->k > sizeof(d) - 4)
                return BPF_UNKNOWN;
            memcpy(&a, (const char *)&d + f->k, 4);
            break;
        case BPF_ALU | BPF_AND | BPF_K:
            a &= f->k;
            break;
        case BPF_JMP | BPF_JA:
            pc += f->k;
            break;
        case BPF_JMP | BPF_JEQ | BPF_K:
            pc += a == f->k ? f->jt : f->jf;
            break;
        case BPF_JMP | BPF_JGT | BPF_K:
            pc += a > f->k ? f->jt : f->jf;
            break;
        case BPF_JMP | BPF_JGE | BPF_K:
            pc += a >= f->k ? f->jt : f->jf;
            break;
        case BPF_JMP | BPF_JSET | BPF_K:
            pc += a & f->k ? f->jt : f->jf;
            break;
        case BPF_RET | BPF_K:
            return f->k;
        default:
            return BPF_UNKNOWN;
        }
    }
    return BPF_UNKNOWN;
}

#define RET_ALLOW    0x7fff0000u
#define RET_KILL     0x00000000u /* SECCOMP_RET_KILL_THREAD */
#define RET_ERRNO(e) (0x00050000u | (e))
#define EXPECT_BPF(p, arch, nr, arg0, want)                                                                            \
    do {                                                                                                               \
        uint32_t got_ = bpf_answer(p, arch, nr, arg0);                                                                 \
        CHECK_MSG(got_ == (want), "%s: arch %#x nr %u arg0 %#llx: answer %#x, want %#x", #p, (unsigned)(arch),         \
                  (unsigned)(nr), (unsigned long long)(arg0), got_, (unsigned)(want));                                 \
    } while (0)

/* ---- the default profile ---- */

static void test_default_denies(void)
{
    struct seccomp_program def = build_default(DEFAULT_CAPS);
    if (!def.filter)
        return;
    EXPECT_DENIED(&def, p_unshare_ns);
    EXPECT_DENIED(&def, p_keyctl);
    EXPECT_DENIED(&def, p_add_key);
    EXPECT_DENIED(&def, p_mount);
    EXPECT_DENIED(&def, p_umount2);
    EXPECT_DENIED(&def, p_setns);
    EXPECT_DENIED(&def, p_reboot);
    EXPECT_DENIED(&def, p_kcmp);
    EXPECT_DENIED(&def, p_personality_no_aslr);
    EXPECT_DENIED(&def, p_clone_newuser);
    EXPECT_DENIED(&def, p_socket_vsock);
    EXPECT_DENIED(&def, p_set_mempolicy_home_node);
    EXPECT_DENIED(&def, p_clock_settime);
    seccomp_program_free(&def);
}

static void test_default_allows(void)
{
    struct seccomp_program def = build_default(DEFAULT_CAPS);
    if (!def.filter)
        return;
    EXPECT(&def, p_personality_query, 0);
    EXPECT(&def, p_personality_linux32, 0);
    EXPECT(&def, p_fork, 0);
    EXPECT(&def, p_thread, 0);
    EXPECT(&def, p_socket_inet, 0);
    EXPECT(&def, p_basic_io, 0);
    EXPECT(&def, p_execve, 0);
    EXPECT(&def, p_getppid, 0);
    /* From kernel 4.8 containerd allows ptrace without CAP_SYS_PTRACE: the
     * attach fails only because the pid does not exist. */
    EXPECT(&def, p_ptrace, ESRCH);
    EXPECT_ALLOWED(&def, p_mkdir);
    seccomp_program_free(&def);
}

/* clone3 answers ENOSYS (glibc then uses clone, whose flags are checked),
 * and syscalls newer than any the profile names answer ENOSYS too. */
static void test_default_enosys(void)
{
    struct seccomp_program def = build_default(DEFAULT_CAPS);
    if (!def.filter)
        return;
    EXPECT_ERRNO(&def, p_clone3, ENOSYS);
    EXPECT_ERRNO(&def, p_syscall_457, ENOSYS);
    EXPECT(&def, p_syscall_1000, ENOSYS);
    seccomp_program_free(&def);
}

static void test_default_capabilities(void)
{
    if (!is_root) {
        printf("test_default_capabilities: skipped (needs root)\n");
        return;
    }
    struct seccomp_program admin = build_default(DEFAULT_CAPS | CAP(CAP_SYS_ADMIN));
    if (admin.filter) {
        EXPECT(&admin, p_unshare_ns, 0);
        EXPECT(&admin, p_mount, ENOENT);
        EXPECT(&admin, p_umount2, ENOENT);
        EXPECT(&admin, p_setns, EBADF);
        EXPECT(&admin, p_clone_newuser, 0);
        EXPECT(&admin, p_clone3, EINVAL);
        EXPECT(&admin, p_thread, 0);
        EXPECT(&admin, p_reboot, EPERM); /* CAP_SYS_BOOT is another matter */
        EXPECT(&admin, p_keyctl, EPERM); /* no capability brings keyctl */
        seccomp_program_free(&admin);
    }
    struct seccomp_program more =
        build_default(DEFAULT_CAPS | CAP(CAP_SYS_BOOT) | CAP(CAP_SYS_PTRACE) | CAP(CAP_SYS_NICE) | CAP(CAP_SYS_TIME));
    if (more.filter) {
        EXPECT(&more, p_reboot, EINVAL);
        EXPECT(&more, p_kcmp, ESRCH);
        EXPECT(&more, p_clock_settime, EINVAL);
        EXPECT_ALLOWED(&more, p_set_mempolicy_home_node);
        EXPECT(&more, p_unshare_ns, EPERM);
        EXPECT(&more, p_clone3, ENOSYS);
        seccomp_program_free(&more);
    }
    /* No capabilities at all: still a working process. */
    struct seccomp_program none = build_default(0);
    if (none.filter) {
        EXPECT(&none, p_basic_io, 0);
        EXPECT(&none, p_execve, 0);
        seccomp_program_free(&none);
    }
}

/* A program built on x86_64 also filters the x86 table: 32-bit calls are
 * judged by their own numbers, not killed as a foreign architecture. */
static void test_default_compat(void)
{
    struct seccomp_program def = build_default(DEFAULT_CAPS);
    if (!def.filter)
        return;
#ifdef __x86_64__
    /* The interpreter agrees with the kernel on native calls... */
    EXPECT_BPF(&def, AUDIT_ARCH_X86_64, SYS_getpid, 0, RET_ALLOW);
    EXPECT_BPF(&def, AUDIT_ARCH_X86_64, SYS_keyctl, 0, RET_ERRNO(EPERM));
    EXPECT_BPF(&def, AUDIT_ARCH_X86_64, SYS_clone3, 0, RET_ERRNO(ENOSYS));
    EXPECT_BPF(&def, AUDIT_ARCH_X86_64, 457, 0, RET_ERRNO(ENOSYS));
    /* ...and reads the i386 table by i386 numbers: getpid 20, socketcall
     * 102, clone 120, personality 136, keyctl 288, unshare 310, socket 359. */
    EXPECT_BPF(&def, AUDIT_ARCH_I386, 20, 0, RET_ALLOW);
    EXPECT_BPF(&def, AUDIT_ARCH_I386, 102, 0, RET_ALLOW);
    EXPECT_BPF(&def, AUDIT_ARCH_I386, 120, SIGCHLD, RET_ALLOW);
    EXPECT_BPF(&def, AUDIT_ARCH_I386, 120, CLONE_NEWUSER | SIGCHLD, RET_ERRNO(EPERM));
    EXPECT_BPF(&def, AUDIT_ARCH_I386, 136, 0xffffffff, RET_ALLOW);
    EXPECT_BPF(&def, AUDIT_ARCH_I386, 136, ADDR_NO_RANDOMIZE, RET_ERRNO(EPERM));
    EXPECT_BPF(&def, AUDIT_ARCH_I386, 288, 0, RET_ERRNO(EPERM));
    EXPECT_BPF(&def, AUDIT_ARCH_I386, 310, 0, RET_ERRNO(EPERM));
    EXPECT_BPF(&def, AUDIT_ARCH_I386, 359, AF_INET, RET_ALLOW);
    EXPECT_BPF(&def, AUDIT_ARCH_I386, 359, AF_VSOCK, RET_ERRNO(EPERM));
    EXPECT_BPF(&def, AUDIT_ARCH_I386, 435, 0, RET_ERRNO(ENOSYS));
    EXPECT_BPF(&def, AUDIT_ARCH_I386, 457, 0, RET_ERRNO(ENOSYS));
    /* x32 shares x86_64's arch value; its numbers carry bit 30. */
    EXPECT_BPF(&def, AUDIT_ARCH_X86_64, 0x40000000u | 39, 0, RET_ALLOW);
    EXPECT_BPF(&def, AUDIT_ARCH_X86_64, 0x40000000u | 250, 0, RET_ERRNO(EPERM));
    /* An architecture the program was not built for is killed. */
    EXPECT_BPF(&def, AUDIT_ARCH_AARCH64, 172, 0, RET_KILL);

    /* Where the kernel runs 32-bit calls, the same for real. */
    if (run(NULL, p_i386_getpid) != 0) {
        printf("test_default_compat: no 32-bit system calls on this kernel; checked by interpreting the program\n");
    } else {
        EXPECT(&def, p_i386_getpid, 0);
        EXPECT(&def, p_i386_socket_inet, 0);
        EXPECT_DENIED(&def, p_i386_keyctl);
        EXPECT_DENIED(&def, p_i386_unshare);
        EXPECT_DENIED(&def, p_i386_socket_vsock);
    }
#elif defined(__aarch64__)
    EXPECT_BPF(&def, AUDIT_ARCH_AARCH64, SYS_getpid, 0, RET_ALLOW);
    EXPECT_BPF(&def, AUDIT_ARCH_ARM, 20, 0, RET_ALLOW);
#endif
    seccomp_program_free(&def);
}

/* ---- JSON profiles ---- */

static void test_json_mkdir_blocked(void)
{
    struct seccomp_program p = build_json("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": ["
                                          " {\"names\": [\"mkdir\", \"mkdirat\", \"edgecri_no_such_syscall\"],"
                                          "  \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 13}]}",
                                          0);
    if (!p.filter)
        return;
    EXPECT_ERRNO(&p, p_mkdir, EACCES);
    EXPECT_ERRNO(&p, p_mkdirat, EACCES);
    EXPECT(&p, p_getppid, 0);
    EXPECT(&p, p_basic_io, 0);
    /* An allowing default gets no ENOSYS stub: the kernel answers. */
    EXPECT(&p, p_syscall_1000, ENOSYS);
    seccomp_program_free(&p);

    /* Docker's older single "name", and an errno action without errnoRet. */
    p = build_json("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": ["
                   " {\"name\": \"mkdir\", \"action\": \"SCMP_ACT_ERRNO\"}, {\"name\": \"unknown_one\", \"action\": "
                   "\"SCMP_ACT_KILL\"}]}",
                   0);
    if (p.filter) {
        EXPECT_DENIED(&p, p_mkdir);
        EXPECT_ALLOWED(&p, p_mkdirat);
        seccomp_program_free(&p);
    }
}

static void test_json_args(void)
{
    struct seccomp_program p =
        build_json("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"personality\"],"
                   " \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 22,"
                   " \"args\": [{\"index\": 0, \"value\": 8, \"valueTwo\": 0, \"op\": \"SCMP_CMP_EQ\"}]}]}",
                   0);
    if (!p.filter)
        return;
    EXPECT_ERRNO(&p, p_personality_linux32, EINVAL);
    EXPECT(&p, p_personality_query, 0);
    seccomp_program_free(&p);

    /* Two conditions on one argument: either matches (runc's reading). */
    p = build_json("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"personality\"],"
                   " \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 22, \"args\": ["
                   "  {\"index\": 0, \"value\": 8, \"op\": \"SCMP_CMP_EQ\"},"
                   "  {\"index\": 0, \"value\": 4294967295, \"op\": \"SCMP_CMP_EQ\"}]}]}",
                   0);
    if (p.filter) {
        EXPECT_ERRNO(&p, p_personality_linux32, EINVAL);
        EXPECT_ERRNO(&p, p_personality_query, EINVAL);
        EXPECT_ALLOWED(&p, p_personality_no_aslr);
        seccomp_program_free(&p);
    }

    /* A masked comparison: clone with CLONE_NEWUSER refused, fork allowed. */
    p = build_json(
        "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"clone\"],"
        " \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 1, \"args\": ["
        "  {\"index\": 0, \"value\": 268435456, \"valueTwo\": 268435456, \"op\": \"SCMP_CMP_MASKED_EQ\"}]}]}",
        0);
    if (p.filter) {
        EXPECT_DENIED(&p, p_clone_newuser);
        EXPECT(&p, p_fork, 0);
        seccomp_program_free(&p);
    }
}

static void test_json_conditions(void)
{
    const char *json = "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": ["
                       " {\"names\": [\"getppid\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 99,"
                       "  \"includes\": {\"caps\": [\"CAP_SYS_ADMIN\", \"CAP_NET_ADMIN\"]}},"
                       " {\"names\": [\"mkdir\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 98,"
                       "  \"excludes\": {\"caps\": [\"CAP_SYS_ADMIN\", \"CAP_NET_ADMIN\"]}},"
                       " {\"names\": [\"mkdirat\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 97,"
                       "  \"includes\": {\"arches\": [\"amd64\", \"arm64\"], \"minKernel\": \"4.8\"}},"
                       " {\"names\": [\"setns\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 96,"
                       "  \"includes\": {\"arches\": [\"s390x\"]}},"
                       " {\"names\": [\"rmdir\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 95,"
                       "  \"includes\": {\"minKernel\": \"99.0\"}},"
                       " {\"names\": [\"chdir\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 94,"
                       "  \"excludes\": {\"minKernel\": \"3.10.1\"}}]}";
    /* Only one of the two capabilities: includes does not hold, excludes does. */
    struct seccomp_program one = build_json(json, CAP(CAP_SYS_ADMIN));
    struct seccomp_program both = build_json(json, CAP(CAP_SYS_ADMIN) | CAP(CAP_NET_ADMIN));
    struct seccomp_program none = build_json(json, 0);
    if (one.filter && both.filter && none.filter) {
        EXPECT(&one, p_getppid, 0);
        EXPECT(&both, p_getppid, 99);
        EXPECT(&none, p_mkdir, 98);
        EXPECT_ALLOWED(&one, p_mkdir);
#if defined(__x86_64__) || defined(__aarch64__)
        EXPECT(&none, p_mkdirat, 97);
#endif
        EXPECT_ALLOWED(&none, p_setns);
        EXPECT_ALLOWED(&none, p_rmdir);
        EXPECT_ALLOWED(&none, p_chdir);
    }
    seccomp_program_free(&one);
    seccomp_program_free(&both);
    seccomp_program_free(&none);
}

/* A denying default: only what is listed runs; calls past the profile's
 * newest answer ENOSYS; the foreign-architecture action kills. */
static void test_json_errno_default(void)
{
    /* sigaltstack: a sanitizer runtime checks the signal stack before _exit. */
    static const char allow[] = "\"names\": [\"exit\", \"exit_group\", \"getpid\", \"read\", \"write\", "
                                "\"close\", \"socket\", \"rt_sigreturn\", \"sigaltstack\"], "
                                "\"action\": \"SCMP_ACT_ALLOW\"";
    char json[1024];
    snprintf(json, sizeof(json),
             "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 1, \"architectures\": "
             "[\"SCMP_ARCH_X86_64\"], \"syscalls\": [{%s}], \"flags\": [\"SECCOMP_FILTER_FLAG_LOG\"]}",
             allow);
    struct seccomp_program p = build_json(json, 0);
    if (p.filter) {
        EXPECT(&p, p_getppid, EPERM);
        EXPECT(&p, p_syscall_1000, ENOSYS);
        EXPECT(&p, p_syscall_457, ENOSYS);
#ifdef __x86_64__
        EXPECT_BPF(&p, AUDIT_ARCH_X86_64, SYS_getpid, 0, RET_ALLOW);
        EXPECT_BPF(&p, AUDIT_ARCH_X86_64, SYS_getppid, 0, RET_ERRNO(1));
        EXPECT_BPF(&p, AUDIT_ARCH_I386, 20, 0, RET_KILL);
        if (run(NULL, p_i386_getpid) == 0)
            EXPECT(&p, p_i386_getpid, -SIGSYS);
#endif
        seccomp_program_free(&p);
    }

    /* Docker's archMap: the native entry brings its subarchitectures. */
    snprintf(json, sizeof(json),
             "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"archMap\": ["
             " {\"architecture\": \"SCMP_ARCH_AARCH64\", \"subArchitectures\": [\"SCMP_ARCH_ARM\"]},"
             " {\"architecture\": \"SCMP_ARCH_X86_64\", \"subArchitectures\": [\"SCMP_ARCH_X86\", \"SCMP_ARCH_X32\"]},"
             " {\"architecture\": \"SCMP_ARCH_RISCV64\", \"subArchitectures\": null}],"
             " \"syscalls\": [{%s}]}",
             allow);
    p = build_json(json, 0);
    if (p.filter) {
#ifdef __x86_64__
        EXPECT_BPF(&p, AUDIT_ARCH_I386, 20, 0, RET_ALLOW);
        EXPECT_BPF(&p, AUDIT_ARCH_I386, 310, 0, RET_ERRNO(EPERM));
        EXPECT_BPF(&p, AUDIT_ARCH_I386, 1000, 0, RET_ERRNO(ENOSYS));
        if (run(NULL, p_i386_getpid) == 0) {
            EXPECT(&p, p_i386_getpid, 0);
            EXPECT(&p, p_i386_unshare, EPERM);
        }
#endif
        EXPECT(&p, p_getppid, EPERM);
        seccomp_program_free(&p);
    }

    /* Naming a call keeps it from counting as newer than the profile, even
     * in a rule that only repeats the default (runc counts it too). */
    snprintf(json, sizeof(json),
             "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{%s},"
             " {\"names\": [\"clone3\"], \"action\": \"SCMP_ACT_ERRNO\"}]}",
             allow);
    p = build_json(json, 0);
    if (p.filter) {
        EXPECT(&p, p_clone3, EPERM);
        EXPECT(&p, p_syscall_457, ENOSYS);
        seccomp_program_free(&p);
    }
    snprintf(json, sizeof(json), "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{%s}]}", allow);
    p = build_json(json, 0);
    if (p.filter) {
        EXPECT(&p, p_clone3, ENOSYS);
        seccomp_program_free(&p);
    }

    /* A default of ENOSYS needs no stub; KILL_PROCESS kills. */
    snprintf(json, sizeof(json), "{\"defaultAction\": \"SCMP_ACT_KILL_PROCESS\", \"syscalls\": [{%s}]}", allow);
    p = build_json(json, 0);
    if (p.filter) {
        EXPECT(&p, p_getppid, -SIGSYS);
        EXPECT(&p, p_syscall_1000, ENOSYS);
        seccomp_program_free(&p);
    }
}

/* Building fails with INVALID_ARGUMENT, a message containing each of
 * `needles`, and `out` left zeroed. */
static void expect_error_at(int line, const char *json, size_t len, const char *needle1, const char *needle2)
{
    struct seccomp_program p = {(struct sock_filter *)(uintptr_t)1, 7};
    err_t err = ERR_INIT;
    int r = seccomp_build_from_json(json, len, 0, &p, &err);
    CHECK_MSG(r < 0, "line %d: building succeeded", line);
    if (r == 0) {
        seccomp_program_free(&p);
        return;
    }
    const char *m = err.msg ? err.msg : "(null)";
    CHECK_MSG(p.filter == NULL && p.len == 0, "line %d: output not zeroed", line);
    CHECK_MSG(err.code == ERR_INVALID_ARGUMENT, "line %d: code %s (%s)", line, err_code_name(err.code), m);
    CHECK_MSG(strstr(m, needle1) != NULL, "line %d: \"%s\" lacks \"%s\"", line, m, needle1);
    if (needle2)
        CHECK_MSG(strstr(m, needle2) != NULL, "line %d: \"%s\" lacks \"%s\"", line, m, needle2);
    err_clear(&err);
}
#define EXPECT_ERROR(json, n1, n2) expect_error_at(__LINE__, json, strlen(json), n1, n2)

#define RULE(body)                                                                                                     \
    "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"getpid\"], "                                \
    "\"action\": \"SCMP_ACT_ALLOW\"}, " body "]}"

static void test_json_errors(void)
{
    EXPECT_ERROR("{\"defaultAction\": ", "line 1", NULL);
    EXPECT_ERROR("", "seccomp profile", NULL);
    EXPECT_ERROR("[]", "not a JSON object", NULL);
    EXPECT_ERROR("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"defaultAction\": \"SCMP_ACT_ALLOW\"}", "duplicate", NULL);
    EXPECT_ERROR("{}", "defaultAction is missing", NULL);
    EXPECT_ERROR("{\"defaultAction\": 3}", "defaultAction must be a string", NULL);
    EXPECT_ERROR("{\"defaultAction\": \"SCMP_ACT_NOPE\"}", "unknown action", "SCMP_ACT_NOPE");
    EXPECT_ERROR("{\"defaultAction\": \"SCMP_ACT_NOTIFY\"}", "SCMP_ACT_NOTIFY is not supported", NULL);
    EXPECT_ERROR("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"defaultErrnoRet\": 1}", "defaultErrnoRet is only", NULL);
    EXPECT_ERROR("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 70000}", "defaultErrnoRet must be",
                 NULL);
    EXPECT_ERROR("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"listenerPath\": \"/run/agent.sock\"}", "listenerPath",
                 "/run/agent.sock");
    EXPECT_ERROR("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"architectures\": [\"SCMP_ARCH_PDP11\"]}",
                 "architectures[0]: unknown architecture", "SCMP_ARCH_PDP11");
    EXPECT_ERROR("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"architectures\": [\"SCMP_ARCH_X86\"], \"archMap\": "
                 "[{\"architecture\": \"SCMP_ARCH_X86_64\"}]}",
                 "both given", NULL);
    EXPECT_ERROR("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"flags\": [\"SECCOMP_FILTER_FLAG_NOPE\"]}",
                 "flags[0]: unknown flag", NULL);
    EXPECT_ERROR("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": {}}", "syscalls must be a list", NULL);

    EXPECT_ERROR(RULE("{\"names\": [\"mkdir\"], \"action\": \"SCMP_ACT_FOO\"}"), "syscalls[1] (\"mkdir\")",
                 "unknown action \"SCMP_ACT_FOO\"");
    EXPECT_ERROR(RULE("{\"names\": [\"mkdir\", \"rmdir\"]}"), "syscalls[1] (\"mkdir\", ...): action is missing", NULL);
    EXPECT_ERROR(RULE("{\"names\": [\"mkdir\"], \"action\": \"SCMP_ACT_ALLOW\", \"errnoRet\": 1}"),
                 "syscalls[1] (\"mkdir\"): errnoRet is only", NULL);
    EXPECT_ERROR(RULE("{\"names\": [\"x\"], \"action\": \"SCMP_ACT_NOTIFY\"}"), "syscalls[1]", "not supported");
    EXPECT_ERROR(RULE("{\"name\": \"x\", \"names\": [\"y\"], \"action\": \"SCMP_ACT_ALLOW\"}"), "both name and names",
                 NULL);
    EXPECT_ERROR(RULE("{\"names\": [\"mkdir\", 5], \"action\": \"SCMP_ACT_ALLOW\"}"), "names[1] must be a string",
                 NULL);
    EXPECT_ERROR(RULE("\"mkdir\""), "syscalls[1] is not an object", NULL);
    EXPECT_ERROR(RULE("{\"names\": [\"personality\"], \"action\": \"SCMP_ACT_ERRNO\", \"args\": "
                      "[{\"index\": 0, \"value\": 8, \"op\": \"SCMP_CMP_ALMOST\"}]}"),
                 "syscalls[1] (\"personality\"): args[0].op: unknown operator", "SCMP_CMP_ALMOST");
    EXPECT_ERROR(RULE("{\"names\": [\"personality\"], \"action\": \"SCMP_ACT_ERRNO\", \"args\": "
                      "[{\"index\": 6, \"value\": 8, \"op\": \"SCMP_CMP_EQ\"}]}"),
                 "args[0].index must be an integer from 0 to 5", NULL);
    EXPECT_ERROR(RULE("{\"names\": [\"personality\"], \"action\": \"SCMP_ACT_ERRNO\", \"args\": "
                      "[{\"index\": 0, \"value\": -1, \"op\": \"SCMP_CMP_EQ\"}]}"),
                 "args[0].value must be an integer", NULL);
    EXPECT_ERROR(RULE("{\"names\": [\"personality\"], \"action\": \"SCMP_ACT_ERRNO\", \"args\": "
                      "[{\"value\": 1, \"op\": \"SCMP_CMP_EQ\"}]}"),
                 "args[0].index is missing", NULL);
    EXPECT_ERROR(RULE("{\"names\": [\"mkdir\"], \"action\": \"SCMP_ACT_ERRNO\", \"includes\": {\"caps\": "
                      "[\"CAP_SYS_WIZARD\"]}}"),
                 "includes.caps: unknown capability", "CAP_SYS_WIZARD");
    EXPECT_ERROR(RULE("{\"names\": [\"mkdir\"], \"action\": \"SCMP_ACT_ERRNO\", \"excludes\": {\"arches\": "
                      "[\"vax\"]}}"),
                 "excludes.arches: unknown architecture", "vax");
    EXPECT_ERROR(RULE("{\"names\": [\"mkdir\"], \"action\": \"SCMP_ACT_ERRNO\", \"includes\": {\"minKernel\": "
                      "\"four\"}}"),
                 "includes.minKernel", "not a kernel version");
    /* Errors in a rule that does not apply here are still errors. */
    EXPECT_ERROR(RULE("{\"names\": [\"mkdir\"], \"action\": \"SCMP_ACT_BOGUS\", \"includes\": {\"arches\": "
                      "[\"s390x\"]}}"),
                 "unknown action", NULL);
    /* libseccomp cannot hold both (here, for a call it multiplexes through
     * ipc(2) on x86): an unconditional rule after a conditional one with
     * another action. */
    EXPECT_ERROR("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"architectures\": [\"SCMP_ARCH_X86_64\", "
                 "\"SCMP_ARCH_X86\"], \"syscalls\": ["
                 "{\"names\": [\"shmget\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 3, \"args\": "
                 "[{\"index\": 0, \"value\": 8, \"op\": \"SCMP_CMP_EQ\"}]}, "
                 "{\"names\": [\"shmget\"], \"action\": \"SCMP_ACT_ALLOW\"}]}",
                 "syscalls[1] (\"shmget\")", "conflicts");

    /* Bounds: rules and size. */
    size_t n = SECCOMP_PROFILE_MAX_RULES + 1, cap = 64 + n * 64;
    char *big = malloc(cap);
    if (!big)
        return;
    size_t o = (size_t)snprintf(big, cap, "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [");
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(big + o, cap - o, "%s{\"names\": [\"getpid\"], \"action\": \"SCMP_ACT_ALLOW\"}",
                              i ? "," : "");
    snprintf(big + o, cap - o, "]}");
    EXPECT_ERROR(big, "2001 rules, more than 2000", NULL);
    /* Exactly the limit loads. */
    char *last_rule = strrchr(big, '{');
    strcpy(last_rule - 1, "]}");
    struct seccomp_program p = build_json(big, 0);
    seccomp_program_free(&p);
    free(big);

    big = malloc(SECCOMP_PROFILE_MAX_SIZE + 1);
    if (!big)
        return;
    memset(big, ' ', SECCOMP_PROFILE_MAX_SIZE + 1);
    memcpy(big, "{}", 2);
    expect_error_at(__LINE__, big, SECCOMP_PROFILE_MAX_SIZE + 1, "bytes, more than", NULL);
    free(big);
}

/* A profile in Moby's shape loads and behaves like the built-in default for
 * the calls probed here (sigaltstack: for a sanitizer runtime, see above). */
static void test_json_docker_shape(void)
{
    const char *json =
        "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 1,"
        " \"archMap\": [{\"architecture\": \"SCMP_ARCH_X86_64\", \"subArchitectures\": [\"SCMP_ARCH_X86\", "
        "\"SCMP_ARCH_X32\"]}],"
        " \"syscalls\": ["
        "  {\"names\": [\"exit\", \"exit_group\", \"getpid\", \"getppid\", \"openat\", \"read\", \"write\", \"close\","
        "   \"mmap\", \"munmap\", \"futex\", \"pipe2\", \"brk\", \"rt_sigreturn\", \"wait4\", \"clone\", "
        "\"sigaltstack\"],"
        "   \"action\": \"SCMP_ACT_ALLOW\", \"comment\": \"ignored\"},"
        "  {\"names\": [\"socket\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": 0, \"value\": 40, \"op\": "
        "\"SCMP_CMP_NE\"}]},"
        "  {\"names\": [\"mount\", \"unshare\"], \"action\": \"SCMP_ACT_ALLOW\", \"includes\": {\"caps\": "
        "[\"CAP_SYS_ADMIN\"]}},"
        "  {\"names\": [\"clone3\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 38, \"excludes\": {\"caps\": "
        "[\"CAP_SYS_ADMIN\"]}},"
        "  {\"names\": [\"arch_prctl\"], \"action\": \"SCMP_ACT_ALLOW\", \"includes\": {\"arches\": [\"amd64\", "
        "\"x32\"]}}"
        " ]}";
    struct seccomp_program p = build_json(json, DEFAULT_CAPS);
    if (!p.filter)
        return;
    EXPECT(&p, p_basic_io, 0);
    EXPECT(&p, p_socket_inet, 0);
    EXPECT(&p, p_socket_vsock, EPERM);
    EXPECT(&p, p_mount, EPERM);
    EXPECT(&p, p_clone3, ENOSYS);
    seccomp_program_free(&p);
    if (is_root) {
        p = build_json(json, DEFAULT_CAPS | CAP(CAP_SYS_ADMIN));
        if (p.filter) {
            EXPECT(&p, p_mount, ENOENT);
            /* No rule names clone3 now, and 435 is past every number the
             * profile names: ENOSYS from the stub, as under runc. */
            EXPECT(&p, p_clone3, ENOSYS);
            seccomp_program_free(&p);
        }
    }
}

static void test_program_free(void)
{
    struct seccomp_program p = build_default(DEFAULT_CAPS);
    seccomp_program_free(&p);
    CHECK(p.filter == NULL && p.len == 0);
    seccomp_program_free(&p);
    seccomp_program_free(NULL);
}

int main(void)
{
    is_root = geteuid() == 0;
    if (!is_root)
        printf("test_seccomp: not root, checks that need root are skipped\n");
    RUN(test_default_allows);
    RUN(test_default_enosys);
    RUN(test_default_compat);
    RUN(test_json_mkdir_blocked);
    RUN(test_json_args);
    RUN(test_json_conditions);
    RUN(test_json_errno_default);
    RUN(test_json_errors);
    RUN(test_program_free);
    if (is_root) {
        /* The controls show the kernel would say yes (or fail otherwise). */
        RUN(test_default_denies);
        RUN(test_default_capabilities);
        RUN(test_json_docker_shape);
    }
    return unit_summary();
}
