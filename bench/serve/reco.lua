-- wrk script: GET /v1/users/{id}/recommendations?k=K for a random user id
-- taken from a file of ids (one a line), the same for reel and the peer.
--   wrk -t2 -c32 -d10s --latency -s bench/serve/reco.lua http://127.0.0.1:8090 -- users.txt [k]
-- users.txt: /usr/bin/python3 bench/serve/reelfiles.py ids DIR users > users.txt
-- Non-2xx answers are counted and printed at the end (per thread).
local ids, k, errors = {}, "10", 0

function init(args)
  local path = args[1] or "users.txt"
  k = args[2] or k
  local f = assert(io.open(path, "r"), "cannot open " .. path)
  for line in f:lines() do
    if #line > 0 then ids[#ids + 1] = line end
  end
  f:close()
  assert(#ids > 0, path .. " holds no id")
  -- one seed per thread, so threads do not replay the same sequence
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000))
end

local function enc(s)  -- percent-encode an id for the path
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

function request()
  local id = ids[math.random(#ids)]
  return wrk.format("GET", "/v1/users/" .. enc(id) .. "/recommendations?k=" .. k)
end

function response(status, headers, body)
  if status ~= 200 then errors = errors + 1 end
end

function done(summary, latency, requests)
  local p = latency
  io.write(string.format("reco.lua: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms, non-2xx %d\n",
    p:percentile(50) / 1000, p:percentile(90) / 1000, p:percentile(99) / 1000,
    p.max / 1000, summary.errors.status))
end
