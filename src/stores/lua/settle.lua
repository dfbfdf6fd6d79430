-- Settle one attempt (see LimitStore.settle), on the layout of src/stores/wire.ts
-- (SETTLE_WIRE): the specs, then FAILED, RESERVED (hit reserved a failure per failures
-- spec), FINGERPRINT ('' none), KNOWN_GOOD_TTL_MS, HINT and HINT_TTL_MS,
-- SUCCESS_MEMBER and SUCCESSES_TTL_MS (on success: '' / 0 none), RECORD_FIELD ('' none) and
-- the record's bounds, then each spec's MEMBER ('' none). On success a spec with
-- RESET_ON_SUCCESS loses its count and block. The record's row (the login's history, row.lua)
-- is written last, so once it shows everything this settle wrote is there.
-- Returns each spec's count afterwards, then 1 if the row was written (or had nothing to write)
-- and 0 if there was none or it failed, then the blocks it changed as (i, block ms): spec i's
-- block started, or lifted for 0 ms (the store tells the other instances). Every key
-- written gets a TTL here.
local failed, fingerprint = flag(CALL, FAILED), word(CALL, FINGERPRINT)

local function ttl(key, ms)
  if redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, ms) end
end

local counts, changed = {}, {}
for i = 1, N do
  local a, k = spec_at(i)
  local c = count_of(a, k)
  if word(a, KIND) == 'failures' then
    local distinct, counter, window = flag(a, DISTINCT), KEYS[k + COUNTER_KEY], num(a, WINDOW_MS)
    if flag(CALL, RESERVED) and not flag(a, UNRESERVED) then
      if redis.call('DECR', KEYS[k + RESERVED_KEY]) <= 0 then redis.call('DEL', KEYS[k + RESERVED_KEY]) end
    end
    local counted = false
    local member = word(each_at(i), MEMBER)
    if failed and distinct and member ~= '' then
      redis.call('PFADD', counter, member)
      ttl(counter, window)
      c = redis.call('PFCOUNT', counter)
      counted = true
    elseif failed and not distinct then
      local fresh = 1
      if flag(a, DEDUPE) and fingerprint ~= '' then
        fresh = redis.call('SADD', KEYS[k + DEDUPE_KEY], fingerprint)
        ttl(KEYS[k + DEDUPE_KEY], window)
      end
      if fresh == 1 then
        c = redis.call('INCR', counter)
        ttl(counter, window)
        counted = true
      end
    end
    if counted and c >= num(a, LIMIT) and num(a, BLOCK_MS) > 0 and redis.call('EXISTS', KEYS[k + BLOCK_KEY]) == 0 then
      changed[#changed + 1] = i
      changed[#changed + 1] = start_block(a, k)
    end
  end
  if not failed and flag(a, RESET_ON_SUCCESS) then
    redis.call('DEL', KEYS[k + COUNTER_KEY])
    if redis.call('DEL', KEYS[k + BLOCK_KEY]) == 1 then
      changed[#changed + 1] = i
      changed[#changed + 1] = 0
    end
    c = 0
  end
  counts[i] = c
end
if not failed then
  if num(CALL, KNOWN_GOOD_TTL_MS) > 0 then redis.call('SET', extra(KNOWN_GOOD_KEY), '1', 'PX', num(CALL, KNOWN_GOOD_TTL_MS)) end
  if word(CALL, HINT) ~= '' then redis.call('SET', extra(HINT_KEY), word(CALL, HINT), 'PX', num(CALL, HINT_TTL_MS)) end
  local member = word(CALL, SUCCESS_MEMBER)
  if member ~= '' then
    redis.call('PFADD', extra(SUCCESSES_KEY), member)
    redis.call('PEXPIRE', extra(SUCCESSES_KEY), num(CALL, SUCCESSES_TTL_MS))
  end
end
-- A row that fails (a foreign value at its key) is not the settle's failure: the counts above
-- stand, and the caller writes the row on its own (historyAdd), which reports the error.
local row = 0
local field = word(CALL, RECORD_FIELD)
if field ~= '' and pcall(record_row, extra(RECORD_KEY), field, word(CALL, RECORD_AT_MS), num(CALL, RECORD_TTL_MS), num(CALL, RECORD_CAP), flag(CALL, RECORD_EXISTING)) then
  row = 1
end
counts[#counts + 1] = row
for _, i in ipairs(changed) do counts[#counts + 1] = i end
return counts
