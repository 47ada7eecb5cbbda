-- Move due jobs from the schedule or retry sorted set to their queues, each in one atomic step.
-- The caller read the members and rewrote each with a fresh enqueued_at; a member another
-- poller (Rust or Ruby) took first is no longer there, and is skipped, so no job moves twice.
-- Each member is pushed before it is removed, so a failing push (a wrong-typed queue key, out
-- of memory) leaves it in the sorted set instead of losing it.
--
-- KEYS[1]     the sorted set (schedule or retry)
-- KEYS[2]     the queues set
-- KEYS[3]     the dead sorted set (for members that are not job JSON)
-- KEYS[4..n]  the queue lists the members go to
-- ARGV[1]     now, in epoch seconds (the score of a member sent to dead)
-- ARGV[2..]   groups of four: the member as read, its queue name, the position of its queue
--             list in KEYS (0: send to dead), the JSON to push
--
-- Returns how many members were moved.
local moved = 0
for i = 2, #ARGV, 4 do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    local target = tonumber(ARGV[i + 2])
    if target == 0 then
      redis.call('ZADD', KEYS[3], ARGV[1], ARGV[i + 3])
    else
      redis.call('SADD', KEYS[2], ARGV[i + 1])
      redis.call('LPUSH', KEYS[target], ARGV[i + 3])
    end
    redis.call('ZREM', KEYS[1], ARGV[i])
    moved = moved + 1
  end
end
return moved
