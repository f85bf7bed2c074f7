-- wrk script: cloudevents.lua with a pause between requests on each connection, to hold a rate below the maximum
-- (wrk has no fixed-rate mode). Run wrk from this folder: the base script is loaded by a relative path.
dofile("cloudevents.lua")

-- Random pauses, exponential with mean pause_ms: each connection then sends like an independent producer. With one
-- fixed pause, connections that queued behind a stall were answered together and came back together one pause
-- later, so one stall returned as a burst, cycle after cycle (docs/performance.md, run 8). wrk takes whole ms.
function delay()
  return -pause_ms * math.log(1 - math.random())
end
