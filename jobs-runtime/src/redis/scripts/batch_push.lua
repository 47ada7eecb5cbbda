-- One chunk of a batch's jobs -> registered as members and pushed to their queues, in one step.
-- The first chunk of a new batch creates it (its hash, its place in `batches`, and, for a nested
-- batch, its member in the parent); the last chunk seals it and fires what is already true (an
-- empty batch fires complete and success at once). A running member job adding jobs to its own
-- batch uses the mode 'add'.
--
-- Preceded by batch_events.lua (`redis/scripts.rs`).
--
-- KEYS[1]  batch:<bid>          the batch's hash
-- KEYS[2]  batch:<bid>:pending
-- KEYS[3]  batch:<bid>:failed
-- KEYS[4]  batch:<bid>:dead
-- KEYS[5]  batches              the index of batches (sorted set, creation epoch seconds)
-- KEYS[6]  queues               the set of queue names
-- KEYS[7]  batch:<bid>:added    add: every jid ever added by a running job (pushed once each)
-- KEYS[8…] the queue lists the jobs go to
-- ARGV[1]  mode: 'create' (the first chunk of a new batch: nothing happens, and 0 is returned,
--          if the batch exists already), 'chunk' (a later chunk of a batch being created) or
--          'add' (jobs added to an existing batch from one of its running jobs)
-- ARGV[2]  now, epoch ms
-- ARGV[3]  the key prefix ('' or '<namespace>:')
-- ARGV[4]  '1' to seal the batch after this chunk (its creation's last chunk), else '0'
-- ARGV[5]  create: the parent's bid, or ''
-- ARGV[6]  create, chunk: the creation's token (derived from the bid: a creation run again
--          with the same bid, after a crash half-way, resumes it), stored as `creator`
-- ARGV[7]  create, chunk: the chunk's number, from 1, stored as `chunks` once pushed: a call
--          sent again after a lost reply finds its chunk pushed and pushes nothing
-- ARGV[8]  create: n, how many field/value pairs of the batch's hash follow (0 otherwise)
-- ARGV[9…] create: the n pairs; then, for each job: its queue's position in KEYS, its jid, its
--          JSON
--
-- Returns 1 when done (or done before by this creation: 'create' of a batch this creation's
-- token made, still unsealed, answers 1 and the creation goes on with its later chunks, each
-- pushed once by number); 0 when 'create' found the batch created by another creation, or
-- already sealed, and when 'chunk' found it sealed (nothing pushed: the creation is over); -1 when the batch is gone (expired, or never
-- created); -2 when its success already fired (adding to it is refused); -3 when the parent is
-- gone; -4 when the parent's success already fired.
local mode = ARGV[1]
local now_ms = ARGV[2]
local prefix = ARGV[3]
local parent = ARGV[5]
local token = ARGV[6]
local chunk = tonumber(ARGV[7]) or 0
local pairs_count = tonumber(ARGV[8])
local bid = string.sub(KEYS[1], string.len(prefix) + string.len('batch:') + 1)

if mode == 'create' then
  if redis.call('EXISTS', KEYS[1]) == 1 then
    if redis.call('HGET', KEYS[1], 'creator') == token
      and redis.call('HGET', KEYS[1], 'sealed') ~= '1' then
      return 1
    end
    return 0
  end
  if parent ~= '' then
    local parent_keys = batch_keys(prefix, parent)
    if redis.call('EXISTS', parent_keys[1]) == 0 then
      return -3
    end
    if redis.call('HEXISTS', parent_keys[1], 'success_at') == 1 then
      return -4
    end
    if redis.call('SADD', parent_keys[2], 'batch:' .. bid) == 1 then
      redis.call('HINCRBY', parent_keys[1], 'total', 1)
    end
    renew(parent_keys, nil, now_ms, true)
  end
  local fields = {'created_at', now_ms, 'total', 0, 'sealed', '0', 'creator', token}
  for i = 9, 8 + 2 * pairs_count do
    fields[#fields + 1] = ARGV[i]
  end
  redis.call('HSET', KEYS[1], unpack(fields))
  if parent ~= '' then
    redis.call('HSET', KEYS[1], 'parent', parent)
  end
  local retention = tonumber(redis.call('HGET', KEYS[1], 'retention') or '') or 2592000
  local now_s = math.floor(tonumber(now_ms) / 1000)
  redis.call('ZADD', KEYS[5], now_s, bid)
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. (now_s - math.max(retention, 2592000)))
else
  if redis.call('EXISTS', KEYS[1]) == 0 then
    return -1
  end
  if mode == 'add' and redis.call('HEXISTS', KEYS[1], 'success_at') == 1 then
    return -2
  end
  if mode == 'chunk' and (tonumber(redis.call('HGET', KEYS[1], 'chunks')) or 0) >= chunk then
    return 1
  end
  if mode == 'chunk' and redis.call('HGET', KEYS[1], 'sealed') == '1' then
    -- Sealed by a creation with this bid that had fewer chunks: nothing more joins it.
    return 0
  end
end

local added = 0
for i = 9 + 2 * pairs_count, #ARGV, 3 do
  local queue_key = KEYS[tonumber(ARGV[i])]
  local jid, json = ARGV[i + 1], ARGV[i + 2]
  -- An added job whose jid was added before (the add sent again, or made again by its job run
  -- again) is not pushed again, even after it succeeded and left `pending`.
  if mode ~= 'add' or redis.call('SADD', KEYS[7], jid) == 1 then
    if redis.call('SADD', KEYS[2], jid) == 1 then
      added = added + 1
    end
    redis.call('LPUSH', queue_key, json)
    redis.call('SADD', KEYS[6], string.sub(queue_key, string.len(prefix) + string.len('queue:') + 1))
  end
end
if added > 0 then
  redis.call('HINCRBY', KEYS[1], 'total', added)
end
if mode ~= 'add' then
  redis.call('HSET', KEYS[1], 'chunks', chunk)
end
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], 'sealed', '1')
  settle_chain(KEYS, bid, now_ms, prefix, nil)
else
  renew(KEYS, nil, now_ms, true)
end
return 1
