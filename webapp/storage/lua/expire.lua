-- Delete idempotency keys (and receipts of writes accepted before receipts moved to
-- MySQL) whose time is up, and the oldest idempotency keys past their memory budget.
-- They carry no TTL, so that Redis can never evict them early; only deletes: it
-- works at maxmemory. Time is Redis's own clock, not the caller's: a worker host
-- whose clock runs ahead must not delete anything early. A key let go early for
-- the budget is still honoured: its write's claim in MySQL keeps a retry from
-- making a second copy (webapp/storage/writer.py).
-- KEYS[1] expiry index (sorted set: key -> expiry time in ms)
-- ARGV[1] most keys to delete in this call  ARGV[2] most keys the index may hold (0: no budget)
-- ARGV[3] the idempotency keys' prefix (only they go for the budget)
-- Returns how many keys were deleted.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local most = tonumber(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, most)
local budget = tonumber(ARGV[2])
if #due < most and budget > 0 then
  local excess = redis.call('ZCARD', KEYS[1]) - #due - budget
  if excess > 0 then
    local oldest = redis.call('ZRANGE', KEYS[1], #due, #due + math.min(excess, most - #due) - 1)
    for _, key in ipairs(oldest) do
      if string.sub(key, 1, #ARGV[3]) == ARGV[3] then table.insert(due, key) end
    end
  end
end
if #due == 0 then return 0 end
redis.call('DEL', unpack(due))
redis.call('ZREM', KEYS[1], unpack(due))
return #due
