#!/usr/bin/env bash
# Clients that misbehave, against `switchboard serve` and the simulator:
#  - slowloris: drip-fed connections from one address are capped at accept
#    (max_connections_per_client) and cut at request_timeout_ms, both logged and counted in
#    /metrics, while /healthz, /readyz, /metrics and /admin/ stay reachable on admin_listen
#    (and only there for /admin/); once the drip is cut a normal client is served;
#  - request bytes held across connections are capped (max_body_bytes_total): a request
#    that would go over gets 503 with Retry-After, logged and counted.
# Every drip is bounded (drip.py: loopback, at most a few seconds, stops by itself).
source "$(dirname "$0")/lib.sh"
DRIP="python3 $(dirname "$0")/drip.py"

export SB_TEST_ADMIN=admin-token-0123456789
start_sim up --no-auth --token-rate 0 || exit 1

write_config() { # write_config FILE REQUEST_TIMEOUT_MS
  cat > "$1" <<JSON
{
  "providers": [
    {"name": "up", "kind": "openai-compatible", "base_url": "http://127.0.0.1:${SIM_PORT[up]}/v1",
     "model": "m"}
  ],
  "routes": [ {"name": "chat", "targets": ["up"]} ],
  "guard": {"enabled": false},
  "gateway": {"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0",
              "admin_token_env": "SB_TEST_ADMIN", "max_connections": 40,
              "max_connections_per_client": 30, "request_timeout_ms": $2,
              "max_body_bytes": 65536, "max_body_bytes_total": 100000}
}
JSON
}

ops() { # ops NAME PATH [curl args]: a request to admin_listen; status -> NAME.code
  local n=$1 p=$2; shift 2
  curl -s --max-time 2 -o "$TMP/$n.body" -w '%{http_code}' "$@" "http://127.0.0.1:$OPS_PORT$p" \
    >"$TMP/$n.code"
}
code() { cat "$TMP/$1.code"; }
ops_metric() { # ops_metric NAME: a /metrics sample read on admin_listen
  curl -s --max-time 2 "http://127.0.0.1:$OPS_PORT/metrics" |
    awk -v k="$1" 'index($0, k" ") == 1 { print $2; exit }'
}
chat() { # chat NAME [curl args]: a normal client on the API port
  local n=$1; shift
  curl -s --max-time 15 -D "$TMP/$n.hdr" -o "$TMP/$n.body" -w '%{http_code}' \
    -H 'Content-Type: application/json' "$@" \
    --data-binary '{"model":"chat","messages":[{"role":"user","content":"hi"}]}' \
    "http://127.0.0.1:$SB_PORT/v1/chat/completions" >"$TMP/$n.code"
}
jq_py() { python3 -c "import json,sys; j=json.load(open('$1')); sys.exit(0 if ($2) else 1)"; }

# ---- slowloris -------------------------------------------------------------------------------
write_config "$TMP/a.json" 3000
start_serve "$TMP/a.json" || exit 1
OPS_PORT=$(sed -n 2p "$TMP/serve.port")
check "the port file names the admin_listen port" test -n "$OPS_PORT"
check "serve prints where the ops endpoints are" grep -q "ops endpoints" "$TMP/serve.out"

ops adm_api_before /admin/state -H "Authorization: Bearer $SB_TEST_ADMIN"
check "admin_listen: the admin API answers there" test "$(code adm_api_before)" = 200
curl -s --max-time 2 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $SB_TEST_ADMIN" \
  "http://127.0.0.1:$SB_PORT/admin/state" >"$TMP/adm_main.code"
check "admin_listen: /admin/ is not on the API port ($(code adm_main))" test "$(code adm_main)" = 404
ops v1_on_ops /v1/models
check "admin_listen: /v1/ is not on the ops port ($(code v1_on_ops))" test "$(code v1_on_ops)" = 404

# 60 drip-fed connections from 127.0.0.2 (30 over the per-address cap: closed at accept),
# then 20 from 127.0.0.3: the API listener (40 connections) is saturated, and 10 of them
# wait in the backlog until the deadline frees a slot.
$DRIP "$SB_PORT" --n 60 --source 127.0.0.2 --duration 7 >"$TMP/drip2.json" &
d2=$!
sleep 0.5
$DRIP "$SB_PORT" --n 20 --source 127.0.0.3 --duration 7 >"$TMP/drip3.json" &
d3=$!
sleep 0.5
t0=$(date +%s%N)
ops h1 /healthz
ops r1 /readyz
ops m1 /metrics
ops a1 /admin/state -H "Authorization: Bearer $SB_TEST_ADMIN"
t1=$(date +%s%N)
check "saturated: /healthz answers on admin_listen" test "$(code h1)" = 200
check "saturated: /readyz answers on admin_listen" test "$(code r1)" = 200
check "saturated: /metrics answers on admin_listen" test "$(code m1)" = 200
check "saturated: /admin/ answers on admin_listen" test "$(code a1)" = 200
check "saturated: all four within 2 s ($(( (t1 - t0) / 1000000 )) ms)" test $(( (t1 - t0) / 1000000 )) -lt 2000
api_full() { test "$(ops_metric 'switchboard_gateway_connections{listener="api"}')" = 40; }
check "saturated: /metrics shows the API listener full" eventually 2 api_full
refused_25() { test "$(ops_metric switchboard_gateway_connections_refused_total)" -ge 25; }
check "per-address cap: connections over it are counted" eventually 2 refused_25
wait "$d2" "$d3"
check "per-address cap: drip from one address got about 30 connections, the rest closed at once" \
  jq_py "$TMP/drip2.json" "j['closed_early'] >= 25 and j['opened'] == 60"
check "receive deadline: every held drip connection was cut, none outlived ~4 s" \
  jq_py "$TMP/drip2.json" "j['closed_late'] >= 25 and j['latest_close_s'] < 4.5 and j['still_open'] == 0"
check "receive deadline: the other address's drip was cut too" \
  jq_py "$TMP/drip3.json" "j['closed_late'] >= 1 and j['latest_close_s'] < 7"
chat after
check "after the drip: a normal client is served ($(code after))" test "$(code after)" = 200
check "receive deadline: counted in /metrics" \
  test "$(metric switchboard_gateway_request_timeouts_total)" -ge 30
check "saturation: counted in /metrics" \
  test "$(metric switchboard_gateway_connections_saturated_total)" -ge 1
check "receive deadline: logged" grep -q "had not sent a whole request within 3000 ms" "$TMP/serve.err"
check "per-address cap: logged" grep -q "max_connections_per_client" "$TMP/serve.err"
check "saturation: logged" grep -q "every connection of 127.0.0.1:0 is taken" "$TMP/serve.err"

# A slow body (whole headers, body dripped) is cut by the same deadline.
$DRIP "$SB_PORT" --n 3 --source 127.0.0.4 --duration 5 --body --length 1000 >"$TMP/dripb.json"
check "receive deadline: a dripped body is cut too" \
  jq_py "$TMP/dripb.json" "j['closed_late'] == 3 and j['latest_close_s'] < 4.5"
kill -TERM "$SB_PID"; wait "$SB_PID"

# ---- request bytes held across connections -----------------------------------------------------
write_config "$TMP/b.json" 20000
start_serve "$TMP/b.json" || exit 1
OPS_PORT=$(sed -n 2p "$TMP/serve.port")
# One client declares 60000 bytes and sends them slowly: they are held from the start.
$DRIP "$SB_PORT" --n 1 --source 127.0.0.5 --duration 3 --body >/dev/null &
hold=$!
held() { [[ $(metric switchboard_gateway_request_bytes) -ge 60000 ]] 2>/dev/null; }
check "request bytes: held bytes show in /metrics" eventually 3 held # the drip client starts slowly on a loaded machine
big=$(python3 -c "print('{\"model\":\"chat\",\"messages\":[{\"role\":\"user\",\"content\":\"' + 'x'*50000 + '\"}]}')")
printf '%s' "$big" >"$TMP/big.json"
curl -s --max-time 5 -D "$TMP/over.hdr" -o "$TMP/over.body" -w '%{http_code}' \
  -H 'Content-Type: application/json' --data-binary @"$TMP/big.json" \
  "http://127.0.0.1:$SB_PORT/v1/chat/completions" >"$TMP/over.code"
check "request bytes: a request that would go over the total gets 503 ($(code over))" \
  test "$(code over)" = 503
check "request bytes: with Retry-After" grep -qi '^retry-after: 1' "$TMP/over.hdr"
check "request bytes: the error names the setting" grep -q max_body_bytes_total "$TMP/over.body"
curl -s --max-time 5 -o "$TMP/overc.body" -w '%{http_code}' -H 'Content-Type: application/json' \
  -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/big.json" \
  "http://127.0.0.1:$SB_PORT/v1/chat/completions" >"$TMP/overc.code"
check "request bytes: a chunked upload that goes over gets 503 too ($(code overc))" \
  test "$(code overc)" = 503
check "request bytes: counted in /metrics" \
  test "$(metric switchboard_gateway_request_bytes_refused_total)" -ge 2
check "request bytes: logged" grep -q "would go over gateway.max_body_bytes_total" "$TMP/serve.err"
chat small
check "request bytes: a small request still fits ($(code small))" test "$(code small)" = 200
wait "$hold"
sleep 0.3
curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
  --data-binary @"$TMP/big.json" "http://127.0.0.1:$SB_PORT/v1/chat/completions" >"$TMP/big2.code"
check "request bytes: once released, the big request is taken ($(code big2))" test "$(code big2)" = 200
check "request bytes: nothing held when idle" test "$(metric switchboard_gateway_request_bytes)" = 0
kill -TERM "$SB_PID"; wait "$SB_PID"
check "no sanitizer output" bash -c "! grep -qE '(ERROR|WARNING): (Address|Leak|Thread)Sanitizer|runtime error' '$TMP/serve.err'"

finish
