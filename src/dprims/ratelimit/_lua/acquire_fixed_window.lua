-- The hot path of a fixed window (fixed_window.lua): one acquire of one
-- limit without a penalty, with nothing else defined or interpreted.
-- KEYS[1]: "<window index> <count>" (as in fixed_window.lua; an index
--   ahead of now's is a reservation's).
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
local reset = math.ceil((index + 1) * window - now)
local count = 0
local v = redis.call('GET', KEYS[1])
if v then
  local space = string.find(v, ' ', 1, true)
  local stored = tonumber(string.sub(v, 1, space - 1))
  if stored == index then
    count = tonumber(string.sub(v, space + 1))
  elseif stored > index then
    -- A reservation waits in a later window: nothing goes before it.
    local start = stored
    if tonumber(string.sub(v, space + 1)) + cost > limit then
      start = stored + 1
    end
    return string.format('%d %d %d %d', 0, 0,
      math.ceil(start * window - now), math.ceil((stored + 1) * window - now))
  end
end
if count + cost <= limit then
  count = count + cost
  redis.call('SET', KEYS[1], string.format('%.17g', index) .. ' ' .. count,
    'PX', math.max(1, math.ceil(reset / 1000)) + 1000)
  return string.format('%d %d %d %d', 1, limit - count, 0, reset)
end
local remaining = 0
if limit > count then remaining = math.floor(limit - count + 1e-9) end
return string.format('%d %d %d %d', 0, remaining, reset, reset)
