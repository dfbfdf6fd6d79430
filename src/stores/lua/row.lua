-- One row of a capped record (an account's login history, its password prints; stores/records.ts
-- is the memory copy), for record.lua and settle.lua (a login's history row travels with its
-- settle): the hash at `key`, field -> "count:first:last" (ms). `at` as the caller sent it (a
-- string: Lua would print a large number in exponent form). Counts one event of the field, drops
-- rows whose last event is over ttl ago, keeps at most cap rows (those seen least lately go
-- first), and keeps the record ttl from now; with `existing`, only in a record that exists.
-- Returns 1 when it wrote, 0 when it had nothing to (existing, and no record).
local function record_row(key, field, at, ttl, cap, existing)
  if existing and redis.call('EXISTS', key) == 0 then
    return 0
  end
  local now = tonumber(at)
  local all = redis.call('HGETALL', key)
  local others = {}
  local value = '1:' .. at .. ':' .. at
  for i = 1, #all, 2 do
    local f, v = all[i], all[i + 1]
    local c, first, last = string.match(v, '^(%d+):(%d+):(%d+)$')
    if c == nil or tonumber(last) <= now - ttl then
      redis.call('HDEL', key, f)
    elseif f == field then
      value = (tonumber(c) + 1) .. ':' .. first .. ':' .. (tonumber(last) > now and last or at)
    else
      others[#others + 1] = { f, tonumber(last) }
    end
  end
  redis.call('HSET', key, field, value)
  table.sort(others, function(a, b) return a[2] < b[2] end)
  for i = 1, #others + 1 - cap do
    redis.call('HDEL', key, others[i][1])
  end
  redis.call('PEXPIRE', key, ttl)
  return 1
end
