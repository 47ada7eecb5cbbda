-- Reliable fetch: move up to ARGV[1] jobs from the queues into this process's working list, in
-- one atomic step, so a job is always in exactly one list. A paused queue is skipped.
--
-- KEYS[1]     the working list (jobs:working:<identity>)
-- KEYS[2]     jobs:workers, the set crash recovery reads
-- KEYS[3]     paused, the set of paused queue names (Sidekiq Pro's)
-- KEYS[4..n]  queue lists (queue:<name>), in the order to take from for this batch
-- ARGV[1]     the most jobs to take (0: only report which queues are paused)
-- ARGV[2]     this process's identity
-- ARGV[3..m]  the queues' names, one for each of KEYS[4..n], in the same order
--
-- The process is (re)added to jobs:workers in the same step, so a working list that holds
-- jobs always belongs to a process recovery knows about (after Redis restarted empty, or
-- after a recovery forgot a process that was only slow).
--
-- Returns an array of sections, so that a later section can be added without breaking a
-- reader of the earlier ones (a reader ignores the sections it does not know):
--   [1] taken:  pairs {queue position (1 = KEYS[4]), job JSON}, oldest first. A queue that
--               cannot be read (a key of the wrong type) is skipped, reported as
--               {0, message}, so the jobs already moved from other queues are still returned
--               and run. A `paused` key that cannot be read is reported the same way, and no
--               queue counts as paused.
--   [2] paused: the positions of the asked queues that are paused, whether or not jobs were
--               wanted, so the caller knows the paused state of all its queues as of this step.
-- Jobs leave the right end of a queue (the oldest) and enter the left end of the working list.
local working = KEYS[1]
local wanted = tonumber(ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
local taken = {}
local paused = {}
local skip = {}
for position = 4, #KEYS do
  local member = redis.pcall('SISMEMBER', KEYS[3], ARGV[position - 1])
  if type(member) == 'table' and member.err then
    taken[#taken + 1] = {0, KEYS[3] .. ': ' .. member.err}
    break
  end
  if member == 1 then
    paused[#paused + 1] = position - 3
    skip[position] = true
  end
end
local count = 0
for position = 4, #KEYS do
  while count < wanted and not skip[position] do
    local job = redis.pcall('LMOVE', KEYS[position], working, 'RIGHT', 'LEFT')
    if type(job) == 'table' and job.err then
      taken[#taken + 1] = {0, KEYS[position] .. ': ' .. job.err}
      break
    end
    if not job then
      break
    end
    count = count + 1
    taken[#taken + 1] = {position - 3, job}
  end
  if count >= wanted then
    break
  end
end
return {taken, paused}
