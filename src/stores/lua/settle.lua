-- Settle the failure reservations of one attempt (see LimitStore.settle).
-- KEYS: per failures spec, three keys: counter, failure reservations, block.
-- ARGV[1]: "1" when the backend rejected the login; then per spec: limit, window ms, block ms.
local n = #KEYS / 3
-- A block's value is when it started (Redis' clock), for the admin listing.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local failed = ARGV[1] == '1'

for i = 1, n do
  local k, r, b = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  if redis.call('DECR', r) <= 0 then redis.call('DEL', r) end
  if failed then
    local limit, window, block = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
    local c = redis.call('INCR', k)
    if redis.call('PTTL', k) < 0 then redis.call('PEXPIRE', k, window) end
    if c >= limit and block > 0 then redis.call('SET', b, now_ms(), 'PX', block) end
  end
end
return 0
