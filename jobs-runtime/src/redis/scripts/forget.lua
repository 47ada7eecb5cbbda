-- Forget a dead process after its jobs were recovered, in one atomic step, only if it is
-- still dead and its working list is empty: a process that beat again, or that took a job
-- meanwhile, stays known to crash recovery. The recovery lock is released either way.
--
-- KEYS[1]    jobs:workers
-- KEYS[2]    processes
-- KEYS[3]    its working list (jobs:working:<identity>)
-- KEYS[4]    the recovery lock (jobs:recovering:<identity>)
-- KEYS[5..]  its liveness keys (jobs:alive:<identity>, and its Sidekiq hash when that was
--            gone too); any of them existing means it is alive
-- ARGV[1]    the process's identity
--
-- Returns 1 when the process was forgotten, 0 when it was kept.
local alive = false
for guard = 5, #KEYS do
  if redis.call('EXISTS', KEYS[guard]) == 1 then
    alive = true
  end
end
local forgotten = 0
if not alive and redis.call('LLEN', KEYS[3]) == 0 then
  redis.call('SREM', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[1])
  forgotten = 1
end
redis.call('DEL', KEYS[4])
return forgotten
