-- An account's sending counts and known recipients (stores/memory-sending.ts is the memory
-- copy). KEYS[1] the counts, a hash m (messages), r (recipients), n (first-time recipients)
-- whose PEXPIRE is set once, when the window opens (a fixed window); KEYS[2] the known set, a
-- sorted set print -> when it was last sent to (ms). Both under the account's hash tag.
-- ARGV[1] 'peek': ARGV[2] at, ARGV[3] known ttl, then prints. Answers m, r, n, the window's
--   ms left (0: none), then 1/0 per print: sent to within ttl before at.
-- ARGV[1] 'add': ARGV[2] at, ARGV[3] known ttl, ARGV[4] window, ARGV[5] cap, then prints (one
--   accepted message). Drops recipients not sent to within ttl, counts the distinct prints not
--   known as first-time, marks every print sent to at `at` (never earlier than it was), keeps
--   the cap most lately sent to, and the set ttl from now. Answers m, r, n, ms left, added.
local counts, known = KEYS[1], KEYS[2]
local at, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])

local function state()
  local v = redis.call('HMGET', counts, 'm', 'r', 'n')
  local left = redis.call('PTTL', counts)
  return { tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or 0, left > 0 and left or 0 }
end

if ARGV[1] == 'peek' then
  local out = state()
  for i = 4, #ARGV do
    local last = redis.call('ZSCORE', known, ARGV[i])
    out[#out + 1] = (last and tonumber(last) > at - ttl) and 1 or 0
  end
  return out
end

local window, cap, first = tonumber(ARGV[4]), tonumber(ARGV[5]), 6
local added = 0
if #ARGV >= first then
  redis.call('ZREMRANGEBYSCORE', known, '-inf', at - ttl)
  for i = first, #ARGV do
    local last = redis.call('ZSCORE', known, ARGV[i])
    if not last then
      added = added + 1
      redis.call('ZADD', known, at, ARGV[i])
    elseif tonumber(last) < at then
      redis.call('ZADD', known, at, ARGV[i])
    end
  end
  local over = redis.call('ZCARD', known) - cap
  if over > 0 then
    redis.call('ZPOPMIN', known, over)
  end
  redis.call('PEXPIRE', known, ttl)
end
redis.call('HINCRBY', counts, 'm', 1)
redis.call('HINCRBY', counts, 'r', #ARGV - first + 1)
redis.call('HINCRBY', counts, 'n', added)
if redis.call('PTTL', counts) < 0 then
  redis.call('PEXPIRE', counts, window)
end
local out = state()
out[#out + 1] = added
return out
