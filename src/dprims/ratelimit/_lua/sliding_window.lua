-- Sliding window counter, kind 4. Appended to prelude.lua; called by
-- decide.lua.
-- KEYS[i]: a string "<current window index> <current count> <previous
--   window's count>".
-- ARGV[j], ARGV[j+1] (per limit): limit, window in us.
-- Returns (per call): allowed, limit, remaining, retry_after_us,
--   reset_after_us.
ALG[4] = function(key, cost, limit, window, commit)
  local index = math.floor(now / window)
  local elapsed = now - index * window
  local v = redis.call('GET', key)
  local current, previous = 0, 0
  if v then
    local i, c, p = string.match(v, '^(%S+) (%S+) (%S+)$')
    local stored = tonumber(i)
    if stored == index then
      current, previous = tonumber(c), tonumber(p)
    elseif stored == index - 1 then
      previous = tonumber(c)
    end
  end
  local estimate = previous * (window - elapsed) / window + current
  if estimate + cost <= limit + 1e-9 then
    current = current + cost
    if commit and cost > 0 then
      redis.call('SET', key, fmt(index) .. ' ' .. current .. ' ' .. previous,
        'PX', ms(2 * window - elapsed))
    end
    local reset = 0
    if current > 0 then
      reset = 2 * window - elapsed
    elseif previous > 0 then
      reset = window - elapsed
    end
    return 1, limit, floor0(limit - estimate - cost), 0, reset
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
  return 0, limit, floor0(limit - estimate), retry, reset
end
