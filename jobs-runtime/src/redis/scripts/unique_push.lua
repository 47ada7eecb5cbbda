-- Push a unique job: take its lock and push it in one atomic step, or push nothing when another
-- job holds the lock (a duplicate). The push comes first, so a push Redis refuses (a queue key of
-- another type) leaves no lock behind; the lock is written only once the job is in place.
--
-- KEYS[1]  the lock (jobs:unique:<digest>)
-- KEYS[2]  where the job goes: its queue list (to run now) or the schedule sorted set (later)
-- KEYS[3]  queues, the set of queue names (best effort, as for any push)
-- ARGV[1]  the job's jid
-- ARGV[2]  how long the lock lives, in milliseconds
-- ARGV[3]  the job JSON
-- ARGV[4]  to run now: the queue's name
-- ARGV[5]  to run later: the score (epoch seconds); '' to run now
--
-- Returns nil when the job was pushed, or when this very job (its jid) holds the lock already:
-- a push sent again after its reply was lost pushes nothing twice. Else the holder's jid.
local holder = redis.call('GET', KEYS[1])
if holder then
  if holder == ARGV[1] then
    return false
  end
  return holder
end
if ARGV[5] == '' then
  redis.call('LPUSH', KEYS[2], ARGV[3])
  redis.pcall('SADD', KEYS[3], ARGV[4])
else
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[3])
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
