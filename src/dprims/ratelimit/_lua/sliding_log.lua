-- Sliding log, kind 5. Appended to prelude.lua; called by decide.lua.
-- KEYS[i]: a sorted set, one member per admitted unit, scored by its time
--   in us. Each call trims expired members with ZREMRANGEBYSCORE and
--   counts with ZCARD: O(log n + expired) per call, never a scan of the
--   whole log (the O(limit) stall of limits#268). Memory: about 100 bytes
--   per unit admitted in the last window.
-- ARGV[j], ARGV[j+1] (per limit): limit, window in us.
-- Returns (per call): allowed, limit, remaining, retry_after_us,
--   reset_after_us.
local function sl_newest(key)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if last[2] then return tonumber(last[2]) end
  return nil
end

ALG[5] = function(key, cost, limit, window, commit)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', fmt(now - window))
  local total = redis.call('ZCARD', key)
  if total + cost <= limit then
    if commit and cost > 0 then
      local args = {}
      for i = 1, cost do
        -- Members must be unique: two calls may read the same TIME, but
        -- then the second sees the first's members in ZCARD.
        args[2 * i - 1] = fmt(now)
        args[2 * i] = string.format('%.0f-%d', now, total + i)
      end
      redis.call('ZADD', key, unpack(args))
      redis.call('PEXPIRE', key, ms(window))
      return 1, limit, limit - total - cost, 0, window
    end
    local reset = 0
    local newest = sl_newest(key)
    if newest then reset = newest + window - now end
    return 1, limit, limit - total - cost, 0, reset
  end
  local need = total + cost - limit
  local oldest = redis.call('ZRANGE', key, need - 1, need - 1, 'WITHSCORES')
  local retry = window
  if oldest[2] then retry = tonumber(oldest[2]) + window - now end
  local reset = window
  local newest = sl_newest(key)
  if newest then reset = newest + window - now end
  return 0, limit, floor0(limit - total), retry, reset
end
