-- Drain slot leases: at most N drain tasks run at once across all workers.
-- KEYS[1] slot key prefix  ARGV[1] operation  ARGV[2..] as below
--   reserve  N, token, lease_ms   -> slot numbers now reserved with token
--   renew    slot, token, lease_ms -> 1 if the token still holds the slot
local op = ARGV[1]
if op == 'reserve' then
  local got = {}
  for slot = 0, tonumber(ARGV[2]) - 1 do
    if redis.call('SET', KEYS[1] .. slot, ARGV[3] .. ':' .. slot, 'NX', 'PX', ARGV[4]) then
      table.insert(got, slot)
    end
  end
  return got
end
local key = KEYS[1] .. ARGV[2]
if op ~= 'renew' or redis.call('GET', key) ~= ARGV[3] then return 0 end
redis.call('PEXPIRE', key, ARGV[4])
return 1
