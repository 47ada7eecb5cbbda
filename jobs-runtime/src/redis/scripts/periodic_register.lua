-- Declare a periodic entry: write its definition, and start its state when the entry is new or
-- its definition changed. A new entry runs from the next tick on. A changed one runs from its
-- declaration, less the grace: a tick of the old definition due just before a deploy and not
-- yet claimed still runs, but a new schedule never catches up ticks it would have had earlier.
--
-- KEYS[1]  the entry's hash (jobs:periodic:<name>)
-- KEYS[2]  jobs:periodic, the index of entries, scored by when one was last declared
-- ARGV[1]  the entry's name
-- ARGV[2]  its definition (JSON, the same bytes for the same entry in every process)
-- ARGV[3]  1: take over (a process starting: the newest declaration is in force);
--          0: only renew (a running process: a different definition in force stays, unless
--          no process has declared it for ARGV[5] ms: its processes are gone)
-- ARGV[4]  the grace (ms; see periodic_claim.lua)
-- ARGV[5]  how long a definition in force may go undeclared before another takes over (ms)
--
-- Times are Redis's own (TIME), so the clocks of the processes never matter.
-- Returns {1 when this definition is in force, 0 when another one is; `last`, the newest tick
-- claimed (epoch ms)}.
-- Integers as text: Lua would print a number of 13 digits in its own float format.
local function int(x)
  return string.format('%d', x)
end
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'definition', 'last', 'declared_at')
local current = state[1]
local last = tonumber(state[2])
if current ~= ARGV[2] then
  local declared = tonumber(state[3]) or 0
  if ARGV[3] ~= '1' and current and now - declared < tonumber(ARGV[5]) then
    return {0, int(last or 0)}
  end
  if current then
    last = math.max(last or 0, now - tonumber(ARGV[4]))
  else
    last = now
  end
  redis.call('HSET', KEYS[1], 'definition', ARGV[2], 'defined_at', int(now), 'last', int(last))
end
redis.call('HSET', KEYS[1], 'declared_at', int(now))
redis.call('ZADD', KEYS[2], int(now), ARGV[1])
return {1, int(last or now)}
