-- Atomic check-and-count over every rule of one login attempt (see LimitStore.hit).
-- KEYS: per spec i, five keys: counter (a HyperLogLog for distinct specs), failure
--       reservations, block, dedupe set, offences; then, optionally, the known-good key.
-- ARGV[1]: "1" count, "0" only check; ARGV[2]: "1" when the known-good key is given;
-- ARGV[3]: reservation TTL ms; then per spec nine values: kind ("a" | "f"), limit, window ms,
--   block ms (0: none), exempt (0|1), distinct (0|1), block growth (0: none), block memory ms,
--   block max ms (0: none).
-- Returns {0, known-good 0|1, spec indexes whose block started…} when allowed, else {i, retry-after ms, count, blocked 0|1}.
-- Every key written gets a TTL in this script, from Redis' clock.
local P, A = 5, 9
local n = (#KEYS - tonumber(ARGV[2])) / P
local doCount = ARGV[1] == '1'
local rttl = tonumber(ARGV[3])
local kg = 0
if ARGV[2] == '1' and redis.call('EXISTS', KEYS[#KEYS]) == 1 then kg = 1 end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function block(b, o, ms, growth, memory, max)
  if growth > 1 then
    local times = redis.call('INCR', o)
    redis.call('PEXPIRE', o, memory)
    ms = ms * growth ^ (times - 1)
    if max > 0 and ms > max then ms = max end
  end
  redis.call('SET', b, now_ms(), 'PX', math.floor(ms))
end

for i = 1, n do
  local k, r, b = KEYS[P * i - 4], KEYS[P * i - 3], KEYS[P * i - 2]
  local a = 3 + A * (i - 1)
  local kind, limit = ARGV[a + 1], tonumber(ARGV[a + 2])
  local exempt, distinct = ARGV[a + 5] == '1', ARGV[a + 6] == '1'
  if not (exempt and kg == 1) then
    local count
    if distinct then count = redis.call('PFCOUNT', k) else count = tonumber(redis.call('GET', k) or '0') end
    local bttl = redis.call('PTTL', b)
    if bttl > 0 then return {i, bttl, count, 1} end
    if count >= limit then return {i, math.max(redis.call('PTTL', k), 0), count, 0} end
    if kind == 'f' and not distinct and count + tonumber(redis.call('GET', r) or '0') >= limit then
      return {i, 1000, count, 0}
    end
  end
end

if not doCount then return {0, kg} end
local result = {0, kg}
for i = 1, n do
  local k, r, b, o = KEYS[P * i - 4], KEYS[P * i - 3], KEYS[P * i - 2], KEYS[P * i]
  local a = 3 + A * (i - 1)
  local kind, limit, window, blockMs = ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  if kind == 'a' then
    local c = redis.call('INCR', k)
    -- The first hit starts the window; a key found without a TTL gets one too.
    if redis.call('PTTL', k) < 0 then redis.call('PEXPIRE', k, window) end
    if c >= limit and blockMs > 0 then
      block(b, o, blockMs, tonumber(ARGV[a + 7]), tonumber(ARGV[a + 8]), tonumber(ARGV[a + 9]))
      result[#result + 1] = i
    end
  elseif ARGV[a + 6] ~= '1' then
    redis.call('INCR', r)
    redis.call('PEXPIRE', r, rttl)
  end
end
return result
