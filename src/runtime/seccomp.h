/* Seccomp filters for containers, compiled with libseccomp in the agent.
 *
 * A container's process is started with clone3() and, between the clone and
 * execve, may only make system calls on data prepared before the clone (see
 * DESIGN.md): it cannot call libseccomp, which allocates. So the agent builds
 * the finished classic-BPF program here and the child only hands it to
 * seccomp(SECCOMP_SET_MODE_FILTER). Programs are built without NO_NEW_PRIVS
 * and without TSYNC: the runtime sets no_new_privs itself when the pod asks
 * for it (allowPrivilegeEscalation), and the child is single-threaded.
 *
 * Both builders prepend a short stub to libseccomp's program, as runc does,
 * when the default action denies: a system call numbered above every call the
 * profile names gets ENOSYS instead of the default errno. A call that new is
 * one the profile cannot have meant to allow, and ENOSYS ("kernel too old")
 * is the answer libc and language runtimes fall back on; EPERM would make
 * them fail instead. */
#pragma once

#include <linux/filter.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define SECCOMP_PROFILE_MAX_SIZE  (1u << 20) /* bytes of JSON */
#define SECCOMP_PROFILE_MAX_RULES 2000       /* entries of "syscalls" */
#define SECCOMP_PROFILE_MAX_NAMES 10000      /* syscall names over all entries */

/* The finished program, ready for struct sock_fprog { len, filter }. */
struct seccomp_program {
    struct sock_filter *filter;
    unsigned short len;
};

/* The CRI "RuntimeDefault" profile, equal in effect to containerd's default
 * (Moby's default profile) as runc applies it: an allowlist whose default
 * answer is EPERM, with the same argument conditions (personality only for
 * the Linux/Linux32/UNAME26 personas and the query, socket for every family
 * but AF_VSOCK, clone only without namespace flags), the same additions for
 * capabilities (CAP_SYS_ADMIN: mount, umount2, unshare, setns, clone with
 * namespace flags, clone3, bpf, perf_event_open, syslog, the new mount API…;
 * CAP_SYS_PTRACE: kcmp, pidfd_getfd, process_madvise…; CAP_SYS_BOOT: reboot;
 * CAP_SYS_MODULE, CAP_SYS_PACCT, CAP_SYS_RAWIO, CAP_SYS_TIME,
 * CAP_SYS_TTY_CONFIG, CAP_SYS_NICE, CAP_SYSLOG, CAP_BPF, CAP_PERFMON,
 * CAP_DAC_READ_SEARCH, CAP_SYS_CHROOT), ptrace and process_vm_readv/writev on
 * kernels from 4.8 (where seccomp can no longer be bypassed by a tracer), and
 * clone3 answering ENOSYS without CAP_SYS_ADMIN: clone3 passes its flags in
 * memory a filter cannot read, and on ENOSYS glibc falls back to clone, whose
 * flags can be checked. Built for the native architecture plus its compat
 * architectures (x86_64: x86 and x32; aarch64: arm; s390x: s390; mips64
 * variants: their o32/n32 siblings), so 32-bit binaries are filtered by their
 * own syscall table instead of being killed as a foreign architecture.
 * `caps` is the container's capability mask (bit n = capability n). */
int seccomp_build_default(uint64_t caps, struct seccomp_program *out, err_t *err);

/* A "Localhost" profile in the OCI/Docker seccomp JSON format: defaultAction,
 * defaultErrnoRet, architectures or Docker's archMap, flags (accepted and
 * dropped: a program cannot carry them, and each only relaxes a mitigation or
 * adds logging), syscalls[] with names (or Docker's single name), action,
 * errnoRet, args[{index, value, valueTwo, op}], includes/excludes {caps,
 * arches, minKernel} with Docker's meaning (includes.caps needs all of them,
 * excludes.caps any; arches are the Go names, e.g. amd64, matched against the
 * native architecture). Parsed with jansson, bounded by SECCOMP_PROFILE_MAX_*.
 * Unknown syscall names are skipped: a profile written for a newer kernel
 * must still load. Unknown actions, ops, architectures and capabilities are
 * errors naming the rule, as are SCMP_ACT_NOTIFY and a listenerPath (no
 * notification listener is supported). Several conditions on one argument
 * become one rule per condition (their union), as runc does. Errors are
 * ERR_INVALID_ARGUMENT with the place in the profile, e.g.
 * "seccomp profile: syscalls[3] (\"mkdir\"): action: unknown action \"SCMP_ACT_NOPE\"". */
int seccomp_build_from_json(const char *json, size_t len, uint64_t caps, struct seccomp_program *out, err_t *err);

/* Frees and zeroes; safe on a zeroed or freed program. */
void seccomp_program_free(struct seccomp_program *p);
