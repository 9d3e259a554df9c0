-- Fixed window, kind 3. Appended to prelude.lua; called by decide.lua.
-- KEYS[i]: a string "<window index> <count>"; windows are aligned to
--   multiples of the window on the server's Unix time.
-- ARGV[j], ARGV[j+1] (per limit): limit, window in us.
-- Returns (per call): allowed, limit, remaining, retry_after_us,
--   reset_after_us.
ALG[3] = function(key, cost, limit, window, commit)
  local index = math.floor(now / window)
  local reset = (index + 1) * window - now
  local v = redis.call('GET', key)
  local count = 0
  if v then
    local space = string.find(v, ' ', 1, true)
    if tonumber(string.sub(v, 1, space - 1)) == index then
      count = tonumber(string.sub(v, space + 1))
    end
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
