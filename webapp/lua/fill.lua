-- Cache an item loaded from MySQL, unless Redis already holds a newer version
-- (a pending write, or a fresher load); then release the loader's lock.
-- The same version already cached with a TTL gets the new TTL (a warm-up keeps
-- what it warms); a pending write (no TTL) is never given one here.
-- KEYS[1] the item's cache hash, KEYS[2] the loader lock
-- ARGV[1] version (0: no row), ARGV[2] data JSON ('' for none),
-- ARGV[3] updated_at (us), ARGV[4] TTL (ms), ARGV[5] the loader's lock token
-- Returns the entry now cached: {v, d or false, t}.
local current = redis.call('HGET', KEYS[1], 'v')
if not current or tonumber(current) < tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  if ARGV[2] ~= '' then
    redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2], 't', ARGV[3])
  else
    redis.call('HSET', KEYS[1], 'v', ARGV[1], 't', ARGV[3])
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
elseif tonumber(current) == tonumber(ARGV[1]) and redis.call('PTTL', KEYS[1]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
if redis.call('GET', KEYS[2]) == ARGV[5] then
  redis.call('DEL', KEYS[2])
end
return redis.call('HMGET', KEYS[1], 'v', 'd', 't')
