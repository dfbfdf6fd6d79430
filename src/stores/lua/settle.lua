-- Settle one attempt (see LimitStore.settle), on the layout of src/stores/wire.ts
-- (SETTLE_WIRE): the specs, then call.failed, call.reserved (hit reserved a failure per
-- non-distinct failures spec), call.fingerprint ('' none), call.knownGoodTtlMs, then each
-- spec's member ('' none). The key after the specs' keys, sent only on success, is the
-- known-good pair to remember. Returns each spec's count afterwards. Every key written gets
-- a TTL here.
local specs, call, knownGoodKey = decode()

local function ttl(key, ms)
  if redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, ms) end
end

local counts = {}
for i, s in ipairs(specs) do
  local c = count_of(s)
  if s.kind == 'failures' then
    if call.reserved and not s.distinct then
      if redis.call('DECR', s.reservedKey) <= 0 then redis.call('DEL', s.reservedKey) end
    end
    local counted = false
    if call.failed and s.distinct and s.member ~= '' then
      redis.call('PFADD', s.counterKey, s.member)
      ttl(s.counterKey, s.windowMs)
      c = redis.call('PFCOUNT', s.counterKey)
      counted = true
    elseif call.failed and not s.distinct then
      local fresh = 1
      if s.dedupe and call.fingerprint ~= '' then
        fresh = redis.call('SADD', s.dedupeKey, call.fingerprint)
        ttl(s.dedupeKey, s.windowMs)
      end
      if fresh == 1 then
        c = redis.call('INCR', s.counterKey)
        ttl(s.counterKey, s.windowMs)
        counted = true
      end
    end
    if counted and c >= s.limit and s.blockMs > 0 and redis.call('EXISTS', s.blockKey) == 0 then start_block(s) end
  end
  counts[i] = c
end
if knownGoodKey then redis.call('SET', knownGoodKey, '1', 'PX', call.knownGoodTtlMs) end
return counts
