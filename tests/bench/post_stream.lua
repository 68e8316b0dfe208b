-- post_stream.lua - wrk script: like post.lua, but every request asks for a stream
-- ("stream": true with include_usage). wrk counts a stream as one request once it is
-- complete, so requests/s are complete streams per second and latencies are whole streams.
bench_stream = true
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "post.lua")
