-- Release one lease of a capped class and bring parked jobs back while there is room, in one
-- atomic step: sent by a job's task once its body ended (whatever the outcome), and by the
-- heartbeat once per beat and capped class without a lease to release (so that the jobs parked
-- while a holder was killed come back once its lease ran out).
--
-- Drops the class's expired leases and ARGV[1]'s; then moves parked jobs from the right end of
-- the waiting list (the oldest) to the right end of their own queue (the next taken), never more
-- than the room left under the cap (every parked job when the class has no cap any more). A
-- job's queue is its JSON's `queue` field, `default` when that is missing or unreadable.
--
-- With no lease to release (the heartbeat's call), jobs move only when no live lease is left:
-- while a holder lives, its own release brings the next parked job back when it ends, and a
-- heartbeat sending jobs back beside it would only have them parked again, behind the others.
--
-- The queue keys are built here from the job (ARGV[2] .. 'queue:' .. name), not passed in KEYS:
-- fine on one Redis, and what a Cluster layout (issue #19) would have to change.
--
-- KEYS[1]  the class's cap (jobs:cap:class:<Class>)
-- KEYS[2]  the class's leases (jobs:lease:class:<Class>)
-- KEYS[3]  the class's waiting list (jobs:waiting:class:<Class>)
-- KEYS[4]  queues, the set of queue names (a job sent back registers its queue there)
-- ARGV[1]  the lease member to release, or '' (none)
-- ARGV[2]  the key prefix ('' or '<namespace>:')
--
-- Safe to repeat: the member is this job's own, and only free room is filled.
--
-- Returns how many parked jobs went back to their queues.
if (redis.REDIS_VERSION_NUM or 0) < 0x070000 then
  redis.replicate_commands()
end
if ARGV[1] ~= '' then
  redis.pcall('ZREM', KEYS[2], ARGV[1])
end
local raw = redis.pcall('GET', KEYS[1])
local cap = type(raw) == 'string' and tonumber(raw) or nil
local room
if type(cap) ~= 'number' or cap < 1 then
  room = redis.call('LLEN', KEYS[3])
else
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  local live = redis.call('ZCARD', KEYS[2])
  if ARGV[1] == '' and live > 0 then
    return 0
  end
  room = cap - live
end
local moved = 0
while moved < room do
  local job = redis.call('RPOP', KEYS[3])
  if not job then
    break
  end
  local queue = 'default'
  local ok, decoded = pcall(cjson.decode, job)
  if ok and type(decoded) == 'table' and type(decoded['queue']) == 'string'
      and decoded['queue'] ~= '' then
    queue = decoded['queue']
  end
  redis.call('RPUSH', ARGV[2] .. 'queue:' .. queue, job)
  redis.pcall('SADD', KEYS[4], queue)
  moved = moved + 1
end
return moved
