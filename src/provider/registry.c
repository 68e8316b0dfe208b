/*
 * registry.c - provider kind -> wire format ops. Kept apart from provider.c so that code
 * linking the call glue does not pull in every adapter. Stateless; any thread.
 */
#include "switchboard/provider.h"

const struct provider_ops *provider_ops_for(enum provider_kind kind)
{
    switch (kind) {
    case PROVIDER_OPENAI:
    case PROVIDER_OPENAI_COMPATIBLE:
        return &provider_openai;
    case PROVIDER_ANTHROPIC:
        return &provider_anthropic;
    case PROVIDER_GEMINI:
        return &provider_gemini;
    }
    return &provider_openai;
}
