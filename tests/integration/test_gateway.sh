#!/usr/bin/env bash
# The gateway end to end: `switchboard serve` in front of two simulators, driven with curl the
# way the OpenAI SDKs talk to it. Answer shapes (python3 checks), headers, streaming chunks
# and [DONE], include_usage, tool-call deltas, every client error status, /v1/models,
# /healthz, /readyz, /metrics, the admin API (off / wrong token / right token), a drain that
# moves traffic, upstream failures mapped to statuses, a stream cut mid-way, a client that
# leaves mid-stream, and a clean shutdown with a stream in flight (it drains: the stream
# finishes; test_drain.sh covers the rest of stopping). SB_GW_THREADS sets gateway.threads
# (default 0, the router's loop, what 2 or fewer cores get by default; test_gateway_threaded.sh
# runs it with 2, MHD threads of its own).
source "$(dirname "$0")/lib.sh"

export SIM_KEY=sim-key-0123456789abcdef
export SB_TEST_ADMIN=admin-token-0123456789
unset SB_TEST_ADMIN_UNSET
start_sim oa --key "$SIM_KEY" --token-rate 0 || exit 1
start_sim alt --no-auth --token-rate 0 || exit 1

write_config() { # write_config FILE ADMIN_ENV
  cat > "$1" <<JSON
{
  "providers": [
    {"name": "oa", "kind": "openai", "base_url": "http://127.0.0.1:${SIM_PORT[oa]}/v1",
     "api_key_env": "SIM_KEY", "model": "gpt-4o-mini",
     "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}},
    {"name": "alt", "kind": "openai-compatible",
     "base_url": "http://127.0.0.1:${SIM_PORT[alt]}/v1", "model": "llama3.2",
     "price": {"input_per_mtok": 0.1, "output_per_mtok": 0.1}}
  ],
  "routes": [
    {"name": "chat", "targets": ["oa", "alt"]},
    {"name": "solo", "targets": ["alt"]}
  ],
  "rules": [ {"match": {"tag": "cheap"}, "route": "solo"} ],
  "router": {"backoff_base_ms": 10, "backoff_cap_ms": 50},
  "guard": {"enabled": false},
  "gateway": {"listen": "127.0.0.1:0", "max_body_bytes": 65536, "admin_token_env": "$2",
              "threads": ${SB_GW_THREADS:-0}}
}
JSON
}

# start_sb NAME CONFIG: starts `switchboard serve` (under a soft open-file limit of 256, which
# it must raise); sets GW (base URL) for NAME=sb.
declare -A SB_URL SB_PID
start_sb() {
  local name=$1 cfg=$2 pf=$TMP/$1.port
  (ulimit -Sn 256 && exec "$SB" serve -c "$cfg" --port-file "$pf") >"$TMP/$name.out" 2>"$TMP/$name.err" &
  SB_PID[$name]=$!
  PIDS+=($!)
  if ! wait_for "$pf" 10; then
    echo "switchboard $name did not start:"; cat "$TMP/$name.err"; return 1
  fi
  SB_URL[$name]="http://127.0.0.1:$(head -1 "$pf" | tr -d ' \n')"
}

write_config "$TMP/sb.json" SB_TEST_ADMIN
write_config "$TMP/off.json" SB_TEST_ADMIN_UNSET
start_sb sb "$TMP/sb.json" || exit 1
start_sb off "$TMP/off.json" || exit 1
check "serve raises its open-file limit to the hard limit" nofile_raised "${SB_PID[sb]}"
GW=${SB_URL[sb]}
check "serve prints where it listens" grep -q "switchboard serving on 127.0.0.1:" "$TMP/sb.out"

# chat NAME JSON [curl args...]: POST to /v1/chat/completions; body -> $TMP/NAME.body,
# headers -> $TMP/NAME.hdr, status -> $TMP/NAME.code.
chat() {
  local n=$1 d=$2; shift 2
  curl -s -N --max-time 30 -D "$TMP/$n.hdr" -o "$TMP/$n.body" -w '%{http_code}' \
    -H 'Content-Type: application/json' --data-binary "$d" "$@" "$GW/v1/chat/completions" \
    >"$TMP/$n.code"
}
get() { # get NAME PATH [curl args...]
  local n=$1 p=$2; shift 2
  curl -s --max-time 10 -D "$TMP/$n.hdr" -o "$TMP/$n.body" -w '%{http_code}' "$@" "$GW$p" \
    >"$TMP/$n.code"
}
code() { cat "$TMP/$1.code"; }
hdr() { grep -i "^$2:" "$TMP/$1.hdr" | head -1 | cut -d: -f2- | tr -d ' \r'; }
body_py() { python3 -c "import json,sys; j=json.load(open('$TMP/$1.body')); sys.exit(0 if ($2) else 1)"; }
admin() { # admin NAME METHOD PATH [JSON]
  local n=$1 m=$2 p=$3 d=${4:-}
  curl -s --max-time 10 -o "$TMP/$n.body" -w '%{http_code}' -X "$m" \
    -H "Authorization: Bearer $SB_TEST_ADMIN" ${d:+--data-binary "$d"} "$GW$p" >"$TMP/$n.code"
}
metric() { curl -s --max-time 10 "$GW/metrics" | grep -v '^#' | grep -F "$1" | head -1 | awk '{print $NF}'; }

# SSE summary: every "data:" event parsed into $TMP/NAME.sse (JSON).
cat > "$TMP/sse.py" <<'PY'
import json, sys
raw = open(sys.argv[1], encoding="utf-8").read()
s = {"events": 0, "parse_ok": True, "done": False, "after_done": False, "first_role": None,
     "content": "", "finish": [], "usage_chunks": 0, "usage": None, "usage_nulls": 0,
     "error": None, "tools": {}, "ids": [], "models": [], "objects": []}
for ev in [e for e in raw.split("\n\n") if e.strip()]:
    if not ev.startswith("data: "):
        s["parse_ok"] = False; continue
    data = ev[6:]
    s["events"] += 1
    if s["done"]: s["after_done"] = True
    if data == "[DONE]":
        s["done"] = True; continue
    try: j = json.loads(data)
    except Exception: s["parse_ok"] = False; continue
    if "error" in j:
        s["error"] = j["error"]; continue
    s["ids"].append(j.get("id")); s["models"].append(j.get("model")); s["objects"].append(j.get("object"))
    if "usage" in j and j["usage"] is None: s["usage_nulls"] += 1
    if j.get("choices") == []:
        s["usage_chunks"] += 1; s["usage"] = j.get("usage"); continue
    c = j["choices"][0]; d = c["delta"]
    if s["first_role"] is None: s["first_role"] = d.get("role")
    s["content"] += d.get("content") or ""
    for tc in d.get("tool_calls") or []:
        t = s["tools"].setdefault(str(tc["index"]), {"id": None, "name": None, "arguments": ""})
        if tc.get("id"): t["id"] = tc["id"]
        fn = tc.get("function") or {}
        if fn.get("name"): t["name"] = fn["name"]
        t["arguments"] += fn.get("arguments") or ""
    if c.get("finish_reason"): s["finish"].append(c["finish_reason"])
json.dump(s, open(sys.argv[2], "w"))
PY
sse() { python3 "$TMP/sse.py" "$TMP/$1.body" "$TMP/$1.sse"; }
sse_py() { python3 -c "import json,sys; s=json.load(open('$TMP/$1.sse')); sys.exit(0 if ($2) else 1)"; }

MSG='"messages":[{"role":"user","content":"Tell me about switchboards"}]'

# ---- non-streaming ----------------------------------------------------------------------
chat full "{\"model\":\"chat\",$MSG}" -H 'x-request-id: my req<1>'
check "non-stream: 200" test "$(code full)" = 200
check "non-stream: chat.completion shape" body_py full \
  "j['object']=='chat.completion' and j['id'].startswith('chatcmpl-') and j['model']=='chat' \
   and isinstance(j['created'],int) and len(j['choices'])==1 \
   and j['choices'][0]['index']==0 and j['choices'][0]['message']['role']=='assistant' \
   and isinstance(j['choices'][0]['message']['content'],str) \
   and len(j['choices'][0]['message']['content'])>0 \
   and j['choices'][0]['finish_reason']=='stop' and 'logprobs' in j['choices'][0]"
check "non-stream: usage with totals and cached tokens" body_py full \
  "j['usage']['total_tokens']==j['usage']['prompt_tokens']+j['usage']['completion_tokens'] \
   and j['usage']['completion_tokens']>0 and 'cached_tokens' in j['usage']['prompt_tokens_details']"
check "non-stream: x-request-id is the client's, sanitised" test "$(hdr full x-request-id)" = "myreq1"
check "non-stream: id is chatcmpl-<request id>" body_py full "j['id']=='chatcmpl-myreq1'"
check "non-stream: x-switchboard-target names a target" grep -qiE '^x-switchboard-target: (oa|alt)' "$TMP/full.hdr"
check "non-stream: x-switchboard-attempts" grep -qiE '^x-switchboard-attempts: [1-9]' "$TMP/full.hdr"
check "non-stream: x-switchboard-cost-usd has 6 decimals" grep -qiE '^x-switchboard-cost-usd: [0-9]+\.[0-9]{6}' "$TMP/full.hdr"
check "non-stream: x-switchboard-overhead-us" grep -qiE '^x-switchboard-overhead-us: [0-9]+' "$TMP/full.hdr"
check "non-stream: content-type json" grep -qi '^content-type: application/json' "$TMP/full.hdr"

chat gen "{\"model\":\"chat\",$MSG}"
check "a generated x-request-id when the client sent none" grep -qiE '^x-request-id: [0-9a-f]{16}' "$TMP/gen.hdr"

# ---- streaming --------------------------------------------------------------------------
chat st "{\"model\":\"chat\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"echo: exactly this\"}]}"
sse st
check "stream: 200 text/event-stream" test "$(code st)" = 200
check "stream: content-type" grep -qi '^content-type: text/event-stream' "$TMP/st.hdr"
check "stream: cache-control no-cache" grep -qi '^cache-control: no-cache' "$TMP/st.hdr"
check "stream: x-switchboard-target and attempts" \
  bash -c "grep -qiE '^x-switchboard-target: (oa|alt)' '$TMP/st.hdr' && grep -qiE '^x-switchboard-attempts: [1-9]' '$TMP/st.hdr'"
check "stream: x-request-id" grep -qiE '^x-request-id: [0-9a-f]{16}' "$TMP/st.hdr"
check "stream: every event parses" sse_py st "s['parse_ok'] and s['events']>=4"
check "stream: first delta is the assistant role" sse_py st "s['first_role']=='assistant'"
check "stream: chunks name the call" sse_py st \
  "set(s['objects'])=={'chat.completion.chunk'} and set(s['models'])=={'chat'} and len(set(s['ids']))==1 and s['ids'][0].startswith('chatcmpl-')"
check "stream: text deltas add up" sse_py st "s['content']=='exactly this'"
check "stream: one finish_reason stop" sse_py st "s['finish']==['stop']"
check "stream: ends with [DONE]" sse_py st "s['done'] and not s['after_done'] and s['error'] is None"
check "stream: no usage chunk unless asked" sse_py st "s['usage_chunks']==0 and s['usage_nulls']==0"

chat stu "{\"model\":\"chat\",\"stream\":true,\"stream_options\":{\"include_usage\":true},$MSG}"
sse stu
check "include_usage: one usage chunk with choices []" sse_py stu \
  "s['usage_chunks']==1 and s['usage']['total_tokens']==s['usage']['prompt_tokens']+s['usage']['completion_tokens']"
check "include_usage: then [DONE]" sse_py stu "s['done'] and not s['after_done']"

TOOLS='"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],"tool_choice":"required"'
chat tool "{\"model\":\"chat\",\"stream\":true,$TOOLS,\"messages\":[{\"role\":\"user\",\"content\":\"What is the weather in Paris?\"}]}"
sse tool
check "stream tool call: name, id and argument deltas" sse_py tool \
  "s['tools']['0']['name']=='get_weather' and s['tools']['0']['id'] and json.loads(s['tools']['0']['arguments'])=={'city':'Paris'}"
check "stream tool call: finish_reason tool_calls" sse_py tool "s['finish']==['tool_calls'] and s['done']"
chat toolf "{\"model\":\"chat\",$TOOLS,\"messages\":[{\"role\":\"user\",\"content\":\"What is the weather in Paris?\"}]}"
check "non-stream tool call: null content and tool_calls" body_py toolf \
  "j['choices'][0]['message']['content'] is None and j['choices'][0]['finish_reason']=='tool_calls' \
   and j['choices'][0]['message']['tool_calls'][0]['type']=='function' \
   and json.loads(j['choices'][0]['message']['tool_calls'][0]['function']['arguments'])=={'city':'Paris'}"

chat h10 "{\"model\":\"chat\",\"stream\":true,$MSG}" --http1.0
sse h10
check "stream to an HTTP/1.0 client (no chunked encoding): complete" sse_py h10 "s['parse_ok'] and s['done']"

# Many streams at once: every one complete, none lost to a suspend/resume race.
cat > "$TMP/many.py" <<'PY'
import asyncio, json, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
def req(i):
    body = json.dumps({"model": "chat", "stream": i % 4 != 0,
                       "messages": [{"role": "user", "content": "echo: n%d" % i}]}).encode()
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
async def one(i):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(req(i)); await w.drain()
    data = await asyncio.wait_for(r.read(-1), 30)
    w.close()
    ok = b" 200 " in data.split(b"\r\n", 1)[0]
    return ok and (b"[DONE]" in data if i % 4 else b"chat.completion" in data) and (b"n%d" % i) in data
async def main():
    res = await asyncio.gather(*[one(i) for i in range(n)], return_exceptions=True)
    good = sum(1 for x in res if x is True)
    sys.exit(0 if good == n else 1)
asyncio.run(main())
PY
check "200 concurrent calls (150 streams) all complete" python3 "$TMP/many.py" "${GW##*:}" 200

# ---- client errors ----------------------------------------------------------------------
err_shape() { body_py "$1" "set(j['error'])=={'message','type','param','code'} and j['error']['message']"; }
chat bad '{"model":"chat","messages":'
check "malformed JSON: 400" test "$(code bad)" = 400
check "malformed JSON: invalid_request_error" body_py bad "j['error']['type']=='invalid_request_error'"
check "malformed JSON: OpenAI error shape" err_shape bad
python3 -c "import json; print(json.dumps({'model':'chat','messages':[{'role':'user','content':'x'*70000}]}))" > "$TMP/big.json"
curl -s --max-time 10 -o "$TMP/big.body" -w '%{http_code}' --data-binary @"$TMP/big.json" "$GW/v1/chat/completions" >"$TMP/big.code"
check "body over max_body_bytes: 413" test "$(code big)" = 413
check "413: OpenAI error shape" err_shape big
curl -s --max-time 10 -o "$TMP/bigc.body" -w '%{http_code}' -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/big.json" "$GW/v1/chat/completions" >"$TMP/bigc.code"
check "chunked body over the cap: 413" test "$(code bigc)" = 413
# Request headers are bounded by the connection's memory (12 KB): 8 KB pass, 20 KB get 431.
chat hdr8k "{\"model\":\"chat\",$MSG}" -H "x-filler: $(head -c 8000 /dev/zero | tr '\0' a)"
check "8 KB of request headers: served" test "$(code hdr8k)" = 200
chat hdr20k "{\"model\":\"chat\",$MSG}" -H "x-filler: $(head -c 20000 /dev/zero | tr '\0' a)"
check "20 KB of request headers: 431" test "$(code hdr20k)" = 431
chat nomodel "{\"model\":\"gpt-nope\",$MSG}"
check "unknown model: 404" test "$(code nomodel)" = 404
check "unknown model: model_not_found listing routes" body_py nomodel \
  "j['error']['code']=='model_not_found' and 'chat' in j['error']['message'] and 'solo' in j['error']['message']"
chat unsup "{\"model\":\"chat\",\"logit_bias\":{\"1\":2},$MSG}"
check "unsupported parameter: 400 naming it" body_py unsup \
  "j['error']['param']=='logit_bias' and 'logit_bias' in j['error']['message']"
check "unsupported parameter: status 400" test "$(code unsup)" = 400
get wrongm /v1/chat/completions
check "wrong method: 405" test "$(code wrongm)" = 405
check "wrong method: Allow header" grep -qi '^allow: POST' "$TMP/wrongm.hdr"
get nopath /v2/everything
check "unknown path: 404" test "$(code nopath)" = 404
check "unknown path: error shape" err_shape nopath
check "errors carry x-request-id" grep -qi '^x-request-id: ' "$TMP/nopath.hdr"

# ---- tags pick routes --------------------------------------------------------------------
chat tagged "{\"model\":\"chat\",$MSG}" -H 'x-switchboard-tag: cheap'
check "x-switchboard-tag routes by rule" test "$(hdr tagged x-switchboard-target)" = alt

# ---- models, health, readiness, metrics ---------------------------------------------------
get models /v1/models
check "/v1/models: 200" test "$(code models)" = 200
check "/v1/models: routes as model objects" body_py models \
  "j['object']=='list' and sorted(m['id'] for m in j['data'])==['chat','solo'] \
   and all(m['object']=='model' and m['owned_by']=='switchboard' and isinstance(m['created'],int) for m in j['data'])"
get health /healthz
check "/healthz: 200 ok" bash -c "test \"\$(cat $TMP/health.code)\" = 200 && test \"\$(cat $TMP/health.body)\" = ok"
get ready /readyz
check "/readyz: 200 with a usable target" test "$(code ready)" = 200
get metrics /metrics
check "/metrics: 200" test "$(code metrics)" = 200
check "/metrics: text format 0.0.4" grep -qi '^content-type: text/plain; version=0.0.4' "$TMP/metrics.hdr"
for fam in "switchboard_requests_total counter" "switchboard_errors_total counter" \
           "switchboard_latency_seconds histogram" "switchboard_ttft_seconds histogram" \
           "switchboard_tokens_total counter" "switchboard_spend_usd_total counter" \
           "switchboard_breaker_state gauge" "switchboard_weight gauge" "switchboard_in_flight gauge" \
           "switchboard_retries_total counter" "switchboard_hedges_total counter" \
           "switchboard_truncated_streams_total counter" "switchboard_gateway_requests_total counter" \
           "switchboard_gateway_overhead_seconds histogram"; do
  check "/metrics: # TYPE $fam" grep -qx "# TYPE $fam" "$TMP/metrics.body"
done
check "/metrics: requests counted per target" grep -qE '^switchboard_requests_total\{target="(oa|alt)"\} [1-9]' "$TMP/metrics.body"
check "/metrics: gateway statuses counted" grep -qE '^switchboard_gateway_requests_total\{code="200"\} [1-9]' "$TMP/metrics.body"
check "/metrics: overhead histogram counted" grep -qE '^switchboard_gateway_overhead_seconds_count [1-9]' "$TMP/metrics.body"

# ---- admin API ----------------------------------------------------------------------------
curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $SB_TEST_ADMIN" \
  "${SB_URL[off]}/admin/state" >"$TMP/off.code"
check "admin off without a token: 404" test "$(code off)" = 404
get noauth /admin/state
check "admin without Authorization: 401" test "$(code noauth)" = 401
get wrongauth /admin/state -H 'Authorization: Bearer wrong-token'
check "admin with a wrong token: 401" test "$(code wrongauth)" = 401
admin state GET /admin/state
check "admin state: 200" test "$(code state)" = 200
check "admin state: targets, routes, events" body_py state \
  "sorted(t['name'] for t in j['targets'])==['alt','oa'] and 'stats' in j['targets'][0] \
   and 'breaker' in j['targets'][0] and len(j['routes'])==2 and isinstance(j['events'],list)"
admin explain GET "/admin/explain?model=chat&prompt_tokens=12"
check "admin explain: text" body_py explain "'chat' in j['explain']"
admin w POST /admin/targets/oa/weight '{"weight":3,"expires_in_s":60}'
check "admin weight: 200 with the target's new state" body_py w "j['ok'] and j['target']['name']=='oa' and j['target']['weight']==3"
admin wbad POST /admin/targets/oa/weight '{"weight":-1}'
check "admin weight: bad value 400" test "$(code wbad)" = 400
admin nobody POST /admin/targets/nobody/drain
check "admin unknown target: 404" test "$(code nobody)" = 404
admin st1 GET /admin/state
check "admin state previews the undo (the weight on oa, by admin)" body_py st1 \
  "j['undo']['target']=='oa' and j['undo']['action']=='weight' and j['undo']['user'].startswith('admin') \
   and j['undo']['restores']=='weight 1' and j['undo']['id']>0 and j['undo']['lapsed'] is False"
uid=$(python3 -c "import json; print(json.load(open('$TMP/st1.body'))['undo']['id'])")
admin undo POST /admin/undo "{\"undo_id\":$uid}"
check "admin undo of the previewed change: 200" test "$(code undo)" = 200
admin undo2 POST /admin/undo "{\"undo_id\":$uid}"
check "the same undo again: 409, nothing done" test "$(code undo2)" = 409
check "...saying it was already undone" grep -q 'already undone' "$TMP/undo2.body"
admin undo3 POST /admin/undo '{"undo_id":"x"}'
check "a bad undo_id: 400" test "$(code undo3)" = 400
admin drain POST /admin/targets/oa/drain
check "admin drain: 200, target drained" body_py drain "j['target']['drained'] is True"
routed=""
for i in 1 2 3 4 5 6; do
  chat "dr$i" "{\"model\":\"chat\",$MSG}"
  routed+="$(hdr "dr$i" x-switchboard-target) "
done
check "after a drain, traffic avoids the drained target ($routed)" test "$routed" = "alt alt alt alt alt alt "
admin drain2 POST /admin/targets/alt/drain
get notready /readyz
check "/readyz: 503 when no route has a usable target" test "$(code notready)" = 503
check "/readyz: says why" grep -q drained "$TMP/notready.body"
chat none "{\"model\":\"chat\",$MSG}"
check "all targets unavailable: 503" test "$(code none)" = 503
check "all targets unavailable: error shape" err_shape none
admin c1 POST /admin/targets/oa/clear
admin c2 POST /admin/targets/alt/clear
check "admin clear: 200" bash -c "test \"\$(cat $TMP/c1.code)\" = 200 && test \"\$(cat $TMP/c2.code)\" = 200"
admin ev GET /admin/state
check "admin commands are audit events naming the token (admin) and the address" body_py ev \
  "any(e['kind']=='operator' and 'admin@127.0.0.1' in e['text'] for e in j['events'])"

# ---- upstream failures ----------------------------------------------------------------------
sim_behavior alt '{"error_rate":1,"error_statuses":[503]}'
chat fail5 "{\"model\":\"solo\",$MSG}"
check "upstream 5xx on every attempt: 502/503 ($(code fail5))" bash -c "[[ \$(cat $TMP/fail5.code) == 50[23] ]]"
check "upstream failure: error shape with type" body_py fail5 "j['error']['type'] in ('upstream_error','server_error')"
check "upstream failure: attempts header" grep -qiE '^x-switchboard-attempts: [1-9]' "$TMP/fail5.hdr"
sim_behavior alt '{"reset":true}'
admin r1 POST /admin/targets/alt/reset

sim_behavior alt '{"rate_limit":{"status":429,"retry_after_s":7}}'
chat rl "{\"model\":\"solo\",$MSG}"
check "upstream rate limit: 429 ($(code rl))" test "$(code rl)" = 429
check "upstream rate limit: Retry-After" grep -qiE '^retry-after: [1-9]' "$TMP/rl.hdr"
sim_behavior alt '{"reset":true}'
admin r2 POST /admin/targets/alt/reset

sim_behavior alt '{"cut_after_tokens":3}'
chat cut "{\"model\":\"solo\",\"stream\":true,$MSG}"
sse cut
check "stream cut mid-way: 200 then an error chunk" sse_py cut "s['error'] is not None and s['error']['code']=='truncated'"
check "stream cut mid-way: no [DONE]" sse_py cut "not s['done']"
sim_behavior alt '{"reset":true}'
admin r3 POST /admin/targets/alt/reset

# ---- a client that leaves mid-stream ------------------------------------------------------------
sim_behavior alt '{"token_rate":5}'
gone_before=$(metric 'switchboard_gateway_clients_gone_total ')
curl -s -N --max-time 1 -H 'Content-Type: application/json' \
  --data-binary "{\"model\":\"solo\",\"stream\":true,$MSG}" "$GW/v1/chat/completions" >/dev/null
inflight=1
for _ in $(seq 50); do
  inflight=$(metric 'switchboard_in_flight{target="alt"}')
  [[ $inflight == 0 ]] && break
  sleep 0.1
done
check "client gone mid-stream: the call is cancelled" test "$inflight" = 0
check "client gone mid-stream: counted" test "$(metric 'switchboard_gateway_clients_gone_total ')" -gt "${gone_before:-0}"

# ---- shutdown with a stream in flight ---------------------------------------------------------
chat last "{\"model\":\"solo\",\"stream\":true,\"max_tokens\":10,$MSG}" &  # 10 pieces at 5/s: 2 s
last_pid=$!
sleep 0.5
kill -TERM "${SB_PID[sb]}"
wait "$last_pid"
stopped=1
for _ in $(seq 100); do kill -0 "${SB_PID[sb]}" 2>/dev/null || { stopped=0; break; }; sleep 0.1; done
check "SIGTERM with a stream in flight: exits" test "$stopped" = 0
wait "${SB_PID[sb]}"; rc=$?
check "SIGTERM: exit status 0" test "$rc" = 0
sse last
check "SIGTERM drains: the stream in flight finishes ([DONE], no error)" sse_py last "s['error'] is None and s['done']"
check "no sanitizer or MHD panic output" bash -c "! grep -qE 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error|panic' '$TMP/sb.err'"

finish
