/*
 * fuzz_config.c - libFuzzer target for the config parser: any bytes through config_parse
 * with a fake environment, then warnings and the summary of whatever parsed. Besides
 * crashes and leaks it checks the secrets rule: the fake key value never appears in an
 * error, a warning or the summary (unless the input itself contains it).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/config.h"

#define FUZZ_SECRET "fUzZ-SeCrEt-7f3a"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool check = !memmem(data, size, FUZZ_SECRET, strlen(FUZZ_SECRET));
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
