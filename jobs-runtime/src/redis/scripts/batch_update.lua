-- A batch member's outcome -> the batch's sets, and the callbacks whose moment came -> fired
-- (once each), passed on up to the parent batches. Runs in the same pipeline as, and just
-- before, the step that settles the member job (the batched acknowledgement, or settle.lua),
-- so a crash between the two leaves the job in its working list to run and update again; the
-- update is idempotent (sets keyed by the member), so that repeat changes nothing.
--
-- Preceded by batch_events.lua (`redis/scripts.rs`).
--
-- KEYS[1]  batch:<bid>          the batch's hash
-- KEYS[2]  batch:<bid>:pending  its pending members
-- KEYS[3]  batch:<bid>:failed   member -> its last failure's JSON
-- KEYS[4]  batch:<bid>:dead     its dead members
-- KEYS[5]  the working list the job is settled from (this worker's, or, for recovery's burial,
--          the dead owner's): nothing happens unless ARGV[6] is in it. A worker that stalled
--          while its job was recovered and run elsewhere counts nothing; and an update sent
--          again after its settle landed (the entry gone) is skipped
-- KEYS[6…] recovery's burial only: the dead owner's liveness keys, as settle.lua takes them;
--          nothing happens if any exists (the owner is alive after all, and the settle after
--          this will not bury the job either)
-- ARGV[1]  the member (the job's jid)
-- ARGV[2]  'success', 'failure' or 'death'
-- ARGV[3]  failure/death: the failure's JSON ({"class","error_class","error_message",
--          "failed_at","dead"}); '' for a success
-- ARGV[4]  now, epoch ms
-- ARGV[5]  the key prefix ('' or '<namespace>:'), to build the parent batches' keys
-- ARGV[6]  the job's entry in KEYS[5], exactly as taken
-- ARGV[7…] more members with the same outcome, each followed by its entry: the batched
--          acknowledgement sends one update per batch for all of its jobs that succeeded in
--          the round trip, so the script runs once per batch, not once per job; the moments are
--          looked at once, after every member was applied
--
-- Returns the events fired, each `<bid>:<event>` (the batch's own and its parents'), or
-- {'error', <message>} when Redis refused a command (a key of another type): it never raises,
-- so it cannot hold back the acknowledgements it travels with; the worker logs the message.
local bid = string.sub(KEYS[1], string.len(ARGV[5]) + string.len('batch:') + 1)
local ok, result = pcall(function()
  for guard = 6, #KEYS do
    if redis.call('EXISTS', KEYS[guard]) == 1 then
      return {}
    end
  end
  -- The members, each with its entry: ARGV[1] with ARGV[6], then the pairs from ARGV[7].
  local changed = false
  local count = 1 + math.floor((#ARGV - 6) / 2)
  for index = 1, count do
    local member, entry = ARGV[1], ARGV[6]
    if index > 1 then
      member, entry = ARGV[5 + 2 * (index - 1)], ARGV[6 + 2 * (index - 1)]
    end
    -- A member no longer in the list is no longer this settle's job: someone else counts it.
    if redis.call('LPOS', KEYS[5], entry) and apply(KEYS, member, ARGV[2], ARGV[3]) then
      changed = true
    end
  end
  -- Nothing changed (the batch is unknown or expired, or these outcomes were counted before):
  -- no moment can have come true.
  if not changed then
    return {}
  end
  return settle_chain(KEYS, bid, ARGV[4], ARGV[5], ARGV[2])
end)
if ok then
  return result
end
return {'error', 'batch ' .. bid .. ', member ' .. ARGV[1] .. ': ' .. tostring(result)}
