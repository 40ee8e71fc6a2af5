-- Circuit breaker: one decision per call, atomically, for every process sharing the breaker.
-- The same rules as buttress.policies.breaker.BreakerMachine (read its docstring), on a hash.
--
-- KEYS[1]  hash: st gen ou hd pl pc pf ps co al n f s i k ex cfg, and time buckets c<j> x<j> y<j>
-- KEYS[2]  string: the count window's ring, one byte per call ('1'..'4'; anything else: empty)
--
-- Expiry: both keys live at least ttl seconds after the last call.  Setting it costs a command a
-- key, so it is set again only when the last setting ('ex') is REFRESH old, for ttl + REFRESH
-- (and on the ring when a write finds the window empty: the write may have created it).
-- ARGV     op, now ('' = server TIME), failure threshold, slow threshold, minimum calls,
--          window type ('c' or 't'), window size, buckets, probes, half-open timeout,
--          break durations (comma separated, for 1, 2, ... consecutive opens), ttl (s),
--          deferred outcomes ('gen:code,gen:code...' or ''), op args
--
-- Deferred outcomes: results of calls that are not probes, recorded with the process's next
-- decision instead of a round trip of their own (so a call on the success path costs one round
-- trip); applied, in order, before the op, with the same rules as a record.
-- Times are seconds since 1700000000 (so a double keeps microseconds); floats go back as strings.

local H, RING = KEYS[1], KEYS[2]
local op = ARGV[1]
local now = clock(ARGV[2])  -- prelude.lua
local FTHR, STHR, MINC = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local WT, WSIZE, NB = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local PROBES, HOT, BREAKS, TTL = tonumber(ARGV[9]), tonumber(ARGV[10]), ARGV[11], tonumber(ARGV[12])
local CFG = WT .. ':' .. ARGV[7] .. ':' .. ARGV[8]
local WIDTH = WSIZE / NB

local REFRESH = math.ceil(TTL / 8)

local CLOSED, OPEN, HALF, DISABLED, FORCED, METRICS = 0, 1, 2, 3, 4, 5
local CALL = {[0] = 0, 1, 1, 1, 1}
local FAIL = {[0] = 0, 0, 1, 0, 1}
local SLOW = {[0] = 0, 0, 0, 1, 1}

local function fmt(x)
  return string.format('%.17g', x)
end

-- The code a byte of the ring held ('1'..'4' are 1..4); 0 for an empty slot (any other byte).
local function slot_code(byte)
  local c = byte - 48
  if c < 1 or c > 4 then
    return 0
  end
  return c
end

-- Set by a write to an empty count window: the ring may have just been created, without expiry.
local ring_new = false

-- Write the hash's changed fields (a flat list: name, value, ...) and, when the keys' expiry was
-- last set REFRESH ago or more (at ex), set it again (the ring's also when it may be new).
local function write_back(fields, ex)
  local refresh = now - ex >= REFRESH or now < ex
  if refresh then
    fields[#fields + 1] = 'ex'
    fields[#fields + 1] = fmt(now)
  end
  if #fields > 0 then
    redis.call('HSET', H, unpack(fields))
  end
  if refresh then
    redis.call('EXPIRE', H, TTL + REFRESH)
  end
  if WT == 'c' and (refresh or ring_new) then
    redis.call('EXPIRE', RING, TTL + REFRESH)
  end
end

-- The hash's fields, read once for both paths below (raw[ST] ... raw[CFG_AT]).
local NAMES = {'st', 'gen', 'ou', 'hd', 'pl', 'pc', 'pf', 'ps', 'co', 'al', 'n', 'f', 's', 'i', 'k',
               'ex', 'cfg'}
local ST, GEN, N, F, S, I, K, EX, CFG_AT = 1, 2, 11, 12, 13, 14, 15, 16, 17
local raw = redis.call('HMGET', H, unpack(NAMES))

-- The success path, specialised: an acquire of a closed breaker carrying only successes (what a
-- process on the success path sends).  In a closed state a success can open the breaker only by
-- filling minimum_calls while a rate is over its threshold.  When that cannot happen, the outcomes
-- are folded into the window and the totals as add() below does, and the call is permitted:
--   count window: the successes cannot fill minimum_calls, or the window is full and under both
--     thresholds (replacing slots with successes lowers the rates or keeps them);
--   time window, still in the bucket of the last outcome (no bucket to retire): the rates at the
--     first total that reaches minimum_calls, if any, are under both thresholds (more successes
--     only lower them).
-- Otherwise nothing is written here and the general path below decides.
-- tests/state/test_breaker_redis.py holds both paths to the in-memory machine.
if op == 'acquire' and (tonumber(raw[ST]) or 0) == CLOSED and raw[CFG_AT] == CFG then
  local gen, n, f, s = tonumber(raw[GEN]) or 0, tonumber(raw[N]) or 0, tonumber(raw[F]) or 0,
    tonumber(raw[S]) or 0
  local k, only_successes = 0, true
  for g, c in string.gmatch(ARGV[13], '(%-?%d+):(%d)') do
    if c ~= '1' then
      only_successes = false
      break
    end
    if tonumber(g) == gen then  -- a result of an earlier generation changes nothing
      k = k + 1
    end
  end
  local safe, bucket = false, nil
  if only_successes and WT == 'c' then
    safe = n + k < MINC or (n == WSIZE and
      not (n >= MINC and (f / n >= FTHR or s / n >= STHR)))
  elseif only_successes then
    bucket = math.floor(now / WIDTH)
    local m = math.max(n + 1, MINC)
    safe = bucket == tonumber(raw[K]) and (m > n + k or (f / m < FTHR and s / m < STHR))
  end
  if safe then
    local fields = {}
    if k > 0 and WT == 'c' then
      local j = tonumber(raw[I]) or 0
      local ops = {}
      for _ = 1, k do
        ops[#ops + 1] = 'SET'
        ops[#ops + 1] = 'u8'
        ops[#ops + 1] = '#' .. j
        ops[#ops + 1] = 48 + 1  -- a success
        j = (j + 1) % WSIZE
      end
      ring_new = n == 0
      for _, byte in ipairs(redis.call('BITFIELD', RING, unpack(ops))) do
        local old = slot_code(byte)
        n, f, s = n + 1 - CALL[old], f - FAIL[old], s - SLOW[old]
      end
      fields = {'n', n, 'f', f, 's', s, 'i', j}
    elseif k > 0 then
      redis.call('HINCRBY', H, 'c' .. (bucket % NB), k)
      fields = {'n', n + k}
    end
    write_back(fields, tonumber(raw[EX]) or -1e18)
    return {1, gen, 0}
  end
end

local d, dirty = {}, {}
for j = 1, 16 do
  d[NAMES[j]] = tonumber(raw[j]) or 0
end
if raw[K] == false then
  d.k = -1e18
end
if raw[EX] == false then
  d.ex = -1e18
end

local function set(name, value)
  d[name] = value
  dirty[name] = true
end

local function clear_buckets()
  local del = {}
  for j = 0, NB - 1 do
    del[#del + 1] = 'c' .. j
    del[#del + 1] = 'x' .. j
    del[#del + 1] = 'y' .. j
  end
  redis.call('HDEL', H, unpack(del))
end

local function reset_window()
  if WT == 'c' then
    redis.call('DEL', RING)
    set('i', 0)
  else
    clear_buckets()
  end
  set('n', 0)
  set('f', 0)
  set('s', 0)
end

-- A breaker re-declared with another window shape starts with an empty window.
if raw[CFG_AT] ~= CFG then
  if raw[CFG_AT] ~= false then
    reset_window()
    set('k', -1e18)
  end
  redis.call('HSET', H, 'cfg', CFG)
end

local function advance(k)
  local steps = k - d.k
  if steps >= NB then
    clear_buckets()
    set('n', 0)
    set('f', 0)
    set('s', 0)
  else
    local j = d.k % NB
    for _ = 1, steps do
      j = (j + 1) % NB
      local b = redis.call('HMGET', H, 'c' .. j, 'x' .. j, 'y' .. j)
      set('n', d.n - (tonumber(b[1]) or 0))
      set('f', d.f - (tonumber(b[2]) or 0))
      set('s', d.s - (tonumber(b[3]) or 0))
      redis.call('HDEL', H, 'c' .. j, 'x' .. j, 'y' .. j)
    end
  end
  set('k', k)
end

local function totals()
  if WT == 't' then
    local k = math.floor(now / WIDTH)
    if k > d.k then
      advance(k)
    end
  end
  return d.n, d.f, d.s
end

local function add(code)
  if WT == 'c' then
    local j = d.i
    -- One command reads the slot's old byte and writes the new one ('0' + code).
    local old = slot_code(redis.call('BITFIELD', RING, 'SET', 'u8', '#' .. j, 48 + code)[1])
    if d.n == 0 then
      ring_new = true
    end
    set('i', (j + 1) % WSIZE)
    -- Only the totals that change are written back (a success replacing a success: only 'i').
    if CALL[code] ~= CALL[old] then
      set('n', d.n + CALL[code] - CALL[old])
    end
    if FAIL[code] ~= FAIL[old] then
      set('f', d.f + FAIL[code] - FAIL[old])
    end
    if SLOW[code] ~= SLOW[old] then
      set('s', d.s + SLOW[code] - SLOW[old])
    end
  else
    local k = math.floor(now / WIDTH)
    if k > d.k then
      advance(k)
    end
    local j = k % NB
    redis.call('HINCRBY', H, 'c' .. j, 1)
    set('n', d.n + 1)
    if FAIL[code] == 1 then
      redis.call('HINCRBY', H, 'x' .. j, 1)
      set('f', d.f + 1)
    end
    if SLOW[code] == 1 then
      redis.call('HINCRBY', H, 'y' .. j, 1)
      set('s', d.s + 1)
    end
  end
end

local function break_for(n)
  local list = {}
  for x in string.gmatch(BREAKS, '[^,]+') do
    list[#list + 1] = tonumber(x)
  end
  if n > #list then
    n = #list
  end
  return list[n]
end

local AUTO = {
  threshold = {[CLOSED] = OPEN},
  break_elapsed = {[OPEN] = HALF},
  probes_passed = {[HALF] = CLOSED},
  probes_failed = {[HALF] = OPEN},
  probe_timeout = {[HALF] = OPEN},
}
local MANUAL = {reset = CLOSED, disable = DISABLED, force_open = FORCED, metrics_only = METRICS}

-- The one place where the state changes; nil when the table has no such transition.
local function move(trig)
  local frm = d.st
  local to = MANUAL[trig]
  if to == nil then
    local a = AUTO[trig]
    to = a and a[frm]
  elseif to == frm and trig ~= 'reset' then
    to = nil
  end
  if to == nil then
    return nil
  end
  local calls, fails, slow = totals()
  if frm == HALF then
    calls, fails, slow = d.pc, d.pf, d.ps
  end
  local brk = ''
  if to == OPEN then
    set('co', d.co + 1)
    local b = break_for(d.co)
    set('ou', now + b)
    brk = fmt(b)
  elseif to == HALF then
    set('pl', PROBES)
    set('pc', 0)
    set('pf', 0)
    set('ps', 0)
    set('hd', now + HOT)
  elseif to == CLOSED then
    reset_window()
    set('co', 0)
  elseif to == METRICS then
    set('al', 0)
  end
  set('st', to)
  set('gen', d.gen + 1)
  return {'t', frm, to, trig, calls, fails, slow, brk}
end

local function above(calls, fails, slow)
  return calls >= MINC and (fails / calls >= FTHR or slow / calls >= STHR)
end

local function acquire()
  local s = d.st
  if s == CLOSED or s == METRICS or s == DISABLED then
    return {1, d.gen, 0}
  end
  if s == FORCED then
    return {0, s, ''}
  end
  local notes = {}
  if s == OPEN then
    if now < d.ou then
      return {0, s, fmt(d.ou - now)}
    end
    notes[1] = move('break_elapsed')
  end
  if now >= d.hd then
    local t = move('probe_timeout')
    local r = {0, OPEN, fmt(d.ou - now)}
    for _, x in ipairs(notes) do
      r[#r + 1] = x
    end
    r[#r + 1] = t
    return r
  end
  local r
  if d.pl > 0 then
    set('pl', d.pl - 1)
    r = {1, d.gen, 1}
  else
    r = {0, HALF, ''}
  end
  for _, x in ipairs(notes) do
    r[#r + 1] = x
  end
  return r
end

local function record(gen, probe, code)
  if gen ~= d.gen then
    return {}
  end
  local s = d.st
  if s == CLOSED or s == METRICS then
    if code == 0 then
      return {}
    end
    add(code)
    local calls, fails, slow = totals()
    if not above(calls, fails, slow) then
      if s == METRICS then
        set('al', 0)
      end
      return {}
    end
    if s == CLOSED then
      return {move('threshold')}
    end
    if d.al == 1 then
      return {}
    end
    set('al', 1)
    return {{'a', calls, fails, slow}}
  end
  if s == HALF and probe == 1 then
    if code == 0 then
      set('pl', d.pl + 1)
      return {}
    end
    set('pc', d.pc + 1)
    if FAIL[code] == 1 then
      set('pf', d.pf + 1)
    end
    if SLOW[code] == 1 then
      set('ps', d.ps + 1)
    end
    set('hd', now + HOT)
    if d.pc < PROBES then
      return {}
    end
    local bad = d.pf / d.pc >= FTHR or d.ps / d.pc >= STHR
    return {move(bad and 'probes_failed' or 'probes_passed')}
  end
  return {}
end

local early = {}  -- the notes (transitions, alarms) the deferred outcomes caused
if ARGV[13] ~= '' then
  for g, c in string.gmatch(ARGV[13], '(%-?%d+):(%d)') do
    for _, n in ipairs(record(tonumber(g), 0, tonumber(c))) do
      early[#early + 1] = n
    end
  end
end

local result
if op == 'acquire' then
  result = acquire()
  if #early > 0 then  -- before the acquire's own notes: they happened first
    local r = {result[1], result[2], result[3]}
    for _, n in ipairs(early) do
      r[#r + 1] = n
    end
    for j = 4, #result do
      r[#r + 1] = result[j]
    end
    result = r
  end
elseif op == 'record' then
  result = early
  for _, n in ipairs(record(tonumber(ARGV[14]), tonumber(ARGV[15]), tonumber(ARGV[16]))) do
    result[#result + 1] = n
  end
elseif op == 'move' or op == 'manual' then
  local t = move(ARGV[14])
  if t == nil then
    result = {op == 'move' and 'illegal' or 'same', d.st}
  else
    result = {'ok', t}
  end
elseif op == 'snapshot' then
  local calls, fails, slow = totals()
  local ra = ''
  if d.st == OPEN then
    ra = fmt(math.max(0, d.ou - now))
  end
  local avail = 0
  if d.st == HALF then
    avail = d.pl
  end
  result = {d.st, calls, fails, slow, ra, avail, d.pc, d.pf, d.ps, d.co, d.gen}
else
  return redis.error_reply('ERR buttress breaker: unknown op ' .. tostring(op))
end

local out = {}
for name, _ in pairs(dirty) do
  out[#out + 1] = name
  out[#out + 1] = fmt(d[name])
end
write_back(out, d.ex)
return result
