-- wrk script used by bench/run.sh: POSTs the JSON body read from the file named after `--` and, when the run
-- ends, prints one machine-readable line (latencies in microseconds).
--
--   wrk -t1 -c1 -d5s -s bench/wrk.lua http://127.0.0.1:PORT/v1/messages -- body.json

function init(args)
   local f = assert(io.open(args[1], "rb"))
   wrk.body = f:read("*a")
   f:close()
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   if wrk.path == "/v1/messages" then
      wrk.headers["anthropic-version"] = "2023-06-01"
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d mean_us=%d max_us=%d "
         .. "err_status=%d err_connect=%d err_read=%d err_write=%d err_timeout=%d\n",
      summary.requests, summary.duration,
      latency:percentile(50), latency:percentile(99), latency.mean, latency.max,
      e.status, e.connect, e.read, e.write, e.timeout))
end
