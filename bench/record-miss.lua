-- wrk script for bench/record-miss.sh: every request is a distinct absolute URI
-- (GET http://ORIGIN/f4k?RUN-THREAD-N), so a caching proxy misses, fetches and stores each one.
-- done() prints one line "WRKJSON {...}" (latencies in microseconds), like bench/anchors/wrk-anchor.lua.
local base = os.getenv("WRK_TARGET_URL")
local run = os.getenv("WRK_RUN_ID") or "0"
local host = base:match("^https?://([^/]+)")
local n, next_tid = 0, 0
tid = 0 -- global: setup() sets it in each thread's own Lua state

function setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
end

function request()
  n = n + 1
  return wrk.format("GET", base .. "?" .. run .. "-" .. tid .. "-" .. n, { Host = host })
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%.0f,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"lat_mean_us":%.1f,"lat_p50_us":%.0f,"lat_p90_us":%.0f,"lat_p99_us":%.0f,"lat_max_us":%.0f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
