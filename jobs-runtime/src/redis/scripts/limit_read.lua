-- One limiter as the dashboard shows it, by Redis's clock: its hash and what is in use now.
--
-- KEYS[1]  the limiter's hash (jobs:limit:{name})
-- KEYS[2]  the limiter's sorted set (jobs:limit:{name}:held)
--
-- Returns nil when the limiter is gone (unused for its time to live), else {kind, size,
-- interval_ms, in use now (a string: a leaky or points level has a fraction), calls, over,
-- last_over, last_used, ms to live}.
local f = redis.call('HMGET', KEYS[1], 'kind', 'size', 'interval_ms', 'window', 'used',
  'level', 'at', 'calls', 'over', 'last_over', 'last_used')
if not f[1] then
  return nil
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local kind = f[1]
local size = tonumber(f[2]) or 0
local interval = tonumber(f[3]) or 1
local in_use = 0
if kind == 'concurrent' then
  in_use = redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf')
elseif kind == 'window' then
  in_use = redis.call('ZCOUNT', KEYS[2], '(' .. (now - interval), '+inf')
elseif kind == 'bucket' then
  if tonumber(f[4]) == math.floor(now / interval) then
    in_use = tonumber(f[5]) or 0
  end
else
  local level = tonumber(f[6]) or 0
  local at = tonumber(f[7]) or now
  in_use = math.max(0, level - (now - at) * size / interval)
end
return {kind, f[2] or '0', f[3] or '0', string.format('%.17g', in_use), f[8] or '0',
  f[9] or '0', f[10] or '', f[11] or '', redis.call('PTTL', KEYS[1])}
