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
--   failure: its last failure recorded, while pending (still marked `dead` in the info if the
--            member died before);
--   death:   its last failure recorded and marked dead, while pending;
--   died:    marked dead only, while pending (a child batch whose member died: the child is
--            not done yet, so the parent records its failure only when the child completes).
-- Returns whether what the moments are counted from changed (a member left `pending`, or
-- joined `failed` or `dead`): when nothing did, no moment can have come true.
local function apply(keys, member, outcome, info)
  if outcome == 'success' then
    if redis.call('SREM', keys[2], member) == 1 then
      -- Only a member that failed can be dead.
      if redis.call('HDEL', keys[3], member) == 1 then
        redis.call('SREM', keys[4], member)
      end
      return true
    end
  elseif outcome == 'failure' then
    if redis.call('SISMEMBER', keys[2], member) == 1 then
      if redis.call('SISMEMBER', keys[4], member) == 1 then
        local ok, decoded = pcall(cjson.decode, info)
        if ok and type(decoded) == 'table' then
          decoded.dead = true
          info = cjson.encode(decoded)
        end
      end
      return redis.call('HSET', keys[3], member, info) == 1
    end
  elseif outcome == 'died' then
    if redis.call('SISMEMBER', keys[2], member) == 1 then
      local added = redis.call('SADD', keys[4], member) == 1
      -- A failure recorded before (the child completed, then a member died): now dead too.
      local known = redis.call('HGET', keys[3], member)
      local ok, decoded = pcall(cjson.decode, known or '')
      if known and ok and type(decoded) == 'table' then
        decoded.dead = true
        redis.call('HSET', keys[3], member, cjson.encode(decoded))
      end
      return added
    end
  elseif outcome == 'death' then
    if redis.call('SISMEMBER', keys[2], member) == 1 then
      local recorded = redis.call('HSET', keys[3], member, info) == 1
      local added = redis.call('SADD', keys[4], member) == 1
      return recorded or added
    end
  end
  return false
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

-- The fields of a batch's hash that each step reads, in one command: sealed, retention,
-- parent, complete_at, success_at, death_at, renewed_at.
local function read_meta(meta_key)
  local values = redis.call('HMGET', meta_key, 'sealed', 'retention', 'parent', 'complete_at',
    'success_at', 'death_at', 'renewed_at')
  return {
    sealed = values[1], retention = values[2], parent = values[3], complete_at = values[4],
    success_at = values[5], death_at = values[6], renewed_at = values[7],
  }
end

-- Fires what became true of the batch whose keys are `keys` (its hash's fields read into
-- `meta`), once sealed: `complete` (every pending member failed at least once), `success` (no
-- member pending), `death` (a pending member died; looked at only when `check_death`, as only a
-- death, or sealing, can make it true). Each is claimed with HSETNX <event>_at, so it fires
-- once; a moment already fired is not counted again. Returns the events fired.
local function fire(keys, meta, now_ms, prefix, check_death)
  local fired = {}
  if meta.sealed ~= '1' then
    return fired
  end
  local pending = nil
  if not meta.complete_at or not meta.success_at then
    pending = redis.call('SCARD', keys[2])
  end
  local moments = {
    {'complete', not meta.complete_at and redis.call('HLEN', keys[3]) >= pending},
    {'success', not meta.success_at and pending == 0},
    {'death', check_death and not meta.death_at and redis.call('SCARD', keys[4]) > 0},
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

-- Renews the expiry of the batch's four keys and its `added` set to its `retention` (seconds,
-- from `meta`, or read when `meta` is nil), whichever exist. When not `force`d, only once a
-- hundredth of the retention passed since the last renewal (`renewed_at`): a success, the
-- common update, then costs no EXPIRE. A step that may create a key (a first failure, a death,
-- a push) forces it, so no batch key is ever left without an expiry. Only keys[1..4]: a
-- script's KEYS go on with queue lists, `queues`, `batches` or liveness keys, which must never
-- expire with a batch.
local function renew(keys, meta, now_ms, force)
  local retention = tonumber((meta and meta.retention) or redis.call('HGET', keys[1], 'retention')
    or '')
  if not retention or retention <= 0 then
    retention = 2592000
  end
  local renewed_at = tonumber(meta and meta.renewed_at or '')
  if not force and renewed_at and tonumber(now_ms) - renewed_at < retention * 10 then
    return
  end
  if redis.call('EXISTS', keys[1]) == 1 then
    redis.call('HSET', keys[1], 'renewed_at', now_ms)
  end
  for i = 1, 4 do
    redis.call('EXPIRE', keys[i], retention)
  end
  -- The jids added by running jobs (`batch_push.lua`, mode 'add'), built from the hash's name.
  redis.call('EXPIRE', keys[1] .. ':added', retention)
end

-- What the parent of a batch that fired `fired` hears of it, as the outcomes to apply to its
-- member, in order: its success; else its death alone marks it dead (the child still runs its
-- other jobs, so the parent's `complete` must wait), and its complete (without success)
-- records its failure. Empty when nothing the parent counts fired.
local function parent_outcomes(fired)
  local seen = {}
  for _, event in ipairs(fired) do
    seen[event] = true
  end
  if seen.success then
    return {'success'}
  end
  local outcomes = {}
  if seen.death then
    outcomes[#outcomes + 1] = 'died'
  end
  if seen.complete then
    outcomes[#outcomes + 1] = 'failure'
  end
  return outcomes
end

-- Fires what came true of the batch `bid` (keys `keys`) after `outcome` was applied to one of
-- its members (nil: after sealing, when any moment may be true), and passes it on up the chain
-- of parents, applying each batch's news to its parent as a member's outcome. Returns every
-- event fired, as `<bid>:<event>`.
local function settle_chain(keys, bid, now_ms, prefix, outcome)
  local all = {}
  local depth = 0
  local check_death = outcome ~= 'success' and outcome ~= 'failure'
  local force = outcome ~= 'success'
  while true do
    local meta = read_meta(keys[1])
    local fired = fire(keys, meta, now_ms, prefix, check_death)
    renew(keys, meta, now_ms, force or #fired > 0)
    for _, event in ipairs(fired) do
      all[#all + 1] = bid .. ':' .. event
    end
    local outcomes = parent_outcomes(fired)
    local parent = meta.parent
    depth = depth + 1
    if #outcomes == 0 or not parent or parent == '' or depth > MAX_DEPTH then
      return all
    end
    local parent_keys = batch_keys(prefix, parent)
    if redis.call('EXISTS', parent_keys[1]) == 0 then
      return all
    end
    check_death = false
    for _, applied in ipairs(outcomes) do
      local info = ''
      if applied == 'failure' then
        local died = redis.call('SCARD', keys[4]) > 0
        info = cjson.encode({
          class = 'batch',
          error_class = died and 'jobs::BatchDied' or 'jobs::BatchFailed',
          error_message = died and ('a member of batch ' .. bid .. ' died')
            or ('batch ' .. bid .. ' completed with failures'),
          failed_at = tonumber(now_ms) / 1000,
          dead = died,
        })
      end
      apply(parent_keys, 'batch:' .. bid, applied, info)
      check_death = check_death or applied == 'died'
    end
    -- A parent's keys may just have been created (its first failure): renewed in any case.
    force = true
    keys, bid = parent_keys, parent
  end
end
