-- GCRA, kind 2. Appended to prelude.lua; called by decide.lua.
-- KEYS[i]: a string holding the theoretical arrival time (TAT) in us.
-- ARGV[j], ARGV[j+1] (per limit): emission interval in us, burst.
-- Returns (per call): allowed, limit, remaining, retry_after_us,
--   reset_after_us. EARLIEST and BOOK serve reserve (see decide.lua).
local function gcra_tat(key)
  local v = redis.call('GET', key)
  if not v then return now end
  local tat = tonumber(v)
  if tat < now then return now end
  return tat
end

ALG[2] = function(key, cost, interval, burst, commit)
  local tolerance = burst * interval
  local tat = gcra_tat(key)
  local new = tat + cost * interval
  local diff = new - now
  if diff <= tolerance + EPS then
    if commit and cost > 0 then
      redis.call('SET', key, fmt(new), 'PX', ms(diff))
    end
    return 1, burst, floor0((tolerance - diff) / interval), 0, diff
  end
  return 0, burst, floor0((tolerance - (tat - now)) / interval),
    diff - tolerance, tat - now
end

EARLIEST[2] = function(key, cost, interval, burst, after)
  local delay = gcra_tat(key) + cost * interval - now - burst * interval
  if delay > after + EPS then return delay end
  return after
end

BOOK[2] = function(key, cost, interval, burst, delay)
  local tat = gcra_tat(key)
  if now + delay > tat then tat = now + delay end
  local new = tat + cost * interval
  redis.call('SET', key, fmt(new), 'PX', ms(new - now))
  return fmt(now + delay)
end

-- The ticket is the booking's time; what later bookings count on stays
-- taken (as for a token bucket).
REFUND[2] = function(key, cost, interval, burst, ticket)
  local at = tonumber(ticket)
  if not at then return end
  local tat = gcra_tat(key)
  local back = cost * interval
  local later = tat - burst * interval - at
  if later >= 1 then back = back - later end
  if back <= 0 then return end
  tat = tat - back
  if tat > now then
    redis.call('SET', key, fmt(tat), 'PX', ms(tat - now))
  else
    redis.call('DEL', key)
  end
end
