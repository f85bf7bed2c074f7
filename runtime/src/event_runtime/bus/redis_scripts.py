"""The Lua scripts of the Redis bus: each runs atomically on the server, so a crash never leaves half a write.

Key names are built from the prefix inside the scripts (not passed as KEYS): the bus targets one Redis server,
not a Redis Cluster (docs/event-bus.md).
Layout, all under `<prefix>:`: `stream:<p>` one stream per partition; `dedup:<source,id>` a key with a TTL per
accepted event; `seq` the global arrival counter; `owed` deliveries not yet done; `handlers` the handler names
(one consumer group each, on every partition); `retries:<handler>` attempts of entries being retried;
`lease:<p>` the partition's owner; `consumers` live consumers by heartbeat; `dead` the dead-letter stream;
`reader:<owner>` the read epoch of one process (fences its lost reads); `health` the key readiness writes.

Every script starts with a `#!lua` shebang, so Redis checks before it runs a line whether it may write at all
(-OOM, -NOREPLICAS, -READONLY, -MISCONF refuse the whole script; without a shebang a script can stop halfway, after
its first writes). The writes that must land for accepted events to complete (acks, retries, dead letters, lease
upkeep, reads) carry `allow-oom`: they free memory or barely use it, and under OOM they are what lets the bus drain.
Writes that take new data (APPEND, REPLAY) do not: under OOM they are refused and ingress answers 503.

Fencing: a write that settles a delivery (ACK, RETRY, DEAD_LETTER) checks the partition's lease first and does
nothing (-1) when another process holds it: a process whose lease lapsed cannot acknowledge what the new owner has
taken over. READ checks the lease and the caller's read epoch, so a read that Redis runs after its caller gave up
on it (a hang past the socket timeout) takes nothing.
"""

from __future__ import annotations

SEPARATOR = "\n"  # between handler names in an entry; a handler name never holds a newline

# ARGV: prefix, partitions, retention ms, count, then per event: dedup id, partition, key, handlers, body.
# Returns per event its sequence number, or 0 when (source, id) was seen within the retention window.
APPEND = """#!lua
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

# ARGV: prefix, owner, then per entry: partition, handler, entry id, owed (1: a real delivery, 0: not for this
# handler). Per entry: 1 acknowledged now, 0 acknowledged before, -1 fenced (another process holds the lease).
# An entry counts as done once only, however many consumers ack it.
ACK = """#!lua flags=allow-oom
local prefix = ARGV[1]
local owner = ARGV[2]
local results = {}
local done = 0
for at = 3, #ARGV, 4 do
  local lease = redis.call('GET', prefix .. ':lease:' .. ARGV[at])
  if lease and lease ~= owner then
    results[#results + 1] = -1
  else
    local acked = redis.call('XACK', prefix .. ':stream:' .. ARGV[at], ARGV[at + 1], ARGV[at + 2])
    if acked == 1 and ARGV[at + 3] == '1' then
      done = done + 1
      redis.call('HDEL', prefix .. ':retries:' .. ARGV[at + 1], ARGV[at] .. '/' .. ARGV[at + 2])
    end
    results[#results + 1] = acked
  end
end
if done > 0 then redis.call('DECRBY', prefix .. ':owed', done) end
return results
"""

# ARGV: prefix, owner, partition, handler, entry id, then field/value pairs of the dead letter.
# Returns 1 when moved, 0 when it was acknowledged before, -1 fenced (another process holds the lease).
DEAD_LETTER = """#!lua flags=allow-oom
local prefix = ARGV[1]
local lease = redis.call('GET', prefix .. ':lease:' .. ARGV[3])
if lease and lease ~= ARGV[2] then return -1 end
if redis.call('XACK', prefix .. ':stream:' .. ARGV[3], ARGV[4], ARGV[5]) == 0 then return 0 end
redis.call('HDEL', prefix .. ':retries:' .. ARGV[4], ARGV[3] .. '/' .. ARGV[5])
redis.call('DECR', prefix .. ':owed')
local fields = {}
for at = 6, #ARGV do fields[#fields + 1] = ARGV[at] end
redis.call('XADD', prefix .. ':dead', '*', unpack(fields))
return 1
"""

# ARGV: prefix, owner, partition, handler, entry id, "attempts|due_at". Returns 1 when kept, -1 fenced.
RETRY = """#!lua flags=allow-oom
local prefix = ARGV[1]
local lease = redis.call('GET', prefix .. ':lease:' .. ARGV[3])
if lease and lease ~= ARGV[2] then return -1 end
redis.call('HSET', prefix .. ':retries:' .. ARGV[4], ARGV[3] .. '/' .. ARGV[5], ARGV[6])
return 1
"""

# ARGV: prefix, owner, read epoch, count, then per lane: handler, partition. XREADGROUP `>` for each lane whose
# partition this owner holds, but only while `reader:<owner>` still holds the epoch the caller read with: the caller
# moves the epoch on before it looks for entries a lost read took (RedisBus._resync_reads), so a read that Redis
# runs late, after the caller gave up on it, takes nothing that the caller would not see.
# Returns {-1} when the epoch moved on; else {1, then per lane: status, rows} with status 1 read, 0 not this
# owner's partition, -2 no such group; rows are XREADGROUP's {id, {field, value, ...}} entries.
READ = """#!lua flags=allow-oom
local prefix = ARGV[1]
local owner = ARGV[2]
if redis.call('GET', prefix .. ':reader:' .. owner) ~= ARGV[3] then return {-1} end
local results = {1}
for at = 5, #ARGV, 2 do
  local handler, partition = ARGV[at], ARGV[at + 1]
  if redis.call('GET', prefix .. ':lease:' .. partition) ~= owner then
    results[#results + 1] = 0
    results[#results + 1] = {}
  else
    local reply = redis.pcall('XREADGROUP', 'GROUP', handler, owner, 'COUNT', ARGV[4],
      'STREAMS', prefix .. ':stream:' .. partition, '>')
    if type(reply) == 'table' and reply.err then
      results[#results + 1] = -2
      results[#results + 1] = {}
    else
      results[#results + 1] = 1
      results[#results + 1] = reply and reply[1][2] or {}
    end
  end
end
return results
"""

# KEYS: the owner's reader key. ARGV: the new read epoch, ttl ms. Fences every read sent with an older epoch.
FENCE_READS = """#!lua flags=allow-oom
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# ARGV: prefix, then dead-letter entry ids. Each goes back on its partition for its one handler, attempts reset.
REPLAY = """#!lua
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
RENEW = """#!lua flags=allow-oom
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
RELEASE = """#!lua flags=allow-oom
local released = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
    released = released + 1
  end
end
return released
"""
