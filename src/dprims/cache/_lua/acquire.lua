-- Take a loader's lease unless the value is already there.
-- KEYS[1]: value key
-- KEYS[2]: lease key (same hash tag as KEYS[1], so the same Cluster slot)
-- ARGV[1]: lease token of the caller
-- ARGV[2]: lease time to live (ms, > 0)
-- Returns {2, value} if the value exists (a load finished since the
-- caller's miss), {1} if the caller now holds the lease, {0} if another
-- loader holds it. Checking and taking in one step closes the window in
-- which a load ends between the caller's miss and its lease attempt.
local value = redis.call('GET', KEYS[1])
if value then
  return {2, value}
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1}
end
return {0}
