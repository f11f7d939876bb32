-- One tools/call POST, the same for every target. BENCH_TOKEN and BENCH_BODY come from run.sh.
-- BENCH_DELAY_MS > 0 paces each connection (the fixed-rate phase).
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-06-18"

local pace = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if pace > 0 then
  function delay() return pace end
end

function done(summary, latency, requests)
  local s = summary.duration / 1e6
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  -- One machine-readable line; run.sh parses it. Latencies in microseconds.
  io.write(string.format("RESULT requests=%d seconds=%.3f rps=%.1f p50=%d p99=%d p999=%d errors=%d\n",
    summary.requests, s, summary.requests / s,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), bad))
end
