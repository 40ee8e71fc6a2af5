-- Retry budgets shared by every process: Finagle's ratio budget and gRPC's token bucket.
--
-- Ratio budget (op 'ratio'): the rules of buttress.policies.budget.RetryBudget on a hash whose
-- time slices live in a ring of R = slices + 2 slots; slot j holds grid slice k<j> (k = floor(t /
-- slice_len)) with its deposits d<j>, withdrawals w<j> and the time of its first event s<j>.
--   KEYS[1]  the hash
--   ARGV     'ratio', now ('' = server TIME), slice_len, slices, ratio, reserve, ttl (s, for
--            expiry), deposits, age of the oldest deposit (s), withdraw (1: ask for a retry; 0: only
--            deposit)
--   Deposits are filed at now - age (a slice's start is the earliest event in it), so no deposit
--   is counted for longer than it really stays in the window.  A retry is granted when
--   withdrawals + 1 <= ratio * deposits + reserve over [now - ttl, now]: deposits of slices that
--   began inside it, withdrawals of every slice that reaches into it.
--   Returns {granted (1/0), balance as a string}.
--
-- Token bucket (op 'tokens'): gRPC retryThrottling in integer thousandths.
--   KEYS[1]  the hash (field m: tokens x 1000, absent = full)
--   ARGV     'tokens', max (x1000), ratio (x1000), successes, failures, ttl (s)
--   Applies the successes, then the failures (the order that leaves the fewest tokens), and
--   returns {allowed (tokens > max / 2: 1/0), tokens x 1000}.

local H = KEYS[1]
local op = ARGV[1]

if op == 'tokens' then
  local max, ratio = tonumber(ARGV[2]), tonumber(ARGV[3])
  local succ, fail, ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
  local m = tonumber(redis.call('HGET', H, 'm')) or max
  m = math.min(max, m + succ * ratio)
  m = math.max(0, m - fail * 1000)
  redis.call('HSET', H, 'm', m)
  redis.call('EXPIRE', H, ttl)
  local ok = 0
  if m * 2 > max then
    ok = 1
  end
  return {ok, m}
end

if op ~= 'ratio' then
  return redis.error_reply('ERR buttress budget: unknown op ' .. tostring(op))
end

local now = clock(ARGV[2])  -- prelude.lua
local len, slices, ratio = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local reserve, ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
local deposits, age, withdraw = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local window = slices * len
local R = slices + 2

local names = {}
for j = 0, R - 1 do
  names[#names + 1] = 'k' .. j
  names[#names + 1] = 'd' .. j
  names[#names + 1] = 'w' .. j
  names[#names + 1] = 's' .. j
end
local raw = redis.call('HMGET', H, unpack(names))
local K, D, W, S = {}, {}, {}, {}
for j = 0, R - 1 do
  local b = 4 * j
  K[j] = tonumber(raw[b + 1])
  D[j] = tonumber(raw[b + 2]) or 0
  W[j] = tonumber(raw[b + 3]) or 0
  S[j] = tonumber(raw[b + 4])
end

-- The slot of grid slice k, emptied first if it held an older slice.
local function slot(k)
  local j = k % R
  if K[j] ~= k then
    K[j], D[j], W[j], S[j] = k, 0, 0, nil
    redis.call('HDEL', H, 'd' .. j, 'w' .. j, 's' .. j)
    redis.call('HSET', H, 'k' .. j, k)
  end
  return j
end

local start = now - window
if deposits > 0 and now - age >= start then  -- older deposits would not count anyway
  local at = now - age
  local j = slot(math.floor(at / len))
  D[j] = D[j] + deposits
  if S[j] == nil or at < S[j] then
    S[j] = at
  end
  redis.call('HSET', H, 'd' .. j, D[j], 's' .. j, string.format('%.17g', S[j]))
end

local dep, wd = 0, 0
for j = 0, R - 1 do
  local k = K[j]
  if k ~= nil and (k + 1) * len > start and k * len <= now then
    wd = wd + W[j]
    if S[j] ~= nil and S[j] >= start then
      dep = dep + D[j]
    end
  end
end

local granted = 0
local balance = ratio * dep + reserve - wd
if withdraw == 1 and wd + 1 <= ratio * dep + reserve + 1e-9 then
  local j = slot(math.floor(now / len))
  W[j] = W[j] + 1
  if S[j] == nil then
    S[j] = now
    redis.call('HSET', H, 's' .. j, string.format('%.17g', now))
  end
  redis.call('HSET', H, 'w' .. j, W[j])
  granted = 1
  balance = balance - 1
end
redis.call('EXPIRE', H, ttl)
return {granted, string.format('%.17g', math.max(0, balance))}
