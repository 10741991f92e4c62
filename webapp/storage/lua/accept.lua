#!lua
-- Accept one write atomically, in one round trip: idempotency, rate limit,
-- backpressure, versions, the Stream entry, pending cache entries, the receipt.
-- The #!lua line (no flags): when Redis is out of memory it refuses the whole
-- script before it starts (OOM), so a write is never half-accepted.
--
-- KEYS[1] stream  KEYS[2] depth counter (records)  KEYS[3] version counter
-- KEYS[4] receipt  KEYS[5] idempotency key ('' if none)  KEYS[6] rate-limit key ('' if off)
-- KEYS[7] queued bytes counter  KEYS[8] expiry index (receipts, idempotency keys)
-- KEYS[9] records accepted so far  KEYS[10] the drains' recent pace (records/s)
-- KEYS[11] the counters hash (writes accepted so far: `accepted_writes`)
-- ARGV[1] write_id  ARGV[2] kind  ARGV[3] record count
-- ARGV[4] records: fields joined by \0, records by \1 (webapp/storage/records.py)
-- ARGV[5] high water (records)  ARGV[6] client deadline (us, in Redis's clock; 0 none)
-- ARGV[7] request hash  ARGV[8] rate interval (us)  ARGV[9] rate burst
-- ARGV[10] (unused)  ARGV[11] seconds an Idempotency-Key stays here (IDEMPOTENCY_CACHE_S)
-- ARGV[12] item cache key prefix  ARGV[13] high water (bytes)  ARGV[14] the drain's consumer group
-- ARGV[15] the Idempotency-Key's id in MySQL (API key id:digest; '' if none)
-- ARGV[16] bytes a receipt takes in Redis (counted against the byte bound while queued)
-- Item cache keys (webapp/storage/keys.py) are made here from the records: ARGV[12] .. key.
-- Receipts and idempotency keys have no TTL, so Redis can never evict them. A
-- receipt lives here only while its write is queued: the drain archives it to
-- MySQL (`writes`) and lua/ack.lua deletes it. An idempotency key stays for
-- ARGV[11] seconds (lua/expire.lua deletes it then, KEYS[8] scores: ms); later
-- retries are caught in MySQL by its claim, so none makes a second copy.
--
-- Returns {'ok', write id, records, 'new'|'replay'} and, with a rate limit,
-- the API key's rate as this answer leaves it: requests it may send now, and us
-- until its whole burst is back (the RateLimit header); or a refusal:
-- {'conflict'}, {'expired'}, {'rate_limited', us until the next request is
-- allowed}, {'backpressure', depth, Retry-After s}.
--
-- Numbers are formatted with %.0f: Lua numbers are doubles, and tostring()
-- would print a microsecond version as 1.7954e+15.
local function fmt(x) return string.format('%.0f', x) end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

-- An accepted (or replayed) write's answer; `tat` is the key's GCRA state after
-- it (nil: as stored, for a replay, which takes nothing of the rate).
local function ok(write_id, count, how, tat)
  if KEYS[6] == '' then return {'ok', write_id, count, how} end
  local interval, burst = tonumber(ARGV[8]), tonumber(ARGV[9])
  tat = math.max(tat or tonumber(redis.call('GET', KEYS[6]) or '0'), now)
  return {'ok', write_id, count, how, fmt(math.floor((burst * interval - (tat - now)) / interval)), fmt(tat - now)}
end

-- The same request again (a client retry, or the coalescer resending after a
-- broken connection): the same receipt, even if late.
-- A replay writes the same value again: with WRITE_DURABILITY=replica the WAIT
-- that follows then covers this connection's view of the original write too.
local seen = redis.call('HGET', KEYS[4], 'accepted')
if seen then
  redis.call('HSET', KEYS[4], 'accepted', seen)
  return ok(ARGV[1], seen, 'replay')
end

if KEYS[5] ~= '' then
  local previous = redis.call('GET', KEYS[5])
  if previous then
    local hash, write_id, count = string.match(previous, '^(%x+):([%w_]+):(%d+)$')
    if hash ~= ARGV[7] then return {'conflict'} end
    redis.call('SET', KEYS[5], previous)
    return ok(write_id, count, 'replay')
  end
end

-- The client stopped waiting (a hung Redis, answered 503): accept nothing.
local deadline = tonumber(ARGV[6])
if deadline > 0 and now > deadline then return {'expired'} end

-- Rate limit per API key: GCRA, a burst of ARGV[9] requests, then one per interval.
local new_tat = nil
if KEYS[6] ~= '' then
  local interval = tonumber(ARGV[8])
  local tat = tonumber(redis.call('GET', KEYS[6]) or '0')
  if tat < now then tat = now end
  local allow_at = tat - (tonumber(ARGV[9]) - 1) * interval
  if now < allow_at then return {'rate_limited', fmt(allow_at - now)} end
  new_tat = tat + interval
end

-- Backpressure, in records and in bytes: an item is held twice until it is
-- persisted (in the Stream and as its pending cache entry).
local n = tonumber(ARGV[3])
local size = #ARGV[4]
if ARGV[2] == 'items' then size = size * 2 end
size = size + tonumber(ARGV[16])  -- the receipt, held until the write is persisted
-- Retry-After: how long the drains take to bring the queue back under 90% of the
-- mark, at the pace they measured (5 s while no pace is known).
local function come_back(excess_records)
  local pace = tonumber(redis.call('GET', KEYS[10]) or '0')
  if pace <= 0 then return 5 end
  return math.min(300, math.max(1, math.ceil(excess_records / pace)))
end
local depth = tonumber(redis.call('GET', KEYS[2]) or '0')
local high = tonumber(ARGV[5])
if depth + n > high then return {'backpressure', fmt(depth), come_back(depth + n - 0.9 * high)} end
local bytes = tonumber(redis.call('GET', KEYS[7]) or '0')
local high_bytes = tonumber(ARGV[13])
if bytes > 0 and bytes + size > high_bytes then
  return {'backpressure', fmt(depth), come_back(depth * (bytes + size - 0.9 * high_bytes) / bytes)}
end

-- Versions: strictly after every version given so far, and never behind the
-- clock, so they keep rising even if a Redis restart lost the last second.
local last = tonumber(redis.call('GET', KEYS[3]) or '0')
local base = math.max(last + 1, now)
redis.call('SET', KEYS[3], fmt(base + n - 1))

-- The first write to a new (or emptied-out) Redis makes the drain's consumer group
-- with its Stream: a drain may first start when Redis is already full, and then
-- it could not create the group (XGROUP CREATE is refused at maxmemory).
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[14], '0', 'MKSTREAM')
end
local entry
if ARGV[15] ~= '' then  -- the drain claims the key in MySQL before it writes the records
  entry = redis.call('XADD', KEYS[1], '*', 'w', ARGV[1], 'k', ARGV[2], 'n', ARGV[3],
    'v', fmt(base), 't', fmt(now), 'b', size, 'i', ARGV[15], 'h', ARGV[7], 'r', ARGV[4])
else
  entry = redis.call('XADD', KEYS[1], '*', 'w', ARGV[1], 'k', ARGV[2], 'n', ARGV[3],
    'v', fmt(base), 't', fmt(now), 'b', size, 'r', ARGV[4])
end

-- Read-your-writes: the accepted value is cached at once, with no TTL (MSET
-- clears any; a key twice in a batch: the later record wins); the drain gives
-- it one after MySQL has committed this version. One MSET, not a SET per item.
-- An entry is "<version>|<updated_at us>|<data JSON>" (data empty: deleted).
if ARGV[2] == 'items' then
  local records, pos, i, stamp, pairs = ARGV[4], 1, 0, '|' .. fmt(now) .. '|', {}
  while pos <= #records do
    local split = string.find(records, '\0', pos, true)
    local stop = string.find(records, '\1', split, true) or #records + 1
    pairs[2 * i + 1] = ARGV[12] .. string.sub(records, pos, split - 1)
    pairs[2 * i + 2] = fmt(base + i) .. stamp .. string.sub(records, split + 1, stop - 1)
    i = i + 1
    pos = stop + 1
  end
  redis.call('MSET', unpack(pairs))
end

local now_ms = math.floor(now / 1000)
redis.call('HSET', KEYS[4], 'kind', ARGV[2], 'accepted', ARGV[3], 'persisted', 0, 'dead', 0,
  'status', 'queued', 'accepted_at', fmt(now), 'entry', entry)
redis.call('INCRBY', KEYS[2], n)
redis.call('INCRBY', KEYS[7], size)
redis.call('INCRBY', KEYS[9], n)
redis.call('HINCRBY', KEYS[11], 'accepted_writes', 1)
if KEYS[5] ~= '' then
  redis.call('SET', KEYS[5], ARGV[7] .. ':' .. ARGV[1] .. ':' .. ARGV[3])
  redis.call('ZADD', KEYS[8], fmt(now_ms + tonumber(ARGV[11]) * 1000), KEYS[5])
end
if new_tat then
  redis.call('SET', KEYS[6], fmt(new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1)
end
return ok(ARGV[1], ARGV[3], 'new', new_tat)
