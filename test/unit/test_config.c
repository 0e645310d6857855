#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>

#include "config/config.h"
#include "util/log.h"
#include "unit.h"

#define NAME "t.yaml"

static int load(struct config *c, const char *text, const struct config_overrides *ov, err_t *err)
{
    return config_load_text(c, NAME, text, strlen(text), ov, err);
}

static void check_defaults(const struct config *c)
{
    CHECK_STREQ(c->socket_path, "/run/edgecri/edgecri.sock");
    CHECK_STREQ(c->root_dir, "/var/lib/edgecri");
    CHECK_STREQ(c->state_dir, "/run/edgecri");
    CHECK_EQ_INT(c->log_level, LOG_LEVEL_INFO);
    CHECK_EQ_INT(c->cgroup_driver, CGROUP_DRIVER_CGROUPFS);
    CHECK_EQ_U64(c->grpc_max_recv_message_size, 16ULL << 20);
    CHECK_EQ_U64(c->grpc_max_send_message_size, 16ULL << 20);
    CHECK_EQ_U64(c->shutdown_timeout_ms, 10000);
    CHECK_STREQ(c->registries_path, "/etc/edgecri/registries.yaml");
    CHECK_EQ_U64(c->images_max_concurrent_downloads, 3);
    CHECK(!c->images_keep_layer_blobs);
    CHECK_EQ_U64(c->images_max_layer_size, 32ULL << 30);
    CHECK_EQ_U64(c->images_max_file_size, 8ULL << 30);
    CHECK_STREQ(c->images_import_dir, "");
}

/* Loads `text` expecting success, then checks the defaults. */
static void expect_defaults(const char *text)
{
    struct config c;
    err_t err = ERR_INIT;
    int r = load(&c, text, NULL, &err);
    CHECK_MSG(r == 0, "loading \"%s\": %d %s", text, r, err.msg ? err.msg : "");
    if (r == 0) {
        check_defaults(&c);
        config_free(&c);
    }
    err_clear(&err);
}

static void test_defaults(void)
{
    struct config c;
    config_init_defaults(&c);
    check_defaults(&c);
    config_free(&c);
    CHECK(c.socket_path == NULL && c.root_dir == NULL && c.state_dir == NULL);
    config_free(&c); /* twice is harmless */

    expect_defaults("");
    expect_defaults("# only a comment\n");
    expect_defaults("# comment one\n\n   # indented comment\n# socket: /nope.sock\n");
    expect_defaults("---\n");
    expect_defaults("---\n# comment\n...\n");
    expect_defaults("~\n");
    expect_defaults("{}\n");
    expect_defaults("\n\n\n");
}

static const char full_file[] = "# edgecri configuration\n"
                                "socket: /run/x/edgecri.sock\n"
                                "root: /var/lib/x   # trailing comment\n"
                                "state: \"/run/x\"\n"
                                "log_level: debug\n"
                                "cgroup_driver: systemd\n"
                                "grpc:\n"
                                "  max_recv_message_size: 4MiB\n"
                                "  max_send_message_size: 1048577\n"
                                "shutdown_timeout: 1m30s\n";

static void check_full(const struct config *c)
{
    CHECK_STREQ(c->socket_path, "/run/x/edgecri.sock");
    CHECK_STREQ(c->root_dir, "/var/lib/x");
    CHECK_STREQ(c->state_dir, "/run/x");
    CHECK_EQ_INT(c->log_level, LOG_LEVEL_DEBUG);
    CHECK_EQ_INT(c->cgroup_driver, CGROUP_DRIVER_SYSTEMD);
    CHECK_EQ_U64(c->grpc_max_recv_message_size, 4ULL << 20);
    CHECK_EQ_U64(c->grpc_max_send_message_size, 1048577);
    CHECK_EQ_U64(c->shutdown_timeout_ms, 90000);
}

static void test_full_file(void)
{
    struct config c;
    err_t err = ERR_INIT;
    CHECK_OK(load(&c, full_file, NULL, &err));
    CHECK(err.msg == NULL);
    check_full(&c);
    config_free(&c);

    /* Flow style, other spellings, limits at the edges of their ranges. */
    CHECK_OK(load(&c,
                  "{socket: '/s.sock', log_level: WARNING, cgroup_driver: cgroupfs,\n"
                  " grpc: {max_recv_message_size: 1GiB, max_send_message_size: 1024},\n"
                  " shutdown_timeout: 0}\n",
                  NULL, &err));
    CHECK_STREQ(c.socket_path, "/s.sock");
    CHECK_STREQ(c.root_dir, "/var/lib/edgecri");
    CHECK_EQ_INT(c.log_level, LOG_LEVEL_WARN);
    CHECK_EQ_INT(c.cgroup_driver, CGROUP_DRIVER_CGROUPFS);
    CHECK_EQ_U64(c.grpc_max_recv_message_size, 1ULL << 30);
    CHECK_EQ_U64(c.grpc_max_send_message_size, 1024);
    CHECK_EQ_U64(c.shutdown_timeout_ms, 0);
    config_free(&c);

    CHECK_OK(load(&c, "grpc:\n  max_send_message_size: 2GiB\nshutdown_timeout: 1h\nlog_level: error\n", NULL, &err));
    CHECK_EQ_U64(c.grpc_max_send_message_size, 2ULL << 30);
    CHECK_EQ_U64(c.grpc_max_recv_message_size, 16ULL << 20); /* untouched */
    CHECK_EQ_U64(c.shutdown_timeout_ms, 3600000);
    CHECK_EQ_INT(c.log_level, LOG_LEVEL_ERROR);
    config_free(&c);

    /* A socket path of 107 bytes (the most sun_path holds) is fine. */
    char text[256], path[108];
    memset(path, 'a', 107);
    path[0] = '/';
    path[107] = '\0';
    snprintf(text, sizeof(text), "socket: %s\n", path);
    CHECK_OK(load(&c, text, NULL, &err));
    CHECK_STREQ(c.socket_path, path);
    config_free(&c);
    err_clear(&err);
}

/* Loading `text` fails with INVALID_ARGUMENT; the message contains
 * "t.yaml:LINE:" (unless line is 0), `key` and `why` (unless NULL), and the
 * configuration is left empty. */
static void expect_error_at(int src_line, const char *text, const struct config_overrides *ov, int line,
                            const char *key, const char *why)
{
    struct config c;
    memset(&c, 0x5a, sizeof(c));
    err_t err = ERR_INIT;
    int r = load(&c, text, ov, &err);
    const char *m = err.msg ? err.msg : "(null)";
    CHECK_MSG(r < 0, "line %d: loading \"%s\" succeeded", src_line, text);
    if (r == 0) {
        config_free(&c);
        return;
    }
    CHECK_MSG(err.code == ERR_INVALID_ARGUMENT, "line %d: code %s (%s)", src_line, err_code_name(err.code), m);
    CHECK_MSG(c.socket_path == NULL && c.root_dir == NULL && c.state_dir == NULL,
              "line %d: configuration not left empty", src_line);
    if (line) {
        char where[64];
        snprintf(where, sizeof(where), NAME ":%d:", line);
        CHECK_MSG(strstr(m, where) != NULL, "line %d: message \"%s\" lacks \"%s\"", src_line, m, where);
    }
    if (key)
        CHECK_MSG(strstr(m, key) != NULL, "line %d: message \"%s\" lacks key \"%s\"", src_line, m, key);
    if (why)
        CHECK_MSG(strstr(m, why) != NULL, "line %d: message \"%s\" lacks \"%s\"", src_line, m, why);
    err_clear(&err);
}

#define EXPECT_ERROR(text, line, key, why) expect_error_at(__LINE__, text, NULL, line, key, why)

static void test_errors(void)
{
    /* Unknown keys, at the top and inside grpc:. */
    EXPECT_ERROR("socket: /a.sock\nbogus: 1\n", 2, "bogus", "unknown key");
    EXPECT_ERROR("socket: /a.sock\nbogus:\n  x: 1\n", 2, "bogus", "unknown key");
    EXPECT_ERROR("socket: /a.sock\nbogus: [1]\n", 2, "bogus", "unknown key");
    EXPECT_ERROR("grpc:\n  max_recv_message_size: 1MiB\n  nope: 3\n", 3, "grpc.nope", "unknown key");
    EXPECT_ERROR("grpc:\n  socket: /a.sock\n", 2, "grpc.socket", "unknown key");
    EXPECT_ERROR("Socket: /a.sock\n", 1, "Socket", "unknown key");

    /* A section given a scalar or nothing. */
    EXPECT_ERROR("log_level: info\ngrpc: 5\n", 2, "grpc", "section");
    EXPECT_ERROR("grpc:\n", 1, "grpc", "section");
    EXPECT_ERROR("grpc: [1, 2]\n", 1, "grpc", "section");

    /* A scalar key given a mapping or a list. */
    EXPECT_ERROR("log_level:\n  a: b\n", 1, "log_level", "not a mapping");
    EXPECT_ERROR("root: {a: b}\n", 1, "root", "not a mapping");
    EXPECT_ERROR("socket: /a.sock\nroot: [/a, /b]\n", 2, "root", "not a list");
    EXPECT_ERROR("grpc:\n  max_recv_message_size:\n    - 1\n", 2, "grpc.max_recv_message_size", "not a list");

    /* A key without a value. */
    EXPECT_ERROR("socket:\nroot: /r\n", 1, "socket", "no value");
    EXPECT_ERROR("log_level: ~\n", 1, "log_level", "no value");

    /* Bad values. */
    EXPECT_ERROR("root: var/lib/edgecri\n", 1, "root", "not an absolute path");
    EXPECT_ERROR("state: ''\n", 1, "state", "not an absolute path");
    EXPECT_ERROR("socket: edgecri.sock\n", 1, "socket", "not an absolute path");
    EXPECT_ERROR("\n\nlog_level: loud\n", 3, "log_level", "loud");
    EXPECT_ERROR("cgroup_driver: docker\n", 1, "cgroup_driver", "docker");
    EXPECT_ERROR("cgroup_driver: Systemd\n", 1, "cgroup_driver", "not a cgroup driver");
    EXPECT_ERROR("grpc:\n  max_recv_message_size: 16 megabytes\n", 2, "grpc.max_recv_message_size", "not a size");
    EXPECT_ERROR("grpc:\n  max_recv_message_size: -1\n", 2, "grpc.max_recv_message_size", "not a size");
    EXPECT_ERROR("grpc:\n  max_send_message_size: 3GiB\n", 2, "grpc.max_send_message_size", "out of range");
    EXPECT_ERROR("grpc:\n  max_send_message_size: 1023\n", 2, "grpc.max_send_message_size", "out of range");
    EXPECT_ERROR("grpc:\n  max_recv_message_size: 1025MiB\n", 2, "grpc.max_recv_message_size", "out of range");
    EXPECT_ERROR("grpc:\n  max_recv_message_size: 99999999999999999999\n", 2, "grpc.max_recv_message_size", NULL);
    EXPECT_ERROR("shutdown_timeout: 10\n", 1, "shutdown_timeout", "not a duration");
    EXPECT_ERROR("shutdown_timeout: soon\n", 1, "shutdown_timeout", "not a duration");
    EXPECT_ERROR("shutdown_timeout: 61m\n", 1, "shutdown_timeout", "out of range");

    /* Duplicate keys. */
    EXPECT_ERROR("socket: /a.sock\nroot: /r\nsocket: /b.sock\n", 3, "socket", "given twice");
    EXPECT_ERROR("grpc:\n  max_recv_message_size: 1MiB\n  max_recv_message_size: 2MiB\n", 3,
                 "grpc.max_recv_message_size", "given twice");
    EXPECT_ERROR("grpc:\n  max_recv_message_size: 1MiB\ngrpc:\n  max_recv_message_size: 2MiB\n", 3, "grpc",
                 "given twice");
    EXPECT_ERROR("grpc:\n  max_recv_message_size: 1MiB\ngrpc:\n  max_send_message_size: 2MiB\n", 3, "grpc",
                 "given twice");
    /* Dotted names are not YAML sections. */
    EXPECT_ERROR("grpc.max_recv_message_size: 2MiB\n", 1, "grpc.max_recv_message_size", "nested mappings");

    /* YAML features refused. */
    EXPECT_ERROR("socket: &a /x.sock\nroot: *a\n", 2, NULL, "aliases are not supported");
    EXPECT_ERROR("socket: &a /x.sock\nroot: *a\n", 2, "root", NULL);
    EXPECT_ERROR("socket: /a.sock\n---\nroot: /r\n", 2, NULL, "only one YAML document");
    EXPECT_ERROR("---\nsocket: /a.sock\n...\n---\n", 4, NULL, "only one YAML document");
    EXPECT_ERROR("- socket\n- root\n", 1, NULL, "must be a mapping");
    EXPECT_ERROR("\nhello\n", 2, NULL, "must be a mapping");
    EXPECT_ERROR("? [a]\n: b\n", 1, NULL, "keys must be plain strings");

    /* Invalid YAML: the line of the problem. */
    EXPECT_ERROR("socket: /a.sock\nroot: /r\n  state: /s\n", 3, NULL, "invalid YAML");
    EXPECT_ERROR("socket: /a.sock\nroot: /r\n\tstate: /s\n", 3, NULL, "invalid YAML");
    EXPECT_ERROR("socket: /a.sock\n\nstate: /a: b\n", 3, NULL, "invalid YAML");
    EXPECT_ERROR("socket: /a.sock\nstate: \"/s\nroot: /r\n", 0, NULL, "invalid YAML"); /* unterminated quote */

    /* Cross-key checks. */
    char text[300], path[109];
    memset(path, 'a', 108);
    path[0] = '/';
    path[108] = '\0';
    snprintf(text, sizeof(text), "log_level: info\nsocket: %s\n", path);
    EXPECT_ERROR(text, 0, "socket", "longer than a unix socket path");
    EXPECT_ERROR(text, 2, "socket", NULL);
    EXPECT_ERROR("root: /same\nstate: /same\n", 0, "root", "different directories");
    EXPECT_ERROR("root: /run/edgecri\n", 0, "state", "different directories");
    EXPECT_ERROR("root: /same\nstate: /same\n", 2, "state", NULL);
}

static void test_image_keys(void)
{
    struct config c;
    err_t err = ERR_INIT;
    CHECK_OK(load(&c,
                  "registries: /etc/r.yaml\nimages:\n  max_concurrent_downloads: 8\n  keep_layer_blobs: yes\n"
                  "  max_layer_size: 2GiB\n  max_file_size: 1GiB\n",
                  NULL, &err));
    CHECK_STREQ(c.registries_path, "/etc/r.yaml");
    CHECK_EQ_U64(c.images_max_concurrent_downloads, 8);
    CHECK(c.images_keep_layer_blobs);
    CHECK_EQ_U64(c.images_max_layer_size, 2ULL << 30);
    CHECK_EQ_U64(c.images_max_file_size, 1ULL << 30);
    config_free(&c);
    err_clear(&err);
    EXPECT_ERROR("images:\n  keep_layer_blobs: maybe\n", 2, "images.keep_layer_blobs", "true or false");
    EXPECT_ERROR("images:\n  max_concurrent_downloads: 0\n", 2, "images.max_concurrent_downloads", "out of range");
    EXPECT_ERROR("images:\n  max_concurrent_downloads: 3.5\n", 2, "images.max_concurrent_downloads",
                 "not a whole number");
    EXPECT_ERROR("registries: relative.yaml\n", 1, "registries", "absolute");
    EXPECT_ERROR("images:\n  import_dir: some/dir\n", 2, "images.import_dir", "absolute");
    CHECK_OK(load(&c, "images:\n  import_dir: /srv/images\n", NULL, &err));
    CHECK_STREQ(c.images_import_dir, "/srv/images");
    config_free(&c);
}

static void test_network_keys(void)
{
    struct config c;
    err_t err = ERR_INIT;
    CHECK_OK(load(&c, "cni:\n  conf_dir: /srv/cni\n  bin_dirs: /a/bin:/b/bin\nnetwork:\n  pod_cidr: 10.9.1.0/24\n",
                  NULL, &err));
    CHECK_STREQ(c.cni_conf_dir, "/srv/cni");
    CHECK_STREQ(c.cni_bin_dirs, "/a/bin:/b/bin");
    CHECK_STREQ(c.pod_cidr, "10.9.1.0/24");
    config_free(&c);
    err_clear(&err);
    EXPECT_ERROR("cni:\n  conf_dir: net.d\n", 2, "cni.conf_dir", "absolute");
    EXPECT_ERROR("cni:\n  bin_dirs: /a:rel/b\n", 2, "cni.bin_dirs", "absolute");
    EXPECT_ERROR("network:\n  pod_cidr: 10.1.2.3\n", 2, "network.pod_cidr", "network.pod_cidr");
    EXPECT_ERROR("network:\n  pod_cidr: 10.9.1.7/24\n", 2, "network.pod_cidr", "host bits");
    EXPECT_ERROR("network:\n  pod_cidr: 300.1.0.0/16\n", 2, "network.pod_cidr", "network.pod_cidr");
}

static void test_streaming_keys(void)
{
    struct config c;
    err_t err = ERR_INIT;
    CHECK_OK(load(&c, "", NULL, &err));
    CHECK_STREQ(c.streaming_address, "127.0.0.1");
    CHECK_EQ_U64(c.streaming_port, 0);
    CHECK_EQ_U64(c.streaming_idle_timeout_ms, 4ULL * 3600 * 1000);
    config_free(&c);
    CHECK_OK(load(&c,
                  "streaming:\n  address: \"::1\"\n  port: 10250\n  idle_timeout: 30m\n  max_sessions: 8\n"
                  "  tls_cert_file: /etc/edgecri/s.crt\n  tls_key_file: /etc/edgecri/s.key\n",
                  NULL, &err));
    CHECK_STREQ(c.streaming_address, "::1");
    CHECK_EQ_U64(c.streaming_port, 10250);
    CHECK_EQ_U64(c.streaming_idle_timeout_ms, 30ULL * 60 * 1000);
    CHECK_EQ_U64(c.streaming_max_sessions, 8);
    CHECK_STREQ(c.streaming_tls_key_file, "/etc/edgecri/s.key");
    config_free(&c);
    err_clear(&err);
    EXPECT_ERROR("streaming:\n  address: localhost\n", 2, "streaming.address", "not an IP address");
    EXPECT_ERROR("streaming:\n  port: 70000\n", 2, "streaming.port", "out of range");
    EXPECT_ERROR("streaming:\n  max_sessions: 0\n", 2, "streaming.max_sessions", "out of range");
    EXPECT_ERROR("streaming:\n  tls_cert_file: /etc/s.crt\n", 2, "streaming.tls_cert_file", "go together");
    EXPECT_ERROR("streaming:\n  tls_key_file: relative.key\n", 2, "streaming.tls_key_file", "absolute");
}

static void test_overrides(void)
{
    struct config c;
    err_t err = ERR_INIT;
    struct config_overrides ov = {
        .socket_path = "/flag/edgecri.sock",
        .root_dir = "/flag/root",
        .state_dir = "/flag/state",
        .log_level = "warn",
    };
    CHECK_OK(load(&c, full_file, &ov, &err));
    CHECK_STREQ(c.socket_path, "/flag/edgecri.sock");
    CHECK_STREQ(c.root_dir, "/flag/root");
    CHECK_STREQ(c.state_dir, "/flag/state");
    CHECK_EQ_INT(c.log_level, LOG_LEVEL_WARN);
    /* Keys without a flag keep the file's values. */
    CHECK_EQ_INT(c.cgroup_driver, CGROUP_DRIVER_SYSTEMD);
    CHECK_EQ_U64(c.grpc_max_recv_message_size, 4ULL << 20);
    CHECK_EQ_U64(c.shutdown_timeout_ms, 90000);
    config_free(&c);

    /* Only some overrides set: the others come from the file. */
    struct config_overrides some = {.log_level = "error"};
    CHECK_OK(load(&c, full_file, &some, &err));
    CHECK_EQ_INT(c.log_level, LOG_LEVEL_ERROR);
    CHECK_STREQ(c.socket_path, "/run/x/edgecri.sock");
    config_free(&c);

    /* An empty override set changes nothing. */
    struct config_overrides none = {0};
    CHECK_OK(load(&c, "", &none, &err));
    check_defaults(&c);
    config_free(&c);

    /* Overrides also fix what only the combination gets wrong. */
    struct config_overrides st = {.state_dir = "/other"};
    CHECK_OK(load(&c, "root: /same\nstate: /same\n", &st, &err));
    CHECK_STREQ(c.state_dir, "/other");
    config_free(&c);
    err_clear(&err);

    /* Bad override values name the flag. */
    struct config_overrides bad = {.log_level = "loud"};
    expect_error_at(__LINE__, full_file, &bad, 0, "--log-level", "loud");
    struct config_overrides bad_root = {.root_dir = "relative/root"};
    expect_error_at(__LINE__, "", &bad_root, 0, "--root", "not an absolute path");
    struct config_overrides bad_socket = {.socket_path = "x.sock"};
    expect_error_at(__LINE__, "", &bad_socket, 0, "--socket", "not an absolute path");
    struct config_overrides bad_state = {.state_dir = "state"};
    expect_error_at(__LINE__, "", &bad_state, 0, "--state", "not an absolute path");
    /* A file error is reported before any override is looked at. */
    expect_error_at(__LINE__, "bogus: 1\n", &bad, 1, "bogus", "unknown key");

    char path[120];
    memset(path, 'b', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    struct config_overrides long_socket = {.socket_path = path};
    expect_error_at(__LINE__, "", &long_socket, 0, "--socket", "longer than a unix socket path");
}

static void test_unreloadable_changes(void)
{
    struct config a, b;
    err_t err = ERR_INIT;
    config_init_defaults(&a);

    CHECK_OK(load(&b, "", NULL, &err));
    CHECK(config_unreloadable_changes(&a, &b) == NULL);
    config_free(&b);

    CHECK_OK(load(&b, "log_level: debug\n", NULL, &err));
    char *s = config_unreloadable_changes(&a, &b);
    CHECK_MSG(s == NULL, "only log_level changed, got \"%s\"", s);
    free(s);
    config_free(&b);

    CHECK_OK(load(&b,
                  "log_level: error\nshutdown_timeout: 3s\n"
                  "grpc: {max_recv_message_size: 1MiB, max_send_message_size: 2MiB}\n",
                  NULL, &err));
    s = config_unreloadable_changes(&a, &b);
    CHECK_MSG(s == NULL, "only reloadable keys changed, got \"%s\"", s);
    free(s);
    config_free(&b);

    CHECK_OK(load(&b, "socket: /other.sock\nlog_level: debug\n", NULL, &err));
    s = config_unreloadable_changes(&a, &b);
    CHECK_STREQ(s, "socket");
    free(s);
    config_free(&b);

    CHECK_OK(load(&b, "cgroup_driver: systemd\n", NULL, &err));
    s = config_unreloadable_changes(&a, &b);
    CHECK_STREQ(s, "cgroup_driver");
    free(s);
    config_free(&b);

    CHECK_OK(load(&b, full_file, NULL, &err));
    s = config_unreloadable_changes(&a, &b);
    CHECK_STREQ(s, "socket, root, state, cgroup_driver");
    free(s);
    s = config_unreloadable_changes(&b, &a); /* symmetric */
    CHECK_STREQ(s, "socket, root, state, cgroup_driver");
    free(s);
    s = config_unreloadable_changes(&b, &b);
    CHECK(s == NULL);
    free(s);
    config_free(&b);
    config_free(&a);
    err_clear(&err);
}

static void test_apply_reloadable(void)
{
    struct config dst, src;
    err_t err = ERR_INIT;
    config_init_defaults(&dst);
    CHECK_OK(load(&src, full_file, NULL, &err));
    config_apply_reloadable(&dst, &src);
    /* Reloadable keys follow src. */
    CHECK_EQ_INT(dst.log_level, LOG_LEVEL_DEBUG);
    CHECK_EQ_U64(dst.grpc_max_recv_message_size, 4ULL << 20);
    CHECK_EQ_U64(dst.grpc_max_send_message_size, 1048577);
    CHECK_EQ_U64(dst.shutdown_timeout_ms, 90000);
    /* The others keep dst's values until a restart. */
    CHECK_STREQ(dst.socket_path, "/run/edgecri/edgecri.sock");
    CHECK_STREQ(dst.root_dir, "/var/lib/edgecri");
    CHECK_STREQ(dst.state_dir, "/run/edgecri");
    CHECK_EQ_INT(dst.cgroup_driver, CGROUP_DRIVER_CGROUPFS);
    CHECK(dst.socket_path != src.socket_path);
    /* After applying, only unreloadable differences remain. */
    char *s = config_unreloadable_changes(&dst, &src);
    CHECK_STREQ(s, "socket, root, state, cgroup_driver");
    free(s);
    config_free(&src);
    config_free(&dst);
    err_clear(&err);
}

static void check_json_str(json_t *obj, const char *key, const char *want)
{
    json_t *v = json_object_get(obj, key);
    CHECK_MSG(json_is_string(v), "JSON key \"%s\" missing or not a string", key);
    if (json_is_string(v))
        CHECK_MSG(strcmp(json_string_value(v), want) == 0, "JSON \"%s\" = \"%s\", want \"%s\"", key,
                  json_string_value(v), want);
}

static void test_to_json(void)
{
    struct config c;
    config_init_defaults(&c);
    char *s = config_to_json(&c);
    CHECK(s != NULL);
    CHECK_CONTAINS(s, "\"socket\"");
    json_error_t jerr;
    json_t *obj = s ? json_loads(s, 0, &jerr) : NULL;
    CHECK_MSG(json_is_object(obj), "config_to_json gave invalid JSON: %s", s ? s : "(null)");
    if (obj) {
        CHECK_EQ_INT(json_object_size(obj), 23);
        check_json_str(obj, "cni.conf_dir", "/etc/cni/net.d");
        check_json_str(obj, "cni.bin_dirs", "/opt/cni/bin:/usr/lib/cni");
        check_json_str(obj, "network.pod_cidr", "10.88.0.0/16");
        check_json_str(obj, "socket", "/run/edgecri/edgecri.sock");
        check_json_str(obj, "root", "/var/lib/edgecri");
        check_json_str(obj, "state", "/run/edgecri");
        check_json_str(obj, "log_level", "info");
        check_json_str(obj, "cgroup_driver", "cgroupfs");
        check_json_str(obj, "grpc.max_recv_message_size", "16MiB");
        check_json_str(obj, "grpc.max_send_message_size", "16MiB");
        check_json_str(obj, "shutdown_timeout", "10s");
        json_decref(obj);
    }
    free(s);
    config_free(&c);

    /* Values that need escaping and the non-round formats. */
    err_t err = ERR_INIT;
    CHECK_OK(load(&c,
                  "socket: '/run/a\"b\\c.sock'\ncgroup_driver: systemd\nlog_level: warn\n"
                  "grpc:\n  max_send_message_size: 1048577\nshutdown_timeout: 1.5s\n",
                  NULL, &err));
    s = config_to_json(&c);
    obj = s ? json_loads(s, 0, &jerr) : NULL;
    CHECK_MSG(json_is_object(obj), "config_to_json gave invalid JSON: %s", s ? s : "(null)");
    if (obj) {
        check_json_str(obj, "socket", "/run/a\"b\\c.sock");
        check_json_str(obj, "cgroup_driver", "systemd");
        check_json_str(obj, "log_level", "warn");
        check_json_str(obj, "grpc.max_send_message_size", "1048577");
        check_json_str(obj, "shutdown_timeout", "1500ms");
        json_decref(obj);
    }
    free(s);
    config_free(&c);
    err_clear(&err);
}

static void test_print_reference(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(f != NULL);
    if (!f)
        return;
    config_print_reference(f);
    fclose(f);
    static const char *const want[] = {
        "socket",
        "/run/edgecri/edgecri.sock",
        "root",
        "/var/lib/edgecri",
        "log_level",
        "info",
        "cgroup_driver",
        "grpc.max_recv_message_size",
        "16MiB",
        "grpc.max_send_message_size",
        "shutdown_timeout",
        "10s",
        "(restart to change)",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        CHECK_CONTAINS(buf, want[i]);
    int lines = 0;
    for (const char *p = buf; p && *p; p++)
        lines += *p == '\n';
    CHECK_EQ_INT(lines, 23);
    free(buf);
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "we");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

static void test_load_file(void)
{
    char dir[] = "/tmp/edgecri-unit-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof(path), "%s/config.yaml", dir);
    struct config c;
    err_t err = ERR_INIT;

    /* Missing file: defaults, unless it must exist. */
    CHECK_OK(config_load(&c, path, false, NULL, &err));
    check_defaults(&c);
    config_free(&c);
    CHECK_EQ_INT(config_load(&c, path, true, NULL, &err), -ENOENT);
    CHECK_EQ_INT(err.code, ERR_NOT_FOUND);
    CHECK_CONTAINS(err.msg, path);
    err_clear(&err);

    /* A file, with overrides on top. */
    write_file(path, "log_level: warn\nroot: /f/root\n", 30);
    struct config_overrides ov = {.root_dir = "/flag/root"};
    CHECK_OK(config_load(&c, path, true, &ov, &err));
    CHECK_EQ_INT(c.log_level, LOG_LEVEL_WARN);
    CHECK_STREQ(c.root_dir, "/flag/root");
    config_free(&c);

    /* Errors name the file's path and line. */
    write_file(path, "log_level: warn\nbogus: 1\n", 25);
    CHECK(config_load(&c, path, true, NULL, &err) < 0);
    char where[300];
    snprintf(where, sizeof(where), "%s:2:", path);
    CHECK_CONTAINS(err.msg, where);
    CHECK_CONTAINS(err.msg, "bogus");
    err_clear(&err);

    /* A NUL byte, and a file over 1 MiB, are refused. */
    write_file(path, "log_level: warn\n\0", 17);
    CHECK(config_load(&c, path, true, NULL, &err) < 0);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(err.msg, "NUL");
    err_clear(&err);
    size_t big = 1024 * 1024 + 1;
    char *comment = malloc(big);
    memset(comment, ' ', big);
    comment[0] = '#';
    comment[big - 1] = '\n';
    write_file(path, comment, big);
    free(comment);
    CHECK(config_load(&c, path, true, NULL, &err) < 0);
    CHECK_EQ_INT(err.code, ERR_INVALID_ARGUMENT);
    CHECK_CONTAINS(err.msg, "larger than");
    err_clear(&err);

    /* A directory is not a configuration file. */
    CHECK(config_load(&c, dir, true, NULL, &err) < 0);
    CHECK(err.msg != NULL);
    err_clear(&err);

    unlink(path);
    rmdir(dir);
}

int main(void)
{
    RUN(test_defaults);
    RUN(test_full_file);
    RUN(test_errors);
    RUN(test_image_keys);
    RUN(test_network_keys);
    RUN(test_streaming_keys);
    RUN(test_overrides);
    RUN(test_unreloadable_changes);
    RUN(test_apply_reloadable);
    RUN(test_to_json);
    RUN(test_print_reference);
    RUN(test_load_file);
    return unit_summary();
}
