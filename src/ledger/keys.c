/*
 * keys.c - the ledger's client_keys table (ledger.h "client keys"): add, revoke, load, a
 * fingerprint for polling, and the spend per key rebuilt at start. Each function opens its
 * own connection and closes it before returning (so `switchboard keys` may run while a
 * `serve` process writes); queries are constant SQL with bound parameters. Only a key's
 * SHA-256 is ever stored or compared here. Any thread; no shared state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "switchboard/ledger.h"

#define BUSY_MS 5000

static const char sql_insert[] =
    "INSERT INTO client_keys (name, key_sha256, routes, tag, self_tag, daily_usd, monthly_usd,"
    " rpm, tpm, expires_ms, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
static const char sql_select[] =
    "SELECT name, key_sha256, routes, tag, self_tag, daily_usd, monthly_usd, rpm, tpm,"
    " expires_ms, created_ms, revoked_ms FROM client_keys ORDER BY name";
static const char sql_spend[] =
    "SELECT client,"
    " SUM(CASE WHEN ts_ms >= ?1 THEN IFNULL(cost_usd, IFNULL(est_cost_usd, 0))"
    " + IFNULL(retry_cost_usd, 0) + IFNULL(hedge_cost_usd, 0) ELSE 0 END),"
    " SUM(IFNULL(cost_usd, IFNULL(est_cost_usd, 0)) + IFNULL(retry_cost_usd, 0)"
    " + IFNULL(hedge_cost_usd, 0))"
    " FROM calls WHERE ts_ms >= ?2 AND client IS NOT NULL GROUP BY client";

static bool is_memory(const char *path)
{
    return !path || !*path || str_eq(path, ":memory:");
}

static enum sb_status open_db(const char *path, bool write, sqlite3 **db, char *msg, size_t msglen)
{
    *db = NULL;
    if (!write && access(path, F_OK) != 0) {
        snprintf(msg, msglen, "no ledger at %s", path);
        return SB_ERR_NOT_FOUND;
    }
    int flags = (write ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY) | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path, db, flags, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(*db, BUSY_MS);
    if (rc != SQLITE_OK) {
        snprintf(msg, msglen, "cannot open ledger %s: %s", path,
                 *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
        sqlite3_close(*db);
        *db = NULL;
        return SB_ERR_IO;
    }
    return SB_OK;
}

/* Opens for writing, creating the file and applying the migrations first. */
static enum sb_status open_write(const char *path, sqlite3 **db, char *msg, size_t msglen)
{
    *db = NULL;
    if (is_memory(path)) {
        snprintf(msg, msglen,
                 "the ledger is \":memory:\": keys need a ledger file (ledger.path), or use "
                 "clients[] in the config");
        return SB_ERR_UNSUPPORTED;
    }
    struct ledger *l = ledger_open(path, 250, msg, msglen);
    if (!l)
        return SB_ERR_IO;
    ledger_close(l);
    return open_db(path, true, db, msg, msglen);
}

/* A table or column missing: a ledger from before client keys. */
static bool is_old_schema(sqlite3 *db)
{
    const char *why = sqlite3_errmsg(db);
    return strstr(why, "no such table") || strstr(why, "no such column");
}

static void join_routes(const struct clients_key *k, struct buf *out)
{
    for (size_t i = 0; i < k->n_routes; i++)
        buf_printf(out, "%s%s", i ? "," : "", k->routes[i]);
}

static bool taken(sqlite3 *db, const char *sql, const char *value)
{
    sqlite3_stmt *st = NULL;
    bool found = false;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, value, -1, SQLITE_STATIC);
        found = sqlite3_step(st) == SQLITE_ROW;
    }
    sqlite3_finalize(st);
    return found;
}

static void bind_key(sqlite3_stmt *st, const struct clients_key *k, const char *hex,
                     const struct buf *routes, int64_t now)
{
    sqlite3_bind_text(st, 1, k->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, hex, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, buf_str(routes), -1, SQLITE_STATIC);
    if (k->tag && *k->tag)
        sqlite3_bind_text(st, 4, k->tag, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 4);
    sqlite3_bind_int(st, 5, k->self_tag);
    sqlite3_bind_double(st, 6, k->daily_usd);
    sqlite3_bind_double(st, 7, k->monthly_usd);
    sqlite3_bind_int64(st, 8, k->rpm);
    sqlite3_bind_int64(st, 9, k->tpm);
    sqlite3_bind_int64(st, 10, k->expires_ms);
    sqlite3_bind_int64(st, 11, now);
}

enum sb_status ledger_keys_add(const char *path, const struct clients_key *k, int64_t now_wall_ms,
                               char *msg, size_t msglen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char hex[CLIENTS_HASH_HEX + 1];
    struct buf routes;
    buf_init(&routes);
    join_routes(k, &routes);
    clients_hash_hex(k->sha256, hex);
    enum sb_status status = open_write(path, &db, msg, msglen);
    if (status != SB_OK)
        goto out;
    status = SB_ERR_STATE;
    if (taken(db, "SELECT 1 FROM client_keys WHERE name = ?1", k->name)) {
        snprintf(msg, msglen, "a key named '%s' exists already (revoked keys keep their name)",
                 k->name);
        goto out;
    }
    if (taken(db, "SELECT 1 FROM client_keys WHERE key_sha256 = ?1", hex)) {
        snprintf(msg, msglen, "that key is registered already under another name");
        goto out;
    }
    status = SB_ERR_IO;
    if (sqlite3_prepare_v2(db, sql_insert, -1, &st, NULL) != SQLITE_OK)
        goto fail;
    bind_key(st, k, hex, &routes, now_wall_ms);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto fail;
    status = SB_OK;
    goto out;
fail:
    snprintf(msg, msglen, "cannot add the key to %s: %s", path, sqlite3_errmsg(db));
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    buf_cleanup(&routes);
    return status;
}

enum sb_status ledger_keys_revoke(const char *path, const char *name, int64_t now_wall_ms,
                                  char *msg, size_t msglen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    enum sb_status status = open_write(path, &db, msg, msglen);
    if (status != SB_OK)
        goto out;
    status = SB_ERR_IO;
    if (sqlite3_prepare_v2(db, "SELECT revoked_ms FROM client_keys WHERE name = ?1", -1, &st,
                           NULL) != SQLITE_OK)
        goto fail;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        status = rc == SQLITE_DONE ? SB_ERR_NOT_FOUND : SB_ERR_IO;
        if (rc == SQLITE_DONE)
            snprintf(msg, msglen, "no key named '%.64s' in %s", name, path);
        else
            snprintf(msg, msglen, "cannot read %s: %s", path, sqlite3_errmsg(db));
        goto out;
    }
    if (sqlite3_column_int64(st, 0) > 0) {
        snprintf(msg, msglen, "key '%.64s' is revoked already", name);
        status = SB_ERR_STATE;
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(db, "UPDATE client_keys SET revoked_ms = ?1 WHERE name = ?2", -1, &st,
                           NULL) != SQLITE_OK)
        goto fail;
    sqlite3_bind_int64(st, 1, now_wall_ms > 0 ? now_wall_ms : 1);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto fail;
    status = SB_OK;
    goto out;
fail:
    snprintf(msg, msglen, "cannot revoke the key in %s: %s", path, sqlite3_errmsg(db));
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return status;
}

static void split_routes(struct clients_key *k, const char *list)
{
    while (list && *list) {
        size_t n = strcspn(list, ",");
        if (n > 0) {
            char *r = xstrndup(list, n);
            clients_key_add_route(k, r);
            free(r);
        }
        list += n + (list[n] == ',');
    }
}

static void row_key(sqlite3_stmt *st, struct clients_key *k)
{
    memset(k, 0, sizeof *k);
    str_copy(k->name, sizeof k->name, (const char *)sqlite3_column_text(st, 0));
    if (!clients_hash_parse((const char *)sqlite3_column_text(st, 1), k->sha256))
        memset(k->sha256, 0, sizeof k->sha256); /* matches no key's hash in practice */
    split_routes(k, (const char *)sqlite3_column_text(st, 2));
    k->tag = xstrdup((const char *)sqlite3_column_text(st, 3));
    k->self_tag = sqlite3_column_int(st, 4) != 0;
    k->daily_usd = sqlite3_column_double(st, 5);
    k->monthly_usd = sqlite3_column_double(st, 6);
    k->rpm = (long)sqlite3_column_int64(st, 7);
    k->tpm = (long)sqlite3_column_int64(st, 8);
    k->expires_ms = sqlite3_column_int64(st, 9);
    k->created_ms = sqlite3_column_int64(st, 10);
    k->revoked_ms = sqlite3_column_int64(st, 11);
}

enum sb_status ledger_keys_load(const char *path, struct clients_key **out, size_t *n, char *msg,
                                size_t msglen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    if (is_memory(path))
        return SB_OK;
    enum sb_status status = open_db(path, false, &db, msg, msglen);
    if (status != SB_OK) {
        status = status == SB_ERR_NOT_FOUND ? SB_OK : status;
        goto out;
    }
    if (sqlite3_prepare_v2(db, sql_select, -1, &st, NULL) != SQLITE_OK) {
        status = is_old_schema(db) ? SB_OK : SB_ERR_IO;
        goto fail;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *out = xgrow(*out, &cap, *n + 1, sizeof **out);
        row_key(st, &(*out)[(*n)++]);
    }
    if (rc == SQLITE_DONE)
        goto out;
    status = SB_ERR_IO;
fail:
    if (status != SB_OK)
        snprintf(msg, msglen, "cannot read the keys in %s: %s", path, sqlite3_errmsg(db));
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (status != SB_OK) {
        ledger_keys_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return status;
}

void ledger_keys_free(struct clients_key *keys, size_t n)
{
    for (size_t i = 0; keys && i < n; i++)
        clients_key_cleanup(&keys[i]);
    free(keys);
}

enum sb_status ledger_keys_fingerprint(const char *path, uint64_t *out, char *msg, size_t msglen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    *out = 0;
    if (is_memory(path))
        return SB_OK;
    enum sb_status status = open_db(path, false, &db, msg, msglen);
    if (status != SB_OK)
        return status == SB_ERR_NOT_FOUND ? SB_OK : status;
    if (sqlite3_prepare_v2(db,
                           "SELECT COUNT(*), IFNULL(SUM(created_ms), 0), "
                           "IFNULL(SUM(revoked_ms), 0), IFNULL(MAX(rowid), 0) FROM client_keys",
                           -1, &st, NULL) != SQLITE_OK) {
        status = is_old_schema(db) ? SB_OK : SB_ERR_IO;
    } else if (sqlite3_step(st) == SQLITE_ROW) {
        uint64_t parts[4];
        for (int i = 0; i < 4; i++)
            parts[i] = (uint64_t)sqlite3_column_int64(st, i);
        *out = parts[0] ? hash_fnv1a(parts, sizeof parts) | 1 : 0;
    } else {
        status = SB_ERR_IO;
    }
    if (status != SB_OK)
        snprintf(msg, msglen, "cannot read the keys in %s: %s", path, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return status;
}

enum sb_status ledger_keys_spend(const char *path, int64_t now_wall_ms, ledger_client_spend_fn fn,
                                 void *ctx, char *msg, size_t msglen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    if (is_memory(path))
        return SB_OK;
    enum sb_status status = open_db(path, false, &db, msg, msglen);
    if (status != SB_OK)
        return status == SB_ERR_NOT_FOUND ? SB_OK : status;
    if (sqlite3_prepare_v2(db, sql_spend, -1, &st, NULL) != SQLITE_OK) {
        status = is_old_schema(db) ? SB_OK : SB_ERR_IO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, ledger_day_start(now_wall_ms));
    sqlite3_bind_int64(st, 2, ledger_month_start(now_wall_ms));
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn(ctx, (const char *)sqlite3_column_text(st, 0), sqlite3_column_double(st, 1),
           sqlite3_column_double(st, 2));
    status = rc == SQLITE_DONE ? SB_OK : SB_ERR_IO;
out:
    if (status != SB_OK)
        snprintf(msg, msglen, "cannot read the spend per key in %s: %s", path, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return status;
}
