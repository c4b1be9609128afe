-- GET wrk's URL with "Authorization: Bearer <key>" (status polls and content downloads).
package.path = (os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/?.lua;" .. package.path
local common = require("common")

local keys, count, fixed

function init(args)
  keys = common.keys()
  count = 0
  if #keys == 1 then
    fixed = wrk.format("GET", wrk.path, { Authorization = "Bearer " .. keys[1] })
  end
end

function request()
  if fixed then return fixed end
  count = count + 1
  return wrk.format("GET", wrk.path, { Authorization = "Bearer " .. keys[count % #keys + 1] })
end

common.install()
