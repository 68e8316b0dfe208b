#!/usr/bin/env bash
# `switchboard ask` against the provider simulator: every wire format, streaming and not;
# missing and wrong keys; every fault the simulator injects shows up as the right error
# class; the key never appears in any output.
source "$(dirname "$0")/lib.sh"

export SIM_KEY=sim-key-0123456789abcdef
export WRONG_KEY=sk-wrongwrongwrong0123456789
start_sim oa --key "$SIM_KEY" --token-rate 0 || exit 1
start_sim an --key "$SIM_KEY" --token-rate 0 || exit 1
start_sim ge --key "$SIM_KEY" --token-rate 0 || exit 1
start_sim local --no-auth --token-rate 0 || exit 1
start_sim authed --key "$SIM_KEY" --token-rate 0 || exit 1

cat > "$TMP/sb.json" <<JSON
{
  "providers": [
    {"name": "oa", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[oa]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o-mini",
     "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}, "first_byte_timeout_ms": 2000},
    {"name": "an", "kind": "anthropic", "base_url": "http://127.0.0.1:${SIM_PORT[an]}",
     "api_key_env": "SIM_KEY", "model": "claude-sonnet-4-5",
     "price": {"input_per_mtok": 3, "output_per_mtok": 15}},
    {"name": "ge", "kind": "gemini", "base_url": "http://127.0.0.1:${SIM_PORT[ge]}/v1beta",
     "api_key_env": "SIM_KEY", "model": "gemini-2.5-flash",
     "price": {"input_per_mtok": 0.3, "output_per_mtok": 2.5}},
    {"name": "local", "kind": "openai-compatible",
     "base_url": "http://127.0.0.1:${SIM_PORT[local]}/v1", "model": "llama3.2"},
    {"name": "nokey", "kind": "openai-compatible",
     "base_url": "http://127.0.0.1:${SIM_PORT[authed]}/v1", "model": "llama3.2"},
    {"name": "wrongkey", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[authed]}/v1",
     "api_key_env": "WRONG_KEY", "model": "gpt-4o-mini"},
    {"name": "unset", "kind": "anthropic", "base_url": "http://127.0.0.1:${SIM_PORT[an]}",
     "api_key_env": "SB_TEST_UNSET_KEY", "model": "claude-haiku-4-5"}
  ],
  "routes": [
    {"name": "chat", "targets": ["unset", "oa", "an"], "strategy": "priority"}
  ]
}
JSON
unset SB_TEST_UNSET_KEY

ask() { # ask NAME ARGS... : runs ask, stdout -> $TMP/NAME.out, stderr -> $TMP/NAME.err
  local n=$1; shift
  timeout 30 "$SB" ask -c "$TMP/sb.json" "$@" >"$TMP/$n.out" 2>"$TMP/$n.err"
  echo $? > "$TMP/$n.rc"
}
rc() { cat "$TMP/$1.rc"; }
no_secret() { ! grep -qF -e "$SIM_KEY" -e "$WRONG_KEY" "$TMP/$1.out" "$TMP/$1.err"; }

for t in oa an ge local; do
  ask "$t-stream" -t "$t" "Tell me about switchboards"
  check "$t: streamed answer exits 0" test "$(rc "$t-stream")" = 0
  check "$t: streamed answer is not empty" test -s "$TMP/$t-stream.out"
  check "$t: summary names target and tokens" \
    grep -qE "target=$t model=.* latency=[0-9]+ms ttft=[0-9]+ms tokens_in=[0-9]+ tokens_out=[0-9]+" "$TMP/$t-stream.err"
  ask "$t-full" -t "$t" --no-stream "Tell me about switchboards"
  check "$t: non-streaming answer exits 0" test "$(rc "$t-full")" = 0
  check "$t: streaming and non-streaming give the same text" cmp -s "$TMP/$t-stream.out" "$TMP/$t-full.out"
  check "$t: key never printed" no_secret "$t-stream"
done
check "priced target reports a cost" grep -qE 'cost=\$0\.[0-9]{6}' "$TMP/oa-stream.err"
check "unpriced target says so" grep -q 'cost=unpriced' "$TMP/local-stream.err"

ask echo -t oa "echo: exactly this"
check "echo prompt comes back verbatim" test "$(cat "$TMP/echo.out")" = "exactly this"

echo "from stdin please" | timeout 30 "$SB" ask -c "$TMP/sb.json" -t an - >"$TMP/stdin.out" 2>"$TMP/stdin.err"
check "prompt read from stdin" test -s "$TMP/stdin.out"

ask route -m chat "hello"
check "route skips the target with no key and uses the next" grep -q 'target=oa ' "$TMP/route.err"

ask unset -t unset "hello"
check "target with unset key var: exit 2" test "$(rc unset)" = 2
check "target with unset key var: names the variable" grep -q 'SB_TEST_UNSET_KEY is not set' "$TMP/unset.err"

ask nokey -t nokey "hello"
check "missing key: provider's 401 is reported" test "$(rc nokey)" = 1
check "missing key: classified as auth" grep -q 'error: auth' "$TMP/nokey.err"

ask wrongkey -t wrongkey "hello"
check "wrong key: classified as auth" grep -q 'error: auth' "$TMP/wrongkey.err"
check "wrong key: the key is never printed" no_secret wrongkey

fault() { # fault NAME BEHAVIOR EXPECTED_CLASS [ask args...]
  local n=$1 beh=$2 want=$3; shift 3
  sim_behavior oa "$beh"
  ask "$n" -t oa "$@" "fault test"
  sim_behavior oa '{"reset":true}'
  check "fault $n: exit 1" test "$(rc "$n")" = 1
  check "fault $n: classified $want" grep -q "error: $want" "$TMP/$n.err"
}
fault cut '{"cut_after_tokens":3}' truncated
fault cut-full '{"cut_after_tokens":3}' truncated --no-stream
fault e503 '{"error_rate":1,"error_statuses":[503]}' server
fault e429 '{"rate_limit":{"status":429,"retry_after_s":7}}' rate_limit
fault malformed '{"malformed":true}' bad_response --no-stream
fault malformed-stream '{"malformed":true}' bad_response
fault html '{"wrong_content_type":true}' bad_response
fault hang '{"hang":true}' timeout
fault ctx '{"context_window":2}' context_length
fault refuse '{"outage":"refuse"}' connect
check "a truncated stream keeps the text it had" test -s "$TMP/cut.out"

sim_behavior oa '{"omit_usage":true}'
ask nousage -t oa "hello"
sim_behavior oa '{"reset":true}'
check "missing usage is flagged, not zero" grep -q 'usage=missing cost=unknown' "$TMP/nousage.err"

stats=$(sim_stats an)
check "anthropic got x-api-key auth and a max_tokens" \
  test "$(echo "$stats" | json_get 'j["last_request"]["auth_ok"] and j["last_request"]["body"]["max_tokens"] > 0')" = True

ask badusage -t oa
check "usage error exits 2" test "$(rc badusage)" = 2
finish
