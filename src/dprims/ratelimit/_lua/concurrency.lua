-- Concurrency limiter: at most `limit` leases in flight per key.
-- KEYS[1]: a sorted set of lease tokens scored by their expiry in us on
--   the server's clock; expired leases are trimmed on every call, so a
--   crashed holder's slot comes back when its lease runs out.
-- ARGV[1]: mode: "a" acquire, "r" release, "n" renew, "p" peek, "x" reset.
-- ARGV[2]: lease token.  ARGV[3]: limit.  ARGV[4]: lease in us.
-- Returns: for acquire and peek: allowed (0/1), limit, remaining,
--   retry_after_us, reset_after_us; for renew: 1 if renewed, else 0;
--   for release and reset: 0.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local key = KEYS[1]
local mode = ARGV[1]
local token = ARGV[2]
local limit = tonumber(ARGV[3])
local lease = tonumber(ARGV[4])

local function fmt(x)
  return string.format('%.17g', x)
end

local function expire_at_newest()
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIRE', key,
      math.max(1, math.ceil((tonumber(last[2]) - now) / 1000)) + 1000)
    return tonumber(last[2]) - now
  end
  return 0
end

if mode == 'x' then
  redis.call('DEL', key)
  return 0
end
redis.call('ZREMRANGEBYSCORE', key, '-inf', fmt(now))
if mode == 'r' then
  redis.call('ZREM', key, token)
  return 0
end
if mode == 'n' then
  if not redis.call('ZSCORE', key, token) then return 0 end
  redis.call('ZADD', key, fmt(now + lease), token)
  expire_at_newest()
  return 1
end
local n = redis.call('ZCARD', key)
if mode == 'a' and n < limit then
  redis.call('ZADD', key, fmt(now + lease), token)
  local reset = expire_at_newest()
  return {1, limit, limit - n - 1, 0, math.ceil(reset)}
end
local reset = 0
local retry = 0
if n > 0 then
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  reset = tonumber(last[2]) - now
end
if n >= limit then
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  retry = tonumber(first[2]) - now
  return {0, limit, 0, math.ceil(retry), math.ceil(reset)}
end
return {1, limit, limit - n, 0, math.ceil(reset)}
