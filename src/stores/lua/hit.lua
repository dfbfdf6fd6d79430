-- Atomic check-and-count over the rules of one login attempt that live in one Cluster slot
-- (see LimitStore.hit; redis-plan.ts splits an attempt by slot), on the layout of
-- src/stores/wire.ts (HIT_WIRE): the specs, then COUNT (0: check only, at connect),
-- KNOWN_GOOD and SUCCESSES (their keys are real), HINT (the attempt's password hint, '' none),
-- KNOWN_GOOD_ELSEWHERE and HINT_ELSEWHERE (the attempt has them, in another slot).
-- An exempt spec whose exemption lives in another slot and that would refuse is provisional:
-- it does not stop the script, it is counted as if allowed (but starts no block) and
-- reported; the caller refuses unless the other slot found the exemption, and then aborts.
-- Returns {refusing spec or 0, retry-after ms, count, blocked 0|1, known-good 0|1, hint
-- matches 0|1, successes, P, P provisional refusals as (spec, retry-after, count, blocked)…,
-- blocks started as (spec, count, block ms)…}; a refusal changes nothing. Every key written gets a TTL
-- here, on Redis' clock.
local knownGood, hintMatch, successes = 0, 0, 0
if flag(CALL, KNOWN_GOOD) and redis.call('EXISTS', extra(KNOWN_GOOD_KEY)) == 1 then knownGood = 1 end
local hint = word(CALL, HINT)
if hint ~= '' and redis.call('GET', extra(HINT_KEY)) == hint then hintMatch = 1 end
if flag(CALL, SUCCESSES) then successes = redis.call('PFCOUNT', extra(SUCCESSES_KEY)) end
local kgElsewhere, hintElsewhere = flag(CALL, KNOWN_GOOD_ELSEWHERE), flag(CALL, HINT_ELSEWHERE)

local provisional, pending = {}, {}
local function reply(i, retry, count, blocked)
  local out = {i, retry, count, blocked, knownGood, hintMatch, successes, #provisional / 4}
  for _, v in ipairs(provisional) do out[#out + 1] = v end
  return out
end

for i = 1, N do
  local a, k = spec_at(i)
  if not ((flag(a, KNOWN_GOOD_EXEMPT) and knownGood == 1) or (flag(a, HINT_EXEMPT) and hintMatch == 1)) then
    local count, limit = count_of(a, k), num(a, LIMIT)
    local r
    local bttl = redis.call('PTTL', KEYS[k + BLOCK_KEY])
    if bttl > 0 then
      r = {i, bttl, count, 1}
    elseif count >= limit then
      r = {i, math.max(redis.call('PTTL', KEYS[k + COUNTER_KEY]), 0), count, 0}
    elseif word(a, KIND) == 'failures' and not flag(a, UNRESERVED) and count + tonumber(redis.call('GET', KEYS[k + RESERVED_KEY]) or '0') >= limit then
      r = {i, INFLIGHT_RETRY_MS, count, 0}
    end
    if r then
      if not ((flag(a, KNOWN_GOOD_EXEMPT) and kgElsewhere) or (flag(a, HINT_EXEMPT) and hintElsewhere)) then return reply(r[1], r[2], r[3], r[4]) end
      for _, v in ipairs(r) do provisional[#provisional + 1] = v end
      pending[i] = true
    end
  end
end

local result = reply(0, 0, 0, 0)
if not flag(CALL, COUNT) then return result end
for i = 1, N do
  local a, k = spec_at(i)
  if word(a, KIND) == 'attempts' then
    local counter = KEYS[k + COUNTER_KEY]
    local c = redis.call('INCR', counter)
    -- The first hit starts the window; a key found without a TTL gets one too.
    if redis.call('PTTL', counter) < 0 then redis.call('PEXPIRE', counter, num(a, WINDOW_MS)) end
    if c >= num(a, LIMIT) and num(a, BLOCK_MS) > 0 and not pending[i] then
      local ms = start_block(a, k)
      for _, v in ipairs({i, c, ms}) do result[#result + 1] = v end
    end
  elseif not flag(a, UNRESERVED) then
    redis.call('INCR', KEYS[k + RESERVED_KEY])
    redis.call('PEXPIRE', KEYS[k + RESERVED_KEY], RESERVATION_TTL_MS)
  end
end
return result
