-- Take one given job from a queue into this process's working list, by its exact bytes: a job
-- one crash from the dead set, handed back a moment ago so that it can run alone. Whatever was
-- handed back in front of it since stays where it is. A job of a capped queue is taken only
-- with room under the cap, and then holds a new lease; without room it stays in its queue.
--
-- KEYS[1]  the queue list
-- KEYS[2]  the working list (jobs:working:<identity>)
-- KEYS[3]  jobs:workers, the set crash recovery reads
-- KEYS[4]  the queue's cap (jobs:cap:queue:<name>)
-- KEYS[5]  the queue's leases (jobs:lease:queue:<name>)
-- ARGV[1]  the job, exactly as it was handed back
-- ARGV[2]  this process's identity
-- ARGV[3]  the lease member to add if the queue is capped (<identity>|<counter>)
-- ARGV[4]  a lease's lifetime in ms
--
-- The working list is written before the job leaves the queue, so a failure in between leaves
-- it where it was. Returns 1 when the job was taken (its queue has no cap), 3 when it was taken
-- holding the lease ARGV[3], 2 when the cap is full (the job stays in its queue), 0 when it was
-- no longer in the queue (another process took it).
if (redis.REDIS_VERSION_NUM or 0) < 0x070000 then
  -- Before Redis 7, a script that reads TIME replicates its effects only when asked.
  redis.replicate_commands()
end
redis.call('SADD', KEYS[3], ARGV[2])
if not redis.call('LPOS', KEYS[1], ARGV[1], 'RANK', -1) then
  return 0
end
local raw = redis.pcall('GET', KEYS[4])
local cap = type(raw) == 'string' and tonumber(raw) or nil
local leased = false
if type(cap) == 'number' and cap >= 1 then
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  if redis.call('ZCARD', KEYS[5]) >= cap then
    return 2
  end
  redis.call('ZADD', KEYS[5], now + tonumber(ARGV[4]), ARGV[3])
  leased = true
end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LREM', KEYS[1], -1, ARGV[1])
if leased then
  return 3
end
return 1
