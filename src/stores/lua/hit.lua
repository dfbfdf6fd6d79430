-- Atomic check-and-count over every rule of one login attempt (see LimitStore.hit).
-- KEYS: per spec i, three keys: counter, failure reservations, block.
-- ARGV: per spec i, five values: kind ("a" attempts | "f" failures), limit, window ms,
--       block ms (0: none), reservation TTL ms.
-- Returns {0} when allowed, else {i, retry-after ms, count, blocked 0|1} for the first
-- refusing spec. Every key written here gets a TTL in the same script, from Redis' clock.
local n = #KEYS / 3
-- A block's value is when it started (Redis' clock), for the admin listing.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

for i = 1, n do
  local k, r, b = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local kind, limit = ARGV[5 * i - 4], tonumber(ARGV[5 * i - 3])
  local count = tonumber(redis.call('GET', k) or '0')
  local bttl = redis.call('PTTL', b)
  if bttl > 0 then return {i, bttl, count, 1} end
  if count >= limit then return {i, math.max(redis.call('PTTL', k), 0), count, 0} end
  if kind == 'f' and count + tonumber(redis.call('GET', r) or '0') >= limit then
    return {i, 1000, count, 0}
  end
end

for i = 1, n do
  local k, r, b = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local kind, limit = ARGV[5 * i - 4], tonumber(ARGV[5 * i - 3])
  local window, block, rttl = tonumber(ARGV[5 * i - 2]), tonumber(ARGV[5 * i - 1]), tonumber(ARGV[5 * i])
  if kind == 'a' then
    local c = redis.call('INCR', k)
    -- The first hit starts the window; a key found without a TTL gets one too.
    if redis.call('PTTL', k) < 0 then redis.call('PEXPIRE', k, window) end
    if c >= limit and block > 0 then redis.call('SET', b, now_ms(), 'PX', block) end
  else
    redis.call('INCR', r)
    redis.call('PEXPIRE', r, rttl)
  end
end
return {0}
