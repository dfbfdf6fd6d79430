-- A block set by hand (admin): KEYS[1], the block key of one counter, for ARGV[1] ms from
-- now; its value the start on Redis' clock, as lib.lua's start_block writes it, with its TTL.
redis.call('SET', KEYS[1], now_ms(), 'PX', tonumber(ARGV[1]))
return 1
