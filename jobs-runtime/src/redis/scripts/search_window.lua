-- One window of a search of a sorted set of jobs (api::JobSet::search): reads the next members
-- by score, from where the last window stopped, and sends back only those holding a substring,
-- so a search of 50,000 members moves its matches over the wire, not the 50,000 members.
-- Read-only; one key.
--
-- KEYS[1]  the set (schedule, retry or dead)
-- ARGV[1]  'asc' (the earliest score first) or 'desc' (the latest first)
-- ARGV[2]  the score to start at: '-inf' or '+inf' at first, then the last score read
-- ARGV[3]  how many members with exactly that score were read already (skipped); 0 at first
-- ARGV[4]  how many members to read
-- ARGV[5]  the substring, matched byte for byte (no pattern characters)
-- ARGV[6]  the most matches to send back
--
-- Returns {read, bytes read, 1 when the set goes on after them else 0, the last score read (as
-- ARGV[2] was when none was), how many members with that score have been read in all, matches
-- found (sent back or not), then member, score, member, score… of the matches sent back}.
local ascending = ARGV[1] == 'asc'
local command = ascending and 'ZRANGEBYSCORE' or 'ZREVRANGEBYSCORE'
local finish = ascending and '+inf' or '-inf'
local count = tonumber(ARGV[4])
local needle = ARGV[5]
local keep = tonumber(ARGV[6])
local window = redis.call(command, KEYS[1], ARGV[2], finish, 'WITHSCORES', 'LIMIT',
  tonumber(ARGV[3]), count + 1)
local last = ARGV[2]
local last_number = tonumber(ARGV[2])
local at_last = tonumber(ARGV[3])
local read, bytes, found = 0, 0, 0
local matches = {}
for i = 1, math.min(#window / 2, count) do
  local member = window[2 * i - 1]
  local score = window[2 * i]
  local number = tonumber(score)
  if number == last_number then
    at_last = at_last + 1
  else
    last, last_number, at_last = score, number, 1
  end
  read = read + 1
  bytes = bytes + #member
  if string.find(member, needle, 1, true) then
    found = found + 1
    if found <= keep then
      matches[#matches + 1] = member
      matches[#matches + 1] = score
    end
  end
end
local more = 0
if #window / 2 > count then
  more = 1
end
local reply = {read, bytes, more, last, at_last, found}
for i = 1, #matches do
  reply[#reply + 1] = matches[i]
end
return reply
