-- Remove a periodic entry no process has declared for a long time, only if that is still so:
-- an entry declared again meanwhile stays.
--
-- KEYS[1]  jobs:periodic, the index of entries
-- KEYS[2]  the entry's hash (jobs:periodic:<name>)
-- ARGV[1]  the entry's name
-- ARGV[2]  the cutoff (epoch ms): declared at or before it, it goes
--
-- Returns 1 when it was removed, 0 when it stays.
local declared = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if not declared or declared > tonumber(ARGV[2]) then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
