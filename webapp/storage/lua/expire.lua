-- Delete receipts and idempotency keys whose time is up (they carry no TTL, so
-- that Redis can never evict them early). Only deletes: it works at maxmemory.
-- Time is Redis's own clock, not the caller's: a worker host whose clock runs
-- ahead must not delete a receipt or idempotency key early.
-- KEYS[1] expiry index (sorted set: key -> expiry time in ms)
-- ARGV[1] most keys to delete in this call
-- Returns how many keys were deleted.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, tonumber(ARGV[1]))
if #due == 0 then return 0 end
redis.call('DEL', unpack(due))
redis.call('ZREM', KEYS[1], unpack(due))
return #due
