/*
 * support_tree_encode.h - the reference request bodies for Anthropic and Gemini: the cJSON
 * tree encoders as they were before the messages were written straight into the body.
 * On SB_OK *body is the body (caller frees); otherwise *body is NULL and msg says why, as
 * the encoder would. Pure; any thread.
 */
#ifndef SWITCHBOARD_TESTS_SUPPORT_TREE_ENCODE_H
#define SWITCHBOARD_TESTS_SUPPORT_TREE_ENCODE_H

#include <stdbool.h>
#include <stddef.h>

#include "switchboard/provider.h"

enum sb_status ref_anthropic_body(const struct config_target *t, const struct llm_request *req,
                                  char **body, char *msg, size_t msglen);
enum sb_status ref_gemini_body(const struct config_target *t, const struct llm_request *req,
                               char **body, char *msg, size_t msglen);
/* Does ops->encode (provider_anthropic or provider_gemini) give the reference's body, or its
 * status and message on a refusal? When not, why says how they differ. */
bool ref_encode_matches(const struct provider_ops *ops, const struct config_target *t,
                        const struct llm_request *req, char *why, size_t whylen);

#endif
