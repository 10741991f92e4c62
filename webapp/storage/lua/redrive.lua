-- Send dead letters back through the queue, each with its original write id,
-- version and acceptance time, so a newer write of the same key still wins.
-- Entries carry d=1: lua/ack.lua then moves their receipt from dead on by itself.
-- KEYS[1] stream  KEYS[2] depth counter (records)  KEYS[3] queued bytes counter  KEYS[4] stats hash
-- KEYS[5] versions in flight (older than the queue's head; lua/ack.lua removes them)
-- ARGV: for each record, 6 values: write id, kind, version, accepted (us), record (records.pack), bytes
-- Returns how many were queued.
local n = 0
for i = 1, #ARGV, 6 do
  redis.call('XADD', KEYS[1], '*', 'w', ARGV[i], 'k', ARGV[i + 1], 'n', 1, 'v', ARGV[i + 2],
    't', ARGV[i + 3], 'b', ARGV[i + 5], 'r', ARGV[i + 4], 'd', 1)
  redis.call('INCRBY', KEYS[2], 1)
  redis.call('INCRBY', KEYS[3], ARGV[i + 5])
  redis.call('HINCRBY', KEYS[4], 'redriven_' .. ARGV[i + 1], 1)
  redis.call('ZADD', KEYS[5], ARGV[i + 2], ARGV[i + 2])
  n = n + 1
end
return n
