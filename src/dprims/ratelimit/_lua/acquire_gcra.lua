-- The hot path of GCRA (gcra.lua): one acquire of one limit without a
-- penalty, with nothing else defined or interpreted.
-- KEYS[1]: the theoretical arrival time (TAT) in us (as in gcra.lua).
-- ARGV[1]: "<cost> <emission interval in us> <burst>" in one string (one
--   argument costs the client less to send than three).
-- Returns: one string "<allowed 0/1> <remaining> <retry_after_us>
--   <reset_after_us>", integers, times rounded up (the limit is the burst,
--   which the caller knows). A string is one read for the client; an array is
--   one per element.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost, interval, burst =
  string.match(ARGV[1], '^(%S+) (%S+) (%S+)$')
cost, interval, burst = tonumber(cost), tonumber(interval), tonumber(burst)
local tolerance = burst * interval
local tat = now
local v = redis.call('GET', KEYS[1])
if v then
  tat = tonumber(v)
  if tat < now then tat = now end
end
local new = tat + cost * interval
local diff = new - now
local remaining
if diff <= tolerance + 1e-6 then
  redis.call('SET', KEYS[1], string.format('%.17g', new),
    'PX', math.max(1, math.ceil(diff / 1000)) + 1000)
  remaining = (tolerance - diff) / interval
  if remaining > 0 then remaining = math.floor(remaining + 1e-9)
  else remaining = 0 end
  return string.format('%d %d %d %d', 1, remaining, 0, math.ceil(diff))
end
remaining = (tolerance - (tat - now)) / interval
if remaining > 0 then remaining = math.floor(remaining + 1e-9)
else remaining = 0 end
return string.format('%d %d %d %d', 0, remaining,
  math.ceil(diff - tolerance), math.ceil(tat - now))
