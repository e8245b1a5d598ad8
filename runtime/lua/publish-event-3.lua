--[[
  Appends one event to a request's event log and fans it out to the gateways following that request.

  KEYS[1]  sequence counter        (<prefix>req:{<logId>}:seq)
  KEYS[2]  event stream            (<prefix>req:{<logId>}:events)
  KEYS[3]  dedupe hash             (<prefix>req:{<logId>}:dedupe)
  ARGV[1]  pub/sub channel          (<prefix>req:{<logId>}:ch)
  ARGV[2]  event JSON, without seq
  ARGV[3]  dedupe key, or '' for events that may repeat (progress)
  ARGV[4]  TTL of the three keys, seconds
  ARGV[5]  approximate cap on stream length

  Returns { seq, published } where published is 1 for a new event and 0 when the dedupe key had already been
  used (seq is then the sequence number of the first event published under that key).
  Stream entry ids are "<seq>-0", so XRANGE by seq needs no lookup; the channel message is "<seq>|<event JSON>".
]]
local ttl = tonumber(ARGV[4])
if ARGV[3] ~= '' then
  local existing = redis.call('HGET', KEYS[3], ARGV[3])
  if existing then
    return { tonumber(existing), 0 }
  end
end
local seq = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], seq .. '-0', 'e', ARGV[2])
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[3], ARGV[3], seq)
  redis.call('EXPIRE', KEYS[3], ttl)
end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('PUBLISH', ARGV[1], seq .. '|' .. ARGV[2])
return { seq, 1 }
