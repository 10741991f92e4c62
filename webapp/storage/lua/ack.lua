#!lua flags=allow-oom
-- Acknowledge Stream entries whose records MySQL has committed (or dead-lettered).
-- Only an entry this call really acknowledges (XACK = 1) touches its receipt,
-- the counters and the cache, so a batch applied twice is counted once. Its
-- receipt is in MySQL by now (the drain archived it): the copy here is deleted,
-- so a persisted write leaves nothing in Redis but its Idempotency-Key.
-- flags=allow-oom: this must work when Redis is full, or the queue, which is
-- what fills it, could never drain (acknowledging frees the entry's memory).
--
-- KEYS[1] stream  KEYS[2] depth counter (records)  KEYS[3] stats hash  KEYS[4] queued bytes counter
-- KEYS[5] redriven versions in flight  KEYS[6] recent versions of persisted items ('' when there is no MySQL
-- replica): item cache key -> its newest persisted version, kept ARGV[2] us after it was persisted (KEYS[7]:
-- item cache key -> when), so that a miss read from a lagging replica is never served older than what
-- MySQL's primary holds (webapp/storage/cache.py)
-- ARGV[1] group  ARGV[2] how long the recent versions are kept (us)  ARGV[3] number of stat increments s, then s pairs (field,
-- amount) counted once per batch, then entries, each:
--   entry id, receipt key, records, dead records, kind, bytes, redrive (1 for a
--   redriven dead letter, 2 for an unreadable entry set aside), its first version, m, then m triples (cache key, version, TTL in ms; 0
--   for a dead record; -1: drop the cached entry if it is older than this version).
-- A redriven record of a write whose receipt is still here (accepted before
-- receipts moved to MySQL) moves it on by itself: dead - 1, persisted + 1.
-- TTLs are jittered by the caller: Redis seeds math.random alike for every call.
-- Returns the number of entries acknowledged.
local function fmt(x) return string.format('%.0f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local floors, window = KEYS[6], tonumber(ARGV[2])
local i = 4
for _ = 1, tonumber(ARGV[3]) do
  redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1])
  i = i + 2
end

local acked = 0
while i <= #ARGV do
  local id, receipt, n, dead, kind, size, redrive, first, m = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]),
    tonumber(ARGV[i + 3]), ARGV[i + 4], tonumber(ARGV[i + 5]), ARGV[i + 6] == '1', ARGV[i + 7], tonumber(ARGV[i + 8])
  local aside = ARGV[i + 6] == '2'
  i = i + 9
  local mine = redis.call('XACK', KEYS[1], ARGV[1], id) == 1
  if mine then
    acked = acked + 1
    redis.call('XDEL', KEYS[1], id)
    redis.call('DECRBY', KEYS[2], n)
    if size > 0 then redis.call('DECRBY', KEYS[4], size) end
    redis.call('HINCRBY', KEYS[3], 'persisted_' .. kind, n - dead)
    if dead > 0 then redis.call('HINCRBY', KEYS[3], 'dead_' .. kind, dead) end
    if redis.call('EXISTS', receipt) == 1 and redrive then
      redis.call('HINCRBY', receipt, 'persisted', n - dead)
      local still_dead = redis.call('HINCRBY', receipt, 'dead', dead - n)
      redis.call('HSET', receipt, 'status', still_dead > 0 and 'dead' or 'persisted', 'persisted_at', fmt(now))
    elseif aside and redis.call('EXISTS', receipt) == 1 then  -- never reaches MySQL: dead, here
      redis.call('HSET', receipt, 'persisted', 0, 'dead', n, 'status', 'dead', 'persisted_at', fmt(now))
    elseif not redrive then
      redis.call('DEL', receipt)
    end
    if redrive then
      redis.call('ZREM', KEYS[5], first)
      if n > dead then redis.call('HINCRBY', KEYS[3], 'redrive_persisted_' .. kind, n - dead) end
    end
  end
  for _ = 1, m do
    local key, version, ttl = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local entry = mine and redis.call('GET', key)
    if entry and ttl == '-1' then
      if tonumber(string.match(entry, '^(%d+)|')) < tonumber(version) then
        redis.call('DEL', key)  -- older than the redriven record MySQL now holds: read it again
      end
    elseif entry and string.match(entry, '^(%d+)|') == version then
      if ttl == '0' then
        redis.call('DEL', key)  -- never persisted: let reads see MySQL again
      else
        redis.call('PEXPIRE', key, ttl)  -- persisted: now an ordinary cached entry
      end
    end
    if mine and floors ~= '' and tonumber(ttl) > 0 then
      redis.call('ZADD', floors, 'GT', version, key)
      redis.call('ZADD', KEYS[7], now, key)
    end
    i = i + 3
  end
end
if floors ~= '' then  -- forget what was persisted longer ago than the window (a bounded number per batch)
  local old = redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', fmt(now - window), 'LIMIT', 0, 1000)
  if #old > 0 then
    redis.call('ZREM', floors, unpack(old))
    redis.call('ZREM', KEYS[7], unpack(old))
  end
end
return acked
