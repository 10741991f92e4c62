-- 90% GETs of random existing items, 10% POSTs of 24 new items (keys RUN-<thread>-<n>-<i>).
local keys = tonumber(os.getenv("KEYS") or "410000")
local run = os.getenv("RUN") or "mixed"
local key = os.getenv("API_KEY") or ""
local threads, next_id = {}, 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(tid * 7919)
  n, accepted, other = 0, 0, 0
end

function request()
  n = n + 1
  if n % 10 ~= 0 then
    return wrk.format("GET", string.format("/api/v1/items/tt%07d", math.random(1, keys)))
  end
  local parts = {}
  for i = 1, 24 do
    parts[i] = string.format('{"key":"%s-%d-%d-%d","data":{"title":"Movie %d","year":%d}}', run, tid, n, i, i, 1990 + i)
  end
  return wrk.format("POST", "/api/v1/items",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key},
    '{"items":[' .. table.concat(parts, ",") .. ']}')
end

function response(status, headers, body)
  if status == 202 then accepted = accepted + 1 elseif status ~= 200 then other = other + 1 end
end

function done(summary, latency, requests)
  local a, o = 0, 0
  for _, t in ipairs(threads) do a = a + t:get("accepted"); o = o + t:get("other") end
  io.write(string.format("ACCEPTED_REQUESTS %d\nOTHER_REQUESTS %d\n", a, o))
end
