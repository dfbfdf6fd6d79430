-- One counter's state: {count, in-flight reservations, counter TTL ms, block TTL ms}.
-- KEYS: counter, failure reservations, block.
return {
  tonumber(redis.call('GET', KEYS[1]) or '0'),
  tonumber(redis.call('GET', KEYS[2]) or '0'),
  math.max(redis.call('PTTL', KEYS[1]), 0),
  math.max(redis.call('PTTL', KEYS[3]), 0),
}
