#!/usr/bin/env bash
# Integration test of the provider simulator (build/switchboard-sim): the three wire formats,
# auth, request validation, the control endpoint and every fault, over real HTTP on 127.0.0.1.
# Usage: SB_BUILD=/abs/build/dir bash tests/integration/test_sim.sh
# Optional: SB_SIM_WRAPPER="valgrind -q --leak-check=full --error-exitcode=99" runs the
# simulator under a wrapper; its exit status on SIGTERM is checked last.
# Prints one line per check, then "N passed, N failed"; exits non-zero if anything failed.
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${SB_BUILD:-$root/build}
sim_bin="$build/switchboard-sim"
read -r -a wrapper <<<"${SB_SIM_WRAPPER:-}"
tmp=$(mktemp -d)
key="sim-test-key-4d1f"
passed=0 failed=0 stop_rc=0
sim_pid="" sim2_pid=""
# The interpreter itself, not a shim (pyenv shims cost ~0.3 s per start).
pybin=$(python3 -c 'import sys; print(sys.executable)')
P="" C=""

# alive PID: running (an exited but unreaped child is a zombie, not alive).
alive() {
  local st
  st=$(sed -n 's/^[0-9]* (.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null)
  [[ -n $st && $st != Z ]]
}
# stop_sim PID: SIGTERM, wait up to 10 s, then SIGKILL; sets stop_rc (124: had to kill).
stop_sim() {
  kill -TERM "$1" 2>/dev/null
  for _ in $(seq 1 200); do
    alive "$1" || break
    sleep 0.05
  done
  if alive "$1"; then
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    stop_rc=124
  else
    wait "$1" 2>/dev/null
    stop_rc=$?
  fi
}
cleanup() {
  local p
  for p in $sim_pid $sim2_pid; do stop_sim "$p"; done
  rm -rf "$tmp"
}
trap cleanup EXIT

ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1${2:+: $2}"; failed=$((failed + 1)); }
# check NAME CMD...: runs CMD, passes when it succeeds.
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }

# Starts a simulator; sets the variable named by $1 to its pid and $2/$3 to its ports.
start_sim() {
  local pidvar=$1 portvar=$2 cportvar=$3; shift 3
  local pf="$tmp/ports.$pidvar"
  rm -f "$pf"
  "${wrapper[@]}" "$sim_bin" --port 0 --control-port 0 --port-file "$pf" --key "$key" "$@" \
    >"$tmp/out.$pidvar" 2>"$tmp/err.$pidvar" &
  printf -v "$pidvar" '%s' "$!"
  for _ in $(seq 1 300); do # bounded: 15 s (valgrind starts slowly)
    [[ -s $pf ]] && break
    sleep 0.05
  done
  [[ -s $pf ]] || return 1
  local p c
  read -r p c <"$pf"
  printf -v "$portvar" '%s' "$p"
  printf -v "$cportvar" '%s' "$c"
}

# HTTP helpers. Each writes the body to $tmp/body and the headers to $tmp/hdr and prints
# the status; curl's exit code is left in $tmp/rc.
http() {
  local rc
  rm -f "$tmp/body" "$tmp/hdr"
  curl -sS --max-time 10 -o "$tmp/body" -D "$tmp/hdr" -w '%{http_code}' "$@" 2>"$tmp/curl.err"
  rc=$?
  echo "$rc" >"$tmp/rc"
}
oa() { http "http://127.0.0.1:$P/v1/chat/completions" -H "Authorization: Bearer $key" "$@"; }
an() {
  http "http://127.0.0.1:$P/v1/messages" -H "x-api-key: $key" \
    -H 'anthropic-version: 2023-06-01' "$@"
}
gm() { # gm METHOD [curl args]
  local m=$1; shift
  http "http://127.0.0.1:$P/v1beta/models/gemini-sim:$m" -H "x-goog-api-key: $key" "$@"
}
ctl() { curl -sS --max-time 10 "http://127.0.0.1:$C/_sim/$1" "${@:2}"; }
behave() { ctl behavior -X POST -d "$1" >/dev/null; }
# py CODE: runs python with the last body as `b` (text) and its headers as `h` (lower case).
py() {
  "$pybin" -I -S -c "import json,os,sys
b=open('$tmp/body',encoding='utf-8',errors='replace').read()
h=open('$tmp/hdr').read().lower() if os.path.exists('$tmp/hdr') else ''
$1"
}

OA_BODY='{"model":"gpt-sim","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello there"}]}'
AN_BODY='{"model":"claude-sim","max_tokens":200,"system":"be brief","messages":[{"role":"user","content":"hello there"}]}'
GM_BODY='{"systemInstruction":{"parts":[{"text":"be brief"}]},"contents":[{"role":"user","parts":[{"text":"hello there"}]}]}'
TOOLS_OA='[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]'

if [[ ! -x $sim_bin ]]; then
  bad "simulator binary exists" "$sim_bin"
  echo "$passed passed, $failed failed"
  exit 1
fi
if start_sim sim_pid P C --name alpha; then ok "sim starts and writes its port file"; else
  bad "sim starts and writes its port file" "$(cat "$tmp/err.sim_pid")"
  echo "$passed passed, $failed failed"
  exit 1
fi
check "startup line names both ports" \
  grep -q "^switchboard-sim alpha listening on 127.0.0.1:$P control 127.0.0.1:$C$" "$tmp/out.sim_pid"

# ---- OpenAI --------------------------------------------------------------------------------
s=$(oa -d "$OA_BODY")
check "openai: non-stream chat.completion shape" py "
d=json.loads(b); c=d['choices'][0]; u=d['usage']
assert '$s'=='200' and d['object']=='chat.completion' and d['id'].startswith('chatcmpl-')
assert isinstance(d['created'],int) and d['model']=='gpt-sim'
assert c['message']['role']=='assistant' and len(c['message']['content'])>0
assert c['finish_reason']=='stop'
assert u['total_tokens']==u['prompt_tokens']+u['completion_tokens']>0
assert u['completion_tokens']==len(c['message']['content'].split())
assert u['prompt_tokens_details']['cached_tokens']==0"
oa_text=$(py "print(json.loads(b)['choices'][0]['message']['content'])")

s=$(oa -d "${OA_BODY%\}},\"stream\":true,\"stream_options\":{\"include_usage\":true}}")
check "openai: stream chunks, usage chunk, [DONE]" py "
assert '$s'=='200' and 'content-type: text/event-stream' in h
ev=[l[6:] for l in b.split('\n') if l.startswith('data: ')]
assert ev[-1]=='[DONE]'
ch=[json.loads(e) for e in ev[:-1]]
assert all(c['object']=='chat.completion.chunk' for c in ch)
assert ch[0]['choices'][0]['delta']=={'role':'assistant','content':'','refusal':None}
assert ch[-1]['choices']==[] and ch[-1]['usage']['completion_tokens']>0
assert ch[-2]['choices'][0]['finish_reason']=='stop'
text=''.join(c['choices'][0]['delta'].get('content') or '' for c in ch if c['choices'])
assert text=='''$oa_text''', text"
s=$(oa -d "${OA_BODY%\}},\"stream\":true}")
check "openai: stream without include_usage has no usage chunk" py "
ev=[l[6:] for l in b.split('\n') if l.startswith('data: ')]
assert ev[-1]=='[DONE]' and all(json.loads(e)['choices'] for e in ev[:-1])"

s=$(oa -d "{\"model\":\"m\",\"tools\":$TOOLS_OA,\"messages\":[{\"role\":\"user\",\"content\":\"What is the weather in Paris?\"}]}")
check "openai: weather prompt with tools -> tool_calls" py "
c=json.loads(b)['choices'][0]; tc=c['message']['tool_calls'][0]
assert c['finish_reason']=='tool_calls' and c['message']['content'] is None
assert tc['id'].startswith('call_') and tc['function']['name']=='get_weather'
assert json.loads(tc['function']['arguments'])=={'city':'Paris'}"
s=$(oa -d "{\"model\":\"m\",\"tools\":$TOOLS_OA,\"messages\":[{\"role\":\"user\",\"content\":\"weather?\"},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"21C sunny\"}]}")
check "openai: tool result is quoted back" py "
assert '21C sunny' in json.loads(b)['choices'][0]['message']['content']"
s=$(oa -d '{"model":"m","messages":[{"role":"user","content":"echo: exactly — this 日本"}]}')
check "openai: echo: answers the exact text" py "
assert json.loads(b)['choices'][0]['message']['content']=='exactly — this 日本'"
s=$(oa -d "{\"model\":\"m\",\"messages\":[{\"role\":\"tool\",\"tool_call_id\":\"x\",\"content\":\"r\"}]}")
check "openai: tool message without tool_calls -> 400" py "
assert '$s'=='400' and 'tool_calls' in json.loads(b)['error']['message']"
s=$(oa -d '{"model":"m","messages":[{"role":"user","content":"hi"}],"max_output_tokens":5}')
check "openai: unknown argument -> 400" py "
assert '$s'=='400' and 'Unrecognized request argument' in json.loads(b)['error']['message']"
s=$(oa -d '{"model":"m","messages":[')
check "openai: malformed JSON -> 400" py "
assert '$s'=='400' and json.loads(b)['error']['type']=='invalid_request_error'"
s=$(http "http://127.0.0.1:$P/v1/chat/completions" -H 'Authorization: Bearer wrong' -d "$OA_BODY")
check "openai: wrong key -> 401 invalid_api_key" py "
e=json.loads(b)['error']
assert '$s'=='401' and e['code']=='invalid_api_key' and e['type']=='invalid_request_error'"
s=$(http "http://127.0.0.1:$P/v1/models" -H "Authorization: Bearer $key")
check "openai: GET /v1/models lists a model" py "
d=json.loads(b); assert '$s'=='200' and d['object']=='list' and d['data'][0]['object']=='model'"

# ---- Anthropic -----------------------------------------------------------------------------
s=$(an -d "$AN_BODY")
check "anthropic: non-stream message shape" py "
d=json.loads(b); u=d['usage']
assert '$s'=='200' and d['type']=='message' and d['id'].startswith('msg_')
assert d['role']=='assistant' and d['model']=='claude-sim'
assert d['content'][0]['type']=='text' and d['content'][0]['text']
assert d['stop_reason']=='end_turn' and u['output_tokens']>0 and u['input_tokens']>0
assert u['cache_read_input_tokens']==0"
s=$(an -d "${AN_BODY%\}},\"stream\":true}")
check "anthropic: stream event sequence" py "
blocks=[x for x in b.split('\n\n') if x.strip()]
names=[x.split('\n')[0][7:] for x in blocks]
datas=[json.loads(x.split('\n')[1][6:]) for x in blocks]
assert all(d['type']==n for n,d in zip(names,datas)), names
assert names[:3]==['message_start','content_block_start','ping'], names
assert names[-3:]==['content_block_stop','message_delta','message_stop'], names
assert set(names[3:-3])=={'content_block_delta'}
assert datas[-2]['delta']['stop_reason']=='end_turn' and datas[-2]['usage']['output_tokens']>0"
s=$(an -d '{"model":"c","max_tokens":50,"stream":true,"tools":[{"name":"get_weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],"messages":[{"role":"user","content":"weather in Paris"}]}')
check "anthropic: tool_use streamed as input_json_delta pieces" py "
ds=[json.loads(x.split('\n')[1][6:]) for x in b.split('\n\n') if x.strip()]
js=[d['delta']['partial_json'] for d in ds if d['type']=='content_block_delta' and d['delta']['type']=='input_json_delta']
start=[d for d in ds if d['type']=='content_block_start' and d['content_block']['type']=='tool_use'][0]
assert len([j for j in js if j])>=2 and json.loads(''.join(js))=={'city':'Paris'}
assert start['content_block']['name']=='get_weather' and start['content_block']['id'].startswith('toolu_')
assert ds[-2]['delta']['stop_reason']=='tool_use'"
s=$(an -d '{"model":"c","messages":[{"role":"user","content":"hi"}]}')
check "anthropic: missing max_tokens -> 400" py "
d=json.loads(b); assert '$s'=='400' and d['type']=='error'
assert d['error']['type']=='invalid_request_error' and 'max_tokens' in d['error']['message']"
s=$(an -d '{"model":"c","max_tokens":5,"messages":[{"role":"system","content":"x"},{"role":"user","content":"hi"}]}')
check "anthropic: system role inside messages -> 400" py "
assert '$s'=='400' and 'system' in json.loads(b)['error']['message']"
s=$(an -d '{"model":"c","max_tokens":5,"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]}')
check "anthropic: non-alternating roles -> 400" py "
assert '$s'=='400' and 'alternate' in json.loads(b)['error']['message']"
s=$(http "http://127.0.0.1:$P/v1/messages" -H "x-api-key: $key" -d "$AN_BODY")
check "anthropic: missing anthropic-version -> 400" py "
assert '$s'=='400' and 'anthropic-version' in json.loads(b)['error']['message']"
s=$(http "http://127.0.0.1:$P/v1/messages" -H 'x-api-key: nope' -H 'anthropic-version: 2023-06-01' -d "$AN_BODY")
check "anthropic: wrong key -> 401 authentication_error" py "
d=json.loads(b); assert '$s'=='401' and d['type']=='error' and d['error']['type']=='authentication_error'"

# ---- Gemini --------------------------------------------------------------------------------
s=$(gm generateContent -d "$GM_BODY")
check "gemini: generateContent shape" py "
d=json.loads(b); c=d['candidates'][0]; u=d['usageMetadata']
assert '$s'=='200' and c['content']['role']=='model' and c['content']['parts'][0]['text']
assert c['finishReason']=='STOP' and c['index']==0 and d['modelVersion']=='gemini-sim'
assert u['totalTokenCount']==u['promptTokenCount']+u['candidatesTokenCount']"
s=$(gm 'streamGenerateContent?alt=sse' -d "$GM_BODY")
check "gemini: SSE stream, CRLF framing, final chunk has finishReason + usage" py "
raw=open('$tmp/body','rb').read()
assert '$s'=='200' and 'content-type: text/event-stream' in h and raw.endswith(b'\r\n\r\n')
ch=[json.loads(x[6:]) for x in raw.decode().split('\r\n\r\n') if x.startswith('data: ')]
assert len(ch)>=2 and 'finishReason' not in ch[0]['candidates'][0]
assert ch[-1]['candidates'][0]['finishReason']=='STOP' and ch[-1]['usageMetadata']['candidatesTokenCount']>0"
s=$(gm generateContent -d '{"contents":[{"role":"assistant","parts":[{"text":"hi"}]}]}')
check "gemini: role other than user/model -> 400 INVALID_ARGUMENT" py "
e=json.loads(b)['error']; assert '$s'=='400' and e['status']=='INVALID_ARGUMENT' and e['code']==400"
s=$(gm generateContent -d '{"contents":[{"role":"user","parts":[{"text":"weather?"}]}],"tools":[{"functionDeclarations":[{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}]}]}')
check "gemini: weather prompt with tools -> functionCall with a thought signature" py "
p=json.loads(b)['candidates'][0]['content']['parts'][0]
assert p['functionCall']=={'name':'get_weather','args':{'city':'Paris'}}
assert p['thoughtSignature']=='CiQsim+get_weather/sig=='"
# A model turn with a function call, sent back to a Gemini 3 model with signature SIG.
gm3() { # gm3 SIG_JSON_FIELD
  http "http://127.0.0.1:$P/v1beta/models/gemini-3-flash-preview:generateContent" \
    -H "x-goog-api-key: $key" -d '{"contents":[{"role":"user","parts":[{"text":"weather?"}]},
    {"role":"model","parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris"}}'"$1"'}]},
    {"role":"user","parts":[{"functionResponse":{"name":"get_weather","response":{"t":18}}}]}]}'
}
s=$(gm3 '')
check "gemini 3: a function call sent back without its signature -> 400" py "
e=json.loads(b)['error']; assert '$s'=='400' and 'missing a thought_signature' in e['message']"
s=$(gm3 ',"thoughtSignature":"CiQsim+get_weather/sig=="')
check "gemini 3: with the signature it gave -> 200" test "$s" = 200
s=$(gm3 ',"thoughtSignature":"skip_thought_signature_validator"')
check "gemini 3: with the documented skip value -> 200" test "$s" = 200
s=$(gm3 ',"thoughtSignature":"CiQforged=="')
check "gemini 3: with a signature it never gave -> 400 corrupted" py "
e=json.loads(b)['error']; assert '$s'=='400' and 'Corrupted thought signature' in e['message']"
s=$(http "http://127.0.0.1:$P/v1beta/models/gemini-sim:generateContent" -H 'x-goog-api-key: nope' -d "$GM_BODY")
check "gemini: wrong key -> 401 UNAUTHENTICATED" py "
e=json.loads(b)['error']; assert '$s'=='401' and e['status']=='UNAUTHENTICATED' and e['code']==401"

# ---- answers are deterministic per persona --------------------------------------------------
s=$(oa -d "$OA_BODY")
check "answers repeat for the same prompt" py "
assert json.loads(b)['choices'][0]['message']['content']=='''$oa_text'''"
if start_sim sim2_pid P2 C2 --name beta; then
  http "http://127.0.0.1:$P2/v1/chat/completions" -H "Authorization: Bearer $key" -d "$OA_BODY" >/dev/null
  check "another persona answers differently" py "
assert json.loads(b)['choices'][0]['message']['content']!='''$oa_text'''"
  stop_sim "$sim2_pid"
  sim2_pid=""
else
  bad "second simulator starts"
fi

# ---- faults via the control endpoint -------------------------------------------------------
behave '{"error_rate":1,"error_statuses":[503]}'
s=$(oa -d "$OA_BODY")
check "error_rate 1 with [503] -> 503 server_error" py "
assert '$s'=='503' and json.loads(b)['error']['type']=='server_error'"
behave '{"reset":true,"rate_limit":{"status":429,"retry_after_s":5}}'
s=$(oa -d "$OA_BODY")
check "rate_limit -> 429 with Retry-After and remaining 0" py "
assert '$s'=='429' and 'retry-after: 5' in h and 'retry-after-ms: 5000' in h
assert 'x-ratelimit-remaining-requests: 0' in h
assert json.loads(b)['error']['code']=='rate_limit_exceeded'"
s=$(an -d "$AN_BODY")
check "rate_limit (anthropic) -> 429 rate_limit_error" py "
assert '$s'=='429' and 'anthropic-ratelimit-requests-remaining: 0' in h and 'retry-after: 5' in h
assert json.loads(b)['error']['type']=='rate_limit_error'"
behave '{"reset":true,"outage":"overloaded"}'
s=$(an -d "$AN_BODY")
check "outage overloaded (anthropic) -> 529 overloaded_error" py "
assert '$s'=='529' and json.loads(b)['error']['type']=='overloaded_error'"

behave '{"reset":true,"outage":"refuse"}'
http "http://127.0.0.1:$P/v1/models" -H "Authorization: Bearer $key" >/dev/null
check "outage refuse -> connection refused (curl exit 7)" test "$(cat "$tmp/rc")" = 7
check "control port still answers during refuse" \
  bash -c "curl -sS --max-time 10 http://127.0.0.1:$C/_sim/health | grep -q '\"listening\":false'"
behave '{"outage":"none"}'
s=$(oa -d "$OA_BODY")
check "outage none -> same port serves again" test "$s" = 200

behave '{"reset":true,"cut_after_tokens":2}'
s=$(oa -d '{"model":"m","stream":true,"messages":[{"role":"user","content":"echo: one two three four"}]}')
check "cut_after_tokens 2 -> stream cut without [DONE]" py "
rc=int(open('$tmp/rc').read())
ev=[l[6:] for l in b.split('\n') if l.startswith('data: ')]
content=[json.loads(e)['choices'][0]['delta'].get('content') for e in ev]
assert rc==18 and '[DONE]' not in ev and content[1:]==['one',' two'], (rc, content)"
s=$(an -d "$AN_BODY")
check "cut_after_tokens (non-stream) -> truncated body" py "
assert int(open('$tmp/rc').read())==18
try: json.loads(b); assert False
except ValueError: pass"

behave '{"reset":true,"context_window":3}'
s=$(oa -d "$OA_BODY")
check "context_window -> openai 400 context_length_exceeded" py "
e=json.loads(b)['error']
assert '$s'=='400' and e['code']=='context_length_exceeded' and 'maximum context length is 3' in e['message']"
s=$(an -d "$AN_BODY")
check "context_window -> anthropic 'prompt is too long'" py "
import re; m=json.loads(b)['error']['message']
assert '$s'=='400' and re.fullmatch(r'prompt is too long: \d+ tokens > 3 maximum', m), m"
s=$(gm generateContent -d "$GM_BODY")
check "context_window -> gemini input token count error" py "
e=json.loads(b)['error']
assert '$s'=='400' and e['status']=='INVALID_ARGUMENT' and 'exceeds the maximum number of tokens allowed (3)' in e['message']"

behave '{"reset":true,"malformed":true}'
s=$(oa -d "$OA_BODY")
check "malformed -> 200 with broken JSON" py "
assert '$s'=='200'
try: json.loads(b); assert False
except ValueError: pass"
behave '{"reset":true,"wrong_content_type":true}'
s=$(oa -d "${OA_BODY%\}},\"stream\":true}")
check "wrong_content_type -> 200 text/html" py "
assert '$s'=='200' and 'content-type: text/html' in h and '<html' in b"
behave '{"reset":true,"hang":true}'
http "http://127.0.0.1:$P/v1/models" --max-time 1 >/dev/null
check "hang -> no answer (client times out)" test "$(cat "$tmp/rc")" = 28
behave '{"reset":true}'
s=$(oa -d "$OA_BODY")
check "reset -> normal answers again" test "$s" = 200

statuses() { # 12 GET /v1/models statuses in a row
  local out=""
  for _ in $(seq 1 12); do out+="$(http "http://127.0.0.1:$P/v1/models" -H "Authorization: Bearer $key") "; done
  echo "$out"
}
behave '{"error_rate":0.5,"error_statuses":[500],"seed":42}'
first=$(statuses)
behave '{"seed":42}'
second=$(statuses)
check "seeded error_rate repeats the same sequence" \
  bash -c "[[ '$first' == '$second' && '$first' == *200* && '$first' == *500* ]]"
behave '{"reset":true,"first_byte_delay_ms":300}'
ttfb=$(curl -sS --max-time 10 -o /dev/null -w '%{time_starttransfer}' "http://127.0.0.1:$P/v1/models")
check "first_byte_delay_ms 300 delays the answer" \
  "$pybin" -I -S -c "import sys; sys.exit(not 0.29 <= float('$ttfb') < 5)"
behave '{"reset":true,"cached_tokens":2}'
s=$(an -d "$AN_BODY")
check "cached_tokens -> anthropic cache_read_input_tokens" py "
u=json.loads(b)['usage']; assert u['cache_read_input_tokens']==2 and u['input_tokens']>0"
behave '{"reset":true,"omit_usage":true}'
s=$(oa -d "$OA_BODY")
check "omit_usage -> no usage object" py "
d=json.loads(b); assert '$s'=='200' and 'usage' not in d and d['choices']"
behave '{"reset":true}'

# ---- named provider behaviours ("wire") -----------------------------------------------------
OA_STREAM="${OA_BODY%\}},\"stream\":true}"
OA_TOOL='{"model":"m","messages":[{"role":"user","content":"weather in Paris?"}],"tools":'"$TOOLS_OA"',"tool_choice":"required"}'
behave '{"reset":true,"wire":"no_done"}'
s=$(oa -d "$OA_STREAM")
check "wire no_done: openai stream has a finish_reason, no [DONE], clean end" py "
ev=[l[6:] for l in b.split('\n') if l.startswith('data: ')]
assert int(open('$tmp/rc').read())==0 and '[DONE]' not in ev
assert json.loads(ev[-1])['choices'][0]['finish_reason']=='stop'"
s=$(an -d "${AN_BODY%\}},\"stream\":true}")
check "wire no_done: anthropic stream ends at message_delta" py "
assert 'message_stop' not in b and '\"stop_reason\":\"end_turn\"' in b"
behave '{"reset":true,"wire":"trailing_error"}'
s=$(oa -d "$OA_STREAM")
check "wire trailing_error: openai stream ends with a bare JSON error" py "
i=b.rindex('data: '); tail=b[b.index('\n\n',i)+2:]
assert json.loads(tail)[0]['error']['status']=='RESOURCE_EXHAUSTED' and '[DONE]' not in b"
s=$(gm 'streamGenerateContent?alt=sse' -d "$GM_BODY")
check "wire trailing_error: gemini stream ends with a bare JSON error" py "
assert b.rstrip().endswith(']') and 'finishReason' in b and 'RESOURCE_EXHAUSTED' in b"
behave '{"reset":true,"wire":"oversize_event"}'
s=$(oa -d "$OA_STREAM")
check "wire oversize_event: one SSE line over 4 MiB" py "
assert max(len(l) for l in b.split('\n')) > 5*1024*1024"
behave '{"reset":true,"wire":"refusal"}'
s=$(oa -d "$OA_BODY")
check "wire refusal: openai message.refusal, content null" py "
m=json.loads(b)['choices'][0]['message']; assert m['content'] is None and m['refusal'].startswith('I')"
s=$(oa -d "$OA_STREAM")
check "wire refusal: openai delta.refusal" py "assert '\"refusal\":\"I' in b"
s=$(an -d "$AN_BODY")
check "wire refusal: anthropic stop_reason refusal" py "
assert json.loads(b)['stop_reason']=='refusal'"
s=$(gm generateContent -d "$GM_BODY")
check "wire refusal: gemini finishReason SAFETY without content" py "
c=json.loads(b)['candidates'][0]; assert c['finishReason']=='SAFETY' and 'content' not in c"
behave '{"reset":true,"wire":"prompt_blocked"}'
s=$(gm generateContent -d "$GM_BODY")
check "wire prompt_blocked: gemini blockReason, no candidates" py "
d=json.loads(b); assert 'candidates' not in d and d['promptFeedback']['blockReason']=='SAFETY'"
behave '{"reset":true,"wire":"prompt_blocked_silent"}'
s=$(gm generateContent -d "$GM_BODY")
check "wire prompt_blocked_silent: gemini promptFeedback without blockReason" py "
d=json.loads(b); assert 'candidates' not in d and 'blockReason' not in d['promptFeedback']"
behave '{"reset":true,"wire":"reasoning"}'
s=$(oa -d "$OA_BODY")
check "wire reasoning: reasoning_content and logprobs" py "
c=json.loads(b)['choices'][0]
assert c['message']['reasoning_content'] and c['logprobs']['content'][0]['logprob']==-0.25"
behave '{"reset":true,"wire":"legacy_tools"}'
s=$(oa -d "$OA_TOOL")
check "wire legacy_tools: flat tool call, finish_reason tool" py "
c=json.loads(b)['choices'][0]; t=c['message']['tool_calls'][0]
assert c['finish_reason']=='tool' and 'function' not in t and 'id' not in t and t['name']=='get_weather'"
behave '{"reset":true,"wire":"ratelimit_resets","rate_limit":{"status":429,"retry_after_s":3}}'
s=$(oa -d "$OA_BODY")
check "wire ratelimit_resets: 429 with reset headers only" py "
assert '$s'=='429' and 'retry-after' not in h and 'x-ratelimit-reset-requests: 3s' in h"
s=$(gm generateContent -d "$GM_BODY")
check "gemini 429: RetryInfo in the body, no Retry-After header" py "
d=json.loads(b)['error']['details'][0]
assert '$s'=='429' and 'retry-after' not in h and d['retryDelay']=='3s'"
behave '{"reset":true}'
s=$(oa -d "$OA_BODY")
check "openai success carries x-ratelimit headers" py "
assert 'x-ratelimit-remaining-requests: 9999' in h and 'x-ratelimit-limit-tokens' in h"
s=$(an -d "$AN_BODY")
check "anthropic success carries anthropic-ratelimit headers" py "
assert 'anthropic-ratelimit-requests-remaining: 3999' in h and 'anthropic-ratelimit-input-tokens-reset' in h"
s=$(http "http://127.0.0.1:$C/_sim/behavior" -d '{"wire":"bogus"}')
check "bad wire name -> 400 listing the names" py "
assert '$s'=='400' and 'trailing_error' in json.loads(b)['error']['message']"

head -c $((9 * 1024 * 1024)) /dev/zero | tr '\0' 'a' >"$tmp/big"
s=$(oa --data-binary "@$tmp/big")
check "body over 8 MiB -> 413" test "$s" = 413

# ---- stats ---------------------------------------------------------------------------------
ctl reset-stats -X POST >/dev/null
oa -d "$OA_BODY" >/dev/null
ctl stats >"$tmp/body"
check "stats: last_request with redacted key and auth_ok" py "
d=json.loads(b); r=d['last_request']
assert d['requests']==1 and d['by_status']=={'200':1} and d['by_path']=={'/v1/chat/completions':1}
assert r['method']=='POST' and r['path']=='/v1/chat/completions' and r['auth_ok'] is True
assert r['headers']['Authorization']=='<redacted>' and r['body']['model']=='gpt-sim'
assert '$key' not in b"
ctl behavior >"$tmp/body"
check "GET /_sim/behavior returns the full behaviour" py "
d=json.loads(b); assert d['outage']=='none' and d['token_rate']==200 and d['rate_limit'] is None"
s=$(http "http://127.0.0.1:$C/_sim/behavior" -d '{"no_such_key":1}')
check "bad behaviour key -> 400 naming the key" py "
assert '$s'=='400' and 'no_such_key' in json.loads(b)['error']['message']"

# ---- shutdown ------------------------------------------------------------------------------
stop_sim "$sim_pid"
rc=$stop_rc
sim_pid=""
check "SIGTERM -> clean exit 0" test "$rc" = 0
if [[ $rc -ne 0 ]]; then tail -20 "$tmp/err.sim_pid"; fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
