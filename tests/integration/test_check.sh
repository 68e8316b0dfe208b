#!/usr/bin/env bash
# test_check.sh - `switchboard check` as a user runs it: the example config is valid, a broken
# one fails with exit 2 and errors that name JSON paths, keys never reach the output, and
# --reference prints the configuration reference.
# Run from the repository root with SB_BUILD set to the (absolute) build directory.
set -uo pipefail
bin=${SB_BUILD:?SB_BUILD must name the build directory}/switchboard
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0

ok() { echo "ok   - $1"; passed=$((passed + 1)); }
not_ok() { echo "FAIL - $1"; failed=$((failed + 1)); sed 's/^/       /' "$tmp/out" "$tmp/err" | head -40; }

# run NAME EXPECTED_RC ARGS... : runs the binary with a timeout, output in $tmp/out, $tmp/err.
run() {
  local name=$1 want=$2; shift 2
  timeout 20 "$bin" "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  if [[ $rc -eq $want ]]; then ok "$name (exit $rc)"; else not_ok "$name (exit $rc, want $want)"; fi
}

# expect NAME FILE PATTERN : FILE ($tmp/out or $tmp/err) contains the fixed string PATTERN.
expect() {
  if grep -qF -- "$3" "$2"; then ok "$1"; else not_ok "$1: no \"$3\""; fi
}

refute() {
  if grep -qF -- "$3" "$2"; then not_ok "$1: found \"$3\""; else ok "$1"; fi
}

# The example config with every key variable set to a recognisable secret.
export OPENAI_API_KEY=sk-itest-SECRET-openai ANTHROPIC_API_KEY=sk-ant-itest-SECRET
export GEMINI_API_KEY=AIza-itest-SECRET GROQ_API_KEY=gsk_itest_SECRET
export SWITCHBOARD_ADMIN_TOKEN=itest-SECRET-admin
run "example config is valid" 0 check -c console.json.example
expect "summary lists targets" "$tmp/out" "targets (7):"
expect "summary lists routes" "$tmp/out" "routes (6):"
expect "summary ends with ok" "$tmp/out" "console.json.example: ok (0 warnings)"
refute "no key in stdout" "$tmp/out" "SECRET"
refute "no key in stderr" "$tmp/err" "SECRET"

# Unset keys disable targets: still valid, with warnings naming the variable only.
unset OPENAI_API_KEY
run "unset key is a warning, not an error" 0 check -c console.json.example
expect "warning names the variable" "$tmp/err" \
  'warning: providers[0] ("openai-mini"): disabled because OPENAI_API_KEY is not set'

cat >"$tmp/bad.json" <<'EOF'
{
  "providers": [
    { "name": "openai", "kind": "openai", "api_key_env": "sk-pasted-SECRET", "modle": "gpt-4o",
      "price": { "input_per_mtok": "cheap", "output_per_mtok": 1 } }
  ],
  "routes": [
    { "name": "a", "targets": ["openia"], "fallback": ["b"] },
    { "name": "b", "targets": ["openai"], "fallback": ["a"] }
  ]
}
EOF
run "broken config fails" 2 check -c "$tmp/bad.json"
expect "unknown key with suggestion" "$tmp/err" \
  'error: providers[0].modle: unknown key (did you mean "model"?)'
expect "wrong type names the path" "$tmp/err" \
  'error: providers[0].price.input_per_mtok: expected a number >= 0'
expect "unknown target" "$tmp/err" 'error: routes[0].targets[0]: unknown provider "openia"'
expect "fallback cycle" "$tmp/err" 'error: routes[0].fallback: cycle a -> b -> a'
expect "pasted key is refused" "$tmp/err" 'providers[0].api_key_env: this looks like an API key'
refute "pasted key is not echoed" "$tmp/err" "SECRET"
expect "error count" "$tmp/err" "bad.json: invalid ("

printf '{\n  "providers": [,]\n}\n' >"$tmp/syntax.json"
run "malformed JSON fails" 2 check -c "$tmp/syntax.json"
expect "malformed JSON has line:column" "$tmp/err" "syntax.json:2:17: malformed JSON"

run "missing file fails" 2 check -c "$tmp/nope.json"
expect "missing file names the file" "$tmp/err" "nope.json: No such file or directory"

# Header values that would split a request's headers, and a Gemini model id that bends the
# URL: errors at check time, and the key's value is never printed.
cat >"$tmp/inject.json" <<'EOF'
{
  "providers": [
    {"name": "o", "kind": "openai", "api_key_env": "INJECTED_KEY", "model": "gpt-4o-mini"},
    {"name": "a", "kind": "anthropic", "api_key_env": "ANTHROPIC_API_KEY", "model": "claude",
     "anthropic_version": "2023-06-01\r\nX-Injected: 1"},
    {"name": "g", "kind": "gemini", "api_key_env": "GEMINI_API_KEY",
     "model": "gemini/../../x?key=y"}
  ],
  "routes": [{"name": "r", "targets": ["o", "a", "g"]}]
}
EOF
INJECTED_KEY=$'sk-itest-SECRET\r\nX-Injected: 1' run "header injection is refused" 2 check -c "$tmp/inject.json"
expect "key with a line break: the variable is named" "$tmp/err" \
  'providers[0].api_key_env: the value of INJECTED_KEY contains a control character'
expect "anthropic_version with a line break" "$tmp/err" \
  'providers[1].anthropic_version: expected a header value without control characters'
expect "gemini model id is a path segment" "$tmp/err" \
  'providers[2].model: a Gemini model id goes into the URL path'
refute "the injected key is not echoed" "$tmp/err" "SECRET"

run "reference" 0 check --reference
expect "reference has the providers table" "$tmp/out" '### `providers[]`'
expect "reference has a row" "$tmp/out" '| `first_byte_timeout_ms` | integer | 30000 |'

run "usage error" 2 check
run "help" 0 check -h
expect "help shows usage" "$tmp/out" "usage: switchboard check"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
