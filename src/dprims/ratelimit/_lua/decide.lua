-- Driver of the rate-limit script; appended after prelude.lua and the
-- algorithm files, it decides one or more groups of limits in one call.
-- KEYS[i]: for each group, one key per limit, then the ban key if the group
--   has a penalty. All keys of a group share one {hash tag}.
-- ARGV[1]: mode: "a" acquire, "p" peek, "r" reset, "v" reserve,
--   "f" refund (reserve and refund take one group; refund's last ARGV is
--   the ticket its reserve returned).
-- ARGV[2]: number of groups.
-- Then per group three arguments: cost, max_delay_us (-1: none), and the
--   configuration as one comma-separated string (fewer arguments cost less
--   to send): number of limits, ban threshold (0: no penalty), ban window
--   us, ban duration us, then per limit: kind (1 token bucket, 2 GCRA,
--   3 fixed window, 4 sliding window, 5 sliding log) and its two
--   parameters (see each file).
-- Returns: a flat array, per group: allowed (0/1), limit, remaining,
--   retry_after_us, reset_after_us (integers, times rounded up); for
--   reserve: ok (0/1), delay_us, ticket (one part per limit, joined with
--   ";"); for reset and refund: nothing per group.
-- A reservation books every limit at one common time, the earliest at
-- which all of them admit the cost (EARLIEST[kind](key, cost, p1, p2,
-- after) gives one limit's earliest delay >= after; BOOK records it and
-- returns the part of the ticket that REFUND takes back).
-- A group is all-or-nothing: every limit is checked first, and the costs
-- are taken only if all of them allow.
local mode = ARGV[1]
-- The common case, one acquire of one limit without a penalty, skips the
-- general loop below: in an interpreted script every table and closure
-- costs server time.
if mode == 'a' and ARGV[2] == '1' then
  local kind, first, second =
    string.match(ARGV[5], '^1,0,0,0,(%d),([^,]+),([^,]+)$')
  if kind then
    local allowed, limit, remaining, retry, reset = ALG[tonumber(kind)](
      KEYS[1], tonumber(ARGV[3]), tonumber(first), tonumber(second), true)
    return {allowed, limit, remaining, math.ceil(retry), math.ceil(reset)}
  end
end
local groups = tonumber(ARGV[2])
local out = {}
local a = 3
local k = 1

local function push(allowed, limit, remaining, retry, reset)
  out[#out + 1] = allowed
  out[#out + 1] = limit
  out[#out + 1] = remaining
  out[#out + 1] = math.ceil(retry)
  out[#out + 1] = math.ceil(reset)
end

local function banned_for(ban_key)
  if not ban_key then return nil end
  local until_us = redis.call('HGET', ban_key, 'u')
  if until_us and tonumber(until_us) > now then
    return tonumber(until_us) - now
  end
  return nil
end

local function record_denial(ban_key, threshold, window, ban)
  local v = redis.call('HMGET', ban_key, 'f', 'c', 'u')
  local first, count, until_us = tonumber(v[1]), tonumber(v[2]), v[3] or 0
  if not first or now - first >= window then
    first, count = now, 0
  end
  count = count + 1
  if count >= threshold then
    first, count, until_us = now, 0, now + ban
  end
  redis.call('HSET', ban_key, 'f', fmt(first), 'c', count, 'u', fmt(until_us))
  redis.call('PEXPIRE', ban_key,
    ms(math.max(window, tonumber(until_us) - now)))
  return count == 0
end

-- The earliest delay at which every limit admits cost, and whether it
-- settled: each limit's earliest time is monotone, so moving to the latest
-- of them and asking again settles within a few rounds; if the limits
-- still move it after 32, nothing is booked.
local function settle(limits, cost)
  local delay = 0
  for _ = 1, 32 do
    local latest = delay
    for _, l in ipairs(limits) do
      local at = EARLIEST[l[2]](l[1], cost, l[3], l[4], delay)
      if at > latest then latest = at end
    end
    if #limits == 1 or latest == delay then return latest, true end
    delay = latest
  end
  return delay, false
end

local function decide(limits, cost)
  if #limits == 1 then
    local l = limits[1]
    return ALG[l[2]](l[1], cost, l[3], l[4], mode == 'a')
  end
  local results = {}
  local all = true
  for i, l in ipairs(limits) do
    results[i] = {ALG[l[2]](l[1], cost, l[3], l[4], false)}
    if results[i][1] == 0 then all = false end
  end
  if all and mode == 'a' and cost > 0 then
    for _, l in ipairs(limits) do ALG[l[2]](l[1], cost, l[3], l[4], true) end
  end
  -- Combine: tightest remaining, longest wait among refusals, longest reset.
  local best = results[1]
  local retry, reset = 0, 0
  for _, r in ipairs(results) do
    if r[3] < best[3] then best = r end
    if r[1] == 0 and r[4] > retry then retry = r[4] end
    if r[5] > reset then reset = r[5] end
  end
  if all then return 1, best[2], best[3], 0, reset end
  return 0, best[2], best[3], retry, reset
end

for _ = 1, groups do
  local cost = tonumber(ARGV[a])
  local max_delay = tonumber(ARGV[a + 1])
  local spec = {}
  for field in string.gmatch(ARGV[a + 2], '[^,]+') do
    spec[#spec + 1] = tonumber(field)
  end
  a = a + 3
  local n, threshold, ban_window, ban = spec[1], spec[2], spec[3], spec[4]
  local limits = {}
  for i = 1, n do
    limits[i] = {KEYS[k], spec[2 + 3 * i], spec[3 + 3 * i], spec[4 + 3 * i]}
    k = k + 1
  end
  local ban_key = nil
  if threshold > 0 then
    ban_key = KEYS[k]
    k = k + 1
  end
  if mode == 'r' then
    for _, l in ipairs(limits) do redis.call('DEL', l[1]) end
    if ban_key then redis.call('DEL', ban_key) end
  elseif mode == 'v' then
    local wait = banned_for(ban_key)
    local delay, settled = wait, false
    if not wait then delay, settled = settle(limits, cost) end
    if settled and (max_delay < 0 or delay <= max_delay) then
      local tickets = {}
      for i, l in ipairs(limits) do
        tickets[i] = BOOK[l[2]](l[1], cost, l[3], l[4], delay)
      end
      out[#out + 1] = 1
      out[#out + 1] = math.ceil(delay)
      out[#out + 1] = table.concat(tickets, ';')
    else
      out[#out + 1] = 0
      out[#out + 1] = math.ceil(delay)
      out[#out + 1] = ''
    end
  elseif mode == 'f' then
    local i = 1
    for ticket in string.gmatch(ARGV[#ARGV] .. ';', '([^;]*);') do
      local l = limits[i]
      if not l then break end
      REFUND[l[2]](l[1], cost, l[3], l[4], ticket)
      i = i + 1
    end
  else
    local capacity = limits[1][4]
    if limits[1][2] >= 3 then capacity = limits[1][3] end
    local wait = banned_for(ban_key)
    if wait then
      push(0, capacity, 0, wait, wait)
    elseif mode == 'p' then
      local allowed, limit, remaining, retry, reset = decide(limits, 0)
      if remaining >= 1 then
        push(1, limit, remaining, 0, reset)
      else
        local _, _, _, retry1 = decide(limits, 1)
        push(0, limit, remaining, retry1, reset)
      end
    else
      local allowed, limit, remaining, retry, reset = decide(limits, cost)
      if allowed == 0 and ban_key
          and record_denial(ban_key, threshold, ban_window, ban) then
        push(0, limit, 0, ban, ban)
      else
        push(allowed, limit, remaining, retry, reset)
      end
    end
  end
end
return out
