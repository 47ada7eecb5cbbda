-- Move jobs from the schedule or retry sorted set to the dead set, each in one atomic step (the
-- dashboard's and the admin API's "kill"). A member another process moved first is no longer
-- there and is skipped. Each member is added to the dead set before it is removed, so a failing
-- write leaves it where it was. A killed unique job's lock is released, if it still holds it.
-- The dead set is then trimmed as the worker trims it. A killed batch job (its JSON carries
-- `bid`) is a death of its batch, applied in the same step as a worker's burial applies it
-- (`batch_events.lua`, prepended by `redis/scripts.rs`): the batch's keys are built from the
-- prefix, itself read off KEYS[2] (`<prefix>dead`), the Cluster exception `docs/batches.md`
-- describes.
--
-- KEYS[1]   the sorted set the jobs are in (schedule or retry)
-- KEYS[2]   the dead sorted set
-- KEYS[3..] the unique locks of the members that hold one
-- ARGV[1]   now, in epoch seconds: the score of the first killed job; each next one is scored a
--           microsecond later, so every entry keeps a score of its own
-- ARGV[2]   drop dead members scored at or below this (the oldest allowed time)
-- ARGV[3]   how many dead members to keep at most
-- ARGV[4..] groups of three: the member, exactly as read; the position in KEYS of its lock
--           (0: none); the jid that took the lock
--
-- Returns how many members were moved.
local prefix = string.sub(KEYS[2], 1, string.len(KEYS[2]) - string.len('dead'))

-- The killed `member`'s death, for its batch if it is a batch job.
local function batch_death(member)
  if not string.find(member, '"bid"', 1, true) then
    return
  end
  local ok, job = pcall(cjson.decode, member)
  if not ok or type(job) ~= 'table' or type(job.bid) ~= 'string' or type(job.jid) ~= 'string' then
    return
  end
  local keys = batch_keys(prefix, job.bid)
  if redis.call('EXISTS', keys[1]) == 0 then
    return
  end
  local text = function(value)
    if type(value) == 'string' then
      return value
    end
    return ''
  end
  local info = cjson.encode({
    class = text(job.class),
    error_class = text(job.error_class),
    error_message = text(job.error_message),
    failed_at = tonumber(ARGV[1]),
    dead = true,
  })
  local now_ms = string.format('%d', math.floor(tonumber(ARGV[1]) * 1000))
  if apply(keys, job.jid, 'death', info) then
    settle_chain(keys, job.bid, now_ms, prefix, 'death')
  end
end

local killed = 0
for i = 4, #ARGV, 3 do
  local member = ARGV[i]
  if redis.call('ZSCORE', KEYS[1], member) then
    redis.call('ZADD', KEYS[2], tonumber(ARGV[1]) + killed * 0.000001, member)
    redis.call('ZREM', KEYS[1], member)
    killed = killed + 1
    local counted = pcall(batch_death, member)
    if not counted then
      -- A batch key of another type: the kill itself still happens.
      redis.log(redis.LOG_WARNING, 'kill.lua: a batch update failed')
    end
    local lock = tonumber(ARGV[i + 1])
    if lock > 0 and redis.pcall('GET', KEYS[lock]) == ARGV[i + 2] then
      redis.call('DEL', KEYS[lock])
    end
  end
end
if killed > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[3]) + 1))
end
return killed
