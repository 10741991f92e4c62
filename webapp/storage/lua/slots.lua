#!lua flags=allow-oom
-- The drain's bookkeeping: slot leases, heartbeats, the "worker is stopping" flag.
-- flags=allow-oom: these must work when Redis is full, so the drain that frees
-- the memory keeps running.
-- KEYS[1] slot key prefix  KEYS[2] heartbeat sorted set  ARGV[1] operation, then:
--   reserve  N, token, lease_ms   -> slot numbers now reserved with token
--   renew    slot, token, lease_ms -> 1 if the token still holds the slot
--   beat     consumer, now_ms, forget_before_ms -> 1
--   stop     flag key, ttl_s -> 1
--   trouble  hash key, stats key, error text, now_ms -> 1 (a batch waits for the server: shown in /readyz)
--   clear    hash key -> 1 (a batch went through)
--   pace     key, records/s -> 1 (how fast the drains persist, kept 10 s)
local op = ARGV[1]
if op == 'reserve' then
  local got = {}
  for slot = 0, tonumber(ARGV[2]) - 1 do
    if redis.call('SET', KEYS[1] .. slot, ARGV[3] .. ':' .. slot, 'NX', 'PX', ARGV[4]) then
      table.insert(got, slot)
    end
  end
  return got
elseif op == 'beat' then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
  return 1
elseif op == 'stop' then
  redis.call('SET', ARGV[2], 1, 'EX', ARGV[3])
  return 1
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
if op ~= 'renew' or redis.call('GET', key) ~= ARGV[3] then return 0 end
redis.call('PEXPIRE', key, ARGV[4])
return 1
