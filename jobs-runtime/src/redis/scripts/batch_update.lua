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
--
-- Returns the events fired, each `<bid>:<event>` (the batch's own and its parents'), or
-- {'error', <message>} when Redis refused a command (a key of another type): it never raises,
-- so it cannot hold back the acknowledgements it travels with; the worker logs the message.
local bid = string.sub(KEYS[1], string.len(ARGV[5]) + string.len('batch:') + 1)
local ok, result = pcall(function()
  if not redis.call('LPOS', KEYS[5], ARGV[6]) then
    -- No longer this settle's job: someone else counts it.
    return {}
  end
  for guard = 6, #KEYS do
    if redis.call('EXISTS', KEYS[guard]) == 1 then
      return {}
    end
  end
  -- Nothing changed (the batch is unknown or expired, or this outcome was counted before): no
  -- moment can have come true.
  if not apply(KEYS, ARGV[1], ARGV[2], ARGV[3]) then
    return {}
  end
  return settle_chain(KEYS, bid, ARGV[4], ARGV[5], ARGV[2])
end)
if ok then
  return result
end
return {'error', 'batch ' .. bid .. ', member ' .. ARGV[1] .. ': ' .. tostring(result)}
