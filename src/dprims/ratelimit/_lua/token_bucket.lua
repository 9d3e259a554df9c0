-- Token bucket, kind 1. Appended to prelude.lua; called by decide.lua.
-- KEYS[i]: the bucket, a string "<tokens> <time of tokens in us>" (one
--   SET ... PX per decision: a write costs more than parsing it back).
-- ARGV[j], ARGV[j+1] (per limit): rate in tokens per microsecond, burst.
-- Returns (per call): allowed, limit, remaining, retry_after_us,
--   reset_after_us; reserve returns the delay in us.
local function tb_load(key, rate, burst)
  local v = redis.call('GET', key)
  if not v then return burst end
  local space = string.find(v, ' ', 1, true)
  local elapsed = now - tonumber(string.sub(v, space + 1))
  -- The server clock can step back (failover to a replica): never refill
  -- on negative time.
  if elapsed < 0 then elapsed = 0 end
  local tokens = tonumber(string.sub(v, 1, space - 1)) + elapsed * rate
  if tokens > burst then tokens = burst end
  return tokens
end

local function tb_store(key, tokens, rate, burst)
  redis.call('SET', key, fmt(tokens) .. ' ' .. fmt(now),
    'PX', ms((burst - tokens) / rate))
end

ALG[1] = function(key, cost, rate, burst, commit)
  local tokens = tb_load(key, rate, burst)
  if tokens + 1e-9 >= cost then
    tokens = tokens - cost
    if commit and cost > 0 then tb_store(key, tokens, rate, burst) end
    return 1, burst, floor0(tokens), 0, (burst - tokens) / rate
  end
  return 0, burst, floor0(tokens), (cost - tokens) / rate,
    (burst - tokens) / rate
end

RESERVE[1] = function(key, cost, rate, burst, max_delay)
  local tokens = tb_load(key, rate, burst) - cost
  local delay = 0
  if tokens + 1e-9 < 0 then delay = -tokens / rate end
  if max_delay >= 0 and delay > max_delay then return 0, delay end
  tb_store(key, tokens, rate, burst)
  return 1, delay
end

REFUND[1] = function(key, cost, rate, burst)
  if redis.call('EXISTS', key) == 0 then return end
  local tokens = math.min(burst, tb_load(key, rate, burst) + cost)
  tb_store(key, tokens, rate, burst)
end
