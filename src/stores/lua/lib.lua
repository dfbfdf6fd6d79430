-- The prelude of every mailgate script: redis.ts puts it after the header src/stores/wire.ts
-- generates (the place of each value by name: LIMIT, BLOCK_KEY, COUNT…; the block sizes
-- SPEC_ARGC, SPEC_KEYC, CALL_ARGC, EACH_ARGC; RESERVATION_TTL_MS, INFLIGHT_RETRY_MS) and
-- before the script. Owns the layout of a call (wire.ts' encodeArgs: the specs, the call's
-- values, then each spec's values for this call), Redis' clock, a counter's value, and a
-- block's start (the Lua copy of store.ts' grownBlockMs).

-- How many specs the call has (each brings SPEC_KEYC keys; hit and settle send EXTRA_KEYC
-- more after theirs: KNOWN_GOOD_KEY, HINT_KEY, SUCCESSES_KEY, RECORD_KEY, placeholders when
-- not given).
local N = math.max(0, math.floor((#KEYS - EXTRA_KEYC) / SPEC_KEYC))
local function extra(place) return KEYS[N * SPEC_KEYC + place] end

-- Where the values are: the bases that a value's place (LIMIT, COUNT, MEMBER…) is added to.
-- CALL: the call's values in ARGV.
local CALL = N * SPEC_ARGC
-- Spec i's fields in ARGV, and its keys in KEYS.
local function spec_at(i) return SPEC_ARGC * (i - 1), SPEC_KEYC * (i - 1) end
-- Spec i's values for this call in ARGV.
local function each_at(i) return CALL + CALL_ARGC + EACH_ARGC * (i - 1) end

-- A value as wire.ts sent it: a number, a flag (1 | 0), a word.
local function num(base, place) return tonumber(ARGV[base + place]) end
local function flag(base, place) return ARGV[base + place] == '1' end
local function word(base, place) return ARGV[base + place] end

-- Milliseconds on Redis' clock: windows and blocks run on it whichever instance writes them.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A spec's count: distinct members (HyperLogLog) or events.
local function count_of(a, k)
  if flag(a, DISTINCT) then return redis.call('PFCOUNT', KEYS[k + COUNTER_KEY]) end
  return tonumber(redis.call('GET', KEYS[k + COUNTER_KEY]) or '0')
end

-- Starts a spec's block: its value is when it started (the admin listing), its TTL its length,
-- which it returns.
-- With growth and a memory (store.ts: growsBlocks), the n-th block within BLOCK_MEMORY_MS of
-- the last is BLOCK_GROWTH^(n-1) times longer, up to BLOCK_MAX_MS (0: no cap).
local function start_block(a, k)
  local ms, growth, memory = num(a, BLOCK_MS), num(a, BLOCK_GROWTH), num(a, BLOCK_MEMORY_MS)
  if growth > 1 and memory > 0 then
    local offences = KEYS[k + OFFENCES_KEY]
    local n = redis.call('INCR', offences)
    redis.call('PEXPIRE', offences, memory)
    ms = ms * growth ^ (n - 1)
    local max = num(a, BLOCK_MAX_MS)
    if max > 0 and ms > max then ms = max end
    if ms > MAX_BLOCK_MS then ms = MAX_BLOCK_MS end
  end
  ms = math.floor(ms)
  redis.call('SET', KEYS[k + BLOCK_KEY], now_ms(), 'PX', ms)
  return ms
end
