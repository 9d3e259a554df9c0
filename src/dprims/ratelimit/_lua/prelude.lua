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
local ALG = {}
local RESERVE = {}
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
