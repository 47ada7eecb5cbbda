-- Reliable fetch: move up to ARGV[1] jobs from the queues into this process's working list, in
-- one atomic step, so a job is always in exactly one list. A paused queue is skipped; a capped
-- queue gives at most its free room, each job it gives holding a lease.
--
-- KEYS[1]     the working list (jobs:working:<identity>)
-- KEYS[2]     jobs:workers, the set crash recovery reads
-- KEYS[3]     paused, the set of paused queue names (Sidekiq Pro's)
-- KEYS[4]     jobs:caps, the set of the queues' caps (read first: without one, nothing more)
-- KEYS[5..n]  three keys per queue, in the order to take from for this batch: its list
--             (queue:<name>), its cap (jobs:cap:queue:<name>) and its leases
--             (jobs:lease:queue:<name>); queue position p (1-based) is KEYS[2 + 3p] and so on
-- ARGV[1]     the most jobs to take (0: only report which queues are paused or capped)
-- ARGV[2]     this process's identity
-- ARGV[3]     the free slots: a capped queue's job is taken only while fewer jobs than this
--             were taken in this step, so that each one starts at once (a lease held by a job
--             waiting to start would waste the cap)
-- ARGV[4]     the first lease counter: the k-th lease of this step is <identity>|<ARGV[4]+k-1>
-- ARGV[5]     a lease's lifetime in ms (the heartbeat renews it)
-- ARGV[6..m]  the queues' names, one for each queue position, in the same order
--
-- The process is (re)added to jobs:workers in the same step, so a working list that holds
-- jobs always belongs to a process recovery knows about (after Redis restarted empty, or
-- after a recovery forgot a process that was only slow).
--
-- Returns an array of sections, so that a later section can be added without breaking a
-- reader of the earlier ones (a reader ignores the sections it does not know):
--   [1] taken:  pairs {queue position, job JSON}, oldest first. A queue that cannot be read
--               (a key of the wrong type) is skipped, reported as {0, message}, so the jobs
--               already moved from other queues are still returned and run. A `paused` key
--               that cannot be read is reported the same way, and no queue counts as paused;
--               a `jobs:caps` key that cannot be read too, and no queue counts as capped; a
--               cap or leases key that cannot be read too, and its queue is not taken from.
--   [2] paused: the positions of the asked queues that are paused, whether or not jobs were
--               wanted, so the caller knows the paused state of all its queues as of this step.
--   [3] leases: pairs {index into section 1 (1-based), lease member}, one per job taken from a
--               capped queue: the lease the job holds until it is settled.
--   [4] capped: {queue position, cap, room left after this step, jobs left in the queue
--               (LLEN)} for every capped queue asked (room 0 with jobs left: full, its jobs
--               wait in their queue; room 0 and none left: nothing waits for room).
-- Jobs leave the right end of a queue (the oldest) and enter the left end of the working list.
local working = KEYS[1]
local wanted = tonumber(ARGV[1])
local free = tonumber(ARGV[3])
local counter = tonumber(ARGV[4])
local lifetime = tonumber(ARGV[5])
redis.call('SADD', KEYS[2], ARGV[2])
local queues = (#KEYS - 4) / 3
local taken = {}
local paused = {}
local leases = {}
local capped = {}
local skip = {}
local room = {}
local function list_key(position) return KEYS[2 + 3 * position] end
local function cap_key(position) return KEYS[3 + 3 * position] end
local function leases_key(position) return KEYS[4 + 3 * position] end
local function name(position) return ARGV[5 + position] end
for position = 1, queues do
  local member = redis.pcall('SISMEMBER', KEYS[3], name(position))
  if type(member) == 'table' and member.err then
    taken[#taken + 1] = {0, KEYS[3] .. ': ' .. member.err}
    break
  end
  if member == 1 then
    paused[#paused + 1] = position
    skip[position] = true
  end
end
local any_cap = redis.pcall('SCARD', KEYS[4])
if type(any_cap) == 'table' and any_cap.err then
  taken[#taken + 1] = {0, KEYS[4] .. ': ' .. any_cap.err}
  any_cap = 0
end
local now = 0
if any_cap > 0 then
  if (redis.REDIS_VERSION_NUM or 0) < 0x070000 then
    -- Before Redis 7, a script that read TIME replicates its effects only when asked.
    redis.replicate_commands()
  end
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
  for position = 1, queues do
    local cap = redis.pcall('GET', cap_key(position))
    if type(cap) == 'table' and cap.err then
      taken[#taken + 1] = {0, cap_key(position) .. ': ' .. cap.err}
      skip[position] = true
    elseif cap then
      local limit = tonumber(cap)
      local dropped = redis.pcall('ZREMRANGEBYSCORE', leases_key(position), '-inf', now)
      local live = redis.pcall('ZCARD', leases_key(position))
      if not limit or limit < 1 then
        taken[#taken + 1] = {0, cap_key(position) .. ': not a cap of 1 or more'}
        skip[position] = true
      elseif type(dropped) == 'table' or type(live) == 'table' then
        taken[#taken + 1] = {0, leases_key(position) .. ': not a sorted set'}
        skip[position] = true
      else
        room[position] = math.max(0, limit - live)
        capped[#capped + 1] = {position, limit, 0, 0}
      end
    end
  end
end
local count = 0
local leased = 0
for position = 1, queues do
  while count < wanted and not skip[position] do
    local left = room[position]
    if left and (left < 1 or count >= free) then
      break
    end
    local job = redis.pcall('LMOVE', list_key(position), working, 'RIGHT', 'LEFT')
    if type(job) == 'table' and job.err then
      taken[#taken + 1] = {0, list_key(position) .. ': ' .. job.err}
      break
    end
    if not job then
      break
    end
    count = count + 1
    taken[#taken + 1] = {position, job}
    if left then
      -- The separator is `crate::cap`'s SEPARATOR: the two must match.
      local lease = ARGV[2] .. '|' .. (counter + leased)
      leased = leased + 1
      redis.call('ZADD', leases_key(position), now + lifetime, lease)
      room[position] = left - 1
      leases[#leases + 1] = {#taken, lease}
    end
  end
  if count >= wanted then
    break
  end
end
for _, entry in ipairs(capped) do
  entry[3] = room[entry[1]]
  local waiting = redis.pcall('LLEN', list_key(entry[1]))
  entry[4] = type(waiting) == 'number' and waiting or 0
end
return {taken, paused, leases, capped}
