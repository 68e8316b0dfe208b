#!/usr/bin/env bash
# Fleet mode over TLS (rediss://) against Debian's redis-server started with --tls-port, a
# throwaway CA and certificates made here with the openssl CLI, client certificates required
# (tls-auth-clients yes) and a password (requirepass):
#  - two instances with the CA, a client certificate and the password join and share a pin;
#  - Redis's certificate is verified: an instance trusting another CA stays out (and says
#    why); with tls_insecure_skip_verify it joins, with a loud warning in its log;
#  - without a client certificate the server refuses the handshake;
#  - Redis killed and restarted: the instances reconnect over TLS;
#  - `console --fleet rediss://` with --cacert and a client certificate shows the fleet;
#  - the password appears in no log, no /metrics and no /admin/state.
source "$(dirname "$0")/lib.sh"

command -v redis-server >/dev/null || { echo "redis-server missing (bash .ci/deps test)"; exit 1; }
command -v openssl >/dev/null || { echo "openssl missing"; exit 1; }
export SIM_KEY=sim-key-fleet-tls ADMIN_TOKEN=admin-token-fleet-tls
export REDIS_PW="Pw-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PKI=$TMP/pki
mkdir -p "$PKI"

# ---- a throwaway PKI ---------------------------------------------------------------------------
mkcert() { # mkcert NAME CA SAN: NAME.key / NAME.crt signed by CA
  openssl req -newkey rsa:2048 -nodes -keyout "$PKI/$1.key" -out "$PKI/$1.csr" \
    -subj "/CN=$1" >/dev/null 2>&1 &&
    printf 'subjectAltName=%s\n' "$3" >"$PKI/$1.ext" &&
    openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/$2.crt" -CAkey "$PKI/$2.key" -CAcreateserial \
      -out "$PKI/$1.crt" -days 1 -extfile "$PKI/$1.ext" >/dev/null 2>&1
}
for ca in ca rogue; do
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$PKI/$ca.key" -out "$PKI/$ca.crt" -days 1 \
    -subj "/CN=switchboard test $ca" >/dev/null 2>&1 || { echo "openssl cannot make a CA"; exit 1; }
done
mkcert server ca "IP:127.0.0.1,DNS:localhost" && mkcert client ca "DNS:client" ||
  { echo "openssl cannot make certificates"; exit 1; }

RPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_redis() {
  redis-server --port 0 --bind 127.0.0.1 --tls-port "$RPORT" --tls-cert-file "$PKI/server.crt" \
    --tls-key-file "$PKI/server.key" --tls-ca-cert-file "$PKI/ca.crt" --tls-auth-clients yes \
    --requirepass "$REDIS_PW" --save '' --appendonly no --daemonize no --loglevel warning \
    >"$TMP/redis.out" 2>&1 &
  REDIS_PID=$!
  PIDS+=($REDIS_PID)
  for _ in $(seq 50); do rcli PING 2>/dev/null | grep -q PONG && return 0; sleep 0.1; done
  echo "redis-server did not start with TLS:"; cat "$TMP/redis.out"; return 1
}
rcli() {
  REDISCLI_AUTH=$REDIS_PW redis-cli --tls --cacert "$PKI/ca.crt" --cert "$PKI/client.crt" \
    --key "$PKI/client.key" -h 127.0.0.1 -p "$RPORT" "$@"
}

start_sim a --key "$SIM_KEY" --token-rate 0 || exit 1
start_sim b --key "$SIM_KEY" --token-rate 0 || exit 1
start_redis || exit 1
check "Debian's redis-server serves TLS with client certificates" test "$(rcli PING)" = PONG

# write_config N TLS_JSON
write_config() {
  cat >"$TMP/sb$1.json" <<JSON
{
  "providers": [
    {"name": "a", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[a]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o-mini", "probe": {"enabled": false}},
    {"name": "b", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[b]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o-mini", "probe": {"enabled": false}}
  ],
  "routes": [{"name": "chat", "targets": ["a", "b"], "strategy": "priority"}],
  "gateway": {"listen": "127.0.0.1:0", "admin_token_env": "ADMIN_TOKEN"},
  "ledger": {"path": ":memory:"},
  "fleet": {"redis": "rediss://127.0.0.1:$RPORT", "name": "tls$1", "key_prefix": "tt:",
            "password_env": "REDIS_PW", $2}
}
JSON
}
GOOD="\"tls_ca_file\": \"$PKI/ca.crt\", \"tls_cert_file\": \"$PKI/client.crt\", \"tls_key_file\": \"$PKI/client.key\""

declare -A PORT SPID
start_inst() {
  local n=$1 pf=$TMP/inst$1.port
  rm -f "$pf"
  "$SB" serve -c "$TMP/sb$n.json" --port-file "$pf" >"$TMP/inst$n.out" 2>"$TMP/inst$n.err" &
  SPID[$n]=$!
  PIDS+=($!)
  wait_for "$pf" 10 || { echo "instance $n did not start:"; cat "$TMP/inst$n.err"; return 1; }
  read -r PORT[$n] <"$pf"
}
stop_inst() {
  kill -TERM "${SPID[$1]}"
  for _ in $(seq 100); do kill -0 "${SPID[$1]}" 2>/dev/null || return 0; sleep 0.1; done
  return 1
}
adm() { # adm N METHOD PATH [JSON]
  curl -s --max-time 5 -X "$2" -H "Authorization: Bearer $ADMIN_TOKEN" \
    -H 'Content-Type: application/json' ${4:+--data "$4"} "http://127.0.0.1:${PORT[$1]}$3"
}
metrics_has() { curl -sf --max-time 5 "http://127.0.0.1:${PORT[$1]}/metrics" | matches -- "$2"; }
state_has() { adm "$1" GET /admin/state | matches -F -- "$2"; }
chat_target() { # the target instance N routed one call to
  curl -s -D - -o /dev/null -H 'Content-Type: application/json' \
    --data '{"model":"chat","messages":[{"role":"user","content":"hi"}]}' \
    "http://127.0.0.1:${PORT[$1]}/v1/chat/completions" |
    tr -d '\r' | sed -n 's/^x-switchboard-target: //Ip'
}

# ---- 1. two verified instances share the fleet over TLS ------------------------------------------
for n in 1 2; do write_config $n "$GOOD"; start_inst $n || exit 1; done
check "both instances joined over rediss://" eventually 8 metrics_has 1 '^switchboard_fleet_instances 2'
check "instance 2 is up too" eventually 3 metrics_has 2 '^switchboard_fleet_up 1'
check "their heartbeats are in Redis (read back over TLS)" eventually 3 bash -c \
  "[[ \$(REDISCLI_AUTH='$REDIS_PW' redis-cli --tls --cacert '$PKI/ca.crt' --cert '$PKI/client.crt' --key '$PKI/client.key' -h 127.0.0.1 -p $RPORT --scan --pattern 'tt:inst:*' | wc -l) == 2 ]]"
check "before the pin, instance 2 routes to a" test "$(chat_target 2)" = a
adm 1 POST /admin/targets/b/pin '{"expires_in_s": 30}' >/dev/null
pinned() { [[ $(chat_target 2) == b ]]; }
check "a pin made on instance 1 reaches instance 2 through TLS Redis" eventually 2 pinned

# ---- 1b. the console over the TLS fleet ----------------------------------------------------------
if command -v tmux >/dev/null; then
  root=$(cd "$(dirname "$0")/../.." && pwd)
  TM=(tmux -L "sbtls-$$" -f /dev/null)
  trap '"${TM[@]}" kill-server 2>/dev/null; cleanup' EXIT
  cat >"$TMP/con.sh" <<SH
export LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=screen-256color SWITCHBOARD_THEMES=$root/themes
export SWITCHBOARD_REDIS_PASSWORD='$REDIS_PW' SWITCHBOARD_REDIS_TLS_CERT='$PKI/client.crt'
export SWITCHBOARD_REDIS_TLS_KEY='$PKI/client.key'
export ASAN_OPTIONS="\${ASAN_OPTIONS:-}:log_path=$TMP/san-con" UBSAN_OPTIONS="\${UBSAN_OPTIONS:-}:log_path=$TMP/san-con"
"$SB" console --fleet "rediss://127.0.0.1:$RPORT" --fleet-prefix tt: --cacert "$PKI/ca.crt" --log "$TMP/con.log"
echo "EXIT rc=\$?"
exec sleep 3600
SH
  "${TM[@]}" new-session -d -s con -x 160 -y 40 "bash $TMP/con.sh"
  con_has() { "${TM[@]}" capture-pane -p -t con | matches -E -- "$1"; }
  check "console --fleet rediss:// (--cacert, client certificate) finds both instances" \
    eventually 20 con_has 'fleet: 2 instances'
  check "...and shows target b pinned (from instance 1)" eventually 10 con_has '^b +pinned'
  "${TM[@]}" send-keys -t con q
  check "the console quits cleanly" eventually 10 con_has 'EXIT rc=0'
  check "the console's log has no password" bash -c "! grep -qF -- '$REDIS_PW' '$TMP/con.log'"
else
  echo "# tmux missing: the console part is skipped"
fi

# ---- 2. verification -------------------------------------------------------------------------------
write_config 3 "\"tls_ca_file\": \"$PKI/rogue.crt\", \"tls_cert_file\": \"$PKI/client.crt\", \"tls_key_file\": \"$PKI/client.key\""
start_inst 3 || exit 1
# its first connection's end is in its log: only then does fleet_up 0 say it was refused
check "an instance trusting another CA logs the certificate refused" \
  eventually 10 grep -q "certificate of 127.0.0.1 refused" "$TMP/inst3.err"
fleet_up_of() { # fleet_up_of N: the gauge, or why /metrics did not give it
  local out rc
  out=$(curl -s -w '\nHTTP %{http_code} in %{time_total} s' --max-time 5 \
    "http://127.0.0.1:${PORT[$1]}/metrics"); rc=$?
  grep -E '^switchboard_fleet_up ' <<<"$out" || echo "no gauge: curl exit $rc, $(tail -1 <<<"$out")"
}
up3=$(fleet_up_of 3)
check "...and does not join the fleet (/metrics: $up3)" test "$up3" = "switchboard_fleet_up 0"
check "...while it keeps serving calls on local state" test "$(chat_target 3)" = a
write_config 4 "\"tls_ca_file\": \"$PKI/rogue.crt\", \"tls_cert_file\": \"$PKI/client.crt\", \"tls_key_file\": \"$PKI/client.key\", \"tls_insecure_skip_verify\": true"
start_inst 4 || exit 1
check "tls_insecure_skip_verify joins despite the unknown CA" eventually 5 metrics_has 4 '^switchboard_fleet_up 1'
check "...with a loud warning in its log" grep -q "certificate is NOT verified" "$TMP/inst4.err"
write_config 5 "\"tls_ca_file\": \"$PKI/ca.crt\""
start_inst 5 || exit 1
sleep 1.5
check "without a client certificate Redis ends the connection" \
  eventually 5 grep -q "redis unreachable (" "$TMP/inst5.err"
echo "# $(grep -m1 -o 'redis unreachable (.*)' "$TMP/inst5.err")"
check "...and the instance stays out of the fleet" eventually 3 metrics_has 5 '^switchboard_fleet_up 0'
write_config 6 "\"tls_ca_file\": \"$PKI/ca.crt\", \"tls_cert_file\": \"$PKI/client.crt\""
check "a certificate without its key is a config error" bash -c \
  "! '$SB' check -c '$TMP/sb6.json' >'$TMP/check6.out' 2>&1 && grep -q 'tls_key_file' '$TMP/check6.out'"
for n in 3 4 5; do stop_inst $n; done

# ---- 3. Redis restarts: reconnect over TLS ---------------------------------------------------------
kill -9 "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null
check "the outage shows" eventually 5 state_has 1 'fleet: redis unreachable since'
check "calls keep working meanwhile" test "$(chat_target 1)" = b
start_redis || exit 1
check "instance 1 reconnects over TLS" eventually 10 metrics_has 1 '^switchboard_fleet_up 1'
check "instance 2 reconnects over TLS" eventually 10 metrics_has 2 '^switchboard_fleet_up 1'
check "the pin was re-seeded into the new Redis" eventually 5 bash -c \
  "REDISCLI_AUTH='$REDIS_PW' redis-cli --tls --cacert '$PKI/ca.crt' --cert '$PKI/client.crt' --key '$PKI/client.key' -h 127.0.0.1 -p $RPORT HGET tt:ov pin:b | grep -q pin"

# ---- 4. no password anywhere ---------------------------------------------------------------------
for n in 1 2; do
  curl -s "http://127.0.0.1:${PORT[$n]}/metrics" >"$TMP/metrics$n.txt"
  adm $n GET /admin/state >"$TMP/state$n.json"
  check "instance $n exits cleanly" stop_inst $n
done
check "the Redis password is in no log, /metrics or /admin/state" bash -c \
  "! grep -rlF -- '$REDIS_PW' '$TMP'/inst*.out '$TMP'/inst*.err '$TMP'/metrics*.txt '$TMP'/state*.json"
check "no sanitizer report" bash -c "! grep -qE 'Sanitizer|runtime error' '$TMP'/inst*.err"
finish
