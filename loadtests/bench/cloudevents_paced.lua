-- wrk script: cloudevents.lua with a pause between requests on each connection, to hold a rate below the maximum
-- (wrk has no fixed-rate mode). Run wrk from this folder: the base script is loaded by a relative path.
dofile("cloudevents.lua")

function delay()
  return pause_ms
end
