-- Delete consumers of the drain's group that hold no entries and were idle long
-- enough: each worker process is a consumer (host:pid), and without this every
-- restart left one behind. Checked and deleted atomically, so a consumer that
-- holds entries is never deleted (that would drop them from the pending list).
-- KEYS[1] stream  ARGV[1] group  ARGV[2] idle ms
-- Returns the names deleted.
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if not ok then return {} end
local gone = {}
for _, c in ipairs(consumers) do
  local info = {}
  for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
  if tonumber(info['pending']) == 0 and tonumber(info['idle']) > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    table.insert(gone, info['name'])
  end
end
return gone
