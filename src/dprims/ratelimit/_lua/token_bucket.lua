-- Token bucket, kind 1. Appended to prelude.lua; called by decide.lua.
-- KEYS[i]: the bucket, a string "<tokens> <time of tokens in us>" (one
--   SET ... PX per decision: a write costs more than parsing it back).
-- ARGV[j], ARGV[j+1] (per limit): rate in tokens per microsecond, burst.
-- Returns (per call): allowed, limit, remaining, retry_after_us,
--   reset_after_us. EARLIEST and BOOK serve reserve (see decide.lua).
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

EARLIEST[1] = function(key, cost, rate, burst, after)
  local tokens = tb_load(key, rate, burst)
  if after > 0 then tokens = math.min(burst, tokens + after * rate) end
  if tokens + 1e-9 >= cost then return after end
  return after + (cost - tokens) / rate
end

-- The debt is stored at now, less any refill a full bucket would lose
-- before now + delay, so the bucket holds exactly what it should then.
BOOK[1] = function(key, cost, rate, burst, delay)
  local tokens = tb_load(key, rate, burst)
  if delay > 0 and tokens + delay * rate > burst then
    tokens = burst - delay * rate
  end
  tb_store(key, tokens - cost, rate, burst)
  return fmt(now + delay)
end

-- The ticket is the booking's time. As in Go's x/time/rate, the tokens
-- that later bookings count on (the refill between that time and the time
-- the debt is paid) stay taken: only the latest booking gets all back.
REFUND[1] = function(key, cost, rate, burst, ticket)
  local at = tonumber(ticket)
  if not at or redis.call('EXISTS', key) == 0 then return end
  local tokens = tb_load(key, rate, burst)
  local paid = now
  if tokens < 0 then paid = now - tokens / rate end
  local back = cost
  if paid - at >= 1 then back = cost - (paid - at) * rate end
  if back <= 0 then return end
  tb_store(key, math.min(burst, tokens + back), rate, burst)
end
