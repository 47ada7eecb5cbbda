-- A limiter reset by hand: its state and counts cleared (holders, calls, level, over-limit
-- counts), its definition kept, so it stays listed until it expires.
--
-- KEYS[1]  the limiter's hash (jobs:limit:{name})
-- KEYS[2]  the limiter's sorted set (jobs:limit:{name}:held)
--
-- Returns 1 when the limiter existed, 0 when not.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HDEL', KEYS[1], 'window', 'used', 'level', 'at', 'calls', 'over', 'last_over')
redis.call('DEL', KEYS[2])
return 1
