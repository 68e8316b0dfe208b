/*
 * fuzz_feedback_body.c - libFuzzer target for POST /v1/feedback's body (gw_feedback_parse).
 * Properties: no crash or leak; a refusal always says why and leaves no comment; an accepted
 * body was one JSON object (cJSON agrees, nothing after it but blanks), its request id is
 * 1..64 of [A-Za-z0-9._-], its score is in -1..1 on scale 1 or 5, and its label and comment
 * are within their caps.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../../src/gateway/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        if (!ok)
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    struct gw_feedback_body b;
    char msg[256] = "";
    if (!gw_feedback_parse(body, size, &b, msg, sizeof msg)) {
        if (msg[0] == '\0' || b.comment)
            __builtin_trap();
        return 0;
    }
    if (!id_ok(b.request_id) || !(b.score >= -1 && b.score <= 1) || (b.scale != 1 && b.scale != 5))
        __builtin_trap();
    if (strlen(b.label) > GW_FEEDBACK_LABEL_MAX ||
        (b.comment && strlen(b.comment) > GW_FEEDBACK_COMMENT_MAX))
        __builtin_trap();
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, size, &end, false);
    if (!cJSON_IsObject(root))
        __builtin_trap();
    while (end < body + size && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
        end++;
    if (end != body + size)
        __builtin_trap();
    cJSON_Delete(root);
    free(b.comment);
    return 0;
}
