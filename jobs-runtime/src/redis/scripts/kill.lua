-- Move jobs from the schedule or retry sorted set to the dead set, each in one atomic step (the
-- dashboard's and the admin API's "kill"). A member another process moved first is no longer
-- there and is skipped. Each member is added to the dead set before it is removed, so a failing
-- write leaves it where it was. The dead set is then trimmed as the worker trims it.
--
-- KEYS[1]   the sorted set the jobs are in (schedule or retry)
-- KEYS[2]   the dead sorted set
-- ARGV[1]   now, in epoch seconds: the score of the first killed job; each next one is scored a
--           microsecond later, so every entry keeps a score of its own
-- ARGV[2]   drop dead members scored at or below this (the oldest allowed time)
-- ARGV[3]   how many dead members to keep at most
-- ARGV[4..] the members, exactly as read
--
-- Returns how many members were moved.
local killed = 0
for i = 4, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[2], tonumber(ARGV[1]) + killed * 0.000001, ARGV[i])
    redis.call('ZREM', KEYS[1], ARGV[i])
    killed = killed + 1
  end
end
if killed > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[3]) + 1))
end
return killed
