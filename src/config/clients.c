/*
 * clients.c - the config's client keys (clients[]): value checks for the schema table,
 * resolving expiry dates, and `check`'s exposure warnings (a gateway
 * reachable from other machines without client keys; credentials embedded in a base_url,
 * which are never printed: config_url_redacted masks them). Pure; caller's thread.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "switchboard/clients.h"

/* ---- value checks ------------------------------------------------------------------------- */

const char *config_check_client_name(char *v)
{
    if (!clients_name_is_valid(v))
        return "expected a name of 1..64 letters, digits, '.', '_' and '-'";
    return NULL;
}

/* A rejected value may be a key pasted in the wrong place, and the walker keeps it (for a
 * "duplicate" message, say): replace it in place with as much of its own SHA-256 as fits. */
static void mask_in_place(char *v)
{
    uint8_t hash[CLIENTS_HASH_LEN];
    char hex[CLIENTS_HASH_HEX + 1];
    size_t n = strlen(v);
    clients_sha256(v, n, hash);
    clients_hash_hex(hash, hex);
    n = n < sizeof hex - 1 ? n : sizeof hex - 1;
    memcpy(v, hex, n);
    v[n] = '\0';
}

const char *config_check_key_sha256(char *v)
{
    uint8_t hash[CLIENTS_HASH_LEN];
    bool key_like = str_has_prefix(v, CLIENTS_KEY_PREFIX) || str_has_prefix(v, "sk-") ||
                    str_has_prefix(v, "Bearer ");
    bool ok = !key_like && clients_hash_parse(v, hash);
    if (!ok)
        mask_in_place(v);
    if (key_like)
        return "this looks like a key itself: never put a key in the config; put its SHA-256 "
               "here (`switchboard keys hash` reads the key on stdin and prints it)";
    if (!ok)
        return "expected the key's SHA-256 as 64 hex digits (`switchboard keys hash`)";
    for (char *p = v; *p; p++) {
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    }
    return NULL;
}

const char *config_check_client_tag(char *v)
{
    size_t n = strlen(v);
    if (n > CLIENTS_TAG_MAX)
        return "expected a tag of at most 128 characters";
    for (const char *p = v; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return "expected a tag without spaces or control characters";
    }
    return NULL;
}

const char *config_check_client_expires(char *v)
{
    int64_t ms;
    if (!clients_parse_time(v, &ms))
        return "expected a UTC date \"2027-01-01\" or time \"2027-01-01T12:00:00Z\"";
    return NULL;
}

void config_validate_clients(struct cfg_ctx *ctx)
{
    for (size_t i = 0; i < ctx->cfg->n_clients; i++) {
        struct config_client *c = &ctx->cfg->clients[i];
        if (!c->expires || !clients_parse_time(c->expires, &c->expires_ms))
            c->expires_ms = 0; /* a bad value was reported by config_check_client_expires */
    }
}

/* ---- base URLs ---------------------------------------------------------------------------- */

/* Where the authority starts and ends in url ("https://user:pw@host:1/x?q" -> "user..1"). */
static void url_parts(const char *url, const char **auth, const char **auth_end, const char **query)
{
    const char *p = strstr(url, "://");
    *auth = p ? p + 3 : url;
    *auth_end = *auth + strcspn(*auth, "/?#");
    *query = strchr(*auth_end, '?');
}

static bool query_has_secret(const char *q)
{
    static const char *const names[] = {"key",    "api_key",      "apikey", "api-key",
                                        "token",  "access_token", "secret", "password",
                                        "passwd", "sig",          "auth",   "code"};
    while (q && *q) {
        q++; /* past '?' or '&' */
        size_t n = strcspn(q, "=&#");
        for (size_t i = 0; i < SB_ARRAY_LEN(names); i++) {
            if (n == strlen(names[i]) && strncasecmp(q, names[i], n) == 0)
                return true;
        }
        q = strchr(q, '&');
    }
    return false;
}

bool config_url_has_credentials(const char *url)
{
    const char *auth, *end, *query;
    if (!url)
        return false;
    url_parts(url, &auth, &end, &query);
    return memchr(auth, '@', (size_t)(end - auth)) != NULL || query_has_secret(query);
}

void config_url_redacted(const char *url, struct buf *out)
{
    const char *auth, *end, *query;
    if (!url) {
        buf_puts(out, "-");
        return;
    }
    url_parts(url, &auth, &end, &query);
    const char *at = NULL;
    for (const char *p = auth; p < end; p++) {
        if (*p == '@')
            at = p;
    }
    buf_append(out, url, (size_t)(auth - url));
    if (at) {
        buf_puts(out, "***");
        auth = at;
    }
    buf_append(out, auth, (size_t)((query ? query : url + strlen(url)) - auth));
    if (query)
        buf_puts(out, "?***");
}

/* ---- exposure warnings -------------------------------------------------------------------- */

static bool listen_is_loopback(const char *listen)
{
    if (!listen)
        return true;
    return str_has_prefix(listen, "127.") || str_has_prefix(listen, "localhost:") ||
           str_has_prefix(listen, "[::1]:");
}

void config_warn_exposure(const struct config *cfg, struct config_diag *warns)
{
    if (!listen_is_loopback(cfg->gateway.listen) && cfg->n_clients == 0)
        config_diag_add(warns,
                        "gateway.listen \"%s\" is reachable from other machines and no "
                        "clients[] keys are configured: unless the ledger holds keys "
                        "(`switchboard keys list`), anyone who can reach it can call /v1/ "
                        "and spend every budget; add client keys or listen on 127.0.0.1",
                        cfg->gateway.listen);
    for (size_t i = 0; i < cfg->n_targets; i++) {
        const struct config_target *t = &cfg->targets[i];
        if (!config_url_has_credentials(t->base_url))
            continue;
        struct buf red;
        buf_init(&red);
        config_url_redacted(t->base_url, &red);
        config_diag_add(warns,
                        "providers[%zu].base_url (\"%s\") embeds credentials (user:password@ "
                        "or a key in the query); URLs end up in logs and process listings: "
                        "put the key in the variable api_key_env names",
                        i, buf_str(&red));
        buf_cleanup(&red);
    }
}
