-- Prepended to every script by buttress.state.redis.link.Script (a script cannot include another).
--
-- clock(arg): the time a script decides at, in seconds since 1700000000 (so a double keeps
-- microseconds): the caller's clock when it passed one, else the server's TIME ('' = server TIME).
local function clock(arg)
  if arg ~= '' then
    return tonumber(arg)
  end
  local t = redis.call('TIME')
  return (tonumber(t[1]) - 1700000000) + tonumber(t[2]) / 1000000
end

