-- What the write scripts share: a thread id per wrk thread, the POST request,
-- and counting answers: 202 accepted, anything else but `also_ok` other,
-- summed over the threads into the two lines bench/loadgen.py reads.
-- Loaded with require (bench/loadgen.py puts this folder on LUA_PATH).
local M = {}
local threads, next_id = {}, 0

function M.post(path, field, parts)
  return wrk.format("POST", path,
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. (os.getenv("API_KEY") or "")},
    '{"' .. field .. '":[' .. table.concat(parts, ",") .. ']}')
end

-- Defines wrk's setup, init, response and done; `on_init` runs in each thread's init.
function M.count_answers(also_ok, on_init)
  function setup(thread)
    next_id = next_id + 1
    thread:set("tid", next_id)
    table.insert(threads, thread)
  end

  function init(args)
    n, accepted, other = 0, 0, 0
    if on_init then on_init() end
  end

  function response(status, headers, body)
    if status == 202 then accepted = accepted + 1 elseif status ~= also_ok then other = other + 1 end
  end

  function done(summary, latency, requests)
    local a, o = 0, 0
    for _, t in ipairs(threads) do a = a + t:get("accepted"); o = o + t:get("other") end
    io.write(string.format("ACCEPTED_REQUESTS %d\nOTHER_REQUESTS %d\n", a, o))
  end
end

return M
