-- A workflow step's batch reached a moment (it succeeded, or its job died): record it in the
-- workflow, then read back what the caller needs to start the steps that follow. Idempotent:
-- the records are set members, so running it again for the same step and event changes
-- nothing, and it writes before it reads, so of two advances racing, the later sees both
-- records.
--
-- KEYS[1]  workflow:<wid>        (hash: total, steps, state, retention, ...)
-- KEYS[2]  workflow:<wid>:done   (set of the steps that succeeded)
-- KEYS[3]  workflow:<wid>:dead   (set of the steps whose job died)
-- ARGV[1]  the step's name
-- ARGV[2]  the event: `success` or `death`
-- ARGV[3]  now, in epoch milliseconds
-- ARGV[4]  for a death: why the step could not start at all (stored as `error:<step>`), or ''
--
-- Returns false when the workflow is gone (an unknown id, or expired after its retention);
-- else {state, steps JSON, description, queue, retention, succeeded step...}: the state is `dead` while a step is dead,
-- `succeeded` once every step succeeded, `running` otherwise.

local workflow, done, dead = KEYS[1], KEYS[2], KEYS[3]
local step, event, now, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

if redis.call('EXISTS', workflow) == 0 then
  return false
end

if event ~= 'success' and event ~= 'death' then
  return redis.error_reply('unknown workflow event `' .. tostring(event) .. '`')
end

-- Only a step of the graph: a success recorded for another name would count towards `total`.
local known = false
for _, def in ipairs(cjson.decode(redis.call('HGET', workflow, 'steps') or '[]')) do
  if def.name == step then
    known = true
    break
  end
end
if not known then
  return redis.error_reply('the workflow has no step `' .. tostring(step) .. '`')
end

if event == 'success' then
  -- A dead step whose job was retried by hand and succeeded is no longer dead.
  redis.call('SADD', done, step)
  redis.call('SREM', dead, step)
elseif event == 'death' then
  if redis.call('SISMEMBER', done, step) == 0 then
    redis.call('SADD', dead, step)
    if reason and reason ~= '' then
      redis.call('HSET', workflow, 'error:' .. step, reason)
    end
  end
else
  return redis.error_reply('unknown workflow event `' .. tostring(event) .. '`')
end

local total = tonumber(redis.call('HGET', workflow, 'total')) or 0
local state = 'running'
if redis.call('SCARD', dead) > 0 then
  state = 'dead'
elseif redis.call('SCARD', done) >= total then
  state = 'succeeded'
end
redis.call('HSET', workflow, 'state', state)
if state == 'succeeded' then
  redis.call('HSETNX', workflow, 'succeeded_at', now)
elseif state == 'dead' then
  redis.call('HSETNX', workflow, 'dead_at', now)
end

-- A running workflow's keys do not expire (a step may wait or run longer than the
-- retention); once it succeeded or died, they expire after its retention from this update
-- (a dead step retried by hand makes it running again: they no longer expire).
local retention = tonumber(redis.call('HGET', workflow, 'retention'))
for _, key in ipairs(KEYS) do
  if state == 'running' or not retention or retention <= 0 then
    redis.call('PERSIST', key)
  else
    redis.call('EXPIRE', key, retention)
  end
end

local reply = redis.call('HMGET', workflow, 'steps', 'description', 'queue', 'retention')
table.insert(reply, 1, state)
for _, member in ipairs(redis.call('SMEMBERS', done)) do
  reply[#reply + 1] = member
end
return reply
