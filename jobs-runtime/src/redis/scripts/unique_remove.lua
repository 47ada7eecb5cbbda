-- Remove a unique job from where it waits (a queue list, the schedule or the retry set) and
-- release its lock in the same step, if it was still there and still holds the lock: the
-- dashboard's and the admin API's delete. A job a worker took first is left to run, lock and
-- all.
--
-- KEYS[1]  the queue list or sorted set
-- KEYS[2]  the job's lock (jobs:unique:<digest>)
-- ARGV[1]  'list' or 'zset'
-- ARGV[2]  the job exactly as read
-- ARGV[3]  the job's jid
--
-- Returns 1 when the job was removed, else 0.
local removed
if ARGV[1] == 'list' then
  removed = redis.call('LREM', KEYS[1], 1, ARGV[2])
else
  removed = redis.call('ZREM', KEYS[1], ARGV[2])
end
if removed > 0 and redis.pcall('GET', KEYS[2]) == ARGV[3] then
  redis.call('DEL', KEYS[2])
end
return removed
