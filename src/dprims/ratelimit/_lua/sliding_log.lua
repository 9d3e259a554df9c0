-- Sliding log, kind 5. Appended to prelude.lua; called by decide.lua.
-- KEYS[i]: a sorted set, one member per admitted unit, scored by its time
--   in us. Each call trims expired members with ZREMRANGEBYSCORE and
--   counts with ZCARD: O(log n + expired) per call, never a scan of the
--   whole log (the O(limit) stall of limits#268). Memory: about 100 bytes
--   per unit admitted in the last window. A reservation adds its members
--   at the time it acts, possibly in the future; every decision counts
--   them, which keeps every window exact over the times requests act.
-- ARGV[j], ARGV[j+1] (per limit): limit, window in us.
-- Returns (per call): allowed, limit, remaining, retry_after_us,
--   reset_after_us. EARLIEST, BOOK and REFUND serve reserve and cancel.
local function sl_newest(key)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if last[2] then return tonumber(last[2]) end
  return nil
end

-- Sets the TTL after an acquire added members at now and returns the
-- reset_after: GT never cuts short the life of a booking's later member
-- (when the key already had members; before Redis 7, which lacks GT, a
-- plain PEXPIRE is all there is).
local function sl_expire(key, total, window)
  if total > 0 then
    local set = redis.pcall('PEXPIRE', key, ms(window), 'GT')
    if set == 0 then return sl_newest(key) + window - now end
    if set == 1 then return window end
  end
  redis.call('PEXPIRE', key, ms(window))
  return window
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
      return 1, limit, limit - total - cost, 0,
        sl_expire(key, total, window)
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

-- Not before the newest member (a later request never goes ahead of a
-- booking), nor before enough of the oldest have expired.
EARLIEST[5] = function(key, cost, limit, window, after)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', fmt(now - window))
  local newest = sl_newest(key)
  if not newest then return after end
  local base = newest - now
  if base < after then base = after end
  local low = '(' .. fmt(now + base - window)
  local need = redis.call('ZCOUNT', key, low, '+inf') + cost - limit
  if need <= 0 then return base end
  local nth = redis.call('ZRANGEBYSCORE', key, low, '+inf', 'WITHSCORES',
    'LIMIT', need - 1, 1)
  return tonumber(nth[2]) + window - now
end

-- The ticket names the members: "<member prefix> <first number>".
BOOK[5] = function(key, cost, limit, window, delay)
  local at = now + delay
  local first = redis.call('ZCARD', key) + 1
  -- Unique, and unlike an acquire's "<now>-<n>": "<at>-<now>-<n>".
  local prefix = string.format('%.0f-%.0f-', at, now)
  local args = {}
  for i = 1, cost do
    args[2 * i - 1] = fmt(at)
    args[2 * i] = prefix .. (first + i - 1)
  end
  redis.call('ZADD', key, unpack(args))
  redis.call('PEXPIRE', key, ms(delay + window))
  return prefix .. ' ' .. first
end

REFUND[5] = function(key, cost, limit, window, ticket)
  local prefix, first = string.match(ticket, '^(%S+) (%d+)$')
  if not prefix then return end
  local members = {}
  for i = 1, cost do members[i] = prefix .. (tonumber(first) + i - 1) end
  redis.call('ZREM', key, unpack(members))
end
