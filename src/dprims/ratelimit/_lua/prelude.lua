-- Shared head of the rate-limit script: clock, formatting, helpers.
-- KEYS[1..n]: see decide.lua (the driver appended after the algorithms).
-- ARGV[1..n]: see decide.lua.
-- Returns: see decide.lua.
-- Times are integer microseconds on the Redis server's clock (TIME), so
-- clients with skewed clocks still agree. Numbers written to Redis go
-- through fmt(): redis.call would otherwise print them with 14 digits,
-- which loses microseconds on Unix times.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local EPS = 1e-6
-- Per algorithm kind: ALG decides; EARLIEST, BOOK and REFUND serve
-- reservations (see decide.lua).
local ALG = {}
local EARLIEST = {}
local BOOK = {}
local REFUND = {}

local function fmt(x)
  return string.format('%.17g', x)
end

local function ms(us)
  -- A TTL in whole milliseconds, never below 1, with 1 s of slack so a key
  -- never expires while it still matters.
  return math.max(1, math.ceil(us / 1000)) + 1000
end

local function floor0(x)
  if x <= 0 then return 0 end
  return math.floor(x + 1e-9)
end

-- The index of the window holding now + delay, and its start as a delay.
-- Membership compares delay with the starts k * window - now, the very
-- expressions the delays handed out are made of: an index recomputed from
-- now + delay alone can put a boundary into the window before it.
local function window_at(delay, window)
  local index
  if delay == 0 then
    index = math.floor(now / window)
    return index, index * window - now
  end
  index = math.floor((now + delay) / window)
  local start = index * window - now
  if start > delay then
    index = index - 1
    return index, index * window - now
  end
  local following = (index + 1) * window - now
  if following <= delay then return index + 1, following end
  return index, start
end

-- Cancels a window booking: the ticket is "<value before>/<value after>";
-- the value before comes back only if the key still holds the value the
-- booking left (nothing was counted since), else nothing is given back.
local function restore(key, ticket)
  local before, after = string.match(ticket, '^([^/]*)/(.+)$')
  if not after or redis.call('GET', key) ~= after then return end
  if before == '' then
    redis.call('DEL', key)
  else
    redis.call('SET', key, before, 'KEEPTTL')
  end
end
