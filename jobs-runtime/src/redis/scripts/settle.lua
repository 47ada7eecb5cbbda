-- Settle a job this process took: put it where its outcome sends it and take it off the working
-- list, in one atomic step. Nothing happens unless the job is still in the working list, so a
-- process whose jobs were already recovered elsewhere, or a step repeated after a lost reply,
-- changes nothing.
--
-- The destination is written before the job leaves the working list: Redis does not undo a
-- script's earlier writes when a later command fails (a wrong-typed key, out of memory), so a
-- failure here leaves the job where it was rather than nowhere.
--
-- KEYS[1]  the working list
-- KEYS[2]  where the job goes: a queue list (requeue, move), the retry (or, for a job over a
--          limiter's limit, schedule) or dead sorted set
-- KEYS[3]  queues, the set of queue names (a job sent to a queue registers it there, so the
--          dashboard lists it even if someone deleted the queue meanwhile; best effort, so a
--          `queues` key of the wrong type cannot stop the step half-way)
-- KEYS[4]  when ARGV[1] is not empty: the unique lock the job holds, released with the step
--          if the job still holds it (a job that dies lets a job like it be pushed again)
-- KEYS[..] when ARGV[8] is not empty, next: the leases of the job's capped queue
--          (jobs:lease:queue:<name>), whose member ARGV[8] the job holds
-- KEYS[..] recovery only, after those: the dead owner's liveness keys; nothing happens if any
--          exists (the owner beat again since it was presumed dead, so its jobs are its own)
-- ARGV[1]  the jid holding the lock at KEYS[4], or '' when no lock is released
-- ARGV[2]  the job exactly as it was taken (bytes)
-- ARGV[3]  'requeue', 'move', 'retry' or 'dead'
-- ARGV[4]  requeue/move: the queue's name; retry/dead: the score (epoch seconds)
-- ARGV[5]  move/retry/dead: the job to store (requeue stores ARGV[2] unchanged)
-- ARGV[6]  dead: drop members scored at or below this (the oldest allowed time)
-- ARGV[7]  dead: the rank to trim to, a negative integer (-(most members kept + 1)), computed
--          by the caller so that no large number passes through Lua's floats ('' unless dead)
-- ARGV[8]  the job's lease on its queue's cap, or '' when it holds none. Released whenever the
--          step runs, even when the job is no longer in the working list: the member is this
--          job's own (<identity>|<counter>), so it never frees another job's slot, and this
--          run of the job is over either way.
--
-- Returns 1 when the job was settled, 0 when it was no longer this process's.
local lock = ARGV[1] ~= '' and KEYS[4] or nil
local next_key = lock and 5 or 4
local leases = nil
if ARGV[8] and ARGV[8] ~= '' then
  leases = KEYS[next_key]
  next_key = next_key + 1
end
for guard = next_key, #KEYS do
  if redis.call('EXISTS', KEYS[guard]) == 1 then
    return 0
  end
end
if leases then
  redis.pcall('ZREM', leases, ARGV[8])
end
local taken = ARGV[2]
if not redis.call('LPOS', KEYS[1], taken) then
  return 0
end
local outcome = ARGV[3]
if outcome == 'requeue' then
  -- The right end: the next job taken from the queue, as Sidekiq hands jobs back.
  redis.call('RPUSH', KEYS[2], taken)
  redis.pcall('SADD', KEYS[3], ARGV[4])
elseif outcome == 'move' then
  -- Back to the right end of a queue, rewritten (a recovered job, with its recovery count).
  redis.call('RPUSH', KEYS[2], ARGV[5])
  redis.pcall('SADD', KEYS[3], ARGV[4])
elseif outcome == 'retry' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
elseif outcome == 'dead' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[6])
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, ARGV[7])
else
  return redis.error_reply('unknown outcome ' .. tostring(outcome))
end
redis.call('LREM', KEYS[1], 1, taken)
if lock and redis.pcall('GET', lock) == ARGV[1] then
  redis.call('DEL', lock)
end
return 1
