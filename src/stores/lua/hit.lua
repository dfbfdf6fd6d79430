-- Atomic check-and-count over every rule of one login attempt (see LimitStore.hit), on the
-- layout of src/stores/wire.ts (HIT_WIRE): the specs, then call.count (false: check only).
-- The key after the specs' keys, when given, is the attempt's known-good pair.
-- Returns {0, known-good 0|1, spec indexes whose block started…} when allowed, else
-- {i, retry-after ms, count, blocked 0|1}. Every key written gets a TTL here, on Redis' clock.
local specs, call, knownGoodKey = decode()
local kg = 0
if knownGoodKey and redis.call('EXISTS', knownGoodKey) == 1 then kg = 1 end

for i, s in ipairs(specs) do
  if not (s.knownGoodExempt and kg == 1) then
    local count = count_of(s)
    local bttl = redis.call('PTTL', s.blockKey)
    if bttl > 0 then return {i, bttl, count, 1} end
    if count >= s.limit then return {i, math.max(redis.call('PTTL', s.counterKey), 0), count, 0} end
    if s.kind == 'failures' and not s.distinct and count + tonumber(redis.call('GET', s.reservedKey) or '0') >= s.limit then
      return {i, INFLIGHT_RETRY_MS, count, 0}
    end
  end
end

if not call.count then return {0, kg} end
local result = {0, kg}
for i, s in ipairs(specs) do
  if s.kind == 'attempts' then
    local c = redis.call('INCR', s.counterKey)
    -- The first hit starts the window; a key found without a TTL gets one too.
    if redis.call('PTTL', s.counterKey) < 0 then redis.call('PEXPIRE', s.counterKey, s.windowMs) end
    if c >= s.limit and s.blockMs > 0 then
      start_block(s)
      result[#result + 1] = i
    end
  elseif not s.distinct then
    redis.call('INCR', s.reservedKey)
    redis.call('PEXPIRE', s.reservedKey, RESERVATION_TTL_MS)
  end
end
return result
