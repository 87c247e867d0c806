// The Lua script behind RedisClient (a TS string so the build ships it with the code; String.raw keeps Lua's escapes).
export const KV_SCRIPT = String.raw`-- nestcd's keyspace on Redis: one script, so every operation is atomic on the server.
-- KEYS[1] = key prefix (a hash tag such as "{nestcd}:" keeps every key in one cluster slot).
-- ARGV[1] = operation; the rest depends on it (see redis-client.ts, which builds the arguments).
-- Data:  P.."rev" current revision | P.."compact" compacted revision | P.."keys" zset of live keys (lex order)
--        P.."kv:"..key hash {v,c,m,ver,l} | P.."log" stream of events, ID "<rev>-<n>" | P.."events" pub/sub channel
--        P.."leases" zset id -> expiry (ms) | P.."lease:"..id hash {ttl, granted} | P.."lease:"..id..":keys" set
pcall(redis.replicate_commands) -- effects replication (default on Redis 7; needed for TIME on older servers)

local P = KEYS[1]
local REV, COMPACT, KEYSET, LOG, LEASES, CHANNEL, LEASESEQ =
  P .. 'rev', P .. 'compact', P .. 'keys', P .. 'log', P .. 'leases', P .. 'events', P .. 'leaseseq'
local GRACE = 2000 -- ms a key outlives its lease by, as a backstop when no client reaps

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function kvkey(k) return P .. 'kv:' .. k end
local function lkey(id) return P .. 'lease:' .. id end
local function lkeys(id) return P .. 'lease:' .. id .. ':keys' end

local cur = tonumber(redis.call('GET', REV) or '0')
local rev = cur -- revision of this call's writes, once one happened
local seq = 0
local changed = false
local logMax = 0

local function bump()
  if not changed then
    changed = true
    rev = cur + 1
  end
end

local function getkv(k)
  local f = redis.call('HMGET', kvkey(k), 'v', 'c', 'm', 'ver', 'l')
  if not f[2] then return nil end
  return { k, f[1], f[2], f[3], f[4], f[5] }
end

local function rangekvs(key, stop)
  local out = {}
  if stop == '' then
    local kv = getkv(key)
    if kv then out[1] = kv end
    return out
  end
  local names
  if stop == '\0' then
    names = redis.call('ZRANGEBYLEX', KEYSET, '[' .. key, '+')
  else
    if key >= stop then return out end
    names = redis.call('ZRANGEBYLEX', KEYSET, '[' .. key, '(' .. stop)
  end
  for _, k in ipairs(names) do
    local kv = getkv(k)
    if kv then out[#out + 1] = kv end
  end
  return out
end

local function leaseAlive(id)
  local exp = redis.call('ZSCORE', LEASES, id)
  return exp and tonumber(exp) > now and redis.call('EXISTS', lkey(id)) == 1
end

local function leaseExpiry(id)
  return tonumber(redis.call('ZSCORE', LEASES, id) or '0')
end

local function logEvent(kind, kv, prev)
  local fields = { 't', kind, 'k', kv[1], 'v', kv[2] or '', 'c', kv[3] or '0', 'm', tostring(rev), 'ver', kv[5] or '0', 'l', kv[6] or '0' }
  if prev then
    local pf = { 'pv', prev[2], 'pc', prev[3], 'pm', prev[4], 'pver', prev[5], 'pl', prev[6] }
    for i = 1, #pf do fields[#fields + 1] = pf[i] end
  end
  redis.call('XADD', LOG, tostring(rev) .. '-' .. tostring(seq), unpack(fields))
  seq = seq + 1
end

local function delkv(kv)
  bump()
  redis.call('DEL', kvkey(kv[1]))
  redis.call('ZREM', KEYSET, kv[1])
  if kv[6] ~= '0' then redis.call('SREM', lkeys(kv[6]), kv[1]) end
  logEvent('delete', { kv[1], '', '0', tostring(rev), '0', '0' }, kv)
end

local function revokeLease(id)
  local keys = redis.call('SMEMBERS', lkeys(id))
  table.sort(keys)
  for _, k in ipairs(keys) do
    local kv = getkv(k)
    if kv and kv[6] == id then delkv(kv) end
  end
  redis.call('DEL', lkey(id), lkeys(id))
  redis.call('ZREM', LEASES, id)
end

local function finish()
  if changed then
    redis.call('SET', REV, tostring(rev))
    if logMax > 0 and redis.call('XLEN', LOG) > logMax then
      -- the log is bounded: what falls off is compacted history (watchers that far behind are told so)
      redis.call('XTRIM', LOG, 'MAXLEN', logMax)
      local first = redis.call('XRANGE', LOG, '-', '+', 'COUNT', 1)[1]
      if first then
        local firstRev = tonumber(string.match(first[1], '^(%d+)-'))
        local compact = tonumber(redis.call('GET', COMPACT) or '0')
        if firstRev + 1 > compact then
          redis.call('SET', COMPACT, tostring(firstRev + 1))
          redis.call('XTRIM', LOG, 'MINID', tostring(firstRev + 1) .. '-0')
        end
      end
    end
    redis.call('PUBLISH', CHANNEL, tostring(rev))
  end
end

-- a txn: ARGV = 'txn', logMax, nCompares, compares (5 each), nSuccess, ops, nFailure, ops
-- compare: key, rangeEnd, target (version|create|mod|value|lease), result (equal|greater|less|not_equal), value
-- op: 'range', key, rangeEnd | 'put', key, value, lease, ignoreValue('1'/'0'), ignoreLease | 'delete', key, rangeEnd
local OP_ARGS = { range = 2, put = 5, delete = 2 }

local function compareOne(c, kv)
  local target, result, want = c[3], c[4], c[5]
  local have
  if target == 'value' then
    if not kv then return false end
    have = kv[2]
  else
    local idx = ({ version = 5, create = 3, mod = 4, lease = 6 })[target]
    have = kv and tonumber(kv[idx]) or 0
    want = tonumber(want)
  end
  if result == 'equal' then return have == want end
  if result == 'not_equal' then return have ~= want end
  if result == 'greater' then return have > want end
  return have < want
end

local function evalCompare(c)
  local kvs = rangekvs(c[1], c[2])
  if #kvs == 0 then
    if c[3] == 'value' then return false end
    return compareOne(c, nil)
  end
  for _, kv in ipairs(kvs) do
    if not compareOne(c, kv) then return false end
  end
  return true
end

local function txn(i)
  logMax = tonumber(ARGV[i]); i = i + 1
  local n = tonumber(ARGV[i]); i = i + 1
  local ok = true
  for _ = 1, n do
    local c = { ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4] }
    i = i + 5
    if ok and not evalCompare(c) then ok = false end
  end
  local branches = {}
  for b = 1, 2 do
    local ops = {}
    local m = tonumber(ARGV[i]); i = i + 1
    for _ = 1, m do
      local kind = ARGV[i]
      local op = { kind }
      for j = 1, OP_ARGS[kind] do op[j + 1] = ARGV[i + j] end
      i = i + 1 + OP_ARGS[kind]
      ops[#ops + 1] = op
    end
    branches[b] = ops
  end
  local ops = ok and branches[1] or branches[2]
  -- validate before any write, so a failing txn changes nothing (etcd's all-or-nothing)
  for _, op in ipairs(ops) do
    if op[1] == 'put' then
      local old = getkv(op[2])
      if (op[5] == '1' or op[6] == '1') and not old then return redis.error_reply('etcdserver: key not found') end
      if op[6] ~= '1' and op[4] ~= '0' and not leaseAlive(op[4]) then return redis.error_reply('etcdserver: requested lease not found') end
    end
  end
  local responses = {}
  for _, op in ipairs(ops) do
    if op[1] == 'range' then
      responses[#responses + 1] = { 'range', rangekvs(op[2], op[3]) }
    elseif op[1] == 'put' then
      bump()
      local key = op[2]
      local old = getkv(key)
      local value = op[3]
      local lease = op[4]
      if op[5] == '1' then value = old[2] end
      if op[6] == '1' then lease = old[6] end
      local create = old and old[3] or tostring(rev)
      local ver = old and tostring(tonumber(old[5]) + 1) or '1'
      if old and old[6] ~= '0' and old[6] ~= lease then redis.call('SREM', lkeys(old[6]), key) end
      redis.call('HSET', kvkey(key), 'v', value, 'c', create, 'm', tostring(rev), 'ver', ver, 'l', lease)
      redis.call('ZADD', KEYSET, 0, key)
      if lease ~= '0' then
        redis.call('SADD', lkeys(lease), key)
        redis.call('PEXPIREAT', kvkey(key), leaseExpiry(lease) + GRACE)
      else
        redis.call('PERSIST', kvkey(key))
      end
      logEvent('put', { key, value, create, tostring(rev), ver, lease }, old)
      responses[#responses + 1] = { 'put', old or {} }
    else
      local kvs = rangekvs(op[2], op[3])
      for _, kv in ipairs(kvs) do delkv(kv) end
      responses[#responses + 1] = { 'delete', kvs }
    end
  end
  finish()
  return { rev, ok and 1 or 0, responses }
end

local op = ARGV[1]
if op == 'txn' then
  return txn(2)
elseif op == 'grant' then
  -- 'grant', ttlSeconds, id ('0': pick one)
  local ttl, id = tonumber(ARGV[2]), ARGV[3]
  if id == '0' then
    repeat id = tostring(redis.call('INCR', LEASESEQ)) until redis.call('ZSCORE', LEASES, id) == false
  elseif redis.call('ZSCORE', LEASES, id) then
    return redis.error_reply('etcdserver: lease already exists')
  end
  local exp = now + ttl * 1000
  redis.call('HSET', lkey(id), 'ttl', tostring(ttl))
  redis.call('PEXPIREAT', lkey(id), exp)
  redis.call('ZADD', LEASES, exp, id)
  return { cur, id, ttl }
elseif op == 'renew' then
  -- 'renew', id: the remaining TTL, 0 when the lease is gone (etcd's keep-alive answer)
  local id = ARGV[2]
  if not leaseAlive(id) then return { cur, 0 } end
  local ttl = tonumber(redis.call('HGET', lkey(id), 'ttl'))
  local exp = now + ttl * 1000
  redis.call('ZADD', LEASES, exp, id)
  redis.call('PEXPIREAT', lkey(id), exp)
  for _, k in ipairs(redis.call('SMEMBERS', lkeys(id))) do redis.call('PEXPIREAT', kvkey(k), exp + GRACE) end
  redis.call('PEXPIREAT', lkeys(id), exp + GRACE)
  return { cur, ttl }
elseif op == 'revoke' then
  local id = ARGV[2]
  logMax = tonumber(ARGV[3])
  if not redis.call('ZSCORE', LEASES, id) then return redis.error_reply('etcdserver: requested lease not found') end
  revokeLease(id)
  finish()
  return { rev }
elseif op == 'reap' then
  -- revoke every expired lease, each at its own revision (as etcd's lessor does); returns how many
  logMax = tonumber(ARGV[2])
  local expired = redis.call('ZRANGEBYSCORE', LEASES, '-inf', now, 'LIMIT', 0, 100)
  for _, id in ipairs(expired) do
    changed = false
    cur = rev
    revokeLease(id)
    finish()
  end
  return #expired
elseif op == 'ttl' then
  -- 'ttl', id, withKeys: { rev, ttl (-1: gone), granted, keys }
  local id = ARGV[2]
  if not leaseAlive(id) then return { cur, -1, 0, {} } end
  local granted = tonumber(redis.call('HGET', lkey(id), 'ttl'))
  local left = math.ceil((leaseExpiry(id) - now) / 1000)
  local keys = {}
  if ARGV[3] == '1' then
    keys = redis.call('SMEMBERS', lkeys(id))
    table.sort(keys)
  end
  return { cur, left, granted, keys }
elseif op == 'leases' then
  local out = {}
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', LEASES, now, '+inf')) do out[#out + 1] = id end
  return { cur, out }
elseif op == 'compact' then
  local r = tonumber(ARGV[2])
  local compact = tonumber(redis.call('GET', COMPACT) or '0')
  if r <= compact then return redis.error_reply('etcdserver: mvcc: required revision has been compacted') end
  if r > cur then return redis.error_reply('etcdserver: mvcc: required revision is a future revision') end
  redis.call('SET', COMPACT, tostring(r))
  redis.call('XTRIM', LOG, 'MINID', tostring(r) .. '-0')
  return { cur }
elseif op == 'head' then
  return { cur, tonumber(redis.call('GET', COMPACT) or '0') }
end
return redis.error_reply('nestcd redis script: unknown operation ' .. tostring(op))
`;
