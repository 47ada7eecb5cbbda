-- One call of a limiter: take a slot (a lease, a call, a drop, points) if there is room, in
-- one atomic step, by Redis's clock (TIME), so the clocks of the processes do not matter.
--
-- KEYS[1]  the limiter's hash (jobs:limit:{name}): kind, size, interval_ms, last_used, the
--          state (window and used for a bucket, level and at for leaky and points), and the
--          counts (calls, over, last_over)
-- KEYS[2]  the limiter's sorted set (jobs:limit:{name}:held): a concurrent limiter's leases
--          scored by when they run out, a window limiter's calls scored by when they were made
-- ARGV[1]  the kind: concurrent, bucket, window, leaky or points
-- ARGV[2]  the size: holders at once, calls per interval, drops in the bucket, points
-- ARGV[3]  the interval in ms: a concurrent lease's length (lock_timeout), a bucket's window,
--          the sliding window, the time a full leaky bucket takes to drain, the time a spent
--          points budget takes to refill
-- ARGV[4]  the cost of this call: 1, or a points call's points
-- ARGV[5]  this call's id: the lease a concurrent call holds, the member a window call adds
-- ARGV[6]  how long the caller may still wait, in ms: a refusal it cannot wait out counts as
--          over limit (its final answer)
-- ARGV[7]  how long the keys live after this call, in ms (at least one interval)
--
-- Returns {1, 0} when the slot is taken; {0, wait} when there is no room yet and the caller
-- may wait (wait: ms until there is room, or -1 when unknown: a concurrent holder may end at
-- any time); {-1, wait} when the caller cannot wait that long (counted as over limit).
local redis_version = redis.REDIS_VERSION_NUM or 0
if redis_version < 0x070000 then
  -- Before Redis 7, a script that read TIME replicates its effects only when asked.
  redis.replicate_commands()
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local kind = ARGV[1]
local size = tonumber(ARGV[2])
local interval = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local wait_left = tonumber(ARGV[6])

local state = redis.call('HMGET', KEYS[1], 'kind', 'window', 'used', 'level', 'at')
if state[1] ~= kind then
  -- New, or redefined as another kind: the old state means nothing to this one.
  redis.call('HDEL', KEYS[1], 'window', 'used', 'level', 'at')
  redis.call('DEL', KEYS[2])
  state = {kind, false, false, false, false}
end

local granted = false
local wait = -1
if kind == 'concurrent' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) < size then
    redis.call('ZADD', KEYS[2], now + interval, ARGV[5])
    granted = true
  end
elseif kind == 'window' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - interval)
  if redis.call('ZCARD', KEYS[2]) < size then
    redis.call('ZADD', KEYS[2], now, ARGV[5])
    granted = true
  else
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    wait = math.max(0, tonumber(oldest[2]) + interval - now)
  end
elseif kind == 'bucket' then
  -- Fixed windows from the epoch: seconds, minutes, hours, UTC days.
  local window = math.floor(now / interval)
  local used = 0
  if tonumber(state[2]) == window then
    used = tonumber(state[3]) or 0
  end
  if used + cost <= size then
    redis.call('HSET', KEYS[1], 'window', window, 'used', used + cost)
    granted = true
  else
    wait = (window + 1) * interval - now
  end
elseif kind == 'leaky' or kind == 'points' then
  -- A bucket that drains continuously, `size` in one `interval`; a call pours in its cost.
  local level = tonumber(state[4]) or 0
  local at = tonumber(state[5]) or now
  -- A clock that went back (a failover to a replica behind) drains nothing, never fills it.
  level = math.max(0, level - math.max(0, now - at) * size / interval)
  if level + cost <= size then
    level = level + cost
    granted = true
  else
    wait = math.ceil((level + cost - size) * interval / size)
  end
  redis.call('HSET', KEYS[1], 'level', string.format('%.17g', level), 'at', now)
else
  return redis.error_reply('unknown limiter kind ' .. tostring(kind))
end

redis.call('HSET', KEYS[1], 'kind', kind, 'size', ARGV[2], 'interval_ms', ARGV[3],
  'last_used', now)
local status = 0
if granted then
  redis.call('HINCRBY', KEYS[1], 'calls', 1)
  status = 1
  wait = 0
elseif (wait < 0 and wait_left <= 0) or (wait >= 0 and wait > wait_left) then
  redis.call('HINCRBY', KEYS[1], 'over', 1)
  redis.call('HSET', KEYS[1], 'last_over', now)
  status = -1
end
local ttl = math.max(tonumber(ARGV[7]), interval)
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return {status, wait}
