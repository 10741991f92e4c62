-- Warm the cache through the API: GET every key tt0000001 .. tt<KEYS> once, then stop.
-- Each thread walks its own stride of the key space (THREADS must match wrk -t).
local keys = tonumber(os.getenv("KEYS") or "410000")
local nthreads = tonumber(os.getenv("THREADS") or "2")
local prefix = os.getenv("PATH_PREFIX") or "/api/v1/items/tt"
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
end

function init(args)
  n = id
  done = 0
  mine = math.floor((keys - id) / nthreads) + 1
end

function request()
  local path = string.format("%s%07d", prefix, n)
  n = n + nthreads
  return wrk.format("GET", path)
end

function response(status, headers, body)
  done = done + 1
  if done >= mine then
    wrk.thread:stop()
  end
end
