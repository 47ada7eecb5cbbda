-- Release a unique lock, only if the given job still holds it: a lock that ran out and was taken
-- by another job since is left to that job.
--
-- KEYS[1]  the lock (jobs:unique:<digest>)
-- ARGV[1]  the jid of the job that took it
--
-- Returns 1 when the lock was released, else 0. It never fails: a key of another type is left
-- as it is (it is no lock of ours), so a pipeline it rides in is never failed by it.
local holder = redis.pcall('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
