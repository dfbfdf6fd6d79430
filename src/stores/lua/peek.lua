-- One counter's state: {count, in-flight reservations, counter TTL ms, block TTL ms, block start}.
-- KEYS: counter (a number, or a HyperLogLog for distinct rules), failure reservations, block.
local v = redis.call('GET', KEYS[1])
local count = 0
if v and string.sub(v, 1, 4) == 'HYLL' then count = redis.call('PFCOUNT', KEYS[1]) elseif v then count = tonumber(v) end
return {
  count,
  tonumber(redis.call('GET', KEYS[2]) or '0'),
  math.max(redis.call('PTTL', KEYS[1]), 0),
  math.max(redis.call('PTTL', KEYS[3]), 0),
  tonumber(redis.call('GET', KEYS[3]) or '0'),
}
