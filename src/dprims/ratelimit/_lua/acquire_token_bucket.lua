-- The hot path of a token bucket (token_bucket.lua): one acquire of one
-- limit without a penalty, with nothing else defined or interpreted.
-- KEYS[1]: the bucket, "<tokens> <time of tokens in us>" (as in
--   token_bucket.lua, so both scripts share the key).
-- ARGV[1]: "<cost> <rate in tokens per us> <burst>" in one string (one
--   argument costs the client less to send than three).
-- Returns: one string "<allowed 0/1> <remaining> <retry_after_us>
--   <reset_after_us>", integers, times rounded up (the limit is the burst,
--   which the caller knows). A string is one read for the client; an array is
--   one per element.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost, rate, burst =
  string.match(ARGV[1], '^(%S+) (%S+) (%S+)$')
cost, rate, burst = tonumber(cost), tonumber(rate), tonumber(burst)
local tokens = burst
local v = redis.call('GET', KEYS[1])
if v then
  local space = string.find(v, ' ', 1, true)
  local elapsed = now - tonumber(string.sub(v, space + 1))
  -- The server clock can step back: never refill on negative time.
  if elapsed < 0 then elapsed = 0 end
  tokens = tonumber(string.sub(v, 1, space - 1)) + elapsed * rate
  if tokens > burst then tokens = burst end
end
local remaining = 0
if tokens + 1e-9 >= cost then
  tokens = tokens - cost
  local reset = (burst - tokens) / rate
  redis.call('SET', KEYS[1], string.format('%.17g %.17g', tokens, now),
    'PX', math.max(1, math.ceil(reset / 1000)) + 1000)
  if tokens > 0 then remaining = math.floor(tokens + 1e-9) end
  return string.format('%d %d %d %d', 1, remaining, 0, math.ceil(reset))
end
if tokens > 0 then remaining = math.floor(tokens + 1e-9) end
return string.format('%d %d %d %d', 0, remaining,
  math.ceil((cost - tokens) / rate),
  math.ceil((burst - tokens) / rate))
