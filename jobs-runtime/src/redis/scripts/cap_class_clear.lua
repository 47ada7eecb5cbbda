-- Remove a job class's cap and send every parked job of the class back to its own queue, in one
-- atomic step (the admin API's and the dashboard's clear).
--
-- Deletes the cap and its `jobs:caps:class` member; moves every parked job, oldest first, from the
-- right end of the waiting list to the right end of its queue (its JSON's `queue` field,
-- `default` when that is missing or unreadable). The leases of running jobs are left to be
-- released as those jobs end. The queue keys are built here from each job (ARGV[2] .. 'queue:'
-- .. name), as cap_class_release.lua does.
--
-- KEYS[1]  the class's cap (jobs:cap:class:<Class>)
-- KEYS[2]  jobs:caps:class
-- KEYS[3]  the class's waiting list (jobs:waiting:class:<Class>)
-- KEYS[4]  queues, the set of queue names
-- ARGV[1]  the class's member in jobs:caps:class (class:<Class>)
-- ARGV[2]  the key prefix ('' or '<namespace>:')
--
-- Returns { 1 if the class had a cap else 0, how many parked jobs went back }.
local had = redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
local moved = 0
while true do
  local job = redis.call('RPOP', KEYS[3])
  if not job then
    break
  end
  local queue = 'default'
  local ok, decoded = pcall(cjson.decode, job)
  if ok and type(decoded) == 'table' and type(decoded['queue']) == 'string'
      and decoded['queue'] ~= '' then
    queue = decoded['queue']
  end
  redis.call('RPUSH', ARGV[2] .. 'queue:' .. queue, job)
  redis.pcall('SADD', KEYS[4], queue)
  moved = moved + 1
end
return { had, moved }
