-- GET random existing items: /api/v1/items/tt0000001 .. tt<KEYS>, keys from env KEYS (default 410000).
local keys = tonumber(os.getenv("KEYS") or "410000")
local prefix = os.getenv("PATH_PREFIX") or "/api/v1/items/tt"

function setup(thread)
  thread:set("seed", math.random(1, 1000000))
end

function init(args)
  math.randomseed(seed)
end

function request()
  return wrk.format("GET", string.format("%s%07d", prefix, math.random(1, keys)))
end
