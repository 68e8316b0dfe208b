/*
 * hooks.c - linked into every fuzz target: cJSON allocates through the program's hooks
 * (cli_main installs them), so the fuzzers exercise the scratch arena, poisoned under ASan.
 */
#include <cjson/cJSON.h>

#include "switchboard/util.h"

__attribute__((constructor)) static void install_cjson_hooks(void)
{
    cJSON_Hooks hooks = {scratch_alloc_hook, scratch_free_hook};
    cJSON_InitHooks(&hooks);
}
