-- Acknowledge finished jobs: take each off this process's working list, as one `LREM <list> -1
-- <job>` per job would, for a few commands per batch rather than one per job.
--
-- Jobs enter the working list at its left end and finished jobs were mostly taken before those
-- still waiting or running, so they are mostly found together at the right end. The script reads
-- the list's last entries (one LRANGE), drops the longest run at the right end that consists
-- only of finished jobs (one LTRIM), and takes the rest off one LREM each, from the right, as
-- before. Each finished job removes at most one entry, the one nearest the right end with its
-- exact bytes, so the result is the same as one LREM per job.
--
-- KEYS[1]     the working list (jobs:working:<identity>)
-- ARGV[1..n]  the finished jobs, each exactly as it was taken (the same bytes may come twice:
--             each removes one entry)
--
-- Returns how many entries were removed; 0 when the list cannot be read (a key of the wrong
-- type), which leaves the jobs held, as a failed LREM would.
local working = KEYS[1]
local left = {}
for index = 1, #ARGV do
  left[ARGV[index]] = (left[ARGV[index]] or 0) + 1
end
local tail = redis.pcall('LRANGE', working, -#ARGV, -1)
if type(tail) == 'table' and tail.err then
  return 0
end
local trimmed = 0
for index = #tail, 1, -1 do
  local count = left[tail[index]]
  if not count or count == 0 then
    break
  end
  left[tail[index]] = count - 1
  trimmed = trimmed + 1
end
if trimmed > 0 then
  redis.call('LTRIM', working, 0, -trimmed - 1)
end
local removed = trimmed
for index = 1, #ARGV do
  local job = ARGV[index]
  if left[job] > 0 then
    left[job] = left[job] - 1
    removed = removed + redis.call('LREM', working, -1, job)
  end
end
return removed
