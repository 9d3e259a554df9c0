-- Release a loader's lease if the caller still holds it.
-- KEYS[1]: lease key
-- ARGV[1]: lease token of the caller
-- Returns 1 if the lease was released, 0 if it had expired or belongs to
-- another loader (whose lease must not be dropped).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
