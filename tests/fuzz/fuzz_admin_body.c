/*
 * fuzz_admin_body.c - libFuzzer target for the admin API's command bodies
 * (gw_admin_parse_cmd). The first byte says whether the command needs a weight. Properties:
 * no crash or leak; a refusal always says why; an accepted body was one JSON object (cJSON
 * agrees, nothing after it) with a weight in 0..1e6 when one is needed and an expiry in
 * 0..365 days.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../../src/gateway/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    bool need_weight = data[0] & 1;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
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
