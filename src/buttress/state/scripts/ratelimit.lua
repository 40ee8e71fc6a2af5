-- GCRA rate limit: one decision per call, atomically, for every process sharing the bucket.
-- The arithmetic of buttress.policies.ratelimit (read its docstring), on one string key.
--
-- KEYS[1]  the bucket: its theoretical arrival time TAT (seconds since 1700000000)
-- ARGV     now ('' = server TIME), increment (cost * T), tolerance (burst * T), max_wait
-- Returns  the wait in seconds (>= 0: admitted, counted) or -retry_after (< 0: refused, not
--          counted), as a string.  The key expires when the bucket is full again (TAT <= now), so
--          forgetting it changes no decision, and not before a second: keeping it longer changes
--          none either (a TAT in the past counts as now), and a caller's clock (server_time off)
--          that runs slower than Redis's must not see a bucket of a few milliseconds forgotten
--          between two of its calls.

local now = clock(ARGV[1])  -- prelude.lua
local inc, tol, max_wait = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
  tat = now
end
local new_tat = tat + inc
local wait = new_tat - tol - now
if wait > max_wait then
  return string.format('%.17g', -wait)
end
redis.call('SET', KEYS[1], string.format('%.17g', new_tat), 'PX',
  math.max(math.ceil((new_tat - now) * 1000) + 1, 1000))
if wait < 0 then
  wait = 0
end
return string.format('%.17g', wait)
