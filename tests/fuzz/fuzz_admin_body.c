/*
 * fuzz_admin_body.c - libFuzzer target for the admin API's request bodies: operator commands
 * (gw_admin_parse_cmd) and new client keys (gw_admin_parse_key, POST /admin/keys). The first
 * byte picks the parser (bit 1) and whether the command needs a weight (bit 0). Properties:
 * no crash or leak; a refusal always says why; an accepted command body was one JSON object
 * (cJSON agrees, nothing after it) with a weight in 0..1e6 when one is needed and an expiry
 * in 0..365 days; an accepted key has a valid name, known routes only, limits >= 0 and a tag
 * without spaces or control characters.
 */
#include <math.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../../src/gateway/internal.h"
#include "switchboard/clients.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_key_body(const char *body, size_t len)
{
    static struct router_snapshot *snap;
    if (!snap) {
        snap = calloc(1, sizeof *snap);
        snap->n_routes = 2;
        str_copy(snap->routes[0].name, sizeof snap->routes[0].name, "chat");
        str_copy(snap->routes[1].name, sizeof snap->routes[1].name, "smart");
    }
    struct clients_key k;
    memset(&k, 0, sizeof k);
    char msg[256] = "";
    if (!gw_admin_parse_key(body, len, snap, 1780000000000LL, &k, msg, sizeof msg)) {
        if (msg[0] == '\0')
            __builtin_trap();
    } else {
        if (!clients_name_is_valid(k.name) || k.rpm < 0 || k.tpm < 0 || !(k.daily_usd >= 0) ||
            !(k.monthly_usd >= 0))
            __builtin_trap();
        for (size_t i = 0; i < k.n_routes; i++) {
            if (!gw_has_route(snap, k.routes[i]))
                __builtin_trap();
        }
        for (const char *p = k.tag ? k.tag : ""; *p; p++) {
            if ((unsigned char)*p <= ' ' || *p == 0x7f)
                __builtin_trap();
        }
    }
    clients_key_cleanup(&k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    bool need_weight = data[0] & 1;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    if (data[0] & 2) {
        fuzz_key_body(body, len);
        return 0;
    }
    struct router_cmd cmd;
    char msg[256] = "";
    memset(&cmd, 0, sizeof cmd);
    if (!gw_admin_parse_cmd(body, len, need_weight, &cmd, msg, sizeof msg)) {
        if (msg[0] == '\0')
            __builtin_trap();
        return 0;
    }
    if (need_weight && !(cmd.weight >= 0 && cmd.weight <= 1e6))
        __builtin_trap();
    if (cmd.expires_ms < 0 || cmd.expires_ms > (int64_t)365 * 86400 * 1000)
        __builtin_trap();
    if (len > 0) {
        const char *end = NULL;
        cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, false);
        if (!cJSON_IsObject(root))
            __builtin_trap();
        while (end < body + len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
            end++;
        if (end != body + len)
            __builtin_trap();
        cJSON_Delete(root);
    }
    return 0;
}
