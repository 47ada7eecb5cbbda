-- Pause or resume a periodic entry (the dashboard, the admin API), only if it is declared and
-- its hash is a hash: no stray key is made for a name no process holds, and a key of another
-- type is left alone. Only `paused` changes; the definition and the tick state stay as they
-- are. While `paused` is present the claim script passes the entry's ticks over unpushed.
--
-- KEYS[1]  jobs:periodic, the index of entries
-- KEYS[2]  the entry's hash (jobs:periodic:<name>)
-- ARGV[1]  the entry's name
-- ARGV[2]  1: pause (a pause already in force keeps its time); 0: resume
--
-- Times are Redis's own (TIME). Returns 1 when the entry exists, 0 when it does not.
-- Integers as text: Lua would print a number of 13 digits in its own float format.
local function int(x)
  return string.format('%d', x)
end
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
if redis.call('TYPE', KEYS[2]).ok ~= 'hash' then
  return 0
end
if ARGV[2] == '1' then
  local now_parts = redis.call('TIME')
  local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
  redis.call('HSETNX', KEYS[2], 'paused', int(now))
else
  redis.call('HDEL', KEYS[2], 'paused')
end
return 1
