-- Acknowledge a unique job: take it off this process's working list and, only if it was still
-- there, release its lock if the job still holds it. A job no longer in the list was handed back
-- or recovered elsewhere (this process was presumed dead, or shut down around it): its copy in
-- a queue still needs the lock, so the lock stays.
--
-- KEYS[1]  the working list
-- KEYS[2]  the job's lock (jobs:unique:<digest>)
-- ARGV[1]  the job exactly as it was taken
-- ARGV[2]  the LREM count: -1 to look from the tail (the batched acknowledgements), 1 from the
--          head
-- ARGV[3]  the job's jid
--
-- Returns how many entries were removed (0 or 1).
local removed = redis.call('LREM', KEYS[1], ARGV[2], ARGV[1])
if removed > 0 and redis.pcall('GET', KEYS[2]) == ARGV[3] then
  redis.call('DEL', KEYS[2])
end
return removed
