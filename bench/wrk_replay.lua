-- Replays pre-built HTTP requests, each at most once, for bench/wrkload.py.
--
-- Usage: wrk -t T -c C -d D -s bench/wrk_replay.lua URL -- REQUESTS_FILE T [cycle]
--
-- REQUESTS_FILE holds complete HTTP/1.1 requests, each preceded by a line with
-- its length in bytes (Python builds them before the clock starts: signing and
-- encoding cost wrk nothing).  Thread k of T keeps requests k, k+T, k+2T, ...,
-- so no request is sent twice.  A thread that runs out stops and says so in the
-- summary: the caller then retries with more requests, because re-posting a
-- message would be cheap for the server and flatter it.  "cycle" wraps around
-- instead: only for stateless targets such as the bare echo.
-- No response() callback: wrk then stays on its fast path; it counts non-2xx
-- statuses itself.

local threads = {}
local counter = 0

function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

function init(args)
   local path, nthreads, mode = args[1], tonumber(args[2]), args[3]
   local f = assert(io.open(path, "rb"))
   requests = {}
   local i = 0
   while true do
      local line = f:read("*l")
      if not line then break end
      local req = f:read(tonumber(line))
      if i % nthreads == id then
         requests[#requests + 1] = req
      end
      i = i + 1
   end
   f:close()
   cycle = mode == "cycle"
   nxt = 1
   sent = 0
   exhausted = 0
end

function request()
   if nxt > #requests then
      if cycle then
         nxt = 1
      else
         exhausted = 1
         wrk.thread:stop()
         -- one last request must be returned; it is this thread's first, already
         -- answered: the run is reported exhausted and discarded by the caller
         return requests[1]
      end
   end
   local req = requests[nxt]
   nxt = nxt + 1
   sent = sent + 1
   return req
end

function done(summary, latency, requests)
   local sent_total, exhausted_total = 0, 0
   for _, t in ipairs(threads) do
      sent_total = sent_total + t:get("sent")
      exhausted_total = exhausted_total + t:get("exhausted")
   end
   local e = summary.errors
   io.write(string.format(
      'WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,'
         .. '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"sent":%d,"exhausted":%d}\n',
      summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(99), sent_total, exhausted_total))
end
