-- The hot path of a sliding window counter (sliding_window.lua): one
-- acquire of one limit without a penalty, with nothing else defined or
-- interpreted.
-- KEYS[1]: "<current window index> <current count> <previous window's
--   count>" (as in sliding_window.lua; an index ahead of now's is a
--   reservation's).
-- ARGV[1]: "<cost> <limit> <window in us>" in one string (one
--   argument costs the client less to send than three).
-- Returns: one string "<allowed 0/1> <remaining> <retry_after_us>
--   <reset_after_us>", integers, times rounded up (the caller knows the
--   limit). A string is one read for the client; an array is one per element.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost, limit, window =
  string.match(ARGV[1], '^(%S+) (%S+) (%S+)$')
cost, limit, window = tonumber(cost), tonumber(limit), tonumber(window)
local index = math.floor(now / window)
local elapsed = now - index * window
local current, previous = 0, 0
local v = redis.call('GET', KEYS[1])
if v then
  local i, c, p = string.match(v, '^(%S+) (%S+) (%S+)$')
  local stored = tonumber(i)
  if stored == index then
    current, previous = tonumber(c), tonumber(p)
  elseif stored == index - 1 then
    previous = tonumber(c)
  elseif stored > index then
    -- A reservation waits in a later window: nothing goes before it, and
    -- from that window's start the usual wait applies (elapsed = 0).
    current, previous = tonumber(c), tonumber(p)
    local retry = 0
    if previous + current + cost > limit + 1e-9 then
      if current + cost <= limit then
        retry = window * (1 - (limit - current - cost) / previous)
      else
        retry = window + math.max(window * (1 - (limit - cost) / current), 0)
      end
    end
    return string.format('%d %d %d %d', 0, 0,
      math.ceil(stored * window - now + retry),
      math.ceil((stored + 2) * window - now))
  end
end
local estimate = previous * (window - elapsed) / window + current
local remaining
if estimate + cost <= limit + 1e-9 then
  current = current + cost
  local reset = 2 * window - elapsed
  redis.call('SET', KEYS[1],
    string.format('%.17g', index) .. ' ' .. current .. ' ' .. previous,
    'PX', math.max(1, math.ceil(reset / 1000)) + 1000)
  remaining = limit - estimate - cost
  if remaining > 0 then remaining = math.floor(remaining + 1e-9)
  else remaining = 0 end
  return string.format('%d %d %d %d', 1, remaining, 0, math.ceil(reset))
end
local retry
if current + cost <= limit then
  retry = window * (1 - (limit - current - cost) / previous) - elapsed
else
  retry = window - elapsed
    + math.max(window * (1 - (limit - cost) / current), 0)
end
local reset = window - elapsed
if current > 0 then reset = 2 * window - elapsed end
remaining = limit - estimate
if remaining > 0 then remaining = math.floor(remaining + 1e-9)
else remaining = 0 end
return string.format('%d %d %d %d', 0, remaining,
  math.ceil(retry), math.ceil(reset))
