-- POST batches of BATCH (default 24) new movie-like items, keys RUN-<thread>-<n>-<i>.
-- Counts answers by status; optional pacing: DELAY_MS between a connection's requests.
local batch = tonumber(os.getenv("BATCH") or "24")
local run = os.getenv("RUN") or "run"
local key = os.getenv("API_KEY") or ""
local delay_ms = tonumber(os.getenv("DELAY_MS") or "0")
local threads, next_id = {}, 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

function init(args)
  n, accepted, other = 0, 0, 0
end

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
  return wrk.format("POST", "/api/v1/items",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key},
    '{"items":[' .. table.concat(parts, ",") .. ']}')
end

if delay_ms > 0 then
  function delay() return delay_ms end
end

function response(status, headers, body)
  if status == 202 then accepted = accepted + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local a, o = 0, 0
  for _, t in ipairs(threads) do a = a + t:get("accepted"); o = o + t:get("other") end
  io.write(string.format("ACCEPTED_REQUESTS %d\nOTHER_REQUESTS %d\n", a, o))
end
