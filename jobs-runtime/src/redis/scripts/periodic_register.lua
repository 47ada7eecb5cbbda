-- Declare a periodic entry: write its definition, and start its state when the entry is new or
-- its definition changed, so that neither a new entry nor a changed one runs for ticks that
-- fell before it was declared.
--
-- KEYS[1]  the entry's hash (jobs:periodic:<name>)
-- KEYS[2]  jobs:periodic, the index of entries, scored by when one was last declared
-- ARGV[1]  the entry's name
-- ARGV[2]  its definition (JSON, the same bytes for the same entry in every process)
-- ARGV[3]  1: take over (a process starting: the newest declaration is in force);
--          0: only renew (a running process: a different definition in force stays)
--
-- Times are Redis's own (TIME), so the clocks of the processes never matter.
-- Returns 1 when this definition is in force, 0 when another one is.
-- Integers as text: Lua would print a number of 13 digits in its own float format.
local function int(x)
  return string.format('%d', x)
end
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local current = redis.call('HGET', KEYS[1], 'definition')
if current ~= ARGV[2] then
  if ARGV[3] ~= '1' and current then
    return 0
  end
  redis.call('HSET', KEYS[1], 'definition', ARGV[2], 'defined_at', int(now), 'last', int(now))
end
redis.call('HSET', KEYS[1], 'declared_at', int(now))
redis.call('ZADD', KEYS[2], now, ARGV[1])
return 1
