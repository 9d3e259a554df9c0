-- Fixed window, kind 3. Appended to prelude.lua; called by decide.lua.
-- KEYS[i]: a string "<window index> <count>"; windows are aligned to
--   multiples of the window on the server's Unix time. A reservation
--   stores the index of the window it acts in, which can be ahead of now's:
--   until that window starts nothing else is admitted (a later request
--   never goes ahead of a booking).
-- ARGV[j], ARGV[j+1] (per limit): limit, window in us.
-- Returns (per call): allowed, limit, remaining, retry_after_us,
--   reset_after_us. EARLIEST, BOOK and REFUND serve reserve and cancel.
local function fw_load(key)
  local v = redis.call('GET', key)
  if not v then return nil, 0, nil end
  local space = string.find(v, ' ', 1, true)
  return tonumber(string.sub(v, 1, space - 1)),
    tonumber(string.sub(v, space + 1)), v
end

-- When cost fits at or after the start of the booked window `stored`.
local function fw_pending(stored, count, cost, limit, window)
  if count + cost <= limit then return stored * window - now end
  return (stored + 1) * window - now
end

ALG[3] = function(key, cost, limit, window, commit)
  local index = math.floor(now / window)
  local reset = (index + 1) * window - now
  local stored, count = fw_load(key)
  if stored ~= index then
    if stored and stored > index then
      return 0, limit, 0, fw_pending(stored, count, cost, limit, window),
        (stored + 1) * window - now
    end
    count = 0
  end
  if count + cost <= limit then
    count = count + cost
    if commit and cost > 0 then
      redis.call('SET', key, fmt(index) .. ' ' .. count, 'PX', ms(reset))
    end
    if count == 0 then reset = 0 end
    return 1, limit, limit - count, 0, reset
  end
  return 0, limit, floor0(limit - count), reset, reset
end

EARLIEST[3] = function(key, cost, limit, window, after)
  local stored, count = fw_load(key)
  if not stored then return after end
  local index = window_at(after, window)
  if stored < index then return after end
  if stored == index then
    if count + cost <= limit then return after end
    return (index + 1) * window - now
  end
  return fw_pending(stored, count, cost, limit, window)
end

BOOK[3] = function(key, cost, limit, window, delay)
  local index = window_at(delay, window)
  local stored, count, v = fw_load(key)
  if stored ~= index then count = 0 end
  local booked = fmt(index) .. ' ' .. (count + cost)
  redis.call('SET', key, booked, 'PX', ms((index + 1) * window - now))
  return (v or '') .. '/' .. booked
end

REFUND[3] = function(key, cost, limit, window, ticket)
  restore(key, ticket)
end
