-- Shared by the bench scripts: the Authorization keys, per-status response counts, and the
-- one summary line (BENCH_STATUS 200=123 502=4) that bench/wrk.py parses.
--
-- Environment: BENCH_KEY (one key) or BENCH_KEYS_FILE (one key a line, used round-robin);
-- BENCH_RECORD_STATUS=0 skips per-status counting (wrk then need not buffer bodies, which
-- matters for 1 MiB downloads; wrk's own "Non-2xx" count still applies).
local M = {}

function M.keys()
  local keys = {}
  local file = os.getenv("BENCH_KEYS_FILE")
  if file and #file > 0 then
    for line in io.lines(file) do
      if #line > 0 then keys[#keys + 1] = line end
    end
  end
  if #keys == 0 then keys[1] = os.getenv("BENCH_KEY") or "none" end
  return keys
end

local threads = {}

local function setup(thread)
  thread:set("thread_id", #threads + 1)
  threads[#threads + 1] = thread
end

statuses = {}

local function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

local function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses") or {}
    for status, n in pairs(counts) do
      total[status] = (total[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(total) do
    parts[#parts + 1] = string.format("%d=%d", status, n)
  end
  table.sort(parts)
  io.write("BENCH_STATUS " .. table.concat(parts, " ") .. "\n")
end

-- Define wrk's setup/response/done globals in the calling script.
function M.install()
  _G.setup = setup
  _G.done = done
  if os.getenv("BENCH_RECORD_STATUS") ~= "0" then
    _G.response = response
  end
end

return M
