-- A workflow's push: writes its hash (no expiry: it runs) and lists it in the index, then
-- trims the index of ids listed before the cutoff, keeping those still running (their keys
-- do not expire, and a long-running workflow must stay listed).
--
-- KEYS[1]  workflow:<wid>   (hash)
-- KEYS[2]  workflows        (sorted set: id -> creation, epoch seconds)
-- ARGV[1]  the workflow's id
-- ARGV[2]  now, in epoch seconds (its score)
-- ARGV[3]  the cutoff: ids listed before it are trimmed unless running
-- ARGV[4]  the key prefix (namespace) of `workflow:<id>`
-- ARGV[5..] field, value, ... of the hash
--
-- Cluster: the trim reads other workflows' hashes, not declared in KEYS (see docs/batches.md).

local workflow, index = KEYS[1], KEYS[2]
local wid, now, cutoff, prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local fields = {}
for i = 5, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', workflow, unpack(fields))
redis.call('ZADD', index, now, wid)

for _, id in ipairs(redis.call('ZRANGEBYSCORE', index, '-inf', '(' .. cutoff)) do
  if redis.call('HGET', prefix .. 'workflow:' .. id, 'state') ~= 'running' then
    redis.call('ZREM', index, id)
  end
end
return 1
