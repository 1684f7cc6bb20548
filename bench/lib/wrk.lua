-- wrk script for bench/: optional POST body from $WRK_BODY (a file), and at the end one
-- machine-readable line that bench.py parses:
--   WRK_RESULT requests=N duration_us=N p50_us=N p99_us=N max_us=N err_connect=N ... err_status=N
-- (wrk counts a response with status > 399 as err_status.)
local body_file = os.getenv("WRK_BODY")
if body_file and body_file ~= "" then
  local fh = assert(io.open(body_file, "rb"))
  wrk.method = "POST"
  wrk.body = fh:read("*a")
  fh:close()
  wrk.headers["Content-Type"] = "application/octet-stream"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
