/* `edgecri pod-init`: PID 1 of a pod-shared PID namespace. It holds the
 * namespace, reaps orphans re-parented to it, and ends on SIGTERM/SIGINT
 * (or SIGKILL from edgecri when the pod stops). Nothing else: it runs for
 * the whole life of the pod, so it must cost next to nothing. */
#include "runtime/pod_init.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int pod_init_main(void)
{
    prctl(PR_SET_NAME, "edgecri-init", 0, 0, 0);
    syscall(SYS_close_range, 3, ~0U, 0);
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&all, &si);
        if (sig == SIGCHLD) {
            while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
        } else if (sig == SIGTERM || sig == SIGINT) {
            return 0;
        }
    }
}
