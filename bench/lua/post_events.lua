-- POST batches of BATCH (default 1) events, each carrying a unique id in its data.
local batch = tonumber(os.getenv("BATCH") or "1")
local run = os.getenv("RUN") or "run"
local key = os.getenv("API_KEY") or ""
local levels = {"debug", "info", "info", "info", "warning", "error"}
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
    parts[i] = string.format(
      '{"name":"%s","level":"%s","data":{"id":"%s-%d-%d-%d","path":"/checkout","ms":%d}}',
      run, levels[(n + i) % 6 + 1], run, tid, n, i, (n * 13 + i) % 900)
  end
  return wrk.format("POST", "/api/v1/events",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key},
    '{"events":[' .. table.concat(parts, ",") .. ']}')
end

function response(status, headers, body)
  if status == 202 then accepted = accepted + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local a, o = 0, 0
  for _, t in ipairs(threads) do a = a + t:get("accepted"); o = o + t:get("other") end
  io.write(string.format("ACCEPTED_REQUESTS %d\nOTHER_REQUESTS %d\n", a, o))
end
