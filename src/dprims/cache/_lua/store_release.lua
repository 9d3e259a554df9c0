-- Store a freshly loaded value and release the loader's lease, atomically.
-- KEYS[1]: value key
-- KEYS[2]: lease key (same hash tag as KEYS[1], so the same Cluster slot)
-- ARGV[1]: serialized value
-- ARGV[2]: time to live of the value (ms, > 0)
-- ARGV[3]: lease token of the caller
-- Returns 1 if the caller still held the lease (and released it), else 0.
-- The value is stored either way: it is fresh, and a newer writer's SET
-- would simply overwrite it.
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
