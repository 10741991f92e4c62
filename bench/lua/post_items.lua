-- POST batches of BATCH (default 24) new movie-like items, keys RUN-<thread>-<n>-<i>.
-- Counts answers by status. RATE (requests/s, all THREADS together) paces the
-- requests on a clock, whatever the responses' latency; unset: as fast as answered.
local batch = tonumber(os.getenv("BATCH") or "24")
local run = os.getenv("RUN") or "run"
local rate = tonumber(os.getenv("RATE") or "0")
local nthreads = tonumber(os.getenv("THREADS") or "2")
local writes = require("writes")
writes.count_answers()

function request()
  n = n + 1
  local parts = {}
  for i = 1, batch do
    local id = string.format("%s-%d-%d-%d", run, tid, n, i)
    parts[i] = string.format(
      '{"key":"%s","data":{"title":"Movie %s","year":%d,"genres":["Drama","Crime"],"rating":%.1f,' ..
      '"votes":%d,"runtime_min":%d,"director":"Director %d"}}',
      id, id, 1920 + (n + i) % 105, 1 + (n * 7 + i) % 90 / 10, n * 37 % 100000, 80 + i, n % 5000)
  end
  return writes.post("/api/v1/items", "items", parts)
end

if rate > 0 then
  local ffi = require("ffi")
  ffi.cdef[[ typedef struct { long tv_sec; long tv_nsec; } spillway_ts; int clock_gettime(int, spillway_ts *); ]]
  local ts = ffi.new("spillway_ts")
  local interval = 1000 * nthreads / rate  -- ms between this thread's requests
  local next_slot = nil

  -- Called before each request on any of the thread's connections: take the
  -- next free slot of the thread's schedule and wait for it.
  function delay()
    ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
    local now = tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
    local slot = math.max(next_slot or now, now)
    next_slot = slot + interval
    return math.floor(slot - now)
  end
end
