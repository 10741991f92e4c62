-- POST batches of BATCH (default 1) events, each carrying a unique id in its data.
local batch = tonumber(os.getenv("BATCH") or "1")
local run = os.getenv("RUN") or "run"
local levels = {"debug", "info", "info", "info", "warning", "error"}
local writes = require("writes")
writes.count_answers()

function request()
  n = n + 1
  local parts = {}
  for i = 1, batch do
    parts[i] = string.format(
      '{"name":"%s","level":"%s","data":{"id":"%s-%d-%d-%d","path":"/checkout","ms":%d}}',
      run, levels[(n + i) % 6 + 1], run, tid, n, i, (n * 13 + i) % 900)
  end
  return writes.post("/api/v1/events", "events", parts)
end
