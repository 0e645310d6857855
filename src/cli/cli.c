/* `edgecri pull` and `edgecri import`: the command line for air-gapped and
 * hand-fed nodes. Both ask the running daemon (its admin API on the CRI
 * socket) to do the work, so there is one writer to the image store; the
 * command line only shows progress. */
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.pb-c.h"
#include "cli/grpc_client.h"
#include "config/config.h"
#include "util/cleanup.h"

struct pull_view {
    bool tty;
    size_t lines_drawn;
    /* For plain output: the state each layer was last reported in. */
    int *last_state;
    size_t n_last;
    char image_id[160];
};

static const char *state_name(int s)
{
    static const char *const names[] = {"waiting", "downloading", "unpacking", "done", "already present"};
    return s >= 0 && s < 5 ? names[s] : "?";
}

static void human(uint64_t bytes, char *out, size_t n)
{
    if (bytes >= (1ULL << 30))
        snprintf(out, n, "%.1f GiB", (double)bytes / (double)(1ULL << 30));
    else if (bytes >= (1ULL << 20))
        snprintf(out, n, "%.1f MiB", (double)bytes / (double)(1ULL << 20));
    else if (bytes >= 1024)
        snprintf(out, n, "%.1f KiB", (double)bytes / 1024.0);
    else
        snprintf(out, n, "%llu B", (unsigned long long)bytes);
}

static const char *short_digest(const char *d)
{
    const char *colon = strchr(d, ':');
    return colon ? colon + 1 : d;
}

/* A terminal gets one live bar per layer, redrawn in place. */
static void draw_bars(struct pull_view *v, const Edgecri__Admin__V1__PullProgress *p)
{
    if (v->lines_drawn)
        printf("\033[%zuA", v->lines_drawn);
    for (size_t i = 0; i < p->n_layers; i++) {
        const Edgecri__Admin__V1__LayerProgress *l = p->layers[i];
        uint64_t size = l->size > 0 ? (uint64_t)l->size : 1;
        int filled = (int)(l->done >= size ? 30 : l->done * 30 / size);
        char bar[31];
        memset(bar, '=', (size_t)filled);
        memset(bar + filled, ' ', (size_t)(30 - filled));
        bar[30] = '\0';
        char done[32], total[32];
        human(l->done, done, sizeof(done));
        human((uint64_t)l->size, total, sizeof(total));
        printf("\033[2K%.12s  %-15s [%s] %s / %s\n", short_digest(l->digest), state_name(l->state), bar, done, total);
    }
    v->lines_drawn = p->n_layers;
    fflush(stdout);
}

/* Elsewhere (logs, pipes): a line whenever a layer changes state. */
static void print_changes(struct pull_view *v, const Edgecri__Admin__V1__PullProgress *p)
{
    if (v->n_last < p->n_layers) {
        int *grown = realloc(v->last_state, p->n_layers * sizeof(int));
        if (!grown)
            return;
        for (size_t i = v->n_last; i < p->n_layers; i++)
            grown[i] = -1;
        v->last_state = grown;
        v->n_last = p->n_layers;
    }
    for (size_t i = 0; i < p->n_layers; i++) {
        const Edgecri__Admin__V1__LayerProgress *l = p->layers[i];
        if (v->last_state[i] == (int)l->state)
            continue;
        v->last_state[i] = (int)l->state;
        char total[32];
        human((uint64_t)l->size, total, sizeof(total));
        printf("%s: %s (%s)\n", l->digest, state_name(l->state), total);
    }
    fflush(stdout);
}

static int on_pull_message(void *data, const uint8_t *msg, size_t len)
{
    struct pull_view *v = data;
    Edgecri__Admin__V1__PullProgress *p = edgecri__admin__v1__pull_progress__unpack(NULL, len, msg);
    if (!p)
        return -1;
    if (p->image_id && *p->image_id)
        snprintf(v->image_id, sizeof(v->image_id), "%s", p->image_id);
    else if (v->tty)
        draw_bars(v, p);
    else
        print_changes(v, p);
    edgecri__admin__v1__pull_progress__free_unpacked(p, NULL);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: edgecri pull [--socket PATH] [--user USER:PASSWORD] IMAGE\n"
               "       edgecri import [--socket PATH] FILE.tar\n"
               "\n"
               "Both ask the running edgecri to do the work and show its progress.\n"
               "import takes an OCI image layout or a `docker save` tarball (optionally gzip- or\n"
               "zstd-compressed).\n");
}

static int cmd_pull(const char *socket_path, const char *creds, const char *image)
{
    Edgecri__Admin__V1__PullRequest req = EDGECRI__ADMIN__V1__PULL_REQUEST__INIT;
    req.image = (char *)image;
    _cleanup_free_ char *user = NULL;
    if (creds) {
        user = strdup(creds);
        char *colon = user ? strchr(user, ':') : NULL;
        if (!colon) {
            fprintf(stderr, "edgecri pull: --user takes USER:PASSWORD\n");
            return 2;
        }
        *colon = '\0';
        req.username = user;
        req.password = colon + 1;
    }
    size_t len = edgecri__admin__v1__pull_request__get_packed_size(&req);
    _cleanup_free_ uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return 1;
    edgecri__admin__v1__pull_request__pack(&req, buf);
    struct pull_view v = {.tty = isatty(STDOUT_FILENO)};
    err_t err = ERR_INIT;
    int r = grpc_client_call(socket_path, "/edgecri.admin.v1.Images/Pull", buf, len, on_pull_message, &v, &err);
    free(v.last_state);
    if (r < 0) {
        fprintf(stderr, "edgecri pull: %s\n", err.msg ? err.msg : "failed");
        err_clear(&err);
        return 1;
    }
    printf("%s\n", v.image_id);
    return 0;
}

static int on_import_message(void *data, const uint8_t *msg, size_t len)
{
    int *count = data;
    Edgecri__Admin__V1__ImportProgress *p = edgecri__admin__v1__import_progress__unpack(NULL, len, msg);
    if (!p)
        return -1;
    if (p->message && *p->message)
        printf("%s\n", p->message);
    for (size_t i = 0; i < p->n_images; i++) {
        const Edgecri__Admin__V1__ImportedImage *img = p->images[i];
        printf("imported %s", img->id);
        for (size_t t = 0; t < img->n_repo_tags; t++)
            printf(" %s", img->repo_tags[t]);
        printf("\n");
        (*count)++;
    }
    fflush(stdout);
    edgecri__admin__v1__import_progress__free_unpacked(p, NULL);
    return 0;
}

static int cmd_import(const char *socket_path, const char *file)
{
    /* The daemon opens the file: hand it an absolute path. */
    char abs[PATH_MAX];
    if (!realpath(file, abs)) {
        fprintf(stderr, "edgecri import: %s: %s\n", file, strerror(errno));
        return 1;
    }
    Edgecri__Admin__V1__ImportRequest req = EDGECRI__ADMIN__V1__IMPORT_REQUEST__INIT;
    req.path = abs;
    size_t len = edgecri__admin__v1__import_request__get_packed_size(&req);
    _cleanup_free_ uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return 1;
    edgecri__admin__v1__import_request__pack(&req, buf);
    int count = 0;
    err_t err = ERR_INIT;
    int r = grpc_client_call(socket_path, "/edgecri.admin.v1.Images/Import", buf, len, on_import_message, &count, &err);
    if (r < 0) {
        fprintf(stderr, "edgecri import: %s\n", err.msg ? err.msg : "failed");
        err_clear(&err);
        return 1;
    }
    return 0;
}

bool cli_is_command(const char *arg)
{
    return arg && (strcmp(arg, "pull") == 0 || strcmp(arg, "import") == 0);
}

int cli_main(int argc, char **argv)
{
    const char *cmd = argv[1];
    const char *socket_path = CONFIG_DEFAULT_SOCKET;
    const char *creds = NULL;
    static const struct option options[] = {
        {"socket", required_argument, NULL, 's'},
        {"user", required_argument, NULL, 'u'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (c) {
        case 's':
            socket_path = optarg;
            break;
        case 'u':
            creds = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1 || (creds && strcmp(cmd, "pull") != 0)) {
        usage(stderr);
        return 2;
    }
    return strcmp(cmd, "pull") == 0 ? cmd_pull(socket_path, creds, argv[optind])
                                    : cmd_import(socket_path, argv[optind]);
}
