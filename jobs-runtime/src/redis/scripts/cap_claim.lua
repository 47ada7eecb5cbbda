-- Give a lease to a job of a capped queue that is in this process's working list without one
-- (an idle BLMOVE just moved it; or a sweep found it, its reply lost), or, if the queue's cap
-- is full, hand the job back to the right end of its queue (the next taken: it keeps its place),
-- in one atomic step.
--
-- KEYS[1]  the working list
-- KEYS[2]  the queue's list (queue:<name>)
-- KEYS[3]  the queue's cap (jobs:cap:queue:<name>)
-- KEYS[4]  the queue's leases (jobs:lease:queue:<name>)
-- ARGV[1]  the job exactly as it was moved
-- ARGV[2]  the lease member to add (<identity>|<counter>)
-- ARGV[3]  a lease's lifetime in ms
--
-- Idempotent by ARGV[2]: a member already live (this very claim, run before, its reply lost) is
-- renewed and counts as granted, so the job never holds two slots and is never handed back for
-- its own lease. A member that is not granted is removed.
--
-- Returns 1 when the job holds the lease, 2 when the queue has no cap any more (the job runs
-- without one), 0 when it was handed back (cap full), -1 when it is no longer in the working
-- list (nothing done).
if (redis.REDIS_VERSION_NUM or 0) < 0x070000 then
  redis.replicate_commands()
end
if not redis.call('LPOS', KEYS[1], ARGV[1]) then
  redis.pcall('ZREM', KEYS[4], ARGV[2])
  return -1
end
local raw = redis.pcall('GET', KEYS[3])
local cap = type(raw) == 'string' and tonumber(raw) or nil
if type(cap) ~= 'number' or cap < 1 then
  redis.pcall('ZREM', KEYS[4], ARGV[2])
  return 2
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
if redis.call('ZSCORE', KEYS[4], ARGV[2]) or redis.call('ZCARD', KEYS[4]) < cap then
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), ARGV[2])
  return 1
end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('LREM', KEYS[1], 1, ARGV[1])
return 0
