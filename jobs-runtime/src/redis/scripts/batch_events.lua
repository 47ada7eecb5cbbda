-- The part of a batch's steps that batch_update.lua and batch_push.lua share: not a script of
-- its own, but prepended to each of them (`redis/scripts.rs`), since a Redis script cannot call
-- another. It applies a member's outcome to a batch, fires the batch's callbacks whose moment
-- came, and passes a fired moment on to the parent batch, up the chain.
--
-- A batch's four keys are <prefix>batch:<bid>, …:pending, …:failed and …:dead (`redis/keys.rs`).
-- The first batch's keys come through KEYS; a parent's are built here from the prefix and the
-- parent's bid: the Cluster exception `docs/batches.md` describes (once per batch moment, never
-- per job).

-- How many parents up one step goes (a chain longer than this stops there).
local MAX_DEPTH = 32

-- The four keys of batch `bid`.
local function batch_keys(prefix, bid)
  local meta = prefix .. 'batch:' .. bid
  return {meta, meta .. ':pending', meta .. ':failed', meta .. ':dead'}
end

-- Applies `outcome` of `member` to the batch whose keys are `keys`, as sets (so that applying
-- it twice changes nothing, and nothing after a success changes anything):
--   success: no longer pending, failed or dead;
--   failure: its last failure recorded, while pending;
--   death:   its last failure recorded and marked dead, while pending.
local function apply(keys, member, outcome, info)
  if outcome == 'success' then
    if redis.call('SREM', keys[2], member) == 1 then
      redis.call('HDEL', keys[3], member)
      redis.call('SREM', keys[4], member)
    end
  elseif outcome == 'failure' then
    if redis.call('SISMEMBER', keys[2], member) == 1 then
      redis.call('HSET', keys[3], member, info)
    end
  elseif outcome == 'death' then
    if redis.call('SISMEMBER', keys[2], member) == 1 then
      redis.call('HSET', keys[3], member, info)
      redis.call('SADD', keys[4], member)
    end
  end
end

-- Pushes the callback job stored under `cb:<event>` of `meta` to its queue, stamped with
-- `enqueued_at` (spliced in front of its other fields, which keep their exact text).
local function push_callback(meta, event, now_ms, prefix)
  local json = redis.call('HGET', meta, 'cb:' .. event)
  if not json then
    return
  end
  local ok, decoded = pcall(cjson.decode, json)
  local queue = 'default'
  if ok and type(decoded) == 'table' and type(decoded.queue) == 'string' then
    queue = decoded.queue
  end
  local stamped = '{"enqueued_at":' .. string.format('%.3f', tonumber(now_ms) / 1000) .. ','
    .. string.sub(json, 2)
  redis.call('LPUSH', prefix .. 'queue:' .. queue, stamped)
  redis.call('SADD', prefix .. 'queues', queue)
end

-- Fires what became true of the batch whose keys are `keys`, once sealed: `complete` (every
-- pending member failed at least once), `success` (no member pending), `death` (a pending
-- member died). Each is claimed with HSETNX <event>_at, so it fires once. Returns the events
-- fired.
local function fire(keys, now_ms, prefix)
  local fired = {}
  if redis.call('HGET', keys[1], 'sealed') ~= '1' then
    return fired
  end
  local pending = redis.call('SCARD', keys[2])
  local failed = redis.call('HLEN', keys[3])
  local moments = {
    {'complete', failed >= pending},
    {'success', pending == 0},
    {'death', redis.call('SCARD', keys[4]) > 0},
  }
  for _, moment in ipairs(moments) do
    local event, now_true = moment[1], moment[2]
    if now_true and redis.call('HSETNX', keys[1], event .. '_at', now_ms) == 1 then
      push_callback(keys[1], event, now_ms, prefix)
      fired[#fired + 1] = event
    end
  end
  return fired
end

-- Renews the expiry of the batch's keys (its `retention`, seconds), whichever exist.
local function renew(keys)
  local retention = tonumber(redis.call('HGET', keys[1], 'retention') or '')
  if not retention or retention <= 0 then
    retention = 2592000
  end
  for _, key in ipairs(keys) do
    redis.call('EXPIRE', key, retention)
  end
end

-- What the parent of a batch that fired `fired` hears of it: its success, else its death,
-- else (complete without success) a failure; nil when nothing the parent counts fired.
local function parent_outcome(fired)
  local seen = {}
  for _, event in ipairs(fired) do
    seen[event] = true
  end
  if seen.success then
    return 'success'
  elseif seen.death then
    return 'death'
  elseif seen.complete then
    return 'failure'
  end
  return nil
end

-- Fires what came true of the batch `bid` (keys `keys`) and passes it on up the chain of
-- parents, applying each batch's news to its parent as a member's outcome. Returns every
-- event fired, as `<bid>:<event>`.
local function settle_chain(keys, bid, now_ms, prefix)
  local all = {}
  local depth = 0
  while true do
    local fired = fire(keys, now_ms, prefix)
    renew(keys)
    for _, event in ipairs(fired) do
      all[#all + 1] = bid .. ':' .. event
    end
    local outcome = parent_outcome(fired)
    local parent = redis.call('HGET', keys[1], 'parent')
    depth = depth + 1
    if not outcome or not parent or parent == '' or depth > MAX_DEPTH then
      return all
    end
    local parent_keys = batch_keys(prefix, parent)
    if redis.call('EXISTS', parent_keys[1]) == 0 then
      return all
    end
    local info = ''
    if outcome ~= 'success' then
      info = cjson.encode({
        class = 'batch',
        error_class = outcome == 'death' and 'jobs::BatchDied' or 'jobs::BatchFailed',
        error_message = outcome == 'death' and ('a member of batch ' .. bid .. ' died')
          or ('batch ' .. bid .. ' completed with failures'),
        failed_at = tonumber(now_ms) / 1000,
        dead = outcome == 'death',
      })
    end
    apply(parent_keys, 'batch:' .. bid, outcome, info)
    keys, bid = parent_keys, parent
  end
end
