-- Read one unique lock: its holder and how long it has left.
--
-- KEYS[1]  the lock (jobs:unique:<digest>)
--
-- Returns {holder jid, milliseconds left (-1: no expiry)}, or nil when there is no lock (a key
-- of another type is no lock of ours, and reads as none).
local holder = redis.pcall('GET', KEYS[1])
if type(holder) ~= 'string' then
  return false
end
return {holder, redis.call('PTTL', KEYS[1])}
