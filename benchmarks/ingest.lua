-- wrk script: many concurrent calls, each streaming sequences 1, 2, 3, ... of 160-byte frames.
-- Each wrk thread owns a distinct set of call ids (prefix from the thread number).

local threads = {}
local counter = 1

function setup(thread)
   thread:set("thread_id", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local frame = string.rep("f39/", 54)   -- base64 of 162 bytes of mu-law silence-ish audio
local calls = tonumber(os.getenv("BENCH_CALLS") or "1000")
local prefix = os.getenv("BENCH_PREFIX") or "bench"
local token = os.getenv("BENCH_TOKEN") or ""
local i = 0

function init(args)
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["Authorization"] = "Bearer " .. token
end

function request()
   local call = i % calls
   local seq = math.floor(i / calls) + 1
   i = i + 1
   local path = string.format("/v1/call/stream/%s-%d-%d", prefix, thread_id, call)
   local body = string.format('{"sequence":%d,"data":"%s","timestamp":%d.02}', seq, frame, 1764340000 + seq)
   return wrk.format(nil, path, nil, body)
end

function done(summary, latency, requests)
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"non_2xx":%d,"connect_errors":%d,' ..
      '"read_errors":%d,"write_errors":%d,"timeouts":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d}\n',
      summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
      summary.errors.read, summary.errors.write, summary.errors.timeout,
      latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
