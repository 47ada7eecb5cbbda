-- Move due jobs from the schedule or retry sorted set to their queues, each in one atomic step.
-- The caller read the members; a member another poller (Rust or Ruby) took first is no longer
-- there, and is skipped, so no job moves twice. Each member is pushed before it is removed, so
-- a failing push leaves it in the sorted set instead of losing it.
--
-- The JSON pushed is the member with an edit (a fresh enqueued_at, a missing jid), sent as the
-- bytes of the member's start and end that stay and the bytes between them, so a call carries
-- each job once. The caller keeps a call's members and edits within a few MiB.
--
-- A queue whose key holds another type (a string someone SET) cannot take a push: its members
-- stay where they are, unchanged, and the queue is reported once per call with Redis's error;
-- the other members still move. Any other push error (out of memory, a read-only replica) ends
-- the call with that error: it is not the job's fault.
--
-- KEYS[1]     the sorted set (schedule or retry)
-- KEYS[2]     the queues set
-- KEYS[3]     the dead sorted set (for members that are not job JSON)
-- KEYS[4..n]  the queue lists the members go to
-- ARGV[1]     now, in epoch seconds (the score of a member sent to dead)
-- ARGV[2..]   groups of six: the member as read; its queue name; the position of its queue
--             list in KEYS (0: the dead set); how many bytes of the member's start stay; how
--             many bytes of its end stay; the bytes between them
--
-- Returns {moved, left, {queue, error, ...}}: how many members moved, how many were left
-- because their queue's key holds another type, and those queues with the error.
local moved, left = 0, 0
local unusable, reported = {}, {}
for i = 2, #ARGV, 6 do
  local member = ARGV[i]
  if redis.call('ZSCORE', KEYS[1], member) then
    local target = tonumber(ARGV[i + 2])
    local json = string.sub(member, 1, tonumber(ARGV[i + 3])) .. ARGV[i + 5]
      .. string.sub(member, #member - tonumber(ARGV[i + 4]) + 1)
    if target == 0 then
      redis.call('ZADD', KEYS[3], ARGV[1], json)
      redis.call('ZREM', KEYS[1], member)
      moved = moved + 1
    elseif unusable[target] then
      left = left + 1
    else
      local pushed = redis.pcall('LPUSH', KEYS[target], json)
      if type(pushed) == 'table' and pushed.err then
        if not string.find(pushed.err, 'WRONGTYPE', 1, true) then
          return redis.error_reply(pushed.err)
        end
        unusable[target] = true
        table.insert(reported, ARGV[i + 1])
        table.insert(reported, pushed.err)
        left = left + 1
      else
        -- Registering the queue is best effort: a `queues` key of the wrong type must not
        -- stop the ZREM after the push, or the job would be in two places.
        redis.pcall('SADD', KEYS[2], ARGV[i + 1])
        redis.call('ZREM', KEYS[1], member)
        moved = moved + 1
      end
    end
  end
end
return {moved, left, reported}
