/*
 * fuzz_fleet_notice.c - libFuzzer target for what fleet mode parses itself (hiredis parses
 * the Redis protocol): the notice payload another instance published, "<origin>\t<kind>\t<body>".
 * Properties: an accepted payload's body lies inside it, its origin holds no tab and is what
 * precedes the first tab (cut to the buffer), its kind is one that travels; and a payload built
 * from the parts parses back to the same parts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/fleet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const char *p, size_t n)
{
    char origin[FLEET_NAME_MAX];
    enum fleet_notice_kind kind;
    size_t off = 0;
    if (!fleet_parse_notice(p, n, origin, sizeof origin, &kind, &off))
        return;
    if (off > n || off < 3 || p[off - 1] != '\t' || strchr(origin, '\t') || !origin[0])
        __builtin_trap();
    if (kind != FLEET_NOTICE_COOLDOWN && kind != FLEET_NOTICE_COMMAND &&
        kind != FLEET_NOTICE_BREAKER && kind != FLEET_NOTICE_CACHE)
        __builtin_trap();
    size_t olen = strlen(origin);
    if (memchr(origin, '\0', olen) ||
        (olen < sizeof origin - 1 && p[olen] != '\t' && memchr(p, '\0', olen + 1) == NULL))
        __builtin_trap();
    /* rebuild and parse again */
    struct buf b;
    buf_init(&b);
    buf_printf(&b, "%s\t%s\t", origin, fleet_notice_kind_name(kind));
    buf_append(&b, p + off, n - off);
    char origin2[FLEET_NAME_MAX];
    enum fleet_notice_kind kind2;
    size_t off2;
    if (!fleet_parse_notice(b.data, b.len, origin2, sizeof origin2, &kind2, &off2) ||
        kind2 != kind || strcmp(origin, origin2) != 0 || b.len - off2 != n - off ||
        memcmp(b.data + off2, p + off, n - off) != 0)
        __builtin_trap();
    buf_cleanup(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *p = malloc(size ? size : 1); /* exact size: ASan sees any read past the end */
    memcpy(p, data, size);
    check(p, size);
    free(p);
    return 0;
}
