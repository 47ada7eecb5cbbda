-- Renew the leases this process's running jobs hold on one capped queue, by Redis's clock
-- (TIME), as the fetch script wrote them. Sent with the heartbeat's beat, once per capped queue.
-- A lease that is gone (expired and dropped, or released) is not written again: ZADD XX.
--
-- KEYS[1]  the queue's leases (jobs:lease:queue:<name>)
-- ARGV[1]  a lease's lifetime in ms
-- ARGV[2..n]  the lease members to renew
--
-- Returns how many leases were renewed (never an error for a key of the wrong type: 0).
if (redis.REDIS_VERSION_NUM or 0) < 0x070000 then
  redis.replicate_commands()
end
local clock = redis.call('TIME')
local until_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000) + tonumber(ARGV[1])
local renewed = 0
for index = 2, #ARGV do
  local changed = redis.pcall('ZADD', KEYS[1], 'XX', 'CH', until_ms, ARGV[index])
  if type(changed) == 'number' then
    renewed = renewed + changed
  end
end
return renewed
