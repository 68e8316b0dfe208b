/*
 * fuzz_fleet_url.c - libFuzzer target for fleet_parse_url (fleet.redis and console --fleet):
 * redis://, rediss:// and unix:// URLs. Properties: an accepted URL gives a non-empty host
 * without '@' that fits its buffer, a port in 1..65535 and a db in 0..1000; a unix socket path
 * is absolute; TLS is reported exactly for rediss://; and a caller without TLS (tls NULL)
 * accepts the same URLs except rediss://.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/fleet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = malloc(size + 1); /* exact size: ASan sees any read past the end */
    memcpy(url, data, size);
    url[size] = '\0';
    char host[64];
    int port = -1, db = -1;
    bool un = false, tls = false;
    bool ok = fleet_parse_url(url, host, sizeof host, &port, &db, &un, &tls);
    if (ok) {
        size_t n = strnlen(host, sizeof host);
        if (n == 0 || n >= sizeof host || port < 1 || port > 65535 || db < 0 || db > 1000)
            __builtin_trap();
        if (un ? host[0] != '/' : strchr(host, '@') != NULL)
            __builtin_trap();
        if (tls != (strncmp(url, "rediss://", 9) == 0) || (tls && un))
            __builtin_trap();
    }
    char host2[64];
    int port2, db2;
    bool un2;
    bool ok2 = fleet_parse_url(url, host2, sizeof host2, &port2, &db2, &un2, NULL);
    if (ok2 != (ok && !tls) || (ok2 && strcmp(host, host2) != 0))
        __builtin_trap();
    free(url);
    return 0;
}
