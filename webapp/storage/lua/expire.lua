-- Delete receipts and idempotency keys whose time is up (they carry no TTL, so
-- that Redis can never evict them early). Only deletes: it works at maxmemory.
-- KEYS[1] expiry index (sorted set: key -> expiry time in ms)
-- ARGV[1] now (ms)  ARGV[2] most keys to delete in this call
-- Returns how many keys were deleted.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #due == 0 then return 0 end
redis.call('DEL', unpack(due))
redis.call('ZREM', KEYS[1], unpack(due))
return #due
