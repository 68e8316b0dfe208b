-- post.lua - wrk script: POST one chat completion request per call (non-streaming), then
-- print one machine-readable "BENCH ..." line for tests/bench/run.sh. The model name comes
-- from BENCH_MODEL (the switchboard route; upstreams and nginx ignore it).
-- Usage: wrk -s tests/bench/post.lua URL/v1/chat/completions
local model = os.getenv("BENCH_MODEL") or "bench"
local extra = ""
if bench_stream then
  extra = ',"stream":true,"stream_options":{"include_usage":true}'
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"' .. model .. '","messages":[{"role":"system","content":"You are terse."},'
  .. '{"role":"user","content":"Name a quick brown animal in one short sentence."}],'
  .. '"max_tokens":32' .. extra .. '}'

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d mean_us=%.1f max_us=%d "
    .. "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
