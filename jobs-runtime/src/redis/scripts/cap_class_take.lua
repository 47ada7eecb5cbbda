-- Let a job of a capped class start, or park it, in one atomic step: sent by the job's task
-- once the job is decoded, before its body runs (only for a class with a cap).
--
-- Drops the class's expired leases; if there is room under the class's cap, adds this job's
-- lease and the job runs; otherwise the job leaves the working list (by its exact bytes) for the
-- left end of the class's waiting list (parked: cap_class_release.lua brings it back to its queue
-- when a slot frees), releasing the lease it holds on its capped queue, if any.
--
-- KEYS[1]  the working list
-- KEYS[2]  the class's cap (jobs:cap:class:<Class>)
-- KEYS[3]  the class's leases (jobs:lease:class:<Class>)
-- KEYS[4]  the class's waiting list (jobs:waiting:class:<Class>)
-- KEYS[5]  the leases of the job's queue (jobs:lease:queue:<name>), used only when ARGV[4] is
--          not empty
-- ARGV[1]  the job exactly as it is in the working list
-- ARGV[2]  the class lease member to add (<identity>|<counter>)
-- ARGV[3]  a lease's lifetime in ms
-- ARGV[4]  the member of the job's lease on its capped queue, or '' (none)
--
-- Idempotent by ARGV[2]: run again after a lost reply, a lease already live is renewed and
-- counts as granted; a job already parked is no longer in the working list (-1).
--
-- Returns 1 when the job holds its class lease and runs, 2 when the class has no cap any more
-- (it runs without a lease), 0 when it was parked, -1 when it is no longer in the working list
-- (nothing done: recovered elsewhere, or parked by an earlier run of this very step).
if (redis.REDIS_VERSION_NUM or 0) < 0x070000 then
  redis.replicate_commands()
end
if not redis.call('LPOS', KEYS[1], ARGV[1]) then
  redis.pcall('ZREM', KEYS[3], ARGV[2])
  return -1
end
local raw = redis.pcall('GET', KEYS[2])
local cap = type(raw) == 'string' and tonumber(raw) or nil
if type(cap) ~= 'number' or cap < 1 then
  redis.pcall('ZREM', KEYS[3], ARGV[2])
  return 2
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('ZSCORE', KEYS[3], ARGV[2]) or redis.call('ZCARD', KEYS[3]) < cap then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[2])
  return 1
end
-- Written before the job leaves the working list: a failure leaves it where it was.
redis.call('LPUSH', KEYS[4], ARGV[1])
redis.call('LREM', KEYS[1], 1, ARGV[1])
if ARGV[4] ~= '' then
  redis.pcall('ZREM', KEYS[5], ARGV[4])
end
return 0
