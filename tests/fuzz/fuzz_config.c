/*
 * fuzz_config.c - libFuzzer target for the config parser: any bytes through config_parse
 * with a fake environment, then warnings and the summary of whatever parsed. Besides
 * crashes and leaks it checks the secrets rule: the fake key value never appears in an
 * error, a warning or the summary (unless the input itself contains it, literally or spelled
 * with JSON escapes such as "\u0037": the parser decodes those and may echo the result).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/config.h"

/* Its first two characters are neither hex digits nor 'x', so no escape a message prints
 * (\xNN, \uNNNN) can run into it: in any output it can only come from the environment or
 * from the input itself (a finding once: "\xdf" + "UzZ-SeCrEt..." spelled the old
 * "fUzZ-SeCrEt..."). */
#define FUZZ_SECRET "QzUz-SeCrEt-7f3a"

/* Variables whose name starts with A..M are set; the rest are unset. */
static const char *fuzz_getenv(void *ctx, const char *name)
{
    (void)ctx;
    return name[0] >= 'A' && name[0] <= 'M' ? FUZZ_SECRET : NULL;
}

static void check_no_secret(const char *text)
{
    if (strstr(text, FUZZ_SECRET))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The input with every JSON escape decoded (\uXXXX above 0x7f becomes '?': the secret is
 * ASCII). Caller frees. */
static char *unescaped(const uint8_t *data, size_t size, size_t *len)
{
    char *out = malloc(size + 1);
    size_t n = 0;
    for (size_t i = 0; i < size; i++) {
        if (data[i] != '\\' || i + 1 >= size) {
            out[n++] = (char)data[i];
            continue;
        }
        uint8_t e = data[++i];
        int v = 0;
        if (e == 'u' && i + 4 < size) {
            for (size_t k = 1; k <= 4 && v >= 0; k++)
                v = hex_value(data[i + k]) < 0 ? -1 : v * 16 + hex_value(data[i + k]);
        }
        if (e == 'u' && v >= 0 && i + 4 < size) {
            out[n++] = v < 0x80 ? (char)v : '?';
            i += 4;
        } else {
            out[n++] = (char)e; /* \" \\ \/ and the rest: the character itself is close enough */
        }
    }
    *len = n;
    return out;
}

static bool input_has_secret(const uint8_t *data, size_t size)
{
    size_t n = 0;
    char *plain = unescaped(data, size, &n);
    bool has = memmem(data, size, FUZZ_SECRET, strlen(FUZZ_SECRET)) ||
               memmem(plain, n, FUZZ_SECRET, strlen(FUZZ_SECRET));
    free(plain);
    return has;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool check = !input_has_secret(data, size);
    struct config_diag errs, warns;
    struct buf out;
    config_diag_init(&errs);
    config_diag_init(&warns);
    buf_init(&out);

    struct config *cfg = config_parse((const char *)data, size, "/etc/switchboard/console.json",
                                      fuzz_getenv, NULL, &errs);
    if (cfg) {
        if (errs.n)
            abort(); /* success leaves errs empty */
        config_warnings(cfg, &warns);
        config_summary(cfg, &out);
        if (check)
            check_no_secret(buf_str(&out));
    } else if (errs.n == 0) {
        abort(); /* failure always says why */
    }
    for (size_t i = 0; check && i < errs.n; i++)
        check_no_secret(errs.items[i]);
    for (size_t i = 0; check && i < warns.n; i++)
        check_no_secret(warns.items[i]);

    config_free(cfg);
    buf_cleanup(&out);
    config_diag_cleanup(&warns);
    config_diag_cleanup(&errs);
    return 0;
}
