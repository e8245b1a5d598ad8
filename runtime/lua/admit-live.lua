-- Admits one request into the live-request sets, atomically with the caps it must fit under (runtime/live-requests.ts).
-- KEYS[1]: the user's live set; KEYS[2]: the deployment's live set (sorted sets: workflow id -> accepted at, ms).
-- ARGV[1]: workflow id; ARGV[2]: now (ms); ARGV[3]: entries accepted before this are dropped as leaked;
-- ARGV[4]: the user's cap; ARGV[5]: the deployment's cap; ARGV[6]: TTL of the user's set (ms).
-- Returns {verdict, count}: 0 admitted (count = the user's live requests now, this one included; a request already
-- live is admitted again at no cost), 1 over the user's cap (count = the user's), 2 over the deployment's (count = all).
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
local mine = redis.call('ZCARD', KEYS[1])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return {0, mine}
end
if mine >= tonumber(ARGV[4]) then
  return {1, mine}
end
local all = redis.call('ZCARD', KEYS[2])
if all >= tonumber(ARGV[5]) then
  return {2, all}
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return {0, mine + 1}
