/* edgecri: a Kubernetes container runtime (CRI) for small nodes. This file
 * only reads the command line; daemon/daemon.c runs the process. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "daemon/daemon.h"
#include "runtime/pod_init.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: edgecri [options]\n"
            "       edgecri pull [--socket PATH] [--user USER:PASSWORD] IMAGE\n"
            "       edgecri import [--socket PATH] FILE.tar\n"
            "\n"
            "Serves the Kubernetes Container Runtime Interface (runtime.v1, and runtime.v1alpha2\n"
            "for older kubelets) on a unix socket.\n"
            "Point kubelet at it with --container-runtime-endpoint=unix://%s\n"
            "\n"
            "Options:\n"
            "  --config PATH      configuration file (default %s; optional unless given)\n"
            "  --socket PATH      CRI socket (default %s)\n"
            "  --root DIR         persistent state directory (default %s)\n"
            "  --state DIR        runtime state directory (default %s)\n"
            "  --log-level LEVEL  error, warn, info or debug (default info)\n"
            "  --help             this text\n"
            "  --version          print the version\n"
            "\n"
            "Configuration keys (YAML; flags win over the file; SIGHUP reloads it):\n",
            CONFIG_DEFAULT_SOCKET, CONFIG_DEFAULT_PATH, CONFIG_DEFAULT_SOCKET, CONFIG_DEFAULT_ROOT,
            CONFIG_DEFAULT_STATE);
    config_print_reference(f);
}

int main(int argc, char **argv)
{
    if (argc > 1 && cli_is_command(argv[1]))
        return cli_main(argc, argv);
    /* Not for people: what edgecri starts as a pod's PID 1. */
    if (argc == 2 && strcmp(argv[1], "pod-init") == 0)
        return pod_init_main();
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},    {"socket", required_argument, NULL, 's'},
        {"root", required_argument, NULL, 'r'},      {"state", required_argument, NULL, 'S'},
        {"log-level", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},         {NULL, 0, NULL, 0},
    };
    const char *config_path = CONFIG_DEFAULT_PATH;
    bool config_explicit = false;
    struct config_overrides ov = {0};
    int c;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            config_explicit = true;
            break;
        case 's':
            ov.socket_path = optarg;
            break;
        case 'r':
            ov.root_dir = optarg;
            break;
        case 'S':
            ov.state_dir = optarg;
            break;
        case 'l':
            ov.log_level = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("edgecri %s (CRI runtime.v1)\n", EDGECRI_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "edgecri: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    return daemon_run(config_path, config_explicit, &ov);
}
