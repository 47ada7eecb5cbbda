-- Move one job of the outbox (`jobs::outbox`, a row of PostgreSQL's `jobs_outbox`) into Redis,
-- at most once however often it is sent: the step marks the job's jid as moved in the same
-- atomic step that pushes it, and pushes nothing when the mark is there. A mover that crashed
-- after this step and before it deleted the row sends it again, and nothing is pushed twice.
--
-- The push comes before the marks, so a push Redis refuses leaves no mark and no lock behind.
--
-- KEYS[1]  the mark (jobs:outbox:<jid>)
-- KEYS[2]  where the job goes: its queue list (to run now), the schedule sorted set (later) or
--          the dead sorted set (a row that is not a job)
-- KEYS[3]  queues, the set of queue names (best effort, as for any push)
-- KEYS[4]  a unique job's lock (jobs:unique:<digest>); absent for other jobs
-- ARGV[1]  the job's jid
-- ARGV[2]  how long the mark lives, in milliseconds
-- ARGV[3]  the job JSON (or the dead-set entry)
-- ARGV[4]  to run now: the queue's name; '' otherwise
-- ARGV[5]  for a sorted set: the score (epoch seconds); '' for a queue list
-- ARGV[6]  with KEYS[4]: how long the lock lives, in milliseconds
--
-- Returns {code, text}:
--   {0, ''}       pushed
--   {1, ''}       moved before (the mark is there, or its unique lock is held by this jid):
--                 nothing pushed
--   {2, holder}   a unique job whose lock another job holds: a duplicate, dropped (marked, so
--                 it is dropped once)
--   {3, error}    the target's key holds another type (WRONGTYPE): nothing pushed, no mark;
--                 the row stays for a later move
-- Any other error of the push (out of memory, a read-only replica) is returned as an error.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {1, ''}
end
if KEYS[4] then
  local holder = redis.call('GET', KEYS[4])
  if holder == ARGV[1] then
    return {1, ''}
  end
  if holder then
    redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
    return {2, holder}
  end
end
local pushed
if ARGV[5] == '' then
  pushed = redis.pcall('LPUSH', KEYS[2], ARGV[3])
else
  pushed = redis.pcall('ZADD', KEYS[2], ARGV[5], ARGV[3])
end
if type(pushed) == 'table' and pushed.err then
  if not string.find(pushed.err, 'WRONGTYPE', 1, true) then
    return redis.error_reply(pushed.err)
  end
  return {3, pushed.err}
end
if ARGV[4] ~= '' then
  redis.pcall('SADD', KEYS[3], ARGV[4])
end
if KEYS[4] then
  redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[6])
end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
return {0, ''}
