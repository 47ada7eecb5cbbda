-- Clear a queue, first step: take it off `queues` and move its list aside under a temporary
-- name, in one atomic step. What the caller then reads (for the unique jobs' locks) and deletes
-- is exactly what was in the queue at this moment: a job pushed after it lands in a fresh list
-- and keeps its lock. The temporary key expires, so a caller that stops half-way leaves nothing
-- behind for long.
--
-- KEYS[1]  the queue list (queue:<q>)
-- KEYS[2]  queues, the set of queue names
-- KEYS[3]  the temporary key (jobs:clearing:<token>)
-- ARGV[1]  the queue's name
-- ARGV[2]  how long the temporary key lives at most, in seconds
--
-- Returns 1 when a list was moved aside, 0 when the queue had no key.
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('RENAME', KEYS[1], KEYS[3])
redis.call('EXPIRE', KEYS[3], ARGV[2])
return 1
