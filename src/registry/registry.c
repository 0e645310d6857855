#include "registry/registry.h"

#include <errno.h>
#include <stdarg.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "registry/auth_challenge.h"
#include "registry/http.h"
#include "registry/manifest.h"
#include "registry/registries_config.h"
#include "util/cleanup.h"
#include "util/list.h"
#include "util/log.h"

#define MANIFEST_MAX (4u << 20)
#define TOKEN_MAX    (1u << 20)
#define BACKOFF_MS   250 /* first retry; quadruples each time */

struct registry_client {
    uv_loop_t *loop;
    struct http_client *http;
    struct registries_config *config;
    struct registry_limits limits;
};

/* One endpoint as a session sees it: where to go, with what TLS and
 * credentials, and the auth state learned from its challenges. */
struct endpoint {
    struct registry_endpoint ep;
    struct http_tls tls;
    char *username, *password, *identity_token, *registry_token;
    bool use_basic;
    char *token;
    uint64_t token_expires_ms; /* uv_now based */
};

struct registry_session {
    struct registry_client *client;
    char *name;
    struct endpoint *eps;
    size_t n_eps;
    size_t preferred; /* the endpoint that served the manifest */
    struct list_node fetches;
};

enum fetch_kind { FETCH_MANIFEST, FETCH_BLOB };

struct registry_fetch {
    struct registry_session *s;
    struct list_node link;
    enum fetch_kind kind;
    char *ref; /* tag or digest */
    size_t ep;
    int attempts;
    bool auth_retried;
    struct http_request *http;
    struct http_request *token_http;
    uv_timer_t timer;
    bool done; /* callbacks are over; waiting for the timer to close */

    /* what the aborted response said (blob requests stop at the headers of
     * anything that is not 200/206) */
    long bad_status;
    char *challenge;

    /* blob state */
    uint64_t offset;        /* bytes handed to the caller */
    uint64_t asked_offset;  /* the Range start of the current request */
    uint64_t progress_mark; /* offset at the last retry, to see progress */
    bool receiver_aborted;

    struct registry_blob_callbacks bcb;
    registry_manifest_cb mcb;
    void *data;

    char *errors; /* "endpoint: what went wrong; …" */
    enum err_code last_code;
};

static void fetch_start(struct registry_fetch *f);

/* --- credentials ---------------------------------------------------------- */

void registry_credentials_free(struct registry_credentials *c)
{
    if (!c)
        return;
    free(c->username);
    free(c->password);
    free(c->identity_token);
    free(c->registry_token);
    free(c->server_address);
    memset(c, 0, sizeof(*c));
}

/* "user:pass" in base64 (the `auth` fields of configs and of CRI). */
static int decode_basic(const char *b64, char **user, char **pass)
{
    size_t len = strlen(b64);
    if (len == 0 || len > 4096)
        return -EINVAL;
    _cleanup_free_ unsigned char *out = malloc(len + 1);
    if (!out)
        return -ENOMEM;
    int n = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)len);
    if (n < 0)
        return -EINVAL;
    /* EVP_DecodeBlock counts padding as zero bytes. */
    while (len > 0 && b64[len - 1] == '=' && n > 0) {
        n--;
        len--;
    }
    out[n] = '\0';
    if (memchr(out, '\0', (size_t)n))
        return -EINVAL;
    char *colon = strchr((char *)out, ':');
    if (!colon)
        return -EINVAL;
    *colon = '\0';
    *user = strdup((char *)out);
    *pass = strdup(colon + 1);
    if (!*user || !*pass) {
        free(*user);
        free(*pass);
        return -ENOMEM;
    }
    return 0;
}

static void endpoint_free(struct endpoint *e)
{
    free((char *)e->tls.ca_file);
    free((char *)e->tls.cert_file);
    free((char *)e->tls.key_file);
    free(e->username);
    free(e->password);
    free(e->identity_token);
    free(e->registry_token);
    free(e->token);
}

/* "https://index.docker.io/v1/" → "index.docker.io": the host[:port] a
 * credential names, compared exactly (a substring match would hand a
 * password to any host whose name contains another's). */
static void server_host(const char *addr, char *out, size_t n)
{
    const char *p = strstr(addr, "://");
    p = p ? p + 3 : addr;
    size_t len = strcspn(p, "/?#");
    if (len >= n)
        len = n - 1;
    memcpy(out, p, len);
    out[len] = '\0';
}

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

/* Credentials for an endpoint: registries.yaml's entry for its host wins;
 * the CRI request's apply to the image's own registry, or to the endpoint
 * its server_address names. */
static void endpoint_credentials(struct endpoint *e, const struct registries_config *cfg, const char *registry,
                                 const struct registry_credentials *creds)
{
    const struct registry_host_config *hc = cfg ? registries_host_config(cfg, e->ep.host) : NULL;
    if (hc && hc->has_tls) {
        /* Copies: a SIGHUP may replace the configuration mid-pull. */
        e->tls.ca_file = dup_or_null(hc->tls.ca_file);
        e->tls.cert_file = dup_or_null(hc->tls.cert_file);
        e->tls.key_file = dup_or_null(hc->tls.key_file);
        e->tls.insecure_skip_verify = hc->tls.insecure_skip_verify;
    }
    if (hc && hc->has_auth) {
        e->username = dup_or_null(hc->auth.username);
        e->password = dup_or_null(hc->auth.password);
        e->identity_token = dup_or_null(hc->auth.identity_token);
        if (!e->username && hc->auth.auth)
            decode_basic(hc->auth.auth, &e->username, &e->password);
        return;
    }
    if (!creds)
        return;
    bool applies = !e->ep.is_mirror;
    if (creds->server_address && *creds->server_address) {
        char host[512];
        server_host(creds->server_address, host, sizeof(host));
        applies = strcasecmp(host, e->ep.host) == 0 || (!e->ep.is_mirror && strcasecmp(host, registry) == 0) ||
                  (!e->ep.is_mirror && strcmp(registry, "docker.io") == 0 &&
                   (strcasecmp(host, "index.docker.io") == 0 || strcasecmp(host, "registry-1.docker.io") == 0));
    }
    if (!applies)
        return;
    e->username = dup_or_null(creds->username);
    e->password = dup_or_null(creds->password);
    e->identity_token = dup_or_null(creds->identity_token);
    e->registry_token = dup_or_null(creds->registry_token);
}

/* --- client and session --------------------------------------------------- */

struct registry_client *registry_client_new(uv_loop_t *loop, err_t *err)
{
    struct registry_client *c = calloc(1, sizeof(*c));
    if (!c) {
        err_sys(err, ENOMEM, "creating the registry client");
        return NULL;
    }
    c->loop = loop;
    c->http = http_client_new(loop, err);
    if (!c->http) {
        free(c);
        return NULL;
    }
    c->limits = (struct registry_limits){
        .connect_timeout_ms = 30000,
        .low_speed_bytes = 1024,
        .low_speed_secs = 60,
        .max_attempts = 5,
    };
    return c;
}

void registry_client_free(struct registry_client *c)
{
    if (!c)
        return;
    http_client_free(c->http);
    if (c->config) {
        registries_config_free(c->config);
        free(c->config);
    }
    free(c);
}

void registry_client_set_config(struct registry_client *c, struct registries_config *cfg)
{
    if (c->config) {
        registries_config_free(c->config);
        free(c->config);
    }
    c->config = cfg;
}

void registry_client_set_limits(struct registry_client *c, const struct registry_limits *limits)
{
    c->limits = *limits;
}

struct registry_session *registry_session_new(struct registry_client *c, const char *registry, const char *repository,
                                              const struct registry_credentials *creds, err_t *err)
{
    struct registry_session *s = calloc(1, sizeof(*s));
    if (!s) {
        err_sys(err, ENOMEM, "starting a registry session");
        return NULL;
    }
    s->client = c;
    list_init(&s->fetches);
    if (asprintf(&s->name, "%s/%s", registry, repository) < 0) {
        free(s);
        err_sys(err, ENOMEM, "starting a registry session");
        return NULL;
    }
    struct registries_config empty = {0};
    struct registry_endpoint *eps = NULL;
    size_t n = 0;
    if (registries_endpoints(c->config ? c->config : &empty, registry, repository, &eps, &n, err) < 0) {
        free(s->name);
        free(s);
        return NULL;
    }
    s->eps = calloc(n ? n : 1, sizeof(*s->eps));
    if (!s->eps) {
        registry_endpoints_free(eps, n);
        free(s->name);
        free(s);
        err_sys(err, ENOMEM, "starting a registry session");
        return NULL;
    }
    s->n_eps = n;
    for (size_t i = 0; i < n; i++) {
        s->eps[i].ep = eps[i]; /* moves the strings */
        endpoint_credentials(&s->eps[i], c->config, registry, creds);
    }
    free(eps);
    return s;
}

static void fetch_free(struct registry_fetch *f);

void registry_session_free(struct registry_session *s)
{
    if (!s)
        return;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &s->fetches) registry_fetch_cancel(list_entry(pos, struct registry_fetch, link));
    for (size_t i = 0; i < s->n_eps; i++) {
        endpoint_free(&s->eps[i]);
        free(s->eps[i].ep.url);
        free(s->eps[i].ep.host);
        free(s->eps[i].ep.repository);
    }
    free(s->eps);
    free(s->name);
    free(s);
}

const char *registry_session_name(const struct registry_session *s)
{
    return s->name;
}

size_t registry_session_endpoints(const struct registry_session *s)
{
    return s->n_eps;
}

size_t registry_session_endpoint_index(const struct registry_session *s, const char *endpoint)
{
    for (size_t i = 0; endpoint && i < s->n_eps; i++)
        if (strcmp(s->eps[i].ep.url, endpoint) == 0)
            return i;
    return SIZE_MAX;
}

/* --- fetch lifecycle ------------------------------------------------------- */

static void on_timer_closed(uv_handle_t *h)
{
    struct registry_fetch *f = h->data;
    free(f->ref);
    free(f->challenge);
    free(f->errors);
    free(f);
}

/* Ends a fetch: no more callbacks, everything released. */
static void fetch_free(struct registry_fetch *f)
{
    if (f->done)
        return;
    f->done = true;
    http_request_cancel(f->http);
    http_request_cancel(f->token_http);
    f->http = f->token_http = NULL;
    list_del(&f->link);
    uv_timer_stop(&f->timer);
    uv_close((uv_handle_t *)&f->timer, on_timer_closed);
}

void registry_fetch_cancel(struct registry_fetch *f)
{
    if (f)
        fetch_free(f);
}

static struct registry_fetch *fetch_new(struct registry_session *s, enum fetch_kind kind, const char *ref, void *data,
                                        err_t *err)
{
    struct registry_fetch *f = calloc(1, sizeof(*f));
    if (!f || !(f->ref = strdup(ref))) {
        free(f);
        err_sys(err, ENOMEM, "fetching %s from %s", ref, s->name);
        return NULL;
    }
    f->s = s;
    f->kind = kind;
    f->data = data;
    f->last_code = ERR_UNAVAILABLE;
    uv_timer_init(s->client->loop, &f->timer);
    f->timer.data = f;
    list_add_tail(&s->fetches, &f->link);
    return f;
}

static void finish(struct registry_fetch *f, const char *endpoint, const err_t *err)
{
    struct registry_session *s = f->s;
    if (!err && f->kind == FETCH_MANIFEST) {
        size_t i = registry_session_endpoint_index(s, endpoint);
        if (i != SIZE_MAX)
            s->preferred = i;
    }
    /* Detach first: the callback may free the session. */
    struct registry_blob_callbacks bcb = f->bcb;
    void *data = f->data;
    fetch_free(f);
    if (bcb.on_done)
        bcb.on_done(data, endpoint, err);
}

/* Records an endpoint's failure and moves on to the next one, or fails the
 * fetch with every endpoint's reason when none is left. */
static void endpoint_failed(struct registry_fetch *f, enum err_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void endpoint_failed(struct registry_fetch *f, enum err_code code, const char *fmt, ...)
{
    struct registry_session *s = f->s;
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    char *joined = NULL;
    if (asprintf(&joined, "%s%s%s: %s", f->errors ? f->errors : "", f->errors ? "; " : "", s->eps[f->ep].ep.url,
                 what) >= 0) {
        free(f->errors);
        f->errors = joined;
    }
    f->last_code = code;
    log_debug("%s %s: %s: %s", s->name, f->ref, s->eps[f->ep].ep.url, what);
    f->ep++;
    f->attempts = 0;
    f->auth_retried = false;
    if (f->ep < s->n_eps) {
        fetch_start(f);
        return;
    }
    err_t err = ERR_INIT;
    /* The last endpoint is the registry itself: its answer is the one that
     * counts for the status code; the message keeps all of them. */
    err_set(&err, code, code == ERR_NOT_FOUND ? ENOENT : EIO, "%s %s %s: %s",
            f->kind == FETCH_MANIFEST ? "resolving" : "fetching", s->name, f->ref,
            f->errors ? f->errors : "no endpoint");
    if (f->kind == FETCH_MANIFEST) {
        registry_manifest_cb cb = f->mcb;
        void *data = f->data;
        fetch_free(f);
        cb(data, NULL, NULL, 0, NULL, &err);
    } else {
        finish(f, NULL, &err);
    }
    err_clear(&err);
}

static void on_backoff(uv_timer_t *t)
{
    fetch_start(t->data);
}

static bool retry_later(struct registry_fetch *f)
{
    /* A blob that made progress since the last try earns fresh attempts:
     * a thin link that drops every few MiB still gets there. */
    if (f->kind == FETCH_BLOB && f->offset > f->progress_mark) {
        f->progress_mark = f->offset;
        f->attempts = 0;
    }
    if (++f->attempts >= f->s->client->limits.max_attempts)
        return false;
    uint64_t delay = BACKOFF_MS;
    for (int i = 1; i < f->attempts && delay < 30000; i++)
        delay *= 4;
    uv_timer_start(&f->timer, on_backoff, delay, 0);
    return true;
}

/* --- auth ------------------------------------------------------------------- */

/* application/x-www-form-urlencoded value: unreserved bytes stay. */
static char *form_escape(const char *v)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(strlen(v) * 3 + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-._~", *p)) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

static void on_token(void *data, const struct http_response *res, const uint8_t *body, size_t len, const err_t *err)
{
    struct registry_fetch *f = data;
    struct endpoint *e = &f->s->eps[f->ep];
    f->token_http = NULL;
    if (err) {
        if (!retry_later(f))
            endpoint_failed(f, ERR_UNAVAILABLE, "token service: %s", err->msg);
        return;
    }
    if (res->status == 401 || res->status == 403) {
        endpoint_failed(f, ERR_UNAUTHENTICATED, "authentication failed: the token service answered %ld%s", res->status,
                        e->username || e->identity_token ? " (check the credentials)" : " (no credentials configured)");
        return;
    }
    if (res->status != 200) {
        if (res->status >= 500 && retry_later(f))
            return;
        endpoint_failed(f, ERR_UNAVAILABLE, "token service answered HTTP %ld", res->status);
        return;
    }
    char *token = NULL;
    int64_t expires = 60;
    err_t perr = ERR_INIT;
    if (auth_token_response_parse(body, len, &token, &expires, &perr) < 0) {
        endpoint_failed(f, ERR_UNAVAILABLE, "token service: %s", perr.msg ? perr.msg : "bad answer");
        err_clear(&perr);
        return;
    }
    free(e->token);
    e->token = token;
    /* Renew a little early so a token never expires mid-request. */
    int64_t ms = expires * 1000 - 10000;
    e->token_expires_ms = uv_now(f->s->client->loop) + (uint64_t)(ms > 1000 ? ms : 1000);
    fetch_start(f);
}

static void authenticate(struct registry_fetch *f)
{
    struct registry_session *s = f->s;
    struct endpoint *e = &s->eps[f->ep];
    struct auth_challenge ch = {0};
    err_t err = ERR_INIT;
    if (!f->challenge || auth_challenge_parse(f->challenge, &ch, &err) < 0) {
        endpoint_failed(f, ERR_UNAUTHENTICATED, "authentication required, but the challenge is unusable%s%s",
                        err.msg ? ": " : "", err.msg ? err.msg : "");
        err_clear(&err);
        auth_challenge_free(&ch);
        return;
    }
    if (ch.scheme == AUTH_SCHEME_BASIC) {
        auth_challenge_free(&ch);
        if (!e->username) {
            endpoint_failed(f, ERR_UNAUTHENTICATED,
                            "the registry requires Basic authentication and no credentials "
                            "are configured for %s",
                            e->ep.host);
            return;
        }
        e->use_basic = true;
        fetch_start(f);
        return;
    }
    if (ch.scheme != AUTH_SCHEME_BEARER) {
        auth_challenge_free(&ch);
        endpoint_failed(f, ERR_UNAUTHENTICATED, "unsupported authentication scheme");
        return;
    }
    if (e->registry_token) {
        auth_challenge_free(&ch);
        free(e->token);
        e->token = strdup(e->registry_token);
        e->token_expires_ms = UINT64_MAX;
        fetch_start(f);
        return;
    }
    char scope[600];
    snprintf(scope, sizeof(scope), "repository:%s:pull", e->ep.repository);
    const char *scopes[] = {scope};
    _cleanup_free_ char *url = NULL;
    if (auth_token_url(&ch, scopes, 1, &url, &err) < 0) {
        endpoint_failed(f, ERR_UNAUTHENTICATED, "%s", err.msg ? err.msg : "bad token realm");
        err_clear(&err);
        auth_challenge_free(&ch);
        return;
    }
    struct http_request_opts opts = {
        .url = url,
        .tls = &e->tls,
        .connect_timeout_ms = s->client->limits.connect_timeout_ms,
        .total_timeout_ms = 60000,
        .max_buffered_body = TOKEN_MAX,
    };
    _cleanup_free_ char *form = NULL;
    const char *form_headers[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    if (e->identity_token) {
        /* OAuth2 refresh-token grant, as Docker's identity tokens work. The
         * realm goes without our query string: the form carries it all. */
        char *q = strchr(url, '?');
        if (q)
            *q = '\0';
        _cleanup_free_ char *svc = form_escape(ch.service ? ch.service : "");
        _cleanup_free_ char *sc = form_escape(scope);
        _cleanup_free_ char *tok = form_escape(e->identity_token);
        if (!svc || !sc || !tok ||
            asprintf(&form, "grant_type=refresh_token&client_id=edgecri&service=%s&scope=%s&refresh_token=%s", svc, sc,
                     tok) < 0)
            form = NULL;
        opts.method = "POST";
        opts.body = form;
        opts.body_len = form ? strlen(form) : 0;
        opts.headers = form_headers;
    } else if (e->username) {
        opts.basic_user = e->username;
        opts.basic_password = e->password;
    }
    auth_challenge_free(&ch);
    static const struct http_callbacks cbs = {.on_done = on_token};
    f->token_http = http_request_start(s->client->http, &opts, &cbs, f, &err);
    if (!f->token_http) {
        endpoint_failed(f, ERR_UNAVAILABLE, "%s", err.msg ? err.msg : "token request");
        err_clear(&err);
    }
}

/* --- requests ---------------------------------------------------------------- */

static bool retryable_status(long st)
{
    return st == 408 || st == 429 || st >= 500;
}

/* Everything but a good answer: decide between auth, retry and next. */
static void handle_bad_response(struct registry_fetch *f, long status)
{
    if (status == 401) {
        if (!f->auth_retried) {
            f->auth_retried = true;
            authenticate(f);
            return;
        }
        endpoint_failed(f, ERR_UNAUTHENTICATED, "authentication failed (HTTP 401)%s",
                        f->s->eps[f->ep].username ? ": check the credentials" : "");
        return;
    }
    if (status == 403) {
        endpoint_failed(f, ERR_PERMISSION_DENIED, "access denied (HTTP 403)");
        return;
    }
    if (status == 404) {
        endpoint_failed(f, ERR_NOT_FOUND, "not found (HTTP 404)");
        return;
    }
    if (retryable_status(status)) {
        if (!retry_later(f))
            endpoint_failed(f, ERR_UNAVAILABLE, "HTTP %ld after %d attempts", status, f->attempts);
        return;
    }
    endpoint_failed(f, ERR_FAILED_PRECONDITION, "unexpected HTTP %ld", status);
}

static bool retryable_errno(int e)
{
    return e == ECONNREFUSED || e == ECONNRESET || e == ETIMEDOUT || e == EHOSTUNREACH || e == EPROTO || e == EIO;
}

static void handle_transport_error(struct registry_fetch *f, const err_t *err)
{
    /* An endpoint that refuses or cannot be reached at all is down: with
     * another endpoint left, move on at once (a dead mirror must not cost
     * every pull the whole backoff). Errors mid-transfer are retried. */
    bool unreachable = err->errnum == ECONNREFUSED || err->errnum == EHOSTUNREACH || err->errnum == EPROTO;
    bool more = f->ep + 1 < f->s->n_eps;
    if (unreachable && more && !(f->kind == FETCH_BLOB && f->offset > f->progress_mark)) {
        endpoint_failed(f, err->code, "%s", err->msg ? err->msg : "unreachable");
        return;
    }
    if (retryable_errno(err->errnum) && retry_later(f))
        return;
    endpoint_failed(f, err->code, "%s", err->msg ? err->msg : "transfer failed");
}

static void on_manifest_done(void *data, const struct http_response *res, const uint8_t *body, size_t len,
                             const err_t *err)
{
    struct registry_fetch *f = data;
    f->http = NULL;
    if (err) {
        handle_transport_error(f, err);
        return;
    }
    if (res->status != 200) {
        free(f->challenge);
        f->challenge = res->www_authenticate ? strdup(res->www_authenticate) : NULL;
        handle_bad_response(f, res->status);
        return;
    }
    registry_manifest_cb cb = f->mcb;
    void *cb_data = f->data;
    _cleanup_free_ char *endpoint = strdup(f->s->eps[f->ep].ep.url);
    f->s->preferred = f->ep;
    fetch_free(f);
    cb(cb_data, res->content_type, body, len, endpoint, NULL);
}

static int on_blob_headers(void *data, const struct http_response *res)
{
    struct registry_fetch *f = data;
    if (res->status == 200 || res->status == 206) {
        if (f->asked_offset > 0 && res->status == 200) {
            /* Range ignored: the whole blob comes again. */
            f->offset = 0;
            if (f->bcb.on_restart && f->bcb.on_restart(f->data) < 0) {
                f->receiver_aborted = true;
                return -1;
            }
        } else if (res->status == 206) {
            unsigned long long start = 0;
            if (!res->content_range || sscanf(res->content_range, "bytes %llu-", &start) != 1 ||
                start != f->asked_offset) {
                f->bad_status = -206; /* a range we did not ask for */
                return -1;
            }
        }
        return 0;
    }
    f->bad_status = res->status;
    free(f->challenge);
    f->challenge = res->www_authenticate ? strdup(res->www_authenticate) : NULL;
    return -1;
}

static int on_blob_data(void *data, const uint8_t *buf, size_t len)
{
    struct registry_fetch *f = data;
    if (f->bcb.on_data(f->data, buf, len) < 0) {
        f->receiver_aborted = true;
        return -1;
    }
    f->offset += len;
    return 0;
}

static void on_blob_done(void *data, const struct http_response *res, const uint8_t *body, size_t len, const err_t *err)
{
    (void)body;
    (void)len;
    struct registry_fetch *f = data;
    f->http = NULL;
    if (f->receiver_aborted) {
        err_t e = ERR_INIT;
        err_set(&e, ERR_ABORTED, ECANCELED, "fetching %s from %s: aborted by the receiver", f->ref, f->s->name);
        finish(f, f->s->eps[f->ep].ep.url, &e);
        err_clear(&e);
        return;
    }
    long bad = f->bad_status;
    f->bad_status = 0;
    if (bad == -206) {
        /* Inconsistent range answer: start over from zero. */
        f->offset = 0;
        if (f->bcb.on_restart && f->bcb.on_restart(f->data) < 0) {
            err_t e = ERR_INIT;
            err_set(&e, ERR_ABORTED, ECANCELED, "fetching %s: aborted by the receiver", f->ref);
            finish(f, NULL, &e);
            err_clear(&e);
            return;
        }
        if (!retry_later(f))
            endpoint_failed(f, ERR_UNAVAILABLE, "inconsistent range answers");
        return;
    }
    if (bad == 416) {
        /* Our offset is past what it has: start again from zero. */
        f->offset = 0;
        if (f->bcb.on_restart)
            f->bcb.on_restart(f->data);
        if (!retry_later(f))
            endpoint_failed(f, ERR_UNAVAILABLE, "range not satisfiable");
        return;
    }
    if (bad) {
        handle_bad_response(f, bad);
        return;
    }
    if (err) {
        handle_transport_error(f, err);
        return;
    }
    if (res->status != 200 && res->status != 206) {
        handle_bad_response(f, res->status);
        return;
    }
    _cleanup_free_ char *endpoint = strdup(f->s->eps[f->ep].ep.url);
    finish(f, endpoint, NULL);
}

static void fetch_start(struct registry_fetch *f)
{
    struct registry_session *s = f->s;
    struct endpoint *e = &s->eps[f->ep];
    if (e->token && uv_now(s->client->loop) >= e->token_expires_ms) {
        free(e->token);
        e->token = NULL;
    }
    _cleanup_free_ char *url = NULL;
    _cleanup_free_ char *auth = NULL;
    if (asprintf(&url, "%s/v2/%s/%s/%s", e->ep.url, e->ep.repository, f->kind == FETCH_MANIFEST ? "manifests" : "blobs",
                 f->ref) < 0 ||
        (e->token && asprintf(&auth, "Authorization: Bearer %s", e->token) < 0)) {
        endpoint_failed(f, ERR_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    char accept[512];
    snprintf(accept, sizeof(accept), "Accept: %s", manifest_accept_header());
    const char *headers[3] = {NULL, NULL, NULL};
    size_t nh = 0;
    if (f->kind == FETCH_MANIFEST)
        headers[nh++] = accept;
    if (auth)
        headers[nh++] = auth;
    struct http_request_opts opts = {
        .url = url,
        .headers = headers,
        .tls = &e->tls,
        .connect_timeout_ms = s->client->limits.connect_timeout_ms,
        .low_speed_bytes = s->client->limits.low_speed_bytes,
        .low_speed_secs = s->client->limits.low_speed_secs,
    };
    if (e->use_basic && !e->token) {
        opts.basic_user = e->username;
        opts.basic_password = e->password;
    }
    struct http_callbacks cbs = {0};
    if (f->kind == FETCH_MANIFEST) {
        opts.total_timeout_ms = 120000;
        opts.max_buffered_body = MANIFEST_MAX;
        cbs.on_done = on_manifest_done;
    } else {
        f->asked_offset = f->offset;
        opts.range_start = f->offset;
        cbs.on_headers = on_blob_headers;
        cbs.on_data = on_blob_data;
        cbs.on_done = on_blob_done;
    }
    err_t err = ERR_INIT;
    f->http = http_request_start(s->client->http, &opts, &cbs, f, &err);
    if (!f->http) {
        endpoint_failed(f, err.code, "%s", err.msg ? err.msg : "request failed");
        err_clear(&err);
    }
}

struct registry_fetch *registry_get_manifest(struct registry_session *s, const char *tag_or_digest,
                                             registry_manifest_cb cb, void *data, err_t *err)
{
    if (s->n_eps == 0) {
        err_set(err, ERR_FAILED_PRECONDITION, EINVAL, "%s: no endpoint to pull from", s->name);
        return NULL;
    }
    struct registry_fetch *f = fetch_new(s, FETCH_MANIFEST, tag_or_digest, data, err);
    if (!f)
        return NULL;
    f->mcb = cb;
    fetch_start(f);
    return f;
}

struct registry_fetch *registry_get_blob(struct registry_session *s, const char *digest, uint64_t offset,
                                         size_t first_endpoint, const struct registry_blob_callbacks *cb, void *data,
                                         err_t *err)
{
    if (first_endpoint >= s->n_eps) {
        err_set(err, ERR_UNAVAILABLE, EIO, "%s: no endpoint left to fetch %s from", s->name, digest);
        return NULL;
    }
    struct registry_fetch *f = fetch_new(s, FETCH_BLOB, digest, data, err);
    if (!f)
        return NULL;
    f->bcb = *cb;
    f->offset = f->progress_mark = offset;
    /* Start where the manifest came from: most likely to have the blob. */
    f->ep = first_endpoint > s->preferred ? first_endpoint : s->preferred;
    fetch_start(f);
    return f;
}
