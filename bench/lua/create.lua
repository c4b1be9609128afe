-- POST a Seedance create as JSON to wrk's URL.
--
-- BENCH_PROMPT=unique (default): every request a new prompt built from BENCH_RUN_ID, the wrk
-- thread and a counter, so no two requests of any run are alike. BENCH_PROMPT=fixed: the same
-- seeded body every time (what a response cache could answer). Keys rotate per request when
-- BENCH_KEYS_FILE lists several.
package.path = (os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/?.lua;" .. package.path
local common = require("common")

local MODEL = os.getenv("BENCH_MODEL") or "doubao-seedance-2-0-fast-260128"
local SCENE = "a paper boat drifting down a rainy street, cinematic, 35mm"

local keys, count, run_id, unique, fixed_body

local function body(prompt)
  return '{"model":"' .. MODEL .. '","prompt":"' .. prompt .. '",'
    .. '"ratio":"16:9","resolution":"720p","duration":5,"seed":42}'
end

function init(args)
  keys = common.keys()
  count = 0
  run_id = os.getenv("BENCH_RUN_ID") or tostring(os.time())
  unique = os.getenv("BENCH_PROMPT") ~= "fixed"
  fixed_body = body("bench cache-hit: " .. SCENE)
end

function request()
  count = count + 1
  local payload = fixed_body
  if unique then
    payload = body(string.format("bench %s t%d n%d: %s", run_id, thread_id or 0, count, SCENE))
  end
  local headers = {
    Authorization = "Bearer " .. keys[count % #keys + 1],
    ["Content-Type"] = "application/json",
  }
  return wrk.format("POST", wrk.path, headers, payload)
end

common.install()
