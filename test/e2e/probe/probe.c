/* A tiny static program the container tests put into images: it makes one
 * system call by name and prints what happened, so a test can see the
 * effect of seccomp, capabilities and no_new_privs from inside. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int report(const char *what, long r)
{
    if (r < 0) {
        printf("%s: %s\n", what, strerrorname_np(errno) ? strerrorname_np(errno) : "E?");
        return 1;
    }
    printf("%s: ok %ld\n", what, r);
    return 0;
}

int main(int argc, char **argv)
{
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "unshare") == 0)
            rc |= report(a, unshare(CLONE_NEWUTS));
        else if (strcmp(a, "keyctl") == 0)
            rc |= report(a, syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
        else if (strcmp(a, "nnp") == 0)
            rc |= report(a, prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
        else if (strcmp(a, "mount") == 0)
            rc |= report(a, mount("none", "/tmp", "tmpfs", 0, NULL));
        else if (strcmp(a, "chown") == 0)
            rc |= report(a, chown("/tmp", 1, 1));
        else if (strcmp(a, "setuid") == 0)
            rc |= report(a, setuid(0));
        else if (strcmp(a, "sethostname") == 0)
            rc |= report(a, sethostname("x", 1));
        else
            rc |= report(a, (errno = EINVAL, -1));
    }
    fflush(stdout);
    return rc ? 1 : 0;
}
