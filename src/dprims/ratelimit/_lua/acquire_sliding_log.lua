-- The hot path of a sliding log (sliding_log.lua): one acquire of one
-- limit without a penalty, with nothing else defined or interpreted.
-- KEYS[1]: a sorted set, one member per admitted unit, scored by its time
--   in us (as in sliding_log.lua; a reservation's members may lie in the
--   future, and count like the others).
-- ARGV[1]: "<cost> <limit> <window in us>" in one string (one
--   argument costs the client less to send than three).
-- Returns: one string "<allowed 0/1> <remaining> <retry_after_us>
--   <reset_after_us>", integers, times rounded up (the caller knows the
--   limit). A string is one read for the client; an array is one per element.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local key = KEYS[1]
local cost, limit, window =
  string.match(ARGV[1], '^(%S+) (%S+) (%S+)$')
cost, limit, window = tonumber(cost), tonumber(limit), tonumber(window)
redis.call('ZREMRANGEBYSCORE', key, '-inf',
  string.format('%.17g', now - window))
local total = redis.call('ZCARD', key)
if total + cost <= limit then
  local stamp = string.format('%.17g', now)
  if cost == 1 then
    -- Members must be unique: two calls may read the same TIME, but then
    -- the second sees the first's members in ZCARD.
    redis.call('ZADD', key, stamp, string.format('%.0f-%d', now, total + 1))
  else
    local args = {}
    for i = 1, cost do
      args[2 * i - 1] = stamp
      args[2 * i] = string.format('%.0f-%d', now, total + i)
    end
    redis.call('ZADD', key, unpack(args))
  end
  -- GT never cuts short the life of a reservation's later member (when
  -- the key already had members; before Redis 7, which lacks GT, a plain
  -- PEXPIRE is all there is).
  local ttl = math.max(1, math.ceil(window / 1000)) + 1000
  local reset = window
  local set = -1
  if total > 0 then set = redis.pcall('PEXPIRE', key, ttl, 'GT') end
  if set == 0 then
    -- A later expiry stands (a reservation's member, or one set in this
    -- same millisecond): the TTL tells when the newest member is over
    -- (to the millisecond, rounded up; O(1) where ZRANGE is O(log n)).
    reset = math.max(window, (redis.call('PTTL', key) - 1000) * 1000)
  elseif set ~= 1 then
    redis.call('PEXPIRE', key, ttl)
  end
  return string.format('%d %d %d %d', 1, limit - total - cost, 0,
    math.ceil(reset))
end
local need = total + cost - limit
local retry = window
local oldest = redis.call('ZRANGE', key, need - 1, need - 1, 'WITHSCORES')
if oldest[2] then retry = tonumber(oldest[2]) + window - now end
local reset = window
local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
if last[2] then reset = tonumber(last[2]) + window - now end
local remaining = 0
if limit > total then remaining = math.floor(limit - total + 1e-9) end
return string.format('%d %d %d %d', 0, remaining,
  math.ceil(retry), math.ceil(reset))
