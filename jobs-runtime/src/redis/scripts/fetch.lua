-- Reliable fetch: move up to ARGV[1] jobs from the queues into this process's working list, in
-- one atomic step, so a job is always in exactly one list.
--
-- KEYS[1]     the working list (jobs:working:<identity>)
-- KEYS[2]     jobs:workers, the set crash recovery reads
-- KEYS[3..n]  queue lists (queue:<name>), in the order to take from for this batch
-- ARGV[1]     the most jobs to take
-- ARGV[2]     this process's identity
--
-- The process is (re)added to jobs:workers in the same step, so a working list that holds
-- jobs always belongs to a process recovery knows about (after Redis restarted empty, or
-- after a recovery forgot a process that was only slow).
--
-- Returns an array of pairs {queue position (1 = KEYS[3]), job JSON}, oldest first. A queue
-- that cannot be read (a key of the wrong type) is skipped, reported as {0, message}, so the
-- jobs already moved from other queues are still returned and run.
-- Jobs leave the right end of a queue (the oldest) and enter the left end of the working list.
local working = KEYS[1]
local wanted = tonumber(ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
local taken = {}
local count = 0
for position = 3, #KEYS do
  while count < wanted do
    local job = redis.pcall('LMOVE', KEYS[position], working, 'RIGHT', 'LEFT')
    if type(job) == 'table' and job.err then
      taken[#taken + 1] = {0, KEYS[position] .. ': ' .. job.err}
      break
    end
    if not job then
      break
    end
    count = count + 1
    taken[#taken + 1] = {position - 2, job}
  end
  if count >= wanted then
    break
  end
end
return taken
