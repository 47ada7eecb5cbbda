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
-- KEYS[5…] recovery's burial only: the dead owner's liveness keys, as settle.lua takes them;
--          nothing happens if any exists (the owner is alive after all, and the settle after
--          this will not bury the job either)
-- ARGV[1]  the member (the job's jid)
-- ARGV[2]  'success', 'failure' or 'death'
-- ARGV[3]  failure/death: the failure's JSON ({"class","error_class","error_message",
--          "failed_at","dead"}); '' for a success
-- ARGV[4]  now, epoch ms
-- ARGV[5]  the key prefix ('' or '<namespace>:'), to build the parent batches' keys
--
-- Returns the events fired, each `<bid>:<event>` (the batch's own and its parents'), or
-- {'error', <message>} when Redis refused a command (a key of another type): it never raises,
-- so it cannot hold back the acknowledgements it travels with.
local bid = string.sub(KEYS[1], string.len(ARGV[5]) + string.len('batch:') + 1)
local ok, result = pcall(function()
  for guard = 5, #KEYS do
    if redis.call('EXISTS', KEYS[guard]) == 1 then
      return {}
    end
  end
  if redis.call('EXISTS', KEYS[1]) == 0 then
    -- Unknown or expired: nothing to count.
    return {}
  end
  apply(KEYS, ARGV[1], ARGV[2], ARGV[3])
  return settle_chain(KEYS, bid, ARGV[4], ARGV[5])
end)
if ok then
  return result
end
return {'error', tostring(result)}
