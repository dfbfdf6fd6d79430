-- A block set by hand (admin): the block key of one counter, for ARGV[1] ms from now, its
-- value the start on Redis' clock (as hit.lua and settle.lua write it), with its TTL.
-- KEYS[1]: the block key.
local t = redis.call('TIME')
redis.call('SET', KEYS[1], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), 'PX', tonumber(ARGV[1]))
return 1
