-- Undo a hit whose attempt another Cluster slot refused (redis-plan.ts), on the layout of
-- src/stores/wire.ts (ABORT_WIRE: the specs that hit counted, nothing else): each attempts
-- counter loses the attempt it gained (never below 0: it may have expired meanwhile), each
-- reserved failures spec gives its reservation back, as settle does. Blocks the hit started
-- stay: an abort only ever leaves a key stricter than the refused attempt found it.
for i = 1, N do
  local a, k = spec_at(i)
  if word(a, KIND) == 'attempts' then
    if tonumber(redis.call('GET', KEYS[k + COUNTER_KEY]) or '0') > 0 then redis.call('DECR', KEYS[k + COUNTER_KEY]) end
  elseif not flag(a, UNRESERVED) then
    if redis.call('DECR', KEYS[k + RESERVED_KEY]) <= 0 then redis.call('DEL', KEYS[k + RESERVED_KEY]) end
  end
end
return 1
