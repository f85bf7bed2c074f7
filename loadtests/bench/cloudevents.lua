-- wrk script: POSTs CloudEvents like the example type com.example.order.placed, each with a unique id.
-- Arguments (after `--`): path, events per request (1 = structured mode, >1 = a batch), bearer token or "-",
-- delay in ms between requests on a connection (only read by cloudevents_paced.lua), ids: "sequential" (the run id
-- and a counter: each insert lands next to the last one in the store's id index, as with time-ordered ids such as
-- UUIDv7) or "uuid4" (random, as the CloudEvents SDKs make them: each insert lands anywhere in that index).
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_id", thread_count)
end

function init(args)
  path = args[1] or "/events"
  batch = tonumber(args[2] or "1")
  local token = args[3] or "-"
  pause_ms = tonumber(args[4] or "0")
  random_ids = (args[5] or "sequential") == "uuid4"
  math.randomseed(os.time() * 100 + thread_id)  -- runs against one store must not repeat their random ids
  -- the run id keeps ids unique across runs against the same durable store (dedup would skip repeats)
  run_id = string.format("%d%04d", os.time(), math.random(0, 9999))
  counter = 0
  headers = {}
  if batch > 1 then
    headers["Content-Type"] = "application/cloudevents-batch+json"
  else
    headers["Content-Type"] = "application/cloudevents+json"
  end
  if token ~= "-" then
    headers["Authorization"] = "Bearer " .. token
  end
end

local function random_uuid4()
  local r = math.random
  return string.format("%04x%04x-%04x-4%03x-%04x-%04x%04x%04x",
    r(0, 0xffff), r(0, 0xffff), r(0, 0xffff), r(0, 0xfff), r(0x8000, 0xbfff), r(0, 0xffff), r(0, 0xffff), r(0, 0xffff))
end

local function event()
  counter = counter + 1
  local order = counter % 1000
  local id
  if random_ids then
    id = random_uuid4()
  else
    id = string.format("wrk-%s-%d-%d", run_id, thread_id, counter)
  end
  return string.format(
    '{"specversion":"1.0","id":"%s","source":"/bench/wrk","type":"com.example.order.placed",' ..
    '"subject":"order-%d","datacontenttype":"application/json","data":{"order_id":"order-%d",' ..
    '"customer_id":"customer-%d","amount_cents":%d,"currency":"EUR"}}',
    id, order, order, counter % 5000, counter % 100000)
end

function request()
  local body
  if batch > 1 then
    local events = {}
    for i = 1, batch do
      events[i] = event()
    end
    body = "[" .. table.concat(events, ",") .. "]"
  else
    body = event()
  end
  return wrk.format("POST", path, headers, body)
end
