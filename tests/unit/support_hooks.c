/*
 * support_hooks.c - linked into every unit test: cJSON allocates through the same hooks as
 * the program (cli_main installs them), so the tests run the scratch arena too.
 */
#include <cjson/cJSON.h>

#include "switchboard/util.h"

__attribute__((constructor)) static void install_cjson_hooks(void)
{
    cJSON_Hooks hooks = {scratch_alloc_hook, scratch_free_hook};
    cJSON_InitHooks(&hooks);
}
