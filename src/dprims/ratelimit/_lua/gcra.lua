-- GCRA, kind 2. Appended to prelude.lua; called by decide.lua.
-- KEYS[i]: a string holding the theoretical arrival time (TAT) in us.
-- ARGV[j], ARGV[j+1] (per limit): emission interval in us, burst.
-- Returns (per call): allowed, limit, remaining, retry_after_us,
--   reset_after_us; reserve returns the delay in us.
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

RESERVE[2] = function(key, cost, interval, burst, max_delay)
  local new = gcra_tat(key) + cost * interval
  local delay = new - now - burst * interval
  if delay < EPS then delay = 0 end
  if max_delay >= 0 and delay > max_delay then return 0, delay end
  redis.call('SET', key, fmt(new), 'PX', ms(new - now))
  return 1, delay
end

REFUND[2] = function(key, cost, interval, burst)
  local tat = gcra_tat(key) - cost * interval
  if tat > now then
    redis.call('SET', key, fmt(tat), 'PX', ms(tat - now))
  else
    redis.call('DEL', key)
  end
end
