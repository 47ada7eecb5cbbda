-- Claim a periodic entry's due ticks and push their jobs, in one atomic step: a tick is
-- pushed once, by the first process to claim it, whatever the others do or however they die.
--
-- KEYS[1]  the entry's hash (jobs:periodic:<name>): `definition`, `last` (the newest tick
--          claimed, epoch ms), `claimed_at` (when, Redis time), `paused`, `last_jid`,
--          `last_tick`, `pushed_at`
-- KEYS[2]  the queue list (queue:<q>)
-- KEYS[3]  the queues set
-- ARGV[1]  the definition this process holds; another one in force means it claims nothing
-- ARGV[2]  the queue's name
-- ARGV[3]  `one` or `none`: what to do for ticks missed while no process claimed any
-- ARGV[4]  the grace (ms): ticks within it of the last claim were missed by a live process
--          (a pause, a slow loop) and are all pushed; past it, every worker was down
-- ARGV[5..] triples of (tick in epoch ms, the jid of its job, the job JSON), oldest first
--
-- Times are Redis's (TIME): a tick still in Redis's future is left for later, so a process
-- whose clock runs ahead pushes nothing early, and one whose clock lags pushes nothing twice.
--
-- Returns {status, last, now, pushed ticks…}: status 1 when it ran (pushing zero or more), 0
-- when paused (the ticks are passed over), -1 when another definition is in force, -2 when the
-- queue cannot take the job (its key holds another type: nothing is claimed, the error comes
-- in place of the ticks); `last` is the newest tick claimed so far, `now` Redis's time (epoch
-- ms), so that a process whose clock runs ahead knows how long to wait.
-- Integers as text: Lua would print a number of 13 digits in its own float format.
local function int(x)
  return string.format('%d', x)
end
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'definition', 'last', 'claimed_at', 'paused')
local last = tonumber(state[2]) or 0
if state[1] ~= ARGV[1] then
  return {-1, int(last), int(now)}
end
local claimed_at = tonumber(state[3]) or 0
local grace = tonumber(ARGV[4])

-- The ticks not claimed yet and due by Redis's clock.
local due = {}
for i = 5, #ARGV, 3 do
  local tick = tonumber(ARGV[i])
  if tick > last and tick <= now then
    due[#due + 1] = i
  end
end
if #due == 0 then
  return {1, int(last), int(now)}
end
local newest = tonumber(ARGV[due[#due]])

if state[4] then
  -- Paused: the ticks pass unrun, so resuming brings no burst.
  redis.call('HSET', KEYS[1], 'last', int(newest), 'claimed_at', int(now))
  return {0, int(newest), int(now)}
end

local push = {}
if now - claimed_at <= grace then
  -- A process claimed within the grace: these ticks were missed by a live one; push each.
  push = due
elseif ARGV[3] == 'one' or newest >= now - grace then
  -- Every worker was down: at most one run, for the newest tick (on time, or catching up).
  push = {due[#due]}
end

-- A tick whose job a client middleware stopped comes with an empty JSON: claimed, not pushed.
local jobs = {}
for _, i in ipairs(push) do
  if ARGV[i + 2] ~= '' then
    jobs[#jobs + 1] = i
  end
end
if #jobs > 0 then
  -- The queue first: when it cannot take a job, nothing is claimed and nothing pushed.
  local queued = redis.pcall('LPUSH', KEYS[2], ARGV[jobs[1] + 2])
  if type(queued) == 'table' and queued.err then
    return {-2, int(last), int(now), queued.err}
  end
  for n = 2, #jobs do
    redis.call('LPUSH', KEYS[2], ARGV[jobs[n] + 2])
  end
  -- Only for listing: a `queues` key of another type must not stop the claim after the push.
  redis.pcall('SADD', KEYS[3], ARGV[2])
  local newest_pushed = jobs[#jobs]
  redis.call('HSET', KEYS[1], 'last_tick', ARGV[newest_pushed], 'last_jid',
    ARGV[newest_pushed + 1], 'pushed_at', int(now))
end
redis.call('HSET', KEYS[1], 'last', int(newest), 'claimed_at', int(now))
local result = {1, int(newest), int(now)}
for _, i in ipairs(jobs) do
  result[#result + 1] = ARGV[i]
end
return result
