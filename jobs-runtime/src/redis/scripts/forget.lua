-- Forget a dead process after its jobs were recovered, in one atomic step, only if it is
-- still dead and its working list is empty: a process that beat again, or that took a job
-- meanwhile, stays known to crash recovery. The recovery lock is released either way.
--
-- KEYS[1]  jobs:workers
-- KEYS[2]  processes
-- KEYS[3]  the process's heartbeat hash (<identity>)
-- KEYS[4]  its working list (jobs:working:<identity>)
-- KEYS[5]  the recovery lock (jobs:recovering:<identity>)
-- ARGV[1]  the process's identity
--
-- Returns 1 when the process was forgotten, 0 when it was kept.
local forgotten = 0
if redis.call('EXISTS', KEYS[3]) == 0 and redis.call('LLEN', KEYS[4]) == 0 then
  redis.call('SREM', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[1])
  forgotten = 1
end
redis.call('DEL', KEYS[5])
return forgotten
