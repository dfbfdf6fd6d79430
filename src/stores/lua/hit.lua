-- Atomic check-and-count over every rule of one login attempt (see LimitStore.hit), on the
-- layout of src/stores/wire.ts (HIT_WIRE): the specs, then COUNT (0: check only, at
-- connect), KNOWN_GOOD and SUCCESSES (their keys are real), HINT (the attempt's password
-- hint, '' none). Returns {0, known-good 0|1, hint matches 0|1, successes, spec indexes whose
-- block started…} when allowed, else {i, retry-after ms, count, blocked 0|1}. Every key
-- written gets a TTL here, on Redis' clock.
local knownGood, hintMatch, successes = 0, 0, 0
if flag(CALL, KNOWN_GOOD) and redis.call('EXISTS', extra(KNOWN_GOOD_KEY)) == 1 then knownGood = 1 end
local hint = word(CALL, HINT)
if hint ~= '' and redis.call('GET', extra(HINT_KEY)) == hint then hintMatch = 1 end
if flag(CALL, SUCCESSES) then successes = redis.call('PFCOUNT', extra(SUCCESSES_KEY)) end

for i = 1, N do
  local a, k = spec_at(i)
  if not ((flag(a, KNOWN_GOOD_EXEMPT) and knownGood == 1) or (flag(a, HINT_EXEMPT) and hintMatch == 1)) then
    local count, limit = count_of(a, k), num(a, LIMIT)
    local bttl = redis.call('PTTL', KEYS[k + BLOCK_KEY])
    if bttl > 0 then return {i, bttl, count, 1} end
    if count >= limit then return {i, math.max(redis.call('PTTL', KEYS[k + COUNTER_KEY]), 0), count, 0} end
    if word(a, KIND) == 'failures' and not flag(a, UNRESERVED) and count + tonumber(redis.call('GET', KEYS[k + RESERVED_KEY]) or '0') >= limit then
      return {i, INFLIGHT_RETRY_MS, count, 0}
    end
  end
end

if not flag(CALL, COUNT) then return {0, knownGood, hintMatch, successes} end
local result = {0, knownGood, hintMatch, successes}
for i = 1, N do
  local a, k = spec_at(i)
  if word(a, KIND) == 'attempts' then
    local counter = KEYS[k + COUNTER_KEY]
    local c = redis.call('INCR', counter)
    -- The first hit starts the window; a key found without a TTL gets one too.
    if redis.call('PTTL', counter) < 0 then redis.call('PEXPIRE', counter, num(a, WINDOW_MS)) end
    if c >= num(a, LIMIT) and num(a, BLOCK_MS) > 0 then
      start_block(a, k)
      result[#result + 1] = i
    end
  elseif not flag(a, UNRESERVED) then
    redis.call('INCR', KEYS[k + RESERVED_KEY])
    redis.call('PEXPIRE', KEYS[k + RESERVED_KEY], RESERVATION_TTL_MS)
  end
end
return result
