#!lua flags=allow-oom
-- The drain's bookkeeping: slot leases, heartbeats, the "worker is stopping" flag.
-- flags=allow-oom: these must work when Redis is full, so the drain that frees
-- the memory keeps running. And no key here has a TTL: past maxmemory, Redis
-- evicts keys with a TTL (volatile-ttl) at once, and a lease evicted as soon as
-- it is taken was a drain that could never start. A lease's end is in its value,
-- "<token>|<until ms>", compared with Redis's own clock.
-- KEYS[1] slot key prefix  KEYS[2] heartbeat sorted set  ARGV[1] operation, then:
--   reserve  N, token, lease_ms   -> slot numbers now reserved with token
--   renew    slot, token, lease_ms -> 1 if the token still holds the slot
--   beat     consumer, now_ms, forget_before_ms -> 1
--   stop     stopping sorted set, worker, for_ms -> 1
--   stopping stopping sorted set, worker -> 1 while that worker is flagged as stopping
--   trouble  hash key, stats key, error text, now_ms -> 1 (a batch waits for the server: shown in /readyz)
--   clear    hash key -> 1 (a batch went through)
--   pace     key, records/s -> 1 (how fast the drains persist, kept 10 s)
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function holder(key)  -- the token holding a lease, or nil once it is free or past its time
  local value = redis.call('GET', key)
  if not value then return nil end
  local token, until_ms = string.match(value, '^(.*)|(%d+)$')
  if not until_ms or tonumber(until_ms) < now_ms then return nil end
  return token
end
local function lease(key, token, ms)
  redis.call('SET', key, token .. '|' .. string.format('%.0f', now_ms + tonumber(ms)))
end

local op = ARGV[1]
if op == 'reserve' then
  local got = {}
  for slot = 0, tonumber(ARGV[2]) - 1 do
    if not holder(KEYS[1] .. slot) then
      lease(KEYS[1] .. slot, ARGV[3] .. ':' .. slot, ARGV[4])
      table.insert(got, slot)
    end
  end
  return got
elseif op == 'beat' then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
  return 1
elseif op == 'stop' then
  redis.call('ZREMRANGEBYSCORE', ARGV[2], '-inf', now_ms)
  redis.call('ZADD', ARGV[2], now_ms + tonumber(ARGV[4]), ARGV[3])
  return 1
elseif op == 'stopping' then
  local until_ms = redis.call('ZSCORE', ARGV[2], ARGV[3])
  return (until_ms and tonumber(until_ms) >= now_ms) and 1 or 0
elseif op == 'trouble' then
  redis.call('HSETNX', ARGV[2], 'since_ms', ARGV[5])
  redis.call('HSET', ARGV[2], 'error', ARGV[4], 'at_ms', ARGV[5])
  redis.call('HINCRBY', ARGV[3], 'retries', 1)
  return 1
elseif op == 'clear' then
  redis.call('DEL', ARGV[2])
  return 1
elseif op == 'pace' then
  redis.call('SET', ARGV[2], ARGV[3], 'EX', 10)
  return 1
end
local key = KEYS[1] .. ARGV[2]
if op ~= 'renew' or holder(key) ~= ARGV[3] then return 0 end
lease(key, ARGV[3], ARGV[4])
return 1
