--[[
  Appends one event to a request's event log and fans it out to the gateways following that request.

  KEYS[1]  sequence counter        (<prefix>req:{<logId>}:seq)
  KEYS[2]  event stream            (<prefix>req:{<logId>}:events)
  KEYS[3]  dedupe hash             (<prefix>req:{<logId>}:dedupe)
  KEYS[4]  seqs of the progress entries still in the stream, oldest first (<prefix>req:{<logId>}:progress)
  ARGV[1]  pub/sub channel          (<prefix>req:{<logId>}:ch)
  ARGV[2]  event JSON, without seq
  ARGV[3]  dedupe key, or '' for events that may repeat (progress)
  ARGV[4]  kind: 'accepted' (the first event of a new request), 'progress', 'terminal' or 'status'
  ARGV[5]  TTL of the log's keys while the request runs, seconds
  ARGV[6]  TTL of the log's keys once its terminal event is in, seconds
  ARGV[7]  most progress entries kept while the request runs; older ones are removed, and all but the newest once
           it has ended (status and terminal entries never are)

  Returns { seq, published } where published is 1 for a new event and 0 when the dedupe key had already been
  used (seq is then the sequence number of the first event published under that key).

  Numbering never restarts. A log starts at 1 with `accepted`. A counter that is missing when any other event
  arrives means the log was lost (Redis lost its data, or the keys expired): numbering then goes on from the
  server clock in milliseconds, which is above any number the lost log can have given (a log gets far fewer than
  one event per millisecond), so followers and clients that skip what they have seen skip nothing new.

  Stream entry ids are "<seq>-0", so XRANGE by seq needs no lookup; the channel message is "<seq>|<event JSON>".
]]
local kind = ARGV[4]
if ARGV[3] ~= '' then
  local existing = redis.call('HGET', KEYS[3], ARGV[3])
  if existing then
    return { tonumber(existing), 0 }
  end
end
local seq
if kind == 'accepted' or redis.call('EXISTS', KEYS[1]) == 1 then
  seq = redis.call('INCR', KEYS[1])
else
  local now = redis.call('TIME')
  seq = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  redis.call('SET', KEYS[1], seq)
end
redis.call('XADD', KEYS[2], seq .. '-0', 'e', ARGV[2])
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[3], seq)
end
local ttl = tonumber(ARGV[5])
if kind == 'progress' then
  redis.call('RPUSH', KEYS[4], seq)
  local excess = redis.call('LLEN', KEYS[4]) - tonumber(ARGV[7])
  if excess > 0 then
    for _, old in ipairs(redis.call('LPOP', KEYS[4], excess)) do
      redis.call('XDEL', KEYS[2], old .. '-0')
    end
  end
elseif kind == 'terminal' then
  -- The request has ended: a client that re-attaches later needs its statuses and its outcome, and of its steps
  -- only the last one (how far it got), not the whole run of them.
  for _, old in ipairs(redis.call('LRANGE', KEYS[4], 0, -2)) do
    redis.call('XDEL', KEYS[2], old .. '-0')
  end
  redis.call('DEL', KEYS[4])
  ttl = tonumber(ARGV[6])
end
for i = 1, 4 do
  redis.call('EXPIRE', KEYS[i], ttl)
end
redis.call('PUBLISH', ARGV[1], seq .. '|' .. ARGV[2])
return { seq, 1 }
