-- A capped record's row on its own (historyAdd), after row.lua: KEYS[1] the record (a hash).
-- ARGV: field, at (ms), ttl (ms), cap, existing (1: only in a record that exists).
return record_row(KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5] == '1')
