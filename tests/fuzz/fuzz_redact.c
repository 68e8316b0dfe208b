/*
 * fuzz_redact.c - libFuzzer target for provider_redact. Input: a secret (up to the first
 * 0x00 byte, at most 64 bytes) and a message (the rest, into a 512-byte buffer as the error
 * paths use). Properties: no crash; the result is NUL-terminated within the buffer; and,
 * outside the "[redacted]" markers, no run of 8 characters equal (ignoring ASCII case) to a
 * piece of the secret survives (secrets holding '[' or ']' are skipped: the marker itself
 * could spell part of them).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/provider.h"

#define MSG_SIZE 512
#define MARK     "[redacted]"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Does seg[0..n) hold 8 characters equal, ignoring case, to 8 consecutive ones of secret? */
static bool holds_piece(const char *seg, size_t n, const char *secret)
{
    size_t slen = strlen(secret);
    for (size_t i = 0; i + 8 <= n; i++) {
        for (size_t j = 0; j + 8 <= slen; j++) {
            size_t k = 0;
            while (k < 8 &&
                   tolower((unsigned char)seg[i + k]) == tolower((unsigned char)secret[j + k]))
                k++;
            if (k == 8)
                return true;
        }
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size < 65 ? size : 65);
    if (!nul)
        return 0;
    size_t slen = (size_t)(nul - data);
    char secret[65];
    memcpy(secret, data, slen);
    secret[slen] = '\0';
    char msg[MSG_SIZE];
    size_t mlen = size - slen - 1;
    if (mlen >= sizeof msg)
        mlen = sizeof msg - 1;
    memcpy(msg, nul + 1, mlen);
    msg[mlen] = '\0';

    provider_redact(msg, sizeof msg, slen ? secret : NULL);
    if (!memchr(msg, '\0', sizeof msg))
        __builtin_trap();
    if (slen < 8 || strpbrk(secret, "[]"))
        return 0;
    /* Each stretch between markers (or a marker cut short by truncation at the end). */
    for (const char *seg = msg; *seg;) {
        const char *mark = strstr(seg, MARK);
        size_t n = mark ? (size_t)(mark - seg) : strlen(seg);
        if (holds_piece(seg, n, secret))
            __builtin_trap();
        seg += n + (mark ? strlen(MARK) : 0);
    }
    return 0;
}
