/*
 * keys.c - `switchboard keys add|list|revoke|hash`: client keys in the ledger's client_keys
 * table (clients.h, ledger.h). Works while `serve` runs on the same ledger: the gateway
 * re-reads the table within a second. `add` prints the new key once, on stdout; only its
 * SHA-256 is stored. `hash` reads a key on stdin and prints the SHA-256 that clients[] of the
 * config wants. Main thread only.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "switchboard/cli.h"
#include "switchboard/clients.h"
#include "switchboard/config.h"
#include "switchboard/ledger.h"

struct keys_opts {
    const char *config_path;
    const char *ledger_path;
    struct clients_key key; /* add */
    bool json;              /* list */
};

static void keys_usage(FILE *out)
{
    fprintf(out,
            "usage: switchboard keys add -c FILE NAME [--route ROUTE]... [--tag TAG] [--self-tag]\n"
            "                            [--daily-usd N] [--monthly-usd N] [--rpm N] [--tpm N]\n"
            "                            [--expires 2027-01-01|2027-01-01T12:00:00Z]\n"
            "       switchboard keys list -c FILE [--json]\n"
            "       switchboard keys revoke -c FILE NAME\n"
            "       switchboard keys hash < KEYFILE\n"
            "  Client keys in the ledger (-c names the config whose ledger.path is used, or give\n"
            "  --ledger FILE). `add` prints the new key once; only its SHA-256 is stored. A\n"
            "  running `serve` picks changes up within a second. `hash` prints the SHA-256 of a\n"
            "  key read on stdin, for clients[].key_sha256 in the config.\n");
}

static bool num_arg(const char *flag, const char *s, double *out)
{
    if (str_to_double(s, out) && *out >= 0)
        return true;
    fprintf(stderr, "error: %s %s: expected a number >= 0\n", flag, s);
    return false;
}

/* One option of `add`; false on a bad value (message printed). */
static bool add_opt(int c, const char *arg, struct clients_key *k)
{
    double v = 0;
    switch (c) {
    case 'r':
        clients_key_add_route(k, arg);
        return true;
    case 't':
        free(k->tag);
        k->tag = xstrdup(arg);
        return true;
    case 'S':
        k->self_tag = true;
        return true;
    case 'd':
        return num_arg("--daily-usd", arg, &k->daily_usd);
    case 'm':
        return num_arg("--monthly-usd", arg, &k->monthly_usd);
    case 'p':
        if (!num_arg("--rpm", arg, &v))
            return false;
        k->rpm = (long)v;
        return true;
    case 'k':
        if (!num_arg("--tpm", arg, &v))
            return false;
        k->tpm = (long)v;
        return true;
    case 'e':
        if (clients_parse_time(arg, &k->expires_ms))
            return true;
        fprintf(stderr, "error: --expires %s: expected 2027-01-01 or 2027-01-01T12:00:00Z\n", arg);
        return false;
    }
    return false;
}

static int parse(int argc, char **argv, struct keys_opts *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"ledger", required_argument, NULL, 'l'},
        {"route", required_argument, NULL, 'r'},
        {"tag", required_argument, NULL, 't'},
        {"self-tag", no_argument, NULL, 'S'},
        {"daily-usd", required_argument, NULL, 'd'},
        {"monthly-usd", required_argument, NULL, 'm'},
        {"rpm", required_argument, NULL, 'p'},
        {"tpm", required_argument, NULL, 'k'},
        {"expires", required_argument, NULL, 'e'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        if (c == 'c')
            o->config_path = optarg;
        else if (c == 'l')
            o->ledger_path = optarg;
        else if (c == 'j')
            o->json = true;
        else if (c == 'h') {
            keys_usage(stdout);
            return 0;
        } else if (c == '?' || !add_opt(c, optarg, &o->key)) {
            keys_usage(stderr);
            return 2;
        }
    }
    return -1;
}

/* ---- add / revoke / list ----------------------------------------------------------------- */

static bool routes_known(const struct config *cfg, const struct clients_key *k)
{
    for (size_t i = 0; cfg && i < k->n_routes; i++) {
        if (config_find_route(cfg, k->routes[i]) < 0) {
            fprintf(stderr, "error: --route %s: no such route in the config\n", k->routes[i]);
            return false;
        }
    }
    return true;
}

static bool in_config(const struct config *cfg, const char *name)
{
    for (size_t i = 0; cfg && i < cfg->n_clients; i++) {
        if (str_eq(cfg->clients[i].name, name))
            return true;
    }
    return false;
}

static int keys_add(const char *path, const struct config *cfg, struct clients_key *k)
{
    char key[64], msg[256] = "";
    if (in_config(cfg, k->name)) {
        fprintf(stderr, "error: clients[] of the config has a key named '%s'\n", k->name);
        return 1;
    }
    if (!routes_known(cfg, k))
        return 2;
    if (clients_key_generate(key, sizeof key) != SB_OK) {
        fprintf(stderr, "error: no random bytes for a key\n");
        return 1;
    }
    clients_sha256(key, strlen(key), k->sha256);
    enum sb_status st = ledger_keys_add(path, k, clock_wall_ms(), msg, sizeof msg);
    if (st == SB_OK) {
        printf("%s\n", key);
        fprintf(stderr, "key '%s' added to %s; it is shown once, above: store it now\n", k->name,
                path);
    } else {
        fprintf(stderr, "error: %s\n", msg);
    }
    OPENSSL_cleanse(key, sizeof key);
    return st == SB_OK ? 0 : 1;
}

static int keys_revoke(const char *path, const struct config *cfg, const char *name)
{
    char msg[256] = "";
    if (in_config(cfg, name)) {
        fprintf(stderr, "error: '%s' is in clients[] of the config: remove it there\n", name);
        return 1;
    }
    if (ledger_keys_revoke(path, name, clock_wall_ms(), msg, sizeof msg) != SB_OK) {
        fprintf(stderr, "error: %s\n", msg);
        return 1;
    }
    printf("revoked %s\n", name);
    return 0;
}

static void put_time(char *out, size_t n, int64_t ms)
{
    char t[21];
    if (ms <= 0) {
        str_copy(out, n, "-");
        return;
    }
    ledger_format_time(ms, t);
    str_copy(out, n, t);
}

static void list_row(const struct clients_key *k, const char *source, bool json, int64_t now)
{
    char routes[256] = "", exp[24], rev[24];
    size_t off = 0;
    for (size_t i = 0; i < k->n_routes && off < sizeof routes; i++)
        off +=
            (size_t)snprintf(routes + off, sizeof routes - off, "%s%s", i ? "," : "", k->routes[i]);
    put_time(exp, sizeof exp, k->expires_ms);
    put_time(rev, sizeof rev, k->revoked_ms);
    const char *status = k->revoked_ms > 0                           ? "revoked"
                         : k->expires_ms > 0 && now >= k->expires_ms ? "expired"
                                                                     : "active";
    if (json) {
        struct buf b;
        buf_init(&b);
        buf_put_json_string(&b, k->name, strlen(k->name));
        printf("{\"name\":%s,\"source\":\"%s\",\"status\":\"%s\",\"routes\":\"%s\","
               "\"self_tag\":%s,\"daily_usd\":%g,\"monthly_usd\":%g,\"rpm\":%ld,\"tpm\":%ld,"
               "\"expires\":\"%s\",\"revoked\":\"%s\"}\n",
               buf_str(&b), source, status, routes, k->self_tag ? "true" : "false", k->daily_usd,
               k->monthly_usd, k->rpm, k->tpm, exp, rev);
        buf_cleanup(&b);
        return;
    }
    printf("%-20s %-7s %-8s %-24s %-16s %-4s %9g %9g %7ld %8ld  %s\n", k->name, source, status,
           routes[0] ? routes : "*", clients_key_tag(k), k->self_tag ? "yes" : "no", k->daily_usd,
           k->monthly_usd, k->rpm, k->tpm, exp);
}

static int keys_list(const char *path, const struct config *cfg, bool json)
{
    char msg[256] = "";
    struct clients_key *db = NULL;
    size_t n = 0;
    if (ledger_keys_load(path, &db, &n, msg, sizeof msg) != SB_OK) {
        fprintf(stderr, "error: %s\n", msg);
        return 1;
    }
    int64_t now = clock_wall_ms();
    if (!json)
        printf("%-20s %-7s %-8s %-24s %-16s %-4s %9s %9s %7s %8s  %s\n", "NAME", "SOURCE", "STATUS",
               "ROUTES", "TAG", "SELF", "DAILY$", "MONTHLY$", "RPM", "TPM", "EXPIRES");
    for (size_t i = 0; cfg && i < cfg->n_clients; i++) {
        const struct config_client *cc = &cfg->clients[i];
        struct clients_key k;
        memset(&k, 0, sizeof k);
        str_copy(k.name, sizeof k.name, cc->name);
        for (size_t r = 0; r < cc->n_routes; r++)
            clients_key_add_route(&k, cfg->routes[cc->routes[r]].name);
        k.tag = xstrdup(cc->tag);
        k.self_tag = cc->self_tag;
        k.daily_usd = cc->daily_usd;
        k.monthly_usd = cc->monthly_usd;
        k.rpm = cc->rpm;
        k.tpm = cc->tpm;
        k.expires_ms = cc->expires_ms;
        list_row(&k, "config", json, now);
        clients_key_cleanup(&k);
    }
    for (size_t i = 0; i < n; i++)
        list_row(&db[i], "ledger", json, now);
    ledger_keys_free(db, n);
    return 0;
}

/* ---- hash --------------------------------------------------------------------------------- */

static int keys_hash(void)
{
    char line[1024];
    if (!fgets(line, sizeof line, stdin)) {
        fprintf(stderr, "error: expected the key on stdin\n");
        return 2;
    }
    size_t n = strcspn(line, "\r\n");
    line[n] = '\0';
    if (n == 0) {
        fprintf(stderr, "error: expected the key on stdin, got an empty line\n");
        return 2;
    }
    uint8_t hash[CLIENTS_HASH_LEN];
    char hex[CLIENTS_HASH_HEX + 1];
    clients_sha256(line, n, hash);
    clients_hash_hex(hash, hex);
    OPENSSL_cleanse(line, sizeof line);
    printf("%s\n", hex);
    return 0;
}

/* ---- entry -------------------------------------------------------------------------------- */

static struct config *load_config(const char *path)
{
    struct config_diag errs;
    config_diag_init(&errs);
    struct config *cfg = config_load(path, &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "error: %s\n", errs.items[i]);
    config_diag_cleanup(&errs);
    return cfg;
}

static int run(const char *verb, const char *name, const struct keys_opts *o, struct clients_key *k)
{
    struct config *cfg = o->config_path ? load_config(o->config_path) : NULL;
    int rc = 2;
    const char *path = o->ledger_path ? o->ledger_path : cfg ? cfg->ledger.path : NULL;
    if (o->config_path && !cfg)
        goto out;
    if (!path) {
        keys_usage(stderr);
        goto out;
    }
    if (str_eq(verb, "list")) {
        rc = keys_list(path, cfg, o->json);
    } else if (!name || !clients_name_is_valid(name)) {
        fprintf(stderr, "error: expected a key NAME of 1..64 letters, digits, '.', '_', '-'\n");
    } else if (str_eq(verb, "add")) {
        str_copy(k->name, sizeof k->name, name);
        rc = keys_add(path, cfg, k);
    } else {
        rc = keys_revoke(path, cfg, name);
    }
out:
    config_free(cfg);
    return rc;
}

int cli_keys(int argc, char **argv)
{
    const char *verb = argc >= 2 ? argv[1] : "";
    bool known = str_eq(verb, "add") || str_eq(verb, "list") || str_eq(verb, "revoke") ||
                 str_eq(verb, "hash");
    if (!known) {
        keys_usage(str_eq(verb, "-h") || str_eq(verb, "--help") ? stdout : stderr);
        return str_eq(verb, "-h") || str_eq(verb, "--help") ? 0 : 2;
    }
    if (str_eq(verb, "hash"))
        return keys_hash();
    struct keys_opts o;
    memset(&o, 0, sizeof o);
    int rc = parse(argc - 1, argv + 1, &o);
    if (rc < 0) {
        const char *name = optind < argc - 1 ? argv[1 + optind] : NULL;
        bool extra = optind + 1 < argc - 1;
        if (extra || (str_eq(verb, "list") && name)) {
            keys_usage(stderr);
            rc = 2;
        } else {
            rc = run(verb, name, &o, &o.key);
        }
    }
    clients_key_cleanup(&o.key);
    return rc;
}
