-- Cache an item loaded from MySQL, unless Redis already holds a newer version
-- (a pending write, or a fresher load); then release the loader's lock.
-- The same version already cached with a TTL gets the new TTL (a warm-up keeps
-- what it warms); a pending write (no TTL) is never given one here.
-- An entry is the string "<version>|<updated_at us>|<data JSON>", data empty
-- for a deleted or missing item.
-- KEYS[1] the item's cache entry, KEYS[2] the loader lock
-- ARGV[1] version (0: no row), ARGV[2] data JSON ('' for none),
-- ARGV[3] updated_at (us), ARGV[4] TTL (ms), ARGV[5] the loader's lock token
-- Returns the entry now cached.
local current = redis.call('GET', KEYS[1])
local cached = current and tonumber(string.match(current, '^(%d+)|'))
local loaded = tonumber(ARGV[1])
if not cached or cached < loaded then
  redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[3] .. '|' .. ARGV[2], 'PX', ARGV[4])
elseif cached == loaded and redis.call('PTTL', KEYS[1]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
if redis.call('GET', KEYS[2]) == ARGV[5] then
  redis.call('DEL', KEYS[2])
end
return redis.call('GET', KEYS[1])
