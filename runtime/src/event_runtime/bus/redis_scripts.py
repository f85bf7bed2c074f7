"""The Lua scripts of the Redis bus: each runs atomically on the server, so a crash never leaves half a write.

Key names are built from the prefix inside the scripts (not passed as KEYS): the bus targets one Redis server,
not a Redis Cluster (docs/event-bus.md).
Layout, all under `<prefix>:`: `stream:<p>` one stream per partition; `dedup:<source,id>` a key with a TTL per
accepted event; `seq` the global arrival counter; `owed` deliveries not yet done; `handlers` the handler names
(one consumer group each, on every partition); `retries:<handler>` attempts of entries being retried;
`lease:<p>` the partition's owner; `consumers` live consumers by heartbeat; `dead` the dead-letter stream.
"""

from __future__ import annotations

SEPARATOR = "\n"  # between handler names in an entry; a handler name never holds a newline

# ARGV: prefix, partitions, retention ms, count, then per event: dedup id, partition, key, handlers, body.
# Returns per event its sequence number, or 0 when (source, id) was seen within the retention window.
APPEND = """
local prefix = ARGV[1]
local partitions = tonumber(ARGV[2])
local retention = ARGV[3]
local count = tonumber(ARGV[4])
local positions = {}
local owed = 0
for i = 0, count - 1 do
  local at = 5 + i * 5
  if redis.call('SET', prefix .. ':dedup:' .. ARGV[at], '1', 'NX', 'PX', retention) then
    local handlers = ARGV[at + 3]
    for handler in string.gmatch(handlers, '[^\\n]+') do
      -- a handler seen for the first time gets its group on every partition, starting after what is there
      if redis.call('SADD', prefix .. ':handlers', handler) == 1 then
        for p = 0, partitions - 1 do
          redis.pcall('XGROUP', 'CREATE', prefix .. ':stream:' .. p, handler, '$', 'MKSTREAM')
        end
      end
      owed = owed + 1
    end
    local seq = redis.call('INCR', prefix .. ':seq')
    redis.call('XADD', prefix .. ':stream:' .. ARGV[at + 1], '*',
      'seq', seq, 'key', ARGV[at + 2], 'handlers', handlers, 'body', ARGV[at + 4])
    positions[i + 1] = seq
  else
    positions[i + 1] = 0
  end
end
if owed > 0 then redis.call('INCRBY', prefix .. ':owed', owed) end
return positions
"""

# ARGV: prefix, then per entry: partition, handler, entry id, owed (1: a real delivery, 0: not for this handler).
# An entry counts as done once only, however many consumers ack it.
ACK = """
local prefix = ARGV[1]
local done = 0
for at = 2, #ARGV, 4 do
  local acked = redis.call('XACK', prefix .. ':stream:' .. ARGV[at], ARGV[at + 1], ARGV[at + 2])
  if acked == 1 and ARGV[at + 3] == '1' then
    done = done + 1
    redis.call('HDEL', prefix .. ':retries:' .. ARGV[at + 1], ARGV[at] .. '/' .. ARGV[at + 2])
  end
end
if done > 0 then redis.call('DECRBY', prefix .. ':owed', done) end
return done
"""

# ARGV: prefix, partition, handler, entry id, then field/value pairs of the dead letter. Returns 1 when moved.
DEAD_LETTER = """
local prefix = ARGV[1]
if redis.call('XACK', prefix .. ':stream:' .. ARGV[2], ARGV[3], ARGV[4]) == 0 then return 0 end
redis.call('HDEL', prefix .. ':retries:' .. ARGV[3], ARGV[2] .. '/' .. ARGV[4])
redis.call('DECR', prefix .. ':owed')
local fields = {}
for at = 5, #ARGV do fields[#fields + 1] = ARGV[at] end
redis.call('XADD', prefix .. ':dead', '*', unpack(fields))
return 1
"""

# ARGV: prefix, then dead-letter entry ids. Each goes back on its partition for its one handler, attempts reset.
REPLAY = """
local prefix = ARGV[1]
local replayed = 0
for at = 2, #ARGV do
  local found = redis.call('XRANGE', prefix .. ':dead', ARGV[at], ARGV[at])
  if #found == 1 and redis.call('XDEL', prefix .. ':dead', ARGV[at]) == 1 then
    local letter = {}
    local flat = found[1][2]
    for i = 1, #flat, 2 do letter[flat[i]] = flat[i + 1] end
    redis.call('XADD', prefix .. ':stream:' .. letter['partition'], '*',
      'seq', letter['seq'], 'key', letter['key'], 'handlers', letter['handler'], 'body', letter['body'])
    redis.call('INCR', prefix .. ':owed')
    replayed = replayed + 1
  end
end
return replayed
"""

# KEYS: the leases to keep. ARGV: owner, ttl ms. Per lease: 1 still ours (extended), 0 lost to another owner
# or lapsed; a lapsed lease is not silently re-taken here, the caller takes it over properly.
RENEW = """
local kept = {}
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    kept[i] = 1
  else
    kept[i] = 0
  end
end
return kept
"""

# KEYS: leases to give up. ARGV: owner. Deletes only the ones this owner still holds.
RELEASE = """
local released = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
    released = released + 1
  end
end
return released
"""
