-- 90% GETs of random existing items, 10% POSTs of 24 new items (keys RUN-<thread>-<n>-<i>).
local keys = tonumber(os.getenv("KEYS") or "410000")
local run = os.getenv("RUN") or "mixed"
local writes = require("writes")
writes.count_answers(200, function() math.randomseed(tid * 7919) end)  -- GETs answer 200

function request()
  n = n + 1
  if n % 10 ~= 0 then
    return wrk.format("GET", string.format("/api/v1/items/tt%07d", math.random(1, keys)))
  end
  local parts = {}
  for i = 1, 24 do
    parts[i] = string.format('{"key":"%s-%d-%d-%d","data":{"title":"Movie %d","year":%d}}', run, tid, n, i, i, 1990 + i)
  end
  return writes.post("/api/v1/items", "items", parts)
end
