/*
 * encode.h - private to src/provider: the request encoders that have a file of their own
 * (anthropic_encode.c, gemini_encode.c), for the provider_ops tables of their adapters
 * (anthropic.c, gemini.c). What encode and encode_probe do: struct provider_ops in
 * switchboard/provider.h. Nothing outside src/provider includes this.
 *
 * Threads: stateless; any thread. Pure: no I/O, no clock.
 */
#ifndef SWITCHBOARD_PROVIDER_ENCODE_H
#define SWITCHBOARD_PROVIDER_ENCODE_H

#include <stddef.h>

#include "switchboard/provider.h"

enum sb_status anthropic_encode(const struct config_target *t, const struct llm_request *req,
                                struct http_request *out, char *msg, size_t msglen);
enum sb_status anthropic_encode_probe(const struct config_target *t, struct http_request *out,
                                      char *msg, size_t msglen);

enum sb_status gemini_encode(const struct config_target *t, const struct llm_request *req,
                             struct http_request *out, char *msg, size_t msglen);
enum sb_status gemini_encode_probe(const struct config_target *t, struct http_request *out,
                                   char *msg, size_t msglen);

#endif
