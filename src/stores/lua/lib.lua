-- The prelude of every mailgate script: redis.ts puts it after the header src/stores/wire.ts
-- generates (SPEC_FIELDS, SPEC_KEYS, CALL_FIELDS, EACH_FIELDS, RESERVATION_TTL_MS,
-- INFLIGHT_RETRY_MS) and before the script. Owns the decoding of KEYS and ARGV by name,
-- Redis' clock, a counter's value, and a block's start (the Lua copy of store.ts' grownBlockMs).

-- Reads one set of fields from ARGV after position `at` into `into`: words stay strings,
-- numbers become numbers, flags booleans.
local function read_fields(fields, at, into)
  for j, f in ipairs(fields) do
    local v = ARGV[at + j]
    if f[2] == 'number' then v = tonumber(v) elseif f[2] == 'flag' then v = v == '1' end
    into[f[1]] = v
  end
  return into
end

-- This call's specs (each a table of its fields, its keys by name and its EACH_FIELDS), the
-- call's own values (CALL_FIELDS), and the key after the specs' keys (the known-good pair) or
-- nil. The layout is wire.ts' encodeArgs: specs, call, then each spec's values for this call.
local function decode()
  local nf, nk = #SPEC_FIELDS, #SPEC_KEYS
  local n = math.floor(#KEYS / nk)
  local call = read_fields(CALL_FIELDS, n * nf, {})
  local each = n * nf + #CALL_FIELDS
  local specs = {}
  for i = 1, n do
    local s = read_fields(SPEC_FIELDS, nf * (i - 1), {})
    read_fields(EACH_FIELDS, each + #EACH_FIELDS * (i - 1), s)
    for j, name in ipairs(SPEC_KEYS) do s[name] = KEYS[nk * (i - 1) + j] end
    specs[i] = s
  end
  return specs, call, KEYS[n * nk + 1]
end

-- Milliseconds on Redis' clock: windows and blocks run on it whichever instance writes them.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A spec's count: distinct members (HyperLogLog) or events.
local function count_of(s)
  if s.distinct then return redis.call('PFCOUNT', s.counterKey) end
  return tonumber(redis.call('GET', s.counterKey) or '0')
end

-- Starts a spec's block: its value is when it started (the admin listing), its TTL its length.
-- With growth and a memory (store.ts: growsBlocks), the n-th block within blockMemoryMs of the
-- last is blockGrowth^(n-1) times longer, up to blockMaxMs (0: no cap).
local function start_block(s)
  local ms = s.blockMs
  if s.blockGrowth > 1 and s.blockMemoryMs > 0 then
    local n = redis.call('INCR', s.offencesKey)
    redis.call('PEXPIRE', s.offencesKey, s.blockMemoryMs)
    ms = ms * s.blockGrowth ^ (n - 1)
    if s.blockMaxMs > 0 and ms > s.blockMaxMs then ms = s.blockMaxMs end
  end
  redis.call('SET', s.blockKey, now_ms(), 'PX', math.floor(ms))
end
