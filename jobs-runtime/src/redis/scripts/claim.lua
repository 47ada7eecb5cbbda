-- Take one given job from a queue into this process's working list, by its exact bytes: a job
-- one crash from the dead set, handed back a moment ago so that it can run alone. Whatever was
-- handed back in front of it since stays where it is.
--
-- KEYS[1]  the queue list
-- KEYS[2]  the working list (jobs:working:<identity>)
-- KEYS[3]  jobs:workers, the set crash recovery reads
-- ARGV[1]  the job, exactly as it was handed back
-- ARGV[2]  this process's identity
--
-- The working list is written before the job leaves the queue, so a failure in between leaves
-- it where it was. Returns 1 when the job was taken, 0 when it was no longer in the queue
-- (another process took it).
redis.call('SADD', KEYS[3], ARGV[2])
if not redis.call('LPOS', KEYS[1], ARGV[1], 'RANK', -1) then
  return 0
end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LREM', KEYS[1], -1, ARGV[1])
return 1
