-- wrk script: POST /v1/events with JSON arrays of BATCH watch events for
-- random users and videos from two id files; the same for reel and the peer.
--   wrk -t2 -c8 -d10s --latency -s bench/serve/events.lua http://127.0.0.1:8090 -- users.txt videos.txt [batch]
-- Events/s = requests/s x batch. Bodies are generated once per thread (a
-- pool of 64, cycled) so that wrk's own cost stays out of the measure; the
-- events carry no "ts" (the server stamps the time of arrival).
local pool, at, batch = {}, 0, 100

local function load(path)
  local t = {}
  local f = assert(io.open(path, "r"), "cannot open " .. path)
  for line in f:lines() do
    if #line > 0 then t[#t + 1] = line end
  end
  f:close()
  assert(#t > 0, path .. " holds no id")
  return t
end

local function jstr(s)  -- JSON string (ids are plain, but be safe)
  return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

function init(args)
  local users, videos = load(args[1] or "users.txt"), load(args[2] or "videos.txt")
  batch = tonumber(args[3] or batch)
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000))
  for i = 1, 64 do
    local ev = {}
    for j = 1, batch do
      ev[j] = string.format('{"user":%s,"video":%s,"type":"watch","watch_s":%d}',
        jstr(users[math.random(#users)]), jstr(videos[math.random(#videos)]), math.random(5, 600))
    end
    pool[i] = "[" .. table.concat(ev, ",") .. "]"
  end
end

function request()
  at = at % #pool + 1
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json"}, pool[at])
end

function done(summary, latency, requests)
  -- (done() runs in wrk's main Lua state, which never saw the batch size)
  io.write(string.format("events.lua: %d requests (x batch = events); p50 %.2f ms, p99 %.2f ms, non-2xx %d\n",
    summary.requests, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status))
end
