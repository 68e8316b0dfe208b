#!/usr/bin/env bash
# A/B interleaved, two switchboard builds side by side (A, B), JSON c=1 and c=16, against one
# build/bench/upstream (delay 0), order reversed every other round; CPU per request from
# /proc/PID/stat. Usage: ab_json.sh A_BIN B_BIN [ROUNDS [SECONDS]] (run from the repo root;
# docs/bench.md, "JSON passthrough, session 8").
set -u
A=$1; B=$2; ROUNDS=${3:-4}; SECS=${4:-3}
UP=${BENCH_UPSTREAM:-build/bench/upstream}
LUA=tests/bench/post.lua
T=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT
"$UP" --port-file "$T/up.port" >"$T/up.out" 2>&1 & PIDS+=($!)
for _ in $(seq 100); do [[ -s $T/up.port ]] && break; sleep 0.05; done
read -r UPJ UPS <"$T/up.port"
mk() { cat >"$T/$1.json" <<J
{"providers":[{"name":"up","kind":"openai-compatible","base_url":"http://127.0.0.1:$UPJ/v1",
 "model":"bench-model","price":{"input_per_mtok":1,"output_per_mtok":2},"probe":{"enabled":false}}],
 "routes":[{"name":"json0","targets":["up"]}],
 "router":{"max_attempts":1,"breaker_failures":1000},
 "gateway":{"listen":"127.0.0.1:0"},"guard":{"action":"observe"},
 "ledger":{"path":"$T/$1.db"},"log_level":"warn"}
J
}
mk a; mk b
"$A" serve -c "$T/a.json" --port-file "$T/a.port" >"$T/a.out" 2>"$T/a.err" & PA=$!; PIDS+=($PA)
"$B" serve -c "$T/b.json" --port-file "$T/b.port" >"$T/b.out" 2>"$T/b.err" & PB=$!; PIDS+=($PB)
for _ in $(seq 100); do [[ -s $T/a.port && -s $T/b.port ]] && break; sleep 0.05; done
read -r PORTA <"$T/a.port"; read -r PORTB <"$T/b.port"
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
hz=$(getconf CLK_TCK)
run() { # run WHICH PID PORT CONC
  local c0 c1 out
  c0=$(cpu "$2")
  out=$(BENCH_MODEL=json0 wrk -t1 -c"$4" -d"${SECS}s" -s "$LUA" "http://127.0.0.1:$3/v1/chat/completions" | grep '^BENCH')
  c1=$(cpu "$2")
  local req p50 dur
  req=$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$out"); p50=$(sed 's/.*p50_us=\([0-9]*\).*/\1/' <<<"$out")
  dur=$(sed 's/.*duration_us=\([0-9]*\).*/\1/' <<<"$out")
  local cpuus=$(( (c1 - c0) * 1000000 / hz ))
  printf "%s c=%s req/s=%.0f p50_us=%s cpu_us_per_req=%.1f load=%s\n" "$1" "$4" \
    "$(echo "$req*1000000/$dur" | bc -l)" "$p50" "$(echo "$cpuus/$req" | bc -l)" "$(cut -d' ' -f1 /proc/loadavg)"
}
# warm-up and check
curl -s -H 'Content-Type: application/json' -d '{"model":"json0","messages":[{"role":"user","content":"hi"}]}' -D "$T/hb" "http://127.0.0.1:$PORTB/v1/chat/completions" >"$T/bodyb"; echo
curl -s -H 'Content-Type: application/json' -d '{"model":"json0","messages":[{"role":"user","content":"hi"}]}' "http://127.0.0.1:$PORTA/v1/chat/completions" >"$T/bodya"
echo "A body: $(cat $T/bodya)"; echo "B body: $(cat $T/bodyb)"; grep -i x-switchboard "$T/hb"
for r in $(seq "$ROUNDS"); do
  for c in 1 16; do
    if (( r % 2 )); then run A "$PA" "$PORTA" $c; run B "$PB" "$PORTB" $c
    else run B "$PB" "$PORTB" $c; run A "$PA" "$PORTA" $c; fi
  done
done
