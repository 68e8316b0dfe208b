#!/usr/bin/env bash
# make demo: starts local simulated providers (OpenAI, Anthropic, Gemini and an
# OpenAI-compatible "local" server) on 127.0.0.1, writes a config for them, and streams
# answers from each with `switchboard ask`. Everything it starts is stopped on exit.
set -uo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
SB=$root/$build/switchboard
SIM=$root/$build/switchboard-sim
dir=$(mktemp -d /tmp/switchboard-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

export DEMO_OPENAI_KEY=demo-openai-key DEMO_ANTHROPIC_KEY=demo-anthropic-key
export DEMO_GEMINI_KEY=demo-gemini-key
start() { # start NAME ARGS...
  local name=$1; shift
  "$SIM" --name "$name" --port 0 --control-port 0 --port-file "$dir/$name.port" --quiet "$@" &
  pids+=($!)
  for _ in $(seq 100); do [[ -s $dir/$name.port ]] && break; sleep 0.1; done
  read -r port _ < "$dir/$name.port" || { echo "demo: simulator $name did not start" >&2; exit 1; }
  eval "port_${name//-/_}=$port"
}
start openai --key "$DEMO_OPENAI_KEY" --token-rate 60
start anthropic --key "$DEMO_ANTHROPIC_KEY" --token-rate 40
start gemini --key "$DEMO_GEMINI_KEY" --token-rate 80
start local --no-auth --token-rate 120

cat > "$dir/demo.json" <<JSON
{
  "providers": [
    {"name": "openai-mini", "kind": "openai", "base_url": "http://127.0.0.1:$port_openai/v1",
     "api_key_env": "DEMO_OPENAI_KEY", "model": "gpt-4o-mini",
     "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.60, "cached_input_per_mtok": 0.075}},
    {"name": "claude", "kind": "anthropic", "base_url": "http://127.0.0.1:$port_anthropic",
     "api_key_env": "DEMO_ANTHROPIC_KEY", "model": "claude-sonnet-4-5",
     "price": {"input_per_mtok": 3, "output_per_mtok": 15}},
    {"name": "gemini-flash", "kind": "gemini", "base_url": "http://127.0.0.1:$port_gemini/v1beta",
     "api_key_env": "DEMO_GEMINI_KEY", "model": "gemini-2.5-flash",
     "price": {"input_per_mtok": 0.30, "output_per_mtok": 2.50}},
    {"name": "ollama", "kind": "openai-compatible", "base_url": "http://127.0.0.1:$port_local/v1",
     "model": "llama3.2", "price": {"input_per_mtok": 0, "output_per_mtok": 0}}
  ],
  "routes": [
    {"name": "chat", "targets": ["openai-mini", "claude", "gemini-flash", "ollama"]}
  ]
}
JSON

echo "switchboard demo: four simulated providers on 127.0.0.1 (config: $dir/demo.json)"
"$SB" check -c "$dir/demo.json" || exit 1
prompt="In two sentences, why do on-call engineers want a fallback LLM provider?"
for t in openai-mini claude gemini-flash ollama; do
  printf '\n\033[1m== %s ==\033[0m\n' "$t"
  "$SB" ask -c "$dir/demo.json" -t "$t" "$prompt"
done
printf '\nThe same prompt gives each provider its own answer; the line under each answer\n'
printf 'names the target, model, latency, time to first token, tokens and cost.\n'
