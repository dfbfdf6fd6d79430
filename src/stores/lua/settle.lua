-- Settle one attempt (see LimitStore.settle).
-- KEYS: per spec five keys (counter, reservations, block, dedupe set, offences); then,
--       optionally, the known-good key to remember on success.
-- ARGV[1]: "1" failed; ARGV[2]: "1" reserved at hit; ARGV[3]: dedupe fingerprint ("" none);
-- ARGV[4]: known-good TTL ms (0: none); then per spec ten values: kind ("a" | "f"), limit,
--   window ms, block ms (0: none), distinct (0|1), dedupe (0|1), block growth (0: none),
--   block memory ms, block max ms (0: none), distinct member ("" none).
-- Returns each spec's count afterwards. Every key written gets a TTL here.
local P, A = 5, 10
local hasKg = tonumber(ARGV[4]) > 0 and ARGV[1] ~= '1'
local n = #KEYS / P
if tonumber(ARGV[4]) > 0 then n = (#KEYS - 1) / P end
local failed, reserved, fp = ARGV[1] == '1', ARGV[2] == '1', ARGV[3]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function ttl(key, ms)
  if redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, ms) end
end

local counts = {}
for i = 1, n do
  local k, r, b, d, o = KEYS[P * i - 4], KEYS[P * i - 3], KEYS[P * i - 2], KEYS[P * i - 1], KEYS[P * i]
  local a = 4 + A * (i - 1)
  local kind, limit, window, blockMs = ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local distinct, dedupe, member = ARGV[a + 5] == '1', ARGV[a + 6] == '1', ARGV[a + 10]
  local c
  if distinct then c = redis.call('PFCOUNT', k) else c = tonumber(redis.call('GET', k) or '0') end
  if kind == 'f' then
    if reserved and not distinct then
      if redis.call('DECR', r) <= 0 then redis.call('DEL', r) end
    end
    local counted = false
    if failed and distinct and member ~= '' then
      redis.call('PFADD', k, member)
      ttl(k, window)
      c = redis.call('PFCOUNT', k)
      counted = true
    elseif failed and not distinct then
      local fresh = 1
      if dedupe and fp ~= '' then
        fresh = redis.call('SADD', d, fp)
        ttl(d, window)
      end
      if fresh == 1 then
        c = redis.call('INCR', k)
        ttl(k, window)
        counted = true
      end
    end
    if counted and c >= limit and blockMs > 0 and redis.call('EXISTS', b) == 0 then
      local ms, growth = blockMs, tonumber(ARGV[a + 7])
      if growth > 1 then
        local times = redis.call('INCR', o)
        redis.call('PEXPIRE', o, tonumber(ARGV[a + 8]))
        ms = ms * growth ^ (times - 1)
        local max = tonumber(ARGV[a + 9])
        if max > 0 and ms > max then ms = max end
      end
      redis.call('SET', b, now_ms(), 'PX', math.floor(ms))
    end
  end
  counts[i] = c
end
if hasKg then redis.call('SET', KEYS[#KEYS], '1', 'PX', tonumber(ARGV[4])) end
return counts
