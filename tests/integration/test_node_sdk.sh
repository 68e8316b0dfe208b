#!/usr/bin/env bash
# The official OpenAI Node SDK against the gateway: a real client, not curl. One route per
# wire format (openai, anthropic, gemini, openai-compatible without auth), each driven by
# tests/integration/node/sdk_test.mjs through chat.completions.create (plain, streamed with
# include_usage, tool calls plain and streamed, the tool result sent back), the
# chat.completions.stream() helper and withResponse() headers; then the SDK's error classes
# for an unknown model (404) and a target in outage with no fallback (5xx); then, on one lab
# route per wire format (one attempt, its simulator steered by the script), the SDK's class
# for each upstream error status, the stream endings and the fields of issue 11.
#
# The SDK is pinned in tests/integration/node/package.json + package-lock.json and installed
# with `npm ci` into tests/integration/node/node_modules (git-ignored, reused while it matches
# the pinned version). No npm or no network for the install is a FAILURE, never a skip.
# SB_GW_THREADS sets gateway.threads (default 0, the router's loop; test_node_sdk_threaded.sh
# runs it with 2, MHD threads).
source "$(dirname "$0")/lib.sh"

# ---- the SDK ----------------------------------------------------------------------------------
node_sdk_ready || { finish; exit 1; }

# ---- simulators, config, serve --------------------------------------------------------------
export SIM_KEY=sim-key-node-sdk-0123456789
start_sim oa --key "$SIM_KEY" --token-rate 0 || exit 1
start_sim an --key "$SIM_KEY" --token-rate 0 || exit 1
start_sim ge --key "$SIM_KEY" --token-rate 0 || exit 1
start_sim co --no-auth --token-rate 0 || exit 1
start_sim down --key "$SIM_KEY" --outage 503 || exit 1
start_sim lab_oa --key "$SIM_KEY" --token-rate 0 || exit 1
start_sim lab_an --key "$SIM_KEY" --token-rate 0 || exit 1
start_sim lab_ge --key "$SIM_KEY" --token-rate 0 || exit 1

cat > "$TMP/sb.json" <<JSON
{
  "providers": [
    {"name": "t-openai", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[oa]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o-mini",
     "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}, "probe": {"enabled": false}},
    {"name": "t-anthropic", "kind": "anthropic", "base_url": "http://127.0.0.1:${SIM_PORT[an]}",
     "api_key_env": "SIM_KEY", "model": "claude-haiku-4-5",
     "price": {"input_per_mtok": 1, "output_per_mtok": 5}, "probe": {"enabled": false}},
    {"name": "t-gemini", "kind": "gemini", "base_url": "http://127.0.0.1:${SIM_PORT[ge]}/v1beta",
     "api_key_env": "SIM_KEY", "model": "gemini-3-flash-preview",
     "price": {"input_per_mtok": 0.3, "output_per_mtok": 2.5}, "probe": {"enabled": false}},
    {"name": "t-compat", "kind": "openai-compatible", "base_url": "http://127.0.0.1:${SIM_PORT[co]}/v1",
     "model": "llama3.2", "probe": {"enabled": false}},
    {"name": "t-down", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[down]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o-mini", "probe": {"enabled": false}},
    {"name": "t-lab-openai", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[lab_oa]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o-mini", "probe": {"enabled": false}},
    {"name": "t-lab-anthropic", "kind": "anthropic", "base_url": "http://127.0.0.1:${SIM_PORT[lab_an]}",
     "api_key_env": "SIM_KEY", "model": "claude-haiku-4-5", "probe": {"enabled": false}},
    {"name": "t-lab-gemini", "kind": "gemini", "base_url": "http://127.0.0.1:${SIM_PORT[lab_ge]}/v1beta",
     "api_key_env": "SIM_KEY", "model": "gemini-2.5-flash", "probe": {"enabled": false}}
  ],
  "routes": [
    {"name": "r-openai", "targets": ["t-openai"]},
    {"name": "r-anthropic", "targets": ["t-anthropic"]},
    {"name": "r-gemini", "targets": ["t-gemini"]},
    {"name": "r-compat", "targets": ["t-compat"]},
    {"name": "r-down", "targets": ["t-down"], "max_attempts": 2},
    {"name": "r-lab-openai", "targets": ["t-lab-openai"], "max_attempts": 1},
    {"name": "r-lab-anthropic", "targets": ["t-lab-anthropic"], "max_attempts": 1},
    {"name": "r-lab-gemini", "targets": ["t-lab-gemini"], "max_attempts": 1}
  ],
  "router": {"backoff_base_ms": 10, "backoff_cap_ms": 50, "deadline_ms": 20000,
             "breaker_failures": 1000, "breaker_min_volume": 1000000, "rate_limit_cooldown_ms": 1},
  "gateway": {"listen": "127.0.0.1:0", "threads": ${SB_GW_THREADS:-0}},
  "log_level": "warn"
}
JSON
start_serve "$TMP/sb.json" || exit 1

# ---- the Node script ------------------------------------------------------------------------
SB_BASE_URL="http://127.0.0.1:$SB_PORT/v1" \
SB_ROUTES="r-openai=t-openai,r-anthropic=t-anthropic,r-gemini=t-gemini,r-compat=t-compat" \
SB_DOWN_ROUTE=r-down \
SB_LAB="r-lab-openai=t-lab-openai=http://127.0.0.1:${SIM_CTL[lab_oa]},r-lab-anthropic=t-lab-anthropic=http://127.0.0.1:${SIM_CTL[lab_an]},r-lab-gemini=t-lab-gemini=http://127.0.0.1:${SIM_CTL[lab_ge]}" \
  timeout 240 node "$NODE_DIR/sdk_test.mjs" >"$TMP/node.out" 2>"$TMP/node.err"
rc=$?
# The script's own lines, then its totals folded into this script's.
grep -v -E '^[0-9]+ passed, [0-9]+ failed$' "$TMP/node.out"
read -r np nf < <(grep -oE '^[0-9]+ passed, [0-9]+ failed$' "$TMP/node.out" | tail -1 | awk '{print $1, $3}')
PASS=$((PASS + ${np:-0})); FAIL=$((FAIL + ${nf:-0}))
if [[ -s $TMP/node.err ]]; then sed 's/^/    node: /' "$TMP/node.err" | tail -20; fi
check "the node script ran to its end (exit $rc)" test -n "${np:-}" -a "$rc" -le 1
check "the node script exited 0" test "$rc" = 0
check "serve is still running" kill -0 "$SB_PID"
check "no API key in serve's output" bash -c "! grep -qF '$SIM_KEY' '$TMP/serve.out' '$TMP/serve.err'"
finish
