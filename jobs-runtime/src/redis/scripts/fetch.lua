-- Reliable fetch: move up to ARGV[1] jobs from the queues into this process's working list, in
-- one atomic step, so a job is always in exactly one list. A paused queue is skipped; a capped
-- queue gives at most its free room, each job it gives holding a lease.
--
-- Jobs move a batch at a time: one `RPOP queue count` of each queue's oldest, then one LPUSH of
-- all the round's jobs onto the working list, so a round costs Redis about one command per
-- queue it asks for jobs, however many jobs it takes (one LMOVE per job before). Empty queues
-- are passed over a run of up to 64 at a time, with one EXISTS. All of it runs inside this one
-- script, so no other client sees a job in both lists or in neither. The working list's type is
-- read before any job leaves its queue: one that cannot take them (a key of the wrong type)
-- leaves every queue untouched. Under maxmemory, only the script's first write may be refused:
-- the SADD to jobs:workers below, before any job moves. Should the closing LPUSH still be
-- refused (an ACL), every job goes back to its queue and none is taken.
--
-- KEYS[1]     the working list (jobs:working:<identity>)
-- KEYS[2]     jobs:workers, the set crash recovery reads
-- KEYS[3]     paused, the set of paused queue names (Sidekiq Pro's)
-- KEYS[4]     jobs:caps, the set naming the capped queues (`queue:<name>`; read first: without
--             a member, nothing more)
-- KEYS[5..]   each queue's list (queue:<name>), in the order to take from for this batch: queue
--             position p (1-based) is KEYS[4 + p]; then, for each queue ARGV[8] names, in that
--             order, its cap (jobs:cap:queue:<name>) and its leases (jobs:lease:queue:<name>)
-- ARGV[1]     the most jobs to take (0: only report which queues are paused or capped)
-- ARGV[2]     this process's identity
-- ARGV[3]     the free slots: a capped queue's job is taken only while fewer jobs than this
--             were taken in this step, so that each one starts at once (a lease held by a job
--             waiting to start would waste the cap)
-- ARGV[4]     the first lease counter: the k-th lease of this step is <identity>|<ARGV[4]+k-1>
-- ARGV[5]     a lease's lifetime in ms (the heartbeat renews it)
-- ARGV[6]     the jobs drawn per queue, "position count position count ..." (space-separated;
--             empty when strict): each such queue is first asked for that many jobs, and what
--             is still wanted after that is taken from the queues in their order. A weighted
--             worker draws each job of a round a queue of its own, as one of Sidekiq's fetches
--             would (`QueueOrder::picks`); empty too for the call after a first look that fell
--             short, which takes what is still wanted in order.
-- ARGV[7]     what comes before a queue's name in its list's key (`queue:`, after the
--             namespace's prefix): the paused and capped sets name queues, and a queue's name
--             is its list's key without this
-- ARGV[8]     the positions of the queues whose cap and leases keys follow the lists
--             ("position position ...", space-separated, each once): those the worker knows to
--             be capped. A queue capped but not among them is reported in section [6] and no
--             job at all is taken, so the caller passes its keys and asks again. A worker on
--             1,000 queues, none capped, passes 1,000 keys a round rather than 3,000 and the
--             names.
-- ARGV[9]     how many queues holding jobs to report at most (section [7]; 0 or absent: none).
--             A weighted worker asks it of a round over all its queues, to look first at those
--             holding jobs in the rounds that follow.
--
-- The process is (re)added to jobs:workers in the same step, so a working list that holds
-- jobs always belongs to a process recovery knows about (after Redis restarted empty, or
-- after a recovery forgot a process that was only slow).
--
-- Returns an array of sections, so that a later section can be added without breaking a
-- reader of the earlier ones (a reader ignores the sections it does not know):
--   [1] taken:  the jobs' JSON, oldest first; section [5] says which queue each came from.
--               A queue that cannot be read (a key of the wrong type) is skipped, reported as
--               a message from queue position 0, so the jobs already moved from other queues
--               are still returned and run. A `paused` key that cannot be read is reported
--               the same way, and no queue counts as paused; a `jobs:caps` key that cannot be
--               read too, and no queue counts as capped; a cap or leases key that cannot be
--               read too, and its queue is not taken from.
--   [2] paused: the positions of the asked queues that are paused, whether or not jobs were
--               wanted, so the caller knows the paused state of all its queues as of this step.
--   [3] leases: pairs {index into section 1 (1-based), lease member}, one per job taken from a
--               capped queue: the lease the job holds until it is settled.
--   [4] capped: {queue position, cap, room left after this step, jobs left in the queue
--               (LLEN)} for every capped queue asked (room 0 with jobs left: full, its jobs
--               wait in their queue; room 0 and none left: nothing waits for room).
--   [5] from:   runs {queue position, count, queue position, count, ...}, flat: the first
--               `count` entries of [1] came from the first position, the next from the second,
--               and so on. Runs, not a position per job: the worker reads each value of the
--               reply, and one value a job costs it less than three (an array, a position and
--               the job).
--   [6] unkeyed: the positions of the queues jobs:caps names whose cap and leases keys were not
--               given (ARGV[8]); when there is one, no job was taken.
--   [7] holders: the positions of the asked queues that hold jobs after this step (paused ones,
--               and keys that are not lists, left out), in order, when there are no more than
--               ARGV[9] (keys of any type counted); {0} when there are more. Empty when ARGV[9]
--               asks for none. A step that took fewer jobs than wanted (and kept them) took all
--               that the other queues held: it names only capped queues, with no look at the
--               others.
-- Jobs leave the right end of a queue (the oldest) and enter the left end of the working list.
local working = KEYS[1]
local wanted = tonumber(ARGV[1])
local free = tonumber(ARGV[3])
local counter = tonumber(ARGV[4])
local lifetime = tonumber(ARGV[5])
redis.call('SADD', KEYS[2], ARGV[2])
local prefix = ARGV[7]
-- Each queue whose cap keys were given: its position -> its rank among them.
local keyed = {}
local keyed_count = 0
for number in string.gmatch(ARGV[8], '%d+') do
  keyed_count = keyed_count + 1
  keyed[tonumber(number)] = keyed_count
end
local queues = #KEYS - 4 - 2 * keyed_count
local taken = {}
local from = {}
-- Adds `entry` (a job, or at position 0 a message) to the reply, from queue `position`.
-- The messages (position 0) alone, kept apart too, for a reply that takes back its jobs.
local messages = {}
local function take(position, entry)
  taken[#taken + 1] = entry
  if position == 0 then
    messages[#messages + 1] = entry
  end
  if #from > 0 and from[#from - 1] == position then
    from[#from] = from[#from] + 1
  else
    from[#from + 1] = position
    from[#from + 1] = 1
  end
end
local paused = {}
local leases = {}
local capped = {}
local unkeyed = {}
local skip = {}
local room = {}
local function list_key(position) return KEYS[4 + position] end
local function cap_key(position) return KEYS[3 + queues + 2 * keyed[position]] end
local function leases_key(position) return KEYS[4 + queues + 2 * keyed[position]] end
-- The positions of the queues named in the set `key` of `size` members (each member is
-- `member_prefix` and a queue's name), as `found[position] = true`. A set no larger than the
-- queues asked (a few paused or capped queues, as it mostly is) is read whole and matched
-- against the queues' list keys, one table look-up a queue; a larger one is asked about each
-- queue, in calls of at most 1,000 (Lua's `unpack` has a limit), its name cut from its key.
local function named_in(key, size, member_prefix)
  local found = {}
  if size <= queues then
    local lists = {}
    for _, member in ipairs(redis.call('SMEMBERS', key)) do
      if string.sub(member, 1, #member_prefix) == member_prefix then
        lists[prefix .. string.sub(member, #member_prefix + 1)] = true
      end
    end
    for position = 1, queues do
      if lists[list_key(position)] then
        found[position] = true
      end
    end
  else
    for first = 1, queues, 1000 do
      local last = math.min(first + 999, queues)
      local members = {}
      for position = first, last do
        members[#members + 1] = member_prefix .. string.sub(list_key(position), #prefix + 1)
      end
      for index, member in ipairs(redis.call('SMISMEMBER', key, unpack(members))) do
        if member == 1 then
          found[first + index - 1] = true
        end
      end
    end
  end
  return found
end
-- The set's size, or nil with a message when the key cannot be read (the wrong type).
local function size_of(key)
  local size = redis.pcall('SCARD', key)
  if type(size) == 'table' and size.err then
    take(0, key .. ': ' .. size.err)
    return nil
  end
  return size
end
local paused_size = size_of(KEYS[3])
if paused_size and paused_size > 0 then
  local found = named_in(KEYS[3], paused_size, '')
  for position = 1, queues do
    if found[position] then
      paused[#paused + 1] = position
      skip[position] = true
    end
  end
end
local caps_size = size_of(KEYS[4])
local now = 0
-- The queues jobs:caps names: only these are capped, whatever cap keys exist.
local named = {}
if caps_size and caps_size > 0 then
  -- The separator is `crate::cap::member_of_queue`'s: the two must match.
  named = named_in(KEYS[4], caps_size, 'queue:')
  for position = 1, queues do
    if named[position] and not keyed[position] then
      unkeyed[#unkeyed + 1] = position
      skip[position] = true
    end
  end
end
if #unkeyed > 0 then
  -- A capped queue whose cap cannot be read here: take nothing rather than pass it over.
  wanted = 0
end
if caps_size and caps_size > 0 and keyed_count > 0 then
  if (redis.REDIS_VERSION_NUM or 0) < 0x070000 then
    -- Before Redis 7, a script that read TIME replicates its effects only when asked.
    redis.replicate_commands()
  end
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
  for position = 1, queues do
    local cap = keyed[position] and named[position] and redis.pcall('GET', cap_key(position))
    if type(cap) == 'table' and cap.err then
      take(0, cap_key(position) .. ': ' .. cap.err)
      skip[position] = true
    elseif cap then
      local limit = tonumber(cap)
      local dropped = redis.pcall('ZREMRANGEBYSCORE', leases_key(position), '-inf', now)
      local live = redis.pcall('ZCARD', leases_key(position))
      if not limit or limit < 1 then
        take(0, cap_key(position) .. ': not a cap of 1 or more')
        skip[position] = true
      elseif type(dropped) == 'table' or type(live) == 'table' then
        take(0, leases_key(position) .. ': not a sorted set')
        skip[position] = true
      else
        room[position] = math.max(0, limit - live)
        capped[#capped + 1] = {position, limit, 0, 0}
      end
    end
  end
end
-- Runs `command` on `key` with `values` as its trailing arguments, in calls of at most 1,000
-- values (Lua's `unpack` has a limit). Returns the error of a call Redis refused (`key` has the
-- wrong type): only the first can be, so then nothing was written.
local function variadic(command, key, values)
  for first = 1, #values, 1000 do
    local last = math.min(first + 999, #values)
    local reply = redis.pcall(command, key, unpack(values, first, last))
    if type(reply) == 'table' and reply.err then
      return reply
    end
  end
  return nil
end
local count = 0
local leased = 0
-- Each RPOP's jobs with their queue's position, in the order taken (for the closing LPUSH),
-- and each lease granted with its queue's, to undo them if that push is refused.
local popped = {}
local granted = {}
if wanted > 0 then
  local working_type = redis.call('TYPE', working)['ok']
  if working_type ~= 'list' and working_type ~= 'none' then
    take(0, working .. ': WRONGTYPE a ' .. working_type .. ', not a list: no job can be taken')
    wanted = 0
  end
end
-- Takes what is still wanted, but at most `most` jobs, from the queue at `position`.
local function take_from(position, most)
  local want = math.min(wanted - count, most)
  local left = room[position]
  if left then
    want = math.min(want, left, free - count)
  end
  if not skip[position] and want > 0 then
    local queue = list_key(position)
    -- The oldest `want` jobs, oldest first (the queue's right end is its oldest); nil (false)
    -- when the queue has no key.
    local jobs = redis.pcall('RPOP', queue, want)
    if type(jobs) == 'table' and jobs.err then
      take(0, queue .. ': ' .. jobs.err)
      skip[position] = true
    elseif jobs then
      popped[#popped + 1] = {position, jobs}
      local lease_args = {}
      for _, job in ipairs(jobs) do
        count = count + 1
        take(position, job)
        if left then
          -- The separator is `crate::cap`'s SEPARATOR: the two must match.
          local lease = ARGV[2] .. '|' .. (counter + leased)
          leased = leased + 1
          lease_args[#lease_args + 1] = now + lifetime
          lease_args[#lease_args + 1] = lease
          leases[#leases + 1] = {#taken, lease}
          granted[#granted + 1] = {position, lease}
        end
      end
      if #lease_args > 0 then
        -- The leases key was read as a sorted set above, so this cannot be refused.
        variadic('ZADD', leases_key(position), lease_args)
        room[position] = left - #jobs
      end
    end
  end
end
-- A run of queues with no key at all (an empty list has none) is passed over with one EXISTS
-- of up to SPAN keys rather than one LRANGE each: a worker on 1,000 queues whose first ones are
-- empty would otherwise pay a command per empty queue each round. Runs shorter than SPAN_MIN
-- are looked at one by one.
local SPAN = 64
local SPAN_MIN = 8
-- First the jobs drawn per queue, then what those queues lacked in the order.
local drawn = {}
for number in string.gmatch(ARGV[6], '%d+') do
  drawn[#drawn + 1] = tonumber(number)
end
for index = 1, #drawn - 1, 2 do
  if count >= wanted then
    break
  end
  if drawn[index] >= 1 and drawn[index] <= queues then
    take_from(drawn[index], drawn[index + 1])
  end
end
local position = 1
local looked_until = 0
while position <= queues and count < wanted do
  local next_position = position + 1
  if position > looked_until then
    local last = math.min(position + SPAN - 1, queues)
    looked_until = last
    if last - position + 1 >= SPAN_MIN then
      local span = {}
      for at = position, last do
        span[#span + 1] = list_key(at)
      end
      -- A refusal (not expected of EXISTS) counts as keys found: the run is looked at.
      local found = redis.pcall('EXISTS', unpack(span))
      if found == 0 then
        next_position = last + 1
      end
    end
  end
  if next_position == position + 1 then
    take_from(position, wanted)
  end
  position = next_position
end
-- Oldest first onto the working list's left end, so it ends up with the newest taken leftmost,
-- as a job at a time would have left it. Its type was read above, so a refusal is not expected
-- (an ACL could still refuse it): then every job goes back to the right end of its queue, in its
-- order (the last taken first), every lease granted is released, and no job is taken. A queue
-- that refuses its jobs back too (an ACL again) leaves them to this reply, without a lease: the
-- worker runs them, as it runs a job whose acknowledgement finds it gone.
local moved = {}
for _, batch in ipairs(popped) do
  for _, job in ipairs(batch[2]) do
    moved[#moved + 1] = job
  end
end
local refused = variadic('LPUSH', working, moved)
if refused then
  local unreturned = {}
  for index = #popped, 1, -1 do
    local position, jobs = popped[index][1], popped[index][2]
    local back = {}
    for at = #jobs, 1, -1 do
      back[#back + 1] = jobs[at]
    end
    local kept = variadic('RPUSH', list_key(position), back)
    if kept then
      unreturned[#unreturned + 1] = {position, jobs, kept.err}
    end
  end
  -- Each lease granted took one of its queue's room: given back with it.
  for _, lease in ipairs(granted) do
    redis.pcall('ZREM', leases_key(lease[1]), lease[2])
    room[lease[1]] = room[lease[1]] + 1
  end
  -- The reply keeps the messages of the queues that could not be read, and adds this one.
  local earlier = messages
  taken = {}
  from = {}
  leases = {}
  messages = {}
  for _, message in ipairs(earlier) do
    take(0, message)
  end
  take(0, working .. ': ' .. refused.err)
  for _, batch in ipairs(unreturned) do
    take(0, list_key(batch[1]) .. ': ' .. batch[3])
    for _, job in ipairs(batch[2]) do
      take(batch[1], job)
    end
  end
end
for _, entry in ipairs(capped) do
  entry[3] = room[entry[1]]
  local waiting = redis.pcall('LLEN', list_key(entry[1]))
  entry[4] = type(waiting) == 'number' and waiting or 0
end
-- The queues holding jobs now, when asked (ARGV[9]). A round that fell short of what it wanted
-- took all that every queue it could take from held: only capped queues can still hold jobs.
-- Otherwise the queues not skipped are counted with one EXISTS per run of SPAN; more than asked
-- for ends the search at once, and a run with keys is halved until each key is found (a key
-- among 64 costs six more EXISTS, not up to 64). Each queue found is kept only if its key is a
-- list: a key of the wrong type is not a queue to ask again.
local holders = {}
local report = tonumber(ARGV[9] or '0') or 0
local more = false
-- The number of keys among the queues at `candidates[from..to]`; a refusal (not expected of
-- EXISTS) counts as every key found.
local function keys_among(candidates, from, to)
  local span = {}
  for index = from, to do
    span[#span + 1] = list_key(candidates[index])
  end
  local found = redis.pcall('EXISTS', unpack(span))
  if type(found) ~= 'number' then
    return #span
  end
  return found
end
-- Adds to `holders`, in order, the queues at `candidates[from..to]` with a key, `found` of them.
local function find_keys(candidates, from, to, found)
  if found == 0 then
    return
  end
  if found == to - from + 1 then
    for index = from, to do
      holders[#holders + 1] = candidates[index]
    end
    return
  end
  local middle = math.floor((from + to) / 2)
  local left = keys_among(candidates, from, middle)
  find_keys(candidates, from, middle, left)
  find_keys(candidates, middle + 1, to, found - left)
end
if report > 0 and wanted > 0 and count < wanted and not refused then
  for _, entry in ipairs(capped) do
    if entry[4] > 0 then
      holders[#holders + 1] = entry[1]
    end
  end
  more = #holders > report
elseif report > 0 then
  local candidates = {}
  for position = 1, queues do
    if not skip[position] then
      candidates[#candidates + 1] = position
    end
  end
  local runs = {}
  local total = 0
  for from = 1, #candidates, SPAN do
    local to = math.min(from + SPAN - 1, #candidates)
    local found = keys_among(candidates, from, to)
    runs[#runs + 1] = {from, to, found}
    total = total + found
    if total > report then
      more = true
      break
    end
  end
  if not more then
    for _, run in ipairs(runs) do
      find_keys(candidates, run[1], run[2], run[3])
    end
    local lists = {}
    for _, position in ipairs(holders) do
      local kind = redis.pcall('TYPE', list_key(position))
      if type(kind) == 'table' and kind.ok == 'list' then
        lists[#lists + 1] = position
      end
    end
    holders = lists
  end
end
if more then
  holders = {0}
end
return {taken, paused, leases, capped, from, unkeyed, holders}
