-- Sliding window counter, kind 4. Appended to prelude.lua; called by
-- decide.lua.
-- KEYS[i]: a string "<current window index> <current count> <previous
--   window's count>". A reservation stores the window it acts in, which
--   can be ahead of now's: until that window starts nothing else is
--   admitted (a later request never goes ahead of a booking).
-- ARGV[j], ARGV[j+1] (per limit): limit, window in us.
-- Returns (per call): allowed, limit, remaining, retry_after_us,
--   reset_after_us. EARLIEST, BOOK and REFUND serve reserve and cancel.
local function sw_load(key)
  local v = redis.call('GET', key)
  if not v then return nil, 0, 0, nil end
  local i, c, p = string.match(v, '^(%S+) (%S+) (%S+)$')
  return tonumber(i), tonumber(c), tonumber(p), v
end

-- (current, previous) of a stored state seen from window `index`.
local function sw_counts(stored, c, p, index)
  if stored == index then return c, p end
  if stored == index - 1 then return 0, c end
  return 0, 0
end

-- The wait from `elapsed` into a window until cost fits.
local function sw_wait(current, previous, elapsed, cost, limit, window)
  if previous * (window - elapsed) / window + current + cost
      <= limit + 1e-9 then
    return 0
  end
  if current + cost <= limit then
    return window * (1 - (limit - current - cost) / previous) - elapsed
  end
  return window - elapsed
    + math.max(window * (1 - (limit - cost) / current), 0)
end

ALG[4] = function(key, cost, limit, window, commit)
  local index = math.floor(now / window)
  local elapsed = now - index * window
  local stored, c, p = sw_load(key)
  local current, previous = 0, 0
  if stored then
    if stored > index then
      return 0, limit, 0,
        stored * window - now + sw_wait(c, p, 0, cost, limit, window),
        (stored + 2) * window - now
    end
    current, previous = sw_counts(stored, c, p, index)
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

EARLIEST[4] = function(key, cost, limit, window, after)
  local index, start = window_at(after, window)
  local stored, c, p = sw_load(key)
  if stored and stored > index then
    return stored * window - now + sw_wait(c, p, 0, cost, limit, window)
  end
  local current, previous = sw_counts(stored, c, p, index)
  return after + sw_wait(current, previous, after - start, cost, limit,
    window)
end

BOOK[4] = function(key, cost, limit, window, delay)
  local index = window_at(delay, window)
  local stored, c, p, v = sw_load(key)
  local current, previous = sw_counts(stored, c, p, index)
  local booked = fmt(index) .. ' ' .. (current + cost) .. ' ' .. previous
  redis.call('SET', key, booked, 'PX', ms((index + 2) * window - now))
  return (v or '') .. '/' .. booked
end

REFUND[4] = function(key, cost, limit, window, ticket)
  restore(key, ticket)
end
